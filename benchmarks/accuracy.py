"""Word error rate of edge-asr model folders next to transformers (PyTorch fp32) on the same clips.

    edge-asr bench accuracy --manifest ../shared/audio/manifest.jsonl \
        --model tiny.en=~/.cache/edge-asr/models/tiny.en-int8 --hf tiny.en=~/.cache/edge-asr/sources/tiny.en-transformers

Clips: English (`language == "en"`), `text_quality == "exact"`, at most --max-seconds long (transformers'
reference is its short-form generate, one 30 s window). WER uses the Whisper English normalizer.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

from edge_asr.audio import load_audio

from .report import save_json


@dataclass(frozen=True)
class ClipRef:
    id: str
    path: Path
    text: str
    duration: float


def english_clips(manifest: Path, max_seconds: float = 30.0) -> list[ClipRef]:
    rows = [json.loads(line) for line in Path(manifest).read_text().splitlines() if line.strip()]
    return [ClipRef(r["id"], Path(manifest).parent / r["audio"], r["text"], float(r["duration_s"]))
            for r in rows if r["language"] == "en" and r.get("text_quality") == "exact"
            and float(r["duration_s"]) <= max_seconds]


def transcribe_edge(folder: str | Path, clips: list[ClipRef], threads: int | None = None) -> list[str]:
    import edge_asr

    model = edge_asr.load_model(folder, device="cpu", threads=threads)
    return [model.transcribe(c.path, language="en").text for c in clips]


def transcribe_hf(checkpoint: str | Path, clips: list[ClipRef], threads: int = 1) -> list[str]:
    """transformers fp32 greedy, short-form. torch is pinned to ``threads`` (see the notes: 2 threads on
    a busy 2-core machine can be 10x slower)."""
    import torch
    import transformers
    from transformers import AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(threads)
    model = WhisperForConditionalGeneration.from_pretrained(checkpoint).eval()
    tok = AutoTokenizer.from_pretrained(checkpoint)
    fe = WhisperFeatureExtractor.from_pretrained(checkpoint)
    kwargs = {"language": "en", "task": "transcribe"} if model.generation_config.is_multilingual else {}
    out = []
    for c in clips:
        feats = fe(load_audio(c.path), sampling_rate=16000, return_tensors="pt").input_features
        with torch.no_grad():
            ids = model.generate(feats, num_beams=1, do_sample=False, **kwargs)
        out.append(tok.decode(ids[0], skip_special_tokens=True).strip())
    return out


def main(argv: list[str] | None = None) -> int:
    from edge_asr.scoring import word_error_rate

    p = argparse.ArgumentParser(prog="edge-asr bench accuracy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True, type=Path)
    p.add_argument("--model", action="append", default=[], metavar="LABEL=FOLDER", help="edge-asr model folder")
    p.add_argument("--hf", action="append", default=[], metavar="LABEL=CHECKPOINT", help="transformers checkpoint")
    p.add_argument("--max-seconds", type=float, default=30.0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="write per-clip hypotheses and WERs here")
    args = p.parse_args(argv)
    clips = english_clips(args.manifest, args.max_seconds)
    refs = [c.text for c in clips]
    report = {"clips": [c.id for c in clips], "audio_seconds": sum(c.duration for c in clips), "systems": {}}
    for kind, specs in (("edge-asr", args.model), ("transformers", args.hf)):
        for spec in specs:
            label, path = spec.split("=", 1)
            t0 = time.perf_counter()
            hyps = transcribe_edge(path, clips, args.threads) if kind == "edge-asr" else transcribe_hf(path, clips)
            elapsed = time.perf_counter() - t0
            wer = word_error_rate(refs, hyps)
            report["systems"][f"{kind}:{label}"] = {"wer": wer, "seconds": elapsed, "hypotheses": hyps}
            print(f"{kind:12s} {label:22s} WER {100 * wer:6.2f}%   ({elapsed:.1f} s for {len(clips)} clips)")
    if args.json:
        save_json(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
