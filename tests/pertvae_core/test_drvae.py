"""Dr.VAE's bound: each term recomputed independently (PertVAE's terms, torch.distributions, the M2 sum)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch.distributions import Normal, kl_divergence

from pertvae_core import elbo as pv_elbo
from pertvae_core.drvae import DrVAE, DrVAEConfig
from pertvae_core.drvae_elbo import BatchNoise, _d_of_y, batch_terms
from pertvae_core.train import seed_streams

CFG = DrVAEConfig(latent=3, latent_z3=2, hidden=(10, 8), context=4, iaf_hidden=8, hidden_z3=(6,),
                  hidden_z1=(6,), hidden_clf=(5,))
S, BP, BS, G = 2, 4, 3, 7


def _model(head: str = "binary") -> DrVAE:
    cfg = DrVAEConfig(**{**CFG.__dict__, "head": head})
    m = DrVAE(G, cfg, [seed_streams(s)["init"] for s in range(S)])
    with torch.no_grad():  # a non-trivial drug effect, so z2 differs from z1
        m.core.drug.w.normal_(0, 0.3, generator=torch.Generator().manual_seed(0))
        m.core.drug.b.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
    return m


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, BatchNoise]:
    g = torch.Generator().manual_seed(seed)
    x1, x2, xs = (torch.randn(S, n, G, generator=g) for n in (BP, BP, BS))
    noise = BatchNoise(torch.randn(S, 2 * BP + BS, CFG.latent, generator=g),
                       torch.randn(S, BP + BS, CFG.latent, generator=g),
                       torch.randn(S, BP + BS, CFG.latent_z3, generator=g),
                       torch.randn(S, BP + BS, generator=g))
    return x1, x2, xs, noise


def _terms(model: DrVAE, y_value: float, seed: int = 0) -> dict[str, torch.Tensor]:
    x1, x2, xs, noise = _batch(seed)
    return batch_terms(model, x1, x2, xs, torch.full((S, BP), y_value), torch.full((S, BS), y_value), noise,
                       CFG.y_sigma)


def test_unlabelled_bound_is_the_m2_sum_over_y() -> None:
    """U = pi L(y=1) + (1 - pi) L(y=0) + H(pi) with the same draws (Kingma et al. 2014, Eq. 7)."""
    m = _model()
    with torch.no_grad():
        t0, t1, tu = _terms(m, 0.0), _terms(m, 1.0), _terms(m, float("nan"))
    pi = torch.sigmoid(tu["out"]).double().numpy()
    h = -(pi * np.log(pi) + (1 - pi) * np.log(1 - pi))
    for k, sl in (("elbo_p", slice(0, BP)), ("elbo_s", slice(BP, None))):
        expect = pi[:, sl] * t1[k].double().numpy() + (1 - pi[:, sl]) * t0[k].double().numpy() + h[:, sl]
        np.testing.assert_allclose(tu[k].double().numpy(), expect, rtol=1e-5, atol=1e-4)
    # labelled rows: log q(y|z1,z2) is the Bernoulli log-likelihood; unlabelled rows contribute none
    np.testing.assert_allclose(t1["lq_p"].numpy(), np.log(pi[:, :BP]), rtol=1e-5)
    np.testing.assert_allclose(t0["lq_s"].numpy(), np.log(1 - pi[:, BP:]), rtol=1e-5)
    assert (tu["lq_p"] == 0).all() and (tu["lq_s"] == 0).all()


def test_pair_and_singleton_terms_are_pertvaes_plus_the_response_part() -> None:
    """L_P - D(y) = log p(x1|z1) + log p(x2|z2) - [log q(z2|x2) - log p(z2|z1)] and L_S - D(y) = log p(x1|z1),
    by PertVAE's own batch_terms with the same noise; the perturbation term is PertVAE's prediction loss."""
    m = _model()
    x1, x2, xs, noise = _batch()
    y = torch.ones(S, BP + BS)
    with torch.no_grad():
        t = batch_terms(m, x1, x2, xs, y[:, :BP], y[:, BP:], noise, CFG.y_sigma)
        pv = pv_elbo.batch_terms(m.core, x1, x2, xs, noise.x)
        z, log_q = m.core.encode(torch.cat([x1, x2, xs], 1), noise.x)
        z1 = torch.cat([z[:, :BP], z[:, 2 * BP:]], 1)
        lq1 = torch.cat([log_q[:, :BP], log_q[:, 2 * BP:]], 1).sum(-1)
        d = _d_of_y(m, z1, lq1, y, y, noise.z3)[0] - math.log(2)
        nll, _ = pv_elbo.prediction_nll(m.core, x1, x2, noise.x[:, :BP], noise.z2[:, :BP])
    torch.testing.assert_close(t["elbo_p"] - d[:, :BP], pv["rec1"] + pv["rec2"] - pv["kl2"].sum(-1))
    torch.testing.assert_close(t["elbo_s"] - d[:, BP:], pv["rec_s"])
    torch.testing.assert_close(t["pert_p"], -nll)


def test_response_part_against_torch_distributions() -> None:
    """D(y) + log p(y) = log p(z1|z3,y) - log q(z1|x1) - KL(q(z3|z1,y) || N(0, I)) (closed form)."""
    m = _model()
    g = torch.Generator().manual_seed(3)
    z1, lq1 = torch.randn(S, 5, CFG.latent, generator=g), torch.randn(S, 5, generator=g)
    y, eps3 = torch.rand(S, 5, generator=g), torch.randn(S, 5, CFG.latent_z3, generator=g)
    with torch.no_grad():
        d, _ = _d_of_y(m, z1, lq1, y, y, eps3)
        mu3, ls3 = m.q_z3(z1, y)
        q3 = Normal(mu3, ls3.exp())
        mu1, ls1 = m.p_z1(mu3 + ls3.exp() * eps3, y)
        ref = Normal(mu1, ls1.exp()).log_prob(z1).sum(-1) - lq1 - kl_divergence(q3, Normal(0, 1)).sum(-1)
    torch.testing.assert_close(d, ref, rtol=1e-5, atol=1e-5)


def test_continuous_head_terms() -> None:
    m = _model("continuous")
    y = 0.7
    with torch.no_grad():
        t, tu = _terms(m, y), _terms(m, float("nan"))
    mean = t["out"].double().numpy()
    np.testing.assert_allclose(t["lq_p"].numpy(), norm.logpdf(y, mean[:, :BP], CFG.y_sigma), rtol=1e-5)
    # an unlabelled row's bound is a finite, different number from the labelled one (y~ is drawn)
    assert torch.isfinite(tu["elbo_p"]).all() and not torch.allclose(tu["elbo_p"], t["elbo_p"])


def test_identity_ablation_feeds_z1_as_z2() -> None:
    m = _model()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(S, 6, G, generator=g)
    e1, e2 = torch.randn(S, 2, 6, CFG.latent, generator=g), torch.randn(S, 2, 6, CFG.latent, generator=g)
    with torch.no_grad():
        full, ident = m.response_draws(x, e1, e2), m.response_draws(x, e1, e2, identity=True)
        z1, _ = m.core.encode(x, e1[:, 1])
        torch.testing.assert_close(ident[:, 1], m.classify(z1, z1))
        m2, ls2 = m.core.drug_effect(z1)
        torch.testing.assert_close(full[:, 1], m.classify(z1, m2 + ls2.exp() * e2[:, 1]))
    assert not torch.allclose(full, ident)


@pytest.mark.parametrize(("kw", "match"), [
    ({"head": "ordinal"}, "head"), ({"latent": 0}, "latent"), ({"hidden": (5,)}, "hidden"),
    ({"hidden_clf": (0,)}, "hidden_clf"), ({"y_sigma": 0.0}, "y_sigma"), ({"pert_rate": -1.0}, "pert_rate"),
    ({"standardize": "none"}, "standardize"), ({"min_epochs": 5, "max_epochs": 3}, "min_epochs")])
def test_bad_config_is_named(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=f"DrVAEConfig.{match}"):
        DrVAEConfig(**kw)
