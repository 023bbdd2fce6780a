"""A tiny randomly initialised Whisper checkpoint, built offline for tests.

Its tokenizer is a real byte-level BPE (256 byte tokens, no merges) followed by Whisper's special
tokens in Whisper's order, so every id rule the runtime relies on (eot < sot < languages < task
tokens < notimestamps < timestamps) holds, at a vocabulary small enough for a 1 MB model.
"""

from __future__ import annotations

import json
from pathlib import Path

LANGUAGES = ("en", "de", "ja")


def _byte_level_tokenizer_json(multilingual: bool) -> dict:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    data = json.loads(tok.to_str())
    specials = ["<|endoftext|>", "<|startoftranscript|>"]
    specials += [f"<|{c}|>" for c in LANGUAGES]
    specials += ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
                 "<|notimestamps|>"]
    n = len(vocab)
    data["added_tokens"] = [
        {"id": n + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
         "special": True} for i, c in enumerate(specials)]
    return data


def build_tiny_checkpoint(out: Path, multilingual: bool = True, seed: int = 0, d_model: int = 64,
                          layers: int = 2, heads: int = 4, n_mels: int = 80) -> Path:
    """Write a random WhisperForConditionalGeneration with its tokenizer and configs to ``out``."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    from edge_asr_export.checkpoint import generation_config_dict
    from edge_asr_export.tokenizer_files import repair_tokenizer_json, special_tokens, write_hf_tokenizer

    tok, _ = repair_tokenizer_json(_byte_level_tokenizer_json(multilingual))
    vocab_size = max(t["id"] for t in tok["added_tokens"]) + 1
    specials = special_tokens(tok, vocab_size)
    specials["multilingual"] = multilingual  # the 51865 rule is for real vocabularies only
    torch.manual_seed(seed)
    config = WhisperConfig(
        vocab_size=vocab_size, num_mel_bins=n_mels, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=4 * d_model,
        decoder_ffn_dim=4 * d_model, max_source_positions=1500, max_target_positions=448,
        decoder_start_token_id=specials["sot"], eos_token_id=specials["eot"], pad_token_id=specials["eot"],
        bos_token_id=specials["eot"])
    model = WhisperForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    # As in OpenAI's configs, the suppress list holds the task/control tokens (and some symbols).
    suppress = [1, 2, 7] + [specials[k] for k in ("sot", "translate", "transcribe", "sot_lm", "sot_prev", "no_speech")]
    gen = generation_config_dict(specials, [[layers - 1, 0]], suppress, [220, specials["eot"]], 448)
    gen["is_multilingual"] = multilingual
    if not multilingual:
        gen.pop("lang_to_id", None)
        gen.pop("task_to_id", None)
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2))
    write_hf_tokenizer(out, tok)
    WhisperFeatureExtractor(feature_size=n_mels).save_pretrained(out)
    return out
