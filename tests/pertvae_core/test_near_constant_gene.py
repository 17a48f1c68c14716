"""Review 56: a gene near-constant in training (sd 1e-12, reachable from the Python API; the cube refuses
such values) set its scale to that sd, so test values 1e-6 off its training mean lay ~1e6 standard deviations
out: PertVAE's test loss 6e10 and predictions up to 1e3 on every gene, and (sd 1e-9) every method's z-space
scores (the baselines' mse_z 3e4-8e4 against 1.3-2.8), scored as done. Such a gene is now refused, named by
its column; an exactly constant gene keeps scale 1."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from pertvae_core import PertVAE, api
from pertvae_core.train import Standardizer
from tests.pertvae_core.test_train import CFG, _split


def _with_gene(sp, column: int, sd: float):
    """``sp`` with gene ``column`` of sd ``sd`` around 0 in its training profiles (1e-6 elsewhere)."""
    rng = np.random.default_rng(1)
    arrays = {}
    for f in ("x1_train", "x2_train", "x1_val", "x2_val", "x1_test", "x2_test", "xs_train"):
        v = getattr(sp, f).copy()
        v[:, column] = rng.normal(size=len(v)) * (sd if f.endswith("train") else 1e-6)
        arrays[f] = v.astype(np.float32)
    return dataclasses.replace(sp, **arrays)


@pytest.mark.parametrize("sd", [1e-6, 1e-12])
def test_a_gene_near_constant_in_training_is_refused_by_its_column(sd: float) -> None:
    sp = _with_gene(_split(np.random.default_rng(0), 20, 10), 3, sd)
    with pytest.raises(ValueError, match=r"splits\[0\]: the training L1000 profiles .*: gene column 3 is "
                                         r"near-constant: .*Leave that gene out"):
        api.fit_evaluate_pertvae([sp], CFG, [1])
    with pytest.raises(ValueError, match="gene column 3 is near-constant"):
        PertVAE(max_epochs=1).fit(sp.x1_train, sp.x2_train, seed=1, verbose=False)
    with pytest.raises(ValueError, match=r"splits\[0\]: the training L1000 profiles .* gene column 3 is "):
        api.evaluate_baselines([sp], 3)


def test_a_constant_gene_keeps_scale_one() -> None:
    sp = _with_gene(_split(np.random.default_rng(0), 20, 10), 3, 0.0)
    std = Standardizer.from_splits([sp], torch.device("cpu"))
    assert std.scale[0, 0, 3] == 1.0 and std.single_scale[0, 0, 3] == 1.0
