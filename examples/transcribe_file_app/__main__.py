"""`python -m transcribe_file_app`: the window, or ``--headless`` to print the transcript (no display)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import edge_asr


def default_model() -> str:
    """A model folder shipped next to the (frozen) app, else the cached "base"."""
    here = Path(sys.executable if getattr(sys, "frozen", False) else __file__).resolve().parent
    bundled = here / "model"
    return str(bundled) if (bundled / "manifest.json").is_file() else "base"


def headless(model: edge_asr.WhisperModel, audio: str, **options) -> int:
    from .job import Finished, Started, TranscriptionJob

    job = TranscriptionJob(model, audio, **options).start()
    try:
        while True:
            for item in job.poll():
                if isinstance(item, Started):
                    print(f"language {item.info.language}, {item.info.duration:.1f} s", file=sys.stderr)
                elif isinstance(item, Finished):
                    if item.error:
                        print(f"transcribe_file_app: error: {item.error}", file=sys.stderr)
                        return 2
                    print(item.text)
                    return 130 if item.cancelled else 0
                else:
                    print(f"[{item.start:6.2f} -> {item.end:6.2f}] {item.text.strip()}", file=sys.stderr, flush=True)
            time.sleep(0.05)
    except KeyboardInterrupt:  # Ctrl-C: stop after the current window, print what was transcribed
        job.cancel()
        job.join()
        for item in job.poll():
            if isinstance(item, Finished):
                print(item.text)
        return 130


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="transcribe_file_app",
                                description="Transcribe an audio file with edge-asr, with a Cancel button.")
    p.add_argument("audio", nargs="?", help="audio file (required with --headless)")
    p.add_argument("--model", default=None,
                   help="model name or folder (default: a 'model' folder next to the app, else base)")
    p.add_argument("--language", default=None, help="language code (default: detected)")
    p.add_argument("--vad", action="store_true", help="skip silence and music with Silero VAD (vad_filter)")
    p.add_argument("--headless", action="store_true",
                   help="no window: print each segment to stderr as it is decoded and the text to stdout")
    args = p.parse_args(argv)
    if args.headless and not args.audio:
        p.error("--headless needs an audio file")
    try:
        model = edge_asr.load_model(args.model or default_model())
    except edge_asr.EdgeASRError as e:
        print(f"transcribe_file_app: error: {e}", file=sys.stderr)
        return 2
    options = {"language": args.language, "vad_filter": args.vad}
    if args.headless:
        return headless(model, args.audio, **options)

    from PySide6.QtWidgets import QApplication  # only the window needs Qt

    from .window import TranscribeWindow

    app = QApplication(sys.argv[:1])
    window = TranscribeWindow(model, args.audio, **options)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
