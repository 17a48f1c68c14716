"""Response predictions of a fitted batched Dr.VAE from untreated profiles alone, and the identity ablation.

- :func:`predict_proba`: P(y=1 | x1) = (1/K) sum_k q(y=1 | z1_k, z2_k), z1_k ~ q(z1|x1), z2_k ~ p(z2|z1_k)
  (K = ``cfg.mc_samples``), the binary head's score of a test singleton.
- :func:`predict_proba_identity`: the ablation of the authors' code (their forward_w_pert_identity), the same
  fitted parameters with p(z2|z1) replaced by the identity, z2_k = z1_k.
- :func:`predict_value`: the continuous head's Monte Carlo mean of q(y|z1, z2) in the response's units
  (``identity`` for its ablation).
Each split's draws come from a fresh copy of its own evaluation generator (``seed_streams(seed)["eval"]``):
a prediction is a function of the fitted parameters, the rows and the seed only (not of earlier calls or
the other splits), and the model and its ablation see the same z1 draws (a paired comparison). A failed
split predicts NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pertvae_core.drvae_train import DrVAEState
from pertvae_core.train import seed_streams

__all__ = ["predict_proba", "predict_proba_identity", "predict_value"]


@torch.no_grad()
def _draws(state: DrVAEState, x1: Sequence[np.ndarray | None], identity: bool) -> list[np.ndarray]:
    """Per split, the classifier outputs [K, n_s] for rows x1[s] (None: split skipped, empty result)."""
    model, S = state.model, len(state.seeds)
    if len(x1) != S:
        raise ValueError(f"predict: {len(x1)} arrays for {S} splits")
    G, L, K = model.genes, model.latent, state.cfg.mc_samples
    rows = []
    for s, a in enumerate(x1):
        a = np.zeros((0, G), np.float32) if a is None else np.asarray(a, np.float32)
        if a.ndim != 2 or a.shape[1] != G:
            raise ValueError(f"predict: x1 for split {s} must be [rows, {G}], got shape {a.shape}")
        rows.append(a)
    X, n = state.std.forward_singletons(rows)
    eps1 = torch.zeros(S, K, X.shape[1], L)
    eps2 = torch.zeros_like(eps1)
    for s in range(S):
        g = seed_streams(state.seeds[s])["eval"]
        eps1[s, :, : n[s]] = torch.randn((K, n[s], L), generator=g)
        eps2[s, :, : n[s]] = torch.randn((K, n[s], L), generator=g)
    model.eval()
    out = model.response_draws(X, eps1.to(X.device), eps2.to(X.device), identity=identity)
    res = []
    for s in range(S):
        o = out[s, :, : n[s]].double().cpu().numpy()
        res.append(np.full_like(o, np.nan) if state.status[s] != "done" else o)
    return res


def _check_head(state: DrVAEState, head: str) -> None:
    if state.cfg.head != head:
        raise ValueError(f"this Dr.VAE has the {state.cfg.head} head; the {head} head's prediction was asked")


def predict_proba(state: DrVAEState, x1: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    """P(sensitive | x1) [n_s] per split for rows x1[s] [n_s, G] (raw gene space; None skips a split)."""
    _check_head(state, "binary")
    return [(1.0 / (1.0 + np.exp(-o))).mean(0) for o in _draws(state, x1, identity=False)]


def predict_proba_identity(state: DrVAEState, x1: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    """:func:`predict_proba` of the same fitted model with p(z2|z1) replaced by the identity (z2 = z1)."""
    _check_head(state, "binary")
    return [(1.0 / (1.0 + np.exp(-o))).mean(0) for o in _draws(state, x1, identity=True)]


def predict_value(state: DrVAEState, x1: Sequence[np.ndarray | None], identity: bool = False
                  ) -> list[np.ndarray]:
    """The continuous head's predicted response [n_s] per split, in the response's units."""
    _check_head(state, "continuous")
    return [o.mean(0) * state.y_scale[s] + state.y_mean[s]
            for s, o in enumerate(_draws(state, x1, identity=identity))]
