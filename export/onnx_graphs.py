"""torch.onnx export of the encoder and decoder graphs, and their quantization."""

from __future__ import annotations

import warnings
from pathlib import Path

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
        cross_k, cross_v = enc(mel)
    tokens = torch.zeros(1, 3, dtype=torch.long)
    past = torch.zeros(L, 1, H, 2, dh)
    cache_axes = {1: "batch", 3: "past"}
    graphs = {
        "encoder": {"file": "encoder.onnx", "inputs": ["mel"], "outputs": ["cross_k", "cross_v"]},
        "decoder": {"file": "decoder.onnx", "inputs": ["tokens", "self_k", "self_v", "cross_k", "cross_v"],
                    "outputs": ["logits", "new_self_k", "new_self_v"]},
    }
    dec_axes = {"tokens": {0: "batch", 1: "new"}, "self_k": cache_axes, "self_v": cache_axes,
                "cross_k": {1: "batch", 3: "frames_out"}, "cross_v": {1: "batch", 3: "frames_out"},
                "logits": {0: "batch", 1: "new"}, "new_self_k": {1: "batch", 3: "total"},
                "new_self_v": {1: "batch", 3: "total"}}
    if alignment_heads:
        graphs["decoder"]["outputs"].append("alignment_attn")
        graphs["decoder"]["alignment_heads"] = [list(h) for h in alignment_heads]
        dec_axes["alignment_attn"] = {0: "batch", 2: "new", 3: "frames_out"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            enc, (mel,), str(out / "encoder.onnx"), dynamo=False, opset_version=OPSET,
            input_names=graphs["encoder"]["inputs"], output_names=graphs["encoder"]["outputs"],
            dynamic_axes={"mel": {0: "batch", 2: "frames"}, "cross_k": {1: "batch", 3: "frames_out"},
                          "cross_v": {1: "batch", 3: "frames_out"}})
        torch.onnx.export(
            dec, (tokens, past, past, cross_k, cross_v), str(out / "decoder.onnx"), dynamo=False,
            opset_version=OPSET, input_names=graphs["decoder"]["inputs"],
            output_names=graphs["decoder"]["outputs"], dynamic_axes=dec_axes)
    return graphs


def quantize_graph(src: Path, dst: Path, quantization: str) -> None:
    """int8: dynamic quantization of every MatMul weight (per-channel int8, activations quantized at
    run time); fp16: weights and activations in half precision (for GPUs; slower than fp32 on most CPUs)."""
    if quantization == "int8":
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        # The quantizer logs a generic "consider pre-processing" advice on the root logger; it does not
        # apply to dynamic quantization of these graphs.
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.ERROR))
        try:
            # Gather too: the tied embedding is one initializer read by the logits MatMul and the token
            # Gather, so quantizing both stores it once, in int8 (tiny.en decoder 109 MB -> 29 MB).
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul", "Gather"])
        finally:
            root.setLevel(level)
    elif quantization == "fp16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = onnx.load(str(src))
        # Keep graph inputs/outputs fp32 so the runtime feeds the same arrays whatever the precision.
        onnx.save(convert_float_to_float16(model, keep_io_types=True), str(dst))
    else:
        raise ValueError(f"unknown quantization {quantization!r}")
