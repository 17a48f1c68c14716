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
