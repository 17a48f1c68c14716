"""Ctrl-C at moments of a run other tests do not reach: the run's 'interrupted:' line and nothing else."""

from __future__ import annotations

import os
import signal

import pytest

from tests.e2e import start_driver, tiny_args, tiny_cube, wait_for

pytestmark = pytest.mark.timeout(300)


def test_ctrl_c_while_the_local_cluster_starts_prints_no_traceback(tmp_path_factory, tmp_path):
    """Ctrl-C once a worker's nanny has started, before its worker joins. Before: the half-started cluster was
    left to distributed's exit hook, which failed on it: 'AssertionError: Status.init' and 'Nanny failed to
    start' tracebacks and Dask's log lines on the terminal after the 'interrupted:' line."""
    cube = tiny_cube(tmp_path_factory)
    out, log = tmp_path / "out", tmp_path / "log.txt"
    run_log = out / "run.log"
    proc = start_driver(tiny_args(cube, out, "--models", "baselines", "--drugs", "drugA", workers=1), log,
                        sigint=True)
    try:
        assert wait_for(lambda: run_log.is_file() and "Start Nanny at" in run_log.read_text(), timeout=120,
                        proc=proc, poll=0.01), log.read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130, log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert "interrupted: 0 of" in text and "Traceback" not in text, text
    assert text.rstrip().splitlines()[-1].startswith("interrupted:"), text
