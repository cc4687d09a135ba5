"""A prepared token store: a text file tokenized once into two files of token ids (train, val) and store.json,
read back through np.memmap, so that training on a corpus of any size takes the memory of its batches only
(nanoGPT's prepare.py scripts, as one library function).

The file is streamed in chunks; the ids go to disk as they are made, in the smallest type that holds the
vocabulary (uint8 for most character sets: half the bytes of nanoGPT's uint16 to write and to read; uint16; uint32
beyond 65,536 tokens) and the split is the in-memory one (the first 90% of the tokens for train), so a run
on the store and a run on the file see the same tokens. The token files carry a fresh name each time and
store.json, written last and atomically, names them: a kill or a full disk at any moment leaves the previous
store whole (or none), never a store that looks complete and is not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from makemore import tokenizers
from makemore.atomic import atomic_write
from makemore.data import Corpus, _path, _pieces, _scan, training_sample
from makemore.errors import MakemoreError
from makemore.tokenizers import BPE, Tokenizer, Vocab

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("makemore")
FORMAT = "makemore-store/1"
META = "store.json"
SPLITS = ("train", "val")
EDGE = 1 << 20  # bytes at each end of a token file that its fingerprint covers (a full checksum reads it all)
# A text file at least this large trains from a store prepared once in the run folder (train_store), not from
# memory: beyond it the in-memory ids and their one-off copies (a BPE's int64s) cost more than a pass to disk.
AUTO_BYTES = 256 << 20


def is_store(path: str | Path) -> bool:
    return (Path(path) / META).is_file()


class _Meter:
    """Takes the file's bytes as they are read (data._pieces' digest hook): their sha256 (unless a first pass
    took it), and the progress bar."""

    def __init__(self, bar, sha256: str | None):
        self.sha, self.known, self.bar = hashlib.sha256(), sha256, bar

    def hexdigest(self) -> str:
        return self.known or self.sha.hexdigest()

    def update(self, raw: bytes) -> None:
        if self.known is None:
            self.sha.update(raw)
        if self.bar is not None:
            self.bar.update(len(raw))


def _bar(enabled: bool, total: int, what: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=what, unit="B", unit_scale=True, unit_divisor=1024, dynamic_ncols=True,
                mininterval=0.5)  # (MB/s)


def prepare(data: str, out: str | Path, *, tokenizer: str = "char", vocab_size: int | None = None,
            vocab: Tokenizer | None = None, progress: bool = True) -> Path:
    """Tokenize the text file `data` into the store folder `out` with `vocab` (a trained model's tokenizer), else a
    new one: "char", or "bpe" with `vocab_size` tokens learned from the training split (its first
    data.BPE_SAMPLE characters). Returns the path of store.json."""
    path, out = _path(data), Path(out)
    size = path.stat().st_size
    sha256 = None
    if vocab is None:
        if tokenizer == "bpe":
            vocab = BPE.train(training_sample(data), vocab_size, boundary=False)  # type: ignore[arg-type]
        elif tokenizer == "char":
            scan = _scan(data)  # a first pass: every character of the file
            vocab, sha256 = Vocab.build("".join(scan.chars), "text"), scan.sha256
        else:
            raise MakemoreError(f"unknown tokenizer {tokenizer!r} (use char or bpe)")
    if vocab.boundary:
        raise MakemoreError("a store holds one continuous text: lines data (names, words) trains from its file")
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32) if vocab.size <= np.iinfo(t).max + 1)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MakemoreError(f"cannot make the store folder {out}: {e.strerror or e}") from None
    _remove_leftovers(out)
    token = secrets.token_hex(4)
    names = {s: f"{s}-{token}.bin" for s in SPLITS}
    tmp = out / f".tokens-{token}.tmp"
    bar = _bar(progress, size, f"tokenizing {path.name}")
    meter = _Meter(bar, sha256)
    try:
        n = 0
        with open(tmp, "wb") as f:
            for ids in tokenizers.encode_blocks(vocab, _pieces(data, meter), processes=_processes(vocab, size)):
                f.write(np.ascontiguousarray(ids, dtype=dtype).data)
                n += len(ids)
        if n == 0:
            raise MakemoreError(f"{data} is empty")
        counts = {"train": int(0.9 * n), "val": n - int(0.9 * n)}
        _split(tmp, out / names["train"], out / names["val"], counts["train"] * np.dtype(dtype).itemsize)
        meta = {"format": FORMAT, "tokenizer": vocab.to_json(), "tokenizer_sha256": tokenizers.digest(vocab),
                "dtype": np.dtype(dtype).name, "data": {"source": str(path.resolve()), "sha256": meter.hexdigest(),
                                                         "bytes": size, "mtime_ns": path.stat().st_mtime_ns,
                                                         "mode": "text"},
                "splits": {s: {"name": names[s], "tokens": counts[s], "edges": _edges(out / names[s])}
                           for s in SPLITS}}
        old = _named_files(out)
        atomic_write(out / META, (json.dumps(meta, indent=1) + "\n").encode())  # the commit point
    except OSError as e:  # a full disk, a folder that cannot be written: nothing half-made is left
        _remove(tmp, *(out / name for name in names.values()))
        raise MakemoreError(f"cannot write the store in {out}: {e.strerror or e}") from None
    except BaseException:
        _remove(tmp, *(out / name for name in names.values()))
        raise
    finally:
        if bar is not None:
            bar.close()
    _remove(*(out / name for name in old - set(names.values())))
    return out / META


def _processes(vocab: Tokenizer, size: int) -> int:
    """Processes that encode: one a core for a BPE over a file of 16 MB or more (starting them costs ~1 s)."""
    if isinstance(vocab, Vocab) or size < 16 << 20:
        return 1
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8))


def wants_store(data: str, mode: str) -> bool:
    """Whether training on `data` goes through a store: a text file (not a list of items) of AUTO_BYTES or more."""
    from makemore.data import BUNDLED, detect_mode

    path = Path(data)
    if data in BUNDLED or not path.is_file() or path.stat().st_size < AUTO_BYTES:
        return False
    if mode == "auto":
        mode = detect_mode(next(_pieces(data), ""))
    return mode == "text"


def train_store(data: str, folder: str | Path, *, tokenizer: str = "char", vocab_size: int | None = None,
                progress: bool = True) -> Corpus:
    """The store of `data` in `folder`, prepared on the first call and reused while the file (its path, size and
    modification time) and the tokenizer asked for are the same. Ranks of one DDP run take turns on a lock: the
    first prepares, the others find the store made."""
    from filelock import FileLock

    if tokenizer == "bpe":
        tokenizers.check_vocab_size(vocab_size, False)  # (said before anything is written)
    elif tokenizer != "char":
        raise MakemoreError(f"unknown tokenizer {tokenizer!r} (use char or bpe)")
    path, folder = _path(data), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".prepare.lock"):
        if not _current(folder, path, tokenizer, vocab_size):
            logger.info(f"{data} is {path.stat().st_size / 2**20:,.0f} MB: tokenizing it once into {folder} "
                        "(as `makemore prepare`); training reads it from there")
            prepare(data, folder, tokenizer=tokenizer, vocab_size=vocab_size, progress=progress)
        return load(folder)


def _current(folder: Path, path: Path, tokenizer: str, vocab_size: int | None) -> bool:
    try:
        meta = json.loads((folder / META).read_text())
        made, tok = meta["data"], meta["tokenizer"]
        stat = path.stat()
        same_file = (made["source"], made["bytes"], made.get("mtime_ns")) == (str(path.resolve()), stat.st_size,
                                                                             stat.st_mtime_ns)
        kind = tok.get("tokenizer", "char")  # (a char vocabulary's JSON names no kind)
        return same_file and kind == tokenizer and (kind == "char" or tok["size"] == vocab_size)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _split(tmp: Path, train: Path, val: Path, cut: int) -> None:
    """The token file becomes train (its first `cut` bytes) and val (the rest, copied: a tenth)."""
    with open(tmp, "rb") as src, open(val, "wb") as dst:
        src.seek(cut)
        while chunk := src.read(16 << 20):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    with open(tmp, "r+b") as f:
        f.truncate(cut)
        os.fsync(f.fileno())
    os.replace(tmp, train)


def _edges(path: Path) -> str:
    """A fingerprint of a token file that reads 2 MB of it whatever its size: its length, first and last MB."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        length = f.seek(0, os.SEEK_END)
        sha.update(str(length).encode())
        f.seek(0)
        sha.update(f.read(EDGE))
        f.seek(max(length - EDGE, 0))
        sha.update(f.read(EDGE))
    return sha.hexdigest()


def _named_files(out: Path) -> set[str]:
    try:
        return {s["name"] for s in json.loads((out / META).read_text())["splits"].values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def _remove_leftovers(out: Path) -> None:
    """Token files that no store.json names: a `prepare` killed before its commit leaves them."""
    keep = _named_files(out)
    for p in out.iterdir():
        if p.name not in keep and re.fullmatch(r"\.tokens-[0-9a-f]{8}\.tmp|(train|val)-[0-9a-f]{8}\.bin", p.name):
            p.unlink(missing_ok=True)


def _remove(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


class Tokens:
    """A split's token ids on disk, indexed like a tensor of them. Each read maps the file afresh, as nanoGPT
    does: a mapping kept open would count every page it ever touched in the process's memory."""

    def __init__(self, path: Path, n: int, dtype: np.dtype):
        self.path, self.n, self.dtype = path, n, dtype

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, ix: torch.Tensor) -> torch.Tensor:
        import torch  # (preparing a store needs no torch: see data.py)

        tokens = np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.n,))
        return torch.from_numpy(tokens[ix.numpy()].astype(np.int64))


def load(folder: str | Path, vocab: Tokenizer | None = None) -> Corpus:
    """The store in `folder` as a corpus whose splits are read from disk; with `vocab` (a trained model's), the
    store must have been made with that tokenizer. Each way it can be unusable is a one-line MakemoreError."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / META).read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"not a makemore store ({FORMAT})")
        tok = tokenizers.from_json(meta["tokenizer"])
        dtype = np.dtype(meta["dtype"])
        if dtype not in (np.uint8, np.uint16, np.uint32):
            raise ValueError(f"token type {dtype}")
        splits = {s: meta["splits"][s] for s in SPLITS}
        sha, source = meta["data"]["sha256"], meta["data"]["source"]
    except FileNotFoundError:
        raise MakemoreError(f"{folder} is a directory, not a file or a prepared store (no {META}: a `prepare` "
                            "that never finished? prepare it again)") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise MakemoreError(f"{folder / META} is damaged: {str(e)[:200]}") from None
    if tokenizers.digest(tok) != meta.get("tokenizer_sha256"):
        raise MakemoreError(f"{folder / META} is damaged: its tokenizer does not match its checksum")
    if vocab is not None and tokenizers.digest(vocab) != meta["tokenizer_sha256"]:
        raise MakemoreError(f"the store in {folder} was prepared with another tokenizer than the model's: prepare "
                            f"it again from {source} with the model's tokenizer")
    parts = {}
    for s, entry in splits.items():
        path = folder / str(entry.get("name"))
        if Path(entry["name"]).name != entry["name"] or not path.is_file():
            raise MakemoreError(f"the store in {folder} is missing its {s} tokens ({entry['name']})")
        n = entry["tokens"]
        if path.stat().st_size != n * dtype.itemsize:
            raise MakemoreError(f"{path} holds {path.stat().st_size:,} bytes, the store says {n:,} tokens of "
                                f"{dtype.itemsize} bytes (truncated or replaced)")
        if _edges(path) != entry["edges"]:
            raise MakemoreError(f"{path} is not the file this store wrote (its contents changed)")
        parts[s] = Tokens(path, n, dtype)
    return Corpus("text", parts, tok, sha, str(folder.resolve()))  # type: ignore[arg-type]
