"""Rows per drug and CV split: which of a drug's rows a split uses (:func:`split_rows`, the one rule behind
the task's data, harness.task_data.split_data, and the cost model's row counts, :func:`split_shapes`), and the
shapes of a cube's drugs counted from its measured profiles without reading them (:func:`drug_shapes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from datasets.splits import Split, make_splits, singleton_mask

if TYPE_CHECKING:
    from harness.config import RunConfig

# The pseudo-drug Figure 2's reconstruction models (harness.contenders: ``figure2``) run on with
# ``figure2_scope = "pooled"``: the pairs of every selected drug together with the singletons, split by cell
# line (harness.task_data.drug_data). Here, below the config, grid and contenders, which all use it.
POOLED = "(pooled)"


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


def run_splits(cell_lines: Sequence[str], drug: str, cfg: RunConfig) -> list[Split]:
    """The run's CV splits of a drug paired in ``cell_lines`` (sorted),
    repeat-major (datasets.splits.make_splits)."""
    return make_splits(list(cell_lines), drug, n_repeats=cfg.n_repeats, n_folds=cfg.n_folds,
                       val_fraction=cfg.val_fraction, base_seed=cfg.base_seed)


def split_warnings(drug: str, splits: Sequence[Split]) -> list[str]:
    """What a count of the drug's splits hides (the dry run and the run print it): repeats that hold out the
    same cell lines again (5 cell lines at 5 folds: 50 splits, 5 test sets; the p-values rest on 5 and more
    repeats add none; 14 at 5 folds: 47 test sets, as a fold of 2 or 3 can recur), and splits that train
    on a single cell line (3 cell lines at 3 folds: one tests, one validates), whose model, gene
    standardization and baselines come from that one line's replicates."""
    cells = len({c for s in splits for c in (*s.train_cell_lines, *s.val_cell_lines, *s.test_cell_lines)})
    sets = len({s.test_cell_lines for s in splits})
    one = sum(len(s.train_cell_lines) == 1 for s in splits)
    out = []
    if sets < len(splits):
        same = sets == len({s.fold for s in splits})   # every repeat deals the same folds
        out.append(f"note: drug {drug!r}: its {len(splits)} splits are {sets} distinct test sets ({cells} "
                   f"cell lines: {'every repeat holds' if same else 'repeats hold'} out the same cell lines "
                   f"again); its p-values count each test set once"
                   + (f", so they rest on {sets}, and more repeats add none" if same else ""))
    if one:
        out.append(f"warning: drug {drug!r}: {one} of {len(splits)} splits train on a single cell line "
                   f"({cells} cell lines: the split's others validate and test), so the model, the genes' "
                   "standardization and the baselines' mean change come from that one cell line's "
                   "replicates; add cell lines of the drug, or drop it with --drugs")
    return out


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


@dataclass(frozen=True)
class SplitShape:
    """Rows of one CV split of one drug, as harness.task_data.split_data would give them."""

    n_train: int
    n_val: int
    n_test: int
    n_single: int
    test_pairs: tuple[int, ...]      # per test cell line
    test_controls: tuple[int, ...]   # per test cell line
    n_train_x1: int = -1             # distinct controls among x1_train (-1: n_train, all distinct)
    n_unused: int = 0                # controls of the training cell lines no pair uses (xu_train)
    n_val_x1: int = -1               # distinct controls among x1_val (-1: n_val, all distinct)

    @property
    def distinct_x1(self) -> int:
        """Distinct controls among x1_train (the plain VAE trains on each once)."""
        return self.n_train if self.n_train_x1 < 0 else self.n_train_x1

    @property
    def distinct_x1_val(self) -> int:
        """Distinct controls among x1_val (the plain VAE validates on each once)."""
        return self.n_val if self.n_val_x1 < 0 else self.n_val_x1


@dataclass(frozen=True)
class DrugShape:
    """Measured profiles of one drug (or POOLED) per cell line: pairs, controls, singletons."""

    drug: str
    genes: int
    pairs: Mapping[str, int]        # cell line -> pairs (= measured post-treatment replicates)
    controls: Mapping[str, int]     # cell line -> measured controls (paired cell lines only)
    singletons: Mapping[str, int]   # cell line -> measured baseline profiles
    x1_controls: Mapping[str, frozenset[int]]   # cell line -> the control replicates its pairs use as x1


def drug_shapes(ds: Any, drug_names: Sequence[str]) -> dict[str, DrugShape]:
    """DrugShape of each drug of ``ds`` (a cube) from its measured profiles (no NaN gene) and plates; one
    pass over the control, drug and baseline conditions."""
    from datasets.cube import CONDITION_BASELINE, CONDITION_CONTROL
    from datasets.pairs import condition_plates, pick_controls

    conds = [str(c) for c in ds["condition"].values]
    want = [CONDITION_CONTROL, *drug_names] + ([CONDITION_BASELINE] if CONDITION_BASELINE in conds else [])
    m = ds["expression"].sel(condition=want).notnull().all("gene")
    measured = np.asarray(m.transpose("cell_line", "condition", "replicate").values, dtype=bool)
    counts = measured.sum(axis=2)
    cells = [str(c) for c in ds["cell_line"].values]
    genes = int(ds.sizes["gene"])
    ctrl = counts[:, 0]
    pl_ctrl = condition_plates(ds, CONDITION_CONTROL, measured[:, 0].shape)
    single = ({c: int(n) for c, n in zip(cells, counts[:, -1], strict=True) if n}
              if CONDITION_BASELINE in conds else {})
    out = {}
    for j, d in enumerate(drug_names, start=1):
        paired = np.flatnonzero((counts[:, j] > 0) & (ctrl > 0))
        pl_post = condition_plates(ds, d, measured[:, j].shape)
        x1 = {}
        for i in paired:
            c_idx, p_idx = np.flatnonzero(measured[i, 0]), np.flatnonzero(measured[i, j])
            pick = pick_controls(pl_ctrl[i, c_idx], pl_post[i, p_idx])[0]
            x1[cells[i]] = frozenset(int(c) for c in c_idx[pick])
        out[d] = DrugShape(d, genes, {cells[i]: int(counts[i, j]) for i in paired},
                           {cells[i]: int(ctrl[i]) for i in paired}, single, x1)
    return out


def pooled_shape(shapes: Sequence[DrugShape]) -> DrugShape:
    """The POOLED pseudo-drug: every drug's pairs, each cell line's controls once, the singletons."""
    pairs: dict[str, int] = {}
    controls: dict[str, int] = {}
    x1: dict[str, frozenset[int]] = {}
    for s in shapes:
        for c, n in s.pairs.items():
            pairs[c] = pairs.get(c, 0) + n
            controls[c] = s.controls[c]
            x1[c] = x1.get(c, frozenset()) | s.x1_controls[c]
    return DrugShape(POOLED, shapes[0].genes, pairs, controls, shapes[0].singletons, x1)


def _rows(shape: DrugShape) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stand-in row labels of ``shape`` for harness.shapes.split_rows: each pair's and control's and
    singleton's cell line, and each pair's x1 control (a cell line's pairs share its x1 controls in turn,
    which keeps their number; the rest of its controls are unused)."""
    cells = sorted(shape.pairs)
    pair_cl = np.repeat(cells, [shape.pairs[c] for c in cells])
    control_cl = np.repeat(cells, [shape.controls[c] for c in cells])
    starts = np.cumsum([0] + [shape.controls[c] for c in cells])
    blocks = [s + np.arange(shape.pairs[c]) % len(shape.x1_controls[c])
              for s, c in zip(starts, cells, strict=False)]
    pair_control = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)
    single_cl = np.repeat(list(shape.singletons), list(shape.singletons.values()))
    return pair_cl, pair_control, control_cl, single_cl


def split_shapes(shape: DrugShape, cfg: RunConfig) -> dict[tuple[int, int], SplitShape]:
    """(repeat, fold) -> SplitShape: the rows the run's splits (:func:`run_splits`) take, by the rule the
    tasks use (:func:`split_rows`)."""
    pair_cl, pair_control, control_cl, single_cl = _rows(shape)
    out = {}
    for sp in run_splits(sorted(shape.pairs), shape.drug, cfg):
        r = split_rows(pair_cl, pair_control, control_cl, single_cl, sp, cfg.include_test_singletons)
        out[(sp.repeat, sp.fold)] = SplitShape(
            n_train=int(r.train.sum()), n_val=int(r.val.sum()), n_test=int(r.test.sum()),
            n_single=int(r.singletons.sum()),
            test_pairs=tuple(int((pair_cl == c).sum()) for c in sp.test_cell_lines),
            test_controls=tuple(int((control_cl == c).sum()) for c in sp.test_cell_lines),
            n_train_x1=len(np.unique(pair_control[r.train])), n_unused=int(r.unused_controls.sum()),
            n_val_x1=len(np.unique(pair_control[r.val])))
    return out
