"""PCA reconstruction and perturbation baselines on data with known structure."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.decomposition import PCA

from pertvae_core.baselines import (
    BASELINES,
    DEFAULT_DELTA_RIDGE,
    DEFAULT_RIDGE,
    DELTA_RIDGE_GRID,
    RIDGE_GRID,
    Identity,
    MeanShift,
    PCALatentLinear,
    RidgeDelta,
    TrainMean,
    fit_latent_shift,
    fit_pca,
    pca_reconstruction_rho,
)
from pertvae_core.data import SplitData
from pertvae_core.evaluation import ZSpace
from pertvae_core.methods import Method
from pertvae_core.metrics import rho_mean


def perturbation_baselines(split, latent: int) -> dict:
    """Each baseline's raw rho_pred_pert on the test pairs (the old summary, through the Method interface)."""
    out = {}
    for name, make in BASELINES.items():
        m = make(latent).fit(split)
        out[name] = rho_mean(m.predict(split.x1_test), split.x2_test)
        out[f"{name}_model"] = m
    return out


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
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 15)) @ rng.normal(size=(15, 15))
    y = rng.normal(size=(5, 15)) @ rng.normal(size=(15, 15))
    mean, sd = x.mean(0), x.std(0)
    ref = PCA(n_components=4, svd_solver="full").fit((x - mean) / sd)
    want = ref.inverse_transform(ref.transform((y - mean) / sd)) * sd + mean
    np.testing.assert_allclose(fit_pca(x, 4).reconstruct(y), want, atol=1e-8)


def test_figure2_pca_fits_each_measured_control_once() -> None:
    """30 pairs whose x1 are 6 controls: Figure 2's PCA is fitted on the singletons, the 6 distinct controls
    and the 30 x2 (as the plain VAE trains on them), not on 30 copies of x1 (direct sklearn reference), per
    source (the default) and pooled."""
    rng = np.random.default_rng(7)
    g = 15
    mix = rng.normal(size=(g, g))
    ctrl, x2, xs, y = (rng.normal(size=(n, g)) @ mix for n in (6, 30, 20, 5))
    x1 = ctrl[np.arange(30) % 6]
    split = _split_from(x1_train=x1, x2_train=x2, xs_train=xs, x1_val=y[:0], x2_val=y[:0], x1_test=y,
                        x2_test=y[::-1])
    f64 = [a.astype(np.float32).astype(np.float64) for a in (xs, ctrl, x2, y)]
    xs64, l1000, y32 = f64[0], np.concatenate(f64[1:3]), f64[3]

    def standardized(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (a - a.mean(0)) / a.std(0), a.mean(0), a.std(0)

    per_source = np.concatenate([standardized(xs64)[0], standardized(l1000)[0]]), *standardized(l1000)[1:]
    pooled = standardized(np.concatenate([xs64, l1000]))
    for standardize, (train, mean, sd) in {"per_source": per_source, "pooled": pooled}.items():
        ref = PCA(n_components=3, svd_solver="full").fit(train)
        rec = ref.inverse_transform(ref.transform((y32 - mean) / sd)) * sd + mean
        assert pca_reconstruction_rho(split, 3, standardize)["rho_rec"] == \
            pytest.approx(rho_mean(rec, y32), abs=1e-9)
    with_copies = np.concatenate([x1, x2]).astype(np.float32).astype(np.float64)
    assert not np.allclose(with_copies.mean(0), l1000.mean(0))   # the copies would have weighted the controls


def test_pca_standardizes_the_singletons_by_their_own_statistics() -> None:
    """Singletons of another platform (scaled and shifted, as GDSC/CCLE arrays against L1000) are
    standardized by their own statistics by default, as the VAE and PertVAE standardize them
    (FitConfig.standardize): pooled, the offset between the two sources took PCA's first axis, and a rank-2
    signal was not captured at latent 2, neither by Figure 2's PCA (rho_rec 0.816 against 0.863 per source
    on the synthetic paper cube) nor by pca_latent_linear (delta_pearson 0.807 against 0.841 at latent 10)."""
    rng = np.random.default_rng(5)
    g, k = 40, 2
    a, mu, b = rng.normal(size=(k, g)), 2 * rng.normal(size=g), np.array([1.0, -0.5])

    def emit(z: np.ndarray, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
        return scale * (z @ a + mu) + shift + 0.05 * rng.normal(size=(len(z), g))

    z1, zy = rng.normal(size=(40, k)), rng.normal(size=(8, k))
    y, y2 = emit(zy), emit(zy + b)
    xs = emit(rng.normal(size=(200, k)), 1.3, 3.0)
    split = _split_from(x1_train=emit(z1), x2_train=emit(z1 + b), xs_train=xs, x1_val=y[:0], x2_val=y[:0],
                        x1_test=y, x2_test=y2)
    per_source = pca_reconstruction_rho(split, k)
    assert per_source == pca_reconstruction_rho(split, k, "per_source")
    assert per_source["rho_rec"] > 0.99
    assert pca_reconstruction_rho(split, k, "pooled")["rho_rec"] < per_source["rho_rec"] - 0.05
    with pytest.raises(ValueError, match="standardize: must be one of per_source, pooled"):
        pca_reconstruction_rho(split, k, "bogus")
    err = {st: np.abs(PCALatentLinear(k, standardize=st).fit(split).predict(y) - (zy + b) @ a - mu).mean()
           for st in ("per_source", "pooled")}
    assert err["per_source"] < 0.1 < 0.3 < err["pooled"], err
    assert np.array_equal(PCALatentLinear(k).fit(split).predict(y),
                          PCALatentLinear(k, standardize="per_source").fit(split).predict(y))


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
    assert res["mean_shift"] > 0.95
    assert res["mean_shift"] > res["identity"] + 0.3
    assert res["ridge_delta"] > 0.95  # a strong penalty gives mean_shift back


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


def test_pca_latent_and_ridge_delta_recover_latent_linear_drug_effect() -> None:
    split, _ = _latent_linear(seed=6)
    res = perturbation_baselines(split, 4)
    assert res["pca_latent_linear"] > 0.98
    assert res["pca_latent_linear"] > res["mean_shift"] + 0.02
    assert res["pca_latent_linear"] > res["identity"] + 0.05
    assert res["ridge_delta"] > res["mean_shift"] + 0.02  # the change depends linearly on x1 here
    assert res["pca_latent_linear_model"].ridge_ in RIDGE_GRID
    assert res["ridge_delta_model"].ridge_ in DELTA_RIDGE_GRID


def test_simple_baselines_follow_their_definitions() -> None:
    split, _ = _latent_linear(seed=6)
    x1 = split.x1_test.astype(float)
    np.testing.assert_array_equal(Identity().fit(split).predict(x1), x1)
    shift = (split.x2_train.astype(float) - split.x1_train.astype(float)).mean(0)
    np.testing.assert_allclose(MeanShift().fit(split).predict(x1), x1 + shift, rtol=1e-12)
    tm = TrainMean().fit(split).predict(x1)
    np.testing.assert_allclose(tm, np.broadcast_to(split.x2_train.astype(float).mean(0), x1.shape))
    for make in BASELINES.values():
        assert isinstance(make(4), Method)


def test_ridge_delta_is_the_direct_ridge_solution() -> None:
    """RidgeDelta at a fixed penalty equals the closed form computed here with numpy."""
    split, _ = _latent_linear(seed=9, genes=20, n=(50, 10, 15))
    lam, k = 0.3, 5
    got = RidgeDelta(k, ridge=lam).fit(split).predict(split.x1_test)
    zs = ZSpace.from_training(split)
    z1 = zs(split.x1_train)
    d = zs(split.x2_train) - z1
    mu = z1.mean(0)
    _, _, vt = np.linalg.svd(z1 - mu, full_matrices=False)
    p = (z1 - mu) @ vt[:k].T
    gram = p.T @ p
    coef = np.linalg.solve(gram + lam * np.trace(gram) / k * np.eye(k), p.T @ (d - d.mean(0)))
    want = split.x1_test + (((zs(split.x1_test) - mu) @ vt[:k].T) @ coef + d.mean(0)) * zs.scale
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_penalties_are_chosen_on_validation_only() -> None:
    """Changing the test pairs never changes the chosen penalty; no validation pairs: the defaults."""
    split, _ = _latent_linear(seed=7, n=(60, 15, 10))
    other = SplitData(**{**{f: getattr(split, f) for f in ("x1_train", "x2_train", "x1_val", "x2_val",
                                                           "xs_train")},
                         "x1_test": split.x1_test[::-1] * 3, "x2_test": split.x2_test * 0})
    for cls in (PCALatentLinear, RidgeDelta):
        assert cls(4).fit(split).ridge_ == cls(4).fit(other).ridge_
    none, _ = _latent_linear(seed=7, n=(60, 0, 10))
    assert PCALatentLinear(4).fit(none).ridge_ == DEFAULT_RIDGE
    assert RidgeDelta(4).fit(none).ridge_ == DEFAULT_DELTA_RIDGE


def test_bad_input_names_the_field() -> None:
    """baselines validate their input themselves (SplitData does too; SimpleNamespace bypasses it); a fit
    reads no test pair (they are NaN in the copy a method is fitted on, pertvae_core.isolation), the
    evaluation of the PCA reconstruction does."""
    split, _ = _latent_linear(seed=8, genes=10, n=(10, 3, 4), n_s=0)
    bad = np.array(split.x1_test)
    bad[0, 0] = np.nan
    args = {f: getattr(split, f) for f in ("x1_train", "x2_train", "x1_val", "x2_val", "x2_test", "xs_train")}
    MeanShift().fit(SimpleNamespace(x1_test=bad, **args))
    with pytest.raises(ValueError, match="x1_test contains NaN"):
        pca_reconstruction_rho(SimpleNamespace(x1_test=bad, **args), 3)
    val = np.array(split.x1_val)
    val[0, 0] = np.nan
    with pytest.raises(ValueError, match="x1_val contains NaN"):
        MeanShift().fit(SimpleNamespace(x1_test=split.x1_test, **{**args, "x1_val": val}))
    with pytest.raises(ValueError, match="xs_train has 9 genes, expected 10"):
        narrow = {**args, "xs_train": np.zeros((2, 9))}
        pca_reconstruction_rho(SimpleNamespace(x1_test=split.x1_test, **narrow), 3)
    with pytest.raises(ValueError, match="latent must be a positive int"):
        pca_reconstruction_rho(split, 0)
    with pytest.raises(ValueError, match="x1_test .* must pair"):
        pca_reconstruction_rho(SimpleNamespace(x1_test=split.x1_test[:2], **args), 3)
    with pytest.raises(ValueError, match="lacks field 'xs_train'"):
        TrainMean().fit(SimpleNamespace(**{k: v for k, v in args.items() if k != "xs_train"},
                                        x1_test=split.x1_test))


def test_pca_is_capped_at_the_rank_of_the_centred_training_profiles() -> None:
    """n training profiles, once centred, span n - 1 directions: PCA at latent >= n has n - 1 components
    (sklearn's n - 1), not an n-th of zero variance (an arbitrary null-space direction of the SVD; it was
    kept, latent_used 30 for 30 profiles, and reported as 'capped at 30')."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(30, 5)) @ rng.normal(size=(5, 80)) + 0.3 * rng.normal(size=(30, 80))
    y = rng.normal(size=(6, 80))
    mean, sd = x.mean(0), x.std(0)
    assert np.linalg.svd((x - mean) / sd, compute_uv=False)[29] < 1e-10   # the 30th axis has no variance
    ref = PCA(n_components=29, svd_solver="full").fit((x - mean) / sd)
    want = ref.inverse_transform(ref.transform((y - mean) / sd)) * sd + mean
    for latent in (30, 200):
        pca = fit_pca(x, latent)
        assert pca.k == 29 and "capped at 29" in pca.note, pca.note
        np.testing.assert_allclose(pca.reconstruct(y), want, atol=1e-8)
    assert fit_pca(x, 29).note == ""
