"""PertVAE's features for the response classifiers: fitted on the split's training cell lines alone, with one
pooled standardization, early stopping on the validation cell lines' pairs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pertvae_core.config import FitConfig
from pertvae_core.response_data import ResponseSplit
from pertvae_core.response_features import LATENT_KINDS, fit_pertvae_features, pertvae_split
from tests.pertvae_core.response_sim import simulate

CFG = FitConfig(latent=3, hidden=(16, 8), context=4, iaf_hidden=8, batch_pairs=8, max_epochs=6, patience=2)


def _with_val_pairs(sp: ResponseSplit, n: int = 8) -> ResponseSplit:
    """``sp`` with its last ``n`` training pairs moved to the validation pairs."""
    return dataclasses.replace(sp, x1_pairs=sp.x1_pairs[:-n], x2_pairs=sp.x2_pairs[:-n],
                               r_pairs=sp.r_pairs[:-n], x1_val_pairs=sp.x1_pairs[-n:],
                               x2_val_pairs=sp.x2_pairs[-n:])


def test_the_pertvae_sees_training_profiles_and_validation_pairs_only() -> None:
    sp = _with_val_pairs(simulate("effect", seed=0).split)
    data = pertvae_split(sp)
    np.testing.assert_array_equal(data.x1_train, sp.x1_pairs)
    np.testing.assert_array_equal(data.xs_train, sp.xs_train)
    np.testing.assert_array_equal(data.x2_val, sp.x2_val_pairs)
    state, feats = fit_pertvae_features([sp], CFG, [5])
    assert set(feats[0]) == {f"pertvae_{k}" for k in LATENT_KINDS}
    assert len(state.history[0]) == state.epochs[0] and np.isfinite(state.history[0]).all()  # early stopping
    # other validation and test singletons (and responses) give the same features of the same rows
    other = dataclasses.replace(sp, x_val=-sp.x_val, r_val=-sp.r_val, x_test=sp.x_test[::-1] * 3.0,
                                r_test=-sp.r_test)
    _, feats2 = fit_pertvae_features([other], CFG, [5])
    for k in feats[0]:
        np.testing.assert_array_equal(feats[0][k](sp.x_test), feats2[0][k](sp.x_test))


def test_one_pooled_standardization_for_pairs_and_singletons() -> None:
    sp = simulate("effect", seed=1).split
    state, _ = fit_pertvae_features([sp], dataclasses.replace(CFG, standardize="per_source"), [0])
    pooled = np.concatenate([sp.x1_pairs, sp.x2_pairs, sp.xs_train]).astype(np.float64)
    np.testing.assert_allclose(state.std.mean[0, 0].numpy(), pooled.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(state.std.mean.numpy(), state.std.single_mean.numpy())


def test_validation_pairs_must_align() -> None:
    sp = simulate("effect", seed=2).split
    with pytest.raises(ValueError, match="x1_val_pairs has 3 rows but x2_val_pairs has 2"):
        dataclasses.replace(sp, x1_val_pairs=sp.x1_pairs[:3], x2_val_pairs=sp.x2_pairs[:2])
    assert sp.x1_val_pairs.shape == (0, sp.genes)      # none given: no rows
