"""The console script ``pertvae-bench``: the heap in huge pages (harness.hugepages) before anything heavy.

:func:`main` re-executes the process once with glibc's huge-page tunable, then runs harness.cli. It imports
harness.cli only after the re-exec: that import loads torch (~1 s), which an exec would throw away and pay
again. ``python -m harness.entry`` runs the same as the console script.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

from datasets.errors import path_too_long
from harness import hugepages

INTERRUPTED = 130   # 128 + SIGINT, as the commands' own interrupt handling returns
BAD_INPUT = 2       # as the commands' own bad-input errors
BROKEN_PIPE = 141   # 128 + SIGPIPE, what a shell reports for a command whose output's reader went away


def main() -> int:
    """``pertvae-bench``: :func:`harness.hugepages.reexec`, then :func:`harness.cli.main`.

    A Ctrl-C that no command handled (while torch and the command's modules are still being imported, the
    first seconds) is one line and exit 130, not a traceback through the import machinery. Output piped to
    a reader that stops early (``pertvae-bench info RUN | head``) ends the command quietly with exit 141,
    not a BrokenPipeError traceback."""
    hugepages.reexec()
    return _guarded(lambda: importlib.import_module("harness.cli").main())


def run_module(module: str) -> int:
    """``python -m MODULE`` as the console script runs it: :func:`harness.hugepages.reexec`, then
    ``MODULE.main()`` imported as a module of its own, a Ctrl-C while it is imported or run being one line
    and exit 130 (and a closed stdout exit 141), as in :func:`main`. A command module calls it first thing
    when run as ``__main__``, before its heavy imports (torch, pandas, xarray: seconds), which a Ctrl-C
    otherwise ended with a traceback through the import machinery."""
    hugepages.reexec()
    return _guarded(lambda: importlib.import_module(module).main())


def _guarded(command: Callable[[], int]) -> int:
    """``command()``'s exit status; Ctrl-C -> 130 and one line, a reader gone from stdout -> 141, quietly, a
    path too long for the file system -> 2 and its one error line (datasets.errors.path_too_long)."""
    try:
        code = command()
        sys.stdout.flush()   # a closed pipe is found here when the output was still buffered
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED
    except BrokenPipeError:
        # stdout's reader is gone: point stdout at /dev/null so that Python's flush at exit cannot fail too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except OSError as e:
        if (line := path_too_long(e)) is None:
            raise
        print(f"error: {line}", file=sys.stderr, flush=True)
        return BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())
