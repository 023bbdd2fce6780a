"""What a fine-tune needs from the export (issue 17): a LoRA adapter merged at export, a Trainer's
checkpoint-N exported, generation_config's language/task/suppress lists/alignment heads carried and
used by the runtime, term recall on validation clips, the int8 drift gate, and the short-window padding
the fine-tune trained with. All on the tiny random checkpoint (tests/tiny_whisper.py): real exports,
real ONNX decoding, real transformers/PEFT training steps."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import have, needs_export

pytestmark = needs_export

QUIET = dict(log=lambda m: None)


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, int(16000 * seconds)).astype(np.float32)


# -- term recall -------------------------------------------------------------------------------------

def test_term_recall_counts_occurrences_after_normalizing():
    from edge_asr_export.terms import term_recall

    refs = ["Both Zorvexa and Draxiphen arrived.", "Order more Zorvexa, and more Zorvexa!", "No terms here."]
    hyps = ["Zorvexa is an arrived", "order more zorvexa's and more sorvexa", "No terms here."]
    r = term_recall(refs, hyps, ["Zorvexa", "Draxiphen", "blue moon"])
    assert (r["found"], r["total"]) == (2, 4)
    assert sorted((m["term"], m["index"]) for m in r["missed"]) == [("Draxiphen", 0), ("Zorvexa", 1)]
    two_words = term_recall(["the blue moon rose"], ["a blue moon"], ["blue moon"])
    assert two_words["recall"] == 1.0
    assert term_recall(["nothing"], ["nothing"], ["Zorvexa"])["recall"] is None


# -- generation settings -----------------------------------------------------------------------------

def test_recorded_mel_padding_read_from_the_first_folder_that_has_one(tmp_path):
    from edge_asr_export.generation import GenerationConfigError, recorded_mel_padding

    plain, recorded, wrong = (tmp_path / n for n in ("plain", "recorded", "wrong"))
    for folder, extra in ((plain, {}), (recorded, {"edge_asr_mel_padding": "log-mel"}),
                          (wrong, {"edge_asr_mel_padding": "zeros"})):
        folder.mkdir()
        (folder / "preprocessor_config.json").write_text(json.dumps({"feature_size": 80, **extra}))
    assert recorded_mel_padding([None, "openai/whisper-tiny", plain, recorded]) == "log-mel"
    assert recorded_mel_padding([plain, tmp_path / "missing"]) is None
    with pytest.raises(GenerationConfigError, match="zeros") as e:
        recorded_mel_padding([wrong])
    assert isinstance(e.value, ValueError)


@pytest.fixture(scope="module")
def german_checkpoint(tmp_path_factory, tiny_checkpoint):
    """The tiny multilingual checkpoint as a German fine-tune: language/task set (translate, so a runtime
    that ignored the manifest's task and transcribed would show), own suppress list and alignment heads
    in generation_config.json."""
    ckpt = tmp_path_factory.mktemp("de") / "tiny-de"
    shutil.copytree(tiny_checkpoint, ckpt)
    gen = json.loads((ckpt / "generation_config.json").read_text())
    gen.update(language="german", task="translate", suppress_tokens=[1, 2, 3, 5, 8], alignment_heads=[[1, 2], [0, 3]])
    (ckpt / "generation_config.json").write_text(json.dumps(gen))
    return ckpt


@pytest.fixture(scope="module")
def german_export(tmp_path_factory, german_checkpoint):
    from edge_asr_export.exporter import export_model

    return export_model(german_checkpoint, tmp_path_factory.mktemp("de-out") / "m", "fp32", **QUIET)[0]


def test_generation_config_carried_into_manifest_and_used_as_default(german_export):
    import edge_asr

    manifest = json.loads((german_export / "manifest.json").read_text())
    assert manifest["language"] == "de" and manifest["task"] == "translate"
    assert manifest["suppress_tokens"] == [1, 2, 3, 5, 8]
    assert manifest["alignment_heads"] == [[1, 2], [0, 3]]
    assert manifest["alignment_heads_source"] == "generation_config"
    assert manifest["mel_padding"] == "audio"
    model = edge_asr.load_model(german_export, device="cpu")
    assert model.manifest.language == "de" and model.manifest.mel_padding == "audio"
    audio = _noise(3)
    tasks = []
    sot_sequence = model.tokenizer.sot_sequence
    model.tokenizer.sot_sequence = lambda *a, **k: tasks.append(a[1]) or sot_sequence(*a, **k)
    # No language given: the fine-tune's language, not detection (which would report probabilities).
    result = model.transcribe(audio, without_timestamps=True)
    assert result.language == "de" and result.language_probs is None
    # No task given: the fine-tune's task (translate), in the check and in every decode.
    assert tasks and set(tasks) == {"translate"}
    tasks.clear()
    assert model.transcribe(audio, language="en", task="transcribe", without_timestamps=True).language == "en"
    assert tasks and set(tasks) == {"transcribe"}
    tasks.clear()
    model.transcribe(audio, batch_size=2, vad_filter=True, without_timestamps=True)  # batched: the same default
    assert set(tasks) <= {"translate"}
    tasks.clear()
    from edge_asr.compat import WhisperModel as CompatModel  # faster-whisper's API: the same default

    compat = CompatModel(german_export, device="cpu")
    compat.edge.tokenizer.sot_sequence = model.tokenizer.sot_sequence
    list(compat.transcribe(audio, beam_size=1, without_timestamps=True)[0])
    assert tasks and set(tasks) == {"translate"}


def test_validation_uses_the_manifest_task(german_export, german_checkpoint, sample_audio, monkeypatch):
    """Validation compares the path the runtime takes by default: the fine-tune's task (translate),
    in PyTorch's generate() and in the forced prefix of the teacher-forced logits."""
    from transformers import WhisperForConditionalGeneration

    from edge_asr.tokenizer import Tokenizer
    from edge_asr_export.validate import Clip, validate_folder

    hf = WhisperForConditionalGeneration.from_pretrained(german_checkpoint).eval()
    tasks, generate_tasks = [], []
    sot_sequence, generate = Tokenizer.sot_sequence, hf.generate
    monkeypatch.setattr(Tokenizer, "sot_sequence", lambda self, *a, **k: tasks.append(a[1]) or sot_sequence(self, *a, **k))
    hf.generate = lambda *a, **k: generate_tasks.append(k.get("task")) or generate(*a, **k)
    report = validate_folder(hf, german_export, [Clip("sample", sample_audio)], "fp32")
    assert generate_tasks == ["translate"] and tasks and set(tasks) == {"translate"}
    assert report["tokens_identical"]


def test_forced_decoder_ids_and_bad_language(tiny_checkpoint, tmp_path):
    from transformers import GenerationConfig

    from edge_asr_export.exporter import ExportError, export_model
    from edge_asr_export.generation import carried_generation
    from edge_asr_export.tokenizer_files import special_tokens

    tok = json.loads((tiny_checkpoint / "tokenizer.json").read_text())
    specials = special_tokens(tok, 1 + max(t["id"] for t in tok["added_tokens"]))
    ja, transcribe = specials["languages"]["ja"], specials["transcribe"]
    gen = GenerationConfig(forced_decoder_ids=[[1, ja], [2, transcribe]])
    assert carried_generation(gen, specials)["language"] == "ja"
    assert carried_generation(GenerationConfig(), specials) == {"language": None, "task": None, "source": []}
    # transformers lower-cases the language: any case of a code or name, bracketed or not, is carried.
    for spelling in ("DE", "<|DE|>", "German", "GERMAN"):
        assert carried_generation(GenerationConfig(language=spelling), specials)["language"] == "de", spelling
    ckpt = tmp_path / "bad"
    shutil.copytree(tiny_checkpoint, ckpt)
    gen = json.loads((ckpt / "generation_config.json").read_text())
    (ckpt / "generation_config.json").write_text(json.dumps(dict(gen, language="klingon")))
    with pytest.raises(ExportError, match="klingon"):
        export_model(ckpt, tmp_path / "out", "fp32", **QUIET)


def test_fp16_checkpoint_loads_as_float32(tiny_checkpoint, tmp_path):
    """A fine-tune saved in fp16 is exported from float32 weights (transformers 5 would keep fp16)."""
    import torch
    from transformers import WhisperForConditionalGeneration

    from edge_asr_export.exporter import _load_checkpoint

    ckpt = tmp_path / "fp16"
    shutil.copytree(tiny_checkpoint, ckpt)
    WhisperForConditionalGeneration.from_pretrained(tiny_checkpoint).half().save_pretrained(ckpt)
    model, _, _ = _load_checkpoint(str(ckpt), None)
    assert model.dtype == torch.float32


# -- short-window padding ----------------------------------------------------------------------------

def test_audio_padding_reproduces_the_feature_extractor(tiny_checkpoint, sample_audio):
    from transformers import WhisperFeatureExtractor

    from edge_asr.constants import N_SAMPLES
    from edge_asr.features import log_mel_spectrogram, mel_window

    clip = sample_audio[:16000 * 4]
    theirs = WhisperFeatureExtractor.from_pretrained(tiny_checkpoint)(clip, sampling_rate=16000,
                                                                      return_tensors="np").input_features[0]
    mel = log_mel_spectrogram(clip, 80, padding=N_SAMPLES)
    content = mel.shape[-1] - 3000
    audio_pad = mel_window(mel, 0, content, "audio")
    assert np.abs(audio_pad - theirs).max() < 1e-3
    assert np.abs(mel_window(mel, 0, content, "log-mel") - theirs).max() > 0.5  # openai's zeros differ
    # A mel made without the 30 s padding: the frames after the audio get zero audio's value (the frame on
    # the boundary, which also sees the audio's last samples, cannot be recovered there).
    short = mel_window(mel[:, :content], 0, content, "audio")
    assert np.abs(short[:, content + 2:] - theirs[:, content + 2:]).max() < 1e-3


def test_old_folders_read_with_defaults(runtime_model_dir):
    from edge_asr.manifest import read_manifest

    m = read_manifest(runtime_model_dir)
    assert "mel_padding" not in m.raw and m.mel_padding == "log-mel" and m.language is None


# -- checkpoint-N and LoRA adapters ------------------------------------------------------------------

def _train_steps(model, out, steps: int):
    """``steps`` real Seq2SeqTrainer steps on random features, saving checkpoint-N every step."""
    import torch
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    rows = [{"input_features": torch.from_numpy(np.random.default_rng(i).normal(0, 1, (80, 3000)).astype(np.float32)),
             "labels": torch.tensor([50, 60, 70, 80, 256])} for i in range(4)]

    def collate(batch):
        return {"input_features": torch.stack([b["input_features"] for b in batch]),
                "labels": torch.stack([b["labels"] for b in batch])}

    args = Seq2SeqTrainingArguments(output_dir=str(out), per_device_train_batch_size=2, learning_rate=1e-2,
                                    max_steps=steps, save_steps=1, save_only_model=True, report_to=[],
                                    remove_unused_columns=False, disable_tqdm=True, logging_steps=1, use_cpu=True)
    Seq2SeqTrainer(model=model, args=args, train_dataset=rows, data_collator=collate).train()


@pytest.mark.skipif(not have("accelerate"), reason="needs the finetune extra (accelerate for the Trainer)")
def test_trainer_checkpoint_exports(tiny_checkpoint, tmp_path, sample_audio):
    from transformers import AutoTokenizer, WhisperForConditionalGeneration

    from edge_asr_export.exporter import ExportError, export_model
    from edge_asr_export.validate import Clip

    model = WhisperForConditionalGeneration.from_pretrained(tiny_checkpoint)
    _train_steps(model, tmp_path / "run", 2)
    ckpt = tmp_path / "run" / "checkpoint-2"
    assert (ckpt / "model.safetensors").is_file() and not (ckpt / "tokenizer.json").exists()
    with pytest.raises(ExportError, match="--processor"):
        export_model(ckpt, tmp_path / "none", "fp32", **QUIET)
    # The processor saved in the Trainer's output folder (as the recipe's train.py does) is found without
    # --processor.
    AutoTokenizer.from_pretrained(tiny_checkpoint).save_pretrained(tmp_path / "run")
    folder, report = export_model(ckpt, tmp_path / "out", "fp32", clips=[Clip("sample", sample_audio)], **QUIET)
    assert report["passed"] and report["tokens_identical"]  # the graphs reproduce checkpoint-2's weights
    trained = WhisperForConditionalGeneration.from_pretrained(ckpt)
    moved = max(float((a - b).abs().max()) for a, b in zip(trained.parameters(), model.__class__.from_pretrained(
        tiny_checkpoint).parameters()))
    assert moved > 1e-3  # the Trainer really changed the weights that were exported
    assert json.loads((folder / "manifest.json").read_text())["source"] == str(ckpt)


@pytest.mark.skipif(not have("peft"), reason="needs the finetune extra (peft)")
def test_lora_adapter_is_merged_at_export(tiny_checkpoint, tmp_path, sample_audio):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import WhisperForConditionalGeneration

    import edge_asr
    from edge_asr.constants import N_SAMPLES
    from edge_asr.features import log_mel_spectrogram, pad_or_trim
    from edge_asr_export.exporter import export_model
    from edge_asr_export.validate import Clip

    base = WhisperForConditionalGeneration.from_pretrained(tiny_checkpoint)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "fc1"]))
    torch.manual_seed(0)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:  # as after training: B starts at zero, which would merge to nothing
            torch.nn.init.normal_(p, std=0.5)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_checkpoint)
    folder, report = export_model(adapter, tmp_path / "out", "fp32", clips=[Clip("sample", sample_audio)], **QUIET)
    assert report["passed"] and report["tokens_identical"]  # graphs == PyTorch with the adapter merged
    # ... and the adapter changed the model: the exported logits are the merged model's, not the base's.
    merged = peft_model.merge_and_unload().eval()
    fresh = WhisperForConditionalGeneration.from_pretrained(tiny_checkpoint).eval()
    mel = pad_or_trim(log_mel_spectrogram(sample_audio[:N_SAMPLES], 80, padding=N_SAMPLES))[None]
    model = edge_asr.load_model(folder, device="cpu")
    state = model.backend.encode(mel)
    tokens = np.array([model.tokenizer.sot_sequence("en", "transcribe", False) + [70, 71]], dtype=np.int64)
    ours, _ = model.backend.decode(tokens, model.backend.empty_state(state.cross_k, state.cross_v, 1),
                                   np.arange(tokens.shape[1]))
    with torch.no_grad():
        feats, ids = torch.from_numpy(mel), torch.from_numpy(tokens)
        want = merged(input_features=feats, decoder_input_ids=ids).logits.numpy()
        without = fresh(input_features=feats, decoder_input_ids=ids).logits.numpy()
    assert np.abs(ours - want).max() < 5e-3 < np.abs(ours - without).max()


# -- validation with references and terms, the drift gate ---------------------------------------------

@pytest.fixture(scope="module")
def clip_list(tmp_path_factory, sample_audio):
    """A .jsonl validation list (audio + reference) as `edge-asr export --validate-audio` reads it."""
    import soundfile as sf

    from conftest import SAMPLE_TEXT

    d = tmp_path_factory.mktemp("clips")
    sf.write(d / "a.wav", sample_audio, 16000)
    sf.write(d / "b.wav", _noise(2), 16000)
    (d / "list.jsonl").write_text(json.dumps({"audio": "a.wav", "text": SAMPLE_TEXT}) + "\n"
                                  + json.dumps({"audio": "b.wav", "text": "Zorvexa arrived"}) + "\n")
    (d / "terms.txt").write_text("# terms\nZorvexa\nspeech synthesizer\n")
    return d


def test_cli_export_reports_term_recall_side_by_side(tiny_checkpoint, clip_list, tmp_path, capsys):
    from edge_asr.cli import main

    rc = main(["export", str(tiny_checkpoint), "-o", str(tmp_path / "m"), "-q", "int8", "--validate-audio",
               str(clip_list / "list.jsonl"), "--terms", str(clip_list / "terms.txt")])
    err = capsys.readouterr().err
    assert rc == 0, err
    report = json.loads((tmp_path / "m" / "validation.json").read_text())
    assert [c["clip"] for c in report["clips"]] == ["bundled_sample", "a", "b"]
    side = report["side_by_side"]
    assert set(side) == {"pytorch", "fp32", "int8"}
    for name in side:  # "speech synthesizer" in two references, "Zorvexa" in one
        assert side[name]["term_recall"]["total"] == 3
    assert report["term_recall"] == side["int8"]["term_recall"]["recall"]
    assert 0 <= report["mean_kl"] < 0.15 and report["top1_agreement"] >= 0.9  # int8 of this model: within bounds
    assert report["drift"]["within_bounds"] and report["passed"]
    assert "term recall" in err and "fp32" in err  # the table printed for the user
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["validation"]["drift"]["violations"] == []


def test_text_agreement_bound_only_without_references():
    """The greedy-text agreement bound judges an export only when no reference texts are given: with
    references, accuracy against them (and term recall) decides."""
    from edge_asr_export.drift import DriftBounds, drift_violations

    report = {"mean_kl": 0.03, "top1_agreement": 0.95, "wer_onnx_vs_pytorch": 0.15}
    assert ["WER 0.150 > 0.1" in v for v in drift_violations(report, DriftBounds())] == [True]
    with_refs = {**report, "wer_difference": -0.045, "term_recall_pytorch": 24 / 28, "term_recall": 25 / 28}
    assert drift_violations(with_refs, DriftBounds()) == []
    worse = {**with_refs, "wer_difference": 0.03, "term_recall": 20 / 28}
    found = drift_violations(worse, DriftBounds())
    assert len(found) == 2 and "rose by 0.030" in found[0] and "term recall" in found[1]


def test_drift_gate_refuses_and_accept_drift_keeps(tiny_checkpoint, clip_list, tmp_path):
    import edge_asr
    from edge_asr_export.clips import load_clips
    from edge_asr_export.drift import DriftBounds, ExportDriftError
    from edge_asr_export.exporter import export_model

    clips = load_clips([str(clip_list / "list.jsonl")])[1:]  # one short clip: the gate, not the corpus, is tested
    # Bounds no int8 export can meet (a logit-level KL of exactly 0): the gate must trip on real figures.
    strict = DriftBounds(max_mean_kl=0.0)
    out = tmp_path / "m"
    with pytest.raises(ExportDriftError, match="KL") as e:
        export_model(tiny_checkpoint, out, "int8", clips=clips, drift_bounds=strict, **QUIET)
    assert "--accept-drift" in str(e.value) and "--int8-scheme int8-u8u8" in str(e.value)
    assert not out.exists()
    failed = json.loads((tmp_path / "m.failed" / "validation.json").read_text())
    assert failed["drift"]["violations"] and failed["mean_kl"] > 0 and failed["passed"] is False
    # force only replaces an existing folder: it does not accept drift (the .failed folder is replaced).
    with pytest.raises(ExportDriftError):
        export_model(tiny_checkpoint, out, "int8", clips=clips, drift_bounds=strict, force=True, **QUIET)
    assert not out.exists()
    folder, report = export_model(tiny_checkpoint, out, "int8", clips=clips, drift_bounds=strict, accept_drift=True,
                                  **QUIET)
    assert report["drift"]["accepted"] and report["passed"] is False
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["validation"]["passed"] is False and manifest["validation"]["drift"]["accepted"]
    assert edge_asr.load_model(folder, device="cpu").transcribe(_noise(1)).duration == pytest.approx(1.0)


def test_cli_export_refuses_drift_and_names_accept_drift(tiny_checkpoint, clip_list, tmp_path, capsys, monkeypatch):
    """`edge-asr export` on a drifting export: exit 2, the message names --accept-drift (not --force, which
    only replaces OUTPUT); fp16 is not told to try an int8 scheme."""
    from edge_asr.cli import main
    from edge_asr_export import exporter
    from edge_asr_export.drift import DriftBounds

    # Bounds no quantized export can meet (as above), as the CLI's default: real figures trip the gate.
    monkeypatch.setitem(exporter.export_model.__kwdefaults__, "drift_bounds", DriftBounds(max_mean_kl=0.0))
    out = tmp_path / "m"
    out.mkdir()
    (out / "old.txt").write_text("an earlier export")
    rc = main(["export", str(tiny_checkpoint), "-o", str(out), "-q", "fp16", "--force", "--no-bundled-sample",
               "--validate-audio", str(clip_list / "b.wav")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "drifts from the PyTorch model" in err and "--accept-drift" in err
    assert "--int8-scheme" not in err and "--force" not in err
    assert (tmp_path / "m.failed" / "validation.json").is_file()


def test_bad_clip_lists_are_clip_list_errors(tmp_path, sample_audio):
    """Wrong types in a list, a non-UTF-8 reference and a JSON (not JSON-lines) file: ClipListError
    (exit 2 with the file named), never a TypeError/UnicodeDecodeError."""
    import soundfile as sf

    from edge_asr_export.clips import ClipListError, load_clips

    sf.write(tmp_path / "a.wav", sample_audio[:16000], 16000)
    for name, text in (("num.jsonl", '{"audio": 5}\n'), ("text.jsonl", '{"audio": "a.wav", "text": 7}\n'),
                       ("pretty.json", '{\n  "audio": "a.wav"\n}\n')):
        (tmp_path / name).write_text(text)
        with pytest.raises(ClipListError, match=name) as e:
            load_clips([str(tmp_path / name)])
        assert isinstance(e.value, ValueError)
    assert "JSON lines" in str(e.value)
    (tmp_path / "a.txt").write_bytes("Zorvexa caf\xe9".encode("latin-1"))
    with pytest.raises(ClipListError, match="a.txt"):
        load_clips([str(tmp_path / "a.wav")])
    (tmp_path / "a.txt").write_text("Zorvexa café", encoding="utf-8")
    assert load_clips([str(tmp_path / "a.wav")])[0].reference == "Zorvexa café"


def test_term_lists_and_hits_agree_with_the_boost_benchmark(tmp_path):
    """One reading of a term file (as --boost-file: inline comments dropped, "C#" kept) and one
    definition of a term hit (Whisper's normalizer) for export validation and `bench boost`."""
    from edge_asr.cli_options import read_lines_file
    from edge_asr_bench.term_boost import term_scores
    from edge_asr_export.terms import load_terms, term_recall

    f = tmp_path / "terms.txt"
    f.write_text("# product names\nZorvexa  # the product\nC#\nMr. Brondax\n\nZorvexa\n", encoding="utf-8")
    assert load_terms(f) == ["Zorvexa", "C#", "Mr. Brondax"] == list(dict.fromkeys(read_lines_file(str(f))))
    refs = ["Mr. Brondax met Zorvexa.", "Zorvexa again"]
    hyps = ["Mister Brondax met Zorvexa's", "sorvexa again"]
    terms = ["Zorvexa", "Mr. Brondax"]
    ours = term_recall(refs, hyps, terms)
    bench = term_scores(refs, hyps, terms)
    assert (ours["found"], ours["total"]) == (bench["term_hits"], bench["term_occurrences"]) == (2, 3)
