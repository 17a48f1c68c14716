"""What a failed write means for the user: a full disk, a quota, a read-only or unwritable place is said as
such, with what to do (never reported as a network failure or a damaged input); and a write that, cut short,
leaves the previous file whole (:func:`write_replacing`)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

from datasets.files import human_bytes

DISK_ERRORS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
               errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied"}


def write_failure(e: OSError, path: object, need: int | None, flag: str) -> str:
    """``<what> writing <path>: <what to do>`` for a write of ``path`` that failed with ``e``; ``need``: the
    bytes still to write (None: unknown); ``flag``: the option that puts the output elsewhere."""
    what = DISK_ERRORS.get(e.errno, e.strerror or str(e))
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        free = f"free at least {human_bytes(need)}" if need is not None and need > 0 else "free some space"
        return f"{what} writing {path}: {free} or use {flag} elsewhere"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{what} writing {path}: use {flag} on a disk you can write to"
    return f"{what} writing {path}: check the disk or use {flag} elsewhere"


def write_replacing(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then renamed over it: a write cut short (a full
    disk, a kill) leaves the previous file whole and no temporary file behind, where writing ``path`` itself
    left half of the new one (run.json) and a failed temporary one stayed (failures.csv, cell_lines.csv)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
