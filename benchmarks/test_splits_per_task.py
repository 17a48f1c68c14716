"""Splits per task on a CPU: real early-stopping fits of n splits trained one at a time (S = 1, the CPU
default) against the same splits trained S at a time as batched models with compaction.

A batched step of S splits shares the per-step fixed cost (Python, dispatch, the autograd engine: ~2 ms of a
13-20 ms paper-sized step) but not the arithmetic, Adam or the passes over S times the weights; and the
shared part keeps running until the slowest split of the batch stops (compaction drops a stopped split's own
work, not the shared part), so only real fits to their early stop say whether batching pays. Each variant
fits the same n splits (paper preset sizes and precision, paper-shaped synthetic cube, one torch thread as
a grid worker): PertVAE on ``DRUG``'s splits, the pooled Figure 2 VAE at ``VAE_LATENT``. The variants run
in turn, each a whole set of fits (so a burst of load hits every variant alike), timed by process CPU time
with the load average. extra_info per variant: ``cpu_s_per_fit`` and ``over_s1`` (per-fit CPU time / that
of S = 1; below 1 batching pays), the splits' epochs and best validation losses. Every variant trains the
same fits (same seeds and data), checked on each split's best validation loss. With --benchmark-disable the
models are tiny and capped at a few epochs. Nothing asserts a time.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from benchmarks._data import drug_splits, fit_config, load_average, seeds
from harness.grid import POOLED
from pertvae_core.train import fit

DRUG = "olaparib"      # the paper preset's median drug by pairs (harness.cost.calibration_points)
VAE_LATENT = 5         # stops after ~60 epochs on the pooled cube (latents 10-200: 150-260): minutes
SIZES = {"pertvae": (1, 2, 5, 10), "vae": (1, 2, 4)}   # S per variant; n = the largest
PRECISION = "auto"     # the paper preset's (RunConfig's default): bf16 where the CPU has it natively
SMALL = {"hidden": (32, 16), "context": 8, "iaf_hidden": 16, "max_epochs": 6, "patience": 2}


def _variant(data, cfg, sd, pairs: bool, s: int) -> tuple[float, list[int], list[float]]:
    """CPU seconds of fitting ``data`` s splits at a time, the splits' epochs and best validation losses."""
    epochs: list[int] = []
    best: list[float] = []
    c0 = time.process_time()
    for i in range(0, len(data), s):
        st = fit(data[i:i + s], cfg, sd[i:i + s], pairs=pairs, compact=True)
        epochs += st.epochs
        best += [min(h) for h in st.history]
    return time.process_time() - c0, epochs, best


@pytest.mark.parametrize("model", ["pertvae", "vae"])
def test_splits_per_task(benchmark, request, one_thread, model: str) -> None:
    small = request.config.getoption("benchmark_disable")
    sizes = (1, 2) if small else SIZES[model]
    n = max(sizes)
    pairs = model == "pertvae"
    data = drug_splits("paper", DRUG if pairs else POOLED, n_repeats=max(1, -(-n // 5)))[:n]
    cfg = fit_config("paper", latent=None if pairs else VAE_LATENT, precision=PRECISION,
                     **(SMALL if small else {}))
    sd = seeds(n)
    fit(data[:1], cfg, sd[:1], pairs=pairs, max_steps=3)   # warm-up
    load = load_average()
    runs = {s: benchmark.pedantic(_variant, args=(data, cfg, sd, pairs, s), rounds=1, iterations=1)
            if s == sizes[-1] else _variant(data, cfg, sd, pairs, s) for s in sizes}
    base = runs[1]
    for s, (_, _, best) in runs.items():
        np.testing.assert_allclose(best, base[2], rtol=1e-2, err_msg=f"S={s} trains other fits than S=1")
    info = {"model": model, "splits": n, "latent": cfg.latent, "precision": cfg.precision,
            "epochs": base[1], "best_val": [round(b, 4) for b in base[2]],
            "load_average": [load, load_average()], "clock": "process CPU time, variants in turn",
            "headline": []}
    for s, (sec, epochs, _) in runs.items():
        info[f"S{s}_cpu_s_per_fit"] = round(sec / n, 2)
        info[f"S{s}_over_s1"] = round(sec / base[0], 3)
        info[f"S{s}_epochs"] = epochs
        info["headline"] += [f"S{s}_cpu_s_per_fit", f"S{s}_over_s1"]
    benchmark.extra_info.update(info)
    print(f"\n{model} (latent {cfg.latent}), {n} splits, real early stopping, compaction; CPU s per fit: "
          + ", ".join(f"S={s} {info[f'S{s}_cpu_s_per_fit']} ({info[f'S{s}_over_s1']}x S=1)" for s in runs)
          + f"; epochs {base[1]}; load average {load:.1f} -> {load_average():.1f} on {os.cpu_count()} cores")
