"""Scoring any method's predictions on a split's test cell lines, and the per-drug noise ceiling.

One scoring function for every method (PertVAE, its reconstruction, the baselines, a user's method): a
method is fitted on the split's training data and asked for x2_hat at two sets of test inputs, the paper's
test pairs (``split.x1_test``) and the evaluation inputs of :class:`TestCells`.

Spaces. ``raw``: the data as given (the paper's). ``z``: per gene, (x - mean) / sd with the mean and sd of
the split's training L1000 profiles (x1_train and x2_train; never the test, validation or baseline rows).

Per test cell line c (each cell line weighs the same; the split's value is the mean over its cell lines):
- its control replicates C_c are split into model inputs I_c (the first ceil(n/2)) and a reference R_c (the
  rest); with one control, I_c = R_c = C_c and the cell line is not *independent*;
- x2_hat_c = mean over x1 in I_c of the method's x2_hat(x1); x2_c = mean of c's post-treatment replicates;
- predicted change  d_hat_c = z(x2_hat_c) - z(mean I_c);   observed change  d_c = z(x2_c) - z(mean R_c).
  Using R_c, not I_c, in the observed change keeps the input's replicate noise out of it: otherwise any
  predictor of the form f(x1) - x1 correlates with -noise(x1) for free.

Metrics (names are column values of the results):
- ``rho_pred_pert``: the paper's, Spearman(x2_hat, x2) in raw space per test pair, mean over test pairs;
- ``rho_pred_pert_z``: Spearman(z(x2_hat_c), z(x2_c)), per cell line;
- ``delta_pearson`` (primary): Pearson(d_hat_c, d_c) over genes, independent cell lines only;
- ``delta_pearson_centered``: Pearson(d_hat_c - m, d_c - mean_c' d_c'): what a method predicts beyond the
  drug's average effect. The predicted side is centered on the training mean change m (mean over training
  pairs of z(x2) - z(x1)), so mean_shift scores 0 by construction; the observed side on the mean observed
  change of the split's scored test cell lines. Centering both on m would put -m into both vectors and
  reward any method that does not predict the average effect (identity would score ~0.15 on a null drug);
  the two centering vectors here share no data;
- ``mse_z``: mean over genes of (z(x2_hat_c) - z(x2_c))^2 (lower is better);
- ``de_sign_top50``: fraction of the 50 genes with the largest |d_c| where d_hat_c has the same sign,
  independent cell lines only.
A prediction of no change has correlation 0 (:func:`pertvae_core.metrics.change_pearson_rows`).

:func:`score_detail` also keeps the per-cell-line values behind each mean (``rho_pred_pert`` per cell line
is the mean over its test pairs) and, per gene over the independent test cell lines (:data:`GENE_METRICS`):
the mean observed change d, the mean predicted change d_hat, and ``gene_pearson``, the Pearson correlation
across those cell lines of d_hat[:, g] with d[:, g] (NaN with fewer than 3 cell lines or a constant side).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pertvae_core.data import SplitData, distinct_rows
from pertvae_core.metrics import (
    change_pearson_rows,
    mse_rows,
    pearson_rows,
    rho_mean,
    sign_agreement_top_rows,
    spearman_rows,
)

__all__ = ["METRICS", "GENE_METRICS", "PRIMARY", "HIGHER_IS_BETTER", "ZSpace", "TestCells", "Scores",
           "score", "score_detail", "score_method", "score_method_detail", "noise_ceiling"]

METRICS = ("rho_pred_pert", "rho_pred_pert_z", "delta_pearson", "delta_pearson_centered", "mse_z",
           "de_sign_top50")
PRIMARY = "delta_pearson"
HIGHER_IS_BETTER = {m: m != "mse_z" for m in METRICS}
GENE_METRICS = ("observed_change", "predicted_change", "gene_pearson")
TOP_GENES = 50
MIN_CELLS_GENE_PEARSON = 3


@dataclass(frozen=True)
class ZSpace:
    """Per-gene standardization with a split's training L1000 statistics (genes constant there: scale 1)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def from_training(cls, split: SplitData) -> ZSpace:
        x = np.concatenate([split.x1_train, split.x2_train]).astype(np.float64)
        sd = x.std(axis=0)
        return cls(mean=x.mean(axis=0), scale=np.where(sd > 0, sd, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.scale


@dataclass(frozen=True)
class TestCells:
    """A split's test cell lines for scoring (see the module docstring)."""

    __test__ = False  # not a pytest class

    cell_lines: tuple[str, ...]
    x1: np.ndarray             # [n_in, G] evaluation inputs: the input controls I_c of every cell line
    x1_cell: np.ndarray        # [n_in] index into cell_lines
    x1_ref: np.ndarray         # [n_cells, G] mean of the reference controls R_c
    x2: np.ndarray             # [n_cells, G] mean of the post-treatment replicates
    independent: np.ndarray    # [n_cells] bool: R_c and I_c are disjoint (>= 2 controls)

    @classmethod
    def from_split(cls, split: SplitData) -> TestCells:
        n = split.x1_test.shape[0]
        labels = (np.asarray(split.test_cell_line).astype(str) if split.test_cell_line is not None
                  else np.array([f"pair{i}" for i in range(n)]))
        names = tuple(dict.fromkeys(labels.tolist()))
        inputs, in_cell, ref, post, indep = [], [], [], [], []
        for c, name in enumerate(names):
            rows = labels == name
            if split.xc_test is not None:
                ctrl = split.xc_test[split.xc_test_cell_line == name]
            else:
                ctrl = distinct_rows(split.x1_test[rows])
            k = math.ceil(len(ctrl) / 2)
            inp, rest = ctrl[:k], ctrl[k:]
            inputs.append(inp)
            in_cell.extend([c] * len(inp))
            ref.append((rest if len(rest) else inp).mean(axis=0))
            post.append(distinct_rows(split.x2_test[rows]).mean(axis=0))
            indep.append(len(rest) > 0)
        return cls(cell_lines=names, x1=np.concatenate(inputs).astype(np.float32),
                   x1_cell=np.asarray(in_cell, dtype=np.int64), x1_ref=np.stack(ref).astype(np.float64),
                   x2=np.stack(post).astype(np.float64), independent=np.asarray(indep, dtype=bool))

    def cell_means(self, per_input: np.ndarray) -> np.ndarray:
        """[n_cells, G]: the mean over each cell line's input rows of ``per_input`` [n_in, G]."""
        per_input = np.asarray(per_input, dtype=np.float64)
        out = np.zeros((len(self.cell_lines), per_input.shape[1]))
        np.add.at(out, self.x1_cell, per_input)
        return out / np.bincount(self.x1_cell, minlength=len(self.cell_lines))[:, None]


def _nanmean(v: np.ndarray) -> float:
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


@dataclass(frozen=True)
class Scores:
    """One method's scores on one split: the split's values (:data:`METRICS`), the per-test-cell-line
    values behind them ([n_cells] per metric, NaN where undefined) and the per-gene values
    (:data:`GENE_METRICS`, [G] each)."""

    summary: dict[str, float]
    cell_lines: tuple[str, ...]
    per_cell: dict[str, np.ndarray]
    per_gene: dict[str, np.ndarray]


def score(split: SplitData, pred_pairs: np.ndarray, pred_cells: np.ndarray,
          cells: TestCells | None = None) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one method on one split (:func:`score_detail`'s summary).

    ``pred_pairs`` [n_test, G]: x2_hat for ``split.x1_test`` (the paper's pairs); ``pred_cells`` [n_in, G]:
    x2_hat for ``cells.x1``. Raw gene space in, as the method predicts. The change metrics are NaN when no
    test cell line has two or more control replicates.
    """
    return score_detail(split, pred_pairs, pred_cells, cells).summary


def _per_cell_of_pairs(split: SplitData, cells: TestCells, per_pair: np.ndarray) -> np.ndarray:
    """[n_cells]: the mean over each test cell line's pairs of ``per_pair`` (NaN values ignored)."""
    n = split.x1_test.shape[0]
    labels = (np.asarray(split.test_cell_line).astype(str) if split.test_cell_line is not None
              else np.array([f"pair{i}" for i in range(n)]))
    return np.array([_nanmean(per_pair[labels == c]) for c in cells.cell_lines])


def _gene_pearson(d_hat: np.ndarray, d_obs: np.ndarray) -> np.ndarray:
    """[G]: Pearson across cell lines (rows) of each gene's predicted and observed change."""
    if d_obs.shape[0] < MIN_CELLS_GENE_PEARSON:
        return np.full(d_obs.shape[1], np.nan)
    return pearson_rows(d_hat.T, d_obs.T)


def score_detail(split: SplitData, pred_pairs: np.ndarray, pred_cells: np.ndarray,
                 cells: TestCells | None = None) -> Scores:
    """:func:`score` with the per-cell-line and per-gene values (:class:`Scores`)."""
    cells = cells if cells is not None else TestCells.from_split(split)
    pred_pairs = np.asarray(pred_pairs, dtype=np.float64)
    pred_cells = np.asarray(pred_cells, dtype=np.float64)
    if pred_pairs.shape != split.x2_test.shape or pred_cells.shape != cells.x1.shape:
        raise ValueError(f"score: predictions of shape {pred_pairs.shape} and {pred_cells.shape}, expected "
                         f"{split.x2_test.shape} and {cells.x1.shape}")
    zs = ZSpace.from_training(split)
    m = zs(split.x2_train).mean(axis=0) - zs(split.x1_train).mean(axis=0)
    zhat = zs(cells.cell_means(pred_cells))
    zx2 = zs(cells.x2)
    d_hat = zhat - zs(cells.cell_means(cells.x1))
    d_obs = zx2 - zs(cells.x1_ref)
    rms = np.sqrt(np.mean(zhat**2, axis=-1)) + np.sqrt(np.mean(m**2))
    ind = cells.independent
    d_obs_centered = d_obs - (d_obs[ind].mean(axis=0) if ind.any() else 0.0)
    nan = np.full(len(cells.cell_lines), np.nan)
    with np.errstate(invalid="ignore"):
        per_cell = {
            "rho_pred_pert": _per_cell_of_pairs(split, cells, spearman_rows(pred_pairs, split.x2_test)),
            "rho_pred_pert_z": spearman_rows(zhat, zx2),
            "delta_pearson": np.where(ind, change_pearson_rows(d_hat, d_obs, rms), nan),
            "delta_pearson_centered": np.where(ind, change_pearson_rows(d_hat - m, d_obs_centered, rms), nan),
            "mse_z": mse_rows(zhat, zx2),
            "de_sign_top50": np.where(ind, sign_agreement_top_rows(d_hat, d_obs, TOP_GENES), nan),
        }
        none = np.full(zx2.shape[1], np.nan)
        per_gene = {"observed_change": d_obs[ind].mean(axis=0) if ind.any() else none,
                    "predicted_change": d_hat[ind].mean(axis=0) if ind.any() else none,
                    "gene_pearson": _gene_pearson(d_hat[ind], d_obs[ind])}
    summary = {k: _nanmean(v) for k, v in per_cell.items()}
    summary["rho_pred_pert"] = rho_mean(pred_pairs, split.x2_test)  # the paper's: a mean over test pairs
    return Scores(summary={k: summary[k] for k in METRICS}, cell_lines=cells.cell_lines,
                  per_cell={k: np.asarray(v, dtype=np.float64) for k, v in per_cell.items()},
                  per_gene={k: np.asarray(v, dtype=np.float64) for k, v in per_gene.items()})


def score_method(split: SplitData, predict: Callable[[np.ndarray], np.ndarray],
                 cells: TestCells | None = None) -> dict[str, float]:
    """:func:`score` of a fitted method's ``predict(x1) -> x2_hat`` (:func:`score_method_detail`)."""
    return score_method_detail(split, predict, cells).summary


def score_method_detail(split: SplitData, predict: Callable[[np.ndarray], np.ndarray],
                        cells: TestCells | None = None) -> Scores:
    """:func:`score_detail` of a fitted method's ``predict(x1) -> x2_hat``, called on the test pairs, then on
    the evaluation inputs (always in this order, so a stochastic predictor's draws are reproducible)."""
    cells = cells if cells is not None else TestCells.from_split(split)
    return score_detail(split, predict(split.x1_test), predict(cells.x1), cells)


def noise_ceiling(x1: np.ndarray, x2: np.ndarray, x1_cell: np.ndarray, x2_cell: np.ndarray
                  ) -> tuple[float, int, str]:
    """Per-drug replicate agreement of the observed change: ``ceiling_delta_pearson``.

    For each cell line with >= 2 post-treatment and >= 2 control replicates, its replicates are split into
    two halves (even and odd positions) of both conditions, giving two independent observed changes
    z(mean x2_A) - z(mean x1_A) and z(mean x2_B) - z(mean x1_B) (z: standardized with the drug's L1000
    profiles); their Pearson correlation across genes is averaged over those cell lines. It is the
    agreement of two half-replicate measurements of the change: what a perfect predictor would reach
    against one noisy half, a reference level rather than a hard bound. Returns (value, n cell lines,
    reason); NaN with the reason when no cell line has enough replicates.
    """
    x1, x2 = np.asarray(x1, np.float64), np.asarray(x2, np.float64)
    c1, c2 = np.asarray(x1_cell).astype(str), np.asarray(x2_cell).astype(str)
    allx = np.concatenate([x1, x2])
    sd = allx.std(axis=0)
    zs = ZSpace(mean=allx.mean(axis=0), scale=np.where(sd > 0, sd, 1.0))
    a, b = [], []
    for name in dict.fromkeys(c2.tolist()):
        ctrl, post = x1[c1 == name], x2[c2 == name]
        if len(ctrl) < 2 or len(post) < 2:
            continue
        a.append(zs(post[0::2].mean(0)) - zs(ctrl[0::2].mean(0)))
        b.append(zs(post[1::2].mean(0)) - zs(ctrl[1::2].mean(0)))
    if not a:
        return float("nan"), 0, "no cell line has >= 2 post-treatment and >= 2 control replicates"
    r = pearson_rows(np.stack(a), np.stack(b))
    return _nanmean(r), len(a), ""
