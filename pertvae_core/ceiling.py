"""The noise ceiling of ``delta_pearson``: the expected score of a predictor that knows the true change.

The metric (:mod:`pertvae_core.evaluation`) correlates, across genes, a predicted change d_hat_c with the
observed change d_c = z(mean of c's n2 post-treatment replicates) - z(mean of its n_R reference controls).
The observed change is the true change Delta_c plus replicate noise e_c, so even a predictor that knows
Delta_c (an oracle) does not score 1. For genes g with noise variance sigma2_g (in z space, independent of
Delta and across genes), the oracle's correlation is, to first order in 1/G,

    rho_c = sqrt(S_c / (S_c + N_c)),   S_c = var_g(Delta_c),   N_c = mean_g(sigma2_1g / n_R + sigma2_2g / n2),

and no predictor does better on average (Cauchy-Schwarz: the expected covariance with d_c is largest for a
prediction proportional to Delta_c). Per test cell line the ceiling estimates this from its own replicates,
exactly as the metric builds d_c (the same split, z space, reference controls and replicate counts):
sigma2_1 from the scatter of its control replicates, sigma2_2 from that of its post-treatment replicates
(pooled over the split's test cell lines when it has only one), V_c = var_g(d_c) estimates S_c + N_c, and

    ceiling_c = sqrt(max(V_c - N_c_hat, 0) / V_c).

This tracks the oracle's realized score, not only its expectation: the realized covariance of Delta_c with
e_c cancels to first order, leaving the error in N_c_hat, whose standard error (``se``) follows from the
chi-square spread of the variance estimates and of the realized noise variance over G genes. The split's
ceiling is the mean over the cell lines the metric scores (independent ones: >= 2 controls), like the
metric. Assumption, stated: replicate noise independent across genes; noise that is correlated across
genes (shared by co-regulated genes, or plate effects shared by a treated replicate and its control)
makes the true uncertainty larger than ``se``, and plate effects shared within a pair make the ceiling
conservative (too low) where they cancel in d_c.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pertvae_core.data import SplitData
from pertvae_core.evaluation import ZSpace, cell_replicates

__all__ = ["Ceiling", "change_ceiling", "combine"]


@dataclass(frozen=True)
class Ceiling:
    """A split's ceiling: ``value`` (mean over ``n_cells`` scored test cell lines, NaN with a ``reason``),
    its standard error ``se`` and the per-cell-line values; ``reliability`` is the mean of the unclipped
    1 - N_c_hat / V_c (the share of the observed change's variance that is signal, 0 in expectation when the
    drug changes nothing) with its standard error ``reliability_se``: the evidence that the replicates
    measure a change at all."""

    value: float
    se: float
    n_cells: int
    reason: str
    per_cell: dict[str, float]
    reliability: float = float("nan")
    reliability_se: float = float("nan")


@dataclass(frozen=True)
class _Cell:
    name: str
    v1: float       # mean over genes of the control replicates' variance (z space)
    df1: int
    v2: float       # the same for the post-treatment replicates (NaN with one replicate)
    df2: int
    n_ref: int
    n2: int
    var_d: float    # var over genes of the observed change


def _cells(split: SplitData, zs: ZSpace) -> list[_Cell]:
    out = []
    for name, ctrl, post in cell_replicates(split):
        n_c, n2 = len(ctrl), len(post)
        if n_c < 2:  # not independent: the metric does not score it
            continue
        zc, zp = zs(ctrl), zs(post)
        k = math.ceil(n_c / 2)
        d = zp.mean(axis=0) - zc[k:].mean(axis=0)
        v2 = float(zp.var(axis=0, ddof=1).mean()) if n2 >= 2 else float("nan")
        out.append(_Cell(name, float(zc.var(axis=0, ddof=1).mean()), n_c - 1, v2, max(n2 - 1, 0),
                         n_c - k, n2, float(d.var(ddof=1))))
    return out


def change_ceiling(split: SplitData) -> Ceiling:
    """The split's ceiling of ``delta_pearson`` (module docstring)."""
    zs = ZSpace.from_training(split)
    cells = _cells(split, zs)
    if not cells:
        return Ceiling(float("nan"), float("nan"), 0, "no test cell line has >= 2 control replicates", {})
    with_post = [c for c in cells if c.df2 > 0]
    if not with_post:
        return Ceiling(float("nan"), float("nan"), 0, "no test cell line has >= 2 post-treatment "
                       "replicates to measure their noise", {})
    pooled_df = sum(c.df2 for c in with_post)
    pooled_v2 = sum(c.v2 * c.df2 for c in with_post) / pooled_df
    genes = split.genes
    values, errors, rel, rel_sd = {}, [], [], []
    for c in cells:
        v2, df2 = (c.v2, c.df2) if c.df2 > 0 else (pooled_v2, pooled_df)
        n1, n2 = c.v1 / c.n_ref, v2 / c.n2
        noise = n1 + n2
        rho = math.sqrt(max(c.var_d - noise, 0.0) / c.var_d) if c.var_d > 0 else 0.0
        # error of N_hat against the realized noise variance over G genes (chi-square spreads)
        var_delta = 2.0 / genes * (noise**2 + n1**2 / c.df1 + n2**2 / df2)
        sd = math.sqrt(var_delta) / c.var_d if c.var_d > 0 else 0.0   # error of rho**2
        values[c.name] = rho
        errors.append(min(sd / (2 * rho), math.sqrt(sd)) if rho > 0 else math.sqrt(sd))
        rel.append(1.0 - noise / c.var_d if c.var_d > 0 else 0.0)
        rel_sd.append(sd)
    v = np.asarray(list(values.values()))
    n = len(v)
    return Ceiling(float(v.mean()), math.sqrt(float(np.sum(np.square(errors)))) / n, n, "", values,
                   float(np.mean(rel)), math.sqrt(float(np.sum(np.square(rel_sd)))) / n)


def combine(ceilings: list[Ceiling], n_folds: int) -> dict:
    """A drug's ceiling over its splits: the mean of the split values (as the metric's split values are
    averaged) and its standard error (the folds of one repeat hold disjoint cell lines; repeats reuse them,
    so the error does not shrink with the number of repeats); ``signal_z``, the mean reliability over its
    standard error (about N(0, 1) when the drug changes nothing: above 3, the replicates measure a change).
    NaN with the reasons when no split has one."""
    ok = [c for c in ceilings if np.isfinite(c.value)]
    if not ok:
        reasons = sorted({c.reason for c in ceilings if c.reason})
        return {"value": float("nan"), "se": float("nan"), "n_cells": 0, "n_splits": 0,
                "reason": "; ".join(reasons) or "no splits", "signal_z": float("nan")}

    def mean_se(values: list[float], errors: list[float]) -> tuple[float, float]:
        return float(np.mean(values)), math.sqrt(float(np.mean(np.square(errors))) / max(1, n_folds))

    value, se = mean_se([c.value for c in ok], [c.se for c in ok])
    rel, rel_se = mean_se([c.reliability for c in ok], [c.reliability_se for c in ok])
    cells = {name for c in ok for name in c.per_cell}
    return {"value": value, "se": se, "n_cells": len(cells), "n_splits": len(ok), "reason": "",
            "signal_z": rel / rel_se if rel_se > 0 else float("nan")}
