"""A cancellable transcription on a background thread, without Qt.

``WhisperModel.transcribe_segments`` decodes one 30 s window each time its generator needs more, so
cancelling is just not asking for more: the job stops after the segment in hand and closes the
generator, which frees the audio features. Results reach the UI through a queue it drains on its own
thread (``poll``), so no toolkit object is touched from the worker.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

import edge_asr


@dataclass(frozen=True)
class Started:
    info: edge_asr.TranscriptionInfo  # language, duration: known before the first window is decoded


@dataclass(frozen=True)
class Finished:
    text: str
    cancelled: bool
    error: str | None = None


class TranscriptionJob:
    """``poll()`` yields, in order: :class:`Started`, each :class:`edge_asr.Segment`, then :class:`Finished`."""

    def __init__(self, model: edge_asr.WhisperModel, audio, **options):
        self.model, self.audio, self.options = model, audio, options
        self._queue: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="transcription-job", daemon=True)
        self.windows_requested = 0  # how many times the generator was advanced (tests: cancel stops it)

    def start(self) -> TranscriptionJob:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop after the segment being produced (at most the current 30 s window is still decoded)."""
        self._cancel.set()

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
        texts: list[str] = []
        try:
            segments, info = self.model.transcribe_segments(self.audio, **self.options)
        except Exception as e:  # unreadable audio, bad options: the UI must hear of it
            self._queue.put(Finished("", False, _message(e)))
            return
        self._queue.put(Started(info))
        error = None
        try:
            while not self._cancel.is_set():
                self.windows_requested += 1
                segment = next(segments, None)
                if segment is None:
                    break
                texts.append(segment.text.strip())
                self._queue.put(segment)
        except Exception as e:  # decoding failed: keep the segments so far
            error = _message(e)
        finally:
            segments.close()  # nothing more is decoded; buffers are freed now
        self._queue.put(Finished(" ".join(t for t in texts if t), self._cancel.is_set(), error))


def _message(e: Exception) -> str:
    """Library errors say what to do already; anything else is shown with its type."""
    return str(e) if isinstance(e, (edge_asr.EdgeASRError, OSError)) else f"{type(e).__name__}: {e}"
