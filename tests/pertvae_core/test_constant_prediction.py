"""A prediction constant across genes ranks no gene: the Spearman metrics score it 0 (chance), never NaN.

A NaN was dropped by the mean over test pairs and over splits: a plug-in that returned one number for every
gene on half its test pairs and x1 + the mean change on the others scored rho_pred_pert 0.801 on the demo's
selumetinib (mean_shift, right on every pair, 0.807), and one constant on every pair had no rho_pred_pert
at all, so it left the comparisons and the metrics' agreement on that metric (review 50)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pertvae_core.evaluation import reconstruction_rho, score_method
from pertvae_core.metrics import prediction_spearman_rows, rho_mean, spearman_rows
from tests.pertvae_core.test_evaluation import _cell_split


def test_a_constant_row_scores_zero_and_counts_in_the_mean() -> None:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(4, 30))
    pred = obs + rng.normal(scale=0.3, size=obs.shape)
    pred[1::2] = 2.5                                   # two rows say nothing about which gene is higher
    informative = [stats.spearmanr(pred[i], obs[i]).statistic for i in (0, 2)]
    assert np.isnan(spearman_rows(pred, obs)[1])       # the plain correlation stays undefined
    np.testing.assert_allclose(prediction_spearman_rows(pred, obs), [informative[0], 0, informative[1], 0])
    assert rho_mean(pred, obs) == pytest.approx(sum(informative) / 4)   # not their mean over 2 rows


def test_nan_and_a_constant_observation_stay_undefined() -> None:
    obs = np.random.default_rng(1).normal(size=(3, 10))
    pred = np.full((3, 10), 1.0)
    obs[1] = 4.0                      # a constant measured profile: nothing to rank against
    pred[2, 0] = np.nan
    out = prediction_spearman_rows(pred, obs)
    assert out[0] == 0.0 and np.isnan(out[1]) and np.isnan(out[2])


def test_a_constant_method_and_reconstruction_score_zero() -> None:
    split = _cell_split(seed=3)
    s = score_method(split, lambda x1: np.full(np.shape(x1), 0.25))
    assert s["rho_pred_pert"] == 0.0
    ctrl = np.asarray(split.x1_test, dtype=np.float64)
    assert reconstruction_rho(ctrl, np.array(["a"] * len(ctrl)), np.zeros_like(ctrl)) == 0.0


def test_benchmark_md_names_the_methods_scored_zero_so() -> None:
    """The legend names where the rule applied: a method whose rho_pred_pert is exactly 0 on some fits."""
    import pandas as pd

    from harness.verdicts import _constant_words

    scores = pd.DataFrame({"method": ["constant"] * 3 + ["identity"] * 3, "metric": "rho_pred_pert",
                           "value": [0.0, 0.0, 0.4, 0.75, 0.74, 0.76]})
    assert _constant_words(scores) == (" One number for every gene on every test pair of a fit, so "
                                       "rho_pred_pert 0 there: constant (2 of its 3 fits).")
    assert _constant_words(scores[scores["method"] == "identity"]) == ""
