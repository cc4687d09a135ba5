"""A GPT-style Transformer (lecture 7), written once for names and for text: token and position embeddings,
pre-norm blocks of causal multi-head self-attention and a 4x MLP with residual connections, a final LayerNorm,
and an output layer tied to the token embedding. In generation a KV cache holds every layer's keys and values,
so each new character costs one position's work instead of the whole prefix's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from makemore.errors import MakemoreError
from makemore.models.registry import LanguageModel, ModelConfig, register


@dataclass(frozen=True)
class TransformerConfig(ModelConfig):
    block_size: int = 32
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0
    bias: bool = True  # in Linear and LayerNorm layers
    tie_weights: bool = True  # the output layer shares the token embedding (fewer parameters, trains as well)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_embd % self.n_head:
            raise MakemoreError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if not 0 <= self.dropout < 1:
            raise MakemoreError(f"dropout must be in [0, 1), not {self.dropout}")


class KVCache:
    """Keys and values of every layer for the positions seen so far, in buffers of block_size positions."""

    def __init__(self, n_layer: int, shape: tuple[int, int, int, int], like: Tensor):
        self.k = [like.new_empty(shape) for _ in range(n_layer)]
        self.v = [like.new_empty(shape) for _ in range(n_layer)]
        self.length = 0  # positions filled
        self.weights: list[tuple[Tensor | None, ...]] | None = None  # the model's, gathered once for decoding

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store the new positions' k and v (B, nh, t, hs); return all of the layer's so far."""
        t, end = k.shape[2], self.length + k.shape[2]
        K, V = self.k[layer], self.v[layer]
        K.narrow(2, self.length, t).copy_(k)
        V.narrow(2, self.length, t).copy_(v)
        return K.narrow(2, 0, end), V.narrow(2, 0, end)


def attention(q: Tensor, k: Tensor, v: Tensor, **kw: Any) -> Tensor:
    """F.scaled_dot_product_attention, in fp32 on CPU under bf16 autocast: there torch's bf16 flash-attention
    backward is about 7x slower than its fp32 one at GPT sizes (T=64, head size 32), which would cost more than
    the bf16 matmuls save. Elsewhere (CUDA, or no autocast) it runs in the inputs' precision."""
    if q.dtype == torch.bfloat16 and q.device.type == "cpu":
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), **kw).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, **kw)


def causal_attention(q: Tensor, k: Tensor, v: Tensor, past: int, dropout: float = 0.0) -> Tensor:
    """Queries (B, nh, T, hs) of positions past .. past+T-1 attending to keys and values (B, nh, past+T, hs)."""
    T = q.shape[2]
    if past == 0:  # every query sees itself and the positions before it
        return attention(q, k, v, dropout_p=dropout, is_causal=True)
    if T == 1:  # one new position sees everything in the cache: no mask at all
        return attention(q, k, v, dropout_p=dropout)
    # several new positions after a filled cache: query i sees keys 0 .. past + i
    mask = torch.ones(T, past + T, dtype=torch.bool, device=q.device).tril(past)
    return attention(q, k, v, attn_mask=mask, dropout_p=dropout)


class CausalSelfAttention(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.n_head = c.n_head
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.dropout = c.dropout
        self.resid_dropout = nn.Dropout(c.dropout)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in self.qkv(x).split(C, dim=2))
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(layer, k, v)
        y = causal_attention(q, k, v, past, self.dropout if self.training else 0.0)
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(B, T, C)))


class MLP(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm: x + attn(ln(x)), then x + mlp(ln(x)); the residual stream itself is never normalised."""

    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.attn = CausalSelfAttention(c)
        self.ln_2 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = MLP(c)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


@register("transformer", TransformerConfig, "GPT-style Transformer: causal self-attention blocks (lecture 7)")
class Transformer(LanguageModel):
    kind = "sequence"
    cached = True

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = c = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_weights:
            self.lm_head.weight = self.wte.weight
        # GPT-2's initialisation: N(0, 0.02) everywhere, and the projections into the residual stream scaled by
        # 1/sqrt(2 n_layer) so that the stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * c.n_layer) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias") and "ln" not in name:
                nn.init.zeros_(p)

    def forward(self, idx: Tensor) -> Tensor:
        return self._run(idx, None)

    def forward_cached(self, idx: Tensor, state: Any) -> tuple[Tensor, KVCache]:
        if state is None:
            c = self.config
            shape = (idx.shape[0], c.n_head, c.block_size, c.n_embd // c.n_head)
            state = KVCache(c.n_layer, shape, self.wte.weight)
        logits = self._run(idx, state) if self.training else self._decode(idx, state)
        state.length += idx.shape[1]
        return logits, state

    def _run(self, idx: Tensor, cache: KVCache | None) -> Tensor:
        past = 0 if cache is None else cache.length
        T = idx.shape[1]
        if past + T > self.config.block_size:
            raise MakemoreError(f"a sequence of {past + T} tokens is longer than the block size "
                                f"{self.config.block_size}")
        x = self.drop(self.wte(idx) + self.wpe.weight[past:past + T])  # positions past .. past+T-1
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        return self.lm_head(self.ln_f(x))

    def _decode(self, idx: Tensor, cache: KVCache) -> Tensor:
        """_run with a cache in eval mode (no dropout), written with functional calls: the same operations on the
        same weights, without ~50 module calls a token, which on CPU are a good part of a small model's time per
        generated token. (Tests hold it equal to forward().)"""
        c = self.config
        B, T = idx.shape
        past, C, nh = cache.length, c.n_embd, c.n_head
        if past + T > c.block_size:
            raise MakemoreError(f"a sequence of {past + T} tokens is longer than the block size {c.block_size}")
        if cache.weights is None:  # looked up once per generation (a module attribute costs ~1 µs a time)
            cache.weights = [(b.ln_1.weight, b.ln_1.bias, b.attn.qkv.weight, b.attn.qkv.bias, b.attn.proj.weight,
                              b.attn.proj.bias, b.ln_2.weight, b.ln_2.bias, b.mlp.fc.weight, b.mlp.fc.bias,
                              b.mlp.proj.weight, b.mlp.proj.bias) for b in self.blocks]
        eps = self.ln_f.eps
        x = F.embedding(idx, self.wte.weight) + self.wpe.weight[past:past + T]
        for i, (g1, b1, wa, ba, wp, bp, g2, b2, wf, bf, wm, bm) in enumerate(cache.weights):
            h = F.layer_norm(x, (C,), g1, b1, eps)
            q, k, v = F.linear(h, wa, ba).view(B, T, 3, nh, C // nh).permute(2, 0, 3, 1, 4)
            k, v = cache.append(i, k, v)
            x = x + F.linear(causal_attention(q, k, v, past).transpose(1, 2).reshape(B, T, C), wp, bp)
            x = x + F.linear(F.gelu(F.linear(F.layer_norm(x, (C,), g2, b2, eps), wf, bf)), wm, bm)
        return F.linear(F.layer_norm(x, (C,), self.ln_f.weight, self.ln_f.bias, eps), self.lm_head.weight)


@dataclass(frozen=True)
class GPTConfig(TransformerConfig):
    """The Transformer sized for continuous text: the lecture-7 model's shape (10.7 M parameters with a 65-character
    vocabulary), no biases in Linear and LayerNorm layers (nanoGPT's default: a little faster, trains as well)."""

    block_size: int = 256
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.2
    bias: bool = False


# The same class under a second name: `gpt` is the Transformer with GPT-sized defaults, for text.
register("gpt", GPTConfig, "GPT on continuous text (lecture 7): the Transformer with GPT-sized defaults")(Transformer)
