"""Tokenizers: text <-> token ids, two kinds behind one interface.

- `Vocab` ("char"): one token per character of the data, the lectures' tokenizer.
- `BPE` ("bpe"): byte-level byte-pair encoding (GPT-2's scheme), trained with Hugging Face `tokenizers`. Its
  first 256 tokens are the bytes, so any text encodes and decodes back exactly.

In lines mode id 0 is the boundary token that starts and ends every item. Both kinds offer: size, boundary, itos
(a printable name per token), stoi, encode, decode, token_bytes (the UTF-8 bytes each token stands for, for
streaming), token_chars (the characters of text each token stands for, for bits per character) and
to_json/from_json (a BPE's record carries its tokenizer.json text; the checkpoint stores that as a file).
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import itertools
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from makemore.errors import MakemoreError

BOUNDARY = "."  # how token 0 is shown in lines mode, as in the lectures, when '.' is not a token of the data
BOUNDARY_FALLBACKS = ("<.>", "<|>", "<eos>")  # its name when the data has its own '.'
KINDS = ("char", "bpe")
MAX_VOCAB = 1 << 20  # a BPE vocabulary beyond a million tokens is surely a typo


def _boundary_name(names: Iterable[str]) -> str:
    taken = set(names)
    return next(n for n in (BOUNDARY, *BOUNDARY_FALLBACKS) if n not in taken)


@dataclass(frozen=True)
class Vocab:
    """Characters <-> ids. In lines mode id 0 is the boundary token that starts and ends every item."""

    chars: tuple[str, ...]  # the data's characters, sorted; ids follow them (after 0 in lines mode)
    boundary: bool
    kind = "char"

    @classmethod
    def build(cls, text: str, mode: str) -> Vocab:
        """`text` is every character the model must know: the items joined (lines) or the whole text."""
        return cls(tuple(sorted(set(text))), boundary=mode == "lines")

    @functools.cached_property
    def boundary_name(self) -> str:
        """How the boundary token is printed (plots, tables): '.' as in the lectures, unless the data has a '.' of
        its own (e.g. "st. john"), when the two would read alike."""
        return _boundary_name(self.chars)

    @property
    def itos(self) -> list[str]:
        return [self.boundary_name, *self.chars] if self.boundary else list(self.chars)

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

    def encode_array(self, text: str, chunk: int = 1 << 22) -> np.ndarray:
        """A long text as token ids in the smallest integer type that holds them (a 100 MB file stays ~100 MB),
        by table lookup of its code points, a chunk at a time."""
        if text.isascii() and self.size <= 256:
            # Most text: bytes.translate maps each byte to its id in one C pass (numpy's lookup takes 15x as long)
            raw = text.encode("ascii")
            if raw.translate(None, self._ascii[1]):  # characters the vocabulary does not have
                self.encode(text)  # raises, naming them
            return np.frombuffer(raw.translate(self._ascii[0]), dtype=np.uint8)
        dtype = np.uint8 if self.size <= 256 else np.int32
        out = np.empty(len(text), dtype=dtype)
        for start in range(0, len(text), chunk):
            piece = text[start:start + chunk]
            codes = code_points(piece)
            table = np.full(int(codes.max()) + 1, -1, dtype=np.int16 if dtype == np.uint8 else np.int32)
            for ch, i in self.stoi.items():
                if ord(ch) < len(table):
                    table[ord(ch)] = i
            ids = table[codes]
            if (ids < 0).any():
                self.encode(piece)  # raises, naming the unknown characters
            out[start:start + len(piece)] = ids
        return out

    @functools.cached_property
    def _ascii(self) -> tuple[bytes, bytes]:
        """bytes.translate's table (byte -> id) for the ASCII characters, and those characters."""
        table = bytearray(256)
        for c, i in self.stoi.items():
            if c.isascii():
                table[ord(c)] = i
        return bytes(table), "".join(c for c in self.chars if c.isascii()).encode()

    def decode(self, ids: Sequence[int]) -> str:
        itos = self.itos
        return "".join(itos[i] for i in ids if not (self.boundary and i == 0))

    @functools.cached_property
    def token_bytes(self) -> list[bytes]:
        return ([b""] if self.boundary else []) + [c.encode() for c in self.chars]

    @functools.cached_property
    def token_chars(self) -> np.ndarray:
        """One character a token; the boundary stands for the newline that ends an item in the file."""
        return np.ones(self.size, dtype=np.int64)

    def to_json(self) -> dict:
        return {"chars": "".join(self.chars), "boundary": self.boundary}

    @classmethod
    def from_json(cls, d: dict) -> Vocab:
        return cls(tuple(d["chars"]), bool(d["boundary"]))


def code_points(text: str) -> np.ndarray:
    """The characters' code points as an array: one byte each for ASCII text (most text; isascii() is free)."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


@functools.cache
def _byte_of() -> dict[str, int]:
    """GPT-2's byte-level alphabet, reversed: the printable character that stands for each byte in a byte-level
    BPE's vocabulary -> the byte. Printable bytes stand for themselves; the others are shifted past 255."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = dict(zip(printable, printable, strict=True))
    shifted = (b for b in range(256) if b not in chars)
    for n, b in enumerate(shifted):
        chars[b] = 256 + n
    return {chr(c): b for b, c in chars.items()}


# GPT-2's pre-tokenizer pattern (the one of Hugging Face's ByteLevel), spelled out for ASCII text: a contraction, a
# run of letters, of digits or of other symbols (each after an optional space), then whitespace. BPE never merges
# across these words, so a text's tokens are its words' tokens one after another.
_ASCII_WORDS = re.compile(r"'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]+| ?[0-9]+| ?[^\t\n\x0b\x0c\r A-Za-z0-9]+"
                          r"|[\t\n\x0b\x0c\r ]+(?![^\t\n\x0b\x0c\r ])|[\t\n\x0b\x0c\r ]+")
# A place where every text may be cut without changing its words: before a newline that comes before a character
# that is not whitespace. (There the pattern ends a run of whitespace anyway: the run's last character goes with
# what follows.) A text with a few non-ASCII characters is cut there, so that only the lines around them go to the
# library.
_CUT = re.compile(r"(?=\n\S)")
WORD_CACHE = 1 << 20  # words whose tokens a BPE keeps (cleared when full: a bound on memory, whatever the text)


class _WordTokens:
    """The tokens of each word met so far, end to end in one array (with each word's start and length), so that
    a text's tokens are gathered by numpy from its words' numbers, not appended one by one in Python. The arrays
    double when full: adding a few new words costs what they hold, not what the cache holds."""

    def __init__(self) -> None:
        self.number: dict[str, int] = {}
        self.tokens, self.start, self.length = (np.empty(1 << 10, np.int64) for _ in range(3))
        self.n_tokens = 0

    def add(self, words: list[str], tokens: list[list[int]]) -> None:
        n, m = len(self.number), self.n_tokens
        lengths = np.fromiter(map(len, tokens), np.int64, len(tokens))
        flat = np.fromiter(itertools.chain.from_iterable(tokens), np.int64, int(lengths.sum()))
        self.start, self.length = _fit(self.start, n + len(words)), _fit(self.length, n + len(words))
        self.tokens = _fit(self.tokens, m + len(flat))
        self.start[n:n + len(words)] = m + np.cumsum(lengths) - lengths
        self.length[n:n + len(words)] = lengths
        self.tokens[m:m + len(flat)] = flat
        self.n_tokens += len(flat)
        self.number.update(zip(words, range(n, n + len(words)), strict=True))

    def of(self, words: list[str]) -> np.ndarray:
        if not words:
            return np.empty(0, np.int64)
        seq = np.fromiter(map(self.number.__getitem__, words), np.int64, len(words))
        lengths = self.length[seq]
        ends = np.cumsum(lengths)
        # token i of the text is token (i - where its word begins in the text) of its word
        return self.tokens[np.arange(ends[-1]) + np.repeat(self.start[seq] - (ends - lengths), lengths)]


def _fit(a: np.ndarray, n: int) -> np.ndarray:
    """`a`, or a copy twice as long (or n long), when it cannot hold n entries."""
    if n <= len(a):
        return a
    bigger = np.empty(max(n, 2 * len(a)), a.dtype)
    bigger[:len(a)] = a
    return bigger


class BPE:
    """A byte-level BPE tokenizer (Hugging Face `tokenizers`), with the boundary token as id 0 in lines mode.

    Hugging Face's ids are shifted by one in lines mode rather than the boundary being one of its special tokens,
    which it would also match inside the text ('<|endoftext|>' typed in a name would become the boundary)."""

    kind = "bpe"

    def __init__(self, tokenizer_json: str, boundary: bool):
        import tokenizers as hf  # Hugging Face's package (an absolute import: not this module)

        try:
            spec = json.loads(tokenizer_json)
            if spec["model"]["type"] != "BPE" or spec["pre_tokenizer"]["type"] != "ByteLevel":
                raise ValueError("not a byte-level BPE")
            self._hf = hf.Tokenizer.from_str(tokenizer_json)
            pieces = sorted(self._hf.get_vocab().items(), key=lambda kv: kv[1])
            if [i for _, i in pieces] != list(range(len(pieces))):
                raise ValueError("its ids are not 0, 1, 2, ...")
            byte_of = _byte_of()
            token_bytes = [bytes(byte_of[c] for c in s) for s, _ in pieces]
        except Exception as e:  # (the library raises its own exception types)
            raise MakemoreError(f"not a usable tokenizer.json: {str(e).splitlines()[0][:200] if str(e) else e!r}") \
                from None
        self.json, self.boundary = tokenizer_json, boundary
        self.token_bytes = ([b""] if boundary else []) + token_bytes
        pre = spec["pre_tokenizer"]
        # Long texts' ASCII stretches are encoded a word at a time through a cache (see encode_many) when the
        # text reaches the BPE only through GPT-2's pattern, as in the tokenizers `train` makes.
        self._by_words = (spec.get("normalizer") is None and pre.get("use_regex", True)
                          and not pre.get("add_prefix_space", False))
        self._words = _WordTokens()

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, boundary: bool) -> BPE:
        """Learn merges from `texts` (pieces of the training split) until there are `vocab_size` tokens (the
        boundary included) or nothing left to merge."""
        import tokenizers as hf

        check_vocab_size(vocab_size, boundary)
        tok = hf.Tokenizer(hf.models.BPE())
        tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = hf.trainers.BpeTrainer(vocab_size=vocab_size - boundary, show_progress=False,
                                         initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(texts, trainer)
        return cls(tok.to_str(), boundary)

    @property
    def size(self) -> int:
        return len(self.token_bytes)

    @functools.cached_property
    def itos(self) -> list[str]:
        """Each token's text ('\ufffd' for the bytes of a character cut between tokens)."""
        names = [b.decode("utf-8", "replace") for b in self.token_bytes]
        if self.boundary:
            names[0] = _boundary_name(names[1:])
        return names

    @property
    def boundary_name(self) -> str:
        return self.itos[0] if self.boundary else BOUNDARY

    @functools.cached_property
    def stoi(self) -> dict[str, int]:
        return {s: i for i, s in reversed(list(enumerate(self.itos)))}  # (the first id of a repeated name)

    def encode(self, s: str) -> list[int]:
        ids = self._hf.encode(s).ids
        return [i + 1 for i in ids] if self.boundary else ids

    def encode_many(self, texts: list[str]) -> list[np.ndarray]:
        """Several texts at once. ASCII stretches word by word, each distinct word encoded once (a text repeats
        most of its words: ~4x the library's own speed on English); the rest by the library, on all cores."""
        if not self._by_words:
            return self._library(texts)
        parts = [[text] if text.isascii() else ["".join(g) for _, g in itertools.groupby(_CUT.split(text),
                                                                                          key=str.isascii)]
                 for text in texts]
        rest = iter(self._library([s for p in parts for s in p if not s.isascii()]))
        return [np.concatenate([np.empty(0, np.int64),
                                *(self._encode_words(s) if s.isascii() else next(rest) for s in p)]) for p in parts]

    def _library(self, texts: list[str]) -> list[np.ndarray]:
        """The texts encoded by Hugging Face's library itself, on all cores (its own threads)."""
        return [np.asarray(e.ids, dtype=np.int64) + self.boundary for e in self._hf.encode_batch_fast(texts)]

    def _encode_words(self, text: str) -> np.ndarray:
        words = _ASCII_WORDS.findall(text)
        new = list(set(words).difference(self._words.number))
        if len(self._words.number) + len(new) > WORD_CACHE:
            self._words = _WordTokens()
            new = list(set(words))
        if new:
            self._words.add(new, [e.ids for e in self._hf.encode_batch_fast(new)])
        ids = self._words.of(words)
        return ids + self.boundary

    def decode(self, ids: Sequence[int]) -> str:
        pieces = self.token_bytes
        return b"".join(pieces[i] for i in ids).decode("utf-8", "replace")

    @functools.cached_property
    def token_chars(self) -> np.ndarray:
        """The characters each token stands for: its bytes that start a UTF-8 character. A character cut between
        two tokens counts in the token of its first byte, so a token sequence counts the characters of its text."""
        counts = [sum((b & 0xC0) != 0x80 for b in piece) for piece in self.token_bytes]
        if self.boundary:
            counts[0] = 1  # the newline that ends an item
        return np.array(counts, dtype=np.int64)

    def to_json(self) -> dict:
        return {"tokenizer": "bpe", "boundary": self.boundary, "size": self.size, "json": self.json}


Tokenizer = Vocab | BPE


def check_vocab_size(vocab_size: int, boundary: bool) -> None:
    low = 256 + boundary
    if not (isinstance(vocab_size, int) and low <= vocab_size <= MAX_VOCAB):
        raise MakemoreError(f"--vocab-size must be between {low} (the bytes{' and the boundary' if boundary else ''})"
                            f" and {MAX_VOCAB:,}, not {vocab_size}")


def from_json(record: dict) -> Tokenizer:
    """The tokenizer a checkpoint or a store recorded (its to_json)."""
    if record.get("tokenizer", "char") == "bpe":
        if not isinstance(record.get("json"), str):
            raise MakemoreError("the record of a BPE tokenizer has no tokenizer.json")
        return BPE(record["json"], bool(record["boundary"]))
    return Vocab.from_json(record)


def digest(tok: Tokenizer) -> str:
    """A fingerprint of a tokenizer: two with the same digest give every text the same ids."""
    return hashlib.sha256(json.dumps(tok.to_json(), sort_keys=True).encode()).hexdigest()


class StreamDecoder:
    """Token ids in, text out, one token at a time, never part of a character: the first bytes of a character
    that a BPE splits between tokens wait for its last. The text is the same as decode() of all the ids."""

    def __init__(self, tok: Tokenizer):
        self.pieces = tok.token_bytes
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def __call__(self, token: int) -> str:
        return self._utf8.decode(self.pieces[token])

    def flush(self) -> str:
        """What is left at the end: a character cut short by the end of the sample becomes '\ufffd'."""
        return self._utf8.decode(b"", final=True)


def blocks(pieces: Iterable[str], size: int = 1 << 20) -> Iterator[str]:
    """The text of `pieces` again, cut after a newline about every `size` characters: BPE encodes each block on its
    own, so the same text gives the same tokens however it was read (whole, or streamed)."""
    held = ""
    for piece in pieces:
        held += piece
        if len(held) >= size:
            cut = held.rfind("\n", 0, len(held)) + 1 or len(held)
            yield held[:cut]
            held = held[cut:]
    if held:
        yield held


def encode_blocks(tok: Tokenizer, pieces: Iterable[str], batch: int = 8, processes: int = 1) -> Iterator[np.ndarray]:
    """A long text, given in pieces, as arrays of token ids, a few blocks at a time; a BPE's blocks in `processes`
    processes when there are more than one (its word-by-word encoding is Python, which one process runs on one
    core)."""
    if isinstance(tok, Vocab):
        for piece in pieces:
            yield tok.encode_array(piece)
        return
    if processes > 1 and sys.platform == "linux":
        yield from _encode_in_processes(tok, blocks(pieces), processes)
        return
    todo: list[str] = []
    for block in blocks(pieces):
        todo.append(block)
        if len(todo) == batch:
            yield from tok.encode_many(todo)
            todo = []
    if todo:
        yield from tok.encode_many(todo)


_worker_bpe: BPE | None = None  # a worker process's copy of the tokenizer (and its word cache)


def _start_worker(tokenizer_json: str, boundary: bool) -> None:
    global _worker_bpe
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread a process (and no warning about the fork)
    _worker_bpe = BPE(tokenizer_json, boundary)


def _encode_in_worker(block: str) -> np.ndarray:
    return _worker_bpe.encode_many([block])[0]  # type: ignore[union-attr]


def _encode_in_processes(tok: BPE, texts: Iterator[str], processes: int) -> Iterator[np.ndarray]:
    """The texts encoded by a pool of processes, in order, with at most two texts a process in flight (memory
    stays bounded whatever the file's size). Forked (Linux): a spawned process would import the caller's main
    module again, which a script or a notebook does not expect; the workers use neither torch nor the parent's
    threads."""
    import collections
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(processes, mp_context=context, initializer=_start_worker,
                             initargs=(tok.json, tok.boundary)) as pool:
        pending: collections.deque = collections.deque()
        try:
            for text in texts:
                pending.append(pool.submit(_encode_in_worker, text))
                if len(pending) >= 2 * processes:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()
