"""The fine-tuning recipe (examples/domain_terms): a multilingual base's labels carry
<|en|><|transcribe|>, the Trainer's checkpoint-N exports without --processor, and PyTorch scoring
decodes a multilingual model as English (as edge-asr is run). On the tiny random checkpoint."""

from __future__ import annotations

import json

import pytest

from conftest import have, needs_export

pytestmark = needs_export


@pytest.fixture
def train_jsonl(tmp_path, sample_audio):
    import soundfile as sf

    sf.write(tmp_path / "a.wav", sample_audio[:16000 * 2], 16000)
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps({"audio": str(tmp_path / "a.wav"), "text": "Zorvexa arrived"})
                              for _ in range(2)) + "\n")
    return path


def test_multilingual_labels_start_with_language_and_task(tiny_checkpoint, train_jsonl):
    from transformers import AutoTokenizer, GenerationConfig

    from examples.domain_terms.train import _dataset

    assert GenerationConfig.from_pretrained(tiny_checkpoint).is_multilingual
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    labels = _dataset(train_jsonl, str(tiny_checkpoint))[0]["labels"]
    want = tok.convert_tokens_to_ids(["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"])
    assert labels[:4] == want


@pytest.mark.skipif(not have("accelerate"), reason="needs the finetune extra (accelerate for the Trainer)")
def test_recipe_checkpoint_exports_without_processor(tiny_checkpoint, train_jsonl, tmp_path):
    from edge_asr_export.exporter import export_model
    from examples.domain_terms.train import TrainOptions, train

    out = tmp_path / "work"
    result = train(tiny_checkpoint, train_jsonl, out, TrainOptions(max_steps=1, batch_size=2, save_steps=1),
                   log=lambda m: None)
    assert result["checkpoints"] == ["checkpoint-1"]
    folder, _ = export_model(out / "train" / "checkpoint-1", tmp_path / "m", "fp32", log=lambda m: None)
    assert (folder / "tokenizer.json").is_file()


def test_pytorch_scoring_decodes_multilingual_as_english(tiny_checkpoint, sample_audio, monkeypatch):
    from transformers import WhisperForConditionalGeneration

    from examples.domain_terms.evaluate import transcribe_pytorch

    seen = []
    generate = WhisperForConditionalGeneration.generate

    def spy(self, *a, **k):
        seen.append((k.get("language"), k.get("task")))
        return generate(self, *a, **dict(k, max_new_tokens=4))

    monkeypatch.setattr(WhisperForConditionalGeneration, "generate", spy)
    transcribe_pytorch(tiny_checkpoint, [{"audio": sample_audio[:16000]}])
    assert seen == [("en", "transcribe")]
