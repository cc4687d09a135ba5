"""Sizes known before anything is allocated: a model is built on torch's "meta" device (shapes, no memory), so
`--set n_hidden=10**12` or a checkpoint whose config lies about its sizes is refused in one line instead of
failing inside the allocator (or swapping the machine to a halt)."""

from __future__ import annotations

import os
from typing import Any

from makemore.errors import MakemoreError

MAX_INT = 2**63 - 1  # every integer a checkpoint holds fits in 64 bits, as torch's seeds and counters do

MAX_SAMPLES = 100_000  # samples drawn in one batch: more would not fit in memory with any context
MAX_LEN = 1_000_000  # new tokens per sample


def is_whole(x: object, low: float = 0, high: float = MAX_INT) -> bool:
    """An int from low to high (bool is an int to Python, never a count or a seed here)."""
    return isinstance(x, int) and not isinstance(x, bool) and low <= x <= high


# Training holds each parameter about four times (weights, gradients, two AdamW moments), in float32.
BYTES_PER_TRAINED_VALUE = 16


def meta_model(name: str, config: dict[str, Any]):
    """The model `name` with these settings, built without memory; settings out of range are a MakemoreError."""
    import torch

    from makemore import models

    cfg = models.make_config(name, **config)
    try:
        with torch.device("meta"):
            return models.build(name, cfg)
    except MakemoreError:
        raise
    except (ValueError, OverflowError, RuntimeError, TypeError) as e:  # e.g. a seed beyond 64 bits
        raise MakemoreError(f"model {name!r}: a setting is out of range ({str(e).splitlines()[0]})") from None


def state_values(model) -> int:
    """Numbers in the model's state_dict (parameters and saved buffers): what a checkpoint's weights hold."""
    return sum(t.numel() for t in model.state_dict().values())


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on this system
        return None


def check_model(name: str, config: dict[str, Any]) -> None:
    """Refuse settings whose model would not fit in this machine's memory to train."""
    n = state_values(meta_model(name, config))
    memory = memory_bytes()
    if memory is not None and n * BYTES_PER_TRAINED_VALUE > memory:
        raise MakemoreError(f"model {name!r} with these settings has {n:,} parameters: training it needs about "
                            f"{n * BYTES_PER_TRAINED_VALUE / 1e9:,.0f} GB, this machine has {memory / 1e9:,.0f} GB")
