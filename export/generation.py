"""What a fine-tune decided in its generation_config, carried into the model folder's manifest.

transformers' generate() reads the language and task a fine-tune was trained for from
generation_config (``language``/``task``, or the older ``forced_decoder_ids``); without them in the
manifest a German or Japanese fine-tune would have its language auto-detected at run time (and a
fine-tune trained on one language is often mis-detected as another). Suppress lists and alignment heads
are carried by the exporter itself.

Also what its feature extractor decided: how a short window was padded in training
(:func:`recorded_mel_padding`), which the runtime must repeat (manifest ``mel_padding``).
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_asr.errors import EdgeASRError
from edge_asr.features import MEL_PADDINGS

# Key in a fine-tune's preprocessor_config.json naming the short-window padding it was trained with
# (edge_asr.features.MEL_PADDINGS). transformers keeps unknown feature-extractor attributes when it
# loads and saves the processor, so the record travels with it. Written by the domain-terms recipe;
# absent: transformers' feature extractor padded the audio ("audio").
MEL_PADDING_KEY = "edge_asr_mel_padding"


class GenerationConfigError(EdgeASRError, ValueError):
    """generation_config names a language or task this model's tokenizer does not have."""


def _language_code(value, languages: dict[str, int]) -> str | None:
    """"de", "german", "German", "<|de|>" -> "de" (transformers accepts all of them)."""
    if value is None:
        return None
    # Lower-cased first: transformers accepts "DE" or "<|DE|>" too, so a fine-tune it decodes must export.
    text = str(value).strip().lower()
    if text.startswith("<|") and text.endswith("|>"):
        text = text[2:-2]
    if text in languages:
        return text
    try:
        from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE
    except ImportError:  # pragma: no cover - the export extra ships transformers
        TO_LANGUAGE_CODE = {}
    code = TO_LANGUAGE_CODE.get(text)
    if code in languages:
        return code
    raise GenerationConfigError(
        f"generation_config.language is {value!r}, which is not one of this model's languages "
        f"({', '.join(sorted(languages)) or 'English-only'}); fix generation_config.json or re-save the fine-tune")


def carried_generation(gen, specials: dict) -> dict:
    """{"language": code or None, "task": "transcribe"/"translate"/None, "source": where they came from}.
    English-only models carry no language (the runtime always decodes them as English)."""
    languages = specials.get("languages") or {}
    language = task = None
    source = []
    forced = getattr(gen, "forced_decoder_ids", None) or []
    by_id = {v: k for k, v in languages.items()}
    tasks = {specials.get("transcribe"): "transcribe", specials.get("translate"): "translate"}
    for pos_id in forced:
        if isinstance(pos_id, (list, tuple)) and len(pos_id) == 2:
            token = pos_id[1]
            if token in by_id:
                language = by_id[token]
                source.append("forced_decoder_ids")
            elif token in tasks and tasks[token]:
                task = tasks[token]
    if getattr(gen, "language", None) is not None:
        if languages:
            language = _language_code(gen.language, languages)
            source.append("language")
    if getattr(gen, "task", None) is not None:
        if gen.task not in ("transcribe", "translate"):
            raise GenerationConfigError(f"generation_config.task is {gen.task!r}; it must be transcribe or translate")
        task = gen.task
    if not languages:
        language = None
        if task == "translate":
            task = None  # English-only models only transcribe
    return {"language": language, "task": task, "source": sorted(set(source))}


def recorded_mel_padding(folders) -> str | None:
    """The padding the first of ``folders`` (local folders; None and hub ids are skipped) that records one
    in its preprocessor_config.json was trained with; None when none does."""
    for folder in folders:
        if folder is None:
            continue
        config = Path(str(folder)) / "preprocessor_config.json"
        try:
            value = json.loads(config.read_text(encoding="utf-8")).get(MEL_PADDING_KEY)
        except (OSError, ValueError, AttributeError):
            continue
        if value is None:
            continue
        if value not in MEL_PADDINGS:
            raise GenerationConfigError(f"{config}: {MEL_PADDING_KEY} must be one of {', '.join(MEL_PADDINGS)}, "
                                        f"not {value!r}")
        return value
    return None
