"""Live transcription: feed PCM chunks, get tentative and committed text as events.

Each update decodes the audio buffer (the audio since the last cut) as one window, continued from the
committed words still in it (their tokens are the decode's forced prefix: committed text is never
decoded again), and hands the new words with their times to the commit policy:
- ``alignatt`` (default): a word is committed after a single decode once it ends ``commit_delay_s`` before
  the end of the buffered audio (its time comes from the alignment heads' cross-attention of that decode);
- ``local-agreement``: a word is committed when ``agreement`` consecutive decodes agree on it.
Committed text never changes; the rest is tentative.

- At an utterance's start (nothing tentative) the step is ``first_step_s`` and, with ``probe_tail_s``, the
  decode is a cheap reduced-window "probe" (buffer + that much silence): its text shows as tentative at
  once but is never committed from.
- Silero VAD (run once per frame as audio arrives) endpoints utterances: when the buffer ends in
  ``endpoint_silence_s`` of silence after speech, the whole hypothesis is committed and an
  end-of-utterance event is emitted. Buffers holding no speech are not decoded (no invented text, no
  wasted compute); words after the last speech are dropped.
- The buffer is cut at committed word boundaries past ``trim_s`` and force-committed at ``max_buffer_s``,
  so memory and per-update work stay bounded however long the session runs.
- If compute falls behind real time, pending audio is taken in larger steps; past ``max_lag_s`` the
  oldest pending audio is dropped with an explicit "dropped" event. Committed text is never lost.

Threads: ``feed`` may be called from any thread (e.g. an audio callback); it only queues audio. With
``background=True`` a worker thread decodes and runs the ``on_event`` callbacks; otherwise ``feed`` and
``finish`` decode inline (deterministic, as fast as possible: files and tests) and callbacks run on the
caller's thread. Keep callbacks short: they hold up decoding. An error while decoding ends the stream: an
"error" event is emitted, later ``feed`` calls raise :class:`StreamError`, and ``finish()`` raises it, with
the text committed before it kept in ``committed_text``. Events also go to a bounded queue read by
``events()``: when nobody reads it, the oldest events are discarded (``events_discarded`` counts them),
so a callback-only app does not grow memory. At interpreter exit, streams whose worker still runs are
closed (as ``close()``: the running update ends, the text already shown is committed and reaches the
callbacks) instead of the daemon worker being killed in the middle of a graph call; exit waits at most
``EXIT_TIMEOUT_S`` for that update (a worker blocked in a callback is left, uncommitted).

Modules: stream_input.py (queue, conversion, resampling, backlog), buffer_decoder.py (one update's decode),
commit_policy.py (which words are final), this one (the driver: buffer, VAD, steps, events, stats).
"""

from __future__ import annotations

import atexit
import queue
import threading
import time
import weakref
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Iterator, Sequence

import numpy as np

from .buffer_decoder import BufferDecoder
from .commit_policy import POLICIES, AlignAtt, CommitPolicy, LocalAgreement, TimedWord, cut_repetition, starting_before, text_of
from .constants import SAMPLE_RATE
from .errors import EdgeASRError, OptionError, StreamError, UnknownOptionError
from .option_field import option
from .options import TranscribeOptions
from .stream_input import StreamInput
from .vad import FRAME_SAMPLES, SileroVad, SpeechProbStream, default_vad
from .window import token_budget

EVENT_KINDS = ("tentative", "committed", "end_of_utterance", "dropped", "lag", "error")
# The TranscribeOptions fields a live decode honours (decode_options sets the others itself).
STREAMED_TRANSCRIBE_FIELDS = frozenset({
    "language", "task", "beam_size", "patience", "length_penalty", "compression_ratio_threshold",
    "logprob_threshold", "no_speech_threshold", "initial_prompt", "hotwords", "encoder_tail_s",
    "max_initial_timestamp", "seed", "boost_terms", "boost_weight"})


# Streams with a running worker, closed at interpreter exit (weak: a dropped stream is not kept alive).
_RUNNING: weakref.WeakSet = weakref.WeakSet()
# How long exit waits for a worker's running update. Bounded: a worker blocked in a callback that needs the
# main thread (e.g. on_event=queue.Queue(maxsize=1).put, drained by the main thread) never ends, and an
# unbounded join would hang interpreter exit for good.
EXIT_TIMEOUT_S = 10.0


@atexit.register
def _close_running_streams() -> None:
    # atexit runs after non-daemon threads are joined but while daemon workers still run: stopping them
    # here keeps the text on screen and avoids a worker killed inside onnxruntime at teardown.
    for stream in list(_RUNNING):
        try:
            stream.close(timeout=EXIT_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - a callback's error must not stop exit or skip the other streams
            # (atexit would print it and go on to the next hook, leaving these streams' workers to be
            # killed mid-update); a decoding error already reached the app as an "error" event
            pass


@dataclass(frozen=True)
class StreamingOptions:
    """Live transcription: the streaming policy's own settings, and ``transcribe``, the offline options
    each buffer decode derives from (:meth:`decode_options` says what streaming overrides)."""

    # How the buffer is decoded, as offline: language (None: detected on the first decode, then kept),
    # task, beam_size, hotwords, initial_prompt (the prompt until committed text has left the buffer),
    # encoder_tail_s (reduced encoder window: the buffer plus this much silence; None = 30 s),
    # no-speech/logprob thresholds, compression_ratio_threshold (here: above it a decode is looping and is
    # cut at its first repeat).
    transcribe: TranscribeOptions = field(default_factory=TranscribeOptions)
    policy: str = option("alignatt", "when a word is final: alignatt (one decode: it ends commit_delay_s before "
                                     "the audio does) or local-agreement (agreement decodes agree on it)",
                         choices=tuple(POLICIES))
    commit_delay_s: float = option(0.4, "alignatt: commit a word once it ends this long before the end of the "
                                        "buffered audio", metavar="SECONDS")
    min_probability: float = option(0.6, "alignatt: a word decoded with a lower mean token probability waits "
                                          "until it ends unsure_delay_s before the audio's end")
    unsure_delay_s: float = option(2.5, "alignatt: the delay of unsure words (see min_probability)",
                                   metavar="SECONDS")
    agreement: int = option(2, "local-agreement: hypotheses that must agree before a word is committed")
    step_s: float = option(0.3, "seconds of new audio between two decodes (stretched when compute falls behind)",
                           flag="--step", metavar="SECONDS")
    first_step_s: float = option(0.25, "shorter step at an utterance's start, so new speech shows up fast",
                                 metavar="SECONDS")
    probe_tail_s: float | None = option(
        1.0, "at an utterance's start (nothing tentative yet) show first words from a reduced encoder window: "
              "the buffer plus this much silence (never committed from); 0 or none: no probes",
        flag="--probe-tail", metavar="SECONDS")
    endpoint_silence_s: float = option(0.6, "trailing silence (VAD) that ends an utterance", metavar="SECONDS")
    vad: bool = option(True, "Silero VAD endpointing: silent buffers skipped, words after the speech dropped "
                             "(--no-vad: commit by the policy only)")
    vad_threshold: float = option(0.5, "VAD speech probability that counts as speech")
    trim_s: float = option(8.0, "past this buffer length, cut the buffer at a committed clause end, keeping "
                                "recent context", metavar="SECONDS")
    max_buffer_s: float = option(15.0, "force-commit and cut when the buffer still reaches this", metavar="SECONDS")
    max_lag_s: float = option(10.0, "pending (undecoded) audio beyond this is dropped, with an event",
                              metavar="SECONDS")
    prompt_chars: int = option(200, "characters of committed text (that left the buffer) fed back as the prompt")
    catch_up: bool | None = option(None, "when two steps or more of audio wait, decode them in one update (the "
                                         "step stretches to the compute); None: only with background=True, where "
                                         "audio arrives in real time (inline decoding stays independent of chunk size)",
                                   cli=False)
    max_queued_events: int = option(1000, "events kept for events() when nobody reads them (oldest discarded)",
                                    cli=False)

    def __post_init__(self):
        positive = ("step_s", "first_step_s", "trim_s", "max_buffer_s", "max_lag_s", "agreement", "max_queued_events")
        for name in positive:
            value = getattr(self, name)
            if not value > 0:
                raise OptionError(f"{name} must be > 0, got {value!r}")
        for name in ("commit_delay_s", "unsure_delay_s", "min_probability", "endpoint_silence_s", "prompt_chars"):
            if not getattr(self, name) >= 0:
                raise OptionError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.policy not in POLICIES:
            raise OptionError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if not 0 < self.vad_threshold < 1:
            raise OptionError(f"vad_threshold must be between 0 and 1, got {self.vad_threshold!r}")
        if self.max_buffer_s > 30:
            raise OptionError(f"max_buffer_s must be <= 30 (one encoder window), got {self.max_buffer_s!r}")
        if self.trim_s > self.max_buffer_s:
            raise OptionError(f"trim_s ({self.trim_s}) must not exceed max_buffer_s ({self.max_buffer_s})")

    @classmethod
    def from_fields(cls, **kwargs) -> StreamingOptions:
        """Flat keywords: streaming fields by name, any :class:`TranscribeOptions` field (language=,
        task=, beam_size=, hotwords=, encoder_tail_s=, ...) into ``transcribe`` (on top of
        ``transcribe=`` when that is given too)."""
        own = {f.name for f in fields(cls)}
        decode = {k: kwargs.pop(k) for k in list(kwargs) if k not in own}
        unknown = sorted(set(decode) - TranscribeOptions.names())
        if unknown:
            raise UnknownOptionError(f"not a StreamingOptions or TranscribeOptions field: {', '.join(unknown)}")
        base = kwargs.pop("transcribe", None) or TranscribeOptions()
        return cls(transcribe=replace(base, **decode), **kwargs)

    def make_policy(self) -> CommitPolicy:
        if self.policy == "alignatt":
            return AlignAtt(self.commit_delay_s, self.min_probability, self.unsure_delay_s)
        return LocalAgreement(self.agreement)

    def decode_options(self, language: str | None, encoder_tail_s: float | None) -> TranscribeOptions:
        """The options of one buffer decode: ``transcribe`` with what streaming must set itself.
        One temperature (the ladder's first: an update costs one decode, no fallback), so the logprob
        threshold only shapes openai's silence rule: a window is skipped when Whisper finds no speech
        *and* is unsure of its text. VAD has already heard speech here, and at an utterance's start
        Whisper's no-speech probability is often above 0.6 while its first words are right (-0.6
        logprob). No timestamp tokens (words are timed from the attention; the committed prefix is plain
        text), word timing on, no conditioning, VAD filter or batching (the driver does those)."""
        return replace(self.transcribe, language=language, temperature=self.transcribe.temperatures[0],
                       word_timestamps=True, without_timestamps=True, condition_on_previous_text=False,
                       prefix=None, initial_prompt=None, encoder_tail_s=encoder_tail_s, vad_filter=False,
                       batch_size=1)


@dataclass(frozen=True)
class StreamEvent:
    kind: str  # one of EVENT_KINDS
    text: str  # committed: the newly committed words; tentative: the whole uncommitted tail; error: the message
    start: float  # audio time (s) of the text (or of the dropped span)
    end: float
    emitted_at: float  # audio position (s of input received) when the event was emitted
    compute_s: float = 0.0  # processing time of the update that produced it
    words: tuple[tuple[float, float, str], ...] = ()  # (start, end, word) of the text, when timed

    def to_dict(self) -> dict:
        """The JSON shape of `edge-asr listen --output-format json` events (and of the server's stream)."""
        d = {"kind": self.kind, "text": self.text, "start": self.start, "end": self.end,
             "emitted_at": self.emitted_at, "compute_s": self.compute_s}
        if self.words:
            d["words"] = [{"start": s, "end": t, "word": w} for s, t, w in self.words]
        return d


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
    decoder_runs: int = 0  # decoder graph calls (prefix pass, one per new token, word timing)
    audio_s: float = 0.0
    max_buffer_s: float = 0.0
    per_update: list[float] = field(default_factory=list)


class StreamingTranscriber:
    """Incremental transcription of a live audio stream with a loaded :class:`~edge_asr.WhisperModel`.

    ``options`` are checked against the model here (a language the model lacks, word timing on a
    folder without alignment heads), so mistakes fail before any audio is fed. ``policy`` overrides the
    options' commit policy (any :class:`~edge_asr.commit_policy.CommitPolicy`).
    """

    def __init__(self, model, options: StreamingOptions | None = None, *,
                 on_event: Callable[[StreamEvent], None] | None = None, background: bool = False,
                 vad: SileroVad | None = None, policy: CommitPolicy | None = None):
        self.model = model
        self.options = options or StreamingOptions()
        model.check_options(self.options.decode_options(self.options.transcribe.language, None))
        self.policy = policy or self.options.make_policy()
        self._decoder = BufferDecoder(model.backend, model.tokenizer)
        self._callbacks = [on_event] if on_event else []
        self._events: queue.Queue = queue.Queue(maxsize=self.options.max_queued_events)
        self.events_discarded = 0
        self._vad = SpeechProbStream(vad or default_vad()) if self.options.vad else None
        self._input = StreamInput()
        # Decoder-side state (the decoding thread only)
        self._buffer = np.zeros(0, np.float32)
        self._buffer_offset = 0.0  # audio time of buffer[0]
        self._since_decode = 0
        self._language = self.options.transcribe.language
        self.stats = UpdateStats()
        self._closed = False
        self._stop = False  # close(): the worker returns without decoding more
        self._ended = False  # finish() or close() is done: final text committed, events() ended
        self._error: BaseException | None = None
        self._worker: threading.Thread | None = None
        self._wake = threading.Event()
        if background:
            self._worker = threading.Thread(target=self._run_worker, name="edge-asr-stream", daemon=True)
            self._worker.start()
            _RUNNING.add(self)

    # ---- input -------------------------------------------------------------------------------
    def feed(self, chunk, sample_rate: int = SAMPLE_RATE) -> None:
        """Queue PCM samples (any dtype, mono or (frames, channels), any rate, any chunk size)."""
        self._raise_if_failed()
        if self._closed:
            raise StreamError("the stream is finished; create a new StreamingTranscriber")
        self._input.push(chunk, sample_rate)
        if self._worker is not None:
            self._wake.set()
        else:
            self._guarded(self._process, False)
            self._raise_if_failed()

    def finish(self) -> str:
        """Decode everything pending, commit it all, stop the worker; return the committed transcript.
        Raises :class:`StreamError` when decoding failed (``committed_text`` keeps what was committed)."""
        if not self._closed:
            self._input.close()
            self._closed = True
            if self._worker is not None:
                self._wake.set()
                self._worker.join()
            elif self._error is None:
                self._guarded(self._process, True)
            self._ended = True
            self._put(None)
            _RUNNING.discard(self)
        self._raise_if_failed()
        return self.committed_text

    def close(self, timeout: float | None = None) -> str:
        """Stop now: the worker ends after the update it is running, audio not yet decoded is discarded,
        and the tentative text already shown is committed. Returns the committed transcript. Use
        :meth:`finish` to decode everything first.

        ``timeout``: wait at most this many seconds for the worker's running update (None: until it
        ends). If it is still running then (e.g. blocked in a callback), nothing is committed, since the
        worker still owns the policy; calling ``close()`` again waits again and commits."""
        if not self._ended:  # also after a close() that timed out: the worker may have ended since
            self._stop = self._closed = True
            self._input.close()
            self._input.take(None)  # discard what was not decoded
            if self._worker is not None:
                self._wake.set()
                self._worker.join(timeout)
                if self._worker.is_alive():
                    return self.committed_text
            if self._error is None:
                self._flush()
            self._ended = True
            self._put(None)
            _RUNNING.discard(self)
        return self.committed_text

    def __enter__(self) -> StreamingTranscriber:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()
        else:  # keep the caller's exception; stop now and commit what is shown (as close()). Only
            # flagging the worker left it running, and at exit it was killed mid-update, the text lost.
            self.close()

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
        return text_of(self.policy.committed)

    @property
    def tentative_text(self) -> str:
        return text_of(self.policy.tentative)

    @property
    def language(self) -> str | None:
        """The language decoded (given, or detected on the first decode; None before that)."""
        return self._language

    @property
    def received_s(self) -> float:
        return self._input.received_s

    @property
    def lag_s(self) -> float:
        """Audio received but not yet decoded, in seconds."""
        return (self._input.pending + self._since_decode) / SAMPLE_RATE

    @property
    def error(self) -> BaseException | None:
        """The exception that ended decoding, if any."""
        return self._error

    # ---- errors and events -------------------------------------------------------------------
    def _guarded(self, fn, *args) -> None:
        """Run a decoding step; an exception ends the stream with an "error" event instead of vanishing
        in a worker thread."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - any failure must reach the caller
            self._error = e
            self._input.close()
            self._emit("error", f"{type(e).__name__}: {e}", self._buffer_offset,
                       self._buffer_offset + self._buffer.size / SAMPLE_RATE)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            message = f"live transcription stopped: {type(self._error).__name__}: {self._error}"
            if isinstance(self._error, EdgeASRError):
                raise StreamError(message) from self._error
            raise StreamError(message + " (committed text is kept in committed_text)") from self._error

    def _put(self, event: StreamEvent | None) -> None:
        while True:
            try:
                self._events.put_nowait(event)
                return
            except queue.Full:  # nobody reads events(): forget the oldest
                try:
                    self._events.get_nowait()
                    self.events_discarded += 1
                except queue.Empty:
                    pass

    def _emit(self, kind: str, text: str, start: float, end: float, compute_s: float = 0.0,
              words: Sequence[TimedWord] = ()) -> None:
        timed = tuple((round(w.start, 3), round(w.end, 3), w.text) for w in words)
        event = StreamEvent(kind, text, round(start, 3), round(end, 3), round(self.received_s, 3), round(compute_s, 4),
                            timed)
        self._put(event)
        for fn in self._callbacks:
            fn(event)

    def _emit_words(self, kind: str, words: Sequence[TimedWord], compute_s: float) -> None:
        if words:
            self._emit(kind, text_of(words), words[0].start, words[-1].end, compute_s, words)

    # ---- processing --------------------------------------------------------------------------
    def _run_worker(self) -> None:
        while self._error is None and not self._stop:
            self._wake.wait(timeout=0.1)
            self._wake.clear()
            if self._stop:
                return
            final = self._closed
            self._guarded(self._process, final)
            if final:
                return

    def _process(self, final: bool) -> None:
        """Decode at every step boundary of received audio, so results do not depend on how the audio
        was chunked. With ``catch_up`` (background mode), when two steps or more are queued (compute fell
        behind), take it at once (up to a full buffer): one larger step catches up instead of a backlog of updates."""
        if self._worker is not None:
            self._drop_backlog()
        while not self._stop:
            # Short steps while nothing shows (an utterance's start), then step_s.
            step_s = self.options.step_s if not self.policy.idle \
                else min(self.options.first_step_s, self.options.step_s)
            step = max(1, int(step_s * SAMPLE_RATE))
            # Two steps or more waiting (compute fell behind real time): decode them in one update, so the
            # effective step stretches to what this CPU can keep up with. More than max_buffer_s queued:
            # always (large steps instead of a backlog of updates).
            catch_up = self.options.catch_up if self.options.catch_up is not None else self._worker is not None
            behind = (catch_up and self._input.pending >= 2 * step) or \
                self._input.pending > self.options.max_buffer_s * SAMPLE_RATE
            # A large take fills the buffer up to max_buffer_s (at least the step), and the loop goes on:
            # taking it all made one buffer of the whole backlog (feed(60 s) inline: one decode of 60 s,
            # of which the encoder hears 30 s, everything committed and lag_s 0).
            room = max(1, step - self._since_decode,
                       int(self.options.max_buffer_s * SAMPLE_RATE) - self._buffer.size)
            new = self._input.take(room if (behind or final) else step - self._since_decode)
            if new.size:
                self._append(new)
            pending = self._input.pending
            if self._since_decode >= step or (final and pending == 0):
                self._update(final and pending == 0)
            pending = self._input.pending
            if pending == 0 or (not final and pending < step - self._since_decode):
                break

    def _drop_backlog(self) -> None:
        """Real-time mode only: audio queued beyond ``max_lag_s`` is dropped (oldest first), with an event;
        what was committed before the gap stays committed."""
        excess = self._input.drop_backlog(int(self.options.max_lag_s * SAMPLE_RATE))
        if excess <= 0:
            return
        start = self._buffer_offset + self._buffer.size / SAMPLE_RATE
        if self._buffer.size:  # decode what is buffered before the gap, then start after it
            self._update(final=True)
        self._buffer = np.zeros(0, np.float32)
        self._buffer_offset = start + excess / SAMPLE_RATE
        if self._vad is not None:
            self._vad.skip(int(round(self._buffer_offset * SAMPLE_RATE)))
        self._since_decode = 0
        self._emit("dropped", "", start, self._buffer_offset)

    def _append(self, new: np.ndarray) -> None:
        self._buffer = np.concatenate([self._buffer, new])
        self._since_decode += new.size
        if self._vad is not None:
            self._vad.push(new)

    def _speech_state(self) -> tuple[bool, float | None, float | None]:
        """(buffer holds speech, end of the last speech frame, where trailing silence starts if the
        buffer ends in at least endpoint_silence_s of it)."""
        if self._vad is None:
            return True, None, None
        probs = self._vad.since(int(round(self._buffer_offset * SAMPLE_RATE)))
        frame = FRAME_SAMPLES / SAMPLE_RATE
        speech = probs >= self.options.vad_threshold
        if not speech.any():
            return False, None, None
        last_speech = int(np.nonzero(speech)[0][-1])
        speech_end = (self._vad.first_frame + last_speech + 1) * frame
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
                self._flush()
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
                self._flush()
            return
        probe = opt.probe_tail_s is not None and not final and endpoint is None and self.policy.idle
        before = dict(self.model.backend.timings)
        words = self._decode_buffer(opt.probe_tail_s if probe else opt.transcribe.encoder_tail_s)
        after = self.model.backend.timings
        self.stats.encoder_s += after["encoder_s"] - before["encoder_s"]
        self.stats.decoder_s += after["decoder_s"] - before["decoder_s"]
        self.stats.decoder_runs += after["decoder_runs"] - before["decoder_runs"]
        if speech_end is not None:
            # No words where VAD hears no speech: this removes what Whisper invents in trailing silence
            # ("Thank you.", repetition loops) before it can be committed.
            words = starting_before(words, speech_end + 0.2)
        t_dec = time.perf_counter()
        self.stats.decode_s += t_dec - t_vad
        compute = time.perf_counter() - t0
        self.stats.updates += 1
        self.stats.total_s += compute
        self.stats.per_update.append(compute)
        self.stats.audio_s = self.received_s
        if probe:  # shown, not committed from
            shown = self.policy.preview(words).tentative
            if shown:
                self.stats.probes += 1
                self._emit_words("tentative", shown, compute)
            return
        if final or endpoint is not None:
            cut = endpoint if endpoint is not None and not final else None
            self._flush(compute, words if cut is None else starting_before(words, cut))
            if endpoint is not None:
                self._emit("end_of_utterance", "", self._buffer_offset, endpoint, compute)
                self._cut_buffer(endpoint)
            return
        result = self.policy.update(words, self._buffer_offset + buffer_s)
        if result.committed:
            self._emit_words("committed", result.committed, compute)
            if buffer_s > opt.trim_s:
                self._cut_buffer(self.policy.trim_point(self._buffer_offset))
        self._emit_words("tentative", result.tentative, compute)
        if self._buffer.size / SAMPLE_RATE >= opt.max_buffer_s:  # bound memory and work: force a commit
            self._flush(compute)
            committed = self.policy.committed
            self._cut_buffer(committed[-1].end if committed else self._buffer_offset + self._buffer.size / SAMPLE_RATE)

    def _flush(self, compute: float = 0.0, words: Sequence[TimedWord] | None = None) -> None:
        self._emit_words("committed", self.policy.flush(words).committed, compute)

    def _decode_buffer(self, encoder_tail_s: float | None) -> list[TimedWord]:
        """The buffer decoded after the committed words it still holds (the forced prefix)."""
        opt = self.options
        start = self._buffer_offset + 0.01
        committed = self.policy.committed
        in_buffer = [w for w in committed if w.end > start]
        # Prompt with committed text that is no longer in the buffer only (whisper_streaming's rule):
        # prompting with words the buffer still holds makes Whisper skip them and mis-time what follows.
        before = "".join(w.text for w in committed[:len(committed) - len(in_buffer)])
        prompt = before[-opt.prompt_chars:].strip() or opt.transcribe.initial_prompt
        prefix = [t for w in in_buffer for t in w.tokens]
        uncommitted_s = self._buffer.size / SAMPLE_RATE - max(0.0, (in_buffer[-1].end - self._buffer_offset)
                                                               if in_buffer else 0.0)
        hyp = self._decoder.decode(self._buffer, self._buffer_offset, opt.decode_options(self._language, encoder_tail_s),
                                   prefix=prefix, prompt=prompt, sample_len=token_budget(max(uncommitted_s, 1.0)))
        self._language = self._language or hyp.language
        return cut_repetition(hyp.words) if hyp.looping else list(hyp.words)

    def _cut_buffer(self, at: float) -> None:
        """Drop buffered audio before time ``at`` (a committed boundary)."""
        cut = int(round((at - self._buffer_offset) * SAMPLE_RATE))
        cut = max(0, min(cut, self._buffer.size))
        self._buffer = self._buffer[cut:]
        self._buffer_offset += cut / SAMPLE_RATE
