"""`edge-asr bench run` (also `edge-asr bench` followed by options, `python -m edge_asr_bench.cli`): latency,
real-time factor, memory and accuracy per configuration, side by side with faster-whisper and transformers
on the same weights. The other benches are `edge-asr bench accuracy|quality|streaming|memory|quantization`
(commands.py).

    edge-asr bench                                   # tiny.en and base, int8 and fp32, greedy and beam 5
    edge-asr bench --quick                           # smoke run: tiny.en int8 greedy, short settings
    edge-asr bench --models base --quant int8 --threads 1,2 --decoding greedy --anchors none
    edge-asr bench --models ./my-model --out results/  # any model folder
    edge-asr bench --random-sizes small,medium       # random weights, latency only
    edge-asr bench --models base --quant int8 --decoding greedy --edge-modes plain,tail2,batch8 --anchor-modes plain,batch8

Each --edge-modes value is one more edge-asr configuration (own worker, id suffix /MODE, rows, ratios
against sequential faster-whisper and, for batchN, faster-whisper's BatchedInferencePipeline at the same N
when --anchor-modes has it). The report's encoder efficiency table gives each edge-asr configuration's
encoder GFLOP/s (analytic FLOPs of a 30 s window / measured encoder time) against the machine's fp32 peak.

Writes bench.json (schema.py), bench.md and bench.png into --out and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

# Hard requirements of the bench (the bench extra): imported here so `edge-asr bench` can tell the user
# to install the extra instead of failing half way through a run.
import jiwer  # noqa: F401
import whisper_normalizer  # noqa: F401

from .anchor_sources import ANCHORS
from .corpus import default_manifest
from .plan import BenchConfig
from .spec import DECODINGS, MODES_HELP, PLAIN, Settings, mode_name, parse_mode

FULL = {"models": "tiny.en,base", "quant": "int8,fp32", "decoding": "greedy,beam5", "repeats": 5, "long_repeats": 3,
        "warmup": 1, "forced_tokens": 100, "ratio_rounds": 3, "long_seconds": None, "accuracy_clips": None}
# --quick: one small configuration that still exercises every measurement (a smoke test, not numbers).
QUICK = {"models": "tiny.en", "quant": "int8", "decoding": "greedy", "repeats": 2, "long_repeats": 1, "warmup": 1,
         "forced_tokens": 24, "ratio_rounds": 1, "long_seconds": 30.0, "accuracy_clips": 3}


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _pairs(values: list[str], flag: str) -> tuple[tuple[str, str], ...]:
    out = []
    for v in values:
        if "=" not in v:
            raise SystemExit(f"edge-asr bench: error: {flag} wants NAME=DIR, got {v!r}")
        name, path = v.split("=", 1)
        out.append((name, str(Path(path).expanduser())))
    return tuple(out)


def _modes(value: str, system: str, flag: str) -> tuple[str, ...]:
    """Canonical mode names (duplicates dropped, order kept); exits with the parse error."""
    try:
        names = [mode_name(parse_mode(v, system)) for v in _csv(value)] or [PLAIN]
    except ValueError as e:
        raise SystemExit(f"edge-asr bench: error: {flag}: {e}") from None
    return tuple(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-asr bench run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument_group("axes")
    a.add_argument("--models", "-m", help="pulled names and/or model folders, comma separated (default: tiny.en,base)")
    a.add_argument("--quant", "-q", help="precisions for pulled names: int8,fp32,fp16 (default: int8,fp32)")
    a.add_argument("--device", "--provider", dest="provider", default="cpu",
                   help="execution devices: cpu, cuda or onnxruntime provider names, comma separated (default: cpu)")
    a.add_argument("--threads", default="2", help="onnxruntime / CTranslate2 threads, comma separated (default: 2)")
    a.add_argument("--decoding", help=f"{','.join(DECODINGS)} (default: both)")
    a.add_argument("--edge-modes", default=PLAIN, metavar="MODES",
                   help=f"edge-asr transcribe modes, comma separated (default: plain): {MODES_HELP}")
    a.add_argument("--anchors", default=",".join(ANCHORS), help="faster-whisper,transformers or none")
    a.add_argument("--anchor-modes", default=PLAIN, metavar="MODES",
                   help="faster-whisper modes, comma separated (default: plain): plain (sequential, no VAD); "
                        "batchN: BatchedInferencePipeline(model).transcribe(..., batch_size=N) with its defaults "
                        "(VAD on, no timestamps). transformers always runs plain")
    a.add_argument("--random-sizes", default="", help="small,medium,large-v3,large-v3-turbo: random weights, latency only")
    a.add_argument("--random-quant", default="int8", help="precisions for --random-sizes (default: int8)")
    a.add_argument("--random-model", action="append", default=[], metavar="FOLDER",
                   help="time an existing folder as random weights (forced decoding, no accuracy)")
    m = p.add_argument_group("measurement")
    m.add_argument("--quick", action="store_true", help="short smoke configuration (tiny.en int8 greedy, 2 repeats)")
    m.add_argument("--repeats", type=int, help="timed runs per figure after warm-up (default 5)")
    m.add_argument("--long-repeats", type=int, help="timed runs of the long file (default 3)")
    m.add_argument("--warmup", type=int, help="untimed runs first (default 1)")
    m.add_argument("--forced-tokens", type=int, help="decoder steps timed per window (default 100)")
    m.add_argument("--ratio-rounds", type=int, help="alternating edge/anchor rounds per pair; 0 skips ratios (default 3)")
    m.add_argument("--manifest", type=Path, default=None,
                   help=f"clips (manifest.jsonl); default {default_manifest()} when present, else (or with "
                        "'none') the bundled sample")
    m.add_argument("--long-seconds", type=float, help="cap the long file (whole clips) at about this many seconds")
    m.add_argument("--accuracy-clips", type=int, help="score only the first N clips")
    m.add_argument("--no-accuracy", action="store_true", help="skip WER/CER")
    m.add_argument("--no-streaming", action="store_true", help="skip streaming first-partial/commit latency")
    m.add_argument("--ct2", action="append", default=[], metavar="NAME=DIR", help="CTranslate2 folder for a model")
    m.add_argument("--hf", action="append", default=[], metavar="NAME=DIR", help="transformers checkpoint for a model")
    m.add_argument("--job-timeout", type=float, default=3600.0, help="seconds before a configuration is abandoned")
    o = p.add_argument_group("output")
    o.add_argument("--out", "-o", type=Path, default=Path("bench-results"), help="folder for bench.json/.md/.png")
    o.add_argument("--note", default=None, help="free text stored in the report (e.g. 'machine busy')")
    o.add_argument("--no-plot", action="store_true", help="do not draw bench.png")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("--render", type=Path, default=None, metavar="BENCH_JSON",
                   help="measure nothing: redraw the table, bench.md and bench.png of an earlier bench.json into --out")
    return p


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    preset = QUICK if args.quick else FULL
    pick = lambda name: getattr(args, name) if getattr(args, name) is not None else preset[name]  # noqa: E731
    anchors = () if args.anchors.strip() in ("", "none") else _csv(args.anchors)
    unknown = set(anchors) - set(ANCHORS) | set(_csv(pick("decoding"))) - set(DECODINGS)
    if unknown:
        raise SystemExit(f"edge-asr bench: error: unknown anchor or decoding: {', '.join(sorted(unknown))}")
    # "none": the bundled sample only (runs anywhere; what the tests use when ../shared is absent).
    manifest = None if str(args.manifest) == "none" else (args.manifest or default_manifest())
    if args.manifest is not None and manifest is not None and not manifest.is_file():
        raise SystemExit(f"edge-asr bench: error: no manifest at {manifest}")
    settings = Settings(warmup=pick("warmup"), repeats=pick("repeats"), long_repeats=pick("long_repeats"),
                        forced_tokens=pick("forced_tokens"), ratio_rounds=pick("ratio_rounds"),
                        accuracy=not args.no_accuracy)
    return BenchConfig(
        models=_csv(pick("models")) if not (args.models is None and (args.random_sizes or args.random_model)) else (),
        quantizations=_csv(pick("quant")), providers=_csv(args.provider),
        threads=tuple(int(t) for t in _csv(args.threads)), decodings=_csv(pick("decoding")), anchors=anchors,
        edge_modes=_modes(args.edge_modes, "edge-asr", "--edge-modes"),
        anchor_modes=_modes(args.anchor_modes, "faster-whisper", "--anchor-modes"),
        random_sizes=_csv(args.random_sizes), random_quantizations=_csv(args.random_quant),
        random_models=tuple(args.random_model), settings=settings,
        manifest=manifest if manifest is not None and manifest.is_file() else None, long_seconds=pick("long_seconds"),
        accuracy_clips=pick("accuracy_clips"), accuracy=not args.no_accuracy, streaming=not args.no_streaming,
        ct2=_pairs(args.ct2, "--ct2"),
        hf=_pairs(args.hf, "--hf"), job_timeout_s=args.job_timeout, quick=args.quick, note=args.note)


def write_outputs(report: dict, out: Path, draw: bool) -> list[Path]:
    from .report import markdown

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "bench.json", out / "bench.md"]
    paths[0].write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(report), encoding="utf-8")
    if draw:
        try:
            from .plot import plot

            paths.append(plot(report, out / "bench.png"))
        except ImportError as e:
            print(f"edge-asr bench: no plot ({e.name} is not installed: pip install 'edge-asr[bench]')", file=sys.stderr)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    from .report import terminal
    from .runner import run_bench
    from .schema import validate

    args = build_parser().parse_args(argv)
    if args.render is not None:
        report = json.loads(args.render.read_text())
        print(terminal(report))
        paths = write_outputs(report, args.out, not args.no_plot)
        print("\nwrote " + ", ".join(str(p) for p in paths))
        return 0
    config = config_from_args(args)
    if not (config.models or config.random_sizes or config.random_models):
        print("edge-asr bench: error: nothing to measure (give --models, --random-sizes or --random-model)",
              file=sys.stderr)
        return 2
    report = run_bench(config, log=lambda msg: print(msg, file=sys.stderr), progress=not args.no_progress)
    print(terminal(report))
    paths = write_outputs(report, args.out, not args.no_plot)
    print("\nwrote " + ", ".join(str(p) for p in paths))
    problems = validate(report)
    for problem in problems:
        print(f"edge-asr bench: warning: report check: {problem}", file=sys.stderr)
    measured = [c for c in report["configs"] if c["status"] == "ok"]
    return 0 if measured and not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
