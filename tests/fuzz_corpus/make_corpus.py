"""Writes the fuzz corpus next to this file (deterministic; run from the repository root):

    .venv/bin/python tests/fuzz_corpus/make_corpus.py

seed-*: small valid files of every format edge-asr reads (0.25 s of a tone with noise), the starting
points the fuzz tests truncate, bit-flip and re-header. bad-*: malformed files kept as regressions (each
once hung, crashed, or raised an untyped error, or is a case the suite must always refuse). m4a/webm
seeds need PyAV (edge-asr[av]) to be written; without it they are skipped.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent


def tone(rate: int, seconds: float = 0.25, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(rate).standard_normal(t.size)
    x = x.astype(np.float32)
    return np.stack([x, x[::-1]], axis=1) if channels == 2 else x


def encoded(fmt: str, subtype: str | None, rate: int = 16000, channels: int = 1, seconds: float = 0.25) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(rate, seconds, channels), rate, format=fmt, subtype=subtype)
    return buf.getvalue()


SEEDS = {
    "seed-pcm16.wav": ("WAV", "PCM_16", 16000, 1),
    "seed-pcm16-stereo-8k.wav": ("WAV", "PCM_16", 8000, 2),
    "seed-pcm24-44k.wav": ("WAV", "PCM_24", 44100, 1, 0.1),
    "seed-u8.wav": ("WAV", "PCM_U8", 16000, 1),
    "seed-float.wav": ("WAV", "FLOAT", 16000, 1, 0.1),
    "seed-ulaw.wav": ("WAV", "ULAW", 16000, 1),
    "seed-adpcm.wav": ("WAV", "IMA_ADPCM", 16000, 1),
    "seed.flac": ("FLAC", "PCM_16", 16000, 1),
    "seed-stereo-48k.flac": ("FLAC", "PCM_24", 48000, 2, 0.1),
    "seed-vorbis.ogg": ("OGG", "VORBIS", 16000, 1),
    "seed-opus.ogg": ("OGG", "OPUS", 48000, 1),
    "seed.mp3": ("MP3", "MPEG_LAYER_III", 16000, 1),
    "seed.aiff": ("AIFF", "PCM_16", 16000, 1),
    "seed.au": ("AU", "PCM_16", 16000, 1),
    "seed.caf": ("CAF", "ALAC_16", 16000, 1),
    "seed.w64": ("W64", "PCM_16", 16000, 1),
    "seed.rf64": ("RF64", "PCM_16", 16000, 1),
}


def wav_header(rate: int, channels: int = 1, bits: int = 16, data_bytes: int = 0, fmt_tag: int = 1) -> bytes:
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", (36 + data_bytes) & 0xFFFFFFFF) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, fmt_tag, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
            + b"data" + struct.pack("<I", data_bytes))


def pcm16(n: int) -> bytes:
    return (tone(16000, n / 16000) * 32767).astype("<i2").tobytes()


def flac_claiming(total_samples: int) -> bytes:
    """A valid FLAC whose STREAMINFO claims ``total_samples`` (36 bits)."""
    data = bytearray(encoded("FLAC", "PCM_16"))
    # "fLaC", block header (4 bytes), STREAMINFO: min/max block 4, min/max frame 6, then 64 bits of
    # rate (20) | channels-1 (3) | bits-1 (5) | total samples (36), then md5.
    pos = 4 + 4 + 10
    packed = int.from_bytes(data[pos:pos + 8], "big")
    packed = (packed & ~((1 << 36) - 1)) | (total_samples & ((1 << 36) - 1))
    data[pos:pos + 8] = packed.to_bytes(8, "big")
    return bytes(data)


def bad_files() -> dict[str, bytes]:
    out = {
        "bad-header-only.wav": wav_header(16000),
        "bad-rate-1hz.wav": wav_header(1, data_bytes=8000) + pcm16(4000),
        "bad-rate-8hz.wav": wav_header(8, data_bytes=8000) + pcm16(4000),
        "bad-rate-10mhz.wav": wav_header(10_000_000, data_bytes=8000) + pcm16(4000),
        "bad-rate-0.wav": wav_header(0, data_bytes=800) + pcm16(400),
        "bad-data-size-4gb.wav": wav_header(16000, data_bytes=0xFFFFFFF0) + pcm16(4000),
        "bad-channels-0.wav": wav_header(16000, channels=0, data_bytes=800) + pcm16(400),
        "bad-channels-4096.wav": wav_header(16000, channels=4096, data_bytes=8192) + pcm16(4096),
        "bad-bits-7.wav": wav_header(16000, bits=7, data_bytes=800) + pcm16(400),
        "bad-format-tag.wav": wav_header(16000, fmt_tag=0x1234, data_bytes=800) + pcm16(400),
        "bad-one-sample.wav": wav_header(16000, data_bytes=2) + pcm16(1),
        "bad-odd-byte.wav": wav_header(16000, data_bytes=3) + pcm16(1) + b"\x01",
        "bad-flac-claims-2-years.flac": flac_claiming(16000 * 3600 * 24 * 730),
        "bad-flac-claims-0.flac": flac_claiming(0),
        "bad-truncated.flac": encoded("FLAC", "PCM_16")[:300],
        "bad-truncated.ogg": encoded("OGG", "VORBIS")[:500],
        "bad-truncated.mp3": encoded("MP3", "MPEG_LAYER_III")[:400],
        "bad-riff-only.wav": b"RIFF",
        "bad-text.wav": b"this is not audio, only a text file with a .wav name\n" * 4,
        "bad-zeros.bin": bytes(2048),
    }
    nan = np.full(800, 0.1, np.float32)
    nan[100] = np.nan
    buf = io.BytesIO()
    sf.write(buf, nan, 16000, format="WAV", subtype="FLOAT")
    out["bad-nan.wav"] = buf.getvalue()
    buf = io.BytesIO()
    sf.write(buf, tone(16000, 0.1) * 20000, 16000, format="WAV", subtype="FLOAT")
    out["bad-int16-scale-float.wav"] = buf.getvalue()
    return out


def av_seeds() -> dict[str, bytes]:
    try:
        import av
    except ImportError:
        return {}
    out = {}
    for name, container, codec, rate in (("seed.m4a", "mp4", "aac", 16000), ("seed.webm", "webm", "libopus", 48000)):
        buf = io.BytesIO()
        try:
            with av.open(buf, mode="w", format=container) as c:
                stream = c.add_stream(codec, rate=rate)
                stream.layout = "mono"
                samples = (tone(rate) * 32767).astype(np.int16)[None]
                frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
                frame.sample_rate = rate
                for packet in stream.encode(frame):
                    c.mux(packet)
                for packet in stream.encode(None):
                    c.mux(packet)
        except Exception:  # an encoder this PyAV build lacks
            continue
        out[name] = buf.getvalue()
    return out


def main() -> None:
    files = {name: encoded(*spec) for name, spec in SEEDS.items()}
    files.update(av_seeds())
    files.update(bad_files())
    for name, data in files.items():
        (HERE / name).write_bytes(data)
    total = sum(len(d) for d in files.values())
    print(f"{len(files)} files, {total / 1024:.0f} KB in {HERE}")


if __name__ == "__main__":
    main()
