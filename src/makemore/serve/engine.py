"""The one door from the web playground into makemore's models.

Everything the server asks of a trained model goes through `Engine`; the rest of serve/ never imports makemore's
model code. Calls into makemore: `checkpoint.load_model` and the sampler (`sampling.make_more`,
`sampling.next_token_probs`, `sampling.stream`), the same code `makemore sample` runs, for every kind of model.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from makemore import sampling
from makemore.checkpoint import load_model
from makemore.errors import MakemoreError


class Engine:
    """A trained checkpoint, ready to sample from and to explain its next-character choices."""

    def __init__(self, out: str | Path, which: str = "best", threads: int | None = None) -> None:
        self.loaded = load_model(out, which)
        # A server runs requests side by side: one torch thread each beats threads fighting for cores.
        self.threads = threads
        vocab = self.loaded.vocab
        self.lines = vocab.boundary  # lines mode: items ended by the boundary token; else one continuous text
        self.itos = vocab.itos
        self.block_size = self.loaded.model.block_size
        self._pad = sampling.pad_id(vocab)  # the padding before the first character, as generate() uses it
        self._training: set[str] | None = None
        self._training_lock = threading.Lock()

    def info(self) -> dict[str, Any]:
        ckpt = self.loaded.ckpt
        return {"model": ckpt.model, "mode": "lines" if self.lines else "text", "vocab": self.itos,
                "boundary": self.itos[0] if self.lines else None, "block_size": self.block_size,
                "step": ckpt.step, "val_loss": ckpt.best.get("val"), "kind": self.loaded.model.kind,
                "context_limit": self.loaded.model.context_limit}

    def encode(self, prefix: str) -> list[int]:
        """The prefix as ids; a MakemoreError names any character the model never saw."""
        return self.loaded.vocab.encode(prefix)

    def training_items(self) -> set[str]:
        """The items of the training file, read once on first use (for "only new ones")."""
        if not self.lines:
            raise MakemoreError("'unique' needs a model trained on lines (items to compare samples against)")
        with self._training_lock:
            if self._training is None:
                self._training = set(self.loaded.corpus().items("all"))
        return self._training

    def sample(self, n: int, *, temperature: float = 1.0, top_k: int | None = None, prefix: str = "",
               seed: int | None = None, unique: bool = False, max_len: int | None = None) -> tuple[list[str], int]:
        """n samples starting with `prefix` and the seed that made them (a fresh one when none is given)."""
        self.encode(prefix)
        seed = random.randrange(2**31) if seed is None else seed
        against = self.training_items() if unique else None
        with self._torch_threads():
            items = sampling.make_more(self.loaded, n, seed=seed, unique_against=against, prompt=prefix,
                                       temperature=temperature, top_k=top_k, max_len=max_len)
        return items, seed

    def context(self, prefix: str) -> str:
        """The characters the next-character probabilities after `prefix` are computed from, as the sampler feeds
        them (padding shown as itos shows it). That depends on the kind of model:
        - a context model (MLP, WaveNet) sees a fixed window: its last block_size characters, padded at the start;
        - a recurrent model reads the whole prefix, one character at a time, through its hidden state;
        - any other sequence model (Transformer, bag of words, bigram) reads the prefix up to its context limit:
          past it, the sampler starts a new window (with a cache, on the last half of the limit)."""
        model = self.loaded.model
        ids = sampling._start(model, self.loaded.vocab, prefix)
        limit = model.context_limit
        if model.kind == "context":
            ids = ids[-model.block_size:]
        elif limit is not None and len(ids) > limit:
            ids = ids[-(max(limit // 2, 1) if model.cached else limit):]
        return "".join(self.itos[i] for i in ids)

    def next_probs(self, prefix: str, *, temperature: float = 1.0, top_k: int | None = None) -> list[float]:
        """P(next character | prefix) for every id in vocabulary order (itos); id 0 is the end in lines mode."""
        model, vocab = self.loaded.model, self.loaded.vocab
        with self._torch_threads():
            return [p for _, p in sampling.next_token_probs(model, vocab, prefix, temperature, top_k)]

    def stream(self, prefix: str, length: int, *, temperature: float = 1.0, top_k: int | None = None,
               seed: int | None = None) -> Iterator[str]:
        """Characters continuing `prefix`, one at a time, up to `length` (or the end of an item in lines mode):
        the sampler's own stream, so a client can show it as it comes."""
        self.encode(prefix)
        gen = torch.Generator().manual_seed(random.randrange(2**31) if seed is None else seed)
        pieces = sampling.stream(self.loaded.model, self.loaded.vocab, prompt=prefix, temperature=temperature,
                                 top_k=top_k, max_len=length, generator=gen)
        if prefix:
            next(pieces)  # the prompt itself comes first
        while True:  # (each piece under the thread setting: a server may resume the stream in another thread)
            with self._torch_threads():
                piece = next(pieces, None)
            if piece is None:
                return
            yield piece

    @contextlib.contextmanager
    def _torch_threads(self) -> Iterator[None]:
        """torch's thread count set to self.threads for one call, then put back: OpenMP keeps the count per
        thread, so the process's other threads keep theirs."""
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            if self.threads:
                torch.set_num_threads(before)
