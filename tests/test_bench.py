"""`edge-asr bench`: short runs on the tiny random model and on real tiny.en int8; the report's schema,
positive and consistent numbers, skipped anchors with reasons. No timing assertions (CI machines are
shared and slow); the bench's own numbers are only checked for being sane and self-consistent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SHARED_AUDIO, have

pytestmark = pytest.mark.skipif(not (have("jiwer") and have("whisper_normalizer")),
                                reason="needs jiwer and whisper-normalizer (edge-asr[bench] or [export])")

# As short as a run can be while still taking every measurement once.
SHORT = ["--repeats", "1", "--long-repeats", "1", "--warmup", "0", "--forced-tokens", "4", "--ratio-rounds", "1",
         "--no-progress"]


def run_bench(args: list[str], out: Path) -> dict:
    from edge_asr_bench.cli import main

    rc = main(args + SHORT + ["--out", str(out)] + (["--no-plot"] if not have("matplotlib") else []))
    report = json.loads((out / "bench.json").read_text())
    assert rc == 0, f"bench exited {rc}"
    assert (out / "bench.md").is_file()
    return report


def check_report(report: dict) -> None:
    from edge_asr_bench.schema import validate

    assert validate(report) == []
    for c in report["configs"]:
        if c["status"] != "ok":
            continue
        lf = c["long_file"]
        # RTF is processing time over audio time, audio-seconds-per-second its inverse.
        assert lf["rtf"] == pytest.approx(lf["processing_s"]["median"] / lf["audio_s"], rel=2e-3, abs=2e-4)
        assert lf["audio_s_per_s"] == pytest.approx(1 / lf["rtf"], rel=5e-3)
        assert c["memory"]["peak_rss_mb"] >= c["memory"]["baseline_rss_mb"] > 0
        assert c["folder_size_mb"] > 0
        if c["spec"]["system"] == "edge-asr":
            stages = c["latency"]["stages"]
            assert stages["decoder_per_token_s"]["median"] > 0 and stages["encoder_s"]["median"] > 0
    for name, a in report["anchors"].items():
        assert a["status"] == "ok" or a["reason"], name
    stream = report["streaming"]
    assert stream["status"] == "ok" or (stream["status"] == "skipped" and stream["reason"])
    m = report["machine"]
    assert m["cpu"]["logical_cores"] >= 1 and m["onnxruntime"]["version"] and "CPUExecutionProvider" in \
        m["onnxruntime"]["providers"]


@pytest.fixture(scope="module")
def tiny_random_report(tiny_model_dir, tmp_path_factory) -> dict:
    """The tiny random model both ways: as a model folder (full path: transcribe, accuracy; plain and one
    mode with both transcribe keywords) and as random weights (forced decoding, labelled); bundled sample
    only, so it needs no ../shared."""
    out = tmp_path_factory.mktemp("bench-tiny")
    return run_bench(["--models", str(tiny_model_dir), "--random-model", str(tiny_model_dir), "--decoding",
                      "greedy,beam5", "--edge-modes", "plain,tail2.0+batch2", "--anchors", "none", "--manifest",
                      "none", "--long-seconds", "5", "--no-streaming", "--no-accuracy",
                      "--repeats", "2", "--long-repeats", "1"], out)  # a schema test: few timed runs


def test_tiny_random_report_schema_and_consistency(tiny_random_report):
    check_report(tiny_random_report)
    ok = [c for c in tiny_random_report["configs"] if c["status"] == "ok"]
    assert {(c["spec"]["weights"], c["spec"]["decoding"]) for c in ok} == {
        ("real", "greedy"), ("real", "beam5"), ("random", "greedy"), ("random", "beam5")}
    assert len({c["id"] for c in tiny_random_report["configs"]}) == len(tiny_random_report["configs"])
    assert tiny_random_report["workload"]["short"]["id"] == "bundled_sample"
    for c in ok:
        if c["spec"]["weights"] == "random":  # latency only, and labelled so everywhere
            assert c["label"] == "random weights, latency only" and c["accuracy"] is None
            assert c["long_file"]["mode"].startswith("forced")
        else:  # the full path, unscored here (--no-accuracy; real tiny.en is scored below)
            assert c["long_file"]["mode"] == "transcribe"
            assert c["accuracy"] is None and "--no-accuracy" in c["accuracy_reason"]
        assert c["latency"]["stages"]["decoder_rows"] == (5 if c["spec"]["decoding"] == "beam5" else 1)
    # Anchors and streaming were not requested: they say so instead of disappearing.
    assert all("not requested" in a["reason"] for a in tiny_random_report["anchors"].values())
    assert tiny_random_report["streaming"]["status"] == "skipped"
    assert "not requested" in tiny_random_report["streaming"]["reason"]


def test_mode_configurations_and_encoder_efficiency(tiny_random_report):
    report = tiny_random_report
    ok = [c for c in report["configs"] if c["status"] == "ok"]
    modes = [c for c in ok if c["spec"]["mode"] != "plain"]
    # One mode configuration per decoding, real weights only (forced decoding has no transcribe options).
    assert sorted(c["spec"]["decoding"] for c in modes) == ["beam5", "greedy"]
    for c in modes:
        assert c["spec"]["mode"] == "batch2+tail2" and c["id"].endswith("/batch2+tail2")  # canonical name
        assert c["spec"]["weights"] == "real" and c["mode_options"] == {"batch_size": 2, "encoder_tail_s": 2.0}
        assert c["long_file"]["mode"] == "transcribe" and c["latency"]["short_clip_s"]["median"] > 0
    assert report["settings"]["edge_modes"] == ["plain", "batch2+tail2"]
    eff = report["encoder_efficiency"]
    assert set(eff["configs"]) == {c["id"] for c in ok}  # every edge-asr configuration, random ones too
    for cid, e in eff["configs"].items():
        assert e["gflop_per_s"] == pytest.approx(e["flops_per_window"] / 1e9 / e["encoder_s"], abs=0.01)
    assert set(eff["fp32_peak"]["measured_gflops"]) == {"2"} and eff["fp32_peak"] == report["machine"]["fp32_peak"]
    from edge_asr_bench.report import markdown

    md = markdown(report)
    assert "## Encoder efficiency" in md and "/greedy/batch2+tail2 |" in md and "fp32 peak: measured" in md


def test_markdown_labels_random_rows(tiny_random_report, tmp_path):
    from edge_asr_bench.report import markdown, terminal

    md = markdown(tiny_random_report)
    assert "random weights, latency only" in md and "| edge-asr |" in md
    assert "random weights, latency only" in terminal(tiny_random_report)


def test_validator_catches_inconsistent_numbers(tiny_random_report):
    import copy

    from edge_asr_bench.schema import validate

    bad = copy.deepcopy(tiny_random_report)
    ok = next(c for c in bad["configs"] if c["status"] == "ok")
    ok["long_file"]["rtf"] *= 2
    ok["latency"]["load_s"]["median"] = -1.0
    bad["anchors"]["faster-whisper"] = {"status": "skipped", "reason": None}
    problems = validate(bad)
    assert any("rtf" in p for p in problems) and any("load_s" in p for p in problems)
    assert any("faster-whisper" in p for p in problems)


def test_real_tiny_en_with_anchors(pulled, shared_manifest, tmp_path, monkeypatch, real_cache):
    folder = pulled("tiny.en", "int8")
    # Anchor folders (faster-whisper's assembled CTranslate2 folder) go to the private cache too.
    monkeypatch.setenv("EDGE_ASR_CACHE", str(real_cache))
    report = run_bench(["--models", str(folder), "--decoding", "greedy", "--anchors", "faster-whisper",
                        "--manifest", str(SHARED_AUDIO / "manifest.jsonl"), "--long-seconds", "10",
                        "--accuracy-clips", "1"], tmp_path)
    check_report(report)
    (edge,) = [c for c in report["configs"] if c["spec"]["system"] == "edge-asr"]
    assert edge["status"] == "ok" and edge["spec"]["model"] == "tiny.en"
    en = edge["accuracy"]["languages"]["en"]
    assert en["clips"] == 1 and 0 <= en["value"] < 0.5  # real weights transcribe real speech
    assert report["anchors"]["transformers"]["reason"] == "not requested (--anchors)"
    fw = report["anchors"]["faster-whisper"]
    if fw["status"] == "ok":
        anchors = [c for c in report["configs"] if c["spec"]["system"] == "faster-whisper"]
        assert [c["status"] for c in anchors] == ["ok"], [c.get("reason") for c in anchors]
        assert anchors[0]["latency"]["stages"] is None and anchors[0]["latency"]["stages_note"]
        (pair,) = report["ratios"]
        assert pair["status"] == "ok" and (pair["edge"], pair["anchor"]) == (edge["id"], anchors[0]["id"])
        ratio = pair["metrics"]["short_clip_s"]
        assert ratio["ratio"]["median"] == pytest.approx(ratio["ratios"][0], abs=1e-3)  # one round
    else:  # not installed here: reported once with the install hint, and no ratio
        assert "edge-asr[bench]" in fw["reason"] and report["ratios"] == []
    # Streaming latency of the same configuration, on the short clip (no 20 s clip among the scored ones).
    stream = report["streaming"]
    assert stream["status"] == "ok" and stream["clips"] == [report["workload"]["short"]["id"]]
    sc = stream["configs"][edge["id"]]
    assert sc["status"] == "ok", sc.get("reason")
    assert sc["first_partial_s"]["median"] > 0 and sc["update_rtf"] > 0 and sc["wer_streaming"] < 0.5


def test_encoder_flops_formula():
    from edge_asr.manifest import Dims
    from edge_asr_bench.flops import encoder_flops, encoder_macs

    # S=3 positions (6 mel frames), d=4, 2 mels, 1 encoder and 1 decoder layer, by hand:
    # conv1 6*2*4*3=144, conv2 3*4*4*3=144, layer 4*3*16 + 2*9*4 + 2*3*4*16 = 192+72+384 = 648, cross K/V 2*3*16=96
    tiny = {"n_mels": 2, "n_audio_ctx": 3, "d_model": 4, "encoder_layers": 1, "decoder_layers": 1}
    assert encoder_macs(tiny) == 144 + 144 + 648 + 96 and encoder_flops(tiny) == 2 * 1032
    # Whisper base (the manifest's Dims object works as well as its dict): ~96.8 GFLOP per 30 s window.
    base = Dims(n_mels=80, n_audio_ctx=1500, n_text_ctx=448, d_model=512, encoder_layers=6, decoder_layers=6,
                encoder_heads=8, decoder_heads=8, vocab_size=51865)
    assert encoder_flops(base) == 96_804_864_000


def test_mode_names_and_pairs():
    from dataclasses import replace

    from edge_asr_bench.plan import pairs
    from edge_asr_bench.schema import validate
    from edge_asr_bench.spec import RunSpec, mode_name, parse_mode

    assert parse_mode("plain") == {} and parse_mode("tail2") == {"encoder_tail_s": 2.0}
    assert mode_name(parse_mode("tail2.0+batch8")) == "batch8+tail2"
    assert parse_mode("batch8", "faster-whisper") == {"batch_size": 8}
    for bad, system in (("tail2", "faster-whisper"), ("batch1", "edge-asr"), ("fast", "edge-asr"),
                        ("batch4", "transformers"), ("tail2+tail3", "edge-asr")):
        with pytest.raises(ValueError):
            parse_mode(bad, system)
    e = RunSpec("edge-asr", "base", "real", "/m", "int8", "cpu", 2, "greedy")
    fw = replace(e, system="faster-whisper", path="/c")
    specs = [e, replace(e, mode="tail2"), replace(e, mode="batch8"), fw, replace(fw, mode="batch8"),
             replace(fw, mode="batch4"), replace(fw, quantization="fp32"),
             replace(e, system="transformers", quantization="fp32", threads=1)]
    assert specs[2].id == "edge-asr/base/int8/cpu/t2/greedy/batch8" and specs[0].id.endswith("/greedy")
    got = {(a.id, b.id) for a, b in pairs([{"status": "ok", "spec": s.to_dict()} for s in specs])}
    assert got == {(e.id, fw.id), (specs[1].id, fw.id), (specs[2].id, fw.id), (specs[2].id, specs[4].id)}
    bad = {"id": e.id, "spec": {**e.to_dict(), "mode": "batch8"}, "status": "skipped", "reason": "x"}
    assert any("missing from the id" in p for p in validate({"schema": "edge-asr-bench/1", "created": "", "machine": {},
               "settings": {}, "workload": {}, "anchors": {}, "configs": [bad], "ratios": [],
               "streaming": {"status": "skipped", "reason": "x"}}))


def test_missing_anchor_is_skipped_with_reason(monkeypatch):
    import importlib.util

    from edge_asr_bench import anchor_sources

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(anchor_sources.importlib.util, "find_spec",
                        lambda name, *a: None if name == "faster_whisper" else real_find_spec(name, *a))
    status = anchor_sources.anchor_status("faster-whisper")
    assert status["status"] == "skipped" and "faster_whisper" in status["reason"]
    assert "edge-asr[bench]" in status["reason"]


def test_cli_bench_hook(monkeypatch, capsys):
    from edge_asr.cli import main

    assert main(["bench", "--help"]) == 0  # the command list
    out = capsys.readouterr().out
    for command in ("run", "accuracy", "quality", "streaming", "memory", "quantization"):
        assert f"    {command}" in out, command
    for argv in (["bench", "run", "--help"], ["bench", "--quick", "--help"]):  # options alone go to `run`
        with pytest.raises(SystemExit) as e:  # the bench's own parser answers --help through the hook
            main(argv)
        assert e.value.code == 0 and "--quick" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["bench", "accuracy", "--help"])
    assert e.value.code == 0 and "edge-asr bench accuracy" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["bench", "no-such-bench"])
    assert e.value.code == 2 and "unknown command" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "edge_asr_bench.cli", None)  # as if the extra were missing
    assert main(["bench", "--quick"]) == 3
    assert "edge-asr[bench]" in capsys.readouterr().err


def test_edge_asr_bench_help_lists_the_commands():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "edge_asr.cli", "bench", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert all(c in out.stdout for c in ("run", "accuracy", "quality", "streaming", "memory", "quantization"))


def test_scoring_and_random_sizes():
    from edge_asr.scoring import error_rate
    from edge_asr_bench.random_models import SIZES, export_blocker
    from edge_asr_bench.stats import Stats

    s = Stats.of([3.0, 1.0, 2.0, 10.0])
    assert s.median == 2.5 and s.median <= s.p90 <= 10.0 and s.n == 4
    assert error_rate("en", ["Hello, World!"], ["hello world"])["value"] == 0.0
    ja = error_rate("ja", ["真っ昼間なのに"], ["真昼間なのに"])
    assert ja["metric"] == "cer" and 0 < ja["value"] < 0.5
    # Published sizes (millions): the estimate from dimensions is within a few percent.
    for name, published in (("small", 244), ("medium", 769), ("large-v3", 1550), ("large-v3-turbo", 809)):
        assert SIZES[name].params_m == pytest.approx(published, rel=0.05), name
    assert export_blocker(SIZES["large-v3"], "fp32") and "2 GiB" in export_blocker(SIZES["large-v3"], "fp32")
    assert export_blocker(SIZES["small"], "fp32") is None and export_blocker(SIZES["large-v3"], "int8") is None


@pytest.mark.skipif(not (have("transformers") and have("tokenizers")), reason="needs the export extra")
def test_random_tokenizer_has_whisper_vocabulary_layout():
    from edge_asr_bench.random_models import whisper_like_tokenizer
    from edge_asr_export.tokenizer_files import repair_tokenizer_json, special_tokens

    for n_languages, vocab in ((99, 51865), (100, 51866)):
        tok, _ = repair_tokenizer_json(whisper_like_tokenizer(n_languages))
        assert max(t["id"] for t in tok["added_tokens"]) + 1 == vocab
        specials = special_tokens(tok, vocab)
        assert (specials["eot"], specials["sot"], specials["languages"]["en"]) == (50257, 50258, 50259)
        assert specials["timestamp_begin"] == vocab - 1501


def test_streaming_bench_settings_parse_to_options():
    from edge_asr.streaming import StreamingOptions
    from edge_asr_bench.streaming import parse_settings

    got = parse_settings(["probe_tail_s=none", "first_step_s=0.5", "agreement=3", "vad=false"])
    assert got == {"probe_tail_s": None, "first_step_s": 0.5, "agreement": 3, "vad": False}
    StreamingOptions(**got)  # every key is a field
    with pytest.raises(SystemExit, match="not a StreamingOptions field"):
        parse_settings(["no_such_field=1"])
