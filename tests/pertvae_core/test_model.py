"""Batched layers, PertVAE shapes and initialization, ELBO terms (Eq. 10-12), free bits."""

from __future__ import annotations

import math

import pytest
import torch

from pertvae_core.config import FitConfig
from pertvae_core.elbo import batch_terms, free_bits_kl, gaussian_log_lik, normal_log_prob, training_loss
from pertvae_core.layers import MaskedWNLinear, WNLinear
from pertvae_core.model import HALF_LOG_2PI, LOG_SIGMA_MAX, LOG_SIGMA_MIN, PertVAE

CFG = FitConfig(latent=3, hidden=(12, 8), context=5, iaf_hidden=7)


def _gens(n: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def test_weight_norm_columns_have_norm_g_and_bmm_matches_loop() -> None:
    lin = WNLinear(_gens(3), 6, 4, init_scale=0.7)
    w = lin.weight()
    torch.testing.assert_close(w.norm(dim=1), torch.full((3, 4), 0.7))
    x = torch.randn(3, 5, 6)
    ref = torch.stack([x[s] @ w[s] + lin.b[s] for s in range(3)])
    torch.testing.assert_close(lin(x), ref)


def test_masked_linear_respects_mask() -> None:
    mask = (torch.rand(6, 4, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    lin = MaskedWNLinear(_gens(2), mask)
    assert torch.all(lin.weight()[:, mask == 0] == 0)
    x = torch.randn(2, 3, 6, requires_grad=True)
    lin(x)[..., 0].sum().backward()
    assert torch.all(x.grad[..., mask[:, 0] == 0] == 0)


def test_init_is_per_model_generator() -> None:
    a = PertVAE(10, CFG, _gens(3, seed=5))
    b = PertVAE(10, CFG, [torch.Generator().manual_seed(6)])
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        torch.testing.assert_close(pa[1], pb[0], msg=name)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_sample_is_encodes_z_without_log_q(precision: str) -> None:
    """PertVAE.sample (validation, prediction) gives exactly encode's z, with or without a given head."""
    m = PertVAE(10, FitConfig(latent=3, hidden=(12, 8), context=5, iaf_hidden=7, iaf_steps=3), _gens(2),
                precision=precision)
    x, eps = torch.randn(2, 4, 10), torch.randn(2, 4, 3)
    z, _ = m.encode(x, eps)
    assert torch.equal(m.sample(x, eps), z)
    assert torch.equal(m.sample(x, eps, m.encoder_head(x)), z)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_log_lik_is_normal_log_prob_of_the_clamped_decoder(dtype: torch.dtype) -> None:
    """The fused log p(x|z): the same values as normal_log_prob of decode's (mean, clamped log-sigma), and
    the same gradients (in float64 to the last bits; none through a clamped log-sigma, none to a data x)."""
    g = torch.Generator().manual_seed(3)
    S, B, G = 2, 5, 7
    head = torch.randn(S, B, 2 * G, generator=g, dtype=dtype) * 4   # some log-sigmas beyond [-6, 4]
    head[0, 0, G:G + 3] = torch.tensor([-9.0, 7.0, LOG_SIGMA_MAX], dtype=dtype)
    x = torch.randn(S, B, G, generator=g, dtype=dtype)
    w = torch.randn(S, B, generator=g, dtype=dtype)
    h1, h2, xg = head.clone().requires_grad_(), head.clone().requires_grad_(), x.clone().requires_grad_()
    ref = normal_log_prob(xg, h1[..., :G], h1[..., G:].clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)).sum(-1)
    out = gaussian_log_lik(x, h2)
    assert torch.equal(out, ref.detach())
    (ref * w).sum().backward()
    (out * w).sum().backward()
    torch.testing.assert_close(h2.grad, h1.grad, rtol=1e-12 if dtype == torch.float64 else 1e-5, atol=0)
    assert h2.grad[0, 0, G] == 0 and h2.grad[0, 0, G + 1] == 0 and h2.grad[0, 0, G + 2] != 0
    xd = x.clone().requires_grad_()
    (gaussian_log_lik(xd, head) * w).sum().backward()
    torch.testing.assert_close(xd.grad, xg.grad, rtol=1e-12 if dtype == torch.float64 else 1e-5, atol=0)


def test_shapes_and_identity_drug_effect_at_init() -> None:
    S, B, G = 2, 4, 10
    m = PertVAE(G, CFG, _gens(S))
    x = torch.randn(S, B, G)
    z, log_q = m.encode(x, torch.randn(S, B, CFG.latent))
    assert z.shape == log_q.shape == (S, B, CFG.latent)
    mean, ls = m.decode(z)
    assert mean.shape == ls.shape == (S, B, G)
    m2, ls2 = m.drug_effect(z)
    torch.testing.assert_close(m2, z)  # Eq. 5 starts as the identity
    assert torch.all(ls2 == 0)
    assert torch.all(m.drug_l2() == 0)
    vae = PertVAE(G, CFG, _gens(S), pairs=False)
    with pytest.raises(RuntimeError, match="drug effect"):
        vae.drug_effect(z)


@pytest.mark.parametrize("bias", [-50.0, 50.0])
def test_encoder_log_sigma_is_clamped(bias: float) -> None:
    """Issue 9: like the decoder's and the drug effect's, the encoder's log-sigma stays in the clamp range."""
    cfg = FitConfig(latent=3, hidden=(12, 8), context=5, iaf_hidden=7, iaf_steps=0)
    m = PertVAE(6, cfg, _gens(1))
    with torch.no_grad():
        m.enc_head.b[..., 3:6] = bias
        eps = torch.randn(1, 4, 3)
        _, log_q = m.encode(torch.randn(1, 4, 6), eps)
    ls = LOG_SIGMA_MIN if bias < 0 else LOG_SIGMA_MAX
    torch.testing.assert_close(log_q, -0.5 * eps.square() - ls - HALF_LOG_2PI)


def test_normal_log_prob_matches_torch_distributions() -> None:
    x, mu, ls = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4) * 0.3
    ref = torch.distributions.Normal(mu, ls.exp()).log_prob(x)
    torch.testing.assert_close(normal_log_prob(x, mu, ls), ref)


def test_monte_carlo_kl_is_unbiased_without_iaf() -> None:
    """With no IAF steps q is a diagonal Gaussian: the MC KL of singletons averages to the closed form."""
    cfg = FitConfig(latent=3, hidden=(12, 8), context=5, iaf_hidden=7, iaf_steps=0)
    m = PertVAE(6, cfg, _gens(1))
    with torch.no_grad():
        m.enc_head.g.mul_(10.0)  # a posterior far from the prior
        g = torch.Generator().manual_seed(7)
        x = torch.randn(1, 1, 6, generator=g).expand(1, 20000, 6)
        terms = batch_terms(m, x[:, :0], x[:, :0], x, torch.randn(1, 20000, 3, generator=g))
        head = m.enc_head(torch.nn.functional.elu(m.enc2(torch.nn.functional.elu(m.enc1(x[:, :1])))))
        mu, ls = head[..., :3], head[..., 3:6]
        closed = (0.5 * (mu.square() + (2 * ls).exp() - 1) - ls).sum()
    mc = terms["kl_s"].sum(-1).mean()
    assert closed > 0.5
    assert abs(mc - closed) < 0.05 * closed + 0.02


def test_pair_terms_and_loss_weights() -> None:
    S, G = 2, 8
    m = PertVAE(G, CFG, _gens(S))
    x1, x2, xs = torch.randn(S, 4, G), torch.randn(S, 4, G), torch.randn(S, 3, G)
    t = batch_terms(m, x1, x2, xs, torch.randn(S, 11, CFG.latent))
    assert t["rec1"].shape == t["rec2"].shape == (S, 4) and t["rec_s"].shape == (S, 3)
    assert t["kl1"].shape == t["kl2"].shape == (S, 4, CFG.latent)
    only_pairs = training_loss(m, t, torch.ones(S), torch.zeros(S), 0.0, 0.0)
    lp = t["rec1"].mean(1) + t["rec2"].mean(1) - t["kl1"].sum(-1).mean(1) - t["kl2"].sum(-1).mean(1)
    torch.testing.assert_close(only_pairs, -lp)
    with torch.no_grad():
        m.drug.w.fill_(0.1)
    more = training_loss(m, t, torch.ones(S), torch.zeros(S), 0.0, 2.0)
    torch.testing.assert_close(more - only_pairs, torch.full((S,), 2.0 * 0.01 * 9))  # only W's mean part


def test_free_bits_clamp_per_dimension() -> None:
    kl = torch.tensor([[[0.01, 2.0], [0.03, 4.0]]], requires_grad=True)  # [S=1, B=2, L=2]
    out = free_bits_kl(kl, free_bits=0.5)  # budget 0.5 nats per dimension
    assert math.isclose(out.item(), 0.5 + 3.0, rel_tol=1e-6)
    out.sum().backward()
    torch.testing.assert_close(kl.grad, torch.tensor([[[0.0, 0.5], [0.0, 0.5]]]))
    assert math.isclose(free_bits_kl(kl, 0.0).item(), 0.02 + 3.0, rel_tol=1e-6)


def test_free_bits_spare_the_drug_effect_kl() -> None:
    """Issue 9: with every KL(z1) below a large budget, KL(z2 | z1) still trains W, b (Eq. 5, 11)."""
    S, G = 1, 8
    m = PertVAE(G, CFG, _gens(S))
    with torch.no_grad():
        m.drug.w.normal_(0.0, 0.1)
    x1, x2, xs = torch.randn(S, 4, G), torch.randn(S, 4, G) + 1.0, torch.randn(S, 3, G)
    t = batch_terms(m, x1, x2, xs, torch.randn(S, 11, CFG.latent))
    assert (t["kl1"].mean(1) < 50.0).all() and (t["kl_s"].mean(1) < 50.0).all()
    loss = training_loss(m, t, torch.full((S,), 0.6), torch.full((S,), 0.4), 50.0, 0.0)
    w_grad, b_grad = torch.autograd.grad(loss.sum(), [m.drug.w, m.drug.b])
    assert w_grad[..., : CFG.latent].abs().sum() > 0 and b_grad[..., : CFG.latent].abs().sum() > 0
    # the z1 terms are clamped: the loss is the clamped budget plus the unclamped pair terms
    lp = t["rec1"].mean(1) + t["rec2"].mean(1) - 50.0 * CFG.latent - t["kl2"].sum(-1).mean(1)
    ls = t["rec_s"].mean(1) - 50.0 * CFG.latent
    torch.testing.assert_close(loss, -(0.6 * lp + 0.4 * ls))


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="latent"):
        FitConfig(latent=0)
    with pytest.raises(ValueError, match="hidden"):
        FitConfig(hidden=(10,))
    with pytest.raises(ValueError, match="device"):
        FitConfig(device="tpu")
    with pytest.raises(ValueError, match="val_samples"):
        FitConfig(val_samples=0)
    with pytest.raises(ValueError, match="standardize"):
        FitConfig(standardize="global")


def test_weight_norm_backward_matches_gradcheck() -> None:
    from pertvae_core.layers import _WNLinearFn

    g = torch.Generator().manual_seed(0)
    args = [torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
            for shape in ((2, 5, 4), (2, 3, 4), (2, 1, 3), (2, 1, 3))]
    assert torch.autograd.gradcheck(_WNLinearFn.apply, args)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_decode_mean_is_the_decoders_mean_alone(precision: str) -> None:
    """The validation's decoder mean (the head's first ``genes`` units only) equals decode()'s mean, and a
    layer's selected outputs equal the same outputs of the whole layer."""
    from pertvae_core.model import PertVAE

    cfg = FitConfig(latent=5, hidden=(64, 32), context=8, iaf_hidden=16, precision=precision)
    net = PertVAE(200, cfg, [torch.Generator().manual_seed(s) for s in range(2)])
    z = torch.randn(2, 37, 5, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        torch.testing.assert_close(net.decode_mean(z), net.decode(z)[0], rtol=1e-6, atol=1e-6)
        x = torch.randn(2, 37, 32)   # dec2: hidden[1] -> hidden[0]
        torch.testing.assert_close(net.dec2(x, outputs=slice(3, 20)), net.dec2(x)[..., 3:20], rtol=1e-6,
                                   atol=1e-6)
