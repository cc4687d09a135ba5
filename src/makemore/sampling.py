"""Making more: generation for every model, with temperature, top-k, a prompt, a seed, batches of samples,
samples that are new (not in the training data), and text streamed as it is made.

A context model sees the last block_size tokens at each step. A sequence model with a state (KV cache, hidden
state) is fed only the new token at each step; one without a state is re-run on its window. A cached model
with a bounded context, once its window is full, starts a new window on the last half of the tokens (the cache
is refilled from them): the uncached path follows the same windows, so both give the same output.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from makemore.batches import BOUNDARY_ID
from makemore.checkpoint import Trained
from makemore.data import Vocab
from makemore.errors import MakemoreError
from makemore.limits import MAX_LEN, MAX_SAMPLES
from makemore.models import LanguageModel
from makemore.tokenizers import StreamDecoder

DEFAULT_MAX_LEN = {"lines": 64, "text": 500}


def _device(model: torch.nn.Module) -> torch.device:
    """Where the model lives (counting models have buffers only)."""
    return next(iter(model.parameters()), next(iter(model.buffers()), torch.empty(0))).device


def pad_id(vocab: Vocab) -> int:
    """The token generation starts after: the item boundary (lines), or a newline, where a piece of text usually
    starts, when the text has one (text)."""
    return BOUNDARY_ID if vocab.boundary else vocab.stoi.get("\n", 0)


def _start(model: LanguageModel, vocab: Vocab, prompt: str) -> list[int]:
    """The tokens generation starts from: the prompt after pad_id(vocab); a context model sees a full window of
    that token first, as in training."""
    ids = vocab.encode(prompt)
    pad = pad_id(vocab)
    if model.kind == "context":
        return [pad] * model.block_size + ids
    return [pad] + ids if vocab.boundary or not ids else ids


class _NextLogits:
    """The logits (B, V) of the token after a growing history (B, L), one call per step."""

    def __init__(self, model: LanguageModel, use_cache: bool):
        self.model = model
        self.limit = model.context_limit
        self.cached = model.cached and use_cache
        self.start = 0  # first token of the current window
        self.fed = 0  # tokens already in the state
        self.state: Any = None

    def __call__(self, history: Tensor) -> Tensor:
        m, length = self.model, history.shape[1]
        if m.kind == "context":
            return m(history[:, -m.block_size:])
        if self.limit is not None and length - self.start > self.limit:
            # Window full: a model with a state restarts it on the last half (refilled once, then cheap again);
            # a stateless model simply slides.
            keep = max(self.limit // 2, 1) if m.cached else self.limit
            self.start, self.fed = length - keep, length - keep
            self.state = m.restart_cached(self.state)
        if self.cached:
            logits, self.state = m.forward_cached(history.narrow(1, self.fed, length - self.fed), self.state)
            self.fed = length
            return logits.select(1, -1)
        return m(history[:, self.start:])[:, -1]


def _distribution(logits: Tensor, temperature: float, top_k: int | None) -> Tensor:
    """What a step draws from: softmax(logits / temperature), with all but the top_k most likely set to 0."""
    logits = logits.float()
    if temperature < 1:  # (finite logits / T >= 1 cannot overflow)
        # The largest logit taken off first (softmax does it too, but after the division), and T kept within
        # float32: a temperature near 0 then gives the most likely token (0 / T = 0, the others -inf) instead of
        # inf / inf or 0 / 0 = NaN.
        logits = logits - logits.amax(-1, keepdim=True)
        temperature = max(temperature, torch.finfo(torch.float32).tiny)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:  # a k of the whole vocabulary keeps every token
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(logits, dim=-1)


def _pick(logits: Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None) -> Tensor:
    """One token per row (B,), drawn from _distribution."""
    probs = _distribution(logits, temperature, top_k)
    if math.isnan(probs.sum()):  # softmax gives a row of NaN when the logits overflow
        raise MakemoreError("the next-token probabilities are not numbers (NaN): the model's logits are not "
                            "finite (weights out of range)")
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def _check(n: int, temperature: float, top_k: int | None) -> None:
    if not temperature > 0:  # also refuses NaN
        raise MakemoreError("--temperature must be > 0")
    if not 0 <= n <= MAX_SAMPLES:
        raise MakemoreError(f"-n must be between 0 and {MAX_SAMPLES:,} (drawn in one batch), not {n}")
    if top_k is not None and top_k < 1:
        raise MakemoreError("--top-k must be >= 1")


def _max_len(vocab: Vocab, max_len: int | None) -> int:
    max_len = DEFAULT_MAX_LEN["lines" if vocab.boundary else "text"] if max_len is None else max_len
    if not 0 <= max_len <= MAX_LEN:
        raise MakemoreError(f"--max-len must be between 0 and {MAX_LEN:,}, not {max_len}")
    return max_len


@torch.inference_mode()  # no_grad without version counting: a token of a small model costs a fifth less
def _token_steps(model: LanguageModel, vocab: Vocab, n: int, prompt: str, temperature: float, top_k: int | None,
                 generator: torch.Generator | None, use_cache: bool, max_len: int) -> Iterator[Tensor]:
    """The next token of each of n samples (n,), step after step, max_len steps."""
    device = _device(model)
    start = torch.tensor(_start(model, vocab, prompt), dtype=torch.long, device=device)
    end = len(start) + max_len
    # The history grows in a buffer that doubles when full (up to what max_len can need): appending a token is a
    # copy of n ids, not of the whole history, and samples that end early (lines) never hold max_len columns.
    history = start.new_empty(n, min(end, len(start) + 64))
    history[:, :len(start)] = start
    next_logits = _NextLogits(model, use_cache)
    for length in range(len(start), end):
        nxt = _pick(next_logits(history.narrow(1, 0, length)), temperature, top_k, generator)
        if length == history.shape[1]:
            history = torch.cat([history, history.new_empty(n, min(length, end - length))], dim=1)
        history.select(1, length).copy_(nxt)
        yield nxt


def generate(model: LanguageModel, vocab: Vocab, n: int, *, prompt: str = "", temperature: float = 1.0,
             top_k: int | None = None, max_len: int | None = None, generator: torch.Generator | None = None,
             use_cache: bool = True) -> list[str]:
    """n samples, drawn together in one batch. Lines mode: an item starting with `prompt`, ended by the boundary
    token (or max_len new characters). Text mode: `prompt` followed by max_len characters."""
    _check(n, temperature, top_k)
    if n == 0:
        return []
    max_len = _max_len(vocab, max_len)
    done = torch.zeros(n, dtype=torch.bool, device=_device(model))
    rows: list[Tensor] = []
    for nxt in _token_steps(model, vocab, n, prompt, temperature, top_k, generator, use_cache, max_len):
        if vocab.boundary:
            nxt = nxt.masked_fill(done, BOUNDARY_ID)
            done |= nxt == BOUNDARY_ID
        rows.append(nxt)
        if vocab.boundary and done.all():
            break
    out = torch.stack(rows, dim=1).tolist() if rows else [[] for _ in range(n)]
    return [prompt + vocab.decode(_until_boundary(row, vocab)) for row in out]


def _until_boundary(row: list[int], vocab: Vocab) -> list[int]:
    return row[: row.index(BOUNDARY_ID)] if vocab.boundary and BOUNDARY_ID in row else row


def stream(model: LanguageModel, vocab: Vocab, *, prompt: str = "", temperature: float = 1.0,
           top_k: int | None = None, max_len: int | None = None, generator: torch.Generator | None = None,
           use_cache: bool = True) -> Iterator[str]:
    """One sample, token by token as it is made (the prompt first), never part of a character; the same text as
    generate(n=1) with the same generator."""
    _check(1, temperature, top_k)
    max_len = _max_len(vocab, max_len)
    vocab.encode(prompt)  # a character the model never saw is an error before anything is printed
    if prompt:
        yield prompt
    decoder = StreamDecoder(vocab)
    for nxt in _token_steps(model, vocab, 1, prompt, temperature, top_k, generator, use_cache, max_len):
        tok = int(nxt[0])
        if vocab.boundary and tok == BOUNDARY_ID:
            break
        if text := decoder(tok):
            yield text
    if text := decoder.flush():
        yield text


@torch.no_grad()
def next_token_probs(model: LanguageModel, vocab: Vocab, prompt: str = "", temperature: float = 1.0,
                     top_k: int | None = None) -> list[tuple[str, float]]:
    """The distribution the next character after `prompt` is drawn from, as (printed name, probability) for
    every token in vocabulary order: the sampling loop's one step, made visible."""
    _check(1, temperature, top_k)
    history = torch.tensor([_start(model, vocab, prompt)], dtype=torch.long, device=_device(model))
    probs = _distribution(_NextLogits(model, use_cache=True)(history), temperature, top_k)[0]
    return list(zip(vocab.itos, probs.tolist(), strict=True))


def make_more(trained: Trained, n: int, *, seed: int = 0, unique_against: set[str] | None = None,
              max_rounds: int = 20, **kw: Any) -> list[str]:
    """n samples from a trained model; with unique_against, only samples not in that set and not repeated
    (drawing more rounds as needed, at most max_rounds)."""
    gen = torch.Generator(device=_device(trained.model)).manual_seed(seed)
    if unique_against is None:
        return generate(trained.model, trained.vocab, n, generator=gen, **kw)
    kept: list[str] = []
    seen: set[str] = set()  # (the list keeps the order; membership in a list would be quadratic in n)
    for _ in range(max_rounds):
        for s in generate(trained.model, trained.vocab, max(n, 16), generator=gen, **kw):
            if s and s not in unique_against and s not in seen:
                kept.append(s)
                seen.add(s)
        if len(kept) >= n:
            break
    return kept[:n]

