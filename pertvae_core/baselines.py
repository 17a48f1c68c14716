"""Non-VAE baselines: PCA reconstruction (paper Figure 2) and perturbation-prediction baselines.

All fitted on the training split only (profiles ``xs_train``, ``x1_train``, ``x2_train`` stacked), with genes
standardized by training statistics; correlations are computed in the original gene space on the test pairs.

- PCA reconstruction at latent size L, the linear counterpart of the VAE's reconstruction: ``rho_rec``
  (reconstruction of x1 vs x1) and ``rho_rec_pert`` (reconstruction of x1 vs x2), as in Section 4.2.
- identity: x2 predicted as x1.
- mean shift: x2 predicted as x1 + mean over training pairs of (x2 - x1).
- PCA latent linear model, the linear twin of PertVAE's drug effect (Eq. 3, 5): z = PCA code,
  z2 = z1 + W z1 + b fitted by ridge-regularized least squares on the training pairs, x2 = decode(z2);
  the ridge strength is chosen from RIDGE_GRID by the validation pairs' rho (the data PertVAE uses for
  early stopping), or DEFAULT_RIDGE when there are no validation pairs.

Each value is :func:`pertvae_core.metrics.rho_mean`: the mean over test pairs of the per-pair Spearman.
Pure numpy, float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pertvae_core.metrics import rho_mean

if TYPE_CHECKING:
    from pertvae_core.data import SplitData

__all__ = ["PCA", "fit_pca", "fit_latent_shift", "pca_reconstruction_rho", "perturbation_baselines"]

RIDGE_GRID = (1e-6, 1e-4, 1e-2, 1e-1, 1.0, 10.0)
DEFAULT_RIDGE = 1e-2
_FIELDS = ("x1_train", "x2_train", "x1_val", "x2_val", "x1_test", "x2_test", "xs_train")


@dataclass(frozen=True)
class PCA:
    """Per-gene standardization (training mean/std) followed by the top-k principal axes."""

    mean: np.ndarray        # [G]
    scale: np.ndarray       # [G], 1 where a gene is constant in training
    components: np.ndarray  # [k, G], orthonormal rows
    note: str = ""

    @property
    def k(self) -> int:
        return int(self.components.shape[0])

    def encode(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.components.T

    def decode(self, z: np.ndarray) -> np.ndarray:
        return (np.asarray(z, np.float64) @ self.components) * self.scale + self.mean

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return self.decode(self.encode(x))


def fit_pca(x_train: np.ndarray, latent: int) -> PCA:
    """PCA with ``latent`` components on standardized ``x_train`` [n, G].

    ``latent`` is capped at min(n, G) (the most components the training matrix has); the cap is reported in
    ``PCA.note``.
    """
    if isinstance(latent, bool) or not isinstance(latent, int | np.integer) or latent < 1:
        raise ValueError(f"latent must be a positive int, got {latent!r}")
    x = np.asarray(x_train, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"PCA needs a non-empty 2-D training matrix, got shape {x.shape}")
    n, g = x.shape
    k = min(int(latent), n, g)
    note = "" if k == latent else f"PCA latent capped at {k} (min of {n} training profiles, {g} genes)"
    mean = x.mean(axis=0)
    sd = x.std(axis=0)
    scale = np.where(sd > 0, sd, 1.0)
    _, _, vt = np.linalg.svd((x - mean) / scale, full_matrices=False)
    return PCA(mean=mean, scale=scale, components=vt[:k].copy(), note=note)


def fit_latent_shift(z1: np.ndarray, z2: np.ndarray, ridge: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Least squares for z2 = z1 + W z1 + b (Eq. 3, 5 without noise) over the paired rows of z1, z2 [n, k].

    Ridge penalty ``ridge * trace(Z1c^T Z1c) / k`` on W (not on b), so the fit is defined for n < k.
    Returns (W [k, k], b [k]); a prediction is ``z1 + z1 @ W.T + b``.
    """
    z1 = np.asarray(z1, np.float64)
    z2 = np.asarray(z2, np.float64)
    if z1.shape != z2.shape or z1.ndim != 2 or z1.shape[0] < 1:
        raise ValueError(f"fit_latent_shift needs equal non-empty 2-D arrays, got {z1.shape} and {z2.shape}")
    k = z1.shape[1]
    m1 = z1.mean(axis=0)
    dmean = (z2 - z1).mean(axis=0)
    c1 = z1 - m1
    cd = (z2 - z1) - dmean
    gram = c1.T @ c1
    lam = ridge * max(float(np.trace(gram)) / k, np.finfo(float).tiny)
    wt = np.linalg.solve(gram + lam * np.eye(k), c1.T @ cd)  # [k, k] = W^T
    w = wt.T
    b = dmean - m1 @ wt
    return w, b


def _arrays(split: SplitData) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    genes = None
    for f in _FIELDS:
        if not hasattr(split, f):
            raise ValueError(f"SplitData lacks field {f!r}")
        a = np.asarray(getattr(split, f), dtype=np.float64)
        if a.ndim != 2:
            raise ValueError(f"SplitData.{f} must be 2-D [rows, genes], got shape {a.shape}")
        if genes is None:
            genes = a.shape[1]
        elif a.shape[1] != genes:
            raise ValueError(f"SplitData.{f} has {a.shape[1]} genes, expected {genes}")
        if not np.isfinite(a).all():
            raise ValueError(f"SplitData.{f} contains NaN or inf")
        out[f] = a
    for a, b in (("x1_train", "x2_train"), ("x1_val", "x2_val"), ("x1_test", "x2_test")):
        if out[a].shape != out[b].shape:
            raise ValueError(f"SplitData.{a} {out[a].shape} and {b} {out[b].shape} must pair row by row")
        if out[a].shape[0] == 0 and a != "x1_val":
            raise ValueError(f"SplitData.{a} has no rows")
    return out


def _training_pca(x: dict[str, np.ndarray], latent: int) -> PCA:
    return fit_pca(np.concatenate([x["xs_train"], x["x1_train"], x["x2_train"]], axis=0), latent)


def pca_reconstruction_rho(split: SplitData, latent: int) -> dict:
    """PCA reconstruction of the test x1 at ``latent`` components (Figure 2's PCA curve).

    Returns {"rho_rec": rho(recon x1, x1), "rho_rec_pert": rho(recon x1, x2), "latent_used": k, "note": str}.
    """
    x = _arrays(split)
    pca = _training_pca(x, latent)
    rec = pca.reconstruct(x["x1_test"])
    return {"rho_rec": rho_mean(rec, x["x1_test"]), "rho_rec_pert": rho_mean(rec, x["x2_test"]),
            "latent_used": pca.k, "note": pca.note}


def perturbation_baselines(split: SplitData, latent: int, ridge: float | None = None) -> dict:
    """Identity, mean-shift and PCA-latent-linear predictions of the test x2, scored against observed x2.

    ``ridge`` None selects the latent model's ridge strength on the validation pairs (see module docstring).
    Returns {"rho_identity", "rho_meanshift", "rho_pca_latent", "ridge", "latent_used", "note"}.
    """
    x = _arrays(split)
    x1, x2 = x["x1_test"], x["x2_test"]
    shift = (x["x2_train"] - x["x1_train"]).mean(axis=0)
    pca = _training_pca(x, latent)
    z1_train, z2_train = pca.encode(x["x1_train"]), pca.encode(x["x2_train"])

    def predict(x1_: np.ndarray, lam: float) -> np.ndarray:
        w, b = fit_latent_shift(z1_train, z2_train, ridge=lam)
        z1 = pca.encode(x1_)
        return pca.decode(z1 + z1 @ w.T + b)

    if ridge is None:
        if x["x1_val"].shape[0] > 0:
            scores = [rho_mean(predict(x["x1_val"], lam), x["x2_val"]) for lam in RIDGE_GRID]
            scores = [s if np.isfinite(s) else -np.inf for s in scores]
            ridge = RIDGE_GRID[int(np.argmax(scores))]
        else:
            ridge = DEFAULT_RIDGE
    return {"rho_identity": rho_mean(x1, x2), "rho_meanshift": rho_mean(x1 + shift, x2),
            "rho_pca_latent": rho_mean(predict(x1, ridge), x2), "ridge": float(ridge),
            "latent_used": pca.k, "note": pca.note}
