"""The cost model (harness.cost, ``run --dry-run``) against measured time, and the paper grid's estimate
against its arithmetic floor. Every time here is this process's CPU time (one torch thread, as a grid
worker), with the load average beside it; the estimate's own calibration is timed the same way
(harness.calibrate).

``test_estimate_vs_measured[demo]``: the demo grid (demo preset and synthetic cube) cut to 2 drugs x 2 splits,
every model, the VAE and PCA at their smallest and largest demo latent sizes (pooled Figure 2 scope, as the
default): each (model, drug, latent)'s first 2 splits run in-process with harness.tasks.run_task, beside the
estimate of the same fits (calibrated in the same process, 2 splits per task). ``[paper]``: the paper preset
on the paper-shaped synthetic cube (its default precision, auto): PertVAE on two splits of olaparib and
doxorubicin, the pooled Figure 2 VAE and PCA on one split at latent 2 and the baselines, each fit to its early
stop (--benchmark-only). extra_info: ``measured_s``, ``estimated_s``, ``ratio`` = measured / estimated,
``ratio_given_epochs`` (the estimate with the measured mean epochs per model: the step-time model alone; goal
0.8-1.25), ``epochs_measured`` / ``epochs_assumed`` per model, per-model seconds, ``calibration_s``. With
--benchmark-disable the demo fits are capped at a few epochs and the paper subset is skipped.

``test_estimate_vs_real_run``: the same check on real workers. A small paper grid (olaparib and doxorubicin,
1 x 5 CV, PertVAE and the pooled Figure 2 VAE at latent 2) estimated as the dry run does on 2 local workers,
its side-by-side factor included (harness.corun), then run by ``python -m harness.run`` on a 2-worker
LocalCluster: ``fits_over_estimate`` = the stored fits' CPU times (``fit_cpu_seconds``: each fit's
thread's, the clock the estimate is calibrated by) / the estimate given the epochs they ran;
``fits_wall_over_estimate``: their wall times inside the workers (``fit_seconds``: they count any wait for a
core the run's other processes held, hence the load recorded); ``run_cpu_over_estimate``: the CPU time of
the command and of every worker process it started (cluster start, reads and the report too, which the
estimate leaves out); ``run_wall_over_estimate``.
The in-process subset above cannot see two workers slowing each other; this can (--benchmark-only, minutes).

``test_paper_grid_estimate``: ``--preset paper`` (19 drugs, 10 x 5 CV, Figure 2 pooled) on the paper-shaped
synthetic cube on 2 local workers, estimated with fp32 and with bf16 matrix products, side by side in one
run: per precision ``cpu_hours``, ``wall_hours_2_workers`` and ``over_floor`` = the estimate / the fp32
arithmetic floor measured in the same calibration (the matrix products of the training steps and of the
validations at this machine's best float32 rate; goal <= 1.3, stretch <= 1.0; ``over_floor_per_model``:
PertVAE's and the VAE's own; ``over_steps_floor``: against the training steps' products alone, the floor as
it was before the validations were counted),
``floor_cpu_hours``, ``floor_wall_hours``, ``side_by_side`` (each model's step factor with the other worker
training beside it, harness.corun, counted in the estimate),
``peak_gflops`` per worker, ``steps_ms`` (each calibrated step), ``step_products_ms`` (its products, each
timed on its own at its shape's best rate: the rest of the step is what the floor does not count),
``memory_gbps`` (one thread's memory rate, harness.calibrate.stream_rate: a
step's work beyond its products is memory traffic, so the ratios move with it on a shared host), and the
calibrations' spread and load. It reads the paper cube's shapes and calibrates at paper sizes (minutes), so
it runs with --benchmark-only only.
"""

from __future__ import annotations

import dataclasses
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

from benchmarks._data import load_average
from datasets.cube import write_cube
from datasets.synthetic import generate
from harness import cost
from harness.config import make_config
from harness.grid import Task
from harness.results import as_str, load_results
from harness.tasks import run_task

DEMO_DRUGS = ("selumetinib", "vorinostat")
PAPER_DRUGS = ("olaparib", "doxorubicin")


def _measure(tasks: list[Task], cube: str, cfg) -> tuple[dict[str, float], dict[str, list[float]]]:
    """CPU seconds per model and epochs of every fit, running ``tasks`` in-process on one thread."""
    seconds: dict[str, float] = {}
    epochs: dict[str, list[float]] = {}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            for t in tasks:
                t0 = time.process_time()
                rows = run_task(t, cube, cfg)
                seconds[t.model] = seconds.get(t.model, 0.0) + time.process_time() - t0
                assert all(r["status"] == "done" for r in rows), rows
                epochs.setdefault(t.model, []).extend(r["epochs"] for r in rows if "epochs" in r)
    finally:
        torch.set_num_threads(before)
    return seconds, epochs


def _subset(preset: str, cube: str, drugs: tuple[str, ...], quick: bool):
    """The run's config, its estimate and the tasks of the measured subset (module docstring): demo, each
    (model, drug, latent)'s first task cut to 2 splits; paper, the first 2 PertVAE tasks of each drug and the
    first task of the others (one split each, as on a CPU), the baselines of the first drug only."""
    if preset == "demo":
        cfg = make_config("demo", data=cube, drugs=drugs, latents_vae=(2, 20), latents_pca=(2, 20),
                          splits_per_task=2, cluster="local", workers=1, device="cpu", progress=False,
                          **({"max_epochs": 6, "patience": 2} if quick else {}))
    else:
        cfg = make_config("paper", data=cube, drugs=drugs, latents_vae=(2,), latents_pca=(2,),
                          cluster="local", workers=1, device="cpu", progress=False)
    est = cost.estimate(cfg, cube, list(drugs))
    picked: dict[tuple, list[Task]] = {}
    for t in est.tasks:
        want = 2 if preset == "paper" and t.model == "pertvae" else 1
        if preset == "paper" and t.model == "baselines" and t.drug != drugs[0]:
            want = 0
        got = picked.setdefault((t.model, t.drug, t.latent), [])
        if len(got) < want:
            got.append(dataclasses.replace(t, splits=t.splits[:2]))
    return cfg, est, [t for ts in picked.values() for t in ts]


@pytest.mark.parametrize("preset", ["demo", "paper"])
def test_estimate_vs_measured(benchmark, request, tmp_path, preset: str) -> None:
    quick = request.config.getoption("benchmark_disable")
    if quick and preset == "paper":
        pytest.skip("paper-sized fits to their early stop take minutes: --benchmark-only")
    drugs = DEMO_DRUGS if preset == "demo" else PAPER_DRUGS
    cube = str(write_cube(generate(preset, 0), tmp_path / f"{preset}.zarr"))
    cfg, est, tasks = _subset(preset, cube, drugs, quick)
    load = load_average()
    seconds, epochs = benchmark.pedantic(_measure, args=(tasks, cube, cfg), rounds=1, iterations=1)
    mean_epochs = {m: sum(e) / len(e) for m, e in epochs.items() if e}
    keys = [k for t in tasks for k in t.fit_keys()]
    estimated = {m: sum(est.fit_seconds(k) for k in keys if k.model == m) for m in cfg.models}
    given = sum(est.fit_seconds(k, epochs=mean_epochs) for k in keys)
    measured_s, estimated_s = sum(seconds.values()), sum(estimated.values())
    info = {
        "preset": preset, "precision": est.precision, "fits": len(keys), "measured_s": round(measured_s, 2),
        "estimated_s": round(estimated_s, 2), "ratio": round(measured_s / estimated_s, 3),
        "ratio_given_epochs": round(measured_s / given, 3),
        "epochs_measured": {m: round(e, 1) for m, e in mean_epochs.items()},
        "epochs_assumed": {m: e for m, e in est.epochs.items() if m in mean_epochs},
        "measured_s_per_model": {m: round(s, 2) for m, s in seconds.items()},
        "estimated_s_per_model": {m: round(s, 2) for m, s in estimated.items()},
        "estimated_s_per_model_given_epochs": {
            m: round(sum(est.fit_seconds(k, epochs=mean_epochs) for k in keys if k.model == m), 2)
            for m in cfg.models},
        "calibration_s": round(est.calibration_seconds, 2), "calibration": cost.measured_how(est),
        "load_average": [load, load_average()], "clock": "process CPU time",
        "headline": ["measured_s", "estimated_s", "ratio", "ratio_given_epochs", "calibration_s"],
    }
    benchmark.extra_info.update(info)
    print(f"\ncost model, {preset} subset ({len(keys)} fits, {est.precision}): measured {measured_s:.1f} "
          f"CPU-s, estimated {estimated_s:.1f} s (ratio {info['ratio']}); with the measured epochs "
          f"{given:.1f} s (ratio {info['ratio_given_epochs']}); epochs measured {info['epochs_measured']}, "
          f"assumed {info['epochs_assumed']}; per model measured {info['measured_s_per_model']}, estimated "
          f"given epochs {info['estimated_s_per_model_given_epochs']}; load average {load:.1f}")
    assert 1 / 3 < info["ratio_given_epochs"] < 3, info
    assert 1 / 4 < info["ratio"] < 4, info


def _run_grid(cfg, out: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of ``python -m harness.run`` running ``cfg``'s grid into ``out`` on its
    local cluster: the CPU time of the command and every worker process it started and reaped."""
    args = ["--preset", cfg.preset, "--data", str(cfg.data), "--out", str(out), "--drugs", *cfg.drugs,
            "--n-repeats", str(cfg.n_repeats), "--models", *cfg.models,
            "--latents-vae", *map(str, cfg.latents_vae), "--workers", str(cfg.workers), "--no-progress"]
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness.run", *args], capture_output=True, text=True)
    wall, after = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stderr[-2000:]
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return cpu, wall


def _store_fits(out: Path) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Per model, the stored fits' CPU seconds and wall seconds summed (each timed inside its worker) and
    their mean epochs."""
    ds = load_results(out)
    done = as_str(ds["status"].values) == "done"
    cpu, wall, epochs = {}, {}, {}
    for i, m in enumerate(map(str, as_str(ds["model"].values))):
        if done[i].any():
            cpu[m] = float(ds["fit_cpu_seconds"].values[i][done[i]].sum())
            wall[m] = float(ds["fit_seconds"].values[i][done[i]].sum())
            epochs[m] = float(ds["epochs"].values[i][done[i]].mean())
    return cpu, wall, epochs


def _real_run_figures(est: cost.Estimate, fit_cpu: dict[str, float], fit_wall: dict[str, float],
                      epochs: dict[str, float], cpu_s: float, wall_s: float) -> dict:
    """The real run's times against the estimate, at the assumed epochs and given the epochs it ran."""
    given = dataclasses.replace(est, epochs={**est.epochs, **epochs})
    fits, fits_wall = sum(fit_cpu.values()), sum(fit_wall.values())
    return {
        "fits": sum(t.n_fits for t in est.tasks), "precision": est.precision, "workers": est.slots,
        "side_by_side": {m: round(f, 3) for m, f in est.corun.items()},
        "run_cpu_s": round(cpu_s, 1), "run_wall_s": round(wall_s, 1), "fits_s": round(fits, 1),
        "fits_wall_s": round(fits_wall, 1),
        "estimated_s": round(est.total_seconds, 1), "estimated_s_given_epochs": round(given.total_seconds, 1),
        "estimated_wall_s_given_epochs": round(given.wall_seconds, 1),
        "fits_over_estimate": round(fits / given.total_seconds, 3),
        "fits_wall_over_estimate": round(fits_wall / given.total_seconds, 3),
        "run_cpu_over_estimate": round(cpu_s / given.total_seconds, 3),
        "run_wall_over_estimate": round(wall_s / given.wall_seconds, 3),
        "fits_s_per_model": {m: round(s, 1) for m, s in fit_cpu.items()},
        "fits_wall_s_per_model": {m: round(s, 1) for m, s in fit_wall.items()},
        "estimated_s_per_model_given_epochs": {
            m: round(sum(given.fit_seconds(k) for t in est.tasks for k in t.fit_keys() if k.model == m), 1)
            for m in fit_cpu},
        "epochs_measured": {m: round(e, 1) for m, e in epochs.items()},
        "epochs_assumed": {m: est.epochs[m] for m in epochs},
        "clock": "CPU time of the command and its workers (run_cpu_s); each fit's CPU time (fits_s) and wall "
                 "time (fits_wall_s) inside its worker as stored; the estimate's calibration by CPU time",
        "headline": ["fits_over_estimate", "fits_wall_over_estimate", "run_cpu_over_estimate",
                     "run_wall_over_estimate"],
    }


def test_estimate_vs_real_run(benchmark, request, tmp_path) -> None:
    """The dry run's estimate of a small paper grid on 2 local workers (side-by-side factor included)
    against the same grid run for real by the command line on a 2-worker LocalCluster (module docstring)."""
    if request.config.getoption("benchmark_disable"):
        pytest.skip("paper-sized fits on a real 2-worker cluster take minutes: --benchmark-only")
    cube = str(write_cube(generate("paper", 0), tmp_path / "paper.zarr"))
    cfg = make_config("paper", data=cube, drugs=PAPER_DRUGS, n_repeats=1, models=("pertvae", "vae"),
                      latents_vae=(2,), cluster="local", workers=2, device="cpu", progress=False)
    est = cost.estimate(cfg, cube, list(PAPER_DRUGS))
    load = load_average()
    cpu_s, wall_s = benchmark.pedantic(_run_grid, args=(cfg, tmp_path / "run"), rounds=1, iterations=1)
    info = {**_real_run_figures(est, *_store_fits(tmp_path / "run"), cpu_s, wall_s),
            "load_average": [load, load_average()]}
    benchmark.extra_info.update(info)
    print(f"\ncost model vs a real run ({info['fits']} paper-sized fits on {cfg.workers} local workers, "
          f"{est.precision}; side by side {info['side_by_side']}): the fits took {info['fits_s']} CPU-s, "
          f"{info['fits_over_estimate']} x the estimate given the epochs run "
          f"({info['estimated_s_given_epochs']} s; {info['estimated_s']} s at the assumed epochs), "
          f"{info['fits_wall_s']} s wall inside the workers ({info['fits_wall_over_estimate']} x); "
          f"the command and its workers {cpu_s:.1f} CPU-s ({info['run_cpu_over_estimate']} x; "
          f"it counts starting the cluster, reads and the report too), {wall_s:.1f} s wall "
          f"({info['run_wall_over_estimate']} x the estimated wall time); per model "
          f"{info['fits_s_per_model']} against {info['estimated_s_per_model_given_epochs']}; "
          f"epochs {info['epochs_measured']} against {info['epochs_assumed']} assumed; "
          f"load average {load:.1f}")
    assert 1 / 3 < info["fits_over_estimate"] < 3, info


def over_floor_per_model(est: cost.Estimate) -> dict[str, float]:
    """Each trained model's estimated seconds / its arithmetic floor (PCA and the baselines have none)."""
    spent: dict[str, float] = {}
    floor: dict[str, float] = {}
    for t in est.tasks:
        for k in t.fit_keys():
            spent[k.model] = spent.get(k.model, 0.0) + est.fit_seconds(k)
            floor[k.model] = floor.get(k.model, 0.0) + est.floor_fit_seconds(k)
    return {m: round(spent[m] / f, 3) for m, f in floor.items() if f > 0}


def _grid_figures(est: cost.Estimate) -> dict:
    return {"cpu_hours": round(est.cpu_hours, 2), "wall_hours_2_workers": round(est.wall_seconds / 3600, 2),
            "over_floor_per_model": over_floor_per_model(est),
            "floor_cpu_hours": round(est.floor_cpu_hours, 2),
            "floor_wall_hours": round(est.floor_wall_seconds / 3600, 2),
            "over_floor": round(est.total_seconds / est.floor_seconds, 3),
            "over_steps_floor": round(est.total_seconds / est.steps_floor_seconds, 3),
            "side_by_side": {m: round(f, 3) for m, f in est.corun.items()},
            "peak_gflops": round(est.peak / 1e9, 1),
            "memory_gbps": round(est.calibration.stream / 1e9, 1) if est.calibration else 0.0,
            "peak_at": est.peak_at, "steps_ms": {f"{c.model}@{c.latent}": round(c.step * 1e3, 1)
                                                  for c in est.calibrations if c.step},
            "step_products_ms": {f"{c.model}@{c.latent}": round(c.products_step * 1e3, 1)
                                 for c in est.calibrations if c.products_step},
            "calibration": cost.measured_how(est), "disturbed": est.disturbed}


def test_paper_grid_estimate(benchmark, request) -> None:
    if request.config.getoption("benchmark_disable"):
        pytest.skip("reads the paper-shaped cube and calibrates at paper sizes (minutes): --benchmark-only")

    def both() -> dict[str, cost.Estimate]:
        return {p: cost.paper_estimate(workers=2, precision=p) for p in ("fp32", "bf16")}

    load = load_average()
    ests = benchmark.pedantic(both, rounds=1, iterations=1)
    paper = make_config("paper")
    for est in ests.values():
        assert est.fits() == {"pertvae": 950, "vae": 350, "pca": 350, "baselines": 950}
        assert est.floor_wall_seconds < est.wall_seconds
    info = {p: _grid_figures(e) for p, e in ests.items()}
    fp32_floor = ests["fp32"].floor_seconds
    info["bf16"]["over_fp32_run_floor"] = round(ests["bf16"].total_seconds / fp32_floor, 3)
    info.update({
        "bf16_over_fp32_estimate": round(ests["bf16"].total_seconds / ests["fp32"].total_seconds, 3),
        "epochs_assumed": dict(ests["fp32"].epochs), "max_epochs": paper.max_epochs,
        "per_fit_s": {p: {f"{m}@{lat}": round(e.per_fit(m, lat), 2) for m in paper.models
                          for lat in paper.latents_for(m)} for p, e in ests.items()},
        "load_average": [load, load_average()], "clock": "process CPU time (harness.calibrate)",
        "headline": ["bf16_over_fp32_estimate"],
    })
    for p in ests:
        for k in ("cpu_hours", "wall_hours_2_workers", "floor_cpu_hours", "over_floor"):
            info[f"{p}_{k}"] = info[p][k]
            info["headline"].append(f"{p}_{k}")
    benchmark.extra_info.update(info)
    for p, e in ests.items():
        print(f"\nthe whole paper grid, {p} products (paper preset, paper-shaped synthetic cube, 19 drugs, "
              f"10 x 5 CV, Figure 2 pooled): {e.cpu_hours:.1f} CPU-hours, {e.wall_seconds / 3600:.1f} h wall "
              f"on 2 workers; fp32 arithmetic floor {e.floor_cpu_hours:.1f} CPU-hours "
              f"({e.floor_wall_seconds / 3600:.1f} h wall) at {e.peak / 1e9:.1f} GFLOP/s per worker, memory "
              f"{info[p]['memory_gbps']} GB/s per thread: {info[p]['over_floor']} x the floor "
              f"({info[p]['over_steps_floor']} x the steps' alone; per model "
              f"{info[p]['over_floor_per_model']}; side by side {info[p]['side_by_side']}); "
              f"{cost.measured_how(e)}")
