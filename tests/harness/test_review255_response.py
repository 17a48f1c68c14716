"""response.md's tests and intervals count a repeated test set once and take the response splits' own
test/train ratio (validation excluded), as the perturbation report does (pertvae_core.stats)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from harness import response_report as rr

SETS = [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]   # a drug in as many labelled cell lines as folds: 2 x 5 splits
SIZES = [3.0, 1.0]                          # 3 labelled training cell lines, 1 tested; 1 validates


def _wide() -> pd.DataFrame:
    """Dr.VAE and logistic L2 on x1, AUROC and its chance, on 10 splits that are 5 test sets twice."""
    rng = np.random.default_rng(1)
    rows = []
    for split in range(10):
        for m in ("drvae", "logreg_x1"):
            rows += [("dA", 4, split // 5, split % 5, "auroc", m, float(rng.uniform(0.5, 0.9))),
                     ("dA", 4, split // 5, split % 5, "auroc_chance", m, 0.5)]
    df = pd.DataFrame(rows, columns=["drug", "latent", "repeat", "fold", "metric", "method", "value"])
    return df.pivot_table(index=["drug", "latent", "repeat", "fold"], columns=["metric", "method"],
                          values="value", aggfunc="first")


def _table(monkeypatch, wide: pd.DataFrame) -> pd.DataFrame:
    """response.csv's table of ``wide``'s scores, on a store whose drug dA has SETS and SIZES."""
    monkeypatch.setattr(rr, "_wide", lambda ds: wide)
    monkeypatch.setattr(rr, "has_response", lambda ds: True)
    ds = xr.Dataset(coords={"method": ["drvae"]},
                    attrs={"n_folds": 5, "response_test_sets": json.dumps({"dA": SETS}),
                           "response_n_train_test": json.dumps({"dA": SIZES})})
    return rr.response_table(ds)


def test_repeated_response_test_sets_count_once(monkeypatch) -> None:
    """The response report took every split as a test set and the ratio 1/(k - 1): 10 splits that test 5
    cell lines twice had a t on 9 degrees of freedom with ratio 0.25, where the perturbation report's
    tests take 4 and the splits' n_test/n_train (here 1/3)."""
    wide = _wide()
    table = _table(monkeypatch, wide)
    row = table[(table["metric"] == "auroc") & (table["method"] == "logreg_x1")].iloc[0]
    v = wide[("auroc", "logreg_x1")].to_numpy(float)
    d = v - 0.5
    se = np.sqrt((1 / 10 + 1 / 3) * d.var(ddof=1))
    assert row["p_chance"] == pytest.approx(stats.t.sf(d.mean() / se, 4), rel=1e-9)
    half = stats.t.ppf(0.975, 4) * se
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((d.mean() + 0.5 - half,
                                                             min(d.mean() + 0.5 + half, 1.0)), rel=1e-9)
    assert (row["n_splits"], row["n_test_sets"], row["paired_test_sets"]) == (10, 5, 5)
    assert row["test_train_ratio"] == pytest.approx(1 / 3)
    md = rr.response_markdown(table)
    assert "Power: with 10 splits (5 distinct test sets) of 5-fold CV" in md
    assert "dA (10 splits, 5 distinct test sets) have the degrees of freedom" in md
    assert "validation excluded, 0.333 (response.csv's test_train_ratio)" in md


def test_a_run_records_its_response_splits_test_sets(tmp_path) -> None:
    """A drug in 5 cell lines, each with a baseline profile and a response, at 2 x 5 folds: every repeat
    tests the same 5 cell lines again. The run records so (store attrs) and response.csv's tests use it."""
    from datasets.cube import write_cube
    from datasets.synthetic import generate
    from harness.report import load, open_results
    from harness.run import main

    cube = generate("demo", seed=0, n_genes=30, max_cells=5, min_cells=5, pool_size=5, n_baseline=5,
                    baseline_overlap=1.0, responses={"olaparib": "baseline"})
    write_cube(cube, tmp_path / "cube.zarr")
    out = tmp_path / "out"
    assert main(["--preset", "drvae-demo", "--data", str(tmp_path / "cube.zarr"), "--out", str(out),
                 "--drugs", "olaparib", "--models", "response_regression", "--n-repeats", "2",
                 "--cluster", "none", "--no-progress"]) == 0
    attrs = open_results(out).attrs
    sets = json.loads(attrs["response_test_sets"])["olaparib"]
    assert sorted(sets[0]) == sorted(sets[1]) == [0, 1, 2, 3, 4]
    # 5 cell lines: 1 tested, 1 validates, 3 trained on, in every split
    assert json.loads(attrs["response_n_train_test"]) == {"olaparib": [3.0, 1.0]}
    response = load(out).response
    rmse = response[response["metric"] == "rmse"]
    assert set(rmse["n_splits"]) == {10} and set(rmse["n_test_sets"]) == {5}
    assert np.allclose(rmse["test_train_ratio"], 1 / 3)


def test_the_penalty_words_say_what_a_one_class_validation_fold_gets() -> None:
    """Where a split's validation cell lines are all one class (the review's rare-sensitive tipifarnib: 4 of
    5 splits) logistic regression and the SVM keep C = 1, while every legend said 'its penalty chosen on the
    validation cell lines'."""
    from harness.contenders import contender
    from pertvae_core.response_baselines import LinearSVM, LogisticL2
    from pertvae_core.response_data import ResponseSplit
    from tests.pertvae_core.response_sim import simulate

    sp = simulate("untreated", seed=3).split
    resistant = sp.r_val < np.median(sp.r_train[np.isfinite(sp.r_train)])
    one_class = ResponseSplit(sp.x1_pairs, sp.x2_pairs, sp.r_pairs, sp.xs_train, sp.r_train,
                              sp.x_val[resistant], sp.r_val[resistant], sp.x_test, sp.r_test, rule=sp.rule)
    assert set(one_class.y_val) == {0}
    assert LogisticL2().fit(one_class).param_ == 1.0 and LinearSVM().fit(one_class).param_ == 1.0
    for model, method in (("response_baselines", "logreg_x1"), ("response_baselines", "svm_pca"),
                          ("response_pertvae", "logreg_pertvae_z1")):
        assert "C = 1 on a split whose validation cell lines are all of one class" in \
            contender(model).method_legends[method]


def test_the_docs_state_where_dr_vae_differs_from_its_authors() -> None:
    """docs/drug_response.md said nothing of where the harness's Dr.VAE differs from the authors' (their
    classification weight chosen on validation from {1, 3, 5, 10}: every fit here uses 10; early stopping,
    validation, baselines, metrics), and DrVAEConfig said 'the caller's grid chooses' where none does.
    The section's numbers are the code's."""
    from pathlib import Path

    from harness.config import RunConfig, make_config
    from harness.contenders.drvae import drvae_config
    from harness.contenders.response_splits import CONTINUOUS_METRICS, RESPONSE_METRICS
    from pertvae_core.drvae import DrVAEConfig
    from pertvae_core.response_baselines import RESPONSE_BASELINES

    doc = (Path(__file__).parents[2] / "docs" / "drug_response.md").read_text()
    section = doc.split("## Where it differs from the authors' Dr.VAE", 1)[1].split("\n## ", 1)[0]
    text = " ".join(section.split())
    cfg = make_config(preset="drvae")
    dv = drvae_config(cfg, 50)
    assert "Classification weight**: fixed at 10 for every fit" in text and dv.y_rate == 10
    assert "the perturbation term weighted 0.05" in text and dv.pert_rate == 0.05
    assert "weight decay 0.05" in text and dv.weight_decay == 0.05
    assert "lr 5e-4, at most 300 epochs" in text and (dv.lr, dv.max_epochs) == (5e-4, 300)
    assert "patience from the run (20 in `drvae`)" in text and dv.patience == 20
    assert "a fixed s.d. of 0.3" in text and dv.y_sigma == 0.3
    assert "20% of each split's non-test cell lines" in text and RunConfig().val_fraction == 0.2
    assert "no RBF SVM" in text and not [m for m in RESPONSE_BASELINES if "rbf" in m]
    assert "(no accuracy)" in text and "(no R²)" in text
    assert not {"accuracy", "r2"} & set(RESPONSE_METRICS + CONTINUOUS_METRICS)
    assert "caller's grid chooses" not in (DrVAEConfig.__doc__ or "")


def test_the_legend_gives_the_sign_tests_p_by_distinct_test_sets(monkeypatch) -> None:
    """Where every split differs from chance alike the p is 2^-G for G distinct test sets
    (pertvae_core.stats.corrected_t_greater): 10 splits that are 5 test sets give 2^-5, not the legend's
    '2^-n for n splits' (2^-10)."""
    wide = _wide()
    wide[("auroc", "logreg_x1")] = 0.75
    table = _table(monkeypatch, wide)
    row = table[(table["metric"] == "auroc") & (table["method"] == "logreg_x1")].iloc[0]
    assert row["p_chance"] == 2.0**-5
    assert "the exact sign test's 2^-n for n distinct test sets" in rr.response_markdown(table)


def _rmse_only(monkeypatch) -> xr.Dataset:
    """A store whose continuous head has RMSE only: 5 test sets of one cell line (Pearson undefined)."""
    rng = np.random.default_rng(2)
    rows = []
    for split in range(5):
        for m in ("drvae_continuous", "ridge_x1", "drug_mean"):
            chance = 1.0 + 0.1 * split
            value = chance if m == "drug_mean" else float(rng.normal(chance, 0.05))
            rows += [("dA", 4, 0, split, "rmse", m, value), ("dA", 4, 0, split, "rmse_chance", m, chance)]
    df = pd.DataFrame(rows, columns=["drug", "latent", "repeat", "fold", "metric", "method", "value"])
    wide = df.pivot_table(index=["drug", "latent", "repeat", "fold"], columns=["metric", "method"],
                          values="value", aggfunc="first")
    monkeypatch.setattr(rr, "_wide", lambda ds: wide)
    monkeypatch.setattr(rr, "has_response", lambda ds: True)
    return xr.Dataset(coords={"method": ["drvae"]}, attrs={"n_folds": 5})


def test_a_summary_whose_heads_first_metric_has_no_score_uses_the_next(monkeypatch) -> None:
    """Test sets of one cell line (a drug in 5 cell lines at 5 folds) leave Pearson and Spearman undefined:
    the summary read 'below, , and another metric (RMSE) only where Dr.VAE loses on it:' and gave no line,
    though response.md had RMSE's verdicts; then it said 'below, RMSE' and not why Pearson was missing."""
    lines = rr.summary_lines(_rmse_only(monkeypatch))
    assert lines[0] == ("Drug response (response.md has every metric; below, RMSE; no Pearson or Spearman: a "
                        "correlation needs two or more test cell lines whose responses differ):")
    assert len(lines) == 2 and lines[1].startswith("  dA: Dr.VAE (continuous head) ")
    assert "(RMSE)" in lines[1]


def test_response_md_shows_a_head_whose_first_metric_has_no_score(monkeypatch) -> None:
    """response.md showed a drug's continuous head only where Pearson had rows: with RMSE alone its section
    was a bare heading, while the summary sent the reader there for every metric."""
    md = rr.response_markdown(rr.response_table(_rmse_only(monkeypatch)))
    section = md.split("## dA (latent 4, 5 splits)", 1)[1].split("Legend:", 1)[0]
    assert "| method | features | RMSE mean [95% CI] |" in section
    assert ("has no Pearson or Spearman (a correlation needs two or more test cell lines whose responses "
            "differ).") in section
    assert "\ndA: Dr.VAE (continuous head) " in section and "(RMSE)" in section


def test_a_mean_on_one_test_set_says_why_it_has_no_interval(monkeypatch) -> None:
    """Two splits of one drug that test the same cell lines (the others failed): response.md printed
    '0.281 [nan, nan]'."""
    rows = [("dA", 4, r, 0, metric, m, value) for r in range(2) for m in ("ridge_x1", "drug_mean")
            for metric, value in (("rmse", 1.0 + 0.1 * r), ("rmse_chance", 1.2))]
    df = pd.DataFrame(rows, columns=["drug", "latent", "repeat", "fold", "metric", "method", "value"])
    wide = df.pivot_table(index=["drug", "latent", "repeat", "fold"], columns=["metric", "method"],
                          values="value", aggfunc="first")
    monkeypatch.setattr(rr, "_wide", lambda ds: wide)
    monkeypatch.setattr(rr, "has_response", lambda ds: True)
    ds = xr.Dataset(coords={"method": ["drug_mean"]},
                    attrs={"n_folds": 5, "response_test_sets": json.dumps({"dA": [[0], [0]]})})
    md = rr.response_markdown(rr.response_table(ds))
    assert "nan" not in md
    assert "| ridge | x1 | 1.050 (no interval: one test set) |" in md
