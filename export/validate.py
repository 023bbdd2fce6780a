"""Prove an exported folder faithful: PyTorch (transformers) vs the edge-asr runtime on real clips.

Per clip (first 30 s): max |difference| of the cross-attention K/V the encoder emits, of the decoder
logits teacher-forced on the same tokens, and the greedy token sequences of transformers' generate()
and of the edge-asr runtime. fp32 must be token-identical within tolerance; quantized folders report
the word error rate each side reaches (vs the reference text when given, and vs each other), the
teacher-forced drift (KL, top-1 agreement) the exporter's drift gate bounds (drift.py), and the recall
of domain terms when a term list is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_asr.errors import EdgeASRError
from edge_asr.scoring import word_error_rate  # noqa: F401  (kept importable from here)

from .terms import term_recall

# fp32 tolerances: ONNX Runtime and PyTorch kernels differ in summation order only.
FP32_ENCODER_TOL = 1e-2
FP32_LOGITS_TOL = 5e-2
VALIDATION_MAX_TOKENS = 96


class ExportValidationError(EdgeASRError, RuntimeError):
    """The exported graphs do not reproduce the PyTorch model."""


@dataclass
class Clip:
    name: str
    audio: np.ndarray  # 16 kHz mono float32
    reference: str | None = None


def same_greedy_tokens(ours: list[int], theirs: list[int], limit: int) -> bool:
    """Equal sequences; or, where both ran into the token limit (transformers counts it one token
    differently when timestamps are on), equal over their common length."""
    if ours == theirs:
        return True
    n = min(len(ours), len(theirs))
    return n >= limit - 1 and ours[:n] == theirs[:n]


def _hf_generate(model, tokenizer, mel, language: str | None, task: str, max_new_tokens: int) -> list[int]:
    import torch

    # return_dict_in_generate: the plain tensor output of some transformers versions repeats the
    # sequence when generation stops at the token limit.
    kwargs = {"max_new_tokens": max_new_tokens, "return_timestamps": False, "num_beams": 1, "do_sample": False,
              "return_dict_in_generate": True,
              "use_cache": True}  # a Trainer checkpoint saves use_cache=False: decoding would recompute every step
    if model.generation_config.is_multilingual:
        kwargs.update(language=language, task=task)
    with torch.no_grad():
        out = model.generate(torch.from_numpy(mel), **kwargs)
    tokens = [int(t) for t in out["sequences"][0].tolist()]
    prefix = tokenizer.sot_sequence(language, task, timestamps=False)
    if tokens[:len(prefix)] == prefix:  # transformers versions differ in returning the forced prefix
        tokens = tokens[len(prefix):]
    return [t for t in tokens if t != tokenizer.eot]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _scores(rows: list[dict], key: str, terms: Sequence[str]) -> dict:
    """WER against the references (when the clips have them) and term recall (when terms are given)
    of the texts under ``key`` in every row."""
    out: dict = {}
    with_ref = [r for r in rows if r["reference"]]
    if with_ref:
        out["wer"] = word_error_rate([r["reference"] for r in with_ref], [r[key] for r in with_ref])
    if terms and with_ref:
        out["term_recall"] = term_recall([r["reference"] for r in with_ref], [r[key] for r in with_ref], terms)
    return out


def validate_folder(hf_model, folder: Path, clips: list[Clip], quantization: str, *, terms: Sequence[str] = (),
                    compare: dict[str, Path] | None = None) -> dict:
    """The validation report of ``folder`` against ``hf_model`` on ``clips`` (first 30 s each, greedy).

    ``terms``: domain terms whose recall is reported (clips need reference texts). ``compare``: other
    model folders of the same checkpoint (e.g. {"fp32": ...} beside an int8 export) decoded on the same
    clips, so PyTorch, fp32 and int8 are reported side by side (``side_by_side``). Quantized folders also
    get the drift figures the drift gate bounds (``mean_kl``, ``top1_agreement``: teacher-forced on
    PyTorch's greedy tokens)."""
    import torch
    import transformers

    import edge_asr

    transformers.logging.set_verbosity_error()  # generate()'s deprecation chatter is not for our users
    from edge_asr.decoding import DecodingOptions, DecodingTask
    from edge_asr.features import window_features

    model = edge_asr.load_model(folder, device="cpu", verify="size")
    # Compared folders are temporary: no optimized-graph copies of them left in the user's cache.
    others = {name: edge_asr.load_model(path, device="cpu", verify="size", optimized_graphs=False)
              for name, path in (compare or {}).items()}
    tok, backend = model.tokenizer, model.backend
    n_mels = model.manifest.dims.n_mels
    # The fine-tune's task (manifest, from its generation_config) as the runtime applies it by default:
    # a translate fine-tune validated as transcribe would compare a path it never takes.
    task = (model.manifest.task if tok.multilingual else None) or "transcribe"
    options = DecodingOptions(language=model.manifest.language, task=task, without_timestamps=True,
                              sample_len=VALIDATION_MAX_TOKENS)
    rows, kls, top1 = [], [], []
    for clip in clips:
        # The clip's first 30 s padded as the folder says (manifest mel_padding): the path the runtime takes.
        mel = window_features(clip.audio, n_mels, model.manifest.mel_padding)[None]
        state = backend.encode(mel)
        ours = DecodingTask(backend, tok, options).run(state)[0]
        theirs = _hf_generate(hf_model, tok, mel, ours.language, task, VALIDATION_MAX_TOKENS)
        with torch.no_grad():
            enc = hf_model.model.encoder(torch.from_numpy(mel)).last_hidden_state
            ref_k = torch.stack([layer.encoder_attn.k_proj(enc) for layer in hf_model.model.decoder.layers])
            ref_v = torch.stack([layer.encoder_attn.v_proj(enc) for layer in hf_model.model.decoder.layers])
            L, B, S, D = ref_k.shape
            H = hf_model.config.decoder_attention_heads
            shape = (L, B, S, H, D // H)
            ref_k = ref_k.view(shape).transpose(2, 3).numpy()
            ref_v = ref_v.view(shape).transpose(2, 3).numpy()
            ours_k = np.stack([v.numpy() for v in state.cross_k])
            ours_v = np.stack([v.numpy() for v in state.cross_v])
            enc_diff = max(float(np.abs(ours_k - ref_k).max()), float(np.abs(ours_v - ref_v).max()))
            # Teacher-forced on PyTorch's greedy tokens: the drift along the path PyTorch decodes.
            prefix = tok.sot_sequence(ours.language, task, timestamps=False)
            forced = np.array([prefix + theirs], dtype=np.int64)
            # the encoder output computed above (one PyTorch encoder pass less per clip)
            ref_logits = hf_model(encoder_outputs=(enc,), decoder_input_ids=torch.from_numpy(forced)).logits.numpy()
        onnx_logits, _ = backend.decode(forced, backend.empty_state(state.cross_k, state.cross_v, 1),
                                        np.arange(forced.shape[1]))
        # Positions that predict the text tokens and the end (the prefix's own positions are not text).
        p_ref = _log_softmax(ref_logits[0, len(prefix) - 1:])
        p_ours = _log_softmax(onnx_logits[0, len(prefix) - 1:])
        kl = (np.exp(p_ref) * (p_ref - p_ours)).sum(-1)
        kls += kl.tolist()
        top1 += (p_ref.argmax(-1) == p_ours.argmax(-1)).tolist()
        row = {
            "clip": clip.name,
            "language": ours.language,
            "encoder_max_abs_diff": enc_diff,
            "logits_max_abs_diff": float(np.abs(onnx_logits - ref_logits).max()),
            "mean_kl": float(kl.mean()),
            "tokens_identical": same_greedy_tokens(ours.tokens, theirs, VALIDATION_MAX_TOKENS),
            "pytorch_text": tok.decode(theirs).strip(),
            "onnx_text": ours.text,
            "reference": clip.reference,
        }
        for name, other in others.items():
            other_options = DecodingOptions(language=ours.language, task=task, without_timestamps=True,
                                            sample_len=VALIDATION_MAX_TOKENS)
            row[f"{name}_text"] = DecodingTask(other.backend, other.tokenizer, other_options).run(
                other.backend.encode(mel))[0].text
        rows.append(row)
    report = {
        "quantization": quantization,
        "clips": rows,
        "encoder_max_abs_diff": max(r["encoder_max_abs_diff"] for r in rows),
        "logits_max_abs_diff": max(r["logits_max_abs_diff"] for r in rows),
        "mean_kl": float(np.mean(kls)),
        "top1_agreement": float(np.mean(top1)),
        "tokens_identical": all(r["tokens_identical"] for r in rows),
        "wer_onnx_vs_pytorch": word_error_rate([r["pytorch_text"] for r in rows], [r["onnx_text"] for r in rows]),
    }
    side = {"pytorch": _scores(rows, "pytorch_text", terms)}
    side.update({name: _scores(rows, f"{name}_text", terms) for name in others})
    side[quantization] = _scores(rows, "onnx_text", terms)
    if any(side.values()):
        report["side_by_side"] = side
    if "wer" in side["pytorch"]:
        report["wer_pytorch_vs_reference"] = side["pytorch"]["wer"]
        report["wer_onnx_vs_reference"] = side[quantization]["wer"]
        report["wer_difference"] = report["wer_onnx_vs_reference"] - report["wer_pytorch_vs_reference"]
    if "term_recall" in side["pytorch"]:
        report["term_recall_pytorch"] = side["pytorch"]["term_recall"]["recall"]
        report["term_recall"] = side[quantization]["term_recall"]["recall"]
    if quantization == "fp32":
        report["tolerances"] = {"encoder_max_abs_diff": FP32_ENCODER_TOL, "logits_max_abs_diff": FP32_LOGITS_TOL,
                                "tokens_identical": True}
        report["passed"] = (report["encoder_max_abs_diff"] <= FP32_ENCODER_TOL
                            and report["logits_max_abs_diff"] <= FP32_LOGITS_TOL and report["tokens_identical"])
    else:
        report["passed"] = True  # quantized folders: the exporter's drift gate (drift.py) decides
    return report


def side_by_side_table(report: dict) -> str:
    """The report's PyTorch / fp32 / quantized scores as a small text table (empty without them)."""
    side = report.get("side_by_side")
    if not side:
        return ""
    lines = [f"{'':10} {'WER':>8} {'term recall':>14}"]
    for name, s in side.items():
        wer = f"{100 * s['wer']:.1f} %" if "wer" in s else "-"
        tr = s.get("term_recall")
        rec = f"{tr['found']}/{tr['total']}" if tr else "-"
        lines.append(f"{name:10} {wer:>8} {rec:>14}")
    return "\n".join(lines)
