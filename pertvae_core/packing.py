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

__all__ = ["repack_due", "repack_", "unpack"]


def repack_due(n_packed: int, n_stopped: int, compiled: bool) -> bool:
    """Whether to drop the stopped splits now: at once in eager mode; with ``torch.compile`` (a new batch
    size recompiles) only once a quarter of the packed splits stopped, so there are a few sizes only."""
    if n_stopped == 0 or n_stopped == n_packed:
        return False
    return not compiled or 4 * n_stopped >= n_packed


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
