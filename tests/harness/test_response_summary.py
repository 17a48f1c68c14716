"""The run summary's drug-response line (harness.response_report.verdict_line) stays readable with many
methods: few are named, many are counted with the ones left out, and verdict groups stay apart."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.response_report import LIST_MAX, listed, verdict_line


def test_listed_names_few_and_counts_many() -> None:
    among = [f"m{i}" for i in range(10)]
    assert listed(among[:LIST_MAX], among) == "; ".join(among[:LIST_MAX])
    assert listed(among, among) == "all 10 methods"
    assert listed(among, among, "any of the") == "any of the 10 methods"   # after "not distinguishable from"
    assert listed(among[:8], among) == "8 of 10 methods (all but these 2: m8; m9)"
    assert listed(among[:5], among) == "5 of 10 methods (the table in response.md lists them)"


def test_a_drug_line_with_many_methods() -> None:
    methods = ["drvae", "drvae_identity", "logreg_x1", "rf_x1", "svm_x1", "logreg_pca", "rf_pca", "prior"]
    verdict = [np.nan, "not distinguishable from", "loses to", "not distinguishable from",
               "not distinguishable from", "not distinguishable from", "not distinguishable from", "beats"]
    q_chance = [0.2, 0.2, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1.0]
    table = pd.DataFrame({"verdict": verdict, "q_chance": q_chance}, index=methods)
    line = verdict_line(table, "olaparib")
    assert line.startswith("olaparib: Dr.VAE beats training prior — loses to logistic L2 on x1 — "
                           "not distinguishable from 5 of 7 methods (all but these 2: logistic L2 on x1; "
                           "training prior) (AUROC).")
    assert line.endswith("Above chance (q < 0.05): 5 of 8 methods (all but these 3: Dr.VAE; "
                         "Dr.VAE, identity perturbation; training prior).")


def _tied(means: list[float], ahead: list[float], metric: str = "auroc") -> pd.DataFrame:
    """Dr.VAE and two methods, neither distinguishable from it; Dr.VAE - method as the means give."""
    methods = ["drvae", "logreg_x1", "rf_x1"] if metric == "auroc" else ["drvae_continuous", "ridge_x1",
                                                                          "drug_mean"]
    return pd.DataFrame({"metric": metric, "mean": means,
                         "diff_vs_drvae": [np.nan, means[0] - means[1], means[0] - means[2]],
                         "splits_ahead_of_drvae": [np.nan, *ahead], "n_paired": [np.nan, 10, 10],
                         "verdict": [np.nan, "not distinguishable from", "not distinguishable from"],
                         "q_chance": [0.2, 0.01, 0.3]}, index=methods)


def test_not_distinguishable_does_not_hide_a_method_ahead_on_every_split() -> None:
    """The drvae-demo's olaparib: Dr.VAE's AUROC 0.618, logistic L2 on x1's 0.928, higher on 10 of 10
    splits, yet not significant after the corrected t and Benjamini-Hochberg: the line says both."""
    line = verdict_line(_tied([0.618, 0.928, 0.7], [10, 7]), "olaparib")
    assert line.startswith("olaparib: Dr.VAE not distinguishable from logistic L2 on x1; random forest on x1 "
                           "(AUROC), though logistic L2 on x1 has a higher mean (0.928 against 0.618) and is "
                           "ahead on 10 of 10 splits. Above chance")
    assert "though" not in verdict_line(_tied([0.9, 0.8, 0.7], [3, 1]), "olaparib")  # Dr.VAE's mean is best
    rmse = verdict_line(_tied([0.62, 0.58, 0.7], [9, 2], "rmse"), "olaparib", "RMSE",
                        "Dr.VAE (continuous head)")
    assert "(RMSE), though ridge on x1 has a lower mean (0.580 against 0.620) and is ahead on 9 of 10" in rmse


def test_a_tie_with_every_method_reads_as_one() -> None:
    """"not distinguishable from all 6 methods" reads as "from some of them": the line says "any"."""
    methods = ["drvae", "drvae_identity", "logreg_x1", "rf_x1", "svm_x1", "logreg_pca", "prior"]
    table = pd.DataFrame({"verdict": [np.nan, *["not distinguishable from"] * 6], "q_chance": 0.5},
                         index=methods)
    assert verdict_line(table, "olaparib").startswith(
        "olaparib: Dr.VAE not distinguishable from any of the 6 methods (AUROC). Above chance")
