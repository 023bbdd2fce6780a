"""`edge-asr bench COMMAND ...` (also `python -m edge_asr_bench COMMAND ...`): one entry to every bench.

    edge-asr bench run --quick                 # the main bench (cli.py); `edge-asr bench --quick` is the same
    edge-asr bench accuracy --manifest M --model tiny.en=FOLDER
    edge-asr bench quality | streaming | memory | quantization | server ...
    edge-asr bench COMMAND --help

Each command is a module's ``main(argv)`` (``python -m edge_asr_bench.COMMAND`` runs the same). This module
imports none of them until one is asked for, so a missing extra is reported with its install hint, and
``--help`` here needs no extra at all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# name -> (module, one line for --help). "run" first: options without a command go to it.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("edge_asr_bench.cli", "latency, RTF, memory, accuracy and streaming per model/precision, with "
                                  "faster-whisper/transformers anchors (the default: `edge-asr bench --quick` = "
                                  "`edge-asr bench run --quick`)"),
    "accuracy": ("edge_asr_bench.accuracy", "WER of model folders next to transformers (PyTorch fp32) on the same "
                                            "clips"),
    "quality": ("edge_asr_bench.quality", "greedy/beam 5 and fp32/int8 WER, timestamp agreement with transformers"),
    "streaming": ("edge_asr_bench.streaming", "streaming latency and WER on a simulated real-time clock"),
    "memory": ("edge_asr_bench.memory", "peak memory of transcription alone (a fresh process per file), "
                                        "edge-asr and faster-whisper"),
    "quantization": ("edge_asr_bench.quantization", "int8 schemes on the same fp32 graphs: WER and encoder/decoder "
                                                    "speed (needs the export extra too)"),
    "reliability": ("edge_asr_bench.reliability", "words and compute on 10 min of noise/music (tiny.en, base), fuzz totals"),
    "boost": ("edge_asr_bench.term_boost", "domain-term boosting: term recall and non-term WER for nothing / "
                                           "hotwords / boost weights, and the boost's decoding-time cost"),
    "server": ("edge_asr_bench.server_load", "load test of the local server on loopback: p50/p95 latency, throughput, "
                                             "errors, 503s under overload, server RSS (needs the server extra too)"),
}
DEFAULT = "run"

# Optional dependencies → the extra that brings them (anything else missing is a bug, not an install hint).
_EXTRAS = {
    "jiwer": "bench", "whisper_normalizer": "bench", "psutil": "bench", "cpuinfo": "bench", "matplotlib": "bench",
    "faster_whisper": "bench", "ctranslate2": "bench",
    "torch": "export", "transformers": "export", "onnx": "export", "huggingface_hub": "export",
    "edge_asr_bench": "bench",
    "starlette": "server", "uvicorn": "server", "multipart": "server",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-asr bench", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Benchmarks of edge-asr (needs edge-asr[bench]). Arguments that start with an option "
                    "(or none at all) go to `run`.",
        epilog="examples:\n"
               "  edge-asr bench --quick                  # = edge-asr bench run --quick (smoke run, tiny.en int8)\n"
               "  edge-asr bench run --models base --quant int8 --threads 1,2 --anchors none\n"
               "  edge-asr bench accuracy --manifest ../shared/audio/manifest.jsonl --model tiny.en=FOLDER\n"
               "  edge-asr bench COMMAND --help           # a command's own options")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")
    for name, (_, text) in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return p


def _missing_extra(e: ImportError) -> str | None:
    top = (e.name or "").split(".")[0]
    return _EXTRAS.get(top)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        build_parser().print_help()
        return 0
    if not argv or argv[0].startswith("-"):
        name, rest = DEFAULT, argv
    else:
        name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        build_parser().error(f"unknown command {name!r} (choose from {', '.join(COMMANDS)})")
    module = COMMANDS[name][0]
    try:
        return int(importlib.import_module(module).main(rest) or 0)
    except ImportError as e:
        extra = _missing_extra(e)
        if extra is None:
            raise
        print(f"edge-asr bench {name}: error: this command needs the {extra} extra: "
              f"pip install 'edge-asr[{extra}]' (missing: {e.name})", file=sys.stderr)
        return 3
