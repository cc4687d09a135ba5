"""Generation for every model: temperature, top-k, a prompt, and loading a trained model from its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from makemore import checkpoint, models
from makemore.data import Vocab
from makemore.errors import MakemoreError


@dataclass
class Loaded:
    model: models.LanguageModel
    vocab: Vocab
    ckpt: checkpoint.Checkpoint


def load_model(out: str | Path, which: str = "best", device: str | torch.device = "cpu") -> Loaded:
    """The model in a checkpoint directory, in eval mode; `which` is "best" (lowest val loss) or "last"."""
    ckpt = checkpoint.load(out, state=False)
    try:
        config = models.make_config(ckpt.model, **ckpt.config)
    except TypeError as e:
        raise MakemoreError(f"corrupt checkpoint in {out}: {e}") from None
    model = models.build(ckpt.model, config)
    weights = ckpt.best_weights if which == "best" and ckpt.best_weights is not None else ckpt.weights
    try:
        model.load_state_dict(weights)
    except RuntimeError:
        raise MakemoreError(f"corrupt checkpoint in {out}: the weights do not fit a {ckpt.model} model") from None
    model.to(device).eval()
    return Loaded(model, Vocab.from_json(ckpt.vocab), ckpt)


def _device(model: torch.nn.Module) -> torch.device:
    """Where the model lives (counting models have buffers only)."""
    return next(iter(model.parameters()), next(iter(model.buffers()), torch.empty(0))).device


@torch.no_grad()
def generate(model: models.LanguageModel, vocab: Vocab, n: int, *, prompt: str = "", temperature: float = 1.0,
             top_k: int | None = None, max_len: int | None = None,
             generator: torch.Generator | None = None) -> list[str]:
    """n samples, all drawn in one batch. Lines mode: an item starting with `prompt`, ended by the boundary
    token (or max_len characters). Text mode: `prompt` followed by max_len characters."""
    if not temperature > 0:  # also refuses NaN
        raise MakemoreError("--temperature must be > 0")
    if n < 0:
        raise MakemoreError("-n must be >= 0")
    if n == 0:
        return []
    if top_k is not None and top_k < 1:
        raise MakemoreError("--top-k must be >= 1")
    device = _device(model)
    T = model.block_size
    ids = vocab.encode(prompt)
    if vocab.boundary:
        pad = 0
        max_len = 64 if max_len is None else max_len
    else:  # no boundary token: start after a newline when the text has them, the usual start of a piece
        pad = vocab.stoi.get("\n", 0)
        max_len = 500 if max_len is None else max_len
    ctx = torch.tensor([pad] * T + ids, dtype=torch.long, device=device).repeat(n, 1)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    new: list[Tensor] = []
    for _ in range(max_len):
        logits = model(ctx[:, -T:]) / temperature
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)
        if vocab.boundary:
            nxt = nxt.masked_fill(done[:, None], 0)
            done |= nxt[:, 0] == 0
        new.append(nxt)
        ctx = torch.cat([ctx[:, -T:], nxt], dim=1)
        if done.all():
            break
    out = torch.cat(new, dim=1).tolist() if new else [[] for _ in range(n)]
    return [prompt + vocab.decode(_until_boundary(row, vocab)) for row in out]


def _until_boundary(row: list[int], vocab: Vocab) -> list[int]:
    return row[: row.index(0)] if vocab.boundary and 0 in row else row


def sample(loaded: Loaded, n: int, *, seed: int = 0, unique_against: set[str] | None = None,
           max_rounds: int = 20, **kw) -> list[str]:
    """n samples; with unique_against, only samples not in that set (drawing more rounds as needed)."""
    gen = torch.Generator(device=_device(loaded.model)).manual_seed(seed)
    if unique_against is None:
        return generate(loaded.model, loaded.vocab, n, generator=gen, **kw)
    kept: list[str] = []
    for _ in range(max_rounds):
        for s in generate(loaded.model, loaded.vocab, max(n, 16), generator=gen, **kw):
            if s and s not in unique_against and s not in kept:
                kept.append(s)
        if len(kept) >= n:
            break
    return kept[:n]
