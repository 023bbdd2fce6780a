"""The edge-asr command as a user runs it (subprocesses for exit codes, in-process for speed)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, SAMPLE, needs_export
from edge_asr.cli import main



def test_transcribe_json_to_output_dir_and_bad_file_does_not_stop_others(runtime_model_dir, tmp_path, capsys):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF" + b"\x00" * 64)
    copy = tmp_path / "clip.flac"
    copy.write_bytes(SAMPLE.read_bytes())
    out_dir = tmp_path / "out"
    code = main(["transcribe", str(bad), str(copy), "--model", str(runtime_model_dir), "--language", "en",
                 "-f", "json", "--output-dir", str(out_dir), "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.wav" in err and "cannot decode" in err and "1 of 2 file(s) transcribed" in err and "1 failed" in err
    written = json.loads((out_dir / "clip.json").read_text())
    assert {"text", "language", "duration", "segments"} <= set(written)
    assert written["language"] == "en" and written["duration"] == pytest.approx(15.52, abs=0.05)
    assert not (out_dir / "broken.json").exists()


def test_transcribe_txt_to_stdout(runtime_model_dir, capsys):
    import edge_asr
    from edge_asr.writers import format_result

    assert main(["transcribe", str(SAMPLE), "-m", str(runtime_model_dir), "--device", "cpu", "--language", "de",
                 "--best-of", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    expected = edge_asr.load_model(runtime_model_dir, device="cpu").transcribe(SAMPLE, language="de", best_of=2)
    assert out == format_result(expected, "txt", str(SAMPLE)) and out.endswith("\n")  # the API's text, as txt


def test_missing_model_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGE_ASR_CACHE", str(tmp_path))
    assert main(["transcribe", str(SAMPLE), "--model", "tiny.en"]) == 2
    assert "edge-asr pull tiny.en" in capsys.readouterr().err


def test_help_lists_the_options():
    """Every TranscribeOptions field meant for the command line has a flag whose help is the field's."""
    from dataclasses import fields

    from edge_asr.cli_options import flag_of
    from edge_asr.options import TranscribeOptions

    out = subprocess.run([sys.executable, "-m", "edge_asr", "transcribe", "--help"], capture_output=True,
                         text=True, cwd=REPO, env={**os.environ, "COLUMNS": "400"})
    assert out.returncode == 0
    for opt in ("--model", "--device", "--output-format", "--output-dir", "--threads", "--vad-threshold"):
        assert opt in out.stdout
    cli_fields = [f for f in fields(TranscribeOptions) if f.metadata.get("cli", True)]
    assert len(cli_fields) >= 20
    for f in cli_fields:
        assert flag_of(f) in out.stdout, f.name
        assert " ".join(f.metadata["help"].split()[:4]) in " ".join(out.stdout.split()), f.name


def test_cli_flags_build_the_same_options_as_the_api():
    from edge_asr.cli import _options_from_args, build_parser
    from edge_asr.options import TranscribeOptions
    from edge_asr.vad import VadOptions

    args = build_parser().parse_args(["transcribe", "a.flac"])
    assert _options_from_args(args) == TranscribeOptions()  # every default comes from the dataclass
    args = build_parser().parse_args(["transcribe", "a.flac", "--temperature", "0", "0.5", "--beam-size", "3",
                                      "--no-condition-on-previous-text", "--silence-peak-db", "none",
                                      "--vad-filter", "--vad-min-silence-ms", "500", "--encoder-tail", "2"])
    assert _options_from_args(args) == TranscribeOptions(
        temperature=(0.0, 0.5), beam_size=3, condition_on_previous_text=False, silence_peak_db=None,
        vad_filter=True, vad_options=VadOptions(min_silence_duration_ms=500), encoder_tail_s=2.0)


def test_export_commands_name_the_missing_extra(tmp_path):
    # Simulate a runtime-only install: torch cannot be imported.
    code = "import sys; sys.modules['torch'] = None; from edge_asr.cli import main; sys.exit(main(['pull', 'tiny.en']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 3
    assert "edge-asr[export]" in out.stderr and "Traceback" not in out.stderr


@needs_export
def test_export_cli_end_to_end(tiny_checkpoint, tmp_path):
    out = subprocess.run([sys.executable, "-m", "edge_asr", "export", str(tiny_checkpoint), "-o", str(tmp_path / "m"),
                          "--quantize", "fp32"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(tmp_path / "m")
    assert "tokens_identical': True" in out.stderr
    again = subprocess.run([sys.executable, "-m", "edge_asr", "export", str(tiny_checkpoint), "-o", str(tmp_path / "m")],
                           capture_output=True, text=True, cwd=REPO, timeout=600)
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr


def test_output_piped_into_a_reader_that_stops_early_is_not_an_error(runtime_model_dir):
    """`edge-asr verify MODEL --json | head -0`: the reader is gone before anything is written; the
    command stops quietly (exit 141, as Unix tools killed by SIGPIPE report) instead of a traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "edge_asr", "verify", str(runtime_model_dir), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    proc.stdout.close()  # the reader stops before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err, err
