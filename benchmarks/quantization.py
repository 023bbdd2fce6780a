"""int8 schemes side by side on the same fp32 graphs: WER (short clips and a long file) and speed.

    edge-asr bench quantization --fp32 tiny.en=~/.cache/edge-asr/models/tiny.en-fp32 \
        --fp32 base=~/.cache/edge-asr/models/base-fp32 --schemes int8-w8-legacy,int8-w7,int8-u8u8 \
        --beams 1,5 --out benchmarks/results/quantization-zen3.json

Each fp32 folder is requantized into every scheme (edge_asr_export.exporter.requantize_folder, in a
work folder), then fp32 and each scheme transcribe, greedy and with beam search:
- the English clips with exact transcripts (each on its own, language "en"): corpus WER;
- a long file of at least ``--long-min-seconds`` (default 180 s) made of all the English clips (the
  longer ones too), in manifest order then rotated by half, with 0.5 s pauses: long-form errors compound
  across 30 s windows, which short clips hide.
Speed: encoder seconds per 30 s window and decoder ms per token (64 forced steps), all variants measured
in alternating rounds in one process (compare ratios within one result file). The accuracy rows also
give each transcription's wall time. The CPU's model and flags are recorded.
Needs the export extra (onnx for quantization) and the bench extra (jiwer, whisper-normalizer).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .corpus import GAP_S, SR, default_manifest, error_rate, load_clip_audio, read_manifest
from .machine import machine_info
from .report import save_json


def long_english(clips, min_seconds: float) -> tuple[np.ndarray, str, list[str]]:
    """All the English clips in manifest order, then again rotated by half the list (so no clip follows
    its own repeat: Whisper conditioned on the words it is about to hear misbehaves, which would measure
    the file, not the model), ..., whole clips until ``min_seconds`` is reached."""
    order, parts, texts = [], [], []
    gap = np.zeros(int(GAP_S * SR), np.float32)
    seconds, rnd = 0.0, 0
    while seconds < min_seconds:
        shift = (rnd * (len(clips) // 2)) % len(clips)
        for c in clips[shift:] + clips[:shift]:
            if seconds >= min_seconds:
                break
            audio = load_clip_audio(c)
            parts += [audio, gap]
            texts.append(c.text)
            order.append(c.id)
            seconds += (len(audio) + len(gap)) / SR
        rnd += 1
    return np.concatenate(parts[:-1]).astype(np.float32), " ".join(texts), order


def evaluate(folder: Path, clips, long_audio: np.ndarray, long_text: str, beam: int, threads: int | None) -> dict:
    import edge_asr

    model = edge_asr.load_model(folder, device="cpu", threads=threads)
    opts = {"language": "en", "beam_size": beam if beam > 1 else None}
    audio = [load_clip_audio(c) for c in clips]
    model.transcribe(audio[0], **opts)  # warm-up (graph cache, first-run allocations)
    t0 = time.perf_counter()
    hyps = [model.transcribe(a, **opts).text for a in audio]
    short_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    long_hyp = model.transcribe(long_audio, **opts).text
    long_s = time.perf_counter() - t0
    return {
        "short": {**error_rate("en", [c.text for c in clips], hyps), "seconds": round(short_s, 3),
                  "hypotheses": dict(zip([c.id for c in clips], hyps))},
        "long": {**error_rate("en", [long_text], [long_hyp]), "seconds": round(long_s, 3), "hypothesis": long_hyp},
    }


def speed(folders: dict[str, Path], samples: np.ndarray, rounds: int, threads: int | None) -> dict:
    """Encoder seconds per 30 s window and decoder seconds per token (64 forced greedy steps) of every
    variant, measured in alternation (``rounds`` rounds, the variants' order flipped each round) so that
    machine drift hits all alike; medians."""
    import edge_asr

    from .stage_timing import EdgeProbe
    from .stats import Stats

    probes = {v: EdgeProbe(edge_asr.load_model(f, device="cpu", threads=threads), 1, "en", 64)
              for v, f in folders.items()}
    mel = next(iter(probes.values())).window_mel(samples)
    times: dict[str, dict[str, list[float]]] = {v: {"encoder_s": [], "decoder_per_token_s": []} for v in probes}
    for p in probes.values():  # warm-up
        p.decode_forced(p.backend.encode(mel))
    for r in range(rounds):
        for v in (list(probes) if r % 2 == 0 else list(probes)[::-1]):
            p = probes[v]
            t0 = time.perf_counter()
            state = p.backend.encode(mel)
            times[v]["encoder_s"].append(time.perf_counter() - t0)
            times[v]["decoder_per_token_s"].append(float(np.mean(p.decode_forced(state)[1])))
    return {v: {k: Stats.of(x).to_dict() for k, x in t.items()} for v, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    from edge_asr.quantization import SCHEMES
    from edge_asr_export.exporter import requantize_folder

    p = argparse.ArgumentParser(prog="edge-asr bench quantization", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fp32", action="append", required=True, metavar="LABEL=FOLDER", help="an fp32 model folder")
    p.add_argument("--schemes", default=",".join(SCHEMES), help="comma-separated int8 schemes")
    p.add_argument("--beams", default="1,5", help="comma-separated beam sizes (1 = greedy)")
    p.add_argument("--manifest", type=Path, default=default_manifest())
    p.add_argument("--long-min-seconds", type=float, default=180.0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--speed-rounds", type=int, default=7, help="alternating speed rounds (0: no speed section)")
    p.add_argument("--no-accuracy", action="store_true", help="speed only")
    p.add_argument("--work", type=Path, default=None, help="keep the requantized folders here")
    p.add_argument("--out", type=Path, required=True, help="JSON result file")
    args = p.parse_args(argv)

    english = [c for c in read_manifest(args.manifest) if c.language == "en"]
    clips = [c for c in english if c.duration_s <= 30]  # short-form: one window each
    long_audio, long_text, order = long_english(english, args.long_min_seconds)
    schemes = [s for s in args.schemes.split(",") if s]
    beams = [int(b) for b in args.beams.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="edge-asr-quant-"))
    work.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine_info(), "manifest": str(args.manifest), "clips": [c.id for c in clips],
              "short_audio_s": round(sum(c.duration_s for c in clips), 2),
              "long": {"seconds": round(len(long_audio) / SR, 2), "order": order}, "models": {}}
    try:
        for spec in args.fp32:
            label, fp32 = spec.split("=", 1)
            folders = {"fp32": Path(fp32).expanduser()}
            for s in schemes:
                folders[s] = requantize_folder(folders["fp32"], work / f"{label}-{s}", s, force=True)
            rows = report["models"][label] = {}
            if args.speed_rounds:
                rows["speed"] = speed(folders, long_audio, args.speed_rounds, args.threads)
                for v, t in rows["speed"].items():
                    print(f"{label:8s} {v:15s} encoder {t['encoder_s']['median']:.3f} s/window, decoder "
                          f"{1000 * t['decoder_per_token_s']['median']:.2f} ms/token", flush=True)
                save_json(args.out, report)
            for variant, folder in ({} if args.no_accuracy else folders).items():
                for beam in beams:
                    r = evaluate(folder, clips, long_audio, long_text, beam, args.threads)
                    rows[f"{variant}/beam{beam}"] = r
                    print(f"{label:8s} {variant:15s} beam {beam}: short WER {100 * r['short']['value']:5.2f} % "
                          f"({r['short']['seconds']:.1f} s)  long WER {100 * r['long']['value']:5.2f} % "
                          f"({r['long']['seconds']:.1f} s)", flush=True)
                    save_json(args.out, report)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    save_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
