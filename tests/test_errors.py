"""Every error edge-asr raises is an EdgeASRError and also the builtin it means (ValueError,
FileNotFoundError, RuntimeError, TypeError), so callers can catch either."""

from __future__ import annotations

import pytest

import edge_asr
from edge_asr import errors
from edge_asr.audio import load_audio
from edge_asr.providers import resolve_providers


@pytest.mark.parametrize("cls, builtin", [
    (errors.AudioError, ValueError), (errors.AudioTypeError, TypeError), (errors.ModelError, ValueError),
    (errors.ModelNotFoundError, FileNotFoundError), (errors.DecodingError, ValueError),
    (errors.OptionError, ValueError), (errors.UnknownOptionError, TypeError), (errors.StreamError, RuntimeError),
    (edge_asr.FidelityError, ValueError)])
def test_error_classes_derive_from_both(cls, builtin):
    assert issubclass(cls, errors.EdgeASRError) and issubclass(cls, builtin)


def test_raised_errors_are_typed(tmp_path):
    with pytest.raises(errors.ModelNotFoundError, match="no model folder"):
        edge_asr.load_model(tmp_path / "nowhere")
    with pytest.raises(errors.OptionError, match="device must be"):
        resolve_providers("tpu")
    with pytest.raises(errors.AudioTypeError, match="path, bytes or a numpy array"):
        load_audio(3.5)
    with pytest.raises(errors.AudioError):
        load_audio(b"not audio at all")


def test_export_and_bench_errors_are_edge_asr_errors():
    pytest.importorskip("torch")
    from edge_asr_bench.errors import BenchConfigError, BenchRunError
    from edge_asr_bench.spec import parse_mode
    from edge_asr_export.checkpoint import CheckpointError
    from edge_asr_export.exporter import ExportError
    from edge_asr_export.validate import ExportValidationError

    for cls in (ExportError, ExportValidationError, CheckpointError, BenchConfigError, BenchRunError):
        assert issubclass(cls, errors.EdgeASRError)
    with pytest.raises(BenchConfigError):
        parse_mode("warp9", "edge-asr")
