"""Live transcription: feed PCM chunks, get tentative and committed text as events.

Policy (whisper_streaming's LocalAgreement with VAD endpointing):
- The audio since the last commit point is kept in a buffer and re-transcribed (with word timing)
  every ``step_s`` of new audio. Committed text is fed back as the prompt.
- A word is committed when ``agreement`` consecutive hypotheses agree on it (the longest common
  prefix of their words). Committed text never changes; the rest is tentative.
- At an utterance's start (nothing tentative) the step is ``first_step_s`` and the decode is a cheap
  reduced-window "probe" (buffer + ``probe_tail_s`` of silence): its text shows as tentative at once
  but never counts towards agreement, so commits always come from full 30 s window decodes.
- Silero VAD endpointing: when the buffer ends in ``endpoint_silence_s`` of silence after speech, the
  whole hypothesis is committed and an end-of-utterance event is emitted. Buffers holding no speech
  are not decoded at all (no hallucinated text, no wasted compute).
- The buffer is cut at committed word boundaries, and force-committed when it reaches
  ``max_buffer_s``, so memory and per-update work stay bounded however long the session runs.
- If compute falls behind real time, pending audio is taken in larger steps; past ``max_lag_s`` the
  oldest pending audio is dropped with an explicit "dropped" event. Committed text is never lost.

Thread safety: ``feed`` may be called from any thread (e.g. an audio callback); it only queues audio.
With ``background=True`` a worker thread decodes; otherwise ``feed`` decodes inline (deterministic,
as fast as possible: files and tests). Events go to ``on_event`` callbacks and to ``events()``.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from .audio import to_float32, to_mono
from .constants import SAMPLE_RATE
from .errors import StreamError
from .transcribe import TranscribeOptions, Transcriber, token_budget
from .vad import SileroVad, default_vad

EVENT_KINDS = ("tentative", "committed", "end_of_utterance", "dropped", "lag")


@dataclass(frozen=True)
class StreamingOptions:
    language: str | None = None  # None: detected on the first decode, then kept
    task: str = "transcribe"
    step_s: float = 1.0  # new audio between two decodes
    first_step_s: float = 0.25  # shorter step at an utterance's start, so new speech shows up fast
    # At an utterance's start (nothing tentative yet) decode with a reduced encoder window: the buffer
    # plus this much silence, so the first words show as tentative text within a fraction of a second.
    # Such "probe" hypotheses are shown, never committed from: commits come from full-window decodes,
    # so accuracy is unchanged. None: every decode uses the full window.
    probe_tail_s: float | None = 1.0
    agreement: int = 2  # LocalAgreement-n: hypotheses that must agree before a word is committed
    endpoint_silence_s: float = 0.6  # trailing silence that ends an utterance (VAD)
    vad: bool = True
    vad_threshold: float = 0.5
    trim_s: float = 8.0  # past this, cut the buffer at a committed clause end, keeping recent context
    max_buffer_s: float = 15.0  # force-commit and cut when the buffer still reaches this
    max_lag_s: float = 10.0  # pending (undecoded) audio beyond this is dropped, with an event
    prompt_chars: int = 200  # committed text fed back as the prompt
    encoder_tail_s: float | None = None  # reduced encoder window (see TranscribeOptions); None = 30 s
    beam_size: int | None = None
    hotwords: str | None = None
    initial_prompt: str | None = None


@dataclass(frozen=True)
class StreamEvent:
    kind: str  # one of EVENT_KINDS
    text: str  # committed: the newly committed words; tentative: the whole uncommitted tail
    start: float  # audio time (s) of the text (or of the dropped span)
    end: float
    emitted_at: float  # audio position (s of input received) when the event was emitted
    compute_s: float = 0.0  # processing time of the update that produced it
    words: tuple[tuple[float, float, str], ...] = ()  # (start, end, word) of the text, when timed


@dataclass
class _Word:
    start: float
    end: float
    word: str

    @property
    def key(self) -> str:
        return re.sub(r"[^\w']", "", self.word.lower())


@dataclass
class UpdateStats:
    """Where an update's time went (seconds), for benchmarks and --stats."""

    updates: int = 0
    probes: int = 0  # of which reduced-window probes that showed text (utterance starts)
    skipped_silent: int = 0
    total_s: float = 0.0
    vad_s: float = 0.0
    decode_s: float = 0.0  # everything in the decode step (encoder, decoder, features, word timing)
    encoder_s: float = 0.0  # of which in the encoder graph
    decoder_s: float = 0.0  # of which in the decoder graph (all steps, word-timing pass included)
    audio_s: float = 0.0
    max_buffer_s: float = 0.0
    per_update: list[float] = field(default_factory=list)


def _cut_repetition(words: list[_Word], min_phrase: int = 3) -> list[_Word]:
    """Truncate a looping hypothesis ("A B C. A B C. A B C.") before its first immediate repeat of a
    phrase of ``min_phrase``+ words. Only applied to decodes whose text compresses suspiciously well."""
    keys = [w.key for w in words]
    for i in range(min_phrase, len(keys)):
        for k in range(min_phrase, i + 1):
            if i + k <= len(keys) and keys[i:i + k] == keys[i - k:i]:
                return words[:i]
    return words


class StreamingTranscriber:
    """Incremental transcription of a live audio stream with a loaded :class:`~edge_asr.WhisperModel`."""

    def __init__(self, model, options: StreamingOptions | None = None, *,
                 on_event: Callable[[StreamEvent], None] | None = None, background: bool = False,
                 vad: SileroVad | None = None):
        self.model = model
        self.options = options or StreamingOptions()
        self._callbacks = [on_event] if on_event else []
        self._events: queue.Queue = queue.Queue()
        self._vad = vad or (default_vad() if self.options.vad else None)
        self._lock = threading.Lock()  # guards _pending and _received
        self._pending: list[np.ndarray] = []
        self._pending_len = 0
        self._received = 0  # samples received (16 kHz)
        self._resampler = None
        self._in_rate: int | None = None
        # Decoder-side state (worker thread only)
        self._buffer = np.zeros(0, np.float32)
        self._buffer_offset = 0.0  # audio time of buffer[0]
        self._since_decode = 0
        self._committed: list[_Word] = []
        self._hypothesis: list[_Word] = []
        self._history: list[list[_Word]] = []  # the previous hypotheses (uncommitted parts)
        self._language = self.options.language
        self._in_utterance = False
        self.stats = UpdateStats()
        self._closed = False
        self._worker: threading.Thread | None = None
        self._wake = threading.Event()
        if background:
            self._worker = threading.Thread(target=self._run_worker, name="edge-asr-stream", daemon=True)
            self._worker.start()

    # ---- input -------------------------------------------------------------------------------
    def feed(self, chunk, sample_rate: int = SAMPLE_RATE) -> None:
        """Queue PCM samples (any dtype, mono or (frames, channels), any rate, any chunk size)."""
        if self._closed:
            raise StreamError("the stream is finished; create a new StreamingTranscriber")
        samples = to_mono(to_float32(np.asarray(chunk)))
        if sample_rate != SAMPLE_RATE:
            if self._in_rate not in (None, sample_rate):
                raise StreamError(f"sample rate changed mid-stream ({self._in_rate} -> {sample_rate})")
            if self._resampler is None:
                import soxr

                self._resampler = soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
            samples = self._resampler.resample_chunk(samples)
        self._in_rate = sample_rate
        with self._lock:
            if samples.size:
                self._pending.append(np.ascontiguousarray(samples, np.float32))
                self._pending_len += samples.size
            self._received += samples.size
        if self._worker is not None:
            self._wake.set()
        else:
            self._process(final=False)

    def finish(self) -> str:
        """Decode everything pending, commit it all, stop the worker; return the committed transcript."""
        if self._closed:
            return self.committed_text
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            with self._lock:
                if tail.size:
                    self._pending.append(tail)
                    self._pending_len += tail.size
                self._received += tail.size
        self._closed = True
        if self._worker is not None:
            self._wake.set()
            self._worker.join()
        else:
            self._process(final=True)
        self._events.put(None)
        return self.committed_text

    # ---- output ------------------------------------------------------------------------------
    def add_callback(self, fn: Callable[[StreamEvent], None]) -> None:
        self._callbacks.append(fn)

    def events(self, timeout: float | None = None) -> Iterator[StreamEvent]:
        """Iterate over events until finish(); blocks for the next one (or ``timeout`` seconds)."""
        while True:
            try:
                event = self._events.get(timeout=timeout)
            except queue.Empty:
                return
            if event is None:
                return
            yield event

    @property
    def committed_text(self) -> str:
        return "".join(w.word for w in self._committed).strip()

    @property
    def tentative_text(self) -> str:
        return "".join(w.word for w in self._hypothesis).strip()

    @property
    def received_s(self) -> float:
        return self._received / SAMPLE_RATE

    @property
    def lag_s(self) -> float:
        """Audio received but not yet decoded, in seconds."""
        with self._lock:
            return (self._pending_len + self._since_decode) / SAMPLE_RATE

    # ---- processing --------------------------------------------------------------------------
    def _emit(self, kind: str, text: str, start: float, end: float, compute_s: float = 0.0,
              words: list[_Word] | None = None) -> None:
        timed = tuple((round(w.start, 3), round(w.end, 3), w.word) for w in words or [])
        event = StreamEvent(kind, text, round(start, 3), round(end, 3), round(self.received_s, 3), round(compute_s, 4),
                            timed)
        self._events.put(event)
        for fn in self._callbacks:
            fn(event)

    def _run_worker(self) -> None:
        while True:
            self._wake.wait(timeout=0.1)
            self._wake.clear()
            final = self._closed
            self._process(final=final)
            if final:
                return

    def _take_pending(self, limit: int | None = None) -> np.ndarray:
        """Up to ``limit`` queued samples (all when None), oldest first."""
        with self._lock:
            if limit is None or limit >= self._pending_len:
                chunks, self._pending, self._pending_len = self._pending, [], 0
                return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
            joined = np.concatenate(self._pending)
            self._pending, self._pending_len = [joined[limit:]], joined.size - limit
            return joined[:limit]

    def _process(self, final: bool) -> None:
        """Decode at every ``step_s`` boundary of received audio, so results do not depend on how the
        audio was chunked. When more than ``max_buffer_s`` is queued (compute fell behind), take it all
        at once: one larger step catches up instead of a backlog of updates."""
        if self._worker is not None:
            self._drop_backlog()
        while True:
            # Short steps while nothing shows (an utterance's start), then step_s.
            step_s = self.options.step_s if self._hypothesis or self._history \
                else min(self.options.first_step_s, self.options.step_s)
            step = max(1, int(step_s * SAMPLE_RATE))
            behind = self._pending_len > self.options.max_buffer_s * SAMPLE_RATE
            new = self._take_pending(None if (behind or final) else step - self._since_decode)
            if new.size:
                self._append(new)
            if self._since_decode >= step or (final and self._pending_len == 0):
                self._update(final and self._pending_len == 0)
            if self._pending_len == 0 or (not final and self._pending_len < step - self._since_decode):
                break

    def _drop_backlog(self) -> None:
        """Real-time mode only: audio queued beyond ``max_lag_s`` is dropped (oldest first), with an event;
        what was committed before the gap stays committed."""
        limit = int(self.options.max_lag_s * SAMPLE_RATE)
        with self._lock:
            excess = self._pending_len - limit
            if excess <= 0:
                return
            joined = np.concatenate(self._pending)
            self._pending, self._pending_len = [joined[excess:]], joined.size - excess
        start = self._buffer_offset + self._buffer.size / SAMPLE_RATE
        if self._buffer.size:  # decode what is buffered before the gap, then start after it
            self._update(final=True)
        self._buffer = np.zeros(0, np.float32)
        self._buffer_offset = start + excess / SAMPLE_RATE
        self._since_decode = 0
        self._emit("dropped", "", start, self._buffer_offset)

    def _append(self, new: np.ndarray) -> None:
        self._buffer = np.concatenate([self._buffer, new])
        self._since_decode += new.size

    def _speech_state(self) -> tuple[bool, float | None, float | None]:
        """(buffer holds speech, end of the last speech frame, where trailing silence starts if the
        buffer ends in at least endpoint_silence_s of it)."""
        if self._vad is None:
            return True, None, None
        probs = self._vad.speech_probs(self._buffer)
        frame = 512 / SAMPLE_RATE
        speech = probs >= self.options.vad_threshold
        if not speech.any():
            return False, None, None
        last_speech = int(np.nonzero(speech)[0][-1])
        speech_end = self._buffer_offset + (last_speech + 1) * frame
        silence_after = (len(probs) - 1 - last_speech) * frame
        return True, speech_end, speech_end if silence_after >= self.options.endpoint_silence_s else None

    def _update(self, final: bool) -> None:
        opt = self.options
        t0 = time.perf_counter()
        self._since_decode = 0
        buffer_s = self._buffer.size / SAMPLE_RATE
        self.stats.max_buffer_s = max(self.stats.max_buffer_s, buffer_s)
        if buffer_s == 0:
            if final:
                self._commit_all()
            return
        has_speech, speech_end, endpoint = self._speech_state()
        t_vad = time.perf_counter()
        self.stats.vad_s += t_vad - t0
        if not has_speech:  # nothing to hear: keep the last 0.5 s (a word may be starting), decode nothing
            keep = int(0.5 * SAMPLE_RATE)
            if self._buffer.size > keep:
                self._buffer_offset += (self._buffer.size - keep) / SAMPLE_RATE
                self._buffer = self._buffer[-keep:]
            self.stats.skipped_silent += 1
            if final:
                self._commit_all()
            return
        probe = opt.probe_tail_s is not None and not final and endpoint is None and not self._hypothesis \
            and not self._history
        before = dict(self.model.backend.timings)
        words, repetitive = self._transcribe_buffer(opt.probe_tail_s if probe else opt.encoder_tail_s)
        after = self.model.backend.timings
        self.stats.encoder_s += after["encoder_s"] - before["encoder_s"]
        self.stats.decoder_s += after["decoder_s"] - before["decoder_s"]
        if repetitive:
            words = _cut_repetition(words)
        if speech_end is not None:
            # No words where VAD hears no speech: this removes what Whisper invents in trailing silence
            # ("Thank you.", repetition loops) before it can be committed.
            words = [w for w in words if w.start < speech_end + 0.2]
        t_dec = time.perf_counter()
        self.stats.decode_s += t_dec - t_vad
        compute = time.perf_counter() - t0
        self.stats.updates += 1
        self.stats.total_s += compute
        self.stats.per_update.append(compute)
        self.stats.audio_s = self.received_s
        if probe:  # shown, not committed from: the next (full-window) decode starts the agreement
            self._hypothesis = self._new_words(words)
            if self._hypothesis:
                self.stats.probes += 1
                self._emit("tentative", self.tentative_text, self._hypothesis[0].start, self._hypothesis[-1].end,
                           compute, self._hypothesis)
            return
        if final or endpoint is not None:
            cut = endpoint if endpoint is not None and not final else None
            self._hypothesis = [w for w in words if cut is None or w.start < cut]
            self._commit_all(compute)
            if endpoint is not None:
                self._emit("end_of_utterance", "", self._buffer_offset, endpoint, compute)
                self._cut_buffer(endpoint)
            return
        self._local_agreement(words, compute)
        if self._buffer.size / SAMPLE_RATE >= opt.max_buffer_s:  # bound memory and work: force a commit
            self._commit_all(compute)
            self._cut_buffer(self._committed[-1].end if self._committed else
                             self._buffer_offset + self._buffer.size / SAMPLE_RATE)

    def _transcribe_buffer(self, encoder_tail_s: float | None) -> tuple[list[_Word], bool]:
        opt = self.options
        # Prompt with committed text that is no longer in the buffer only (whisper_streaming's rule):
        # prompting with words the buffer still holds makes Whisper skip them and mis-time what follows.
        before = "".join(w.word for w in self._committed if w.end <= self._buffer_offset + 0.01)
        prompt = before[-opt.prompt_chars:].strip() or opt.initial_prompt
        # One temperature (no fallback: an update must cost one decode). The logprob threshold then only
        # shapes openai's silence rule: a window is skipped when Whisper finds no speech *and* is unsure
        # of its text. VAD has already heard speech here, and at an utterance's start Whisper's
        # no-speech probability is often above 0.6 while its first words are right (-0.6 logprob).
        topts = TranscribeOptions(
            language=self._language, task=opt.task, temperature=0.0, beam_size=opt.beam_size,
            word_timestamps=True, initial_prompt=prompt, hotwords=opt.hotwords, condition_on_previous_text=False,
            encoder_tail_s=encoder_tail_s, logprob_threshold=-1.0, compression_ratio_threshold=None)
        transcriber = Transcriber(self.model.backend, self.model.tokenizer, topts)
        segments, language, _ = transcriber.run(self._buffer, max_windows=1,
                                                sample_len=token_budget(self._buffer.size / SAMPLE_RATE))
        self._language = self._language or language
        repetitive = any(s["result"].compression_ratio > 2.4 for s in segments)
        return [_Word(self._buffer_offset + w["start"], self._buffer_offset + w["end"], w["word"])
                for s in segments for w in s.get("words") or []], repetitive

    def _new_words(self, words: list[_Word]) -> list[_Word]:
        """The part of a hypothesis after the committed text (the buffer still holds committed audio)."""
        if not self._committed:
            return words
        # Word times jitter between decodes, so compare ends: a word straddling the boundary is kept,
        # then dropped below if it repeats the committed tail (up to 5 words).
        last_end = self._committed[-1].end
        words = [w for w in words if w.end > last_end - 0.05]
        tail = [w.key for w in self._committed[-5:]]
        for n in range(min(5, len(words), len(tail)), 0, -1):
            if [w.key for w in words[:n]] == tail[-n:]:
                return words[n:]
        return words

    def _local_agreement(self, words: list[_Word], compute: float) -> None:
        words = self._new_words(words)
        # LocalAgreement-n: commit the longest prefix this hypothesis shares with the previous n-1.
        recent = (self._history + [words])[-self.options.agreement:]
        n_commit = 0
        if len(recent) == self.options.agreement:
            while all(n_commit < len(h) for h in recent) and \
                    all(h[n_commit].key == words[n_commit].key for h in recent):
                n_commit += 1
        if n_commit:
            newly = self._append_committed(words[:n_commit])
            self._emit("committed", "".join(w.word for w in newly).strip(), newly[0].start, newly[-1].end, compute,
                       newly)
            if self._buffer.size / SAMPLE_RATE > self.options.trim_s:
                self._cut_buffer(self._trim_point())
        self._history = [h[n_commit:] for h in recent][-(self.options.agreement - 1):] \
            if self.options.agreement > 1 else []
        self._hypothesis = words[n_commit:]
        if self._hypothesis:
            self._emit("tentative", self.tentative_text, self._hypothesis[0].start, self._hypothesis[-1].end, compute,
                       self._hypothesis)

    def _append_committed(self, words: list[_Word]) -> list[_Word]:
        """Commit words with times made monotonic (word timing jitters between decodes)."""
        last = self._committed[-1].end if self._committed else 0.0
        out = []
        for w in words:
            start = max(w.start, last)
            last = max(w.end, start)
            out.append(_Word(start, last, w.word))
        self._committed.extend(out)
        return out

    def _commit_all(self, compute: float = 0.0) -> None:
        words = self._new_words(self._hypothesis)
        if words:
            words = self._append_committed(words)
            self._emit("committed", "".join(w.word for w in words).strip(), words[0].start, words[-1].end, compute,
                       words)
        self._hypothesis, self._history = [], []

    def _trim_point(self) -> float:
        """Where to cut: the end of the last committed clause (.,?! ...) that leaves >= 1 s of committed
        context, else the committed word ending about 1 s before the last. Cutting right at the last
        committed word would make the next decode start inside a word whose end time is uncertain."""
        words = [w for w in self._committed if w.end > self._buffer_offset]
        if not words:
            return self._buffer_offset
        limit = words[-1].end - 1.0
        candidates = [w for w in words if w.end <= limit]
        clause = [w for w in candidates if w.word.rstrip()[-1:] in ".,?!;:。，？！"]
        if clause:
            return clause[-1].end
        return candidates[-1].end if candidates else self._buffer_offset

    def _cut_buffer(self, at: float) -> None:
        """Drop buffered audio before time ``at`` (a committed boundary)."""
        cut = int(round((at - self._buffer_offset) * SAMPLE_RATE))
        cut = max(0, min(cut, self._buffer.size))
        self._buffer = self._buffer[cut:]
        self._buffer_offset += cut / SAMPLE_RATE
