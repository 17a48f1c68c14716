"""Response baselines as the Dr.VAE paper used them and as the field expects, each a response method.

Every baseline fits on the split's labelled training rows only (:meth:`ResponseSplit.supervised_train`),
chooses its hyperparameter on the validation cell lines, and never sees the test rows:
- :class:`LogisticL2`: L2 logistic regression on standardized features; C from :data:`C_GRID` by validation
  AUROC (the paper's "internal CV" replaced by the split's own validation fold).
- :class:`RandomForest`: 100 trees (the authors' setting), seeded; no tuned hyperparameter.
- :class:`LinearSVM`: linear SVM (hinge loss) on standardized features, C from :data:`C_GRID` by validation
  AUROC; probabilities by Platt scaling (Platt 1999): a 1-D logistic regression of the training labels on
  the SVM's training decision values. Platt's map is increasing, so AUROC and AUPR are the SVM's own.
- :class:`TrainingPrior`: P(sensitive) = the drug's training response rate for every cell line, so AUROC is
  exactly 0.5 (all scores tied) and AUPR exactly its chance level (a random ranking's expected AP).
- continuous head: :class:`RidgeResponse` (ridge regression, alpha from :data:`ALPHA_GRID` by validation
  RMSE) and :class:`DrugMean` (the mean training response).
Each classifier works on a feature set (:mod:`pertvae_core.response_features`): "x1", "pca" (PCA(x1) at the
latent size) or an encoder's callable. Without a validation fold that defines the score (no rows, or one
class), a hyperparameter keeps its default (C = 1, alpha = 1), said in ``note``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from pertvae_core.response_data import ResponseSplit
from pertvae_core.response_features import FeatureSpec, make_features
from pertvae_core.response_metrics import auroc, rmse

__all__ = ["LogisticL2", "RandomForest", "LinearSVM", "TrainingPrior", "RidgeResponse", "DrugMean",
           "RESPONSE_BASELINES", "encoder_baselines", "C_GRID", "ALPHA_GRID"]

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
ALPHA_GRID = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)
DEFAULT_C = DEFAULT_ALPHA = 1.0


class _Classifier:
    """Shared fit/predict of the classifiers: features fitted on training rows, a model per grid value,
    the best by validation AUROC (first in grid order on ties)."""

    heads = ("binary",)
    kind = ""
    grid: tuple[float, ...] = (DEFAULT_C,)

    def __init__(self, features: FeatureSpec = "x1", latent: int | None = None, seed: int = 0,
                 name: str | None = None) -> None:
        self.features = make_features(features, latent)
        self.seed = seed
        self.name = name or f"{self.kind}_{self.features.name}"
        self.note = ""

    def _make(self, c: float) -> Pipeline:
        raise NotImplementedError

    def _score(self, model: Pipeline, f: np.ndarray) -> np.ndarray:
        return model.predict_proba(f)[:, 1]

    def fit(self, split: ResponseSplit) -> _Classifier:
        self.features.fit(split)
        x, y, _ = split.supervised_train()
        f = self.features.transform(x)
        fitted = self._fit_grid(f, y)
        pick = self._pick(split, fitted)
        self.param_, self.model_ = self.grid[pick], fitted[pick]
        self._after_fit(f, y)
        return self

    def _fit_grid(self, f: np.ndarray, y: np.ndarray) -> list[Pipeline]:
        """A model per grid value, fitted on the training features ``f`` and labels ``y``."""
        return [self._make(c).fit(f, y) for c in self.grid]

    def _pick(self, split: ResponseSplit, fitted: list[Pipeline]) -> int:
        """Index of the grid value with the best validation AUROC (the first, i.e. the strongest penalty,
        on ties); the default C without a defined validation AUROC."""
        if len(fitted) == 1:
            return 0
        fv = self.features.transform(split.x_val) if len(split.x_val) else None
        scores = [auroc(split.y_val, self._score(m, fv)).value for m in fitted] if fv is not None else []
        if np.isfinite(scores).any():
            return int(np.nanargmax(scores))
        self.note = "no validation AUROC (no rows or one class): default C"
        return self.grid.index(DEFAULT_C)

    def _after_fit(self, f: np.ndarray, y: np.ndarray) -> None:
        return None

    def predict_proba(self, x1: np.ndarray) -> np.ndarray:
        return self._score(self.model_, self.features.transform(x1))


class LogisticL2(_Classifier):
    kind, grid = "logreg", C_GRID

    def _make(self, c: float) -> Pipeline:
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))


class RandomForest(_Classifier):
    kind = "rf"

    def _make(self, c: float) -> Pipeline:
        return make_pipeline(RandomForestClassifier(n_estimators=100, random_state=self.seed, n_jobs=1))


class RowSpace(TransformerMixin, BaseEstimator):
    """[x, 1] in orthonormal coordinates of the row space of the training rows' [X, 1] (r <= n of them),
    from the eigenvectors of the n x n Gram matrix (a fifth of an SVD's time at n = 500, p = 978)."""

    def fit(self, x: np.ndarray, y: object = None) -> RowSpace:
        z = np.column_stack([x, np.ones(len(x))])
        lam, u = np.linalg.eigh(z @ z.T)
        keep = lam > lam[-1] * 1e-12
        self.v_ = z.T @ (u[:, keep] / np.sqrt(lam[keep]))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.column_stack([x, np.ones(len(x))]) @ self.v_


class LinearSVM(_Classifier):
    kind, grid = "svm", C_GRID

    def _make(self, c: float) -> Pipeline:
        return make_pipeline(StandardScaler(), LinearSVC(C=c, max_iter=20000, random_state=self.seed))

    def _fit_grid(self, f: np.ndarray, y: np.ndarray) -> list[Pipeline]:
        """With fewer training rows than features (x1: n < p), the SVM of :meth:`_make` fitted in the row
        space of the training [X, 1]: liblinear penalizes the intercept as the weight of a constant feature,
        so the solution lies in that span (representer theorem), and its dual coordinate descent (what
        LinearSVC runs when n < p) sees the same Gram matrix there, in r <= n coordinates instead of p + 1.
        The same solution (decision values within 1e-4 relative; a test) at 0.5x the CPU time of the C grid
        where the SVM is slow (a null drug, n = 500, p = 978: 19.8 -> 9.7 s) and 0.75x where it is quick
        (1.2 -> 0.9 s). Otherwise (n >= p) LinearSVC as it is (primal, as its dual="auto" chooses)."""
        if f.shape[0] >= f.shape[1]:
            return super()._fit_grid(f, y)
        scale = StandardScaler().fit(f)
        rows = RowSpace().fit(scale.transform(f))
        g = rows.transform(scale.transform(f))
        return [Pipeline([("scale", scale), ("rows", rows),
                          ("svm", LinearSVC(C=c, dual=True, fit_intercept=False, max_iter=20000,
                                            random_state=self.seed).fit(g, y))]) for c in self.grid]

    def _score(self, model: Pipeline, f: np.ndarray) -> np.ndarray:
        return model.decision_function(f)

    def _after_fit(self, f: np.ndarray, y: np.ndarray) -> None:
        """Platt scaling on the training decision values; a non-increasing fit falls back to sigmoid(d)."""
        d = self.model_.decision_function(f)[:, None]
        platt = LogisticRegression(C=1e4, max_iter=5000).fit(d, y)
        a, b = float(platt.coef_[0, 0]), float(platt.intercept_[0])
        self.platt_ = (a, b) if a > 0 else (1.0, 0.0)

    def predict_proba(self, x1: np.ndarray) -> np.ndarray:
        a, b = self.platt_
        return 1.0 / (1.0 + np.exp(-(a * super().predict_proba(x1) + b)))


class TrainingPrior:
    """P(sensitive) = the training response rate, the same for every cell line."""

    heads = ("binary",)
    name = "prior"

    def fit(self, split: ResponseSplit) -> TrainingPrior:
        self.rate_ = float(split.supervised_train()[1].mean())
        return self

    def predict_proba(self, x1: np.ndarray) -> np.ndarray:
        return np.full(len(x1), self.rate_)


class RidgeResponse:
    """Ridge regression of the continuous response on standardized features; alpha by validation RMSE."""

    heads = ("continuous",)

    def __init__(self, features: FeatureSpec = "x1", latent: int | None = None, name: str | None = None):
        self.features = make_features(features, latent)
        self.name = name or f"ridge_{self.features.name}"
        self.note = ""

    def fit(self, split: ResponseSplit) -> RidgeResponse:
        self.features.fit(split)
        x, _, r = split.supervised_train()
        f = self.features.transform(x)
        fitted = [make_pipeline(StandardScaler(), Ridge(alpha=a)).fit(f, r) for a in ALPHA_GRID]
        if len(split.x_val):
            fv = self.features.transform(split.x_val)
            errs = [rmse(split.r_val, m.predict(fv)).value for m in fitted]
            self.alpha_ = ALPHA_GRID[int(np.nanargmin(errs))]
        else:
            self.alpha_, self.note = DEFAULT_ALPHA, "no validation rows: default alpha"
        self.model_ = fitted[ALPHA_GRID.index(self.alpha_)]
        return self

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return self.model_.predict(self.features.transform(x1))


class DrugMean:
    """The drug's mean training response for every cell line (the naive continuous baseline): one value per
    training cell line, so a cell line with several control replicates counts once."""

    heads = ("continuous",)
    name = "drug_mean"

    def fit(self, split: ResponseSplit) -> DrugMean:
        self.mean_ = split.train_mean()
        return self

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return np.full(len(x1), self.mean_)


_CLASSIFIERS = {"logreg": LogisticL2, "rf": RandomForest, "svm": LinearSVM}

RESPONSE_BASELINES: dict[str, Callable[[int, int], object]] = {
    **{f"{k}_{f}": (lambda latent, seed, c=c, f=f: c(f, latent, seed))
       for k, c in _CLASSIFIERS.items() for f in ("x1", "pca")},
    "prior": lambda latent, seed: TrainingPrior(),
    "ridge_x1": lambda latent, seed: RidgeResponse("x1"),
    "drug_mean": lambda latent, seed: DrugMean(),
}


def encoder_baselines(features: Mapping[str, Callable[[np.ndarray], object]], seed: int = 0
                      ) -> dict[str, Callable[[], object]]:
    """Factories of every classifier on each named encoder feature map (e.g. {"pertvae_z1": f, ...}):
    names "<classifier>_<feature name>"."""
    return {f"{k}_{name}": (lambda c=c, fn=fn, full=f"{k}_{name}": c(fn, seed=seed, name=full))
            for name, fn in features.items() for k, c in _CLASSIFIERS.items()}
