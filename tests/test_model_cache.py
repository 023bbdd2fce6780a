"""The cache directory (issue 16): platform cache folder, verification state kept out of model folders
(read-only bundles), the optimized-graph cache (optional, one onnxruntime version per graph, bounded,
removed with its model) and `edge-asr models` list/remove. Runs on the committed tiny random model."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import edge_asr
from edge_asr import manifest as manifest_module
from edge_asr import model_cache
from edge_asr.cli import main
from edge_asr.registry import cache_dir

TINY_MODEL = Path(__file__).resolve().parent / "assets" / "tiny-model"
NOISE = np.random.default_rng(0).uniform(-0.3, 0.3, 16000).astype(np.float32)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("EDGE_ASR_CACHE", str(root))
    monkeypatch.delenv(model_cache.OPTIMIZED_ENV, raising=False)
    monkeypatch.delenv(model_cache.OPTIMIZED_LIMIT_ENV, raising=False)
    return root


@pytest.fixture
def hashes(monkeypatch) -> list[str]:
    """Names of the files sha256-hashed by verify_files (the real function, counted)."""
    seen: list[str] = []
    real = manifest_module.sha256_file

    def counted(path, *a, **k):
        seen.append(Path(path).name)
        return real(path, *a, **k)

    monkeypatch.setattr(manifest_module, "sha256_file", counted)
    return seen


def load(folder, verify="auto", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # saturation/fidelity warnings are not this file's concern
        return edge_asr.load_model(folder, device="cpu", threads=1, verify=verify, **kw)


def snapshot(folder: Path) -> dict:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns, stat.S_IMODE(p.stat().st_mode))
            for p in sorted(folder.iterdir())} | {".": stat.S_IMODE(folder.stat().st_mode)}


def test_cache_dir_is_the_platform_cache_unless_overridden(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_ASR_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("EDGE_ASR_CACHE")
    # The documented per-platform folders (README), not platformdirs' call repeated.
    if sys.platform == "darwin":
        assert cache_dir() == Path.home() / "Library" / "Caches" / "edge-asr"
    elif sys.platform == "win32":
        assert cache_dir() == Path(os.environ["LOCALAPPDATA"]) / "edge-asr" / "Cache"
    elif sys.platform.startswith("linux"):  # existing Linux caches keep working: the same paths as before
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert cache_dir() == tmp_path / "xdg" / "edge-asr"
        monkeypatch.delenv("XDG_CACHE_HOME")
        assert cache_dir() == Path.home() / ".cache" / "edge-asr"


def test_read_only_bundle_loads_in_every_mode_and_is_never_written(cache, tmp_path, hashes):
    bundle = tmp_path / "App.app" / "tiny-model"
    shutil.copytree(TINY_MODEL, bundle)
    for stale in bundle.glob(".edge_asr_*"):
        stale.unlink()
    for p in bundle.iterdir():
        p.chmod(0o444)
    bundle.chmod(0o555)
    before = snapshot(bundle)
    n_files = len(json.loads((bundle / "manifest.json").read_text())["files"])
    try:
        counts = {}
        for mode in ("auto", "auto", "full", "size", "fidelity", "fidelity"):
            start = len(hashes)
            model = load(bundle, mode)
            if mode not in counts:  # each mode's model transcribes once (~1 s: random weights run to 224 tokens)
                result = model.transcribe(NOISE, temperature=0.0)
                assert isinstance(result.text, str) and result.duration == pytest.approx(1.0)
            counts.setdefault(mode, []).append(len(hashes) - start)
            if mode == "fidelity":
                assert model.fidelity.verdict in ("pass", "warn", "fail")
        fidelity_cached = load(bundle, "auto").check_fidelity().cached
        assert snapshot(bundle) == before  # not one byte, file or mtime changed in the bundle
    finally:
        bundle.chmod(0o755)
    # The first "auto" hashed every file; the second read the stamp from the cache and hashed none;
    # "full" hashes every time; "size" never; "fidelity" verifies like "auto" (stamp still valid).
    assert counts == {"auto": [n_files, 0], "full": [n_files], "size": [0], "fidelity": [0, 0]}
    assert fidelity_cached  # the fidelity verdict was cached outside the bundle too
    state = sorted(p.name.split(".", 1)[1] for p in (cache / "state").iterdir())
    assert state == ["fidelity.json", "verified.json"]
    assert len(list((cache / "optimized").iterdir())) == 2  # encoder and decoder


def test_auto_hashes_again_only_what_moved_and_a_new_manifest_starts_unverified(cache, tmp_path, hashes):
    folder = tmp_path / "m"
    shutil.copytree(TINY_MODEL, folder)
    load(folder)
    hashes.clear()
    os.utime(folder / "decoder.onnx")  # mtime moved: that file is hashed again, the others are trusted
    load(folder)
    assert hashes == ["decoder.onnx"]
    raw = json.loads((folder / "manifest.json").read_text())
    assert model_cache.verification_state(folder, raw) == "verified"
    raw["created"] = "re-exported"  # another manifest at the same path: its own state key
    (folder / "manifest.json").write_text(json.dumps(raw))
    assert model_cache.verification_state(folder, raw) == "not verified"
    hashes.clear()
    load(folder)
    assert sorted(hashes) == sorted(raw["files"])


def test_optimized_graphs_optional_per_version_and_bounded(cache, tmp_path, monkeypatch):
    folder = tmp_path / "m"
    shutil.copytree(TINY_MODEL, folder)
    load(folder, optimized_graphs=False)
    monkeypatch.setenv(model_cache.OPTIMIZED_ENV, "0")
    load(folder)
    assert not (cache / "optimized").exists()  # off: nothing written anywhere
    monkeypatch.delenv(model_cache.OPTIMIZED_ENV)

    raw = json.loads((folder / "manifest.json").read_text())
    sha = raw["files"]["encoder.onnx"]["sha256"][:24]
    old = cache / "optimized" / f"{sha}-ort0.0.1"  # another onnxruntime's (a second venv sharing the cache)
    old.mkdir(parents=True)
    (old / "encoder.onnx").write_bytes(b"x" * 10)
    stranger = cache / "optimized" / f"{'0' * 24}-ort{ort.__version__}"  # another model's, used long ago
    stranger.mkdir()
    (stranger / "decoder.onnx").write_bytes(b"y" * 2_000_000)
    os.utime(stranger, (1, 1))
    monkeypatch.setenv(model_cache.OPTIMIZED_LIMIT_ENV, "1.5")  # MB: the stranger must go
    load(folder)
    names = sorted(p.name for p in (cache / "optimized").iterdir() if p != old)
    # The other version's copy stays (recently used, within the bound): loads never delete it, so two
    # environments do not rebuild each other's graphs at every load. The bound removed the stranger.
    assert old.is_dir() and not stranger.exists()
    assert len(names) == 2 and all(n.endswith(f"-ort{ort.__version__}") for n in names)
    os.utime(old, (2, 2))  # unused for long: the bound removes it like any other
    current = sum(model_cache._tree_size(cache / "optimized" / n) for n in names)
    assert model_cache.trim_optimized(current) == [old]
    assert (cache / "optimized" / f"{sha}-ort{ort.__version__}" / "encoder.onnx").is_file()
    # The optimized copy is used: the next load reads it and gives the same text.
    a = load(folder).transcribe(NOISE, temperature=0.0).text
    b = load(folder, optimized_graphs=False).transcribe(NOISE, temperature=0.0).text
    assert a == b


def test_models_list_and_remove(cache, tmp_path, capsys):
    folder = cache / "models" / "tiny-int8"
    shutil.copytree(TINY_MODEL, folder)
    outside = tmp_path / "elsewhere"
    shutil.copytree(TINY_MODEL, outside)
    load(folder, "fidelity")
    load(outside)

    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["cache_dir"] == str(cache)
    (entry,) = listing["models"]
    assert entry["name"] == "tiny-int8" and entry["quantization"] == "int8" and entry["scheme"] == "int8-w7"
    assert entry["verification"] == "verified" and entry["optimized_bytes"] > 0
    assert entry["fidelity"] and entry["fidelity"][0].endswith("(CPUExecutionProvider)")
    assert entry["size_bytes"] == sum(p.stat().st_size for p in folder.iterdir())
    assert main(["models"]) == 0
    assert "tiny-int8" in capsys.readouterr().out

    assert main(["models", "remove", str(outside)]) == 2  # not the cache's: refused, untouched
    assert "not a model folder of the cache" in capsys.readouterr().err and outside.is_dir()
    assert main(["models", "remove", "nosuch"]) == 2
    capsys.readouterr()

    raw = json.loads((folder / "manifest.json").read_text())
    optimized = model_cache.optimized_dirs_of(raw)
    state_before = sorted((cache / "state").iterdir())
    assert len(optimized) == 2 and len(state_before) == 3  # fidelity + verified for it, verified for outside
    assert main(["models", "remove", "tiny-int8", "--dry-run"]) == 0 and folder.is_dir()
    assert main(["models", "remove", "tiny-int8"]) == 0
    assert "removed" in capsys.readouterr().out
    assert not folder.exists() and not any(p.exists() for p in optimized)
    # Only the other folder's state is left; its optimized graphs are the same files (same hashes),
    # so they went too and are rebuilt at its next load.
    assert [json.loads(p.read_text())["folder"] for p in (cache / "state").iterdir()] == [str(outside.resolve())]
    assert main(["models", "--json"]) == 0 and json.loads(capsys.readouterr().out)["models"] == []
    load(outside)
    assert len(list((cache / "optimized").iterdir())) == 2


def test_models_clean_drops_state_of_deleted_folders(cache, tmp_path, capsys):
    gone = tmp_path / "gone"
    shutil.copytree(TINY_MODEL, gone)
    load(gone)
    shutil.rmtree(gone)
    assert main(["models", "clean", "--optimized"]) == 0
    assert "1 stale state file" in capsys.readouterr().out
    assert list((cache / "state").iterdir()) == [] and list((cache / "optimized").iterdir()) == []


def test_pull_clean_up_removes_only_what_it_made(cache, tmp_path):
    """`pull`'s clean-up on real files (the export itself is measured by hand: ~3 min for tiny.en; README
    "Model cache"): its own intermediate files and the optimized copies of graphs no folder keeps go,
    another model's kept sources, older optimized copies and the new folder's own copies stay."""
    pytest.importorskip("torch", reason="edge_asr_export needs the export extra")
    from edge_asr_export import sources

    src = cache / "sources"
    (src / "tiny.en-transformers").mkdir(parents=True)
    (src / "tiny.en-transformers" / "model.safetensors").write_bytes(b"w" * 3_000_000)
    (src / "tiny.en-ct2").mkdir()
    weights = tmp_path / "site-packages-model.bin"
    weights.write_bytes(b"m" * 1000)
    (src / "tiny.en-ct2" / "model.bin").symlink_to(weights)  # a link to the installed package: not freed
    (src / "downloads" / "pkg-1.0").mkdir(parents=True)
    (src / "downloads" / "pkg-1.0" / "model.bin").write_bytes(b"d" * 1_000_000)
    (src / "base-transformers").mkdir()  # kept by an earlier `pull base --keep-sources`
    made = [src / "tiny.en-ct2", src / "tiny.en-transformers", src / "downloads" / "pkg-1.0"]
    assert sources._remove_sources(made, log=lambda m: None) == 4_000_000
    assert sorted(p.name for p in src.iterdir()) == ["base-transformers"] and weights.is_file()

    folder = cache / "models" / "tiny-int8"
    shutil.copytree(TINY_MODEL, folder)
    optimized = cache / "optimized"
    older = optimized / f"{'1' * 24}-ort{ort.__version__}"
    older.mkdir(parents=True)
    before = set(optimized.iterdir())
    load(folder)  # the new folder's own copies
    fp32 = optimized / f"{'2' * 24}-ort{ort.__version__}"  # a temporary fp32 graph's copy
    fp32.mkdir()
    assert sources._drop_new_optimized(before, folder, [{"encoder.onnx": "2" * 64}]) == [fp32]
    assert older.is_dir() and len(list(optimized.iterdir())) == 3


# ------------------------------------------------------------------------------ review fixes (cache safety)


def graph_sha(raw: dict, graph: str = "encoder") -> str:
    return raw["files"][raw["graphs"][graph]["file"]]["sha256"]


def test_crafted_sha256_cannot_reach_outside_the_cache(cache, tmp_path, capsys):
    """A manifest whose sha256 starts with "../" once made a load rmtree and create folders outside the
    cache (its first 24 characters became a path and a glob) and `models remove` list them."""
    victim = tmp_path / "victim-ort1.0"  # where <cache>/optimized/././././././../../victim-ort* points
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    folder = cache / "models" / "evil-int8"
    shutil.copytree(TINY_MODEL, folder)
    raw = json.loads((folder / "manifest.json").read_text())
    evil = "././././././../../victim" + "0" * 40
    assert len(evil) == 64
    raw["files"][raw["graphs"]["encoder"]["file"]]["sha256"] = evil
    (folder / "manifest.json").write_text(json.dumps(raw))

    with pytest.raises(edge_asr.errors.ModelError, match="sha256"):
        load(folder, "size")
    assert (victim / "precious.txt").is_file() and not (tmp_path / f"victim-ort{ort.__version__}").exists()
    assert model_cache.optimized_dirs_of(raw) == []  # the hex guard, even with the manifest unchecked
    with pytest.raises(model_cache.ModelCacheError):
        model_cache.optimized_graph_dir(evil)
    (entry,) = model_cache.list_models()
    assert entry.verification.startswith("broken: files[") and "sha256" in entry.verification
    assert main(["models", "remove", "evil-int8", "--dry-run"]) == 0
    assert str(victim) not in capsys.readouterr().out
    assert main(["models", "remove", "evil-int8"]) == 0
    assert not folder.exists() and (victim / "precious.txt").is_file()


BROKEN_MANIFESTS = {
    "graphs-a-list": lambda m: {"graphs": ["x"]},
    "files-a-list": lambda m: {"files": ["x"]},
    "graph-file-a-list": lambda m: {**m, "graphs": {**m["graphs"], "encoder": {**m["graphs"]["encoder"],
                                                                               "file": ["x"]}}},
    "scheme-a-list": lambda m: {**m, "quantization_scheme": ["a"]},
    "language-a-list": lambda m: {**m, "language": ["en"]},
}


def test_one_broken_manifest_does_not_stop_listing_or_removal(cache, capsys):
    for name, change in BROKEN_MANIFESTS.items():
        folder = cache / "models" / f"{name}-int8"
        shutil.copytree(TINY_MODEL, folder)
        raw = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps(change(raw)))
    shutil.copytree(TINY_MODEL, cache / "models" / "good-int8")

    assert main(["models", "--json"]) == 0
    listing = {m["name"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert sorted(listing) == sorted([f"{n}-int8" for n in BROKEN_MANIFESTS] + ["good-int8"])
    for name in BROKEN_MANIFESTS:
        assert listing[f"{name}-int8"]["verification"].startswith("broken: "), name
    assert listing["good-int8"]["verification"] == "not verified" and listing["good-int8"]["scheme"] == "int8-w7"
    assert main(["models"]) == 0 and "graphs-a-list-int8" in capsys.readouterr().out
    for name in BROKEN_MANIFESTS:
        assert main(["models", "remove", f"{name}-int8", "--dry-run"]) == 0, name
    assert main(["models", "remove", *[f"{n}-int8" for n in BROKEN_MANIFESTS]]) == 0
    assert [p.name for p in (cache / "models").iterdir()] == ["good-int8"]


def test_trim_and_prune_touch_only_what_edge_asr_wrote(cache, tmp_path):
    optimized, state = cache / "optimized", cache / "state"
    mine = optimized / f"{'a' * 24}-ort1.0"
    theirs = optimized / "my-notes"  # a user's folder: never trimmed, even to a bound of 0
    for d in (mine, theirs):
        d.mkdir(parents=True)
        (d / "f").write_bytes(b"x" * 100)
        os.utime(d, (1, 1))
    assert model_cache.trim_optimized(0) == [mine] and (theirs / "f").is_file()

    # state/: an entry of a deleted folder and one of a re-exported folder (another manifest) go; an
    # entry of the current manifest and a file edge-asr did not name stay.
    folder = tmp_path / "m"
    shutil.copytree(TINY_MODEL, folder)
    raw = json.loads((folder / "manifest.json").read_text())
    gone = tmp_path / "gone"
    assert model_cache.write_state(folder, raw, "verified", {"x": 1})
    assert model_cache.write_state(gone, raw, "verified", {"x": 1})
    assert model_cache.write_state(folder, {**raw, "created": "before re-export"}, "fidelity", {"x": 1})
    foreign = state / "notes.json"
    foreign.write_text(json.dumps({"folder": str(tmp_path / "nowhere")}))
    live = model_cache.state_path(folder, raw, "verified")
    removed = model_cache.prune_state()
    assert sorted(removed) == sorted([model_cache.state_path(gone, raw, "verified"),
                                      model_cache.state_path(folder, {**raw, "created": "before re-export"},
                                                             "fidelity")])
    assert sorted(state.iterdir()) == sorted([live, foreign])
    assert not any(p.name.endswith(".tmp") for p in state.iterdir())


def test_failed_state_write_leaves_no_temporary_file(cache, tmp_path, monkeypatch):
    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_cache.os, "replace", full_disk)
    raw = json.loads((TINY_MODEL / "manifest.json").read_text())
    assert model_cache.write_state(tmp_path, raw, "verified", {"x": 1}) is False
    assert list((cache / "state").iterdir()) == []


@pytest.mark.parametrize("value, expected", [("inf", sys.maxsize), ("1e308", sys.maxsize), ("-inf", 0),
                                             ("-5", 0), ("nan", 1024 * 10 ** 6), ("lots", 1024 * 10 ** 6),
                                             ("1.5", 1_500_000)])
def test_optimized_limit_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(model_cache.OPTIMIZED_LIMIT_ENV, value)
    assert model_cache.optimized_limit_bytes() == expected


def test_models_remove_reports_a_folder_it_cannot_delete(cache, capsys, monkeypatch):
    folder = cache / "models" / "tiny-int8"
    shutil.copytree(TINY_MODEL, folder)

    def denied(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(model_cache.shutil, "rmtree", denied)
    assert main(["models", "remove", "tiny-int8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"edge-asr: error: cannot delete {folder}") and "Traceback" not in err


def test_models_remove_bare_name_means_the_cache_even_beside_a_same_named_folder(cache, tmp_path, capsys,
                                                                                 monkeypatch):
    folder = cache / "models" / "tiny-int8"
    shutil.copytree(TINY_MODEL, folder)
    here = tmp_path / "work"
    shutil.copytree(TINY_MODEL, here / "tiny-int8")
    monkeypatch.chdir(here)
    assert main(["models", "remove", "tiny-int8", "--dry-run"]) == 0
    assert str(folder.resolve()) in capsys.readouterr().out
    assert main(["models", "remove", "./tiny-int8"]) == 2  # spelled as a path: that folder, refused
    assert "not a model folder of the cache" in capsys.readouterr().err and (here / "tiny-int8").is_dir()
