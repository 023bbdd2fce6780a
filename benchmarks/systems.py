"""One interface over the three systems: load a model, transcribe 16 kHz samples to text.

All three are asked the same thing: the same samples (already decoded, so file decoding is outside
every timing), the language given (no detection), temperature fallback on, timestamps on, no VAD.
Greedy is beam_size 1 / num_beams 1 everywhere (faster-whisper's default is beam 5: it is passed
explicitly). transformers runs fp32 with torch pinned to one thread: on a shared 2-core machine more
threads make it slower and noisier (see ../shared/notes), and the bench reports that setting.

Modes (RunSpec.mode, spec.parse_mode): edge-asr passes the mode's keywords to ``transcribe``
(``encoder_tail_s=2.0``, ``batch_size=8``: batched mode runs VAD by construction). faster-whisper's
``batchN`` runs ``BatchedInferencePipeline(model).transcribe(audio, language=..., batch_size=N,
beam_size=...)`` with that pipeline's own defaults otherwise (VAD on, without timestamps).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .spec import RunSpec

SR = 16000


class Runner(Protocol):
    def transcribe(self, audio: np.ndarray, language: str) -> str: ...


class EdgeRunner:
    def __init__(self, spec: RunSpec):
        import edge_asr

        self.spec = spec
        device, providers = provider_args(spec.provider)
        self.model = edge_asr.load_model(spec.path, device=device, providers=providers, threads=spec.threads)
        self.options = spec.mode_options  # {} (plain), encoder_tail_s and/or batch_size

    def transcribe(self, audio: np.ndarray, language: str) -> str:
        return self.model.transcribe(audio, language=language, beam_size=self.spec.beam_size, **self.options).text


def provider_args(provider: str) -> tuple[str, list[str] | None]:
    """("cpu"|"cuda", None) for the two device names, else an explicit onnxruntime provider list."""
    if provider in ("cpu", "cuda"):
        return provider, None
    return "cpu", [provider, "CPUExecutionProvider"]


COMPUTE_TYPES = {"int8": "int8", "fp32": "float32", "fp16": "float16"}


class FasterWhisperRunner:
    def __init__(self, spec: RunSpec):
        from faster_whisper import WhisperModel

        self.spec = spec
        self.model = WhisperModel(spec.path, device="cuda" if spec.provider == "cuda" else "cpu",
                                  compute_type=COMPUTE_TYPES[spec.quantization], cpu_threads=spec.threads,
                                  num_workers=1)
        self.batched = None
        if spec.batch_size > 1:
            from faster_whisper import BatchedInferencePipeline

            self.batched = BatchedInferencePipeline(self.model)

    def transcribe(self, audio: np.ndarray, language: str) -> str:
        if self.batched is not None:
            segments, _info = self.batched.transcribe(audio, language=language, batch_size=self.spec.batch_size,
                                                      beam_size=self.spec.beam_size or 1)
        else:
            segments, _info = self.model.transcribe(audio, language=language, beam_size=self.spec.beam_size or 1,
                                                    vad_filter=False)
        # transcribe() is lazy: the decoding happens while the generator is consumed.
        return "".join(s.text for s in segments).strip()


class TransformersRunner:
    """transformers PyTorch fp32 generate(): short-form for <= 30 s, long-form (with timestamps, as
    openai's algorithm needs) beyond."""

    def __init__(self, spec: RunSpec):
        import torch
        import transformers
        from transformers import AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration

        transformers.logging.set_verbosity_error()
        torch.set_num_threads(1)
        self.spec = spec
        self.torch = torch
        self.model = WhisperForConditionalGeneration.from_pretrained(spec.path).eval()
        self.tok = AutoTokenizer.from_pretrained(spec.path)
        self.fe = WhisperFeatureExtractor.from_pretrained(spec.path)
        self.multilingual = bool(getattr(self.model.generation_config, "is_multilingual", False))

    def transcribe(self, audio: np.ndarray, language: str) -> str:
        kwargs = {"num_beams": self.spec.beam_size or 1, "do_sample": False}
        if self.multilingual:
            kwargs.update(language=language, task="transcribe")
        with self.torch.no_grad():
            if len(audio) <= 30 * SR:
                feats = self.fe(audio, sampling_rate=SR, return_tensors="pt")
                ids = self.model.generate(feats.input_features, **kwargs)
            else:
                feats = self.fe(audio, sampling_rate=SR, return_tensors="pt", truncation=False, padding="longest",
                                return_attention_mask=True)
                ids = self.model.generate(feats.input_features, attention_mask=feats.attention_mask,
                                          return_timestamps=True, condition_on_prev_tokens=True,
                                          temperature=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
                                          compression_ratio_threshold=2.4, logprob_threshold=-1.0,
                                          no_speech_threshold=0.6, **kwargs)
        return self.tok.decode(ids[0], skip_special_tokens=True).strip()


RUNNERS = {"edge-asr": EdgeRunner, "faster-whisper": FasterWhisperRunner, "transformers": TransformersRunner}


def load_runner(spec: RunSpec) -> Runner:
    return RUNNERS[spec.system](spec)
