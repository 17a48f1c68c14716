"""The console script ``pertvae-bench``: the heap in huge pages (harness.hugepages) before anything heavy.

:func:`main` re-executes the process once with glibc's huge-page tunable, then runs harness.cli. It imports
harness.cli only after the re-exec: that import loads torch (~1 s), which an exec would throw away and pay
again. ``python -m harness.entry`` runs the same as the console script.
"""

from __future__ import annotations

import sys

from harness import hugepages

INTERRUPTED = 130   # 128 + SIGINT, as the commands' own interrupt handling returns


def main() -> int:
    """``pertvae-bench``: :func:`harness.hugepages.reexec`, then :func:`harness.cli.main`.

    A Ctrl-C that no command handled (while torch and the command's modules are still being imported, the
    first seconds) is one line and exit 130, not a traceback through the import machinery."""
    hugepages.reexec()
    try:
        from harness import cli

        return cli.main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
