"""`ModelPool`: which models the server may serve, loading each once and sharing it across requests.

A request's ``model`` names a folder of the model cache (``tiny.en-int8``), a bare name (``tiny.en``: int8
preferred, as ``load_model`` resolves it), ``whisper-1`` (OpenAI's name: the default model) or one of the
models given at start-up. A client never names a filesystem path: only what is listed can be loaded.
Loaded models are kept up to ``max_models``; to load another, the least recently used idle one is
unloaded, and when none is idle the request gets 503.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelNotFoundError
from ..registry import DEFAULT_QUANTIZATION, QUANTIZATIONS, cache_dir
from .config import ServerConfig
from .errors import ServerBusyError
from .limits import DecodeSlot

log = logging.getLogger("edge_asr.server")

OPENAI_DEFAULT_NAMES = frozenset({"whisper-1"})  # what OpenAI clients send: served by the default model
SAMPLE = Path(__file__).resolve().parent.parent / "assets" / "sample.flac"


@dataclass
class LoadedModel:
    id: str
    folder: Path
    model: object  # WhisperModel
    slot: DecodeSlot
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)


class ModelPool:
    def __init__(self, config: ServerConfig, loader=None):
        from ..model import load_model

        self.config = config
        self._load = loader or (lambda folder: load_model(folder, device=config.device, threads=config.threads,
                                                             fallback=not config.require_device))
        self.root = (Path(config.cache_dir).expanduser() if config.cache_dir else cache_dir()) / "models"
        # Models named at start-up (names or folders): id -> folder
        self._configured: dict[str, Path] = {}
        self.default_id = self._configure(config.model)
        for name in config.preload_models:
            self._configure(name)
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()  # guards _loaded; loads happen under it (one at a time)

    # ---- naming -----------------------------------------------------------------------------
    def _configure(self, name: str) -> str:
        path = Path(name).expanduser()
        folder = path if path.is_dir() else self._cached_folder(name)
        if folder is None:
            raise ModelNotFoundError(f"model {name!r} is neither a model folder nor in the cache ({self.root}); "
                                     f"build it with: edge-asr pull NAME (cached: {', '.join(self.cached()) or 'none'})")
        self._configured[folder.name] = folder
        return folder.name

    def _cached_folder(self, name: str) -> Path | None:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            return None
        for candidate in (name,) + tuple(f"{name}-{q}" for q in (DEFAULT_QUANTIZATION,) + QUANTIZATIONS):
            folder = self.root / candidate
            if (folder / "manifest.json").is_file():
                return folder
        return None

    def cached(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "manifest.json").is_file())

    def resolve(self, name: str | None) -> tuple[str, Path]:
        """(id, folder) for a request's model name; ModelNotFoundError listing what is available."""
        name = (name or "").strip()
        if not name or name in OPENAI_DEFAULT_NAMES:
            return self.default_id, self._configured[self.default_id]
        if name in self._configured:
            return name, self._configured[name]
        for mid, folder in self._configured.items():  # a bare name of a configured folder (base -> base-int8)
            if mid.rsplit("-", 1)[0] == name and folder.parent == self.root:
                return mid, folder
        folder = self._cached_folder(name)
        if folder is None:
            available = sorted(set(self._configured) | set(self.cached()))
            raise ModelNotFoundError(f"model {name!r} is not available; this server has: {', '.join(available)} "
                                     f"(or 'whisper-1' for the default, {self.default_id})")
        return folder.name, folder

    # ---- loading ----------------------------------------------------------------------------
    def get(self, name: str | None) -> LoadedModel:
        """The loaded model for ``name``, loading it (blocking) if needed. Call from a worker thread."""
        mid, folder = self.resolve(name)
        entry = self._loaded.get(mid)  # loaded: no lock (another model may be loading)
        if entry is not None:
            entry.last_used = time.monotonic()
            return entry
        with self._lock:
            entry = self._loaded.get(mid)
            if entry is None:
                self._make_room()
                t0 = time.perf_counter()
                model = self._load(folder)
                entry = LoadedModel(mid, folder, model, DecodeSlot(mid, self.config.concurrency, self.config.queue_size))
                self._loaded[mid] = entry
                log.info("loaded model %s from %s in %.2f s", mid, folder, time.perf_counter() - t0)
                if self.config.warmup:
                    self._warm_up(entry)
            entry.last_used = time.monotonic()
            return entry

    def loaded(self, name: str | None) -> LoadedModel | None:
        """The loaded model for ``name`` if it is loaded (no loading, no blocking)."""
        mid, _ = self.resolve(name)
        entry = self._loaded.get(mid)
        if entry is not None:
            entry.last_used = time.monotonic()
        return entry

    def _make_room(self) -> None:
        if len(self._loaded) < self.config.max_models:
            return
        idle = [e for e in self._loaded.values() if e.slot.idle and e.id != self.default_id]
        if not idle:
            raise ServerBusyError(f"{len(self._loaded)} model(s) are loaded and busy (--max-models "
                                  f"{self.config.max_models}; the default model stays loaded); try again later "
                                  f"or use a loaded model",
                                  retry_after=5)
        victim = min(idle, key=lambda e: e.last_used)
        del self._loaded[victim.id]
        victim.slot.close(wait=False, reason=f"model {victim.id!r} was unloaded to make room; try again")
        log.info("unloaded model %s (least recently used)", victim.id)

    def _warm_up(self, entry: LoadedModel) -> None:
        """One decode of the bundled sample: onnxruntime's first runs allocate and pre-pack."""
        t0 = time.perf_counter()
        try:
            entry.model.transcribe(str(SAMPLE), language="en", temperature=0.0)
        except Exception as e:  # noqa: BLE001 - a warm-up failure is logged, the model still serves
            log.warning("warm-up of %s failed: %s", entry.id, e)
            return
        log.info("warmed up %s in %.2f s", entry.id, time.perf_counter() - t0)

    def listing(self) -> list[dict]:
        """OpenAI's model objects for /v1/models: every configured and cached model, loaded or not."""
        out = []
        for mid in sorted(set(self._configured) | set(self.cached())):
            folder = self._configured.get(mid) or self.root / mid
            manifest = folder / "manifest.json"
            try:
                info = json.loads(manifest.read_text())
            except (OSError, ValueError):
                info = {}
            entry = self._loaded.get(mid)
            out.append({"id": mid, "object": "model", "created": int(manifest.stat().st_mtime) if manifest.exists() else 0,
                        "owned_by": "edge-asr", "loaded": entry is not None, "default": mid == self.default_id,
                        "multilingual": info.get("multilingual"), "quantization": info.get("quantization"),
                        "active_requests": entry.slot.admitted if entry else 0,
                        "streams": entry.slot.streams if entry else 0})
        return out

    def close(self, wait: bool = True) -> None:
        with self._lock:
            entries = list(self._loaded.values())
        for entry in entries:
            entry.slot.close(wait=wait)

    def begin_shutdown(self) -> None:
        """Refuse new work on every model; running decodes go on."""
        for entry in list(self._loaded.values()):
            entry.slot.close(wait=False)
