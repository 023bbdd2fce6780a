"""The caption app's engine, without Qt: audio sources, the stream session, the display state, saving.

The window (window.py) only draws what this module decides, so all of it can be tested (and reused by a
different UI toolkit) without a display.

Threads: a session runs its source and the ``StreamingTranscriber`` on its own thread; events reach the UI
through a thread-safe queue that the UI drains on its own thread (``CaptionSession.poll``), because
streaming callbacks run on the decoding thread and Qt widgets may only be touched from the GUI thread.
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import edge_asr
from edge_asr.audio import load_audio
from edge_asr.mic import MicrophoneError, MicrophoneSource, feed_file, list_input_devices

Sink = Callable[..., None]  # StreamingTranscriber.feed(samples, sample_rate)


# ---- audio sources -------------------------------------------------------------------------------------
class AudioSource(Protocol):
    live: bool  # audio arrives in real time: decode on the transcriber's worker thread, drop on overload
    label: str

    def run(self, sink: Sink, stop: threading.Event) -> None:
        """Feed audio into ``sink`` until the source ends or ``stop`` is set; raise on failure."""


@dataclass(frozen=True)
class FileSource:
    """An audio file, at real-time pace (a demo of live captions) or as fast as the CPU decodes."""

    path: str
    realtime: bool = True

    @property
    def live(self) -> bool:
        return self.realtime

    @property
    def label(self) -> str:
        return Path(self.path).name

    def run(self, sink: Sink, stop: threading.Event) -> None:
        feed_file(load_audio(self.path), sink, realtime=self.realtime, stop=stop)


@dataclass(frozen=True)
class MicSource:
    """A sounddevice input device (None: the system default)."""

    device: int | str | None = None
    live: bool = True

    @property
    def label(self) -> str:
        return "default microphone" if self.device is None else f"input device {self.device}"

    def run(self, sink: Sink, stop: threading.Event) -> None:
        mic = MicrophoneSource(sink, device=self.device).start()
        try:
            while not stop.wait(0.05):
                if mic.failed.is_set():
                    raise MicrophoneError(f"input device failed: {mic.error}; the transcript so far is kept")
        finally:
            mic.stop()


@dataclass(frozen=True)
class InputDevices:
    """What the device picker shows: the input devices, or why there are none."""

    devices: tuple[dict, ...] = ()
    problem: str | None = None  # no sounddevice, no PortAudio, no devices: the message for the UI


def input_devices() -> InputDevices:
    try:
        devices = tuple(list_input_devices())
    except MicrophoneError as e:  # sounddevice or PortAudio missing, or the host API failed
        return InputDevices(problem=str(e))
    if not devices:
        return InputDevices(problem="no audio input device found (no microphone, or no permission to use it); "
                                    "open a file instead")
    return InputDevices(devices)


# ---- display state -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """What one event changes on screen: committed text appended (then maybe a line break), the
    tentative tail replaced, a status message."""

    committed: str = ""
    new_line: bool = False
    tentative: str = ""
    status: str | None = None


@dataclass
class CaptionState:
    """Committed lines (one per utterance; never rewritten) and the tentative tail after them."""

    lines: list[str] = field(default_factory=lambda: [""])
    tentative: str = ""
    committed_events: list[edge_asr.StreamEvent] = field(default_factory=list)

    def apply(self, event: edge_asr.StreamEvent) -> Change:
        if event.kind == "committed" and event.text:
            # The words keep Whisper's leading spaces; joined they are exactly the stream's committed text.
            text = "".join(w for _, _, w in event.words) if event.words else " " + event.text
            if not self.lines[-1]:
                text = text.lstrip()
            self.lines[-1] += text
            self.tentative = ""
            self.committed_events.append(event)
            return Change(committed=text)
        if event.kind == "tentative":
            self.tentative = event.text
            return Change(tentative=self.tentative)
        if event.kind == "end_of_utterance":
            self.tentative = ""
            if self.lines[-1]:
                self.lines.append("")
                return Change(new_line=True)
            return Change()
        if event.kind == "dropped":
            return Change(tentative=self.tentative, status=f"audio {event.start:.1f}-{event.end:.1f} s skipped: "
                                                           "the CPU fell behind (try a smaller model)")
        if event.kind == "error":
            return Change(tentative=self.tentative, status=f"error: {event.text}")
        return Change(tentative=self.tentative)

    @property
    def committed_text(self) -> str:
        """All committed text, as ``StreamingTranscriber.committed_text`` has it."""
        return " ".join(line for line in self.lines if line).strip()

    def transcript(self) -> str:
        return "\n".join(line for line in self.lines if line)


def save_transcript(state: CaptionState, path: str | Path) -> Path:
    """``.json``: the committed events (text, audio start/end, word times); anything else: plain text,
    one line per utterance."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        payload = json.dumps({"text": state.committed_text,
                              "events": [e.to_dict() for e in state.committed_events]}, ensure_ascii=False, indent=2)
    else:
        payload = state.transcript()
    path.write_text(payload + "\n", encoding="utf-8")
    return path


# ---- the session -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SessionEnded:
    """Last item of a session's queue: the final committed text, and the error that ended it, if any."""

    text: str
    error: str | None = None


class CaptionSession:
    """One run of a source through a :class:`edge_asr.StreamingTranscriber` on a background thread.

    ``stop()`` ends capture; everything heard is then decoded and committed (``finish``), so the last
    words are not lost. ``poll()`` (UI thread) returns the events since the last call, ending with a
    :class:`SessionEnded`."""

    def __init__(self, model: edge_asr.WhisperModel, source: AudioSource,
                 options: edge_asr.StreamingOptions | None = None):
        self.source = source
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        # Live sources decode on the transcriber's worker (the audio callback must never wait for a
        # decode, and overload drops audio with an event); a fast file decodes inline on our thread.
        self.stream = edge_asr.StreamingTranscriber(model, options, on_event=self._queue.put,
                                                    background=source.live)
        self._thread = threading.Thread(target=self._run, name="caption-session", daemon=True)

    def start(self) -> CaptionSession:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def poll(self) -> list:
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _run(self) -> None:
        error = None
        try:
            self.source.run(self.stream.feed, self._stop)
        except Exception as e:  # device failure, unreadable file, decoding failed: the UI must hear of it
            error = _message(e)
        try:
            text = self.stream.finish()
        except Exception as e:  # decoding failed: keep what was committed before it
            text, error = self.stream.committed_text, error or _message(e)
        self._queue.put(SessionEnded(text, error))


def _message(e: Exception) -> str:
    """Library errors say what to do already; anything else is shown with its type."""
    return str(e) if isinstance(e, (edge_asr.EdgeASRError, OSError)) else f"{type(e).__name__}: {e}"
