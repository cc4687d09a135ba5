"""One training at a time per output folder: an exclusive lock on OUT/.makemore.lock (filelock's OS lock, which
the kernel drops when its process ends in any way, kill -9 included, so a lock left by a dead run never blocks
the next). The lock file holds the owner's pid, for the message a second run gets.

Taking the lock is also the preflight check that --out is writable: it creates the folder and writes the pid, so
a read-only folder or a full disk is reported before any data is read.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from makemore.errors import MakemoreError

LOCK = ".makemore.lock"


def _holder(path: Path) -> str:
    try:
        return f"process {int(path.read_text().strip())}"
    except (OSError, ValueError):
        return "another process"


@contextlib.contextmanager
def run_lock(out: str | Path) -> Iterator[None]:
    """Hold the folder's lock for the block; a second holder gets a one-line MakemoreError. A folder the lock had
    to create is removed again if the run wrote nothing into it."""
    out = Path(out)
    path = out / LOCK
    created = not out.exists()
    lock = FileLock(path, timeout=0)
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock.acquire()
        with open(path, "r+") as f:
            f.truncate()
            f.write(f"{os.getpid()}\n")
            f.flush()
            os.fsync(f.fileno())  # a full disk shows here, before any data is read
    except Timeout:
        raise MakemoreError(f"{out} is in use: {_holder(path)} is training into it (lock {path})") from None
    except OSError as e:
        _release(lock, created)
        raise MakemoreError(f"cannot write to --out {out}: {e.strerror or e}") from None
    try:
        yield
    finally:
        _release(lock, created)


def _release(lock: FileLock, created: bool) -> None:
    lock.release()
    path = Path(lock.lock_file)
    with contextlib.suppress(OSError):
        if created and [p.name for p in path.parent.iterdir()] in ([], [LOCK]):  # nothing written: no folder left
            path.unlink(missing_ok=True)
            path.parent.rmdir()


def locked(out: str | Path) -> contextlib.AbstractContextManager:
    """The folder's lock for this process; under torchrun only rank 0 takes it (rank 0 alone writes there, and
    the other ranks of the same run must not be refused as a second training)."""
    if os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext()
    return run_lock(out)
