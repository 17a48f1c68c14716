"""Per-example bounds L_P and L_S (paper Eq. 10-12) with Monte Carlo KL and free bits.

With the IAF posterior the KL has no closed form, so each KL is the single-sample estimate
log q(z|x) - log p(z) at the reparameterized sample (kept per latent dimension):
  L_P = log p(x1|z1) + log p(x2|z2) - [log q(z1|x1) - log p(z1)] - [log q(z2|x2) - log p(z2|z1)]  (Eq. 11-12)
  L_S = log p(x1|z1) - [log q(z1|x1) - log p(z1)]
with z1 ~ q(z1|x1), z2 ~ q(z2|x2) (Eq. 6).

Free bits (Kingma et al. 2016), used in the training loss only: ``free_bits`` is a budget in nats per latent
dimension for KL(z1) of pairs and KL of singletons. For each dimension the Monte Carlo KL is first averaged
over the minibatch of that model, then clamped from below at free_bits; the clamped values are summed over
dimensions. Below the budget a dimension's KL gets no gradient. The conditional KL of z2,
log q(z2|x2) - log p(z2|z1), is exempt: it is the only training term through which W, b (Eq. 5) learn the
drug effect, and a clamp there would switch that gradient off. Reported bounds and losses (validation, test)
never use the clamp.

The training objective of a model is the negative minibatch estimate of ELBO / N (Eq. 10):
  -(n_P / N) mean_batch L_P - (n_S / N) mean_batch L_S + l2_drug (||W||^2 + ||b||^2),  N = n_P + n_S
where n_P, n_S are the model's numbers of training pairs and singletons.
"""

from __future__ import annotations

import torch

from pertvae_core.model import HALF_LOG_2PI, LOG_SIGMA_MAX, LOG_SIGMA_MIN, PertVAE

Head = tuple[torch.Tensor, torch.Tensor, torch.Tensor]   # PertVAE.encoder_head: mean, log-sigma, context

__all__ = ["normal_log_prob", "std_normal_log_prob", "gaussian_log_lik", "batch_terms", "free_bits_kl",
           "training_loss", "prediction_nll", "reconstruction_nll", "prediction_mean", "reconstruction_mean"]


def normal_log_prob(x: torch.Tensor, mean: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mean, exp(log_sigma)^2)."""
    return -0.5 * ((x - mean) * torch.exp(-log_sigma)).square() - log_sigma - HALF_LOG_2PI


class _GaussianLogLik(torch.autograd.Function):
    """sum_genes log N(x; mean, exp(clamp(log_sigma))^2) per row from the decoder's output [mean | log_sigma].

    The forward is :func:`normal_log_prob` of :meth:`PertVAE.decode`'s clamped output, the same operations
    in the same order (in place), summed over genes: the same values. The backward writes the head's
    gradient directly, d/dmean = g r / sigma and d/dlog_sigma = g (r^2 - 1) (0 where clamped), with r = (x -
    mean) / sigma: 5 passes and one tensor where autograd took ~15 passes over [B, genes] (each operation's
    backward, the clamp's mask, the concatenation of the halves) and a dozen graph nodes.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
        G = x.shape[-1]
        raw = head[..., G:]
        log_sigma = raw.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)
        inv = log_sigma.neg().exp_()
        r = (x - head[..., :G]).mul_(inv)
        ctx.save_for_backward(r, inv, log_sigma != raw)
        return r.square().mul_(-0.5).sub_(log_sigma).sub_(HALF_LOG_2PI).sum(-1)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        r, inv, clamped = ctx.saved_tensors
        G = r.shape[-1]
        gy = g.unsqueeze(-1)
        grad = torch.empty(r.shape[:-1] + (2 * G,), dtype=r.dtype, device=r.device)
        gm = torch.mul(r, gy, out=grad[..., :G]).mul_(inv)
        torch.mul(r, r, out=grad[..., G:]).sub_(1.0).mul_(gy).masked_fill_(clamped, 0.0)
        return (-gm if ctx.needs_input_grad[0] else None), grad


def gaussian_log_lik(x: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    """log p(x|z) summed over genes [S, B] from x [S, B, G] and the decoder's output head [S, B, 2G]
    (:meth:`PertVAE.decode_head`): ``normal_log_prob(x, *decode(z)).sum(-1)`` with a leaner backward
    (:class:`_GaussianLogLik`). Under ``torch.compile`` the plain expression: inductor fuses it itself, and
    dynamo cannot trace the Function's writes into slices (the graph would split there)."""
    if torch.compiler.is_compiling():
        mean, log_sigma = torch.split(head, [x.shape[-1]] * 2, dim=-1)
        return normal_log_prob(x, mean, log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)).sum(-1)
    return _GaussianLogLik.apply(x, head)


def std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(z; 0, 1) (prior p(z1), Eq. 2)."""
    return -0.5 * z.square() - HALF_LOG_2PI


def batch_terms(model: PertVAE, x1: torch.Tensor, x2: torch.Tensor, xs: torch.Tensor,
                eps: torch.Tensor) -> dict[str, torch.Tensor]:
    """Monte Carlo terms of L_P for pairs (x1, x2) [S, Bp, G] and of L_S for singletons xs [S, Bs, G].

    All profiles go through the encoder and the decoder in one batched pass; eps [S, 2 Bp + Bs, L] is the
    reparameterization noise in the order (x1, x2, xs). Returns rec1, rec2, rec_s ([S, B]: log p(x|z) summed
    over genes) and kl1, kl2, kl_s ([S, B, L]: per-dimension single-sample KL). Bp may be 0 (plain VAE).
    """
    bp = x1.shape[1]
    x = torch.cat([x1, x2, xs], dim=1) if bp else xs
    z, log_q = model.encode(x, eps)
    rec = gaussian_log_lik(x, model.decode_head(z))
    if not bp:
        return {"rec_s": rec, "kl_s": log_q - std_normal_log_prob(z)}
    # torch.split, not slices: the backward is one concatenation (layers.halves)
    parts = [bp, bp, xs.shape[1]]
    (z1, z2, zs), (q1, q2, qs), (rec1, rec2, rec_s) = (torch.split(t, parts, dim=1) for t in (z, log_q, rec))
    m2, ls2 = model.drug_effect(z1)
    return {"rec_s": rec_s, "kl_s": qs - std_normal_log_prob(zs), "rec1": rec1, "rec2": rec2,
            "kl1": q1 - std_normal_log_prob(z1), "kl2": q2 - normal_log_prob(z2, m2, ls2)}


def free_bits_kl(kl: torch.Tensor, free_bits: float) -> torch.Tensor:
    """sum_i max(free_bits, mean_batch KL_i) per model [S] from per-dimension KL [S, B, L].

    ``free_bits`` is in nats per latent dimension (a budget of free_bits * L nats per example).
    """
    m = kl.mean(dim=1)
    if free_bits > 0:
        m = m.clamp_min(free_bits)
    return m.sum(-1)


def training_loss(model: PertVAE, terms: dict[str, torch.Tensor], w_pairs: torch.Tensor,
                  w_single: torch.Tensor, free_bits: float, l2_drug: float) -> torch.Tensor:
    """Per-model training loss [S] (module docstring); w_pairs, w_single [S] are n_P / N and n_S / N."""
    loss = torch.zeros_like(w_pairs)
    if "rec1" in terms:
        lp = (terms["rec1"].mean(1) + terms["rec2"].mean(1) - free_bits_kl(terms["kl1"], free_bits)
              - terms["kl2"].sum(-1).mean(1))  # KL(z2 | z1) exempt from free bits (module docstring)
        loss = loss - w_pairs * lp
    if terms["rec_s"].shape[1]:
        ls = terms["rec_s"].mean(1) - free_bits_kl(terms["kl_s"], free_bits)
        loss = loss - w_single * ls
    if l2_drug > 0 and model.drug is not None:
        loss = loss + l2_drug * model.drug_l2()
    return loss


def prediction_nll(model: PertVAE, x1: torch.Tensor, x2: torch.Tensor, eps1: torch.Tensor,
                   eps2: torch.Tensor, head: Head | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Perturbation-prediction loss -log p(x2|z2), z1 ~ q(z1|x1), z2 ~ p(z2|z1) (Eq. 3, 7), per pair [S, B].

    Also returns the predicted mean of p(x2|z2) [S, B, G] for this sample. ``head``: the encoder head of x1
    (PertVAE.encoder_head) when already computed, for several draws.
    """
    mean, log_sigma = model.decode(_predicted_z2(model, x1, eps1, eps2, head))
    return -normal_log_prob(x2, mean, log_sigma).sum(-1), mean


def _predicted_z2(model: PertVAE, x1: torch.Tensor, eps1: torch.Tensor, eps2: torch.Tensor,
                  head: Head | None) -> torch.Tensor:
    """z2 ~ p(z2|z1), z1 ~ q(z1|x1) (Eq. 3, 7) with noise eps1, eps2."""
    m2, ls2 = model.drug_effect(model.sample(x1, eps1, head))
    return torch.addcmul(m2, torch.exp(ls2), eps2)


def prediction_mean(model: PertVAE, x1: torch.Tensor, eps1: torch.Tensor, eps2: torch.Tensor,
                    head: Head | None = None) -> torch.Tensor:
    """The predicted mean of p(x2|z2) [S, B, G] of :func:`prediction_nll` alone (no decoder sigma)."""
    return model.decode_mean(_predicted_z2(model, x1, eps1, eps2, head))


def reconstruction_nll(model: PertVAE, x: torch.Tensor, eps: torch.Tensor,
                       target: torch.Tensor | None = None, head: Head | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """-log p(target|z), z ~ q(z|x) (target defaults to x), per row [S, B]; and the decoder mean [S, B, G].
    ``head``: the encoder head of x when already computed."""
    mean, log_sigma = model.decode(model.sample(x, eps, head))
    t = x if target is None else target
    return -normal_log_prob(t, mean, log_sigma).sum(-1), mean


def reconstruction_mean(model: PertVAE, x: torch.Tensor, eps: torch.Tensor,
                        head: Head | None = None) -> torch.Tensor:
    """The decoder mean [S, B, G] of :func:`reconstruction_nll` alone (no decoder sigma)."""
    return model.decode_mean(model.sample(x, eps, head))
