"""Writing a file so that a reader (or a crash) never sees half of it: the one helper every writer uses.

Kept free of torch so that the scalar engine's drawings can use it too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], data: bytes | Callable[[BinaryIO], object]) -> None:
    """Write `data` (bytes, or a function that writes to a binary file) to a temporary file beside `path`, flush
    it to disk, then rename it over `path`. A failure leaves any old file intact and no temporary behind; an
    OSError (a full disk, a read-only folder) is raised naming `path` (never the temporary file), for the caller
    to say what was kept."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files 0600; give them the usual permissions
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno is not None:  # name the caller's file, not the hidden temporary
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
