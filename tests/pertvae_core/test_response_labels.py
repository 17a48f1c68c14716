"""Per-split binary labels: the waterfall, quantile and fixed rules, on training cell lines only."""

from __future__ import annotations

import numpy as np
import pytest

from pertvae_core.response_data import ResponseSplit
from pertvae_core.response_labels import LabelRule, binarize, rule_threshold, waterfall_threshold


def _knee_by_cross_product(r: np.ndarray) -> float:
    """Independent knee: perpendicular distance |(P - A) x (B - A)| / |B - A| of each waterfall point P."""
    v = np.sort(r)[::-1]
    pts = np.column_stack([np.arange(1, v.size + 1), v]).astype(float)
    a, b = pts[0], pts[-1]
    ab = b - a
    dist = np.abs(ab[0] * (pts[:, 1] - a[1]) - ab[1] * (pts[:, 0] - a[0])) / np.hypot(*ab)
    return float(v[int(np.argmax(dist))])


def test_waterfall_knee_by_hand() -> None:
    # waterfall 10, 9, 8, 1, 0.5, 0 against ranks 1..6; the line through the ends is 10 - 2 (i - 1):
    # vertical distances 0, 1, 2, 3, 1.5, 0 -> the knee is the 4th point, response 1
    r = np.array([0.5, 8, 1, 10, 0, 9])
    assert abs(np.corrcoef(np.sort(r)[::-1], np.arange(6))[0, 1]) < 0.95  # not linear
    assert waterfall_threshold(r) == (1.0, "knee")
    np.testing.assert_array_equal(binarize(r, 1.0), [0, 1, 1, 1, 0, 1])


def test_waterfall_linear_curve_uses_the_median() -> None:
    # evenly spaced 0..19: Pearson -1; median 9.5 is equidistant from 9 and 10, the first in waterfall
    # (decreasing) order wins: 10; 10 of 20 cell lines are sensitive
    r = np.random.default_rng(0).permutation(np.arange(20.0))
    t, branch = waterfall_threshold(r)
    assert (t, branch) == (10.0, "median")
    assert binarize(r, t).sum() == 10


@pytest.mark.parametrize("seed", range(5))
def test_waterfall_matches_the_geometric_distance(seed: int) -> None:
    rng = np.random.default_rng(seed)
    r = np.concatenate([rng.normal(3, 0.3, 8), rng.exponential(0.4, 40)])  # a few very sensitive lines
    t, branch = waterfall_threshold(r)
    assert branch == "knee" and t == _knee_by_cross_product(r)
    assert waterfall_threshold(r * 1000.0 + 7.0)[0] == pytest.approx(t * 1000.0 + 7.0)  # unit-free


def test_quantile_and_fixed_rules() -> None:
    r = np.arange(10.0)
    assert rule_threshold(LabelRule("quantile", 0.7), r) == np.quantile(r, 0.7)
    assert rule_threshold(LabelRule("fixed", 2.5), r) == 2.5
    np.testing.assert_array_equal(binarize(np.array([1.0, np.nan, 3.0]), 2.5), [0.0, np.nan, 1.0])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"kind": "otsu"}, "kind"), ({"kind": "quantile"}, "level"),
    ({"kind": "quantile", "value": 1.0}, "level"),
    ({"kind": "fixed"}, "finite"), ({"linear_r": 0.0}, "linear_r"),
])
def test_bad_rules_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LabelRule(**kwargs)


def test_too_few_or_equal_training_responses() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        waterfall_threshold(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="all 4 training responses are equal"):
        rule_threshold(LabelRule("quantile", 0.5), np.ones(4))


def _split(rng: np.random.Generator, r_val: np.ndarray, r_test: np.ndarray, x_test: np.ndarray | None = None,
           **kw) -> ResponseSplit:
    g = 5
    x = rng.normal(size=(40, g)).astype(np.float32)
    r_pairs = np.r_[np.linspace(0, 1, 9), np.nan]
    r_train = np.r_[np.linspace(0.2, 3, 18), np.nan, np.nan]
    x_test = x[30:30 + len(r_test)] if x_test is None else x_test
    return ResponseSplit(x[:10], x[:10] + 1, r_pairs, x[10:30], r_train, x[30:30 + len(r_val)], r_val,
                         x_test, r_test, **kw)


@pytest.mark.parametrize("rule", [LabelRule(), LabelRule("quantile", 0.6)])
def test_no_validation_or_test_value_changes_the_threshold(rule: LabelRule) -> None:
    rng = np.random.default_rng(1)
    base = _split(np.random.default_rng(0), np.zeros(4), np.zeros(6), rule=rule)
    for _ in range(20):
        scale = 10.0 ** rng.integers(-3, 7)
        other = _split(np.random.default_rng(0), scale * rng.normal(size=4), scale * rng.normal(size=6),
                       x_test=rng.normal(size=(6, 5)).astype(np.float32), rule=rule)
        assert other.threshold == base.threshold
        np.testing.assert_array_equal(other.y_train, base.y_train)
        np.testing.assert_array_equal(other.y_pairs, base.y_pairs)
        np.testing.assert_array_equal(other.y_test, binarize(other.r_test, base.threshold))
    # the threshold is the rule applied to the labelled training responses alone
    expected = rule_threshold(rule, np.r_[np.linspace(0, 1, 9), np.linspace(0.2, 3, 18)])
    assert base.threshold == expected
