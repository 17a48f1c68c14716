"""Ctrl-C in a datasets command: one line and exit status 130, never a traceback.

:func:`run_module` is ``python -m datasets.build`` (``synthetic``, ``fetch``) as harness.entry.run_module
is for harness's commands, which datasets sits below and cannot import: the module hands itself off to it
before its heavy imports (numpy, xarray, zarr: seconds), so a Ctrl-C while they load is one line too; like
harness.entry it also ends quietly (141) when stdout's reader has gone, and says a path too long in one line.

After Ctrl-C, the command's one line and nothing else: no RuntimeWarning from a zarr write it cut short.
zarr's synchronous API makes a coroutine and hands it to zarr's own event-loop thread; a KeyboardInterrupt
that lands between the two leaves the coroutine never awaited, and Python warns when it is collected, often
as the process exits ("RuntimeWarning: coroutine 'AsyncGroup.update_attributes' was never awaited", seen
once in CI under `tests/datasets/test_bad_input_issue10.py`). The write it held was to a store the
interrupted command discards (a cube's temporary store) or resumes from (the result store), so the warning
tells the user nothing they can act on.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable

from datasets.errors import path_too_long

__all__ = ["BROKEN_PIPE", "INTERRUPTED", "TERMINATED", "Terminated", "guarded", "interrupt_code",
           "quiet_unawaited_coroutines", "raise_terminated", "run_module"]

INTERRUPTED = 130   # 128 + SIGINT, as a shell reports a command Ctrl-C ended
BROKEN_PIPE = 141   # 128 + SIGPIPE, as a shell reports a command whose output's reader went away
TERMINATED = 143    # 128 + SIGTERM, as a shell reports a command SIGTERM ended


class Terminated(KeyboardInterrupt):
    """SIGTERM (what Slurm and schedulers send): handled like Ctrl-C, exit 143."""


def raise_terminated(signum: int, frame: object) -> None:
    """A SIGTERM handler: :class:`Terminated` where the main thread is, as Ctrl-C raises KeyboardInterrupt."""
    raise Terminated()


def interrupt_code(e: KeyboardInterrupt) -> int:
    """The exit status a shell shows for the signal behind ``e``: 143 for SIGTERM, 130 for Ctrl-C."""
    return TERMINATED if isinstance(e, Terminated) else INTERRUPTED


def quiet_unawaited_coroutines() -> None:
    """Ignore "coroutine ... was never awaited" warnings for the rest of this process, and asyncio's and
    zarr's exit hook's own reports (:func:`_zarr_cleanup_quietly`): call it on Ctrl-C, as the command ends.
    A read or write cut short mid-way leaves tasks on zarr's loop, which zarr's exit hook stops under them
    ("Task was destroyed but it is pending!", "Task exception was never retrieved" with a 'cannot schedule
    new futures after shutdown' traceback)."""
    warnings.filterwarnings("ignore", message=r"coroutine .* was never awaited", category=RuntimeWarning)
    logging.getLogger("asyncio").disabled = True
    if (zarr_sync := sys.modules.get("zarr.core.sync")) is not None:
        atexit.unregister(zarr_sync.cleanup_resources)
        atexit.unregister(_zarr_cleanup_quietly)
        atexit.register(_zarr_cleanup_quietly)


def _zarr_cleanup_quietly() -> None:
    """zarr's exit hook without its reports of a loop the Ctrl-C left inside a step: it waits 0.2 s for the
    loop thread, then warns 'Thread did not finish cleanly' and fails to close the running loop
    ('Exception ignored in atexit callback ... Cannot close a running event loop'). The thread is a daemon:
    the process ends all the same."""
    zarr_sync = sys.modules["zarr.core.sync"]
    zarr_sync.logger.disabled = True
    with contextlib.suppress(RuntimeError):
        zarr_sync.cleanup_resources()


def run_module(module: str) -> int:
    """``MODULE.main()``'s exit status, MODULE imported only now, under :func:`guarded`."""
    return guarded(lambda: importlib.import_module(module).main())


def guarded(command: Callable[[], int]) -> int:
    """``command()``'s exit status; a Ctrl-C it did not handle (while its modules load, or before its own
    handler) -> "interrupted" on stderr and 130, a SIGTERM the same with 143 (it ended the process silently
    by the signal: ``run`` in its first seconds, ``report`` at any time); a path too long for the file system
    (datasets.errors.path_too_long) -> its one error line and 2; stdout's reader gone (``python -m
    datasets.fetch --list | head -1``) -> 141, quietly. harness.entry runs harness's commands under it too."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, raise_terminated) if main_thread else None
    try:
        code = command()
        sys.stdout.flush()   # a closed pipe is found here when the output was still buffered
        return code
    except BrokenPipeError:
        # point stdout at /dev/null so that Python's flush at exit cannot fail too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except KeyboardInterrupt as e:
        quiet_unawaited_coroutines()
        print("interrupted", file=sys.stderr, flush=True)
        return interrupt_code(e)
    except OSError as e:
        if (line := path_too_long(e)) is None:
            raise
        print(f"error: {line}", file=sys.stderr, flush=True)
        return 2
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
