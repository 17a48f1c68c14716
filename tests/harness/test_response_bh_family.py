"""response.md's legend said Benjamini-Hochberg runs "over every drug and method of a metric"; the code
(harness.benchmark._family_q) takes one family per (latent, metric), so with several latent sizes a q is
over one latent size's comparisons only. The legend now says so."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness import response_report as rr
from pertvae_core.stats import benjamini_hochberg
from tests.harness.test_review255_response import _table


def _two_latents() -> pd.DataFrame:
    """Dr.VAE and logistic L2 on x1 by AUROC at latent sizes 4 and 8, on 10 splits."""
    rng = np.random.default_rng(3)
    rows = []
    for latent in (4, 8):
        for split in range(10):
            for m in ("drvae", "logreg_x1"):
                rows += [("dA", latent, split // 5, split % 5, "auroc", m, float(rng.uniform(0.4, 0.9))),
                         ("dA", latent, split // 5, split % 5, "auroc_chance", m, 0.5)]
    df = pd.DataFrame(rows, columns=["drug", "latent", "repeat", "fold", "metric", "method", "value"])
    return df.pivot_table(index=["drug", "latent", "repeat", "fold"], columns=["metric", "method"],
                          values="value", aggfunc="first")


def test_the_legend_says_benjamini_hochberg_runs_per_latent_size_and_metric(monkeypatch) -> None:
    table = _table(monkeypatch, _two_latents())
    for latent in (4, 8):
        rows = table[(table["latent"] == latent) & (table["metric"] == "auroc")]
        np.testing.assert_allclose(rows["q_chance"], benjamini_hochberg(rows["p_chance"]))  # one latent's
    legend = rr.response_markdown(table).split("Legend:", 1)[1]
    assert "over every drug and method of a metric and latent size" in legend
    assert "(over drugs, methods and both directions of a metric and latent size)" in legend
    assert "method of a metric)" not in legend
