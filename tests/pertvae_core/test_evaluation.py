"""pertvae_core.evaluation and the change metrics, each against a direct scipy/numpy reference."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from pertvae_core.api import evaluate_baselines, evaluate_methods
from pertvae_core.baselines import Identity, MeanShift, TrainMean
from pertvae_core.data import SplitData
from pertvae_core.evaluation import (
    CHANCE,
    METRICS,
    TestCells,
    ZSpace,
    score,
    score_method,
    score_method_detail,
)
from pertvae_core.metrics import (
    change_pearson_rows,
    mse_rows,
    pearson_rows,
    retrieval_rows,
    sign_agreement_top_rows,
)


def test_pearson_and_change_metrics_match_references() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 30)), rng.normal(size=(7, 30))
    b[:3] += a[:3]
    want = [stats.pearsonr(x, y).statistic for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(pearson_rows(a, b), want, atol=1e-12)
    np.testing.assert_allclose(change_pearson_rows(a, b), want, atol=1e-12)
    np.testing.assert_allclose(mse_rows(a, b), [np.mean((x - y) ** 2) for x, y in zip(a, b, strict=True)])
    for k in (1, 5, 30, 99):
        ref = []
        for x, y in zip(a, b, strict=True):
            top = np.argsort(-np.abs(y))[: min(k, 30)]
            ref.append(np.mean(np.sign(x[top]) == np.sign(y[top])))
        np.testing.assert_allclose(sign_agreement_top_rows(a, b, k), ref)


def test_no_change_scores_zero_and_nan_propagates() -> None:
    obs = np.random.default_rng(1).normal(size=(2, 20))
    flat = np.zeros((2, 20))
    flat[1] = 0.7 + 1e-9 * np.random.default_rng(2).normal(size=20)  # a constant up to float round-off
    assert change_pearson_rows(flat, obs).tolist() == [0.0, 0.0]
    assert sign_agreement_top_rows(flat[:1], obs[:1], 5).item() == 0.5  # no direction: chance, not wrong
    half = np.where(np.arange(20) % 2 == 0, 0.0, np.sign(obs[0]))       # half the genes 0, half right
    top = np.argsort(-np.abs(obs[0]))[:6]
    want = np.mean(np.where(half[top] == 0, 0.5, 1.0))
    assert sign_agreement_top_rows(half[None], obs[:1], 6).item() == pytest.approx(want)
    obs[0, 3] = np.nan
    assert np.isnan(change_pearson_rows(obs, obs)[0])
    assert np.isnan(sign_agreement_top_rows(obs, obs)[0])


def _cell_split(seed: int = 0, genes: int = 40, effect: float = 1.0, n_cells: int = 30, noise: float = 0.5,
                n_ctrl: int = 3, n_post: int = 3) -> SplitData:
    """Cell lines with a baseline profile b_c; control = b_c + noise, treated = b_c + effect * (v + W b_c) +
    noise. Test cell lines carry labels and all their controls (the cyclic pairing of datasets.pairs)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=genes)
    w = rng.normal(size=(genes, genes)) / np.sqrt(genes)
    base = rng.normal(size=genes) * 3 + 5 + rng.normal(size=(n_cells, genes))  # gene levels + cell lines
    out: dict[str, list] = {k: [] for k in ("x1", "x2", "cl", "xc", "xccl")}
    for c in range(n_cells):
        ctrl = base[c] + noise * rng.normal(size=(n_ctrl, genes))
        change = effect * (v + (base[c] - base.mean(0)) @ w.T)
        post = base[c] + change + noise * rng.normal(size=(n_post, genes))
        out["xc"] += list(ctrl)
        out["xccl"] += [f"c{c}"] * n_ctrl
        for r in range(n_post):
            out["x1"].append(ctrl[r % n_ctrl])
            out["x2"].append(post[r])
            out["cl"].append(f"c{c}")
    x1, x2, cl = np.array(out["x1"]), np.array(out["x2"]), np.array(out["cl"])
    xc, xccl = np.array(out["xc"]), np.array(out["xccl"])
    te = np.isin(cl, [f"c{c}" for c in range(6)])
    va = np.isin(cl, [f"c{c}" for c in range(6, 10)])
    tr = ~te & ~va
    return SplitData(x1[tr], x2[tr], x1[va], x2[va], x1[te], x2[te], np.zeros((0, genes)),
                     test_cell_line=cl[te], xc_test=xc[np.isin(xccl, cl[te])],
                     xc_test_cell_line=xccl[np.isin(xccl, cl[te])])


def test_test_cells_split_controls_into_inputs_and_reference() -> None:
    sp = _cell_split(n_ctrl=3)
    cells = TestCells.from_split(sp)
    assert cells.cell_lines == tuple(f"c{c}" for c in range(6)) and cells.independent.all()
    c0 = sp.xc_test[sp.xc_test_cell_line == "c0"]
    np.testing.assert_array_equal(cells.x1[cells.x1_cell == 0], c0[:2])   # ceil(3 / 2) inputs
    np.testing.assert_allclose(cells.x1_ref[0], c0[2:].mean(0))           # the rest is the reference
    np.testing.assert_allclose(cells.x2[0], sp.x2_test[sp.test_cell_line == "c0"].mean(0))
    single = TestCells.from_split(_cell_split(n_ctrl=1))
    assert not single.independent.any()


def _linear_predictor(genes: int, seed: int, shift: float) -> Callable[[np.ndarray], np.ndarray]:
    """x1 -> x1 (I + F) + shift, F a small seeded random matrix: a fixed, non-trivial prediction."""
    f = np.random.default_rng(seed).normal(size=(genes, genes)) * 0.1

    def predict(x1: np.ndarray) -> np.ndarray:
        return x1 @ (np.eye(genes) + f) + shift

    return predict


def test_score_matches_a_direct_per_cell_line_computation() -> None:
    sp = _cell_split(seed=3)
    predict = _linear_predictor(sp.genes, seed=4, shift=0.3)
    got = score_method(sp, predict)
    assert set(got) == set(METRICS)
    x = np.concatenate([np.unique(sp.x1_train, axis=0), sp.x2_train]).astype(float)  # each profile once
    mu, sd = x.mean(0), x.std(0)
    z = lambda a: (a - mu) / sd  # noqa: E731
    m = (z(sp.x2_train) - z(sp.x1_train)).mean(0)
    rows: dict[str, list[float]] = {k: [] for k in METRICS}
    d_obs_all, d_hat_all = [], []
    for c in range(6):
        ctrl = sp.xc_test[sp.xc_test_cell_line == f"c{c}"].astype(float)
        inp, ref = ctrl[:2], ctrl[2:]
        post = sp.x2_test[sp.test_cell_line == f"c{c}"].astype(float)
        hat = predict(inp).mean(0)
        d_hat, d_obs = z(hat) - z(inp.mean(0)), z(post.mean(0)) - z(ref.mean(0))
        d_hat_all.append(d_hat)
        d_obs_all.append(d_obs)
        rows["rho_pred_pert_z"].append(stats.spearmanr(z(hat), z(post.mean(0))).statistic)
        rows["delta_pearson"].append(stats.pearsonr(d_hat, d_obs).statistic)
        rows["mse_z"].append(np.mean((z(hat) - z(post.mean(0))) ** 2))
        top = np.argsort(-np.abs(d_obs))[:40]
        rows["de_sign_top50"].append(np.mean(np.sign(d_hat[top]) == np.sign(d_obs[top])))
    obs_mean = np.mean(d_obs_all, axis=0)
    rows["delta_pearson_centered"] = [stats.pearsonr(h - m, o - obs_mean).statistic
                                      for h, o in zip(d_hat_all, d_obs_all, strict=True)]
    corr = np.array([[stats.pearsonr(h, o).statistic for o in d_obs_all] for h in d_hat_all])
    rows["retrieval"] = [(np.sum(np.delete(corr[c], c) < corr[c, c])) / 5 for c in range(6)]
    other = TestCells.from_split(sp).other
    assert sorted(other.tolist()) == list(range(6)) and (other != np.arange(6)).all()  # a derangement
    rows["delta_pearson_ablated"] = [corr[other[c], c] for c in range(6)]
    rows["rho_pred_pert"] = [stats.spearmanr(p, o).statistic
                             for p, o in zip(predict(sp.x1_test.astype(float)), sp.x2_test, strict=True)]
    for k in METRICS:
        assert got[k] == pytest.approx(np.mean(rows[k]), abs=1e-6), k  # float32 inputs


def test_constant_and_identity_predictions_score_about_zero() -> None:
    """The field's point: a constant (train_mean) is ~0 in the standardized space, identity is 0 by
    definition; both are high in the paper's raw-space Spearman."""
    vals = {name: [] for name in ("identity", "train_mean", "mean_shift")}
    for seed in range(8):
        sp = _cell_split(seed=seed, effect=0.0)
        for name, m in (("identity", Identity()), ("train_mean", TrainMean()), ("mean_shift", MeanShift())):
            vals[name].append(score_method(sp, m.fit(sp).predict))
    tm = vals["train_mean"]
    assert np.mean([v["rho_pred_pert"] for v in tm]) > 0.8           # raw space flatters a constant
    assert abs(np.mean([v["rho_pred_pert_z"] for v in tm])) < 0.1
    assert abs(np.mean([v["delta_pearson"] for v in tm])) < 0.05
    exact = [k for k in CHANCE if k != "delta_pearson_centered"]  # centered on m, identity predicts -m
    assert all(v[k] == CHANCE[k] for v in vals["identity"] for k in exact)   # no change: chance, exactly
    for v in vals["mean_shift"]:  # one change for every cell line: retrieval at chance, no gain from x1
        assert v["delta_pearson_centered"] == 0.0 and v["retrieval"] == pytest.approx(0.5, abs=1e-12)
        assert v["delta_pearson_ablated"] == pytest.approx(v["delta_pearson"], abs=1e-9)


def test_null_drug_change_scores_average_zero_for_every_baseline() -> None:
    """Known answer: with no drug effect every method's change metrics average at their chance level over
    splits, though f(x1) - x1 predictors (ridge_delta, pca_latent_linear) see x1's noise."""
    rows = []
    for seed in range(10):
        rows += evaluate_baselines([_cell_split(seed=seed, effect=0.0)], latent=5)
    assert all(r["status"] == "done" for r in rows)
    for method in rows[0]["scores"]:
        for metric, chance in CHANCE.items():
            v = np.mean([r["scores"][method][metric] for r in rows])
            # retrieval ranks 6 cell lines per split: its mean over 10 splits has a standard error of ~0.045
            assert abs(v - chance) < (0.1 if metric == "retrieval" else 0.05), (method, metric, v)


def test_without_an_independent_reference_the_noise_is_shared() -> None:
    """Why the reference controls matter: scoring f(x1) - x1 against x2 - x1 (one control per cell line)
    correlates with -noise(x1) on a null drug; with a separate reference it does not."""
    shared, separate = [], []

    def smooth(x1: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(x1, float).mean(0), np.shape(x1)).copy()  # drops x1's own noise

    for seed in range(6):
        shared.append(score_method(_cell_split(seed=seed, effect=0.0, n_ctrl=1), smooth))
        separate.append(score_method(_cell_split(seed=seed, effect=0.0, n_ctrl=4), smooth))
    assert all(math.isnan(v["delta_pearson"]) for v in shared)  # not scored: no independent reference
    assert abs(np.mean([v["delta_pearson"] for v in separate])) < 0.05


def test_a_failing_method_fails_only_its_row() -> None:
    class Broken:
        def fit(self, split: SplitData) -> Broken:
            raise ValueError("cannot fit")

        def predict(self, x1: np.ndarray) -> np.ndarray:  # pragma: no cover - never fitted
            return x1

    rows = evaluate_methods([_cell_split()], {"identity": Identity, "broken": Broken})
    assert rows[0]["status"] == "failed" and "broken: ValueError: cannot fit" in rows[0]["reason"]
    assert rows[0]["scores"]["identity"]["delta_pearson"] == 0.0


def test_score_checks_prediction_shapes() -> None:
    sp = _cell_split()
    cells = TestCells.from_split(sp)
    with pytest.raises(ValueError, match="predictions of shape"):
        score(sp, sp.x2_test[:1], cells.x1, cells)


def test_score_detail_per_cell_line_and_per_gene_match_direct_computations() -> None:
    sp = _cell_split(seed=5)
    predict = _linear_predictor(sp.genes, seed=6, shift=0.2)
    det = score_method_detail(sp, predict)
    assert det.summary == score_method(sp, predict)
    assert det.cell_lines == tuple(f"c{c}" for c in range(6))
    for k in METRICS:
        assert det.per_cell[k].shape == (6,)
        if k != "rho_pred_pert":  # the paper's is a mean over pairs, the others over cell lines
            assert det.summary[k] == pytest.approx(np.nanmean(det.per_cell[k]))
    # per cell line, the paper's rho is the mean over that cell line's pairs
    c2 = sp.test_cell_line == "c2"
    want = np.mean([stats.spearmanr(a, b).statistic for a, b in zip(predict(sp.x1_test[c2]), sp.x2_test[c2],
                                                                       strict=True)])
    assert det.per_cell["rho_pred_pert"][2] == pytest.approx(want)
    # per gene: sufficient statistics of the observed and predicted changes of the independent cell lines
    zs, cells = ZSpace.from_training(sp), TestCells.from_split(sp)
    d_obs = zs(cells.x2) - zs(cells.x1_ref)
    d_hat = zs(cells.cell_means(predict(cells.x1))) - zs(cells.cell_means(cells.x1))
    g = det.per_gene
    np.testing.assert_array_equal(g["n_cells"], 6)
    np.testing.assert_allclose(g["sum_observed"] / 6, d_obs.mean(0))
    np.testing.assert_allclose(g["sum_predicted"] / 6, d_hat.mean(0))
    cov = g["sum_cross"] - g["sum_observed"] * g["sum_predicted"] / 6
    var_o = g["sum_observed2"] - g["sum_observed"] ** 2 / 6
    var_p = g["sum_predicted2"] - g["sum_predicted"] ** 2 / 6
    r = stats.pearsonr(d_hat[:, 7], d_obs[:, 7]).statistic
    assert cov[7] / np.sqrt(var_o[7] * var_p[7]) == pytest.approx(r)
    # no independent cell line: no change metric, no per-gene statistic
    few = score_method_detail(_cell_split(seed=5, n_ctrl=1), predict)
    assert (few.per_gene["n_cells"] == 0).all() and np.isnan(few.per_cell["delta_pearson"]).all()


def test_retrieval_matches_a_direct_ranking_and_sits_at_chance_for_one_change() -> None:
    rng = np.random.default_rng(8)
    obs = rng.normal(size=(7, 30))
    pred = obs + 1.5 * rng.normal(size=obs.shape)
    corr = np.array([[stats.pearsonr(p, o).statistic for o in obs] for p in pred])
    others = [np.delete(corr[c], c) for c in range(7)]
    want = [(np.sum(o < corr[c, c]) + 0.5 * np.sum(o == corr[c, c])) / 6 for c, o in enumerate(others)]
    np.testing.assert_allclose(retrieval_rows(pred, obs), want)
    one = np.broadcast_to(rng.normal(size=30), obs.shape)
    assert retrieval_rows(one, obs).mean() == pytest.approx(0.5, abs=1e-12)   # one change for every row
    assert retrieval_rows(np.zeros_like(obs), obs).tolist() == [0.5] * 7      # no change: all ties
    assert np.isnan(retrieval_rows(pred[:1], obs[:1])).all()


def test_pearson_of_a_constant_row_is_nan_whatever_its_rounded_mean() -> None:
    """A constant row whose mean rounds (0.1 over 30 genes) gave ~1e-17, not NaN as scipy.stats.pearsonr."""
    other = np.random.default_rng(3).normal(size=(6, 30))
    flat = np.full((6, 30), 0.1) * np.array([1.0, 3.0, 1 / 3, 77.0, 1e-3, 12.345])[:, None]
    assert np.isnan(pearson_rows(flat, other)).all()
    assert np.isnan(pearson_rows(other, flat)).all()
    assert np.isnan(change_pearson_rows(other, flat)).all()   # a constant observed change: undefined
    assert change_pearson_rows(flat, other).tolist() == [0.0] * 6   # a constant prediction: no change, 0
