"""The two inference graphs edge-asr exports, written as torch modules over a transformers Whisper.

Why our own graphs instead of optimum's: the runtime wants (1) the encoder to emit the
cross-attention K/V of every decoder layer, computed once per 30 s window, and (2) one decoder graph
(no If-subgraphs, so dynamic quantization reaches every weight) that takes the self-attention cache
and returns it grown by the new tokens. Both reuse the transformers modules' weights, so the numbers
are the model's numbers; only the wiring differs.

Every cache tensor is one graph input/output per layer, never a stacked [L, ...] tensor: onnxruntime
materialises any slice of a stacked input (Split/Gather copy), and splitting the stacked cross K/V
(18 MB per step for base) was a third of the decoder's time per token.

Shapes (L decoder layers, B batch, H heads, S encoder frames, P cached tokens, T new tokens, dh head dim,
K requested logit positions):
  encoder: mel [B, n_mels, 2S] -> cross_k_i, cross_v_i [B, H, S, dh] for i < L
  decoder: tokens [R, T], logits_at [K] (positions of T whose logits are wanted), self_k_i, self_v_i
           [R, H, P, dh], cross_k_i, cross_v_i [B, H, S, dh] with R = n * B (n rows per window, in a row)
           -> logits [R, K, vocab], new_self_k_i, new_self_v_i [R, H, P+T, dh],
              alignment_attn [R, A, T, S] (cross-attention weights of the A alignment heads, for word
              timestamps)
``logits_at`` exists because the vocabulary projection is the decoder's largest MatMul: a prompt of
100 tokens would otherwise cost 100 projections when decoding needs only the last one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _Reshape(torch.autograd.Function):
    """Reshape to a constant target in ONNX's convention (0 copies the input's dimension, -1 is
    inferred), exported as one Reshape of a Constant.

    A plain ``x.view(b, t, H, dh)`` over dynamic axes exports as Shape -> Gather -> Unsqueeze -> Concat
    -> Reshape; with 8 such reshapes per decoder layer those shape chains were ~380 of the decoder's
    580 nodes, and onnxruntime's per-node cost made them ~a third of a base decoder step."""

    @staticmethod
    def forward(ctx, x, shape: tuple[int, ...]):
        return x.reshape([x.shape[i] if s == 0 else s for i, s in enumerate(shape)])

    @staticmethod
    def symbolic(g, x, shape: tuple[int, ...]):
        return g.op("Reshape", x, g.op("Constant", value_t=torch.tensor(shape, dtype=torch.long)))


class _ReshapeAs(torch.autograd.Function):
    """Reshape ``x`` to ``like``'s shape (one Shape and one Reshape in ONNX)."""

    @staticmethod
    def forward(ctx, x, like):
        return x.reshape(like.shape)

    @staticmethod
    def symbolic(g, x, like):
        return g.op("Reshape", x, g.op("Shape", like))


def _reshape_to_leading(g, x, ref, n: int, rest: list[int]):
    """ONNX: Reshape ``x`` to ``ref``'s first ``n`` dimensions followed by the constant ``rest``
    (0 copies x's dimension at that index, -1 is inferred)."""
    lead = g.op("Slice", g.op("Shape", ref), g.op("Constant", value_t=torch.tensor([0])),
                g.op("Constant", value_t=torch.tensor([n])))
    tail = g.op("Constant", value_t=torch.tensor(rest, dtype=torch.long))
    return g.op("Reshape", x, g.op("Concat", lead, tail, axis_i=0))


class _GroupRows(torch.autograd.Function):
    """[R, T, D] -> [B, R/B * T, D] with B = ``ref``'s first dimension: the n consecutive rows of each
    window (beams) become one row of n*T queries (Shape, Slice, Concat, Reshape in ONNX)."""

    @staticmethod
    def forward(ctx, x, ref):
        return x.reshape(ref.shape[0], -1, x.shape[-1])

    @staticmethod
    def symbolic(g, x, ref):
        return _reshape_to_leading(g, x, ref, 1, [-1, 0])


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[B, T, D] -> [B, H, T, dh]"""
    return _Reshape.apply(x, (0, 0, n_heads, -1)).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    """[B, H, T, dh] -> [B, T, D]"""
    return _Reshape.apply(x.transpose(1, 2), (0, 0, -1))


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return _attend_weights(q, k, v, mask)[0]


def _attend_weights(q, k, v, mask):
    # q is pre-scaled by head_dim**-0.5 (as transformers' WhisperAttention does in q_proj's output).
    w = torch.matmul(q, k.transpose(-1, -2))
    if mask is not None:
        w = w + mask
    w = torch.softmax(w, dim=-1)
    return torch.matmul(w, v), w


class _FusedSelfAttention(torch.autograd.Function):
    """Encoder self-attention exported as onnxruntime's com.microsoft MultiHeadAttention.

    onnxruntime's CPU kernel never materialises the [B, H, S, S] scores (a 30 s window of base needs
    ~10 MB for it instead of ~75 MB) and fuses the softmax and head transposes: measured 25 vs 29 ms
    per base layer on 2 cores. The same op runs on CUDA. In PyTorch (validation, tracing) it is the
    plain computation. q is pre-scaled, hence scale=1."""

    @staticmethod
    def forward(ctx, q, k, v, n_heads: int):
        return _merge(_attend(_heads(q, n_heads), _heads(k, n_heads), _heads(v, n_heads), None))

    @staticmethod
    def symbolic(g, q, k, v, n_heads: int):
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=n_heads, scale_f=1.0)
        out.setType(q.type())
        return out


class _FusedCachedSelfAttention(torch.autograd.Function):
    """Decoder self-attention over the KV cache as one com.microsoft MultiHeadAttention: q, k, v [R, T, D]
    (q pre-scaled), past_k, past_v [R, H, P, dh] -> output [R, T, D], present_k, present_v
    [R, H, P+T, dh]; causal (unidirectional: new token i sees keys up to P+i). One node instead of
    the head splits, cache Concat, mask, two MatMuls, Softmax and merge (~15 nodes a layer): per-node
    cost dominates these tiny per-token tensors."""

    @staticmethod
    def forward(ctx, q, k, v, past_k, past_v, n_heads: int):
        keys = torch.cat([past_k, _heads(k, n_heads)], dim=2)
        values = torch.cat([past_v, _heads(v, n_heads)], dim=2)
        p, t = past_k.shape[2], q.shape[1]
        positions = torch.arange(t, device=q.device) + p
        key_pos = torch.arange(p + t, device=q.device)
        mask = (key_pos[None, :] > positions[:, None]).to(q.dtype) * torch.finfo(q.dtype).min
        return _merge(_attend(_heads(q, n_heads), keys, values, mask)), keys, values

    @staticmethod
    def symbolic(g, q, k, v, past_k, past_v, n_heads: int):
        none = g.op("prim::Constant")  # a missing optional input (torch.onnx's own convention)
        none.setType(torch._C.OptionalType.ofTensor())
        out, keys, values = g.op("com.microsoft::MultiHeadAttention", q, k, v, none, none, none, past_k, past_v,
                                 num_heads_i=n_heads, scale_f=1.0, unidirectional_i=1, outputs=3)
        out.setType(q.type())
        keys.setType(past_k.type())
        values.setType(past_v.type())
        return out, keys, values


class _FusedCrossAttention(torch.autograd.Function):
    """Cross-attention as one com.microsoft MultiHeadAttention with the cached K/V in [B, H, S, dh]:
    q [B, Tq, D] (pre-scaled) -> [B, Tq, D]. Used in the decoder layers without alignment heads (the
    fused op does not return its attention weights, which word timing reads)."""

    @staticmethod
    def forward(ctx, q, k, v, n_heads: int):
        return _merge(_attend(_heads(q, n_heads), k, v, None))

    @staticmethod
    def symbolic(g, q, k, v, n_heads: int):
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=n_heads, scale_f=1.0)
        out.setType(q.type())
        return out


def _attend_shared(q, k, v, n_heads: int, weights: bool):
    """Cross-attention where the query rows (q: [R, T, D], not yet split into heads) come in n
    consecutive rows per window (beams, best-of candidates) and K/V hold one row per window: the n rows'
    queries are stacked along the query axis, so every window's K/V is read once per step instead of
    once per beam (beam 5 read base's 37 MB of cross K/V five times per token) and the runtime need not
    copy it per beam. n = 1 is plain attention. Returns the merged output [R, T, D] and, when
    ``weights``, the attention weights [B, H, n*T, S] (see ``_rows_weights``; else None, and the
    attention is the fused op)."""
    grouped = _GroupRows.apply(q, k)
    if not weights:
        return _ReshapeAs.apply(_FusedCrossAttention.apply(grouped, k, v, n_heads), q), None
    out, w = _attend_weights(_heads(grouped, n_heads), k, v, None)
    return _ReshapeAs.apply(_merge(out), q), w


class _SplitRows(torch.autograd.Function):
    """The inverse of ``_GroupRows`` for a [B, n*T, H, S] tensor: -> [R, T, H, S], R and T taken from
    ``like`` ([R, T, ...])."""

    @staticmethod
    def forward(ctx, x, like):
        return x.reshape(like.shape[0], like.shape[1], *x.shape[2:])

    @staticmethod
    def symbolic(g, x, like):
        return _reshape_to_leading(g, x, like, 2, [0, -1])


def _rows_weights(w, q):
    """Attention weights [B, H, n*T, S] of ``_attend_shared`` -> [R, H, T, S], one row per decoder row
    (q: the [R, T, D] queries)."""
    return _SplitRows.apply(w.transpose(1, 2), q).transpose(1, 2)


def default_alignment_heads(n_layers: int, n_heads: int) -> list[list[int]]:
    """openai/whisper's fallback when a model has no alignment-head table: every head of the upper half."""
    return [[layer, head] for layer in range(n_layers // 2, n_layers) for head in range(n_heads)]


class EncoderGraph(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.encoder = model.model.encoder
        self.decoder_layers = model.model.decoder.layers
        cfg = model.config
        self.n_heads = cfg.encoder_attention_heads
        self.dec_heads = cfg.decoder_attention_heads

    def forward(self, mel: torch.Tensor):
        enc = self.encoder
        x = F.gelu(enc.conv1(mel))
        x = F.gelu(enc.conv2(x)).permute(0, 2, 1)
        # Slicing (not adding the whole table) lets a shorter mel use the leading positions.
        x = x + enc.embed_positions.weight[: x.shape[1]]
        for layer in enc.layers:
            a = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            attended = _FusedSelfAttention.apply(a.q_proj(h) * a.scaling, a.k_proj(h), a.v_proj(h), self.n_heads)
            x = x + a.out_proj(attended)
            h = layer.final_layer_norm(x)
            x = x + layer.fc2(F.gelu(layer.fc1(h)))
        x = enc.layer_norm(x)
        ks = [_heads(layer.encoder_attn.k_proj(x), self.dec_heads) for layer in self.decoder_layers]
        vs = [_heads(layer.encoder_attn.v_proj(x), self.dec_heads) for layer in self.decoder_layers]
        return (*ks, *vs)


class DecoderGraph(nn.Module):
    def __init__(self, model: nn.Module, alignment_heads: list[list[int]] | None = None):
        super().__init__()
        self.decoder = model.model.decoder
        self.n_heads = model.config.decoder_attention_heads
        # None: export without the alignment output (the format before word timestamps existed).
        self.alignment_heads = alignment_heads
        # Whisper ties the output projection to the token embedding. Keep one [D, vocab] matrix that
        # both the logits MatMul and the embedding Gather (along axis 1) read, so the exported file
        # stores the largest tensor once instead of twice (as W and as a constant-folded W^T).
        self.embed_t = nn.Parameter(model.proj_out.weight.detach().t().contiguous(), requires_grad=False)

    def forward(self, tokens, logits_at, *caches):
        dec = self.decoder
        n = len(dec.layers)
        self_k, self_v, cross_k, cross_v = (caches[i * n:(i + 1) * n] for i in range(4))
        past = self_k[0].shape[2]
        t = tokens.shape[1]
        positions = torch.arange(t, device=tokens.device) + past
        emb = torch.index_select(self.embed_t, 1, tokens.reshape(-1)).t().reshape(tokens.shape[0], t, -1)
        x = emb + dec.embed_positions.weight[positions]
        new_k, new_v, align = [], [], []
        for i, layer in enumerate(dec.layers):
            a = layer.self_attn
            h = layer.self_attn_layer_norm(x)
            out, k, v = _FusedCachedSelfAttention.apply(a.q_proj(h) * a.scaling, a.k_proj(h), a.v_proj(h),
                                                        self_k[i], self_v[i], self.n_heads)
            new_k.append(k)
            new_v.append(v)
            x = x + a.out_proj(out)
            c = layer.encoder_attn
            h = layer.encoder_attn_layer_norm(x)
            q = c.q_proj(h) * c.scaling
            heads = [head for layer_i, head in self.alignment_heads or [] if layer_i == i]
            out, weights = _attend_shared(q, cross_k[i], cross_v[i], self.n_heads, weights=bool(heads))
            x = x + c.out_proj(out)
            if heads:
                weights = _rows_weights(weights, q)
                align += [weights[:, head:head + 1] for head in heads]
            h = layer.final_layer_norm(x)
            x = x + layer.fc2(F.gelu(layer.fc1(h)))
        x = dec.layer_norm(torch.index_select(x, 1, logits_at))
        logits = torch.matmul(x, self.embed_t)
        if self.alignment_heads:
            return logits, *new_k, *new_v, torch.cat(align, dim=1)
        return logits, *new_k, *new_v
