"""A user-defined method living outside pertvae_core, loaded by import path or entry point in the tests."""

from __future__ import annotations

import numpy as np

from pertvae_core.data import SplitData


class KnnShift:
    """x2_hat = x1 + the mean change x2 - x1 of the ``k`` training pairs whose x1 correlate best with it."""

    name = "knn_shift"

    def __init__(self, k: int = 3, seed: int | None = None) -> None:
        self.k, self.seed = k, seed

    def fit(self, split: SplitData) -> KnnShift:
        self.x1_ = np.asarray(split.x1_train, np.float64)
        self.delta_ = np.asarray(split.x2_train, np.float64) - self.x1_
        return self

    def predict(self, x1: np.ndarray) -> np.ndarray:
        x1 = np.asarray(x1, np.float64)

        def unit(a: np.ndarray) -> np.ndarray:
            a = a - a.mean(axis=1, keepdims=True)
            return a / np.linalg.norm(a, axis=1, keepdims=True)

        nearest = np.argsort(-(unit(x1) @ unit(self.x1_).T), axis=1)[:, : self.k]
        return x1 + self.delta_[nearest].mean(axis=1)


def make_knn(latent: int) -> KnnShift:
    """A factory function: k grows with the latent size the grid asks for."""
    return KnnShift(k=max(1, latent // 2))


def not_a_method() -> object:
    """Returns something without fit/predict."""
    return object()


class NoPredict:
    def fit(self, split: SplitData) -> NoPredict:
        return self


ANSWER = 42
