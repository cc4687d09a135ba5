"""Lectures makemore 2 and 3: the Bengio et al. (2003) MLP, and the deep MLP built from makemore.nn layers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from makemore import nn as mnn
from makemore.errors import MakemoreError
from makemore.models.registry import LanguageModel, ModelConfig, lecture_generator, register


@dataclass(frozen=True)
class MLPConfig(ModelConfig):
    block_size: int = 3
    n_embd: int = 10
    n_hidden: int = 200
    # "scaled": the lecture-3 fix (W1 * (5/3)/sqrt(fan_in), b1 * 0.01, W2 * 0.01, b2 = 0) so the first loss
    # is ~log(vocab) and tanh does not saturate; "raw": every parameter plain randn, as in lecture 2.
    init: str = "scaled"
    init_seed: int = 2147483647
    batchnorm: bool = False  # BatchNorm on the hidden pre-activations in place of b1
    bn_momentum: float = 0.1
    dropout: float = 0.0  # of the hidden activations in training: against over-fitting a small list

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init not in ("scaled", "raw"):
            raise MakemoreError(f"mlp init must be 'scaled' or 'raw', not {self.init!r}")
        if not 0 <= self.dropout < 1:
            raise MakemoreError(f"dropout must be in [0, 1), not {self.dropout}")


@register("mlp", MLPConfig, "Bengio 2003 MLP: embeddings of the context, one tanh layer")
class MLP(LanguageModel):
    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        c = config
        fan_in = c.block_size * c.n_embd
        raw = c.init == "raw"
        g = lecture_generator(c.init_seed)
        # Drawn in the lectures' order (C, W1, b1, W2, b2) from one generator so the same numbers result.
        self.C = nn.Parameter(torch.randn(c.vocab_size, c.n_embd, generator=g))
        W1 = torch.randn(fan_in, c.n_hidden, generator=g)
        self.W1 = nn.Parameter(W1 if raw else W1 * mnn.TANH_GAIN / fan_in**0.5)  # the lecture's float op order
        b1 = torch.randn(c.n_hidden, generator=g) * (1 if raw else 0.01)  # drawn even when unused: keeps the order
        self.W2 = nn.Parameter(torch.randn(c.n_hidden, c.vocab_size, generator=g) * (1 if raw else 0.01))
        self.b2 = nn.Parameter(torch.randn(c.vocab_size, generator=g) * (1 if raw else 0))
        if c.batchnorm:
            self.b1 = None  # BatchNorm's beta takes the bias's role; a bias before it would be subtracted away
            self.bn = mnn.BatchNorm1d(c.n_hidden, momentum=c.bn_momentum)
        else:
            self.b1 = nn.Parameter(b1)
            self.bn = None
        self.act = mnn.Tanh()  # a module, so diagnostics can hook the hidden activations
        self.drop = nn.Dropout(c.dropout)  # (p = 0: the identity, no random numbers drawn)

    def forward(self, idx: Tensor) -> Tensor:
        emb = self.C[idx].view(idx.shape[0], -1)
        hpre = emb @ self.W1
        hpre = self.bn(hpre) if self.bn is not None else hpre + self.b1
        return self.drop(self.act(hpre)) @ self.W2 + self.b2


@dataclass(frozen=True)
class DeepMLPConfig(ModelConfig):
    block_size: int = 3
    n_embd: int = 10
    n_hidden: int = 100
    n_layers: int = 5  # hidden Linear(-BatchNorm)-Tanh blocks
    batchnorm: bool = True
    gain: float = mnn.TANH_GAIN
    last_scale: float = 0.1  # makes the first predictions nearly uniform (less confidently wrong)
    init_seed: int = 2147483647


@register("mlp-deep", DeepMLPConfig, "deep MLP of Linear-BatchNorm-Tanh layers (lecture 3)")
class DeepMLP(LanguageModel):
    def __init__(self, config: DeepMLPConfig):
        super().__init__()
        self.config = config
        c = config
        g = lecture_generator(c.init_seed)
        bias = not c.batchnorm
        layers: list[nn.Module] = [mnn.Embedding(c.vocab_size, c.n_embd, generator=g), mnn.Flatten()]
        fan_in = c.block_size * c.n_embd
        for _ in range(c.n_layers):
            layers.append(mnn.Linear(fan_in, c.n_hidden, bias=bias, gain=c.gain, generator=g))
            if c.batchnorm:
                layers.append(mnn.BatchNorm1d(c.n_hidden))
            layers.append(mnn.Tanh())
            fan_in = c.n_hidden
        layers.append(mnn.Linear(fan_in, c.vocab_size, bias=bias, generator=g))
        if c.batchnorm:
            layers.append(mnn.BatchNorm1d(c.vocab_size))
        self.net = mnn.Sequential(*layers)
        with torch.no_grad():
            last = self.net[-1]
            (last.gamma if c.batchnorm else last.weight).mul_(c.last_scale)

    def forward(self, idx: Tensor) -> Tensor:
        return self.net(idx)
