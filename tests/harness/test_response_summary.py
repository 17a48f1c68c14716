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
    assert listed(among[:8], among) == "8 of 10 methods (all but m8; m9)"
    assert listed(among[:5], among) == "5 of 10 methods (the table in response.md lists them)"


def test_a_drug_line_with_many_methods() -> None:
    methods = ["drvae", "drvae_identity", "logreg_x1", "rf_x1", "svm_x1", "logreg_pca", "rf_pca", "prior"]
    verdict = [np.nan, "not distinguishable from", "loses to", "not distinguishable from",
               "not distinguishable from", "not distinguishable from", "not distinguishable from", "beats"]
    q_chance = [0.2, 0.2, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1.0]
    table = pd.DataFrame({"verdict": verdict, "q_chance": q_chance}, index=methods)
    line = verdict_line(table, "olaparib")
    assert line.startswith("olaparib: Dr.VAE beats training prior — loses to logistic L2 on x1 — "
                           "not distinguishable from 5 of 7 methods (all but logistic L2 on x1; training "
                           "prior) (AUROC).")
    assert line.endswith("Above chance (q < 0.05): 5 of 8 methods (all but Dr.VAE; "
                         "Dr.VAE, identity perturbation; training prior).")
