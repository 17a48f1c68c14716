"""PertVAE behind the Method interface (fit on a split, predict x2 for x1), batched or alone."""

from __future__ import annotations

import numpy as np

from pertvae_core.api import PertVAEMethod, evaluate_methods, fit_pertvae_methods
from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData
from pertvae_core.methods import METHODS, MODEL_METHODS, Method

CFG = FitConfig(latent=3, hidden=(16, 8), context=8, iaf_steps=1, iaf_hidden=8, batch_pairs=8,
                batch_singletons=8, max_epochs=4, patience=2, mc_samples=3)


def _split(seed: int, genes: int = 12) -> SplitData:
    rng = np.random.default_rng(seed)

    def rows(n: int) -> np.ndarray:
        return (rng.normal(size=(n, genes)) + 3).astype(np.float32)

    return SplitData(rows(20), rows(20), rows(6), rows(6), rows(8), rows(8), rows(10),
                     test_cell_line=np.repeat(["a", "b", "c", "d"], 2))


def test_method_names_and_models() -> None:
    assert METHODS[0] == "pertvae" and set(MODEL_METHODS) == {"pertvae", "baselines"}
    assert isinstance(PertVAEMethod(CFG), Method)


def test_pertvae_method_predicts_and_batched_equals_separate() -> None:
    splits = [_split(0), _split(1)]
    batched = fit_pertvae_methods(splits, CFG, seeds=[10, 11])
    alone = PertVAEMethod(CFG, seed=11).fit(splits[1])
    x1 = splits[1].x1_test
    got, want = batched[1].predict(x1), alone.predict(x1)
    assert got.shape == x1.shape and got.dtype == np.float64 and np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    rec = fit_pertvae_methods(splits[:1], CFG, seeds=[10], reconstruction=True)[0]
    assert rec.name == "pertvae_rec" and not np.allclose(rec.predict(x1), batched[0].predict(x1))


def test_evaluate_methods_scores_pertvae_like_any_method() -> None:
    sp = _split(2)
    rows = evaluate_methods([sp], {"pertvae": lambda: PertVAEMethod(CFG, seed=3)})
    assert rows[0]["status"] == "done"
    assert np.isfinite(rows[0]["scores"]["pertvae"]["mse_z"])
