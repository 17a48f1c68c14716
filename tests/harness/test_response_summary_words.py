"""The drug-response summary's words against the scores: a drug is judged by a metric it has."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from harness import response_report as rr


def _wide() -> pd.DataFrame:
    """Dr.VAE's continuous head and ridge on x1 on 10 splits: dA by Pearson, Spearman and RMSE, dB by RMSE
    alone (its test sets leave the correlations undefined)."""
    rng = np.random.default_rng(1)
    rows = []
    for drug, metrics in (("dA", rr.CONTINUOUS), ("dB", ("rmse",))):
        for split in range(10):
            for m in ("drvae_continuous", "ridge_x1"):
                for k in metrics:
                    key = (drug, 4, split // 5, split % 5)
                    rows += [(*key, k, m, float(rng.uniform(0.1, 0.9))),
                             (*key, f"{k}_chance", m, 1.0 if k == "rmse" else 0.0)]
    df = pd.DataFrame(rows, columns=["drug", "latent", "repeat", "fold", "metric", "method", "value"])
    return df.pivot_table(index=["drug", "latent", "repeat", "fold"], columns=["metric", "method"],
                          values="value", aggfunc="first")


@pytest.fixture
def ds(monkeypatch: pytest.MonkeyPatch) -> xr.Dataset:
    monkeypatch.setattr(rr, "_wide", lambda ds: _wide())
    monkeypatch.setattr(rr, "has_response", lambda ds: True)
    return xr.Dataset(coords={"method": ["drvae_continuous"]}, attrs={"n_folds": 5})


def test_a_drug_without_the_heads_first_metric_is_judged_by_one_it_has(ds: xr.Dataset) -> None:
    """dB has no Pearson beside dA with it: its line read "no Dr.VAE (continuous head) comparison (Pearson):
    Dr.VAE (continuous head) has no score for this drug (not in this run, ...)" and "Above chance (Pearson,
    q < 0.05): no method" though both methods have RMSE on every split; response.md printed it so under
    Pearson and Spearman tables of dashes."""
    head, a, b = rr.summary_lines(ds)
    assert head == ("Drug response (response.md has every metric; below, Pearson (RMSE for a drug without a "
                    "comparison by Pearson), and another metric (Spearman, RMSE) only where Dr.VAE loses on "
                    "it):")
    assert a.startswith("  dA: Dr.VAE (continuous head) not distinguishable from ridge on x1 (Pearson)")
    assert b.startswith("  dB: Dr.VAE (continuous head) not distinguishable from ridge on x1 (RMSE)")
    assert "no score" not in b and "chance (RMSE, q < 0.05)" in b
    md = rr.response_markdown(rr.response_table(ds))
    section = md[md.index("## dB"):md.index("Legend")]
    assert "Pearson mean" not in section and "| RMSE mean" in section
    assert "\ndB: Dr.VAE (continuous head) not distinguishable from ridge on x1 (RMSE)" in section


def test_the_methods_better_than_chance_by_rmse_are_below_it(ds: xr.Dataset) -> None:
    """dB's line, by RMSE, read "Above chance (RMSE, q < 0.05): Dr.VAE (continuous head); ridge on x1" for
    RMSEs of 0.57 and 0.53 against the training mean's 1.0, whose table says "q below chance"."""
    table = rr.response_table(ds)
    rmse = table[(table["drug"] == "dB") & (table["metric"] == "rmse")]
    assert (rmse["mean"] < rmse["chance"]).all() and (rmse["q_chance"] < 0.05).all()
    b = rr.summary_lines(ds)[2]
    assert b.endswith(" Below chance (RMSE, q < 0.05): Dr.VAE (continuous head); ridge on x1.")
    assert "| q below chance |" in rr.response_markdown(table)


def test_a_lead_on_fewer_splits_does_not_print_a_lower_mean_as_the_highest(monkeypatch) -> None:
    """logistic L2 on x1's fits of the second repeat failed: on the 5 splits both scored it is 0.100 above
    Dr.VAE, but its mean over those 5 is below Dr.VAE's over all 10, and the line read "has the highest
    mean (0.605 against 0.689)"."""
    rng = np.random.default_rng(0)
    rows = []
    for split in range(10):
        key = ("dA", 8, split // 5, split % 5)
        drvae = (0.5 if split < 5 else 0.9) + rng.normal(0, 0.03)
        rows += [(*key, "auroc", "drvae", drvae), (*key, "auroc_chance", "drvae", 0.5)]
        if split < 5:
            rows += [(*key, "auroc", "logreg_x1", drvae + 0.1 + rng.normal(0, 0.1)),
                     (*key, "auroc_chance", "logreg_x1", 0.5)]
    df = pd.DataFrame(rows, columns=["drug", "latent", "repeat", "fold", "metric", "method", "value"])
    wide = df.pivot_table(index=["drug", "latent", "repeat", "fold"], columns=["metric", "method"],
                          values="value", aggfunc="first")
    monkeypatch.setattr(rr, "_wide", lambda ds: wide)
    monkeypatch.setattr(rr, "has_response", lambda ds: True)
    ds = xr.Dataset(coords={"method": ["drvae"]}, attrs={"n_folds": 5})
    table = rr.response_table(ds).set_index("method")
    assert table.loc["logreg_x1", "mean"] < table.loc["drvae", "mean"]
    assert table.loc["logreg_x1", "diff_vs_drvae"] < 0   # Dr.VAE - method on the splits both scored
    assert ("of those, logistic L2 on x1 has the highest mean on the splits both scored (0.100 above "
            "Dr.VAE's on 5; the table's means, 0.605 and 0.689, are over 5 and 10) and is ahead of Dr.VAE "
            "on 4 of 5 splits.") in rr.summary_lines(ds)[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, xr.Dataset]:
    """Two real runs on one drug at 1 x 5 splits: ridge on x1 alone, and ridge beside Dr.VAE's continuous
    head (its stores read back whole)."""
    from datasets.cube import write_cube
    from datasets.synthetic import generate
    from harness.report import open_results
    from harness.run import main

    tmp = tmp_path_factory.mktemp("runs")
    cube = generate("demo", seed=0, n_genes=30, max_cells=8, min_cells=8, pool_size=8, n_baseline=8,
                    baseline_overlap=1.0, responses={"olaparib": "baseline"})
    write_cube(cube, tmp / "cube.zarr")
    out = {}
    for name, models in (("ridge", ["response_regression"]),
                         ("both", ["response_regression", "drvae_continuous"])):
        assert main(["--preset", "drvae-demo", "--data", str(tmp / "cube.zarr"), "--out", str(tmp / name),
                     "--drugs", "olaparib", "--models", *models, "--n-repeats", "1", "--cluster", "none",
                     "--no-progress"]) == 0
        out[name] = open_results(tmp / name).load().assign_attrs(out_dir=str(tmp / name))
    return out


def _line(ds: xr.Dataset) -> str:
    """The summary's continuous-head line of the run's one drug."""
    return next(s for s in rr.summary_lines(ds) if "continuous head" in s)


def _status(ds: xr.Dataset, splits: dict[int, str]) -> xr.Dataset:
    """``ds`` with Dr.VAE's continuous head's fits of those splits of that status ("failed"; "": not run)."""
    ds = ds.copy(deep=True)
    for split, status in splits.items():
        ds["status"].loc[{"model": "drvae_continuous", "split": split}] = status
    return ds


def test_dr_vae_without_a_score_says_which_of_the_three(runs: dict[str, xr.Dataset], tmp_path) -> None:
    """Dr.VAE's continuous head without a score read "not in this run, or its fits failed or have not run"
    where the run's --models left it out; the store knows which: its models, and its fits' status."""
    absent = ("olaparib: no Dr.VAE (continuous head) comparison (Pearson): Dr.VAE (continuous head) is not "
              "among this run's models (--models drvae_continuous adds it).")
    assert _line(runs["ridge"]).strip().startswith(absent)
    rr.write_response_report(runs["ridge"], tmp_path)
    assert f"\n{absent}" in (tmp_path / "response.md").read_text()
    assert "comparison" not in _line(runs["both"])   # its fits done: compared
    failed = _line(_status(runs["both"], dict.fromkeys(range(5), "failed")))
    assert (": of Dr.VAE (continuous head)'s 5 fits for this drug at latent 8, 5 failed (failures.csv has "
            "why).") in failed
    unrun = _line(_status(runs["both"], dict.fromkeys(range(5), "")))
    assert (": of Dr.VAE (continuous head)'s 5 fits for this drug at latent 8, 5 have not run (a rerun with "
            "the same --out runs them).") in unrun
    unscored = runs["both"].copy(deep=True)
    unscored["score"].loc[{"model": "drvae_continuous"}] = np.nan   # done fits whose scores are all NaN
    assert (": of Dr.VAE (continuous head)'s 5 fits for this drug at latent 8, 5 done without a score by "
            "it.") in _line(unscored)
    mixed = _line(_status(runs["both"], {0: "failed", 1: "failed", 2: "", 3: "", 4: ""}))
    assert (": of Dr.VAE (continuous head)'s 5 fits for this drug at latent 8, 2 failed (failures.csv has "
            "why); 3 have not run (a rerun with the same --out runs them).") in mixed


def test_a_drug_whose_first_metric_scores_dr_vae_alone_is_judged_by_one_that_compares(monkeypatch) -> None:
    """Ridge on x1 without Pearson or Spearman (a column only Dr.VAE's continuous head has): the line read
    "no Dr.VAE (continuous head) comparison (Pearson): no other method has a score at latent 4" and hid the
    RMSE comparison; the header offered Pearson's later metrics, RMSE among them."""
    wide = _wide().drop(columns=[(k, "ridge_x1") for k in ("pearson", "pearson_chance", "spearman",
                                                              "spearman_chance")])
    monkeypatch.setattr(rr, "_wide", lambda ds: wide.loc[["dA"]])
    monkeypatch.setattr(rr, "has_response", lambda ds: True)
    ds = xr.Dataset(coords={"method": ["drvae_continuous"]}, attrs={"n_folds": 5})
    head, line = rr.summary_lines(ds)
    assert head == "Drug response (response.md has every metric; below, RMSE):"
    assert line.startswith("  dA: Dr.VAE (continuous head) not distinguishable from ridge on x1 (RMSE)")
    md = rr.response_markdown(rr.response_table(ds))
    assert "| Pearson mean" in md   # Dr.VAE's Pearson stays in its table
    assert "\ndA: Dr.VAE (continuous head) not distinguishable from ridge on x1 (RMSE)" in md


def test_the_legend_speaks_of_the_rows_the_run_has(runs: dict[str, xr.Dataset]) -> None:
    """A run without Dr.VAE's identity ablation (ridge on x1 and the drug mean alone) read "The
    identity-perturbation rows are the ablation" in response.md's legend; a binary head alone read of the
    continuous one."""
    def legend(table: pd.DataFrame) -> str:
        md = rr.response_markdown(table)
        return md[md.index("Legend:"):]

    ridge, both = rr.response_table(runs["ridge"]), rr.response_table(runs["both"])
    identity = ["drvae_identity", "drvae_continuous_identity"]
    assert not ridge["method"].isin(identity).any() and both["method"].isin(identity).any()
    assert "identity-perturbation" not in legend(ridge) and "Continuous response:" in legend(ridge)
    assert "The identity-perturbation rows are the ablation" in legend(both)
    assert "Continuous response:" not in legend(both.assign(metric="auroc"))   # the binary head alone


def test_the_summary_says_what_response_md_holds(runs: dict[str, xr.Dataset], capsys) -> None:
    """A run of ridge on x1 and the drug mean alone listed "response.md  drug response per drug: Dr.VAE and
    its baselines by AUROC/AUPR (the continuous head by Pearson/Spearman/RMSE), with Dr.VAE's verdicts"."""
    from harness.report import main

    for name, words in (("ridge", "each response method by Pearson/Spearman/RMSE (the continuous head), "
                                  "against chance (Dr.VAE has no score: no verdicts)"),
                        ("both", "Dr.VAE and its baselines by Pearson/Spearman/RMSE (the continuous head), "
                                 "with Dr.VAE's verdicts")):
        assert main(["--no-figures", runs[name].attrs["out_dir"]]) == 0
        line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("  response.md "))
        assert line.endswith(f"  drug response per drug: {words}")
