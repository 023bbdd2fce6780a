"""Transcription options on real speech: beam search, sampling, fallback, prompts, words, VAD, silence."""

from __future__ import annotations

import numpy as np
import pytest

import edge_asr
from conftest import SAMPLE, SAMPLE_TEXT, needs_export, norm, shared_clip, wer
from edge_asr.decoding import DecodingOptions, DecodingTask
from edge_asr.errors import DecodingError
from edge_asr.constants import N_SAMPLES
from edge_asr.features import log_mel_spectrogram, pad_or_trim

# Tests on real weights skip by themselves without the export extra (the real_model/pulled fixtures);
# the others run on the committed tiny model (runtime only, no torch).


# --- mechanics on the tiny random model (fast) ---------------------------------------------------

def _task(model, **kw):
    return DecodingTask(model.backend, model.tokenizer, DecodingOptions(language="en", sample_len=24, **kw))


def _state(model, audio):
    mel = pad_or_trim(log_mel_spectrogram(audio[:N_SAMPLES], 80, padding=N_SAMPLES))[None]
    return model.backend.encode(mel)


def test_beam_of_one_equals_greedy(runtime_model_dir, sample_audio):
    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    state = _state(model, sample_audio)
    greedy = _task(model).run(state)[0]
    beam1 = _task(model, beam_size=1).run(state)[0]
    assert beam1.tokens == greedy.tokens
    beam4 = _task(model, beam_size=4, patience=2.0).run(state)[0]
    assert len(beam4.tokens) > 0 and np.isfinite(beam4.avg_logprob)


def test_sampling_is_seeded_and_best_of_picks_the_best(runtime_model_dir, sample_audio, monkeypatch):
    from edge_asr.decoding import GreedyDecoder

    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    state = _state(model, sample_audio)
    a = _task(model, temperature=1.0, best_of=3, seed=7).run(state)[0]
    b = _task(model, temperature=1.0, best_of=3, seed=7).run(state)[0]
    c = _task(model, temperature=1.0, best_of=3, seed=8).run(state)[0]
    assert a.tokens == b.tokens and a.temperature == 1.0
    assert a.tokens != c.tokens  # random weights + temperature 1: different seeds, different samples
    seen = {}
    finalize = GreedyDecoder.finalize

    def spy(self, tokens, sum_logprobs):
        seen["groups"], seen["scores"] = finalize(self, tokens, sum_logprobs)
        return seen["groups"], seen["scores"]

    monkeypatch.setattr(GreedyDecoder, "finalize", spy)
    r = _task(model, temperature=1.0, best_of=3, seed=7).run(state)[0]
    eot = model.tokenizer.eot
    candidates = [[t for t in seq if t != eot] for seq in seen["groups"][0]]
    assert len(candidates) == 3 and len({tuple(c) for c in candidates}) > 1  # three samples, not one
    per_token = [score / len(c) for c, score in zip(candidates, seen["scores"][0])]
    assert r.tokens == candidates[int(np.argmax(per_token))]  # the best log-probability per token wins
    assert r.avg_logprob == pytest.approx(max(seen["scores"][0][i] / (len(c) + 1) for i, c in enumerate(candidates)
                                              if per_token[i] == max(per_token)))


def test_prompt_and_prefix_build_the_initial_sequence(runtime_model_dir):
    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    tok = model.tokenizer
    task = _task(model, prompt="hello there", prefix="General")
    initial, sot_index, forced = task._initial_tokens("en")
    prompt_ids, prefix_ids = tok.encode(" hello there"), tok.encode(" General")
    assert initial[0] == tok.special.sot_prev and initial[1:1 + len(prompt_ids)] == prompt_ids
    assert initial[sot_index] == tok.special.sot
    assert forced == [tok.timestamp_begin] + prefix_ids  # sampled-as-given, after <|0.00|>
    result = task.run(_state(model, edge_asr.audio.load_audio(SAMPLE)))[0]
    assert result.tokens[:len(forced)] == forced


@pytest.mark.parametrize("bad", [dict(beam_size=2, best_of=2), dict(best_of=2), dict(patience=2.0),
                                 dict(length_penalty=2.0), dict(beam_size=0)])
def test_contradictory_options_are_refused(bad):
    with pytest.raises(DecodingError):
        DecodingOptions(**bad)


def test_unknown_transcribe_option_is_a_type_error(runtime_model_dir):
    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    with pytest.raises(TypeError, match="beam_sise"):
        model.transcribe(SAMPLE, beam_sise=5)


@pytest.mark.parametrize("terms", [5, [5], ["Zorvexa", None]])
def test_bad_boost_terms_are_option_errors(terms):
    from edge_asr.errors import OptionError
    from edge_asr.options import TranscribeOptions

    with pytest.raises(OptionError, match="boost"):
        TranscribeOptions(boost_terms=terms)


def test_task_defaults_to_the_model_and_english_only_models_transcribe(runtime_model_dir):
    """task None (the default) is resolved per model: transcribe here (no task in the manifest), and an
    English-only model never gets translate, even from a hand-edited manifest."""
    from dataclasses import replace
    from types import SimpleNamespace

    from edge_asr.options import TranscribeOptions
    from edge_asr.window import WindowSteps

    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    assert TranscribeOptions().task is None and model.manifest.task is None
    assert WindowSteps(model.backend, model.tokenizer, TranscribeOptions()).options.task == "transcribe"
    model.check_options(TranscribeOptions())
    assert model.tokenizer.multilingual
    model.backend.manifest = replace(model.backend.manifest, task="translate")  # a translate fine-tune
    assert WindowSteps(model.backend, model.tokenizer, TranscribeOptions()).options.task == "translate"
    assert WindowSteps(model.backend, model.tokenizer, TranscribeOptions(task="transcribe")).options.task == "transcribe"
    english_only = SimpleNamespace(multilingual=False)
    assert WindowSteps(model.backend, english_only, TranscribeOptions()).options.task == "transcribe"


@needs_export
def test_folder_without_alignment_output_loads_and_says_words_are_unavailable(tiny_checkpoint, tmp_path):
    from edge_asr_export.exporter import export_model

    folder, _ = export_model(tiny_checkpoint, tmp_path / "old", "int8", word_timestamps=False, log=lambda m: None)
    model = edge_asr.load_model(folder, device="cpu")
    assert not model.word_timestamps_available
    assert model.transcribe(SAMPLE, language="en", temperature=0.0).duration > 1
    with pytest.raises(DecodingError, match="word timestamps are unavailable"):
        model.transcribe(SAMPLE, language="en", word_timestamps=True)


def test_progress_is_reported_up_to_the_total(runtime_model_dir):
    model = edge_asr.load_model(runtime_model_dir, device="cpu")
    audio = np.tile(edge_asr.audio.load_audio(SAMPLE), 3)  # ~47 s: two windows at least
    seen = []
    model.transcribe(audio, language="en", temperature=0.0, progress=lambda d, t: seen.append((d, t)))
    assert len(seen) >= 2 and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1][0] == pytest.approx(seen[-1][1]) == pytest.approx(len(audio) / 16000, abs=0.02)


# --- real models -------------------------------------------------------------------------------

@pytest.mark.slow
def test_beam_search_and_sampling_on_real_speech(real_model, shared_manifest):
    path, ref = shared_clip(shared_manifest, "en_jfk")
    model = real_model("tiny.en")
    beam = model.transcribe(path, beam_size=5)
    assert norm(beam.text) == norm(ref)
    sampled = model.transcribe(path, temperature=0.6, best_of=3)
    assert wer(ref, sampled.text) < 0.3 and all(s.temperature == 0.6 for s in sampled.segments)


@pytest.mark.slow
def test_temperature_fallback_climbs_the_ladder(real_model):
    model = real_model("tiny.en")
    forced = model.transcribe(SAMPLE, compression_ratio_threshold=0.0, best_of=2)  # every result "too repetitive"
    assert forced.segments and all(s.temperature == 1.0 for s in forced.segments)
    normal = model.transcribe(SAMPLE)
    assert all(s.temperature == 0.0 for s in normal.segments)
    assert wer(SAMPLE_TEXT, normal.text) < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_silence_hum_and_noise_produce_no_words(real_model, name):
    model = real_model(name)
    n = 16000 * 90
    t = np.arange(n) / 16000
    rng = np.random.default_rng(0)
    signals = {
        "digital silence": np.zeros(n, np.float32),
        "dither": rng.normal(0, 1e-5, n).astype(np.float32),
        "mains hum": (0.1 * np.sin(2 * np.pi * 50 * t) + 0.03 * np.sin(2 * np.pi * 150 * t)).astype(np.float32),
        "white noise": rng.normal(0, 0.05, n).astype(np.float32),
    }
    for label, audio in signals.items():
        result = model.transcribe(audio)
        assert result.text == "" and result.segments == (), f"{label}: {result.text!r}"
        assert model.transcribe(audio, vad_filter=True).segments == (), label


@pytest.mark.slow
def test_prefix_hotwords_and_prompt(real_model, shared_manifest):
    path, ref = shared_clip(shared_manifest, "en_jfk")
    model = real_model("base")
    prefixed = model.transcribe(path, prefix="And so, my fellow Americans:")
    assert prefixed.text.startswith("And so, my fellow Americans:")
    for kw in (dict(hotwords="Americans, country"), dict(initial_prompt="President Kennedy's inaugural address."),
               dict(condition_on_previous_text=False)):
        assert wer(ref, model.transcribe(path, **kw).text) < 0.15, kw


@pytest.mark.slow
def test_language_detection_and_translation(real_model, shared_manifest):
    path, _ = shared_clip(shared_manifest, "de_picovoice_cheetah_test_de")
    model = real_model("base")
    code, probs = model.detect_language(path)
    assert code == "de" and probs["de"] > 0.9 and sum(probs.values()) == pytest.approx(1.0, abs=1e-3)
    german = model.transcribe(path)
    assert german.language == "de" and "Werbung" in german.text
    english = model.transcribe(path, task="translate")
    assert english.text.isascii() and "Werbung" not in english.text and len(english.text.split()) >= 3


@pytest.mark.slow
def test_word_timestamps_on_long_form(real_model, shared_manifest):
    path, ref = shared_clip(shared_manifest, "en_librivox_sonnet001")
    model = real_model("base")
    result = model.transcribe(path, word_timestamps=True)
    words = [w for s in result.segments for w in s.words]
    assert len(words) > 80 and wer(ref, "".join(w.word for w in words)) < 0.2
    times = [(w.start, w.end) for w in words]
    assert all(0 <= a <= b <= result.duration for a, b in times)
    assert all(times[i][0] >= times[i - 1][0] - 1e-6 for i in range(1, len(times)))  # monotonic starts
    for s in result.segments:
        assert "".join(w.word for w in s.words).strip() == s.text
        assert s.start <= s.words[0].start + 1e-6 and s.words[-1].end <= s.end + 1e-6
    assert 0 < np.mean([w.probability for w in words]) <= 1


@pytest.mark.slow
def test_vad_maps_times_back_to_the_original_audio(real_model, sample_audio):
    model = real_model("tiny.en")
    pad = np.zeros(16000 * 40, np.float32)
    audio = np.concatenate([pad, sample_audio, pad])
    plain = model.transcribe(audio, word_timestamps=True)
    vad = model.transcribe(audio, vad_filter=True, word_timestamps=True)
    # tiny.en hears "synthesizer" as "since the cyber" in the VAD-clipped audio even in fp32 (3 of the
    # 25 words): the bound allows that model error, not more.
    assert wer(SAMPLE_TEXT, vad.text) <= 0.16 and vad.duration == pytest.approx(len(audio) / 16000, abs=0.01)
    assert 39.0 <= vad.segments[0].start <= 41.0 and vad.segments[-1].end <= 40 + len(sample_audio) / 16000 + 1
    assert abs(vad.segments[0].start - plain.segments[0].start) < 0.5


@pytest.mark.slow
def test_cli_batch_directory_all_formats(pulled, tmp_path, capsys):
    from edge_asr.cli import main

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a.flac").write_bytes(SAMPLE.read_bytes())
    (src / "sub" / "b.flac").write_bytes(SAMPLE.read_bytes())
    (src / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    code = main(["transcribe", str(src), "--model", str(pulled("tiny.en")), "-f", "all", "-o", str(out),
                 "--word-timestamps", "--max-line-width", "42", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0 and "2 of 2 file(s) transcribed" in err
    for stem in ("a", "b"):
        for fmt in ("txt", "json", "srt", "vtt", "tsv"):
            assert (out / f"{stem}.{fmt}").stat().st_size > 0
    srt = (out / "a.srt").read_text()
    assert srt.startswith("1\n00:00:0") and all(len(line) <= 42 for line in srt.splitlines())
    assert '"words"' in (out / "a.json").read_text()


@pytest.mark.slow
def test_hallucination_silence_threshold_on_speech_in_noise(real_model, sample_audio):
    model = real_model("tiny.en")
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.003, 16000 * 45).astype(np.float32)  # quiet room tone, not digital silence
    audio = np.concatenate([noise[:16000 * 5], sample_audio, noise])
    result = model.transcribe(audio, hallucination_silence_threshold=2.0)
    assert wer(SAMPLE_TEXT, result.text) < 0.15
    assert all(w.start < 5 + len(sample_audio) / 16000 + 1.0 for s in result.segments for w in s.words)


@pytest.mark.slow
def test_two_languages_on_one_model_from_two_threads(real_model, shared_manifest):
    """Language is passed along each call, never stored on the shared model or tokenizer: concurrent
    calls in English and Japanese (words split at spaces vs at unicode boundaries) give what they give
    alone."""
    from concurrent.futures import ThreadPoolExecutor

    model = real_model("base", "int8")
    jobs = {"en": shared_clip(shared_manifest, "en_jfk")[0], "ja": shared_clip(shared_manifest, "ja_common_voice_24511055")[0]}

    def run(lang):
        r = model.transcribe(jobs[lang], language=lang, word_timestamps=True)
        return r.text, [(w.word, w.start, w.end) for s in r.segments for w in s.words]

    alone = {lang: run(lang) for lang in jobs}
    assert alone["en"][1] and alone["ja"][1]
    assert all(w.startswith(" ") for w, _, _ in alone["en"][1])  # English words split at spaces
    with ThreadPoolExecutor(2) as pool:
        for _ in range(2):
            together = dict(zip(jobs, pool.map(run, list(jobs))))
            assert together == alone
