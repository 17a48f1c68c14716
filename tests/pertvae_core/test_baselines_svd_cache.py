"""PCA once per split (issue 23): one SVD serves every latent size of a split's training matrix, and the
results are exactly those of an uncached fit."""

from __future__ import annotations

import numpy as np
import pytest

from pertvae_core import baselines
from pertvae_core.baselines import BASELINES, fit_pca, pca_reconstruction_rho, principal_axes
from pertvae_core.data import SplitData

LATENTS = (2, 5, 10, 20, 50, 100, 150)


@pytest.fixture
def svd_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """An empty cache, and the shapes of the matrices np.linalg.svd is called on."""
    monkeypatch.setattr(baselines, "_svd_cache", type(baselines._svd_cache)())
    calls: list[tuple[int, ...]] = []
    svd = np.linalg.svd

    def counting(a, *args, **kw):
        calls.append(np.shape(a))
        return svd(a, *args, **kw)

    monkeypatch.setattr(np.linalg, "svd", counting)
    return calls


def _split(seed: int = 0, genes: int = 60) -> SplitData:
    rng = np.random.default_rng(seed)
    base, mix = rng.normal(size=genes), rng.normal(size=(genes, genes)) / np.sqrt(genes)

    def f(n: int) -> np.ndarray:
        return ((rng.normal(size=(n, genes)) @ mix) + base).astype(np.float32)

    x1 = f(40)
    return SplitData(x1, x1 + 0.3 * f(40), f(10), f(10), f(12), f(12), f(80), xu_train=f(5))


def _scores(split: SplitData) -> dict[str, np.ndarray]:
    """Figure 2's PCA and every baseline's test predictions at each latent size."""
    out = {}
    for latent in LATENTS:
        r = pca_reconstruction_rho(split, latent)
        out[f"{latent}/rho"] = np.array([r["rho_rec"], r["rho_rec_pert"], r["latent_used"]])
        for name, make in BASELINES.items():
            out[f"{latent}/{name}"] = make(latent).fit(split).predict(split.x1_test)
    return out


def test_one_svd_per_training_matrix_for_all_latents(svd_calls) -> None:
    split = _split()
    _scores(split)
    # the pooled training profiles (Figure 2's PCA and pca_latent_linear) and ridge_delta's x1: once each
    assert svd_calls == [(40 + 40 + 80 + 5, 60), (40, 60)]
    _scores(_split(seed=1))   # another split: its own two
    assert len(svd_calls) == 4


def test_cached_results_equal_uncached_fits(svd_calls, monkeypatch: pytest.MonkeyPatch) -> None:
    split = _split()
    cached = _scores(split)
    baselines._svd_cache.clear()
    monkeypatch.setattr(baselines, "SVD_CACHE_BYTES", 0)   # nothing kept: every fit decomposes afresh
    n = len(svd_calls)
    uncached = _scores(split)
    assert len(svd_calls) - n == 3 * len(LATENTS)   # Figure 2's PCA, pca_latent_linear, ridge_delta
    assert cached.keys() == uncached.keys()
    for k in cached:
        assert np.array_equal(cached[k], uncached[k]), k
    x = np.concatenate([split.xs_train, split.x1_train]).astype(np.float64)
    z = (x - x.mean(0)) / x.std(0)
    want = np.linalg.svd(z, full_matrices=False)[2]
    for latent in (1, 7, 60):
        assert np.array_equal(fit_pca(x, latent).components, want[:latent])


def test_the_fingerprint_is_exact_and_the_cache_bounded(svd_calls, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(30, 20))
    b = a.copy()
    b[7, 3] = np.nextafter(b[7, 3], np.inf)   # one bit apart: another matrix
    principal_axes(a)
    principal_axes(b)
    assert len(svd_calls) == 2
    principal_axes(a.copy())                   # equal bytes, another array: a hit
    assert len(svd_calls) == 2
    assert not principal_axes(a).flags.writeable
    monkeypatch.setattr(baselines, "SVD_CACHE_BYTES", 2 * 20 * 20 * 8)   # room for two vt [20, 20]
    c = rng.normal(size=(30, 20))
    principal_axes(c)                          # evicts the least recently used (b)
    assert len(svd_calls) == 3 and len(baselines._svd_cache) == 2
    principal_axes(a)
    assert len(svd_calls) == 3
    principal_axes(b)
    assert len(svd_calls) == 4


def test_all_latents_of_a_split_from_one_decomposition_without_the_cache(svd_calls, monkeypatch) -> None:
    """pca_reconstruction_rhos (the grid's PCA task, harness.contenders.pca) decomposes a split once for all
    its latent sizes even with no cache at all, and gives each latent what a fit at that latent alone
    gives."""
    from pertvae_core.api import evaluate_pca, evaluate_pca_latents
    from pertvae_core.baselines import fit_pcas, pca_reconstruction_rhos

    monkeypatch.setattr(baselines, "SVD_CACHE_BYTES", 0)
    splits = [_split(), _split(seed=1)]
    together = pca_reconstruction_rhos(splits[0], LATENTS)
    assert len(svd_calls) == 1 and list(together) == list(LATENTS)
    alone = {lat: pca_reconstruction_rho(splits[0], lat) for lat in LATENTS}
    assert len(svd_calls) == 1 + len(LATENTS)
    assert together == alone
    rows = evaluate_pca_latents(splits, LATENTS)
    assert len(svd_calls) == 1 + len(LATENTS) + 2   # one per split
    for lat in LATENTS:
        want = evaluate_pca(splits, lat)
        assert [{k: v for k, v in r.items() if k != "fit_seconds"} for r in rows[lat]] == \
            [{k: v for k, v in r.items() if k != "fit_seconds"} for r in want]
    x = np.concatenate([splits[0].xs_train, splits[0].x1_train]).astype(np.float64)
    pcas = fit_pcas(x, (1, 7, 500))
    assert pcas[500].k == 60 and "capped at 60" in pcas[500].note and pcas[7].note == ""
    with pytest.raises(ValueError, match="positive int"):
        fit_pcas(x, (2, 0))
