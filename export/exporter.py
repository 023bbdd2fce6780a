"""`edge-asr export`: transformers Whisper checkpoint -> self-contained, validated edge-asr model folder."""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

from edge_asr.errors import EdgeASRError
from edge_asr.features import MEL_PADDINGS
from edge_asr.manifest import FORMAT_NAME, FORMAT_VERSION, MANIFEST, sha256_file
from edge_asr.quantization import DEFAULT_INT8_SCHEME

from .drift import DriftBounds, ExportDriftError, drift_violations
from .generation import GenerationConfigError, carried_generation, recorded_mel_padding
from .graphs import default_alignment_heads
from .lora import AdapterError, fp32_load_kwargs, is_adapter, load_merged
from .onnx_graphs import OPSET, export_graphs, quantize_graph
from .tokenizer_files import repair_tokenizer_json, special_tokens
from .reference import bundled_clips, write_reference
from .validate import Clip, ExportValidationError, validate_folder


class ExportError(EdgeASRError, RuntimeError):
    """The checkpoint cannot be exported (missing files, not a Whisper model ...)."""


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("edge-asr", "torch", "transformers", "onnx", "onnxruntime", "tokenizers", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _has_tokenizer(folder: Path) -> bool:
    return folder.is_dir() and any((folder / f).is_file() for f in ("tokenizer.json", "vocab.json"))


def _default_processor(src: str, base: str | None) -> str | None:
    """Where the tokenizer comes from when --processor is not given: the folder itself; for a Trainer's
    checkpoint-N without one, its output folder (where the Trainer or the user saved the processor); for
    a LoRA adapter without one, its base model."""
    local = Path(src)
    if not local.is_dir() or _has_tokenizer(local):
        return None
    if local.name.startswith("checkpoint-") and _has_tokenizer(local.parent):
        return str(local.parent)
    return base


def _load_checkpoint(src: str, processor: str | None, base: str | None = None):
    """Model, tokenizer.json dict and generation config from a local folder (checkpoint-N too), a LoRA
    adapter folder (merged into its base model) or a hub id."""
    from transformers import AutoTokenizer, GenerationConfig, WhisperForConditionalGeneration

    if is_adapter(src):
        try:
            model, base = load_merged(src, base)
        except AdapterError as e:
            raise ExportError(str(e)) from None
    else:
        try:
            model = WhisperForConditionalGeneration.from_pretrained(src, **fp32_load_kwargs()).eval()
        except (OSError, ValueError) as e:
            raise ExportError(f"cannot load a transformers Whisper checkpoint from {src!r}: {e}") from None
    processor = processor or _default_processor(src, base)
    proc_src = processor or src
    hint = "" if processor else (" A mid-training checkpoint-N folder has no tokenizer: pass --processor with the "
                                 "folder or hub id of the model you fine-tuned from (e.g. openai/whisper-small).")
    local = Path(proc_src)
    if local.is_dir() and not any((local / f).is_file() for f in ("tokenizer.json", "vocab.json")):
        raise ExportError(f"no tokenizer files (tokenizer.json or vocab.json) in {proc_src}.{hint}")
    try:
        tok = AutoTokenizer.from_pretrained(proc_src)
    except (OSError, ValueError, TypeError) as e:
        raise ExportError(f"no tokenizer found in {proc_src!r} ({type(e).__name__}: {e}).{hint}") from None
    if not hasattr(tok, "backend_tokenizer"):
        raise ExportError(f"{proc_src!r} has only a slow tokenizer; a tokenizer.json (fast tokenizer) is needed")
    data = json.loads(tok.backend_tokenizer.to_str())
    present = {t["content"] for t in data.get("added_tokens", [])}
    missing = {"<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"} - present
    if missing:
        raise ExportError(f"the tokenizer in {proc_src!r} is not a Whisper tokenizer (lacks {sorted(missing)}).{hint}")
    gen = None
    for candidate in (src, processor, base):
        if candidate is None:
            continue
        try:
            gen = GenerationConfig.from_pretrained(candidate)
            break
        except (OSError, ValueError):
            continue
    return model, data, gen or model.generation_config


def _file_table(folder: Path) -> dict[str, dict]:
    return {p.name: {"sha256": sha256_file(p), "size": p.stat().st_size}
            for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")}


def export_model(src: str | Path, out: str | Path, quantize: str = "int8", *, processor: str | None = None,
                 name: str | None = None, clips: list[Clip] | None = None, force: bool = False,
                 word_timestamps: bool = True, int8_scheme: str = DEFAULT_INT8_SCHEME,
                 terms: list[str] | tuple[str, ...] = (), base: str | None = None, mel_padding: str | None = None,
                 accept_drift: bool = False, drift_bounds: DriftBounds = DriftBounds(),
                 log: Callable[[str], None] = print) -> tuple[Path, dict]:
    """Export ``src`` to the model folder ``out``; return (folder, validation report).

    ``src``: a transformers checkpoint folder (a Trainer's checkpoint-N too), a PEFT LoRA adapter folder
    (merged into ``base``, default the base its adapter_config.json names) or a hub id. ``clips`` (with
    reference texts, optionally) validate the folder against PyTorch; ``terms`` adds term recall to that
    report. A quantized export whose validation drifts beyond ``drift_bounds`` fails
    (ExportDriftError, the folder kept as OUT.failed) unless ``accept_drift``; ``force`` only replaces an
    existing ``out`` (replacing a folder is no reason to keep a drifting one).
    ``mel_padding`` (edge_asr.features.MEL_PADDINGS) is how the runtime pads a short last window; None:
    what the fine-tune's processor recorded (``generation.recorded_mel_padding``: the domain-terms recipe
    trains with the runtime's "log-mel"), else "audio", as transformers' feature extractor pads for the
    fine-tunes made with it; ``pull`` passes "log-mel" for OpenAI's stock weights (README "Your own
    vocabulary" has the measurement).

    The folder appears only once complete and validated (it is built beside ``out`` and renamed), so an
    interrupted or failed export never leaves a half-written model where the runtime would load it.
    """
    import torch

    if quantize not in ("int8", "fp32", "fp16"):
        raise ExportError(f"--quantize must be int8, fp32 or fp16, not {quantize!r}")
    if mel_padding is None:
        try:
            recorded = recorded_mel_padding([src, processor or _default_processor(str(src), base)])
        except GenerationConfigError as e:
            raise ExportError(str(e)) from None
        mel_padding = recorded or "audio"
        log(f"short windows padded as {mel_padding!r} "
            + ("(recorded by the fine-tune's processor)" if recorded else "(transformers' feature extractor)"))
    if mel_padding not in MEL_PADDINGS:
        raise ExportError(f"mel_padding must be one of {', '.join(MEL_PADDINGS)}, not {mel_padding!r}")
    out = Path(out).expanduser().resolve()
    if out.exists() and any(out.iterdir()) and not force:
        raise ExportError(f"{out} exists and is not empty; pass --force to replace it")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    log(f"loading checkpoint {src}")
    model, tok_data, gen = _load_checkpoint(str(src), processor, base)
    cfg = model.config
    tok_data, repairs = repair_tokenizer_json(tok_data)
    for r in repairs:
        log(f"tokenizer: {r}")
    specials = special_tokens(tok_data, cfg.vocab_size)
    multilingual = bool(getattr(gen, "is_multilingual", specials["multilingual"]))
    if not multilingual:
        specials["languages"] = {}
    try:
        carried = carried_generation(gen, specials)
    except GenerationConfigError as e:
        raise ExportError(str(e)) from None
    if carried["language"] or carried["task"]:
        log(f"generation_config: language {carried['language'] or 'detected'}, task {carried['task'] or 'transcribe'} "
            "(the runtime's defaults for this model)")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fp32_dir = work / "fp32"
        final = work / "model"
        fp32_dir.mkdir()
        final.mkdir()
        alignment_heads = [[int(a), int(b)] for a, b in (getattr(gen, "alignment_heads", None) or [])]
        heads_source = "generation_config"
        if not alignment_heads:
            log("no alignment heads in the generation config: word timestamps will use every head of the upper "
                "decoder half (less precise than tuned heads)")
            alignment_heads = default_alignment_heads(cfg.decoder_layers, cfg.decoder_attention_heads)
            heads_source = "default: every head of the upper decoder half"
        log("exporting encoder and decoder graphs (fp32)")
        graphs = export_graphs(model, fp32_dir, alignment_heads if word_timestamps else None)
        for g in graphs.values():
            if quantize == "fp32":
                shutil.move(str(fp32_dir / g["file"]), final / g["file"])
            else:
                log(f"quantizing {g['file']} ({quantize}{', ' + int8_scheme if quantize == 'int8' else ''})")
                quantize_graph(fp32_dir / g["file"], final / g["file"], quantize, int8_scheme)
        # A quantized export keeps its fp32 graphs until validated: PyTorch, fp32 and the quantized folder
        # are reported side by side, so a loss shows where it comes from (fine-tune or quantization).
        compare_fp32 = quantize != "fp32" and bool(clips)
        if not compare_fp32:
            shutil.rmtree(fp32_dir)
        (final / "tokenizer.json").write_text(json.dumps(tok_data, ensure_ascii=False), encoding="utf-8")
        suppress = [int(t) for t in (getattr(gen, "suppress_tokens", None) or [])]
        begin_suppress = [int(t) for t in (getattr(gen, "begin_suppress_tokens", None) or [])]
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "name": name or Path(str(src)).name,
            "source": str(src),
            "quantization": quantize,
            **({"quantization_scheme": int8_scheme} if quantize == "int8" else {}),
            "dims": {
                "n_mels": cfg.num_mel_bins, "n_audio_ctx": cfg.max_source_positions,
                "n_text_ctx": cfg.max_target_positions, "d_model": cfg.d_model,
                "encoder_layers": cfg.encoder_layers, "decoder_layers": cfg.decoder_layers,
                "encoder_heads": cfg.encoder_attention_heads, "decoder_heads": cfg.decoder_attention_heads,
                "vocab_size": cfg.vocab_size,
            },
            "multilingual": multilingual,
            "tokens": {k: v for k, v in specials.items() if k != "multilingual"},
            "suppress_tokens": suppress,
            "begin_suppress_tokens": begin_suppress,
            "alignment_heads": alignment_heads,
            "alignment_heads_source": heads_source if word_timestamps else "none: exported without word timing",
            "mel_padding": mel_padding,
            **({"language": carried["language"]} if carried["language"] else {}),
            **({"task": carried["task"]} if carried["task"] else {}),
            "graphs": graphs,
            "opset": OPSET,
            "tokenizer_repairs": repairs,
            "tools": _versions(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

        def write_manifest() -> None:
            manifest["files"] = _file_table(final)
            (final / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")

        write_manifest()
        log("computing the fidelity reference (PyTorch fp32 on the bundled clip)")
        manifest["fidelity"] = write_reference(model, final, bundled_clips()[0])
        write_manifest()
        if clips:
            compare = {}
            if compare_fp32:
                (fp32_dir / "tokenizer.json").write_text(json.dumps(tok_data, ensure_ascii=False), encoding="utf-8")
                fp32_manifest = {k: v for k, v in manifest.items() if k not in ("quantization_scheme", "fidelity")}
                fp32_manifest.update(quantization="fp32", files=_file_table(fp32_dir))
                (fp32_dir / MANIFEST).write_text(json.dumps(fp32_manifest, indent=2), encoding="utf-8")
                compare["fp32"] = fp32_dir
            log(f"validating against PyTorch on {len(clips)} clip(s)"
                + (f", {len(terms)} term(s)" if terms else "") + (" (fp32 beside it)" if compare else ""))
            report = validate_folder(model, final, clips, quantize, terms=terms, compare=compare)
            if compare_fp32:
                # Which temporary graphs validation loaded: `pull` drops only their optimized copies.
                report["compared_graphs"] = {"fp32": {g["file"]: fp32_manifest["files"][g["file"]]["sha256"]
                                                      for g in graphs.values()}}
                shutil.rmtree(fp32_dir)
        else:
            report = {"quantization": quantize, "clips": [], "passed": None, "note": "no validation clips given"}
        violations = []
        if quantize != "fp32" and clips:
            violations = drift_violations(report, drift_bounds)
            report["drift"] = {"bounds": drift_bounds.to_dict(), "violations": violations,
                               "within_bounds": not violations, "accepted": bool(violations and accept_drift)}
            report["passed"] = not violations
            if violations and accept_drift:
                log(f"WARNING: the {quantize} export drifts beyond the bounds ({'; '.join(violations)}); kept "
                    "because drift was accepted (--accept-drift)")
        (final / "validation.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        manifest["validation"] = {k: report.get(k) for k in (
            "passed", "encoder_max_abs_diff", "logits_max_abs_diff", "mean_kl", "top1_agreement", "tokens_identical",
            "wer_onnx_vs_pytorch", "wer_difference", "term_recall_pytorch", "term_recall", "drift") if k in report}
        write_manifest()
        for stale in final.glob(".edge_asr_verified.json"):
            stale.unlink()
        if report.get("passed") is False and not (violations and accept_drift):
            failed = out.with_name(out.name + ".failed")
            shutil.rmtree(failed, ignore_errors=True)
            shutil.move(str(final), failed)
            if violations:
                # Another int8 scheme is only a remedy for an int8 export.
                other_scheme = ", try --int8-scheme int8-u8u8" if quantize == "int8" else ""
                raise ExportDriftError(
                    f"the {quantize} export drifts from the PyTorch model beyond the bounds: {'; '.join(violations)}. "
                    f"Report and files kept in {failed}. Export fp32 (--quantize fp32){other_scheme}, or pass "
                    "--accept-drift to keep this folder anyway")
            raise ExportValidationError(
                f"the fp32 export diverges from PyTorch beyond tolerance (encoder diff "
                f"{report['encoder_max_abs_diff']:.3g}, logits diff {report['logits_max_abs_diff']:.3g}, "
                f"tokens identical: {report['tokens_identical']}); report and files kept in {failed}")
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(final), out)
        return out, report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def requantize_folder(fp32_folder: str | Path, out: str | Path, scheme: str = DEFAULT_INT8_SCHEME, *,
                      force: bool = False) -> Path:
    """An int8 folder of ``scheme`` from an fp32 model folder (no PyTorch needed): the graphs are
    quantized, every other file is copied, the manifest records the scheme. Used to compare schemes on
    the same fp32 graphs; ``validation.json`` stays the fp32 folder's (it says so)."""
    from edge_asr.manifest import read_manifest

    src = read_manifest(Path(fp32_folder))
    if src.quantization != "fp32":
        raise ExportError(f"{fp32_folder} is {src.quantization}; requantizing needs an fp32 folder")
    out = Path(out).expanduser().resolve()
    if out.exists() and not force:
        raise ExportError(f"{out} exists; pass force=True to replace it")
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        graph_files = {g["file"] for g in src.graphs.values()}
        for f in src.folder.iterdir():
            if f.name in graph_files:
                quantize_graph(f, work / f.name, "int8", scheme)
            elif f.is_file() and f.name != MANIFEST and not f.name.startswith("."):
                shutil.copy2(f, work / f.name)
        manifest = dict(src.raw, quantization="int8", quantization_scheme=scheme,
                        source=f"{src.raw.get('source')} (requantized from {src.folder})")
        manifest["files"] = _file_table(work)
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(work), out)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)
