"""Model folder faults (issue 18): truncated, bit-flipped (same size), missing and foreign files; invalid,
future- and past-version manifests; a manifest that disagrees with its graphs. Each is detected at
load, before any inference, with a ModelError that says what to do, under every ``verify`` mode; the
one thing "size" cannot see (a same-size change that still parses) is asserted as such, as README
documents."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings

import numpy as np
import pytest

import edge_asr
from edge_asr.errors import DecodingError, EdgeASRError, ModelError

MODES = ["auto", "full", "size", "fidelity"]
REPAIR_WORDS = ("re-export", "re-pull", "upgrade")


@pytest.fixture(scope="module")
def pristine(runtime_model_dir, tmp_path_factory):
    dst = tmp_path_factory.mktemp("pristine") / "model"
    shutil.copytree(runtime_model_dir, dst)
    for stamp in dst.glob(".edge_asr_*"):
        stamp.unlink()
    return dst


@pytest.fixture
def folder(pristine, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(pristine, dst)
    return dst


def load(folder, mode):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fidelity warnings on the random model, saturation on old CPUs
        return edge_asr.load_model(folder, device="cpu", threads=1, verify=mode)


def manifest(folder) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def write_manifest(folder, m: dict) -> None:
    (folder / "manifest.json").write_text(json.dumps(m))


def relist(folder, name: str) -> None:
    """Record the file's current hash and size in the manifest (a consistent but foreign file)."""
    m = manifest(folder)
    data = (folder / name).read_bytes()
    m["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    write_manifest(folder, m)


def flip(path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position % len(data)] ^= 0xFF
    path.write_bytes(bytes(data))


def assert_says_what_to_do(error: EdgeASRError, *words: str) -> None:
    text = str(error)
    assert any(w in text for w in REPAIR_WORDS), text
    for w in words:
        assert w in text, (w, text)


@pytest.mark.parametrize("mode", MODES)
def test_truncated_missing_and_grown_files(folder, mode):
    load(folder, mode)  # sound first (and stamped, for auto)
    enc = folder / "encoder.onnx"
    data = enc.read_bytes()
    enc.write_bytes(data[:-1000])
    with pytest.raises(ModelError) as e:
        load(folder, mode)
    assert_says_what_to_do(e.value, "truncated")
    enc.write_bytes(data + b"\x00")
    with pytest.raises(ModelError, match="bytes, the manifest says"):
        load(folder, mode)
    enc.unlink()
    with pytest.raises(ModelError) as e:
        load(folder, mode)
    assert_says_what_to_do(e.value, "missing")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["encoder.onnx", "decoder.onnx", "tokenizer.json", "fidelity_reference.npz"])
def test_bit_flips_of_the_same_size(folder, mode, name):
    load(folder, mode)
    path = folder / name
    flip(path, len(path.read_bytes()) // 2)
    if mode == "size":
        # Same size: "size" mode cannot tell (documented). It must still never fail untyped: either the
        # file no longer loads (ModelError) or the model loads and runs.
        try:
            model = load(folder, mode)
        except ModelError as e:
            assert_says_what_to_do(e.value if hasattr(e, "value") else e)
        else:
            model.transcribe(np.zeros(1600, np.float32), silence_peak_db=200.0)
        return
    with pytest.raises(ModelError) as e:
        load(folder, mode)
    assert_says_what_to_do(e.value, "sha256")


@pytest.mark.parametrize("mode", MODES)
def test_corrupt_tokenizer_is_a_model_error_even_unhashed(folder, mode):
    """verify="size" once let tokenizers' bare Exception through."""
    path = folder / "tokenizer.json"
    path.write_bytes(b"[" + path.read_bytes()[1:])  # same size, no longer a tokenizer file
    if mode == "size":
        with pytest.raises(ModelError, match="cannot be read as a tokenizer") as e:
            load(folder, mode)
    else:
        with pytest.raises(ModelError, match="sha256") as e:
            load(folder, mode)
    assert_says_what_to_do(e.value)


@pytest.mark.parametrize("mode", MODES)
def test_corrupt_graph_is_a_model_error_even_unhashed(folder, mode, tmp_path, monkeypatch):
    # An empty cache: with onnxruntime's optimized copy of the graph cached (keyed by the manifest's
    # sha256), "size" loads that copy and never reads the damaged file (it runs correctly).
    monkeypatch.setenv("EDGE_ASR_CACHE", str(tmp_path / "cache"))
    path = folder / "decoder.onnx"
    path.write_bytes(bytes(len(path.read_bytes())))  # same size, all zeros
    with pytest.raises(ModelError) as e:
        load(folder, mode)
    assert_says_what_to_do(e.value, "onnxruntime" if mode == "size" else "sha256")


@pytest.mark.parametrize("mode", MODES)
def test_foreign_files_listed_with_their_own_hashes(folder, mode):
    """Files from another model, with the manifest's hashes updated to match (so every verify mode passes
    the files themselves): the consistency checks catch them."""
    tok = json.loads((folder / "tokenizer.json").read_text())
    added = tok["added_tokens"]  # another model's numbering: <|endoftext|> and <|startoftranscript|> swapped
    added[0]["content"], added[1]["content"] = added[1]["content"], added[0]["content"]
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    relist(folder, "tokenizer.json")
    with pytest.raises(ModelError, match="does not match manifest.json") as e:
        load(folder, mode)
    assert_says_what_to_do(e.value, "another model")


@pytest.mark.parametrize("mode", MODES)
def test_swapped_graphs(folder, mode):
    m = manifest(folder)
    m["graphs"]["encoder"]["file"], m["graphs"]["decoder"]["file"] = "decoder.onnx", "encoder.onnx"
    write_manifest(folder, m)
    with pytest.raises(ModelError, match="different models") as e:
        load(folder, mode)
    assert_says_what_to_do(e.value)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("field, value, words", [
    ("n_mels", 128, "size 80 on axis 1 but manifest.json implies 128"),
    ("decoder_heads", 8, "manifest.json implies 8"),
    ("vocab_size", 4000, "manifest.json implies 4000"),
    ("decoder_layers", 3, "no output 'cross_k_2'"),
])
def test_manifest_that_disagrees_with_the_graphs(folder, mode, field, value, words):
    """A manifest with n_mels 128 once loaded and then failed inside onnxruntime (untyped RuntimeError)."""
    m = manifest(folder)
    m["dims"][field] = value
    write_manifest(folder, m)
    with pytest.raises(ModelError, match=words) as e:
        load(folder, mode)
    assert_says_what_to_do(e.value)


BAD_MANIFESTS = [
    ("not json", lambda m: "{not json", "corrupt"),
    ("a list", lambda m: [m], "not an edge-asr manifest"),
    ("foreign format", lambda m: {**m, "format": "other-model"}, "not an edge-asr manifest"),
    ("future version", lambda m: {**m, "format_version": 3}, "newer edge-asr: upgrade"),
    ("old version", lambda m: {**m, "format_version": 1}, "re-export the model with this version"),
    ("version as text", lambda m: {**m, "format_version": "2"}, "format version '2'"),
    ("dims as text", lambda m: {**m, "dims": {**m["dims"], "n_mels": "80"}}, "dims.n_mels must be a positive"),
    ("zero layers", lambda m: {**m, "dims": {**m["dims"], "decoder_layers": 0}}, "dims.decoder_layers"),
    ("no tokens", lambda m: {k: v for k, v in m.items() if k != "tokens"}, "tokens is missing"),
    ("token out of range", lambda m: {**m, "tokens": {**m["tokens"], "eot": 10 ** 9}}, "tokens.eot"),
    ("no files", lambda m: {**m, "files": {}}, "files"),
    ("path traversal", lambda m: {**m, "files": {**m["files"], "../../etc/passwd": {"sha256": "0" * 64, "size": 1}}},
     "not a plain file name"),
    ("graph outside files", lambda m: {**m, "graphs": {**m["graphs"], "encoder": {**m["graphs"]["encoder"],
                                                                                  "file": "other.onnx"}}},
     "not listed in files"),
    ("bad alignment heads", lambda m: {**m, "alignment_heads": [[99, 0]]}, "alignment_heads"),
    # sha256 prefixes name cache folders: "../" in one must be refused before any path is built.
    ("sha256 not hex", lambda m: {**m, "files": {**m["files"], "encoder.onnx": {
        **m["files"]["encoder.onnx"], "sha256": "././././././../../victim" + "0" * 40}}}, "sha256"),
    ("sha256 uppercase", lambda m: {**m, "files": {**m["files"], "encoder.onnx": {
        **m["files"]["encoder.onnx"], "sha256": m["files"]["encoder.onnx"]["sha256"].upper()}}}, "sha256"),
    ("language as a list", lambda m: {**m, "language": ["en"]}, "language"),  # was a TypeError (unhashable)
    ("scheme as a list", lambda m: {**m, "quantization_scheme": ["a"]}, "quantization_scheme"),
    ("deep nesting", lambda m: "[" * 100000 + "]" * 100000, "not an edge-asr manifest|corrupt"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case, change, words", BAD_MANIFESTS, ids=[c[0] for c in BAD_MANIFESTS])
def test_invalid_manifests(folder, mode, case, change, words):
    m = manifest(folder)
    new = change(m)
    (folder / "manifest.json").write_text(new if isinstance(new, str) else json.dumps(new))
    with pytest.raises(ModelError, match=words) as e:
        load(folder, mode)
    if case not in ("a list", "foreign format"):
        assert_says_what_to_do(e.value)


def test_folder_from_an_older_export_without_alignment_output(folder):
    """A format-2 folder exported before word timing existed loads; asking for word timing is refused
    before any audio is decoded."""
    m = manifest(folder)
    m["graphs"]["decoder"]["outputs"].remove("alignment_attn")
    write_manifest(folder, m)
    model = load(folder, "auto")
    with pytest.raises(DecodingError, match="re-export"):
        model.transcribe(np.zeros(16000, np.float32), word_timestamps=True)


def test_damaged_verification_stamp_only_means_hashing_again(folder):
    from edge_asr.model_cache import state_path

    load(folder, "auto")
    stamp = state_path(folder, manifest(folder), "verified")  # kept in the cache directory, not the folder
    assert stamp.is_file()
    for junk in ("[1, 2]", "{bad", "\xff\xfe"):
        stamp.write_text(junk, encoding="latin-1")
        load(folder, "auto")
    assert isinstance(json.loads(stamp.read_text()), dict)


def test_auto_mode_blind_spot_is_what_the_docs_say(folder):
    """After a successful check, "auto" trusts a file whose size and mtime did not move; "full" does not."""
    load(folder, "auto")
    path = folder / "decoder.onnx"
    st = path.stat()
    flip(path, st.st_size // 2)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    load(folder, "auto")  # documented blind spot: same size, same mtime
    with pytest.raises(ModelError, match="sha256"):
        load(folder, "full")


def test_unknown_verify_mode(folder):
    with pytest.raises(edge_asr.errors.OptionError, match="verify must be"):
        edge_asr.load_model(folder, verify="paranoid")
