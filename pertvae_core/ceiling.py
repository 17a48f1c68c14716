"""The noise ceiling of ``delta_pearson``: the expected score of a predictor that knows the true change.

The metric (:mod:`pertvae_core.evaluation`) correlates, across genes, a predicted change d_hat_c with the
observed change d_c = z(mean of c's n2 post-treatment replicates) - z(mean of its n_R reference controls).
The observed change is the true change Delta_c plus replicate noise e_c, so even a predictor that knows
Delta_c (an oracle) does not score 1. With noise independent of Delta, the oracle's correlation is, to first
order in 1/G,

    rho_c = sqrt(r_c),   r_c = S_c / (S_c + N_c),   S_c = var_g(Delta_c),   N_c = E var_g(e_c),

and no predictor does better on average (Cauchy-Schwarz: the expected covariance with d_c is largest for a
prediction proportional to Delta_c). The reliability r_c is estimated per test cell line from its own
replicates, exactly as the metric builds d_c (the same split, z space, reference controls and replicate
counts): N_c_hat = N1/n_R + N2/n2, N1 and N2 the scatter over genes of one control and one post-treatment
replicate about their cell line's means (unbiased; N2 pooled over the split's test cell lines for one with a
single post-treatment replicate; for a split with none, :func:`_borrowed`), V_c = var_g(d_c) (expectation
S_c + N_c) and r_c_hat = 1 - N_c_hat / V_c.

Its error is that of N_c_hat against the realized noise variance (the realized covariance of Delta_c with
e_c cancels to first order), from the chi-square spreads of variances over G genes:

    s_c^2 = 2 kappa (N_c^2 + (2 n_R / n_c - 1) (N1/n_R)^2 / df1 + (N2/n2)^2 / df2) / ((G - 1) V_c^2),

df the replicates' degrees of freedom; 2 n_R / n_c - 1, not 1, as the reference controls are among the n_c
controls that give N1 (their covariance with the realized noise). kappa = (G - 1) tr(Sigma^2) / tr(Sigma)^2
for the gene-centred covariance Sigma of the noise is 1 for independent genes of equal noise and larger
where genes share noise (co-regulated genes, latent jitter through a decoder): (G - 1) / kappa genes' worth
of independent noise (Satterthwaite 1946, Biometrics Bull. 2:110), estimated from each cell line's residuals
(:func:`_gene_dependence`).

A cell line's sqrt(max(r_c_hat, 0)) is no estimate to average: clipped on one side only it is biased upward
when nothing changes (+0.13 on the null simulation of the tests, +0.09 to +0.27 for the null drugs of the
demo), and r_c_hat itself is biased below 0 there, as E[1/V] > 1/E[V] (ratio bias, -0.09 per cell line in
the demo). The ceiling therefore pools the cell lines of all of a drug's splits (:func:`combine`; one
split's alone in :func:`change_ceiling`):

    k = max(0, 1 - sum_c v_c s_c^2 / var_v(r_c_hat)),   v_c = V_c / sum V   (var_v: v-weighted, x m/(m-1)),
    w_c proportional to V_c / ((1 - k) mean(V) + k V_c),   R = sum_c w_c r_c_hat,
    r_c* = R + k (r_c_hat - R),   split value = mean_c sign(r_c*) sqrt(|r_c*|),

and the drug's ceiling is the mean of its split values, as the metric's are averaged. k is the share of the
spread in r_c_hat over its m distinct cell lines that is not sampling noise (method-of-moments empirical
Bayes: Efron & Morris 1975, J. Am. Stat. Assoc. 70:311; DerSimonian & Laird 1986, Control. Clin. Trials
7:177), with moments weighted by V_c so that cell lines whose small V_c throws r_c_hat far below 0 weigh
little. Where the cell lines differ only by noise (k near 0), R = sum (V_c - N_c_hat) / sum V_c is a ratio
of sums, unbiased up to O(kappa / (n G)) when nothing changes
(Cochran 1977, Sampling Techniques, ch. 6), and its signed root is symmetric about 0, so the ceiling is
centred at 0 for independent genes and may be negative (kept, not clipped). Where genes share noise
(kappa well above 1) the ratio biases grow (the per-cell r_c_hat's is of order kappa / G) and the ceiling
sits below 0, the root amplifying them near 0: the demo cube's null drugs
(kappa about 7.5, 16 cell lines) -0.077 (se 0.020) on average over 12 seeds, their signal z at mean -0.2,
the 95% intervals covering 0 for 95%; -0.16 (se 0.03) with latent jitter 0.4 (kappa 25). Where they
differ truly (k near 1) the weights are
equal and each cell line keeps its own root, as the root of the mean would overstate the mean of roots
(Jensen). For weak changes (R within a few standard errors of 0) the ceiling is biased toward 0 (within
``se``). In between, the weights favour the cell lines that change most: R's bias against the plain mean of
the shrunk r_c* is k (R - mean r_c_hat), which moves the ceiling by (1 - k) times that.

``se`` propagates the s_c through the shrinkage (k held fixed) and the root, taking the root's largest
secant slope over each r_c*'s 95% error range, so it stays finite at 0 and value +/- 1.96 se contains the
signed root of R's 95% interval when k = 0, and adds the weights' bias above in quadrature; a cell line
tested in several repeats has the same replicates, so its entries' errors count as one, and a pooled N2's
error (cell lines with one treated replicate) is one error shared by all the cell lines using it. Only cell
lines the metric scores count (independent ones: >= 2 controls). Assumptions, stated: Gaussian-like
replicate noise whose gene covariance has the same shape in a cell line's controls and treated replicates;
plate effects shared by a treated replicate and its control make the ceiling conservative (too low) where
they cancel in d_c.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pertvae_core.data import SplitData
from pertvae_core.evaluation import ZSpace, cell_replicates

__all__ = ["Ceiling", "change_ceiling", "combine"]

Z95 = 1.96   # the normal quantile of a two-sided 95% interval


@dataclass(frozen=True)
class Ceiling:
    """A split's ceiling on its own: ``value`` (over ``n_cells`` scored test cell lines, NaN with a
    ``reason``), its standard error ``se`` and the per-cell-line values sign(r_c*) sqrt(|r_c*|) (``value``
    is their mean); ``reliability`` is R (the share of the observed change's variance that is signal, 0 in
    expectation when the drug changes nothing) with its standard error ``reliability_se``: the evidence that
    the replicates measure a change at all. ``terms``: per cell line (in ``per_cell``'s order) r_c_hat,
    s_c and V_c, which :func:`combine` pools over a drug's splits; ``cells``, ``kappa`` and ``genes``, what
    :func:`combine` needs to score a split whose every test cell line has one post-treatment replicate (NaN
    here, with the reason) with the noise of the drug's other splits' replicates."""

    value: float
    se: float
    n_cells: int
    reason: str
    per_cell: dict[str, float]
    reliability: float = float("nan")
    reliability_se: float = float("nan")
    terms: tuple[tuple[float, float, float], ...] = ()
    cells: tuple[_Cell, ...] = ()   # the scored test cell lines' noise and change variances
    kappa: float = float("nan")     # the split's gene dependence (NaN without a cell line to measure it)
    genes: int = 0
    common: tuple[float, ...] = ()  # per cell line, the part of s_c that is a pooled N2's error (shared)


@dataclass(frozen=True)
class _Cell:
    name: str
    v1: float       # expected var over genes of one control replicate's noise (z space)
    df1: int
    v2: float       # the same for the post-treatment replicates (NaN with one replicate)
    df2: int
    n_ref: int
    n2: int
    var_d: float    # var over genes of the observed change


def _residuals(z: np.ndarray) -> np.ndarray:
    """Replicates [n, G] less their mean, each row centred over genes: the noise as var_g and the metric's
    Pearson see it (a shift shared by all genes does not count)."""
    u = z - z.mean(axis=0)
    return u - u.mean(axis=1, keepdims=True)


def _noise_var(u: np.ndarray) -> float:
    """The expected var over genes (ddof 1) of one replicate's noise from its group's residuals [n >= 2, G]
    (unbiased: the residuals hold n - 1 replicates' worth of noise)."""
    n, genes = u.shape
    return float(np.sum(u * u) / ((n - 1) * (genes - 1)))


def _gene_dependence(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """kappa = (G - 1) tr(Sigma^2) / tr(Sigma)^2 (module docstring) from the residuals of pairs of
    independent replicate groups that share Sigma: a cell line's controls and its post-treatment replicates.

    For residual rows u, v of the two groups, E[(u'v)^2] = a_u a_v tr(Sigma^2) and
    E[|u|^2 |v|^2] = a_u a_v tr(Sigma)^2, so the ratio of their sums over all such pairs estimates kappa.
    Only groups of one cell line are paired: the noise of different cell lines can lie along different
    genes (a decoder's slope differs between states), and their products would understate kappa. At least 1
    (Cauchy-Schwarz); 1 without a pair."""
    num = den = 0.0
    for u, v in pairs:
        num += float(np.sum((u @ v.T) ** 2))
        den += float(np.sum(np.outer(np.sum(u * u, axis=1), np.sum(v * v, axis=1))))
    return max(1.0, (pairs[0][0].shape[1] - 1) * num / den) if den > 0 else 1.0


def _cells(split: SplitData, zs: ZSpace) -> tuple[list[_Cell], list[tuple[np.ndarray, np.ndarray]]]:
    """The scored test cell lines' noise and change variances, and the residuals of each one's controls and
    post-treatment replicates (where it has >= 2 of these)."""
    out, pairs = [], []
    for name, ctrl, post in cell_replicates(split):
        n_c, n2 = len(ctrl), len(post)
        if n_c < 2:  # not independent: the metric does not score it
            continue
        zc, zp = zs(ctrl), zs(post)
        k = math.ceil(n_c / 2)
        d = zp.mean(axis=0) - zc[k:].mean(axis=0)
        uc, up = _residuals(zc), _residuals(zp)
        if n2 >= 2:
            pairs.append((uc, up))
        v2 = _noise_var(up) if n2 >= 2 else float("nan")
        out.append(_Cell(name, _noise_var(uc), n_c - 1, v2, max(n2 - 1, 0), n_c - k, n2,
                         float(d.var(ddof=1))))
    return out, pairs


def _reliability(c: _Cell, v2: float, df2: int, kappa: float, genes: int, pooled: bool = False
                 ) -> tuple[float, float, float]:
    """A cell line's r_c_hat, its standard error s_c (module docstring) and the part of s_c that is the
    error of a post-treatment noise N2 pooled over cell lines (``pooled``; else 0): the same estimate, so
    the same error, for every cell line that uses it. 0, 0, 0 for a constant change."""
    if not c.var_d > 0:
        return 0.0, 0.0, 0.0
    n1, n2 = c.v1 / c.n_ref, v2 / c.n2
    noise = n1 + n2
    spread = 2.0 * kappa / (genes - 1)   # relative variance of a variance over genes
    shared = 2.0 * c.n_ref / (c.df1 + 1) - 1.0   # the reference controls are among those giving N1
    error = math.sqrt(spread * (noise**2 + shared * n1**2 / c.df1 + n2**2 / df2)) / c.var_d
    common = math.sqrt(spread / df2) * n2 / c.var_d if pooled else 0.0
    return 1.0 - noise / c.var_d, error, common


def _signed_root(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.sqrt(np.abs(x))


def _root_slope(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The signed root's largest secant slope from x to x +/- h: its derivative where x is far from 0,
    1/sqrt(h) at 0 (the derivative is infinite there)."""
    h = np.maximum(h, 1e-12)
    root = _signed_root(x)
    return np.maximum(np.abs(_signed_root(x + h) - root), np.abs(root - _signed_root(x - h))) / h


@dataclass(frozen=True)
class _Pooled:
    values: list[float]        # per split: the mean of its cell lines' signed roots
    roots: list[np.ndarray]    # per split: sign(r_c*) sqrt(|r_c*|) of its cell lines
    se: float                  # of the mean of ``values``
    reliability: float         # R
    reliability_se: float


def _target(r: np.ndarray, s: np.ndarray, var_d: np.ndarray, cells: int) -> tuple[float, np.ndarray]:
    """The shrinkage k and the weights w_c of R (module docstring), over entries of ``cells`` distinct cell
    lines (a cell line tested in several repeats is an entry per split)."""
    n = len(r)
    if cells < 2 or not var_d.min() > 0:
        return 0.0, np.full(n, 1.0 / n)
    v = var_d / var_d.sum()
    spread = float(np.sum(v * (r - np.sum(v * r)) ** 2)) * cells / (cells - 1)
    k = max(0.0, 1.0 - float(np.sum(v * s**2)) / spread) if spread > 0 else 0.0
    w = var_d / ((1 - k) * var_d.mean() + k * var_d)
    return k, w / w.sum()


def _cell_sums(x: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Per entry, the sum of ``x`` over the entries of its cell line (one per split that tests it)."""
    idx = np.unique(names, return_inverse=True)[1]
    return np.bincount(idx, weights=x)[idx]


def _error(x: np.ndarray, names: np.ndarray) -> float:
    """The standard error of sum(x eps) for x the coefficients of errors eps of sd 1 that are the same for
    one cell line's entries (repeats test it again on the same replicates) and independent across cell
    lines."""
    idx = np.unique(names, return_inverse=True)[1]
    return math.sqrt(float(np.sum(np.bincount(idx, weights=x) ** 2)))


def _pool(splits: list[tuple[list[str], np.ndarray, np.ndarray]]) -> _Pooled:
    """The ceiling of splits [(their cell lines, [n, 3] r_c_hat, s_c, V_c, [n] the common part of s_c)],
    pooled (module docstring). The common parts are errors of pooled N2 estimates, counted as one error
    shared by all the cell lines that use one (of a drug's splits, pooled from overlapping cell lines)."""
    names = np.array([name for cells, _, _ in splits for name in cells], dtype=str)
    r, s, var_d = np.concatenate([t for _, t, _ in splits]).T
    com = np.concatenate([c for _, _, c in splits])
    own = np.sqrt(np.maximum(s**2 - com**2, 0.0))
    split = np.repeat(np.arange(len(splits)), [len(t) for _, t, _ in splits])
    share = 1.0 / (len(splits) * np.bincount(split)[split])   # an entry's weight in the mean of split values
    k, w = _target(r, s, var_d, len(set(names)))

    def error(x: np.ndarray) -> float:   # of sum(x r_c_hat)
        return math.hypot(_error(x * own, names), float(np.sum(x * com)))

    pooled, pooled_se = float(np.sum(w * r)), error(w)
    shrunk = pooled + k * (r - pooled)
    cov = own * _cell_sums(w * own, names) + com * float(np.sum(w * com))   # of r_c_hat with R
    sd = np.sqrt(np.maximum((1 - k) ** 2 * pooled_se**2 + k**2 * s**2 + 2 * k * (1 - k) * cov, 0.0))
    slope = _root_slope(shrunk, Z95 * sd)
    mean_slope = float(np.sum(share * slope))
    grad = (1 - k) * w * mean_slope + k * share * slope   # d value / d r_c_hat
    allowance = k * (1 - k) * abs(pooled - float(np.sum(share * r))) * mean_slope   # for the weights' bias
    roots = _signed_root(shrunk)
    return _Pooled([float(roots[split == i].mean()) for i in range(len(splits))],
                   [roots[split == i] for i in range(len(splits))],
                   math.hypot(error(grad), allowance), pooled, pooled_se)


def change_ceiling(split: SplitData) -> Ceiling:
    """The split's ceiling of ``delta_pearson`` (module docstring)."""
    zs = ZSpace.from_training(split)
    cells, pairs = _cells(split, zs)
    if not cells:
        return Ceiling(float("nan"), float("nan"), 0, "no test cell line has >= 2 control replicates", {})
    with_post = [c for c in cells if c.df2 > 0]
    if not with_post:
        return Ceiling(float("nan"), float("nan"), 0, "no test cell line has >= 2 post-treatment "
                       "replicates to measure their noise", {}, cells=tuple(cells), genes=split.genes)
    pooled_df = sum(c.df2 for c in with_post)
    pooled_v2 = sum(c.v2 * c.df2 for c in with_post) / pooled_df
    kappa = _gene_dependence(pairs)
    rel = np.array([_reliability(c, c.v2, c.df2, kappa, split.genes) if c.df2 > 0 else
                    _reliability(c, pooled_v2, pooled_df, kappa, split.genes, pooled=True) for c in cells])
    terms = np.column_stack([rel[:, :2], [c.var_d for c in cells]])
    names = [c.name for c in cells]
    p = _pool([(names, terms, rel[:, 2])])
    return Ceiling(p.values[0], p.se, len(cells), "", dict(zip(names, p.roots[0].tolist(), strict=True)),
                   p.reliability, p.reliability_se, tuple(map(tuple, terms.tolist())), tuple(cells), kappa,
                   split.genes, tuple(rel[:, 2].tolist()))


def _ratio_reliability(c: _Cell, ratio: float, ratio_df: tuple[int, int], kappa: float, genes: int
                       ) -> tuple[float, float, float]:
    """:func:`_reliability` of a cell line whose post-treatment noise is its own control noise times
    ``ratio`` (other cell lines' post-treatment over control noise, of ``ratio_df`` = their control and
    post-treatment degrees of freedom): N_c_hat = N1/n_R + ratio N1/n2, so N1's error moves all of it
    (N_c_hat^2 / df1, less twice its covariance with the realized noise through the reference controls:
    the module docstring's 2 n_R / n_c - 1 where ratio = 0), and the ratio's error is the common part,
    shared by every cell line that uses it."""
    if not c.var_d > 0:
        return 0.0, 0.0, 0.0
    n1 = c.v1 / c.n_ref
    noise = n1 + ratio * c.v1 / c.n2
    spread = 2.0 * kappa / (genes - 1)
    own = spread * (noise**2 + (noise**2 - 2.0 * noise * n1 * (1.0 - c.n_ref / (c.df1 + 1))) / c.df1)
    common = math.sqrt(spread * (1.0 / ratio_df[0] + 1.0 / ratio_df[1])) * (noise - n1) / c.var_d
    return 1.0 - noise / c.var_d, math.sqrt(own / c.var_d**2 + common**2), common


def _borrowed(c: Ceiling, ok: list[Ceiling]) -> np.ndarray | None:
    """The terms (r_c_hat, s_c, its borrowed part, V_c) of split ``c`` whose every scored test cell line has
    one post-treatment replicate: its post-treatment noise N2 is its own control noise N1 times the ratio
    of post-treatment to control noise pooled over the cell lines of the drug's other splits ``ok`` that
    measured both, with their mean gene dependence; None where ``c`` has no scored cell line, or no other
    split measured N2 and N1 > 0.

    A ratio, because each split has its own z space (the sd of its training cell lines), and one of fewer
    training cell lines has the larger z noise (E[1/sd^2] grows as the sd's degrees of freedom fall). With
    6 cell lines (test folds of 1 and 2), the other splits' N2 as they measured it put the ceiling of null
    drugs at -0.048 (se 0.010) and their signal z at mean -0.25 (400 drugs); the ratio: +0.004 (0.010) and
    +0.06. Their replicates taken into ``c``'s z space instead are biased the other way (+0.038, z +0.24):
    they are ``c``'s training data, so its sd holds their noise. A cell line tested in several repeats
    (the same replicates) counts its degrees of freedom once."""
    donors = [x for o in ok for x in o.cells if x.df2 > 0]
    if not c.cells or not donors:
        return None
    v1 = sum(x.v1 * x.df1 for x in donors) / sum(x.df1 for x in donors)
    v2 = sum(x.v2 * x.df2 for x in donors) / sum(x.df2 for x in donors)
    if not v1 > 0:
        return None
    distinct = {x.name: x for x in donors}.values()
    df = (sum(x.df1 for x in distinct), sum(x.df2 for x in distinct))
    kappa = float(np.mean([o.kappa for o in ok if np.isfinite(o.kappa)] or [1.0]))
    return np.array([(*_ratio_reliability(x, v2 / v1, df, kappa, c.genes), x.var_d) for x in c.cells])


def combine(ceilings: list[Ceiling]) -> dict:
    """A drug's ceiling over its splits, pooled: R and k over the cell lines of all its splits (few per
    split would leave R's ratio bias, of order 1/n), each split's value the mean of its cell lines' signed
    roots, and ``value`` the mean of the split values (as the metric's split values are averaged), with
    ``per_split`` (NaN where a split has none); ``se`` counts a cell line tested in several repeats once
    (its replicates are the same), so it does not shrink with the number of repeats; ``signal_z``, R over
    its standard error (about N(0, 1) when the drug changes nothing and genes' noise is independent: above
    3, the replicates measure a change; where genes share noise, shifted below 0, mean -0.2 for the demo's
    null drugs, and with 6 cell lines of 1-3 treated replicates heavier-tailed: sd 1.3-1.5, z > 3 for 2-3%
    of simulated null drugs with kappa 50-190). A split whose every test cell line has a single
    post-treatment replicate (no value alone) takes its N2 as its own N1 times the ratio N2 / N1 of the
    drug's other splits' replicates (:func:`_borrowed`): left out, the ceiling was over other cell lines
    than the method's mean, those measured best (with 1 cell line a split and 3 of 5 single, 0.02 above the
    oracle's mean at strength 3, 2.3 of its se). NaN with the reasons when no split has one."""
    ok = [c for c in ceilings if np.isfinite(c.value)]
    scored = []   # (index in ceilings, cell names, terms, common parts) of each split with a value
    for i, c in enumerate(ceilings):
        if np.isfinite(c.value):
            t = np.array(c.terms)
            terms, common = t, np.array(c.common) if c.common else np.zeros(len(t))
        else:
            b = _borrowed(c, ok)
            if b is None:
                continue
            terms, common = b[:, [0, 1, 3]], b[:, 2]
        names = list(c.per_cell) if np.isfinite(c.value) else [x.name for x in c.cells]
        scored.append((i, names, terms, common))
    if not scored:
        reasons = sorted({c.reason for c in ceilings if c.reason})
        return {"value": float("nan"), "se": float("nan"), "n_cells": 0, "n_splits": 0,
                "reason": "; ".join(reasons) or "no splits", "signal_z": float("nan"),
                "per_split": [float("nan")] * len(ceilings)}
    p = _pool([(names, terms, common) for _, names, terms, common in scored])
    per_split = [float("nan")] * len(ceilings)
    for (i, _, _, _), v in zip(scored, p.values, strict=True):
        per_split[i] = v
    cells = {name for _, names, _, _ in scored for name in names}
    z = p.reliability / p.reliability_se if p.reliability_se > 0 else float("nan")
    return {"value": float(np.mean(p.values)), "se": p.se, "n_cells": len(cells), "n_splits": len(scored),
            "reason": "", "signal_z": z, "per_split": per_split}
