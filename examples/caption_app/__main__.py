"""`python -m caption_app`: open the live-caption window."""

from __future__ import annotations

import argparse
import sys

import edge_asr


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="caption_app", description="Live captions from a microphone or a file (edge-asr).")
    p.add_argument("--model", default="base", help="model name pulled by `edge-asr pull` or a model folder "
                                                  "(default: base; tiny.en is faster on slow CPUs)")
    p.add_argument("--language", default=None, help="language code (default: detected; English-only models: en)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: physical cores)")
    p.add_argument("--file", default=None, help="preselect an audio file as the source")
    p.add_argument("--fast", action="store_true", help="feed files as fast as the CPU decodes (default: real-time pace)")
    p.add_argument("--start", action="store_true", help="start at once")
    p.add_argument("--screenshot", metavar="PNG", help="with --start: save a screenshot when the stream ends, then quit")
    args = p.parse_args(argv)

    from PySide6.QtWidgets import QApplication  # after argparse, so --help works without a display

    from .window import CaptionWindow

    try:
        model = edge_asr.load_model(args.model, threads=args.threads)
        options = edge_asr.StreamingOptions.from_fields(language=args.language)
    except edge_asr.EdgeASRError as e:
        print(f"caption_app: error: {e}", file=sys.stderr)
        return 2
    app = QApplication(sys.argv[:1])
    window = CaptionWindow(model, options, file=args.file, realtime=not args.fast)
    window.show()
    if args.screenshot:
        window.finished.connect(lambda _: (window.grab().save(args.screenshot), app.quit()))
    if args.start:
        window.start()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
