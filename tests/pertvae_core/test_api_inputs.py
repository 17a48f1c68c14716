"""pertvae_core.api's entry points refuse a wrong kind of argument by name, before any work."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from pertvae_core import api
from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData

CFG = FitConfig(latent=2, hidden=(4, 4), context=2, iaf_steps=1, iaf_hidden=2, max_epochs=1, mc_samples=1)


def _split() -> SplitData:
    rng = np.random.default_rng(0)
    z = [rng.normal(size=(n, 5)) for n in (6, 6, 2, 2, 3, 3, 2)]
    return SplitData(*z)


@pytest.mark.parametrize("call", [api.fit_evaluate_pertvae, api.fit_evaluate_vae, api.fit_pertvae_methods])
def test_api51_a_wrong_kind_of_argument_is_refused_by_name(call: Callable) -> None:
    """One split not in a list was "TypeError: 'SplitData' object is not iterable", seeds=None "TypeError:
    object of type 'NoneType' has no len()" and a dict of settings "AttributeError: 'dict' object has no
    attribute 'device'", each from inside the fit."""
    sp = _split()
    with pytest.raises(ValueError, match=r"splits must be a list of SplitData, got one SplitData: give \["):
        call(sp, CFG, [0])
    with pytest.raises(ValueError, match="seeds must be a list of ints, one per split, got None"):
        call([sp], CFG, None)
    with pytest.raises(ValueError, match=r"cfg must be a pertvae_core.config.FitConfig, got dict: give Fit"):
        call([sp], {"latent": 2}, [0])


def test_api51_pca_latents_without_latent_sizes_is_a_value_error() -> None:
    """evaluate_pca_latents(splits, []) divided each split's time by no latent sizes: ZeroDivisionError."""
    with pytest.raises(ValueError, match="evaluate_pca_latents: no latent sizes given"):
        api.evaluate_pca_latents([_split()], [])
    assert list(api.evaluate_pca_latents([_split()], [np.int64(2), 3])) == [2, 3]


def test_api51_a_split_whose_test_pairs_are_nan_throughout_is_not_scored() -> None:
    """SplitData accepts test arrays NaN throughout (the copy whose test pairs are hidden from a method), so
    a split whose test profiles were all missing scored NaN in every metric of every method, without a
    word (score_method, evaluate_baselines, evaluate_pca, fit_evaluate_pertvae)."""
    from pertvae_core.evaluation import score_method

    sp = _split()
    hidden = SplitData(sp.x1_train, sp.x2_train, sp.x1_val, sp.x2_val, sp.x1_test,
                       np.full_like(sp.x2_test, np.nan), sp.xs_train)
    message = "SplitData.x2_test is NaN throughout, as in the copy whose test pairs are hidden from a method"
    with pytest.raises(ValueError, match="score: " + message):
        score_method(hidden, lambda x1: x1)
    for call in (lambda: api.evaluate_baselines([sp, hidden], 2), lambda: api.evaluate_pca([sp, hidden], 2),
                 lambda: api.fit_evaluate_pertvae([sp, hidden], CFG, [0, 1])):
        with pytest.raises(ValueError, match=r"splits\[1\]: " + message):
            call()
    assert np.isfinite(score_method(sp, lambda x1: x1 + 1)["rho_pred_pert"])
