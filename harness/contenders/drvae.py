"""Dr.VAE (Rampasek et al. 2019, pertvae_core.drvae): drug response predicted from the untreated profile by a
semi-supervised VAE that models the drug's perturbation; several splits batched as one model. Its
identity-perturbation ablation (p(z2|z1) replaced by the identity at prediction) is scored as a second
method of the same fits. Its tasks get response splits (harness.contenders.response_splits).
``drvae_continuous`` is the same model with the continuous head (the response itself, scored by Pearson,
Spearman and RMSE): a fit of its own, since the head is part of what is trained."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.contenders.base import Contender
from harness.contenders.response_splits import (
    CONTINUOUS_METRICS,
    RESPONSE_METRICS,
    response_splits,
    run_valid,
)
from harness.task_data import cube_of

if TYPE_CHECKING:
    from harness.config import RunConfig
    from harness.shapes import SplitShape
    from pertvae_core.config import FitConfig
    from pertvae_core.data import SplitData
    from pertvae_core.drvae import DrVAEConfig


def drvae_config(cfg: RunConfig, latent: int, head: str = "binary") -> DrVAEConfig:
    """Dr.VAE's settings from the run's: latent (z1, z2 and z3), network sizes, optimizer step, batches,
    schedule, validation draws and standardization (free bits, --stop-on, --compile and --precision are
    PertVAE's: Dr.VAE has none of them); the MLPs of q(z3|z1,y) and p(z1|z3,y) get one hidden layer of the
    encoder's last width. The classification weight, perturbation weight and weight decay keep the authors'
    values (DrVAEConfig); ``head``: "binary" (the labels) or "continuous" (the response itself)."""
    from pertvae_core.drvae import DrVAEConfig

    fk = cfg.fit_kwargs()
    width = (int(fk["hidden"][-1]),)
    return DrVAEConfig(head=head, latent=int(latent), latent_z3=int(latent), hidden=tuple(fk["hidden"]),
                       context=fk["context"], iaf_steps=fk["iaf_steps"], iaf_hidden=fk["iaf_hidden"],
                       hidden_z3=width, hidden_z1=width, lr=fk["lr"], batch_pairs=fk["batch_pairs"],
                       batch_singletons=fk["batch_singletons"], max_epochs=fk["max_epochs"],
                       patience=fk["patience"], min_epochs=fk["min_epochs"], mc_samples=fk["mc_samples"],
                       val_samples=fk["val_samples"], standardize=fk["standardize"], device=fk["device"])


class DrVAE(Contender):
    name = "drvae"
    head = "binary"
    methods = ("drvae", "drvae_identity")
    # (classifier, feature set) of each method in the response report (harness.response_report)
    labels = {"drvae": ("Dr.VAE", "x1 (model)"),
              "drvae_identity": ("Dr.VAE (identity perturbation)", "x1 (model)")}
    metrics = RESPONSE_METRICS
    default_latents = (50,)
    # Timed by its own short fits (calibration_fit): PertVAE's of the same shapes, its stand-in before, took
    # 7.8-8.0 ms a step of drvae-demo's 10 splits where Dr.VAE's took 14.7 (load 9.5).
    fit_pairs = True
    takes_precision = False   # pertvae_core.drvae builds its layers at fp32, whatever --precision says
    compiles = False   # and trains eagerly, whatever --compile says
    # At the authors' 300-epoch cap an assumption (early stopping on the validation log loss, patience 20,
    # typically stops well before it). drvae-demo (2026-12-03, fp32): every drvae fit of the preset's grid (40
    # fits, 80-epoch cap, patience 10): 11-80 epochs, mean 39.8.
    epoch_fraction = 0.3
    measured_epochs = {"drvae-demo": 39.8}
    legend = ("Dr.VAE: response from the untreated profile through a VAE that models the drug's "
              "perturbation; drvae_identity: the same fits with the perturbation replaced by the identity")
    method_legends = {
        "drvae": "Dr.VAE's response probability from the untreated profile and its predicted "
                 "post-treatment state",
        "drvae_identity": "the same Dr.VAE fits with the drug's perturbation replaced by the identity "
                          "(the ablation: does modelling the perturbation help?)",
    }

    def task_data(self, dd: Any, cube_path: str, split_keys: Sequence[tuple[int, int]], cfg: RunConfig
                  ) -> list:
        return response_splits(dd, cube_of(cube_path), split_keys, cfg, self.head)

    def run(self, data: Sequence[Any], latent: int, seeds: Sequence[int], cfg: RunConfig) -> list[dict]:
        from pertvae_core.response_methods import fit_evaluate_drvae

        dc = drvae_config(cfg, latent, self.head)
        rows = run_valid(data, lambda sps, at: fit_evaluate_drvae(sps, dc, [seeds[i] for i in at]))
        # pertvae_core names the fitted model and its ablation "drvae" and "drvae_identity"
        for r in rows:
            r["scores"] = {m: r["scores"][k] for m, k in zip(self.methods, ("drvae", "drvae_identity"),
                                                             strict=True) if k in r["scores"]}
        return rows

    def calibration_fit(self, data: Sequence[SplitData], fc: FitConfig, cfg: RunConfig, max_steps: int,
                        on_step: Callable[[int, Any], None]) -> Callable[[], Any]:
        """pertvae_core.drvae_train.fit_drvae of ``data`` as response splits (its pairs, singletons,
        validation and test rows, with random responses), evaluated as a task scores it (both methods)."""
        from pertvae_core.drvae_predict import predict_proba, predict_proba_identity, predict_value
        from pertvae_core.drvae_train import fit_drvae
        from pertvae_core.response_data import ResponseSplit

        r = np.random.default_rng(0).standard_normal
        sps = [ResponseSplit(x1_pairs=d.x1_train, x2_pairs=d.x2_train, r_pairs=r(len(d.x1_train)),
                             xs_train=d.xs_train, r_train=r(len(d.xs_train)), x_val=d.x1_val,
                             r_val=r(len(d.x1_val)), x_test=d.x1_test, r_test=r(len(d.x1_test)),
                             binary=self.head == "binary") for d in data]
        state = fit_drvae(sps, drvae_config(cfg, fc.latent, self.head), list(range(len(sps))), max_steps,
                          on_step)
        x = [sp.x_test for sp in sps]
        if self.head == "binary":
            return lambda: (predict_proba(state, x), predict_proba_identity(state, x))
        return lambda: (predict_value(state, x), predict_value(state, x, identity=True))

    def steps_per_epoch(self, sp: SplitShape, cfg: RunConfig) -> int:
        """pertvae_core.drvae_train's epoch: the longer of the pair and the singleton batches."""
        bp, bs = cfg.batch_pairs, cfg.batch_singletons
        singles = sp.n_single
        return max(1, math.ceil(sp.n_train / bp), math.ceil(singles / bs) if bs else 0)


class DrVAEContinuous(DrVAE):
    """Dr.VAE's continuous head: q(y|z1, z2) Gaussian on the standardized response, predicted in the
    response's units; scored by Pearson, Spearman and RMSE. Its fits are Dr.VAE's own, apart from the head."""

    name = "drvae_continuous"
    head = "continuous"
    methods = ("drvae_continuous", "drvae_continuous_identity")
    labels = {"drvae_continuous": ("Dr.VAE (continuous head)", "x1 (model)"),
              "drvae_continuous_identity": ("Dr.VAE (continuous head, identity perturbation)", "x1 (model)")}
    metrics = CONTINUOUS_METRICS
    # drvae-demo (2026-12-03, fp32, the preset with both heads): every drvae_continuous fit of its grid (40
    # fits, 80-epoch cap, patience 10): 11-60 epochs, mean 29.0 (the binary head's in the same run: 39.75).
    measured_epochs = {"drvae-demo": 29.0}
    legend = ("Dr.VAE's continuous head: the response itself (not a label) from the untreated profile; "
              "drvae_continuous_identity: the same fits with the perturbation replaced by the identity")
    method_legends = {
        "drvae_continuous": "Dr.VAE's continuous head: the predicted response from the untreated profile and "
                            "its predicted post-treatment state",
        "drvae_continuous_identity": "the same continuous-head fits with the drug's perturbation replaced by "
                                     "the identity",
    }
