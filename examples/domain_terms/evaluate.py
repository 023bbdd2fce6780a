"""Step 4: score models on the term test set and on ordinary English (before / after).

Term recall and WER on the synthesized test sentences, and WER on the English clips of
../shared/audio (real speech the fine-tune never saw: what the fine-tune costs general accuracy;
skipped when that folder is absent). edge-asr folders are decoded as users run them
(``model.transcribe`` with default options); PyTorch checkpoints with transformers' generate().
"""

from __future__ import annotations

import json
import time
from pathlib import Path

SHARED_AUDIO = Path(__file__).resolve().parents[3] / "shared" / "audio"


def load_set(jsonl: Path) -> list[dict]:
    from edge_asr.audio import load_audio

    rows = []
    for line in Path(jsonl).read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            path = Path(item["audio"])
            path = path if path.is_absolute() else Path(jsonl).parent / path
            rows.append({"id": item.get("id") or path.stem, "audio": load_audio(str(path)), "text": item["text"]})
    return rows


def english_set(folder: Path = SHARED_AUDIO, max_seconds: float = 30.0) -> list[dict]:
    """The English clips of ../shared/audio up to ``max_seconds`` (read in place), or [] when absent."""
    manifest = folder / "manifest.jsonl"
    if not manifest.is_file():
        return []
    from edge_asr.audio import load_audio

    rows = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if item.get("language") == "en" and item.get("duration_s", 0) <= max_seconds:
            rows.append({"id": item["id"], "audio": load_audio(str(folder / item["audio"])), "text": item["text"]})
    return rows


def transcribe_edge(folder: str | Path, clips: list[dict], **options) -> list[str]:
    import edge_asr

    model = edge_asr.load_model(folder, device="cpu")
    return [model.transcribe(c["audio"], language="en", **options).text for c in clips]


def transcribe_pytorch(checkpoint: str | Path, clips: list[dict], processor: str | Path | None = None) -> list[str]:
    import torch
    import transformers
    from transformers import AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration

    transformers.logging.set_verbosity_error()
    from edge_asr.features import window_features
    from edge_asr_export.generation import recorded_mel_padding

    model = WhisperForConditionalGeneration.from_pretrained(checkpoint).eval()
    proc = processor or checkpoint
    fe, tok = WhisperFeatureExtractor.from_pretrained(proc), AutoTokenizer.from_pretrained(proc)
    # A fine-tune's features padded as it was trained (its processor's record); others as transformers pads.
    padding = recorded_mel_padding([proc])
    out = []
    for c in clips:
        feats = (torch.from_numpy(window_features(c["audio"], fe.feature_size, padding)[None]) if padding
                 else fe(c["audio"], sampling_rate=16000, return_tensors="pt").input_features)
        with torch.no_grad():
            # As edge-asr is run (language="en"): a multilingual model would otherwise detect the language.
            multilingual = getattr(model.generation_config, "is_multilingual", False)
            lang = dict(language="en", task="transcribe") if multilingual else {}
            ids = model.generate(feats, max_new_tokens=128, num_beams=1, do_sample=False, use_cache=True, **lang)
        out.append(tok.decode(ids[0], skip_special_tokens=True).strip())
    return out


def score(clips: list[dict], texts: list[str], terms: list[str]) -> dict:
    from edge_asr.scoring import word_error_rate
    from edge_asr_export.terms import term_recall

    refs = [c["text"] for c in clips]
    tr = term_recall(refs, texts, terms) if terms else None
    return {"wer": round(word_error_rate(refs, texts), 4),
            **({"term_recall": tr["recall"], "terms_found": tr["found"], "terms_total": tr["total"]} if tr else {}),
            "texts": texts}


def evaluate(systems: dict[str, tuple], test: list[dict], english: list[dict], terms: list[str],
             log=print) -> dict:
    """``systems``: {label: ("edge", folder[, options]) | ("pytorch", checkpoint)} -> {label: {"terms": score,
    "english": score, "seconds"}}. ``options`` are ``transcribe`` keyword arguments (``hotwords``,
    ``boost_terms``): the same options on the English clips too, where they cost general accuracy."""
    out = {}
    for label, (kind, path, *rest) in systems.items():
        options = rest[0] if rest else {}
        t0 = time.time()
        if kind == "edge":
            run = lambda p, clips: transcribe_edge(p, clips, **options)  # noqa: E731
        else:
            run = transcribe_pytorch
        row = {"kind": kind, "path": str(path), "options": {k: list(v) if isinstance(v, tuple) else v
                                                             for k, v in options.items()},
               "terms": score(test, run(path, test), terms)}
        if english:
            row["english"] = score(english, run(path, english), [])
        row["seconds"] = round(time.time() - t0, 1)
        out[label] = row
        log(f"{label}: term recall {row['terms'].get('terms_found')}/{row['terms'].get('terms_total')}, "
            f"WER {100 * row['terms']['wer']:.1f} %"
            + (f", ordinary English WER {100 * row['english']['wer']:.1f} %" if english else "")
            + f" ({row['seconds']} s)")
    return out


def table(results: dict) -> str:
    lines = ["| system | term recall | WER (term sentences) | WER (ordinary English) |", "|---|---|---|---|"]
    for label, r in results.items():
        t = r["terms"]
        eng = f"{100 * r['english']['wer']:.1f} %" if "english" in r else "-"
        lines.append(f"| {label} | {t.get('terms_found')}/{t.get('terms_total')} | {100 * t['wer']:.1f} % | {eng} |")
    return "\n".join(lines)
