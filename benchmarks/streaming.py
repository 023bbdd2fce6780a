"""Streaming latency and accuracy: files fed through StreamingTranscriber on a simulated real-time clock.

    python -m edge_asr_bench.streaming --manifest ../shared/audio/manifest.jsonl \
        --model tiny.en=~/.cache/edge-asr/models/tiny.en-int8 --threads 2 --out benchmarks/results/streaming.json

Real-time is simulated, not slept through: audio chunk k (0.1 s) "arrives" at k * 0.1 s; a decode that
starts at virtual time t and takes c seconds of real compute ends at t + c, and the next chunk is fed
at max(its arrival, that end). Events get the virtual time of their emission. This is what a live
session on this machine would see (one decoder thread), without waiting in real time, and runs the
same code as the microphone path. Each configuration runs in a fresh subprocess so peak RSS is its own.

Per file: first-tentative latency (first tentative event - first word start in the offline word timing),
commit latency per committed word (emission time - the word's end), update real-time factor (decode
compute / audio duration), per-update cost split (VAD vs decode), peak RSS, and the committed text's
WER next to offline transcription of the same file with the same model.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edge_asr.audio import load_audio
from .report import save_json

CHUNK_S = 0.1


def simulate(model, audio: np.ndarray, options) -> dict:
    from edge_asr.streaming import StreamingTranscriber

    st = StreamingTranscriber(model, options)
    clock = {"virtual": 0.0, "real": 0.0}
    timed: list[tuple[float, object]] = []

    def now() -> float:
        return clock["virtual"] + (time.perf_counter() - clock["real"])

    st.add_callback(lambda e: timed.append((now(), e)))
    step = int(16000 * CHUNK_S)
    for pos in range(0, len(audio), step):
        arrival = min(len(audio), pos + step) / 16000
        clock["virtual"] = max(clock["virtual"], arrival)
        clock["real"] = time.perf_counter()
        st.feed(audio[pos:pos + step])
        clock["virtual"] = now()
    clock["real"] = time.perf_counter()
    text = st.finish()
    end_time = now()
    return {"text": text, "timed": timed, "stats": st.stats, "finished_at": end_time}


def run_one(model_path: str, audio_path: str, reference: str, threads: int, encoder_tail: float | None,
            step: float, settings: dict | None = None) -> dict:
    import edge_asr
    from edge_asr.streaming import StreamingOptions
    from edge_asr_export.validate import word_error_rate

    model = edge_asr.load_model(model_path, device="cpu", threads=threads)
    audio = load_audio(audio_path)
    duration = len(audio) / 16000
    model.transcribe(audio[:16000 * 2], language="en")  # warm-up
    sim = simulate(model, audio, StreamingOptions.from_fields(language="en", encoder_tail_s=encoder_tail, step_s=step,
                                                              **(settings or {})))
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # streaming only: offline runs after
    offline = model.transcribe(audio, language="en", word_timestamps=True)
    first_word = next((w.start for s in offline.segments for w in s.words), 0.0)
    timed = sim["timed"]
    first_tentative = next((t for t, e in timed if e.kind in ("tentative", "committed") and e.text), None)
    commit_lat = [t - w[1] for t, e in timed if e.kind == "committed" for w in e.words]
    stats = sim["stats"]
    return {
        "duration_s": round(duration, 2),
        "first_tentative_latency_s": None if first_tentative is None else round(first_tentative - first_word, 3),
        "commit_latency_median_s": round(float(np.median(commit_lat)), 3) if commit_lat else None,
        "commit_latency_p90_s": round(float(np.percentile(commit_lat, 90)), 3) if commit_lat else None,
        "updates": stats.updates, "probes": stats.probes, "skipped_silent": stats.skipped_silent,
        "update_rtf": round(stats.total_s / duration, 3),
        "update_median_s": round(float(np.median(stats.per_update)), 3) if stats.per_update else None,
        "vad_s": round(stats.vad_s, 3), "decode_s": round(stats.decode_s, 3),
        "encoder_s": round(stats.encoder_s, 3), "decoder_s": round(stats.decoder_s, 3),
        "encoder_per_update_s": round(stats.encoder_s / max(stats.updates, 1), 4),
        "decoder_per_update_s": round(stats.decoder_s / max(stats.updates, 1), 4),
        "max_buffer_s": round(stats.max_buffer_s, 2),
        "lag_at_end_s": round(max(0.0, sim["finished_at"] - duration), 3),
        "peak_rss_mb": round(peak_rss, 1),
        "wer_streaming": word_error_rate([reference], [sim["text"]]),
        "wer_offline": word_error_rate([reference], [offline.text]),
        "text": sim["text"],
    }


def parse_settings(pairs: list[str]) -> dict:
    """--set FIELD=VALUE pairs -> StreamingOptions.from_fields keywords (numbers, true/false, none): streaming
    fields, or TranscribeOptions fields for the buffer decodes."""
    from edge_asr.streaming import StreamingOptions
    from edge_asr.transcribe import TranscribeOptions

    fields = (set(StreamingOptions.__dataclass_fields__) - {"transcribe"}) | TranscribeOptions.names()
    out: dict = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        if key not in fields:
            raise SystemExit(f"--set {pair}: {key!r} is not a StreamingOptions field nor a TranscribeOptions one "
                             f"({', '.join(sorted(fields))})")
        low = raw.strip().lower()
        number = raw.replace(".", "", 1).lstrip("-").isdigit()
        out[key] = None if low == "none" else True if low == "true" else False if low == "false" else \
            (int(raw) if raw.lstrip("-").isdigit() else float(raw)) if number else raw
    return out


def long_english_clips(manifest: Path, min_seconds: float = 20.0) -> list[dict]:
    rows = [json.loads(line) for line in Path(manifest).read_text().splitlines() if line.strip()]
    return [r for r in rows if r["language"] == "en" and r.get("text_quality") == "exact"
            and float(r["duration_s"]) >= min_seconds]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edge-asr bench streaming", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, required=False)
    p.add_argument("--model", action="append", default=[], metavar="LABEL=FOLDER")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--encoder-tail", type=float, action="append", default=None,
                   help="reduced encoder window(s) to compare; 0 means the full 30 s window")
    p.add_argument("--step", type=float, default=1.0)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any other StreamingOptions (or TranscribeOptions) field, e.g. --set probe_tail_s=none "
                        "--set first_step_s=0.5 --set beam_size=5")
    p.add_argument("--min-seconds", type=float, default=20.0, help="the shortest English clip to stream")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--one", nargs=4, metavar=("MODEL", "AUDIO", "REFERENCE", "TAIL"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        model, audio, ref, tail = args.one
        print(json.dumps(run_one(model, audio, ref, args.threads, float(tail) or None, args.step,
                                 parse_settings(args.set))))
        return 0
    clips = long_english_clips(args.manifest, args.min_seconds)
    tails = args.encoder_tail or [0.0]
    report: dict = {"threads": args.threads, "step_s": args.step, "settings": parse_settings(args.set),
                    "chunk_s": CHUNK_S, "clock": "simulated real time",
                    "clips": [c["id"] for c in clips], "runs": []}
    for spec in args.model:
        label, folder = spec.split("=", 1)
        for tail in tails:
            rows = []
            for c in clips:
                cmd = [sys.executable, "-m", "edge_asr_bench.streaming", "--threads", str(args.threads), "--step",
                       str(args.step), *(f"--set={kv}" for kv in args.set), "--one", folder, str(args.manifest.parent / c["audio"]), c["text"], str(tail)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True)
                row = json.loads(out.stdout.strip().splitlines()[-1])
                row["clip"] = c["id"]
                rows.append(row)
                print(f"{label:14s} tail={tail or 'full':>4} {c['id']:24s} first {row['first_tentative_latency_s']} s, "
                      f"commit median {row['commit_latency_median_s']} s, RTF {row['update_rtf']}, "
                      f"WER stream {100 * row['wer_streaming']:.1f}% / offline {100 * row['wer_offline']:.1f}%, "
                      f"RSS {row['peak_rss_mb']} MB", flush=True)
            total = sum(r["duration_s"] for r in rows)
            report["runs"].append({
                "model": label, "encoder_tail_s": tail or None, "clips": rows,
                "summary": {
                    "first_tentative_latency_median_s": float(np.median([r["first_tentative_latency_s"] for r in rows])),
                    "commit_latency_median_s": float(np.median([r["commit_latency_median_s"] for r in rows])),
                    "update_rtf": round(sum(r["update_rtf"] * r["duration_s"] for r in rows) / total, 3),
                    "encoder_per_update_s": float(np.median([r["encoder_per_update_s"] for r in rows])),
                    "decoder_per_update_s": float(np.median([r["decoder_per_update_s"] for r in rows])),
                    "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
                    "wer_streaming_mean": float(np.mean([r["wer_streaming"] for r in rows])),
                    "wer_offline_mean": float(np.mean([r["wer_offline"] for r in rows])),
                }})
            print(f"== {label} tail={tail or 'full'}: {report['runs'][-1]['summary']}", flush=True)
    if args.out:
        save_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
