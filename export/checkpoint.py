"""Import a CTranslate2 Whisper folder as a transformers checkpoint (weights, configs, tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

from edge_asr.errors import EdgeASRError

from .ct2 import ct2_to_hf_state_dict, hf_config_dict, model_bin_parts, read_model_bin
from .tokenizer_files import repair_tokenizer_json, special_tokens, write_hf_tokenizer



class CheckpointError(EdgeASRError, ValueError):
    """A CTranslate2 folder that is not a Whisper model, or whose tensors do not map onto transformers'."""

def generation_config_dict(specials: dict, alignment_heads: list, suppress: list, begin_suppress: list,
                           max_length: int) -> dict:
    """The generation_config.json transformers' Whisper generate() needs, from the token table."""
    gen = {
        "decoder_start_token_id": specials["sot"],
        "eos_token_id": specials["eot"],
        "pad_token_id": specials["eot"],
        "bos_token_id": specials["eot"],
        "suppress_tokens": suppress,
        "begin_suppress_tokens": begin_suppress,
        "alignment_heads": alignment_heads,
        "is_multilingual": specials["multilingual"],
        "no_timestamps_token_id": specials["no_timestamps"],
        "prev_sot_token_id": specials["sot_prev"],
        "max_initial_timestamp_index": 50,
        "max_length": max_length,
        "return_timestamps": False,
    }
    if specials["multilingual"]:
        gen["lang_to_id"] = {f"<|{c}|>": i for c, i in specials["languages"].items()}
        gen["task_to_id"] = {"transcribe": specials["transcribe"], "translate": specials["translate"]}
    return gen


def import_ct2(src: Path, out: Path) -> Path:
    """Convert the CTranslate2 folder ``src`` into a transformers checkpoint at ``out``; return ``out``."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    src, out = Path(src), Path(out)
    ct2_cfg = json.loads((src / "config.json").read_text())
    spec, variables = read_model_bin(model_bin_parts(src))
    if spec != "WhisperSpec":
        raise CheckpointError(f"{src} holds a CTranslate2 {spec!r} model, not Whisper")
    cfg_kwargs = hf_config_dict(variables, ct2_cfg)
    tok, repairs = repair_tokenizer_json(json.loads((src / "tokenizer.json").read_text(encoding="utf-8")))
    specials = special_tokens(tok, cfg_kwargs["vocab_size"])
    # WhisperConfig has its own begin_suppress default ([220, 50256], tiny.en's eot): set both lists
    # so config.json and generation_config.json agree, as in OpenAI's published checkpoints.
    config = WhisperConfig(
        **cfg_kwargs,
        decoder_start_token_id=specials["sot"], eos_token_id=specials["eot"], pad_token_id=specials["eot"],
        bos_token_id=specials["eot"], tie_word_embeddings=True,
    )
    state = {k: torch.from_numpy(a.copy()) for k, a in ct2_to_hf_state_dict(variables).items()}
    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "proj_out.weight"]  # tied to the embedding
    if missing or unexpected:
        raise CheckpointError(f"CTranslate2 import mismatch: missing {missing}, unexpected {unexpected}")
    model.save_pretrained(out)
    gen = generation_config_dict(specials, ct2_cfg.get("alignment_heads", []), cfg_kwargs["suppress_tokens"],
                                 cfg_kwargs["begin_suppress_tokens"], config.max_target_positions)
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2))
    write_hf_tokenizer(out, tok)
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(out)
    (out / "edge_asr_import.json").write_text(json.dumps({"source": str(src), "repairs": repairs}, indent=2))
    return out
