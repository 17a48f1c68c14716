"""Real split data for the benchmarks (one drug of a synthetic cube, cut by the harness's CV splits), and
timing that a busy machine cannot fake.

Wall-clock time lies on a shared machine (with ~3 runnable tasks per core, ~3x too slow), so the benchmarks
time by this process's CPU time (``time.process_time``: every thread of the process, and only while it ran),
on a GPU by wall time after a synchronization; variants compared in one run alternate (:func:`alternate`)
and keep medians; every figure is recorded with the load average (:func:`load_average`)."""

from __future__ import annotations

import functools
import os
import resource
import statistics
import time
from collections.abc import Callable, Mapping

from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData


@functools.lru_cache(maxsize=2)
def _cube(preset: str):
    from datasets.synthetic import generate

    return generate(preset=preset, seed=0)


def drug_splits(preset: str, drug: str, n_repeats: int, n_folds: int = 5) -> list[SplitData]:
    """``drug``'s n_repeats x n_folds splits of the ``preset`` synthetic cube (repeat-major, as in
    harness.tasks); ``drug`` may be harness.grid.POOLED."""
    from datasets.pairs import drug_data, pooled_data
    from datasets.splits import make_splits
    from harness.grid import POOLED
    from harness.task_data import paired_cell_lines, split_data  # not harness.tasks: it needs zarr

    if drug == POOLED:   # Figure 2's pooled pseudo-drug: every drug's pairs (harness.tasks.drug_data)
        from datasets.cube import drugs

        dd = pooled_data(_cube(preset), tuple(drugs(_cube(preset))), POOLED)
    else:
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


def load_average() -> float:
    """The 1-minute load average, recorded beside every figure."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else 0.0


def cpu_seconds(children: bool = False) -> float:
    """This process's CPU time (user + system, all threads); with ``children``, plus that of its waited-for
    child processes (e.g. the C++ compiler torch.compile runs)."""
    t = time.process_time()
    if children:
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        t += c.ru_utime + c.ru_stime
    return t


def family_cpu_seconds() -> float:
    """CPU time of this process and every live process below it (e.g. a LocalCluster's workers)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:   # exited meanwhile
            continue
        total += t.user + t.system
    return total


def timed_fit(data: list[SplitData], cfg: FitConfig) -> dict:
    """One batched fit of ``data`` (after a 2-step warm-up): its seconds (``fit_s``: CPU time on the CPU, wall
    time on a GPU; ``fit_wall_s``: wall), seconds per epoch (of the batched model, i.e. the longest split's
    epochs), epochs trained and whether every split stopped early, with the load average."""
    from pertvae_core.train import fit

    sd = seeds(len(data))
    fit(data, cfg, sd, max_steps=2)
    clock = time.perf_counter if cfg.device.startswith("cuda") else cpu_seconds
    c0 = clock()
    st = fit(data, cfg, sd)   # synchronizes a GPU at its end
    sec = clock() - c0
    ep = max(st.epochs)
    return {"splits": len(data), "fit_s": round(sec, 3), "fit_wall_s": round(st.fit_seconds, 3),
            "seconds_per_epoch": sec / ep, "epochs": ep, "best_epoch": max(st.best_epoch),
            "stopped_early": ep < cfg.max_epochs, "max_epochs": cfg.max_epochs,
            "status": ",".join(sorted(set(st.status))), "precision": st.precision,
            "load_average": load_average()}


def median_seconds(fn: Callable[[], object], reps: int, warmup: int = 0,
                   clock: Callable[[], float] = time.process_time) -> float:
    """Median ``clock`` seconds (default: this process's CPU time) of ``reps`` calls of ``fn``, after
    ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = clock()
        fn()
        ts.append(clock() - t0)
    return statistics.median(ts)


def alternate(fns: Mapping[str, Callable[[], object]], reps: int, warmup: int = 1,
              clock: Callable[[], float] = time.process_time, settle: int = 0) -> dict[str, float]:
    """Median ``clock`` seconds of each variant, the variants called in turn ``reps`` times (so a burst of
    load hits every variant alike), after ``warmup`` untimed rounds. ``settle``: untimed calls at the start
    of each turn, for variants that a fit calls back to back (a training step: the other variant's turn
    evicts its weights and Adam state from the caches, ~10-25% on the next step alone)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    ts: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            for _ in range(settle):
                fn()
            t0 = clock()
            fn()
            ts[k].append(clock() - t0)
    return {k: statistics.median(v) for k, v in ts.items()}
