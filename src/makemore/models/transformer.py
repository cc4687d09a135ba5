"""A GPT-style Transformer (lecture 7), written once for names and for text: token and position embeddings,
pre-norm blocks of causal multi-head self-attention and a 4x MLP with residual connections, a final LayerNorm,
and an output layer tied to the token embedding. In generation a KV cache holds every layer's keys and values,
so each new character costs one position's work instead of the whole prefix's: the same forward, given the cache."""

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
    """One layer's keys and values for the positions seen so far, in buffers of the whole block (B, n_head,
    block_size, head_size) made once per generation: a new token writes its own k and v and attends to the
    filled part, instead of recomputing every earlier position's."""

    def __init__(self, shape: tuple[int, int, int, int], like: Tensor):
        self.k = like.new_empty(shape)
        self.v = like.new_empty(shape)
        self.length = 0  # positions filled

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store the new positions' k and v (B, n_head, t, head_size); return the layer's all so far.
        (narrow, not [:, :, a:b] indexing: one op instead of three, and a token runs this per layer.)"""
        t = k.shape[2]
        self.k.narrow(2, self.length, t).copy_(k)
        self.v.narrow(2, self.length, t).copy_(v)
        self.length += t
        return self.k.narrow(2, 0, self.length), self.v.narrow(2, 0, self.length)


def attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, dropout_p: float = 0.0,
              is_causal: bool = False) -> Tensor:
    """F.scaled_dot_product_attention, except for bf16 queries on CPU (autocast's), where torch's flash kernel is
    slow at GPT sizes (its bf16 backward ~4x slower than fp32, and fp32 costs the casts). There the scores and
    weights come from two batched matmuls (fp32 accumulation, bf16 results) and a softmax that accumulates in
    fp32 and stores bf16: 1.35x faster than fp32 SDPA for forward and backward at T=64, head size 32."""
    if q.dtype == torch.bfloat16 and q.device.type == "cpu":
        return _attention_bf16_cpu(q, k.to(q.dtype), v.to(q.dtype), attn_mask, dropout_p, is_causal)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal)


def _attention_bf16_cpu(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None, dropout_p: float,
                        is_causal: bool) -> Tensor:
    *batch, T, hs = q.shape
    S = k.shape[-2]
    if is_causal:  # as SDPA's is_causal: query i sees keys 0 .. i
        if attn_mask is not None:
            raise ValueError("attn_mask and is_causal are exclusive")
        attn_mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril()
    if attn_mask is not None and attn_mask.shape != (T, S):
        raise ValueError(f"attention mask of shape {tuple(attn_mask.shape)}, expected ({T}, {S})")
    # the mask as 0 / -inf added to the scores inside the first matmul (baddbmm: one kernel, no extra pass)
    bias = torch.zeros(T, S, dtype=q.dtype, device=q.device)
    if attn_mask is not None:
        bias = bias.masked_fill(~attn_mask, float("-inf"))
    with torch.autocast("cpu", enabled=False):
        scores = torch.baddbmm(bias.expand(math.prod(batch), T, S), q.reshape(-1, T, hs),
                               k.reshape(-1, S, hs).transpose(1, 2), alpha=1 / math.sqrt(hs))
        weights = F.dropout(scores.softmax(-1), dropout_p) if dropout_p else scores.softmax(-1)
        return torch.bmm(weights, v.reshape(-1, S, hs)).view(*batch, T, hs)


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """F.dropout in training; otherwise x itself, without a call. (Generation at batch 1 is mostly the cost of
    calls: a Dropout module is ~3.6 µs, and a small GPT's token met 13 of them, a tenth of its time.)"""
    return F.dropout(x, p) if training and p > 0 else x


def causal_attention(q: Tensor, k: Tensor, v: Tensor, past: int, dropout_p: float = 0.0) -> Tensor:
    """Queries (B, nh, T, hs) of positions past .. past+T-1 attending to keys and values (B, nh, past+T, hs)."""
    T = q.shape[2]
    if past == 0:  # every query sees itself and the positions before it
        return attention(q, k, v, dropout_p=dropout_p, is_causal=True)
    if T == 1:  # one new position sees everything in the cache: no mask at all
        return attention(q, k, v, dropout_p=dropout_p)
    # several new positions after a filled cache: query i sees keys 0 .. past + i
    mask = torch.ones(T, past + T, dtype=torch.bool, device=q.device).tril(past)
    return attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


def split_qkv(qkv: Tensor, n_head: int) -> tuple[Tensor, Tensor, Tensor]:
    """(B, T, 3C) -> q, k, v (B, n_head, T, C // n_head). Views from one unbind, whose backward is one stack
    (slices' backward would fill and add three zero tensors as wide as qkv); for the batched matmuls of bf16
    attention on CPU one copy makes all three contiguous (they would otherwise be copied one by one): a GPT's
    step 0.97x."""
    B, T, C3 = qkv.shape
    qkv = qkv.view(B, T, 3, n_head, C3 // (3 * n_head)).permute(2, 0, 3, 1, 4)
    if qkv.dtype == torch.bfloat16 and qkv.device.type == "cpu":
        qkv = qkv.contiguous()
    q, k, v = qkv.unbind(0)
    return q, k, v


class CausalSelfAttention(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.n_head = c.n_head
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.dropout = c.dropout  # of the attention weights and of the output, in training

    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:
        B, T, C = x.shape
        q, k, v = split_qkv(self.qkv(x), self.n_head)  # (B, nh, T, hs) each
        past = 0
        if cache is not None:  # the new positions attend to the cached ones too
            past = cache.length
            k, v = cache.append(k, v)
        y = causal_attention(q, k, v, past, self.dropout if self.training else 0.0)
        return dropout(self.proj(y.transpose(1, 2).reshape(B, T, C)), self.dropout, self.training)


class MLP(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.gelu = nn.GELU()  # a module, so that diagnostics can hook it
        self.proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
        self.dropout = c.dropout

    def forward(self, x: Tensor) -> Tensor:
        return dropout(self.proj(self.gelu(self.fc(x))), self.dropout, self.training)


class Block(nn.Module):
    """Pre-norm: x + attn(ln(x)), then x + mlp(ln(x)); the residual stream itself is never normalised."""

    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.attn = CausalSelfAttention(c)
        self.ln_2 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = MLP(c)

    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:
        x = x + self.attn(self.ln_1(x), cache)
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

    def forward(self, idx: Tensor, cache: list[KVCache] | None = None) -> Tensor:
        """Logits (B, T, vocab_size) for idx (B, T). With a cache (one KVCache per layer, from new_cache), idx
        are the positions after those already in it, and their keys and values are added to it."""
        past = 0 if cache is None else cache[0].length
        T = idx.shape[1]
        if past + T > self.config.block_size:
            raise MakemoreError(f"a sequence of {past + T} tokens is longer than the block size "
                                f"{self.config.block_size}")
        x = self.wte(idx) + self.wpe.weight[past:past + T]  # positions past .. past+T-1
        x = dropout(x, self.config.dropout, self.training)
        for i, block in enumerate(self.blocks):
            x = block(x, None if cache is None else cache[i])
        return self.lm_head(self.ln_f(x))

    def new_cache(self, batch: int) -> list[KVCache]:
        c = self.config
        shape = (batch, c.n_head, c.block_size, c.n_embd // c.n_head)
        return [KVCache(shape, self.wte.weight) for _ in range(c.n_layer)]

    def forward_cached(self, idx: Tensor, state: Any) -> tuple[Tensor, list[KVCache]]:
        cache = self.new_cache(idx.shape[0]) if state is None else state
        return self(idx, cache), cache

    def restart_cached(self, state: Any) -> Any:
        for layer in state or ():
            layer.length = 0  # same buffers: a new window of the same generation
        return state


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
