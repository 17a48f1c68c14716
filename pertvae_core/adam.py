"""Adam's update without torch.optim's per-step Python: the same fused kernel on the same state.

``torch.optim.Adam(fused=True).step()`` spends ~0.1 ms a step around its kernel (per-parameter checks,
grouping the tensors by device and dtype, the profiler's record): 8-9% of its time on a paper-sized VAE's
1.96 M parameters in 32 tensors, ~1.5% of its training step (benchmarks/test_step_overhead.py).
:func:`adam_step_` calls the kernel itself on the optimizer's own state, so the numbers are bit-identical
and the optimizer stays the owner of its state (:func:`pertvae_core.packing.repack_` replaces its moments).
"""

from __future__ import annotations

import torch

__all__ = ["adam_step_"]

_T = list[torch.Tensor]
Lists = tuple[_T, _T, _T, _T, _T]


def _covered(opt: torch.optim.Optimizer) -> bool:
    """Whether ``opt`` is a fused Adam of one parameter group, its parameters on one device and of one dtype,
    with options the direct call takes."""
    if type(opt) is not torch.optim.Adam or len(opt.param_groups) != 1:
        return False
    g = opt.param_groups[0]
    return (bool(g.get("fused")) and not (g["amsgrad"] or g["maximize"] or g["capturable"]
                                          or g["differentiable"] or g.get("decoupled_weight_decay", False))
            and not torch.is_tensor(g["lr"]) and not any(torch.is_tensor(b) for b in g["betas"])
            and len({(p.device, p.dtype) for p in g["params"]}) <= 1)


def _lists(opt: torch.optim.Optimizer) -> Lists | None:
    """(params, grads, exp_avgs, exp_avg_sqs, steps) of the parameters with a gradient (autograd gives a
    dense parameter's gradient its dtype and device), or None where one has no state yet (the first step)."""
    params = [p for p in opt.param_groups[0]["params"] if p.grad is not None]
    states = [opt.state.get(p) for p in params]
    if not all(states):
        return None
    return (params, [p.grad for p in params], [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states], [s["step"] for s in states])


def adam_step_(opt: torch.optim.Optimizer) -> None:
    """``opt.step()`` then ``opt.zero_grad(set_to_none=True)``: for a fused Adam (:func:`_covered`) whose
    parameters with a gradient all have their state (every step after the first), torch's fused kernel on
    that state directly (as torch.optim.adam._fused_adam calls it); otherwise the optimizer's own step."""
    lists = _lists(opt) if _covered(opt) else None
    if lists is None:
        opt.step()
        opt.zero_grad(set_to_none=True)
        return
    params, grads, exp_avgs, exp_avg_sqs, steps = lists
    if params:
        g = opt.param_groups[0]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=g["lr"],
                           beta1=g["betas"][0], beta2=g["betas"][1], weight_decay=g["weight_decay"],
                           eps=g["eps"], maximize=False, grad_scale=None, found_inf=None)
    for p in params:
        p.grad = None
