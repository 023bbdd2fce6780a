"""Measure how a short last window should be padded for a model: openai's zeros in the log-mel
("log-mel") or the log-mel of zero samples ("audio", transformers' feature extractor, which every
fine-tune made with transformers trained on). The export records the choice (manifest ``mel_padding``);
this decodes the same folders both ways and compares with PyTorch and the references.

    python -m examples.domain_terms.padding --folder stock-int8=PATH --folder ft-int8=PATH \\
        --pytorch stock=CKPT --pytorch ft=CKPT --test work/data/test.jsonl --terms terms.txt --out padding.json

Per folder and padding: WER and term recall (test sentences), WER on the English clips of
../shared/audio (≤ 30 s), and on how many clips the text equals PyTorch's greedy text (``--match``:
the folder label prefix whose PyTorch checkpoint to compare with, e.g. ft-int8 -> ft). Greedy, no
timestamps, temperature 0: the decoding transformers' generate() does.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from . import evaluate


def decode(folder: str, clips: list[dict], padding: str) -> list[str]:
    import edge_asr

    model = edge_asr.load_model(folder, device="cpu")
    model.backend.manifest = replace(model.backend.manifest, mel_padding=padding)
    return [model.transcribe(c["audio"], language="en", without_timestamps=True, temperature=0.0).text
            for c in clips]


def main(argv: list[str] | None = None) -> int:
    from edge_asr.scoring import normalize, word_error_rate
    from edge_asr_export.terms import load_terms, term_recall

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", action="append", required=True, metavar="LABEL=PATH")
    p.add_argument("--pytorch", action="append", default=[], metavar="LABEL=CHECKPOINT",
                   help="PyTorch checkpoint per label prefix (folder 'ft-int8' compares with pytorch 'ft')")
    p.add_argument("--test", required=True, help="test.jsonl of the synth step")
    p.add_argument("--terms", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    terms = load_terms(a.terms)
    sets = {"terms": evaluate.load_set(Path(a.test)), "english": evaluate.english_set()}
    sets = {k: v for k, v in sets.items() if v}
    pytorch = {}
    for spec in a.pytorch:
        label, path = spec.split("=", 1)
        pytorch[label] = {name: evaluate.transcribe_pytorch(path, clips) for name, clips in sets.items()}
    results = {}
    for spec in a.folder:
        label, path = spec.split("=", 1)
        ref_label = label.split("-")[0]
        for padding in ("log-mel", "audio"):
            row = {}
            for name, clips in sets.items():
                texts = decode(path, clips, padding)
                refs = [c["text"] for c in clips]
                r = {"wer": round(word_error_rate(refs, texts), 4)}
                if name == "terms":
                    tr = term_recall(refs, texts, terms)
                    r.update(terms_found=tr["found"], terms_total=tr["total"])
                if ref_label in pytorch:
                    pt = pytorch[ref_label][name]
                    r["same_as_pytorch"] = sum(normalize(x, "en") == normalize(y, "en") for x, y in zip(texts, pt))
                    r["clips"] = len(clips)
                row[name] = r
            results[f"{label} {padding}"] = row
            print(label, padding, json.dumps(row), flush=True)
    for label, outs in pytorch.items():
        row = {}
        for name, clips in sets.items():
            refs = [c["text"] for c in clips]
            row[name] = {"wer": round(word_error_rate(refs, outs[name]), 4)}
            if name == "terms":
                tr = term_recall(refs, outs[name], terms)
                row[name].update(terms_found=tr["found"], terms_total=tr["total"])
        results[f"{label} PyTorch"] = row
        print(label, "PyTorch", json.dumps(row), flush=True)
    Path(a.out).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
