"""What a worker runs for one task: read its drug's slice of the cube, build the splits, fit, evaluate.

One task is one (model, drug, latent) and a block of (repeat, fold) splits (a cheap contender's: all of the
drug's splits at each of its latent sizes); pertvae_core fits the block as one batched model. Each fit's
seed comes from harness.grid.fit_seed, so results do not depend on which worker runs the task or on how
splits are grouped into tasks.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from typing import Any

import numpy as np

from harness.config import RunConfig
from harness.contenders import Contender, contender
from harness.grid import POOLED, Task, fit_seed
from harness.predictions import pair_samples
from harness.shapes import run_splits, split_rows

log = logging.getLogger(__name__)


def _synchronous() -> Any:
    """Compute lazy (dask-backed) cube reads in this thread. Inside a Dask worker, xarray would otherwise
    compute through the worker's own client: every read becomes hidden tasks on the same one-thread
    workers, whose chunks are shipped between them, and a fit runs at half speed beside the worker's busy
    event loop."""
    import dask

    return dask.config.set(scheduler="synchronous")


@functools.lru_cache(maxsize=4)
def _cube(path: str):
    """The opened cube, cached per worker process; its values were checked once by the driver
    (harness.run), so workers skip that full-cube scan."""
    from datasets.cube import open_cube

    with _synchronous():
        return open_cube(path, check=False)


@functools.lru_cache(maxsize=4)
def _drug(path: str, drug: str):
    """A drug's pairs and singletons (read with the synchronous scheduler), cached per worker process (a
    few drugs: a worker holds its tasks' data, not the cube's)."""
    from datasets.pairs import drug_data

    with _synchronous():
        return drug_data(_cube(path), drug)


@functools.lru_cache(maxsize=1)
def _pooled(path: str, drug_names: tuple[str, ...]):
    """The POOLED pseudo-drug: the pairs of ``drug_names`` and the singletons (datasets.pairs.pooled_data)."""
    from datasets.pairs import pooled_data

    with _synchronous():
        return pooled_data(_cube(path), drug_names, POOLED)


def drug_data(path: str, drug: str, cfg: RunConfig):
    """``drug``'s DrugData, or the pooled one of the run's drugs (``cfg.drugs`` or all of the cube's) for
    POOLED."""
    if drug != POOLED:
        return _drug(path, drug)
    if cfg.drugs is not None:
        names = tuple(cfg.drugs)
    else:
        from datasets.cube import drugs

        names = tuple(drugs(_cube(path)))
    return _pooled(path, names)


def paired_cell_lines(dd: Any) -> list[str]:
    """Sorted unique cell lines with at least one pair for the drug."""
    return sorted({str(c) for c in np.asarray(dd.pair_cell_line)})


def drug_splits(dd: Any, cfg: RunConfig) -> list:
    """The drug's CV splits (repeat-major; harness.shapes.run_splits)."""
    return run_splits(paired_cell_lines(dd), dd.drug, cfg)


def split_data(dd: Any, split: Any, include_test_singletons: bool = False):
    """pertvae_core SplitData for one split (the rows of harness.shapes.split_rows): pairs of train/val/test
    cell lines, training singletons, the training cell lines' unpaired controls (``xu_train``: measured
    controls that no pair of the drug uses, which would otherwise never be trained on), and the test cell
    lines' labels and control replicates (for scoring per cell line)."""
    from pertvae_core.data import SplitData

    r = split_rows(dd.pair_cell_line, dd.pair_control, dd.control_cell_line, dd.singleton_cell_line, split,
                   include_test_singletons)
    cl = np.asarray(dd.pair_cell_line).astype(str)
    ccl = np.asarray(dd.control_cell_line).astype(str)
    x1, x2, xs, xc = (np.asarray(a, dtype=np.float32) for a in (dd.x1, dd.x2, dd.xs, dd.xc))
    return SplitData(x1_train=x1[r.train], x2_train=x2[r.train], x1_val=x1[r.val], x2_val=x2[r.val],
                     x1_test=x1[r.test], x2_test=x2[r.test], xs_train=xs[r.singletons],
                     test_cell_line=cl[r.test], xc_test=xc[r.test_controls],
                     xc_test_cell_line=ccl[r.test_controls], xu_train=xc[r.unused_controls])


def worker_name() -> str:
    """The Dask worker address when inside one, plus host and pid."""
    where = f"host={socket.gethostname()} pid={os.getpid()}"
    try:
        from distributed import get_worker

        return f"{get_worker().address} {where}"
    except (ImportError, ValueError):
        return where


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
    worker); one row per fit with its keys, results, worker and SLURM_JOB_ID.

    A task that raises, and every fit that failed, is logged with its traceback or reason (to OUT/run.log,
    see harness.cluster.RunLog).
    """
    try:
        rows = _fit_task(task, cube_path, cfg, model or contender(task.model))
    except Exception:
        log.exception("task %s failed (%s)", task.key, worker_name())
        raise
    for r in rows:
        if r["status"] == "failed":
            log.warning("fit %s/%s/latent=%s/repeat=%s/fold=%s failed (%s): %s", r["model"], r["drug"],
                        r["latent"], r["repeat"], r["fold"], r["worker"], r["reason"])
    return rows


def cube_of(path: str):
    """The cube at ``path``, opened once per worker process (for a contender's task data)."""
    return _cube(str(path))


def perturbation_data(dd: Any, split_keys: Any, cfg: RunConfig) -> list:
    """pertvae_core SplitData of ``dd``'s (repeat, fold) splits ``split_keys``: the perturbation models'
    task data (harness.contenders.base.Contender.task_data)."""
    by_index = {(s.repeat, s.fold): s for s in drug_splits(dd, cfg)}
    missing = [rk for rk in split_keys if rk not in by_index]
    if missing:
        raise ValueError(f"drug {dd.drug}: splits {missing} not produced by make_splits "
                         f"(n_repeats={cfg.n_repeats}, n_folds={cfg.n_folds})")
    return [split_data(dd, by_index[rk], cfg.include_test_singletons) for rk in split_keys]


def _fit_task(task: Task, cube_path: str, cfg: RunConfig, model: Contender) -> list[dict]:
    dd = drug_data(str(cube_path), task.drug, cfg)
    data = model.task_data(dd, str(cube_path), task.splits, cfg)
    keys = task.fit_keys()
    seeds = {lat: [fit_seed(cfg.base_seed, k) for k in keys if k.latent == lat] for lat in task.latents}
    by_latent = model.run_latents(data, task.latents, seeds, cfg)
    if any(len(by_latent.get(lat, ())) != len(data) for lat in task.latents):
        got = {lat: len(by_latent.get(lat, ())) for lat in task.latents}
        raise RuntimeError(f"task {task.key}: results per latent {got} for {len(data)} splits each")
    results = [res for lat in task.latents for res in by_latent[lat]]
    worker = worker_name()
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
                   worker=worker, slurm_job_id=job)
        rows.append(row)
    return rows


def failed_rows(task: Task, reason: str) -> list[dict]:
    """Rows marking every fit of ``task`` failed with ``reason`` (a task that raised)."""
    return [dict(model=k.model, drug=k.drug, latent=k.latent, repeat=k.repeat, fold=k.fold, status="failed",
                 reason=reason, worker="", slurm_job_id="") for k in task.fit_keys()]
