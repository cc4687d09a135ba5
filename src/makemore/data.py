"""Reading text and the splits. (Tokenizers: tokenizers.py; a prepared store: store.py; batches: batches.py.)

Reading a file needs no torch (it is imported where token ids become tensors): `makemore prepare` then runs in
~30 MB rather than the ~270 MB that importing torch takes."""

from __future__ import annotations

import codecs
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from makemore.errors import MakemoreError
from makemore.limits import is_whole
from makemore.tokenizers import BOUNDARY, BOUNDARY_FALLBACKS, BPE, Tokenizer, Vocab  # noqa: F401 (used from here)

if TYPE_CHECKING:
    import torch

Mode = Literal["lines", "text"]
BUNDLED = {"names": "datasets/names.txt"}
SPLIT_SEED = 42  # the lectures' shuffle, random.Random(42), before the 80/10/10 split of lines
SPLITS = ("train", "val", "test")


def resolve_path(data: str) -> str:
    """Map a bundled dataset name ('names') to its file inside the package; anything else is a path."""
    if data in BUNDLED:
        return str(resources.files("makemore").joinpath(BUNDLED[data]))
    return data


def _path(data: str) -> Path:
    path = Path(resolve_path(data))
    if not path.exists():
        raise MakemoreError(f"data file not found: {data}")
    if path.is_dir():
        raise MakemoreError(f"data path is a directory, not a file: {data}")
    return path


def _pieces(data: str, digest=None, chunk: int = 1 << 20) -> Iterator[str]:
    """The file's text, a few MB at a time, checked as UTF-8, without a BOM and with CRLF as LF; the bytes go
    through `digest` as they are read. A file of any size passes through a bounded amount of memory."""
    path = _path(data)
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, held, first = 0, "", True
    try:
        with open(path, "rb") as f:
            while True:
                raw = f.read(chunk)
                if digest is not None:
                    digest.update(raw)
                try:
                    text = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as e:
                    raise MakemoreError(f"{data} is not UTF-8 text (bad byte at offset {offset + e.start})") from None
                offset += len(raw)
                if first:
                    text, first = text.removeprefix("\ufeff"), not text
                text = held + text
                held = "\r" if text.endswith("\r") and raw else ""  # its "\n" may be in the next chunk
                text = text[: len(text) - len(held)]
                if "\r" in text:
                    text = text.replace("\r\n", "\n")
                if text:
                    yield text
                if not raw:
                    return
    except OSError as e:
        raise MakemoreError(f"cannot read {data}: {e.strerror}") from None


def read_text(data: str) -> tuple[str, str]:
    """Return (text, sha256 of the bytes). Every way a file can be unusable is a MakemoreError."""
    digest = hashlib.sha256()
    text = "".join(_pieces(data, digest))
    if not text.strip():
        raise MakemoreError(f"{data} is empty")
    return text, digest.hexdigest()


@dataclass
class _Scan:
    sha256: str
    chars: set[str]
    n_chars: int


def _scan(data: str) -> _Scan:
    digest, chars, seen_ascii, n = hashlib.sha256(), set(), b"", 0
    for piece in _pieces(data, digest):
        # The ASCII characters already seen are dropped first, in one pass of bytes.translate (what is left is
        # valid UTF-8, usually empty): a set of a megabyte's characters takes 30x as long.
        new = set(piece.encode().translate(None, seen_ascii).decode())
        if new:
            chars |= new
            seen_ascii = bytes(sorted(ord(c) for c in chars if c.isascii()))
        n += len(piece)
    if all(c.isspace() for c in chars):
        raise MakemoreError(f"{data} is empty")
    return _Scan(digest.hexdigest(), chars, n)


def _encode_file(data: str, vocab: Vocab, n_chars: int) -> torch.Tensor:
    """The whole file as token ids, in the smallest integer type that holds them (1 byte a character for up to
    256 distinct characters), filled a chunk at a time."""
    import torch

    ids = np.empty(n_chars, dtype=np.uint8 if vocab.size <= 256 else np.int32)
    at = 0
    for piece in _pieces(data):
        ids[at:at + len(piece)] = vocab.encode_array(piece)
        at += len(piece)
    return torch.from_numpy(ids)


def detect_mode(text: str) -> Mode:
    """'lines' for lists of short items (names, words), 'text' for prose and code.

    Prose and code have blank lines between paragraphs and long lines; lists have neither.
    """
    lines = text.strip().split("\n")  # (blank or whitespace-only lines at either end say nothing)
    items = [ln for ln in lines if ln.strip()]
    if not items:
        return "lines"
    blanks = len(lines) - len(items)
    paragraphs = blanks >= 2 and blanks / len(lines) >= 0.01  # one stray blank line in a short list is not prose
    mean_len = sum(len(ln) for ln in items) / len(items)
    return "lines" if not paragraphs and mean_len <= 32 else "text"


def split_items(text: str) -> list[str]:
    return [ln.strip() for ln in text.split("\n") if ln.strip()]


@dataclass(frozen=True)
class Corpus:
    """A file read in one mode and split: items (lines mode) or token ids (text mode) per split."""

    mode: Mode
    splits: dict[str, list[str] | torch.Tensor]  # split -> items (lines) or the token ids of its text (text)
    vocab: Tokenizer
    fingerprint: str
    source: str
    seed: int = SPLIT_SEED  # the shuffle's seed (lines mode): with the file's checksum, it fixes the split
    stream: torch.Tensor | None = field(default=None, repr=False)  # text mode: the whole text's token ids

    def describe(self) -> dict:
        """What a checkpoint records to find and split the file again."""
        record = {"source": self.source, "mode": self.mode, "sha256": self.fingerprint, "split_seed": self.seed}
        if self.vocab.kind != "char":  # (char runs keep the record they always had)
            from makemore.tokenizers import digest

            record["tokenizer"] = digest(self.vocab)
        return record

    def items(self, split: str) -> list[str] | torch.Tensor:
        """A split's items (lines mode) or its token ids (text mode); "all" is the whole file."""
        if split == "all":
            if self.mode == "text" and self.stream is None:
                raise MakemoreError("a prepared store has no 'all' split (train or val)")
            return self.stream if self.stream is not None else [x for s in SPLITS for x in self.splits.get(s, [])]
        if split not in self.splits:
            raise MakemoreError(f"no {split!r} split in {self.mode} mode (have: {', '.join(self.splits)})")
        return self.splits[split]


MAX_ITEM = 100_000  # characters; lines mode is for short items, and a longer line is surely a text


BPE_SAMPLE = 32 << 20  # characters: a BPE learns its merges from at most the first 32 M of the training text


def load_corpus(data: str, mode: str = "auto", seed: int = SPLIT_SEED, vocab: Tokenizer | None = None,
                tokenizer: str = "char", vocab_size: int | None = None) -> Corpus:
    """Read a file and split it: lines mode shuffles items with random.Random(seed) then 80/10/10 (the
    lectures' split when seed=42); text mode takes the first 90% of the tokens for train and the last 10% for
    val, and holds the text as token ids only (a 100 MB file takes about 100 MB).

    The tokens are `vocab`'s (a trained model's), else a new tokenizer's: "char" (every character of the file)
    or "bpe" with `vocab_size` tokens, trained on the training split (text mode: its first BPE_SAMPLE
    characters). A directory is a store that `makemore.store.prepare` made."""
    if tokenizer not in ("char", "bpe"):
        raise MakemoreError(f"unknown tokenizer {tokenizer!r} (use char or bpe)")
    if tokenizer == "bpe" and vocab is None:
        from makemore.tokenizers import check_vocab_size

        check_vocab_size(vocab_size, mode == "lines")  # type: ignore[arg-type]
    if Path(data).is_dir() and data not in BUNDLED:
        from makemore import store

        return store.load(data, vocab)
    if mode == "auto":  # told by the first megabyte; then the mode's own reading is the only full pass
        head = next(_pieces(data), "")
        mode = detect_mode(head) if head.strip() else "text"
    if mode not in ("lines", "text"):
        raise MakemoreError(f"unknown data mode {mode!r} (use lines, text or auto)")
    if vocab is not None and vocab.boundary != (mode == "lines"):
        raise MakemoreError(f"the model was trained in {'lines' if vocab.boundary else 'text'} mode, "
                            f"but {data} was read in {mode} mode (use --mode)")
    if mode == "lines":
        text, sha = read_text(data)
        items = split_items(text)
        longest = max(items, key=len)
        if len(longest) > MAX_ITEM:
            raise MakemoreError(f"{data} has a line of {len(longest):,} characters: lines mode is for short items "
                                "(names, words); read it as one text with --mode text")
        if vocab is None and tokenizer == "char":
            vocab = Vocab.build("".join(items), "lines")
        random.Random(seed).shuffle(items)
        n1, n2 = int(0.8 * len(items)), int(0.9 * len(items))
        splits: dict = {"train": items[:n1], "val": items[n1:n2], "test": items[n2:]}
        if vocab is None:
            vocab = BPE.train(splits["train"], vocab_size, boundary=True)  # type: ignore[arg-type]
        stream = None
    else:
        if vocab is None and tokenizer == "bpe":
            vocab = BPE.train(training_sample(data), vocab_size, boundary=False)  # type: ignore[arg-type]
        if vocab is None or isinstance(vocab, Vocab):
            scan = _scan(data)
            vocab = vocab or Vocab.build("".join(scan.chars), "text")
            stream, sha = _encode_file(data, vocab, scan.n_chars), scan.sha256
        else:
            stream, sha = _encode_file_bpe(data, vocab)
        n = int(0.9 * len(stream))
        splits = {"train": stream[:n], "val": stream[n:]}  # views: no copy
    source = data if data in BUNDLED else str(Path(data).resolve())  # found again from any directory
    return Corpus(mode, splits, vocab, sha, source, seed, stream)  # type: ignore[arg-type]


def training_sample(data: str, limit: int = BPE_SAMPLE) -> Iterator[str]:
    """What a BPE learns from in text mode: the first 90% of the file (about the training split), at most `limit`
    characters of it."""
    limit = min(limit, int(0.9 * _path(data).stat().st_size) or 1)
    for piece in _pieces(data):
        yield piece[:limit]
        limit -= len(piece)
        if limit <= 0:
            return


def _encode_file_bpe(data: str, vocab: BPE) -> tuple[torch.Tensor, str]:
    import torch

    from makemore.tokenizers import encode_blocks

    digest = hashlib.sha256()
    arrays = list(encode_blocks(vocab, _pieces(data, digest)))
    ids = np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)
    if not len(ids) or all(c.isspace() for c in vocab.decode(np.unique(ids).tolist())):
        raise MakemoreError(f"{data} is empty")
    return torch.from_numpy(ids.astype(np.int32)), digest.hexdigest()


def split_seed(data: dict) -> int:
    """The shuffle's seed a checkpoint's `data` record holds (SPLIT_SEED in checkpoints older than the record)."""
    seed = data.get("split_seed", SPLIT_SEED)
    if not is_whole(seed):
        raise MakemoreError(f"corrupt checkpoint: the split seed {seed!r} is not a whole number")
    return seed


def training_corpus(data: dict, vocab: Tokenizer) -> Corpus:
    """The file a checkpoint was trained on (its `data` record), split as it was; refused if it changed since."""
    corpus = load_corpus(data["source"], data["mode"], seed=split_seed(data), vocab=vocab)
    if corpus.fingerprint != data.get("sha256"):
        raise MakemoreError(f"{data['source']} changed since the model was trained on it, so its splits are not the "
                            "training splits any more (`makemore eval --data FILE` evaluates on it anyway)")
    return corpus
