"""The one error type of bad dataset input (its own module, so every reader can raise it without importing
the cube module)."""

from __future__ import annotations

import errno

__all__ = ["CubeError", "path_too_long"]


class CubeError(ValueError):
    """Bad dataset input: every problem with a cube or its source files raises this or a subclass."""


def path_too_long(e: BaseException) -> str | None:
    """The one error line (without ``error:``) for a path the file system refuses as too long, or None for
    any other error. Every command meets such a path at its first look at it (an ``exists()``), deep in
    its own code; each command's guard (harness.entry, datasets.interrupt.run_module) says it instead of
    that traceback."""
    if not (isinstance(e, OSError) and e.errno == errno.ENAMETOOLONG):
        return None
    name = "" if e.filename is None else str(e.filename)
    short = name if len(name) <= 120 else f"{name[:60]}...{name[-50:]}"
    return (f"path too long for the file system ({len(name)} characters): {short}; give a shorter path (or "
            f"shorter folder and file names)")
