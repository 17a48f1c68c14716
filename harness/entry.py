"""The console script ``pertvae-bench``: the heap in huge pages (harness.hugepages) before anything heavy.

:func:`main` re-executes the process once with glibc's huge-page tunable, then runs harness.cli. It imports
harness.cli only after the re-exec: that import loads torch (~1 s), which an exec would throw away and pay
again. ``python -m harness.entry`` runs the same as the console script.
"""

from __future__ import annotations

import importlib

from datasets.interrupt import guarded
from harness import hugepages


def main() -> int:
    """``pertvae-bench``: :func:`harness.hugepages.reexec`, then :func:`harness.cli.main`.

    A Ctrl-C that no command handled (while torch and the command's modules are still being imported, the
    first seconds) is one line and exit 130, not a traceback through the import machinery. Output piped to
    a reader that stops early (``pertvae-bench info RUN | head``) ends the command quietly with exit 141,
    not a BrokenPipeError traceback."""
    hugepages.reexec()
    return guarded(lambda: importlib.import_module("harness.cli").main())


def run_module(module: str) -> int:
    """``python -m MODULE`` as the console script runs it: :func:`harness.hugepages.reexec`, then
    ``MODULE.main()`` imported as a module of its own, a Ctrl-C while it is imported or run being one line
    and exit 130 (and a closed stdout exit 141), as in :func:`main`. A command module calls it first thing
    when run as ``__main__``, before its heavy imports (torch, pandas, xarray: seconds), which a Ctrl-C
    otherwise ended with a traceback through the import machinery."""
    hugepages.reexec()
    return guarded(lambda: importlib.import_module(module).main())


if __name__ == "__main__":
    raise SystemExit(main())
