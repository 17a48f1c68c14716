"""Review 56: a fit that diverged to large but finite values was scored as done (``run --lr 10`` on the demo
preset: PertVAE's mse_z ~1e18 in benchmark.md, nothing said the fit diverged); only a non-finite loss
failed a split. Now a split whose best validation loss is over 10 times its untrained state's fails as
diverged, through the same path (NaN scores, the reason, harness.run's failure count)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from pertvae_core import PertVAE, api
from pertvae_core.early_stopping import DIVERGED, SplitStopping
from tests.pertvae_core.test_train import CFG, _split

UNTRAINED = "is over 10 times the untrained model's"


@pytest.fixture(scope="module")
def splits() -> list:
    rng = np.random.default_rng(0)
    return [_split(rng, 40, 20), _split(rng, 30, 0)]


def test_a_best_loss_far_above_the_untrained_one_fails_the_split_when_it_stops() -> None:
    rec = SplitStopping(n_val=4, patience=2, min_epochs=0, max_epochs=50, init_val=5.0)
    for v in (51.0, 1e18, 1e17, 2e17):
        rec.update(1.0, v)
    assert rec.frozen and rec.status == "failed" and rec.best_epoch == 1
    assert rec.reason == ("best validation loss 51 (epoch 1) is over 10 times the untrained model's 5: the "
                          "fit diverged; try a smaller learning rate (lr), the same settings diverge again")
    ok = SplitStopping(n_val=4, patience=2, min_epochs=0, max_epochs=50, init_val=5.0)
    for v in (49.0, 60.0, 70.0):   # worse than untrained, not diverged
        ok.update(1.0, v)
    assert ok.frozen and (ok.status, ok.reason) == ("done", "")


@pytest.mark.parametrize("call", [api.fit_evaluate_pertvae, api.fit_evaluate_vae])
def test_a_fit_at_a_huge_learning_rate_is_flagged(splits, call) -> None:
    rows = call(splits, dataclasses.replace(CFG, lr=10.0), [1, 2])
    for row in rows:
        assert row["status"] == "failed" and UNTRAINED in row["reason"] and DIVERGED in row["reason"]
        assert math.isnan(row["rho_rec"]) and math.isnan(row["test_loss"]) and "scores" not in row


@pytest.mark.parametrize("call", [api.fit_evaluate_pertvae, api.fit_evaluate_vae])
def test_an_ordinary_fit_is_not_flagged(splits, call) -> None:
    rows = call(splits, CFG, [1, 2])
    assert [(r["status"], r["reason"]) for r in rows] == [("done", "")] * 2


def test_a_diverged_pertvae_method_does_not_predict(splits) -> None:
    """A fitted method of a diverged split raised nothing and predicted values up to ~7e8 (scored as done)."""
    m = api.fit_pertvae_methods(splits, dataclasses.replace(CFG, lr=10.0), [1, 2])[0]
    with pytest.raises(FloatingPointError, match=f"PertVAE: best validation loss .* {DIVERGED}"):
        m.predict(splits[0].x1_test)
    with pytest.raises(FloatingPointError, match=UNTRAINED):
        api.PertVAEMethod(dataclasses.replace(CFG, lr=10.0), seed=1).fit(splits[0])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")   # 6 epochs: the ordinary fit
def test_the_estimator_refuses_a_diverged_fit(splits) -> None:
    """pertvae_core.PertVAE raised only for a non-finite loss; it returned a diverged fit as fitted."""
    sp = splits[0]
    cfg = {k: getattr(CFG, k) for k in ("latent", "hidden", "context", "iaf_hidden", "batch_pairs",
                                        "batch_singletons", "max_epochs", "patience", "mc_samples")}
    with pytest.raises(FloatingPointError, match=f"PertVAE.fit: best validation loss .* {DIVERGED}"):
        PertVAE(**cfg, lr=10.0).fit(sp.x1_train, sp.x2_train, validation=(sp.x1_val, sp.x2_val), seed=1,
                                    verbose=False)
    PertVAE(**cfg).fit(sp.x1_train, sp.x2_train, validation=(sp.x1_val, sp.x2_val), seed=1, verbose=False)
