"""The heap in transparent huge pages: glibc's ``glibc.malloc.hugetlb=1`` tunable in every process that
trains.

Why: beyond its products a training step passes over its ~2 million parameters, their gradients and Adam state
(30-40 MiB at the paper's sizes) several times, and in 4 KiB pages that is ~10,000 pages, far more than the
TLB holds; under KVM each miss walks two page tables. With the tunable (glibc >= 2.35) malloc asks the kernel
for 2 MiB pages for its heap (``madvise``; the kernel's THP mode must be ``madvise`` or ``always``): a
compiled bf16 step took 0.86-0.90x its time (the VAE at latent 2; PertVAE at latent 100 0.83-0.97x; fp32
alike, benchmarks/test_hugepages.py), and the paper grid's dry-run estimate 0.87-0.89x.

glibc reads tunables once, when a process starts. So worker processes get the tunable in their spawn
environment (harness.cluster.worker_spawn_environ), and the command line (``pertvae-bench``,
``python -m harness.run`` and ``harness.cost``) re-executes itself once with it (:func:`reexec`), so that the
dry run's calibration and in-process runs (``--cluster none``) allocate as the workers do. A
``GLIBC_TUNABLES`` of the user's is kept, and one that sets ``glibc.malloc.hugetlb`` itself wins (``=0``
turns huge pages off).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ENV", "TUNABLE", "tunables", "with_tunable", "supported", "reexec"]

ENV = "GLIBC_TUNABLES"
TUNABLE = "glibc.malloc.hugetlb"
MIN_GLIBC = (2, 35)   # the first glibc with glibc.malloc.hugetlb
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def tunables(current: str | None) -> str:
    """``GLIBC_TUNABLES`` with ``glibc.malloc.hugetlb=1`` added to ``current`` (colon-separated name=value
    pairs), or ``current`` as it is when it already sets that tunable."""
    parts = [p for p in (current or "").split(":") if p]
    if any(p.split("=", 1)[0] == TUNABLE for p in parts):
        return ":".join(parts)
    return ":".join([*parts, f"{TUNABLE}=1"])


def with_tunable(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with :func:`tunables` of its ``GLIBC_TUNABLES``."""
    return {**env, ENV: tunables(env.get(ENV))}


def _glibc_at_least(version: str, least: tuple[int, int] = MIN_GLIBC) -> bool:
    try:
        return tuple(int(x) for x in version.split(".")[:2]) >= least
    except ValueError:
        return False


def supported(system: str | None = None, libc: tuple[str, str] | None = None, thp: str | None = None
              ) -> bool:
    """Whether the tunable can take effect here: Linux, glibc >= 2.35, and the kernel's THP mode not
    ``never`` (defaults: this machine's ``platform.system()``, ``platform.libc_ver()`` and THP_MODE)."""
    system = platform.system() if system is None else system
    name, version = platform.libc_ver() if libc is None else libc
    if system != "Linux" or name != "glibc" or not _glibc_at_least(version):
        return False
    if thp is None:
        try:
            thp = THP_MODE.read_text()
        except OSError:
            return False
    return "[never]" not in thp


def reexec() -> None:
    """Re-execute this process (``sys.orig_argv``, same interpreter, same pid) with the tunable added to its
    environment, once: a no-op where it is already there (so no loop), where it cannot take effect
    (:func:`supported`) or where the exec fails. Call it first thing in a command's entry point, never from a
    library function (it replaces the running program)."""
    env = with_tunable(os.environ)
    if env[ENV] == os.environ.get(ENV) or not supported():
        return
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    except OSError:
        return
