"""LoRA adapters (PEFT) at export: the adapter is merged into its base model's weights, so the folder
holds plain Whisper graphs and the runtime needs nothing new (no PEFT, no extra MatMuls per layer)."""

from __future__ import annotations

import json
from pathlib import Path

from edge_asr.errors import EdgeASRError

ADAPTER_CONFIG = "adapter_config.json"
FINETUNE_HINT = "pip install 'edge-asr[finetune]' (adds peft and accelerate)"


class AdapterError(EdgeASRError, ValueError):
    """A LoRA adapter folder that cannot be merged (PEFT missing, base model not found, not Whisper)."""


def is_adapter(src: str | Path) -> bool:
    return (Path(src) / ADAPTER_CONFIG).is_file()


def adapter_base(src: str | Path) -> str | None:
    """The base model the adapter was trained on, as recorded in adapter_config.json."""
    try:
        return json.loads((Path(src) / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError):
        return None


def fp32_load_kwargs() -> dict:
    """from_pretrained() arguments that load the weights as float32 whatever dtype they were saved in:
    transformers 5 loads a checkpoint in its saved dtype (an fp16 fine-tune stays fp16, and the graphs,
    quantization and the PyTorch reference would be fp16), 4.x always loaded float32. The argument is
    ``dtype`` since transformers 4.56, ``torch_dtype`` before."""
    import torch
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": torch.float32}


def load_merged(src: str | Path, base: str | None = None):
    """The base Whisper model with the adapter in ``src`` merged in (eval mode); ``base`` overrides the
    base recorded in adapter_config.json (e.g. when it was a path on the training machine)."""
    try:
        from peft import PeftModel
    except ImportError:
        raise AdapterError(f"{src} is a LoRA adapter; merging it needs PEFT: {FINETUNE_HINT}") from None
    from transformers import WhisperForConditionalGeneration

    base = base or adapter_base(src)
    if not base:
        raise AdapterError(f"{src}/{ADAPTER_CONFIG} names no base model; pass --base-model with the checkpoint "
                           "the adapter was trained on")
    try:
        model = WhisperForConditionalGeneration.from_pretrained(base, **fp32_load_kwargs())
    except (OSError, ValueError) as e:
        raise AdapterError(f"cannot load the adapter's base model {base!r} ({e}); pass --base-model with the "
                           "folder or hub id of the checkpoint the adapter was trained on") from None
    try:
        merged = PeftModel.from_pretrained(model, str(src)).merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise AdapterError(f"cannot apply the adapter {src} to {base!r} ({type(e).__name__}: {e}); was it "
                           "trained on another base model? pass --base-model") from None
    return merged.eval(), base
