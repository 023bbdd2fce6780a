"""Hour-long runs for `edge-asr bench reliability --long-minutes 60` (issue 18, item 3).

One timeline of real speech clips (the manifest's English clips with exact transcripts, in a seeded
random order, repeated) separated by seeded pauses (0.4-6 s, plus a long 20-60 s silence of low dither
every few minutes, where a live app sits idle) goes through three paths:

- **live**: a ``StreamingTranscriber`` (inline decoding: ``feed`` returns once the audio is decoded) fed
  0.5 s chunks as fast as the machine decodes them. Nothing is dropped in this mode, so every second
  must end up under a committed word or in a pause; ``dropped`` events are still counted (a stream that
  dropped audio would report it there).
- **offline** and **batched**: ``model.transcribe`` on the whole hour as one array, sequential and
  ``batch_size`` 8, word timestamps on, with progress.

Per path: RSS sampled at every minute of audio (live: by fed position; offline and batched: by the
progress callback's position, plus a sampler thread for the peak), growth from minute 5 to the end
(target < 5 %), and the accounting of the audio: each speech clip is *covered* when committed words
(live) or timed words (offline) nearest to it score below 50 % WER against its transcript (a lost clip
scores 100 %); words more than 1 s from every clip are counted as text invented in pauses; the per-clip WER over the hour is reported
next to the WER of the same clips transcribed one by one (a steady hour keeps it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_asr.scoring import wer as word_error_rate

SR = 16000
CHUNK_S = 0.5
LOST_WER = 0.5  # a clip whose words score worse than this was not transcribed
WORD_SLACK_S = 1.0  # word times are estimates (DTW over 20 ms frames): a word this close to a clip is its


@dataclass(frozen=True)
class Placed:
    """A speech clip placed on the timeline."""

    clip_id: str
    text: str
    start: float
    end: float


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def build_timeline(clips, minutes: float, seed: int) -> tuple[np.ndarray, list[Placed], list[tuple[float, float]]]:
    """(audio, placed clips, pauses) of ``minutes`` minutes from ``clips`` [(id, text, samples)]."""
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * SR)
    audio = np.zeros(total, np.float32)
    placed, pauses = [], []
    pos, next_long = 0, int(rng.uniform(120, 300) * SR)
    order: list[int] = []
    while pos < total:
        if not order:
            order = list(rng.permutation(len(clips)))
        if pos >= next_long:  # an idle stretch: the app listens to a quiet room
            gap = int(rng.uniform(20, 60) * SR)
            next_long = pos + gap + int(rng.uniform(120, 300) * SR)
        else:
            gap = int(rng.uniform(0.4, 6.0) * SR)
        gap = min(gap, total - pos)
        audio[pos:pos + gap] = rng.normal(0, 10 ** (-70 / 20), gap)  # -70 dBFS dither, not digital zero
        pauses.append((pos / SR, (pos + gap) / SR))
        pos += gap
        clip_id, text, samples = clips[order.pop()]
        if pos + samples.size > total:
            break
        audio[pos:pos + samples.size] = samples
        placed.append(Placed(clip_id, text, pos / SR, (pos + samples.size) / SR))
        pos += samples.size
    return audio, placed, pauses


def account(words: list[tuple[float, float, str]], placed: list[Placed], pauses, duration: float,
            dropped: list[tuple[float, float]] = (), language: str = "en") -> dict:
    """Attribute timed words to the nearest clip (by midpoint; farther than ``WORD_SLACK_S`` from every
    clip: a word in a pause) and score each clip."""
    starts = np.array([p.start for p in placed])
    ends = np.array([p.end for p in placed])
    by_clip: list[list[str]] = [[] for _ in placed]
    in_pauses = []
    for s, e, w in sorted(words):
        mid = (s + e) / 2
        distance = np.maximum(0.0, np.maximum(starts - mid, mid - ends))
        i = int(np.argmin(distance))
        if distance[i] > WORD_SLACK_S:
            in_pauses.append({"at": round(s, 2), "word": w})
        else:
            by_clip[i].append(w)
    refs, hyps, lost, covered_s = [], [], [], 0.0
    for p, clip_words in zip(placed, by_clip):
        hyp = "".join(clip_words).strip()
        wer = word_error_rate([p.text], [hyp], language) if hyp else 1.0
        refs.append(p.text)
        hyps.append(hyp)
        dropped_here = sum(max(0.0, min(e, p.end) - max(s, p.start)) for s, e in dropped)
        if dropped_here >= 0.5 * (p.end - p.start) or wer < LOST_WER:  # transcribed, or reported dropped
            covered_s += p.end - p.start
        else:
            lost.append({"clip": p.clip_id, "start": round(p.start, 2), "wer": round(wer, 3), "text": hyp})
    speech_s = float((ends - starts).sum())
    pause_s = sum(e - s for s, e in pauses)
    return {
        "duration_s": round(duration, 1), "speech_s": round(speech_s, 1), "pause_s": round(pause_s, 1),
        "clips": len(placed), "clips_lost": len(lost), "lost": lost[:20],
        "speech_covered_s": round(covered_s, 1), "words_in_pauses": len(in_pauses), "pause_words": in_pauses[:20],
        # every second is a clip transcribed (or reported dropped), a pause, or the silent tail after the
        # last clip; what is left is speech that vanished without its words or an event
        "unaccounted_s": round(speech_s - covered_s, 1),
        "wer": round(word_error_rate(refs, hyps, language), 4),
    }


def _growth(per_minute: list[float], start_minute: int = 5) -> float | None:
    if len(per_minute) <= start_minute:
        return None
    base = per_minute[start_minute - 1]  # RSS at the end of minute 5
    return round((per_minute[-1] - base) / base * 100, 2)


class _PeakSampler:
    """Peak RSS of the process while a call runs (a thread polls every 0.5 s)."""

    def __enter__(self):
        self.peak, self._stop = _rss_mb(), threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def live_run(model, audio: np.ndarray, placed, pauses, step_s: float, log=print) -> dict:
    from edge_asr import StreamingOptions, StreamingTranscriber

    options = StreamingOptions.from_fields(language="en", step_s=step_s)
    committed: list[tuple[float, float, str]] = []
    dropped: list[tuple[float, float]] = []
    events = {"committed": 0, "dropped": 0, "tentative": 0, "end_of_utterance": 0, "lag": 0, "error": 0}

    def on_event(ev):
        events[ev.kind] = events.get(ev.kind, 0) + 1
        if ev.kind == "committed":
            committed.extend(ev.words)
        elif ev.kind == "dropped":
            dropped.append((ev.start, ev.end))

    stream = StreamingTranscriber(model, options, on_event=on_event)
    chunk = int(CHUNK_S * SR)
    per_minute, t0, next_minute = [], time.perf_counter(), 60 * SR
    with _PeakSampler() as peak:
        for pos in range(0, audio.size, chunk):
            stream.feed(audio[pos:pos + chunk])
            if pos + chunk >= next_minute:
                per_minute.append(round(_rss_mb(), 1))
                next_minute += 60 * SR
                if len(per_minute) % 10 == 0:
                    log(f"  live minute {len(per_minute)}: RSS {per_minute[-1]} MB, "
                        f"{time.perf_counter() - t0:.0f} s, {events['committed']} commits")
        stream.finish()
    wall = time.perf_counter() - t0
    out = account(committed, placed, pauses, audio.size / SR, dropped)
    out.update({
        "mode": "live", "step_s": step_s, "chunk_s": CHUNK_S, "wall_s": round(wall, 1),
        "rtf": round(wall / (audio.size / SR), 4), "events": events,
        "dropped_s": round(sum(e - s for s, e in dropped), 2),
        "received_s": round(stream.received_s, 2), "updates": stream.stats.updates,
        "rss_per_minute_mb": per_minute, "rss_growth_min5_to_end_pct": _growth(per_minute),
        "peak_rss_mb": round(peak.peak, 1),
        # every fed sample reached the transcriber and nothing was left pending
        "all_audio_received": abs(stream.received_s - audio.size / SR) < 1e-3,
    })
    return out


def offline_run(model, audio: np.ndarray, placed, pauses, batch_size: int | None, log=print) -> dict:
    per_minute: list[float] = []
    t0 = time.perf_counter()

    def progress(done: float, total: float) -> None:
        while len(per_minute) < int(done // 60):
            per_minute.append(round(_rss_mb(), 1))
            if len(per_minute) % 10 == 0:
                log(f"  {'batched' if batch_size else 'offline'} minute {len(per_minute)}: "
                    f"RSS {per_minute[-1]} MB, {time.perf_counter() - t0:.0f} s")

    kwargs = {"batch_size": batch_size} if batch_size else {}
    with _PeakSampler() as peak:
        result = model.transcribe(audio, language="en", word_timestamps=True, progress=progress, **kwargs)
    wall = time.perf_counter() - t0
    words = [(w.start, w.end, w.word) for s in result.segments for w in s.words]
    out = account(words, placed, pauses, audio.size / SR)
    out.update({
        "mode": f"batched{batch_size}" if batch_size else "offline", "wall_s": round(wall, 1),
        "rtf": round(wall / (audio.size / SR), 4), "segments": len(result.segments),
        "rss_per_minute_mb": per_minute, "rss_growth_min5_to_end_pct": _growth(per_minute),
        "peak_rss_mb": round(peak.peak, 1),
    })
    return out


def clips_alone(model, clips) -> float:
    """WER of the clips transcribed one by one (the reference the hour's per-clip WER is read against)."""
    hyps = [model.transcribe(samples, language="en").text for _, _, samples in clips]
    return round(word_error_rate([t for _, t, _ in clips], hyps, "en"), 4)


def long_section(model_name: str, minutes: float, threads: int, seed: int, manifest: Path,
                 modes=("live", "offline", "batched"), step_s: float = 1.0, log=print) -> dict:
    import edge_asr
    from edge_asr.audio import load_audio

    from .corpus import read_manifest

    clips = [(c.id, c.text, load_audio(c.path)) for c in read_manifest(manifest) if c.language == "en"]
    if not clips:
        raise SystemExit(f"no English clips with exact transcripts in {manifest}")
    audio, placed, pauses = build_timeline(clips, minutes, seed)
    model = edge_asr.load_model(model_name, device="cpu", threads=threads)
    out = {"model": model_name, "minutes": minutes, "seed": seed, "clip_count": len(clips),
           "clips_alone_wer": clips_alone(model, clips), "rss_after_load_mb": round(_rss_mb(), 1), "runs": {}}
    for mode in modes:
        log(f"long {model_name} {mode}: {minutes} min")
        if mode == "live":
            r = live_run(model, audio, placed, pauses, step_s, log)
        else:
            r = offline_run(model, audio, placed, pauses, 8 if mode == "batched" else None, log)
        r["rss_target_met"] = r["rss_growth_min5_to_end_pct"] is not None and r["rss_growth_min5_to_end_pct"] < 5
        out["runs"][mode] = r
        log(f"  {mode}: wall {r['wall_s']} s, WER {r['wer']}, lost {r['clips_lost']}/{r['clips']}, "
            f"words in pauses {r['words_in_pauses']}, RSS growth {r['rss_growth_min5_to_end_pct']} %")
    return out
