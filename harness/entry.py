"""The console script ``pertvae-bench``: the heap in huge pages (harness.hugepages) before anything heavy.

:func:`main` re-executes the process once with glibc's huge-page tunable, then runs harness.cli. It imports
harness.cli only after the re-exec: that import loads torch (~1 s), which an exec would throw away and pay
again. ``python -m harness.entry`` runs the same as the console script.
"""

from __future__ import annotations

import os
import sys

from harness import hugepages

INTERRUPTED = 130   # 128 + SIGINT, as the commands' own interrupt handling returns
BROKEN_PIPE = 141   # 128 + SIGPIPE, what a shell reports for a command whose output's reader went away


def main() -> int:
    """``pertvae-bench``: :func:`harness.hugepages.reexec`, then :func:`harness.cli.main`.

    A Ctrl-C that no command handled (while torch and the command's modules are still being imported, the
    first seconds) is one line and exit 130, not a traceback through the import machinery. Output piped to
    a reader that stops early (``pertvae-bench info RUN | head``) ends the command quietly with exit 141,
    not a BrokenPipeError traceback."""
    hugepages.reexec()
    try:
        from harness import cli

        code = cli.main()
        sys.stdout.flush()   # a closed pipe is found here when the output was still buffered
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED
    except BrokenPipeError:
        # stdout's reader is gone: point stdout at /dev/null so that Python's flush at exit cannot fail too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE


if __name__ == "__main__":
    raise SystemExit(main())
