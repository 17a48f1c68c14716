"""Dr.VAE's per-example bound, semi-supervised over labelled/unlabelled pairs and singletons, and its loss.

Notation: z1 ~ q(z1|x1), z2 ~ q(z2|x2) (pairs; the shared encoder with IAF), z~2 ~ p(z2|z1) (the drug
effect), z3 ~ q(z3|z1,y). Every expectation is a one-sample reparameterized estimate, as in PertVAE
(:mod:`pertvae_core.elbo`); KL(q(z3|z1,y) || p(z3)) is the closed-form Gaussian KL (no flow on z3).

The y-dependent part (the M2 bound of Kingma et al. 2014, Eq. 6, with z1 in the role of x):
    D(y) = -[log q(z1|x1) - log p(z1|z3,y)] - KL(q(z3|z1,y) || p(z3)) + log p(y)
Labelled rows use the observed y; unlabelled rows marginalize it (Kingma et al. 2014, Eq. 7), with
pi = q(y=1 | z1, z2):
    binary:      U = pi D(1) + (1 - pi) D(0) + H(pi)                       (an exact sum over y in {0, 1})
    continuous:  U = D'(y~) - KL(N(m, y_sigma^2) || N(0, 1)),   y~ ~ q(y|z1,z2) = N(m, y_sigma^2)
where D' is D without log p(y) (E_q[log p(y)] + H(q) = -KL(q(y|z1,z2) || p(y)), taken in closed form).
The bound of a pair (x1, x2) and of a singleton x1 under the Dr.VAE model of :mod:`pertvae_core.drvae`; the
pair part is PertVAE's (the PertVAE paper's Eq. 11-12, its conditional KL of z2 against p(z2|z1)):
    L_P = log p(x1|z1) + log p(x2|z2) - [log q(z2|x2) - log p(z2|z1)] + (D(y) or U)
    L_S = log p(x1|z1) + (D(y) or U)                       (x2 unobserved: z2 = z~2 enters q(y|z1, z2) only)
q(y|z1, z2) sees z2 ~ q(z2|x2) for pairs and z~2 ~ p(z2|z1) for singletons (at test time only x1 is known).

The terms are those the authors' code computes (DrVAE._compute_losses: RECL, KLD, PERT, YL); we write them
from the model's factorization and cite the M2 equations, not the Dr.VAE preprint's own equation numbers.
Training loss per model (the authors' objective: ELBO + pert_rate * PERT + y_rate * YL, written as the
minibatch estimate of per-example means; n_P pairs and n_S singletons in training, N = n_P + n_S, N_lab the
labelled ones among them):
    loss = -(n_P/N) mean_P L_P - (n_S/N) mean_S L_S
           - pert_rate * mean_P log p(x2 | z~2)                          (the perturbation term, on pairs)
           - y_rate * [(n_P/N_lab) mean_P h log q(y|z1,z2) + (n_S/N_lab) mean_S h log q(y|z1,z2)]
where h = 1 on labelled rows; each mean is over its minibatch (pairs and singletons are drawn uniformly from
their own sets, so each term is an unbiased estimate of the per-example mean over the training set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from pertvae_core.drvae import DrVAE
from pertvae_core.elbo import normal_log_prob, std_normal_log_prob

__all__ = ["BatchNoise", "LossWeights", "batch_terms", "training_loss"]

LOG_HALF = -math.log(2.0)


@dataclass
class BatchNoise:
    """Standard normal noise of one step: ``x`` [S, 2 Bp + Bs, L] for the encoder (x1 pairs, x2 pairs,
    singletons), ``z2`` [S, Bp + Bs, L] for z~2 ~ p(z2|z1), ``z3`` [S, Bp + Bs, L3], ``y`` [S, Bp + Bs] for
    the continuous head's y~ (rows: pairs then singletons)."""

    x: torch.Tensor
    z2: torch.Tensor
    z3: torch.Tensor
    y: torch.Tensor


@dataclass
class LossWeights:
    """Per-model [S] weights of :func:`training_loss`: n_P/N, n_S/N, pert_rate * [n_P > 0], n_P/N_lab,
    n_S/N_lab; and the scalar y_rate."""

    pairs: torch.Tensor
    single: torch.Tensor
    pert: torch.Tensor
    y_pairs: torch.Tensor
    y_single: torch.Tensor
    y_rate: float


def _d_of_y(model: DrVAE, z1: torch.Tensor, lq1: torch.Tensor, ya: torch.Tensor, yb: torch.Tensor,
            eps3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D(y) without log p(y) for y = ya and y = yb [S, B] (one batched pass, shared z3 noise)."""
    b = z1.shape[1]
    z1c, yc = torch.cat([z1, z1], 1), torch.cat([ya, yb], 1)
    mu3, ls3 = model.q_z3(z1c, yc)
    e3 = torch.cat([eps3, eps3], 1)
    z3 = torch.addcmul(mu3, torch.exp(ls3), e3)
    kl3 = (0.5 * (mu3.square() + torch.exp(2 * ls3) - 1.0) - ls3).sum(-1)
    mu1, ls1 = model.p_z1(z3, yc)
    d = normal_log_prob(z1c, mu1, ls1).sum(-1) - torch.cat([lq1, lq1], 1) - kl3
    return d[:, :b], d[:, b:]


def _y_terms(model: DrVAE, z1: torch.Tensor, zc2: torch.Tensor, lq1: torch.Tensor, y: torch.Tensor,
             noise: BatchNoise, y_sigma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(D(y) or U per row, h log q(y|z1,z2) per row, the classifier output) for rows with y [S, B] (NaN =
    unlabelled)."""
    h = ~torch.isnan(y)
    yf = torch.where(h, y, torch.zeros((), device=y.device))
    out = model.classify(z1, zc2)
    if model.head == "binary":
        d0, d1 = _d_of_y(model, z1, lq1, torch.zeros_like(yf), torch.ones_like(yf), noise.z3)
        pi = torch.sigmoid(out)
        entropy = F.softplus(out) - pi * out
        labelled = torch.where(yf > 0.5, d1, d0) + LOG_HALF
        unlabelled = pi * d1 + (1 - pi) * d0 + entropy + LOG_HALF
        lq = -F.binary_cross_entropy_with_logits(out, yf, reduction="none")
    else:
        log_s = math.log(y_sigma)
        y_draw = out + y_sigma * noise.y
        d_obs, d_draw = _d_of_y(model, z1, lq1, yf, y_draw, noise.z3)
        labelled = d_obs + std_normal_log_prob(yf)
        kl_y = -log_s + 0.5 * (y_sigma**2 + out.square()) - 0.5
        unlabelled = d_draw - kl_y
        lq = normal_log_prob(yf, out, torch.full_like(out, log_s))
    zero = torch.zeros((), device=y.device)
    return torch.where(h, labelled, unlabelled), torch.where(h, lq, zero), out


def batch_terms(model: DrVAE, x1: torch.Tensor, x2: torch.Tensor, xs: torch.Tensor, y_pairs: torch.Tensor,
                y_single: torch.Tensor, noise: BatchNoise, y_sigma: float) -> dict[str, torch.Tensor]:
    """Per-row terms of one minibatch: pairs (x1, x2) [S, Bp, G] with y_pairs [S, Bp], singletons xs
    [S, Bs, G] with y_single [S, Bs] (NaN = unlabelled). Returns ``elbo_p`` [S, Bp] (L_P), ``elbo_s``
    [S, Bs] (L_S), ``pert_p`` [S, Bp] (log p(x2 | z~2)), ``lq_p``, ``lq_s`` (h log q(y|z1,z2)) and ``out``
    [S, Bp + Bs] (the classifier's logit or mean)."""
    core, bp = model.core, x1.shape[1]
    z, log_q = core.encode(torch.cat([x1, x2, xs], 1), noise.x)
    z1 = torch.cat([z[:, :bp], z[:, 2 * bp:]], 1)
    lq1 = torch.cat([log_q[:, :bp], log_q[:, 2 * bp:]], 1).sum(-1)
    m2, ls2 = core.drug_effect(z1)
    zt2 = torch.addcmul(m2, torch.exp(ls2), noise.z2)
    z2 = z[:, bp:2 * bp]
    kl2 = (log_q[:, bp:2 * bp] - normal_log_prob(z2, m2[:, :bp], ls2[:, :bp])).sum(-1)
    mean, log_sigma = core.decode(torch.cat([z, zt2[:, :bp]], 1))
    target = torch.cat([x1, x2, xs, x2], 1)
    rec = normal_log_prob(target, mean, log_sigma).sum(-1)
    yb, lq, out = _y_terms(model, z1, torch.cat([z2, zt2[:, bp:]], 1), lq1,
                           torch.cat([y_pairs, y_single], 1), noise, y_sigma)
    n = z.shape[1]
    return {"elbo_p": rec[:, :bp] + rec[:, bp:2 * bp] - kl2 + yb[:, :bp],
            "elbo_s": rec[:, 2 * bp:n] + yb[:, bp:],
            "pert_p": rec[:, n:], "lq_p": lq[:, :bp], "lq_s": lq[:, bp:], "out": out}


def training_loss(terms: dict[str, torch.Tensor], w: LossWeights) -> torch.Tensor:
    """Per-model training loss [S] (module docstring)."""
    loss = -(w.pairs * terms["elbo_p"].mean(1) + w.pert * terms["pert_p"].mean(1)
             + w.y_rate * w.y_pairs * terms["lq_p"].mean(1))
    if terms["elbo_s"].shape[1]:
        loss = loss - (w.single * terms["elbo_s"].mean(1) + w.y_rate * w.y_single * terms["lq_s"].mean(1))
    return loss
