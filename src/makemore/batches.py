"""How a split becomes training batches, for the two kinds of model (see models/registry.py):

- "context": (context of block_size tokens -> the next token). X is (N, block_size), Y is (N,).
- "sequence": a prediction at every position. X is (N, T), Y is (N, T), Y[:, t] the token after X[:, t];
  padding in Y is IGNORE and counts in no loss.

Both kinds hold the same targets (every character of every item, then the item's end; or every character of a
text after the first), so their per-character losses compare on one table. The model says which kind it is;
`examples_for` builds the matching one; the trainer, evaluation and diagnostics only use the shared methods.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from makemore.tokenizers import Tokenizer, encode_blocks

IGNORE = -1  # a target that is padding: cross_entropy(ignore_index=IGNORE) skips it
BOUNDARY_ID = 0  # lines mode: the token that starts and ends every item


def _token_ids(text: list[str] | Tensor, vocab: Tokenizer) -> Tensor:
    """Text mode: the corpus already holds the split as token ids; strings (tests, small uses) are encoded."""
    if not isinstance(text, list):  # ids in memory, or a prepared store's (store.Tokens)
        return text
    return torch.from_numpy(np.concatenate([np.empty(0, np.uint8), *encode_blocks(vocab, ["".join(text)])]))


def chars_per_target(examples: Examples, chunk: int = 1 << 22) -> float:
    """The mean number of characters a target stands for (1 with the char tokenizer), a chunk at a time: what
    turns a training batch's loss per token into bits per character."""
    chars = 0
    for start in range(0, examples.n_targets, chunk):
        chars += int(examples.token_chars[examples.target_ids(start, min(start + chunk, examples.n_targets))].sum())
    return chars / max(examples.n_targets, 1)


class ContextExamples:
    """Every (context, next token) pair of some items, as one token stream and the positions of the targets.
    The context of a target at position p is stream[p - block_size : p]. In lines mode each item is preceded by
    block_size boundary tokens and followed by one, so a context never reaches into the previous item and the
    examples are exactly the lectures' ('...' -> 'e', '..e' -> 'm', ...)."""

    kind = "context"
    MATERIALISE_LIMIT = 64_000_000  # X and Y built up front when small: indexing them is as cheap as a bare loop

    def __init__(self, items: list[str] | Tensor, vocab: Tokenizer, block_size: int):
        self.block_size = block_size
        self.token_chars = torch.from_numpy(vocab.token_chars)  # characters per token: bits per character
        self.targets: Tensor | None = None  # text mode: target i is at position block_size + i, not stored
        if vocab.boundary:
            stream: list[int] = []
            targets: list[int] = []
            for item in items:
                stream.extend([BOUNDARY_ID] * block_size)
                start = len(stream)
                stream.extend(vocab.encode(item))
                stream.append(BOUNDARY_ID)
                targets.extend(range(start, len(stream)))
            self.stream = torch.tensor(stream, dtype=torch.long)
            self.targets = torch.tensor(targets, dtype=torch.long)
        else:
            self.stream = _token_ids(items, vocab)
        self._offsets = torch.arange(-block_size, 0)
        self.X: Tensor | None = None
        self.Y: Tensor | None = None
        if len(self) * block_size <= self.MATERIALISE_LIMIT:
            self.X, self.Y = self._gather(self._positions(torch.arange(len(self))))

    def __len__(self) -> int:
        return len(self.targets) if self.targets is not None else max(len(self.stream) - self.block_size, 0)

    @property
    def n_targets(self) -> int:
        return len(self)

    def _positions(self, ix: Tensor) -> Tensor:
        return self.targets[ix] if self.targets is not None else ix + self.block_size

    def target_ids(self, start: int, end: int) -> Tensor:
        """The tokens of targets number start..end-1."""
        return self.stream[self._positions(torch.arange(start, end))].long()

    def _gather(self, pos: Tensor) -> tuple[Tensor, Tensor]:
        return self.stream[pos[:, None] + self._offsets].long(), self.stream[pos].long()

    def batch(self, ix: Tensor) -> tuple[Tensor, Tensor]:
        """Examples number ix: contexts (len(ix), block_size) and targets (len(ix),)."""
        if self.X is not None:
            return self.X[ix], self.Y[ix]
        return self._gather(self._positions(ix))

    def random_batch(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return self.batch(torch.randint(0, len(self), (batch_size,), generator=generator))

    def rows_for(self, n_targets: int) -> int:
        return min(len(self), n_targets)

    def chunks(self, size: int = 65536, limit: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """About `limit` targets (default all) in order, about `size` targets at a time."""
        end = len(self) if limit is None else self.rows_for(limit)
        for start in range(0, end, size):
            yield self.batch(torch.arange(start, min(start + size, end)))

    def all(self) -> tuple[Tensor, Tensor]:
        return self.batch(torch.arange(len(self)))


class SequenceExamples:
    """Rows of block_size positions with a target at each.

    Lines mode: each item is [boundary, c1, ..., cn] -> [c1, ..., cn, boundary], padded to block_size (inputs
    with the boundary token, targets with IGNORE); an item longer than a row continues in the next row, so
    every target is counted once. Text mode: windows of the stream; a random batch takes random windows
    (nanoGPT's way), evaluation takes consecutive windows, a fixed set that compares between runs."""

    kind = "sequence"

    def __init__(self, items: list[str] | Tensor, vocab: Tokenizer, block_size: int):
        self.block_size = T = block_size
        self.token_chars = torch.from_numpy(vocab.token_chars)  # characters per token: bits per character
        self.lines = vocab.boundary
        if self.lines:
            xs: list[list[int]] = []
            ys: list[list[int]] = []
            for item in items:
                seq = [BOUNDARY_ID, *vocab.encode(item), BOUNDARY_ID]
                for k in range(0, len(seq) - 1, T):
                    w = seq[k:k + T + 1]
                    pad = T + 1 - len(w)
                    xs.append(w[:-1] + [BOUNDARY_ID] * pad)
                    ys.append(w[1:] + [IGNORE] * pad)
            self.X = torch.tensor(xs, dtype=torch.long).view(-1, T)
            self.Y = torch.tensor(ys, dtype=torch.long).view(-1, T)
            self._n_targets = int((self.Y != IGNORE).sum())
        else:
            self.stream = _token_ids(items, vocab)
            self._n_targets = max(len(self.stream) - 1, 0)
            self._window = torch.arange(T)
            self._window_1 = torch.arange(T + 1)

    def __len__(self) -> int:
        """Rows: items' rows (lines), or consecutive windows covering the text."""
        if self.lines:
            return len(self.X)
        return -(-self._n_targets // self.block_size)

    @property
    def n_targets(self) -> int:
        return self._n_targets

    def target_ids(self, start: int, end: int) -> Tensor:
        """The tokens of targets number start..end-1 (lines: in row order, padding skipped)."""
        if self.lines:
            Y = self.Y.view(-1)
            return Y[Y != IGNORE][start:end]
        return self.stream[torch.arange(start + 1, end + 1)].long()

    def batch(self, ix: Tensor) -> tuple[Tensor, Tensor]:
        if self.lines:
            return self.X[ix], self.Y[ix]
        return self._windows(ix * self.block_size)

    def _windows(self, starts: Tensor) -> tuple[Tensor, Tensor]:
        pos = starts[:, None] + self._window
        n = len(self.stream)
        x = self.stream[pos.clamp(max=n - 1)].long()
        y = self.stream[(pos + 1).clamp(max=n - 1)].long()
        y[pos + 1 >= n] = IGNORE  # the last window may run past the end
        return x, y

    def random_batch(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        if self.lines:
            return self.batch(torch.randint(0, len(self), (batch_size,), generator=generator))
        high = len(self.stream) - self.block_size
        starts = torch.randint(0, max(high, 1), (batch_size,), generator=generator)
        if high < 1:  # a text no longer than one window: padded like the evaluation windows
            return self._windows(starts)
        # Every window and its shifted targets lie inside the stream: one gather of T+1 tokens, no clamps or masks.
        xy = self.stream[starts[:, None] + self._window_1].long()
        return xy[:, :-1], xy[:, 1:]

    def rows_for(self, n_targets: int) -> int:
        return min(len(self), -(-n_targets // self.block_size))

    def chunks(self, size: int = 16384, limit: int | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """About `size` targets at a time: a sequence model holds activations for every position of a chunk (a
        GPT's MLP alone ~8 KB a position), so chunks are smaller than for context models."""
        end = len(self) if limit is None else self.rows_for(limit)
        rows = max(1, size // self.block_size)
        for start in range(0, end, rows):
            yield self.batch(torch.arange(start, min(start + rows, end)))

    def all(self) -> tuple[Tensor, Tensor]:
        return self.batch(torch.arange(len(self)))


Examples = ContextExamples | SequenceExamples
KINDS: dict[str, type[ContextExamples] | type[SequenceExamples]] = {"context": ContextExamples,
                                                                     "sequence": SequenceExamples}


def examples_for(model, items: list[str] | Tensor, vocab: Tokenizer) -> Examples:
    """The examples a model learns from: of its kind, with its block size."""
    return KINDS[model.kind](items, vocab, model.block_size)
