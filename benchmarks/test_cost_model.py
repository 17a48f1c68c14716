"""The cost model (harness.cost, ``run --dry-run``) against measured time, and the paper grid's estimate.

``test_estimate_vs_measured``: the demo grid (demo preset and synthetic cube) cut to 2 drugs x 2 splits, every
model, the VAE and PCA at their smallest and largest demo latent sizes (pooled Figure 2 scope, as the
default): each (model, drug, latent)'s first 2 splits run in-process with harness.tasks.run_task on one
torch and BLAS thread (as a grid worker), timed, beside the estimate of the same fits (calibrated in the same
process, 2 splits per task). extra_info: ``measured_s``, ``estimated_s``, ``ratio`` = measured / estimated,
``ratio_given_epochs`` (the estimate with the measured mean epochs per model: the step-time model alone),
``epochs_measured`` / ``epochs_assumed`` per model, per-model seconds, ``calibration_s``. With
--benchmark-disable the fits are capped at a few epochs.

``test_paper_grid_estimate``: ``--preset paper`` (19 drugs, 10 x 5 CV) on the paper-shaped synthetic cube on
2 local workers: ``cpu_hours``, ``wall_hours``, fits and seconds per fit per model; the arithmetic floor
(the training steps' matrix products at this machine's measured peak rate, harness.cost): ``floor_cpu_hours``,
``floor_wall_hours`` at the assumed epochs, ``floor_wall_hours_earliest_stop`` if every fit stopped at the
earliest epoch early stopping allows (patience + 1), ``peak_gflops`` per worker. It reads the paper cube's
shapes and calibrates at paper sizes (about a minute), so it runs with --benchmark-only only.
"""

from __future__ import annotations

import time

import pytest
import torch
from threadpoolctl import threadpool_limits

from datasets.cube import write_cube
from datasets.synthetic import generate
from harness import cost
from harness.config import make_config
from harness.grid import Task
from harness.tasks import run_task

DRUGS = ("selumetinib", "vorinostat")


def _measure(tasks: list[Task], cube: str, cfg) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Seconds per model and epochs of every fit, running ``tasks`` in-process on one thread."""
    seconds: dict[str, float] = {}
    epochs: dict[str, list[float]] = {}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            for t in tasks:
                t0 = time.perf_counter()
                rows = run_task(t, cube, cfg)
                seconds[t.model] = seconds.get(t.model, 0.0) + time.perf_counter() - t0
                assert all(r["status"] == "done" for r in rows), rows
                epochs.setdefault(t.model, []).extend(r["epochs"] for r in rows if "epochs" in r)
    finally:
        torch.set_num_threads(before)
    return seconds, epochs


def test_estimate_vs_measured(benchmark, request, tmp_path) -> None:
    quick = request.config.getoption("benchmark_disable")
    cube = str(write_cube(generate("demo", 0), tmp_path / "demo.zarr"))
    cfg = make_config("demo", data=cube, drugs=DRUGS, latents_vae=(2, 20), latents_pca=(2, 20),
                      splits_per_task=2, cluster="local", workers=1, device="cpu", progress=False,
                      **({"max_epochs": 6, "patience": 2} if quick else {}))
    est = cost.estimate(cfg, cube, list(DRUGS))
    first: dict[tuple, Task] = {}
    for t in est.tasks:
        first.setdefault((t.model, t.drug, t.latent), Task(t.model, t.drug, t.latent, t.splits[:2]))
    tasks = list(first.values())
    seconds, epochs = benchmark.pedantic(_measure, args=(tasks, cube, cfg), rounds=1, iterations=1)
    mean_epochs = {m: sum(e) / len(e) for m, e in epochs.items() if e}
    keys = [k for t in tasks for k in t.fit_keys()]
    estimated = {m: sum(est.fit_seconds(k) for k in keys if k.model == m) for m in cfg.models}
    given = sum(est.fit_seconds(k, epochs=mean_epochs) for k in keys)
    measured_s, estimated_s = sum(seconds.values()), sum(estimated.values())
    info = {
        "fits": len(keys), "measured_s": round(measured_s, 2), "estimated_s": round(estimated_s, 2),
        "ratio": round(measured_s / estimated_s, 3), "ratio_given_epochs": round(measured_s / given, 3),
        "epochs_measured": {m: round(e, 1) for m, e in mean_epochs.items()},
        "epochs_assumed": {m: e for m, e in est.epochs.items() if m in mean_epochs},
        "measured_s_per_model": {m: round(s, 2) for m, s in seconds.items()},
        "estimated_s_per_model": {m: round(s, 2) for m, s in estimated.items()},
        "calibration_s": round(est.calibration_seconds, 2), "load_average": round(est.load, 2),
        "headline": ["measured_s", "estimated_s", "ratio", "ratio_given_epochs", "calibration_s"],
    }
    benchmark.extra_info.update(info)
    print(f"\ncost model, demo grid cut to 2 drugs x 2 splits ({len(keys)} fits): measured "
          f"{measured_s:.1f} s, estimated {estimated_s:.1f} s (ratio {info['ratio']}); "
          f"with the measured epochs "
          f"{given:.1f} s (ratio {info['ratio_given_epochs']}); epochs measured {info['epochs_measured']}, "
          f"assumed {info['epochs_assumed']}; calibration {est.calibration_seconds:.1f} s")
    assert 1 / 3 < info["ratio_given_epochs"] < 3, info
    assert 1 / 4 < info["ratio"] < 4, info


def test_paper_grid_estimate(benchmark, request) -> None:
    if request.config.getoption("benchmark_disable"):
        pytest.skip("reads the paper-shaped cube and calibrates at paper sizes (~1 min): --benchmark-only")
    est = benchmark.pedantic(cost.paper_estimate, kwargs={"workers": 2}, rounds=1, iterations=1)
    fits = est.fits()
    assert fits == {"pertvae": 950, "vae": 350, "pca": 350, "baselines": 950}
    per_fit = {f"{m}@{lat}": round(est.per_fit(m, lat), 2) for m in ("pertvae", "vae", "pca", "baselines")
               for lat in make_config("paper").latents_for(m)}
    earliest = make_config("paper").patience + 1
    floor_earliest = sum(earliest * f for f in est.fit_flops.values()) / est.peak / est.slots / 3600
    benchmark.extra_info.update({
        "cpu_hours": round(est.cpu_hours, 2), "wall_hours_2_workers": round(est.wall_seconds / 3600, 2),
        "floor_cpu_hours": round(est.floor_cpu_hours, 2),
        "floor_wall_hours": round(est.floor_wall_seconds / 3600, 2),
        "floor_wall_hours_earliest_stop": round(floor_earliest, 2), "peak_gflops": round(est.peak / 1e9, 1),
        "fits": fits, "seconds_per_fit": per_fit, "epochs_assumed": dict(est.epochs),
        "calibration_s": round(est.calibration_seconds, 2), "load_average": round(est.load, 2),
        "headline": ["cpu_hours", "wall_hours_2_workers", "floor_wall_hours",
                     "floor_wall_hours_earliest_stop", "calibration_s"],
    })
    print(f"\nthe whole paper grid (paper preset, paper-shaped synthetic cube, 19 drugs, 10 x 5 CV, Figure 2 "
          f"pooled): {est.cpu_hours:.1f} CPU-hours, {est.wall_seconds / 3600:.1f} h wall on 2 workers "
          f"(load average {est.load:.1f} while calibrating); arithmetic floor "
          f"{est.floor_cpu_hours:.1f} CPU-hours, "
          f"{est.floor_wall_seconds / 3600:.1f} h wall ({floor_earliest:.1f} h if every fit stopped after "
          f"{earliest} epochs) at {est.peak / 1e9:.1f} GFLOP/s per worker")
    assert est.floor_wall_seconds < est.wall_seconds
    assert est.wall_seconds >= est.total_seconds / 2
