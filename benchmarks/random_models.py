"""Whisper sizes with no real weights here (small, medium, large-v3, large-v3-turbo): randomly
initialised transformers models with the real configuration, exported through the normal exporter.

Their numbers are latency only: the graphs, shapes and operator counts are the real ones, so compute
time is; the weights are noise, so the text is meaningless and no accuracy is reported. Every output
labels them "random weights, latency only" and times them with a fixed forced decode length.

    python -m edge_asr_bench.random_models small int8     # builds (once) and prints the folder

A graph over 2 GiB cannot be one ONNX protobuf: fp32 large-v3 (encoder ~3.0 GB, decoder ~3.2 GB) and
the fp32 large-v3-turbo encoder (~2.6 GB) are skipped with that reason, because the exporter keeps only
the .onnx file of each graph, not the external data torch writes beside it. int8 works (measured here:
large-v3 int8 built in ~8 min, 1.5 GB): the quantizer reads the fp32 external data and its output fits.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import BenchRunError
from .spec import approx_params_m

PROTOBUF_LIMIT = 2**31  # bytes: protobuf's hard limit for one serialised message (one .onnx file)
SEED = 0


@dataclass(frozen=True)
class RandomSize:
    """OpenAI's published dimensions (config.json of openai/whisper-<name>)."""

    name: str
    d_model: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    ffn: int
    n_mels: int = 80
    vocab: int = 51865  # multilingual; large-v3 added <|yue|>: 51866

    @property
    def n_languages(self) -> int:
        return 100 if self.vocab == 51866 else 99

    @property
    def params_m(self) -> float:
        return approx_params_m(self.d_model, self.encoder_layers, self.decoder_layers, self.ffn, self.n_mels,
                               self.vocab)

    def graph_bytes_fp32(self) -> dict[str, int]:
        """Approximate fp32 size of each exported graph (weights dominate)."""
        d, f = self.d_model, self.ffn
        encoder = (self.n_mels * d * 3 + d * d * 3 + 1500 * d + self.encoder_layers * (4 * d * d + 2 * d * f)
                   + self.decoder_layers * 2 * d * d)  # the encoder graph also emits every layer's cross K/V
        decoder = self.decoder_layers * (6 * d * d + 2 * d * f) + (self.vocab + 448) * d
        return {"encoder": 4 * encoder, "decoder": 4 * decoder}


SIZES: dict[str, RandomSize] = {s.name: s for s in (
    RandomSize("small", 768, 12, 12, 12, 3072),
    RandomSize("medium", 1024, 24, 24, 16, 4096),
    RandomSize("large-v3", 1280, 32, 32, 20, 5120, n_mels=128, vocab=51866),
    RandomSize("large-v3-turbo", 1280, 32, 4, 20, 5120, n_mels=128, vocab=51866),
)}


def export_blocker(size: RandomSize, quant: str) -> str | None:
    """Why this size/precision cannot be exported here, or None."""
    too_big = {g: b for g, b in size.graph_bytes_fp32().items() if b >= PROTOBUF_LIMIT}
    if too_big and quant == "fp32":
        parts = ", ".join(f"{g}.onnx ~{b / 1e9:.1f} GB" for g, b in too_big.items())
        return (f"fp32 {parts}: over the 2 GiB protobuf limit of one ONNX file. torch writes such graphs with "
                f"external data files, but export_model (export/exporter.py) moves only the .onnx file into the "
                f"model folder, so fp32 {size.name} cannot be built here (int8 can: the quantizer reads the "
                f"external data and its output fits in one file)")
    return None


def whisper_like_tokenizer(n_languages: int) -> dict:
    """tokenizer.json with Whisper's id layout (50257 regular tokens, then <|endoftext|>, <|startoftranscript|>,
    the languages, task and control tokens; the exporter's repair adds the 1501 timestamps), so the
    vocabulary is exactly 51865 / 51866. The regular tokens are bytes plus unreachable fillers: random
    weights never need real text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    vocab = {ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}
    for i in range(len(vocab), 50257):
        vocab[f"<|filler{i}|>"] = i
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    data = json.loads(tok.to_str())
    specials = ["<|endoftext|>", "<|startoftranscript|>"] + [f"<|{c}|>" for c in list(LANGUAGES)[:n_languages]]
    specials += ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
                 "<|notimestamps|>"]
    data["added_tokens"] = [{"id": 50257 + i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                             "normalized": False, "special": True} for i, c in enumerate(specials)]
    return data


def build_checkpoint(size: RandomSize, out: Path) -> Path:
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    from edge_asr_export.checkpoint import generation_config_dict
    from edge_asr_export.tokenizer_files import repair_tokenizer_json, special_tokens, write_hf_tokenizer

    tok, _ = repair_tokenizer_json(whisper_like_tokenizer(size.n_languages))
    specials = special_tokens(tok, size.vocab)
    assert max(t["id"] for t in tok["added_tokens"]) + 1 == size.vocab, "token layout does not match the vocabulary"
    torch.manual_seed(SEED)
    config = WhisperConfig(
        vocab_size=size.vocab, num_mel_bins=size.n_mels, d_model=size.d_model, encoder_layers=size.encoder_layers,
        decoder_layers=size.decoder_layers, encoder_attention_heads=size.heads, decoder_attention_heads=size.heads,
        encoder_ffn_dim=size.ffn, decoder_ffn_dim=size.ffn, max_source_positions=1500, max_target_positions=448,
        decoder_start_token_id=specials["sot"], eos_token_id=specials["eot"], pad_token_id=specials["eot"],
        bos_token_id=specials["eot"])
    model = WhisperForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    del model
    gen = generation_config_dict(specials, [], [], [220, specials["eot"]], 448)
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2))
    write_hf_tokenizer(out, tok)
    WhisperFeatureExtractor(feature_size=size.n_mels).save_pretrained(out)
    return out


def random_folder(root: Path, name: str, quant: str) -> Path:
    return root / f"random-{name}-{quant}"


def build(name: str, quant: str, root: Path, log: Callable[[str], None] = print) -> Path:
    """The exported folder for ``name`` at ``quant`` under ``root`` (built once; the checkpoint is
    deleted afterwards, it is gigabytes and rebuilt identically from the seed)."""
    from edge_asr_export.exporter import export_model

    size = SIZES[name]
    blocker = export_blocker(size, quant)
    if blocker:
        raise BenchRunError(blocker)
    out = random_folder(root, name, quant)
    if (out / "manifest.json").is_file():
        return out
    ckpt = root / f"checkpoint-{name}"
    shutil.rmtree(ckpt, ignore_errors=True)
    log(f"building a random {name} checkpoint ({size.params_m:.0f} M parameters)")
    build_checkpoint(size, ckpt)
    try:
        log(f"exporting random {name} ({quant})")
        export_model(ckpt, out, quant, name=f"random-{name}", clips=None, force=True, log=log)
    finally:
        shutil.rmtree(ckpt, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    from edge_asr.registry import cache_dir

    args = argv if argv is not None else sys.argv[1:]
    if len(args) < 2 or args[0] not in SIZES:
        print(f"usage: python -m edge_asr_bench.random_models {{{','.join(SIZES)}}} int8|fp32|fp16 [ROOT]",
              file=sys.stderr)
        return 2
    root = Path(args[2]) if len(args) > 2 else cache_dir() / "bench" / "random"
    try:
        print(build(args[0], args[1], root, log=lambda m: print(m, file=sys.stderr)))
    except RuntimeError as e:
        print(f"cannot build random {args[0]} {args[1]}: {e}", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
