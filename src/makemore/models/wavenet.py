"""Lecture makemore 5: a WaveNet-style hierarchy. Instead of squashing the whole context into one layer, pairs
of neighbouring positions are fused, then pairs of pairs, and so on: a tree of depth log2(block_size)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from makemore import nn as mnn
from makemore.errors import MakemoreError
from makemore.models.registry import LanguageModel, ModelConfig, lecture_generator, register


@dataclass(frozen=True)
class WaveNetConfig(ModelConfig):
    block_size: int = 8
    n_embd: int = 24
    n_hidden: int = 128
    fuse: int = 2  # positions fused per stage; block_size must be a power of it
    last_scale: float = 0.1  # the output layer starts small: the first predictions are nearly uniform
    init_seed: int = 42
    dropout: float = 0.0  # after each stage's Tanh, in training: against over-fitting a small list

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.dropout < 1:
            raise MakemoreError(f"dropout must be in [0, 1), not {self.dropout}")
        n = self.block_size
        while n % self.fuse == 0 and n > 1:
            n //= self.fuse
        if n != 1 or self.fuse < 2 or self.block_size < self.fuse:
            raise MakemoreError(f"wavenet: block_size ({self.block_size}) must be a power of fuse ({self.fuse})")


@register("wavenet", WaveNetConfig, "WaveNet-style hierarchy: neighbours fused pairwise, stage by stage (lecture 5)")
class WaveNet(LanguageModel):
    def __init__(self, config: WaveNetConfig):
        super().__init__()
        self.config = c = config
        g = lecture_generator(c.init_seed)
        layers: list[nn.Module] = [mnn.Embedding(c.vocab_size, c.n_embd, generator=g)]
        width, t = c.n_embd, c.block_size
        while t > 1:  # each stage: (B, t, width) -> (B, t/fuse, n_hidden)
            layers += [mnn.FlattenConsecutive(c.fuse),
                       mnn.Linear(width * c.fuse, c.n_hidden, bias=False, generator=g),  # BatchNorm has the bias
                       mnn.BatchNorm1d(c.n_hidden), mnn.Tanh()]
            if c.dropout > 0:  # (without it the layers are the lecture's, one for one)
                layers.append(nn.Dropout(c.dropout))
            width, t = c.n_hidden, t // c.fuse
        layers.append(mnn.Linear(width, c.vocab_size, generator=g))
        self.net = mnn.Sequential(*layers)
        with torch.no_grad():
            self.net[-1].weight.mul_(c.last_scale)

    def forward(self, idx: Tensor) -> Tensor:
        return self.net(idx)
