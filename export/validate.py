"""Prove an exported folder faithful: PyTorch (transformers) vs the edge-asr runtime on real clips.

Per clip (first 30 s): max |difference| of the cross-attention K/V the encoder emits, of the decoder
logits teacher-forced on the same tokens, and the greedy token sequences of transformers' generate()
and of the edge-asr runtime. fp32 must be token-identical within tolerance; quantized folders report
the word error rate each side reaches (vs the reference text when given, and vs each other).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_asr.errors import EdgeASRError
from edge_asr.scoring import word_error_rate  # noqa: F401  (kept importable from here)

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


def _hf_generate(model, tokenizer, mel, language: str | None, max_new_tokens: int) -> list[int]:
    import torch

    # return_dict_in_generate: the plain tensor output of some transformers versions repeats the
    # sequence when generation stops at the token limit.
    kwargs = {"max_new_tokens": max_new_tokens, "return_timestamps": False, "num_beams": 1, "do_sample": False,
              "return_dict_in_generate": True}
    if model.generation_config.is_multilingual:
        kwargs.update(language=language, task="transcribe")
    with torch.no_grad():
        out = model.generate(torch.from_numpy(mel), **kwargs)
    tokens = [int(t) for t in out["sequences"][0].tolist()]
    prefix = tokenizer.sot_sequence(language, "transcribe", timestamps=False)
    if tokens[:len(prefix)] == prefix:  # transformers versions differ in returning the forced prefix
        tokens = tokens[len(prefix):]
    return [t for t in tokens if t != tokenizer.eot]


def validate_folder(hf_model, folder: Path, clips: list[Clip], quantization: str) -> dict:
    import torch
    import transformers

    import edge_asr

    transformers.logging.set_verbosity_error()  # generate()'s deprecation chatter is not for our users
    from edge_asr.decoding import DecodingOptions, DecodingTask
    from edge_asr.constants import N_SAMPLES
    from edge_asr.features import log_mel_spectrogram, pad_or_trim

    model = edge_asr.load_model(folder, device="cpu", verify="size")
    tok, backend = model.tokenizer, model.backend
    n_mels = model.manifest.dims.n_mels
    rows = []
    for clip in clips:
        mel = pad_or_trim(log_mel_spectrogram(clip.audio[:N_SAMPLES], n_mels, padding=N_SAMPLES))[None]
        state = backend.encode(mel)
        task = DecodingTask(backend, tok, DecodingOptions(without_timestamps=True,
                                                          sample_len=VALIDATION_MAX_TOKENS))
        ours = task.run(state)[0]
        theirs = _hf_generate(hf_model, tok, mel, ours.language, VALIDATION_MAX_TOKENS)
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
            prefix = tok.sot_sequence(ours.language, "transcribe", timestamps=False)
            forced = np.array([prefix + ours.tokens], dtype=np.int64)
            ref_logits = hf_model(input_features=torch.from_numpy(mel),
                                  decoder_input_ids=torch.from_numpy(forced)).logits.numpy()
        onnx_logits, _ = backend.decode(forced, backend.empty_state(state.cross_k, state.cross_v, 1),
                                        np.arange(forced.shape[1]))
        rows.append({
            "clip": clip.name,
            "language": ours.language,
            "encoder_max_abs_diff": enc_diff,
            "logits_max_abs_diff": float(np.abs(onnx_logits - ref_logits).max()),
            "tokens_identical": same_greedy_tokens(ours.tokens, theirs, VALIDATION_MAX_TOKENS),
            "pytorch_text": tok.decode(theirs).strip(),
            "onnx_text": ours.text,
            "reference": clip.reference,
        })
    report = {
        "quantization": quantization,
        "clips": rows,
        "encoder_max_abs_diff": max(r["encoder_max_abs_diff"] for r in rows),
        "logits_max_abs_diff": max(r["logits_max_abs_diff"] for r in rows),
        "tokens_identical": all(r["tokens_identical"] for r in rows),
        "wer_onnx_vs_pytorch": word_error_rate([r["pytorch_text"] for r in rows], [r["onnx_text"] for r in rows]),
    }
    with_ref = [r for r in rows if r["reference"]]
    if with_ref:
        report["wer_pytorch_vs_reference"] = word_error_rate([r["reference"] for r in with_ref],
                                                             [r["pytorch_text"] for r in with_ref])
        report["wer_onnx_vs_reference"] = word_error_rate([r["reference"] for r in with_ref],
                                                          [r["onnx_text"] for r in with_ref])
        report["wer_difference"] = report["wer_onnx_vs_reference"] - report["wer_pytorch_vs_reference"]
    if quantization == "fp32":
        report["tolerances"] = {"encoder_max_abs_diff": FP32_ENCODER_TOL, "logits_max_abs_diff": FP32_LOGITS_TOL,
                                "tokens_identical": True}
        report["passed"] = (report["encoder_max_abs_diff"] <= FP32_ENCODER_TOL
                            and report["logits_max_abs_diff"] <= FP32_LOGITS_TOL and report["tokens_identical"])
    else:
        report["passed"] = True  # quantized graphs are judged by the WER figures, which the report states
    return report
