"""A task that never returns on a real LocalCluster (issue 19): ClusterHandle.watch cancels it once it has
run past its limit, records "timed out after N s" and restarts its worker, so the next task runs."""

from __future__ import annotations

import os
import time

import pytest

from harness.cluster import open_cluster
from harness.config import make_config
from harness.grid import Task
from harness.tasks import task_limit

pytestmark = pytest.mark.timeout(300)


def test_a_hung_task_is_cancelled_and_its_worker_restarted():
    cfg = make_config("demo", cluster="local", workers=1, dashboard_address=":0")
    with open_cluster(cfg, gpus=0) as h:
        client = h.client
        before = client.submit(os.getpid, pure=False).result()
        hung = client.submit(time.sleep, 3600, key="hung-task")
        h.limits[hung.key], h.watch_every = 2.0, 0.5
        t0 = time.monotonic()
        assert list(h.as_completed([hung])) == [hung]
        assert time.monotonic() - t0 < 120   # generous: the point is that it returns
        assert hung.cancelled()
        assert h.timed_out["hung-task"].startswith("timed out after 2 s (--fit-timeout")
        after = client.submit(os.getpid, pure=False).result(timeout=120)
        assert after != before   # a fresh worker process


def test_task_limits_count_fits_and_plugins():
    cfg = make_config("demo", fit_timeout=10.0, method=("tests.pertvae_core.my_method:KnnShift",))
    from harness.sandbox import STARTUP_SECONDS

    assert task_limit(Task("pertvae", "d", 3, ((0, 0), (0, 1))), cfg) == 20.0
    assert task_limit(Task("baselines", "d", 3, ((0, 0),) * 3), cfg) == 3 * (10 + 10 + STARTUP_SECONDS)
    assert task_limit(Task("pca", "d", 3, ((0, 0),)), make_config("demo", fit_timeout=0.0)) == 0.0


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_fit_timeout_must_be_a_finite_number_of_seconds(value):
    from harness.config import ConfigError, parse_args

    with pytest.raises(ConfigError, match="'fit_timeout'"):
        parse_args(["--fit-timeout", value])
