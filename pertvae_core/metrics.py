"""Row-wise metrics across genes: the paper's Spearman (Section 4.2) and the change-based metrics.

rho_rec_pert and rho_pred_pert are both "the Spearman correlation between a predicted and an observed
profile of one test pair, averaged over the test pairs of a split"; :func:`spearman_rows` computes the
per-pair values in one vectorized pass and :func:`rho_mean` the split's value.

The change-based metrics (:func:`change_pearson_rows`, :func:`sign_agreement_top_rows`,
:func:`mse_rows`) take one row per test cell line; :mod:`pertvae_core.evaluation` builds the rows (which
space, which profiles) and averages them over cell lines.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from scipy.stats import rankdata

__all__ = ["spearman_rows", "prediction_spearman_rows", "rho_mean", "pearson_rows", "change_pearson_rows",
           "sign_agreement_top_rows", "mse_rows", "retrieval_rows"]


def _as_float64(x: Any, name: str) -> np.ndarray:
    torch = sys.modules.get("torch")  # a tensor implies torch is imported; never import it just to check
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", dtype=torch.float64).numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError(f"spearman_rows: {name} must have a gene axis (last axis), got a scalar")
    return arr


def spearman_rows(a: Any, b: Any) -> np.ndarray:
    """Spearman correlation of each row of ``a`` with the same row of ``b``, across the last (gene) axis.

    Ties get average ranks (as ``scipy.stats.spearmanr``). A row that is constant in either input, or that
    contains NaN, gives NaN. Accepts numpy arrays or torch tensors of equal shape ``[..., G]``; returns a
    float64 array of shape ``[...]``.
    """
    x = _as_float64(a, "a")
    y = _as_float64(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"spearman_rows: shapes differ: a {x.shape} vs b {y.shape}")
    if x.shape[-1] < 2:
        raise ValueError(f"spearman_rows: need at least 2 genes on the last axis, got {x.shape[-1]}")
    # NaN anywhere in a row -> the row's ranks are NaN
    return _row_pearson(rankdata(x, axis=-1), rankdata(y, axis=-1))


def prediction_spearman_rows(pred: Any, obs: Any) -> np.ndarray:
    """:func:`spearman_rows` of a prediction with what it predicts, where a prediction constant across genes
    scores 0, the correlation's chance level, not NaN: it ranks no gene above another, so it carries no
    information, and a NaN would be dropped by the mean over rows or splits, scoring such a method on its
    informative rows (or splits) alone. A constant or NaN row of ``obs``, or NaN in ``pred``, stays NaN."""
    rho = spearman_rows(pred, obs)
    p, o = _as_float64(pred, "pred"), _as_float64(obs, "obs")
    flat = ((p == p[..., :1]).all(axis=-1) & np.isfinite(p).all(axis=-1) & np.isfinite(o).all(axis=-1)
            & ~(o == o[..., :1]).all(axis=-1))
    return np.where(flat, 0.0, rho)


def rho_mean(pred: Any, obs: Any) -> float:
    """A split's value: the mean over rows (test pairs) of :func:`prediction_spearman_rows` (NaN rows
    ignored; a prediction constant across genes counts 0).

    Returns NaN when there are no rows or every row is NaN.
    """
    rho = prediction_spearman_rows(pred, obs)
    rho = np.atleast_1d(rho).ravel()
    finite = rho[np.isfinite(rho)]
    return float(finite.mean()) if finite.size else float("nan")


def pearson_rows(a: Any, b: Any) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` across the last axis.

    A row that is constant in either input, or that contains NaN, gives NaN (as ``scipy.stats.pearsonr``
    refuses constant input). Returns float64 of shape ``a.shape[:-1]``.
    """
    x = _as_float64(a, "a")
    y = _as_float64(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"pearson_rows: shapes differ: a {x.shape} vs b {y.shape}")
    if x.shape[-1] < 2:
        raise ValueError(f"pearson_rows: need at least 2 genes on the last axis, got {x.shape[-1]}")
    return _row_pearson(x, y)


def _row_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson per row across the last axis (float64, equal shapes); NaN for a constant or NaN row.

    A constant row is found by equality, not by ``den > 0``: its mean is rounded (0.1 * 30 / 30 != 0.1), so
    its centred values are a tiny nonzero constant and the quotient a spurious ~1e-17 (scipy says NaN)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    num = np.einsum("...g,...g->...", xc, yc)
    den = np.sqrt(np.einsum("...g,...g->...", xc, xc) * np.einsum("...g,...g->...", yc, yc))
    varies = ~((x == x[..., :1]).all(axis=-1) | (y == y[..., :1]).all(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where((den > 0) & varies, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(r, -1.0, 1.0)


# A predicted change whose spread across genes is below this fraction of its scale counts as "no change"
# (float32 round-off of a method that returns x1 + constant is ~1e-6 of the scale).
NO_CHANGE_RTOL = 1e-5


def _no_change(pred_change: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Rows of ``pred_change`` that are constant across genes up to float round-off of ``scale``."""
    spread = pred_change.std(axis=-1)
    return spread <= NO_CHANGE_RTOL * np.maximum(scale, 1.0)


def change_pearson_rows(pred_change: Any, obs_change: Any, scale: Any = None) -> np.ndarray:
    """Pearson across genes of a predicted change with an observed change, per row.

    A prediction of no change (a row constant across genes, e.g. the identity x2_hat = x1, or the mean-shift
    prediction after centering on the mean change) has an undefined correlation: it is defined as 0, since
    it predicts nothing about which genes move. "Constant" allows float round-off relative to ``scale`` (per
    row, e.g. the RMS of the uncentered prediction; default the row's own RMS). NaN in an input gives NaN,
    and so does a constant observed change (e.g. delta_pearson_centered's of a split's one independent test
    cell line): no prediction is scored there, a constant one no more than the others.
    """
    p = _as_float64(pred_change, "pred_change")
    o = _as_float64(obs_change, "obs_change")
    r = pearson_rows(p, o)
    ref = np.sqrt(np.mean(p * p, axis=-1)) if scale is None else _as_float64(scale, "scale")
    observed = np.isfinite(_row_pearson(o, o))   # NaN for a constant observed row, as pearson_rows
    flat = _no_change(p, ref) & np.isfinite(p).all(axis=-1) & observed
    return np.where(flat, 0.0, r)


def sign_agreement_top_rows(pred_change: Any, obs_change: Any, k: int = 50, scale: Any = None) -> np.ndarray:
    """Fraction of the ``k`` genes with the largest observed |change| whose predicted change has the same
    sign, per row. A predicted change of 0 (within float round-off of ``scale``, per row; default exactly 0)
    names no direction and counts half, so a prediction of no change scores the metric's chance level 0.5,
    as any predictor unrelated to the observed change does on average. ``k`` is capped at the number of
    genes; NaN in a row gives NaN."""
    p = _as_float64(pred_change, "pred_change")
    o = _as_float64(obs_change, "obs_change")
    if p.shape != o.shape:
        raise ValueError(f"sign_agreement_top_rows: shapes differ: {p.shape} vs {o.shape}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"sign_agreement_top_rows: k must be a positive int, got {k!r}")
    k = min(int(k), p.shape[-1])
    top = np.argsort(-np.abs(o), axis=-1, kind="stable")[..., :k]
    pt, ot = np.take_along_axis(p, top, -1), np.take_along_axis(o, top, -1)
    tol = 0.0 if scale is None else NO_CHANGE_RTOL * np.maximum(_as_float64(scale, "scale"), 1.0)[..., None]
    none = np.abs(pt) <= tol
    agree = np.where(none, 0.5, (pt * ot > 0).astype(np.float64))
    bad = ~(np.isfinite(p).all(axis=-1) & np.isfinite(o).all(axis=-1))
    return np.where(bad, np.nan, agree.mean(axis=-1))


def retrieval_rows(pred_change: Any, obs_change: Any, scale: Any = None) -> np.ndarray:
    """Per row c: the normalized rank of its own observed change among all rows' observed changes, ranked
    by Pearson correlation (:func:`change_pearson_rows`) with its predicted change: the fraction of the other
    rows whose observed change correlates less with row c's prediction than row c's own does (ties count
    half). 1 = each prediction is closest to its own cell line's change, 0.5 = chance. A method that
    predicts one change for every row ranks its own row at random and averages exactly 0.5 over the rows;
    so does a prediction of no change (every correlation 0, all ties). Fewer than 2 rows give NaN."""
    p = _as_float64(pred_change, "pred_change")
    o = _as_float64(obs_change, "obs_change")
    if p.ndim != 2 or p.shape != o.shape:
        raise ValueError(f"retrieval_rows: need equal 2-D [rows, genes] arrays, got {p.shape} and {o.shape}")
    n = p.shape[0]
    if n < 2:
        return np.full(n, np.nan)
    ref = np.sqrt(np.mean(p * p, axis=-1)) if scale is None else _as_float64(scale, "scale")
    # corr[c, c'] = Pearson(pred_c, obs_c'), with "no change" rows defined as 0 like change_pearson_rows
    corr = change_pearson_rows(np.repeat(p, n, axis=0), np.tile(o, (n, 1)), np.repeat(ref, n)).reshape(n, n)
    own = np.diag(corr)[:, None]
    other = ~np.eye(n, dtype=bool)
    below = ((corr < own) & other).sum(axis=1)
    ties = ((corr == own) & other).sum(axis=1)
    out = (below + 0.5 * ties) / (n - 1)
    return np.where(np.isfinite(corr).all(axis=1), out, np.nan)


def mse_rows(pred: Any, obs: Any) -> np.ndarray:
    """Mean squared error across genes, per row."""
    p = _as_float64(pred, "pred")
    o = _as_float64(obs, "obs")
    if p.shape != o.shape:
        raise ValueError(f"mse_rows: shapes differ: {p.shape} vs {o.shape}")
    return np.mean((p - o) ** 2, axis=-1)
