"""What a worker runs for one task: read its drug's slice of the cube, build the splits, fit, evaluate.

One task is one (model, drug, latent) and a block of (repeat, fold) splits (a cheap contender's: all of the
drug's splits at each of its latent sizes); pertvae_core fits the block as one batched model. Each fit's
seed comes from harness.grid.fit_seed, so results do not depend on which worker runs the task or on how
splits are grouped into tasks.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import socket
import sys
import time
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.config import RunConfig
from harness.contenders import Contender, contender
from harness.grid import Task, fit_seed
from harness.predictions import pair_samples
from harness.task_data import (  # noqa: F401  (its public names stay importable from here: run, tests)
    cube_of,
    drug_data,
    drug_splits,
    paired_cell_lines,
    split_data,
)

if TYPE_CHECKING:   # imported where a model trains
    import torch

log = logging.getLogger(__name__)


def worker_name() -> str:
    """The Dask worker address when inside one, plus host and pid."""
    where = f"host={socket.gethostname()} pid={os.getpid()}"
    try:
        from distributed import get_worker

        return f"{get_worker().address} {where}"
    except (ImportError, ValueError):
        return where


def products_of(cfg: RunConfig, model: Contender, row: Mapping[str, Any] | None = None) -> str:
    """How this worker computes the matrix products of ``model``'s fits (the store's ``products``, one per
    fit: workers of one run may differ, e.g. Slurm nodes with and without AMX); "" for a contender that
    trains no model. Whether the training steps ran compiled: as the fit's ``row`` recorded it
    (``steps_compiled``: dynamo runs a step eagerly past its graphs), else as ``cfg`` asks."""
    if not model.trained:
        return ""
    from pertvae_core.layers import products_way
    from pertvae_core.precision import resolve_precision
    from pertvae_core.train import no_cpp_compiler

    device = _device(cfg)
    precision = resolve_precision(cfg.precision, device) if model.takes_precision else "fp32"
    if precision == "fp32":   # the words do not depend on compiling (no_cpp_compiler takes ~70 ms a call)
        return products_way(precision, str(device))
    compiled = row["steps_compiled"] if row is not None and "steps_compiled" in row else \
        bool(cfg.fit_kwargs()["compile"]) and (device.type != "cpu" or not no_cpp_compiler())
    return products_way(precision, str(device), compiled)


def device_of(cfg: RunConfig, model: Contender) -> str:
    """The torch device this worker trains ``model``'s fits on, with its index ("cpu", "cuda:0": CUDA's
    numbering in this process, under the worker's CUDA_VISIBLE_DEVICES), for run.json's ``used``: the run's
    ``device`` is "auto" unless given; "" for a contender that trains no model."""
    if not model.trained:
        return ""
    import torch

    device = _device(cfg)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)


def no_cuda(cfg: RunConfig, model: Contender) -> str:
    """Why this worker cannot train ``model``'s fits of a ``--device cuda`` run ("" where it can): it has no
    CUDA GPU. harness.prepare.check_device refuses such a run whose workers run on the driver's machine; a
    Slurm job gets a GPU only with --gres (--gpus-per-job), and without one its fits fell back to the CPU
    (resolve_device) with the GPU's batching, a warning in run.log alone."""
    if cfg.device != "cuda" or not model.trained:
        return ""
    import torch

    if torch.cuda.is_available():
        return ""
    cuda = torch.version.cuda
    built = f"built for CUDA {cuda}, none visible" if cuda else "built without CUDA"
    hint = ("check the partition's GPUs and the jobs' CUDA_VISIBLE_DEVICES" if cfg.gpus_per_job else
            "on Slurm give --gpus-per-job 1 (a job gets a GPU only with it)")
    return (f"--device cuda: this worker ({worker_name()}) has no CUDA GPU (torch {torch.__version__}, "
            f"{built}): its fits would be trained on the CPU; {hint}, or --device auto to train where there "
            f"is none")


def _device(cfg: RunConfig) -> torch.device:
    """The run's device as this worker's fits resolve it (pertvae_core.train.resolve_device)."""
    from pertvae_core.train import resolve_device

    with warnings.catch_warnings():   # the fit itself warns of a CUDA device without CUDA
        warnings.simplefilter("ignore")
        return resolve_device(cfg.fit_kwargs()["device"])


def cpu_seconds() -> float:
    """CPU seconds this task has used so far, as the cost model's calibration counts them (harness.calibrate):
    this thread's (the fitting thread's; with several torch threads, the process's per thread, as they share
    the work), plus the waited-for child processes' (the ``--method`` plug-ins, torch.compile's compiler),
    not the other threads of the process (Dask's, the store's writer). On a GPU it counts the host's work
    only."""
    import torch

    n = max(1, torch.get_num_threads())
    own = time.thread_time() if n == 1 else time.process_time() / n
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + (children.ru_utime + children.ru_stime) / n


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """The peak resident memory in MiB of this process (``who`` RUSAGE_SELF: its life so far), or of the
    largest of its ended, waited-for child processes (RUSAGE_CHILDREN); ru_maxrss is KiB on Linux, bytes
    on macOS."""
    return round(resource.getrusage(who).ru_maxrss / (1024 ** 2 if sys.platform == "darwin" else 1024), 1)


def share_cpu(rows: list[dict], cpu: float) -> None:
    """Set each row's ``fit_cpu_seconds``: ``cpu`` (the task's) shared among its fits as their
    ``fit_seconds`` (wall time) are (a batched task's equally), evenly where those are missing."""
    wall = [float(r.get("fit_seconds", math.nan)) for r in rows]
    if not all(math.isfinite(w) and w >= 0 for w in wall) or sum(wall) <= 0:
        wall = [1.0] * len(rows)
    total = sum(wall)
    for r, w in zip(rows, wall, strict=True):
        r["fit_cpu_seconds"] = cpu * w / total


def task_limit(task: Task, cfg: RunConfig) -> float:
    """Seconds ``task`` may run on a cluster (harness.cluster.ClusterHandle.watch; 0 = no limit):
    ``--fit-timeout`` for each of its fits, where each ``--method`` plug-in counts as a fit of its own with
    its process's start (harness.sandbox.STARTUP_SECONDS), so that a plug-in's own limit always ends it
    first."""
    from harness.sandbox import STARTUP_SECONDS

    if not cfg.fit_timeout:
        return 0.0
    plugins = contender(task.model).user_methods(cfg)
    per_split = cfg.fit_timeout + plugins * (cfg.fit_timeout + STARTUP_SECONDS)
    return task.n_fits * per_split


def run_task(task: Task, cube_path: str, cfg: RunConfig, model: Contender | None = None) -> list[dict]:
    """Fit and evaluate ``task``'s splits with its contender (``model``, default: the registered one of
    ``task.model``; the driver sends it along, so a contender registered in the driver alone runs on any
    worker); one row per fit with its keys, results, worker, SLURM_JOB_ID, the worker process's peak memory
    (``worker_peak_rss_mib``, for run.json), how its products were computed and its CPU time
    (``fit_cpu_seconds``: :func:`cpu_seconds` over the task's fitting and scoring, shared by
    :func:`share_cpu`).

    A task that raises, and every fit that failed, is logged with its traceback or reason (to OUT/run.log,
    see harness.cluster.RunLog).
    """
    model = model or contender(task.model)
    try:
        rows = _fit_task(task, cube_path, cfg, model) if not (why := no_cuda(cfg, model)) else [
            dict(r, worker=worker_name()) for r in failed_rows(task, why)]
    except Exception:
        log.exception("task %s failed (%s)", task.key, worker_name())
        raise
    for r in rows:
        if r["status"] == "failed":
            log.warning("fit %s/%s/latent=%s/repeat=%s/fold=%s failed (%s): %s", r["model"], r["drug"],
                        r["latent"], r["repeat"], r["fold"], r["worker"], r["reason"])
    return rows


def _fit_task(task: Task, cube_path: str, cfg: RunConfig, model: Contender) -> list[dict]:
    dd = drug_data(str(cube_path), task.drug, cfg)
    data = model.task_data(dd, str(cube_path), task.splits, cfg)
    keys = task.fit_keys()
    seeds = {lat: [fit_seed(cfg.base_seed, k) for k in keys if k.latent == lat] for lat in task.latents}
    cpu0 = cpu_seconds()
    by_latent = model.run_latents(data, task.latents, seeds, cfg)
    cpu = cpu_seconds() - cpu0
    if any(len(by_latent.get(lat, ())) != len(data) for lat in task.latents):
        got = {lat: len(by_latent.get(lat, ())) for lat in task.latents}
        raise RuntimeError(f"task {task.key}: results per latent {got} for {len(data)} splits each")
    results = [res for lat in task.latents for res in by_latent[lat]]
    worker, device = worker_name(), device_of(cfg, model)
    job = os.environ.get("SLURM_JOB_ID", "")
    rows = []
    for k, res, sp in zip(keys, results, data * len(task.latents), strict=True):
        row = dict(res)
        if cfg.save_predictions and hasattr(sp, "test_cell_line"):
            row["test_cell_line"] = sp.test_cell_line
            if row.get("predictions"):   # where each test pair is in the cube (harness.predictions)
                by_index = {(s.repeat, s.fold): s for s in drug_splits(dd, cfg)}
                row["test_pairs"] = pair_samples(dd, by_index[(k.repeat, k.fold)], str(cube_path))
        row.setdefault("status", "done")
        row.setdefault("reason", "")
        row.update(model=k.model, drug=k.drug, latent=k.latent, repeat=k.repeat, fold=k.fold,
                   worker=worker, slurm_job_id=job, products=products_of(cfg, model, row), device=device)
        row.pop("steps_compiled", None)
        rows.append(row)
    rss = peak_rss_mib()   # the worker process's peak so far, for run.json (not stored per fit)
    kids = peak_rss_mib(resource.RUSAGE_CHILDREN)   # its largest ended child's: a plug-in, a compiler
    for row in rows:
        row["worker_peak_rss_mib"] = rss
        row["worker_children_peak_rss_mib"] = kids
    share_cpu(rows, cpu)
    return rows


def failed_rows(task: Task, reason: str) -> list[dict]:
    """Rows marking every fit of ``task`` failed with ``reason`` (a task that raised)."""
    return [dict(model=k.model, drug=k.drug, latent=k.latent, repeat=k.repeat, fold=k.fold, status="failed",
                 reason=reason, worker="", slurm_job_id="") for k in task.fit_keys()]
