"""Per-sample Spearman correlation across genes (paper Section 4.2).

rho_rec_pert and rho_pred_pert are both "the Spearman correlation between a predicted and an observed
profile of one test pair, averaged over the test pairs of a split"; :func:`spearman_rows` computes the
per-pair values in one vectorized pass and :func:`rho_mean` the split's value.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from scipy.stats import rankdata

__all__ = ["spearman_rows", "rho_mean"]


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
    rx = rankdata(x, axis=-1)  # NaN anywhere in a row -> the row's ranks are NaN
    ry = rankdata(y, axis=-1)
    rx -= rx.mean(axis=-1, keepdims=True)
    ry -= ry.mean(axis=-1, keepdims=True)
    num = np.einsum("...g,...g->...", rx, ry)
    den = np.sqrt(np.einsum("...g,...g->...", rx, rx) * np.einsum("...g,...g->...", ry, ry))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(rho, -1.0, 1.0)


def rho_mean(pred: Any, obs: Any) -> float:
    """A split's value: the mean over rows (test pairs) of :func:`spearman_rows` (NaN rows ignored).

    Returns NaN when there are no rows or every row is NaN.
    """
    rho = spearman_rows(pred, obs)
    rho = np.atleast_1d(rho).ravel()
    finite = rho[np.isfinite(rho)]
    return float(finite.mean()) if finite.size else float("nan")
