"""providers.py and cli_options.py: an optimized-graph folder that vanishes while
onnxruntime writes into it (another process trimmed the cache) falls back to a plain session; a file
flag's file saved with a UTF-8 BOM (Windows Notepad) does not glue the BOM to its first value."""

from __future__ import annotations

import shutil
from pathlib import Path

from edge_asr import providers
from edge_asr.cli_options import read_lines_file

TINY_MODEL = Path(__file__).resolve().parent / "assets" / "tiny-model"


def test_optimized_folder_vanishing_during_the_write_falls_back_to_a_plain_session(tmp_path, monkeypatch):
    cache = tmp_path / "optimized" / "graph-ort1"
    real = providers._session_options

    def vanishing(config, policy):
        shutil.rmtree(cache, ignore_errors=True)  # trimmed by another process after our mkdir
        return real(config, policy)

    monkeypatch.setattr(providers, "_session_options", vanishing)
    config = providers.SessionConfig(("CPUExecutionProvider",), threads=1)
    # onnxruntime raises InvalidArgument (not an OSError) when it cannot write the optimized graph.
    session = providers.create_session(TINY_MODEL / "encoder.onnx", config, optimized_cache=cache)
    assert session.get_providers() == ["CPUExecutionProvider"] and session.get_inputs()[0].name == "mel"


def test_optimized_write_failure_leaves_no_temporary_file(tmp_path, monkeypatch):
    cache = tmp_path / "optimized" / "graph-ort1"

    def refused(src, dst):
        raise RuntimeError("not an OSError")

    monkeypatch.setattr(providers.os, "replace", refused)
    config = providers.SessionConfig(("CPUExecutionProvider",), threads=1)
    providers.create_session(TINY_MODEL / "encoder.onnx", config, optimized_cache=cache)
    assert list(cache.iterdir()) == []


def test_preload_dlls_output_is_kept_off_stdout(monkeypatch, capsys):
    import sys

    import onnxruntime as ort

    monkeypatch.setattr(ort, "preload_dlls", lambda *a, **k: print("Failed to load libcudnn.so.9"), raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    providers.library_status("CUDAExecutionProvider")
    assert capsys.readouterr().out == ""


def test_lines_file_with_a_bom(tmp_path):
    path = tmp_path / "terms.txt"
    path.write_bytes("\ufeffKubernetes\n# comment\nC#\n".encode("utf-8"))
    assert read_lines_file(str(path)) == ["Kubernetes", "C#"]
