"""`edge-asr listen`: live transcription from a microphone, or from a file at real-time pace or faster.

The terminal shows committed text as it is final and the changing tentative tail after it (dimmed).
On exit (end of file, Ctrl-C, or the device failing) everything pending is flushed as committed
text and written out, so nothing heard is lost.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from .errors import EdgeASRError
from .mic import MicrophoneError, MicrophoneSource, feed_file, list_input_devices
from .cli_options import values_from_args
from .streaming import StreamEvent, StreamingOptions, StreamingTranscriber
from .options import TranscribeOptions


class LiveDisplay:
    """Committed text in plain, the tentative tail dimmed, redrawn in place on a terminal; on a pipe,
    one line per committed event."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.tty = self.out.isatty()
        self.committed = ""

    def __call__(self, event: StreamEvent) -> None:
        if event.kind == "committed" and event.text:
            self.committed = (self.committed + " " + event.text).strip()
            if not self.tty:
                print(event.text, file=self.out, flush=True)
        if not self.tty:
            if event.kind == "dropped":
                print(f"[audio dropped {event.start:.1f}-{event.end:.1f} s: compute fell behind]", file=self.out)
            return
        tail = event.text if event.kind == "tentative" else ""
        line = self.committed[-200:] + (" \x1b[2m" + tail + "\x1b[0m" if tail else "")
        if event.kind == "end_of_utterance":
            self.out.write("\r\x1b[K" + self.committed[-200:] + "\n")
            self.committed = ""
        else:
            self.out.write("\r\x1b[K" + line)
        self.out.flush()

    def close(self) -> None:
        if self.tty and self.committed:
            self.out.write("\r\x1b[K" + self.committed[-200:] + "\n")
            self.out.flush()


def _event_dict(e: StreamEvent) -> dict:
    return e.to_dict()


def run_listen(args, model_loader) -> int:
    from .audio import load_audio

    if args.list_devices:
        try:
            devices = list_input_devices()
        except MicrophoneError as e:
            print(f"edge-asr: error: {e}", file=sys.stderr)
            return 2
        for d in devices:
            mark = "*" if d["default"] else " "
            print(f"{mark} {d['index']:3d}  {d['name']}  ({d['channels']} ch, {d['default_samplerate']:.0f} Hz)")
        if not devices:
            print("no input devices", file=sys.stderr)
        return 0
    try:
        samples = load_audio(args.file) if args.file else None
        model = model_loader(args)
    except (EdgeASRError, ValueError) as e:
        print(f"edge-asr: error: {e}", file=sys.stderr)
        return 2
    decode = TranscribeOptions(**values_from_args(args, TranscribeOptions))
    streaming = values_from_args(args, StreamingOptions)
    streaming["probe_tail_s"] = streaming.get("probe_tail_s") or None  # 0 turns probes off too
    events: list[StreamEvent] = []
    display = LiveDisplay() if args.output_format == "txt" and not args.output_dir else None
    try:  # options are checked against the model here, before any audio is captured
        options = StreamingOptions(transcribe=decode, **streaming)
        stream = StreamingTranscriber(model, options, on_event=events.append,
                                      background=bool(args.realtime or not args.file))
    except EdgeASRError as e:
        print(f"edge-asr: error: {e}", file=sys.stderr)
        return 2
    if display is not None:
        stream.add_callback(display)
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl-C: stop capturing, then flush
    error: str | None = None
    source = None
    try:
        if samples is not None:
            feed_file(samples, stream.feed, realtime=args.realtime, stop=stop)
        else:
            source = MicrophoneSource(stream.feed, device=args.input_device).start()
            print(f"listening on {source.info['name']} (Ctrl-C to stop)", file=sys.stderr)
            while not stop.is_set() and not source.failed.is_set():
                time.sleep(0.05)
            if source.failed.is_set():
                error = f"input device failed: {source.error}; the transcript so far is kept"
    except (MicrophoneError, EdgeASRError) as e:  # device failure, or decoding stopped (StreamError)
        error = str(e)
    finally:
        if source is not None:
            source.stop()
        signal.signal(signal.SIGINT, previous)
        try:
            text = stream.finish()
        except EdgeASRError as e:  # decoding failed: keep what was committed before it, say why
            text = stream.committed_text
            error = str(e)
        if display is not None:
            display.close()
    result = {"text": text, "duration": round(stream.received_s, 3), "language": stream.language,
              "events": [_event_dict(e) for e in events],
              "stats": {"updates": stream.stats.updates, "skipped_silent": stream.stats.skipped_silent,
                        "compute_s": round(stream.stats.total_s, 3), "encoder_s": round(stream.stats.encoder_s, 3),
                        "decoder_s": round(stream.stats.decoder_s, 3), "vad_s": round(stream.stats.vad_s, 3),
                        "max_buffer_s": round(stream.stats.max_buffer_s, 2)}}
    payload = json.dumps(result, ensure_ascii=False, indent=2) + "\n" if args.output_format == "json" else text + "\n"
    if args.output_dir:
        stem = Path(args.file).stem if args.file else datetime.now().strftime("listen-%Y%m%d-%H%M%S")
        path = Path(args.output_dir) / f"{stem}.{args.output_format}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(payload, encoding="utf-8")
        print(f"transcript -> {path}", file=sys.stderr)
    elif args.output_format == "json" or display is None:
        sys.stdout.write(payload)
    if error:
        print(f"edge-asr: error: {error}", file=sys.stderr)
        return 2 if not text else 1
    return 0
