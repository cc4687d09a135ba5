"""Reading text, the character vocabulary, the splits, and the (context -> next character) examples.

Every model sees the data the same way: a 1-D stream of token ids and the positions in it that are
prediction targets. The context of a target at position p is stream[p - block_size : p]. In `lines` mode each
item is preceded by block_size boundary tokens (id 0, shown as '.') and followed by one, so a context never
reaches into the previous item and the examples are exactly the lectures' (context '...' -> 'e', ...).
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from makemore.errors import MakemoreError

if TYPE_CHECKING:
    import torch

Mode = Literal["lines", "text"]
BOUNDARY = "."  # how token 0 is shown in lines mode, as in the lectures
BUNDLED = {"names": "datasets/names.txt"}
SPLITS = ("train", "val", "test")


def resolve_path(data: str) -> str:
    """Map a bundled dataset name ('names') to its file inside the package; anything else is a path."""
    if data in BUNDLED:
        return str(resources.files("makemore").joinpath(BUNDLED[data]))
    return data


def read_text(data: str) -> tuple[str, str]:
    """Return (text, sha256 of the bytes). Every way a file can be unusable is a MakemoreError."""
    path = Path(resolve_path(data))
    if not path.exists():
        raise MakemoreError(f"data file not found: {data}")
    if path.is_dir():
        raise MakemoreError(f"data path is a directory, not a file: {data}")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise MakemoreError(f"cannot read {data}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MakemoreError(f"{data} is not UTF-8 text (bad byte at offset {e.start})") from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if not text.strip():
        raise MakemoreError(f"{data} is empty")
    return text, hashlib.sha256(raw).hexdigest()


def detect_mode(text: str) -> Mode:
    """'lines' for lists of short items (names, words), 'text' for prose and code.

    Prose and code have blank lines between paragraphs and long lines; lists have neither.
    """
    lines = text.strip("\n").split("\n")
    items = [ln for ln in lines if ln.strip()]
    blank_share = 1 - len(items) / len(lines)
    mean_len = sum(len(ln) for ln in items) / len(items)
    return "lines" if blank_share < 0.01 and mean_len <= 32 else "text"


def split_items(text: str) -> list[str]:
    return [ln.strip() for ln in text.split("\n") if ln.strip()]


@dataclass(frozen=True)
class Vocab:
    """Characters <-> ids. In lines mode id 0 is the boundary token that starts and ends every item."""

    chars: tuple[str, ...]  # the data's characters, sorted; ids follow them (after 0 in lines mode)
    boundary: bool

    @classmethod
    def build(cls, text: str, mode: Mode) -> Vocab:
        """`text` is every character the model must know: the items joined (lines) or the whole text."""
        return cls(tuple(sorted(set(text))), boundary=mode == "lines")

    @property
    def itos(self) -> list[str]:
        return [BOUNDARY, *self.chars] if self.boundary else list(self.chars)

    @functools.cached_property
    def stoi(self) -> dict[str, int]:
        offset = 1 if self.boundary else 0
        return {c: i + offset for i, c in enumerate(self.chars)}

    @property
    def size(self) -> int:
        return len(self.chars) + self.boundary

    def encode(self, s: str) -> list[int]:
        stoi = self.stoi
        unknown = sorted({c for c in s if c not in stoi})
        if unknown:
            shown = "".join(unknown)
            raise MakemoreError(f"characters not in the model's vocabulary: {shown!r}")
        return [stoi[c] for c in s]

    def decode(self, ids: Sequence[int]) -> str:
        itos = self.itos
        return "".join(itos[i] for i in ids if not (self.boundary and i == 0))

    def to_json(self) -> dict:
        return {"chars": "".join(self.chars), "boundary": self.boundary}

    @classmethod
    def from_json(cls, d: dict) -> Vocab:
        return cls(tuple(d["chars"]), bool(d["boundary"]))


@dataclass(frozen=True)
class Corpus:
    """A file read in one mode and split: items (lines mode) or text pieces (text mode) per split."""

    mode: Mode
    splits: dict[str, list[str]]  # split -> items; in text mode a one-element list holding the text
    vocab: Vocab
    fingerprint: str
    source: str

    def items(self, split: str) -> list[str]:
        if split == "all":
            pieces = [x for s in SPLITS for x in self.splits.get(s, [])]
            return pieces if self.mode == "lines" else ["".join(pieces)]  # text: one stream, no lost joins
        if split not in self.splits:
            raise MakemoreError(f"no {split!r} split in {self.mode} mode (have: {', '.join(self.splits)})")
        return self.splits[split]


def load_corpus(data: str, mode: str = "auto", seed: int = 42, vocab: Vocab | None = None) -> Corpus:
    """Read a file and split it: lines mode shuffles items with random.Random(seed) then 80/10/10 (the
    lectures' split when seed=42); text mode takes the first 90% for train and the last 10% for val."""
    text, fingerprint = read_text(data)
    if mode == "auto":
        mode = detect_mode(text)
    if mode not in ("lines", "text"):
        raise MakemoreError(f"unknown data mode {mode!r} (use lines, text or auto)")
    if mode == "lines":
        items = split_items(text)
        alphabet = "".join(items)
        random.Random(seed).shuffle(items)
        n1, n2 = int(0.8 * len(items)), int(0.9 * len(items))
        splits = {"train": items[:n1], "val": items[n1:n2], "test": items[n2:]}
    else:
        n = int(0.9 * len(text))
        splits = {"train": [text[:n]], "val": [text[n:]]}
        alphabet = text
    if vocab is None:
        vocab = Vocab.build(alphabet, mode)  # type: ignore[arg-type]
    elif vocab.boundary != (mode == "lines"):
        raise MakemoreError(f"the model was trained in {'lines' if vocab.boundary else 'text'} mode, "
                            f"but {data} was read in {mode} mode (use --mode)")
    source = data if data in BUNDLED else str(Path(data).resolve())  # found again from any directory
    return Corpus(mode, splits, vocab, fingerprint, source)  # type: ignore[arg-type]


class Examples:
    """All (context, target) examples of some items, as a token stream and target positions."""

    # Materialise X and Y up front when they are small: indexing them is as cheap as a bare training loop.
    MATERIALISE_LIMIT = 64_000_000

    def __init__(self, items: list[str], vocab: Vocab, block_size: int):
        import torch

        self.block_size = block_size
        stream: list[int] = []
        targets: list[int] = []
        if vocab.boundary:
            for item in items:
                stream.extend([0] * block_size)
                start = len(stream)
                stream.extend(vocab.encode(item))
                stream.append(0)
                targets.extend(range(start, len(stream)))
        else:
            for text in items:
                offset = len(stream)
                stream.extend(vocab.encode(text))
                targets.extend(range(offset + block_size, len(stream)))
        self.stream = torch.tensor(stream, dtype=torch.long)
        self.targets = torch.tensor(targets, dtype=torch.long)
        self._offsets = torch.arange(-block_size, 0)
        self.X: torch.Tensor | None = None
        self.Y: torch.Tensor | None = None
        if len(targets) * block_size <= self.MATERIALISE_LIMIT:
            self.X, self.Y = self._gather(self.targets)

    def __len__(self) -> int:
        return len(self.targets)

    def _gather(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.stream[pos[:, None] + self._offsets], self.stream[pos]

    def batch(self, ix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Examples number ix: contexts (len(ix), block_size) and targets (len(ix),)."""
        if self.X is not None:
            return self.X[ix], self.Y[ix]
        return self._gather(self.targets[ix])

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        return self.batch(torch.randint(0, len(self), (batch_size,), generator=generator))

    def chunks(self, size: int = 65536, limit: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The first `limit` examples (default all) in order, `size` at a time."""
        import torch

        end = len(self) if limit is None else min(limit, len(self))
        for start in range(0, end, size):
            yield self.batch(torch.arange(start, min(start + size, end)))
