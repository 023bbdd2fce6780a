"""The PNG: short-clip latency and real-time factor against model size (parameters), one line per
system, precision and device (greedy solid, beam 5 dashed); random-weight points hollow."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .spec import RANDOM_LABEL


def plot(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    lines: dict[tuple, list[tuple[float, float, float, bool, str]]] = defaultdict(list)
    params_by_model = {c["spec"]["model"]: c["spec"].get("params_m") for c in report["configs"]
                       if c["spec"].get("params_m")}
    multi_threads = len({c["spec"]["threads"] for c in report["configs"] if c["status"] == "ok"}) > 1
    for c in report["configs"]:
        if c["status"] != "ok":
            continue
        s = c["spec"]
        params = s.get("params_m") or params_by_model.get(s["model"])
        if not params:
            continue
        key = (s["system"], s["quantization"], s["provider"], s["decoding"], s["threads"] if multi_threads else None,
               s.get("mode", "plain"))
        lines[key].append((params, c["latency"]["short_clip_s"]["median"], c["long_file"]["rtf"],
                           s["weights"] == "random", s["model"]))
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (key, pts) in enumerate(sorted(lines.items(), key=lambda kv: str(kv[0]))):
        system, quant, device, decoding, threads, mode = key
        pts.sort()
        label = f"{system} {quant} {device} {decoding}" + (f" {threads}t" if threads else "") + \
            (f" [{mode}]" if mode != "plain" else "")
        style = "--" if decoding == "beam5" else "-"
        color = colors[i % len(colors)]
        for ax, idx in ((axes[0], 1), (axes[1], 2)):
            ax.plot([p[0] for p in pts], [p[idx] for p in pts], style, color=color, label=label)
            for p in pts:
                ax.plot(p[0], p[idx], "o", color=color, mfc="none" if p[3] else color, ms=7)
    for ax, title, ylabel in ((axes[0], f"end-to-end latency, {report['workload']['short']['duration_s']} s clip",
                               "seconds (median)"),
                              (axes[1], f"real-time factor, {report['workload']['long']['duration_s']:.0f} s file",
                               "processing time / audio time (median)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _pos: f"{v:g}")  # 0.2, 40, 1000 instead of 2x10^-1
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(plain)
        ax.tick_params(which="minor", labelsize=7)
        ax.set_xlabel("model parameters (millions)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    seen = {}
    for c in report["configs"]:
        if c["status"] == "ok" and (c["spec"].get("params_m") or 0) > 0:
            seen[c["spec"]["model"]] = c["spec"]["params_m"]
    for name, p in seen.items():
        axes[0].annotate(name, (p, axes[0].get_ylim()[0]), textcoords="offset points", xytext=(2, 4), fontsize=7,
                         rotation=90, alpha=0.6)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    cpu = report["machine"]["cpu"]["model"]
    fig.suptitle(f"edge-asr bench on {cpu} ({report['machine']['cpu']['logical_cores']} cores)"
                 + (f" - hollow points: {RANDOM_LABEL}" if any(p[3] for v in lines.values() for p in v) else ""),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
