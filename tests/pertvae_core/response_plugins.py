"""Users' response methods (``--response-method``) for the tests, loaded by import path like a user's: one
honest method (documented in docs/drug_response.md's shape), a factory function, and methods that misbehave
in the ways a real one can. None of them may change another method's scores or stop the run."""

from __future__ import annotations

import time

import numpy as np

from pertvae_core.response_data import ResponseSplit


class Centroid:
    """Binary head: the projection of x1 on the difference of the sensitive and resistant training means;
    continuous head: the same projection, scaled to the training responses by least squares."""

    name = "centroid"
    heads = ("binary", "continuous")

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def fit(self, split: ResponseSplit) -> Centroid:
        x, y, r = split.supervised_train()
        x = np.asarray(x, np.float64)
        self.w_ = x[y == 1].mean(0) - x[y == 0].mean(0)
        p = x @ self.w_
        self.a_, self.b_ = np.polyfit(p, r, 1)
        return self

    def predict_proba(self, x1: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.asarray(x1, np.float64) @ self.w_ / len(self.w_)))

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return self.a_ * (np.asarray(x1, np.float64) @ self.w_) + self.b_


def centroid_binary(seed: int | None = None) -> Centroid:
    """A factory function (binary unless it says otherwise)."""
    m = Centroid(seed)
    m.name = "centroid_binary"
    return m


class CentroidContinuous(Centroid):
    name = "centroid_continuous"
    heads = ("continuous",)


class Raises(Centroid):
    name = "raises"
    heads = ("binary",)

    def fit(self, split: ResponseSplit) -> Raises:
        raise RuntimeError("the user's bug")


class NanScores(Centroid):
    name = "nan_scores"
    heads = ("binary",)

    def predict_proba(self, x1: np.ndarray) -> np.ndarray:
        return np.full(len(x1), np.nan)


class TwoColumns(Centroid):
    """scikit-learn's predict_proba shape, [n, 2]: the wrong shape."""

    name = "two_columns"
    heads = ("binary",)

    def predict_proba(self, x1: np.ndarray) -> np.ndarray:
        p = super().predict_proba(x1)
        return np.column_stack([1 - p, p])


class Hangs(Centroid):
    name = "hangs"
    heads = ("binary",)

    def fit(self, split: ResponseSplit) -> Hangs:
        time.sleep(3600)
        return self


class ReadsAnswers(Centroid):
    """Predicts the test labels it reads from the split: the benchmark hides them (NaN), so it fails."""

    name = "reads_answers"
    heads = ("binary",)

    def fit(self, split: ResponseSplit) -> ReadsAnswers:
        self.answers_ = np.array(split.y_test)
        return self

    def predict_proba(self, x1: np.ndarray) -> np.ndarray:
        return self.answers_


NOT_A_METHOD = 3


class ReadsJobFile(Centroid):
    """Reads the file its sandbox process was started with (``sys.argv[1]``, harness.sandbox's job) and
    predicts the test labels it finds there."""

    name = "reads_job_file"
    heads = ("binary",)

    def fit(self, split: ResponseSplit) -> ReadsJobFile:
        import pickle
        import sys

        with open(sys.argv[1], "rb") as f:
            self.answers_ = np.array(pickle.load(f)["split"].y_test)
        return super().fit(split)

    def predict_proba(self, x1: np.ndarray) -> np.ndarray:
        return self.answers_ if np.isfinite(self.answers_).all() else super().predict_proba(x1)


class SharesBuffer(Centroid):
    """Both heads fill one buffer and return it, so predict overwrites what predict_proba returned."""

    name = "shares_buffer"

    def predict_proba(self, x1: np.ndarray) -> np.ndarray:
        self.buf_ = getattr(self, "buf_", np.zeros(len(x1)))
        self.buf_[:] = super().predict_proba(x1)
        return self.buf_

    def predict(self, x1: np.ndarray) -> np.ndarray:
        self.buf_ = getattr(self, "buf_", np.zeros(len(x1)))
        self.buf_[:] = super().predict(x1)
        return self.buf_
