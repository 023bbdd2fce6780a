"""edge-asr's stage latencies, measured through the runtime's own pieces.

- log-mel of 30 s of audio (``edge_asr.features``), encoder per 30 s window (``backend.encode``),
- decoder: the first call (the start-of-transcript prefix on an empty cache) and the per-token step,
  over a fixed number of forced steps, each fed the argmax of the previous one without stopping at
  <|endoftext|>, so every model and precision is timed over the same decode length (random-weight
  models would otherwise stop at arbitrary points). Beam search runs 5 rows per step plus the cache
  reorder it does every step.
- first-token latency: 30 s of samples -> log-mel -> encoder -> first decoder call -> first token.
- for random-weight models, the short clip and long file are timed as "forced" transcription: per
  30 s window encoder + the fixed number of decoder steps (no text, so no fallback either).
"""

from __future__ import annotations

import numpy as np

from .stats import Stats, repeat, rnd, timed

SR = 16000
N_SAMPLES = 30 * SR


class EdgeProbe:
    def __init__(self, model, decoding_rows: int, language: str, forced_tokens: int):
        from edge_asr.features import log_mel_spectrogram, pad_or_trim

        self.model = model
        self.backend = model.backend
        self.rows = decoding_rows
        self.n_mels = model.manifest.dims.n_mels
        self._mel = log_mel_spectrogram
        self._pad = pad_or_trim
        lang = language if model.tokenizer.multilingual else None
        self.prefix = np.array([model.tokenizer.sot_sequence(lang, "transcribe", True)] * decoding_rows, np.int64)
        room = model.manifest.dims.n_text_ctx - self.prefix.shape[1]
        self.forced_tokens = max(1, min(forced_tokens, room))

    # -- stages ---------------------------------------------------------------------------------
    def window_mel(self, samples: np.ndarray) -> np.ndarray:
        """[1, n_mels, 3000] for the first 30 s of ``samples`` (zero-padded as transcribe pads)."""
        window = samples[:N_SAMPLES]
        return self._pad(self._mel(window, self.n_mels, padding=N_SAMPLES - len(window)))[None]

    def decode_forced(self, state) -> tuple[float, list[float]]:
        """(first call seconds, per-step seconds) for the prefix and ``forced_tokens`` steps."""
        b = self.backend
        state = b.repeat(state, self.rows)
        t_first, (logits, state) = timed(lambda: b.decode(self.prefix, state))
        steps = []
        keep = np.arange(self.rows)
        for _ in range(self.forced_tokens):
            tokens = logits[:, -1].argmax(-1)[:, None].astype(np.int64)
            dt, (logits, state) = timed(lambda: b.decode(tokens, state))
            if self.rows > 1:  # beam search reorders the self-attention cache after every step
                dt += timed(lambda: b.reorder(state, keep))[0]
            steps.append(dt)
        return t_first, steps

    def forced_transcribe(self, samples: np.ndarray) -> None:
        """Windows of 30 s: log-mel of the whole file (as transcribe does), then per window encoder +
        the fixed number of decoder steps."""
        mel = self._mel(samples, self.n_mels, padding=N_SAMPLES)
        n_windows = max(1, int(np.ceil(len(samples) / N_SAMPLES)))
        for w in range(n_windows):
            window = self._pad(mel[:, w * 3000:(w + 1) * 3000])[None]
            self.decode_forced(self.backend.encode(window))

    # -- measurements ---------------------------------------------------------------------------
    def stage_latencies(self, samples: np.ndarray, warmup: int, repeats: int) -> dict:
        window = samples[:N_SAMPLES]
        if len(window) < N_SAMPLES:  # 30 s of real audio when there is that much
            window = np.pad(window, (0, N_SAMPLES - len(window)))
        mel_stats, _ = repeat(lambda: self._mel(window, self.n_mels), warmup, repeats)
        mel = self._pad(self._mel(window, self.n_mels))[None]
        enc_stats, state = repeat(lambda: self.backend.encode(mel), warmup, repeats)
        for _ in range(warmup):
            self.decode_forced(state)
        firsts, per_token = [], []
        for _ in range(max(1, repeats)):
            first, steps = self.decode_forced(state)
            firsts.append(first)
            per_token.append(float(np.mean(steps)))

        def first_token():
            st = self.backend.encode(self.window_mel(window))
            st = self.backend.repeat(st, self.rows)
            logits, _ = self.backend.decode(self.prefix, st)
            return int(logits[0, -1].argmax())

        ft_stats, _ = repeat(first_token, warmup, repeats)
        return {
            "log_mel_s": mel_stats.to_dict(),
            "encoder_s": enc_stats.to_dict(),
            "decoder_first_call_s": Stats.of(firsts).to_dict(),
            "decoder_per_token_s": Stats.of(per_token).to_dict(),
            "decoder_tokens_timed": self.forced_tokens,
            "decoder_rows": self.rows,
            "first_token_s": ft_stats.to_dict(),
        }


def forced_e2e(probe: EdgeProbe, short: np.ndarray, long: np.ndarray, warmup: int, repeats: int,
               long_repeats: int) -> tuple[dict, list[float]]:
    """Short-clip latency and long-file processing times of forced transcription (random weights)."""
    short_stats, _ = repeat(lambda: probe.forced_transcribe(short), warmup, repeats)
    long_times = []
    for i in range(warmup + max(1, long_repeats)):
        dt, _ = timed(lambda: probe.forced_transcribe(long))
        if i >= warmup:
            long_times.append(dt)
    return short_stats.to_dict(), [rnd(t) for t in long_times]
