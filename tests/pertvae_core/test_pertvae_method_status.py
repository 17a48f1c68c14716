"""Review 56: PertVAEMethod ignored its fit's status. A fit that failed (lr 1e6: non-finite training loss in
epoch 1) kept its untrained state, which predicts finite values, and evaluate_methods scored it as done
(mse_z 1.43, status "done", no reason)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pertvae_core import api
from tests.pertvae_core.test_train import CFG, _split

FAILED = "PertVAE: non-finite training loss in epoch 1: the fit diverged"


def test_a_failed_pertvae_method_is_not_scored() -> None:
    rng = np.random.default_rng(0)
    splits = [_split(rng, 40, 20), _split(rng, 30, 0)]
    cfg = dataclasses.replace(CFG, lr=1e6)
    row = api.evaluate_methods(splits[:1], {"pertvae": lambda: api.PertVAEMethod(cfg, seed=1)})[0]
    assert row["status"] == "failed" and "pertvae" not in row["scores"]
    assert FAILED in row["method_reason"]["pertvae"]
    batched = api.fit_pertvae_methods(splits, cfg, [1, 2])   # its methods are fitted: predict refuses
    with pytest.raises(FloatingPointError, match=FAILED):
        batched[1].predict(splits[1].x1_test)
