"""Model names -> (config dataclass, model class). A model file registers itself; nothing else changes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from makemore.config import build as build_settings
from makemore.errors import MakemoreError


@dataclass(frozen=True)
class ModelConfig:
    """Integer settings are sizes and must be >= 1, except seeds (named *_seed)."""

    vocab_size: int = 27
    block_size: int = 1  # characters of context the model sees

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and not isinstance(value, bool) and not f.name.endswith("_seed") and value < 1:
                raise MakemoreError(f"{f.name} must be >= 1, not {value}")


class LanguageModel(nn.Module):
    """A character-level language model. `kind` says what it reads and predicts, and so which batches it is fed
    (batches.py); the loss, evaluation and sampling are the same code for both kinds:

    - "context": idx (B, block_size) -> logits (B, vocab_size) of the token after the context.
    - "sequence": idx (B, T), T <= block_size -> logits (B, T, vocab_size), position t predicting token t+1 from
      tokens 0..t only (causal).
    """

    config: ModelConfig
    kind: ClassVar[str] = "context"
    trainable: ClassVar[bool] = True  # False: fitted by fit() (counting), not by gradient descent
    manual_gradients: ClassVar[bool] = False  # True: forward_backward() fills .grad by hand, no autograd
    cached: ClassVar[bool] = False  # True: forward_cached() carries a state (KV cache, hidden state) in generation
    recurrent: ClassVar[bool] = False  # True: computes one position after another (small ops: one CPU thread)

    @property
    def block_size(self) -> int:
        return self.config.block_size

    def config_dict(self) -> dict[str, Any]:
        """The config as plain JSON data, as a checkpoint stores it."""
        return dataclasses.asdict(self.config)

    @property
    def context_limit(self) -> int | None:
        """The most tokens the model can look back on when generating (None: unbounded, as a recurrent net)."""
        return self.config.block_size

    def penalty(self) -> Tensor | None:
        """A regularisation term the trainer adds to the loss (not part of the reported NLL)."""
        return None

    def fit(self, X: Tensor, Y: Tensor) -> None:
        raise NotImplementedError

    def forward_backward(self, idx: Tensor, targets: Tensor) -> Tensor:
        """For manual_gradients models: the mean loss of the batch, with every parameter's .grad set by hand.
        The trainer calls it under torch.no_grad()."""
        raise NotImplementedError

    def forward_cached(self, idx: Tensor, state: Any) -> tuple[Tensor, Any]:
        """For cached sequence models: logits (B, t, V) for idx (B, t), the tokens that follow those already in
        `state` (None: nothing yet), and the state after them. Equal to forward() on the whole sequence."""
        raise NotImplementedError

    def restart_cached(self, state: Any) -> Any:
        """The state to start a new sequence from, in the same generation (same batch, same weights), given the
        old one (or None): None, or the old one emptied so that its buffers are used again."""
        return None


@dataclass(frozen=True)
class Entry:
    name: str
    config: type[ModelConfig]
    model: type[LanguageModel]
    help: str


MODELS: dict[str, Entry] = {}


def register(name: str, config: type[ModelConfig], help: str) -> Callable[[type], type]:
    def add(cls: type[LanguageModel]) -> type[LanguageModel]:
        if cls.kind not in ("context", "sequence"):
            raise TypeError(f"{cls.__name__}.kind must be 'context' or 'sequence'")
        MODELS[name] = Entry(name, config, cls, help)
        return cls

    return add


def get(name: str) -> Entry:
    if name not in MODELS:
        raise MakemoreError(f"unknown model {name!r} (choose from: {', '.join(sorted(MODELS))})")
    return MODELS[name]


def make_config(name: str, **fields: Any) -> ModelConfig:
    return build_settings(get(name).config, fields, f"model {name!r}")


def build(name: str, config: ModelConfig) -> LanguageModel:
    return get(name).model(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def lecture_generator(seed: int) -> torch.Generator:
    """The lectures draw every parameter from one generator seeded 2147483647, in a fixed order."""
    return torch.Generator().manual_seed(seed)
