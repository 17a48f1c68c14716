"""PCA once per split (issue 23): Figure 2's PCA at the paper's 7 latent sizes and pca_latent_linear at the
baselines' latent, on one split, with one SVD per training matrix (pertvae_core.baselines.principal_axes)
against one per fit (the cache emptied and disabled, as before the change).

The split is olaparib's first CV split of the ``paper`` synthetic cube (978 genes; the pooled training matrix
is the singletons, the distinct controls and the x2 of the training pairs, ~1,800 x 978). Both variants start
from an empty cache, alternate (:func:`benchmarks._data.alternate`) and must give identical numbers.
extra_info: ``uncached_cpu_s``, ``cached_cpu_s`` (process CPU time, every BLAS thread), ``speedup`` =
uncached / cached, ``svd_uncached``/``svd_cached`` (decompositions), the matrix shape and the load average.
Nothing asserts a time. With --benchmark-disable: the demo cube (200 genes).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from benchmarks._data import alternate, drug_splits, load_average
from pertvae_core import baselines
from pertvae_core.baselines import PCALatentLinear, pca_reconstruction_rho
from pertvae_core.data import SplitData, measured_profiles

PCA_LATENTS = (2, 5, 10, 20, 50, 100, 200)   # harness preset "paper": latents_pca
BASELINES_LATENT = 100                       # and latents_baselines


def _all_latents(split: SplitData, cache_bytes: int, calls: list[int]) -> list[float]:
    """Every PCA number of the split at each latent, from an empty cache holding ``cache_bytes``."""
    baselines._svd_cache.clear()
    before, baselines.SVD_CACHE_BYTES = baselines.SVD_CACHE_BYTES, cache_bytes
    svd = np.linalg.svd

    def counting(*a, **kw):
        calls[0] += 1
        return svd(*a, **kw)

    np.linalg.svd = counting
    try:
        out = []
        for latent in PCA_LATENTS:
            r = pca_reconstruction_rho(split, latent)
            out += [r["rho_rec"], r["rho_rec_pert"]]
        out += PCALatentLinear(BASELINES_LATENT).fit(split).predict(split.x1_test).ravel().tolist()
        return out
    finally:
        np.linalg.svd = svd
        baselines.SVD_CACHE_BYTES = before
        baselines._svd_cache.clear()


def test_pca_latents_one_svd_per_split(benchmark, request: pytest.FixtureRequest) -> None:
    quick = request.config.getoption("benchmark_disable")
    split = drug_splits("demo" if quick else "paper", "olaparib", n_repeats=1)[0]
    n_rows = len(split.xs_train) + len(measured_profiles(split.x1_train, split.x2_train, split.xu_train))
    calls = {"uncached": [0], "cached": [0]}
    results: dict[str, list[float]] = {}

    def run(name: str, cache_bytes: int) -> None:
        calls[name][0] = 0
        results[name] = _all_latents(split, cache_bytes, calls[name])

    times = alternate({"uncached": lambda: run("uncached", 0),
                       "cached": lambda: run("cached", baselines.SVD_CACHE_BYTES)},
                      reps=1 if quick else 2, warmup=0)
    benchmark.pedantic(lambda: run("cached", baselines.SVD_CACHE_BYTES), rounds=1, iterations=1)
    assert results["cached"] == results["uncached"]   # identical numbers, bit for bit
    assert calls["cached"][0] == 1 and calls["uncached"][0] == len(PCA_LATENTS) + 1
    info = {"uncached_cpu_s": round(times["uncached"], 3), "cached_cpu_s": round(times["cached"], 3),
            "speedup": round(times["uncached"] / times["cached"], 2), "svd_uncached": calls["uncached"][0],
            "svd_cached": calls["cached"][0], "matrix": f"{n_rows}x{split.x1_train.shape[1]}",
            "load_average": load_average(), "cpus": os.cpu_count()}
    info["headline"] = ["uncached_cpu_s", "cached_cpu_s", "speedup", "load_average"]
    benchmark.extra_info.update(info)
    print(f"\nPCA at {len(PCA_LATENTS)} latents + pca_latent_linear, one split ({info['matrix']}): "
          f"{info['svd_uncached']} SVDs {info['uncached_cpu_s']:.2f} CPU s, {info['svd_cached']} SVD "
          f"{info['cached_cpu_s']:.2f} CPU s, speedup {info['speedup']:.2f}x; load average "
          f"{os.getloadavg()}")


def test_pca_grid_work_of_one_split(benchmark, request: pytest.FixtureRequest) -> None:
    """The grid's PCA work for one split of Figure 2's pooled pseudo-drug (the paper preset's scope), before
    and after one task took all 7 latent sizes (harness.grid.build_grid): ``per_latent_task`` is
    api.evaluate_pca at each latent from an empty cache (a task per latent over the drug's 50 splits evicts
    the split's decomposition before the next latent's task comes, on whichever worker), ``one_task`` the
    PCA contender's run_latents. The rows must be equal but for fit_seconds. extra_info: CPU seconds of
    each, the speedup, the matrix and the load average; nothing asserts a time."""
    from harness.config import make_config
    from harness.contenders.pca import PCA
    from harness.grid import POOLED
    from pertvae_core import api

    quick = request.config.getoption("benchmark_disable")
    split = drug_splits("demo" if quick else "paper", POOLED, n_repeats=1)[0]
    n_rows = len(split.xs_train) + len(measured_profiles(split.x1_train, split.x2_train, split.xu_train))
    cfg = make_config("paper")   # its --standardize, per_source: api.evaluate_pca's default
    got: dict[str, dict] = {}

    def per_latent_task() -> None:
        rows = {}
        for latent in PCA_LATENTS:
            baselines._svd_cache.clear()
            rows[latent] = api.evaluate_pca([split], latent)
        got["per_latent_task"] = rows

    def one_task() -> None:
        baselines._svd_cache.clear()
        got["one_task"] = PCA().run_latents([split], PCA_LATENTS, {lat: [0] for lat in PCA_LATENTS}, cfg)

    load0 = load_average()
    times = alternate({"per_latent_task": per_latent_task, "one_task": one_task}, reps=1 if quick else 3)
    benchmark.pedantic(one_task, rounds=1, iterations=1)
    strip = {k: {lat: [{f: v for f, v in r.items() if f != "fit_seconds"} for r in rows]
                 for lat, rows in got[k].items()} for k in got}
    assert strip["one_task"] == strip["per_latent_task"]
    info = {"per_latent_task_cpu_s": round(times["per_latent_task"], 3), "one_task_cpu_s":
            round(times["one_task"], 3), "speedup": round(times["per_latent_task"] / times["one_task"], 2),
            "matrix": f"{n_rows}x{split.x1_train.shape[1]}", "load_average": [load0, load_average()],
            "cpus": os.cpu_count()}
    info["headline"] = ["per_latent_task_cpu_s", "one_task_cpu_s", "speedup", "load_average"]
    benchmark.extra_info.update(info)
    print(f"\nPCA grid work of one pooled split ({info['matrix']}) at {len(PCA_LATENTS)} latents: a task per "
          f"latent {info['per_latent_task_cpu_s']:.2f} CPU s, one task {info['one_task_cpu_s']:.2f} CPU s, "
          f"speedup {info['speedup']:.2f}x; load average {os.getloadavg()}")
