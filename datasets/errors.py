"""The one error type of bad dataset input (its own module, so every reader can raise it without importing
the cube module)."""

from __future__ import annotations

__all__ = ["CubeError"]


class CubeError(ValueError):
    """Bad dataset input: every problem with a cube or its source files raises this or a subclass."""
