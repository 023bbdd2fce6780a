"""The model folder format: manifest.json, its validation, and file integrity checks.

A model folder holds encoder.onnx, decoder.onnx, tokenizer.json, manifest.json and validation.json.
The manifest carries everything the runtime needs (dimensions, token table, suppress lists,
alignment heads, quantization) and the sha256 and size of every other file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelError, ModelNotFoundError, OptionError
from .tokenizer import SpecialTokens

FORMAT_NAME = "edge-asr-model"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
_VERIFIED_STAMP = ".edge_asr_verified.json"


@dataclass(frozen=True)
class Dims:
    n_mels: int
    n_audio_ctx: int
    n_text_ctx: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    encoder_heads: int
    decoder_heads: int
    vocab_size: int


@dataclass(frozen=True)
class Manifest:
    folder: Path
    name: str
    quantization: str
    dims: Dims
    tokens: SpecialTokens
    multilingual: bool
    suppress_tokens: tuple[int, ...]
    begin_suppress_tokens: tuple[int, ...]
    alignment_heads: tuple[tuple[int, int], ...]
    files: dict[str, dict]
    graphs: dict[str, dict]
    raw: dict = field(repr=False, compare=False)

    def path(self, graph: str) -> Path:
        return self.folder / self.graphs[graph]["file"]


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(folder: Path) -> Manifest:
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelNotFoundError(f"model folder not found: {folder}")
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise ModelError(f"{folder} is not an edge-asr model folder: {MANIFEST} is missing "
                         "(create one with `edge-asr export` or `edge-asr pull`)")
    try:
        raw = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{mpath} is corrupt: {e}") from None
    if raw.get("format") != FORMAT_NAME:
        raise ModelError(f"{mpath} is not an edge-asr manifest (format={raw.get('format')!r})")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(
            f"{mpath} has model format version {version}, this edge-asr reads version {FORMAT_VERSION}: "
            "re-export the model with this version (`edge-asr export` or `edge-asr pull --force`)")
    try:
        return Manifest(
            folder=folder,
            name=raw["name"],
            quantization=raw["quantization"],
            dims=Dims(**raw["dims"]),
            tokens=SpecialTokens.from_dict(raw["tokens"]),
            multilingual=bool(raw["multilingual"]),
            suppress_tokens=tuple(raw["suppress_tokens"]),
            begin_suppress_tokens=tuple(raw["begin_suppress_tokens"]),
            alignment_heads=tuple(tuple(h) for h in raw.get("alignment_heads", [])),
            files=dict(raw["files"]),
            graphs=dict(raw["graphs"]),
            raw=raw,
        )
    except (KeyError, TypeError) as e:
        raise ModelError(f"{mpath} is incomplete or malformed ({type(e).__name__}: {e})") from None


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def verify_files(manifest: Manifest, mode: str = "auto") -> None:
    """Check every file the manifest lists.

    mode "full": sha256 of every file, every time. "auto": sha256 the first time, then only when a
    file's size or mtime changed since the last successful check (stamp kept in the folder when
    writable), so loading stays fast. "size": existence and size only.
    """
    if mode not in ("auto", "full", "size"):
        raise OptionError(f"verify must be 'auto', 'full' or 'size', not {mode!r}")
    folder = manifest.folder
    stamp_path = folder / _VERIFIED_STAMP
    stamp: dict = {}
    if mode == "auto" and stamp_path.is_file():
        try:
            stamp = json.loads(stamp_path.read_text())
        except (OSError, json.JSONDecodeError):
            stamp = {}
    new_stamp = {}
    for name, info in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise ModelError(f"model file missing: {path} (the folder is incomplete; re-export or re-pull it)")
        size = path.stat().st_size
        if size != info["size"]:
            raise ModelError(f"model file {path} has {size} bytes, the manifest says {info['size']}: "
                             "it is truncated or was replaced; re-export or re-pull the model")
        if mode == "size":
            continue
        key = _stat_key(path)
        if mode == "auto" and stamp.get(name) == [info["sha256"], *key]:
            new_stamp[name] = stamp[name]
            continue
        if sha256_file(path) != info["sha256"]:
            raise ModelError(f"model file {path} does not match its sha256 in the manifest: it is corrupt; "
                             "re-export or re-pull the model")
        new_stamp[name] = [info["sha256"], *key]
    if mode == "auto" and new_stamp != stamp and os.access(folder, os.W_OK):
        try:
            stamp_path.write_text(json.dumps(new_stamp))
        except OSError:
            pass  # a read-only folder just means hashing again next time
