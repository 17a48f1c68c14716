"""PertVAE (paper Eq. 1-8) and the plain VAE, batched over S independent models.

- Encoder q(z|x) (Eq. 8 + IAF), shared by x1 and x2: genes -> hidden[0] -> hidden[1] (ELU, weight norm), then
  one weight-normalized layer giving the Gaussian's mean and log-sigma [latent] and the IAF context h
  [context] (ELU), followed by ``iaf_steps`` LSTM-type IAF steps (:mod:`pertvae_core.flows`).
- Decoder p(x|z) (Eq. 4), shared: latent -> hidden[1] -> hidden[0] -> (mean, log-sigma) per gene.
- Drug effect p(z2|z1) (Eq. 3, 5): mean z1 + W z1 + b, log-sigma = W_s z1 + b_s; all four start at zero,
  so the map starts as the identity with unit variance. Prior p(z1) = N(0, I) (Eq. 2).

Log-sigmas of the encoder, the decoder and the drug effect are clamped to [LOG_SIGMA_MIN, LOG_SIGMA_MAX] for
stability.
The plain VAE (Section 4.1) is the same module with ``pairs=False`` (no drug effect).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from pertvae_core.config import FitConfig
from pertvae_core.flows import IAF
from pertvae_core.layers import BatchedLinear, WNLinear, elu, halves
from pertvae_core.precision import resolve_precision

__all__ = ["PertVAE", "LOG_SIGMA_MIN", "LOG_SIGMA_MAX", "HALF_LOG_2PI"]

LOG_SIGMA_MIN, LOG_SIGMA_MAX = -6.0, 4.0
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class PertVAE(nn.Module):
    """S independent PertVAEs (or VAEs when ``pairs`` is False); parameters of model s from ``gens[s]``.

    ``precision`` ("fp32" or "bf16", default: ``cfg.precision`` resolved for ``cfg.device``) is that of the
    weight-normalized layers' matrix products (:mod:`pertvae_core.precision`); :meth:`set_precision`
    changes it.
    """

    def __init__(self, genes: int, cfg: FitConfig, gens: Sequence[torch.Generator],
                 pairs: bool = True, precision: str | None = None) -> None:
        super().__init__()
        self.n_models, self.genes, self.latent, self.context = len(gens), genes, cfg.latent, cfg.context
        self.pairs = pairs
        h0, h1 = cfg.hidden
        L = cfg.latent
        # encoder (the mean/log-sigma/context head starts small so q(z|x) starts near N(0, I))
        self.enc1 = WNLinear(gens, genes, h0)
        self.enc2 = WNLinear(gens, h0, h1)
        self.enc_head = WNLinear(gens, h1, 2 * L + cfg.context, init_scale=0.1)
        self.iaf = IAF(gens, L, cfg.context, cfg.iaf_hidden, cfg.iaf_steps)
        # decoder
        self.dec1 = WNLinear(gens, L, h1)
        self.dec2 = WNLinear(gens, h1, h0)
        self.dec_head = WNLinear(gens, h0, 2 * genes)
        # drug effect: [W | W_s], [b | b_s]
        self.drug = BatchedLinear(self.n_models, L, 2 * L) if pairs else None
        self.set_precision(precision or resolve_precision(cfg.precision, cfg.device))

    def set_precision(self, precision: str) -> None:
        """Products of the weight-normalized layers in "fp32" or "bf16" (the drug effect stays float32)."""
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self.precision = precision
        for m in self.modules():
            if isinstance(m, WNLinear):
                m.low_precision = precision == "bf16"

    # --- q(z|x) ------------------------------------------------------------------------------------------
    def encoder_head(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The deterministic part of q(z|x) (Eq. 8): mean, clamped log-sigma [S, B, L] and IAF context h."""
        L = self.latent
        head = self.enc_head(elu(self.enc2(elu(self.enc1(x)))))
        mu, log_sigma, h = torch.split(head, [L, L, self.context], dim=-1)   # not slices: layers.halves
        return mu, log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX), elu(h)

    def encode(self, x: torch.Tensor, eps: torch.Tensor,
               head: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample z ~ q(z|x) by reparameterization with noise eps [S, B, L]; returns (z, log q(z|x) per dim).

        log q = log N(z0; mu, sigma) - sum_t log sigma_t (IAF), per latent dimension [S, B, L]. ``head``:
        :meth:`encoder_head` of x when already computed (several draws for the same x).
        """
        mu, log_sigma, h = self.encoder_head(x) if head is None else head
        z = torch.addcmul(mu, torch.exp(log_sigma), eps)
        log_q = -0.5 * eps.square() - log_sigma - HALF_LOG_2PI
        z, logdet = self.iaf(z, h)
        return z, log_q - logdet

    def sample(self, x: torch.Tensor, eps: torch.Tensor,
               head: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """The z of :meth:`encode` (the same values) without log q(z|x), which validation and prediction
        do not use."""
        mu, log_sigma, h = self.encoder_head(x) if head is None else head
        return self.iaf.sample(torch.addcmul(mu, torch.exp(log_sigma), eps), h)

    # --- p(x|z) ------------------------------------------------------------------------------------------
    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-sigma [S, B, genes] of p(x|z) (Eq. 4)."""
        mean, log_sigma = halves(self.decode_head(z))
        return mean, log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)

    def decode_head(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's output [S, B, 2 genes]: the mean, then the log-sigma before its clamp (for
        pertvae_core.elbo.gaussian_log_lik, which clamps it itself)."""
        return self.dec_head(elu(self.dec2(elu(self.dec1(z)))))

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """The mean [S, B, genes] of p(x|z) alone: the head's log-sigma half is not computed (validation by
        squared error needs no sigma)."""
        return self.dec_head(elu(self.dec2(elu(self.dec1(z)))), outputs=slice(0, self.genes))

    # --- p(z2|z1) ----------------------------------------------------------------------------------------
    def drug_effect(self, z1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean z1 + W z1 + b (Eq. 5) and log-sigma of p(z2|z1) (Eq. 3), each [S, B, L]."""
        if self.drug is None:
            raise RuntimeError("this model was built without the drug effect (plain VAE)")
        w_z1, log_sigma = halves(self.drug(z1))
        return z1 + w_z1, log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)

    @torch.no_grad()
    def select_(self, idx: torch.Tensor) -> None:
        """Keep only models ``idx`` (in that order): every parameter's leading model dimension is indexed in
        place (the Parameter objects stay, so an optimizer holding them keeps working)."""
        for p in self.parameters():
            p.data = p.data.index_select(0, idx)
        self.n_models = int(idx.numel())

    @torch.no_grad()
    def set_stacked_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Replace every parameter (in ``parameters()`` order) by ``tensors`` [S, ...] (any S)."""
        params = list(self.parameters())
        if len(tensors) != len(params):
            raise ValueError(f"set_stacked_: {len(tensors)} tensors for {len(params)} parameters")
        for p, t in zip(params, tensors, strict=True):
            p.data = t
        self.n_models = int(tensors[0].shape[0])

    def drug_l2(self) -> torch.Tensor:
        """||W||^2 + ||b||^2 of the drug effect's mean (Eq. 5) per model [S]."""
        if self.drug is None:
            return torch.zeros(self.n_models, device=self.enc1.v.device)
        L = self.latent
        return self.drug.w[..., :L].square().sum((1, 2)) + self.drug.b[..., :L].square().sum((1, 2))
