"""Real split data for the benchmarks (one drug of a synthetic cube, cut by the harness's CV splits) and the
median wall time of a call."""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable

from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData


@functools.lru_cache(maxsize=2)
def _cube(preset: str):
    from datasets.synthetic import generate

    return generate(preset=preset, seed=0)


def drug_splits(preset: str, drug: str, n_repeats: int, n_folds: int = 5) -> list[SplitData]:
    """``drug``'s n_repeats x n_folds splits of the ``preset`` synthetic cube (repeat-major, as in
    harness.tasks)."""
    from datasets.pairs import drug_data
    from datasets.splits import make_splits
    from harness.tasks import paired_cell_lines, split_data

    dd = drug_data(_cube(preset), drug)
    splits = make_splits(paired_cell_lines(dd), drug, n_repeats=n_repeats, n_folds=n_folds)
    return [split_data(dd, sp) for sp in splits]


def fit_config(preset: str, latent: int | None = None, **overrides) -> FitConfig:
    """FitConfig of a harness preset (harness.presets), at its first PertVAE latent size unless given."""
    from harness.presets import PRESETS

    p = PRESETS[preset]
    keys = set(FitConfig.__dataclass_fields__) - {"latent"}
    kw = {k: v for k, v in p.items() if k in keys}
    kw.update(overrides)
    return FitConfig(latent=latent or p["latents_pertvae"][0], **kw)


def seeds(n: int) -> list[int]:
    """Distinct fit seeds."""
    return [1000 + i for i in range(n)]


def timed_fit(data: list[SplitData], cfg: FitConfig) -> dict:
    """One batched fit of ``data`` (after a 2-step warm-up): its wall time, seconds per epoch (of the batched
    model, i.e. the longest split's epochs), epochs trained and whether every split stopped early."""
    from pertvae_core.train import fit

    sd = seeds(len(data))
    fit(data, cfg, sd, max_steps=2)
    st = fit(data, cfg, sd)
    ep = max(st.epochs)
    return {"splits": len(data), "fit_s": round(st.fit_seconds, 3), "seconds_per_epoch": st.fit_seconds / ep,
            "epochs": ep, "best_epoch": max(st.best_epoch), "stopped_early": ep < cfg.max_epochs,
            "max_epochs": cfg.max_epochs, "status": ",".join(sorted(set(st.status)))}


def median_seconds(fn: Callable[[], object], reps: int, warmup: int = 0) -> float:
    """Median wall time of ``reps`` calls of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)
