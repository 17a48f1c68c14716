"""Non-VAE baselines: PCA reconstruction (paper Figure 2) and the perturbation-prediction baselines.

Everything is fitted on the training split only; the test cell lines are never seen, and a ridge penalty is
chosen on the validation pairs (the data PertVAE uses for early stopping). Pure numpy, float64.

- PCA reconstruction at latent size L (profiles ``xs_train``, the distinct ``x1_train``, ``x2_train`` and
  the unpaired training controls ``xu_train`` stacked, as the plain VAE trains on them:
  :func:`pertvae_core.data.measured_profiles`; genes standardized as the VAE standardizes them,
  FitConfig.standardize: by default the L1000 profiles and the singletons each with their own training
  statistics), the linear counterpart of the VAE's reconstruction: ``rho_rec`` (reconstruction of x1 vs x1)
  and ``rho_rec_pert`` (reconstruction of x1 vs x2), Section 4.2. Pooled, the singletons' platform offset
  took a principal axis: PCA's rho_rec at latent 2 was 0.816 against 0.863 per source (synthetic paper
  cube, vorinostat, split 0/0), a handicap at the small latent sizes where Figure 2 compares it with the VAE.
- Perturbation baselines, each a :class:`pertvae_core.methods.Method` (``fit(split)``, ``predict(x1)``):
  ``identity`` (x2_hat = x1), ``train_mean`` (the mean training x2, whatever x1 is), ``mean_shift``
  (x1 + the mean training change x2 - x1), ``pca_latent_linear`` (the linear twin of PertVAE's drug effect,
  Eq. 3, 5: z = PCA code of the stacked training profiles, standardized as Figure 2's PCA, z2 = z1 + W z1 +
  b by ridge least squares on the training pairs, x2_hat = decode(z2)) and ``ridge_delta`` (the linear model
  of Ahlmann-Eltze et al. 2025 on our task: PCA of the standardized training x1, ridge regression of the
  standardized change x2 - x1 on those components, x2_hat = x1 + the predicted change; a large penalty gives
  mean_shift).
  Ridge penalties are chosen from a grid by the validation pairs' mean squared error in the standardized
  space (:class:`pertvae_core.evaluation.ZSpace`), or a default without validation pairs.

One decomposition per training matrix: the grid scores each split at several latent sizes, and PCA at
latent L is the first L right singular vectors of the same matrix whatever L is, so :func:`principal_axes`
keeps the thin SVD of the last few matrices (an exact fingerprint: shape, dtype and a hash of the bytes;
:data:`SVD_CACHE_BYTES` at most) and every latent truncates it. The numbers are those of a fresh SVD: the
same LAPACK call on the same bytes.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pertvae_core.config import STANDARDIZE
from pertvae_core.data import FIELDS, TEST_FIELDS, checked_fields, measured_profiles
from pertvae_core.evaluation import ZSpace, control_rows, reconstruction_rho
from pertvae_core.metrics import rho_mean

if TYPE_CHECKING:
    from pertvae_core.data import SplitData

__all__ = ["PCA", "fit_pca", "fit_pcas", "principal_axes", "fit_latent_shift", "pca_reconstruction_rho",
           "pca_reconstruction_rhos", "Identity", "TrainMean", "MeanShift", "PCALatentLinear", "RidgeDelta",
           "BASELINES"]

RIDGE_GRID = (1e-6, 1e-4, 1e-2, 1e-1, 1.0, 10.0)
DEFAULT_RIDGE = 1e-2
DELTA_RIDGE_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
DEFAULT_DELTA_RIDGE = 1.0
SVD_CACHE_BYTES = 64 << 20   # ~8 splits of 978 genes: the right singular vectors of each
_svd_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()   # fingerprint -> vt, least recently used first
_svd_lock = threading.Lock()   # a Dask worker may run several tasks in threads of one process


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


def _fingerprint(a: np.ndarray) -> tuple:
    """Shape, dtype and a 256-bit hash of the bytes: equal keys mean equal matrices (a collision aside)."""
    a = np.ascontiguousarray(a)
    return a.shape, a.dtype.str, hashlib.blake2b(a, digest_size=32).digest()


def principal_axes(a: np.ndarray) -> np.ndarray:
    """All right singular vectors vt [min(n, G), G] of ``a`` [n, G] (``np.linalg.svd``, thin), read-only;
    the last few matrices' are cached (module docstring), so that each latent size truncates one SVD."""
    key = _fingerprint(a)
    with _svd_lock:
        vt = _svd_cache.get(key)
        if vt is not None:
            _svd_cache.move_to_end(key)
            return vt
    _, _, vt = np.linalg.svd(a, full_matrices=False)
    vt.flags.writeable = False
    with _svd_lock:
        _svd_cache[key] = vt
        while _svd_cache and sum(v.nbytes for v in _svd_cache.values()) > SVD_CACHE_BYTES:
            _svd_cache.popitem(last=False)
    return vt


def fit_pca(x_train: np.ndarray, latent: int) -> PCA:
    """PCA with ``latent`` components on standardized ``x_train`` [n, G].

    ``latent`` is capped at min(n - 1, G) (the rank of the centred training matrix at most: an n-th axis
    would have no variance, an arbitrary direction of the SVD's null space); the cap is reported in
    ``PCA.note``.
    """
    return fit_pcas(x_train, [latent])[int(latent)]


def _standardization(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene training mean and scale of ``x`` [n, G] (scale 1 where a gene is constant)."""
    sd = x.std(axis=0)
    return x.mean(axis=0), np.where(sd > 0, sd, 1.0)


def fit_pcas(x_train: np.ndarray, latents: Sequence[int], singletons: np.ndarray | None = None
             ) -> dict[int, PCA]:
    """:func:`fit_pca` at each of ``latents`` from one standardization and one decomposition: PCA at latent
    L is the first L principal axes whatever L is, so every size truncates the same SVD (the grid scores
    each split at all of Figure 2's latent sizes in one task).

    ``singletons`` (profiles of another source, FitConfig.standardize "per_source") join the decomposition
    standardized by their own statistics, as the VAE standardizes them; the PCA encodes with those of
    ``x_train``."""
    for latent in latents:
        if isinstance(latent, bool) or not isinstance(latent, int | np.integer) or latent < 1:
            raise ValueError(f"latent must be a positive int, got {latent!r}")
    x = np.asarray(x_train, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"PCA needs a non-empty 2-D training matrix, got shape {x.shape}")
    mean, scale = _standardization(x)
    blocks = [(x - mean) / scale]
    if singletons is not None and len(singletons):
        xs = np.asarray(singletons, dtype=np.float64)
        xs_mean, xs_scale = _standardization(xs)
        blocks.append((xs - xs_mean) / xs_scale)
    vt = principal_axes(np.concatenate(blocks) if len(blocks) > 1 else blocks[0])
    n, g = sum(len(b) for b in blocks), x.shape[1]
    out = {}
    rank = min(max(n - len(blocks), 1), g)   # each centred block of n_b profiles spans n_b - 1 directions
    for latent in latents:
        k = min(int(latent), rank)
        note = "" if k == latent else (f"PCA latent capped at {k} ({n} centred training profiles of {g} "
                                       f"genes span at most {rank} directions)")
        out[int(latent)] = PCA(mean=mean, scale=scale, components=vt[:k].copy(), note=note)
    return out


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


def _arrays(split: SplitData, test: bool = False) -> dict[str, np.ndarray]:
    """The split's arrays as float64, checked; its test pairs only with ``test`` (a fit never reads them:
    the copy a method is fitted on has them hidden, pertvae_core.isolation)."""
    names = FIELDS if test else tuple(f for f in FIELDS if f not in TEST_FIELDS)
    out, genes = checked_fields(split, np.float64, names)
    xu = getattr(split, "xu_train", None)
    out["xu_train"] = np.asarray(np.zeros((0, genes)) if xu is None else xu, dtype=np.float64)
    pairs = (("x1_train", "x2_train"), ("x1_val", "x2_val")) + ((("x1_test", "x2_test"),) if test else ())
    for a, b in pairs:
        if out[a].shape != out[b].shape:
            raise ValueError(f"SplitData.{a} {out[a].shape} and {b} {out[b].shape} must pair row by row")
        if out[a].shape[0] == 0 and a != "x1_val":
            raise ValueError(f"SplitData.{a} has no rows")
    return out


def _training_profiles(x: dict[str, np.ndarray]) -> np.ndarray:
    """The profiles PCA is fitted on: the singletons and the distinct measured training profiles."""
    return np.concatenate([x["xs_train"], measured_profiles(x["x1_train"], x["x2_train"], x["xu_train"])])


def _training_pcas(x: dict[str, np.ndarray], latents: Sequence[int], standardize: str) -> dict[int, PCA]:
    """:func:`fit_pcas` of the training profiles standardized by ``standardize`` (FitConfig.standardize):
    "per_source", the L1000 profiles and the singletons each by their own statistics; "pooled", by one set."""
    if standardize not in STANDARDIZE:
        raise ValueError(f"standardize: must be one of {', '.join(STANDARDIZE)}, got {standardize!r}")
    if standardize == "pooled":
        return fit_pcas(_training_profiles(x), latents)
    return fit_pcas(measured_profiles(x["x1_train"], x["x2_train"], x["xu_train"]), latents,
                    singletons=x["xs_train"])


def pca_reconstruction_rho(split: SplitData, latent: int, standardize: str = "per_source") -> dict:
    """PCA reconstruction of the test x1 at ``latent`` components (Figure 2's PCA curve), the training
    profiles standardized by ``standardize`` as the VAE's (FitConfig.standardize).

    Returns {"rho_rec": rho(recon x1, x1) per distinct test control, averaged per cell line
    (:func:`pertvae_core.evaluation.reconstruction_rho`), "rho_rec_pert": rho(recon x1, x2) per test pair,
    "latent_used": k, "note": str}.
    """
    return pca_reconstruction_rhos(split, [latent], standardize)[int(latent)]


def pca_reconstruction_rhos(split: SplitData, latents: Sequence[int], standardize: str = "per_source"
                            ) -> dict[int, dict]:
    """:func:`pca_reconstruction_rho` at each of ``latents`` (latent -> its dict) from one decomposition of
    the split's training profiles (:func:`fit_pcas`)."""
    x = _arrays(split, test=True)
    pcas = _training_pcas(x, latents, standardize)
    controls, labels = control_rows(split)
    out = {}
    for latent, pca in pcas.items():
        out[latent] = {"rho_rec": reconstruction_rho(controls, labels, pca.reconstruct(controls)),
                       "rho_rec_pert": rho_mean(pca.reconstruct(x["x1_test"]), x["x2_test"]),
                       "latent_used": pca.k, "note": pca.note}
    return out


def _val_mse(split: SplitData, predict: Callable[[np.ndarray], np.ndarray]) -> float:
    """Validation pairs' mean squared error of x2_hat in the training z space (inf if not finite)."""
    zs = ZSpace.from_training(split)
    v = float(np.mean((zs(predict(split.x1_val)) - zs(split.x2_val)) ** 2))
    return v if np.isfinite(v) else np.inf


def _choose(split: SplitData, grid: Sequence[float], default: float,
            make: Callable[[float], Callable[[np.ndarray], np.ndarray]]) -> float:
    if split.x1_val.shape[0] == 0:
        return default
    losses = [_val_mse(split, make(lam)) for lam in grid]
    return float(grid[int(np.argmin(losses))])


class Identity:
    """x2_hat = x1: no drug effect."""

    name = "identity"

    def fit(self, split: SplitData) -> Identity:
        _arrays(split)
        return self

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return np.asarray(x1, dtype=np.float64).copy()


class TrainMean:
    """x2_hat = the mean of the training x2, the same for every cell line (ignores x1)."""

    name = "train_mean"

    def fit(self, split: SplitData) -> TrainMean:
        self.mean_ = _arrays(split)["x2_train"].mean(axis=0)
        return self

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.mean_, np.shape(x1)).copy()


class MeanShift:
    """x2_hat = x1 + mean over training pairs of (x2 - x1): the drug's average change."""

    name = "mean_shift"

    def fit(self, split: SplitData) -> MeanShift:
        x = _arrays(split)
        self.shift_ = (x["x2_train"] - x["x1_train"]).mean(axis=0)
        return self

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return np.asarray(x1, dtype=np.float64) + self.shift_


class PCALatentLinear:
    """z2 = z1 + W z1 + b in the PCA code of the training profiles (Eq. 3, 5 without noise), ridge on W
    chosen on the validation pairs from RIDGE_GRID (``ridge`` fixes it). The profiles are standardized by
    ``standardize`` as PertVAE's (FitConfig.standardize; the same decomposition as Figure 2's PCA)."""

    name = "pca_latent_linear"

    def __init__(self, latent: int, ridge: float | None = None, standardize: str = "per_source") -> None:
        self.latent, self.ridge, self.standardize = latent, ridge, standardize

    def fit(self, split: SplitData) -> PCALatentLinear:
        x = _arrays(split)
        self.pca_ = _training_pcas(x, [self.latent], self.standardize)[int(self.latent)]
        z1, z2 = self.pca_.encode(x["x1_train"]), self.pca_.encode(x["x2_train"])

        def make(lam: float) -> Callable[[np.ndarray], np.ndarray]:
            w, b = fit_latent_shift(z1, z2, ridge=lam)
            return lambda x1: self._decode(x1, w, b)

        self.ridge_ = (self.ridge if self.ridge is not None
                       else _choose(split, RIDGE_GRID, DEFAULT_RIDGE, make))
        self.w_, self.b_ = fit_latent_shift(z1, z2, ridge=self.ridge_)
        return self

    def _decode(self, x1: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        z1 = self.pca_.encode(x1)
        return self.pca_.decode(z1 + z1 @ w.T + b)

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return self._decode(x1, self.w_, self.b_)


class RidgeDelta:
    """x2_hat = x1 + ridge regression of the standardized change on the top ``latent`` principal components
    of the standardized training x1 (module docstring); penalty ``ridge * trace(P^T P) / k`` chosen on the
    validation pairs from DELTA_RIDGE_GRID."""

    name = "ridge_delta"

    def __init__(self, latent: int, ridge: float | None = None) -> None:
        self.latent, self.ridge = latent, ridge

    def fit(self, split: SplitData) -> RidgeDelta:
        x = _arrays(split)
        self.zs_ = ZSpace.from_training(split)
        z1 = self.zs_(x["x1_train"])
        d = self.zs_(x["x2_train"]) - z1
        self.mu_ = z1.mean(axis=0)
        k = min(int(self.latent), *z1.shape)
        self.v_ = principal_axes(z1 - self.mu_)[:k].copy()
        p = (z1 - self.mu_) @ self.v_.T
        self.dmean_ = d.mean(axis=0)
        gram, rhs = p.T @ p, p.T @ (d - self.dmean_)
        scale = max(float(np.trace(gram)) / max(k, 1), np.finfo(float).tiny)

        def coef(lam: float) -> np.ndarray:
            return np.linalg.solve(gram + lam * scale * np.eye(k), rhs)

        def make(lam: float) -> Callable[[np.ndarray], np.ndarray]:
            c = coef(lam)
            return lambda x1: self._predict(x1, c)

        self.ridge_ = (self.ridge if self.ridge is not None
                       else _choose(split, DELTA_RIDGE_GRID, DEFAULT_DELTA_RIDGE, make))
        self.coef_ = coef(self.ridge_)
        return self

    def _predict(self, x1: np.ndarray, coef: np.ndarray) -> np.ndarray:
        x1 = np.asarray(x1, dtype=np.float64)
        change = ((self.zs_(x1) - self.mu_) @ self.v_.T) @ coef + self.dmean_
        return x1 + change * self.zs_.scale

    def predict(self, x1: np.ndarray) -> np.ndarray:
        return self._predict(x1, self.coef_)


# name -> constructor(latent): the perturbation baselines of a "baselines" task, in report order.
BASELINES: dict[str, Callable[[int], Any]] = {
    "identity": lambda latent: Identity(),
    "train_mean": lambda latent: TrainMean(),
    "mean_shift": lambda latent: MeanShift(),
    "pca_latent_linear": lambda latent: PCALatentLinear(latent),
    "ridge_delta": lambda latent: RidgeDelta(latent),
}
