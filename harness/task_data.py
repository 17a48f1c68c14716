"""A task's data in the worker: the cube and a drug's pairs read once per process, the drug's CV splits, and
one split's pertvae_core SplitData (the rows of harness.shapes.split_rows).

Imports flow one way: the contenders' ``task_data`` and harness.tasks use this module; it imports the
datasets package, harness.shapes and pertvae_core, never the config, the grid or the contenders (a run's
settings arrive as a value).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.shapes import POOLED, run_splits, split_rows

if TYPE_CHECKING:
    from harness.config import RunConfig


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
        return _read_only(drug_data(_cube(path), drug))


@functools.lru_cache(maxsize=1)
def _pooled(path: str, drug_names: tuple[str, ...]):
    """The POOLED pseudo-drug: the pairs of ``drug_names`` and the singletons (datasets.pairs.pooled_data)."""
    from datasets.pairs import pooled_data

    with _synchronous():
        return _read_only(pooled_data(_cube(path), drug_names, POOLED))


def _read_only(dd: Any) -> Any:
    """``dd`` (a DrugData, kept for every model's tasks in this process) with its arrays read-only: a
    contender that edits its task's data in place (``dd.x1 -= ...`` in its task_data) fails its own task
    instead of changing the data of every model's later tasks here."""
    for v in vars(dd).values():
        if isinstance(v, np.ndarray):
            v.flags.writeable = False
    return dd


def drug_data(path: str, drug: str, cfg: RunConfig):
    """``drug``'s DrugData, or the pooled one of the run's drugs (``cfg.drugs`` or all of the cube's) for
    POOLED, pooled in the cube's drug order whatever the order of ``cfg.drugs``: a split's minibatches
    index the pooled rows, so ``--drugs B A`` pooled as given trained other fits than ``--drugs A B``.
    """
    if drug != POOLED:
        return _drug(path, drug)
    from datasets.cube import drugs

    names = tuple(d for d in drugs(_cube(path)) if cfg.drugs is None or d in cfg.drugs)
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
