"""LSTM-type IAF (Kingma et al. 2016): autoregressive structure, order reversal, log-determinant."""

from __future__ import annotations

import pytest
import torch

from pertvae_core.flows import IAF, IAFStep, made_masks


def _gens(n: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def _randomize(module: torch.nn.Module, seed: int = 1) -> None:
    """Non-trivial weights everywhere (masks stay), so zero Jacobian entries come from the structure only."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g))


def _random_step(latent: int, context: int, hidden: int, reverse: bool) -> IAFStep:
    """A float64 IAF step with non-trivial weights (:func:`_randomize`)."""
    step = IAFStep(_gens(1), latent, context, hidden, reverse=reverse).double()
    _randomize(step)
    return step


def _jacobian(fn, z: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.jacobian(fn, z)


@pytest.mark.parametrize("latent,hidden", [(5, 12), (2, 3), (1, 4)])
def test_made_masks_are_autoregressive(latent: int, hidden: int) -> None:
    context = 3
    m_in, m_out = made_masks(latent, context, hidden)
    assert m_in.shape == (latent + context, hidden) and m_out.shape == (hidden, 2 * latent)
    conn = (m_in[:latent] @ m_out[:, :latent]) > 0  # conn[j, i]: z_j reaches output i via some hidden unit
    assert not torch.tril(conn, diagonal=0).any()
    # output i reaches every z_j with j < i when there are enough hidden units
    if hidden >= latent:
        assert torch.equal(conn, torch.triu(torch.ones(latent, latent, dtype=torch.bool), diagonal=1))
    assert torch.equal(m_out[:, :latent], m_out[:, latent:])  # m and s share the structure
    assert m_in[latent:].all()  # context feeds every hidden unit
    assert (m_in[latent:] @ m_out[:, :latent] > 0).all()  # every output, the first included, sees h


@pytest.mark.parametrize("reverse", [False, True])
def test_first_output_depends_on_context(reverse: bool) -> None:
    """Issue 9: the first dimension of each step (in its order) is updated as a function of h."""
    L, C = 4, 3
    step = _random_step(L, C, 8, reverse)
    z = torch.randn(1, 1, L, dtype=torch.float64)
    h = torch.randn(C, dtype=torch.float64)
    first = L - 1 if reverse else 0
    J = _jacobian(lambda v: step(z, v.view(1, 1, C))[0].view(L)[first], h)
    assert torch.any(J != 0)
    Js = _jacobian(lambda v: step(z, v.view(1, 1, C))[1].view(L)[first], h)  # its sigma too
    assert torch.any(Js != 0)


@pytest.mark.parametrize("reverse", [False, True])
def test_iaf_step_jacobian_is_triangular(reverse: bool) -> None:
    L, C = 6, 4
    step = _random_step(L, C, 16, reverse)
    h = torch.randn(1, 1, C, dtype=torch.float64)
    z = torch.randn(L, dtype=torch.float64)
    J = _jacobian(lambda v: step(v.view(1, 1, L), h)[0].view(L), z)  # J[i, j] = d out_i / d in_j
    if reverse:  # reversed order: out_i depends on in_j for j >= i only
        assert torch.all(torch.tril(J, diagonal=-1) == 0)
        assert torch.any(torch.triu(J, diagonal=1) != 0)
    else:
        assert torch.all(torch.triu(J, diagonal=1) == 0)
        assert torch.any(torch.tril(J, diagonal=-1) != 0)
    _, log_sigma = step(z.view(1, 1, L), h)
    torch.testing.assert_close(torch.diagonal(J), log_sigma.exp().view(L))


def test_iaf_logdet_matches_autograd_and_order_alternates() -> None:
    L, C = 5, 3
    flow = IAF(_gens(1, seed=3), L, C, 10, steps=2).double()
    _randomize(flow, seed=4)
    h = torch.randn(1, 1, C, dtype=torch.float64)
    for _ in range(3):
        z = torch.randn(L, dtype=torch.float64)
        J = _jacobian(lambda v: flow(v.view(1, 1, L), h)[0].view(L), z)
        _, logdet = flow(z.view(1, 1, L), h)
        sign, ref = torch.linalg.slogdet(J)
        assert sign > 0
        torch.testing.assert_close(logdet.sum(), ref)
        # two steps in opposite orders: the composition is triangular in neither order
        assert torch.any(torch.triu(J, 1) != 0) and torch.any(torch.tril(J, -1) != 0)


def test_iaf_starts_near_identity_and_models_are_independent() -> None:
    L, C = 4, 3
    flow = IAF(_gens(2), L, C, 8, steps=2)
    z, h = torch.randn(2, 7, L), torch.randn(2, 7, C)
    out, logdet = flow(z, h)
    assert out.shape == z.shape and logdet.shape == z.shape
    assert logdet.exp().mean() > 0.7  # sigma = sigmoid(s), s biased so sigma ~ 1 at init
    # changing model 1's parameters leaves model 0's output unchanged
    with torch.no_grad():
        for p in flow.parameters():
            p[1] += 1.0
    out2, logdet2 = flow(z, h)
    torch.testing.assert_close(out2[0], out[0])
    torch.testing.assert_close(logdet2[0], logdet[0])
    assert not torch.allclose(out2[1], out[1])
