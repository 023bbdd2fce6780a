"""The per-configuration process: ``python -m edge_asr_bench.worker JOB.json RESULT.json``.

The parent (runner.py) starts one of these per configuration, so the peak RSS a worker reports is
that configuration's alone, and a crash or out-of-memory in one configuration is reported as that
configuration's failure instead of ending the run. Jobs:
- ``config``: load time, short-clip latency, long-file RTF, peak RSS, accuracy; edge-asr adds its
  stage latencies (stage_timing.py; a full 30 s window whatever the mode); random-weight models are timed
  with forced decoding only. A mode (tailX, batchN) changes only the transcribe calls (systems.py).
- ``pair``: an edge-asr configuration and an anchor loaded side by side, timed in alternation
  (edge, anchor, then anchor, edge, ...) so drift on a shared machine hits both alike; the ratio is
  taken per round, then summarised.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .corpus import error_rate, load_clip_audio, score
from .spec import RANDOM_LABEL, RunSpec, Settings, Workload
from .stats import Stats, current_rss_mb, folder_size_mb, peak_rss_mb, repeat, rnd, timed

STAGES_ANCHOR_NOTE = ("stage latencies (log-mel, encoder, decoder, first token) are measured for edge-asr only; "
                      "the anchors are timed end to end")


def _quiet() -> None:
    """Library chatter (progress bars, deprecation notes) would interleave with the parent's table."""
    warnings.simplefilter("ignore")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass


def _long_file(times: list[float], audio_s: float, mode: str) -> dict:
    stats = Stats.of(times)
    return {"audio_s": audio_s, "processing_s": stats.to_dict(), "rtf": round(stats.median / audio_s, 6),
            "audio_s_per_s": round(audio_s / stats.median, 4), "mode": mode}


def _accuracy(runner, spec: RunSpec, work: Workload) -> dict:
    hyps, skipped = {}, {}
    t0 = time.perf_counter()
    for clip in work.accuracy:
        if clip.language != "en" and not spec.multilingual:
            skipped[clip.language] = "English-only model"
            continue
        hyps[clip.id] = runner.transcribe(load_clip_audio(clip), clip.language)
    out = score(list(work.accuracy), hyps, skipped)
    out["seconds"] = rnd(time.perf_counter() - t0)
    return out


def measure_config(spec: RunSpec, settings: Settings, work: Workload) -> dict:
    from .systems import load_runner

    baseline = current_rss_mb()
    short, long = load_clip_audio(work.short), load_clip_audio(work.long)
    random_weights = spec.weights == "random"
    if random_weights:
        import edge_asr
        from .systems import provider_args

        device, providers = provider_args(spec.provider)
        load = lambda: edge_asr.load_model(spec.path, device=device, providers=providers, threads=spec.threads)  # noqa: E731
    else:
        load = lambda: load_runner(spec)  # noqa: E731
    obj = load()  # warm-up load: the first one also hashes the files once ("auto" verification)
    load_times = []
    for _ in range(max(1, settings.repeats)):
        del obj
        gc.collect()  # the previous sessions are freed first, so the peak holds one model
        dt, obj = timed(load)
        load_times.append(dt)
    after_load = current_rss_mb()
    latency: dict = {"load_s": Stats.of(load_times).to_dict()}
    result: dict = {"id": spec.id, "spec": spec.to_dict(), "status": "ok",
                    "label": RANDOM_LABEL if random_weights else None,
                    "folder_size_mb": folder_size_mb(spec.path), "latency": latency}
    if spec.system == "edge-asr":
        from .stage_timing import EdgeProbe, forced_e2e

        model = obj if random_weights else obj.model
        probe = EdgeProbe(model, spec.n_group, work.short.language, settings.forced_tokens)
        latency["stages"] = probe.stage_latencies(long, settings.warmup, settings.repeats)
    else:
        latency["stages"] = None
        latency["stages_note"] = STAGES_ANCHOR_NOTE
    latency["short_clip_audio_s"] = work.short.duration_s
    if random_weights:
        short_stats, long_times = forced_e2e(probe, short, long, settings.warmup, settings.repeats,
                                             settings.long_repeats)
        latency["short_clip_s"] = short_stats
        latency["short_clip_mode"] = f"forced: encoder + {probe.forced_tokens} decoder steps per 30 s window"
        result["long_file"] = _long_file(long_times, work.long.duration_s, latency["short_clip_mode"])
        result["accuracy"] = None
        result["accuracy_reason"] = RANDOM_LABEL
    else:
        lang = work.short.language
        short_stats, _ = repeat(lambda: obj.transcribe(short, lang), settings.warmup, settings.repeats)
        latency["short_clip_s"] = short_stats.to_dict()
        latency["short_clip_mode"] = "transcribe"
        result["mode_options"] = spec.mode_options  # the transcribe keywords of spec.mode ({} when plain)
        long_times, text = [], ""
        for i in range(settings.warmup + max(1, settings.long_repeats)):
            dt, text = timed(lambda: obj.transcribe(long, "en"))
            if i >= settings.warmup:
                long_times.append(dt)
        result["long_file"] = _long_file(long_times, work.long.duration_s, "transcribe")
        result["long_file"]["wer"] = error_rate("en", [work.long.text], [text])["value"]
        if spec.accuracy:
            result["accuracy"] = _accuracy(obj, spec, work)
        else:
            result["accuracy"] = None
            result["accuracy_reason"] = ("not requested (--no-accuracy)" if not settings.accuracy else
                                         "measured once per model, precision, decoding and provider "
                                         "(see the first thread count)")
    result["memory"] = {"baseline_rss_mb": baseline, "after_load_rss_mb": after_load, "peak_rss_mb": peak_rss_mb(),
                        "gpu_mb": None, "gpu_note": "not measured (CPU run)" if spec.provider == "cpu" else
                        "not measured: onnxruntime exposes no per-session peak; see nvidia-smi"}
    return result


def measure_pair(edge: RunSpec, anchor: RunSpec, settings: Settings, work: Workload) -> dict:
    from .systems import load_runner

    short, long = load_clip_audio(work.short), load_clip_audio(work.long)
    runners = {"edge": load_runner(edge), "anchor": load_runner(anchor)}
    inputs = {"short_clip_s": (short, work.short.language), "long_file_s": (long, "en")}
    for _ in range(settings.warmup):
        for r in runners.values():
            r.transcribe(short, work.short.language)
    times: dict[str, dict[str, list[float]]] = {m: {"edge": [], "anchor": []} for m in inputs}
    for round_ in range(max(1, settings.ratio_rounds)):
        order = ("edge", "anchor") if round_ % 2 == 0 else ("anchor", "edge")
        for metric, (audio, lang) in inputs.items():
            for who in order:
                dt, _ = timed(lambda: runners[who].transcribe(audio, lang))
                times[metric][who].append(dt)
    metrics = {}
    for metric, t in times.items():
        ratios = [e / a for e, a in zip(t["edge"], t["anchor"])]
        metrics[metric] = {"edge": Stats.of(t["edge"]).to_dict(), "anchor": Stats.of(t["anchor"]).to_dict(),
                           "ratio": Stats.of(ratios).to_dict(), "ratios": [round(r, 4) for r in ratios]}
    return {"edge": edge.id, "anchor": anchor.id, "status": "ok", "rounds": settings.ratio_rounds,
            "anchor_threads": 1 if anchor.system == "transformers" else anchor.threads, "metrics": metrics}


def run_job(job: dict) -> dict:
    _quiet()
    settings = Settings.from_dict(job["settings"])
    work = Workload.from_dict(job["workload"])
    if job["kind"] == "config":
        return measure_config(RunSpec.from_dict(job["spec"]), settings, work)
    if job["kind"] == "pair":
        return measure_pair(RunSpec.from_dict(job["edge"]), RunSpec.from_dict(job["anchor"]), settings, work)
    raise ValueError(f"unknown job kind {job['kind']!r}")


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    job = json.loads(Path(args[0]).read_text())
    t0 = time.perf_counter()
    result = run_job(job)
    result["worker_wall_s"] = round(time.perf_counter() - t0, 2)
    Path(args[1]).write_text(json.dumps(result, ensure_ascii=False, default=_json_default))
    return 0


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


if __name__ == "__main__":
    raise SystemExit(main())
