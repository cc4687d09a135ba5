"""Lecture makemore 1: the bigram model, by counting and as a one-layer neural net.

Both are sequence models: each position's logits depend on that position's token alone, so a (B, T) batch
gives (B, T, V) logits, as lecture 7's bigram baseline on text does."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from makemore.errors import MakemoreError
from makemore.models.registry import LanguageModel, ModelConfig, lecture_generator, register


@dataclass(frozen=True)
class BigramCountsConfig(ModelConfig):
    smoothing: float = 1.0  # add-k: k fake counts on every pair, so no bigram has probability 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.smoothing) and self.smoothing >= 0):
            raise MakemoreError(f"smoothing must be a finite number >= 0, not {self.smoothing}")


@register("bigram-counts", BigramCountsConfig, "bigram probabilities from counts with add-k smoothing")
class BigramCounts(LanguageModel):
    kind = "sequence"
    trainable = False

    def __init__(self, config: BigramCountsConfig):
        super().__init__()
        self.config = config
        v = config.vocab_size
        self.register_buffer("counts", torch.zeros(v, v))

    def fit(self, X: Tensor, Y: Tensor) -> None:
        v = self.config.vocab_size
        keep = Y >= 0  # not padding
        pairs = torch.bincount(X[keep] * v + Y[keep], minlength=v * v)
        self.counts.copy_(pairs.view(v, v).to(self.counts.dtype))

    def log_probs(self) -> Tensor:
        p = self.counts + self.config.smoothing
        p[p.sum(1) == 0] = 1.0  # (smoothing 0) a character never followed in training: nothing known, uniform
        return torch.log(p / p.sum(1, keepdim=True))

    def forward(self, idx: Tensor) -> Tensor:
        # Log-probabilities are logits whose softmax is the count-based distribution itself.
        return self.log_probs()[idx]


@dataclass(frozen=True)
class BigramConfig(ModelConfig):
    l2: float = 0.01  # the lecture's regularisation, l2 * (W**2).mean(), pulling towards uniform
    init_seed: int = 2147483647


@register("bigram", BigramConfig, "neural bigram: one linear layer on one-hot characters")
class Bigram(LanguageModel):
    kind = "sequence"

    def __init__(self, config: BigramConfig):
        super().__init__()
        self.config = config
        v = config.vocab_size
        self.W = nn.Parameter(torch.randn(v, v, generator=lecture_generator(config.init_seed)))

    def forward(self, idx: Tensor) -> Tensor:
        # one_hot(idx) @ W picks row idx of W; indexing gives the same logits without the one-hot matmul.
        return self.W[idx]

    def penalty(self) -> Tensor:
        return self.config.l2 * (self.W**2).mean()


def count_bigrams(corpus) -> Tensor:
    """The (vocab x vocab) table of how often each character follows each other in every item of a corpus: the
    first figure of lecture 1."""
    from makemore.batches import SequenceExamples

    model = BigramCounts(BigramCountsConfig(vocab_size=corpus.vocab.size))
    model.fit(*SequenceExamples(corpus.items("all"), corpus.vocab, 1).all())
    return model.counts
