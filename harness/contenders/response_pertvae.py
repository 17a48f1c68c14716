"""PertVAE's latent features fed to the drug-response classifiers (the Dr.VAE paper's baselines on z1, z2 and
[z1, z2 - z1]): per response split, a PertVAE trained on that split's training cell lines alone (their pairs
and untreated singletons; early stopping on the validation cell lines' pairs; pertvae_core.response_features
.fit_pertvae_features), then L2 logistic regression, random forest and linear SVM on its features, each in
its own failure boundary, scored with Dr.VAE's metrics on the same test cell lines. Several splits batch as
one PertVAE fit, as the perturbation benchmark's."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.contenders.base import Contender, fit_config
from harness.contenders.response_baselines import evaluate_each
from harness.contenders.response_splits import (
    PENALTY_WORDS,
    RESPONSE_METRICS,
    failed_row,
    response_splits,
    run_valid,
)
from harness.task_data import cube_of

if TYPE_CHECKING:
    from harness.config import RunConfig
    from harness.shapes import SplitShape

_CLASSIFIERS = (("logreg", "logistic L2"), ("rf", "random forest"), ("svm", "linear SVM"))
_FEATURES = (("z1", "PertVAE z1"), ("z2", "PertVAE z2"), ("z1_dz", "PertVAE [z1, z2 − z1]"))


class ResponsePertVAE(Contender):
    name = "response_pertvae"
    # pertvae_core.response_baselines.encoder_baselines' names: <classifier>_pertvae_<feature>
    methods = tuple(f"{c}_pertvae_{f}" for c, _ in _CLASSIFIERS for f, _ in _FEATURES)
    # (classifier, feature set) of each method in the response report (harness.response_report)
    labels = {f"{c}_pertvae_{f}": (cl, fl) for c, cl in _CLASSIFIERS for f, fl in _FEATURES}
    metrics = RESPONSE_METRICS
    default_latents = (50,)
    fit_pairs = True          # timed by PertVAE's short fits: the classifiers are cheap beside it
    # PertVAE's own prior (harness.contenders.pertvae) where not measured. drvae-demo (2026-12-03, fp32):
    # every response_pertvae fit of the preset's grid (40 fits, 80-epoch cap, patience 10): 24-80 epochs,
    # mean 48.6.
    epoch_fraction = 0.5
    measured_epochs = {"drvae-demo": 48.6}
    legend = ("drug-response classifiers (logistic, random forest, linear SVM) on the latents z1, z2 and "
              "[z1, z2 - z1] of a PertVAE trained on each split's training cell lines")
    method_legends = {m: f"{cl} on {fl} of a PertVAE fitted on the training cell lines"
                      + ("" if cl == "random forest" else PENALTY_WORDS)
                      for m, (cl, fl) in labels.items()}

    def task_data(self, dd: Any, cube_path: str, split_keys: Sequence[tuple[int, int]], cfg: RunConfig
                  ) -> list:
        return response_splits(dd, cube_of(cube_path), split_keys, cfg)

    def run(self, data: Sequence[Any], latent: int, seeds: Sequence[int], cfg: RunConfig) -> list[dict]:
        return run_valid(data, lambda sps, at: _fit_score(sps, [seeds[i] for i in at], latent, cfg))

    def steps_per_epoch(self, sp: SplitShape, cfg: RunConfig) -> int:
        """pertvae_core.train.fit's epoch: the longer of the pair and the singleton batches (no unpaired
        controls: a response split has none)."""
        bp, bs = cfg.batch_pairs, cfg.batch_singletons
        return max(1, math.ceil(sp.n_train / bp), math.ceil(sp.n_single / bs) if bs else 0)


def _fit_score(splits: list, seeds: list[int], latent: int, cfg: RunConfig) -> list[dict]:
    """One batched PertVAE over ``splits``, then every classifier on each split's features (a split whose
    PertVAE failed: a failed row with its reason)."""
    from pertvae_core.response_baselines import encoder_baselines
    from pertvae_core.response_features import fit_pertvae_features

    state, feats = fit_pertvae_features(splits, fit_config(cfg, latent), seeds)
    rows = []
    for s, sp in enumerate(splits):
        if state.status[s] != "done":
            rows.append(failed_row(f"PertVAE fit: {state.reason[s]}"))
            continue
        t0 = time.perf_counter()
        # RandomForest's random_state must fit in 32 bits
        row = evaluate_each(sp, encoder_baselines(feats[s], seed=seeds[s] % 2**32))
        rows.append({**row, "epochs": float(state.epochs[s]), "best_epoch": float(state.best_epoch[s]),
                     "fit_seconds": state.fit_seconds / len(splits) + time.perf_counter() - t0,
                     "steps_compiled": state.steps_compiled})   # for its products (harness.tasks)
    return rows
