"""Dask overhead per task: a grid of no-op fits submitted to a 1-worker LocalCluster (submit + as_completed,
as harness.run does) vs. the same calls in-process, as a fraction of one real (small) PertVAE fit's time.

Target (issue 4): overhead under 1% of a real fit's time. By CPU time (wall time lies on a shared machine):
``overhead_per_task_s`` = (CPU seconds of this process and the cluster's processes over the grid on the
cluster - CPU seconds of the same calls in-process) / tasks, against a real fit's CPU seconds; the wall-clock
figures (``*_wall_s``, ``wall_overhead_fraction_of_fit``) beside them, with the load average. Figures go to
extra_info; nothing here asserts a time. With --benchmark-disable the grid and the fit are scaled down.
"""

from __future__ import annotations

import sys
import time

import cloudpickle
import numpy as np
import pytest

cloudpickle.register_pickle_by_value(sys.modules[__name__])   # workers need not import benchmarks/

N_FULL, N_SMALL = 500, 20


def noop_fit(key: tuple[str, str, int, int, int]) -> list[dict]:
    """A task that does no work and returns one result row, like run_task without the fit."""
    return [{"model": key[0], "drug": key[1], "latent": key[2], "repeat": key[3], "fold": key[4],
             "status": "done", "reason": ""}]


def _keys(n: int) -> list[tuple[str, str, int, int, int]]:
    return [("pertvae", f"drug{i % 19}", 100, i // 5 % 10, i % 5) for i in range(n)]


def _key(row: dict) -> tuple[str, str, int, int, int]:
    return row["model"], row["drug"], row["latent"], row["repeat"], row["fold"]


def _grid_on_cluster(client, keys) -> list[tuple[str, str, int, int, int]]:
    """The keys of the result rows, in the order they came back."""
    from distributed import as_completed

    futs = [client.submit(noop_fit, k, pure=False) for k in keys]
    got = []
    for f in as_completed(futs):
        got += [_key(r) for r in f.result()]
        f.release()
    return got


def _grid_in_process(keys) -> list[tuple[str, str, int, int, int]]:
    return [_key(r) for k in keys for r in noop_fit(k)]


def real_fit_seconds(small: bool) -> tuple[float, float]:
    """CPU and wall seconds of one small real PertVAE fit (pertvae_core.api, synthetic SplitData)."""
    from pertvae_core.api import fit_evaluate_pertvae
    from pertvae_core.config import FitConfig
    from pertvae_core.data import SplitData

    rng = np.random.default_rng(0)
    g = 16 if small else 100

    def pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
        x1 = rng.normal(size=(n, g)).astype(np.float32)
        return x1, (x1 + 0.5).astype(np.float32)

    (a, b), (c, d), (e, f) = pairs(24), pairs(8), pairs(8)
    split = SplitData(a, b, c, d, e, f, rng.normal(size=(16, g)).astype(np.float32))
    cfg = FitConfig(latent=4 if small else 20, hidden=(16, 8) if small else (128, 64),
                    context=8 if small else 32, iaf_hidden=8 if small else 64, max_epochs=2 if small else 50,
                    patience=50, mc_samples=2, batch_pairs=16, batch_singletons=16, device="cpu")
    c0, t0 = time.process_time(), time.perf_counter()
    (row,) = fit_evaluate_pertvae([split], cfg, [1])
    cpu, dt = time.process_time() - c0, time.perf_counter() - t0
    assert row["status"] == "done", row
    return cpu, dt


@pytest.fixture(scope="module")
def one_worker():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        with Client(c) as client:
            client.wait_for_workers(1)
            client.submit(noop_fit, ("warm", "up", 0, 0, 0), pure=False).result()
            yield client


def test_dask_overhead_per_task(benchmark, request, one_worker):
    from benchmarks._data import family_cpu_seconds, load_average

    small = bool(request.config.getoption("benchmark_disable"))
    keys = _keys(N_SMALL if small else N_FULL)
    load = load_average()
    c0, t0 = time.process_time(), time.perf_counter()
    assert _grid_in_process(keys) == keys
    in_process_cpu, in_process = time.process_time() - c0, time.perf_counter() - t0

    got = benchmark.pedantic(_grid_on_cluster, args=(one_worker, keys), rounds=1 if small else 3,
                             iterations=1)
    assert sorted(got) == sorted(keys)  # one row per task, each the task's own
    c0, t0 = family_cpu_seconds(), time.perf_counter()
    _grid_on_cluster(one_worker, keys)
    on_cluster_cpu, on_cluster = family_cpu_seconds() - c0, time.perf_counter() - t0
    per_task = max(0.0, on_cluster_cpu - in_process_cpu) / len(keys)
    per_task_wall = max(0.0, on_cluster - in_process) / len(keys)
    fit_cpu, fit_wall = real_fit_seconds(small)
    benchmark.extra_info.update({
        "n_tasks": len(keys),
        "in_process_s": in_process_cpu,
        "on_cluster_s": on_cluster_cpu,
        "overhead_per_task_s": per_task,
        "real_fit_s": fit_cpu,
        "overhead_fraction_of_fit": per_task / fit_cpu,
        "in_process_wall_s": in_process, "on_cluster_wall_s": on_cluster, "real_fit_wall_s": fit_wall,
        "wall_overhead_fraction_of_fit": per_task_wall / fit_wall,
        "clock": "CPU time of this process and the cluster's processes",
        "load_average": [load, load_average()],
        "headline": ["overhead_per_task_s", "overhead_fraction_of_fit", "wall_overhead_fraction_of_fit"],
    })
