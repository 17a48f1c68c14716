"""What a failed write means for the user: a full disk, a quota, a read-only or unwritable place is said as
such, with what to do (never reported as a network failure or a damaged input)."""

from __future__ import annotations

import errno

DISK_ERRORS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
               errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied"}


def human_bytes(n: float) -> str:
    """``n`` bytes in B, KB, MB, GB or TB (powers of 1000), one decimal."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


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
