"""Dr.VAE (Rampasek et al., Bioinformatics 35(19):3743, 2019; arXiv:1706.08203), batched over S models.

Generative model (the preprint's Dr.VAE graphical model; the factorization of the authors' DrVAE class):
    p(x1, x2, z1, z2, z3, y) = p(z3) p(y) p(z1 | z3, y) p(z2 | z1) p(x1 | z1) p(x2 | z2)
- p(z3) = N(0, I); p(y) = Bernoulli(1/2) for the binary head (the authors' default uniform prior) or
  N(0, 1) for the continuous head (responses standardized by their training mean and s.d.);
- p(z1 | z3, y) = N(mu(z3, y), sigma(z3, y)^2): a weight-normalized ELU MLP of [z3, y];
- p(z2 | z1) = N(z1 + W z1 + b, diag exp(2 (W_s z1 + b_s))): PertVAE's linear drug effect (paper Eq. 3, 5);
- p(x | z), shared by x1 and x2: PertVAE's decoder (Eq. 4).
Posteriors: q(z1 | x1) and q(z2 | x2) are one encoder, PertVAE's with its IAF (Eq. 8 + Kingma et al. 2016);
q(y | z1, z2) the response classifier on the concatenation [z1, z2] (a WN-MLP, linear by default as in the
authors' code; Bernoulli logit, or the mean of N(y; m, y_sigma^2) for the continuous head with a small fixed
variance); q(z3 | z1, y) = N(mu(z1, y), sigma(z1, y)^2), a WN-MLP. Where x2 is not observed (singletons),
z2 ~ p(z2 | z1). The bound and the training loss are in :mod:`pertvae_core.drvae_elbo`.

The encoder, decoder and drug effect are a :class:`pertvae_core.model.PertVAE` (``self.core``), so Dr.VAE and
PertVAE share one implementation of them; parameters of model s come from ``gens[s]`` (core first, then the
classifier, q(z3|.) and p(z1|.), in that order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from pertvae_core.config import STANDARDIZE, FitConfig
from pertvae_core.layers import WNLinear, elu
from pertvae_core.model import LOG_SIGMA_MAX, LOG_SIGMA_MIN, PertVAE

__all__ = ["DrVAEConfig", "DrVAE", "BatchedMLP", "HEADS"]

HEADS = ("binary", "continuous")


@dataclass(frozen=True)
class DrVAEConfig:
    """Settings of one (batched) Dr.VAE fit. Defaults follow the authors' run_drvae.py: latent 50 (z1, z2 and
    z3), hidden layers of 200, a linear classifier on [z1, z2], Adam lr 5e-4 with weight decay 0.05 (Adam's
    L2 term, as their optimizer), perturbation-term weight 0.05, at most 300 epochs.

    ``y_rate`` weighs the classification log-likelihood of labelled rows (the authors chose it on validation
    from {1, 3, 5, 10}; the harness keeps 10 for every fit: docs/drug_response.md). ``y_sigma`` is the
    continuous head's fixed standard deviation in standardized response units (0.3: the authors' 0.05 on an
    AUC-like scale whose s.d. across cell lines is ~0.15). ``mc_samples`` draws average the test
    predictions, ``val_samples`` fixed draws the validation loss. ``standardize``: "per_source" (pairs with
    the statistics of the training pairs; training, validation and test singletons with those of the
    training singletons) or "pooled".
    """

    head: str = "binary"
    latent: int = 50
    latent_z3: int = 50
    hidden: tuple[int, int] = (200, 200)
    context: int = 100
    iaf_steps: int = 2
    iaf_hidden: int = 200
    hidden_z3: tuple[int, ...] = (200,)
    hidden_z1: tuple[int, ...] = (200,)
    hidden_clf: tuple[int, ...] = ()
    y_sigma: float = 0.3
    pert_rate: float = 0.05
    y_rate: float = 10.0
    lr: float = 5e-4
    weight_decay: float = 0.05
    batch_pairs: int = 32
    batch_singletons: int = 64
    max_epochs: int = 300
    patience: int = 20
    min_epochs: int = 0
    mc_samples: int = 10
    val_samples: int = 3
    standardize: str = "per_source"
    device: str = "cpu"

    def __post_init__(self) -> None:
        def bad(f: str, why: str) -> ValueError:
            return ValueError(f"DrVAEConfig.{f} = {getattr(self, f)!r}: {why}")

        def is_int(v: object, low: int) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= low

        if self.head not in HEADS:
            raise bad("head", f"must be one of {', '.join(HEADS)}")
        for f in ("latent", "latent_z3", "context", "iaf_hidden", "batch_pairs", "max_epochs", "patience",
                  "mc_samples", "val_samples"):
            if not is_int(getattr(self, f), 1):
                raise bad(f, "must be a positive int")
        for f in ("iaf_steps", "batch_singletons", "min_epochs"):
            if not is_int(getattr(self, f), 0):
                raise bad(f, "must be a non-negative int")
        for f, n in (("hidden", 2), ("hidden_z3", None), ("hidden_z1", None), ("hidden_clf", None)):
            h = tuple(getattr(self, f))
            if (n is not None and len(h) != n) or not all(is_int(v, 1) for v in h):
                raise bad(f, f"must be {n or 'any number of'} positive ints (hidden layer sizes)")
            object.__setattr__(self, f, h)
        for f in ("y_sigma", "lr"):
            if not getattr(self, f) > 0:
                raise bad(f, "must be > 0")
        for f in ("pert_rate", "y_rate", "weight_decay"):
            if not getattr(self, f) >= 0:
                raise bad(f, "must be >= 0")
        if self.standardize not in STANDARDIZE:
            raise bad("standardize", f"must be one of {', '.join(STANDARDIZE)}")
        if self.min_epochs > self.max_epochs:  # no epoch could be selected: the untrained state came back
            raise bad("min_epochs", f"must be <= max_epochs ({self.max_epochs})")

    def core_config(self) -> FitConfig:
        """The PertVAE settings of the shared encoder (with IAF), decoder and drug effect."""
        return FitConfig(latent=self.latent, hidden=self.hidden, context=self.context,
                         iaf_steps=self.iaf_steps, iaf_hidden=self.iaf_hidden, l2_drug=0.0,
                         device=self.device)


class BatchedMLP(nn.Module):
    """WN-linear layers with ELU between them, batched over S models; the last layer starts at ``init_scale``
    (small for Gaussian heads, so q(z3|.) and p(z1|.) start near N(0, I))."""

    def __init__(self, gens: Sequence[torch.Generator], n_in: int, hidden: Sequence[int], n_out: int,
                 init_scale: float = 1.0) -> None:
        super().__init__()
        sizes = [n_in, *hidden]
        self.hidden = nn.ModuleList(WNLinear(gens, a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.out = WNLinear(gens, sizes[-1], n_out, init_scale=init_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = elu(layer(x))
        return self.out(x)


def _gaussian(out: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a head's output into mean [.., n] and clamped log-sigma [.., n]."""
    return out[..., :n], out[..., n:].clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)


class DrVAE(nn.Module):
    """S independent Dr.VAEs (module docstring) of ``genes`` inputs; model s from ``gens[s]``."""

    def __init__(self, genes: int, cfg: DrVAEConfig, gens: Sequence[torch.Generator]) -> None:
        super().__init__()
        self.n_models, self.genes, self.head = len(gens), genes, cfg.head
        self.latent, self.latent_z3 = cfg.latent, cfg.latent_z3
        self.core = PertVAE(genes, cfg.core_config(), gens, pairs=True)
        self.clf = BatchedMLP(gens, 2 * cfg.latent, cfg.hidden_clf, 1, init_scale=0.1)
        self.enc_z3 = BatchedMLP(gens, cfg.latent + 1, cfg.hidden_z3, 2 * cfg.latent_z3, init_scale=0.1)
        self.dec_z1 = BatchedMLP(gens, cfg.latent_z3 + 1, cfg.hidden_z1, 2 * cfg.latent, init_scale=0.1)

    def classify(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """q(y | z1, z2): the logit of y = 1 (binary) or the mean of y (continuous), [S, B]."""
        return self.clf(torch.cat([z1, z2], dim=-1))[..., 0]

    def q_z3(self, z1: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-sigma of q(z3 | z1, y); y [S, B] (0/1 or a standardized response)."""
        return _gaussian(self.enc_z3(torch.cat([z1, y[..., None]], dim=-1)), self.latent_z3)

    def p_z1(self, z3: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-sigma of p(z1 | z3, y)."""
        return _gaussian(self.dec_z1(torch.cat([z3, y[..., None]], dim=-1)), self.latent)

    def response_draws(self, x: torch.Tensor, eps1: torch.Tensor, eps2: torch.Tensor,
                       identity: bool = False) -> torch.Tensor:
        """Classifier outputs for K Monte Carlo draws from untreated profiles x [S, B, G]: z1 ~ q(z1|x1)
        with noise eps1 [S, K, B, L], z2 ~ p(z2|z1) with noise eps2 (or z2 = z1 when ``identity``: the
        ablation with p(z2|z1) replaced by the identity), output of q(y|z1, z2); returns [S, K, B]."""
        outs = []
        for k in range(eps1.shape[1]):
            z1, _ = self.core.encode(x, eps1[:, k])
            if identity:
                z2 = z1
            else:
                m2, ls2 = self.core.drug_effect(z1)
                z2 = torch.addcmul(m2, torch.exp(ls2), eps2[:, k])
            outs.append(self.classify(z1, z2))
        return torch.stack(outs, 1)
