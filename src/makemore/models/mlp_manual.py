"""Lecture makemore 4: the BatchNorm MLP trained with gradients derived by hand (makemore.backprop), no autograd.

forward() is the ordinary forward pass (BatchNorm with the Bessel-corrected variance, as a makemore.nn layer, so
eval, sampling and the trainer's BatchNorm calibration treat it like any other model); forward_backward() is what
the trainer calls instead of loss.backward().
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from makemore import backprop
from makemore import nn as mnn
from makemore.models.registry import LanguageModel, ModelConfig, register


@dataclass(frozen=True)
class ManualMLPConfig(ModelConfig):
    block_size: int = 3
    n_embd: int = 10
    n_hidden: int = 64  # the lecture's gradient-check network; its training run (preset lecture4) uses 200
    init_seed: int = 2147483647
    bn_momentum: float = 0.001  # running statistics for evaluations during training; calibrated at the end


@register("mlp-manual", ManualMLPConfig, "BatchNorm MLP of lecture 4, trained with hand-derived gradients")
class ManualMLP(LanguageModel):
    manual_gradients: ClassVar[bool] = True

    def __init__(self, config: ManualMLPConfig):
        super().__init__()
        self.config = config
        c = config
        p = backprop.init_params(c.vocab_size, c.block_size, c.n_embd, c.n_hidden, c.init_seed)
        self.C = nn.Parameter(p.C)
        self.W1 = nn.Parameter(p.W1)
        self.b1 = nn.Parameter(p.b1)  # redundant before BatchNorm; kept as in the lecture
        self.bn = mnn.BatchNorm1d(c.n_hidden, eps=backprop.BN_EPS, momentum=c.bn_momentum, unbiased=True)
        with torch.no_grad():
            self.bn.gamma.copy_(p.bngain)
            self.bn.beta.copy_(p.bnbias)
        self.act = mnn.Tanh()  # a module, so diagnostics can hook the hidden activations
        self.W2 = nn.Parameter(p.W2)
        self.b2 = nn.Parameter(p.b2)

    def params(self) -> backprop.Params:
        return backprop.Params(self.C, self.W1, self.b1, self.W2, self.b2, self.bn.gamma, self.bn.beta)

    def forward(self, idx: Tensor) -> Tensor:
        emb = self.C[idx].view(idx.shape[0], -1)
        return self.act(self.bn(emb @ self.W1 + self.b1)) @ self.W2 + self.b2

    def forward_backward(self, idx: Tensor, targets: Tensor) -> Tensor:
        p = self.params()
        step = backprop.forward_backward(p, idx, targets)
        for name, grad in step.grads.items():
            getattr(p, name).grad = grad
        if self.training:
            self.bn.track(step.bnmean, step.bnvar)
        return step.loss
