"""Scoring any method's predictions on a split's test cell lines.

One scoring function for every method (PertVAE, its reconstruction, the baselines, a user's method): a
method is fitted on the split's training data and asked for x2_hat at two sets of test inputs, the paper's
test pairs (``split.x1_test``) and the evaluation inputs of :class:`TestCells`.

Spaces. ``raw``: the data as given (the paper's). ``z``: per gene, (x - mean) / sd with the mean and sd of
the split's training L1000 profiles, each measured profile once (the distinct x1_train, x2_train and the
unpaired training controls xu_train; never the test, validation or baseline rows).

Per test cell line c (each cell line weighs the same; the split's value is the mean over its cell lines):
- its control replicates C_c are split into model inputs I_c (the first ceil(n/2)) and a reference R_c (the
  rest); with one control, I_c = R_c = C_c and the cell line is not *independent*;
- x2_hat_c = mean over x1 in I_c of the method's x2_hat(x1); x2_c = mean of c's post-treatment replicates;
- predicted change  d_hat_c = z(x2_hat_c) - z(mean I_c);   observed change  d_c = z(x2_c) - z(mean R_c).
  Using R_c, not I_c, in the observed change keeps the input's replicate noise out of it: otherwise any
  predictor of the form f(x1) - x1 correlates with -noise(x1) for free.

Metrics (names are column values of the results; :data:`CHANCE` gives each change metric's chance level,
the score of a prediction of no change (of delta_pearson_centered, of mean_shift's: no change predicts -m
there, at chance on average only) and, on average, of any prediction unrelated to the drug's change):
- ``rho_pred_pert``: the paper's, Spearman(x2_hat, x2) in raw space per test pair, mean over test pairs;
- ``rho_pred_pert_z``: Spearman(z(x2_hat_c), z(x2_c)), per cell line;
- ``delta_pearson`` (primary, chance 0): Pearson(d_hat_c, d_c) over genes, independent cell lines only;
- ``delta_pearson_centered`` (chance 0): Pearson(d_hat_c - m, d_c - mean_c' d_c'): what a method predicts
  beyond the drug's average effect. The predicted side is centered on the training mean change m (mean over
  training pairs of z(x2) - z(x1)), so mean_shift scores 0 by construction; the observed side on the mean
  observed change of the split's scored test cell lines. Centering both on m would put -m into both vectors
  and reward any method that does not predict the average effect (identity would score ~0.15 on a null
  drug); the two centering vectors here share no data;
- ``mse_z``: mean over genes of (z(x2_hat_c) - z(x2_c))^2 (lower is better; a metric of the absolute
  profile, no chance level: on a null drug identity is right and train_mean truly wrong);
- ``de_sign_top50`` (chance 0.5): fraction of the 50 genes with the largest |d_c| where d_hat_c has the
  same sign, a predicted change of 0 counting half, independent cell lines only;
- ``retrieval`` (chance 0.5): the normalized rank of c's own observed change among the split's independent
  test cell lines' observed changes by correlation with d_hat_c (:func:`pertvae_core.metrics.retrieval_rows`):
  does the prediction single out its own cell line? A method predicting one change for all scores 0.5;
- ``delta_pearson_ablated`` (chance 0): the input-ablation control, delta_pearson of d_hat_pi(c), the same
  fitted method's predicted change for another test cell line pi(c), scored against c's observed change
  (pi a fixed derangement of the split's test cell lines, seeded by their names, the same for every
  method). delta_pearson minus it is the method's cell-specificity gain: ~0 for a method that predicts one
  change for every cell line (mean_shift: exactly 0 up to float round-off).
A prediction of no change has correlation 0 (:func:`pertvae_core.metrics.change_pearson_rows`), and so
does, in the Spearman metrics, a prediction constant across genes
(:func:`pertvae_core.metrics.prediction_spearman_rows`): it ranks no gene, so it is scored at the
correlation's chance level, never dropped as undefined (a NaN would leave its method scored on its
informative test pairs or splits alone).

:func:`score_detail` also keeps the per-cell-line values behind each mean (``rho_pred_pert`` per cell line
is the mean over its test pairs) and, per gene over the independent test cell lines, the sufficient
statistics :data:`GENE_METRICS` (count, sums, sums of squares and cross-products of d_hat[:, g] and
d[:, g]), so that a report can pool a repeat's folds and test each cell line once. The noise ceiling is
:mod:`pertvae_core.ceiling`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from pertvae_core.data import SplitData, check_scorable, distinct_rows, measured_profiles
from pertvae_core.metrics import (
    change_pearson_rows,
    mse_rows,
    prediction_spearman_rows,
    retrieval_rows,
    rho_mean,
    sign_agreement_top_rows,
)

__all__ = ["SCORING", "METRICS", "GENE_METRICS", "PRIMARY", "RHO_REC", "ABLATED", "CHANCE", "CHANGE_METRICS",
           "HIGHER_IS_BETTER", "ZSpace", "TestCells", "Scores", "cell_replicates", "score", "score_detail",
           "score_method", "score_method_detail", "per_cell_mean", "control_rows", "reconstruction_rho"]

# The version of what a fit's numbers mean (training statistics, metrics, evaluation inputs): 2 = each
# measured profile once in the training statistics, unpaired controls trained on, retrieval, the ablation
# and de_sign_top50's half for no change. A result store records it and is not resumed by other versions.
# Changes of round-off only (device, compile, fused kernels, the bf16 products' path) keep the version,
# as the science key treats device and compile: a fit's numbers mean the same. 3 = a prediction constant
# across genes scores 0 (the correlation's chance level) instead of NaN, left out of the means; and
# delta_pearson_centered is NaN for every method where the observed centred change is constant (and, in
# the harness, Figure 2's pooled fits pool the drugs in the cube's order, not the order of --drugs). 4 =
# Figure 2's PCA standardizes the training profiles as the VAE does (FitConfig.standardize, per source by
# default), not pooled (pertvae_core.baselines). 5 = the response head's AUPR takes tied scores in every
# order alike, its chance the AP of a constant score, a random ranking's (pertvae_core.response_metrics),
# not sklearn's one threshold per block of ties and the test prevalence.
SCORING = "5"
METRICS = ("rho_pred_pert", "rho_pred_pert_z", "delta_pearson", "delta_pearson_centered", "mse_z",
           "de_sign_top50", "retrieval", "delta_pearson_ablated")
PRIMARY = "delta_pearson"
# Figure 2's reconstruction metric (the paper's rho_rec): Spearman of a reconstruction of the test controls
# with the controls themselves (:func:`reconstruction_rho`). It scores a reconstruction, not a prediction of
# x2, so it is no metric of the benchmark (METRICS); the result store keeps it beside them.
RHO_REC = "rho_rec"
ABLATED = {PRIMARY: "delta_pearson_ablated"}  # metric -> its input-ablation control
# The score of a prediction of no change (delta_pearson_centered: of the training mean change, mean_shift;
# identity scores it only on average), and the expected score of any prediction unrelated to the drug's
# change; metrics of the absolute profile (the raw and z Spearman, mse_z) have none.
CHANCE = {"delta_pearson": 0.0, "delta_pearson_centered": 0.0, "de_sign_top50": 0.5, "retrieval": 0.5,
          "delta_pearson_ablated": 0.0}
CHANGE_METRICS = tuple(CHANCE)
HIGHER_IS_BETTER = {m: m != "mse_z" for m in METRICS}
# Per gene over a split's independent test cell lines: n, sums of d_hat and d, of their squares and products.
GENE_METRICS = ("n_cells", "sum_predicted", "sum_observed", "sum_predicted2", "sum_observed2", "sum_cross")
TOP_GENES = 50


@dataclass(frozen=True)
class ZSpace:
    """Per-gene standardization with a split's training L1000 statistics (genes constant there: scale 1)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def from_training(cls, split: SplitData) -> ZSpace:
        """From each training L1000 profile once: the distinct controls x1_train (a control paired with
        several replicates is one measurement), x2_train and the unpaired training controls xu_train."""
        x = measured_profiles(split.x1_train, split.x2_train, split.xu_train).astype(np.float64)
        sd = x.std(axis=0)
        return cls(mean=x.mean(axis=0), scale=np.where(sd > 0, sd, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.scale


def _test_labels(split: SplitData) -> np.ndarray:
    n = split.x1_test.shape[0]
    return (np.asarray(split.test_cell_line).astype(str) if split.test_cell_line is not None
            else np.array([f"pair{i}" for i in range(n)]))


def cell_replicates(split: SplitData) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(cell line, its control replicates [n_c, G], its distinct post-treatment replicates [n2, G]) for each
    test cell line in order of first appearance. Controls: ``split.xc_test`` when given, else the distinct
    x1 rows of the cell line's test pairs."""
    labels = _test_labels(split)
    for name in dict.fromkeys(labels.tolist()):
        rows = labels == name
        if split.xc_test is not None:
            ctrl = split.xc_test[split.xc_test_cell_line == name]
        else:
            ctrl = distinct_rows(split.x1_test[rows])
        yield name, ctrl, distinct_rows(split.x2_test[rows])


def control_rows(split: SplitData) -> tuple[np.ndarray, np.ndarray]:
    """Every control replicate of the split's test cell lines [n, G] (each measured profile once) and the
    cell line of each row: what a reconstruction metric scores, per cell line."""
    parts = [(ctrl, np.full(len(ctrl), name, dtype=object)) for name, ctrl, _ in cell_replicates(split)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]).astype(str)


def reconstruction_rho(controls: np.ndarray, labels: np.ndarray, reconstruction: np.ndarray) -> float:
    """Figure 2's rho_rec: Spearman(reconstruction, control) per distinct test control, averaged per cell
    line, then over cell lines (a control shared by many pairs, or drugs in the pooled scope, counts once,
    and each cell line weighs the same)."""
    return per_cell_mean(prediction_spearman_rows(reconstruction, controls), labels)


def _derangement(names: tuple[str, ...]) -> np.ndarray:
    """A permutation of range(n) without fixed points, seeded by the names (-1s when n < 2)."""
    n = len(names)
    if n < 2:
        return np.full(n, -1, dtype=np.int64)
    seed = int.from_bytes(hashlib.sha256("\x1f".join(names).encode()).digest()[:8], "little")
    shift = np.random.default_rng(seed).permutation(n)
    # a random cyclic order: each cell line maps to the next in it, so no cell line maps to itself
    perm = np.empty(n, dtype=np.int64)
    perm[shift] = np.roll(shift, -1)
    return perm


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
    other: np.ndarray          # [n_cells] the ablation's partner pi(c) (-1 with a single cell line)

    @classmethod
    def from_split(cls, split: SplitData) -> TestCells:
        names, inputs, in_cell, ref, post, indep = [], [], [], [], [], []
        for c, (name, ctrl, x2) in enumerate(cell_replicates(split)):
            k = math.ceil(len(ctrl) / 2)
            inp, rest = ctrl[:k], ctrl[k:]
            names.append(name)
            inputs.append(inp)
            in_cell.extend([c] * len(inp))
            ref.append((rest if len(rest) else inp).mean(axis=0))
            post.append(x2.mean(axis=0))
            indep.append(len(rest) > 0)
        return cls(cell_lines=tuple(names), x1=np.concatenate(inputs).astype(np.float32),
                   x1_cell=np.asarray(in_cell, dtype=np.int64), x1_ref=np.stack(ref).astype(np.float64),
                   x2=np.stack(post).astype(np.float64), independent=np.asarray(indep, dtype=bool),
                   other=_derangement(tuple(names)))

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


def per_cell_mean(values: np.ndarray, labels: np.ndarray) -> float:
    """The mean over cell lines of each cell line's mean of ``values`` (NaN ignored): every cell line weighs
    the same, however many rows (replicates, pairs) it has."""
    values, labels = np.asarray(values, dtype=np.float64), np.asarray(labels).astype(str)
    return _nanmean(np.array([_nanmean(values[labels == c]) for c in dict.fromkeys(labels.tolist())]))


@dataclass(frozen=True)
class Scores:
    """One method's scores on one split: the split's values (:data:`METRICS`), the per-test-cell-line
    values behind them ([n_cells] per metric, NaN where undefined) and the per-gene sufficient statistics
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
    labels = _test_labels(split)
    return np.array([_nanmean(per_pair[labels == c]) for c in cells.cell_lines])


def _gene_sums(d_hat: np.ndarray, d_obs: np.ndarray) -> dict[str, np.ndarray]:
    """[G] each: :data:`GENE_METRICS` over the rows (cell lines) of d_hat and d_obs."""
    n = np.full(d_obs.shape[1], float(d_obs.shape[0]))
    return dict(zip(GENE_METRICS, (n, d_hat.sum(0), d_obs.sum(0), (d_hat**2).sum(0), (d_obs**2).sum(0),
                                   (d_hat * d_obs).sum(0)), strict=True))


def _where(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.where(mask, values, np.nan)


def _change_scores(d_hat: np.ndarray, d_obs: np.ndarray, m: np.ndarray, rms: np.ndarray,
                   cells: TestCells) -> dict[str, np.ndarray]:
    """The change metrics per test cell line (NaN where the cell line is not independent)."""
    ind = cells.independent
    d_obs_centered = d_obs - (d_obs[ind].mean(axis=0) if ind.any() else 0.0)
    retrieval = np.full(len(ind), np.nan)
    retrieval[ind] = retrieval_rows(d_hat[ind], d_obs[ind], rms[ind])
    ablated = np.full(len(ind), np.nan)
    if (cells.other >= 0).all():
        o = cells.other
        ablated = change_pearson_rows(d_hat[o], d_obs, rms[o])
    return {"delta_pearson": _where(ind, change_pearson_rows(d_hat, d_obs, rms)),
            "delta_pearson_centered": _where(ind, change_pearson_rows(d_hat - m, d_obs_centered, rms)),
            "de_sign_top50": _where(ind, sign_agreement_top_rows(d_hat, d_obs, TOP_GENES, rms)),
            "retrieval": retrieval,
            "delta_pearson_ablated": _where(ind, ablated)}


def score_detail(split: SplitData, pred_pairs: np.ndarray, pred_cells: np.ndarray,
                 cells: TestCells | None = None) -> Scores:
    """:func:`score` with the per-cell-line and per-gene values (:class:`Scores`)."""
    check_scorable(split)
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
    with np.errstate(invalid="ignore"):
        per_cell = {
            "rho_pred_pert": _per_cell_of_pairs(split, cells,
                                                prediction_spearman_rows(pred_pairs, split.x2_test)),
            "rho_pred_pert_z": prediction_spearman_rows(zhat, zx2),
            "mse_z": mse_rows(zhat, zx2),
            **_change_scores(d_hat, d_obs, m, rms, cells),
        }
        per_gene = _gene_sums(d_hat[ind], d_obs[ind])
    summary = {k: _nanmean(v) for k, v in per_cell.items()}
    summary["rho_pred_pert"] = rho_mean(pred_pairs, split.x2_test)  # the paper's: a mean over test pairs
    return Scores(summary={k: summary[k] for k in METRICS}, cell_lines=cells.cell_lines,
                  per_cell={k: np.asarray(per_cell[k], dtype=np.float64) for k in METRICS},
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
