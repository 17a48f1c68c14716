"""Resume: SIGKILL the driver (and its LocalCluster) mid-run, rerun, nothing finished is recomputed."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from harness.run import main
from tests.e2e import (
    assert_same_numbers,
    load,
    n_status,
    reference,
    start_driver,
    tiny_args,
    tiny_cube,
    wait_for,
)

pytestmark = pytest.mark.timeout(600)


def _killed_midway(args: list[str], out, log) -> bool:
    """Start the driver, SIGKILL its process group once a fit is in the store; True if it died midway."""
    proc = start_driver(args, log)
    try:
        started = wait_for(lambda: n_status(out) >= 1, timeout=300, proc=proc, poll=0.02)
        assert started, log.read_text()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return n_status(out) < 48


def test_resume_after_killed_driver(tmp_path_factory, tmp_path):
    cube = tiny_cube(tmp_path_factory)
    # some, but not all, of the 48 fits done when the driver dies; on a busy machine the grid can finish
    # between two polls, so the kill is tried again on a fresh --out (the setup is retried, not the checks)
    for attempt in range(3):
        out = tmp_path / f"run{attempt}"
        args = tiny_args(cube, out, workers=2)
        if _killed_midway(args, out, tmp_path / f"first{attempt}.log"):
            break
    partial = load(out)
    done = partial.status.values == "done"
    assert 1 <= done.sum() < 48, f"kill came too late in 3 tries: {done.sum()} fits done"

    assert main(args) == 0
    final = load(out)
    assert (final.status.values[final.planned.broadcast_like(final.status).values] == "done").all()
    # the fits finished before the kill were not recomputed: same timing and same worker as first written
    np.testing.assert_array_equal(final.fit_seconds.values[done], partial.fit_seconds.values[done])
    assert (final.worker.values[done] == partial.worker.values[done]).all()
    # and the resumed grid has exactly the numbers of an undisturbed run
    assert_same_numbers(reference(tmp_path_factory.getbasetemp(), cube), final)
