"""The driver's client loses its scheduler connection mid-grid (as a starved driver does, issue 23): the
client drops every pending future (FutureCancelledError: scheduler-connection-lost) and reconnects; the
driver submits those tasks again instead of recording their fits failed, and the grid finishes."""

from __future__ import annotations

import threading
import time

import pytest

from harness.results import load_results
from harness.run import main
from tests.e2e import tiny_args, tiny_cube

pytestmark = pytest.mark.timeout(300)


def _drop_connection(done: threading.Event, dropped: list[float]) -> None:
    """Once the run's client exists and has submitted its tasks, close its scheduler connection."""
    from distributed import default_client

    while not done.is_set():
        try:
            client = default_client()
        except ValueError:   # no client yet
            time.sleep(0.05)
            continue
        if len(client.futures) >= 3:
            time.sleep(0.5)
            client.loop.add_callback(client.scheduler_comm.comm.abort)
            dropped.append(time.monotonic())
            return
        time.sleep(0.05)


def test_tasks_lost_with_the_scheduler_connection_are_submitted_again(tmp_path_factory, tmp_path):
    cube = tiny_cube(tmp_path_factory)
    out = tmp_path / "run"
    args = tiny_args(cube, out, "--models", "pertvae", "--n-repeats", "1", "--splits-per-task", "1",
                     "--max-epochs", "4", workers=1)
    done, dropped = threading.Event(), []
    dropper = threading.Thread(target=_drop_connection, args=(done, dropped), daemon=True)
    dropper.start()
    try:
        code = main(args)
    finally:
        done.set()
        dropper.join()
    assert dropped, "the connection was never dropped"
    log = (out / "run.log").read_text()
    assert "lost with the scheduler connection; submitted again" in log, log[-3000:]
    assert code == 0
    status = load_results(out).status.sel(model="pertvae").values
    assert (status == "done").sum() == 2 * 3   # every fit of 2 drugs x 3 folds, none failed
