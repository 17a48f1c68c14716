"""Which of a drug's rows one CV split uses: the one rule behind the task's data (harness.tasks.split_data)
and the cost model's row counts (harness.cost.split_shapes), so the estimate counts what a fit trains on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from datasets.splits import Split, make_splits, singleton_mask


@dataclass(frozen=True)
class SplitRows:
    """Boolean masks of one split over a drug's pairs, singletons and controls.

    ``train``, ``val``, ``test``: the pairs of the split's training, validation and test cell lines;
    ``singletons``: the singletons it trains on (not the test cell lines', unless transductive);
    ``test_controls``: the test cell lines' controls (scored per cell line); ``unused_controls``: the training
    cell lines' controls that no pair uses as x1 (``xu_train``: else never trained on)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    singletons: np.ndarray
    test_controls: np.ndarray
    unused_controls: np.ndarray


def run_splits(cell_lines: Sequence[str], drug: str, cfg: Any) -> list[Split]:
    """The run's CV splits (``cfg``: harness.config.RunConfig) of a drug paired in ``cell_lines`` (sorted),
    repeat-major (datasets.splits.make_splits)."""
    return make_splits(list(cell_lines), drug, n_repeats=cfg.n_repeats, n_folds=cfg.n_folds,
                       val_fraction=cfg.val_fraction, base_seed=cfg.base_seed)


def _of(cell_line: np.ndarray, names: Sequence[str]) -> np.ndarray:
    return np.isin(cell_line, np.asarray(list(names), dtype=str))


def split_rows(pair_cell_line: Any, pair_control: Any, control_cell_line: Any, singleton_cell_line: Any,
               split: Any, include_test_singletons: bool = False) -> SplitRows:
    """The rows ``split`` (datasets.splits.Split) uses of a drug whose pairs are of ``pair_cell_line`` with x1
    the control ``pair_control`` (an index into the controls, of ``control_cell_line``) and whose singletons
    are of ``singleton_cell_line``."""
    cl = np.asarray(pair_cell_line).astype(str)
    ccl = np.asarray(control_cell_line).astype(str)
    unused = ~np.isin(np.arange(len(ccl)), np.asarray(pair_control))
    singletons = singleton_mask(singleton_cell_line, split, include_test=include_test_singletons)
    return SplitRows(train=_of(cl, split.train_cell_lines), val=_of(cl, split.val_cell_lines),
                     test=_of(cl, split.test_cell_lines), singletons=np.asarray(singletons, dtype=bool),
                     test_controls=_of(ccl, split.test_cell_lines),
                     unused_controls=unused & _of(ccl, split.train_cell_lines))
