"""From the axes the user asked for to the list of configurations (and why some cannot run).

Axes: models (pulled names or model folders) x quantization x provider x threads x decoding x mode
for edge-asr (mode: spec.parse_mode; plain, tailX, batchN; real weights only); the anchors on the same
weights (faster-whisper at each precision edge-asr runs that it supports, sequential and, with
--anchor-modes batchN, its BatchedInferencePipeline; transformers fp32 with torch on one thread);
random-weight sizes when asked. A
configuration that cannot run is kept in the plan as "skipped" with the reason, so the report says
what was not measured instead of silently leaving it out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from .anchor_sources import anchor_status, source_dirs
from .spec import PLAIN, RunSpec, Settings, approx_params_m


@dataclass(frozen=True)
class BenchConfig:
    models: tuple[str, ...] = ("tiny.en", "base")
    quantizations: tuple[str, ...] = ("int8", "fp32")
    providers: tuple[str, ...] = ("cpu",)
    threads: tuple[int, ...] = (2,)
    decodings: tuple[str, ...] = ("greedy", "beam5")
    edge_modes: tuple[str, ...] = (PLAIN,)  # canonical spec.parse_mode names; each one more edge-asr configuration
    anchor_modes: tuple[str, ...] = (PLAIN,)  # faster-whisper: plain and/or batchN (BatchedInferencePipeline)
    anchors: tuple[str, ...] = ("faster-whisper", "transformers")
    random_sizes: tuple[str, ...] = ()  # small, medium, large-v3, large-v3-turbo: built and timed
    random_quantizations: tuple[str, ...] = ("int8",)
    random_models: tuple[str, ...] = ()  # existing folders timed as random weights (forced decoding)
    settings: Settings = field(default_factory=Settings)
    manifest: Path | None = None
    long_seconds: float | None = None
    accuracy_clips: int | None = None
    accuracy: bool = True
    streaming: bool = True  # first-partial / commit latency (streaming_section.py) when edge_asr.streaming exists
    ct2: tuple[tuple[str, str], ...] = ()  # (model name, CTranslate2 folder) overrides
    hf: tuple[tuple[str, str], ...] = ()  # (model name, transformers checkpoint) overrides
    job_timeout_s: float = 3600.0
    quick: bool = False
    note: str | None = None


@dataclass(frozen=True)
class Planned:
    """A configuration to measure, or one that is skipped (``reason`` set)."""

    spec: RunSpec
    reason: str | None = None


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _params(m: dict) -> float:
    d = m["dims"]
    # Whisper's FFN is always 4 x d_model; the manifest does not record it.
    return approx_params_m(d["d_model"], d["encoder_layers"], d["decoder_layers"], 4 * d["d_model"], d["n_mels"],
                           d["vocab_size"], d["n_audio_ctx"], d["n_text_ctx"])


def provider_reason(provider: str) -> str | None:
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}.get(provider, provider)
    if wanted not in available:
        return (f"onnxruntime {ort.__version__} has no {wanted} (available: {', '.join(available)})"
                + ("; install onnxruntime-gpu in place of onnxruntime" if provider == "cuda" else ""))
    return None


def edge_folders(config: BenchConfig, cache: Path) -> list[tuple[str, str, Path | None, str | None]]:
    """(label, quantization, folder or None, reason) for each model x quantization asked for."""
    out = []
    for m in config.models:
        path = Path(m).expanduser()
        if path.is_dir():
            if not (path / "manifest.json").is_file():
                out.append((m, "?", None, f"{path} is not an edge-asr model folder (no manifest.json)"))
            else:
                out.append((m, _manifest(path)["quantization"], path, None))
            continue
        for q in config.quantizations:
            folder = cache / "models" / f"{m}-{q}"
            reason = None if (folder / "manifest.json").is_file() else \
                f"{folder} does not exist: build it with `edge-asr pull {m} -q {q}`"
            out.append((m, q, folder if reason is None else None, reason))
    return out


def _axes(base: RunSpec, config: BenchConfig, first_accuracy: bool) -> list[Planned]:
    """The provider x threads x decoding x mode expansion of one model folder (random weights: plain
    only, their forced decoding has no transcribe options)."""
    out = []
    modes = config.edge_modes if base.weights == "real" else (PLAIN,)
    for provider in config.providers:
        reason = provider_reason(provider)
        for i, threads in enumerate(config.threads):
            for decoding in config.decodings:
                for mode in modes:
                    spec = replace(base, provider=provider, threads=threads, decoding=decoding, mode=mode,
                                   accuracy=first_accuracy and i == 0 and base.weights == "real" and config.accuracy)
                    out.append(Planned(spec, reason))
    return out


def plan_edge(config: BenchConfig, cache: Path) -> list[Planned]:
    planned = []
    for label, quant, folder, reason in edge_folders(config, cache):
        if folder is None:
            spec = RunSpec("edge-asr", label, "real", "", quant, config.providers[0], config.threads[0],
                           config.decodings[0])
            planned.append(Planned(spec, reason))
            continue
        m = _manifest(folder)
        base = RunSpec("edge-asr", m.get("name") or folder.name, "real", str(folder), quant, "cpu", 1, "greedy",
                       multilingual=bool(m.get("multilingual")), params_m=_params(m))
        planned += _axes(base, config, True)
    for p in config.random_models:
        folder = Path(p).expanduser()
        m = _manifest(folder)
        base = RunSpec("edge-asr", m.get("name") or folder.name, "random", str(folder), m["quantization"], "cpu", 1,
                       "greedy", multilingual=bool(m.get("multilingual")), params_m=_params(m))
        planned += _axes(base, config, False)
    return planned


def plan_random_sizes(config: BenchConfig, built: dict[tuple[str, str], tuple[Path | None, str | None]]
                      ) -> list[Planned]:
    """Specs for the random sizes, given what building them produced: (folder, failure reason)."""
    from .random_models import SIZES

    planned = []
    for name in config.random_sizes:
        for quant in config.random_quantizations:
            folder, reason = built[(name, quant)]
            base = RunSpec("edge-asr", f"random-{name}", "random", str(folder or ""), quant, "cpu", 1, "greedy",
                           multilingual=True, params_m=SIZES[name].params_m)
            if folder is None:
                planned.append(Planned(replace(base, provider=config.providers[0], threads=config.threads[0],
                                               decoding=config.decodings[0]), reason))
            else:
                planned += _axes(base, config, False)
    return planned


def plan_anchors(config: BenchConfig, edge: list[Planned], ct2_root: Path) -> tuple[list[Planned], dict]:
    """Anchor configurations mirroring the real-weight edge-asr ones (whatever their mode: the anchors
    run sequentially, plus faster-whisper once per --anchor-modes batchN); and each anchor's status."""
    from .anchor_sources import faster_whisper_folder

    statuses = {a: anchor_status(a) for a in ("faster-whisper", "transformers")}
    for a in statuses:
        if a not in config.anchors:
            statuses[a] = {"status": "skipped", "reason": "not requested (--anchors)"}
    planned: list[Planned] = []
    seen: set[str] = set()
    overrides_ct2, overrides_hf = dict(config.ct2), dict(config.hf)
    for p in edge:
        s = p.spec
        if p.reason or s.weights != "real":
            continue
        name, ct2, hf = source_dirs(Path(s.path))
        ct2 = Path(overrides_ct2[name]) if name in overrides_ct2 else ct2
        hf = Path(overrides_hf[name]) if name in overrides_hf else hf
        fws = [replace(s, system="faster-whisper", path=str(ct2 or ""), mode=mode) for mode in config.anchor_modes]
        tf = replace(s, system="transformers", path=str(hf or ""), quantization="fp32", threads=1, mode=PLAIN)
        candidates = [(fw, statuses["faster-whisper"], ct2) for fw in fws] + [(tf, statuses["transformers"], hf)]
        for spec, status, folder in candidates:
            # An anchor that is not requested or not installed is reported once, in the anchors section.
            if status["status"] != "ok" or spec.id in seen or (spec.system == "transformers" and s.quantization != "fp32"):
                continue
            seen.add(spec.id)
            reason = None
            if folder is None:
                reason = (f"no {'CTranslate2 folder' if spec.system == 'faster-whisper' else 'transformers checkpoint'} "
                          f"for {name} (pass --{'ct2' if spec.system == 'faster-whisper' else 'hf'} {name}=DIR)")
            if reason is None and spec.system == "faster-whisper":
                if s.quantization not in ("int8", "fp32", "fp16"):
                    reason = f"faster-whisper has no {s.quantization} compute type"
                elif s.provider not in ("cpu", "cuda"):
                    reason = f"faster-whisper runs on cpu or cuda, not {s.provider}"
                else:
                    try:
                        spec = replace(spec, path=str(faster_whisper_folder(folder, ct2_root)))
                    except (OSError, ValueError) as e:
                        reason = f"cannot assemble a faster-whisper folder from {folder}: {e}"
            if reason is None and spec.system == "transformers" and s.provider != "cpu":
                reason = "the transformers anchor runs on CPU only in this bench"
            planned.append(Planned(spec, reason))
    if statuses["transformers"]["status"] == "ok" and not any(p.spec.system == "transformers" for p in planned):
        statuses["transformers"]["note"] = ("no transformers configuration: it runs fp32 only and is paired with "
                                            "edge-asr fp32, which this run does not include (add --quant fp32)")
    return planned, statuses


def pairs(results: list[dict]) -> list[tuple[RunSpec, RunSpec]]:
    """(edge, anchor) pairs timed in alternation: same model, provider and decoding; faster-whisper at
    the same precision and threads, transformers (fp32, 1 thread) against plain edge-asr fp32.

    Modes: every edge-asr mode is paired with sequential faster-whisper (the configuration a user would
    otherwise run); an edge-asr batchN mode also with faster-whisper's batched pipeline at the same N."""
    ok = [RunSpec.from_dict(r["spec"]) for r in results if r.get("status") == "ok"]
    edge = [s for s in ok if s.system == "edge-asr" and s.weights == "real"]
    anchors = [s for s in ok if s.system != "edge-asr"]
    out = []
    for e in edge:
        for a in anchors:
            same = (a.model, a.provider, a.decoding) == (e.model, e.provider, e.decoding)
            if a.system == "faster-whisper" and same and (a.quantization, a.threads) == (e.quantization, e.threads) \
                    and (a.mode == PLAIN or a.batch_size == e.batch_size):
                out.append((e, a))
            elif a.system == "transformers" and same and e.quantization == "fp32" and e.mode == PLAIN:
                out.append((e, a))
    return out
