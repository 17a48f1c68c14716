"""A grid model defined outside harness/ (as a user's package would): the training pairs' mean change added
to x1. The tests register it (harness.contenders.register or the entry point group); harness/ never does."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.contenders import Contender
from pertvae_core.data import SplitData


class MeanChange:
    """x2_hat = x1 + the mean of x2 - x1 over the training pairs."""

    def fit(self, split: SplitData) -> MeanChange:
        self.delta_ = (np.asarray(split.x2_train, np.float64) - split.x1_train).mean(axis=0)
        return self

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return np.asarray(x1, np.float64) + self.delta_


class ShiftContender(Contender):
    name = "shift"
    cheap = True
    methods = ("shift_mean",)
    default_latents = (4,)
    legend = "the training pairs' mean change (a contender of the tests)"

    def run(self, data: Sequence[SplitData], latent: int, seeds: Sequence[int], cfg) -> list[dict]:
        from pertvae_core import api

        return api.evaluate_methods(data, {"shift_mean": MeanChange}, cfg.save_predictions)


class Nameless(Contender):
    """Not a valid contender: no name."""


class FailsToStart(ShiftContender):
    """Not a valid contender: making it raises (a missing config file of the user's package)."""

    name = "fails_to_start"

    def __init__(self) -> None:
        raise RuntimeError("cannot find my config file")


class CentersItsData(ShiftContender):
    """Centers the drug's x1 in place in task_data (``dd.x1 -= ...``): on a frozen DrugData the in-place
    subtraction runs before the assignment fails."""

    name = "centers_its_data"

    def task_data(self, dd, cube_path, split_keys, cfg) -> list:
        dd.x1 -= dd.x1.mean(axis=0)
        return super().task_data(dd, cube_path, split_keys, cfg)
