"""Review 55: a gene near-constant in training (sd 1e-20) and ordinary in the test pairs put test inputs
~1e20 training standard deviations out: the test loss overflowed to inf and the split failed with "non-finite
test loss" (no cause, nothing to do), yet its row kept rho_pred_pert 0.154, its scores and its predictions
(values up to ~1e17), against the API's "a failed split has NaN values". (Review 56: a training sd that small
is now refused before fitting, pertvae_core.train._near_constant; test values 1e25 training sds out overflow
the same way.)"""

from __future__ import annotations

import math
import re

import numpy as np

from pertvae_core import api
from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData

CFG = FitConfig(latent=3, hidden=(16, 8), context=4, iaf_hidden=8, batch_pairs=8, batch_singletons=6,
                max_epochs=4, patience=2, lr=3e-3, mc_samples=2)


def _split(seed: int, test_sd0: float) -> SplitData:
    """Pairs over 12 genes; gene 3's test values have standard deviation ``test_sd0`` (1 elsewhere)."""
    rng = np.random.default_rng(seed)

    def f(n: int, train: bool = True) -> np.ndarray:
        x = rng.normal(size=(n, 12)).astype(np.float32)
        if not train:
            x[:, 3] = rng.normal(size=n) * test_sd0
        return x

    x1, x2 = f(20), f(20)
    return SplitData(x1, x2 + 0.5 * x1, f(6), f(6), f(5, False), f(5, False), f(10))


def test_an_overflowing_test_loss_fails_the_split_with_its_cause_and_no_scores() -> None:
    rows = api.fit_evaluate_pertvae([_split(0, 1e25), _split(1, 1.0)], CFG, [1, 2], keep_predictions=True)
    bad, good = rows
    assert bad["status"] == "failed"
    assert bad["reason"].startswith("non-finite test loss (it overflows float32): test values lie up to ")
    assert re.search(r"up to [1-9]\.\d+e\+25 training standard deviations .*\(gene column 3, training sd ",
                     bad["reason"])
    assert all(math.isnan(bad[k]) for k in ("rho_rec", "rho_rec_pert", "rho_pred_pert", "test_loss"))
    assert not {"scores", "detail", "predictions"} & bad.keys()
    assert good["status"] == "done" and np.isfinite(good["rho_pred_pert"]) and "scores" in good
