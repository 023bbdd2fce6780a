"""The bench report's JSON schema (version ``edge-asr-bench/1``) and a checker for it.

Top level: ``schema``, ``created``, ``note``, ``command``, ``quick``, ``machine`` (machine.py),
``settings`` (repeats, axes, edge_modes, anchor_modes), ``workload`` (short clip, long file, scored clips),
``anchors`` ({system: {status, reason, version}}), ``configs``, ``ratios``, ``streaming`` (streaming_section.py),
``encoder_efficiency`` (flops.py; absent in reports written before it).

A config: ``id``, ``spec`` (spec.RunSpec; ``mode``: "plain", or spec.parse_mode's tailX / batchN, also
the id's last part when not plain; absent in older reports = plain), ``status`` ("ok" | "skipped" | "failed"), ``reason`` (when not
ok), ``label`` ("random weights, latency only" or null) and, when ok:
  latency: load_s, short_clip_s as {median, p90, n} seconds; short_clip_audio_s; short_clip_mode;
           stages (edge-asr: log_mel_s, encoder_s, decoder_first_call_s, decoder_per_token_s,
           first_token_s as stats, decoder_tokens_timed, decoder_rows) or null with stages_note
  long_file: audio_s, processing_s (stats), rtf = processing_s.median / audio_s,
             audio_s_per_s = audio_s / processing_s.median, mode, wer (real weights)
  memory: baseline_rss_mb (the worker before the system is imported: python + numpy), after_load_rss_mb
          (model loaded), peak_rss_mb (the process's high-water mark over the whole measurement), gpu_mb, gpu_note
  folder_size_mb; accuracy ({languages: {code: {metric, value, clips, normalizer}}, skipped, hypotheses,
  seconds} or null with accuracy_reason); mode_options (real weights: the mode's transcribe keywords)
A ratio: ``edge``, ``anchor`` (config ids), ``status``, ``rounds``, ``anchor_threads``, ``metrics``
({short_clip_s|long_file_s: {edge, anchor, ratio: stats, ratios: per round}}).
Streaming (streaming_section.py): ``status``, ``reason``, ``fields``, ``method``, ``clips`` and ``configs``
({edge config id: {status, first_partial_s, commit_s (stats), update_rtf, wer_streaming, wer_offline,
peak_rss_mb, clips: per-clip rows}}).
Encoder efficiency: ``method``, ``fp32_peak`` (also ``machine.fp32_peak``: measured_gflops {threads: GFLOP/s
or null}, measured_method, theoretical_gflops {threads: GFLOP/s} or null, clock_ghz, clock_source,
assumption, note) and ``configs`` ({edge config id: {quantization, threads, flops_per_window, encoder_s (the
config's median encoder_s), gflop_per_s = flops_per_window / 1e9 / encoder_s,
fraction_of_measured_fp32_peak, fraction_of_theoretical_fp32_peak (or null)}}).
"""

from __future__ import annotations

import math

from .spec import PLAIN, RANDOM_LABEL, parse_mode

SCHEMA = "edge-asr-bench/1"
TOP_LEVEL = ("schema", "created", "machine", "settings", "workload", "anchors", "configs", "ratios", "streaming")
FIELDS_STREAMING = ("first_partial_s", "commit_s")
EDGE_STAGES = ("log_mel_s", "encoder_s", "decoder_first_call_s", "decoder_per_token_s", "first_token_s")


def _stats(x, where: str, problems: list[str]) -> None:
    if not isinstance(x, dict) or not {"median", "p90", "n"} <= set(x):
        problems.append(f"{where}: not a {{median, p90, n}} summary")
        return
    if not (x["median"] > 0 and math.isfinite(x["median"])):
        problems.append(f"{where}: median {x['median']} is not positive")
    if x["p90"] < x["median"] - 1e-9:
        problems.append(f"{where}: p90 {x['p90']} below median {x['median']}")
    if x["n"] < 1:
        problems.append(f"{where}: n {x['n']} < 1")


def _close(a: float, b: float, rel: float = 2e-3, abs_: float = 2e-4) -> bool:
    return abs(a - b) <= max(abs_, rel * abs(b))


def _check_ok_config(c: dict, problems: list[str]) -> None:
    w = c["id"]
    lat = c.get("latency") or {}
    for key in ("load_s", "short_clip_s"):
        _stats(lat.get(key), f"{w} latency.{key}", problems)
    if c["spec"]["system"] == "edge-asr":
        stages = lat.get("stages") or {}
        for key in EDGE_STAGES:
            _stats(stages.get(key), f"{w} stages.{key}", problems)
    elif not lat.get("stages_note"):
        problems.append(f"{w}: anchor without stages_note")
    lf = c.get("long_file") or {}
    _stats(lf.get("processing_s"), f"{w} long_file.processing_s", problems)
    if lf.get("audio_s", 0) <= 0:
        problems.append(f"{w}: long_file.audio_s not positive")
    elif isinstance(lf.get("processing_s"), dict):
        med = lf["processing_s"]["median"]
        if not _close(lf.get("rtf", -1), med / lf["audio_s"]):
            problems.append(f"{w}: rtf {lf.get('rtf')} != processing {med} / audio {lf['audio_s']}")
        if not _close(lf.get("audio_s_per_s", -1), lf["audio_s"] / med):
            problems.append(f"{w}: audio_s_per_s {lf.get('audio_s_per_s')} != audio / processing")
    mem = c.get("memory") or {}
    if not (0 < mem.get("baseline_rss_mb", 0) <= mem.get("peak_rss_mb", 0)):
        problems.append(f"{w}: memory baseline/peak not positive and ordered: {mem}")
    if not c.get("folder_size_mb", 0) > 0:
        problems.append(f"{w}: folder_size_mb not positive")
    random = c["spec"]["weights"] == "random"
    if random and (c.get("label") != RANDOM_LABEL or c.get("accuracy") is not None):
        problems.append(f"{w}: random weights must be labelled and carry no accuracy")
    acc = c.get("accuracy")
    if acc is None:
        if not c.get("accuracy_reason"):
            problems.append(f"{w}: accuracy null without accuracy_reason")
    else:
        for lang, r in acc.get("languages", {}).items():
            if r.get("metric") not in ("wer", "cer") or not 0 <= r.get("value", -1) or r.get("clips", 0) < 1:
                problems.append(f"{w}: accuracy[{lang}] malformed: {r}")


def _check_efficiency(report: dict, problems: list[str]) -> None:
    eff = report.get("encoder_efficiency")
    if eff is None:
        return
    encoder = {c["id"]: c["latency"]["stages"]["encoder_s"]["median"] for c in report["configs"]
               if c.get("status") == "ok" and (c.get("latency") or {}).get("stages")}
    for cid, e in (eff.get("configs") or {}).items():
        w = f"encoder_efficiency {cid}"
        if not (e.get("flops_per_window", 0) > 0 and e.get("encoder_s", 0) > 0 and e.get("gflop_per_s", 0) > 0):
            problems.append(f"{w}: flops_per_window, encoder_s and gflop_per_s must be positive")
            continue
        if cid not in encoder or not _close(e["encoder_s"], encoder[cid]):
            problems.append(f"{w}: encoder_s {e['encoder_s']} is not the config's median encoder_s")
        if not _close(e["gflop_per_s"], e["flops_per_window"] / 1e9 / e["encoder_s"], rel=1e-3, abs_=0.01):
            problems.append(f"{w}: gflop_per_s {e['gflop_per_s']} != flops / 1e9 / encoder_s")
    for t, v in ((eff.get("fp32_peak") or {}).get("measured_gflops") or {}).items():
        if v is not None and not v > 0:
            problems.append(f"encoder_efficiency fp32_peak: measured {v} at {t} threads not positive")


def validate(report: dict) -> list[str]:
    """Problems found in a report (empty when it matches the schema and its numbers are consistent)."""
    problems = [f"missing top-level key {k!r}" for k in TOP_LEVEL if k not in report]
    if problems:
        return problems
    if report["schema"] != SCHEMA:
        problems.append(f"schema {report['schema']!r} is not {SCHEMA!r}")
    for name, a in report["anchors"].items():
        if a.get("status") not in ("ok", "skipped") or (a["status"] == "skipped" and not a.get("reason")):
            problems.append(f"anchor {name}: status {a.get('status')!r} needs a reason when skipped")
    for c in report["configs"]:
        if not {"id", "spec", "status"} <= set(c):
            problems.append(f"config without id/spec/status: {sorted(c)}")
            continue
        mode = c["spec"].get("mode", PLAIN)
        try:
            parse_mode(mode, c["spec"]["system"])
        except ValueError as e:
            problems.append(f"{c['id']}: {e}")
        if mode != PLAIN and not c["id"].endswith("/" + mode):
            problems.append(f"{c['id']}: mode {mode!r} missing from the id")
        if c["status"] == "ok":
            _check_ok_config(c, problems)
        elif c["status"] in ("skipped", "failed"):
            if not c.get("reason"):
                problems.append(f"{c['id']}: {c['status']} without a reason")
        else:
            problems.append(f"{c['id']}: unknown status {c['status']!r}")
    for r in report["ratios"]:
        if r.get("status") != "ok":
            if not r.get("reason"):
                problems.append(f"ratio {r.get('edge')} vs {r.get('anchor')}: not ok and no reason")
            continue
        for metric, m in r["metrics"].items():
            _stats(m.get("ratio"), f"ratio {r['edge']} vs {r['anchor']} {metric}", problems)
            if m.get("ratios") and not min(m["ratios"]) - 1e-3 <= m["ratio"]["median"] <= max(m["ratios"]) + 1e-3:
                problems.append(f"ratio {r['edge']} vs {r['anchor']} {metric}: median outside the rounds' range")
    _check_efficiency(report, problems)
    s = report["streaming"]
    if s.get("status") not in ("ok", "skipped") or (s["status"] == "skipped" and not s.get("reason")):
        problems.append("streaming: status must be ok, or skipped with a reason")
    for cid, sc in (s.get("configs") or {}).items():
        if sc.get("status") != "ok":
            if not sc.get("reason"):
                problems.append(f"streaming {cid}: not ok and no reason")
            continue
        for key in FIELDS_STREAMING:
            if sc.get(key) is not None:  # None: no text was ever emitted (nothing to time)
                _stats(sc[key], f"streaming {cid} {key}", problems)
        if not sc.get("update_rtf", 0) > 0:
            problems.append(f"streaming {cid}: update_rtf not positive")
    return problems
