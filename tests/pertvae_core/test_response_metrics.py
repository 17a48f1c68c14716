"""Response metrics against scikit-learn, scipy and numpy, with chance levels and NaN reasons."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score

from pertvae_core.response_metrics import (
    aupr,
    auroc,
    binary_metrics,
    continuous_metrics,
    pearson,
    rmse,
    spearman,
)


@pytest.mark.parametrize("seed", range(40))
def test_auroc_and_aupr_match_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    y = rng.integers(0, 2, n).astype(float)
    y[:2] = [0, 1]
    # half the cases: few distinct scores (many ties); else continuous
    s = rng.integers(0, 4, n).astype(float) if seed % 2 else rng.normal(size=n) + y
    assert auroc(y, s).value == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    if len(np.unique(s)) == n:   # sklearn's AP takes a block of ties as one threshold (module docstring)
        assert aupr(y, s).value == pytest.approx(average_precision_score(y, s), abs=1e-12)
    npos, h = y.sum(), np.sum(1.0 / np.arange(1, n + 1))
    assert auroc(y, s).chance == 0.5
    assert aupr(y, s).chance == pytest.approx((h + (npos - 1) * (n - h) / (n - 1)) / n, abs=1e-12)


def test_known_values_and_constant_scores() -> None:
    y = np.array([0, 0, 1, 1.0])
    assert auroc(y, [0.1, 0.4, 0.35, 0.8]).value == 0.75
    assert aupr(y, [0.1, 0.4, 0.35, 0.8]).value == pytest.approx((1 + 2 / 3) / 2)
    const = np.full(4, 0.3)
    assert auroc(y, const).value == 0.5 and aupr(y, const).value == aupr(y, const).chance  # chance exactly
    assert aupr(y, const).value == pytest.approx(49 / 72)   # (H_4 + (4 - H_4) / 3) / 4, not the prevalence


@pytest.mark.parametrize(("y", "s", "why"), [
    ([1, 1, 1], [0.2, 0.3, 0.4], "one class only"),
    ([], [], "no test rows"),
    ([0, 1, 1], [0.2, np.nan, 0.4], "non-finite predictions"),
])
def test_undefined_binary_metrics_are_nan_with_a_reason(y, s, why) -> None:
    for m in (auroc(np.array(y, float), np.array(s, float)), aupr(np.array(y, float), np.array(s, float))):
        assert np.isnan(m.value) and why in m.reason
    out = binary_metrics(np.array(y, float), np.array(s, float))
    assert why in str(out["auroc_reason"]) and out["auroc_chance"] == 0.5


def test_bad_binary_input_raises() -> None:
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        auroc(np.array([0, 2.0]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="3 observed values but 2 predictions"):
        aupr(np.array([0, 1, 1.0]), np.array([0.1, 0.2]))


@pytest.mark.parametrize("seed", range(10))
def test_continuous_metrics_match_scipy_and_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    r = rng.normal(size=30)
    p = np.round(r + rng.normal(size=30), 1)  # ties in the ranks
    assert pearson(r, p).value == pytest.approx(pearsonr(r, p)[0], abs=1e-12)
    assert spearman(r, p).value == pytest.approx(spearmanr(r, p)[0], abs=1e-12)
    assert rmse(r, p).value == pytest.approx(np.sqrt(np.mean((r - p) ** 2)), abs=1e-12)
    m = rmse(r, p, train_mean=0.5)
    assert m.chance == pytest.approx(np.sqrt(np.mean((r - 0.5) ** 2)))
    out = continuous_metrics(r, p, 0.5)
    assert out["pearson_chance"] == out["spearman_chance"] == 0.0 and "pearson_reason" not in out


def test_undefined_continuous_metrics_are_nan_with_a_reason() -> None:
    r = np.array([0.1, 0.5, 0.9])
    assert spearman(np.ones(3), np.full(3, 0.4)).reason == "constant test responses"   # not the prediction's
    assert spearman(np.ones(3), r).reason == "constant test responses"
    assert "at least 2" in pearson(r[:1], r[:1]).reason
    assert rmse(r, np.array([0.0, np.inf, 1.0])).reason == "non-finite predictions"
    assert np.isnan(rmse(r, r).chance)  # no training mean given


def test_a_constant_prediction_correlates_at_chance() -> None:
    """A prediction constant over the test cell lines ranks none above another: 0, not NaN. As NaN it was
    dropped from the mean over splits: a --response-method constant on 6 of 10 splits of the drvae-demo's
    selumetinib scored Pearson 0.811 over the other 4, 'above chance' (review 50)."""
    r = np.array([0.1, 0.5, 0.9])
    for metric in (pearson, spearman):
        m = metric(r, np.full(3, 0.4))
        assert (m.value, m.chance, m.reason) == (0.0, 0.0, "")


def _every_order(y: np.ndarray, s: np.ndarray) -> float:
    """The mean AP over every order of the rows consistent with the scores (ties in every order)."""
    aps = []
    for perm in itertools.permutations(range(len(y))):
        ys = y[sorted(range(len(y)), key=lambda i: (-s[i], perm[i]))]
        aps.append(np.sum(ys * np.cumsum(ys) / np.arange(1, len(y) + 1)) / ys.sum())
    return float(np.mean(aps))


@pytest.mark.parametrize("seed", range(12))
def test_aupr_is_the_mean_over_every_order_of_ties_and_a_random_ranking_sits_at_chance(seed: int) -> None:
    """sklearn's AP takes a block of tied scores as one threshold, so a constant score's AP is the test
    prevalence, below a random ranking's expected AP (0.30 against 0.45 for 3 positives among 10 rows): a
    classifier unrelated to the labels scored above AUPR's chance on average. AP now averages over the
    orders of ties, so a constant score scores what a random one does on average, the chance level."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 7))
    y = rng.integers(0, 2, n).astype(float)
    y[:2] = [0, 1]
    s = rng.integers(0, 3, n).astype(float)
    assert aupr(y, s).value == pytest.approx(_every_order(y, s), abs=1e-12)
    assert aupr(y, s).chance == pytest.approx(_every_order(y, np.zeros(n)), abs=1e-12)


def test_aupr_chance_of_non_finite_predictions_is_a_random_rankings() -> None:
    """A split whose predictions are not finite has no AUPR but the chance of its labels, as any other."""
    y = np.r_[np.ones(3), np.zeros(7)]
    bad = aupr(y, np.r_[np.nan, np.zeros(9)])
    assert np.isnan(bad.value) and bad.chance == aupr(y, np.zeros(10)).chance


def test_a_random_classifier_scores_aupr_chance_on_average() -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(3), np.zeros(7)]
    ap = [aupr(y, rng.normal(size=10)).value for _ in range(4000)]
    assert aupr(y, np.zeros(10)).chance == pytest.approx(0.45003, abs=1e-5)
    assert np.mean(ap) == pytest.approx(0.45003, abs=0.01)   # se 0.003; the prevalence 0.30 is far below
