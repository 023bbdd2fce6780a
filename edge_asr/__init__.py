"""edge-asr: offline Whisper speech recognition on onnxruntime, without PyTorch.

    import edge_asr
    model = edge_asr.load_model("base", device="auto")
    result = model.transcribe("speech.flac")
    print(result.language, result.text)
    for s in result.segments:
        print(f"[{s.start:.2f} -> {s.end:.2f}] {s.text}")
"""

from .errors import AudioError, DecodingError, EdgeASRError, ModelError, ModelNotFoundError, StreamError
from .errors import AudioLimitError, AudioWarning, ProviderError
from .fidelity import FidelityError, FidelityReport, FidelityWarning
from .model import WhisperModel, load_model
from .providers import ProviderFallbackWarning
from .quantization import SaturationRiskWarning
from .results import Segment, TranscriptionInfo, TranscriptionResult, Word
from .options import TranscribeOptions
from .streaming import StreamEvent, StreamingOptions, StreamingTranscriber
from .vad import VadOptions

__version__ = "0.1.0"

__all__ = [
    "load_model", "WhisperModel", "TranscribeOptions", "VadOptions", "TranscriptionResult", "Segment", "Word", "EdgeASRError", "AudioError",
    "ModelError", "ModelNotFoundError", "DecodingError", "ProviderFallbackWarning", "SaturationRiskWarning", "FidelityError", "FidelityWarning",
    "FidelityReport", "StreamingTranscriber", "StreamingOptions", "StreamEvent", "StreamError", "__version__",
    "AudioLimitError", "AudioWarning", "ProviderError", "TranscriptionInfo",
]
