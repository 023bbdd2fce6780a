"""Transcription quality next to transformers: WER (greedy/beam, fp32/int8) and timestamp agreement.

    edge-asr bench quality --manifest ../shared/audio/manifest.jsonl --cache ~/.cache/edge-asr \
        --out benchmarks/results/quality.json

For each model (tiny.en, base) it needs the pulled folders `<cache>/models/<name>-{fp32,int8}` and the
transformers checkpoint `<cache>/sources/<name>-transformers` (both made by `edge-asr pull`).
- WER (Whisper English normalizer) on the manifest's English clips with exact transcripts, short and long.
  transformers runs greedy fp32: short-form generate for clips <= 30 s, long-form generate with
  timestamps for longer ones. edge-asr runs its default transcribe (timestamps, fallback) with
  greedy or beam 5.
- Timestamps on clips <= 30 s: word start/end of edge-asr (word_timestamps=True) vs transformers'
  pipeline(return_timestamps="word"); segment start/end vs the pipeline's return_timestamps=True
  chunks. Words are paired by aligning the normalised word sequences (difflib); segments by equal
  normalised text. Reported as the median absolute difference in seconds.
"""

from __future__ import annotations

import argparse
import difflib
import platform
import re
import time
from pathlib import Path

import numpy as np

from edge_asr.audio import load_audio

from .accuracy import ClipRef, english_clips
from .report import save_json


def _norm_word(w: str) -> str:
    return re.sub(r"[^\w']", "", w.lower())


def _hf(checkpoint: Path, threads: int):
    import torch
    import transformers
    from transformers import AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(threads)
    model = WhisperForConditionalGeneration.from_pretrained(checkpoint).eval()
    return model, AutoTokenizer.from_pretrained(checkpoint), WhisperFeatureExtractor.from_pretrained(checkpoint)


def hf_transcribe(model, tok, fe, clip: ClipRef) -> str:
    import torch

    audio = load_audio(clip.path)
    kwargs = {"language": "en", "task": "transcribe"} if model.generation_config.is_multilingual else {}
    if len(audio) <= 16000 * 30:
        feats = fe(audio, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            ids = model.generate(feats.input_features, **kwargs)
        return tok.decode(ids[0], skip_special_tokens=True).strip()
    feats = fe(audio, sampling_rate=16000, return_tensors="pt", truncation=False, padding="longest",
               return_attention_mask=True)
    with torch.no_grad():
        ids = model.generate(feats.input_features, attention_mask=feats.attention_mask, return_timestamps=True,
                             **kwargs)
    return tok.decode(ids[0], skip_special_tokens=True).strip()


def hf_timestamps(model, tok, fe, clip: ClipRef) -> tuple[list[dict], list[dict]]:
    from transformers import pipeline

    pipe = pipeline("automatic-speech-recognition", model=model, tokenizer=tok, feature_extractor=fe, device="cpu")
    audio = load_audio(clip.path)
    kwargs = {"generate_kwargs": {"language": "en"}} if model.generation_config.is_multilingual else {}
    words = pipe(audio.copy(), return_timestamps="word", **kwargs)["chunks"]
    segments = pipe(audio.copy(), return_timestamps=True, **kwargs)["chunks"]
    conv = lambda chunks: [{"text": c["text"], "start": c["timestamp"][0], "end": c["timestamp"][1]} for c in chunks]
    return conv(segments), conv(words)


def timestamp_differences(ours: list[dict], theirs: list[dict], key: str) -> list[float]:
    """|Δ| of start and end for items paired by normalised text (words: sequence alignment)."""
    a = [_norm_word(x[key]) if key == "word" else " ".join(_norm_word(w) for w in x[key].split()) for x in ours]
    b = [_norm_word(x["text"]) if key == "word" else " ".join(_norm_word(w) for w in x["text"].split()) for x in theirs]
    diffs = []
    for block in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            x, y = ours[block.a + k], theirs[block.b + k]
            for field in ("start", "end"):
                if y[field] is not None:
                    diffs.append(abs(x[field] - y[field]))
    return diffs


def main(argv: list[str] | None = None) -> int:
    import edge_asr
    from edge_asr.scoring import word_error_rate

    p = argparse.ArgumentParser(prog="edge-asr bench quality", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "edge-asr")
    p.add_argument("--models", default="tiny.en,base")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    clips = english_clips(args.manifest, max_seconds=float("inf"))
    short = [c for c in clips if c.duration <= 30]
    refs = [c.text for c in clips]
    report: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads},
                    "clips": [c.id for c in clips], "audio_seconds": round(sum(c.duration for c in clips), 2),
                    "models": {}}
    for name in args.models.split(","):
        entry: dict = {"wer": {}, "seconds": {}}
        hf = _hf(args.cache / "sources" / f"{name}-transformers", threads=1)
        t0 = time.perf_counter()
        hf_hyps = [hf_transcribe(*hf, c) for c in clips]
        entry["seconds"]["transformers-fp32-greedy"] = round(time.perf_counter() - t0, 2)
        entry["wer"]["transformers-fp32-greedy"] = word_error_rate(refs, hf_hyps)
        entry["hypotheses"] = {"transformers-fp32-greedy": hf_hyps}
        for quant in ("fp32", "int8"):
            model = edge_asr.load_model(args.cache / "models" / f"{name}-{quant}", device="cpu", threads=args.threads)
            for beam in (None, 5):
                label = f"edge-asr-{quant}-{'greedy' if beam is None else 'beam5'}"
                t0 = time.perf_counter()
                hyps = [model.transcribe(c.path, language="en", beam_size=beam).text for c in clips]
                entry["seconds"][label] = round(time.perf_counter() - t0, 2)
                entry["wer"][label] = word_error_rate(refs, hyps)
                entry["hypotheses"][label] = hyps
            if quant == "fp32":  # timestamps vs transformers on the short clips
                seg_d, word_d = [], []
                for c in short:
                    hf_segs, hf_words = hf_timestamps(*hf, c)
                    # Segment times from timestamp tokens alone (word timing moves segment bounds to words).
                    plain = model.transcribe(c.path, language="en")
                    seg_d += timestamp_differences([{"text": s.text, "start": s.start, "end": s.end}
                                                    for s in plain.segments], hf_segs, "text")
                    ours = model.transcribe(c.path, language="en", word_timestamps=True)
                    word_d += timestamp_differences([{"word": w.word, "start": w.start, "end": w.end}
                                                     for s in ours.segments for w in s.words], hf_words, "word")
                entry["timestamps_vs_transformers"] = {
                    "segment_median_abs_diff_s": float(np.median(seg_d)) if seg_d else None, "segment_pairs": len(seg_d) // 2,
                    "word_median_abs_diff_s": float(np.median(word_d)) if word_d else None, "word_pairs": len(word_d) // 2,
                    "word_p90_abs_diff_s": float(np.percentile(word_d, 90)) if word_d else None}
        report["models"][name] = entry
        print(f"== {name}")
        for label, w in entry["wer"].items():
            print(f"  {label:28s} WER {100 * w:6.2f}%  ({entry['seconds'][label]:.1f} s)")
        print(f"  timestamps vs transformers: {entry.get('timestamps_vs_transformers')}")
    if args.out:
        save_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
