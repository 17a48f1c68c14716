"""The data of a batched fit on the device, per model, and each split's minibatch schedule.

- :func:`prepare_data`: the standardized, zero-padded training and validation tensors [S, N_max, G] of
  PertVAE (pairs, and singletons: xs_train then xu_train) or of the plain VAE (singletons only: xs_train and
  the measured profiles of the training pairs; validated on those of the validation pairs), each split's
  epoch length and loss weights, and its fixed validation noise (its own "val" generator).
- :class:`Minibatches`: each split draws its minibatch indices and training noise for one epoch at a time
  from its own generators ("index", "noise"), from index streams of concatenated random permutations of its
  own training set (every example once per pass, batches always full).

The rules (epoch lengths, weights, seeding) are :mod:`pertvae_core.train`'s; this module only holds them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData, measured_profiles

if TYPE_CHECKING:
    from pertvae_core.train import Standardizer

__all__ = ["FitData", "prepare_data", "Minibatches"]


@dataclass
class FitData:
    """Tensors of the packed splits (position j: split ``act[j]`` of the training loop) and per-split
    sizes (all S splits, original order). ``x1``/``x2``/``x2_val``/``eps2_val`` are None for the VAE."""

    x1: torch.Tensor | None          # training pairs [S, N_pairs, G]
    x2: torch.Tensor | None
    xs: torch.Tensor                 # training singletons [S, N_single, G]
    x1_val: torch.Tensor             # validation rows [S, N_val, G] (the VAE: its profiles)
    x2_val: torch.Tensor | None
    eps1_val: torch.Tensor           # fixed validation noise [S, val_samples, N_val, latent]
    eps2_val: torch.Tensor | None
    n_pairs: list[int]
    n_single: list[int]
    n_val: list[int]
    epoch_len: list[int]             # optimizer steps per epoch
    w_pairs: torch.Tensor            # [S] weights of the pair and singleton terms of the training loss
    w_single: torch.Tensor
    bp: int                          # pairs per minibatch
    bs: int                          # singletons per minibatch
    bs_used: int                     # bs, or 0 when no split has singletons

    @property
    def pairs(self) -> bool:
        """PertVAE's data (pairs), not the plain VAE's."""
        return self.x1 is not None

    def select_(self, keep: torch.Tensor) -> None:
        """Compaction: keep the packed positions ``keep`` of the data and noise tensors."""
        for name in ("x1", "x2", "xs", "x1_val", "x2_val", "eps1_val", "eps2_val"):
            x = getattr(self, name)
            setattr(self, name, None if x is None else x.index_select(0, keep))


def _noise(gens: Sequence[torch.Generator], shape_per: Callable[[int], tuple[int, ...]], n_max: int,
           latent: int, device: torch.device) -> torch.Tensor:
    """Per-split CPU noise of shape_per(s) + (latent,) padded on axis -2 to n_max, stacked on the device."""
    out = []
    for s, g in enumerate(gens):
        e = torch.randn(shape_per(s) + (latent,), generator=g)
        pad = n_max - e.shape[-2]
        if pad:
            e = torch.cat([e, torch.zeros(e.shape[:-2] + (pad, latent))], dim=-2)
        out.append(e)
    return torch.stack(out).to(device)


def _pertvae_data(splits: Sequence[SplitData], std: Standardizer, cfg: FitConfig, dev: torch.device) -> dict:
    """PertVAE: pairs and singletons; an epoch is one pass over the larger of the two (the other cycles)."""
    x1, n_pairs = std.forward([sp.x1_train for sp in splits])
    x2, _ = std.forward([sp.x2_train for sp in splits])
    xs, n_single = std.forward_singletons([sp.xs_train for sp in splits], [sp.xu_train for sp in splits])
    x1_val, n_val = std.forward([sp.x1_val for sp in splits])
    x2_val, _ = std.forward([sp.x2_val for sp in splits])
    bp, bs = cfg.batch_pairs, cfg.batch_singletons
    epoch_len = [max(1, math.ceil(a / bp), math.ceil(b / bs) if bs else 0)
                 for a, b in zip(n_pairs, n_single, strict=True)]
    tot = [a + b for a, b in zip(n_pairs, n_single, strict=True)]
    w_pairs = torch.tensor([a / t for a, t in zip(n_pairs, tot, strict=True)], device=dev)
    w_single = torch.tensor([b / t for b, t in zip(n_single, tot, strict=True)], device=dev)
    return dict(x1=x1, x2=x2, xs=xs, x1_val=x1_val, x2_val=x2_val, n_pairs=n_pairs, n_single=n_single,
                n_val=n_val, epoch_len=epoch_len, w_pairs=w_pairs, w_single=w_single, bp=bp, bs=bs,
                bs_used=bs if any(n_single) else 0)


def _vae_data(splits: Sequence[SplitData], std: Standardizer, cfg: FitConfig, dev: torch.device) -> dict:
    """Plain VAE: single profiles only, minibatches of batch_pairs + batch_singletons."""
    xs, n_single = std.forward_singletons([sp.xs_train for sp in splits],
                                          [measured_profiles(sp.x1_train, sp.x2_train, sp.xu_train)
                                           for sp in splits])
    x1_val, n_val = std.forward([measured_profiles(sp.x1_val, sp.x2_val) for sp in splits])
    bs = cfg.batch_pairs + cfg.batch_singletons
    S = len(splits)
    return dict(x1=None, x2=None, xs=xs, x1_val=x1_val, x2_val=None, n_pairs=[0] * S, n_single=n_single,
                n_val=n_val, epoch_len=[max(1, math.ceil(n / bs)) for n in n_single],
                w_pairs=torch.zeros(S, device=dev), w_single=torch.ones(S, device=dev), bp=0, bs=bs,
                bs_used=bs)


def prepare_data(splits: Sequence[SplitData], std: Standardizer, cfg: FitConfig,
                 gens: Sequence[dict[str, torch.Generator]], pairs: bool, dev: torch.device) -> FitData:
    """The fit's data for PertVAE (``pairs``) or the VAE, standardized by ``std``
    (:class:`pertvae_core.train.Standardizer`), and each split's validation noise."""
    d = (_pertvae_data if pairs else _vae_data)(splits, std, cfg, dev)
    n_val, nv_max, K = d["n_val"], d["x1_val"].shape[1], cfg.val_samples
    val = [g["val"] for g in gens]
    eps1 = _noise(val, lambda s: (K, n_val[s]), nv_max, cfg.latent, dev)
    eps2 = _noise(val, lambda s: (K, n_val[s]), nv_max, cfg.latent, dev) if pairs else None
    return FitData(eps1_val=eps1, eps2_val=eps2, **d)


class IndexStream:
    """Indices from concatenated random permutations of range(n) drawn from one generator (every row once
    per pass, batches always full; the training loops of pertvae_core.train and pertvae_core.drvae_train);
    n = 0 gives zeros without drawing."""

    def __init__(self, n: int, gen: torch.Generator) -> None:
        self.n, self.gen = n, gen
        self.buf = torch.empty(0, dtype=torch.long)

    def take(self, k: int) -> torch.Tensor:
        if self.n == 0:
            return torch.zeros(k, dtype=torch.long)
        while self.buf.numel() < k:
            self.buf = torch.cat([self.buf, torch.randperm(self.n, generator=self.gen)])
        out, self.buf = self.buf[:k], self.buf[k:]
        return out


class Minibatches:
    """Each split's minibatch indices and training noise, one epoch at a time (``refill``), on the device.

    Step k of split s's current epoch (started at global step ``start[s]``) is row k of its chunk.
    """

    def __init__(self, data: FitData, gens: Sequence[dict[str, torch.Generator]], latent: int,
                 dev: torch.device) -> None:
        self.gens, self.latent, self.dev = gens, latent, dev
        self.bp, self.bs = data.bp, data.bs
        self.epoch_len = np.asarray(data.epoch_len, dtype=np.int64)
        self.pair_idx = [IndexStream(n, g["index"]) for n, g in zip(data.n_pairs, gens, strict=True)]
        self.single_idx = [IndexStream(n, g["index"]) for n, g in zip(data.n_single, gens, strict=True)]
        self.chunks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None] = [None] * len(gens)
        self.start = np.zeros(len(gens), dtype=np.int64)
        for s in range(len(gens)):
            self.refill(s, 0)

    def refill(self, s: int, t: int) -> None:
        """Draw split s's next epoch (pair indices, singleton indices, noise), from step t on."""
        e = int(self.epoch_len[s])
        none = torch.zeros(e, 0, dtype=torch.long)
        ip = torch.stack([self.pair_idx[s].take(self.bp) for _ in range(e)]) if self.bp else none
        is_ = torch.stack([self.single_idx[s].take(self.bs) for _ in range(e)]) if self.bs else none
        eps = torch.randn((e, 2 * self.bp + self.bs, self.latent), generator=self.gens[s]["noise"])
        self.chunks[s] = (ip.to(self.dev), is_.to(self.dev), eps.to(self.dev))
        self.start[s] = t

    def drop(self, s: int) -> None:
        """Split s left the computation: free its chunk."""
        self.chunks[s] = None

    def take(self, act: np.ndarray, t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Step t's pair indices [S_packed, bp], singleton indices [S_packed, bs], noise of splits ``act``."""
        k = np.minimum(t - self.start[act], self.epoch_len[act] - 1).tolist()
        rows = [self.chunks[s] for s in act]
        return tuple(torch.stack([c[i][kj] for c, kj in zip(rows, k, strict=True)])  # type: ignore[return-value,index]
                     for i in range(3))

    def epoch_ends(self, act: np.ndarray, t: int) -> np.ndarray:
        """Whether each split of ``act`` completes an epoch with t steps done."""
        return t - self.start[act] == self.epoch_len[act]
