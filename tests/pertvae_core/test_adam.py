"""pertvae_core.adam.adam_step_: torch's fused Adam kernel called directly equals torch.optim.Adam's step and
zero_grad bit for bit, and falls back to the optimizer's own step where the direct call does not apply."""

from __future__ import annotations

import pytest
import torch

from pertvae_core.adam import adam_step_
from pertvae_core.packing import repack_
from pertvae_core.train import make_optimizer


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in ((3, 5, 7), (3, 1, 7), (3, 2))]


def _grads(step: int, params: list[torch.nn.Parameter], skip: int | None = None) -> list[torch.Tensor | None]:
    """Gradients of a step (the same for twins); parameter ``skip`` gets none."""
    g = torch.Generator().manual_seed(100 + step)
    return [None if i == skip else torch.randn(p.shape, generator=g) for i, p in enumerate(params)]


def _twins(**adam) -> tuple[list, list, torch.optim.Optimizer, torch.optim.Optimizer]:
    a, b = _params(), _params()
    if adam:
        return a, b, torch.optim.Adam(a, **adam), torch.optim.Adam(b, **adam)
    return a, b, make_optimizer(a, 1e-2), make_optimizer(b, 1e-2)


def _step(params, grads, opt, direct: bool) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = None if g is None else g.clone()
    if direct:
        adam_step_(opt)
    else:
        opt.step()
        opt.zero_grad(set_to_none=True)


def _same(a, b, oa, ob) -> bool:
    states = all(torch.equal(oa.state[p][k], ob.state[q][k])
                 for p, q in zip(a, b, strict=True) if p in oa.state for k in oa.state[p])
    params = all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    return params and states and len(oa.state) == len(ob.state)


@pytest.mark.parametrize(("adam", "own_steps"), [
    ({}, 1), ({"lr": 1e-2, "fused": True, "weight_decay": 0.1}, 1),   # direct after the first step
    ({"lr": 1e-2, "foreach": True}, 6), ({"lr": 1e-2, "fused": True, "amsgrad": True}, 6)],   # not covered
    ids=["make_optimizer", "weight_decay", "foreach", "amsgrad"])
def test_equals_torch_step(adam: dict, own_steps: int) -> None:
    a, b, oa, ob = _twins(**adam)
    calls = []
    step = ob.step
    ob.step = lambda: calls.append(1) or step()   # counts the optimizer's own steps
    for t in range(6):   # parameter 2 has no gradient on steps 2 and 3 (its step count lags)
        grads = _grads(t, a, skip=2 if t in (2, 3) else None)
        _step(a, grads, oa, direct=False)
        _step(b, grads, ob, direct=True)
        assert _same(a, b, oa, ob), t
        assert all(p.grad is None for p in b)
    assert float(ob.state[b[2]]["step"]) == 4.0
    assert len(calls) == own_steps


def test_after_repack() -> None:
    """repack_ replaces the moments (compaction): the direct step uses the optimizer's state as it is now."""
    a, b, oa, ob = _twins()
    for t in range(3):
        _step(a, _grads(t, a), oa, direct=False)
        _step(b, _grads(t, b), ob, direct=True)
    keep = torch.tensor([0, 2])

    class _Model(torch.nn.Module):   # what repack_ needs of a model: n_models, select_, parameters
        def __init__(self, ps):
            super().__init__()
            self.ps = torch.nn.ParameterList(ps)
            self.n_models = 3

        def select_(self, idx):
            for p in self.ps:
                p.data = p.data.index_select(0, idx)

    for ps, opt in ((a, oa), (b, ob)):
        repack_(_Model(ps), opt, keep, [])
    for t in range(3, 6):
        _step(a, _grads(t, a), oa, direct=False)
        _step(b, _grads(t, b), ob, direct=True)
        assert _same(a, b, oa, ob), t
