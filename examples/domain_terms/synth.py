"""Step 1: speech for the terms, synthesized offline with espeak-ng (a system package).

Training clips put each term in carrier sentences (yours, or built from templates), spoken by several
espeak-ng voices at several rates and pitches with background noise; ordinary English sentences are
mixed in (no terms), so the model keeps transcribing plain speech. The test set uses other sentences
and mostly other voices, so the score measures the terms, not memorized clips.

Writes OUT/train.jsonl and OUT/test.jsonl ({"audio", "text", "voice"} per line) and the 16 kHz wavs.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Carrier sentences: {t} is a term, {u} a second term. Training and test use different templates.
TRAIN_TEMPLATES = (
    "Please order more {t} for the clinic.",
    "The {t} update ships next week.",
    "We compared {t} with {u} yesterday.",
    "Can you check whether {t} is in stock?",
    "{t} was mentioned twice in the meeting.",
    "I think {t} works better than the old one.",
    "The report on {t} is due on Friday.",
    "Send the {t} numbers to the whole team.",
    "Our customers keep asking about {t}.",
    "She switched from {u} to {t} last month.",
    "Is {t} covered by the new contract?",
    "Write down {t} and {u} before you forget.",
)
TEST_TEMPLATES = (
    "Remind me to call about {t} tomorrow morning.",
    "The doctor prescribed {t} after the visit.",
    "How much does {t} cost per unit?",
    "Both {t} and {u} arrived this afternoon.",
    "We need a summary of the {t} results.",
    "He forgot to bring the {t} samples.",
    "Let us move the {t} review to Monday.",
    "Nobody had heard of {t} before today.",
)
# Validation (choosing the blend, blend.py): sentences neither training nor test uses.
VAL_TEMPLATES = (
    "Did anyone order {t} for the lab?",
    "The new {t} brochure is on my desk.",
    "Ask the supplier whether {t} is still available.",
    "We talked about {t} and {u} over lunch.",
)
# Ordinary English (no terms): keeps general transcription from drifting toward the carrier sentences.
ORDINARY = (
    "The weather was cold and windy all weekend.",
    "She walked to the station and caught the early train.",
    "We had soup and bread for dinner last night.",
    "The children played in the garden until it got dark.",
    "Please close the window before you leave the room.",
    "He read the newspaper while waiting for the bus.",
    "The meeting was moved to the third floor.",
    "I lost my keys somewhere in the kitchen.",
    "They painted the fence white in the spring.",
    "The library opens at nine in the morning.",
    "My brother bought a new bicycle on Saturday.",
    "It started raining just as we reached the park.",
    "The museum was full of old paintings and maps.",
    "Turn left at the second traffic light.",
    "Our neighbors are moving to another city.",
    "The coffee machine on the second floor is broken again.",
    "Could you help me carry these boxes upstairs?",
    "The river rose quickly after the storm.",
    "We watched a long film about the history of ships.",
    "The teacher asked everyone to read the first chapter.",
    "A small dog was sleeping under the table.",
    "The shop on the corner sells fresh fruit.",
    "He answered every question politely and clearly.",
    "The flight was delayed by almost two hours.",
)
TRAIN_VOICES = ("en-us", "en-gb", "en-gb-x-rp", "en-us+Alicia", "en-gb+Andy", "en-us+Annie")
# Two training voices seen again, three never heard in training.
TEST_VOICES = ("en-us", "en-gb+Andy", "en-029", "en-gb-scotland", "en-us+Belinda")
RATES = (140, 155, 170, 185)
PITCHES = (35, 50, 65)


@dataclass(frozen=True)
class Utterance:
    text: str
    voice: str
    rate: int
    pitch: int
    noise_db: float | None  # SNR of added noise, None = clean


def _espeak(text: str, u: Utterance, wav: Path) -> np.ndarray:
    from edge_asr.audio import load_audio

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit("espeak-ng is not installed: sudo apt-get install espeak-ng (scripts/system_deps.sh)")
    subprocess.run([exe, "-v", u.voice, "-s", str(u.rate), "-p", str(u.pitch), "-w", str(wav), text],
                   check=True, capture_output=True)
    return load_audio(str(wav))  # 22.05 kHz -> 16 kHz mono float32


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Brown-ish background noise (white noise integrated with leakage), unit RMS."""
    white = rng.normal(0, 1, n)
    kernel = 0.95 ** np.arange(64)
    noise = np.convolve(white, kernel, mode="same")
    return (noise / (np.sqrt(np.mean(noise ** 2)) + 1e-9)).astype(np.float32)


def add_noise(audio: np.ndarray, snr_db: float | None, rng: np.random.Generator) -> np.ndarray:
    lead = np.zeros(int(16000 * rng.uniform(0.1, 0.6)), np.float32)  # speech does not start at 0
    tail = np.zeros(int(16000 * rng.uniform(0.1, 0.5)), np.float32)
    out = np.concatenate([lead, audio, tail]).astype(np.float32)
    if snr_db is None:
        return out
    speech_rms = float(np.sqrt(np.mean(audio ** 2))) or 1e-3
    return (out + _noise(out.size, rng) * speech_rms * 10 ** (-snr_db / 20)).astype(np.float32)


def carrier_texts(terms: list[str], templates: tuple[str, ...], per_term: int, rng: random.Random,
                  sentences: list[str] | None = None) -> list[str]:
    """``per_term`` sentences holding each term: the user's sentences that contain it first, then templates."""
    out = []
    for term in terms:
        own = [s for s in (sentences or []) if term.lower() in s.lower()]
        rng.shuffle(own)
        picked = own[:per_term]
        while len(picked) < per_term:
            other = rng.choice([t for t in terms if t != term] or [term])
            picked.append(rng.choice(templates).format(t=term, u=other))
        out += picked
    return out


def synthesize(texts: list[str], voices: tuple[str, ...], out_dir: Path, prefix: str, rng: np.random.Generator,
               noise_share: float = 0.6) -> list[dict]:
    import soundfile as sf

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(texts):
            u = Utterance(text, voices[i % len(voices)], int(rng.choice(RATES)), int(rng.choice(PITCHES)),
                          float(rng.uniform(5, 20)) if rng.random() < noise_share else None)
            audio = add_noise(_espeak(text, u, Path(tmp) / "x.wav"), u.noise_db, rng)
            path = out_dir / f"{prefix}-{i:04d}.wav"
            sf.write(path, audio, 16000, subtype="PCM_16")
            rows.append({"audio": str(path.resolve()), "text": text, "voice": u.voice, "rate": u.rate,
                         "noise_snr_db": None if u.noise_db is None else round(u.noise_db, 1)})
    return rows


def build(terms: list[str], out: Path, *, per_term_train: int = 10, per_term_test: int = 2,
          ordinary_train: int = 24, sentences: list[str] | None = None, seed: int = 0,
          per_term_val: int = 2) -> tuple[Path, Path]:
    """Synthesize the training and test sets for ``terms`` under ``out``, and a small validation set
    (``val.jsonl``: other sentences, training voices) that choices such as the blend are made on, so the
    test set stays unseen; return the training and test jsonl paths."""
    rng = random.Random(seed)
    train_texts = carrier_texts(terms, TRAIN_TEMPLATES, per_term_train, rng, sentences)
    train_texts += [ORDINARY[i % len(ORDINARY)] for i in range(ordinary_train)]
    rng.shuffle(train_texts)
    # The test set draws from its own generators: the same terms and seed give the same test clips
    # whatever the training options (per-term count, ordinary share), so runs compare on one set.
    test_texts = carrier_texts(terms, TEST_TEMPLATES, per_term_test, random.Random(f"test-{seed}"))
    train = synthesize(train_texts, TRAIN_VOICES, out / "train", "train", np.random.default_rng(seed))
    test = synthesize(test_texts, TEST_VOICES, out / "test", "test", np.random.default_rng([seed, 1]),
                      noise_share=0.5)
    build_val(terms, out, per_term_val, seed)
    paths = []
    for name, rows in (("train", train), ("test", test)):
        p = out / f"{name}.jsonl"
        p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        paths.append(p)
    return paths[0], paths[1]


MAX_RECORDING_S = 30.0  # one training row is one 30 s window with its whole transcript


def with_recordings(train_jsonl: Path, recordings: Path, out: Path) -> Path:
    """``out``: the synthesized training rows plus the team's own recordings (a JSONL of {"audio", "text"},
    paths relative to its folder; real ordinary speech, which keeps the fine-tune's general English
    closer to the stock model's than synthesized sentences can). Every recording is checked before
    training starts: a missing file, an unreadable one, a missing text or one over 30 s stops with the
    line named."""
    import soundfile as sf

    rows = []
    for n, line in enumerate(Path(recordings).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{recordings}:{n}"
        try:
            item = json.loads(line)
            audio, text = Path(item["audio"]), str(item["text"]).strip()
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"{where}: expected a JSON object with \"audio\" and \"text\" ({e})") from None
        audio = audio if audio.is_absolute() else Path(recordings).parent / audio
        try:
            seconds = sf.info(str(audio)).duration
        except (OSError, RuntimeError) as e:  # soundfile raises LibsndfileError (a RuntimeError) on bad files
            raise SystemExit(f"{where}: cannot read {audio}: {e}") from None
        if not text:
            raise SystemExit(f"{where}: empty text")
        if seconds > MAX_RECORDING_S:
            raise SystemExit(f"{where}: {audio} is {seconds:.1f} s; cut recordings to {MAX_RECORDING_S:.0f} s or less "
                             "(one training row is one 30 s window)")
        rows.append({"audio": str(audio.resolve()), "text": text, "voice": "recording"})
    if not rows:
        raise SystemExit(f"{recordings}: no recordings")
    out.write_text(Path(train_jsonl).read_text(encoding="utf-8") + "".join(json.dumps(r) + "\n" for r in rows),
                   encoding="utf-8")
    return out


def build_val(terms: list[str], out: Path, per_term: int = 2, seed: int = 0) -> Path:
    """The validation set alone (``out/val.jsonl``): other sentences than training and test, training
    voices, half with noise."""
    rows = synthesize(carrier_texts(terms, VAL_TEMPLATES, per_term, random.Random(f"val-{seed}")),
                      TRAIN_VOICES, out / "val", "val", np.random.default_rng([seed, 2]), noise_share=0.5)
    path = out / "val.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    from edge_asr_export.terms import load_terms

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--terms", required=True, help="term list, one per line")
    p.add_argument("--sentences", default=None, help="optional carrier sentences, one per line")
    p.add_argument("--out", required=True, help="work folder (data/ is written inside)")
    p.add_argument("--per-term", type=int, default=10, help="training sentences per term (default 10)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    sentences = Path(a.sentences).read_text(encoding="utf-8").splitlines() if a.sentences else None
    train, test = build(load_terms(a.terms), Path(a.out) / "data", per_term_train=a.per_term,
                        sentences=sentences, seed=a.seed)
    print(train)
    print(test)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
