"""Domain terms end to end: term list -> synthesized speech -> fine-tune -> edge-asr export -> before/after.

    python -m examples.domain_terms --terms terms.txt --model tiny.en --out work/

Steps (each also runnable alone: ``python -m examples.domain_terms.synth|train``, ``edge-asr export``):
  1. synth: espeak-ng speech for the terms (several voices, rates, noise) + ordinary sentences
     (+ your own recordings of ordinary speech, ``--recordings``);
  2. train: Seq2SeqTrainer on the stock transformers checkpoint (encoder frozen; ``--lora`` for a PEFT
     adapter), checkpoint-N folders under OUT/train/;
  2b. blend (``--blend``, off by default): ship ``alpha * fine-tune + (1 - alpha) * stock`` (``blend.py``,
     WiSE-FT); ``auto``: alpha the smallest that keeps the fine-tune's term recall on a validation set;
  3. export: ``edge_asr_export.export_model`` to int8 (validated on the held-out term sentences with the
     term list: PyTorch / fp32 / int8 side by side, drift-gated) and fp32;
  4. evaluate: stock vs fine-tuned, PyTorch and edge-asr, term recall and WER on the term sentences and on
     ordinary English (``--english``, else ../shared/audio when present). Table printed,
     OUT/results.{json,md} written.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from edge_asr.quantization import kernel_class

from . import blend, evaluate, synth
from .train import TrainOptions, train

INT8_SCHEMES = ("int8-w7", "int8-u8u8")


def _lscpu_flags() -> list[str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return next((line.split(":", 1)[1].split() for line in out.splitlines() if line.startswith("Flags:")), [])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _blend_arg(value: str) -> str:
    """--blend: "auto" or a share between 0 and 1."""
    try:
        if value == "auto" or 0.0 <= float(value) <= 1.0:
            return value
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected auto or a number between 0 and 1, not {value!r}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--terms", required=True, help="term list, one term per line")
    p.add_argument("--sentences", default=None, help="optional carrier sentences holding the terms, one per line")
    p.add_argument("--model", default="tiny.en", choices=["tiny.en", "base"], help="stock model to fine-tune")
    p.add_argument("--out", required=True, help="work folder (data, checkpoints, model folders, results)")
    p.add_argument("--steps", type=int, default=TrainOptions.max_steps, help="training steps (default 75)")
    p.add_argument("--batch-size", type=int, default=TrainOptions.batch_size)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 5e-5, LoRA 1e-3)")
    p.add_argument("--per-term", type=int, default=10, help="training sentences per term (default 10)")
    p.add_argument("--ordinary", type=int, default=24,
                   help="ordinary sentences (no terms) mixed into training (default 24): keeps plain speech")
    p.add_argument("--recordings", default=None,
                   help="your own recordings of ordinary speech to train on beside the synthesized sentences: a "
                        "JSONL of {\"audio\": path (relative to the file), \"text\": transcript}, each <= 30 s")
    p.add_argument("--english", default=None,
                   help="ordinary speech to measure the fine-tune's general cost on (same JSONL format; default: "
                        "the English clips <= 30 s of ../shared/audio). Keep it apart from --recordings")
    p.add_argument("--lora", action="store_true", help="train a LoRA adapter (merged at export)")
    p.add_argument("--train-encoder", action="store_true", help="train the encoder too (default: frozen)")
    p.add_argument("--distill", type=float, default=TrainOptions.distill,
                   help="weight of a KL term holding every non-term token near the stock model's prediction "
                        "(default %(default)s; 0: off)")
    p.add_argument("--mel-padding", default=TrainOptions.mel_padding, choices=["log-mel", "audio"],
                   help="how clips shorter than 30 s are padded in training, recorded for the export (default "
                        "log-mel, as the runtime pads stock models; audio = as transformers' feature extractor)")
    p.add_argument("--blend", default="1", type=_blend_arg,
                   help="share of the fine-tune in the shipped weights, the rest the stock model's (WiSE-FT): "
                        "1 (default: the fine-tune as trained), a number, or auto (the smallest of 0.5-0.9 keeping "
                        "95 %% of the fine-tune's term recall, or all but one occurrence, on the validation clips)")
    p.add_argument("--accept-drift", "--force", dest="accept_drift", action="store_true",
                   help="keep the int8 export even if it drifts beyond the bounds (as edge-asr export --accept-drift)")
    p.add_argument("--no-bias", action="store_true",
                   help="skip the hotwords and boost rows (stock and fine-tuned int8 with the term list)")
    p.add_argument("--reuse", action="store_true", help="reuse OUT's synthesized data and trained model if present")
    p.add_argument("--results", default=None, help="also write the results as RESULTS.json and RESULTS.md")
    a = p.parse_args(argv)

    from edge_asr_export.drift import ExportDriftError
    from edge_asr_export.exporter import export_model
    from edge_asr_export.reference import bundled_clips
    from edge_asr_export.sources import pull, stock_checkpoint
    from edge_asr_export.terms import load_terms
    from edge_asr_export.validate import Clip, side_by_side_table

    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    terms = load_terms(a.terms)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    timings = {}
    t_all = time.time()

    t0 = time.time()
    sentences = Path(a.sentences).read_text(encoding="utf-8").splitlines() if a.sentences else None
    train_jsonl, test_jsonl = out / "data" / "train.jsonl", out / "data" / "test.jsonl"
    if not (a.reuse and train_jsonl.is_file() and test_jsonl.is_file()):
        train_jsonl, test_jsonl = synth.build(terms, out / "data", per_term_train=a.per_term,
                                             ordinary_train=a.ordinary, sentences=sentences)
    if a.recordings:
        train_jsonl = synth.with_recordings(train_jsonl, Path(a.recordings), out / "data" / "train+recordings.jsonl")
    timings["synth"] = round(time.time() - t0, 1)
    log(f"[1/4] synthesized {sum(1 for _ in open(train_jsonl))} training and {sum(1 for _ in open(test_jsonl))} "
        f"test clips in {timings['synth']} s")

    base = stock_checkpoint(a.model, log=log)
    stock_int8 = pull(a.model, "int8", log=log)
    t0 = time.time()
    opts = TrainOptions(max_steps=a.steps, batch_size=a.batch_size, learning_rate=a.lr, lora=a.lora,
                        freeze_encoder=not a.train_encoder, save_steps=max(1, a.steps // 3),
                        mel_padding=a.mel_padding, distill=a.distill)
    saved = out / "train_result.json"
    if a.reuse and saved.is_file():
        trained = json.loads(saved.read_text())
    else:
        trained = train(base, train_jsonl, out, opts, log=log, terms=terms)
        saved.write_text(json.dumps(trained, indent=2))
    timings["train"] = round(time.time() - t0, 1)
    log(f"[2/4] fine-tuned in {timings['train']} s: {trained['model']} (checkpoints {trained['checkpoints']})")

    tuned = trained["model"]
    if a.lora:  # PyTorch scoring and the blend read a plain checkpoint: the adapter merged (as the export does)
        from transformers import AutoTokenizer, WhisperFeatureExtractor

        from edge_asr_export.lora import load_merged

        merged, _ = load_merged(trained["model"])
        merged.save_pretrained(out / "merged")
        # save_pretrained writes weights and configs only: the processor too, which evaluate loads from it.
        AutoTokenizer.from_pretrained(trained["model"]).save_pretrained(out / "merged")
        WhisperFeatureExtractor.from_pretrained(trained["model"]).save_pretrained(out / "merged")
        tuned = str(out / "merged")
    t0 = time.time()
    val_jsonl = out / "data" / "val.jsonl"
    blended = {"alpha": 1.0, "folder": tuned}
    if a.blend == "auto" and not val_jsonl.is_file():  # a --reuse of data made before the validation set
        synth.build_val(terms, out / "data")
    if a.blend == "auto":
        blended = blend.choose(base, tuned, evaluate.load_set(val_jsonl), terms, out / "blend", log=log)
    elif float(a.blend) != 1.0:
        blended = {"alpha": float(a.blend), "folder": str(blend.blend(base, tuned, float(a.blend), out / "blend"))}
    ship = blended["folder"]
    timings["blend"] = round(time.time() - t0, 1)
    log(f"blend: alpha {blended['alpha']} ({ship}) in {timings['blend']} s")

    t0 = time.time()
    test = evaluate.load_set(test_jsonl)
    clips = bundled_clips() + [Clip(c["id"], c["audio"], c["text"]) for c in test]
    # int8 schemes in order of speed: the default 7-bit weights, then u8 activations x u8 weights (slower on
    # CPUs without VNNI, sometimes closer to fp32); the first the drift gate accepts is kept.
    for scheme in INT8_SCHEMES:
        try:
            _, report = export_model(ship, out / "int8", "int8", clips=clips, terms=terms, force=True,
                                     int8_scheme=scheme, accept_drift=a.accept_drift, log=log)
            int8_folder = out / "int8"
            export_status = f"{scheme}: within drift bounds"
            if report.get("drift", {}).get("accepted"):
                export_status = (f"{scheme}: beyond drift bounds, kept (--accept-drift): "
                                 + "; ".join(report["drift"]["violations"]))
            break
        except ExportDriftError as e:
            log(f"int8 export ({scheme}) refused: {e}")
            report = json.loads((out / "int8.failed" / "validation.json").read_text())
            export_status = f"refused ({', '.join(INT8_SCHEMES)}): " + "; ".join(report["drift"]["violations"])
            # The refused folder is what is scored (labelled refused); out/int8 may be an earlier run's export.
            int8_folder = out / "int8.failed"
    export_model(ship, out / "fp32", "fp32", force=True, log=log)
    timings["export"] = round(time.time() - t0, 1)
    log(f"[3/4] exported in {timings['export']} s; int8 {export_status}")
    log("export validation (greedy, first 30 s, PyTorch vs fp32 vs int8 on the term sentences):\n"
        + side_by_side_table(report))

    t0 = time.time()
    english = evaluate.load_set(Path(a.english)) if a.english else evaluate.english_set()
    if not english:
        log("../shared/audio is absent and no --english set was given: ordinary-English WER is not measured")
    name = "fine-tuned" if blended["alpha"] == 1.0 else f"fine-tuned, blended (alpha {blended['alpha']})"
    systems = {
        f"stock {a.model} PyTorch": ("pytorch", str(base)),
        f"stock {a.model} edge-asr int8": ("edge", str(stock_int8)),
        "fine-tuned PyTorch": ("pytorch", tuned),
        **({f"{name} PyTorch": ("pytorch", ship)} if blended["alpha"] != 1.0 else {}),
        f"{name} edge-asr fp32": ("edge", str(out / "fp32")),
        f"{name} edge-asr int8": ("edge", str(int8_folder)),
    }
    if not a.no_bias:
        # The no-training options on the same test set, and boosting on top of the fine-tune: the prompt
        # (hotwords, as faster-whisper) and the logit boost (term_boost), both given the term list as is.
        systems = {**dict(list(systems.items())[:2]),
                   f"stock {a.model} edge-asr int8 + hotwords": ("edge", str(stock_int8), {"hotwords": ", ".join(terms)}),
                   f"stock {a.model} edge-asr int8 + boost": ("edge", str(stock_int8), {"boost_terms": tuple(terms)}),
                   **dict(list(systems.items())[2:]),
                   f"{name} edge-asr int8 + boost": ("edge", str(int8_folder), {"boost_terms": tuple(terms)})}
    results = evaluate.evaluate(systems, test, english, terms, log=log)
    timings["evaluate"] = round(time.time() - t0, 1)
    timings["total"] = round(time.time() - t_all, 1)
    flags = _lscpu_flags()
    doc = {
        "model": a.model, "terms": terms, "train": {k: v for k, v in trained.items()},
        "options": vars(a), "blend": blended, "export": {"status": export_status, "validation": {
            k: report.get(k) for k in ("side_by_side", "mean_kl", "top1_agreement", "wer_onnx_vs_pytorch", "drift")}},
        "results": results, "timings_s": timings,
        "machine": {"cpu": _cpu_model(), "cpu_class": kernel_class(flags), "cores": __import__("os").cpu_count(),
                    "lscpu_flags": flags},
    }
    md = (f"# Domain terms: {a.model}, {len(terms)} terms\n\n" + evaluate.table(results)
          + f"\n\nint8 export: {export_status}.\n\nTimings (s): {timings}. CPU: {doc['machine']['cpu']} "
          f"({doc['machine']['cpu_class']}, {doc['machine']['cores']} cores).\n")
    for target in [out / "results"] + ([Path(a.results)] if a.results else []):
        Path(f"{target}.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
        Path(f"{target}.md").write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
