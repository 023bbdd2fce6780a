"""Whisper's fixed audio and time constants: the one place they are defined (the rest import them).

Every Whisper size shares them: 16 kHz audio, 10 ms mel hop, 30 s windows, an encoder that halves the
frame rate (one output frame, and one timestamp step, per 20 ms).
"""

from __future__ import annotations

SAMPLE_RATE = 16000  # Hz: every input is resampled to this
N_FFT = 400  # 25 ms STFT window
HOP_LENGTH = 160  # 10 ms between mel frames
CHUNK_LENGTH = 30  # seconds in one encoder window
N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE  # 480000 samples in a 30 s window
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 mel frames in a 30 s window
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100 mel frames per second
INPUT_STRIDE = 2  # mel frames per encoder output frame (the encoder's stride-2 convolution)
TIME_PRECISION = INPUT_STRIDE * HOP_LENGTH / SAMPLE_RATE  # 0.02 s: one timestamp token step, one encoder frame
ENCODER_FRAMES_PER_SECOND = FRAMES_PER_SECOND // INPUT_STRIDE  # 50: word timing's cross-attention frames
