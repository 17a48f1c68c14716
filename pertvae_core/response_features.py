"""Feature maps of untreated profiles for the response baselines, each fitted on training rows only.

- ``"x1"``: the profile itself (the classifiers standardize genes by their training statistics).
- ``"pca"``: PCA(x1) with ``latent`` components (:func:`pertvae_core.baselines.fit_pca`: genes standardized by
  training statistics), fitted on every training untreated profile of the split (distinct pair controls and
  singletons, labelled or not; :meth:`ResponseSplit.untreated_train`), never on validation or test rows.
- a callable ``features(x1) -> [n, d]``: any encoder the caller fitted on the same split's training data,
  e.g. :func:`pertvae_latents` of a fitted PertVAE (z1, z2 or [z1, z2 - z1], the Dr.VAE paper's baselines).

:func:`fit_pertvae_features` fits that PertVAE on a response split's training data alone
(:func:`pertvae_split`), batched over splits, and gives each split's three feature maps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from pertvae_core.baselines import PCA, fit_pca
from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData
from pertvae_core.response_data import ResponseSplit
from pertvae_core.train import FitState, fit

__all__ = ["FeatureMap", "FeatureSpec", "make_features", "pertvae_latents", "LATENT_KINDS", "pertvae_split",
           "fit_pertvae_features"]

FeatureSpec = str | Callable[[np.ndarray], Any]
LATENT_KINDS = ("z1", "z2", "z1_dz")


class FeatureMap:
    """``fit(split)`` then ``transform(x1) -> [n, d]`` float64 (module docstring); ``name`` names it."""

    def __init__(self, spec: FeatureSpec, latent: int | None = None, name: str | None = None) -> None:
        if isinstance(spec, str) and spec not in ("x1", "pca"):
            raise ValueError(f"features {spec!r}: must be 'x1', 'pca' or a callable features(x1) -> array")
        if spec == "pca" and (latent is None or isinstance(latent, bool) or int(latent) < 1):
            raise ValueError(f"features 'pca' needs a positive latent size, got {latent!r}")
        self.spec, self.latent = spec, latent
        self.name = name or (spec if isinstance(spec, str) else getattr(spec, "__name__", "encoder"))
        self.pca_: PCA | None = None

    def fit(self, split: ResponseSplit) -> FeatureMap:
        if self.spec == "pca":
            self.pca_ = fit_pca(split.untreated_train(), int(self.latent))  # type: ignore[arg-type]
        return self

    def transform(self, x1: np.ndarray) -> np.ndarray:
        x1 = np.asarray(x1, dtype=np.float64)
        if self.spec == "x1":
            return x1
        if self.spec == "pca":
            if self.pca_ is None:
                raise ValueError("features 'pca': fit(split) before transform")
            return self.pca_.encode(x1)
        f = np.asarray(self.spec(x1), dtype=np.float64)  # type: ignore[operator]
        if f.ndim != 2 or f.shape[0] != x1.shape[0] or not np.isfinite(f).all():
            raise ValueError(f"features {self.name!r}: expected finite values of shape [{x1.shape[0]}, d], "
                             f"got shape {f.shape}")
        return f


def make_features(spec: FeatureSpec | FeatureMap, latent: int | None = None) -> FeatureMap:
    """A new unfitted :class:`FeatureMap` for ``spec`` (a FeatureMap is copied by its spec)."""
    if isinstance(spec, FeatureMap):
        return FeatureMap(spec.spec, spec.latent, spec.name)
    return FeatureMap(spec, latent)


def pertvae_latents(state: Any, s: int, kind: str) -> Callable[[np.ndarray], np.ndarray]:
    """Features from split ``s`` of a fitted batched PertVAE (:class:`pertvae_core.train.FitState`):
    z1 = the encoder's deterministic path (noise 0: IAF applied to the posterior mean), z2 = the mean of
    p(z2|z1) (Eq. 5), and ``kind`` "z1", "z2" or "z1_dz" ([z1, z2 - z1]). Profiles are standardized as the
    fit standardized its L1000 pairs."""
    if kind not in LATENT_KINDS:
        raise ValueError(f"pertvae_latents: kind {kind!r} must be one of {', '.join(LATENT_KINDS)}")
    model, std = state.model, state.std

    @torch.no_grad()
    def features(x1: np.ndarray) -> np.ndarray:
        S = int(std.mean.shape[0])
        rows = [np.asarray(x1, np.float32) if j == s else np.zeros((0, x1.shape[1]), np.float32)
                for j in range(S)]
        X, _ = std.forward(rows, min_rows=max(1, len(x1)))
        model.eval()
        z1, _ = model.encode(X, torch.zeros(X.shape[:2] + (model.latent,), device=X.device))
        z2 = model.drug_effect(z1)[0]
        out = {"z1": z1, "z2": z2, "z1_dz": torch.cat([z1, z2 - z1], -1)}[kind]
        return out[s, : len(x1)].double().cpu().numpy()

    features.__name__ = f"pertvae_{kind}"
    return features


def pertvae_split(split: ResponseSplit) -> SplitData:
    """The data a PertVAE for ``split``'s classifiers trains on: the training cell lines' pairs and untreated
    singletons, and the validation cell lines' pairs for early stopping (none: it trains ``max_epochs``).
    No validation or test singleton, and no response, reaches it. SplitData requires test pairs, which
    :func:`pertvae_core.train.fit` never reads: the first training pair stands in for them."""
    return SplitData(split.x1_pairs, split.x2_pairs, split.x1_val_pairs, split.x2_val_pairs,
                     split.x1_pairs[:1], split.x2_pairs[:1], split.xs_train)


def fit_pertvae_features(splits: Sequence[ResponseSplit], cfg: FitConfig, seeds: Sequence[int]
                         ) -> tuple[FitState, list[dict[str, Callable[[np.ndarray], np.ndarray]]]]:
    """One batched PertVAE over the splits' :func:`pertvae_split` (split s seeded by ``seeds[s]``) and, per
    split, {"pertvae_z1", "pertvae_z2", "pertvae_z1_dz": features(x1)} (:func:`pertvae_latents`).

    The fit standardizes genes with one pooled set of training statistics (``standardize="pooled"``,
    whatever ``cfg`` says): the classifiers encode training pair controls and singletons alike and
    predict singletons, so every profile must be standardized the same way, as the encoder saw it."""
    state = fit([pertvae_split(sp) for sp in splits], dataclasses.replace(cfg, standardize="pooled"), seeds)
    return state, [{f"pertvae_{k}": pertvae_latents(state, s, k) for k in LATENT_KINDS}
                   for s in range(len(splits))]
