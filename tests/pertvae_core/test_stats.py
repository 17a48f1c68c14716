"""Per-drug tests and BH q-values against scipy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pertvae_core.stats import (
    benjamini_hochberg,
    corrected_t_greater,
    mann_whitney_greater,
    paired_comparison,
    wilcoxon_greater,
)


@pytest.fixture
def shifted() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    rec = 0.5 + 0.02 * rng.normal(size=50)
    pred = rec + 0.03 + 0.01 * rng.normal(size=50)
    return pred, rec


def test_mann_whitney_matches_scipy_and_direction(shifted: tuple[np.ndarray, np.ndarray]) -> None:
    pred, rec = shifted
    p = mann_whitney_greater(pred, rec)
    assert p == stats.mannwhitneyu(pred, rec, alternative="greater").pvalue
    assert p < 1e-6
    assert mann_whitney_greater(rec, pred) > 0.99  # wrong direction is not significant


def test_mann_whitney_small_known_value() -> None:
    # pred all above rec, n=m=3: exact P(U >= 9) = 1 / C(6, 3) = 0.05
    assert mann_whitney_greater([4, 5, 6], [1, 2, 3]) == pytest.approx(0.05)


def test_mann_whitney_drops_nan() -> None:
    p = mann_whitney_greater([4, 5, np.nan, 6], [1, np.nan, 2, 3])
    assert p == pytest.approx(0.05)
    assert math.isnan(mann_whitney_greater([np.nan], [1.0]))


def test_wilcoxon_matches_scipy(shifted: tuple[np.ndarray, np.ndarray]) -> None:
    pred, rec = shifted
    p = wilcoxon_greater(pred, rec)
    assert p == pytest.approx(stats.wilcoxon(pred - rec, alternative="greater").pvalue)
    assert p < 1e-6
    assert wilcoxon_greater(rec, pred) > 0.99


def test_wilcoxon_known_value_and_edge_cases() -> None:
    # 5 positive differences, exact one-sided p = 1/2^5
    assert wilcoxon_greater([2, 3, 4, 5, 6], [1, 1, 1, 1, 1]) == pytest.approx(1 / 32)
    assert wilcoxon_greater([1, 2, 3], [1, 2, 3]) == 1.0  # all-zero differences
    assert math.isnan(wilcoxon_greater([np.nan, 1.0], [1.0, np.nan]))
    with pytest.raises(ValueError, match="equal lengths"):
        wilcoxon_greater([1, 2], [1, 2, 3])


def test_corrected_t_by_hand() -> None:
    pred = np.array([0.6, 0.7, 0.65, 0.8, 0.62])
    rec = np.array([0.55, 0.6, 0.66, 0.7, 0.6])
    d = pred - rec
    j, n_train, n_test = 5, 40, 10
    t = d.mean() / math.sqrt((1 / j + n_test / n_train) * d.var(ddof=1))
    want = stats.t.sf(t, df=j - 1)
    assert corrected_t_greater(pred, rec, n_train, n_test) == pytest.approx(want, rel=1e-12)
    # the correction makes it more conservative than the plain paired t-test
    plain = stats.ttest_rel(pred, rec, alternative="greater").pvalue
    assert corrected_t_greater(pred, rec, n_train, n_test) > plain
    # and with n_test/n_train -> 0 it approaches the plain paired t-test
    assert corrected_t_greater(pred, rec, 1e12, 1) == pytest.approx(plain, rel=1e-6)


def test_corrected_t_edge_cases() -> None:
    # zero variance, positive mean: the sign-flip test's 2^-n, no certainty from 3 splits
    assert corrected_t_greater([2, 2, 2], [1, 1, 1], 8, 2) == 0.125
    # and with 2 test sets scored 3 times each: 2^-2
    assert corrected_t_greater([2] * 6, [1] * 6, 8, 2, groups=[0, 1] * 3) == 0.25
    assert corrected_t_greater([1, 1, 1], [1, 1, 1], 8, 2) == 1.0
    assert corrected_t_greater([1, 1, 1], [2, 2, 2], 8, 2) == 1.0
    assert math.isnan(corrected_t_greater([1.0], [0.0], 8, 2))
    with pytest.raises(ValueError, match="n_train must be a positive number"):
        corrected_t_greater([1, 2], [0, 1], 0, 2)
    with pytest.raises(ValueError, match="n_test"):
        corrected_t_greater([1, 2], [0, 1], 8, float("nan"))


def test_corrected_t_round_off_spread_is_no_spread() -> None:
    """Two AUROC differences that are both 1/42 but for round-off (13/42 - 12/42, 1/6 - 1/7) gave
    p = 1.6e-15 from 2 splits (the review of drug response: 'q above chance 1.59e-15'); the sign-flip
    test's 1/4 is all 2 splits can show."""
    a, b = [13 / 42, 1 / 6], [12 / 42, 1 / 7]
    assert np.ptp(np.subtract(a, b)) > 0      # the round-off the test is about
    assert corrected_t_greater(a, b, 8, 2) == 0.25
    assert corrected_t_greater(b, a, 8, 2) == 1.0


def test_bh_known_values() -> None:
    p = [0.01, 0.04, 0.03, 0.5]
    # sorted 0.01,0.03,0.04,0.5 -> 0.04, 0.06, 0.0533.., 0.5 -> monotone: 0.04, 0.0533, 0.0533, 0.5
    np.testing.assert_allclose(benjamini_hochberg(p), [0.04, 0.16 / 3, 0.16 / 3, 0.5])


def test_bh_nan_aware_and_validates() -> None:
    q = benjamini_hochberg([0.01, np.nan, 0.04])
    assert math.isnan(q[1])
    np.testing.assert_allclose(q[[0, 2]], stats.false_discovery_control([0.01, 0.04], method="bh"))
    assert benjamini_hochberg([]).shape == (0,)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        benjamini_hochberg([0.2, 1.5])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0.0, 1.0, allow_nan=False) | st.sampled_from([0.0, 0.05, 1.0]),
                min_size=1, max_size=40))
def test_bh_property_matches_scipy(p: list[float]) -> None:
    q = benjamini_hochberg(p)
    np.testing.assert_allclose(q, stats.false_discovery_control(p, method="bh"), rtol=1e-12, atol=1e-15)
    assert np.all(q <= 1.0) and np.all(q >= np.asarray(p) - 1e-15)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(q[order]) >= -1e-15)


def test_wilcoxon_with_ties_or_zeros_uses_the_normal_approximation_above_13_pairs() -> None:
    a = np.array([0.1, 0.2, 0.2, 0.3, 0.0, 0.5, 0.4, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1])
    b = np.zeros(14)
    want = stats.wilcoxon(a - b, alternative="greater", method="approx").pvalue
    assert wilcoxon_greater(a, b) == pytest.approx(want)
    assert wilcoxon_greater(a, b) == pytest.approx(stats.wilcoxon(a - b, alternative="greater").pvalue)
    b = np.zeros(10)
    exact = np.arange(1, 11) / 10.0
    assert wilcoxon_greater(exact, b) == pytest.approx(stats.wilcoxon(exact, alternative="greater").pvalue)


def _sign_flip_p(d: np.ndarray) -> float:
    """The one-sided exact p of the signed-rank statistic by enumerating every sign of the non-zero
    differences' (tie-averaged) ranks, zeros dropped: the reference, independent of the scipy version (1.11's
    default took the normal approximation where there are zeros; 1.17's is exact)."""
    nz = d[d != 0]
    r = stats.rankdata(np.abs(nz))
    t = r[nz > 0].sum()
    signs = (np.arange(2 ** len(nz))[:, None] >> np.arange(len(nz))) & 1
    return float(np.mean(signs @ r >= t - 1e-9))


def test_wilcoxon_with_ties_or_zeros_on_few_pairs_is_exact() -> None:
    """Up to 13 pairs with ties or zeros: the exact sign-flip distribution, never the normal approximation,
    which went below the least p a signed-rank test can give (1/2^n)."""
    same = np.full(5, 0.1)   # 5 splits, all better by the same amount
    assert wilcoxon_greater(same, np.zeros(5)) == pytest.approx(1 / 32)   # was 0.0127
    tied = np.array([0.1, 0.1, 0.2, 0.3, 0.4])
    assert wilcoxon_greater(tied, np.zeros(5)) == pytest.approx(1 / 32)   # was 0.0211
    rng = np.random.default_rng(5)
    for _ in range(60):
        n = int(rng.integers(2, 14))
        d = np.round(rng.normal(0.2, 1.0, size=n), 1)
        d[rng.random(n) < 0.15] = 0.0
        if np.all(d == 0):
            continue
        assert wilcoxon_greater(d, np.zeros(n)) == pytest.approx(_sign_flip_p(d), rel=1e-9, abs=1e-12), d


def test_differences_at_float_round_off_are_no_differences() -> None:
    """Known answer: scores equal by construction but for a last-bit round-off (mean_shift and its input
    ablation differed by 1e-17 on 48 of 50 splits) have mean difference 0 and no significance either way;
    the round-off's random signs gave p uniform on [0, 1] (here 0.05 one way or the other in ~10% of draws,
    Wilcoxon 0.035 on the real case)."""
    rng = np.random.default_rng(3)
    for _ in range(100):
        a = rng.uniform(0.1, 0.6, 50)
        b = a + np.spacing(a) * rng.integers(-2, 3, 50)   # up to two units in the last place either way
        r = paired_comparison(a, b, 16, 4)
        assert r["mean_diff"] == 0.0 and r["ci_low"] == r["ci_high"] == 0.0, r
        ps = [r[k] for k in ("p_wilcoxon", "p_wilcoxon_worse", "p_corrected_t", "p_corrected_t_worse")]
        assert ps == [1.0] * 4, ps
        assert r["n_splits"] == 50
    a = rng.uniform(0.1, 0.6, 50)   # a real difference, however small to print, is still tested
    b = a - 1e-9 * (1 + rng.random(50))
    assert paired_comparison(a, b, 16, 4)["p_corrected_t"] < 1e-6
