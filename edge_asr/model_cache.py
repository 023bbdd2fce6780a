"""What the cache directory holds besides model folders, and managing it (`edge-asr models`).

Layout of ``registry.cache_dir()``::

    models/<name>-<quant>/          model folders (`edge-asr pull`); never written at run time
    optimized/<sha[:24]>-ort<ver>/  onnxruntime's optimized CPU graph of one graph file, for one
                                    onnxruntime version (other versions' copies are left to the size
                                    bound: another environment sharing the cache may use them; the
                                    folder is trimmed to the bound, least recently used first, before
                                    each new copy is written, so it can exceed it by the newest copies)
    state/<key>.verified.json       the hash-check stamp of one model folder (edge_asr.manifest)
    state/<key>.fidelity.json       fidelity verdicts of one model folder (edge_asr.fidelity)
    sources/                        `pull`'s intermediate files, only with `pull --keep-sources`

``<key>`` is derived from the folder's resolved path and its manifest's content, so a folder anywhere on
disk (a read-only app bundle included) gets its verification cached without a byte written into it,
and a re-exported folder at the same path starts unverified. State writes are atomic and best-effort:
an unwritable cache only means hashing (or measuring) again next time.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import EdgeASRError, ModelNotFoundError
from .registry import cache_dir

OPTIMIZED_DIR = "optimized"
STATE_DIR = "state"
MODELS_DIR = "models"
# Optimized graphs: on by default (a load took ~0.75x the time with them: base int8 1.04 vs 1.45 s, README
# "Model cache"); EDGE_ASR_OPTIMIZED_GRAPHS=0 turns the cache off, EDGE_ASR_OPTIMIZED_CACHE_MB bounds it.
OPTIMIZED_ENV = "EDGE_ASR_OPTIMIZED_GRAPHS"
OPTIMIZED_LIMIT_ENV = "EDGE_ASR_OPTIMIZED_CACHE_MB"
# About the optimized graphs of the two largest int8 models plus an fp32 one: more is a leak, not a cache.
DEFAULT_OPTIMIZED_LIMIT_MB = 1024
# State files beyond this count trigger dropping those of folders that no longer exist.
STATE_PRUNE_AT = 256
# The names edge-asr writes in optimized/ and state/ (a graph's sha256[:24]; _folder_key's 32 hex digits):
# trimming and pruning touch nothing else a user may have put there.
_GRAPH_PREFIX = re.compile(r"[0-9a-f]{24}")
_OPTIMIZED_NAME = re.compile(r"[0-9a-f]{24}-ort.+")
_STATE_NAME = re.compile(r"[0-9a-f]{32}\.(verified|fidelity)\.json")


class ModelCacheError(EdgeASRError, ValueError):
    """A cache operation was refused (a path outside the cache, a folder that is not a model)."""


# ---------------------------------------------------------------------------------------------- state


def manifest_digest(raw: dict) -> str:
    """Content hash of a manifest (it lists every file's sha256, so it names the folder's content)."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()


def _folder_key(folder: Path, raw: dict) -> str:
    blob = f"{Path(folder).resolve()}\0{manifest_digest(raw)}"
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def state_path(folder: Path, raw: dict, kind: str) -> Path:
    """Where ``kind`` ("verified", "fidelity") of the folder with manifest ``raw`` is cached."""
    return cache_dir() / STATE_DIR / f"{_folder_key(folder, raw)}.{kind}.json"


def read_state(folder: Path, raw: dict, kind: str) -> dict:
    """The cached ``kind`` data of this folder, {} when none or unreadable (a damaged entry only means
    checking again)."""
    try:
        data = json.loads(state_path(folder, raw, kind).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("folder") != str(Path(folder).resolve()):
        return {}
    value = data.get("data")
    return value if isinstance(value, dict) else {}


def write_state(folder: Path, raw: dict, kind: str, data: dict) -> bool:
    """Cache ``data`` for this folder atomically; False when the cache cannot be written."""
    path = state_path(folder, raw, kind)
    body = {"folder": str(Path(folder).resolve()), "manifest": manifest_digest(raw), "written": time.time(),
            "data": data}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() and len(os.listdir(path.parent)) >= STATE_PRUNE_AT:
            prune_state()  # folders deleted by hand (and temporary ones) leave entries behind
        # Per process and thread: two loads of one folder may write at once; the last rename wins.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps(body))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)  # left only when the write or the rename failed (a full disk)
        return True
    except OSError:
        return False


def _state_files_of(folder: Path) -> list[Path]:
    """Every state file written for ``folder`` (any manifest it had)."""
    root = cache_dir() / STATE_DIR
    resolved = str(Path(folder).resolve())
    found = []
    for path in sorted(root.glob("*.json")) if root.is_dir() else []:
        if not _STATE_NAME.fullmatch(path.name):
            continue
        try:
            if json.loads(path.read_text()).get("folder") == resolved:
                found.append(path)
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            continue
    return found


# ----------------------------------------------------------------------------------- optimized graphs


def optimized_graphs_enabled(explicit: bool | None = None) -> bool:
    """``explicit`` when given, else $EDGE_ASR_OPTIMIZED_GRAPHS ("0"/"false"/"no"/"off" disable), else on."""
    if explicit is not None:
        return bool(explicit)
    return os.environ.get(OPTIMIZED_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def optimized_limit_bytes() -> int:
    """$EDGE_ASR_OPTIMIZED_CACHE_MB in bytes ("inf": no bound; negative: 0; unreadable: the default)."""
    try:
        limit = float(os.environ.get(OPTIMIZED_LIMIT_ENV, DEFAULT_OPTIMIZED_LIMIT_MB)) * 1e6
        if math.isinf(limit):  # int(inf) raises OverflowError
            return sys.maxsize if limit > 0 else 0
        return max(0, int(limit))
    except (ValueError, OverflowError):  # ValueError: not a number, or nan
        return int(DEFAULT_OPTIMIZED_LIMIT_MB * 1e6)


def _ort_version() -> str:
    import onnxruntime as ort

    return ort.__version__


def _graph_prefix(graph_sha256) -> str | None:
    """The folder-name prefix of a graph's sha256, or None unless it is hex: it becomes a path and a
    glob pattern, so "../" or "*" in a crafted manifest must never get that far."""
    prefix = graph_sha256[:24] if isinstance(graph_sha256, str) else ""
    return prefix if _GRAPH_PREFIX.fullmatch(prefix) else None


def optimized_graph_dir(graph_sha256: str) -> Path:
    """The folder for the optimized CPU graph of the graph file with this sha256, under the running
    onnxruntime. Using it marks it recently used; before a new one is created, the cache is trimmed to
    its bound. Other onnxruntime versions' copies of the graph are not deleted here: another environment
    sharing the cache may be using them (and deleting would make two of them rebuild at every load);
    unused ones age out through the bound."""
    root = cache_dir() / OPTIMIZED_DIR
    prefix = _graph_prefix(graph_sha256)
    if prefix is None:  # manifest_problem refuses such manifests before any load
        raise ModelCacheError(f"{graph_sha256!r} is not a sha256 (64 lowercase hex digits)")
    path = root / f"{prefix}-ort{_ort_version()}"
    if path.is_dir():
        try:
            os.utime(path)  # least-recently-used order for the size bound
        except OSError:
            pass
        return path
    trim_optimized(optimized_limit_bytes())
    return path


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            continue
    return total


def trim_optimized(limit: int) -> list[Path]:
    """Remove the least recently used optimized graphs until the folder holds at most ``limit`` bytes
    (leaving room for a new one is the caller's concern: the bound is checked before each write)."""
    root = cache_dir() / OPTIMIZED_DIR
    if not root.is_dir():
        return []
    entries = []
    for p in root.iterdir():
        if not _OPTIMIZED_NAME.fullmatch(p.name):
            continue  # not an optimized-graph folder edge-asr wrote: never deleted
        try:
            entries.append((p.stat().st_mtime, p, _tree_size(p)))
        except OSError:
            continue
    total = sum(size for _, _, size in entries)
    removed = []
    for _, path, size in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():  # not (or only partly) deleted, e.g. permissions: not counted as removed
            total -= size - _tree_size(path)
            continue
        total -= size
        removed.append(path)
    return removed


def optimized_dirs_of(raw: dict) -> list[Path]:
    """The optimized-graph folders (any onnxruntime version) of the graphs a manifest lists."""
    root = cache_dir() / OPTIMIZED_DIR
    if not root.is_dir():
        return []
    graphs, files = raw.get("graphs"), raw.get("files")
    if not isinstance(graphs, dict) or not isinstance(files, dict):  # a broken manifest names none
        return []
    found = []
    for graph in graphs.values():
        name = graph.get("file") if isinstance(graph, dict) else None
        info = files.get(name) if isinstance(name, str) else None
        prefix = _graph_prefix(info.get("sha256")) if isinstance(info, dict) else None
        if prefix is not None:
            # parent == root: only folders directly in optimized/ (the prefix is hex, this is a second guard).
            found += sorted(p for p in root.glob(f"{prefix}-ort*") if p.parent == root)
    return found


# ----------------------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class CachedModel:
    """One model folder in the cache, as `edge-asr models` lists it."""
    name: str  # folder name: <name>-<quantization>
    path: str
    size_bytes: int  # the folder on disk
    quantization: str  # "int8", "fp32", "fp16" ("?" when the manifest is unreadable)
    scheme: str | None  # the int8 scheme (int8 folders only)
    format_version: int | None
    verification: str  # "verified" | "changed since verified" | "not verified" | "broken: <why>"
    fidelity: tuple[str, ...]  # cached verdicts on this machine: "pass (CPUExecutionProvider)", ...
    optimized_bytes: int  # its optimized graphs (all onnxruntime versions)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fidelity"] = list(self.fidelity)
        return d


def verification_state(folder: Path, raw: dict) -> str:
    """What the cached hash-check stamp says about the folder now, without hashing: every listed file
    still has the size and mtime it had when its sha256 matched ("verified"), some moved ("changed since
    verified": the next load hashes it again), or no stamp ("not verified")."""
    from .manifest import stamp_matches

    stamp = read_state(folder, raw, "verified")
    if not stamp:
        return "not verified"
    return "verified" if stamp_matches(folder, raw, stamp) else "changed since verified"


def fidelity_verdicts(folder: Path, raw: dict) -> tuple[str, ...]:
    from .fidelity import machine_signature

    here = machine_signature()
    out = []
    for report in read_state(folder, raw, "fidelity").values():
        if isinstance(report, dict) and report.get("machine") == here:
            out.append(f"{report.get('verdict')} ({', '.join(report.get('providers') or [])})")
    return tuple(sorted(set(out)))


def describe(folder: Path) -> CachedModel:
    """A model folder's listing entry (its manifest read, nothing hashed)."""
    from .manifest import MANIFEST, manifest_problem
    from .quantization import scheme_of

    folder = Path(folder)
    size = _tree_size(folder)
    try:
        raw = json.loads((folder / MANIFEST).read_text())
        if not isinstance(raw, dict):
            raise ValueError("not an object")
        problem = manifest_problem(raw)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return CachedModel(folder.name, str(folder), size, "?", None, None, f"broken: {MANIFEST} unreadable ({e})",
                           (), 0)
    version = raw.get("format_version")
    version = version if isinstance(version, int) else None
    if problem:  # before anything reads its fields: they may have any type (one bad folder must not stop a listing)
        quant = raw.get("quantization")
        return CachedModel(folder.name, str(folder), size, quant if isinstance(quant, str) else "?", None, version,
                           f"broken: {problem}", (), 0)
    optimized = sum(_tree_size(p) for p in optimized_dirs_of(raw))
    quant = raw["quantization"]
    scheme = scheme_of(raw).name if quant == "int8" else None  # int8: never None (legacy when unnamed)
    return CachedModel(folder.name, str(folder), size, quant, scheme, version, verification_state(folder, raw),
                       fidelity_verdicts(folder, raw), optimized)


def list_models() -> list[CachedModel]:
    """Every folder in ``<cache>/models``, by name."""
    root = cache_dir() / MODELS_DIR
    if not root.is_dir():
        return []
    return [describe(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def cache_usage() -> dict[str, int]:
    """Bytes per top-level folder of the cache (models, optimized, state, sources, ...)."""
    root = cache_dir()
    if not root.is_dir():
        return {}
    return {p.name: _tree_size(p) for p in sorted(root.iterdir()) if p.is_dir()}


# ----------------------------------------------------------------------------------------- removal


@dataclass(frozen=True)
class Removed:
    path: str
    freed_bytes: int
    removed: tuple[str, ...]  # the folder, its optimized graphs and state files


def _cached_folder(name_or_path: str) -> Path:
    """The cache's model folder named ``name_or_path`` (a folder name, a bare model name with int8
    preferred, or a path inside ``<cache>/models``); anything outside the cache is refused."""
    from .registry import cached_model

    root = (cache_dir() / MODELS_DIR).resolve()
    name = str(name_or_path)
    candidate = Path(name).expanduser()
    is_path = (any(sep and sep in name for sep in (os.sep, os.altsep, "/")) or name in (".", "..")
               or name.startswith("~"))
    if is_path and candidate.is_dir():
        folder = candidate.resolve()
    else:
        # A bare name means the cache's folder, even when the current directory holds one of that name.
        found = None if is_path else cached_model(name)
        if found is None:
            raise ModelNotFoundError(f"no cached model named {name_or_path!r} in {root}; `edge-asr models` lists "
                                     "them")
        folder = found.resolve()
    if folder.parent != root:
        raise ModelCacheError(f"{folder} is not a model folder of the cache ({root}); edge-asr removes only "
                              "what it manages there: delete other folders yourself")
    return folder


def remove_model(name_or_path: str, *, dry_run: bool = False) -> Removed:
    """Delete a cached model folder with its optimized graphs and its cached verification state."""
    from .manifest import MANIFEST, manifest_problem

    folder = _cached_folder(name_or_path)
    try:
        raw = json.loads((folder / MANIFEST).read_text())
        raw = raw if isinstance(raw, dict) else {}
    except (OSError, UnicodeDecodeError, ValueError):
        raw = {}  # a broken folder is still removed, with whatever state names it
    # A malformed manifest's hashes name nothing trustworthy (a crafted one could name other folders):
    # only its folder and state go; its optimized graphs, if any, age out through the size bound.
    optimized = [] if manifest_problem(raw) else optimized_dirs_of(raw)
    targets = [folder] + optimized + _state_files_of(folder)
    freed = sum(_tree_size(t) for t in targets)
    if not dry_run:
        for t in targets:
            if t.is_dir():
                shutil.rmtree(t)
            else:
                t.unlink(missing_ok=True)
    return Removed(str(folder), freed, tuple(str(t) for t in targets))


def _state_is_live(path: Path) -> bool:
    """Whether a state file can still be read: its folder exists and has the manifest it was written
    for (state_path keys on the manifest's content, so a re-exported folder's old entries are dead)."""
    from .manifest import MANIFEST

    try:
        data = json.loads(path.read_text())
        folder = Path(data["folder"])
        raw = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return data.get("manifest") == manifest_digest(raw)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return False


def prune_state() -> list[Path]:
    """Remove state files whose model folder no longer exists (folders deleted by hand) or whose
    manifest changed since (re-exported folders); only files named as edge-asr names them."""
    root = cache_dir() / STATE_DIR
    removed = []
    for path in sorted(root.glob("*.json")) if root.is_dir() else []:
        if _STATE_NAME.fullmatch(path.name) and not _state_is_live(path):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# ------------------------------------------------------------------------------------------- the CLI


def human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def add_arguments(p) -> None:
    """`edge-asr models [list|remove NAME...|clean]`."""
    import argparse

    sub = p.add_subparsers(dest="models_command")
    ls = sub.add_parser("list", help="list cached model folders (the default)")
    # SUPPRESS: `models --json list` and `models list --json` both work (the subparser keeps the parent's value).
    ls.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object")
    rm = sub.add_parser("remove", help="delete cached models with their optimized graphs and verification state",
                        description="Delete cached model folders (a folder name such as tiny.en-int8, a bare name "
                                    "with int8 preferred, or a path inside the cache's models folder) together "
                                    "with their optimized graphs and cached verification state. Paths outside "
                                    "the cache are refused.")
    rm.add_argument("names", nargs="+", metavar="NAME", help="cached model name or folder")
    rm.add_argument("--dry-run", action="store_true", help="print what would be deleted, delete nothing")
    cl = sub.add_parser("clean", help="trim the optimized-graph cache to its bound and drop state of deleted or "
                                      "re-exported folders")
    cl.add_argument("--optimized", action="store_true", help="remove every optimized graph (rebuilt at the next load)")
    p.add_argument("--json", action="store_true", help="print one JSON object (with list)")


def run(args) -> int:
    """Exit 0; 2 when a name is not a cached model or is refused."""
    import sys

    command = args.models_command or "list"
    if command == "list":
        models = list_models()
        if args.json:
            print(json.dumps({"cache_dir": str(cache_dir()), "models": [m.to_dict() for m in models],
                              "usage_bytes": cache_usage()}, indent=2))
            return 0
        print(f"cache: {cache_dir()}")
        if not models:
            print("no cached models (edge-asr pull NAME builds one)")
        for m in models:
            quant = m.scheme or m.quantization
            fid = f", fidelity {'; '.join(m.fidelity)}" if m.fidelity else ""
            print(f"  {m.name:<22} {human_size(m.size_bytes):>9}  {quant:<15} {m.verification}{fid}; "
                  f"optimized graphs {human_size(m.optimized_bytes)}")
        usage = cache_usage()
        if usage:
            print("disk use: " + ", ".join(f"{k} {human_size(v)}" for k, v in usage.items()))
        return 0
    if command == "remove":
        status = 0
        for name in args.names:
            try:
                r = remove_model(name, dry_run=args.dry_run)
            except EdgeASRError as e:
                print(f"edge-asr: error: {e}", file=sys.stderr)
                status = 2
                continue
            except OSError as e:  # a file that cannot be deleted (permissions, busy): say which, no traceback
                print(f"edge-asr: error: cannot delete {getattr(e, 'filename', None) or name}: {e}", file=sys.stderr)
                status = 2
                continue
            verb = "would free" if args.dry_run else "removed"
            print(f"{verb} {human_size(r.freed_bytes)}: " + ", ".join(r.removed))
        return status
    # clean
    limit = 0 if args.optimized else optimized_limit_bytes()
    optimized = cache_dir() / OPTIMIZED_DIR
    before = _tree_size(optimized) if optimized.is_dir() else 0
    gone = trim_optimized(limit)
    after = _tree_size(optimized) if optimized.is_dir() else 0
    stale = prune_state()
    print(f"removed {len(gone)} optimized graph folder(s) ({human_size(before - after)}), "
          f"{len(stale)} stale state file(s)")
    return 0
