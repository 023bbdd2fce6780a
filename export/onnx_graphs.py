"""torch.onnx export of the encoder and decoder graphs, and their quantization."""

from __future__ import annotations

import warnings
from pathlib import Path

from edge_asr.errors import OptionError

OPSET = 17


def export_graphs(model, out: Path, alignment_heads: list[list[int]] | None) -> dict[str, dict]:
    """Export fp32 encoder.onnx and decoder.onnx into ``out``; return the manifest's ``graphs`` table.

    ``alignment_heads`` ([layer, head] pairs) become the decoder's ``alignment_attn`` output; None
    exports without it (as folders made before word timestamps existed)."""
    import torch

    from .graphs import DecoderGraph, EncoderGraph

    cfg = model.config
    L, H = cfg.decoder_layers, cfg.decoder_attention_heads
    dh = cfg.d_model // H
    mel = torch.zeros(1, cfg.num_mel_bins, 2 * cfg.max_source_positions)
    enc = EncoderGraph(model).eval()
    dec = DecoderGraph(model, alignment_heads).eval()
    with torch.no_grad():
        cross = enc(mel)
    tokens = torch.zeros(1, 3, dtype=torch.long)
    logits_at = torch.tensor([2], dtype=torch.long)
    past = torch.zeros(1, H, 2, dh)
    cross_names = [f"cross_{kv}_{i}" for kv in "kv" for i in range(L)]
    self_names = [f"self_{kv}_{i}" for kv in "kv" for i in range(L)]
    new_names = [f"new_self_{kv}_{i}" for kv in "kv" for i in range(L)]
    graphs = {
        "encoder": {"file": "encoder.onnx", "inputs": ["mel"], "outputs": cross_names},
        # shared_cross: cross K/V hold one row per window even when tokens hold n rows per window (beams).
        "decoder": {"file": "decoder.onnx", "inputs": ["tokens", "logits_at", *self_names, *cross_names],
                    "outputs": ["logits", *new_names], "shared_cross": True},
    }
    cross_axes = {0: "windows", 2: "frames_out"}
    dec_axes = {"tokens": {0: "batch", 1: "new"}, "logits_at": {0: "positions"},
                "logits": {0: "batch", 1: "positions"}}
    dec_axes.update({n: {0: "batch", 2: "past"} for n in self_names})
    dec_axes.update({n: {0: "batch", 2: "total"} for n in new_names})
    dec_axes.update({n: cross_axes for n in cross_names})
    if alignment_heads:
        graphs["decoder"]["outputs"].append("alignment_attn")
        graphs["decoder"]["alignment_heads"] = [list(h) for h in alignment_heads]
        dec_axes["alignment_attn"] = {0: "batch", 2: "new", 3: "frames_out"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            enc, (mel,), str(out / "encoder.onnx"), dynamo=False, opset_version=OPSET,
            custom_opsets={"com.microsoft": 1},
            input_names=graphs["encoder"]["inputs"], output_names=graphs["encoder"]["outputs"],
            dynamic_axes={"mel": {0: "batch", 2: "frames"}, **{n: cross_axes for n in cross_names}})
        torch.onnx.export(
            dec, (tokens, logits_at, *([past] * (2 * L)), *cross), str(out / "decoder.onnx"), dynamo=False,
            opset_version=OPSET, custom_opsets={"com.microsoft": 1}, input_names=graphs["decoder"]["inputs"],
            output_names=graphs["decoder"]["outputs"], dynamic_axes=dec_axes)
    return graphs


def quantize_graph(src: Path, dst: Path, quantization: str, scheme: str | None = None) -> None:
    """int8: dynamic quantization of every MatMul weight (per output channel, activations quantized at
    run time) in the given int8 scheme (edge_asr.quantization.SCHEMES; default saturation-free 7-bit
    weights); fp16: weights and activations in half precision (for GPUs; slower than fp32 on most CPUs)."""
    if quantization == "int8":
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        from edge_asr.quantization import DEFAULT_INT8_SCHEME, SCHEMES

        spec = SCHEMES.get(scheme or DEFAULT_INT8_SCHEME)
        if spec is None:
            raise OptionError(f"unknown int8 scheme {scheme!r}; known: {', '.join(SCHEMES)}")
        # The quantizer logs a generic "consider pre-processing" advice on the root logger; it does not
        # apply to dynamic quantization of these graphs.
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.ERROR))
        try:
            # Gather too: the tied embedding is one initializer read by the logits MatMul and the token
            # Gather, so quantizing both stores it once, in int8 (tiny.en decoder 109 MB -> 29 MB).
            quantize_dynamic(str(src), str(dst), per_channel=True, op_types_to_quantize=["MatMul", "Gather"],
                             weight_type=QuantType.QUInt8 if spec.weight_type == "uint8" else QuantType.QInt8,
                             # reduce_range: signed weights in [-64, 64], so two u8 x s8 products always fit
                             # the int16 lanes of non-VNNI x86 kernels (edge_asr/quantization.py).
                             reduce_range=spec.weight_max_abs <= 64)
        finally:
            root.setLevel(level)
    elif quantization == "fp16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = onnx.load(str(src))
        # Keep graph inputs/outputs fp32 so the runtime feeds the same arrays whatever the precision.
        onnx.save(convert_float_to_float16(model, keep_io_types=True), str(dst))
    else:
        raise OptionError(f"unknown quantization {quantization!r}")


def int8_weight_ranges(path: Path) -> dict[str, tuple[str, int]]:
    """(dtype, max |quantized weight - zero point|) of every int8/uint8 weight initializer that a
    MatMulInteger or DequantizeLinear reads in an ONNX graph: the structural check that an int8 scheme
    cannot saturate (int8 weights must stay within [-64, 64]; uint8 weights run on u8 x u8 kernels,
    which widen to 16 bits before multiplying)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        # MatMulInteger(A, B, a_zero_point, b_zero_point); DequantizeLinear(x, scale, zero_point) of a weight
        w_index, zp_index = {"MatMulInteger": (1, 3), "DequantizeLinear": (0, 2)}.get(node.op_type, (None, None))
        if w_index is None or node.input[w_index] not in inits:
            continue
        w_init = inits[node.input[w_index]]
        dtype = {onnx.TensorProto.INT8: "int8", onnx.TensorProto.UINT8: "uint8"}.get(w_init.data_type)
        if dtype is None:
            continue
        w = numpy_helper.to_array(w_init).astype(np.int32)
        zp = np.zeros((), np.int32)
        if len(node.input) > zp_index and node.input[zp_index] in inits:
            zp = numpy_helper.to_array(inits[node.input[zp_index]]).astype(np.int32)
        if zp.ndim == 1:  # per channel: MatMulInteger's are B's columns; DequantizeLinear's lie along `axis`
            axis = 1 if node.op_type == "MatMulInteger" else next((a.i for a in node.attribute if a.name == "axis"), 1)
            zp = np.expand_dims(zp, [d for d in range(w.ndim) if d != axis % w.ndim])
        out[w_init.name] = (dtype, int(np.abs(w - zp).max()))
    return out
