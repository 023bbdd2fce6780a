"""Fidelity check on the machine that runs the model: drift against the PyTorch reference in the folder.

An export is validated where it is made, but int8 kernels differ between CPUs (and execution providers
differ from the CPU), so a folder can be faithful there and drift on the user's laptop. Every exported
folder carries ``fidelity_reference.npz`` (PyTorch fp32 tokens and top-k log-probabilities on one short
clip, see edge_asr_export.reference); this module decodes that clip here and compares:

- ``mean_kl``: KL(PyTorch || here) per predicted token, teacher-forced on PyTorch's tokens, over
  PyTorch's top-k tokens (the rest of the mass is negligible for a confident model);
- ``top1_agreement``: share of those positions where this machine's argmax is PyTorch's;
- ``token_error_rate``: edit distance between this machine's free-running greedy tokens and PyTorch's,
  over PyTorch's length: drift that compounds, as in real decoding.

The verdict is pass / warn / fail against thresholds per precision (THRESHOLDS). It costs one encoder
window and ~2 short decodes (well under a second for base on a laptop CPU) and is cached per machine,
execution provider and model files in the cache directory beside the file-verification stamp
(edge_asr.model_cache: ``state/<key>.fidelity.json``), never in the model folder.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
import numpy as np

from .errors import ModelError
from .inference import OnnxBackend
from .tokenizer import Tokenizer

REFERENCE_FILE = "fidelity_reference.npz"
CACHE_KIND = "fidelity"  # edge_asr.model_cache state kind
# Where versions before the cache directory kept verdicts (inside the folder); never written now, and a
# stale one is ignored. Kept for tests and tools that clean it up.
CACHE_FILE = ".edge_asr_fidelity.json"
TOP_K = 32
MAX_TOKENS = 96  # as export validation: the clip is short


class FidelityError(ModelError):
    """The model drifts too far from its PyTorch reference on this machine (verdict "fail")."""


class FidelityWarning(UserWarning):
    """The model drifts more than expected from its PyTorch reference on this machine (verdict "warn")."""


@dataclass(frozen=True)
class Thresholds:
    """Largest drift that still passes / warns (anything beyond warn fails)."""
    pass_kl: float
    warn_kl: float
    pass_ter: float  # token error rate of free-running greedy decoding
    warn_ter: float
    pass_top1: float  # smallest top-1 agreement that passes / warns
    warn_top1: float


# Measured on the bundled clip (AMD Zen 3, AVX2 only; ARCHITECTURE.md "int8 scheme"): fp32 folders drift
# by float summation order only (KL < 1e-6, tokens identical). int8-w7: tiny.en KL 0.009, base 0.065,
# tokens identical; its integer products are exact on every CPU class, so these move little between
# machines, and the pass limit sits at twice base's figure. The legacy int8 scheme on this AVX2-only CPU:
# tiny.en greedy token error rate 0.24 (warn); a decoder whose weights were scaled by 3: top-1
# agreement < 0.75 (fail).
THRESHOLDS = {
    "fp32": Thresholds(pass_kl=0.005, warn_kl=0.05, pass_ter=0.0, warn_ter=0.1, pass_top1=0.99, warn_top1=0.9),
    "quantized": Thresholds(pass_kl=0.15, warn_kl=0.5, pass_ter=0.1, warn_ter=0.35, pass_top1=0.9, warn_top1=0.75),
}


@dataclass(frozen=True)
class FidelityReport:
    verdict: str  # "pass" | "warn" | "fail"
    reasons: tuple[str, ...]  # what put it above "pass" (empty when it passes)
    mean_kl: float
    max_kl: float
    top1_agreement: float
    token_error_rate: float
    reference_tokens: int
    tokens: int
    text: str
    reference_text: str
    quantization: str
    providers: tuple[str, ...]
    machine: str
    onnxruntime: str
    seconds: float
    cached: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        return (f"fidelity {self.verdict.upper()}{why}: mean KL {self.mean_kl:.4f} nats/token, top-1 agreement "
                f"{100 * self.top1_agreement:.1f} %, greedy token error rate {100 * self.token_error_rate:.1f} % "
                f"against PyTorch fp32 ({self.quantization} on {', '.join(self.providers)}, {self.machine})")


def machine_signature() -> str:
    """CPU model and the flags int8 kernels dispatch on (what makes results differ between machines)."""
    from .quantization import VNNI_FLAGS, cpu_flags

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = cpu_flags() or frozenset()
    relevant = sorted(f for f in flags if f in VNNI_FLAGS | {"avx2", "avx512f", "avx512bw", "fma", "f16c", "asimddp",
                                                             "i8mm", "sve"})
    return f"{model} [{' '.join(relevant) or 'flags unknown'}]"


def edit_distance(a: list[int], b: list[int]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def load_reference(folder: Path) -> dict[str, np.ndarray]:
    path = Path(folder) / REFERENCE_FILE
    if not path.is_file():
        raise ModelError(f"{folder} has no fidelity reference ({REFERENCE_FILE}): it was exported before the "
                         "fidelity check existed; re-export it (`edge-asr export ... --force` or "
                         "`edge-asr pull NAME --force`) to check it on this machine")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"{path} is unreadable ({e}); re-export the model") from None


def measure(backend: OnnxBackend, tok: Tokenizer) -> FidelityReport:
    """Decode the reference clip with this model (``backend`` and ``tok``) on its execution provider and
    compare (no caching)."""
    import onnxruntime as ort

    from .decoding import DecodingOptions, DecodingTask
    from .constants import N_SAMPLES
    from .features import log_mel_spectrogram, pad_or_trim

    manifest = backend.manifest
    ref = load_reference(manifest.folder)
    t0 = time.perf_counter()
    audio = ref["pcm"].astype(np.float32) / 32767
    mel = pad_or_trim(log_mel_spectrogram(audio, manifest.dims.n_mels, padding=N_SAMPLES))[None]
    state = backend.encode(mel)
    prompt, ref_tokens = [int(t) for t in ref["prompt"]], [int(t) for t in ref["tokens"]]
    forced = np.array([prompt + ref_tokens], dtype=np.int64)
    positions = np.arange(len(prompt) - 1, forced.shape[1])
    logits, _ = backend.decode(forced, backend.empty_state(state.cross_k, state.cross_v, 1), positions)
    ours = _log_softmax(logits[0])
    ids, ref_lp = ref["topk_ids"].astype(np.int64), ref["topk_logprobs"].astype(np.float64)
    ours_at = np.take_along_axis(ours, ids, axis=-1)
    kl = (np.exp(ref_lp) * (ref_lp - ours_at)).sum(axis=-1)
    top1 = float((ours.argmax(axis=-1) == ids[:, 0]).mean())
    language = str(ref["language"]) or None
    options = DecodingOptions(language=language, without_timestamps=True, sample_len=MAX_TOKENS)
    greedy = DecodingTask(backend, tok, options).run(state)[0]
    ter = edit_distance(greedy.tokens, ref_tokens) / max(1, len(ref_tokens))
    mean_kl, max_kl = float(kl.mean()), float(kl.max())
    kind = "fp32" if manifest.quantization == "fp32" else "quantized"
    limits = THRESHOLDS[kind]
    reasons, verdict = [], "pass"
    for name, value, p, w, worse in (("mean KL", mean_kl, limits.pass_kl, limits.warn_kl, np.greater),
                                     ("greedy token error rate", ter, limits.pass_ter, limits.warn_ter, np.greater),
                                     ("top-1 agreement", top1, limits.pass_top1, limits.warn_top1, np.less)):
        if worse(value, w):
            verdict = "fail"
            reasons.append(f"{name} {value:.4g} beyond the {kind} fail limit {w}")
        elif worse(value, p):
            verdict = "warn" if verdict == "pass" else verdict
            reasons.append(f"{name} {value:.4g} beyond the {kind} pass limit {p}")
    return FidelityReport(
        verdict=verdict, reasons=tuple(reasons), mean_kl=round(mean_kl, 6), max_kl=round(max_kl, 6),
        top1_agreement=round(top1, 4), token_error_rate=round(ter, 4), reference_tokens=len(ref_tokens),
        tokens=len(greedy.tokens), text=greedy.text, reference_text=tok.decode(ref_tokens).strip(),
        quantization=manifest.quantization, providers=backend.providers,
        machine=machine_signature(), onnxruntime=ort.__version__, seconds=round(time.perf_counter() - t0, 3))


def _cache_key(backend: OnnxBackend) -> str:
    import onnxruntime as ort

    from . import __version__

    files = {k: v["sha256"] for k, v in sorted(backend.manifest.files.items())}
    blob = json.dumps([files, list(backend.providers), machine_signature(), ort.__version__, __version__])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def check_fidelity(backend: OnnxBackend, tok: Tokenizer, *, force: bool = False) -> FidelityReport:
    """The fidelity report of this model on this machine and provider: cached when this exact folder,
    provider, CPU and onnxruntime were checked before (``force`` measures again)."""
    from .model_cache import read_state, write_state

    manifest = backend.manifest
    key = _cache_key(backend)
    cache = read_state(manifest.folder, manifest.raw, CACHE_KIND)
    if not force and isinstance(cache.get(key), dict):
        try:
            d = dict(cache[key], cached=True)
            d["reasons"], d["providers"] = tuple(d["reasons"]), tuple(d["providers"])
            return FidelityReport(**d)
        except (TypeError, KeyError):
            pass  # written by another version: measure again
    report = measure(backend, tok)
    cache[key] = report.to_dict()
    write_state(manifest.folder, manifest.raw, CACHE_KIND, cache)  # unwritable cache: measure again next time
    return report
