"""Early stopping per split (pertvae_core.early_stopping): known answers for the record of one split, the
best states of several splits (each its own, through compaction), and a batched fit in which one split's
validation loss rises."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData
from pertvae_core.early_stopping import EarlyStopping, SplitStopping
from pertvae_core.model import PertVAE
from pertvae_core.train import fit

CFG = FitConfig(latent=3, hidden=(16, 8), context=4, iaf_hidden=8, batch_pairs=8, batch_singletons=6,
                max_epochs=10, patience=2, lr=3e-3, mc_samples=3)


def _run(rec: SplitStopping, losses: list[float], train: list[float] | None = None) -> list[bool]:
    """Feed epochs until the record freezes (or the losses run out); whether each epoch was a new best."""
    out = []
    for e, v in enumerate(losses):
        out.append(rec.update(1.0 if train is None else train[e], v))
        if rec.frozen:
            break
    return out


def test_a_rising_validation_loss_stops_after_patience_epochs() -> None:
    rec = SplitStopping(n_val=4, patience=2, min_epochs=0, max_epochs=50)
    improved = _run(rec, [5.0, 4.0, 3.0, 3.5, 4.5, 1.0])
    assert improved == [True, True, True, False, False]   # epoch 6's 1.0 is never seen
    assert (rec.epochs, rec.best_epoch, rec.best_val, rec.since_best) == (5, 3, 3.0, 2)
    assert rec.frozen and rec.status == "done" and rec.history == [5.0, 4.0, 3.0, 3.5, 4.5]


def test_burn_in_epochs_are_never_best_and_never_stop() -> None:
    rec = SplitStopping(n_val=4, patience=1, min_epochs=3, max_epochs=50)
    improved = _run(rec, [1.0, 2.0, 3.0, 2.5, 2.6])
    # epochs 1-2 (burn-in) are not selected although lowest and do not stop; epoch 3 is the first best
    assert improved == [False, False, True, True, False]
    assert (rec.epochs, rec.best_epoch, rec.best_val) == (5, 4, 2.5)


def test_without_validation_rows_the_last_epoch_is_best_until_max_epochs() -> None:
    rec = SplitStopping(n_val=0, patience=1, min_epochs=0, max_epochs=4)
    assert _run(rec, [float("nan")] * 10) == [True] * 4
    assert rec.frozen and (rec.epochs, rec.best_epoch, rec.status) == (4, 4, "done")


@pytest.mark.parametrize(("train", "val", "what"),
                         [(math.inf, 1.0, "training"), (1.0, math.nan, "validation")])
def test_a_non_finite_loss_fails_the_split(train: float, val: float, what: str) -> None:
    rec = SplitStopping(n_val=4, patience=5, min_epochs=0, max_epochs=50)
    assert _run(rec, [3.0, val], [1.0, train]) == [True, False]
    assert rec.frozen and rec.status == "failed"
    assert rec.reason.startswith(f"non-finite {what} loss in epoch 2: ")
    assert rec.best_epoch == 1


def test_each_split_keeps_and_restores_its_own_best_state_through_compaction() -> None:
    """Three splits whose parameters at the end of epoch e are all 100 * s + e: split 1's loss rises after
    epoch 2 (patience 2: stops at 4, restores 2), split 0's falls (max_epochs 6), split 2 has no validation
    rows (its last state). Split 1 is dropped from the packed tensors when it stops."""
    cfg = FitConfig(**{**CFG.__dict__, "max_epochs": 6})
    model = PertVAE(5, cfg, [torch.Generator().manual_seed(s) for s in range(3)])
    params = list(model.parameters())
    val = {0: [6.0, 5.0, 4.0, 3.0, 2.0, 1.0], 1: [3.0, 1.0, 2.0, 3.0], 2: [math.nan] * 6}
    stop = EarlyStopping([4, 4, 0], params, cfg)
    act = np.arange(3)
    for e in range(1, 7):
        with torch.no_grad():
            for p in params:
                for j, s in enumerate(act):
                    p[j].fill_(100 * s + e)
        due = ~stop.frozen(act)
        stop.update(act, due, np.array([val[s][e - 1] for s in act]), np.ones(len(act)), params)
        frz = stop.frozen(act)
        if frz.any() and not frz.all():   # compaction, as the training loop does it
            keep = torch.as_tensor(np.flatnonzero(~frz))
            stop.drop_(act, frz, keep)
            model.select_(keep)
            act = act[~frz]
    assert [r.epochs for r in stop.splits] == [6, 4, 6]
    assert [r.best_epoch for r in stop.splits] == [6, 2, 6]
    stop.restore(model, act)
    for s, best in enumerate((6, 2, 6)):
        for p in model.parameters():
            assert torch.equal(p[s], torch.full_like(p[s], 100 * s + best)), (s, p.shape)


def _split(rng: np.random.Generator, n_train: int, n_single: int, genes: int = 12) -> SplitData:
    base = rng.normal(size=genes)

    def f(n: int) -> np.ndarray:
        return (base + rng.normal(size=(n, genes))).astype(np.float32)

    x1 = f(n_train)
    return SplitData(x1, x1 + 0.5, f(6), f(6), f(5), f(5), f(n_single))


def test_a_batched_fit_stops_each_split_at_its_own_epoch_with_its_best_state() -> None:
    """A high learning rate makes validation losses rise early; each split that stops by patience stopped
    ``patience`` epochs after its minimum and holds the state its own run had after that epoch."""
    rng = np.random.default_rng(2)
    splits = [_split(rng, 20, 0), _split(rng, 13, 0), _split(rng, 30, 0)]
    cfg = FitConfig(**{**CFG.__dict__, "max_epochs": 40, "lr": 3e-2})
    seeds = [5, 6, 7]
    st = fit(splits, cfg, seeds)
    stopped = [s for s in range(3) if st.epochs[s] < cfg.max_epochs]
    assert len(stopped) >= 2 and len({st.epochs[s] for s in stopped}) >= 2
    for s in stopped:
        assert st.best_epoch[s] == int(np.argmin(st.history[s])) + 1
        assert st.epochs[s] == st.best_epoch[s] + cfg.patience
        steps = st.best_epoch[s] * math.ceil(len(splits[s].x1_train) / cfg.batch_pairs)
        at_best = fit([splits[s]], cfg, [seeds[s]], max_steps=steps)
        for (k, v), w in zip(at_best.model.named_parameters(), st.model.parameters(), strict=True):
            torch.testing.assert_close(w[s].detach(), v[0].detach(), rtol=1e-4, atol=1e-5, msg=k)
