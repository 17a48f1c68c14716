"""The console script ``pertvae-bench``: the heap in huge pages (harness.hugepages) before anything heavy.

:func:`main` re-executes the process once with glibc's huge-page tunable, then runs harness.cli. It imports
harness.cli only after the re-exec: that import loads torch (~1 s), which an exec would throw away and pay
again. ``python -m harness.entry`` runs the same as the console script.
"""

from __future__ import annotations

from harness import hugepages


def main() -> int:
    """``pertvae-bench``: :func:`harness.hugepages.reexec`, then :func:`harness.cli.main`."""
    hugepages.reexec()
    from harness import cli

    return cli.main()


if __name__ == "__main__":
    raise SystemExit(main())
