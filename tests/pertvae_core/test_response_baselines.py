"""Response baselines: known answers on simulated responses, validation-only selection, training-only fits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pertvae_core.baselines import fit_pca
from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData
from pertvae_core.response_baselines import (
    C_GRID,
    RESPONSE_BASELINES,
    LinearSVM,
    LogisticL2,
    RidgeResponse,
    TrainingPrior,
    encoder_baselines,
)
from pertvae_core.response_features import FeatureMap, pertvae_latents
from pertvae_core.response_methods import ResponseMethod, evaluate_response_methods, score_response
from pertvae_core.train import fit
from tests.pertvae_core.response_sim import simulate

LATENT = 3


def _all_baselines() -> dict:
    return {k: (lambda f=f: f(LATENT, 0)) for k, f in RESPONSE_BASELINES.items()}


def test_an_untreated_direction_is_predicted_well_above_chance() -> None:
    sim = simulate("untreated", seed=0)
    truth = roc_auc_score(sim.split.y_test, sim.truth_test)  # the noise-free score's AUROC, independent
    assert truth > 0.95
    m = LogisticL2("x1").fit(sim.split)
    a = score_response(m, sim.split)["auroc"]
    assert a > 0.85 and a > truth - 0.1
    r = score_response(RidgeResponse("x1").fit(sim.split), sim.split)
    assert r["pearson"] > 0.8 and r["rmse"] < 0.5 * r["rmse_chance"]


def test_a_null_response_gives_every_method_chance() -> None:
    sim = simulate("null", seed=3, n_test=200)
    row = evaluate_response_methods([sim.split], _all_baselines())[0]
    assert row["status"] == "done", row["reason"]
    for name, s in row["scores"].items():
        if "auroc" in s:
            assert abs(s["auroc"] - 0.5) < 0.15, name  # 0.15 ~ 4 s.d. of a null AUROC at n = 200
        if "pearson" in s and np.isfinite(s["pearson"]):
            assert abs(s["pearson"]) < 0.25, name


def test_the_prior_baseline_is_exactly_chance() -> None:
    sim = simulate("untreated", seed=1)
    s = score_response(TrainingPrior().fit(sim.split), sim.split)
    assert s["auroc"] == 0.5 and s["aupr"] == s["aupr_chance"]
    assert TrainingPrior().fit(sim.split).rate_ == sim.split.supervised_train()[1].mean()
    assert all(isinstance(f(LATENT, 0), ResponseMethod) for f in RESPONSE_BASELINES.values())


def test_penalty_is_chosen_by_validation_auroc_on_training_fits() -> None:
    sim = simulate("untreated", seed=2, noise=1.5)
    sp = sim.split
    x, y, _ = sp.supervised_train()
    val = [roc_auc_score(sp.y_val, make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
                         .fit(x, y).predict_proba(sp.x_val)[:, 1]) for c in C_GRID]
    m = LogisticL2("x1").fit(sp)
    assert m.param_ == C_GRID[int(np.argmax(val))]
    # the test rows play no part: replacing them changes no fitted coefficient
    other = simulate("untreated", seed=2, noise=1.5)
    assert np.array_equal(other.split.x_val, sp.x_val)
    coef = m.model_[-1].coef_
    sp2 = type(sp)(sp.x1_pairs, sp.x2_pairs, sp.r_pairs, sp.xs_train, sp.r_train, sp.x_val, sp.r_val,
                   -sp.x_test, -sp.r_test, rule=sp.rule)
    np.testing.assert_array_equal(LogisticL2("x1").fit(sp2).model_[-1].coef_, coef)


def test_svm_probabilities_keep_the_svm_ranking() -> None:
    sim = simulate("untreated", seed=4, noise=1.0)
    m = LinearSVM("x1").fit(sim.split)
    d = m.model_.decision_function(sim.split.x_test)
    p = m.predict_proba(sim.split.x_test)
    assert m.platt_[0] > 0 and ((p > 0) & (p < 1)).all()
    assert roc_auc_score(sim.split.y_test, p) == roc_auc_score(sim.split.y_test, d)


@pytest.mark.parametrize("genes", [200, 8])
def test_the_svm_is_liblinears_own_in_fewer_coordinates(genes: int) -> None:
    """More genes than training rows: each C's SVM, fitted in the row space of the training [X, 1], gives
    the decision values of LinearSVC on the standardized profiles (the same objective and dual iterates);
    fewer genes than rows: LinearSVC itself."""
    from sklearn.svm import LinearSVC

    sp = simulate("null", seed=5, genes=genes, n_pairs=40, n_single=160).split
    x, y, _ = sp.supervised_train()
    assert (x.shape[0] < x.shape[1]) == (genes == 200)
    svm = LinearSVM("x1", seed=3)
    for c, model in zip(C_GRID, svm._fit_grid(x, y), strict=True):
        plain = make_pipeline(StandardScaler(), LinearSVC(C=c, max_iter=20000, random_state=3)).fit(x, y)
        want = plain.decision_function(sp.x_test)
        got = model.decision_function(sp.x_test)
        np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max(), err_msg=f"C={c}")
        assert ("rows" in model.named_steps) == (genes == 200)


def test_pca_features_fit_on_training_profiles_only() -> None:
    sp = simulate("untreated", seed=5).split
    f = FeatureMap("pca", latent=LATENT).fit(sp)
    ref = fit_pca(sp.untreated_train(), LATENT)
    np.testing.assert_allclose(f.transform(sp.x_test), ref.encode(sp.x_test))
    assert f.transform(sp.x_test).shape == (len(sp.x_test), LATENT)
    with pytest.raises(ValueError, match="positive latent"):
        FeatureMap("pca")
    with pytest.raises(ValueError, match="'x1', 'pca' or a callable"):
        FeatureMap("umap")


def test_encoder_features_from_a_fitted_pertvae() -> None:
    sim = simulate("effect", seed=6)
    sp = sim.split
    n = len(sp.x1_pairs)
    pv = SplitData(sp.x1_pairs[: n - 8], sp.x2_pairs[: n - 8], sp.x1_pairs[n - 8:], sp.x2_pairs[n - 8:],
                   sp.x_test, sp.x_test, sp.xs_train)
    cfg = FitConfig(latent=LATENT, hidden=(16, 8), context=4, iaf_hidden=8, batch_pairs=8, max_epochs=3)
    state = fit([pv], cfg, [0])
    feats = {k: pertvae_latents(state, 0, k) for k in ("z1", "z2", "z1_dz")}
    z1, z2, z12 = (feats[k](sp.x_test) for k in ("z1", "z2", "z1_dz"))
    assert z1.shape == z2.shape == (len(sp.x_test), LATENT) and z12.shape == (len(sp.x_test), 2 * LATENT)
    np.testing.assert_allclose(z12, np.hstack([z1, z2 - z1]), rtol=1e-6, atol=1e-6)
    row = evaluate_response_methods([sp], encoder_baselines({"pertvae_z1_dz": feats["z1_dz"]}))[0]
    assert row["status"] == "done", row["reason"]
    assert set(row["scores"]) == {"logreg_pertvae_z1_dz", "rf_pertvae_z1_dz", "svm_pertvae_z1_dz"}
    with pytest.raises(ValueError, match="kind"):
        pertvae_latents(state, 0, "z3")


def test_a_failing_method_fails_its_row_with_the_reason() -> None:
    sp = simulate("untreated", seed=7).split

    def bad(x1: np.ndarray) -> np.ndarray:
        return np.full((len(x1), 2), np.nan)

    row = evaluate_response_methods([sp], {"prior": TrainingPrior,
                                           **encoder_baselines({"broken": bad})})[0]
    assert row["status"] == "failed" and "logreg_broken: ValueError" in row["reason"]
    assert row["scores"]["prior"]["auroc"] == 0.5
