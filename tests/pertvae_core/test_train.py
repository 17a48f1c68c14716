"""Batched training: S fits == S separate fits, early stopping with best-state restore, failure isolation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pertvae_core import api
from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData, distinct_rows
from pertvae_core.elbo import prediction_nll
from pertvae_core.train import Standardizer, fit, seed_streams

CFG = FitConfig(latent=3, hidden=(16, 8), context=4, iaf_hidden=8, batch_pairs=8, batch_singletons=6,
                max_epochs=6, patience=2, lr=3e-3, mc_samples=3)


def _split(rng: np.random.Generator, n_train: int, n_single: int, n_val: int = 6,
           genes: int = 12) -> SplitData:
    base = rng.normal(size=genes)

    def f(n: int) -> np.ndarray:
        return (base + rng.normal(size=(n, genes))).astype(np.float32)

    x1 = f(n_train)
    return SplitData(x1, x1 + 0.5, f(n_val), f(n_val), f(5), f(5), f(n_single))


@pytest.fixture(scope="module")
def splits() -> list[SplitData]:
    rng = np.random.default_rng(0)
    # different training sizes, one without singletons, one without validation pairs
    return [_split(rng, 20, 10), _split(rng, 13, 0), _split(rng, 30, 7, n_val=0)]


def _params(state, s: int) -> dict[str, torch.Tensor]:
    return {k: v[s].detach() for k, v in state.model.named_parameters()}


def test_batched_equals_separate_fits(splits: list[SplitData]) -> None:
    seeds = [11, 22, 33]
    cfg = FitConfig(**{**CFG.__dict__, "patience": 1, "max_epochs": 8})
    batched = fit(splits, cfg, seeds)
    for s in range(3):
        single = fit([splits[s]], cfg, [seeds[s]])
        assert single.epochs == [batched.epochs[s]] and single.best_epoch == [batched.best_epoch[s]]
        np.testing.assert_allclose(single.history[0], batched.history[s], rtol=1e-4)
        for k, v in _params(single, 0).items():
            torch.testing.assert_close(v, _params(batched, s)[k], rtol=1e-4, atol=1e-5, msg=k)
    # splits stopped at different epochs, so frozen splits really stayed put while others trained
    assert len(set(batched.epochs)) > 1
    rows_b = api.fit_evaluate_pertvae(splits, cfg, seeds)
    rows_1 = api.fit_evaluate_pertvae(splits[1:2], cfg, seeds[1:2])
    for k in ("rho_rec_pert", "rho_pred_pert", "rho_rec", "test_loss"):
        assert math.isclose(rows_b[1][k], rows_1[0][k], rel_tol=1e-3, abs_tol=1e-4), k


def test_different_seeds_differ(splits: list[SplitData]) -> None:
    a, b = fit(splits[:1], CFG, [1], max_steps=3), fit(splits[:1], CFG, [2], max_steps=3)
    assert not torch.allclose(_params(a, 0)["enc1.v"], _params(b, 0)["enc1.v"])


def test_early_stopping_restores_best_state(splits: list[SplitData]) -> None:
    cfg = FitConfig(**{**CFG.__dict__, "patience": 2, "max_epochs": 40, "lr": 3e-2})
    st = fit(splits[:1], cfg, [5])
    hist = st.history[0]
    assert st.epochs[0] < 40 and st.epochs[0] == st.best_epoch[0] + 2  # stopped by patience
    assert st.best_epoch[0] == int(np.argmin(hist)) + 1
    # the restored state is the state after best_epoch epochs of the same (deterministic) run
    steps = st.best_epoch[0] * math.ceil(20 / cfg.batch_pairs)
    at_best = fit(splits[:1], cfg, [5], max_steps=steps)
    last = fit(splits[:1], cfg, [5], max_steps=st.epochs[0] * math.ceil(20 / cfg.batch_pairs))
    for k, v in _params(st, 0).items():
        torch.testing.assert_close(v, _params(at_best, 0)[k], msg=k)
    assert not torch.allclose(_params(st, 0)["enc1.v"], _params(last, 0)["enc1.v"])


def test_min_epochs_and_no_validation_rows(splits: list[SplitData]) -> None:
    cfg = FitConfig(**{**CFG.__dict__, "patience": 1, "min_epochs": 5, "max_epochs": 7})
    st = fit(splits, cfg, [1, 2, 3])
    assert all(e >= 5 for e in st.epochs)
    assert st.epochs[2] == 7 and st.best_epoch[2] == 7  # no validation pairs: trains to max_epochs


@pytest.mark.parametrize(("n_pairs", "n_single", "pairs", "steps"), [
    (20, 40, True, 7),    # singletons dominate: ceil(40 / 6) = 7 > ceil(20 / 8) = 3
    (20, 5, True, 3),     # pairs dominate: ceil(20 / 8) = 3
    (20, 0, True, 3),     # no singletons
    (20, 40, False, 6),   # VAE: 40 + 2 * 20 profiles in batches of 8 + 6 -> ceil(80 / 14) = 6
])
def test_an_epoch_is_one_pass_over_pairs_and_singletons(n_pairs, n_single, pairs, steps) -> None:
    cfg = FitConfig(**{**CFG.__dict__, "max_epochs": 1})
    seen: list[int] = []
    st = fit([_split(np.random.default_rng(5), n_pairs, n_single)], cfg, [4], pairs=pairs,
             on_step=lambda t, _m: seen.append(t))
    assert st.epochs == [1] and len(seen) == steps


def test_the_vae_trains_on_each_measured_control_once() -> None:
    """20 pairs whose x1 are 3 controls (each paired with several post-treatment replicates): the plain VAE's
    epoch is 40 singletons + 3 controls + 20 x2 = 63 profiles, ceil(63 / 14) = 5 steps (not 80 -> 6); PertVAE
    keeps every pair (ceil(40 / 6) = 7 steps either way)."""
    sp = _split(np.random.default_rng(5), 20, 40)
    x1 = sp.x1_train[np.arange(20) % 3]
    dup = SplitData(x1, sp.x2_train, sp.x1_val, sp.x2_val, sp.x1_test, sp.x2_test, sp.xs_train)
    np.testing.assert_array_equal(distinct_rows(x1), sp.x1_train[:3])   # first occurrences, in order
    np.testing.assert_array_equal(distinct_rows(x1[::-1]), sp.x1_train[[1, 0, 2]])
    assert distinct_rows(x1[:1]).shape == (1, 12) and distinct_rows(x1[:0]).shape == (0, 12)
    cfg = FitConfig(**{**CFG.__dict__, "max_epochs": 1})
    for pairs, steps in ((False, 5), (True, 7)):
        seen: list[int] = []
        fit([dup], cfg, [4], pairs=pairs, on_step=lambda t, _m, seen=seen: seen.append(t))
        assert len(seen) == steps, pairs


def test_failed_split_is_isolated(splits: list[SplitData]) -> None:
    seeds = [11, 22, 33]

    def poison(step: int, model) -> None:
        if step == 2:
            with torch.no_grad():
                model.enc1.v[1].fill_(float("inf"))

    rows = api.fit_evaluate_pertvae(splits, CFG, seeds)
    st = fit(splits, CFG, seeds, on_step=poison)
    assert st.status == ["done", "failed", "done"]
    assert "non-finite" in st.reason[1]
    ok = fit([splits[0]], CFG, [seeds[0]])
    for k, v in _params(ok, 0).items():
        torch.testing.assert_close(v, _params(st, 0)[k], rtol=1e-4, atol=1e-5, msg=k)
    assert all(r["status"] == "done" for r in rows)


def test_api_rows_and_vae(splits: list[SplitData]) -> None:
    rows = api.fit_evaluate_pertvae(splits, CFG, [1, 2, 3])
    assert len(rows) == 3
    for r in rows:
        assert r["status"] == "done" and r["reason"] == ""
        for k in ("rho_rec_pert", "rho_pred_pert", "rho_rec", "test_loss", "epochs", "fit_seconds"):
            assert isinstance(r[k], float) and np.isfinite(r[k]), k
        assert -1 <= r["rho_pred_pert"] <= 1
    vrows = api.fit_evaluate_vae(splits, CFG, [1, 2, 3])
    for r in vrows:
        assert r["status"] == "done" and np.isfinite(r["rho_rec"]) and "rho_pred_pert" not in r


def test_standardization_uses_training_rows_only(splits: list[SplitData]) -> None:
    sp = splits[0]
    std = Standardizer.from_splits([sp], torch.device("cpu"))
    pairs = np.concatenate([sp.x1_train, sp.x2_train]).astype(np.float64)
    np.testing.assert_allclose(std.mean[0, 0].numpy(), pairs.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std.scale[0, 0].numpy(), pairs.std(0), rtol=1e-5)
    other = SplitData(sp.x1_train, sp.x2_train, sp.x1_val + 100, sp.x2_val, sp.x1_test * 5, sp.x2_test,
                      sp.xs_train)
    torch.testing.assert_close(Standardizer.from_splits([other], torch.device("cpu")).mean, std.mean)
    x, n = std.forward([sp.x1_test])
    np.testing.assert_allclose(std.inverse(x)[0, : n[0]].numpy(), sp.x1_test, rtol=1e-4, atol=1e-4)


def test_per_source_standardizes_singletons_with_their_own_statistics(splits: list[SplitData]) -> None:
    """Issue 9: singletons of another platform (here offset by 3 and scaled by 2) get their own statistics;
    "pooled" reproduces the old rule (one set from x1_train, x2_train and xs_train for everything)."""
    sp0 = splits[0]
    xs = sp0.xs_train * 2.0 + 3.0
    sp = SplitData(sp0.x1_train, sp0.x2_train, sp0.x1_val, sp0.x2_val, sp0.x1_test, sp0.x2_test, xs)
    cpu = torch.device("cpu")
    std = Standardizer.from_splits([sp, splits[1]], cpu, "per_source")
    np.testing.assert_allclose(std.single_mean[0, 0].numpy(), xs.astype(np.float64).mean(0), rtol=1e-5)
    np.testing.assert_allclose(std.single_scale[0, 0].numpy(), xs.astype(np.float64).std(0), rtol=1e-5)
    XS, n = std.forward_singletons([xs, splits[1].xs_train])
    assert n == [len(xs), 0]
    np.testing.assert_allclose(XS[0].mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(XS[0].std(0, unbiased=False).numpy(), 1.0, rtol=1e-4)
    torch.testing.assert_close(std.single_mean[1], std.mean[1])  # no singletons: the pairs' statistics
    # the plain VAE: singletons by their statistics, then the split's L1000 profiles by theirs
    both, nb = std.forward_singletons([xs], [sp.x1_train])
    torch.testing.assert_close(both[0, : len(xs)], XS[0, : len(xs)])
    torch.testing.assert_close(both[0, len(xs): nb[0]], std.forward([sp.x1_train])[0][0])

    pooled = Standardizer.from_splits([sp], cpu, "pooled")
    allrows = np.concatenate([sp.x1_train, sp.x2_train, xs]).astype(np.float64)
    for m, sc in ((pooled.mean, pooled.scale), (pooled.single_mean, pooled.single_scale)):
        np.testing.assert_allclose(m[0, 0].numpy(), allrows.mean(0), rtol=1e-5)
        np.testing.assert_allclose(sc[0, 0].numpy(), allrows.std(0), rtol=1e-5)
    torch.testing.assert_close(pooled.forward_singletons([xs])[0], pooled.forward([xs])[0])
    with pytest.raises(ValueError, match="standardize"):
        Standardizer.from_splits([sp], cpu, "global")


def test_validation_averages_val_samples_fixed_draws(splits: list[SplitData]) -> None:
    """Issue 9: early stopping scores the mean prediction of val_samples fixed draws from the "val" stream;
    training itself does not depend on val_samples."""
    sp = splits[0]
    cfg = FitConfig(**{**CFG.__dict__, "max_epochs": 1, "val_samples": 4})
    st = fit([sp], cfg, [7])
    one = fit([sp], FitConfig(**{**cfg.__dict__, "val_samples": 1}), [7])
    for k, v in _params(st, 0).items():
        torch.testing.assert_close(v, _params(one, 0)[k], msg=k)
    g = seed_streams(7)["val"]
    n, L = len(sp.x1_val), cfg.latent
    e1, e2 = torch.randn(4, n, L, generator=g), torch.randn(4, n, L, generator=g)
    V1, _ = st.std.forward([sp.x1_val])
    V2, _ = st.std.forward([sp.x2_val])
    with torch.no_grad():
        means = [prediction_nll(st.model, V1, V2, e1[None, k], e2[None, k])[1] for k in range(4)]
        want = 0.5 * (torch.stack(means).mean(0) - V2).square().sum(-1).mean()
    assert math.isclose(st.history[0][0], float(want), rel_tol=1e-5)
    assert not math.isclose(st.history[0][0], one.history[0][0], rel_tol=1e-5)


def test_cuda_falls_back_to_cpu(splits: list[SplitData]) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present: no fallback to test")
    cfg = FitConfig(**{**CFG.__dict__, "device": "cuda"})
    with pytest.warns(UserWarning, match="CUDA is unavailable"):
        st = fit(splits[:1], cfg, [0], max_steps=1)
    assert st.device.type == "cpu"


def test_bad_input_is_named(splits: list[SplitData]) -> None:
    with pytest.raises(ValueError, match="2 seeds for 3 splits"):
        api.fit_evaluate_pertvae(splits, CFG, [1, 2])
    with pytest.raises(ValueError, match="same genes"):
        fit([splits[0], _split(np.random.default_rng(1), 10, 0, genes=9)], CFG, [1, 2])
    with pytest.raises(ValueError, match="x2_test"):
        SplitData(splits[0].x1_train, splits[0].x2_train, splits[0].x1_val, splits[0].x2_val,
                  splits[0].x1_test, splits[0].x2_test[:2], splits[0].xs_train)
    with pytest.raises(ValueError, match="NaN"):
        SplitData(splits[0].x1_train * np.nan, splits[0].x2_train, splits[0].x1_val, splits[0].x2_val,
                  splits[0].x1_test, splits[0].x2_test, splits[0].xs_train)
