"""Silero VAD (edge_asr.vad): probabilities, speech timestamps, chunk collection and the time map.

The bundled sample is ~15.5 s of espeak-ng speech that starts ~0.06 s in and ends ~15.0 s, with short
pauses between sentences."""

import numpy as np
import pytest

from conftest import SAMPLE  # noqa: F401  (the sample_audio fixture reads it)
from edge_asr.vad import (
    SileroVad,
    SpeechTimestampsMap,
    VadOptions,
    collect_chunks,
    default_vad,
    get_speech_timestamps,
)

SR = 16000
FRAME = 512


def _covered(chunks, n):
    mask = np.zeros(n, dtype=bool)
    for c in chunks:
        mask[c["start"]:c["end"]] = True
    return mask


def _check_well_formed(chunks, n):
    for c in chunks:
        assert isinstance(c["start"], int) and isinstance(c["end"], int)
        assert 0 <= c["start"] < c["end"] <= n
    for a, b in zip(chunks, chunks[1:]):
        assert a["end"] <= b["start"]  # sorted, no overlap (padding splits short gaps)


def test_probs_shape_and_default_vad_is_cached(sample_audio):
    vad = default_vad()
    assert default_vad() is vad
    probs = vad.speech_probs(sample_audio)
    assert probs.dtype == np.float32
    assert probs.shape == (-(-len(sample_audio) // FRAME),)
    assert 0.0 <= probs.min() and probs.max() <= 1.0
    assert vad.speech_probs(np.zeros(0, np.float32)).shape == (0,)
    assert get_speech_timestamps(np.zeros(0, np.float32)) == []
    with pytest.raises(ValueError, match="1-D"):
        vad.speech_probs(np.zeros((2, 1600), np.float32))


def test_speech_found_in_sample(sample_audio):
    n = len(sample_audio)
    probs = default_vad().speech_probs(sample_audio)
    speech_frames = np.flatnonzero(probs >= 0.5)
    # Most of the sample is speech (measured: 85 % of frames), starting in the first 0.1 s.
    assert len(speech_frames) > 0.75 * len(probs)
    assert speech_frames[0] * FRAME < 0.1 * SR

    chunks = get_speech_timestamps(sample_audio)  # faster-whisper defaults: 2 s silence, 400 ms pad
    _check_well_formed(chunks, n)
    assert chunks[0]["start"] < 0.1 * SR
    covered = _covered(chunks, n)
    frame_covered = covered[speech_frames * FRAME]
    assert frame_covered.all()  # every speech frame is kept
    assert covered.sum() > 0.9 * n

    # Tight settings split at the pauses between sentences; every chunk still holds speech.
    tight = get_speech_timestamps(sample_audio, VadOptions(min_silence_duration_ms=100, speech_pad_ms=30))
    _check_well_formed(tight, n)
    assert len(tight) >= 3
    assert _covered(tight, n).sum() > 0.75 * n
    for c in tight:
        assert probs[c["start"] // FRAME:c["end"] // FRAME + 1].max() >= 0.5


@pytest.mark.parametrize("kind", ["silence", "white_noise", "hum_50hz"])
def test_three_minutes_without_speech_give_no_chunks(kind):
    n = 180 * SR
    t = np.arange(n) / SR
    rng = np.random.default_rng(0)
    audio = {
        "silence": np.zeros(n),
        "white_noise": rng.normal(0.0, 0.01, n),  # ~-40 dBFS
        "hum_50hz": 0.1 * np.sin(2 * np.pi * 50 * t) + 0.03 * np.sin(2 * np.pi * 150 * t),
    }[kind].astype(np.float32)
    probs = default_vad().speech_probs(audio)
    # Measured maxima of these signals: silence 0.009, noise 0.051, hum 0.008 (white noise at 0.001-0.1 RMS
    # stayed < 0.09, hum at 0.5 amplitude < 0.01): far below the 0.5 threshold, so not a single chunk.
    assert probs.max() < 0.15
    assert get_speech_timestamps(audio) == []
    assert get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=100, speech_pad_ms=30)) == []


def test_speech_between_long_silences(sample_audio):
    pad = np.zeros(10 * SR, np.float32)
    audio = np.concatenate([pad, sample_audio, pad])
    lo, hi = len(pad), len(pad) + len(sample_audio)
    opts = VadOptions()
    tol = opts.speech_pad_ms * SR // 1000
    chunks = get_speech_timestamps(audio, opts)
    _check_well_formed(chunks, len(audio))
    assert chunks
    assert all(lo - tol <= c["start"] and c["end"] <= hi + tol for c in chunks)
    assert abs(chunks[0]["start"] - lo) < 0.5 * SR  # speech starts ~0.06 s in, minus the 0.4 s pad
    assert _covered(chunks, len(audio))[lo:hi].mean() > 0.9


@pytest.mark.parametrize("limit_s", [3.0, 10.0])
def test_max_speech_duration_splits(sample_audio, limit_s):
    audio = np.tile(sample_audio, 3)  # ~46.6 s of nearly continuous speech
    n = len(audio)
    assert len(get_speech_timestamps(audio)) == 1  # no 2 s silence anywhere: one chunk by default
    chunks = get_speech_timestamps(audio, VadOptions(max_speech_duration_s=limit_s))
    _check_well_formed(chunks, n)
    assert len(chunks) >= n / SR / limit_s
    assert max(c["end"] - c["start"] for c in chunks) <= limit_s * SR
    speech_frames = np.flatnonzero(default_vad().speech_probs(audio) >= 0.5)
    # Splitting drops little speech (cuts go at the longest pause, or at the limit when there is none).
    assert _covered(chunks, n)[speech_frames * FRAME].mean() > 0.9


def test_collect_chunks(sample_audio):
    chunks = get_speech_timestamps(sample_audio, VadOptions(min_silence_duration_ms=100, speech_pad_ms=30))
    out = collect_chunks(sample_audio, chunks)
    assert out.dtype == np.float32
    assert len(out) == sum(c["end"] - c["start"] for c in chunks)
    np.testing.assert_array_equal(out[:chunks[0]["end"] - chunks[0]["start"]],
                                  sample_audio[chunks[0]["start"]:chunks[0]["end"]])
    empty = collect_chunks(sample_audio, [])
    assert empty.dtype == np.float32 and empty.shape == (0,)


def test_timestamps_map_round_trip(sample_audio):
    synthetic = [{"start": 16000, "end": 48000}, {"start": 80000, "end": 96000}, {"start": 96000, "end": 160000}]
    padded = np.concatenate([np.zeros(5 * SR, np.float32), sample_audio, np.zeros(3 * SR, np.float32)])
    real = get_speech_timestamps(padded, VadOptions(min_silence_duration_ms=100, speech_pad_ms=30))
    assert len(real) >= 3
    for chunks in (synthetic, real):
        m = SpeechTimestampsMap(chunks, SR)
        offset = 0  # chunk start in concatenated samples
        for k, c in enumerate(chunks):
            length = c["end"] - c["start"]
            for frac in (0.1, 0.5, 0.9):
                d = int(frac * length)
                t = (offset + d) / SR
                assert m.get_chunk_index(t) == k
                assert m.get_original_time(t) == pytest.approx((c["start"] + d) / SR, abs=0.006)
            offset += length
    # A boundary time: as an end it belongs to the chunk it closes, as a start to the next chunk.
    m = SpeechTimestampsMap(synthetic, SR)
    boundary = (48000 - 16000) / SR
    assert m.get_original_time(boundary, is_end=True) == 3.0
    assert m.get_original_time(boundary) == 5.0
    assert m.get_chunk_index(1000.0) == 2  # past the end: the last chunk


def test_block_size_does_not_change_probs(sample_audio):
    audio = np.tile(sample_audio, 2)  # 970 frames: crosses the 512-frame block boundary
    vad = SileroVad()
    full = vad.speech_probs(audio)
    np.testing.assert_allclose(vad.speech_probs(audio, max_frames=37), full, atol=1e-5)
    one_by_one = vad.speech_probs(audio[:40 * FRAME + 100], max_frames=1)
    assert one_by_one.shape == (41,)
    # The 41st frame is only 100 samples, zero-padded, so only the 40 whole frames must agree.
    np.testing.assert_allclose(one_by_one[:40], full[:40], atol=1e-5)
    # Causal: a prefix of whole frames gives the same probabilities as the start of the full audio.
    np.testing.assert_allclose(vad.speech_probs(audio[:300 * FRAME]), full[:300], atol=1e-5)


def test_speech_prob_stream_matches_the_whole_signal_however_it_is_chunked():
    from edge_asr.vad import SpeechProbStream, default_vad

    rng = np.random.default_rng(3)
    audio = (rng.normal(0, 0.05, 16000 * 3) * np.sin(np.linspace(0, 20, 16000 * 3))).astype(np.float32)
    whole = default_vad().speech_probs(audio)
    stream = SpeechProbStream(default_vad())
    pos = 0
    for size in [100, 512, 3000, 7, 16000, 999] * 10:
        stream.push(audio[pos:pos + size])
        pos += size
    stream.push(audio[pos:])
    n = audio.size // 512  # whole frames only (the last partial frame waits for more audio)
    np.testing.assert_allclose(stream.since(0), whole[:n], atol=1e-5)
    assert stream.frames == n
    tail = stream.since(16000)  # forget frames before sample 16000
    assert stream.first_frame == 16000 // 512 and np.allclose(tail, whole[16000 // 512:n], atol=1e-5)


def test_state_resets_after_a_second_of_quiet(sample_audio):
    """After RESET_AFTER_QUIET_FRAMES quiet frames the LSTM state is the initial one again, so the speech
    after a pause scores as it would at the start of a file, whatever came before."""
    from edge_asr.vad import QUIET_PROB, RESET_AFTER_QUIET_FRAMES, SpeechProbStream

    vad = SileroVad()
    pause = np.zeros(RESET_AFTER_QUIET_FRAMES * FRAME * 2, np.float32)
    stream = SpeechProbStream(vad)
    stream.push(sample_audio[:len(sample_audio) // FRAME * FRAME])
    assert np.abs(stream._state.h).max() > 0  # speech left a state behind
    stream.push(pause)
    quiet = stream.since(0)[-len(pause) // FRAME:]
    assert (quiet < QUIET_PROB).all()
    # The last reset fell on the frame where the quiet run reached the limit: the state then was the
    # initial one, so from there on the frames score exactly as the same silence at the start of a file.
    run = np.flatnonzero(stream.since(0) >= QUIET_PROB)[-1] + 1  # first frame of the final quiet run
    last_reset = run + (stream.frames - run) // RESET_AFTER_QUIET_FRAMES * RESET_AFTER_QUIET_FRAMES
    assert stream._state.quiet == stream.frames - last_reset
    since_reset = vad.speech_probs(np.zeros((stream.frames - last_reset) * FRAME, np.float32))
    np.testing.assert_allclose(stream.since(0)[last_reset - stream.frames:] if stream.frames > last_reset
                               else since_reset, since_reset, atol=1e-5)


def test_a_stuck_state_does_not_hide_the_next_speaker(shared_manifest):
    """Measured (issue 18, the 60-minute timeline of `edge-asr bench reliability --long-minutes 60`, seed 0):
    from 1560 s, the last 3 s of JFK's clip and 4.4 s of -70 dBFS dither left Silero's state where every
    frame of the next clip (MFA "cold corpus", 26 s, 1567.3 s) scored ~0 (0 of 805 frames >= 0.5; alone:
    589), so batched and live modes lost the whole clip. The quiet reset recovers it."""
    from benchmarks.corpus import read_manifest
    from benchmarks.long_session import build_timeline
    from conftest import SHARED_AUDIO
    from edge_asr.audio import load_audio

    clips = [(c.id, c.text, load_audio(c.path)) for c in read_manifest(SHARED_AUDIO / "manifest.jsonl")
             if c.language == "en"]
    audio, placed, _ = build_timeline(clips, 1600 / 60, 0)  # the hour's first 1600 s (same seed, same prefix)
    cold = next(p for p in placed if p.clip_id == "en_mfa_cold_corpus" and 1560 < p.start < 1600)
    probs = default_vad().speech_probs(audio[1560 * SR:int(cold.end * SR)])
    tail = probs[int((cold.start - 1560) * SR) // FRAME:]
    assert (tail >= 0.5).mean() > 0.5, f"{(tail >= 0.5).sum()} of {tail.size} frames of speech detected"
