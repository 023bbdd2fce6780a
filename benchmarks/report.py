"""Human-readable views of a bench report: the terminal table and the Markdown file.

One row per measured configuration (the mode column: plain, or an edge-asr tailX/batchN variant, or
faster-whisper's batched pipeline); latency cells are medians (Markdown adds the p90 in parentheses);
random-weight rows are marked with a dagger and the label. Ratios, the encoder efficiency table (with
the machine's fp32 peak), skipped configurations (with reasons), anchors and the streaming section follow.
"""

from __future__ import annotations

from .spec import PLAIN, RANDOM_LABEL


def save_json(path, report: dict) -> None:
    """Write a single-purpose bench's report (accuracy, quality, streaming, memory) as indented JSON."""
    import json
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False))

COLUMNS = ("system", "model", "quant", "device", "thr", "decoding", "mode", "load s", "log-mel s", "encoder s",
           "dec ms/token", "first token s", "short clip s", "RTF", "audio s/s", "peak RSS MB", "size MB",
           "WER en %", "other langs %")
DAGGER = "†"
RIGHT = COLUMNS.index("load s")  # numbers from here on are right-aligned


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}g}" if abs(x) < 1 else f"{x:.{max(1, digits - 1)}f}".rstrip("0").rstrip(".")


def _cell(stats: dict | None, p90: bool, scale: float = 1.0) -> str:
    if not stats:
        return "–"
    s = _fmt(stats["median"] * scale)
    return f"{s} ({_fmt(stats['p90'] * scale)})" if p90 else s


def _accuracy_cells(acc: dict | None) -> tuple[str, str]:
    if not acc:
        return "–", "–"
    langs = acc.get("languages", {})
    en = langs.get("en")
    others = [f"{lang} {r['metric'].upper()} {100 * r['value']:.1f}" for lang, r in langs.items() if lang != "en"]
    return (f"{100 * en['value']:.2f}" if en else "–"), (", ".join(others) or "–")


def row(c: dict, p90: bool) -> list[str]:
    s, lat = c["spec"], c["latency"]
    stages = lat.get("stages") or {}
    lf = c["long_file"]
    wer, other = _accuracy_cells(c.get("accuracy"))
    model = s["model"] + (f" {DAGGER}" if s["weights"] == "random" else "")
    return [s["system"], model, s["quantization"], s["provider"], str(s["threads"]), s["decoding"],
            s.get("mode", PLAIN), _cell(lat.get("load_s"), p90), _cell(stages.get("log_mel_s"), p90), _cell(stages.get("encoder_s"), p90),
            _cell(stages.get("decoder_per_token_s"), p90, 1000.0), _cell(stages.get("first_token_s"), p90),
            _cell(lat.get("short_clip_s"), p90), _fmt(lf["rtf"]), _fmt(lf["audio_s_per_s"]),
            _fmt(c["memory"]["peak_rss_mb"]), _fmt(c["folder_size_mb"]), wer, other]


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    fmt = lambda r: "  ".join(v.rjust(w) if i >= RIGHT else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def ratio_rows(report: dict) -> list[list[str]]:
    out = []
    for r in report["ratios"]:
        if r.get("status") != "ok":
            out.append([r["edge"], r["anchor"], "failed", r.get("reason", "")[:60], "–"])
            continue
        cells = []
        for metric in ("short_clip_s", "long_file_s"):
            m = r["metrics"][metric]
            cells.append(f"{m['ratio']['median']:.2f}x (p90 {m['ratio']['p90']:.2f}; "
                         f"{_fmt(m['edge']['median'])} s vs {_fmt(m['anchor']['median'])} s)")
        out.append([r["edge"], r["anchor"] + (" (torch 1 thread)" if r["anchor"].startswith("transformers") else ""),
                    *cells, str(r["rounds"])])
    return out


def efficiency_rows(report: dict) -> list[list[str]]:
    rows = []
    for cid, e in ((report.get("encoder_efficiency") or {}).get("configs") or {}).items():
        pct = lambda f: "–" if f is None else f"{100 * f:.0f}"  # noqa: E731
        rows.append([cid, _fmt(e["encoder_s"]), _fmt(e["flops_per_window"] / 1e9), _fmt(e["gflop_per_s"]),
                     pct(e.get("fraction_of_measured_fp32_peak")), pct(e.get("fraction_of_theoretical_fp32_peak"))])
    return rows


EFFICIENCY_HEADER = ["edge-asr", "encoder s", "GFLOP / 30 s window", "GFLOP/s", "% measured fp32 peak",
                     "% theoretical fp32 peak"]


def _peak_line(report: dict) -> str | None:
    peak = report["machine"].get("fp32_peak")
    if not peak:
        return None
    measured = ", ".join(f"{v} GFLOP/s at {t} thread{'s' if t != '1' else ''}"
                         for t, v in (peak.get("measured_gflops") or {}).items() if v) or "not measured"
    theory = peak.get("theoretical_gflops")
    theory_text = (", ".join(f"{v} GFLOP/s at {t} thread{'s' if t != '1' else ''}" for t, v in theory.items())
                   + f" ({peak['assumption']}; clock from {peak['clock_source']})") if theory else \
        f"not given: {peak['clock_source']}"
    return (f"fp32 peak: measured ({peak['measured_method']}) {measured}; theoretical {theory_text}"
            + (f"; {peak['note']}" if peak.get("note") else "") + ".")


def _efficiency(report: dict, markdown: bool) -> list[str]:
    rows = efficiency_rows(report)
    if not rows:
        return []
    head = "## Encoder efficiency" if markdown else "Encoder efficiency (one 30 s window):"
    return ["", head, "", (report["encoder_efficiency"].get("method") or "") + ".", "",
            _table(EFFICIENCY_HEADER, rows, markdown)]


def _notes(report: dict) -> list[str]:
    m = report["machine"]
    cpu = m["cpu"]
    git = m.get("git") or {}
    lines = [
        f"Machine: {cpu['model']} ({cpu.get('physical_cores') or '?'} physical / {cpu['logical_cores']} logical cores, "
        f"{m.get('memory_gb') or '?'} GB), {m['os']}; key CPU flags: {', '.join(cpu['key_flags']) or 'none found'}; "
        f"GPUs: {', '.join(g['name'] for g in m.get('gpus') or []) or 'none'}.",
        f"onnxruntime {m['onnxruntime']['version']} ({', '.join(m['onnxruntime']['providers'])}); "
        f"commit {(git.get('commit') or 'unknown')[:12]}{' (dirty)' if git.get('dirty') else ''}; "
        f"load average at start {m.get('load_average_start')}, at end {m.get('load_average_end')}.",
        f"Settings: warm-up {report['settings']['warmup']}, repeats {report['settings']['repeats']} "
        f"(long file {report['settings']['long_repeats']}), decoder timed over {report['settings']['forced_tokens']} "
        f"forced steps, ratio rounds {report['settings']['ratio_rounds']}; transformers runs with torch on 1 thread.",
        f"Short clip: {report['workload']['short']['id']} ({report['workload']['short']['duration_s']} s). Long file: "
        f"{len(report['workload']['long_parts'])} English clips concatenated ({report['workload']['long']['duration_s']} s).",
    ]
    peak = _peak_line(report)
    if peak:
        lines.insert(2, peak)
    if report.get("note"):
        lines.insert(0, f"Note: {report['note']}")
    if any(c["spec"]["weights"] == "random" for c in report["configs"]):
        lines.append(f"{DAGGER} {RANDOM_LABEL}: short clip and RTF are forced decoding (encoder + a fixed number of "
                     "decoder steps per 30 s window), not transcription.")
    return lines


def _tail(report: dict, markdown: bool) -> list[str]:
    bullet = "- " if markdown else "  "
    out = ["", "Anchors:"]
    out += [f"{bullet}{k}: {v['status']}" + (f" ({v.get('version')})" if v.get("version") else "")
            + (f": {v['reason']}" if v.get("reason") else "") + (f"; {v['note']}" if v.get("note") else "")
            for k, v in report["anchors"].items()]
    skipped = [c for c in report["configs"] if c["status"] != "ok"]
    if skipped:
        out += ["", "Not measured:"]
        out += [f"{bullet}{c['id']}: {c['status']}: {c['reason']}" for c in skipped]
    s = report["streaming"]
    out += ["", f"Streaming: {s['status']}" + (f": {s['reason']}" if s.get("reason") else "")]
    if s.get("configs"):
        out += [f"({s.get('method')}; clips: {', '.join(s.get('clips', []))})", ""]
        out.append(_table(["edge-asr", "first partial s", "commit s", "update RTF", "WER stream %", "WER offline %",
                           "peak RSS MB"], streaming_rows(s), markdown))
    return out


def streaming_rows(s: dict) -> list[list[str]]:
    rows = []
    for cid, c in s["configs"].items():
        if c.get("status") != "ok":
            rows.append([cid, "failed: " + str(c.get("reason"))[:60], "–", "–", "–", "–", "–"])
            continue
        rows.append([cid, _cell(c.get("first_partial_s"), True), _cell(c.get("commit_s"), True), _fmt(c["update_rtf"]),
                     f"{100 * c['wer_streaming']:.1f}", f"{100 * c['wer_offline']:.1f}", _fmt(c["peak_rss_mb"])])
    return rows


def terminal(report: dict) -> str:
    ok = [c for c in report["configs"] if c["status"] == "ok"]
    parts = [_table(list(COLUMNS), [row(c, False) for c in ok], False), "(medians; p90 in the JSON and Markdown)"]
    if report["ratios"]:
        parts += ["", "edge-asr / anchor time, measured in alternation:",
                  _table(["edge-asr", "anchor", "short clip", "long file", "rounds"], ratio_rows(report), False)]
    return "\n".join(parts + _efficiency(report, False) + _tail(report, False) + [""] + _notes(report))


def markdown(report: dict) -> str:
    ok = [c for c in report["configs"] if c["status"] == "ok"]
    parts = [f"# edge-asr bench ({report['created']})", ""] + _notes(report) + [
        "", "Latency cells: median (p90) in seconds; dec ms/token in milliseconds.", "",
        _table(list(COLUMNS), [row(c, True) for c in ok], True)]
    if report["ratios"]:
        parts += ["", "## edge-asr / anchor time (alternating pairs; < 1 means edge-asr is faster)", "",
                  _table(["edge-asr", "anchor", "short clip", "long file", "rounds"], ratio_rows(report), True)]
    return "\n".join(parts + _efficiency(report, True) + _tail(report, True)) + "\n"
