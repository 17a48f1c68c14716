"""Review 57: response.md's Dr.VAE − method intervals were not clipped to what a difference can be: AUROCs
of 0.95 and 0.05 that swap between folds gave "+0.180 [-1.519, +1.879]", beyond [-1, 1] (3 of 5 test
sets, t on 4 degrees of freedom). A difference's interval is now clipped to the difference of the metric's
range (AUROC, AUPR within [-1, 1], Pearson and Spearman within [-2, 2]), and the legend says so."""

from __future__ import annotations

import json

import pandas as pd
import xarray as xr

from harness import response_report as rr

SETS = [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]   # 2 x 5 splits, 5 distinct test sets


def _table(monkeypatch, metric: str, hi: float, lo: float, chance: float) -> pd.DataFrame:
    """response.csv's table of Dr.VAE and logistic L2 on x1 (or their continuous heads) scoring ``hi`` and
    ``lo`` in turn, swapped on odd folds."""
    methods = ("drvae", "logreg_x1") if metric == "auroc" else ("drvae_continuous", "ridge_x1")
    rows = []
    for split in range(10):
        fold = split % 5
        for m, v in zip(methods, (hi, lo) if fold % 2 == 0 else (lo, hi), strict=True):
            rows += [("dA", 4, split // 5, fold, metric, m, v),
                     ("dA", 4, split // 5, fold, f"{metric}_chance", m, chance)]
    df = pd.DataFrame(rows, columns=["drug", "latent", "repeat", "fold", "metric", "method", "value"])
    wide = df.pivot_table(index=["drug", "latent", "repeat", "fold"], columns=["metric", "method"],
                          values="value", aggfunc="first")
    monkeypatch.setattr(rr, "_wide", lambda ds: wide)
    monkeypatch.setattr(rr, "has_response", lambda ds: True)
    ds = xr.Dataset(coords={"method": [methods[0]]},
                    attrs={"n_folds": 5, "response_test_sets": json.dumps({"dA": SETS}),
                           "response_n_train_test": json.dumps({"dA": [3.0, 1.0]})})
    return rr.response_table(ds)


def test_an_auroc_difference_interval_stays_within_minus_one_and_one(monkeypatch) -> None:
    table = _table(monkeypatch, "auroc", 0.95, 0.05, 0.5)
    row = table[table["method"] == "logreg_x1"].iloc[0]
    assert row["diff_vs_drvae"] > 0 and (row["diff_ci_low"], row["diff_ci_high"]) == (-1.0, 1.0)
    md = rr.response_markdown(table)
    assert "[-1.000, +1.000]" in md and "clipped to the range a difference of the metric can take" in md


def test_a_correlation_difference_interval_stays_within_minus_two_and_two(monkeypatch) -> None:
    table = _table(monkeypatch, "spearman", 0.95, -0.95, 0.0)
    row = table[(table["method"] == "ridge_x1") & (table["metric"] == "spearman")].iloc[0]
    assert (row["diff_ci_low"], row["diff_ci_high"]) == (-2.0, 2.0)
