"""One training at a time per output folder: an exclusive lock on OUT/.makemore.lock, which holds the owner's pid.

On POSIX the lock is fcntl.flock: the kernel drops it when its process ends in any way (kill -9 included), so a
lock file left behind by a dead process never blocks the next run. Elsewhere the file is created with O_EXCL and
a lock whose pid is no longer running is taken over (a weaker guarantee, said so in the message).

Taking the lock is also the preflight check that --out is writable: it creates the folder and writes the pid, so
a read-only folder or a full disk is reported before any data is read.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from makemore.errors import MakemoreError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK = ".makemore.lock"


def _unwritable(out: Path, e: OSError) -> MakemoreError:
    return MakemoreError(f"cannot write to --out {out}: {e.strerror or e}")


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists but belongs to someone else
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or "x")
    except (OSError, ValueError):
        return None


class RunLock:
    """`with RunLock(out):` holds the folder's lock for the block; a second holder gets a one-line MakemoreError.

    A folder the lock had to create is removed again on release if nothing else was written into it."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.path = self.out / LOCK
        self.fd: int | None = None
        self.created = False

    def __enter__(self) -> RunLock:
        try:
            self.created = not self.out.exists()
            self.out.mkdir(parents=True, exist_ok=True)
            self._acquire_flock() if fcntl is not None else self._acquire_excl()
            os.ftruncate(self.fd, 0)
            os.write(self.fd, f"{os.getpid()}\n".encode())
            os.fsync(self.fd)  # a full disk shows here, before any data is read
        except OSError as e:
            self._release()
            raise _unwritable(self.out, e) from None
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._release()

    def _busy(self) -> MakemoreError:
        pid = _read_pid(self.path)
        who = f"process {pid}" if pid is not None else "another process"
        return MakemoreError(f"{self.out} is in use: {who} is training into it (lock {self.path})")

    def _acquire_flock(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise self._busy() from None
                raise
            # The holder before us unlinks the file before unlocking it: if we locked a file that is no longer
            # the one at self.path, a third process may hold the new one. Try again.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return
            os.close(fd)

    def _acquire_excl(self) -> None:
        for _ in range(2):
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                return
            except FileExistsError:
                pid = _read_pid(self.path)
                if pid is not None and _alive(pid):
                    raise self._busy() from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
        raise self._busy()

    def _release(self) -> None:
        if self.fd is not None:
            try:
                self.path.unlink(missing_ok=True)  # unlink while still locked (see _acquire_flock)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None
        if self.created:
            try:
                self.out.rmdir()  # only succeeds if empty: a run that failed before writing anything leaves nothing
            except OSError:
                pass


def locked(out: str | Path):
    """The folder's lock for this process; under torchrun only rank 0 takes it (rank 0 alone writes there, and
    the other ranks of the same run must not be refused as a second training)."""
    import contextlib

    if os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext()
    return RunLock(out)
