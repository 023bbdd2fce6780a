#!/usr/bin/env bash
# The live-streaming anchors (WhisperLiveKit, whisper-live) for benchmarks/streaming_anchors.py, in their own
# venv (default .venv-anchors, gitignored): their requirements (torchaudio, librosa, fastapi, whisper-live's
# pins) must not change edge-asr's. Every version comes from benchmarks/streaming-anchors-constraints.txt.
#
#   bash scripts/setup_streaming_anchors.sh            # VENV=path PYTHON=python3.11 to change either
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-anchors}
C=benchmarks/streaming-anchors-constraints.txt
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
PIP=("$VENV/bin/pip" install --disable-pip-version-check -c "$C")
# torch first and alone: the pin picks the CPU wheel; left to whisperlivekit's "torch>=2.0" pip may take a
# CUDA build and gigabytes of nvidia packages.
"${PIP[@]}" torch
# safetensors: WhisperLiveKit's loader reads our transformers checkpoint (model.safetensors) for SimulStreaming.
"${PIP[@]}" whisperlivekit faster-whisper ctranslate2 onnxruntime safetensors soundfile numpy
# whisper-live without its requirements: they pin faster-whisper==1.2.0 and tokenizers==0.20.3 (which needs
# huggingface-hub<1.0, against WhisperLiveKit's), and pull PyAudio (a build that needs portaudio headers),
# CUDA libraries, OpenVINO, optimum-intel, openai-whisper and triton. Its faster-whisper backend, the one
# the bench drives, imports only what is installed above.
"${PIP[@]}" --no-deps whisper-live
"$VENV/bin/python" -c "import whisperlivekit.core, whisper_live.backend.faster_whisper_backend"
echo "anchors ready: $VENV/bin/python benchmarks/streaming_anchors.py --help"
