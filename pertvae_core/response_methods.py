"""The one shape every response method has, Dr.VAE and its ablation in it, and the function that scores any.

A response method is fitted on one split's training data (validation rows may choose its settings; it never
sees the test cell lines) and then predicts from untreated profiles x1 [n, G] (raw gene space):

    method.fit(split: ResponseSplit) -> method
    method.predict_proba(x1) -> P(sensitive) [n]       (binary head)
    method.predict(x1) -> predicted response [n]        (continuous head, the response's units)
    method.heads: tuple of "binary" / "continuous"      (which of the two it has)
    method.name: str                                    (optional; its name in results)

:func:`score_response` scores any fitted method on the split's test rows with the same metrics
(:mod:`pertvae_core.response_metrics`); :func:`evaluate_response_methods` fits and scores a set of methods on
each split. Dr.VAE keeps its batched fit over S splits behind the interface (:func:`fit_drvae_methods`), and
its identity-perturbation ablation is the same fitted model scored as another method ("drvae_identity").

A user's own response method is loaded by :func:`load_response_method` from an import path
``"pkg.module:ClassName"`` (a class, or a function returning a method) or a name registered under the entry
point group ``pertvae_bench.response_methods``, with the same optional hooks as a perturbation plug-in
(pertvae_core.methods: ``name``, constructor keywords ``latent`` and ``seed``); its heads are its ``heads``
attribute, else those whose call it has (pertvae_core.response_isolation.method_heads); a function without a
``heads`` attribute is taken as binary.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pertvae_core.drvae import DrVAEConfig
from pertvae_core.drvae_predict import predict_proba, predict_proba_identity, predict_value
from pertvae_core.drvae_train import DrVAEState, fit_drvae
from pertvae_core.isolation import exception_text
from pertvae_core.methods import MethodFactory, MethodLoadError, resolve_spec
from pertvae_core.response_data import ResponseSplit
from pertvae_core.response_isolation import HEAD_CALLS, method_heads
from pertvae_core.response_metrics import binary_metrics, continuous_metrics

__all__ = ["ResponseMethod", "DrVAEMethod", "fit_drvae_methods", "fit_evaluate_drvae", "score_response",
           "evaluate_response_methods", "score_predictions", "DRVAE", "DRVAE_IDENTITY",
           "RESPONSE_ENTRY_POINT_GROUP", "ResponseMethodFactory", "load_response_method"]

DRVAE, DRVAE_IDENTITY = "drvae", "drvae_identity"
RESPONSE_ENTRY_POINT_GROUP = "pertvae_bench.response_methods"


@runtime_checkable
class ResponseMethod(Protocol):
    """Fit on a split's training rows; predict from untreated profiles (module docstring)."""

    heads: tuple[str, ...]

    def fit(self, split: ResponseSplit) -> ResponseMethod: ...


class DrVAEMethod:
    """Dr.VAE (or, with ``identity``, its ablation: p(z2|z1) replaced by the identity at prediction) as a
    response method. ``fit(split)`` trains one model; :func:`fit_drvae_methods` trains S splits as one
    batched model and returns fitted methods that share it."""

    def __init__(self, cfg: DrVAEConfig, seed: int = 0, identity: bool = False) -> None:
        self.cfg, self.seed, self.identity = cfg, seed, identity
        self.name = DRVAE_IDENTITY if identity else DRVAE
        self.heads = (cfg.head,)

    def fit(self, split: ResponseSplit) -> DrVAEMethod:
        self._attach(fit_drvae([split], self.cfg, [self.seed]), 0)
        return self

    def _attach(self, state: DrVAEState, index: int) -> None:
        self.state_, self.index_ = state, index
        self.status, self.reason = state.status[index], state.reason[index]

    def _rows(self, x1: np.ndarray) -> list[np.ndarray | None]:
        n = len(self.state_.seeds)
        return [np.asarray(x1, np.float32) if s == self.index_ else None for s in range(n)]

    def predict_proba(self, x1: np.ndarray) -> np.ndarray:
        f = predict_proba_identity if self.identity else predict_proba
        return f(self.state_, self._rows(x1))[self.index_]

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return predict_value(self.state_, self._rows(x1), identity=self.identity)[self.index_]


def fit_drvae_methods(splits: Sequence[ResponseSplit], cfg: DrVAEConfig, seeds: Sequence[int]
                      ) -> dict[str, list[DrVAEMethod]]:
    """One batched Dr.VAE fit over S splits; {"drvae": [S methods], "drvae_identity": [S methods]}, the
    ablation sharing the fitted parameters."""
    state = fit_drvae(splits, cfg, seeds)
    out: dict[str, list[DrVAEMethod]] = {DRVAE: [], DRVAE_IDENTITY: []}
    for s, seed in enumerate(seeds):
        for identity in (False, True):
            m = DrVAEMethod(cfg, seed, identity)
            m._attach(state, s)
            out[m.name].append(m)
    return out


def score_response(method: Any, split: ResponseSplit) -> dict[str, float | str]:
    """Metrics of a fitted method on the split's test rows, for each head it has (``heads``): AUROC and AUPR
    of ``predict_proba`` against the test labels; Pearson, Spearman and RMSE of ``predict`` against the test
    responses (RMSE's chance: the training cell lines' mean response, :meth:`ResponseSplit.train_mean`). A
    failed fit (``status`` "failed") gives NaN metrics whose reason is the fit's."""
    heads = tuple(getattr(method, "heads", ()))
    if not heads or not set(heads) <= {"binary", "continuous"}:
        raise ValueError(f"method {getattr(method, 'name', type(method).__name__)!r}: heads must name "
                         f"'binary' and/or 'continuous', got {heads!r}")
    out = score_predictions(split, {h: getattr(method, HEAD_CALLS[h])(split.x_test) for h in heads})
    if getattr(method, "status", "done") != "done":
        for k in [k for k in out if k.endswith("_reason")]:
            out[k] = str(getattr(method, "reason", "failed fit"))
    return out


def score_predictions(split: ResponseSplit, scores: Mapping[str, np.ndarray]) -> dict[str, float | str]:
    """Metrics of the test rows' ``scores`` per head (head -> [n_test]): AUROC and AUPR of the binary head's
    against the test labels; Pearson, Spearman and RMSE of the continuous head's against the test responses
    (RMSE's chance: the training cell lines' mean response, :meth:`ResponseSplit.train_mean`)."""
    out: dict[str, float | str] = {}
    if "binary" in scores:
        out.update(binary_metrics(split.y_test, np.asarray(scores["binary"], np.float64)))
    if "continuous" in scores:
        out.update(continuous_metrics(split.r_test, np.asarray(scores["continuous"], np.float64),
                                      split.train_mean()))
    return out


def evaluate_response_methods(splits: Sequence[ResponseSplit],
                              factories: Mapping[str, Callable[[], Any]]) -> list[dict]:
    """Fit and score every method of ``factories`` (name -> a new unfitted method) on each split.

    One row per split: ``scores`` {method: metrics of :func:`score_response`}, ``fit_seconds`` (all methods),
    ``status``/``reason``: a method that raises ValueError (or a numerical error) fails the split's row with
    its reason and has no scores; the other methods are scored.
    """
    rows = []
    for sp in splits:
        t0 = time.perf_counter()
        scores, reasons = {}, []
        for name, make in factories.items():
            try:
                scores[name] = score_response(make().fit(sp), sp)
            except (ValueError, np.linalg.LinAlgError, FloatingPointError) as e:
                reasons.append(f"{name}: {exception_text(e)}")
        rows.append({"scores": scores, "fit_seconds": time.perf_counter() - t0,
                     "status": "failed" if reasons else "done", "reason": "; ".join(reasons)})
    return rows


def fit_evaluate_drvae(splits: Sequence[ResponseSplit], cfg: DrVAEConfig, seeds: Sequence[int]) -> list[dict]:
    """One batched Dr.VAE fit over ``splits``, scored per split: rows with ``scores`` {"drvae": metrics,
    "drvae_identity": metrics} (:func:`score_response`), ``epochs``, ``best_epoch``, ``fit_seconds`` (the
    batched fit's wall time / S), ``status`` and ``reason`` (a failed split: NaN metrics, its reason)."""
    splits = list(splits)
    methods = fit_drvae_methods(splits, cfg, seeds)
    state = methods[DRVAE][0].state_
    rows = []
    for s, sp in enumerate(splits):
        rows.append({"scores": {name: score_response(ms[s], sp) for name, ms in methods.items()},
                     "epochs": float(state.epochs[s]), "best_epoch": float(state.best_epoch[s]),
                     "fit_seconds": state.fit_seconds / len(splits), "status": state.status[s],
                     "reason": state.reason[s]})
    return rows


class ResponseMethodFactory(MethodFactory):
    """Makes new unfitted instances of a loaded response method (``factory(latent=..., seed=...)``, as
    :class:`pertvae_core.methods.MethodFactory`); ``heads``: the heads it is scored on."""

    def __init__(self, target: Callable[..., Any], name: str, spec: str) -> None:
        super().__init__(target, name, spec)
        try:
            self.heads = (method_heads(target) if inspect.isclass(target) or hasattr(target, "heads")
                          else ("binary",))
        except ValueError as e:
            raise MethodLoadError(f"response method {spec!r}: {e}") from None
        if inspect.isclass(target):
            _check_response_method(target, self.heads, spec)

    def __call__(self, latent: int | None = None, seed: int | None = None) -> Any:
        given = {"latent": latent, "seed": seed}
        obj = self.target(**{k: given[k] for k in self.accepts if given[k] is not None})
        _check_response_method(obj, self.heads, self.spec)
        return obj

    def __repr__(self) -> str:
        return f"ResponseMethodFactory({self.spec!r}, name={self.name!r}, heads={self.heads!r})"


def _check_response_method(obj: Any, heads: Sequence[str], spec: str) -> None:
    calls = ("fit", *(HEAD_CALLS[h] for h in heads))
    lacking = [f"{c}()" for c in calls if not callable(getattr(obj, c, None))]
    if lacking:
        what = obj.__name__ if inspect.isclass(obj) else type(obj).__name__
        raise MethodLoadError(f"response method {spec!r}: {what} lacks {' and '.join(lacking)}; a response "
                              "method needs fit(split) -> self and predict_proba(x1) -> [n] (binary head) "
                              "and/or predict(x1) -> [n] (continuous head)")


def load_response_method(spec: str) -> ResponseMethodFactory:
    """The factory of a response method given as ``"package.module:ClassName"`` or as a name registered
    under :data:`RESPONSE_ENTRY_POINT_GROUP` (module docstring). MethodLoadError (a ValueError naming the
    spec) when the module or attribute is missing, the import fails, the object is neither a class nor a
    function, or a class lacks ``fit`` or its heads' calls."""
    obj, name, spec = resolve_spec(spec, RESPONSE_ENTRY_POINT_GROUP, "response method")
    return ResponseMethodFactory(obj, name, spec)
