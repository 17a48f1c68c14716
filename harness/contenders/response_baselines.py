"""The drug-response baselines of Dr.VAE's paper (pertvae_core.response_baselines): L2 logistic regression,
random forest and linear SVM on the untreated profile x1 and on PCA(x1) at the latent size, and the training
prior (the drug's response rate: AUROC 0.5), each fitted alone on every response split and scored with
Dr.VAE's metrics on the same test cell lines; and the run's own ``--response-method`` plug-ins of the binary
head (here) and of the continuous head (response_regression), each fit in its own process under
``--fit-timeout`` (harness.sandbox.IsolatedResponseMethod) with the test responses hidden."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.contenders.base import Contender
from harness.contenders.response_splits import (
    CONTINUOUS_METRICS,
    PENALTY_WORDS,
    RESPONSE_METRICS,
    calibration_split,
    response_splits,
    run_valid,
)
from harness.task_data import cube_of

if TYPE_CHECKING:
    from harness.config import RunConfig

# The binary-head baselines of pertvae_core.response_baselines.RESPONSE_BASELINES, in report order.
RESPONSE_BASELINE_METHODS = ("logreg_x1", "logreg_pca", "rf_x1", "rf_pca", "svm_x1", "svm_pca", "prior")


def plugin_factories(cfg: RunConfig, head: str, latent: int, seed: int) -> dict:
    """Name -> the sandboxed factory of each of the run's ``--response-method`` plug-ins with ``head``,
    given ``latent`` and the fit's ``seed`` where its constructor names them."""
    from harness.plugin_import import RESPONSE, plugin
    from harness.sandbox import IsolatedResponseMethod

    out = {}
    for spec in cfg.response_method:
        p = plugin(RESPONSE, spec)
        if head in p.heads:
            out[p.name] = IsolatedResponseMethod(p.target, p.kwargs(latent, seed), cfg.fit_timeout)
    return out


def _evaluate_plugin(sp: Any, iso: Any, head: str) -> dict:
    """A plug-in's fit in its own process, scored on ``head``: evaluate_response_methods' row shape."""
    from pertvae_core.isolation import MethodFailed
    from pertvae_core.response_methods import score_predictions

    t0 = time.perf_counter()
    try:
        scores = score_predictions(sp, iso.fit_predict(sp, (head,)))
    except MethodFailed as e:
        return {"scores": {}, "fit_seconds": time.perf_counter() - t0, "status": "failed", "reason": str(e),
                "traceback": e.traceback}
    return {"scores": scores, "fit_seconds": time.perf_counter() - t0, "status": "done", "reason": ""}


def evaluate_each(sp: Any, factories: dict, plugins: dict | None = None, head: str = "binary") -> dict:
    """One split's row with every method fitted in its own failure boundary: a method that fails fails the
    row and is named in ``method_status`` / ``method_reason`` (harness.store), the others' scores count.
    ``plugins``: name -> a sandboxed plug-in (:func:`plugin_factories`), scored on ``head``."""
    from pertvae_core.response_methods import evaluate_response_methods

    row: dict = {"scores": {}, "fit_seconds": 0.0, "method_status": {}, "method_reason": {},
                 "method_traceback": {}}
    for name, make in factories.items():
        r = evaluate_response_methods([sp], {name: make})[0]
        _add(row, name, r, r["reason"].removeprefix(f"{name}: "))   # the method is named beside it
    for name, iso in (plugins or {}).items():
        r = _evaluate_plugin(sp, iso, head)
        _add(row, name, {**r, "scores": {name: r["scores"]} if r["scores"] else {}}, r["reason"])
        if r.get("traceback"):
            row["method_traceback"][name] = r["traceback"]
    failed = [f"{n}: {why}" for n, why in row["method_reason"].items() if why]
    return {**row, "status": "failed" if failed else "done", "reason": "; ".join(failed)}


def _add(row: dict, name: str, r: dict, reason: str) -> None:
    row["scores"].update(r["scores"])
    row["fit_seconds"] += r["fit_seconds"]
    row["method_status"][name], row["method_reason"][name] = r["status"], reason


class ResponseBaselines(Contender):
    name = "response_baselines"
    cheap = True
    methods = RESPONSE_BASELINE_METHODS
    # (classifier, feature set) of each method in the response report (harness.response_report)
    labels = {**{f"{c}_{f}": (cl, fl) for c, cl in (("logreg", "logistic L2"), ("rf", "random forest"),
                                                  ("svm", "linear SVM")) for f, fl in (("x1", "x1"),
                                                                                      ("pca", "PCA(x1)"))},
              "prior": ("training prior", "none")}
    metrics = RESPONSE_METRICS
    response_head = "binary"
    default_latents = (50,)
    legend = ("drug-response classifiers (logistic, random forest, linear SVM) on x1 and on PCA(x1) at the "
              "latent size, and the training prior, each fitted alone per response split")
    method_legends = {m: f"{cl} on {fl}" + ("" if cl == "random forest" else
                                            PENALTY_WORDS)
                      for m, (cl, fl) in labels.items() if m != "prior"} | {
        "prior": "the drug's response rate in the training cell lines (AUROC 0.5 by construction)"}

    def task_data(self, dd: Any, cube_path: str, split_keys: Sequence[tuple[int, int]], cfg: RunConfig
                  ) -> list:
        return response_splits(dd, cube_of(cube_path), split_keys, cfg, self.response_head)

    def run(self, data: Sequence[Any], latent: int, seeds: Sequence[int], cfg: RunConfig) -> list[dict]:
        from pertvae_core.response_baselines import RESPONSE_BASELINES

        def one(sp: Any, seed: int) -> dict:
            # RandomForest's random_state must fit in 32 bits
            built_in = {m: (lambda m=m: RESPONSE_BASELINES[m](latent, seed % 2**32)) for m in self.methods}
            plugins = plugin_factories(cfg, self.response_head, latent, seed)
            return evaluate_each(sp, built_in, plugins, self.response_head)

        def fit(sps: list, at: list[int]) -> list[dict]:
            return [one(sp, seeds[i]) for sp, i in zip(sps, at, strict=True)]

        return run_valid(data, fit)

    def calibration_run(self, data: Sequence[Any], latent: int, cfg: RunConfig) -> Any:
        """The built-in methods alone (a plug-in's cost is its own)."""
        from dataclasses import replace

        return self.run([calibration_split(sp) for sp in data], latent, [0] * len(data),
                        replace(cfg, response_method=()))


class ResponseRegression(ResponseBaselines):
    """The continuous head's baselines: ridge regression on x1 (its penalty chosen by validation RMSE) and the
    drug's mean training response, scored by Pearson, Spearman and RMSE with their chance levels."""

    name = "response_regression"
    methods = ("ridge_x1", "drug_mean")
    labels = {"ridge_x1": ("ridge", "x1"), "drug_mean": ("drug mean", "none")}
    metrics = CONTINUOUS_METRICS
    response_head = "continuous"
    legend = ("continuous drug-response baselines: ridge regression on x1 and the drug's mean training "
              "response, each fitted alone per response split")
    method_legends = {
        "ridge_x1": "ridge regression of the response on x1, its penalty chosen by RMSE on the validation "
                    "cell lines",
        "drug_mean": "the drug's mean response in the training cell lines (RMSE at its chance level, no "
                     "correlation)",
    }
