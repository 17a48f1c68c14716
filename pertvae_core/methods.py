"""The one shape every perturbation-prediction method has, and the methods the benchmark scores.

A method is fitted on one split's training data (its validation pairs may select settings; it never sees
the test cell lines) and then predicts x2 for any x1:

    method.fit(split: SplitData) -> method
    method.predict(x1: np.ndarray [n, G]) -> x2_hat [n, G]      (raw gene space, as the data)

:func:`pertvae_core.evaluation.score_method` scores any such method with the same metrics on the same test
cell lines. PertVAE keeps its batched fit over S splits behind this interface
(:func:`pertvae_core.api.fit_pertvae_methods`); ``pertvae_rec`` is PertVAE's reconstruction of x1 used as a
prediction of x2 (the paper's comparator).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from pertvae_core.baselines import BASELINES
from pertvae_core.data import SplitData

__all__ = ["Method", "METHODS", "REFERENCE", "MODEL_METHODS"]


@runtime_checkable
class Method(Protocol):
    """Fit on a split's training data, predict x2 for test x1."""

    def fit(self, split: SplitData) -> Method: ...

    def predict(self, x1: np.ndarray) -> np.ndarray: ...


REFERENCE = "pertvae"
# The methods each grid model produces, in report order.
MODEL_METHODS: dict[str, tuple[str, ...]] = {
    "pertvae": ("pertvae", "pertvae_rec"),
    "baselines": tuple(BASELINES),
}
METHODS: tuple[str, ...] = tuple(m for ms in MODEL_METHODS.values() for m in ms)
