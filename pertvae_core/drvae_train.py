"""Fit S response splits as one batched Dr.VAE: Adam, mixed minibatches, early stopping per split.

Seeded exactly like PertVAE (:mod:`pertvae_core.train`): each split's seed gives independent generators
(:func:`pertvae_core.train.seed_streams`: init, index, noise, val, eval), every random number of a split comes
from its own generators, and no layer mixes models, so S batched fits equal S separate fits to float
tolerance.
- Standardization (:class:`pertvae_core.train.Standardizer`, from each split's training rows only): pairs with
  the statistics of x1_pairs + x2_pairs; training, validation and test singletons with those of the training
  singletons ("per_source", the default; the pairs' statistics where a split has no singletons) or one pooled
  set. The continuous head's responses are standardized by the labelled training rows' mean and s.d.
- Minibatches: each step draws ``batch_pairs`` pairs and ``batch_singletons`` singletons of each split, each
  set by its own stream of concatenated random permutations (as PertVAE's), labelled and
  unlabelled mixed in their training proportions. An epoch of a split is max(ceil(n_P / Bp), ceil(n_S / Bs))
  steps (every example once per pass; the smaller set is cycled).
- Early stopping (per split, at the end of each of its epochs): the validation loss is the negative
  log-likelihood of the validation labels under the Monte Carlo prediction P(y=1 | x1) (mean over
  ``val_samples`` fixed draws of z1 ~ q(z1|x1), z2 ~ p(z2|z1); the log loss of the probability the test
  scores), or for the continuous head the mean squared error of the predicted mean (standardized units). A
  proper, smooth score of the same prediction as the test's, where validation AUROC is a step function of a
  few ranks (the authors' code stops on AUROC + AUPR + reconstruction Pearsons, a rolling mean of three).
  ``patience`` epochs without improvement (after ``min_epochs``) stop a split; its best state is restored.
  Without validation rows a split trains ``max_epochs`` and keeps its final state.
- A non-finite training or validation loss fails that split (status "failed", a reason) and freezes it; the
  others go on. So does, when it stops or finishes, a best validation loss over
  :data:`pertvae_core.early_stopping.DIVERGED_RATIO` times the untrained state's (PertVAE's rule and words):
  lr 10 on drvae-demo's binary head gave log losses 2-15 times the untrained ~0.69 at training losses
  1e24-1e28. The binary head's log loss is bounded (probabilities clipped at 1e-6: at most 13.8 nats), so
  this catches only the worst of those (2 of their 30: 2.1x to 15x); the continuous head's squared error
  is not bounded. A frozen split's loss is masked out of the backward pass and its parameters are reset to
  its best state after every step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import torch

from pertvae_core.adam import adam_step_
from pertvae_core.drvae import DrVAE, DrVAEConfig
from pertvae_core.drvae_elbo import BatchNoise, LossWeights, batch_terms, training_loss
from pertvae_core.early_stopping import SplitStopping
from pertvae_core.fit_data import IndexStream
from pertvae_core.response_data import ResponseSplit
from pertvae_core.train import Standardizer, make_optimizer, resolve_device, seed_streams

__all__ = ["DrVAEState", "fit_drvae", "response_targets"]


@dataclass
class DrVAEState:
    """A trained batched Dr.VAE (best states restored), its data scaling and what happened to each split."""

    model: DrVAE
    cfg: DrVAEConfig
    std: Standardizer
    y_mean: list[float]
    y_scale: list[float]
    seeds: list[int]
    epochs: list[int]
    best_epoch: list[int]
    status: list[str]
    reason: list[str]
    fit_seconds: float
    device: torch.device
    history: list[list[float]] = field(default_factory=list)  # validation loss per epoch per split
    train_loss: list[list[float]] = field(default_factory=list)  # mean training loss per epoch per split


def _check(splits: Sequence[ResponseSplit], seeds: Sequence[int]) -> list[ResponseSplit]:
    splits = list(splits)
    if not splits:
        raise ValueError("fit_drvae: no splits given")
    if len(seeds) != len(splits):
        raise ValueError(f"fit_drvae: {len(seeds)} seeds for {len(splits)} splits")
    for i, sp in enumerate(splits):
        if not isinstance(sp, ResponseSplit):
            raise ValueError(f"fit_drvae: splits[{i}] must be a ResponseSplit, got {type(sp).__name__}")
        if sp.x1_pairs.shape[0] == 0:
            raise ValueError(f"fit_drvae: splits[{i}] has no training pairs; Dr.VAE needs perturbation pairs")
    if len({sp.genes for sp in splits}) != 1:
        raise ValueError(f"fit_drvae: splits of one batched fit must have the same genes, got "
                         f"{sorted({sp.genes for sp in splits})}")
    return splits


def response_targets(sp: ResponseSplit, head: str) -> tuple[float, float]:
    """(mean, scale) that standardize the continuous head's responses (labelled training rows); (0, 1) for
    the binary head, whose targets are the 0/1 labels."""
    if head == "binary":
        return 0.0, 1.0
    r = sp.supervised_train()[2]
    sd = float(r.std())
    return float(r.mean()), sd if sd > 0 else 1.0


def _pad_y(rows: Sequence[np.ndarray], n_max: int, device: torch.device) -> torch.Tensor:
    out = torch.full((len(rows), max(n_max, 1)), float("nan"))
    for s, r in enumerate(rows):
        out[s, : len(r)] = torch.as_tensor(r, dtype=torch.float32)
    return out.to(device)


def _val_noise(gens: Sequence[torch.Generator], n: Sequence[int], k: int, n_max: int, latent: int,
               device: torch.device) -> torch.Tensor:
    """[S, K, n_max, L]: split s's K draws for its n[s] rows from its own generator, zero-padded."""
    out = torch.zeros(len(gens), k, n_max, latent)
    for s, g in enumerate(gens):
        out[s, :, : n[s]] = torch.randn((k, n[s], latent), generator=g)
    return out.to(device)


class _Data:
    """Standardized, padded training and validation tensors of S splits, and the loss weights."""

    def __init__(self, splits: list[ResponseSplit], cfg: DrVAEConfig, std: Standardizer,
                 dev: torch.device) -> None:
        scale = [response_targets(sp, cfg.head) for sp in splits]
        self.y_mean, self.y_scale = [m for m, _ in scale], [s for _, s in scale]

        def target(sp: ResponseSplit, part: str, s: int) -> np.ndarray:
            if cfg.head == "binary":
                return getattr(sp, f"y_{part}")
            return (getattr(sp, f"r_{part}") - self.y_mean[s]) / self.y_scale[s]

        self.P1, self.n_pairs = std.forward([sp.x1_pairs for sp in splits])
        self.P2, _ = std.forward([sp.x2_pairs for sp in splits])
        self.XS, self.n_single = std.forward_singletons([sp.xs_train for sp in splits])
        self.V, self.n_val = std.forward_singletons([sp.x_val for sp in splits])
        self.YP = _pad_y([target(sp, "pairs", s) for s, sp in enumerate(splits)], self.P1.shape[1], dev)
        self.YS = _pad_y([target(sp, "train", s) for s, sp in enumerate(splits)], self.XS.shape[1], dev)
        self.YV = _pad_y([target(sp, "val", s) for s, sp in enumerate(splits)], self.V.shape[1], dev)
        n_lab = [int((~np.isnan(sp.r_pairs)).sum() + (~np.isnan(sp.r_train)).sum()) for sp in splits]
        n_tot = [a + b for a, b in zip(self.n_pairs, self.n_single, strict=True)]

        def t(v: Sequence[float]) -> torch.Tensor:
            return torch.tensor(v, dtype=torch.float32, device=dev)

        self.weights = LossWeights(
            pairs=t([a / n for a, n in zip(self.n_pairs, n_tot, strict=True)]),
            single=t([b / n for b, n in zip(self.n_single, n_tot, strict=True)]),
            pert=t([cfg.pert_rate * (a > 0) for a in self.n_pairs]),
            y_pairs=t([a / m for a, m in zip(self.n_pairs, n_lab, strict=True)]),
            y_single=t([b / m for b, m in zip(self.n_single, n_lab, strict=True)]),
            y_rate=float(cfg.y_rate))


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows idx [S, B] of x [S, N, ...] -> [S, B, ...]: one ``index_select`` of whole rows of x seen as
    [S * N, ...] (offsets s * N), as pertvae_core.train._gather does, rather than ``torch.gather`` with the
    index expanded over genes: the same values, copied a row at a time instead of an element at a time
    (benchmarks/test_step_overhead.py test_row_gather)."""
    S, N, rest = x.shape[0], x.shape[1], x.shape[2:]
    flat = (idx + torch.arange(S, device=idx.device)[:, None] * N).reshape(-1)
    return x.reshape(S * N, *rest).index_select(0, flat).view(S, idx.shape[1], *rest)


def _validation_loss(model: DrVAE, d: _Data, veps1: torch.Tensor, veps2: torch.Tensor) -> np.ndarray:
    """Per-split validation loss (module docstring); NaN where a split has no validation rows."""
    with torch.no_grad():
        out = model.response_draws(d.V, veps1, veps2)
        if model.head == "binary":
            p = torch.sigmoid(out).mean(1).clamp(1e-6, 1 - 1e-6)
            loss = -(d.YV * torch.log(p) + (1 - d.YV) * torch.log1p(-p))
        else:
            loss = (out.mean(1) - d.YV).square()
        mask = ~torch.isnan(d.YV)
        tot = torch.where(mask, loss, torch.zeros((), device=loss.device)).sum(1)
        cnt = mask.sum(1)
        val = torch.where(cnt > 0, tot / cnt.clamp_min(1), torch.full_like(tot, float("nan")))
        return val.cpu().numpy().astype(np.float64)


class _Batches:
    """Per-split minibatch indices and noise, one epoch at a time, each split from its own generators: its
    draws never depend on the other splits (noise is drawn for full batches; the singleton part is dropped
    when no split of the batch has singletons)."""

    def __init__(self, d: _Data, cfg: DrVAEConfig, gens: list[dict[str, torch.Generator]],
                 dev: torch.device) -> None:
        self.bp, self.bs, self.L, self.L3, self.gens, self.dev = (cfg.batch_pairs, cfg.batch_singletons,
                                                                   cfg.latent, cfg.latent_z3, gens, dev)
        S, bp, bs = len(gens), self.bp, self.bs
        self.bs_used = bs if any(d.n_single) else 0
        self.epoch_len = np.array([max(1, math.ceil(a / bp), math.ceil(b / bs) if bs else 0)
                                   for a, b in zip(d.n_pairs, d.n_single, strict=True)])
        self.pairs = [IndexStream(d.n_pairs[s], gens[s]["index"]) for s in range(S)]
        self.single = [IndexStream(d.n_single[s], gens[s]["index"]) for s in range(S)]
        self.start = np.zeros(S, dtype=np.int64)
        self.keep = torch.cat([torch.arange(2 * bp), 2 * bp + torch.arange(self.bs_used)]).to(dev)
        self.keep1 = torch.cat([torch.arange(bp), bp + torch.arange(self.bs_used)]).to(dev)
        self.chunks: list[tuple[torch.Tensor, ...]] = [self._epoch(s) for s in range(S)]

    def _epoch(self, s: int) -> tuple[torch.Tensor, ...]:
        """Split s's next epoch: indices [e, Bp], [e, Bs] and the four noise tensors, in a fixed order."""
        e, g, bp, bs, L = int(self.epoch_len[s]), self.gens[s]["noise"], self.bp, self.bs, self.L
        ip = torch.stack([self.pairs[s].take(bp) for _ in range(e)])
        is_ = (torch.stack([self.single[s].take(bs) for _ in range(e)]) if bs
               else torch.zeros(e, 0, dtype=torch.long))
        eps = (torch.randn((e, 2 * bp + bs, L), generator=g), torch.randn((e, bp + bs, L), generator=g),
               torch.randn((e, bp + bs, self.L3), generator=g), torch.randn((e, bp + bs), generator=g))
        return tuple(x.to(self.dev) for x in (ip, is_, *eps))

    def draw(self, t: int) -> tuple[torch.Tensor, torch.Tensor, BatchNoise]:
        """Step t's pair indices [S, Bp], singleton indices [S, Bs] and noise (a frozen split repeats its
        last step; its loss is masked)."""
        k = np.minimum(t - self.start, self.epoch_len - 1)
        ip, is_, ex, e2, e3, ey = (torch.stack([c[j][k[s]] for s, c in enumerate(self.chunks)])
                                   for j in range(6))
        noise = BatchNoise(ex.index_select(1, self.keep), e2.index_select(1, self.keep1),
                           e3.index_select(1, self.keep1), ey.index_select(1, self.keep1))
        return ip, is_[:, : self.bs_used], noise

    def due(self, t: int) -> np.ndarray:
        """Splits whose epoch ends after step t - 1."""
        return t - self.start == self.epoch_len

    def next_epoch(self, s: int, t: int) -> None:
        self.chunks[s], self.start[s] = self._epoch(s), t


class _Stopping:
    """Per-split early-stopping records (:class:`pertvae_core.early_stopping.SplitStopping`, PertVAE's rules:
    a non-finite loss, or a best validation loss over DIVERGED_RATIO times the untrained state's
    ``init_val``, fails a split) and each split's mean training loss per epoch."""

    def __init__(self, cfg: DrVAEConfig, n_val: Sequence[int], init_val: Sequence[float]) -> None:
        self.splits = [SplitStopping(int(n), cfg.patience, cfg.min_epochs, cfg.max_epochs, float(v))
                       for n, v in zip(n_val, init_val, strict=True)]
        self.frozen = np.zeros(len(self.splits), dtype=bool)
        self.train_loss: list[list[float]] = [[] for _ in self.splits]

    def end_epoch(self, s: int, val: float, train: float) -> bool:
        """Record split s's epoch (validation loss, mean training loss); True when it is the new best."""
        self.train_loss[s].append(train)
        improved = self.splits[s].update(train, val)
        self.frozen[s] = self.splits[s].frozen
        return improved

    def field(self, name: str) -> list:
        """Each split's ``name`` (epochs, best_epoch, status, reason, history)."""
        return [getattr(sp, name) for sp in self.splits]


@torch.no_grad()
def _copy_where(dst: Sequence[torch.Tensor], src: Sequence[torch.Tensor], mask: torch.Tensor) -> None:
    """dst[s] = src[s] for the models s where mask [S] is True (every tensor [S, ...])."""
    for a, b in zip(dst, src, strict=True):
        a.copy_(torch.where(mask.view((-1,) + (1,) * (a.dim() - 1)), b, a))


def _prepare(splits: Sequence[ResponseSplit], cfg: DrVAEConfig, gens: Sequence[dict], dev: torch.device
             ) -> tuple[DrVAE, Standardizer, _Data, list]:
    """The batched model (initialized from each seed's ``init`` stream), the standardizer of the training
    pairs and singletons, the data on the device and the two validation noise draws (``val`` streams):
    drawn in this order, so a seed gives the same fit."""
    model = DrVAE(splits[0].genes, cfg, [g["init"] for g in gens]).to(dev)
    views = [SimpleNamespace(x1_train=sp.x1_pairs, x2_train=sp.x2_pairs, xs_train=sp.xs_train,
                             xu_train=None)
             for sp in splits]
    std = Standardizer.from_splits(views, dev, cfg.standardize)
    d = _Data(splits, cfg, std, dev)
    veps = [_val_noise([g["val"] for g in gens], d.n_val, cfg.val_samples, d.V.shape[1], cfg.latent, dev)
            for _ in range(2)]
    return model, std, d, veps


def fit_drvae(splits: Sequence[ResponseSplit], cfg: DrVAEConfig, seeds: Sequence[int],
              max_steps: int | None = None, on_step: Callable[[int, DrVAE], None] | None = None
              ) -> DrVAEState:
    """Train one batched Dr.VAE over ``splits`` (one model per split, seeds[s] for split s).

    ``max_steps`` caps the optimizer steps (tests, benchmarks; the final state is then kept, not the best);
    ``on_step(step, model)`` runs after each optimizer step (diagnostics, fault injection).
    """
    splits = _check(splits, seeds)
    t0 = time.perf_counter()
    dev = resolve_device(cfg.device)
    gens = [seed_streams(int(sd)) for sd in seeds]
    model, std, d, veps = _prepare(splits, cfg, gens, dev)
    params = list(model.parameters())
    opt = make_optimizer(params, cfg.lr)
    for group in opt.param_groups:  # Adam's L2 term, as the authors' optimizer (elementwise: per model)
        group["weight_decay"] = cfg.weight_decay
    # the untrained state's validation loss (its fixed noise: no draw taken), the bar a fit must beat
    batches, stop = _Batches(d, cfg, gens, dev), _Stopping(cfg, d.n_val, _validation_loss(model, d, *veps))
    best = [p.detach().clone() for p in params]
    frozen_t = torch.zeros(len(splits), dtype=torch.bool, device=dev)
    acc = torch.zeros(len(splits), device=dev)
    zero = torch.zeros((), device=dev)
    t = 0
    while not stop.frozen.all() and (max_steps is None or t < max_steps):
        ip, is_, noise = batches.draw(t)
        terms = batch_terms(model, _gather(d.P1, ip), _gather(d.P2, ip), _gather(d.XS, is_),
                            _gather(d.YP, ip), _gather(d.YS, is_), noise, cfg.y_sigma)
        loss_s = training_loss(terms, d.weights)
        torch.where(frozen_t, zero, loss_s).sum().backward()
        adam_step_(opt)
        acc += loss_s.detach()
        if stop.frozen.any():
            _copy_where(params, best, frozen_t)
        if on_step is not None:
            on_step(t, model)
        t += 1
        due = ~stop.frozen & batches.due(t)
        if not due.any():
            continue
        val, accn = _validation_loss(model, d, *veps), acc.cpu().numpy()
        improved = np.zeros(len(splits), dtype=bool)
        for s in np.flatnonzero(due):
            improved[s] = stop.end_epoch(s, float(val[s]), float(accn[s]) / batches.epoch_len[s])
        acc = torch.where(torch.as_tensor(due, device=dev), zero, acc)
        _copy_where(best, params, torch.as_tensor(improved, device=dev))
        for s in np.flatnonzero(due & ~stop.frozen):
            batches.next_epoch(s, t)
        frozen_t = torch.as_tensor(stop.frozen, device=dev)
    if max_steps is None:
        _copy_where(params, best, torch.ones(len(splits), dtype=torch.bool, device=dev))
    return DrVAEState(model=model, cfg=cfg, std=std, y_mean=d.y_mean, y_scale=d.y_scale,
                      seeds=[int(x) for x in seeds], epochs=stop.field("epochs"),
                      best_epoch=stop.field("best_epoch"), status=stop.field("status"),
                      reason=stop.field("reason"), fit_seconds=time.perf_counter() - t0, device=dev,
                      history=stop.field("history"),
                      train_loss=stop.train_loss)
