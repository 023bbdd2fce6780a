"""Export a tiny random Whisper and check the ONNX runtime reproduces transformers exactly."""

import json

import numpy as np
import pytest

from conftest import needs_export
from edge_asr.decoding import DecodingOptions, DecodingTask
from edge_asr.constants import N_SAMPLES
from edge_asr.features import log_mel_spectrogram, pad_or_trim
from edge_asr_export.validate import same_greedy_tokens

pytestmark = needs_export


def _mel(audio, n_mels=80):
    return pad_or_trim(log_mel_spectrogram(audio[:N_SAMPLES], n_mels, padding=N_SAMPLES))[None]


def test_export_folder_and_validation_report(tiny_export):
    folder, report = tiny_export
    names = {p.name for p in folder.iterdir()}
    assert {"encoder.onnx", "decoder.onnx", "tokenizer.json", "manifest.json", "validation.json"} <= names
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == names - {"manifest.json"} - {n for n in names if n.startswith(".")}
    assert manifest["dims"]["n_mels"] == 80 and manifest["multilingual"] is True
    assert manifest["tokens"]["languages"] == {"en": 258, "de": 259, "ja": 260}
    assert {"torch", "transformers", "onnxruntime"} <= set(manifest["tools"])
    assert report["passed"] is True and report["tokens_identical"] is True
    assert report["encoder_max_abs_diff"] < 1e-3 and report["logits_max_abs_diff"] < 1e-3
    assert json.loads((folder / "validation.json").read_text())["clips"][0]["clip"] == "sample"


def _hf_greedy_with_timestamps(hf, mel, prefix, max_new_tokens):
    """transformers' own timestamp and suppress logits processors driven step by step: the reference
    decoding rules without generate()'s segment post-processing."""
    import torch
    from transformers.generation.logits_process import (
        SuppressTokensAtBeginLogitsProcessor, SuppressTokensLogitsProcessor, WhisperTimeStampLogitsProcessor)

    gc = hf.generation_config
    procs = [SuppressTokensLogitsProcessor(gc.suppress_tokens),
             SuppressTokensAtBeginLogitsProcessor(gc.begin_suppress_tokens, len(prefix)),
             WhisperTimeStampLogitsProcessor(gc, begin_index=len(prefix))]
    ids = torch.tensor([prefix])
    feats = torch.from_numpy(mel)
    with torch.no_grad():
        for _ in range(max_new_tokens):
            scores = hf(input_features=feats, decoder_input_ids=ids).logits[:, -1]
            for p in procs:
                scores = p(ids, scores)
            nxt = scores.argmax(-1)
            if int(nxt) == gc.eos_token_id:
                break
            ids = torch.cat([ids, nxt[:, None]], dim=1)
    return ids[0, len(prefix):].tolist()


@pytest.mark.parametrize("timestamps", [False, True])
@pytest.mark.parametrize("language", ["en", "de"])
def test_greedy_tokens_identical_to_transformers(tiny_checkpoint, tiny_model_dir, sample_audio, timestamps, language):
    import torch
    from transformers import WhisperForConditionalGeneration

    import edge_asr

    hf = WhisperForConditionalGeneration.from_pretrained(tiny_checkpoint).eval()
    model = edge_asr.load_model(tiny_model_dir, device="cpu")
    tok = model.tokenizer
    prefix = tok.sot_sequence(language, "transcribe", timestamps)
    rng = np.random.default_rng(3)
    for audio in (sample_audio, rng.normal(0, 0.05, 16000 * 4).astype(np.float32)):
        mel = _mel(audio)
        task = DecodingTask(model.backend, tok,
                            DecodingOptions(language=language, without_timestamps=not timestamps, sample_len=40))
        ours = task.run(model.backend.encode(mel))[0].tokens
        assert len(ours) >= 30  # random weights rarely emit <|endoftext|>: the token limit ends both
        if timestamps:
            assert any(t >= tok.timestamp_begin for t in ours)
            theirs = _hf_greedy_with_timestamps(hf, mel, prefix, 40)
            assert ours == theirs, f"\n{ours}\n{theirs}"
        else:
            with torch.no_grad():
                out = hf.generate(torch.from_numpy(mel), language=language, task="transcribe", return_timestamps=False,
                                  max_new_tokens=40, num_beams=1, do_sample=False, return_dict_in_generate=True)
            theirs = [t for t in out["sequences"][0].tolist() if t != tok.eot]
            if theirs[:len(prefix)] == prefix:
                theirs = theirs[len(prefix):]  # transformers versions differ in returning the forced prefix
            assert same_greedy_tokens(ours, theirs, 40), f"\n{ours}\n{theirs}"


def test_kv_cache_equals_full_recompute(tiny_model_dir, sample_audio):
    import edge_asr

    model = edge_asr.load_model(tiny_model_dir, device="cpu")
    backend, tok = model.backend, model.tokenizer
    state = backend.encode(_mel(sample_audio))
    seq = tok.sot_sequence("en", "transcribe", False) + [5, 77, 120, 33, 201, 9, 64]
    full, _ = backend.decode(np.array([seq]), state, np.arange(len(seq)))
    step_state = state
    stepwise = []
    for i, t in enumerate(seq):
        logits, step_state = backend.decode(np.array([[t]]), step_state)
        stepwise.append(logits[0, -1])
        assert step_state.length == i + 1
    np.testing.assert_allclose(np.stack(stepwise), full[0], atol=1e-4)
    # A prefix fed at once then tokens one by one gives the same logits too.
    _, st = backend.decode(np.array([seq[:4]]), state)
    rest, _ = backend.decode(np.array([seq[4:]]), st, np.arange(len(seq) - 4))
    np.testing.assert_allclose(rest[0], full[0, 4:], atol=1e-4)
    # The default is the last position only (what decoding needs), and any subset can be asked for.
    last, _ = backend.decode(np.array([seq]), state)
    assert last.shape[1] == 1
    np.testing.assert_allclose(last[0, 0], full[0, -1], atol=1e-4)
    some, _ = backend.decode(np.array([seq]), state, [0, 3])
    np.testing.assert_allclose(some[0], full[0, [0, 3]], atol=1e-4)


def test_batch_of_windows_matches_single(tiny_model_dir, sample_audio):
    import edge_asr

    model = edge_asr.load_model(tiny_model_dir, device="cpu")
    noise = np.random.default_rng(5).normal(0, 0.05, 16000 * 3).astype(np.float32)
    mels = np.concatenate([_mel(sample_audio), _mel(noise)])
    opts = DecodingOptions(language="en", without_timestamps=True, sample_len=20)
    batched = DecodingTask(model.backend, model.tokenizer, opts).run(model.backend.encode(mels))
    for i in range(2):
        single = DecodingTask(model.backend, model.tokenizer, opts).run(model.backend.encode(mels[i:i + 1]))[0]
        assert batched[i].tokens == single.tokens


def test_int8_and_fp16_exports_run(tiny_checkpoint, tmp_path, sample_audio):
    import edge_asr
    from edge_asr_export.exporter import export_model

    fp32_size = None
    for quant in ("int8", "fp16"):
        folder, report = export_model(tiny_checkpoint, tmp_path / quant, quant, log=lambda m: None)
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["quantization"] == quant
        model = edge_asr.load_model(folder, device="cpu")
        result = model.transcribe(sample_audio, language="en")
        assert result.duration == pytest.approx(len(sample_audio) / 16000, abs=0.01)
        if quant == "int8":
            fp32_size = sum(manifest["files"][f]["size"] for f in ("encoder.onnx", "decoder.onnx"))
    assert fp32_size is not None


def test_export_refuses_to_overwrite_and_checkpoint_without_tokenizer(tiny_checkpoint, tiny_model_dir, tmp_path):
    import shutil

    from edge_asr_export.exporter import ExportError, export_model

    with pytest.raises(ExportError, match="--force"):
        export_model(tiny_checkpoint, tiny_model_dir, "fp32", log=lambda m: None)
    # A mid-training checkpoint-N folder: weights and configs, no tokenizer files.
    ckpt = tmp_path / "checkpoint-500"
    ckpt.mkdir()
    for f in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(tiny_checkpoint / f, ckpt / f)
    with pytest.raises(ExportError, match="--processor"):
        export_model(ckpt, tmp_path / "out", "fp32", log=lambda m: None)
    folder, _ = export_model(ckpt, tmp_path / "out", "fp32", processor=str(tiny_checkpoint), log=lambda m: None)
    assert (folder / "tokenizer.json").is_file()
