"""One response split's row (harness.contenders.response_baselines.evaluate_each): a built-in method that
fails is named once, beside its own reason, and the others are scored."""

from __future__ import annotations

from harness.contenders.response_baselines import evaluate_each
from pertvae_core.response_baselines import TrainingPrior
from tests.pertvae_core.response_sim import simulate


class _Fails:
    def fit(self, split: object) -> _Fails:
        raise ValueError("no positive label in training")


def test_a_failed_method_is_named_once() -> None:
    sp = simulate("untreated", seed=0).split
    row = evaluate_each(sp, {"prior": TrainingPrior, "broken": _Fails})
    assert row["method_status"] == {"prior": "done", "broken": "failed"}
    assert row["method_reason"]["broken"] == "ValueError: no positive label in training"
    assert row["method_reason"]["prior"] == ""
    assert row["reason"] == "broken: ValueError: no positive label in training"
    assert row["status"] == "failed" and set(row["scores"]) == {"prior"}
