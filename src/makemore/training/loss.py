"""The loss, in one place for every model, and evaluation: mean negative log-likelihood per target token, and
the same total in bits per character of the text, the unit that compares tokenizers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from makemore.batches import IGNORE, Examples


def loss_fn(logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy of (..., V) logits against (...) targets: (B, V) with (B,) for context models, (B, T, V)
    with (B, T) for sequence models; IGNORE targets (padding) count in neither the sum nor the mean."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=IGNORE, reduction=reduction)


class Loss(float):
    """A loss in nats per target token (the float itself, what training minimises) that also knows its bits per
    character: the same total in bits (nats / ln 2) over the characters of the text the targets stand for. For a
    char model the two differ by ln 2 alone; a BPE model's token stands for several characters."""

    bpc: float

    def __new__(cls, nats: float, bpc: float) -> Loss:
        loss = super().__new__(cls, nats)
        loss.bpc = bpc
        return loss


@torch.no_grad()
def evaluate(model: torch.nn.Module, examples: Examples, device: torch.device | str = "cpu",
             max_targets: int = 0) -> Loss:
    """Mean negative log-likelihood per target over the examples (all unless max_targets), the same measure for
    every kind of model, with its bits per character (`.bpc`)."""
    was_training = model.training
    model.eval()
    total, count, chars = 0.0, 0, 0
    for X, Y in examples.chunks(limit=max_targets or None):
        total += loss_fn(model(X.to(device)), Y.to(device), reduction="sum").item()
        targets = Y[Y != IGNORE]
        count += len(targets)
        chars += int(examples.token_chars[targets].sum())
    model.train(was_training)
    return Loss(total / max(count, 1), total / math.log(2) / max(chars, 1))


@torch.no_grad()
def calibrate_batchnorm(model: torch.nn.Module, examples: Examples, device: torch.device | str = "cpu",
                        limit: int = 1 << 18) -> None:
    """Set every BatchNorm's running statistics to those of (up to `limit` targets of) the training split, in one
    batch, as the lecture does after training."""
    from makemore.nn import BatchNorm1d

    bns = [m for m in model.modules() if isinstance(m, BatchNorm1d)]
    if not bns:
        return
    saved = [(bn.momentum, bn.training) for bn in bns]
    model.train()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    X, _ = examples.batch(torch.arange(examples.rows_for(limit)))
    model(X.to(device))
    for bn, (momentum, training) in zip(bns, saved, strict=True):
        bn.momentum = momentum
        bn.train(training)
