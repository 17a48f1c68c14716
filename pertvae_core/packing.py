"""Packing (compaction) of batched fits: splits that stopped or failed leave the computation.

Every per-split tensor of a batched fit (parameters, Adam moments, best states, data, noise) stacks the
splits along its first dimension. In the *packed* layout position j holds split ``act[j]``; compaction keeps
the positions of the splits still training (``keep``), so later steps compute only them. :func:`unpack`
puts the packed rows and those set aside at compaction back into all S splits, in their original order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from pertvae_core.model import PertVAE

__all__ = ["RUNGS", "packed_sizes", "repack_size", "repack_", "unpack"]

# The batch sizes compaction repacks to under torch.compile, each a graph per model shape (a new batch size
# recompiles). Powers of two: a compiled fit of S splits meets its S and the rungs below it (S = 50: 50, 32,
# 16, 8, 4, 2, 1), so the paper grid's 8 model shapes (the VAE's 7 latent sizes, PertVAE) make 56 graphs,
# under pertvae_core.train.COMPILED_SHAPES. On a GPU a paper-sized step is launch-bound (README: S=50 costs
# what S=1 does), so the frozen splits a rung keeps cost ~nothing while each rung more costs a compile.
RUNGS = (256, 128, 64, 32, 16, 8, 4, 2, 1)


def packed_sizes(n_splits: int) -> tuple[int, ...]:
    """Every batch size a compiled fit of ``n_splits`` splits can pass through: its own, then the rungs
    below it."""
    return (n_splits,) + tuple(r for r in RUNGS if r < n_splits)


def repack_size(n_packed: int, n_running: int, compiled: bool) -> int:
    """The batch size to repack to now (``n_packed``: not now). Eager, every stopped split leaves at once;
    with ``torch.compile`` the smallest rung below ``n_packed`` that holds the running splits (a few stopped
    splits stay packed, frozen and masked), so the fit meets only :func:`packed_sizes`."""
    if n_running in (0, n_packed):
        return n_packed
    if not compiled:
        return n_running
    return min((r for r in RUNGS if n_running <= r < n_packed), default=n_packed)


@torch.no_grad()
def repack_(model: PertVAE, opt: torch.optim.Optimizer, keep: torch.Tensor,
            tensors: Sequence[torch.Tensor]) -> None:
    """Keep models ``keep`` (packed positions) in the model's parameters, their Adam moments and
    ``tensors`` (per-split tensors other code holds, e.g. the loss weights of the train step), in place."""
    n = model.n_models
    model.select_(keep)
    for p in model.parameters():
        for key, v in opt.state.get(p, {}).items():
            if torch.is_tensor(v) and v.dim() and v.shape[0] == n:  # exp_avg, exp_avg_sq (not the step)
                opt.state[p][key] = v.index_select(0, keep)
    for x in tensors:
        x.data = x.data.index_select(0, keep)


def unpack(packed: Sequence[torch.Tensor], act: np.ndarray, dropped: Mapping[int, Sequence[torch.Tensor]],
           n_splits: int) -> list[torch.Tensor]:
    """Full [S, ...] tensors from the packed ones (position j: split ``act[j]``) and the rows of the
    splits dropped earlier (``dropped[s][i]``: split s's row of tensor i)."""
    full = []
    for i, c in enumerate(packed):
        act_t = torch.as_tensor(act, device=c.device)
        f = torch.empty((n_splits,) + tuple(c.shape[1:]), dtype=c.dtype, device=c.device)
        f.index_copy_(0, act_t, c)
        for s, ts in dropped.items():
            f[s] = ts[i]
        full.append(f)
    return full
