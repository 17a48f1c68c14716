"""Review 56: Dr.VAE's trainer failed a split on a non-finite loss only; a fit that diverged to large but
finite values was scored as done (lr 10: the continuous head's best validation squared error 7e10 and 4e13
against the untrained 2.5 and 2.1). It now fails as PertVAE's does (pertvae_core.early_stopping): a best
validation loss over DIVERGED_RATIO times the untrained state's, the same reason, NaN scores."""

from __future__ import annotations

import math

import pytest

from pertvae_core.drvae_train import fit_drvae
from pertvae_core.early_stopping import DIVERGED
from pertvae_core.response_methods import fit_evaluate_drvae
from tests.pertvae_core.response_sim import simulate
from tests.pertvae_core.test_drvae_train import _cfg

UNTRAINED = "is over 10 times the untrained model's"


@pytest.fixture(scope="module")
def splits() -> list:
    return [simulate("effect", seed=0, n_pairs=24, n_single=40, n_val=12, n_test=20).split,
            simulate("effect", seed=1, n_pairs=16, n_single=0, n_val=10, n_test=20).split]


def test_a_diverged_drvae_fit_fails_and_is_not_scored(splits) -> None:
    rows = fit_evaluate_drvae(splits, _cfg(head="continuous", lr=10.0), [1, 2])
    for row in rows:
        assert row["status"] == "failed" and UNTRAINED in row["reason"] and DIVERGED in row["reason"]
        for scores in row["scores"].values():
            assert all(math.isnan(scores[m]) and scores[f"{m}_reason"] == row["reason"]
                       for m in ("pearson", "spearman", "rmse"))


def test_an_ordinary_drvae_fit_is_not_flagged(splits) -> None:
    st = fit_drvae(splits, _cfg(head="continuous"), [1, 2])
    assert (st.status, st.reason) == (["done", "done"], ["", ""])
