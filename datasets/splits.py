"""Repeated cross-validation grouped by cell line (the paper's 10 x 5-fold evaluation).

A cell line is never in two folds of one repeat, so no test pair shares a cell line with a training pair.
Each repeat reshuffles the cell lines with a seed derived by sha256 from (base_seed, drug, repeat), never
Python's ``hash()``, so splits are identical across processes and machines. Each fold draws its validation
cell lines from its own training cell lines with a seed derived from (base_seed, drug, repeat, fold),
preferring those validated least often in the repeat's earlier folds: validation rotates over the cell
lines, so each is trained on in nearly all folds where it is not tested.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from datasets.cell_names import cell_line_key, spelling_clashes
from datasets.cube import CubeError

# The fewest cell lines make_splits can split (with n_folds = 3): one to test, two to train and validate.
MIN_CELL_LINES = 3


@dataclass(frozen=True)
class Split:
    """One (repeat, fold): disjoint train / validation (early stopping) / test cell lines."""

    repeat: int
    fold: int
    train_cell_lines: tuple[str, ...]
    val_cell_lines: tuple[str, ...]
    test_cell_lines: tuple[str, ...]


def split_seed(drug: str, repeat: int, base_seed: int) -> int:
    """64-bit seed from sha256 of ``base_seed/drug/repeat``."""
    h = hashlib.sha256(f"splits/{int(base_seed)}/{drug}/{int(repeat)}".encode()).digest()
    return int.from_bytes(h[:8], "little")


def val_seed(drug: str, repeat: int, fold: int, base_seed: int) -> int:
    """64-bit seed of a fold's validation draw from sha256 of ``base_seed/drug/repeat/fold``."""
    h = hashlib.sha256(f"val/{int(base_seed)}/{drug}/{int(repeat)}/{int(fold)}".encode()).digest()
    return int.from_bytes(h[:8], "little")


def make_splits(cell_lines: Sequence[str], drug: str, n_repeats: int = 10, n_folds: int = 5,
                val_fraction: float = 0.2, base_seed: int = 0) -> list[Split]:
    """``n_repeats`` x ``n_folds`` grouped splits in repeat-major order.

    Per repeat the unique cell lines are shuffled and dealt into ``n_folds`` near-equal test folds; of a
    fold's remaining n (training) cell lines, ``max(1, round(val_fraction * n))`` form its validation set:
    those validated least often in the repeat's earlier folds, ties broken at random (seed ``val_seed``).
    """
    cells = sorted({str(c) for c in cell_lines})
    _refuse_spellings(cells, drug)
    if n_folds < 2:
        raise CubeError(f"n_folds: must be >= 2, got {n_folds}")
    if n_repeats < 1:
        raise CubeError(f"n_repeats: must be >= 1, got {n_repeats}")
    if not 0.0 <= val_fraction < 1.0:
        raise CubeError(f"val_fraction: must be in [0, 1), got {val_fraction}")
    if len(cells) < n_folds:
        raise CubeError(f"drug {drug!r}: {len(cells)} cell line(s) with pairs, fewer than n_folds={n_folds}")
    if len(cells) - -(-len(cells) // n_folds) < 2:
        raise CubeError(f"drug {drug!r}: {len(cells)} cell lines leave fewer than 2 for training+validation "
                        f"with n_folds={n_folds}")
    out: list[Split] = []
    for rep in range(n_repeats):
        rng = np.random.default_rng(split_seed(drug, rep, base_seed))
        perm = [cells[i] for i in rng.permutation(len(cells))]
        folds = [perm[f::n_folds] for f in range(n_folds)]
        n_validated = dict.fromkeys(cells, 0)
        test_fold = {c: f for f in range(n_folds) for c in folds[f]}
        for f in range(n_folds):
            test = set(folds[f])
            rest = [c for c in cells if c not in test]
            n_val = min(len(rest) - 1, max(1, int(round(val_fraction * len(rest)))))
            tie = np.random.default_rng(val_seed(drug, rep, f, base_seed)).random(len(rest))
            # least validated first; then those with fewer later chances (their test fold is still ahead)
            order = sorted(range(len(rest)),
                           key=lambda i: (n_validated[rest[i]], test_fold[rest[i]] < f, tie[i]))
            val = {rest[i] for i in order[:n_val]}
            for c in val:
                n_validated[c] += 1
            train = [c for c in rest if c not in val]
            out.append(Split(rep, f, tuple(train), tuple(sorted(val)), tuple(sorted(test))))
    return out


def _refuse_spellings(cells: Sequence[str], drug: str) -> None:
    """CubeError for names that differ only in case or punctuation (``MCF7``, ``mcf-7``): grouped by exact
    name they are two groups, so one cell line's replicates could sit in a training and a test fold. The cube
    refuses them (datasets.cube), but names given here directly (the Python API, an unvalidated Dataset)
    were split apart."""
    clashes = spelling_clashes(cells)
    if clashes:
        named = "; ".join(" and ".join(repr(s) for s, _ in v) for v in clashes.values())
        raise CubeError(f"drug {drug!r}: cell lines {named} differ only in case or punctuation (one cell "
                        "line under two names could sit in a training and a test fold); make the spellings "
                        "agree")


def singleton_mask(singleton_cell_line: Sequence[str] | np.ndarray, split: Split,
                   include_test: bool = False) -> np.ndarray:
    """Which singletons train in ``split``: all but those of test cell lines (unless ``include_test``).

    Names are compared by :func:`datasets.cell_names.cell_line_key`, as the baseline is matched to L1000 (a
    validated cube has one spelling per key): compared exactly, a test cell line's baseline profile spelled
    another way (``MCF-7`` for test ``MCF7``) was trained on."""
    scl = np.asarray([str(c) for c in np.asarray(singleton_cell_line).ravel()], dtype=object)
    if include_test or len(scl) == 0:
        return np.ones(len(scl), dtype=bool)
    test = {cell_line_key(c) for c in split.test_cell_lines}
    names, row_name = np.unique(scl.astype(str), return_inverse=True)   # each name keyed once
    return np.asarray([cell_line_key(c) not in test for c in names], dtype=bool)[row_name.ravel()]
