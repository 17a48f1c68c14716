"""Review 55 (every metric at its chance level): each test reproduces a problem found there."""

from __future__ import annotations

import numpy as np

from harness.benchmark import _gene_stats
from pertvae_core.baselines import MeanShift
from pertvae_core.evaluation import score_method_detail
from tests.pertvae_core.test_evaluation import _cell_split


def test_gene_pearson_of_one_change_for_every_cell_line_is_undefined() -> None:
    """mean_shift predicts the same change for every test cell line, so its correlation across cell lines
    (genes.csv's gene_pearson) is 0/0, as identity's; from the sufficient statistics the round-off of
    sum(d_hat^2) - n mean^2 left a variance of ~1e-16 on about a third of the genes and a 'correlation' of
    ~1e-7 with a Fisher-z interval of about [-0.8, 0.8] printed beside NaN for the others."""
    sp = _cell_split(seed=0, effect=1.0, genes=60)
    st = _gene_stats(score_method_detail(sp, MeanShift().fit(sp).predict).per_gene)
    assert np.isnan(st["r"]).all() and np.isnan(st["r_lo"]).all() and np.isnan(st["r_hi"]).all()
    assert np.isfinite(st["predicted"]).all() and np.isfinite(st["observed"]).all()
