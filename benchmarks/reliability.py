"""`edge-asr bench reliability`: words and compute on 10 minutes of non-speech, and fuzz totals (issue 18).

    edge-asr bench reliability --models tiny.en,base            # writes benchmarks/results/reliability-<cpu>.json
    edge-asr bench reliability --models tiny.en --quick         # 1/10 of each signal, fewer fuzz cases

Noise section: ten minutes of signals without speech (digital silence, dither, white and pink noise at
three levels, 50/60 Hz mains hum, synthetic chords, sweeps, a melody, applause-like bursts; all generated
here from a fixed seed), transcribed by each model with default options and with ``vad_filter=True``.
Per signal: the words in the text (tokens with a letter or digit), any other text (". . ."), processing
seconds and RTF, encoder runs, decodes (temperature attempts) and decoder calls, and process RSS before
and after. The target is at most one word per model over all of it, and noise costing far less than real
time.

Fuzz section: the committed corpus (tests/fuzz_corpus) mutated (truncated, bit-flipped, overwritten,
re-headered, extended), edge-case arrays (every dtype, 0-3 dimensions, NaN/Inf/huge values, absurd
sample rates) and stream chunks, each through the tiny random model's ``transcribe`` (decode gated off
with ``silence_peak_db=200``, as in tests/test_reliability_fuzz.py) or ``StreamInput.push``: results,
typed errors, other exceptions (target 0) and cases over their time bound (hangs; target 0).

The CPU class (int8 kernels differ: AVX2, AVX-512 VNNI, AMX, ARM) names the results file, and lscpu's
flags are recorded with the machine.
"""

from __future__ import annotations

import argparse
import collections
import faulthandler
import math
import random
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .machine import machine_info
from .report import save_json

SR = 16000
REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "fuzz_corpus"
TINY_MODEL = REPO / "tests" / "assets" / "tiny-model"
WORD = re.compile(r"\w", re.UNICODE)


# ---- signals -----------------------------------------------------------------------------------
def _level(x: np.ndarray, dbfs: float) -> np.ndarray:
    """``x`` scaled to an RMS of ``dbfs`` (relative to a full-scale sine's peak of 1)."""
    rms = float(np.sqrt(np.mean(x ** 2))) or 1.0
    return x * (10 ** (dbfs / 20) / rms)


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spectrum / np.sqrt(f), n)


def _note(freq: float, seconds: float, harmonics: int = 6, vibrato: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * freq * t + (vibrato * np.sin(2 * np.pi * 5.5 * t) if vibrato else 0)
    x = sum(np.sin(k * phase) / k ** 1.3 for k in range(1, harmonics + 1))
    attack, release = min(0.02, seconds / 4), min(0.15, seconds / 3)
    env = np.minimum(1.0, np.minimum(t / attack, (seconds - t) / release)) * np.exp(-t * 0.8)
    return x * np.clip(env, 0, 1)


def _midi(n: float) -> float:
    return 440.0 * 2 ** ((n - 69) / 12)


def silence(rng, seconds):
    return np.zeros(int(seconds * SR))


def dither(rng, seconds):
    n = int(seconds * SR)  # triangular dither of +-1 LSB of 16-bit PCM
    return (rng.uniform(-0.5, 0.5, n) + rng.uniform(-0.5, 0.5, n)) / 32768


def white(rng, seconds):
    part = int(seconds * SR) // 3
    return np.concatenate([_level(rng.standard_normal(part), db) for db in (-40, -25, -10)])


def pink(rng, seconds):
    part = int(seconds * SR) // 3
    return np.concatenate([_level(_pink(rng, part), db) for db in (-40, -25, -10)])


def hum(rng, seconds):
    half = int(seconds * SR) // 2
    t = np.arange(half) / SR
    mains50 = sum(a * np.sin(2 * np.pi * 50 * k * t) for k, a in ((1, 1.0), (2, 0.3), (3, 0.5), (5, 0.2)))
    buzz60 = np.clip(3 * np.sin(2 * np.pi * 60 * t), -1, 1) + 0.2 * np.sin(2 * np.pi * 120 * t)  # clipped: buzzy
    return np.concatenate([_level(mains50, -20), _level(buzz60, -25)])


def chords(rng, seconds):
    shapes = ([0, 4, 7], [0, 3, 7], [0, 4, 7, 10], [0, 3, 7, 10], [0, 5, 7], [0, 4, 7, 11])
    out, total = [], 0
    while total < seconds * SR:
        length = float(rng.choice([1.5, 2.0, 3.0]))
        root = 48 + int(rng.integers(0, 12))
        x = sum(_note(_midi(root + i) * (1 + rng.normal(0, 0.001)), length) for i in shapes[rng.integers(len(shapes))])
        x += 0.6 * _note(_midi(root - 12), length, harmonics=3)  # bass
        out.append(x)
        total += x.size
    return _level(np.concatenate(out)[: int(seconds * SR)], -18)


def sweeps(rng, seconds):
    parts = []
    for i in range(int(seconds // 10)):
        t = np.arange(10 * SR) / SR
        if i % 3 == 0:  # logarithmic 40 Hz -> 8 kHz
            k = np.log(8000 / 40) / 10
            phase = 2 * np.pi * 40 * (np.exp(k * t) - 1) / k
        elif i % 3 == 1:  # linear 8 kHz -> 100 Hz
            phase = 2 * np.pi * (8000 * t - (7900 / 20) * t ** 2)
        else:  # siren: slow frequency modulation around 800 Hz
            phase = 2 * np.pi * 800 * t + (300 / 0.5) * np.sin(2 * np.pi * 0.5 * t)
        parts.append(np.sin(phase))
    return _level(np.concatenate(parts), -20)


def melody(rng, seconds):
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    out, total = [], 0
    while total < seconds * SR:
        length = float(rng.choice([0.25, 0.4, 0.6]))
        x = _note(_midi(scale[rng.integers(len(scale))] + 12), length, harmonics=8, vibrato=0.3)
        out.append(x)
        total += x.size
    return _level(np.concatenate(out)[: int(seconds * SR)], -20)


def applause(rng, seconds):
    n = int(seconds * SR)
    x = np.zeros(n)
    clap_len = int(0.012 * SR)
    decay = np.exp(-np.arange(clap_len) / (0.003 * SR))
    rate = 10 + 30 * (0.5 + 0.5 * np.sin(np.linspace(0, 6 * np.pi, n)))  # claps per second, varying
    starts = np.flatnonzero(rng.random(n) < rate / SR)
    for s in starts:
        burst = rng.standard_normal(clap_len) * decay * rng.uniform(0.3, 1.0)
        burst = np.diff(burst, prepend=0)  # claps are bright
        x[s:s + clap_len] += burst[: n - s]
    return _level(x + 0.02 * _pink(rng, n), -20)


# name, seconds, generator: 600 s in all
SIGNALS = [("digital silence", 60, silence), ("dither", 60, dither), ("white noise", 90, white),
           ("pink noise", 90, pink), ("mains hum", 60, hum), ("chords", 90, chords), ("sweeps", 60, sweeps),
           ("melody", 30, melody), ("applause", 60, applause)]


def signal_set(seed: int = 0, scale: float = 1.0) -> list[tuple[str, np.ndarray]]:
    out = []
    for i, (name, seconds, make) in enumerate(SIGNALS):
        rng = np.random.default_rng(seed * 1000 + i)
        length = max(10.0, seconds * scale) if scale < 1 else seconds
        out.append((name, np.clip(make(rng, length), -1, 1).astype(np.float32)))
    return out


def count_words(text: str) -> int:
    return sum(1 for w in text.split() if WORD.search(w))


# ---- machine -----------------------------------------------------------------------------------
def lscpu_flags() -> list[str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    for line in out.splitlines():
        if line.startswith("Flags:"):
            return line.split(":", 1)[1].split()
    return []


def cpu_class(flags: list[str]) -> str:
    """The int8 kernel class: amx, avx512vnni, avxvnni, avx512, avx2, neon or the architecture."""
    from edge_asr.quantization import kernel_class

    return kernel_class(flags)


def rss_mb() -> float | None:
    try:
        import psutil

        return round(psutil.Process().memory_info().rss / 2**20, 1)
    except ImportError:
        return None


# ---- noise section -----------------------------------------------------------------------------
class _Attempts:
    """Counts decodes (one per temperature attempt) by wrapping DecodingTask.run for the bench only."""

    def __init__(self):
        self.temperatures: list[float] = []

    def __enter__(self):
        from edge_asr import decoding

        self._original = original = decoding.DecodingTask.run
        attempts = self

        def run(task, state, *args, **kwargs):
            attempts.temperatures.append(task.options.temperature)
            return original(task, state, *args, **kwargs)

        decoding.DecodingTask.run = run
        return self

    def __exit__(self, *exc):
        from edge_asr import decoding

        decoding.DecodingTask.run = self._original


def noise_section(models: list[str], threads: int, signals, vad_modes=(False, True)) -> dict:
    import edge_asr

    out = {}
    for name in models:
        model = edge_asr.load_model(name, device="cpu", threads=threads)
        rows = []
        for vad in vad_modes:
            for signal, audio in signals:
                model.backend.timings.update(encoder_s=0.0, encoder_runs=0, decoder_s=0.0, decoder_runs=0)
                rss0 = rss_mb()
                with _Attempts() as attempts:
                    t0 = time.perf_counter()
                    result = model.transcribe(audio, vad_filter=vad)
                    elapsed = time.perf_counter() - t0
                seconds = audio.size / SR
                t = model.backend.timings
                row = {"signal": signal, "vad_filter": vad, "audio_s": seconds, "words": count_words(result.text),
                       "text": result.text, "processing_s": round(elapsed, 3), "rtf": round(elapsed / seconds, 4),
                       "encoder_runs": t["encoder_runs"], "decodes": len(attempts.temperatures),
                       "fallbacks": sum(1 for x in attempts.temperatures if x > 0), "decoder_calls": t["decoder_runs"],
                       "rss_mb_before": rss0, "rss_mb_after": rss_mb()}
                rows.append(row)
                print(f"{name:8s} vad={str(vad):5s} {signal:16s} {seconds:5.0f} s  words {row['words']}  "
                      f"{elapsed:6.2f} s (RTF {row['rtf']:.3f})  decodes {row['decodes']} "
                      f"(fallbacks {row['fallbacks']}) decoder calls {row['decoder_calls']}  {result.text[:50]!r}",
                      flush=True)
        summary = {}
        for vad in vad_modes:
            sel = [r for r in rows if r["vad_filter"] == vad]
            audio_s = sum(r["audio_s"] for r in sel)
            proc = sum(r["processing_s"] for r in sel)
            summary["vad" if vad else "default"] = {
                "audio_s": audio_s, "words": sum(r["words"] for r in sel),
                "signals_with_text": [r["signal"] for r in sel if r["text"]],
                "processing_s": round(proc, 2), "rtf": round(proc / audio_s, 4),
                "decodes": sum(r["decodes"] for r in sel), "fallbacks": sum(r["fallbacks"] for r in sel),
                "decoder_calls": sum(r["decoder_calls"] for r in sel)}
        words = sum(v["words"] for v in summary.values())
        out[name] = {"folder": str(model.manifest.folder), "quantization": model.manifest.quantization,
                     "summary": summary, "words_total": words, "target_met": words <= 1, "signals": rows}
    return out


# ---- fuzz section ------------------------------------------------------------------------------
DTYPES = ["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint64", "bool",
          "complex64", "object"]
RATES = [None, 16000, 8000, 44100, 48000, 22050.5, 1000, 999, 1, 8, 0, -16000, 10_000_000, 1_000_000,
         float("nan"), float("inf"), "16000", True]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    d = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not d:
            break
        kind = rng.choice(["truncate", "flip", "overwrite", "header", "append", "zero"])
        i = rng.randrange(len(d))
        if kind == "truncate":
            d = d[:i]
        elif kind == "flip":
            d[i] ^= 1 << rng.randrange(8)
        elif kind == "overwrite":
            d[i:i + 4] = rng.getrandbits(32).to_bytes(4, "little")
        elif kind == "header":
            j = rng.randrange(min(64, len(d)))
            d[j:j + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x01\x00\x00\x00",
                                     b"\x80\x96\x98\x00", rng.getrandbits(32).to_bytes(4, "little")])
        elif kind == "append":
            d += rng.randbytes(rng.randrange(3000))
        else:
            n = rng.randrange(512)
            d[i:i + n] = bytes(len(d[i:i + n]))
    return bytes(d)


def _array(rng: random.Random) -> tuple[object, object]:
    nprng = np.random.default_rng(rng.getrandbits(32))
    shape = rng.choice([(0,), (1,), (2,), (17,), (1600,), (4000,), (0, 2), (2, 0), (1, 2), (2, 1600), (1600, 2),
                        (20, 1600), (300, 400), (1, 1, 100), (2, 2, 2), ()])
    dtype = rng.choice(DTYPES)
    n = int(np.prod(shape)) if shape else 1
    if dtype == "object":
        return [0.1, None] * 3, rng.choice(RATES)
    base = rng.choice([np.zeros(n), nprng.normal(0, 0.2, n), nprng.normal(0, 3000, n), np.full(n, 1e30),
                       nprng.normal(0, 1e300, n)])
    if n and rng.random() < 0.3:
        base[nprng.integers(n)] = rng.choice([np.nan, np.inf, -np.inf])
    dt = np.dtype(dtype)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dt.kind in "iu":
            info = np.iinfo(dt)
            arr = np.clip(np.nan_to_num(base * info.max, nan=0, posinf=info.max, neginf=info.min), info.min, info.max)
        else:
            arr = base
        return arr.astype(dt).reshape(shape), rng.choice(RATES)


def fuzz_section(n_files: int, n_arrays: int, n_streams: int, seed: int) -> dict:
    import edge_asr
    from edge_asr.errors import EdgeASRError
    from edge_asr.stream_input import StreamInput

    model = edge_asr.load_model(TINY_MODEL, device="cpu", threads=1, verify="size")
    corpus = [p for p in sorted(CORPUS.iterdir()) if p.is_file() and p.suffix not in (".py", ".md")]
    rng = random.Random(seed)
    totals = {}
    failures: list[str] = []

    def run(kind: str, fn, bound_s: float) -> None:
        counts = totals.setdefault(kind, collections.Counter())
        faulthandler.dump_traceback_later(600, exit=True)  # a real hang: dump every thread and stop
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn()
            counts["result"] += 1
        except EdgeASRError:
            counts["typed"] += 1
        except Exception as e:  # the target is none
            counts["other_exceptions"] += 1
            failures.append(f"{kind}: {type(e).__name__}: {e}"[:300])
        finally:
            faulthandler.cancel_dump_traceback_later()
        elapsed = time.perf_counter() - t0
        counts["inputs"] += 1
        if elapsed > bound_s:
            counts["over_time_bound"] += 1
            failures.append(f"{kind}: {elapsed:.1f} s > {bound_s:.1f} s")
        counts["slowest_ms"] = max(counts["slowest_ms"], round(elapsed * 1000))

    gated = {"silence_peak_db": 200.0}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n_files):
            src = rng.choice(corpus)
            data = _mutate(src.read_bytes(), rng)
            bound_s = 20 + 2 * len(data) / 1000  # its size as 1000 Hz 8-bit: the longest it could be
            if i % 2:
                run("bytes", lambda: model.transcribe(data, **gated), bound_s)
            else:
                path = Path(tmp) / f"case{src.suffix}"
                path.write_bytes(data)
                run("paths", lambda: model.transcribe(path, **gated), bound_s)
    for _ in range(n_arrays):
        arr, rate = _array(rng)
        run("arrays", lambda: model.transcribe(arr, sample_rate=rate, **gated), 20 + 2 * np.size(arr) / 1000)
    for _ in range(n_streams):
        source = StreamInput()
        for _ in range(rng.randint(1, 5)):
            arr, rate = _array(rng)
            run("stream chunks", lambda: source.push(arr, 16000 if rate is None else rate), 20)
        source.close()
        queued = source.take()
        if not np.isfinite(queued).all():
            failures.append("stream: non-finite samples queued")
    overall = collections.Counter()
    for c in totals.values():
        overall.update({k: v for k, v in c.items() if k != "slowest_ms"})
    return {"seed": seed, "by_kind": {k: dict(v) for k, v in totals.items()}, "total": dict(overall),
            "failures": failures[:50]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edge-asr bench reliability", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="tiny.en,base", help="comma-separated model names or folders")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="10 s of each signal, 200 fuzz cases")
    p.add_argument("--no-vad", action="store_true", help="default options only")
    p.add_argument("--skip-noise", action="store_true")
    p.add_argument("--skip-fuzz", action="store_true")
    p.add_argument("--fuzz", type=int, default=4000, help="fuzz cases (files, arrays and streams share them)")
    p.add_argument("--long-minutes", type=float, default=0,
                   help="also run the long-session section: a simulated live session, an offline and a batched "
                        "transcription of this many minutes of speech and pauses (issue 18: 60), RSS each minute")
    p.add_argument("--long-modes", default="live,offline,batched", help="long-session paths to run")
    p.add_argument("--long-step", type=float, default=1.0,
                   help="long live session: seconds of audio between decodes (default 1.0: a memory and accounting "
                        "run, not a latency run; the streaming bench measures latency at the default 0.3)")
    p.add_argument("--manifest", type=Path, default=None,
                   help="speech for the long section (default ../shared/audio/manifest.jsonl)")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON report (default benchmarks/results/reliability-<cpu class>.json, "
                        "reliability-long-<cpu class>.json with --long-minutes and both other sections skipped)")
    args = p.parse_args(argv)
    flags = lscpu_flags()
    info = machine_info()
    info["lscpu_flags"] = flags
    klass = cpu_class(flags or info["cpu"]["flags"])
    report: dict = {"command": "edge-asr bench reliability " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "cpu_class": klass, "machine": info, "threads": args.threads}
    t0 = time.perf_counter()
    if not args.skip_noise:
        signals = signal_set(args.seed, 1 / 6 if args.quick else 1.0)
        report["signals"] = [{"signal": n, "seconds": a.size / SR} for n, a in signals]
        report["noise"] = noise_section([m for m in args.models.split(",") if m], args.threads, signals,
                                        (False,) if args.no_vad else (False, True))
    if not args.skip_fuzz:
        n = 200 if args.quick else args.fuzz
        report["fuzz"] = fuzz_section(n // 2, n // 4, n // 16, args.seed)
        print("fuzz:", report["fuzz"]["total"], flush=True)
    if args.long_minutes:
        from .corpus import default_manifest
        from .long_session import long_section

        report["long"] = {m: long_section(m, args.long_minutes, args.threads, args.seed,
                                          args.manifest or default_manifest(), args.long_modes.split(","),
                                          args.long_step)
                          for m in args.models.split(",") if m}
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    report["load_average_end"] = list(__import__("os").getloadavg())
    only_long = args.long_minutes and args.skip_noise and args.skip_fuzz
    out = args.out or REPO / "benchmarks" / "results" / f"reliability-{'long-' if only_long else ''}{klass}.json"
    save_json(out, report)
    print(f"wrote {out}")
    failed = [m for m, r in report.get("noise", {}).items() if not r["target_met"]]
    long_failed = [(m, mode) for m, r in report.get("long", {}).items() for mode, run in r["runs"].items()
                   if not run["rss_target_met"] or run["unaccounted_s"] > 0]
    return 1 if failed or long_failed or report.get("fuzz", {}).get("total", {}).get("other_exceptions") else 0


if __name__ == "__main__":
    sys.exit(main())
