"""Input fuzzing (issue 18): malformed and edge-case inputs through ``transcribe`` (arrays, bytes, paths),
the CLI and the streaming input stage. Every case must end in a result or an ``EdgeASRError`` whose
message names the problem, within a time bound that follows the audio's real duration; never another
exception, never a hang.

Hypothesis drives it with ``derandomize=True`` and no example database, so every run tries the same
inputs; the seed files it mutates are in tests/fuzz_corpus (made by its make_corpus.py, with the
malformed files kept as regressions). On the committed tiny random model most examples run with the
decode gated off (``silence_peak_db=200``: every window counts as silence, so audio decoding, channel
mixing, resampling, log-mel and result building all run, the encoder and decoder do not); a smaller set
decodes fully. ``EDGE_ASR_FUZZ_REPORT=FILE`` appends each test's tally as JSON lines.
"""

from __future__ import annotations

import collections
import faulthandler
import io
import json
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

hypothesis = pytest.importorskip("hypothesis", reason="needs hypothesis (the test extra)")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import edge_asr  # noqa: E402
from edge_asr import cli  # noqa: E402
from edge_asr.errors import AudioError, AudioLimitError, AudioTypeError, EdgeASRError, StreamError  # noqa: E402
from edge_asr.stream_input import StreamInput  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
CORPUS_FILES = sorted(p for p in CORPUS.iterdir() if p.is_file() and p.suffix != ".py" and p.name != "README.md")
SEEDS = [p for p in CORPUS_FILES if p.name.startswith("seed")]
GATED = {"silence_peak_db": 200.0}  # every window is "silence": no encoder/decoder runs
DECODE = {"temperature": 0.0}  # one greedy pass per window (the random model would climb the ladder)
HANG_S = 120  # a case still running after this is a hang: faulthandler dumps every thread and exits


def fuzz_settings(n: int) -> settings:
    return settings(max_examples=n, derandomize=True, database=None, deadline=None, print_blob=True,
                    suppress_health_check=list(HealthCheck))


class Tally:
    """Outcome counts of one test: result / typed error (other exceptions fail the test at once)."""

    def __init__(self, name: str):
        self.name = name
        self.counts: collections.Counter = collections.Counter()
        self.slowest = 0.0

    def run(self, fn, bound_s: float):
        """fn() -> its value, or the EdgeASRError it raised; anything else propagates (a failure)."""
        faulthandler.dump_traceback_later(HANG_S, exit=True, file=sys.__stderr__)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = fn()
            self.counts["result"] += 1
        except EdgeASRError as e:
            self.counts["typed"] += 1
            value = e
        finally:
            faulthandler.cancel_dump_traceback_later()
        elapsed = time.perf_counter() - t0
        self.slowest = max(self.slowest, elapsed)
        assert elapsed <= bound_s, f"{elapsed:.1f} s > bound {bound_s:.1f} s"
        return value

    def report(self, minimum: int) -> None:
        total = self.counts["result"] + self.counts["typed"]
        line = {"test": self.name, "inputs": total, **self.counts, "other_exceptions": 0, "hangs": 0,
                "slowest_s": round(self.slowest, 3)}
        if os.environ.get("EDGE_ASR_FUZZ_REPORT"):
            with open(os.environ["EDGE_ASR_FUZZ_REPORT"], "a") as f:
                f.write(json.dumps(line) + "\n")
        assert total >= minimum, f"only {total} examples ran"


def bound(duration_s: float) -> float:
    """Seconds a case may take: a fixed start-up allowance plus time proportional to its audio (2 cores
    shared with other processes, so generous)."""
    return 20.0 + 2.0 * duration_s


@pytest.fixture(scope="module")
def model(runtime_model_dir):
    return edge_asr.load_model(runtime_model_dir, device="cpu", threads=1)


# ---- arrays ------------------------------------------------------------------------------------
DTYPES = ["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
          "uint64", "bool", "complex64", "object", "U3"]
FILLS = ["zeros", "noise", "tone", "nan_one", "inf_one", "all_nan", "huge", "int16_scale", "extreme", "denormal"]
RATES = [None, 16000, 8000, 44100, 48000, 22050.5, 1000, 999, 1, 8, 0, -16000, 10_000_000, 1_000_000,
         float("nan"), float("inf"), -math.inf, "16000", True, np.int64(16000), np.float32(8000.0)]
SHAPES = st.one_of(
    st.tuples(st.sampled_from([0, 1, 2, 3, 17, 160, 1600, 4000])),
    st.sampled_from([(0, 2), (2, 0), (0, 0), (1, 2), (2, 1), (1, 1), (2, 2), (16, 16), (1600, 1), (1, 1600),
                     (1600, 2), (2, 1600), (17, 1600), (1600, 17), (100, 300), (300, 100), (300, 400), (257, 300)]),
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.sampled_from([0, 1, 100])),
    st.just(()),
)


def make_array(shape: tuple, dtype: str, fill: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape)) if shape else 1
    if dtype == "object":
        return np.array([0.1, "x", None] * n, dtype=object)[:n].reshape(shape)
    if dtype == "U3":
        return np.full(shape, "abc")
    base = {"zeros": np.zeros(n), "noise": rng.normal(0, 0.2, n), "tone": 0.5 * np.sin(np.arange(n) * 0.3),
            "huge": np.full(n, 1e30), "int16_scale": rng.normal(0, 3000, n), "extreme": rng.normal(0, 1e300, n),
            "denormal": np.full(n, 1e-40)}.get(fill, rng.normal(0, 0.2, n))
    if fill in ("nan_one", "inf_one") and n:
        base[rng.integers(n)] = np.nan if fill == "nan_one" else -np.inf
    if fill == "all_nan":
        base[:] = np.nan
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        with np.errstate(invalid="ignore", over="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scaled = np.nan_to_num(base * info.max, nan=0, posinf=info.max, neginf=info.min)
            return np.clip(scaled, info.min, info.max).astype(dt).reshape(shape)
    with np.errstate(over="ignore", invalid="ignore"):
        return base.astype(dt).reshape(shape)


def expected_words(arr: np.ndarray, rate) -> str | None:
    """A word the error must contain, where the input makes the problem certain."""
    if isinstance(rate, str) or isinstance(rate, (bool, np.bool_)):
        return "sample rate"
    if rate is not None and (not math.isfinite(float(rate)) or float(rate) <= 0):
        return "sample rate"
    if rate is not None and not 1000 <= float(rate) <= 1_000_000:
        return "sample rate"
    if arr.dtype.kind not in "fiu":
        return "dtype"
    if arr.size == 0:
        return "no samples"
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        return "NaN"
    return None


def test_fuzz_transcribe_arrays(model):
    tally = Tally("transcribe arrays")

    @fuzz_settings(300)
    @given(SHAPES, st.sampled_from(DTYPES), st.sampled_from(FILLS),
           st.one_of(st.sampled_from([None, 16000, 48000]), st.sampled_from(RATES)), st.integers(0, 2**16))
    def case(shape, dtype, fill, rate, seed):
        arr = make_array(shape, dtype, fill, seed)
        n = max(arr.shape) if arr.ndim else 1
        duration = n / 1000.0  # at least as long as the audio at the lowest accepted rate
        out = tally.run(lambda: model.transcribe(arr, sample_rate=rate, **GATED), bound(duration))
        want = expected_words(arr, rate)
        if isinstance(out, EdgeASRError):
            if want:
                assert want.lower() in str(out).lower(), (want, str(out))
        else:
            assert want is None, f"expected an error naming {want!r}, got a result"
            assert out.text == "" and out.duration >= 0

    case()
    tally.report(300)


def test_decoded_arrays_keep_their_duration(model):
    """A smaller set decodes fully (encoder + greedy decoder): odd but valid audio gives a result whose
    duration is the input's (every sample accounted for)."""
    tally = Tally("transcribe arrays, decoded")

    @fuzz_settings(24)
    @given(st.sampled_from([1, 2, 17, 400, 8000]), st.sampled_from(["float32", "int16", "uint8", "float64"]),
           st.sampled_from(["noise", "tone", "int16_scale", "zeros", "huge"]), st.sampled_from([8000, 16000, 44100]),
           st.sampled_from([1, 2]), st.integers(0, 99))
    def case(frames, dtype, fill, rate, channels, seed):
        arr = make_array((frames, channels) if channels > 1 else (frames,), dtype, fill, seed)
        out = tally.run(lambda: model.transcribe(arr, sample_rate=rate, **DECODE), bound(frames / rate))
        assert not isinstance(out, EdgeASRError), out
        assert abs(out.duration - round(frames / rate * 16000) / 16000) <= 2 / 16000 + 1e-3

    case()
    tally.report(24)


# ---- bytes and paths ---------------------------------------------------------------------------
MUTATIONS = st.lists(st.tuples(st.sampled_from(["truncate", "flip", "overwrite", "header", "append", "zero"]),
                               st.floats(0, 1, allow_nan=False), st.integers(0, 2**31 - 1)), min_size=0, max_size=4)


def mutate(data: bytes, steps) -> bytes:
    d = bytearray(data)
    for kind, where, value in steps:
        if not d:
            break
        i = min(int(where * len(d)), len(d) - 1)
        if kind == "truncate":
            d = d[:i]
        elif kind == "flip":
            d[i] ^= 1 << (value % 8)
        elif kind == "overwrite":
            d[i:i + 4] = value.to_bytes(4, "little")
        elif kind == "header":  # a 16/32-bit field near the start: rates, channels, sizes
            j = min(int(where * 64), len(d) - 1)
            d[j:j + 4] = [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x01\x00\x00\x00", b"\x08\x00\x00\x00",
                          b"\x80\x96\x98\x00", value.to_bytes(4, "little")][value % 6]
        elif kind == "append":
            d += bytes(np.random.default_rng(value).integers(0, 256, value % 3000, dtype=np.uint8))
        elif kind == "zero":
            d[i:i + value % 512] = bytes(len(d[i:i + value % 512]))
    return bytes(d)


def file_duration(data: bytes) -> float:
    """The longest the bytes could decode to: their size at 1000 Hz, one byte per sample (any shorter
    sample or higher rate gives less)."""
    return len(data) / 1000.0


def check_file_outcome(out) -> None:
    if isinstance(out, EdgeASRError):
        assert str(out).strip(), "an error without a message"
    else:
        assert out.text == "" and out.duration >= 0


def test_fuzz_transcribe_bytes(model):
    tally = Tally("transcribe bytes")

    @fuzz_settings(300)
    @given(st.sampled_from(CORPUS_FILES), MUTATIONS)
    def case(path, steps):
        data = mutate(path.read_bytes(), steps)
        out = tally.run(lambda: model.transcribe(data, **GATED), bound(file_duration(data)))
        check_file_outcome(out)

    case()
    tally.report(300)


def test_fuzz_transcribe_paths(model, tmp_path):
    tally = Tally("transcribe paths")
    fifo = tmp_path / "fifo.wav"
    os.mkfifo(fifo)
    odd_paths = ["", "/", str(tmp_path), str(tmp_path / "missing.wav"), "a\x00b.wav", "x" * 5000,
                 str(fifo), "/dev/null", "/dev/zero", str(tmp_path / ("y" * 300))]

    @fuzz_settings(120)
    @given(st.one_of(st.tuples(st.just("odd"), st.sampled_from(odd_paths), st.just(None)),
                     st.tuples(st.just("file"), st.sampled_from(CORPUS_FILES), MUTATIONS)),
           st.sampled_from([".wav", ".flac", ".mp3", ".ogg", ".m4a", ""]), st.booleans())
    def case(kind_path_steps, suffix, as_pathlib):
        kind, src, steps = kind_path_steps
        if kind == "odd":
            target = src
        else:
            data = mutate(src.read_bytes(), steps)
            target = tmp_path / f"case{suffix}"
            target.write_bytes(data)
            target = str(target)
        audio = Path(target) if as_pathlib and "\x00" not in target and target else target
        out = tally.run(lambda: model.transcribe(audio, **GATED),
                        bound(file_duration(data) if kind == "file" else 1.0))
        check_file_outcome(out)
        if kind == "odd":
            assert isinstance(out, AudioError)

    case()
    tally.report(120)


@pytest.mark.parametrize("name, words", [
    ("bad-rate-1hz.wav", "sample rate of 1 Hz"), ("bad-rate-8hz.wav", "sample rate of 8 Hz"),
    ("bad-rate-10mhz.wav", "sample rate of 10000000 Hz"), ("bad-header-only.wav", "no samples"),
    ("bad-nan.wav", "NaN"), ("bad-text.wav", "cannot decode"),
])
def test_corpus_regressions_name_the_problem(model, name, words):
    with pytest.raises(AudioError, match=words):
        model.transcribe(CORPUS / name, **GATED)


def test_tiny_file_claiming_years_is_bounded(model):
    """A FLAC whose header claims two years holds 0.25 s: decoded on what it holds (PyAV reads it) or refused
    with a typed error (libsndfile alone cannot seek it), in well under a second either way."""
    t0 = time.perf_counter()
    try:
        out = model.transcribe(CORPUS / "bad-flac-claims-2-years.flac", **GATED)
    except AudioError as e:
        assert "bad-flac-claims-2-years.flac" in str(e)
    else:
        assert out.duration < 1
    assert time.perf_counter() - t0 < 5


def test_max_duration_refuses_long_audio_before_decoding_it_all(model):
    with pytest.raises(AudioLimitError, match="max_duration"):
        model.transcribe(np.zeros(16000 * 5, np.float32), max_duration=2.0, **GATED)
    buf = io.BytesIO()
    sf.write(buf, np.zeros(16000 * 5, np.float32), 16000, format="FLAC")
    with pytest.raises(AudioLimitError, match="longer than the 2 s"):
        model.transcribe(buf.getvalue(), max_duration=2.0, **GATED)
    assert model.transcribe(buf.getvalue(), max_duration=None, **GATED).duration == 5.0


def test_int16_scale_floats_are_rescaled_with_a_warning(model):
    x = (0.3 * np.sin(np.arange(16000) * 0.2) * 32767).astype(np.float32)
    with pytest.warns(edge_asr.errors.AudioWarning, match="integer-scale"):
        scaled = edge_asr.audio.load_audio(x)
    np.testing.assert_allclose(scaled, x / 32768, atol=1e-6)


def test_channels_first_with_many_channels():
    x = np.random.default_rng(0).normal(0, 0.1, (20, 16000)).astype(np.float32)  # 20 channels first
    out = edge_asr.audio.load_audio(x)
    assert out.shape == (16000,)
    np.testing.assert_allclose(out, x.mean(axis=0), atol=1e-6)
    with pytest.raises(AudioError, match="cannot tell frames from channels"):
        edge_asr.audio.load_audio(np.zeros((300, 400), np.float32))


def test_non_audio_arguments_are_typed(model):
    for bad in ([0.0] * 10, None, 5, 3.5, {"a": 1}, object()):
        with pytest.raises(AudioTypeError):
            model.transcribe(bad, **GATED)
    with pytest.raises(edge_asr.errors.OptionError):
        model.transcribe(np.zeros(100, np.float32), options=42)
    assert model.transcribe(np.zeros(100, np.float32), options={"silence_peak_db": 200.0}).text == ""
    assert model.transcribe(io.BytesIO((CORPUS / "seed.flac").read_bytes()), **GATED).duration == 0.25


# ---- CLI ---------------------------------------------------------------------------------------
def test_fuzz_cli_in_process(runtime_model_dir, tmp_path, capsys):
    """`edge-asr transcribe` (cli.main in this process): exit 0 with output, or 1 with the file's problem
    on stderr; never a traceback."""
    tally = Tally("cli in-process")

    @fuzz_settings(30)
    @given(st.sampled_from(CORPUS_FILES), MUTATIONS)
    def case(path, steps):
        target = tmp_path / f"in{path.suffix}"
        target.write_bytes(mutate(path.read_bytes(), steps))
        code = tally.run(lambda: cli.main(["transcribe", str(target), "--model", str(runtime_model_dir),
                                           "--silence-peak-db", "200", "--no-progress", "--threads", "1"]),
                         bound(file_duration(target.read_bytes())))
        err = capsys.readouterr().err
        tally.counts[f"exit {code}"] += 1
        assert code in (0, 1), (code, err)
        assert "Traceback" not in err
        if code == 1:
            assert str(target) in err

    case()
    tally.report(30)


@pytest.mark.parametrize("name, words", [("bad-rate-1hz.wav", "sample rate of 1 Hz"),
                                          ("bad-header-only.wav", "no samples")])
def test_cli_subprocess_refuses_bad_headers(runtime_model_dir, name, words):
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edge_asr", "transcribe", str(CORPUS / name), "--model",
                           str(runtime_model_dir), "--no-progress"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert time.perf_counter() - t0 < 60


# ---- streaming input ---------------------------------------------------------------------------
CHUNK_RATES = [16000, 48000, 8000, 0, -1, float("nan"), 1, "16000", None, 44100.0]


def test_fuzz_stream_input():
    """StreamInput.push (what StreamingTranscriber.feed calls): typed errors for what cannot be audio,
    and the queue stays finite with every accepted 16 kHz sample accounted for."""
    tally = Tally("stream feed")

    @fuzz_settings(250)
    @given(st.one_of(st.sampled_from([16000, 48000]), st.sampled_from(CHUNK_RATES)),
           st.lists(st.tuples(SHAPES, st.sampled_from(DTYPES), st.sampled_from(FILLS),
                              st.one_of(st.none(), st.sampled_from(CHUNK_RATES)), st.integers(0, 2**16)),
                    min_size=1, max_size=6))
    def case(stream_rate, chunks):
        source = StreamInput()
        first_rate = None
        for shape, dtype, fill, changed_rate, seed in chunks:
            rate = stream_rate if changed_rate is None else changed_rate  # mostly the stream's own rate
            arr = make_array(shape, dtype, fill, seed) if dtype != "object" else [0.1, None]
            before = source.received
            out = tally.run(lambda: source.push(arr, rate), bound(0.0))
            if isinstance(out, EdgeASRError):
                if isinstance(out, StreamError):
                    assert "sample rate changed" in str(out)
                continue
            first_rate = rate if first_rate is None else first_rate
            if rate == 16000:  # no resampler: the chunk's frames are queued one for one
                a = np.asarray(arr)
                added = source.received - before
                assert (added == 0) if a.size == 0 else (0 < added <= a.size and a.size % added == 0)
        source.close()
        queued = source.take()
        assert queued.dtype == np.float32 and np.isfinite(queued).all()
        assert np.abs(queued).max(initial=0) <= 128.0  # |x| <= 64 before resampling; its ringing adds a little
        if first_rate == 16000:
            assert source.received == queued.size

    case()
    tally.report(250)


def test_nan_in_a_stream_does_not_destroy_what_follows():
    """One NaN sample at 48 kHz used to poison the resampler and every later sample; now it is silence."""
    rng = np.random.default_rng(0)
    chunks = [rng.normal(0, 0.1, 4800).astype(np.float32) for _ in range(5)]
    clean = [c.copy() for c in chunks]
    chunks[1][100] = np.nan
    chunks[2][7] = np.inf
    clean[1][100] = 0.0
    clean[2][7] = 0.0
    got, want = StreamInput(), StreamInput()
    with pytest.warns(edge_asr.errors.AudioWarning, match="NaN, infinite or absurd"):
        for c in chunks:
            got.push(c, 48000)
    for c in clean:
        want.push(c, 48000)
    got.close(), want.close()
    assert got.samples_replaced == 2
    np.testing.assert_array_equal(got.take(), want.take())


def test_empty_chunks_and_rate_errors_are_typed():
    source = StreamInput()
    source.push(np.zeros((0, 2), np.float32))
    source.push(np.zeros((2, 0), np.int16))
    assert source.pending == 0 and source.received == 0
    for rate in (0, float("nan"), -8000):
        with pytest.raises(AudioError, match="sample rate"):
            source.push(np.zeros(10, np.float32), rate)
    source.push(np.zeros(10, np.float32), 48000)
    with pytest.raises(StreamError, match="48000 -> 16000"):
        source.push(np.zeros(10, np.float32), 16000)
    with pytest.raises(AudioTypeError):
        source.push(b"\x00\x01" * 10, 48000)
