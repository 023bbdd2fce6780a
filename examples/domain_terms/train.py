"""Step 2: fine-tune Whisper on the synthesized clips with transformers' Seq2SeqTrainer.

Needs ``pip install 'edge-asr[finetune]'`` (transformers' Trainer needs accelerate; LoRA needs peft).
Runs on a laptop CPU (tiny.en: minutes) and uses a GPU when there is one. Writes the Trainer's
``checkpoint-N`` folders under OUT/train/ and the final model (or LoRA adapter) with its tokenizer,
feature extractor and generation_config to OUT/model/ (or OUT/adapter/): both export with
``edge-asr export``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class TrainOptions:
    max_steps: int = 75
    batch_size: int = 8
    learning_rate: float | None = None  # None: 5e-5 full (1e-5 learned 14 of 28 test terms, 5e-5 24), 1e-3 LoRA
    warmup_steps: int = 8
    save_steps: int = 25
    freeze_encoder: bool = True
    lora: bool = False
    lora_rank: int = 16
    seed: int = 0
    # How a clip shorter than 30 s is padded in training (edge_asr.features.MEL_PADDINGS), recorded in the
    # saved processor so the export repeats it. "log-mel" is what the runtime does for stock models (stock
    # tiny.en int8 read ordinary English better that way: 4.2 % WER against 6.5 % with audio padding).
    # Measured on the fine-tune (no distillation): English no better (int8 7.9 % against 7.5 % with audio
    # padding, one word), but its int8 export passed the drift gate (int8-u8u8), where both schemes had
    # been refused.
    mel_padding: str = "log-mel"
    # Weight of a distillation term: KL from the stock model's next-token distribution, teacher-forced on
    # the same labels, at every label token that is not part of a term (learning without forgetting: the
    # terms are learned from the labels, everything else is held near what the stock model says). 0: off.
    # Measured (tiny.en int8, 27 test term occurrences, 10 real English clips): 0 -> 25/27 terms, English
    # WER 7.9 %; 0.3 -> 22/27, 6.5 %; 1.0 -> 20/27, 6.5 % (stock 4.2 %).
    distill: float = 0.3


def _term_token_mask(tok, text: str, terms) -> list[int]:
    """1 per token of ``tok(text)`` outside every term's characters (case-insensitive), 0 inside one."""
    lowered = text.lower()
    spans = []
    for term in terms:
        t, start = term.lower(), 0
        while t and (i := lowered.find(t, start)) >= 0:
            spans.append((i, i + len(t)))
            start = i + len(t)
    offsets = tok(text, return_offsets_mapping=True)["offset_mapping"]
    return [0 if any(a < e and s < b for s, e in spans) else 1 for a, b in offsets]


def _dataset(jsonl: Path, processor_dir: str, encoder=None, mel_padding: str = "log-mel", terms=()):
    """Rows of {input_features [n_mels, 3000], labels [ids]}: features computed once, by the runtime's own
    code (edge_asr.features) padded as ``mel_padding``, so the model learns from what it will be given.
    With a frozen ``encoder`` the rows hold its output instead ({"encoder_outputs"}): computed once, not
    at every step of every epoch (on a CPU most of a step's time otherwise)."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, WhisperFeatureExtractor

    from edge_asr.audio import load_audio
    from edge_asr.features import window_features

    n_mels = WhisperFeatureExtractor.from_pretrained(processor_dir).feature_size
    tok = AutoTokenizer.from_pretrained(processor_dir)
    if GenerationConfig.from_pretrained(processor_dir).is_multilingual:
        # A multilingual tokenizer's labels otherwise start <|startoftranscript|><|notimestamps|>: the model
        # would learn to drop the <|en|><|transcribe|> it decodes with. English-only models take neither.
        tok.set_prefix_tokens(language="en", task="transcribe")
    rows = []
    for line in jsonl.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        audio = load_audio(item["audio"])
        feats = torch.from_numpy(np.ascontiguousarray(window_features(audio, n_mels, mel_padding)))
        # Whisper's transcripts start with a space (" Please ..."): train on the same tokens it emits.
        text = " " + item["text"].strip()
        row = {"labels": tok(text).input_ids, "keep": _term_token_mask(tok, text, terms)}
        if encoder is not None:
            with torch.no_grad():
                row["encoder_outputs"] = encoder(feats[None]).last_hidden_state[0]
        else:
            row["input_features"] = feats
        rows.append(row)

    class Clips(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    return Clips()


def _collator(decoder_start: int, pad: int = -100):
    import torch

    def collate(batch: list[dict]) -> dict:
        key = "encoder_outputs" if "encoder_outputs" in batch[0] else "input_features"
        feats = torch.stack([b[key] for b in batch])
        starts = [b["labels"][0] == decoder_start for b in batch]
        labels = [b["labels"][1:] if s else b["labels"] for b, s in zip(batch, starts)]
        keeps = [b["keep"][1:] if s else b["keep"] for b, s in zip(batch, starts)]
        width = max(len(x) for x in labels)
        lab = torch.full((len(labels), width), pad, dtype=torch.long)
        keep = torch.zeros((len(labels), width))
        for i, (x, k) in enumerate(zip(labels, keeps)):
            lab[i, :len(x)] = torch.tensor(x)
            keep[i, :len(k)] = torch.tensor(k, dtype=torch.float32)
        return {key: (feats,) if key == "encoder_outputs" else feats, "labels": lab, "distill_mask": keep}

    return collate


def _trainer_class(teacher, weight: float):
    """Seq2SeqTrainer whose loss adds ``weight`` x KL(teacher || model) at the ``distill_mask`` tokens
    (the collator's: label tokens outside the terms); plain cross-entropy when ``teacher`` is None."""
    import torch
    from transformers import Seq2SeqTrainer

    class DistillingTrainer(Seq2SeqTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
            mask = inputs.pop("distill_mask")
            if teacher is None:
                return super().compute_loss(model, inputs, return_outputs=return_outputs, **kwargs)
            outputs = model(**inputs)
            with torch.no_grad():
                target = torch.log_softmax(teacher(**inputs).logits.float(), -1)
            log_probs = torch.log_softmax(outputs.logits.float(), -1)
            kl = (target.exp() * (target - log_probs)).sum(-1)
            loss = outputs.loss + weight * (kl * mask).sum() / mask.sum().clamp(min=1)
            return (loss, outputs) if return_outputs else loss

    return DistillingTrainer


def _save_processor(base: str, folder: Path, mel_padding: str) -> None:
    """Tokenizer and feature extractor of ``base`` into ``folder``, the feature extractor recording the
    padding the model was trained with (``edge-asr export`` reads it into the manifest)."""
    from transformers import AutoTokenizer, WhisperFeatureExtractor

    from edge_asr_export.generation import MEL_PADDING_KEY

    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    fe = WhisperFeatureExtractor.from_pretrained(base)
    setattr(fe, MEL_PADDING_KEY, mel_padding)  # saved with the other attributes (to_dict)
    fe.save_pretrained(folder)


def train(base: str | Path, train_jsonl: Path, out: Path, opts: TrainOptions = TrainOptions(),
          log=print, terms=()) -> dict:
    """Fine-tune ``base`` (a transformers Whisper checkpoint folder); return {"model": folder, "seconds", ...}."""
    import torch
    import transformers
    from transformers import Seq2SeqTrainingArguments, WhisperForConditionalGeneration

    transformers.logging.set_verbosity_error()
    base = str(base)
    torch.manual_seed(opts.seed)
    model = WhisperForConditionalGeneration.from_pretrained(base)
    model.config.use_cache = False  # training runs whole label sequences: no KV cache needed
    if opts.freeze_encoder:
        model.freeze_encoder()  # the decoder learns the new words; the acoustic encoder stays as trained
    if opts.lora:
        from peft import LoraConfig, get_peft_model

        targets = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
        config = LoraConfig(r=opts.lora_rank, lora_alpha=2 * opts.lora_rank, lora_dropout=0.05,
                            target_modules=targets if not opts.freeze_encoder else
                            [f"model.decoder.layers.{i}.{m}" for i in range(model.config.decoder_layers)
                             for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                       "self_attn.out_proj", "encoder_attn.q_proj", "encoder_attn.v_proj",
                                       "encoder_attn.out_proj", "fc1", "fc2")])
        model = get_peft_model(model, config)
    lr = opts.learning_rate or (1e-3 if opts.lora else 5e-5)
    t0 = time.time()
    encoder = model.get_encoder() if opts.freeze_encoder else None
    if encoder is not None:
        encoder.eval()
    data = _dataset(train_jsonl, base, encoder, opts.mel_padding, terms)
    # The processor in the Trainer's output folder: the checkpoint-N folders hold only weights, and
    # `edge-asr export OUT/train/checkpoint-N` takes the tokenizer (and the padding record) from the
    # folder above them.
    _save_processor(base, out / "train", opts.mel_padding)
    log(f"{len(data)} training clips prepared in {time.time() - t0:.0f} s"
        + (" (frozen encoder run once per clip)" if encoder is not None else ""))
    args = Seq2SeqTrainingArguments(
        output_dir=str(out / "train"), per_device_train_batch_size=opts.batch_size, learning_rate=lr,
        warmup_steps=opts.warmup_steps, max_steps=opts.max_steps, save_steps=opts.save_steps, save_total_limit=3,
        save_only_model=True,  # checkpoint-N holds the weights to export, not the optimizer (3x the size)
        logging_steps=5, report_to=[], remove_unused_columns=False, dataloader_num_workers=0, seed=opts.seed,
        fp16=torch.cuda.is_available(), predict_with_generate=False,
        label_names=["labels"], disable_tqdm=True,
    )
    teacher = None
    if opts.distill > 0:
        teacher = WhisperForConditionalGeneration.from_pretrained(base).eval().requires_grad_(False)
    trainer = _trainer_class(teacher, opts.distill)(model=model, args=args, train_dataset=data,
                                                    data_collator=_collator(model.config.decoder_start_token_id))
    t0 = time.time()
    result = trainer.train()
    seconds = time.time() - t0
    log(f"trained {opts.max_steps} steps in {seconds:.0f} s (loss {result.training_loss:.3f})")
    target = out / ("adapter" if opts.lora else "model")
    (model.get_base_model() if opts.lora else model).config.use_cache = True  # as saved checkpoints expect
    trainer.save_model(str(target))
    # The processor beside the weights, so the folder exports (and loads) on its own.
    _save_processor(base, target, opts.mel_padding)
    if not opts.lora:
        from transformers import GenerationConfig

        GenerationConfig.from_pretrained(base).save_pretrained(target)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"model": str(target), "seconds": round(seconds, 1), "steps": opts.max_steps, "loss": losses,
            "training_loss": result.training_loss,
            "checkpoints": sorted(p.name for p in (out / "train").glob("checkpoint-*"))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="transformers Whisper checkpoint folder to fine-tune")
    p.add_argument("--train", required=True, help="train.jsonl from the synth step")
    p.add_argument("--out", required=True, help="work folder")
    p.add_argument("--steps", type=int, default=TrainOptions.max_steps)
    p.add_argument("--batch-size", type=int, default=TrainOptions.batch_size)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--lora", action="store_true", help="train a LoRA adapter (PEFT) instead of the full decoder")
    p.add_argument("--train-encoder", action="store_true", help="also train the encoder (default: frozen)")
    p.add_argument("--mel-padding", default=TrainOptions.mel_padding, choices=["log-mel", "audio"],
                   help="short-clip padding in training, recorded in the saved processor (default log-mel)")
    p.add_argument("--distill", type=float, default=TrainOptions.distill,
                   help="weight of the KL term to the stock model at non-term tokens (default %(default)s; 0: off); "
                        "with --terms their tokens are left out of it")
    p.add_argument("--terms", default=None, help="term list (one per line): their tokens are left out of --distill")
    a = p.parse_args(argv)
    if a.distill > 0 and not a.terms:
        p.error("--distill holds every token near the stock model, the terms' too, unless --terms names them: "
                "pass --terms FILE (or --distill 0)")
    opts = TrainOptions(max_steps=a.steps, batch_size=a.batch_size, learning_rate=a.lr, lora=a.lora,
                        freeze_encoder=not a.train_encoder, save_steps=max(1, a.steps // 3),
                        mel_padding=a.mel_padding, distill=a.distill)
    from edge_asr_export.terms import load_terms

    terms = load_terms(a.terms) if a.terms else ()
    print(json.dumps(train(a.base, Path(a.train), Path(a.out), opts, terms=terms), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
