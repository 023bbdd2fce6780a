"""int8 schemes that cannot saturate, the legacy-scheme warning, and the on-machine fidelity check.

The pass/fail of these tests does not depend on the CPU: the saturation checks are structural (the
weights' range), the CPU is simulated through its flags, and the fidelity thresholds sit far from both
a faithful folder and a deliberately perturbed one.
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

import edge_asr
from conftest import have, needs_export
from edge_asr import quantization
from edge_asr.errors import ModelError
from edge_asr.fidelity import CACHE_FILE, REFERENCE_FILE, FidelityError, edit_distance
from edge_asr.manifest import sha256_file

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma", "f16c"})
ZEN4 = AVX2_ONLY | {"avx512f", "avx512bw", "avx512_vnni"}
ALDER_LAKE = AVX2_ONLY | {"avx_vnni"}
SAPPHIRE_RAPIDS = ZEN4 | {"amx_int8", "amx_tile"}


def test_saturation_risk_by_cpu_class():
    assert "AVX2 only" in quantization.saturation_risk("x86_64", AVX2_ONLY)
    assert "AVX-512 without VNNI" in quantization.saturation_risk("x86_64", AVX2_ONLY | {"avx512f", "avx512bw"})
    for flags in (ZEN4, ALDER_LAKE, SAPPHIRE_RAPIDS):
        assert quantization.saturation_risk("x86_64", flags) is None
    assert quantization.saturation_risk("aarch64", frozenset()) is None
    assert quantization.saturation_risk("arm64", frozenset()) is None


def test_only_reduced_range_int8_weights_fit_the_int16_pair_sum():
    # vpmaddubsw adds two u8 x s8 products in an int16 lane: 255 * w * 2 must stay <= 32767.
    assert quantization.pair_sum_fits_int16(quantization.SCHEMES["int8-w7"].weight_max_abs)
    assert not quantization.pair_sum_fits_int16(quantization.SCHEMES["int8-w8-legacy"].weight_max_abs)
    assert quantization.DEFAULT_INT8_SCHEME == "int8-w7"
    assert quantization.scheme_of({"quantization": "int8"}).name == quantization.LEGACY_INT8_SCHEME
    assert quantization.scheme_of({"quantization": "fp32"}) is None


def test_edit_distance():
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert edit_distance([1, 2, 3], [1, 3]) == 1
    assert edit_distance([], [4, 5]) == 2
    assert edit_distance([1, 9, 3, 4], [1, 2, 3]) == 2


# ---- on exported folders (tiny random Whisper) ----



@pytest.fixture(scope="module")
def tiny_int8(tiny_checkpoint, tmp_path_factory):
    from edge_asr_export.exporter import export_model

    folder, _ = export_model(tiny_checkpoint, tmp_path_factory.mktemp("int8") / "tiny-int8", "int8", log=lambda m: None)
    return folder


def _refresh_file_table(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in manifest["files"]:
        manifest["files"][name] = {"sha256": sha256_file(folder / name), "size": (folder / name).stat().st_size}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    for stale in (".edge_asr_verified.json", CACHE_FILE):
        (folder / stale).unlink(missing_ok=True)


@needs_export
def test_int8_export_records_the_scheme_and_its_weights_cannot_saturate(tiny_int8):
    from edge_asr_export.onnx_graphs import int8_weight_ranges

    manifest = json.loads((tiny_int8 / "manifest.json").read_text())
    assert manifest["quantization_scheme"] == "int8-w7"
    for graph in ("encoder.onnx", "decoder.onnx"):
        ranges = int8_weight_ranges(tiny_int8 / graph)
        signed = [r for dtype, r in ranges.values() if dtype == "int8"]
        assert len(signed) >= 8  # every projection is quantized
        # int8 weights within [-64, 64]; uint8 ones (the tied embedding, quantized per tensor for the
        # Gather) run on u8 x u8 kernels, which widen before multiplying.
        assert max(signed) <= 64 and quantization.pair_sum_fits_int16(max(signed))
        assert {dtype for dtype, _ in ranges.values()} <= {"int8", "uint8"}


def test_legacy_int8_folder_warns_only_where_it_can_saturate(runtime_model_dir, tmp_path, monkeypatch):
    legacy = tmp_path / "legacy"
    shutil.copytree(runtime_model_dir, legacy)
    manifest = json.loads((legacy / "manifest.json").read_text())
    del manifest["quantization_scheme"]  # as written before the field existed
    (legacy / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(quantization.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(quantization, "cpu_flags", lambda: AVX2_ONLY)
    with pytest.warns(edge_asr.SaturationRiskWarning, match=r"AVX2 only.*pull NAME --force"):
        edge_asr.load_model(legacy, device="cpu")
    monkeypatch.setattr(quantization, "cpu_flags", lambda: ZEN4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", edge_asr.SaturationRiskWarning)
        edge_asr.load_model(legacy, device="cpu")
        monkeypatch.setattr(quantization, "cpu_flags", lambda: AVX2_ONLY)
        edge_asr.load_model(runtime_model_dir, device="cpu")  # the current scheme never warns


def test_fidelity_passes_on_faithful_folders_and_is_cached(runtime_model_dir, tmp_path, request):
    """The committed int8 folder (runtime only); with the export extra, a fresh fp32 export too."""
    sources = [runtime_model_dir]
    if have("torch") and have("transformers") and have("onnx"):
        sources.append(request.getfixturevalue("tiny_model_dir"))
    for src in sources:
        folder = tmp_path / src.name
        shutil.copytree(src, folder)
        (folder / CACHE_FILE).unlink(missing_ok=True)
        model = edge_asr.load_model(folder, device="cpu", verify="fidelity")
        report = model.fidelity
        assert report.verdict == "pass" and not report.cached, report.summary()
        assert report.reference_tokens > 10 and report.token_error_rate == 0.0
        assert report.top1_agreement == 1.0 and report.mean_kl < 1e-3
        again = edge_asr.load_model(folder, device="cpu", verify="fidelity").fidelity
        assert again.cached and again.verdict == "pass" and again.mean_kl == report.mean_kl
        assert model.check_fidelity(force=True).cached is False


def _perturb_decoder(folder, scale: float) -> None:
    """Multiply the decoder's feed-forward weights by ``scale``: a decoder that loads and runs but no
    longer computes what PyTorch does (as a broken quantizer or kernel would)."""
    import onnx
    from onnx import numpy_helper

    path = folder / "decoder.onnx"
    model = onnx.load(str(path))
    changed = 0
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.ndim == 2 and "embed" not in init.name and min(arr.shape) > 8:
            init.CopyFrom(numpy_helper.from_array((arr * scale).astype(np.float32), init.name))
            changed += 1
    assert changed
    onnx.save(model, str(path))
    _refresh_file_table(folder)  # integrity passes: only fidelity can tell


@needs_export
def test_perturbed_decoder_fails_the_fidelity_check(tiny_model_dir, tmp_path, capsys):
    from edge_asr.cli import main

    folder = tmp_path / "perturbed"
    shutil.copytree(tiny_model_dir, folder)
    _perturb_decoder(folder, 3.0)
    edge_asr.load_model(folder, device="cpu", verify="full")  # files are consistent with the manifest
    with pytest.raises(FidelityError, match="fidelity FAIL"):
        edge_asr.load_model(folder, device="cpu", verify="fidelity")
    assert main(["verify", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "fidelity FAIL" in out and "PyTorch:" in out
    assert main(["verify", str(folder), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "fail" and report["cached"] is True and report["top1_agreement"] < 0.75


def test_verify_cli_passes_and_old_folders_say_how_to_rebuild(runtime_model_dir, tmp_path, capsys):
    from edge_asr.cli import main

    assert main(["verify", str(runtime_model_dir)]) == 0
    assert "fidelity PASS" in capsys.readouterr().out
    old = tmp_path / "old"
    shutil.copytree(runtime_model_dir, old)
    (old / REFERENCE_FILE).unlink()
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["files"][REFERENCE_FILE], manifest["fidelity"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert main(["verify", str(old)]) == 2
    assert "re-export" in capsys.readouterr().err
    with pytest.raises(ModelError, match="no fidelity reference"):
        edge_asr.load_model(old, device="cpu", verify="fidelity")
    edge_asr.load_model(old, device="cpu")  # still loads without the check
