"""Repair Whisper tokenizer.json files and derive the special-token table from them.

Tokenizers shipped next to CTranslate2 weights have known defects (../shared/notes/weights.md):
the first BPE merge ``Ġ t`` may be missing (encoding is then wrong, decoding is not), and the 1,501
timestamp tokens may be absent. Both are repaired here so prompts and fine-tuning labels encode the
way OpenAI's tokenizer does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

N_TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|> in steps of 0.02 s
_LANG_RE = re.compile(r"^<\|([a-z]{2,3}|haw|yue)\|>$")


def _merge_key(m) -> tuple[str, str]:
    return tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m)


def repair_tokenizer_json(data: dict) -> tuple[dict, list[str]]:
    """Return (repaired tokenizer.json dict, list of repairs made)."""
    repairs: list[str] = []
    model = data["model"]
    merges = model["merges"]
    # GPT-2's first merge is "Ġ t"; restore it where the vocabulary has "Ġt" but the merge is gone.
    if "Ġt" in model["vocab"] and ("Ġ", "t") not in {_merge_key(m) for m in merges[:5]}:
        if ("Ġ", "t") not in {_merge_key(m) for m in merges}:
            merges.insert(0, "Ġ t" if (not merges or isinstance(merges[0], str)) else ["Ġ", "t"])
            repairs.append("restored missing BPE merge 'Ġ t' as merge #0")
    added = data["added_tokens"]
    by_content = {t["content"]: t["id"] for t in added}
    if "<|0.00|>" not in by_content:
        notimestamps = by_content["<|notimestamps|>"]
        for i in range(N_TIMESTAMPS):
            added.append({"id": notimestamps + 1 + i, "content": f"<|{i * 0.02:.2f}|>", "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": False, "special": False})
        repairs.append(f"added {N_TIMESTAMPS} timestamp tokens after <|notimestamps|>")
    return data, repairs


def special_tokens(data: dict, vocab_size: int) -> dict:
    """Special-token ids and the language table, read from the tokenizer itself."""
    ids = {t["content"]: t["id"] for t in data["added_tokens"]}
    sot = ids["<|startoftranscript|>"]
    translate = ids["<|translate|>"]
    languages = [(c[2:-2], i) for c, i in sorted(ids.items(), key=lambda x: x[1])
                 if sot < i < translate and _LANG_RE.match(c)]
    no_speech = ids.get("<|nospeech|>", ids.get("<|nocaptions|>"))
    notimestamps = ids["<|notimestamps|>"]
    return {
        "eot": ids["<|endoftext|>"],
        "sot": sot,
        "translate": translate,
        "transcribe": ids["<|transcribe|>"],
        "sot_lm": ids["<|startoflm|>"],
        "sot_prev": ids["<|startofprev|>"],
        "no_speech": no_speech,
        "no_timestamps": notimestamps,
        "timestamp_begin": notimestamps + 1,
        # OpenAI's rule: multilingual vocabularies have 51865+ entries (tiny.en/base.en ... have 51864).
        "multilingual": vocab_size >= 51865,
        "languages": {code: i for code, i in languages},
    }


def write_hf_tokenizer(folder: Path, data: dict) -> None:
    """Write tokenizer files transformers' WhisperTokenizer loads (used by export and validation)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    eot = "<|endoftext|>"
    cfg = {"tokenizer_class": "WhisperTokenizer", "bos_token": eot, "eos_token": eot, "unk_token": eot,
           "pad_token": eot, "model_max_length": 1024, "errors": "replace", "add_prefix_space": False}
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    # The slow-tokenizer files, so every transformers version (fast or slow path) can load it.
    vocab = data["model"]["vocab"]
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges = [" ".join(_merge_key(m)) for m in data["model"]["merges"]]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    added = {t["content"]: t["id"] for t in data["added_tokens"]}
    (folder / "added_tokens.json").write_text(json.dumps(added, ensure_ascii=False), encoding="utf-8")
