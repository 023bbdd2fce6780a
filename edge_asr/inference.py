"""The inference backend: runs the exported encoder and KV-cached decoder graphs.

All tensors stay as onnxruntime OrtValues bound through IOBinding, so on CUDA the cross-attention
K/V and the growing self-attention cache never leave the GPU; only the logits come back to the host.
The same code path runs on CPU (where IOBinding simply avoids extra copies), so the CPU tests
exercise it too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from .errors import WORD_TIMESTAMPS_UNAVAILABLE, DecodingError
from .manifest import Manifest
from .providers import GraphPolicy, SessionConfig, create_session
from .model_cache import optimized_graph_dir, optimized_graphs_enabled


@dataclass
class DecoderState:
    """Cross-attention K/V of one batch of windows (computed once) and the self-attention cache, one
    OrtValue per decoder layer each ([rows, H, frames or tokens, dh]). ``batch`` is the number of decoder
    rows; with a shared-cross graph the cross K/V keep one row per window after ``repeat``."""

    cross_k: list[ort.OrtValue]
    cross_v: list[ort.OrtValue]
    self_k: list[ort.OrtValue]
    self_v: list[ort.OrtValue]
    batch: int

    @property
    def length(self) -> int:
        """Tokens already in the self-attention cache."""
        return int(self.self_k[0].shape()[2])


class OnnxBackend:
    def __init__(self, manifest: Manifest, config: SessionConfig):
        self.manifest = manifest
        self.config = config
        # One after the other: building them side by side saved ~0.05 s but raised peak memory ~20 MB.
        self.encoder = self._session(manifest, "encoder", config)
        self.decoder = self._session(manifest, "decoder", config)
        on_gpu = "CUDAExecutionProvider" in self.decoder.get_providers()
        self.device = "cuda" if on_gpu else "cpu"
        d = manifest.dims
        self.n_layers = d.decoder_layers
        self.has_alignment = "alignment_attn" in manifest.graphs["decoder"]["outputs"]
        # Graphs exported with shared cross-attention take one cross K/V row per window whatever the
        # number of beams; older ones need it repeated per row.
        self.shared_cross = bool(manifest.graphs["decoder"].get("shared_cross"))
        # Cumulative time in each graph (perf_counter around run calls: negligible cost), so streaming
        # and benchmarks can show where an update's time goes.
        self.timings = {"encoder_s": 0.0, "encoder_runs": 0, "decoder_s": 0.0, "decoder_runs": 0}
        self._empty_cache_shape = (0, d.decoder_heads, 0, d.d_model // d.decoder_heads)
        layers = range(self.n_layers)
        self._cross_names = [f"cross_k_{i}" for i in layers] + [f"cross_v_{i}" for i in layers]
        self._self_names = [f"self_k_{i}" for i in layers] + [f"self_v_{i}" for i in layers]
        self._new_names = [f"new_self_k_{i}" for i in layers] + [f"new_self_v_{i}" for i in layers]

    @property
    def providers(self) -> tuple[str, ...]:
        """The execution providers the decoder session runs on, in priority order."""
        return tuple(self.decoder.get_providers())

    @staticmethod
    def _session(manifest: Manifest, graph: str, config: SessionConfig) -> ort.InferenceSession:
        cache = None
        if config.optimized_graphs and optimized_graphs_enabled():
            # Keyed by the graph's hash and the onnxruntime version: a changed graph or a new
            # onnxruntime never reads an optimized graph made from something else (model_cache prunes
            # other versions and bounds the folder).
            sha = manifest.files.get(manifest.graphs[graph]["file"], {}).get("sha256")
            if sha:
                cache = optimized_graph_dir(sha)
        policy = GraphPolicy(prepack=False, spin=False) if graph == "encoder" else GraphPolicy(arena=False)
        return create_session(manifest.path(graph), config, policy=policy, optimized_cache=cache)

    def _value(self, array: np.ndarray) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self.device, 0)

    def encode(self, mel: np.ndarray) -> DecoderState:
        """mel [B, n_mels, frames] -> decoder state with cross K/V for those windows and an empty cache."""
        io = self.encoder.io_binding()
        io.bind_ortvalue_input("mel", self._value(mel.astype(np.float32, copy=False)))
        for name in self._cross_names:
            io.bind_output(name, self.device)
        t0 = time.perf_counter()
        self.encoder.run_with_iobinding(io)
        self.timings["encoder_s"] += time.perf_counter() - t0
        self.timings["encoder_runs"] += 1
        cross = io.get_outputs()
        n = self.n_layers
        return self.empty_state(list(cross[:n]), list(cross[n:]), mel.shape[0])

    def empty_state(self, cross_k: list[ort.OrtValue], cross_v: list[ort.OrtValue], batch: int) -> DecoderState:
        shape = list(self._empty_cache_shape)
        shape[0] = batch
        empty = [self._value(np.zeros(shape, np.float32))] * self.n_layers
        return DecoderState(list(cross_k), list(cross_v), empty, empty, batch)

    def decode(self, tokens: np.ndarray, state: DecoderState, logits_at: np.ndarray | list[int] | None = None
               ) -> tuple[np.ndarray, DecoderState]:
        """Feed tokens [B, T] after the cached ones; return logits [B, K, vocab] at the positions
        ``logits_at`` of the T new tokens (default: the last one only) and the grown state."""
        logits, state, _ = self._decode(tokens, state, logits_at, alignment=False)
        return logits, state

    def decode_with_alignment(self, tokens: np.ndarray, state: DecoderState,
                              logits_at: np.ndarray | list[int] | None = None
                              ) -> tuple[np.ndarray, DecoderState, np.ndarray]:
        """Like decode, plus the alignment heads' cross-attention weights [B, heads, T, frames] (softmax
        over all encoder frames). Needs a folder exported with word-timestamp support."""
        if not self.has_alignment:
            raise DecodingError(WORD_TIMESTAMPS_UNAVAILABLE)
        return self._decode(tokens, state, logits_at, alignment=True)

    def _decode(self, tokens: np.ndarray, state: DecoderState, logits_at, alignment: bool):
        if logits_at is None:
            logits_at = [tokens.shape[1] - 1]
        io = self.decoder.io_binding()
        io.bind_ortvalue_input("tokens", self._value(tokens.astype(np.int64, copy=False)))
        io.bind_ortvalue_input("logits_at", self._value(np.asarray(logits_at, dtype=np.int64)))
        for name, value in zip(self._self_names, state.self_k + state.self_v):
            io.bind_ortvalue_input(name, value)
        for name, value in zip(self._cross_names, state.cross_k + state.cross_v):
            io.bind_ortvalue_input(name, value)
        io.bind_output("logits", "cpu")
        for name in self._new_names:
            io.bind_output(name, self.device)
        if alignment:  # unbound outputs are not copied out, so the per-token path never pays for it
            io.bind_output("alignment_attn", "cpu")
        t0 = time.perf_counter()
        self.decoder.run_with_iobinding(io)
        self.timings["decoder_s"] += time.perf_counter() - t0
        self.timings["decoder_runs"] += 1
        outs = io.get_outputs()
        n = self.n_layers
        new_state = DecoderState(state.cross_k, state.cross_v, list(outs[1:1 + n]), list(outs[1 + n:1 + 2 * n]),
                                 state.batch)
        return outs[0].numpy(), new_state, (outs[1 + 2 * n].numpy() if alignment else None)

    def _map(self, values: list[ort.OrtValue], fn) -> list[ort.OrtValue]:
        return [self._value(fn(v.numpy())) for v in values]

    def repeat(self, state: DecoderState, n: int) -> DecoderState:
        """Each batch item n times in a row (beams, best_of candidates)."""
        if n == 1:
            return state
        rep = [self._map(values, lambda a: np.repeat(a, n, axis=0))
               for values in ((state.self_k, state.self_v) if self.shared_cross else
                              (state.cross_k, state.cross_v, state.self_k, state.self_v))]
        if self.shared_cross:
            return DecoderState(state.cross_k, state.cross_v, *rep, batch=state.batch * n)
        return DecoderState(*rep, batch=state.batch * n)

    def select(self, state: DecoderState, rows: list[int] | np.ndarray) -> DecoderState:
        """The windows ``rows`` of a batch (cross K/V and cache) before any ``repeat``, e.g. to re-decode
        one window alone."""
        idx = np.asarray(rows)
        pick = [self._map(values, lambda a: np.take(a, idx, axis=0))
                for values in (state.cross_k, state.cross_v, state.self_k, state.self_v)]
        return DecoderState(*pick, batch=len(idx))

    def reorder(self, state: DecoderState, indices: np.ndarray) -> DecoderState:
        """Select/reorder the self-attention cache rows (beam search). On CUDA this round-trips through
        host memory; beam search there is correct but not as fast as greedy."""
        k = self._map(state.self_k, lambda a: np.take(a, indices, axis=0))
        v = self._map(state.self_v, lambda a: np.take(a, indices, axis=0))
        return DecoderState(state.cross_k, state.cross_v, k, v, state.batch)
