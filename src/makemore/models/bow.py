"""A causal bag of words: each position sees the plain average of the embeddings up to it (attention whose
weights are all equal), then an MLP. The step between the MLP and the Transformer: context without content-
dependent weighting."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from makemore.models.registry import LanguageModel, ModelConfig, register


@dataclass(frozen=True)
class BoWConfig(ModelConfig):
    block_size: int = 32
    n_embd: int = 64
    n_hidden: int = 256


@register("bow", BoWConfig, "causal bag of words: the average of the context's embeddings, then an MLP")
class BoW(LanguageModel):
    kind = "sequence"

    def __init__(self, config: BoWConfig):
        super().__init__()
        self.config = c = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.fc = nn.Linear(c.n_embd, c.n_hidden)
        self.gelu = nn.GELU()  # a module, so that diagnostics can hook it
        self.proj = nn.Linear(c.n_hidden, c.n_embd)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size)

    def forward(self, idx: Tensor) -> Tensor:
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        # Row t of the weights is 1/(t+1) on positions 0..t: a running mean that never looks ahead.
        weights = torch.ones(T, T, device=idx.device).tril()
        x = x + (weights / weights.sum(1, keepdim=True)) @ x
        x = x + self.proj(self.gelu(self.fc(x)))
        return self.lm_head(x)
