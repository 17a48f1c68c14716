"""Figure 2's cost: pooled (one VAE per split and latent on every drug's pairs + singletons) against per-drug
(one VAE per drug, split and latent), measured side by side in one process on the demo cube.

Both scopes train the demo preset's VAE on one CV split at one latent size (latent 10) with a fixed number of
epochs (no early stopping, so the two run the same schedule): ``per_drug_s`` sums the fits of every drug,
``pooled_s`` is the one pooled fit (CPU time). extra_info: both, ``per_drug_over_pooled``, the profiles
trained on and the load average. On one torch thread, as a grid worker. With --benchmark-disable: 3 drugs and
2 epochs.
"""

from __future__ import annotations

import time

import torch

from benchmarks._data import fit_config, load_average
from datasets.pairs import drug_data, pool
from datasets.synthetic import generate
from harness.tasks import drug_splits, split_data
from pertvae_core.train import fit


def _vae_seconds(dd, cfg_run, fc) -> tuple[float, int]:
    """CPU seconds of one VAE fit on the drug's (or pool's) first split, and its training profiles."""
    sp = split_data(dd, drug_splits(dd, cfg_run)[0])
    t0 = time.process_time()
    fit([sp], fc, [0], pairs=False)
    return time.process_time() - t0, len(sp.xs_train) + 2 * len(sp.x1_train)


def test_pooled_vs_per_drug_figure2(benchmark, request) -> None:
    from harness.config import make_config

    quick = request.config.getoption("benchmark_disable")
    ds = generate(preset="demo", seed=0)
    names = [str(c) for c in ds["condition"].values if str(c) not in ("control", "baseline")]
    names = names[:3] if quick else names
    cfg_run = make_config("demo", n_repeats=1)
    epochs = 2 if quick else 20
    fc = fit_config("demo", latent=10, max_epochs=epochs, min_epochs=epochs, patience=epochs)
    datas = [drug_data(ds, d) for d in names]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _vae_seconds(datas[0], cfg_run, fc)  # warm-up (first-fit imports and allocations), not timed

        def run() -> dict:
            per = [_vae_seconds(dd, cfg_run, fc) for dd in datas]
            pooled = _vae_seconds(pool(datas, "(pooled)"), cfg_run, fc)
            return {"per_drug_s": sum(s for s, _ in per), "pooled_s": pooled[0],
                    "per_drug_profiles": sum(n for _, n in per), "pooled_profiles": pooled[1]}

        out = benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        torch.set_num_threads(before)
    out["per_drug_over_pooled"] = out["per_drug_s"] / out["pooled_s"]
    out.update(drugs=len(names), epochs=epochs, load_average=load_average(),
               headline=["per_drug_over_pooled", "per_drug_s", "pooled_s"])
    benchmark.extra_info.update(out)
    print(f"\nFigure 2, {len(names)} drugs, one split, latent 10, {epochs} epochs: per-drug "
          f"{out['per_drug_s']:.1f} s ({out['per_drug_profiles']} profiles) vs pooled "
          f"{out['pooled_s']:.1f} s ({out['pooled_profiles']} profiles): {out['per_drug_over_pooled']:.2f}x")
    # one pooled fit trains on fewer profiles than the per-drug fits together (the singletons once)
    assert out["pooled_profiles"] < out["per_drug_profiles"]
