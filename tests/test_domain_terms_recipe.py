"""The fine-tuning recipe (examples/domain_terms): a multilingual base's labels carry
<|en|><|transcribe|>, the Trainer's checkpoint-N exports without --processor, and PyTorch scoring
decodes a multilingual model as English (as edge-asr is run). On the tiny random checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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
    row = _dataset(train_jsonl, str(tiny_checkpoint))[0]
    want = tok.convert_tokens_to_ids(["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"])
    assert row["labels"][:4] == want
    # Features as the runtime computes them, padded as it pads stock models (log-mel: zeros after the
    # 2 s clip's 200 frames); "audio" pads with the log-mel of silence, as transformers' extractor does.
    feats = row["input_features"].numpy()
    assert feats.shape[-1] == 3000 and np.abs(feats[:, :200]).max() > 0 and not feats[:, 200:].any()
    audio_padded = _dataset(train_jsonl, str(tiny_checkpoint), mel_padding="audio")[0]["input_features"].numpy()
    np.testing.assert_array_equal(audio_padded[:, :200], feats[:, :200])
    tail = audio_padded[:, 205:]  # past the frames whose STFT window still reaches the clip
    assert np.unique(tail).size == 1 and tail[0, 0] < 0


def test_distillation_leaves_out_the_terms_tokens(tiny_checkpoint):
    from transformers import AutoTokenizer

    from examples.domain_terms.train import _term_token_mask

    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    text = " Send zorvexa and Draxiphen now"
    mask = _term_token_mask(tok, text, ["Zorvexa", "Draxiphen"])
    ids = tok(text).input_ids
    assert len(mask) == len(ids)
    left_out = tok.decode([t for t, m in zip(ids, mask) if not m])
    assert left_out.replace(" ", "").lower() == "zorvexadraxiphen"
    kept = tok.decode([t for t, m in zip(ids, mask) if m], skip_special_tokens=True)
    assert kept.split() == ["Send", "and", "now"]


def test_distillation_loss_is_cross_entropy_plus_kl_to_the_stock_model(tiny_checkpoint, train_jsonl):
    import copy

    import torch
    from transformers import WhisperForConditionalGeneration

    from examples.domain_terms.train import _collator, _dataset, _trainer_class

    teacher = WhisperForConditionalGeneration.from_pretrained(tiny_checkpoint).eval()
    batch = _collator(teacher.config.decoder_start_token_id)(list(_dataset(train_jsonl, str(tiny_checkpoint),
                                                                           terms=["Zorvexa"])))
    loss_of = _trainer_class(teacher, 2.0).compute_loss
    with torch.no_grad():
        cross_entropy = teacher(**{k: v for k, v in batch.items() if k != "distill_mask"}).loss
        assert loss_of(None, teacher, dict(batch)) == pytest.approx(float(cross_entropy), abs=1e-5)  # KL 0
        student = copy.deepcopy(teacher)
        student.proj_out.weight.mul_(1.5)
        plain = student(**{k: v for k, v in batch.items() if k != "distill_mask"}).loss
        assert loss_of(None, student, dict(batch)) > plain + 1e-4


@pytest.mark.skipif(not have("accelerate"), reason="needs the finetune extra (accelerate for the Trainer)")
def test_recipe_checkpoint_exports_without_processor(tiny_checkpoint, train_jsonl, tmp_path):
    from edge_asr_export.exporter import export_model
    from examples.domain_terms.train import TrainOptions, train

    out = tmp_path / "work"
    # with the distillation term on (KL to the stock model at the tokens outside "Zorvexa")
    result = train(tiny_checkpoint, train_jsonl, out,
                   TrainOptions(max_steps=1, batch_size=2, save_steps=1, distill=1.0),
                   log=lambda m: None, terms=["Zorvexa"])
    assert result["checkpoints"] == ["checkpoint-1"]
    assert np.isfinite(result["training_loss"]) and result["training_loss"] > 0
    folder, _ = export_model(out / "train" / "checkpoint-1", tmp_path / "m", "fp32", log=lambda m: None)
    assert (folder / "tokenizer.json").is_file()
    # The padding it trained with, recorded in the Trainer folder's processor, is what the runtime repeats.
    assert json.loads((folder / "manifest.json").read_text())["mel_padding"] == "log-mel"
    assert json.loads((out / "model" / "preprocessor_config.json").read_text())["edge_asr_mel_padding"] == "log-mel"


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


@pytest.mark.skipif(not __import__("shutil").which("espeak-ng"), reason="needs espeak-ng (scripts/system_deps.sh)")
def test_test_set_does_not_depend_on_training_options(tmp_path):
    """Runs with other training options (ordinary share, sentences per term) score on the same test clips."""
    from examples.domain_terms import synth

    def build(name, **kw):
        _, test = synth.build(["Zorvexa", "Draxiphen"], tmp_path / name, per_term_test=1, **kw)
        rows = [json.loads(line) for line in test.read_text().splitlines()]
        return [(r["text"], r["voice"]) for r in rows], [open(r["audio"], "rb").read() for r in rows]

    a = build("a", per_term_train=1, ordinary_train=0)
    b = build("b", per_term_train=2, ordinary_train=3)
    assert a[0] == b[0] and a[1] == b[1] and len(a[0]) == 2


@pytest.fixture
def tuned_checkpoint(tiny_checkpoint, tmp_path):
    """The tiny checkpoint with every weight moved by +1: a stand-in for a fine-tune."""
    import shutil

    import torch
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(tiny_checkpoint)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    out = tmp_path / "tuned"
    model.save_pretrained(out)
    for f in tiny_checkpoint.iterdir():
        if f.name.startswith(("tokenizer", "preprocessor", "vocab", "merges", "special", "added", "normalizer")):
            shutil.copy2(f, out / f.name)
    return out


def test_blend_is_the_weighted_mean_and_carries_the_processor(tiny_checkpoint, tuned_checkpoint, tmp_path):
    import torch
    from transformers import WhisperForConditionalGeneration

    from examples.domain_terms.blend import blend

    out = blend(tiny_checkpoint, tuned_checkpoint, 0.7, tmp_path / "b")
    base = WhisperForConditionalGeneration.from_pretrained(tiny_checkpoint).state_dict()
    mixed = WhisperForConditionalGeneration.from_pretrained(out).state_dict()
    key = "model.decoder.layers.0.fc1.weight"
    assert torch.allclose(mixed[key], base[key] + 0.7, atol=1e-5)
    assert (out / "tokenizer.json").is_file() and (out / "preprocessor_config.json").is_file()
    with pytest.raises(ValueError, match="between 0 and 1"):
        blend(tiny_checkpoint, tuned_checkpoint, 1.5, tmp_path / "c")


def test_blend_choice_is_the_smallest_alpha_keeping_the_terms(tiny_checkpoint, tuned_checkpoint, tmp_path,
                                                             monkeypatch):
    """Term recall (faked per folder: the terms are heard from alpha 0.7 up) picks 0.7, and the folder
    written is that blend; with no alpha keeping them the fine-tune is shipped as trained."""
    import torch
    from transformers import WhisperForConditionalGeneration

    from examples.domain_terms import blend, evaluate

    val = [{"id": "v", "audio": None, "text": "Order Zorvexa now."}]
    hears_from = {"value": 0.7}

    def fake(folder, clips):
        name = Path(folder).name
        alpha = 1.0 if name == "tuned" else float(name[1:])
        return ["Order Zorvexa now." if alpha >= hears_from["value"] else "Order sore vexer now."]

    monkeypatch.setattr(evaluate, "transcribe_pytorch", fake)
    chosen = blend.choose(tiny_checkpoint, tuned_checkpoint, val, ["Zorvexa"], tmp_path / "out", log=lambda m: None)
    assert chosen["alpha"] == 0.7 and chosen["recall"] == {"0.5": 0.0, "0.6": 0.0, "0.7": 1.0, "1.0": 1.0}
    base = WhisperForConditionalGeneration.from_pretrained(tiny_checkpoint).state_dict()
    shipped = WhisperForConditionalGeneration.from_pretrained(tmp_path / "out").state_dict()
    key = "model.decoder.layers.0.fc1.weight"
    assert torch.allclose(shipped[key], base[key] + 0.7, atol=1e-5)
    hears_from["value"] = 2.0  # nothing but the fine-tune itself... which does not hear them either
    chosen = blend.choose(tiny_checkpoint, tuned_checkpoint, val, ["Zorvexa"], tmp_path / "out", log=lambda m: None)
    assert chosen["alpha"] == 1.0 and (tmp_path / "out" / "config.json").is_file()


def test_own_recordings_join_the_training_rows_and_bad_ones_stop_with_the_line(tmp_path, train_jsonl, sample_audio):
    import soundfile as sf

    from examples.domain_terms.synth import with_recordings

    (tmp_path / "rec").mkdir()
    sf.write(tmp_path / "rec" / "ok.wav", sample_audio[:16000 * 3], 16000)
    sf.write(tmp_path / "rec" / "long.wav", np.zeros(16000 * 31, np.float32), 16000)
    good = tmp_path / "rec" / "list.jsonl"
    good.write_text(json.dumps({"audio": "ok.wav", "text": " This short recording "}) + "\n\n")
    merged = with_recordings(train_jsonl, good, tmp_path / "merged.jsonl")
    rows = [json.loads(line) for line in merged.read_text().splitlines()]
    assert [r["text"] for r in rows] == ["Zorvexa arrived", "Zorvexa arrived", "This short recording"]
    assert rows[-1]["audio"] == str((tmp_path / "rec" / "ok.wav").resolve())  # relative to the list's folder
    for line, why in [({"audio": "missing.wav", "text": "x"}, "cannot read"),
                      ({"audio": "long.wav", "text": "x"}, "31.0 s"),
                      ({"audio": "ok.wav", "text": "  "}, "empty text"),
                      ({"text": "x"}, "expected a JSON object")]:
        bad = tmp_path / "rec" / "bad.jsonl"
        bad.write_text(json.dumps({"audio": "ok.wav", "text": "fine"}) + "\n" + json.dumps(line) + "\n")
        with pytest.raises(SystemExit, match=f"bad.jsonl:2: .*{why}"):
            with_recordings(train_jsonl, bad, tmp_path / "m2.jsonl")
