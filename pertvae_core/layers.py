"""Linear layers batched over S independent models (a leading model dimension on every tensor).

Inputs are [S, B, in], weights [S, in, out]; one ``torch.bmm`` computes all S models at once, so S
cross-validation fits of one drug train as one batched model. Parameters of model s are initialized from
its own ``torch.Generator`` (``gens[s]``), so a batched fit equals S separate fits with the same seeds.

- :class:`WNLinear`: weight normalization (Salimans & Kingma 2016; paper Section 4 "Architecture"),
  W[:, j] = g_j v[:, j] / ||v[:, j]||. The per-column scale is applied to the bmm output (cheaper than
  scaling the [in, out] weight when B < in).
- :class:`MaskedWNLinear`: the same with a fixed 0/1 connectivity mask (MADE, Germain et al. 2015), used by
  the IAF (:mod:`pertvae_core.flows`).
- :class:`BatchedLinear`: plain affine map, initialized to zero (the drug effect W, b of Eq. 5).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["WNLinear", "MaskedWNLinear", "BatchedLinear", "elu"]

elu = nn.functional.elu


def _normal(gens: Sequence[torch.Generator], shape: tuple[int, ...], std: float) -> torch.Tensor:
    """[S, *shape] with slice s drawn from gens[s] (CPU generators)."""
    return torch.stack([torch.randn(shape, generator=g) * std for g in gens])


class WNLinear(nn.Module):
    """Weight-normalized affine map for S models: y = (x @ v) * g / ||v|| + b, x [S, B, in] -> [S, B, out].

    v ~ N(0, 0.05^2) per model from its generator, g = ``init_scale`` (column norm of W, so each output unit
    starts with variance ~ init_scale^2 * Var(x)), b = ``bias_init``.
    """

    def __init__(self, gens: Sequence[torch.Generator], n_in: int, n_out: int, init_scale: float = 1.0,
                 bias_init: float | torch.Tensor = 0.0) -> None:
        super().__init__()
        s = len(gens)
        self.n_in, self.n_out = n_in, n_out
        self.v = nn.Parameter(_normal(gens, (n_in, n_out), 0.05))
        self.g = nn.Parameter(torch.full((s, 1, n_out), float(init_scale)))
        b = torch.zeros(s, 1, n_out) + torch.as_tensor(bias_init, dtype=torch.float32)
        self.b = nn.Parameter(b)

    def weight_dir(self) -> torch.Tensor:
        return self.v

    def col_scale(self, v: torch.Tensor) -> torch.Tensor:
        return self.g * torch.rsqrt(v.square().sum(dim=1, keepdim=True) + 1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.weight_dir()
        return torch.addcmul(self.b, torch.bmm(x, v), self.col_scale(v))

    def weight(self) -> torch.Tensor:
        """The effective weight [S, in, out] (for tests and inspection)."""
        v = self.weight_dir()
        return v * self.col_scale(v)


class MaskedWNLinear(WNLinear):
    """:class:`WNLinear` with a fixed connectivity mask [in, out] (MADE): W = g * (v * M) / ||v * M||."""

    def __init__(self, gens: Sequence[torch.Generator], mask: torch.Tensor, init_scale: float = 1.0,
                 bias_init: float | torch.Tensor = 0.0) -> None:
        n_in, n_out = mask.shape
        super().__init__(gens, n_in, n_out, init_scale, bias_init)
        self.register_buffer("mask", mask.to(torch.float32))

    def weight_dir(self) -> torch.Tensor:
        return self.v * self.mask


class BatchedLinear(nn.Module):
    """Plain affine map y = x @ W + b for S models, W and b initialized to zero (identity drug effect)."""

    def __init__(self, n_models: int, n_in: int, n_out: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(n_models, n_in, n_out))
        self.b = nn.Parameter(torch.zeros(n_models, 1, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.b, x, self.w)
