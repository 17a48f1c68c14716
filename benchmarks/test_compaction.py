"""Compaction's saving: one drug's 10 and 50 splits fitted as one batched PertVAE, compaction on vs off.

Demo-sized model (harness preset ``demo``: latent 10, hidden (64, 32), 1 IAF step, 150 epochs, patience 25)
on the selumetinib splits of the ``demo`` synthetic cube, with one torch thread (as a grid worker runs).
``fit(compact=True)`` drops splits from the computation as they stop; ``compact=False`` keeps them frozen
and masked until the slowest split stops. Both run side by side in one test and must give the same fits.
extra_info: ``compact_cpu_s``, ``masked_cpu_s``, ``saved_fraction_cpu`` = 1 - compact / masked (goal >= 0.3 on
a CPU) by the process's CPU time (one thread, so it does not count waiting for a CPU that other processes hold
on a shared machine), the same by wall time (``compact_s``, ``masked_s``, ``saved_fraction``) with the load
average, ``split_epochs`` (trained) and ``packed_split_epochs`` (computed without compaction). With
--benchmark-disable the fits are capped at a few epochs. Nothing asserts a time.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from benchmarks._data import drug_splits, fit_config, load_average, seeds
from pertvae_core.train import fit


@pytest.mark.parametrize("n_splits", [10, 50])
def test_compaction_saving(benchmark, request, one_thread, n_splits: int) -> None:
    small = request.config.getoption("benchmark_disable")
    data = drug_splits("demo", "selumetinib", n_repeats=n_splits // 5)
    cfg = fit_config("demo", **({"max_epochs": 6, "patience": 1} if small else {}))
    sd = seeds(n_splits)
    fit(data[:2], cfg, sd[:2], max_steps=3)  # warm-up
    c0 = time.process_time()
    on = benchmark.pedantic(lambda: fit(data, cfg, sd, compact=True), rounds=1, iterations=1)
    c1 = time.process_time()
    t0 = time.perf_counter()
    off = fit(data, cfg, sd, compact=False)
    masked_s, c2 = time.perf_counter() - t0, time.process_time()
    assert on.epochs == off.epochs and on.best_epoch == off.best_epoch
    for (name, a), b in zip(on.model.named_parameters(), off.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    compact_s = on.fit_seconds
    info = {
        "splits": n_splits, "threads": torch.get_num_threads(), "compact_s": round(compact_s, 3),
        "masked_s": round(masked_s, 3), "saved_fraction": round(1 - compact_s / masked_s, 4),
        "compact_cpu_s": round(c1 - c0, 3), "masked_cpu_s": round(c2 - c1, 3),
        "saved_fraction_cpu": round(1 - (c1 - c0) / (c2 - c1), 4),
        "split_epochs": int(np.sum(on.epochs)), "packed_split_epochs": int(max(on.epochs) * n_splits),
        "epochs_min": int(min(on.epochs)), "epochs_max": int(max(on.epochs)), "load_average": load_average(),
    }
    info["headline"] = ["compact_cpu_s", "masked_cpu_s", "saved_fraction_cpu", "saved_fraction",
                        "split_epochs", "packed_split_epochs"]
    benchmark.extra_info.update(info)
    print(f"\ncompaction, {n_splits} splits: on {compact_s:.2f} s, off {masked_s:.2f} s, saved "
          f"{info['saved_fraction']:.1%}; CPU time {c1 - c0:.2f} s vs {c2 - c1:.2f} s, saved "
          f"{info['saved_fraction_cpu']:.1%} (split-epochs {info['split_epochs']} of "
          f"{info['packed_split_epochs']})")
