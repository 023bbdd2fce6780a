"""Streaming latency and accuracy: audio fed through StreamingTranscriber (and the anchors) on a simulated
real-time clock, compute counted.

    edge-asr bench streaming --manifest ../shared/audio/manifest.jsonl \
        --model tiny.en=~/.cache/edge-asr/models/tiny.en-int8 --policy alignatt --policy local-agreement \
        --anchors --threads 2 --out benchmarks/results/streaming-<cpu>.json

Real time is simulated, not slept through: audio chunk k (0.1 s) "arrives" at k * 0.1 s; a decode that
starts at virtual time t and takes c seconds of real compute ends at t + c, and the next chunk is fed at
max(its arrival, that end). Events get the virtual time of their emission. This is what a live session
on this machine would see (one decoding thread), without waiting in real time, and runs the same code as
the microphone path. Each (system, audio) runs in a fresh subprocess, so peak RSS is its own. The anchors
(benchmarks/streaming_anchors.py, in their own venv: scripts/setup_streaming_anchors.sh) are fed the
same way.

Audio: the English clips of ``--min-seconds`` or more, and one file joined from all English clips (a
few minutes; 1 s gaps). Every system is timed against the same reference: the offline transcription of
the same audio with the same edge-asr model and word timestamps. Committed words are matched to its
words (difflib over normalised words); a matched word's commit latency is its commit time minus the
reference word's end. First-tentative latency is the first shown text minus the reference's first word
start. WER is scored on the committed transcript against the manifest's reference text, next to the
offline transcript's WER.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .report import save_json

CHUNK_S = 0.1
GAP_S = 1.0  # silence between the clips of the joined file
JOINED = "joined_en"
ANCHORS = ("wlk-localagreement", "wlk-simulstreaming", "whisper-live")


def simulate(model, audio: np.ndarray, options) -> dict:
    from edge_asr.streaming import StreamingTranscriber

    st = StreamingTranscriber(model, options)
    clock = {"virtual": 0.0, "real": 0.0}
    timed: list[tuple[float, object]] = []

    def now() -> float:
        return clock["virtual"] + (time.perf_counter() - clock["real"])

    st.add_callback(lambda e: timed.append((now(), e)))
    step = int(16000 * CHUNK_S)
    pos = 0
    while pos < len(audio):
        # Everything that arrived while the last decode ran is fed at once (as the background worker
        # takes its whole backlog), else the next 0.1 s chunk when it arrives.
        arrived = max(pos + step, int(clock["virtual"] / CHUNK_S) * step)
        end = min(len(audio), arrived)
        clock["virtual"] = max(clock["virtual"], end / 16000)
        clock["real"] = time.perf_counter()
        st.feed(audio[pos:end])
        pos = end
        clock["virtual"] = now()
    clock["real"] = time.perf_counter()
    text = st.finish()
    return {"text": text, "timed": timed, "stats": st.stats, "finished_at": now()}


def _key(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def commit_latencies(committed: list[tuple[float, str]], reference: list[tuple[float, float, str]]) -> list[float]:
    """Commit time minus the reference word's end, for every committed word matched to a reference word.
    ``committed``: (emission time, text) in order; ``reference``: offline (start, end, word)."""
    words = [(t, w) for t, text in committed for w in text.split() if _key(w)]
    ref = [r for r in reference if _key(r[2])]
    matcher = difflib.SequenceMatcher(a=[_key(w) for _, w in words], b=[_key(r[2]) for r in ref], autojunk=False)
    out = []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            out.append(words[block.a + k][0] - ref[block.b + k][1])
    return out


def _stats(values: list[float]) -> dict:
    if not values:
        return {"median": None, "p90": None, "n": 0}
    return {"median": round(float(np.median(values)), 3), "p90": round(float(np.percentile(values, 90)), 3),
            "n": len(values)}


def write_bench_audio(manifest: Path, ids: list[str], work: Path) -> list[tuple[str, Path, str]]:
    """(id, wav path, reference text) per clip id, and for JOINED a file of all English exact clips in
    manifest order, 1 s apart, written into ``work``."""
    import soundfile as sf

    from edge_asr.audio import load_audio

    rows = [json.loads(line) for line in Path(manifest).read_text().splitlines() if line.strip()]
    by_id = {r["id"]: r for r in rows}
    out = []
    for audio_id in ids:
        if audio_id != JOINED:
            r = by_id[audio_id]
            out.append((audio_id, Path(manifest).parent / r["audio"], r["text"]))
            continue
        english = [r for r in rows if r["language"] == "en" and r.get("text_quality") == "exact"]
        gap = np.zeros(int(GAP_S * 16000), np.float32)
        parts = [p for r in english for p in (load_audio(str(Path(manifest).parent / r["audio"])), gap)][:-1]
        path = work / f"{JOINED}.wav"
        sf.write(path, np.concatenate(parts), 16000, subtype="FLOAT")
        out.append((audio_id, path, " ".join(r["text"] for r in english)))
    return out


def _load(path: str) -> np.ndarray:
    from edge_asr.audio import load_audio

    return np.load(path).astype(np.float32) if str(path).endswith(".npy") else load_audio(str(path))


def reference_words(model, audio: np.ndarray) -> tuple[str, list[tuple[float, float, str]]]:
    offline = model.transcribe(audio, language="en", word_timestamps=True)
    return offline.text, [(w.start, w.end, w.word) for s in offline.segments for w in s.words]


def run_edge(model_path: str, audio_path: str, reference_text: str, threads: int, settings: dict) -> dict:
    import edge_asr
    from edge_asr.streaming import StreamingOptions

    model = edge_asr.load_model(model_path, device="cpu", threads=threads)
    audio = _load(audio_path)
    model.transcribe(audio[:16000 * 2], language="en")  # warm-up
    # catch_up: the simulated clock feeds what arrived during a decode at once, as the background worker
    # (which a live app uses) takes its backlog; inline mode alone would step through it.
    options = StreamingOptions.from_fields(**{"language": "en", "catch_up": True, **settings})
    sim = simulate(model, audio, options)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # streaming only: offline runs after
    offline_text, ref_words = reference_words(model, audio)
    timed = sim["timed"]
    committed = [(t, e.text) for t, e in timed if e.kind == "committed" and e.text]
    shown = [t for t, e in timed if e.kind in ("tentative", "committed") and e.text]
    stats = sim["stats"]
    return _row(audio, reference_text, offline_text, ref_words, committed, shown[0] if shown else None,
                sim["text"], compute_s=stats.total_s, updates=stats.updates, finished_at=sim["finished_at"],
                peak_rss=peak_rss, extra={
                    "probes": stats.probes, "skipped_silent": stats.skipped_silent,
                    "update_median_s": round(float(np.median(stats.per_update)), 3) if stats.per_update else None,
                    "update_p90_s": round(float(np.percentile(stats.per_update, 90)), 3) if stats.per_update else None,
                    "encoder_s": round(stats.encoder_s, 3), "decoder_s": round(stats.decoder_s, 3),
                    "decoder_runs": stats.decoder_runs, "vad_s": round(stats.vad_s, 3),
                    "max_buffer_s": round(stats.max_buffer_s, 2)})


def _row(audio, reference_text, offline_text, ref_words, committed, first_shown, text, *, compute_s, updates,
         finished_at, peak_rss, extra) -> dict:
    from edge_asr.scoring import wer

    duration = len(audio) / 16000
    latencies = commit_latencies(committed, ref_words)
    first_word = ref_words[0][0] if ref_words else 0.0
    return {
        "duration_s": round(duration, 2),
        "first_tentative_latency_s": None if first_shown is None else round(first_shown - first_word, 3),
        "commit_latencies_s": [round(x, 3) for x in latencies],
        "commit_latency_median_s": _stats(latencies)["median"], "commit_latency_p90_s": _stats(latencies)["p90"],
        "updates": updates, "compute_s": round(compute_s, 3), "update_rtf": round(compute_s / duration, 3),
        "update_mean_s": round(compute_s / max(updates, 1), 4),
        "lag_at_end_s": round(max(0.0, finished_at - duration), 3), "peak_rss_mb": round(peak_rss, 1),
        "wer_streaming": wer([reference_text], [text], "en"),
        "wer_offline": wer([reference_text], [offline_text], "en"),
        "text": text, "offline_text": offline_text, **extra,
    }


def run_anchor(system: str, anchor_python: Path, model_path: str, audio_path: Path, reference_text: str,
               threads: int) -> dict:
    """One anchor in its own venv (streaming_anchors.py), scored here against the same reference."""
    import edge_asr

    script = Path(__file__).resolve().parent / "streaming_anchors.py"
    cmd = [str(anchor_python), str(script), "--system", system, "--model-dir", model_path,
           "--audio", str(audio_path), "--language", "en", "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr or out.stdout).strip()[-2000:]}
    run = json.loads(out.stdout.strip().splitlines()[-1])
    audio = _load(str(audio_path))
    model = edge_asr.load_model(model_path, device="cpu", threads=threads)
    offline_text, ref_words = reference_words(model, audio)
    # Entries are [time, text] or [time, text, words].
    committed = [(float(e[0]), e[1]) for e in run["committed"] if e[1].strip()]
    shown = sorted([t for t, _ in committed] + [float(e[0]) for e in run.get("tentative", []) if e[1].strip()])
    return _row(audio, reference_text, offline_text, ref_words, committed, shown[0] if shown else None,
                run["text"], compute_s=run["compute_s"], updates=run["updates"], finished_at=run["finished_at"],
                peak_rss=run["peak_rss_mb"], extra={"settings": run.get("settings"), "versions": run.get("versions")})


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


def bench_audio(manifest: Path, min_seconds: float, joined: bool) -> list[str]:
    rows = [json.loads(line) for line in Path(manifest).read_text().splitlines() if line.strip()]
    ids = [r["id"] for r in rows if r["language"] == "en" and r.get("text_quality") == "exact"
           and float(r["duration_s"]) >= min_seconds]
    return ids + ([JOINED] if joined else [])


def summarize(rows: list[dict]) -> dict:
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return {"error": rows[0].get("error") if rows else "no runs"}
    clips = [r for r in ok if r["audio"] != JOINED]
    joined = [r for r in ok if r["audio"] == JOINED]
    lat = [x for r in ok for x in r["commit_latencies_s"]]
    firsts = [r["first_tentative_latency_s"] for r in ok if r["first_tentative_latency_s"] is not None]
    total = sum(r["duration_s"] for r in ok)

    def wer(part, key):
        return round(100 * float(np.mean([r[key] for r in part])), 2) if part else None
    return {
        "first_tentative_median_s": round(float(np.median(firsts)), 3) if firsts else None,
        "commit_latency_s": _stats(lat),
        "wer_streaming_clips_pct": wer(clips, "wer_streaming"), "wer_offline_clips_pct": wer(clips, "wer_offline"),
        "wer_streaming_joined_pct": wer(joined, "wer_streaming"), "wer_offline_joined_pct": wer(joined, "wer_offline"),
        "update_rtf": round(sum(r["compute_s"] for r in ok) / total, 3),
        "update_mean_s": round(sum(r["compute_s"] for r in ok) / max(1, sum(r["updates"] for r in ok)), 4),
        "lag_at_end_max_s": max(r["lag_at_end_s"] for r in ok),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
    }


def markdown(report: dict) -> str:
    lines = ["| model | system / policy | first tentative (s) | commit median (s) | commit p90 (s) | WER clips / offline (%) "
             "| WER joined / offline (%) | update mean (s) | update RTF | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for run in report["runs"]:
        s = run["summary"]
        if "error" in s:
            lines.append(f"| {run['model']} | {run['system']} | not run: {s['error'][:120]} |||||||")
            continue
        c = s["commit_latency_s"]
        lines.append(f"| {run['model']} | {run['system']} | {s['first_tentative_median_s']} | {c['median']} | {c['p90']} "
                     f"| {s['wer_streaming_clips_pct']} / {s['wer_offline_clips_pct']} "
                     f"| {s['wer_streaming_joined_pct']} / {s['wer_offline_joined_pct']} | {s['update_mean_s']} "
                     f"| {s['update_rtf']} | {s['peak_rss_mb']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edge-asr bench streaming", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, required=False)
    p.add_argument("--model", action="append", default=[], metavar="LABEL=FOLDER")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--policy", action="append", default=None, metavar="NAME[:FIELD=VALUE,...]",
                   help="edge-asr configurations to run, e.g. alignatt, local-agreement, "
                        "'alignatt:encoder_tail_s=2,step_s=0.3' (default: the StreamingOptions defaults)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a StreamingOptions (or TranscribeOptions) field for every edge-asr configuration")
    p.add_argument("--anchors", action="store_true", help="also run " + ", ".join(ANCHORS) + " (needs .venv-anchors)")
    p.add_argument("--anchors-joined", action="store_true", help="anchors stream the joined file too (slow)")
    p.add_argument("--anchor-python", type=Path, default=Path(__file__).resolve().parent.parent / ".venv-anchors/bin/python")
    p.add_argument("--min-seconds", type=float, default=20.0, help="the shortest English clip to stream")
    p.add_argument("--no-joined", action="store_true", help="skip the file joined from all English clips")
    p.add_argument("--out", type=Path, default=None, help="JSON report (a .md table is written next to it)")
    p.add_argument("--one", nargs=4, metavar=("MODEL", "AUDIO", "REFERENCE", "SETTINGS_JSON"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        model, audio, reference, settings = args.one
        print(json.dumps(run_edge(model, audio, reference, args.threads, json.loads(settings or "{}"))))
        return 0
    from .machine import machine_info

    work = Path("/tmp/edge-asr-bench-streaming")
    work.mkdir(parents=True, exist_ok=True)
    audio = write_bench_audio(args.manifest, bench_audio(args.manifest, args.min_seconds, not args.no_joined), work)
    base = parse_settings(args.set)
    configs = []
    for spec in args.policy or ["default"]:
        name, _, extra = spec.partition(":")
        settings = dict(base, **({} if name == "default" else {"policy": name}))
        settings.update(parse_settings([kv for kv in extra.split(",") if kv]))
        configs.append((spec, settings))
    report: dict = {"threads": args.threads, "chunk_s": CHUNK_S, "clock": "simulated real time",
                    "audio": [a for a, _, _ in audio], "machine": machine_info(), "runs": []}
    for spec in args.model:
        label, folder = spec.split("=", 1)
        folder = str(Path(folder).expanduser())
        for name, settings in configs:
            rows = []
            for audio_id, path, text in audio:
                cmd = [sys.executable, "-m", "edge_asr_bench.streaming", "--threads", str(args.threads),
                       "--one", folder, str(path), text, json.dumps(settings)]
                out = subprocess.run(cmd, capture_output=True, text=True)
                row = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else \
                    {"error": out.stderr.strip()[-2000:]}
                row["audio"] = audio_id
                rows.append(row)
                _print_row(label, f"edge-asr {name}", row)
            report["runs"].append({"model": label, "system": f"edge-asr {name}", "settings": settings,
                                   "rows": rows, "summary": summarize(rows)})
            print(f"== {label} edge-asr {name}: {report['runs'][-1]['summary']}", flush=True)
            _save(args.out, report)
        if args.anchors:
            for system in ANCHORS:
                rows = []
                for audio_id, path, text in audio[:None if args.anchors_joined else len(audio) - (not args.no_joined)]:
                    row = run_anchor(system, args.anchor_python, folder, path, text, args.threads)
                    row["audio"] = audio_id
                    rows.append(row)
                    _print_row(label, system, row)
                report["runs"].append({"model": label, "system": system, "rows": rows, "summary": summarize(rows)})
                _save(args.out, report)
    print(markdown(report))
    _save(args.out, report)
    return 0


def _save(out: Path | None, report: dict) -> None:
    """After every configuration, so a failure later keeps what was measured."""
    if out:
        save_json(out, report)
        out.with_suffix(".md").write_text(markdown(report))


def _print_row(label: str, system: str, row: dict) -> None:
    if "error" in row:
        print(f"{label:12s} {system:28s} {row['audio']:24s} ERROR {row['error'][-300:]}", flush=True)
        return
    lat = _stats(row["commit_latencies_s"])
    print(f"{label:12s} {system:28s} {row['audio']:24s} first {row['first_tentative_latency_s']} s, commit "
          f"median {lat['median']} p90 {lat['p90']} s, RTF {row['update_rtf']}, WER stream "
          f"{100 * row['wer_streaming']:.1f}% / offline {100 * row['wer_offline']:.1f}%, RSS {row['peak_rss_mb']} MB",
          flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
