"""The perturbation baselines (pertvae_core.baselines.BASELINES: no change, the training mean, the mean
shift, PertVAE's linear twin in a PCA code, ridge on the change) and the run's own ``--method`` plug-ins,
each fitted alone on every split and scored like PertVAE."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.contenders.base import Contender
from pertvae_core.baselines import BASELINES

if TYPE_CHECKING:
    from harness.config import RunConfig
    from pertvae_core.data import SplitData


def method_factories(cfg: RunConfig, latent: int, seed: int) -> dict:
    """Name -> a maker of a new unfitted method, for the baselines at ``latent`` and the run's own methods
    (``cfg.method``), each given ``latent`` and the fit's ``seed``. The run's own methods run each fit in a
    fresh process under ``cfg.fit_timeout`` (harness.sandbox); this process never imports them
    (harness.plugin_import)."""
    from harness.plugin_import import METHOD, plugin
    from harness.sandbox import IsolatedMethod

    out: dict = {name: functools.partial(make, latent) for name, make in BASELINES.items()}
    for spec in cfg.method:
        p = plugin(METHOD, spec)
        out[p.name] = IsolatedMethod(p.target, p.kwargs(latent, seed), cfg.fit_timeout)
    return out


class Baselines(Contender):
    name = "baselines"
    cheap = True
    methods = tuple(BASELINES)
    hosts_user_methods = True
    default_latents = (100,)
    method_legends = {
        "identity": "'the drug changes nothing': the treated profile predicted to equal the untreated one "
                    "(scores each change metric's chance level by definition, but delta_pearson_centered's "
                    "only on average: there it predicts minus the training average change)",
        "train_mean": "the average treated profile of the training cell lines, the same for every cell line",
        "mean_shift": "the untreated profile plus the drug's average change in the training cell lines (one "
                      "change for all cell lines)",
        "pca_latent_linear": "a linear drug effect (z2 = z1 + W z1 + b, fitted by ridge) in a PCA code of "
                             "the training profiles instead of a VAE's latent space",
        "ridge_delta": "a linear regression of the change on the untreated profile's principal components "
                       "(Ahlmann-Eltze et al. 2025)",
    }
    legend = ("the perturbation baselines (the PCA latent-shift baseline uses the latent size) and the run's "
              "own --method plug-ins, each fitted alone per split")

    def run(self, data: Sequence[SplitData], latent: int, seeds: Sequence[int], cfg: RunConfig
            ) -> list[dict]:
        from pertvae_core import api

        return [api.evaluate_methods([sp], method_factories(cfg, latent, seed), cfg.save_predictions)[0]
                for sp, seed in zip(data, seeds, strict=True)]

    def calibration_run(self, data: Sequence[SplitData], latent: int, cfg: RunConfig) -> Any:
        """The built-in baselines alone (a plug-in's cost is its own)."""
        from pertvae_core import api

        return api.evaluate_baselines(data, latent)
