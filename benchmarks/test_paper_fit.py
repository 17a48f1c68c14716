"""A paper-sized PertVAE fit on the CPU: seconds per epoch and epochs to stop.

One split of olaparib (56 cell lines, ~1300 singletons) of the ``paper`` synthetic cube, FitConfig of the
``paper`` preset (978 genes, hidden (500, 300), latent 100, 2 IAF steps, patience 20). To stay short it is
capped at ``PERTVAE_BENCH_PAPER_EPOCHS`` epochs (default 5): ``epochs_to_stop`` is then recorded only when
the fit stopped early within the cap (set the variable to 200 for a whole fit, ~100 epochs). extra_info:
``seconds_per_epoch`` (CPU time including validation, after a warm-up; ``fit_wall_s`` the wall time),
``epochs``, ``best_epoch``, ``stopped_early``, ``threads``, ``precision`` (``PERTVAE_BENCH_PRECISION``,
default auto: bf16 where the CPU has bfloat16 instructions) and the load average. --benchmark-disable uses the
demo cube and model for 2 epochs.
"""

from __future__ import annotations

import os

import torch

from benchmarks._data import drug_splits, fit_config, timed_fit


def test_paper_fit_seconds_per_epoch(benchmark, request) -> None:
    small = request.config.getoption("benchmark_disable")
    epochs = 2 if small else int(os.environ.get("PERTVAE_BENCH_PAPER_EPOCHS", "5"))
    preset = "demo" if small else "paper"
    data = drug_splits(preset, "selumetinib" if small else "olaparib", n_repeats=1)[:1]
    cfg = fit_config(preset, max_epochs=epochs, precision=os.environ.get("PERTVAE_BENCH_PRECISION", "auto"))
    r = benchmark.pedantic(timed_fit, args=(data, cfg), rounds=1, iterations=1)
    assert r["status"] == "done" and 1 <= r["epochs"] <= epochs
    info = {**r, "preset": preset, "genes": data[0].genes, "pairs_train": len(data[0].x1_train),
            "singletons_train": len(data[0].xs_train), "threads": torch.get_num_threads()}
    if r["stopped_early"]:
        info["epochs_to_stop"] = r["epochs"]
    info["headline"] = ["seconds_per_epoch", "epochs", "best_epoch", "stopped_early", "epochs_to_stop",
                        "load_average"]
    benchmark.extra_info.update(info)
    print(f"\npaper-sized fit ({preset}, {info['pairs_train']} pairs, {info['singletons_train']} singletons, "
          f"{info['threads']} threads, {r['precision']}): {r['seconds_per_epoch']:.3f} CPU-s/epoch "
          f"(load average {r['load_average']}), {r['epochs']} epochs "
          f"(cap {epochs}), " + (f"stopped after {r['epochs']}" if r["stopped_early"] else "did not stop"))
