"""Dr.VAE and the response baselines through the CLI on a small synthetic cube with known response kinds:
the store holds every method's AUROC/AUPR, each equal to scikit-learn's on the same fitted method and split;
the response splits are grouped by cell line; a run without them keeps the perturbation metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, mean_squared_error, roc_auc_score

from harness.config import make_config, parse_args, science_key
from harness.contenders import BUILT_IN, contender, run_metrics
from harness.contenders.response_splits import CONTINUOUS_METRICS, response_splits
from harness.products import LEAD
from harness.report import load as report_load
from harness.response_report import _q
from harness.results import json_attr
from harness.run import main
from harness.shapes import run_splits
from harness.tasks import cube_of, drug_data
from pertvae_core.evaluation import METRICS, RHO_REC
from pertvae_core.response_baselines import RESPONSE_BASELINES
from pertvae_core.response_labels import waterfall_threshold
from tests.e2e import load
from tests.harness.test_cost import _dry

pytestmark = pytest.mark.timeout(400)

BASELINE_DRUG, NULL_DRUG = "olaparib", "tipifarnib"   # response kinds "baseline" and "none"


def write_response_cube(path: Path, responses: dict[str, str]) -> Path:
    """A small synthetic cube (60 genes, 160 unpaired cell lines) with these drugs' response kinds."""
    from datasets.cube import write_cube
    from datasets.synthetic import generate

    write_cube(generate("demo", seed=0, n_genes=60, max_cells=15, n_baseline=160, responses=responses), path)
    return path


@pytest.fixture(scope="module")
def response_cube(tmp_path_factory) -> Path:
    return write_response_cube(Path(tmp_path_factory.mktemp("drvae")) / "cube.zarr",
                               {BASELINE_DRUG: "baseline"})


def _args(cube: Path, out: Path) -> list[str]:
    return ["--data", str(cube), "--out", str(out), "--cluster", "none", "--no-progress",
            "--models", "drvae", "response_baselines", "response_pertvae",
            "--drugs", BASELINE_DRUG, NULL_DRUG,
            "--latents-drvae", "4", "--latents-response-baselines", "4", "--latents-response-pertvae", "4",
            "--n-repeats", "2", "--n-folds", "5",
            "--hidden", "16", "8", "--context", "8", "--iaf-steps", "1", "--iaf-hidden", "8",
            "--max-epochs", "8", "--patience", "3", "--mc-samples", "2", "--batch-pairs", "16",
            "--batch-singletons", "32", "--lr", "3e-3"]


@pytest.fixture(scope="module")
def run(response_cube, tmp_path_factory):
    out = Path(tmp_path_factory.mktemp("drvae_run")) / "out"
    assert main(_args(response_cube, out)) == 0
    return out, load(out)


def test_a_run_without_response_models_keeps_the_perturbation_metrics():
    assert run_metrics(BUILT_IN) == (*METRICS, RHO_REC)   # and Figure 2's reconstruction metric, last
    assert run_metrics(["drvae"]) == ("auroc", "auroc_chance", "aupr", "aupr_chance")


def test_response_splits_are_grouped_by_cell_line(response_cube, tmp_path):
    cfg = parse_args(_args(response_cube, tmp_path / "x"))
    dd = drug_data(str(response_cube), BASELINE_DRUG, cfg)
    keys = [(r, f) for r in range(cfg.n_repeats) for f in range(cfg.n_folds)]
    splits = response_splits(dd, cube_of(str(response_cube)), keys, cfg)
    for r in range(cfg.n_repeats):
        tested = [set(sp.cl_test) for (rep, _), sp in zip(keys, splits, strict=True) if rep == r]
        assert sum(len(t) for t in tested) == len(set().union(*tested))   # each cell line tested once
        for sp in splits[r * cfg.n_folds:(r + 1) * cfg.n_folds]:
            train = set(sp.cl_pairs) | set(sp.cl_train)
            assert not (train & set(sp.cl_test)) and not (train & set(sp.cl_val))
            assert not set(sp.cl_val) & set(sp.cl_test)
    pcl = np.asarray(dd.pair_cell_line).astype(str)
    for key, sp, pairs in zip(keys, splits, run_splits(sorted(set(pcl)), dd.drug, cfg), strict=True):
        assert key == (pairs.repeat, pairs.fold)      # the pairs' folds are the perturbation benchmark's
        val_pairs = np.isin(pcl, list(pairs.val_cell_lines))            # what PertVAE's features stop on
        assert val_pairs.any() and not set(pairs.val_cell_lines) & (set(sp.cl_test) | set(sp.cl_pairs))
        np.testing.assert_array_equal(sp.x1_val_pairs, np.asarray(dd.x1, np.float32)[val_pairs])
    paired = {str(c) for c in dd.pair_cell_line}
    tested_paired = [len(set(sp.cl_test) & paired) for sp in splits[:cfg.n_folds]]
    assert max(tested_paired) - min(tested_paired) <= 3          # pair cell lines spread across folds


def test_the_store_holds_every_response_method_scored_as_sklearn_does(run, response_cube):
    out, ds = run
    assert list(ds.metric.values) == list(run_metrics(["drvae", "response_baselines"]))
    assert (ds.status.values == "done").all()
    for model, methods in (("drvae", ("drvae", "drvae_identity")),
                           ("response_baselines", tuple(RESPONSE_BASELINES)[:7]),
                           ("response_pertvae", contender("response_pertvae").methods)):
        for m in methods:
            v = ds.score.sel({"model": model, "method": m, "latent": 4, "metric": "auroc"}).values
            assert np.isfinite(v).all(), (model, m)
    # logistic regression on x1, split 3 of the baseline-kind drug, refitted and scored by scikit-learn
    cfg = parse_args(_args(response_cube, out))
    dd = drug_data(str(response_cube), BASELINE_DRUG, cfg)
    sp = response_splits(dd, cube_of(str(response_cube)), [(0, 3)], cfg)[0]
    from harness.grid import FitKey, fit_seed

    seed = fit_seed(cfg.base_seed, FitKey("response_baselines", BASELINE_DRUG, 4, 0, 3)) % 2**32
    p = RESPONSE_BASELINES["logreg_x1"](4, seed).fit(sp).predict_proba(sp.x_test)
    got = ds.score.sel({"model": "response_baselines", "method": "logreg_x1", "drug": BASELINE_DRUG,
                        "latent": 4, "split": 3})
    assert got.sel(metric="auroc").item() == pytest.approx(roc_auc_score(sp.y_test, p), abs=1e-12)
    assert got.sel(metric="aupr").item() == pytest.approx(average_precision_score(sp.y_test, p), abs=1e-12)
    n, npos, h = len(sp.y_test), sp.y_test.sum(), np.sum(1.0 / np.arange(1, len(sp.y_test) + 1))
    chance = (h + (npos - 1) * (n - h) / (n - 1)) / n   # a random ranking's expected AP
    assert got.sel(metric="aupr_chance").item() == pytest.approx(chance, abs=1e-12)


def test_the_response_kinds_are_recovered(run):
    _, ds = run
    auroc = ds.score.sel(model="response_baselines", latent=4, metric="auroc")
    base = auroc.sel({"drug": BASELINE_DRUG, "method": "logreg_x1"}).values
    assert stats.ttest_1samp(base, 0.5, alternative="greater").pvalue < 0.01   # driven by the untreated state
    prior = auroc.sel({"method": "prior"}).values
    assert np.allclose(prior, 0.5)


def test_the_report_says_which_methods_beat_chance_and_dr_vaes_verdicts(run):
    out, ds = run
    assert (out / "response.md").exists()
    table = pd.read_csv(out / "response.csv")
    au = table[table["metric"] == "auroc"]
    # the splits each method is ahead of Dr.VAE on, counted here from the store's scores
    score = ds.score.sel(drug=BASELINE_DRUG, latent=4, metric="auroc")
    drvae = score.sel({"model": "drvae", "method": "drvae"}).values
    for m in ("logreg_x1", "prior"):
        own = score.sel({"model": "response_baselines", "method": m}).values
        row = au[(au["drug"] == BASELINE_DRUG) & (au["method"] == m)].iloc[0]
        assert (row["splits_ahead_of_drvae"], row["n_paired"]) == (np.sum(own > drvae), 10)
    # each mean's interval: the corrected t's (the response splits' labelled test/train cell lines, as
    # recorded), as the chance test's variance
    k = int(ds.attrs["n_folds"])
    n_train, n_test = json_attr(ds, "response_n_train_test")[BASELINE_DRUG]
    row = au[(au["drug"] == BASELINE_DRUG) & (au["method"] == "drvae")].iloc[0]
    assert row["test_train_ratio"] == pytest.approx(n_test / n_train, rel=1e-5) and n_train < 160 * 4 / 5
    half = stats.t.ppf(0.975, 9) * np.sqrt((1 / 10 + n_test / n_train) * drvae.var(ddof=1))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((max(drvae.mean() - half, 0),
                                                             min(drvae.mean() + half, 1)), abs=1e-5)
    # the training prior's AUROC is 0.5 on every split: Dr.VAE against it is Dr.VAE's chance test, one q
    prior = au[au["method"] == "prior"].set_index("drug")
    own = au[au["method"] == "drvae"].set_index("drug")
    assert (prior["verdict_family"] == "chance").all()
    np.testing.assert_allclose(prior["q_better"], own.loc[prior.index, "q_chance"], rtol=1e-5)
    # what 10 splits can show, by scipy: the corrected t's threshold and BH's over the verdict family
    sds = stats.t.ppf(0.95, 9) * np.sqrt(1 / 10 + au["test_train_ratio"].max())
    family = 2 * int((au["verdict_family"] == "versus").sum())
    assert (f"Power: with 10 splits of {k}-fold CV the corrected t-test behind the verdicts needs a mean "
            f"difference of at least {sds:.2f} standard deviations of the per-split differences for "
            f"p < 0.05, and after Benjamini-Hochberg over up to {family} comparisons of a verdict family a "
            f"lone call needs p < {0.05 / family:.2g}.") in (out / "response.md").read_text()
    null = au[au["drug"] == NULL_DRUG]
    assert len(null) == 18 and not (null["q_chance"] < 0.05).any()       # a null drug: nothing above chance
    base = au[(au["drug"] == BASELINE_DRUG)].set_index("method")
    assert base.loc["logreg_x1", "q_chance"] < 0.05 and base.loc["logreg_x1", "mean"] > 0.5
    assert set(base["verdict"].dropna()) <= {"beats", "loses to", "not distinguishable from"}
    md = (out / "response.md").read_text()
    assert f"## {NULL_DRUG} (latent 4, 10 splits)" in md and "Dr.VAE (identity perturbation)" in md
    assert f"\n{LEAD}: fp32 in " in md   # Dr.VAE's fits and the response PertVAE's
    # verdicts in plain words; the code names (for --models and response.csv) in the legend
    verdicts = [line for line in md.splitlines() if line.startswith(f"{BASELINE_DRUG}: Dr.VAE ")]
    assert len(verdicts) == 1 and "| logistic L2 | x1 |" in md
    assert not any(code in verdicts[0] for code in ("logreg_", "rf_", "svm_", "drvae_identity"))
    assert "methods" in verdicts[0]   # 17 methods compared: counted, not listed (response_report.listed)
    legend = md.splitlines()[-1]
    assert legend.startswith("Models (`--models`)") and "logistic L2 on x1: `logreg_x1`" in legend
    assert "`response_pertvae` (" in legend and "`drvae_continuous`" not in legend   # not in this run
    assert "| linear SVM | PertVAE [z1, z2 − z1] |" in md
    loaded = report_load(out).response      # the same table as a DataFrame (harness.report.load)
    pd.testing.assert_frame_equal(loaded[["drug", "method", "metric"]].reset_index(drop=True),
                                  table[["drug", "method", "metric"]].reset_index(drop=True))
    np.testing.assert_allclose(loaded["mean"].to_numpy(float), table["mean"].to_numpy(float), rtol=1e-5)
    summary = (out / "summary.txt").read_text()   # a response-only run: its verdicts, no "no scores"
    assert "No scores in this run" not in summary
    assert summary.startswith("Drug response (response.md has every metric; ")
    files = summary.split("Files in")[1]
    assert f"  {NULL_DRUG}" in summary and "response.md" in files and "response.csv" in files


def test_a_response_only_run_writes_and_stores_only_what_it_has(run):
    """No perturbation method in the store, no perturbation report (benchmark, Table 1, figures, tidy
    csvs) in OUT, and a summary that says why."""
    from harness.contenders import contender
    from harness.report import RESPONSE_ONLY

    out, ds = run
    models = ("drvae", "response_baselines", "response_pertvae")
    want = [m for name in models for m in contender(name).methods]
    assert [str(m) for m in ds["method"].values] == want
    summary = (out / "summary.txt").read_text()
    assert RESPONSE_ONLY in summary
    for name in ("benchmark.md", "drugs.png", "forest.png", "table1.md", "table1.csv", "table1.tex",
                 "figure2.png", "scores.csv", "comparisons.csv", "genes.csv"):
        assert not (out / name).exists() and name not in summary, name
    assert (out / "response.csv").exists() and (out / "response.md").exists()


def test_a_verdict_can_say_loses():
    df = pd.DataFrame({"drug": "olaparib", "latent": [4, 4, 4], "metric": ["auroc"] * 3,
                       "method": ["logreg_x1", "rf_x1", "svm_x1"], "p_chance": [0.5, 0.5, 0.5],
                       "p_chance_worse": 0.5, "at_chance": False,
                       "p_better": [1e-6, 0.5, 0.9999], "p_worse": [0.9999, 0.5, 1e-6]})
    assert list(_q(df)["verdict"]) == ["beats", "not distinguishable from", "loses to"]


def test_the_dry_run_estimates_the_drvae_preset(response_cube, tmp_path, capsys):
    cfg = make_config("drvae", data=str(response_cube), drugs=(BASELINE_DRUG,), n_repeats=1,
                      hidden=(16, 8), context=8, iaf_hidden=8, out=str(tmp_path / "dry"), dry_run=True)
    assert _dry(cfg, capsys) == 0
    text = capsys.readouterr().out
    assert ("grid: 17 tasks, 25 fits (drvae 5, response_baselines 5, response_pertvae 5, drvae_continuous 5, "
            "response_regression 5)") in text      # the preset runs both heads
    table = text.split("\n\n")[1].splitlines()       # the latent column lines up under the longest name
    end = table[0].index("latent") + len("latent")
    assert len(table) == 7 and all(line[:end].endswith(" 50") for line in table[1:-1]), table
    assert table[-1].startswith("(s/fit and total: a worker's CPU seconds")
    assert "early stopping of drvae after 90 of 300 epochs" in text and "CPU-hours; wall time" in text
    assert not (tmp_path / "dry").exists()


@pytest.fixture(scope="module")
def continuous_run(response_cube, tmp_path_factory):
    """A run of the continuous head alone: Dr.VAE's continuous head, ridge on x1 and the drug mean."""
    out = Path(tmp_path_factory.mktemp("drvae_continuous")) / "out"
    args = _args(response_cube, out)
    at = args.index("--models")
    args[at + 1:at + 4] = ["drvae_continuous", "response_regression"]
    args += ["--latents-drvae-continuous", "4", "--latents-response-regression", "4"]
    assert main(args) == 0
    return out, load(out), args


def test_the_continuous_head_is_scored_as_scipy_and_sklearn_do(continuous_run, response_cube):
    out, ds, args = continuous_run
    assert list(ds.metric.values) == list(CONTINUOUS_METRICS) and (ds.status.values == "done").all()
    for model, methods in (("drvae_continuous", ("drvae_continuous", "drvae_continuous_identity")),
                           ("response_regression", ("ridge_x1",))):
        for m in methods:
            v = ds.score.sel({"model": model, "method": m, "latent": 4, "metric": "pearson"}).values
            assert np.isfinite(v).all(), (model, m)
    cfg = parse_args(args)
    sp = response_splits(drug_data(str(response_cube), BASELINE_DRUG, cfg), cube_of(str(response_cube)),
                         [(0, 3)], cfg)[0]
    pred = RESPONSE_BASELINES["ridge_x1"](4, 0).fit(sp).predict(sp.x_test)
    got = ds.score.sel({"model": "response_regression", "drug": BASELINE_DRUG, "latent": 4, "split": 3})
    ridge = got.sel({"method": "ridge_x1"})     # (method= is sel's own keyword)
    assert ridge.sel(metric="pearson").item() == pytest.approx(stats.pearsonr(sp.r_test, pred)[0], abs=1e-9)
    assert ridge.sel(metric="spearman").item() == pytest.approx(stats.spearmanr(sp.r_test, pred)[0], abs=1e-9)
    assert ridge.sel(metric="rmse").item() == pytest.approx(
        np.sqrt(mean_squared_error(sp.r_test, pred)), abs=1e-9)
    train_r = np.concatenate([sp.r_pairs, sp.r_train])    # one response per training cell line
    train_mean = pd.Series(train_r, index=np.concatenate([sp.cl_pairs, sp.cl_train])).dropna()
    train_mean = train_mean[~train_mean.index.duplicated()].mean()
    chance = np.sqrt(mean_squared_error(sp.r_test, np.full(len(sp.r_test), train_mean)))
    mean_row = got.sel({"method": "drug_mean"})
    assert ridge.sel(metric="rmse_chance").item() == pytest.approx(chance, abs=1e-9)
    assert mean_row.sel(metric="rmse").item() == pytest.approx(chance, abs=1e-9)
    assert mean_row.sel(metric="pearson").item() == 0.0   # a constant ranks no cell line: chance, 0
    assert ridge.sel(metric="pearson_chance").item() == 0.0


def test_the_continuous_report_says_what_beats_chance(continuous_run):
    out, _, _ = continuous_run
    table = pd.read_csv(out / "response.csv")
    assert set(table["metric"]) == {"pearson", "spearman", "rmse"}
    pe = table[table["metric"] == "pearson"].set_index(["drug", "method"])
    assert pe.loc[(BASELINE_DRUG, "ridge_x1"), "q_chance"] < 0.05          # the untreated direction
    assert not (pe.loc[NULL_DRUG, "q_chance"] < 0.05).any()               # a null drug: nothing
    assert pe.loc[(BASELINE_DRUG, "ridge_x1"), "verdict"] in {"beats", "loses to", "not distinguishable from"}
    rm = table[table["metric"] == "rmse"].set_index(["drug", "method"])
    assert rm.loc[(BASELINE_DRUG, "ridge_x1"), "mean"] < rm.loc[(BASELINE_DRUG, "ridge_x1"), "chance"]
    md = (out / "response.md").read_text()
    assert "| ridge | x1 |" in md and "RMSE mean [95% CI]" in md and "AUROC" not in md.split("Legend")[0]
    # a table per metric, each with its verdicts; the drug mean has an RMSE only (no correlation)
    section = md.split(f"## {BASELINE_DRUG}")[1].split("## ")[0]
    ridge = [line for line in section.splitlines() if line.startswith("| ridge | x1 |")]
    for line, metric in zip(ridge, ("pearson", "spearman", "rmse"), strict=True):
        got = table[(table["drug"] == BASELINE_DRUG) & (table["method"] == "ridge_x1")
                    & (table["metric"] == metric)].iloc[0]
        assert line.endswith(f"| {got['verdict']} |") and f"{got['mean']:.3f} [" in line, metric
    mean_rows = [line for line in section.splitlines() if line.startswith("| drug mean | none |")]
    verdict = rm.loc[(BASELINE_DRUG, "drug_mean"), "verdict"]     # Dr.VAE's test against chance (†)
    assert len(mean_rows) == 3 and mean_rows[2].endswith(f"| {verdict} † |")
    # a constant prediction correlates at chance, 0 (pertvae_core.response_metrics), not undefined
    assert all(r.startswith("| drug mean | none | 0.000 [0.000, 0.000] |") and r.endswith(" † |")
               for r in mean_rows[:2])
    assert "Not in a table" not in section
    summary = (out / "summary.txt").read_text()
    assert "Dr.VAE (continuous head)" in summary   # other metrics there only where Dr.VAE loses on them
    losses = table[(table["verdict"] == "loses to") & table["metric"].isin(("spearman", "rmse"))]
    for metric, word in (("spearman", "By Spearman: "), ("rmse", "By RMSE: ")):
        assert (word in summary) == (metric in set(losses["metric"])), (metric, summary)


@pytest.mark.parametrize(("flags", "why"), [
    (["--response-label", "quantile"], "field 'response_label_value' = None: the quantile rule needs a level "
                                       "in (0, 1)"),
    (["--response-label", "quantile", "--response-label-value", "1"], "field 'response_label_value' = 1.0 "
     "(--response-label-value): the quantile rule needs a level in (0, 1)"),
    (["--response-label-value", "0.3"], "field 'response_label_value' = 0.3 (--response-label-value): the "
     "waterfall rule takes no value (give --response-label quantile or fixed)"),
    (["--response-label", "quantil"], "argument --response-label: invalid choice 'quantil'; did you mean "
                                      "quantile? (choose from waterfall, quantile, fixed)"),
])
def test_a_bad_label_rule_is_one_error_line_exit_2(response_cube, tmp_path, capsys, flags, why):
    assert main(_args(response_cube, tmp_path / "out") + flags) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: {why}"] and not (tmp_path / "out").exists()


def test_the_label_rule_sets_each_splits_threshold_from_training_cell_lines(response_cube, tmp_path):
    dd = drug_data(str(response_cube), BASELINE_DRUG, parse_args(_args(response_cube, tmp_path / "x")))
    keys = [(0, f) for f in range(5)]
    for flags, expect in ((["--response-label", "quantile", "--response-label-value", "0.75"],
                           lambda r: np.quantile(r, 0.75)),
                          (["--response-label", "fixed", "--response-label-value", "0.1"], lambda r: 0.1),
                          ([], lambda r: waterfall_threshold(r)[0])):
        cfg = parse_args(_args(response_cube, tmp_path / "x") + flags)
        for sp in response_splits(dd, cube_of(str(response_cube)), keys, cfg):
            assert sp.threshold == pytest.approx(expect(sp.train_responses()), abs=1e-12), flags
            assert np.array_equal(sp.y_test, (sp.r_test >= sp.threshold).astype(float))


def test_the_label_rule_is_science_only_for_response_runs_and_recorded(response_cube, tmp_path):
    quantile = ["--response-label", "quantile", "--response-label-value", "0.6"]
    perturbation = ["--models", "pca", "--data", str(response_cube)]
    assert science_key(parse_args(perturbation)) == science_key(parse_args(perturbation + quantile))
    response = _args(response_cube, tmp_path / "out")
    assert science_key(parse_args(response))["response_label"] == "waterfall"
    assert science_key(parse_args(response + quantile))["response_label_value"] == 0.6
    at = response.index("--models")
    response[at + 1:at + 4] = ["response_regression"]     # one cheap model: the rule reaches the report
    response += ["--n-repeats", "1"]
    assert main(response + quantile) == 0
    assert json_attr(load(tmp_path / "out"), "config")["science"]["response_label"] == "quantile"
    assert "Labels (binary head): the quantile 0.6 rule" in (tmp_path / "out" / "response.md").read_text()
    assert set(pd.read_csv(tmp_path / "out" / "response.csv")["label_rule"]) == {"quantile 0.6"}


def test_the_continuous_heads_splits_need_no_two_label_classes(response_cube, tmp_path):
    """A fixed threshold above every response leaves one label class: the binary head's splits cannot be
    built, but ridge, the drug mean and Dr.VAE's continuous head do not use the labels; they failed with
    "a classifier needs both classes" and now are fitted and scored."""
    cfg = parse_args(_args(response_cube, tmp_path / "x") + ["--response-label", "fixed",
                                                              "--response-label-value", "100"])
    dd = drug_data(str(response_cube), BASELINE_DRUG, cfg)
    keys = [(0, f) for f in range(5)]
    assert all("a classifier needs both classes" in sp
               for sp in contender("response_baselines").task_data(dd, str(response_cube), keys, cfg))
    assert not [sp for sp in contender("drvae_continuous").task_data(dd, str(response_cube), keys, cfg)
                if isinstance(sp, str)]
    splits = contender("response_regression").task_data(dd, str(response_cube), keys, cfg)
    rows = contender("response_regression").run(splits, 4, list(range(5)), cfg)
    assert [r["status"] for r in rows] == ["done"] * 5
    assert all(np.isfinite(r["scores"]["ridge_x1"]["pearson"]) for r in rows)


def test_a_response_model_on_a_cube_without_a_response_is_one_error_line(tmp_path, capsys):
    """Every fit failed on the missing response (exit 3, a failures.csv); now one error line, exit 2."""
    from datasets.cube import write_cube
    from datasets.synthetic import generate

    cube = tmp_path / "cube.zarr"
    write_cube(generate("demo", seed=0, n_genes=30, max_cells=8, n_baseline=40).drop_vars("response"), cube)
    args = ["--data", str(cube), "--out", str(tmp_path / "out"), "--cluster", "none", "--no-progress",
            "--models", "response_regression", "--drugs", BASELINE_DRUG, "--n-repeats", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {cube}: the cube has no drug response")
    assert "response_regression" in err[0]
    assert not (tmp_path / "out").exists()   # made by the refused run: removed, not left holding a .lock
    (tmp_path / "out").mkdir()
    assert main(args) == 2 and [p.name for p in (tmp_path / "out").iterdir()] == [".lock"]   # the user's


def test_a_drug_without_any_response_says_so_in_each_split(response_cube, tmp_path):
    """A drug left without a response (build --response-partial) fails each split naming that, not with
    the label rule's 'needs at least 3 training responses, got 0'."""
    cfg = parse_args(_args(response_cube, tmp_path / "x"))
    dd = drug_data(str(response_cube), BASELINE_DRUG, cfg)
    cube = cube_of(str(response_cube)).load().copy(deep=True)
    cube["response"].loc[{"condition": BASELINE_DRUG}] = np.nan
    got = response_splits(dd, cube, [(0, 0), (0, 1)], cfg)
    assert got == [f"drug {BASELINE_DRUG!r}: the cube has no response for it (built with "
                   "--response-partial): nothing to train on or score"] * 2


def test_a_split_without_a_labelled_baseline_test_profile_says_why(tmp_path):
    """The test set is the held-out cell lines' baseline (untreated) profiles with a response: a cube without
    them (no baseline singletons: demo, n_baseline 0) failed every response split with 'ResponseSplit.x_test
    has no rows', naming neither the cell lines nor what was missing."""
    from datasets.cube import write_cube
    from datasets.synthetic import generate

    cube = tmp_path / "cube.zarr"
    write_cube(generate("demo", seed=0, n_genes=30, max_cells=8, n_baseline=0,
                        responses={BASELINE_DRUG: "baseline"}), cube)
    cfg = parse_args(_args(cube, tmp_path / "out"))
    dd = drug_data(str(cube), BASELINE_DRUG, cfg)
    test = run_splits(sorted(set(np.asarray(dd.pair_cell_line).astype(str))), BASELINE_DRUG, cfg)[0]
    got = response_splits(dd, cube_of(str(cube)), [(0, 0)], cfg)
    assert got == [f"drug {BASELINE_DRUG!r}: no response split: none of the split's "
                   f"{len(test.test_cell_lines)} test cell lines has a baseline profile (the cube's "
                   "'baseline' condition) with a response, and the response models are scored on those"]


def test_dr_vae_takes_the_runs_standardization_and_validation_draws():
    """DrVAEConfig has standardize and val_samples, but drvae_config passed neither: a drvae-demo run with
    --standardize pooled --val-samples 5 scored Dr.VAE exactly as without them (this review: largest
    difference 0.0 over every score), and its store was another run's."""
    from harness.contenders.drvae import drvae_config

    dc = drvae_config(make_config("drvae-demo", standardize="pooled", val_samples=5), 8, "continuous")
    assert (dc.standardize, dc.val_samples, dc.head) == ("pooled", 5, "continuous")
    assert drvae_config(make_config("drvae-demo"), 8).standardize == "per_source"
