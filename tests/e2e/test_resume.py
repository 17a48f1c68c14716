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


def test_resume_after_killed_driver(tmp_path_factory, tmp_path):
    cube = tiny_cube(tmp_path_factory)
    out = tmp_path / "run"
    args = tiny_args(cube, out, workers=2)
    proc = start_driver(args, tmp_path / "first.log")
    try:
        # wait until some, but not all, of the 48 fits are done
        started = wait_for(lambda: n_status(out) >= 10, timeout=300, proc=proc)
        assert started, (tmp_path / "first.log").read_text()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    partial = load(out)
    done = partial.status.values == "done"
    assert 10 <= done.sum() < 48, f"kill came too late: {done.sum()} fits done"

    assert main(args) == 0
    final = load(out)
    assert (final.status.values[final.planned.broadcast_like(final.status).values] == "done").all()
    # the fits finished before the kill were not recomputed: same timing and same worker as first written
    np.testing.assert_array_equal(final.fit_seconds.values[done], partial.fit_seconds.values[done])
    assert (final.worker.values[done] == partial.worker.values[done]).all()
    # and the resumed grid has exactly the numbers of an undisturbed run
    assert_same_numbers(reference(tmp_path_factory.getbasetemp(), cube), final)
