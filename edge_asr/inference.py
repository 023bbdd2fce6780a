"""The inference backend: runs the exported encoder and KV-cached decoder graphs.

All tensors stay as onnxruntime OrtValues bound through IOBinding, so on CUDA the cross-attention
K/V and the growing self-attention cache never leave the GPU; only the logits come back to the host.
The same code path runs on CPU (where IOBinding simply avoids extra copies), so the CPU tests
exercise it too.
"""

from __future__ import annotations

from dataclasses import dataclass

import time

import numpy as np
import onnxruntime as ort

from .manifest import Manifest
from .providers import SessionConfig, create_session


@dataclass
class DecoderState:
    """Cross-attention K/V of one batch of windows (computed once) and the self-attention cache."""

    cross_k: ort.OrtValue
    cross_v: ort.OrtValue
    self_k: ort.OrtValue
    self_v: ort.OrtValue
    batch: int

    @property
    def length(self) -> int:
        """Tokens already in the self-attention cache."""
        return int(self.self_k.shape()[3])


class OnnxBackend:
    def __init__(self, manifest: Manifest, config: SessionConfig):
        self.manifest = manifest
        self.config = config
        self.encoder = create_session(manifest.path("encoder"), config)
        self.decoder = create_session(manifest.path("decoder"), config)
        on_gpu = "CUDAExecutionProvider" in self.decoder.get_providers()
        self.device = "cuda" if on_gpu else "cpu"
        d = manifest.dims
        self.has_alignment = "alignment_attn" in manifest.graphs["decoder"]["outputs"]
        # Cumulative time in each graph (perf_counter around run calls: negligible cost), so streaming
        # and benchmarks can show where an update's time goes.
        self.timings = {"encoder_s": 0.0, "encoder_runs": 0, "decoder_s": 0.0, "decoder_runs": 0}
        self._empty_cache_shape = (d.decoder_layers, 0, d.decoder_heads, 0, d.d_model // d.decoder_heads)

    def _value(self, array: np.ndarray) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self.device, 0)

    def encode(self, mel: np.ndarray) -> DecoderState:
        """mel [B, n_mels, frames] -> decoder state with cross K/V for those windows and an empty cache."""
        io = self.encoder.io_binding()
        io.bind_ortvalue_input("mel", self._value(mel.astype(np.float32, copy=False)))
        io.bind_output("cross_k", self.device)
        io.bind_output("cross_v", self.device)
        t0 = time.perf_counter()
        self.encoder.run_with_iobinding(io)
        self.timings["encoder_s"] += time.perf_counter() - t0
        self.timings["encoder_runs"] += 1
        cross_k, cross_v = io.get_outputs()
        return self.empty_state(cross_k, cross_v, mel.shape[0])

    def empty_state(self, cross_k: ort.OrtValue, cross_v: ort.OrtValue, batch: int) -> DecoderState:
        shape = list(self._empty_cache_shape)
        shape[1] = batch
        empty = self._value(np.zeros(shape, np.float32))
        return DecoderState(cross_k, cross_v, empty, empty, batch)

    def decode(self, tokens: np.ndarray, state: DecoderState) -> tuple[np.ndarray, DecoderState]:
        """Feed tokens [B, T] after the cached ones; return logits [B, T, vocab] and the grown state."""
        logits, state, _ = self._decode(tokens, state, alignment=False)
        return logits, state

    def decode_with_alignment(self, tokens: np.ndarray, state: DecoderState
                              ) -> tuple[np.ndarray, DecoderState, np.ndarray]:
        """Like decode, plus the alignment heads' cross-attention weights [B, heads, T, frames] (softmax
        over all encoder frames). Needs a folder exported with word-timestamp support."""
        if not self.has_alignment:
            raise RuntimeError("this model folder has no alignment_attn output")
        return self._decode(tokens, state, alignment=True)

    def _decode(self, tokens: np.ndarray, state: DecoderState, alignment: bool):
        io = self.decoder.io_binding()
        io.bind_ortvalue_input("tokens", self._value(tokens.astype(np.int64, copy=False)))
        io.bind_ortvalue_input("self_k", state.self_k)
        io.bind_ortvalue_input("self_v", state.self_v)
        io.bind_ortvalue_input("cross_k", state.cross_k)
        io.bind_ortvalue_input("cross_v", state.cross_v)
        io.bind_output("logits", "cpu")
        io.bind_output("new_self_k", self.device)
        io.bind_output("new_self_v", self.device)
        if alignment:  # unbound outputs are not copied out, so the per-token path never pays for it
            io.bind_output("alignment_attn", "cpu")
        t0 = time.perf_counter()
        self.decoder.run_with_iobinding(io)
        self.timings["decoder_s"] += time.perf_counter() - t0
        self.timings["decoder_runs"] += 1
        outs = io.get_outputs()
        new_state = DecoderState(state.cross_k, state.cross_v, outs[1], outs[2], state.batch)
        return outs[0].numpy(), new_state, (outs[3].numpy() if alignment else None)

    def _to_numpy(self, value: ort.OrtValue) -> np.ndarray:
        return value.numpy()

    def repeat(self, state: DecoderState, n: int) -> DecoderState:
        """Each batch item n times in a row (beams, best_of candidates)."""
        if n == 1:
            return state
        rep = [self._value(np.repeat(self._to_numpy(v), n, axis=1))
               for v in (state.cross_k, state.cross_v, state.self_k, state.self_v)]
        return DecoderState(*rep, batch=state.batch * n)

    def reorder(self, state: DecoderState, indices: np.ndarray) -> DecoderState:
        """Select/reorder the self-attention cache rows (beam search). On CUDA this round-trips through
        host memory; beam search there is correct but not as fast as greedy."""
        k = self._value(np.take(self._to_numpy(state.self_k), indices, axis=1))
        v = self._value(np.take(self._to_numpy(state.self_v), indices, axis=1))
        return DecoderState(state.cross_k, state.cross_v, k, v, state.batch)
