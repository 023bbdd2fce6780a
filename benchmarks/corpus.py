"""The bench's audio: manifest clips, the short clip, the long file, and WER/CER scoring.

- Manifest rows (``../shared/audio/manifest.jsonl`` format): ``id``, ``audio`` (relative to the
  manifest), ``text``, ``language``, ``duration_s``, ``text_quality``; only ``exact`` transcripts are
  scored.
- The long file is the English exact clips concatenated in manifest order with short silences between
  (a real recording would be better; these are the real speech we have), so its transcript is known.
- Without a manifest the bench still runs, on the bundled sample (edge_asr/assets/sample.flac).
- Scoring (``edge_asr.scoring.error_rate``): English WER after the Whisper English text normalizer
  (whisper-normalizer package); other languages WER after Whisper's basic normalizer; languages written
  without spaces CER (spaces removed).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_asr.scoring import NO_SPACE_LANGUAGES, error_rate  # noqa: F401  (the bench's scoring)

from .errors import BenchConfigError
from .spec import ClipInfo, Workload

SR = 16000
GAP_S = 0.5  # silence between concatenated clips: a pause, not long enough to be skipped as silence
PREFERRED_SHORT = "en_jfk"  # 11 s, the clip the seed latency table uses


def default_manifest() -> Path:
    """../shared/audio/manifest.jsonl next to the repository (dev and CI machines)."""
    return Path(__file__).resolve().parent.parent.parent / "shared" / "audio" / "manifest.jsonl"


def bundled_sample() -> ClipInfo:
    import edge_asr

    assets = Path(edge_asr.__file__).resolve().parent / "assets"
    audio = _load(assets / "sample.flac")
    return ClipInfo("bundled_sample", str(assets / "sample.flac"), (assets / "sample.txt").read_text().strip(),
                    "en", round(len(audio) / SR, 2))


def read_manifest(path: Path) -> list[ClipInfo]:
    """Clips with exact transcripts (approximate ones cannot be scored)."""
    out = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if r.get("text_quality", "exact") != "exact":
            continue
        out.append(ClipInfo(r["id"], str(Path(path).parent / r["audio"]), r["text"], r["language"],
                            float(r["duration_s"])))
    return out


def _load(path: str | Path) -> np.ndarray:
    from edge_asr.audio import load_audio

    return load_audio(path)


def load_clip_audio(clip: ClipInfo) -> np.ndarray:
    """16 kHz mono float32 samples (prepared .npy files are read as they are)."""
    if clip.path.endswith(".npy"):
        return np.load(clip.path)
    return _load(clip.path)


def prepare_workload(manifest: Path | None, work_dir: Path, long_seconds: float | None = None,
                     accuracy_clips: int | None = None, short_id: str | None = None) -> Workload:
    """Write short.npy and long.npy into ``work_dir`` and describe the workload.

    ``long_seconds`` caps the long file (whole clips are added until it is reached, so the reference
    text stays exact); ``accuracy_clips`` keeps the first N scoreable clips (quick runs)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    if manifest is not None and Path(manifest).is_file():
        clips = read_manifest(Path(manifest))
        source = str(manifest)
    else:
        clips = [bundled_sample()]
        source = "bundled sample (no manifest found)"
    english = [c for c in clips if c.language == "en"]
    if not english:
        raise BenchConfigError(f"no English clip with an exact transcript in {source}")
    if short_id:
        matches = [c for c in clips if c.id == short_id]
        if not matches:
            raise BenchConfigError(f"no clip {short_id!r} in {source}")
        short = matches[0]
    else:
        under = [c for c in english if c.duration_s < 30] or english
        short = next((c for c in under if c.id == PREFERRED_SHORT), None) or min(
            under, key=lambda c: abs(c.duration_s - 11.0))
    short_audio = load_clip_audio(short)[: 30 * SR]
    np.save(work_dir / "short.npy", short_audio)
    short_info = ClipInfo(short.id, str(work_dir / "short.npy"), short.text, short.language,
                          round(len(short_audio) / SR, 3))

    parts, texts, used = [], [], []
    gap = np.zeros(int(GAP_S * SR), np.float32)
    # The bundled sample alone is ~10 s: repeat it so the long file spans several 30 s windows.
    pool = english if len(english) > 1 else english * 7
    for c in pool:
        if long_seconds is not None and used and sum(len(p) for p in parts) / SR >= long_seconds:
            break
        parts += [load_clip_audio(c), gap]
        texts.append(c.text)
        used.append(c.id)
    long_audio = np.concatenate(parts[:-1]).astype(np.float32)
    np.save(work_dir / "long.npy", long_audio)
    long_info = ClipInfo("long_en_concat", str(work_dir / "long.npy"), " ".join(texts), "en",
                         round(len(long_audio) / SR, 3))
    scored = clips[:accuracy_clips] if accuracy_clips else clips
    return Workload(source, short_info, long_info, tuple(used), tuple(scored))


def score(clips: list[ClipInfo], hypotheses: dict[str, str], skipped: dict[str, str]) -> dict:
    """Per-language error rates of ``hypotheses`` (clip id -> text); ``skipped`` (language -> reason)
    names the languages the model could not be asked for."""
    by_lang: dict[str, tuple[list[str], list[str]]] = {}
    for c in clips:
        if c.id in hypotheses:
            refs, hyps = by_lang.setdefault(c.language, ([], []))
            refs.append(c.text)
            hyps.append(hypotheses[c.id])
    return {"languages": {lang: error_rate(lang, r, h) for lang, (r, h) in sorted(by_lang.items())},
            "skipped": dict(sorted(skipped.items())), "hypotheses": hypotheses}
