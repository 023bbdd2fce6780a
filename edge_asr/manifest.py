"""The model folder format: manifest.json, its validation, and file integrity checks.

A model folder holds encoder.onnx, decoder.onnx, tokenizer.json, manifest.json and validation.json.
The manifest carries everything the runtime needs (dimensions, token table, suppress lists,
alignment heads, quantization) and the sha256 and size of every other file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelError, ModelNotFoundError, OptionError
from .features import MEL_PADDINGS
from .tokenizer import SpecialTokens

FORMAT_NAME = "edge-asr-model"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"


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
    # What a fine-tune decided (optional fields; folders made before them read with these defaults):
    # how the last short window is padded ("log-mel": openai's zeros in the log-mel domain; "audio": the
    # log-mel of zero samples, as transformers' feature extractor, which fine-tunes train with, pads),
    # and generation_config's language/task (None: detect / transcribe).
    mel_padding: str = "log-mel"
    language: str | None = None
    task: str | None = None

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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelError(f"{mpath} is corrupt: {e}; re-export or re-pull the model") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{mpath} is not an edge-asr manifest (a JSON {type(raw).__name__}, not an object)")
    if raw.get("format") != FORMAT_NAME:
        raise ModelError(f"{mpath} is not an edge-asr manifest (format={raw.get('format')!r})")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION
        hint = ("it was made by a newer edge-asr: upgrade edge-asr (pip install -U edge-asr), or re-export the "
                "model with this version" if newer else
                "re-export the model with this version (`edge-asr export` or `edge-asr pull --force`)")
        raise ModelError(f"{mpath} has model format version {version!r}, this edge-asr reads version "
                         f"{FORMAT_VERSION}: {hint}")
    problem = manifest_problem(raw)
    if problem:
        raise ModelError(f"{mpath} is malformed: {problem}; re-export or re-pull the model")
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
            mel_padding=raw.get("mel_padding", "log-mel"),
            language=raw.get("language"),
            task=raw.get("task"),
        )
    except (KeyError, TypeError) as e:
        raise ModelError(f"{mpath} is incomplete or malformed ({type(e).__name__}: {e})") from None


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _plain_name(name) -> bool:
    """A file name inside the folder: no directories, no absolute path, no '..'."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\x00" not in name and not os.path.isabs(name))


_SHA256 = re.compile(r"[0-9a-f]{64}")


def manifest_problem(raw: dict) -> str | None:
    """What is wrong with the manifest's fields (types and ranges the runtime relies on), or None.
    Checked before any file is opened, so a damaged or hand-edited manifest fails with its reason
    instead of inside onnxruntime."""
    dims = raw.get("dims")
    if not isinstance(dims, dict):
        return "dims is missing"
    for name in Dims.__dataclass_fields__:
        if not (_is_int(dims.get(name)) and dims[name] > 0):
            return f"dims.{name} must be a positive integer, not {dims.get(name)!r}"
    if set(dims) - set(Dims.__dataclass_fields__):
        return f"dims has unknown fields {sorted(set(dims) - set(Dims.__dataclass_fields__))}"
    if dims["d_model"] % dims["decoder_heads"]:
        return f"dims.d_model {dims['d_model']} is not a multiple of decoder_heads {dims['decoder_heads']}"
    vocab = dims["vocab_size"]
    tokens = raw.get("tokens")
    if not isinstance(tokens, dict):
        return "tokens is missing"
    for name in SpecialTokens.__dataclass_fields__:
        value = tokens.get(name)
        if name == "languages":
            if not isinstance(value, dict) or not all(isinstance(k, str) and _is_int(v) and 0 <= v < vocab
                                                      for k, v in value.items()):
                return "tokens.languages must map language codes to token ids below vocab_size"
        elif not ((value is None and name == "no_speech") or (_is_int(value) and 0 <= value < vocab)):
            return f"tokens.{name} must be a token id below vocab_size {vocab}, not {value!r}"
    for name in ("suppress_tokens", "begin_suppress_tokens"):
        if not isinstance(raw.get(name), list) or not all(_is_int(t) for t in raw[name]):
            return f"{name} must be a list of token ids"
    heads = raw.get("alignment_heads", [])
    if not isinstance(heads, list) or not all(
            isinstance(h, list) and len(h) == 2 and _is_int(h[0]) and _is_int(h[1])
            and 0 <= h[0] < dims["decoder_layers"] and 0 <= h[1] < dims["decoder_heads"] for h in heads):
        return "alignment_heads must be [layer, head] pairs within the decoder's layers and heads"
    if raw.get("mel_padding", "log-mel") not in MEL_PADDINGS:
        return f"mel_padding must be one of {list(MEL_PADDINGS)}, not {raw.get('mel_padding')!r}"
    language = raw.get("language")
    # isinstance first: a list or dict here is unhashable, and the membership test would raise TypeError.
    if language is not None and (not isinstance(language, str) or language not in tokens["languages"]):
        return f"language {language!r} is not one of the model's languages (tokens.languages)"
    if raw.get("task") not in (None, "transcribe", "translate"):
        return f"task must be 'transcribe' or 'translate', not {raw.get('task')!r}"
    if not isinstance(raw.get("quantization"), str) or not isinstance(raw.get("name"), str):
        return "name and quantization must be strings"
    if not isinstance(raw.get("quantization_scheme", ""), str):  # looked up by name (quantization.scheme_of)
        return f"quantization_scheme must be a scheme name, not {raw['quantization_scheme']!r}"
    files = raw.get("files")
    if not isinstance(files, dict) or not files:
        return "files (name -> sha256, size) is missing"
    for name, info in files.items():
        if not _plain_name(name):
            return f"files lists {name!r}, which is not a plain file name inside the folder"
        # The sha256 must be lowercase hex: its first 24 characters name a folder in the cache
        # (model_cache.optimized_graph_dir), so "../" in it would reach outside the cache.
        if not (isinstance(info, dict) and _is_int(info.get("size")) and info["size"] >= 0
                and isinstance(info.get("sha256"), str) and _SHA256.fullmatch(info["sha256"])):
            return f"files[{name!r}] must hold a size and a sha256 (64 lowercase hex digits)"
    graphs = raw.get("graphs")
    if not isinstance(graphs, dict):
        return "graphs is missing"
    for graph in ("encoder", "decoder"):
        g = graphs.get(graph)
        if not isinstance(g, dict) or not _plain_name(g.get("file")):
            return f"graphs.{graph}.file must name a file in the folder"
        if g["file"] not in files:
            return f"graphs.{graph}.file {g['file']!r} is not listed in files (it could not be verified)"
        for key in ("inputs", "outputs"):
            if not isinstance(g.get(key), list) or not all(isinstance(x, str) for x in g[key]):
                return f"graphs.{graph}.{key} must be a list of names"
    if "tokenizer.json" not in files:
        return "files does not list tokenizer.json (it could not be verified)"
    return None


def check_graph_signature(manifest: Manifest, graph: str, inputs: dict[str, list], outputs: dict[str, list]) -> None:
    """Raise ModelError when a loaded graph's inputs/outputs ({name: shape}, dimensions int or symbolic)
    disagree with the manifest: names the runtime binds, and the static sizes the manifest's dims fix
    (mel bins, heads, head size, vocabulary). A manifest from another model, or graphs swapped in from
    one, then fails at load with the reason, not in onnxruntime at the first decode."""
    d = manifest.dims
    path = manifest.path(graph)
    layers = range(d.decoder_layers)
    head = d.d_model // d.decoder_heads
    cross = {f"cross_{kv}_{i}": [None, d.decoder_heads, None, head] for kv in "kv" for i in layers}
    if graph == "encoder":
        want_in, want_out = {"mel": [None, d.n_mels, None]}, cross
    else:
        self_in = {f"self_{kv}_{i}": [None, d.decoder_heads, None, head] for kv in "kv" for i in layers}
        want_in = {"tokens": [None, None], "logits_at": [None], **self_in, **cross}
        want_out = {"logits": [None, None, d.vocab_size]}
        want_out.update({f"new_self_{kv}_{i}": [None, None, None, None] for kv in "kv" for i in layers})
        if "alignment_attn" in manifest.graphs[graph]["outputs"]:
            want_out["alignment_attn"] = [None, None, None, None]
    for kind, want, have in (("input", want_in, inputs), ("output", want_out, outputs)):
        for name, shape in want.items():
            if name not in have:
                raise ModelError(f"{path} has no {kind} {name!r} that manifest.json's dims require ({d}); the "
                                 "manifest and the graphs come from different models: re-export or re-pull it")
            got = have[name]
            if len(got) != len(shape):
                raise ModelError(f"{path}: {kind} {name!r} has rank {len(got)}, expected {len(shape)}; the folder "
                                 "is not an edge-asr format 2 model: re-export or re-pull it")
            for axis, (g, w) in enumerate(zip(got, shape)):
                if w is not None and isinstance(g, int) and g != w:
                    raise ModelError(
                        f"{path}: {kind} {name!r} has size {g} on axis {axis} but manifest.json implies {w} "
                        f"(dims {d}); the manifest and the graphs come from different models: re-export or "
                        "re-pull the model")


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def stamp_matches(folder: Path, raw: dict, stamp: dict) -> bool:
    """Whether a hash-check stamp still covers every file the manifest ``raw`` lists: each one's sha256
    was checked while it had the size and mtime it has now (what "auto" trusts without hashing)."""
    try:
        return all(stamp.get(name) == [info["sha256"], *_stat_key(Path(folder) / name)]
                   for name, info in raw["files"].items())
    except (OSError, KeyError, TypeError, AttributeError):
        return False


def verify_files(manifest: Manifest, mode: str = "auto") -> None:
    """Check every file the manifest lists.

    mode "full": sha256 of every file, every time. "auto": sha256 the first time, then only when a
    file's size or mtime changed since the last successful check, so loading stays fast. "size":
    existence and size only. The "auto" stamp lives in the cache directory
    (edge_asr.model_cache: keyed by the folder's resolved path and its manifest), never in the folder,
    so read-only folders (signed app bundles) work and are cached too.

    What each mode catches (README, "Checking a model folder"): every mode catches missing, truncated or
    grown files (the size is always checked); "full" also every changed byte; "auto" every changed byte
    the first time and whenever a file's size or mtime moved, but not a same-size change that kept the
    mtime after a successful check (bit rot, a copy with preserved times); "size" no same-size change:
    those fail at load only when the file no longer parses (a ModelError), else they give wrong text.
    The manifest's fields, and the graphs and tokenizer against the manifest, are checked in every mode.
    """
    from .model_cache import read_state, write_state

    if mode not in ("auto", "full", "size"):
        raise OptionError(f"verify must be 'auto', 'full' or 'size', not {mode!r}")
    folder = manifest.folder
    # A damaged or foreign stamp reads as {}: it only means hashing again.
    stamp = read_state(folder, manifest.raw, "verified") if mode == "auto" else {}
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
        try:
            digest = sha256_file(path)
        except OSError as e:
            raise ModelError(f"model file {path} cannot be read ({e}); check its permissions or re-pull the model") from None
        if digest != info["sha256"]:
            raise ModelError(f"model file {path} does not match its sha256 in the manifest: it is corrupt; "
                             "re-export or re-pull the model")
        new_stamp[name] = [info["sha256"], *key]
    # "full" refreshes the stamp too: its hashes are as good as the first "auto" ones.
    if mode != "size" and new_stamp != stamp:
        write_state(folder, manifest.raw, "verified", new_stamp)  # unwritable cache: hash again next time
