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
    assert head.startswith("Drug response (response.md has every metric; below, Pearson (RMSE for a drug "
                           "without Pearson: a correlation needs two or more test cell lines whose responses "
                           "differ), and another metric")
    assert a.startswith("  dA: Dr.VAE (continuous head) not distinguishable from ridge on x1 (Pearson)")
    assert b.startswith("  dB: Dr.VAE (continuous head) not distinguishable from ridge on x1 (RMSE)")
    assert "no score" not in b and "Above chance (RMSE, q < 0.05)" in b
    md = rr.response_markdown(rr.response_table(ds))
    section = md[md.index("## dB"):md.index("Legend")]
    assert "Pearson mean" not in section and "| RMSE mean" in section
    assert "\ndB: Dr.VAE (continuous head) not distinguishable from ridge on x1 (RMSE)" in section
