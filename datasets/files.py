"""Small helpers the readers, builders and CLIs share: sizes and durations in words, file checksums, the
memory available, the package's version, and the check that an output does not overwrite an input."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from datasets.errors import CubeError

__all__ = ["human_bytes", "plural", "duration", "sha256_file", "available_memory", "package_version",
           "check_inputs_outside", "BLOCK"]

BLOCK = 16 * 2**20  # bytes read at a time when hashing


def human_bytes(n: float) -> str:
    """``n`` bytes in B, KB, MB, GB or TB (powers of 1000), one decimal."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def plural(n: int, word: str) -> str:
    """``1 cell line``, ``2 cell lines`` (for summaries)."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def duration(seconds: float) -> str:
    """A duration in words short enough for a progress line: 45s, 3m05s, 2h07m."""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


def sha256_file(path: str | Path, block: int = BLOCK, on_bytes: Callable[[int], None] | None = None) -> str:
    """Streaming sha256 of a file; ``on_bytes(n)`` (if given) is called with each block's size."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return h.hexdigest()


def available_memory() -> int:
    """Bytes of memory available to this process (Linux MemAvailable, else physical memory)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def package_version() -> str:
    """The installed pertvae-bench version ("unknown" in a source checkout that is not installed)."""
    try:
        from importlib.metadata import version

        return version("pertvae-bench")
    except Exception:  # not installed (source checkout)
        return "unknown"


def check_inputs_outside(out: Path, inputs: Sequence[str | Path | None]) -> None:
    """Refuse an --out that is one of the inputs or a directory holding one (--overwrite would delete it)."""
    o = Path(out).resolve()
    for p in inputs:
        if p is None:
            continue
        q = Path(p).resolve()
        if q == o or o in q.parents:
            raise CubeError(f"{out}: --out {'is' if q == o else 'contains'} the input file {p}; "
                            f"choose another --out")
