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


class _FrozenWorkerClient:
    """A client whose scheduler says one task runs, at the run time its frozen worker last reported."""

    def __init__(self, reported: float) -> None:
        self.reported, self.cancelled, self.restarted, self.retired = reported, [], [], []

    def run_on_scheduler(self, fn, **kw):
        from harness.cluster import _executing

        if fn is not _executing:   # _close_worker
            self.retired.append(kw["address"])
        return {"stuck-task": (self.reported, "tcp://w:1")}

    def cancel(self, futures):
        self.cancelled += futures

    def restart_workers(self, workers, raise_for_error=True):
        self.restarted += workers


def _watched(monkeypatch, start: float, reported: float, every: float):
    """A ClusterHandle watching "stuck-task" (limit 100 s) through a _FrozenWorkerClient, on a clock that
    reads ``now[0]``: (handle, client, now)."""
    import types

    from harness import cluster as cluster_mod
    from harness.cluster import ClusterHandle

    now = [start]
    monkeypatch.setattr(cluster_mod, "time", types.SimpleNamespace(monotonic=lambda: now[0],
                                                                   sleep=time.sleep))
    client = _FrozenWorkerClient(reported=reported)
    h = ClusterHandle(client=client, dashboard_link=None, resources=None, watch_every=every)
    h.limits["stuck-task"] = 100.0
    return h, client, now


def test_a_task_on_a_worker_that_stopped_heartbeating_is_stopped_too(monkeypatch):
    """The scheduler's run time of a task is the one its worker last reported in a heartbeat: a worker
    frozen (SIGSTOP in a demo run with --fit-timeout 10, a 100 s task limit) reported 1 s for 5 minutes, and
    the task was never stopped. The time since the driver first saw it running counts too."""
    h, client, now = _watched(monkeypatch, start=1000.0, reported=1.0, every=5.0)
    future = object()
    for _ in range(19):   # 95 s: within the limit
        h.watch({"stuck-task": future})
        now[0] += 5.0
    assert client.cancelled == [] and h.timed_out == {}
    for _ in range(3):
        h.watch({"stuck-task": future})
        now[0] += 5.0
    assert client.cancelled == [future] and client.restarted == ["tcp://w:1"]
    assert h.timed_out["stuck-task"].startswith("timed out after 100 s (--fit-timeout")


def test_a_slurm_task_over_its_limit_ends_its_workers_job_instead_of_restarting_it_there(monkeypatch):
    """Restarted by its nanny inside its Slurm job, a worker's lifetime started again there and outlived the
    job: with --walltime 00:05:00 (a lifetime of 225-255 s) a hung task stopped at 90 s had its worker
    restarted, the next task ran there, and Slurm killed the job at 5:00 (TIMEOUT, 'CANCELLED ... DUE TO
    TIME LIMIT'), that task with it. On Slurm the worker is retired, as at its lifetime, and its job ends."""
    from harness.cluster import worker_lifetime

    h, client, now = _watched(monkeypatch, start=0.0, reported=101.0, every=5.0)
    h.lifetime, h.walltime = worker_lifetime(300), "00:05:00"
    future = object()
    h.watch({"stuck-task": future})
    assert client.cancelled == [future] and client.retired == ["tcp://w:1"] and client.restarted == []
    assert h.timed_out["stuck-task"] == ("timed out after 100 s (--fit-timeout, for each fit of the task); "
                                         "its worker tcp://w:1 was closed, its Slurm job with it")


def test_a_retried_task_is_timed_from_its_new_attempt(monkeypatch):
    """A run time that falls (the task failed and runs again) starts the count again."""
    h, client, now = _watched(monkeypatch, start=0.0, reported=0.0, every=1.0)
    for t in range(90):   # the first attempt runs 90 s...
        client.reported = float(t)
        h.watch({"stuck-task": object()})
        now[0] += 1.0
    for t in range(90):   # ...and the second too: neither passes 100 s
        client.reported = float(t)
        h.watch({"stuck-task": object()})
        now[0] += 1.0
    assert client.cancelled == [] and h.timed_out == {}


def test_a_silent_workers_finished_task_is_not_timed_and_its_given_ones_are():
    """The scheduler's list of a worker's executing tasks is replaced at its heartbeats only: a worker
    frozen just after a task finished left that task listed, and the watchdog cancelled the finished task
    (a frozen demo worker: 'task pertvae-... ran 100 s', its 10 fits stored 90 s before), while the task
    the worker hung in was not listed at all."""
    import types

    from harness.cluster import SILENT_SECONDS, _executing

    class task:   # a scheduler's TaskState: hashable, by identity
        def __init__(self, key: str, state: str) -> None:
            self.key, self.state = key, state

    finished, hung, queued = task("finished", "memory"), task("hung", "processing"), task("q", "processing")
    frozen = types.SimpleNamespace(address="tcp://frozen:1", executing={finished: 40.0}, processing={hung},
                                   last_seen=time.time() - 2 * SILENT_SECONDS)
    alive = types.SimpleNamespace(address="tcp://alive:1", executing={}, processing={queued},
                                  last_seen=time.time())
    got = _executing(types.SimpleNamespace(workers={"a": frozen, "b": alive}))
    assert got == {"hung": (0.0, "tcp://frozen:1")}


class _SlurmClient:
    """A scheduler with the workers ``workers``, on which task "t" runs as ``running`` says."""

    def __init__(self) -> None:
        self.running: dict = {}
        self.workers: set[str] = set()
        self.cancelled, self.retired = [], []

    def run_on_scheduler(self, fn, **kw):
        from harness.cluster import _close_worker, _executing

        if fn is _close_worker:
            self.retired.append(kw["address"])
        return dict(self.running) if fn is _executing else list(self.workers)

    def cancel(self, futures):
        self.cancelled += futures


def _slurm_watch(monkeypatch) -> tuple:
    """(a ClusterHandle of 2-minute Slurm jobs watching task "t" with no --fit-timeout, its _SlurmClient, the
    task's future, ``runs(worker, seconds)``: "t" runs on ``worker`` (None: nowhere) for ``seconds`` of a
    fake clock, watched every 5 s)."""
    import types

    from harness import cluster as cluster_mod
    from harness.cluster import ClusterHandle, worker_lifetime

    now = [0.0]
    monkeypatch.setattr(cluster_mod, "time", types.SimpleNamespace(monotonic=lambda: now[0],
                                                                   sleep=time.sleep))
    client = _SlurmClient()
    h = ClusterHandle(client=client, dashboard_link=None, resources=None, watch_every=5.0,
                      lifetime=worker_lifetime(120), walltime="00:02:00")
    h.limits["t"] = 0.0   # --fit-timeout 0: no limit of its own
    future = types.SimpleNamespace(status="pending")

    def runs(worker: str | None, seconds: int) -> None:
        for t in range(0, seconds, 5):
            client.running = {"t": (float(t), worker)} if worker else {}
            h.watch({"t": future})
            now[0] += 5.0

    return h, client, future, runs


@pytest.mark.parametrize(("first", "then", "left", "status", "stopped"), [
    (55, "B", True, "pending", True),     # a whole lifetime on A, which retired: it cannot finish anywhere
    (30, "B", True, "pending", False),    # started late in A's life: B's whole lifetime may do
    (55, "B", False, "pending", False),   # A is still there: an exception's retry elsewhere
    (55, "A", False, "pending", False),   # a retry on the same worker
    (55, "B", True, "lost", False),       # it had finished; its result left with A and is computed again
])
def test_a_task_that_outlives_its_slurm_worker_is_stopped_when_it_starts_again(monkeypatch, first, then, left,
                                                                               status, stopped):
    """A Slurm worker retires at its lifetime (walltime less a margin) and hands its task to the next worker
    without Dask counting that as a failure: a task longer than a lifetime started again on every new job.
    Reproduced on the real single-node Slurm (--walltime 00:02:00, a lifetime of 54-66 s; one demo task of 10
    splits at 2000 epochs, ~150 CPU-s): jobs 329, 330, 331... each retired its worker after ~55 s, 0 of 10
    fits done after 6.5 min, and --fit-timeout never fired (its clock starts again with each attempt)."""
    h, client, future, runs = _slurm_watch(monkeypatch)
    client.workers = {"A"}
    runs("A", first + 5)
    client.workers = set() if left else {"A"}
    runs(None, 10)   # between attempts: the next job starts
    future.status = status
    client.workers |= {then}
    runs(then, 10)
    if not stopped:
        assert client.cancelled == [] and client.retired == [] and h.timed_out == {}
        return
    assert client.cancelled == [future] and client.retired == ["B"]
    assert h.timed_out["t"] == (
        "did not finish in 55 s on a Slurm worker, which then left: a worker lives 54-66 s (--walltime "
        "00:02:00 less a margin), and a task longer than that would start again on each new worker without "
        "end; run again with a longer --walltime or fewer --splits-per-task")


def test_a_task_whose_workers_keep_leaving_short_of_a_lifetime_is_stopped_at_the_third(monkeypatch):
    """A worker whose start took longer than the slack (torch imported from a slow shared file system) ran
    its task for less than 'a whole lifetime' each time, so a task longer than a lifetime started again on
    every new job without end: the third attempt of half a lifetime or more whose worker left stops it."""
    from harness.cluster import LEFT_WORKERS

    h, client, future, runs = _slurm_watch(monkeypatch)   # a lifetime of 54-66 s: slack 13.5 s
    workers = [f"W{i}" for i in range(LEFT_WORKERS + 1)]
    for i, w in enumerate(workers):
        client.workers = {w}
        runs(w, 35 if i < LEFT_WORKERS else 10)   # 30 s seen: above half of 54, below 54 - 13.5
        if client.cancelled:
            break
        client.workers = set()
        runs(None, 10)
    assert client.cancelled == [future] and client.retired == [workers[LEFT_WORKERS]]
    assert h.timed_out["t"].startswith(f"did not finish in 30 s on a Slurm worker, which then left "
                                       f"({LEFT_WORKERS} workers in all left while it ran): a worker lives "
                                       "54-66 s")
