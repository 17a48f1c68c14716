"""Per-drug significance tests over cross-validation splits, and Benjamini-Hochberg q-values.

Each drug yields one rho_rec_pert and one rho_pred_pert per split (paper Section 4.2). The paper tests
H1: rho_rec_pert < rho_pred_pert with a one-sided Mann-Whitney U test (:func:`mann_whitney_greater`).
Since the two values of a split come from the same fit and test set, the splits are paired
(:func:`wilcoxon_greater`), and repeated k-fold estimates share training data, so they are not independent
(:func:`corrected_t_greater`, Nadeau & Bengio 2003). NaN entries (failed or missing fits) are dropped:
independently per sample for Mann-Whitney, pairwise for the paired tests. Too few values give NaN. A paired
difference within float round-off of its values is no difference (:data:`ROUND_OFF`).

What the correction covers: the splits' shared test cell lines (repeats) and shared training cell lines,
as Nadeau & Bengio model them (a correlation n_test / (n_train + n_test) between splits). A method's edge
that comes from the drug's own set of cell lines (which ones it was trained on: every split trains on most
of them) is no sampling error any split-based variance can see (Bengio & Grandvalet 2004, JMLR 5:1089):
simulated on the harness's grouped splits (20 cell lines, 10 x 5 folds, methods equal over the population
of cell lines), the one-sided corrected t at 0.05 rejected 0.02 with a method x test cell line effect alone,
0.07 with a method x training cell line effect of the same size and 0.20 with one 4 times as large (0.025
and 0.09 at 1 repeat): an edge on this drug's cell lines may be called that other cell lines would not show.

Repeats that test the same cell lines again are no new test sets: a drug in 5 cell lines at 5 folds has one
cell line per fold in every repeat, so its 10 x 5 splits are 5 test sets, each scored 10 times. Their
variance then rests on 5 values, not 50, and the corrected t with 49 degrees of freedom rejected equal
methods at 0.059 (0.096 with a training cell line effect as large) where 20 cell lines gave 0.032 (0.060);
with the degrees of freedom of the distinct test sets (``groups``: 5 - 1) 0.029 (0.054)
(tests/pertvae_core/test_verdict_error_rate.py).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np
from scipy import stats as _st

__all__ = ["mann_whitney_greater", "wilcoxon_greater", "corrected_t_greater", "corrected_t_interval",
           "paired_comparison", "paired_differences", "benjamini_hochberg", "test_set_df", "ROUND_OFF"]

# A paired difference |a - b| <= ROUND_OFF * max(|a|, |b|) counts as 0. Two scores equal by construction
# differ by float round-off (mean_shift and its input ablation: 1e-17 on 48 of 50 splits), whose signs are
# noise: the tests then gave p uniform on [0, 1] (Wilcoxon 0.035 one way) for a difference that is exactly 0.
# A Pearson over 978 genes accumulates ~1e-14 relative round-off; no printed digit is as small as 1e-12.
ROUND_OFF = 1e-12


def _vec(x: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per split), got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains inf")
    return arr


def paired_differences(rho_pred: Sequence[float], rho_rec: Sequence[float]) -> np.ndarray:
    """Differences rho_pred - rho_rec over the splits where both are finite, those within float round-off
    of their values (:data:`ROUND_OFF`) set to 0: what every paired test here tests."""
    a = _vec(rho_pred, "rho_pred")
    b = _vec(rho_rec, "rho_rec")
    if a.shape != b.shape:
        raise ValueError(f"paired test needs equal lengths: rho_pred {a.shape[0]} vs rho_rec {b.shape[0]}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    d = a - b
    d[np.abs(d) <= ROUND_OFF * np.maximum(np.abs(a), np.abs(b))] = 0.0
    return d



def mann_whitney_greater(rho_pred: Sequence[float], rho_rec: Sequence[float]) -> float:
    """The paper's test: one-sided Mann-Whitney U, H1: rho_rec < rho_pred (values stochastically greater).

    Equals ``scipy.stats.mannwhitneyu(rho_pred, rho_rec, alternative="greater").pvalue``.
    """
    a = _vec(rho_pred, "rho_pred")
    b = _vec(rho_rec, "rho_rec")
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return float("nan")
    return float(_st.mannwhitneyu(a, b, alternative="greater").pvalue)


def wilcoxon_greater(rho_pred: Sequence[float], rho_rec: Sequence[float]) -> float:
    """Paired one-sided Wilcoxon signed-rank test on d = rho_pred - rho_rec, H1: median(d) > 0.

    Zero differences are dropped (scipy's default ``zero_method="wilcox"``); all-zero differences give 1.0.
    Equals scipy's default (``method="auto"``): the exact null distribution for up to 50 pairs without zeros
    or tied |d|; with zeros or ties, the exact distribution of the tied ranks over the 2^n sign patterns for
    up to 13 pairs (scipy enumerates them by ``permutation_test``, ~0.1 s a call; :func:`_signed_rank_sf`
    counts them in microseconds) and the normal approximation with tie correction above. The normal
    approximation on few pairs is no substitute: with 5 splits all better by the same amount it gave
    p = 0.013, below 1/2^5 = 0.031, the least p any signed-rank test on 5 pairs can reach.
    """
    d = paired_differences(rho_pred, rho_rec)
    if d.size == 0:
        return float("nan")
    if np.all(d == 0):
        return 1.0
    clean = d.size <= 50 and not (d == 0).any() and np.unique(np.abs(d)).size == d.size
    if not clean and d.size <= EXACT_TIED_MAX:
        return _signed_rank_sf(d)
    return float(_st.wilcoxon(d, alternative="greater", method="exact" if clean else "approx").pvalue)


EXACT_TIED_MAX = 13   # scipy's bound for enumerating the 2^n sign patterns with ties or zeros


def _signed_rank_sf(d: np.ndarray) -> float:
    """P(R+ >= observed R+) when each nonzero difference's sign is + or - with probability 1/2 (zeros
    dropped, tied |d| sharing their mid-rank): the permutation p-value scipy's default computes, from the
    distribution of R+ counted over sums of doubled mid-ranks (integers)."""
    nz = d[d != 0]
    r2 = np.rint(2.0 * _st.rankdata(np.abs(nz))).astype(np.int64)
    observed = int(r2[nz > 0].sum())
    counts = np.zeros(int(r2.sum()) + 1)
    counts[0] = 1.0
    for r in r2:
        counts[r:] = counts[r:] + counts[:-r]
    return float(counts[observed:].sum() / counts.sum())


def corrected_t_greater(rho_pred: Sequence[float], rho_rec: Sequence[float],
                        n_train: float, n_test: float, groups: Sequence[Hashable] | None = None) -> float:
    """Nadeau-Bengio corrected resampled t-test, one-sided (H1: mean(rho_pred - rho_rec) > 0).

    t = mean(d) / sqrt((1/J + n_test/n_train) * var(d, ddof=1)) over the J paired splits, with J - 1 degrees
    of freedom. ``n_train``/``n_test`` are the sizes (cell lines) of the data the model is fitted on and
    tested on: n_train counts only the cell lines actually trained on, not the validation cell lines held
    out for early stopping (harness.run.drug_meta passes them so). Where every split differs by the same
    amount (within round-off of the values: :func:`_no_spread`) t is infinite, yet 2 splits are no certainty:
    the p-value is then the exact sign-flip test's, 2^-G for G distinct test sets and a positive mean
    difference (the least p any test of G paired values without a model of their spread can reach: 0.25 at
    2, 9e-16 at 50), 1 otherwise. Fewer than 2 pairs, or fewer than 2 distinct test sets among them, give NaN.
    """
    for name, v in (("n_train", n_train), ("n_test", n_test)):
        if not (isinstance(v, int | float | np.integer | np.floating) and math.isfinite(v) and v > 0):
            raise ValueError(f"corrected_t_greater: {name} must be a positive number, got {v!r}")
    d = paired_differences(rho_pred, rho_rec)
    j = d.size
    df = test_set_df(rho_pred, rho_rec, groups)
    if df < 1:
        return float("nan")
    mean = float(d.mean())
    var = float(d.var(ddof=1))
    if _no_spread(rho_pred, rho_rec, d):
        return 0.5 ** (df + 1) if mean > 0 else 1.0
    t = mean / math.sqrt((1.0 / j + float(n_test) / float(n_train)) * var)
    return float(_st.t.sf(t, df=df))


def _no_spread(a: Sequence[float], b: Sequence[float], d: np.ndarray) -> bool:
    """Whether the paired differences ``d`` are all equal within float round-off of the values (a
    difference of two AUROCs, 13/42 - 12/42 beside 1/6 - 1/7, is 1/42 both times but for 1e-17)."""
    a, b = _vec(a, "a"), _vec(b, "b")
    ok = np.isfinite(a) & np.isfinite(b)
    scale = float(np.max(np.abs(np.r_[a[ok], b[ok]]), initial=0.0))
    return float(np.ptp(d)) <= ROUND_OFF * scale


def test_set_df(a: Sequence[float], b: Sequence[float], groups: Sequence[Hashable] | None = None) -> int:
    """The corrected t's degrees of freedom over the splits where ``a`` and ``b`` are both finite: their
    number less 1, or, with ``groups`` (one label per split: its test set), their distinct test sets less 1
    (module docstring: a repeat that tests the same cell lines again adds no test set)."""
    ok = np.isfinite(_vec(a, "a")) & np.isfinite(_vec(b, "b"))
    if groups is None:
        return int(ok.sum()) - 1
    labels = list(groups)
    if len(labels) != ok.size:
        raise ValueError(f"groups: one label per split, got {len(labels)} for {ok.size} splits")
    return len({g for g, keep in zip(labels, ok, strict=True) if keep}) - 1


def _check_sizes(n_train: float, n_test: float) -> None:
    for name, v in (("n_train", n_train), ("n_test", n_test)):
        if not (isinstance(v, int | float | np.integer | np.floating) and math.isfinite(v) and v > 0):
            raise ValueError(f"corrected_t: {name} must be a positive number, got {v!r}")


def corrected_t_interval(a: Sequence[float], b: Sequence[float], n_train: float, n_test: float,
                         level: float = 0.95, groups: Sequence[Hashable] | None = None
                         ) -> tuple[float, float, float]:
    """Mean of d = a - b over the paired splits and its two-sided ``level`` interval from the Nadeau-Bengio
    corrected resampled t: mean +/- t_{(1+level)/2, J-1} * sqrt((1/J + n_test/n_train) * var(d, ddof=1)).

    Returns (mean, low, high); fewer than 2 pairs give NaN bounds (and a NaN mean with none). With ``groups``
    the t quantile has the distinct test sets' degrees of freedom (:func:`test_set_df`); fewer than 2 give
    NaN bounds. Differences all equal give the point [mean, mean], where :func:`corrected_t_greater` gives
    the sign test's 2^-G, not 0.
    """
    _check_sizes(n_train, n_test)
    d = paired_differences(a, b)
    j = d.size
    if j == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(d.mean())
    df = test_set_df(a, b, groups)
    if df < 1:
        return mean, float("nan"), float("nan")
    half = float(_st.t.ppf(0.5 + level / 2, df=df)) * math.sqrt(
        (1.0 / j + float(n_test) / float(n_train)) * float(d.var(ddof=1)))
    return mean, mean - half, mean + half


def paired_comparison(a: Sequence[float], b: Sequence[float], n_train: float, n_test: float,
                      higher_is_better: bool = True, groups: Sequence[Hashable] | None = None
                      ) -> dict[str, float]:
    """Method A against method B over the same splits (one value each per split, NaN = missing).

    ``mean_diff`` = mean(a - b) with its 95% corrected-t interval ``ci_low``/``ci_high`` (the sign is a - b
    whatever the metric's direction); one-sided p-values that A is better (``p_wilcoxon``,
    ``p_corrected_t``: H1 a > b, or a < b when lower is better) and that A is worse (``p_wilcoxon_worse``,
    ``p_corrected_t_worse``); ``n_splits`` pairs used and ``n_test_sets``, the distinct test sets among them
    (``groups``: each split's test set; without it every split counts as one), on which the corrected t's
    degrees of freedom rest.
    """
    mean, lo, hi = corrected_t_interval(a, b, n_train, n_test, groups=groups)
    better, worse = (a, b) if higher_is_better else (b, a)
    return {"mean_diff": mean, "ci_low": lo, "ci_high": hi,
            "p_wilcoxon": wilcoxon_greater(better, worse),
            "p_corrected_t": corrected_t_greater(better, worse, n_train, n_test, groups),
            "p_wilcoxon_worse": wilcoxon_greater(worse, better),
            "p_corrected_t_worse": corrected_t_greater(worse, better, n_train, n_test, groups),
            "n_splits": int(paired_differences(a, b).size),
            "n_test_sets": test_set_df(a, b, groups) + 1}


def benjamini_hochberg(p: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg q-values (step-up, monotone, capped at 1); NaN p-values stay NaN, not counted.

    Matches ``scipy.stats.false_discovery_control(p, method="bh")`` on the finite entries.
    """
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"benjamini_hochberg: p must be 1-D, got shape {arr.shape}")
    ok = ~np.isnan(arr)
    bad = ok & ((arr < 0) | (arr > 1))
    if bad.any():
        raise ValueError(f"benjamini_hochberg: p-values must lie in [0, 1], got {arr[bad][:5].tolist()}")
    q = np.full(arr.shape, np.nan)
    vals = arr[ok]
    m = vals.size
    if m == 0:
        return q
    order = np.argsort(vals, kind="stable")
    ranked = vals[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q
