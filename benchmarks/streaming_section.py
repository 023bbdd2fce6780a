"""The report's "streaming" section: first-partial and commit latency of edge_asr.streaming.

The simulation itself lives in ``edge_asr_bench.streaming`` (the streaming work's own bench: the file is
fed in 0.1 s chunks on a simulated real-time clock, so the numbers are what a live session on this
machine would see, without waiting in real time). This module runs it once per clip in a fresh process
(``python -m edge_asr_bench.streaming --one ...``, so each has its own peak RSS) for every real-weight
greedy plain-mode edge-asr configuration at the first thread count, and summarises:

- ``first_partial_s``: first tentative text minus the first word's start (offline word timing), over clips;
- ``commit_s``: committed word emission minus that word's end: each clip's median and p90 over its
  words, then the median over clips of each;
- ``update_rtf`` (decode compute / audio), streaming and offline WER, peak RSS.

Clips: the scored English clips of at least 20 s (several updates and commits each); the short clip
when there are none (quick runs). When edge_asr.streaming cannot be imported the section is skipped
with the reason, and the fields stay the same for later runs.
"""

from __future__ import annotations

import importlib
import json
from typing import Callable

import numpy as np

from .spec import PLAIN, ClipInfo, RunSpec, Workload

FIELDS = ("first_partial_s", "commit_s")
MIN_CLIP_S = 20.0
METHOD = ("edge_asr_bench.streaming: 0.1 s chunks on a simulated real-time clock, the default StreamingOptions "
          "(policy, step, encoder window), VAD endpointing, language given; commit latency against the offline "
          "word timing of the same model")


def _skipped(reason: str) -> dict:
    return {"status": "skipped", "reason": reason, "fields": list(FIELDS), "configs": {}}


def streaming_clips(work: Workload) -> list[ClipInfo]:
    long = [c for c in work.accuracy if c.language == "en" and c.duration_s >= MIN_CLIP_S]
    return long or [c for c in work.accuracy if c.id == work.short.id]


def streaming_specs(results: list[dict]) -> list[RunSpec]:
    specs = [RunSpec.from_dict(r["spec"]) for r in results if r.get("status") == "ok"]
    edge = [s for s in specs if s.system == "edge-asr" and s.weights == "real" and s.decoding == "greedy"
            and s.provider == "cpu" and s.mode == PLAIN]
    first_threads = min((s.threads for s in edge), default=0)
    return [s for s in edge if s.threads == first_threads]


def _summarise(rows: list[dict]) -> dict:
    first = [r["first_tentative_latency_s"] for r in rows if r.get("first_tentative_latency_s") is not None]
    med = [r["commit_latency_median_s"] for r in rows if r.get("commit_latency_median_s") is not None]
    p90 = [r["commit_latency_p90_s"] for r in rows if r.get("commit_latency_p90_s") is not None]
    total = sum(r["duration_s"] for r in rows)

    def stats(values: list[float], p90_values: list[float] | None = None) -> dict | None:
        if not values:
            return None
        high = float(np.median(p90_values)) if p90_values else float(np.percentile(values, 90))
        return {"median": round(float(np.median(values)), 3), "p90": round(high, 3), "n": len(values)}

    return {"status": "ok", "first_partial_s": stats(first), "commit_s": stats(med, p90),
            "update_rtf": round(sum(r["update_rtf"] * r["duration_s"] for r in rows) / total, 4),
            "wer_streaming": round(float(np.mean([r["wer_streaming"] for r in rows])), 4),
            "wer_offline": round(float(np.mean([r["wer_offline"] for r in rows])), 4),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
            "clips": [{k: v for k, v in r.items() if k not in ("text", "offline_text", "commit_latencies_s")}
                      for r in rows]}


def streaming_section(results: list[dict], work: Workload, enabled: bool,
                      run_clip: Callable[[RunSpec, ClipInfo], dict]) -> dict:
    """``run_clip(spec, clip)`` runs one simulation (in a worker process) and returns its row or
    {"status": "failed", "reason": ...}."""
    if not enabled:
        return _skipped("not requested (--no-streaming)")
    try:
        importlib.import_module("edge_asr.streaming")
        importlib.import_module("edge_asr_bench.streaming")
    except ImportError as e:
        return _skipped(f"edge_asr.streaming is not importable ({e}); streaming latency is measured once the "
                        "streaming runtime is installed")
    clips = streaming_clips(work)
    specs = streaming_specs(results)
    if not clips or not specs:
        return _skipped("no clip to stream (the scored clips hold neither a 20 s English clip nor the short clip)"
                        if not clips else "no measured real-weight greedy edge-asr configuration on CPU to stream")
    configs: dict[str, dict] = {}
    for spec in specs:
        rows = []
        for clip in clips:
            row = run_clip(spec, clip)
            if row.get("status") == "failed":
                configs[spec.id] = {"status": "failed", "reason": f"{clip.id}: {row['reason']}"}
                break
            rows.append({**row, "clip": clip.id})
        else:
            configs[spec.id] = _summarise(rows)
    return {"status": "ok", "reason": None, "fields": list(FIELDS), "method": METHOD,
            "clips": [c.id for c in clips], "configs": configs}


def parse_row(stdout: str) -> dict:
    """The JSON line ``python -m edge_asr_bench.streaming --one`` prints last."""
    return json.loads(stdout.strip().splitlines()[-1])
