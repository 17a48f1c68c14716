"""The console script ``pertvae-bench``: the heap in huge pages (harness.hugepages) before anything heavy.

:func:`main` re-executes the process once with glibc's huge-page tunable, then runs harness.cli. It imports
harness.cli only after the re-exec: that import loads torch (~1 s), which an exec would throw away and pay
again. ``python -m harness.entry`` runs the same as the console script.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from datasets.interrupt import guarded
from harness import hugepages

# When this command's process started, on time.perf_counter's clock (None: not run as a command, e.g. a test
# calling harness.run.main): set while :func:`main` or :func:`run_module` runs.
STARTED: float | None = None


def main() -> int:
    """``pertvae-bench``: :func:`harness.hugepages.reexec`, then :func:`harness.cli.main`.

    A Ctrl-C that no command handled (while torch and the command's modules are still being imported, the
    first seconds) is one line and exit 130, not a traceback through the import machinery. Output piped to
    a reader that stops early (``pertvae-bench info RUN | head``) ends the command quietly with exit 141,
    not a BrokenPipeError traceback."""
    hugepages.reexec()
    return _as_command(lambda: importlib.import_module("harness.cli").main())


def run_module(module: str) -> int:
    """``python -m MODULE`` as the console script runs it: :func:`harness.hugepages.reexec`, then
    ``MODULE.main()`` imported as a module of its own, a Ctrl-C while it is imported or run being one line
    and exit 130 (and a closed stdout exit 141), as in :func:`main`. A command module calls it first thing
    when run as ``__main__``, before its heavy imports (torch, pandas, xarray: seconds), which a Ctrl-C
    otherwise ended with a traceback through the import machinery."""
    hugepages.reexec()
    return _as_command(lambda: importlib.import_module(module).main())


def _as_command(main: Callable[[], int]) -> int:
    """``guarded(main)`` with :data:`STARTED` set to the process's start (/proc/self/stat, in clock ticks
    since boot; now where there is none), which the huge-pages exec keeps (same pid): run.json's start and
    the 'since the command started' of a run's last line were taken after the interpreter's start, the exec
    and the imports, 2.5 s late on a loaded host. Unset again after, for a caller in the same process."""
    global STARTED
    age = 0.0
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        age = max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    STARTED = time.perf_counter() - age
    try:
        return guarded(main)
    finally:
        STARTED = None


if __name__ == "__main__":   # as the imported module, whose STARTED harness.run reads
    raise SystemExit(importlib.import_module("harness.entry").main())
