"""PCA reconstruction and perturbation baselines on data with known structure."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pertvae_core.baselines import (
    DEFAULT_RIDGE,
    RIDGE_GRID,
    fit_latent_shift,
    fit_pca,
    pca_reconstruction_rho,
    perturbation_baselines,
)
from pertvae_core.data import SplitData


def _latent_linear(seed: int = 0, genes: int = 40, k: int = 4, n=(80, 20, 30), n_s: int = 40,
                   w_scale: float = 0.8, noise: float = 0.02) -> tuple[SplitData, dict]:
    """x = z A + mu + noise; pairs z2 = z1 + W z1 + b (Eq. 3 without noise), PertVAE's generative model."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, genes))
    mu = rng.normal(size=genes) * 2
    w = w_scale * rng.normal(size=(k, k)) / np.sqrt(k)
    b = rng.normal(size=k)

    def emit(z: np.ndarray) -> np.ndarray:
        return (z @ a + mu + noise * rng.normal(size=(z.shape[0], genes))).astype(np.float32)

    arrays = {}
    for name, m in zip(("train", "val", "test"), n, strict=True):
        z1 = rng.normal(size=(m, k))
        arrays[f"x1_{name}"] = emit(z1)
        arrays[f"x2_{name}"] = emit(z1 + z1 @ w.T + b)
    arrays["xs_train"] = emit(rng.normal(size=(n_s, k)))
    return SplitData(**arrays), {"w": w, "b": b}


def _split_from(**kw: np.ndarray) -> SplitData:
    return SplitData(**{k: np.asarray(v, dtype=np.float32) for k, v in kw.items()})


def test_pca_full_rank_reconstructs_exactly() -> None:
    rng = np.random.default_rng(1)
    g = 12
    x = rng.normal(size=(60, g)) * rng.uniform(0.5, 3, size=g) + rng.normal(size=g)
    pca = fit_pca(x, g)
    y = rng.normal(size=(7, g))
    np.testing.assert_allclose(pca.reconstruct(y), y, atol=1e-10)
    split = _split_from(x1_train=x[:20], x2_train=x[20:40], xs_train=x[40:], x1_val=y[:0], x2_val=y[:0],
                        x1_test=y, x2_test=y[::-1])
    res = pca_reconstruction_rho(split, g)
    assert res["rho_rec"] == pytest.approx(1.0, abs=1e-12)
    assert res["latent_used"] == g and res["note"] == ""
    capped = pca_reconstruction_rho(split, 500)
    assert capped["latent_used"] == g and "capped at 12" in capped["note"]
    assert capped["rho_rec"] == pytest.approx(1.0, abs=1e-12)


def test_pca_matches_sklearn_on_standardized_data() -> None:
    sk = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 15)) @ rng.normal(size=(15, 15))
    y = rng.normal(size=(5, 15)) @ rng.normal(size=(15, 15))
    mean, sd = x.mean(0), x.std(0)
    ref = sk.PCA(n_components=4, svd_solver="full").fit((x - mean) / sd)
    want = ref.inverse_transform(ref.transform((y - mean) / sd)) * sd + mean
    np.testing.assert_allclose(fit_pca(x, 4).reconstruct(y), want, atol=1e-8)


def test_pca_reconstruction_improves_with_latent_size() -> None:
    split, _ = _latent_linear(seed=3)
    rho = [pca_reconstruction_rho(split, k)["rho_rec"] for k in (1, 2, 4)]
    assert rho[0] < rho[1] < rho[2] and rho[2] > 0.99
    # rho_rec_pert scores the same reconstruction against x2: the drug moved x2 away from x1
    assert pca_reconstruction_rho(split, 4)["rho_rec_pert"] < rho[2] - 0.05


def test_meanshift_beats_identity_on_constant_shift() -> None:
    rng = np.random.default_rng(4)
    g = 50
    shift = 3 * rng.normal(size=g)

    def pairs(m: int) -> tuple[np.ndarray, np.ndarray]:
        x1 = rng.normal(size=(m, g))
        return x1, x1 + shift + 0.1 * rng.normal(size=(m, g))

    (a, b), (c, d), (e, f) = pairs(40), pairs(10), pairs(20)
    split = _split_from(x1_train=a, x2_train=b, x1_val=c, x2_val=d, x1_test=e, x2_test=f,
                        xs_train=rng.normal(size=(0, g)))
    res = perturbation_baselines(split, 5)
    assert res["rho_meanshift"] > 0.95
    assert res["rho_meanshift"] > res["rho_identity"] + 0.3


def test_fit_latent_shift_recovers_known_map() -> None:
    rng = np.random.default_rng(5)
    k = 6
    w = 0.5 * rng.normal(size=(k, k))
    b = rng.normal(size=k)
    z1 = rng.normal(size=(200, k))
    w_hat, b_hat = fit_latent_shift(z1, z1 + z1 @ w.T + b, ridge=1e-10)
    np.testing.assert_allclose(w_hat, w, atol=1e-6)
    np.testing.assert_allclose(b_hat, b, atol=1e-6)
    # fewer pairs than latent dimensions: the ridge keeps it defined and finite
    w_few, b_few = fit_latent_shift(z1[:3], (z1 + z1 @ w.T + b)[:3], ridge=1e-2)
    assert np.isfinite(w_few).all() and np.isfinite(b_few).all()


def test_pca_latent_recovers_latent_linear_drug_effect() -> None:
    split, _ = _latent_linear(seed=6)
    res = perturbation_baselines(split, 4)
    assert res["rho_pca_latent"] > 0.98
    assert res["rho_pca_latent"] > res["rho_meanshift"] + 0.02
    assert res["rho_pca_latent"] > res["rho_identity"] + 0.05
    assert res["ridge"] in RIDGE_GRID
    # identity and mean shift follow their definitions directly
    from pertvae_core.metrics import rho_mean

    x1, x2 = split.x1_test.astype(float), split.x2_test.astype(float)
    assert res["rho_identity"] == pytest.approx(rho_mean(x1, x2))
    shift = (split.x2_train.astype(float) - split.x1_train.astype(float)).mean(0)
    assert res["rho_meanshift"] == pytest.approx(rho_mean(x1 + shift, x2))


def test_no_validation_pairs_uses_default_ridge() -> None:
    split, _ = _latent_linear(seed=7, n=(60, 0, 10))
    assert perturbation_baselines(split, 4)["ridge"] == DEFAULT_RIDGE


def test_bad_input_names_the_field() -> None:
    """baselines validate their input themselves (SplitData does too; SimpleNamespace bypasses it)."""
    split, _ = _latent_linear(seed=8, genes=10, n=(10, 3, 4), n_s=0)
    bad = np.array(split.x1_test)
    bad[0, 0] = np.nan
    args = {f: getattr(split, f) for f in ("x1_train", "x2_train", "x1_val", "x2_val", "x2_test", "xs_train")}
    with pytest.raises(ValueError, match="x1_test contains NaN"):
        perturbation_baselines(SimpleNamespace(x1_test=bad, **args), 3)
    with pytest.raises(ValueError, match="xs_train has 9 genes, expected 10"):
        narrow = {**args, "xs_train": np.zeros((2, 9))}
        pca_reconstruction_rho(SimpleNamespace(x1_test=split.x1_test, **narrow), 3)
    with pytest.raises(ValueError, match="latent must be a positive int"):
        pca_reconstruction_rho(split, 0)
    with pytest.raises(ValueError, match="x1_test .* must pair"):
        perturbation_baselines(SimpleNamespace(x1_test=split.x1_test[:2], **args), 3)
    with pytest.raises(ValueError, match="lacks field 'xs_train'"):
        perturbation_baselines(SimpleNamespace(**{k: v for k, v in args.items() if k != "xs_train"},
                                               x1_test=split.x1_test), 3)
