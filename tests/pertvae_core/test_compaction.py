"""Compaction (issue 13): splits that stop or fail leave the batched computation; results are unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from pertvae_core import train
from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData
from pertvae_core.model import PertVAE
from pertvae_core.packing import RUNGS, packed_sizes
from pertvae_core.train import COMPILED_SHAPES, _repack_, _repack_size, fit, make_optimizer

CFG = FitConfig(latent=3, hidden=(16, 8), context=4, iaf_hidden=8, batch_pairs=8, batch_singletons=6,
                max_epochs=12, patience=1, lr=1e-2, mc_samples=3)


def _split(rng: np.random.Generator, n_train: int, n_single: int, n_val: int = 6, genes: int = 12,
           shift: float = 0.5) -> SplitData:
    base = rng.normal(size=genes)

    def f(n: int) -> np.ndarray:
        return (base + rng.normal(size=(n, genes))).astype(np.float32)

    x1 = f(n_train)
    return SplitData(x1, x1 + shift, f(n_val), f(n_val), f(5), f(5), f(n_single))


@pytest.fixture(scope="module")
def splits() -> list[SplitData]:
    rng = np.random.default_rng(3)
    return [_split(rng, 20, 10), _split(rng, 13, 0), _split(rng, 30, 7, n_val=0), _split(rng, 9, 12, n_val=3),
            _split(rng, 16, 4, shift=2.0)]


def _params(state, s: int) -> dict[str, torch.Tensor]:
    return {k: v[s].detach() for k, v in state.model.named_parameters()}


def _same(a, sa: int, b, sb: int) -> None:
    assert a.epochs[sa] == b.epochs[sb] and a.best_epoch[sa] == b.best_epoch[sb]
    assert a.status[sa] == b.status[sb]
    np.testing.assert_allclose(a.history[sa], b.history[sb], rtol=1e-4)
    pb = _params(b, sb)
    for k, v in _params(a, sa).items():
        torch.testing.assert_close(v, pb[k], rtol=1e-4, atol=1e-5, msg=k)


def test_compacted_fit_equals_separate_fits_when_splits_stop_at_different_epochs(splits) -> None:
    seeds = [5, 6, 7, 8, 9]
    packed: list[int] = []
    st = fit(splits, CFG, seeds, on_step=lambda t, m: packed.append(m.n_models))
    # splits stopped at several epochs, and each stop shrank the computation
    assert len(set(st.epochs)) >= 3
    assert packed[0] == 5 and packed[-1] == 1 and packed == sorted(packed, reverse=True)
    assert len(set(packed)) == len(set(st.epochs))
    assert st.model.n_models == 5 and st.model.enc1.v.shape[0] == 5
    for s in range(5):
        _same(fit([splits[s]], CFG, [seeds[s]]), 0, st, s)
    off = fit(splits, CFG, seeds, compact=False)
    for s in range(5):
        _same(off, s, st, s)


def test_a_split_does_not_depend_on_its_neighbours(splits) -> None:
    """The same split and seed give the same fit beside different other splits (its streams are its own)."""
    a = fit([splits[0], splits[4]], CFG, [5, 9])
    b = fit([splits[3], splits[4], splits[1]], CFG, [8, 9, 6])
    _same(a, 1, b, 1)


def _poison(sizes: list[int]):
    """An on_step that records the packed batch size at each step and, after step 1, makes the second
    packed split's parameters NaN (so that split fails)."""
    def on_step(step: int, model: PertVAE) -> None:
        sizes.append(model.n_models)
        if step == 1:
            with torch.no_grad():
                model.enc1.v[1].fill_(float("nan"))
    return on_step


def _varied_splits(n: int) -> list[SplitData]:
    """``n`` splits of varied sizes, validation rows and drug shifts, so that they stop at varied epochs."""
    rng = np.random.default_rng(3)
    return [_split(rng, int(rng.integers(8, 30)), int(rng.integers(0, 12)), n_val=int(rng.integers(3, 7)),
                   shift=float(rng.uniform(0.3, 2.0))) for _ in range(n)]


def test_failed_split_is_dropped_and_the_others_unaffected(splits) -> None:
    seeds = [5, 6, 7]
    sizes: list[int] = []
    st = fit(splits[:3], CFG, seeds, on_step=_poison(sizes))
    assert st.status[1] == "failed" and "non-finite" in st.reason[1]
    assert st.epochs[1] == 1 and sizes[-1] < 3
    for s in (0, 2):
        _same(fit([splits[s]], CFG, [seeds[s]]), 0, st, s)


def test_max_steps_keeps_the_final_state_of_running_splits(splits) -> None:
    seeds = [5, 6, 7, 8, 9]
    full = fit(splits, CFG, seeds)
    steps = 40  # some splits stopped (and were dropped) before, others still run
    st = fit(splits, CFG, seeds, max_steps=steps)
    off = fit(splits, CFG, seeds, max_steps=steps, compact=False)
    stopped = [s for s in range(5) if st.epochs[s] == full.epochs[s]]
    assert stopped and len(stopped) < 5
    for s in range(5):
        _same(off, s, st, s)
    for s in stopped:
        _same(full, s, st, s)


def test_compiled_fit_repacks_to_the_ladder_and_each_split_is_the_same_as_eager(monkeypatch) -> None:
    """With torch.compile, compaction repacks only to the ladder's batch sizes (each a graph), keeping a few
    stopped splits frozen and masked; every split's fit is that of eager compaction and of no compaction.
    Within float32 round-off, not bit for bit: a CPU elementwise kernel (fused Adam, log1p, softplus)
    computes a tensor's last few elements in a scalar tail that rounds otherwise than its vectorized body,
    and whether a split's elements fall in the tail depends on the batch size and the split's position."""
    monkeypatch.setattr(train, "_compiled", lambda loss_fn, mode, device: loss_fn)  # compile's schedule only
    splits = _varied_splits(12)
    seeds = list(range(100, 112))
    ladder: list[int] = []
    eager: list[int] = []
    st = fit(splits, dataclasses.replace(CFG, compile=True), seeds,
             on_step=lambda t, m: ladder.append(m.n_models))
    ref = fit(splits, CFG, seeds, on_step=lambda t, m: eager.append(m.n_models))
    assert sorted(set(ladder), reverse=True) == [12, 8, 4, 2, 1]
    assert len(set(eager)) > 5 and len(ladder) == len(eager)
    # eager packs the running splits alone: the ladder kept stopped ones beside them at some steps
    assert all(a >= b for a, b in zip(ladder, eager, strict=True)) and ladder != eager
    off = fit(splits, CFG, seeds, compact=False)
    for s in range(12):
        _same(ref, s, st, s)
        _same(off, s, st, s)


def test_a_failed_split_kept_packed_by_the_ladder_leaves_the_others_unaffected(monkeypatch) -> None:
    """With compile's schedule a split that failed (NaN parameters) stays packed, frozen and masked, until
    the next rung (6 splits, 5 running: no rung between): the other splits are their eager fits, the
    failed one keeps its finite best state."""
    monkeypatch.setattr(train, "_compiled", lambda loss_fn, mode, device: loss_fn)
    splits = _varied_splits(6)

    def fitted(cfg: FitConfig) -> tuple[train.FitState, list[int]]:
        sizes: list[int] = []
        return fit(splits, cfg, list(range(100, 106)), on_step=_poison(sizes)), sizes

    st, sizes = fitted(dataclasses.replace(CFG, compile=True))
    ref, eager = fitted(CFG)
    assert st.status[1] == "failed" and sizes[:4] == [6] * 4 and eager[:4] == [6, 6, 5, 5]
    for s in (0, 2, 3, 4, 5):
        _same(ref, s, st, s)
    assert all(torch.isfinite(p[1]).all() for p in st.model.parameters())


def test_a_compiled_task_of_50_splits_meets_only_the_ladder() -> None:
    """Simulated epoch ends of 50 splits stopping at scattered epochs: the batch sizes stay on the ladder,
    and the paper grid's 8 model shapes (the VAE's 7 latent sizes, PertVAE) stay under dynamo's cap."""
    stops = np.random.default_rng(0).integers(3, 60, size=50)
    packed, sizes = 50, [50]
    for epoch in range(1, int(stops.max())):
        packed = _repack_size(packed, int((stops > epoch).sum()), compiled=True)
        sizes.append(packed)
    assert set(sizes) <= set(packed_sizes(50)) and sizes == sorted(sizes, reverse=True)
    assert packed_sizes(50) == (50, 32, 16, 8, 4, 2, 1) and 8 * len(packed_sizes(50)) <= COMPILED_SHAPES
    assert set(RUNGS) >= set(packed_sizes(64)) and packed_sizes(100)[:2] == (100, 64)


def test_repack_keeps_parameters_and_adam_moments_of_kept_models() -> None:
    cfg = FitConfig(latent=2, hidden=(6, 4), context=2, iaf_hidden=4, iaf_steps=1)
    model = PertVAE(5, cfg, [torch.Generator().manual_seed(i) for i in range(4)])
    opt = make_optimizer(model.parameters(), 1e-2)
    sum(p.square().sum() for p in model.parameters()).backward()
    opt.step()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    moments = {n: opt.state[p]["exp_avg_sq"].clone() for n, p in model.named_parameters()}
    w = torch.arange(4.0)
    keep = torch.tensor([0, 2, 3])
    _repack_(model, opt, keep, [w])
    assert model.n_models == 3 and w.tolist() == [0.0, 2.0, 3.0]
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), before[n][keep])
        torch.testing.assert_close(opt.state[p]["exp_avg_sq"], moments[n][keep])
        assert opt.state[p]["step"].dim() == 0
    opt.step()  # the optimizer still steps the repacked parameters


@pytest.mark.parametrize(("packed", "running", "compiled", "size"), [
    (10, 10, False, 10), (10, 9, False, 9), (10, 0, False, 10),
    (10, 9, True, 10), (10, 8, True, 8), (10, 5, True, 8), (10, 4, True, 4), (2, 1, True, 1),
    (50, 33, True, 50), (50, 32, True, 32), (50, 3, True, 4), (32, 17, True, 32), (32, 0, True, 32),
    (100, 60, True, 64),
])
def test_repack_rule(packed: int, running: int, compiled: bool, size: int) -> None:
    assert _repack_size(packed, running, compiled) == size
