"""Response-prediction metrics, each with its chance level and, when undefined, NaN and the reason why.

Binary head (labels 1 = sensitive): AUROC (chance 0.5) by the Mann-Whitney statistic with average ranks, so
tied scores count one half (as ``sklearn.metrics.roc_auc_score``), its mean over every order of the ties;
AUPR as average precision, sum_k (R_k - R_{k-1}) P_k over the rows in decreasing score, likewise its mean
over every order of tied scores (as ``sklearn.metrics.average_precision_score`` without ties; with them
sklearn takes each block of ties as one threshold, which gives a constant score the test prevalence, below
the AP that a random ranking has on average: 0.30 against 0.45 for 3 positives among 10 rows, so a
classifier unrelated to the labels was above that chance). AUPR's chance is the AP of a constant score,
(H_n + (P - 1)(n - H_n)/(n - 1)) / n for P positives among n rows (H_n the harmonic number), the expected
AP of any score unrelated to the labels.
Continuous head: Pearson and Spearman correlation (chance 0), RMSE (chance = the RMSE of predicting the
training mean response, when it is given).
A metric is NaN, with a reason, when the test set does not define it (one class only, fewer than two rows,
constant test responses for a correlation) or when predictions are not finite (a failed fit); malformed
input (shapes, labels other than 0/1) raises ValueError. A constant prediction ranks no cell line above
another: its correlations are 0, their chance level (as a constant score's AUROC is 0.5), not NaN, which the
mean over splits would drop, scoring a method that is constant on some splits on the others alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

__all__ = ["Metric", "auroc", "aupr", "pearson", "spearman", "rmse", "binary_metrics", "continuous_metrics"]


@dataclass(frozen=True)
class Metric:
    """A metric's value, its chance level and why the value is NaN ("" when it is defined)."""

    value: float
    chance: float
    reason: str = ""


def _pair(a: np.ndarray, b: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"{what}: {a.size} observed values but {b.size} predictions")
    return a, b


def _labels(y: np.ndarray, score: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray, str]:
    y, s = _pair(y, score, what)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{what}: labels must be 0 or 1 (1 = sensitive), got {np.unique(y)[:5]}")
    if y.size == 0:
        return y, s, "no test rows"
    if y.min() == y.max():
        return y, s, f"all {y.size} test labels are {int(y[0])}: one class only"
    if not np.isfinite(s).all():
        return y, s, "non-finite predictions"
    return y, s, ""


def auroc(y: np.ndarray, score: np.ndarray) -> Metric:
    """Area under the ROC curve of ``score`` for labels ``y``; chance 0.5."""
    y, s, why = _labels(y, score, "auroc")
    if why:
        return Metric(float("nan"), 0.5, why)
    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    u = rankdata(s)[pos].sum() - n1 * (n1 + 1) / 2.0
    return Metric(float(u / (n1 * n0)), 0.5)


def aupr(y: np.ndarray, score: np.ndarray) -> Metric:
    """Average precision of ``score`` for labels ``y``, tied scores in every order alike (module
    docstring); chance = the AP of a constant score, which is the expected AP of a random ranking."""
    y, s, why = _labels(y, score, "aupr")
    two = y.size > 0 and y.min() < y.max()
    chance = _average_precision(y, np.zeros_like(y)) if two else float(y.mean()) if y.size else float("nan")
    return Metric(float("nan"), chance, why) if why else Metric(_average_precision(y, s), chance)


def _average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """sum_k (R_k - R_{k-1}) P_k over the rows in decreasing score, each block of tied scores taken in
    every order with equal weight (McSherry & Najork 2008, ECIR): the row at position t of a block of m
    rows with q positives, after a rows of which p positive, is positive with probability q / m and then
    has (p + 1 + (t - 1)(q - 1)/(m - 1)) positives among its a + t rows on average."""
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order], s[order]
    start = np.r_[0, np.flatnonzero(np.diff(ss) != 0) + 1]   # first row of each block of tied scores
    block = np.repeat(np.arange(start.size), np.diff(np.r_[start, ys.size]))
    size = np.bincount(block).astype(np.float64)
    pos = np.bincount(block, weights=ys)
    before = (np.cumsum(pos) - pos)[block]
    t = np.arange(ys.size) - start[block] + 1.0
    m, q = size[block], pos[block]
    hits = before + 1.0 + (t - 1.0) * (q - 1.0) / np.maximum(m - 1.0, 1.0)
    return float(np.sum(q / m * hits / np.arange(1.0, ys.size + 1.0)) / ys.sum())


def _correlation_input(r: np.ndarray, pred: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray, str]:
    r, p = _pair(r, pred, what)
    if r.size < 2:
        return r, p, f"{r.size} test rows: a correlation needs at least 2"
    if not np.isfinite(p).all():
        return r, p, "non-finite predictions"
    if r.min() == r.max():
        return r, p, "constant test responses"
    if p.min() == p.max():
        return r, p, CONSTANT
    return r, p, ""


CONSTANT = "constant predictions"   # a correlation's chance level, 0 (module docstring)


def pearson(r: np.ndarray, pred: np.ndarray) -> Metric:
    """Pearson correlation of predicted and observed responses; chance 0."""
    r, p, why = _correlation_input(r, pred, "pearson")
    if why == CONSTANT:
        return Metric(0.0, 0.0)
    if why:
        return Metric(float("nan"), 0.0, why)
    a, b = r - r.mean(), p - p.mean()
    return Metric(float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b))), 0.0)


def spearman(r: np.ndarray, pred: np.ndarray) -> Metric:
    """Spearman correlation (Pearson of average ranks); chance 0."""
    r, p, why = _correlation_input(r, pred, "spearman")
    if why == CONSTANT:
        return Metric(0.0, 0.0)
    if why:
        return Metric(float("nan"), 0.0, why)
    return pearson(rankdata(r), rankdata(p))


def rmse(r: np.ndarray, pred: np.ndarray, train_mean: float | None = None) -> Metric:
    """Root mean squared error; chance = the RMSE of the constant ``train_mean`` (NaN when not given)."""
    r, p = _pair(r, pred, "rmse")
    given = train_mean is not None and r.size
    chance = float(np.sqrt(np.mean((r - train_mean) ** 2))) if given else float("nan")
    if r.size == 0:
        return Metric(float("nan"), chance, "no test rows")
    if not np.isfinite(p).all():
        return Metric(float("nan"), chance, "non-finite predictions")
    return Metric(float(np.sqrt(np.mean((r - p) ** 2))), chance)


def _flat(metrics: dict[str, Metric]) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for k, m in metrics.items():
        out[k], out[f"{k}_chance"] = m.value, m.chance
        if m.reason:
            out[f"{k}_reason"] = m.reason
    return out


def binary_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float | str]:
    """{auroc, auroc_chance, aupr, aupr_chance} (+ ``*_reason`` where NaN) of P(sensitive) for labels y."""
    return _flat({"auroc": auroc(y, proba), "aupr": aupr(y, proba)})


def continuous_metrics(r: np.ndarray, pred: np.ndarray, train_mean: float | None = None
                       ) -> dict[str, float | str]:
    """{pearson, spearman, rmse} with their chance levels (+ ``*_reason`` where NaN)."""
    return _flat({"pearson": pearson(r, pred), "spearman": spearman(r, pred),
                  "rmse": rmse(r, pred, train_mean)})
