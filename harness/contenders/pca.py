"""PCA of Figure 2: the linear reconstruction a VAE is compared with, at the same latent sizes (closed
form: one SVD per split, for all of its latent sizes: a cheap contender's task has them all,
harness.grid.build_grid), on the profiles standardized as the VAE's (``--standardize``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from harness.contenders.base import Contender
from pertvae_core.evaluation import RHO_REC

if TYPE_CHECKING:
    from harness.config import RunConfig
    from pertvae_core.data import SplitData


class PCA(Contender):
    name = "pca"
    cheap = True
    figure2 = True
    figure2_label = "PCA"
    figure2_color = "tab:orange"
    # its reconstruction of x1 is a method of the store's (Figure 2's), not of the benchmark
    paper_scores = {"rho_rec_pert": ("pca", "rho_pred_pert"), "rho_rec": ("pca", RHO_REC)}
    default_latents = (2, 5, 10, 20, 50, 100, 200)
    legend = "PCA: the linear reconstruction at the same latent sizes (Figure 2)"

    def run(self, data: Sequence[SplitData], latent: int, seeds: Sequence[int], cfg: RunConfig
            ) -> list[dict]:
        from pertvae_core import api

        return api.evaluate_pca(data, latent, cfg.standardize)

    def run_latents(self, data: Sequence[SplitData], latents: Sequence[int],
                    seeds: Mapping[int, Sequence[int]], cfg: RunConfig) -> dict[int, list[dict]]:
        from pertvae_core import api

        return api.evaluate_pca_latents(data, latents, cfg.standardize)

    def calibration_run_latents(self, data: Sequence[SplitData], latents: Sequence[int], cfg: RunConfig
                                ) -> dict[int, list[dict]]:
        """One decomposition per split for all of ``latents``, as its task computes them."""
        return self.run_latents(data, latents, {}, cfg)
