"""A real, tiny tmpfs for the full-disk and read-only tests: mounted where the tests run as root and may
mount (skipped elsewhere), unmounted after the test."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def mounted_tmpfs(mnt: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted with ``options`` (e.g. "size=64k", "size=1m,ro") at the new directory ``mnt``, for a
    fixture to ``yield from``; skips the test where it cannot mount."""
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs at ``tmp_path/tmpfs``."""
    yield from mounted_tmpfs(tmp_path / "tmpfs", "size=64k")
