"""Small simulated response splits with a known truth, for the response tests.

Each cell line has an untreated latent state u ~ N(0, I_k); its profile x1 = A u + noise (genes); the drug
moves the state to u + M u + c, so x2 = A (u + M u + c) + noise. The continuous response r of a cell line:
- "untreated": u_0 (+ small noise): a direction of the untreated profile, visible to every method on x1;
- "effect": (M u)_1, driven by the drug's effect (M is constructed so that (M u)_1 = 2 u_1 here);
- "null": independent noise: nothing predicts it.
``truth`` is the noise-free score, from which the test's Bayes-like AUROC is computed independently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pertvae_core.response_data import ResponseSplit
from pertvae_core.response_labels import LabelRule


@dataclass
class Sim:
    split: ResponseSplit
    truth_test: np.ndarray


def simulate(kind: str, seed: int = 0, genes: int = 20, k: int = 3, n_pairs: int = 40, n_single: int = 120,
             n_val: int = 40, n_test: int = 120, unlabelled: float = 0.25, noise: float = 0.3,
             rule: LabelRule | None = None) -> Sim:
    """A :class:`ResponseSplit` of the given truth ``kind``; replicate-free, one row per cell line."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(k, genes))
    M = np.zeros((k, k))
    M[1, 1] = 2.0
    c = rng.normal(size=k)

    def cells(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        u = rng.normal(size=(n, k))
        x1 = u @ A + noise * rng.normal(size=(n, genes))
        x2 = (u + u @ M.T + c) @ A + noise * rng.normal(size=(n, genes))
        truth = {"untreated": u[:, 0], "effect": (u @ M.T)[:, 1], "null": np.zeros(n)}[kind]
        r = truth + (0.2 if kind != "null" else 1.0) * rng.normal(size=n)
        return x1.astype(np.float32), x2.astype(np.float32), r, truth

    x1p, x2p, rp, _ = cells(n_pairs)
    xs, _, rs, _ = cells(n_single)
    xv, _, rv, _ = cells(n_val)
    xt, _, rt, truth = cells(n_test)
    rp[rng.random(n_pairs) < unlabelled] = np.nan
    rs[rng.random(n_single) < unlabelled] = np.nan
    sp = ResponseSplit(x1p, x2p, rp, xs, rs, xv, rv, xt, rt, rule=rule or LabelRule("quantile", 0.5))
    return Sim(sp, truth)
