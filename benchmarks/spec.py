"""What one measurement is: a configuration (:class:`RunSpec`), how hard to measure it (:class:`Settings`)
and the audio it runs on (:class:`Workload`). All frozen and JSON round-trippable, because the parent
process hands them to a fresh worker process per configuration (so peak RSS is per configuration).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .errors import BenchConfigError

SYSTEMS = ("edge-asr", "faster-whisper", "transformers")
DECODINGS = ("greedy", "beam5")
RANDOM_LABEL = "random weights, latency only"
PLAIN = "plain"
MODES_HELP = ("plain (sequential, 30 s encoder window); tailX: encoder_tail_s=X (encode the audio plus X s of "
              "silence instead of a 30 s window, on audio under 30 s); batchN: batch_size=N (VAD speech chunks "
              "of up to 30 s, N encoded and decoded together); combined with '+', e.g. batch8+tail2")


def parse_mode(mode: str, system: str = "edge-asr") -> dict:
    """The transcribe keywords a mode name stands for: ``plain`` -> {}, ``tail2`` -> {"encoder_tail_s": 2.0},
    ``batch8`` -> {"batch_size": 8}, ``batch8+tail2`` -> both. faster-whisper knows ``plain`` and ``batchN``
    (its BatchedInferencePipeline); transformers only ``plain``. ValueError for anything else."""
    out: dict = {}
    if mode == PLAIN:
        return out
    for part in mode.split("+"):
        try:
            if part.startswith("tail") and system == "edge-asr" and "encoder_tail_s" not in out:
                value = float(part[4:])
                if not 0 <= value <= 30:
                    raise ValueError
                out["encoder_tail_s"] = value
            elif part.startswith("batch") and system != "transformers" and "batch_size" not in out:
                value = int(part[5:])
                if value < 2:
                    raise ValueError
                out["batch_size"] = value
            else:
                raise ValueError
        except ValueError:
            known = "plain, tailX, batchN or batchN+tailX" if system == "edge-asr" else \
                ("plain or batchN" if system == "faster-whisper" else "plain")
            raise BenchConfigError(f"unknown {system} mode {mode!r} (known: {known}; N >= 2, 0 <= X <= 30)") from None
    return out


def mode_name(options: dict) -> str:
    """The canonical name of a mode's keywords (``tail2.0`` and ``tail2`` are one mode)."""
    parts = []
    if "batch_size" in options:
        parts.append(f"batch{options['batch_size']}")
    if "encoder_tail_s" in options:
        parts.append(f"tail{options['encoder_tail_s']:g}")
    return "+".join(parts) or PLAIN


@dataclass(frozen=True)
class RunSpec:
    """One configuration: a system running one model at one precision, provider, thread count and decoding."""

    system: str  # one of SYSTEMS
    model: str  # display name: "tiny.en", "base", "random-small", or a folder's manifest name
    weights: str  # "real", or "random" (latency only, forced decode length, no accuracy)
    path: str  # edge-asr model folder, CTranslate2 folder or transformers checkpoint
    quantization: str  # "int8" | "fp32" | "fp16"
    provider: str  # "cpu", "cuda" or an onnxruntime provider name
    threads: int  # onnxruntime intra-op / CTranslate2 threads (transformers is pinned to 1)
    decoding: str  # one of DECODINGS
    multilingual: bool = False
    accuracy: bool = False  # transcribe the accuracy clips too (once per model/precision/decoding/provider)
    params_m: float | None = None  # approximate parameter count in millions (plot x axis)
    mode: str = PLAIN  # parse_mode: edge-asr transcribe variant (tailX, batchN); faster-whisper batchN

    @property
    def id(self) -> str:
        # Random weights are marked in the id too: the same folder can be timed both ways. The mode is
        # appended only when it is not plain, so plain ids are those of earlier reports.
        model = self.model if self.weights == "real" or self.model.startswith("random") else f"{self.model}[random]"
        base = f"{self.system}/{model}/{self.quantization}/{self.provider}/t{self.threads}/{self.decoding}"
        return base if self.mode == PLAIN else f"{base}/{self.mode}"

    @property
    def mode_options(self) -> dict:
        """Keywords the mode adds to transcribe (edge-asr) or selects (faster-whisper batch_size)."""
        return parse_mode(self.mode, self.system)

    @property
    def batch_size(self) -> int:
        return self.mode_options.get("batch_size", 1)

    @property
    def beam_size(self) -> int | None:
        return 5 if self.decoding == "beam5" else None

    @property
    def n_group(self) -> int:
        """Decoder rows per audio: 5 beams or 1 greedy sequence."""
        return self.beam_size or 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Settings:
    warmup: int = 1
    repeats: int = 5  # load, log-mel, encoder, decoder, first token, short clip
    long_repeats: int = 3  # the long file (tens of seconds per run for larger models)
    forced_tokens: int = 100  # decoder steps timed per window (~ a 30 s window of speech)
    ratio_rounds: int = 3  # alternating edge/anchor rounds per pair
    accuracy: bool = True  # False: --no-accuracy (reported as the reason)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Settings":
        return cls(**d)


@dataclass(frozen=True)
class ClipInfo:
    id: str
    path: str  # audio file (or .npy of 16 kHz float32 samples)
    text: str
    language: str
    duration_s: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Workload:
    """The audio every configuration runs on, prepared once by the parent (see corpus.prepare_workload)."""

    source: str  # where the clips come from (a manifest path, or the bundled sample)
    short: ClipInfo  # one clip under 30 s: end-to-end latency
    long: ClipInfo  # the concatenated long file: real-time factor
    long_parts: tuple[str, ...]  # clip ids the long file is made of
    accuracy: tuple[ClipInfo, ...]  # clips scored for WER/CER

    def to_dict(self) -> dict:
        d = asdict(self)
        d["long_parts"] = list(self.long_parts)
        d["accuracy"] = [c.to_dict() for c in self.accuracy]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Workload":
        return cls(d["source"], ClipInfo(**d["short"]), ClipInfo(**d["long"]), tuple(d["long_parts"]),
                   tuple(ClipInfo(**c) for c in d["accuracy"]))


def approx_params_m(d_model: int, enc_layers: int, dec_layers: int, ffn: int, n_mels: int, vocab: int,
                    n_audio_ctx: int = 1500, n_text_ctx: int = 448) -> float:
    """Parameters in millions from the dimensions (weights only; biases and norms are < 1 %)."""
    conv = n_mels * d_model * 3 + d_model * d_model * 3
    enc = enc_layers * (4 * d_model * d_model + 2 * d_model * ffn) + n_audio_ctx * d_model
    dec = dec_layers * (8 * d_model * d_model + 2 * d_model * ffn) + (vocab + n_text_ctx) * d_model
    return round((conv + enc + dec) / 1e6, 1)
