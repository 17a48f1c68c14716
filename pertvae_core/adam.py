"""Adam's update without torch.optim's per-step Python: the same fused kernel on the same state.

``torch.optim.Adam(fused=True).step()`` spends ~0.2 ms a step around its kernel (per-parameter checks,
grouping the tensors by device and dtype, the profiler's record): 11-13% of its time on a paper-sized VAE's
1.96 M parameters in 32 tensors, ~2.5% of the training step (benchmarks/test_step_overhead.py).
:func:`adam_step_` calls the kernel itself on the optimizer's own state, so the numbers are bit-identical
and the optimizer stays the owner of its state (:func:`pertvae_core.packing.repack_` replaces its moments).
"""

from __future__ import annotations

import torch

__all__ = ["adam_step_"]

_T = list[torch.Tensor]
Lists = tuple[_T, _T, _T, _T, _T]


def _covered(opt: torch.optim.Optimizer) -> bool:
    """Whether ``opt`` is a fused Adam of one parameter group with options the direct call takes."""
    if type(opt) is not torch.optim.Adam or len(opt.param_groups) != 1:
        return False
    g = opt.param_groups[0]
    return (bool(g.get("fused")) and not (g["amsgrad"] or g["maximize"] or g["capturable"]
                                          or g["differentiable"] or g.get("decoupled_weight_decay", False))
            and not torch.is_tensor(g["lr"]) and not any(torch.is_tensor(b) for b in g["betas"]))


def _lists(opt: torch.optim.Optimizer) -> Lists | None:
    """(params, grads, exp_avgs, exp_avg_sqs, steps) of the parameters with a gradient, or None where one
    has no state yet (the first step), a gradient of another kind, or they span devices or dtypes."""
    out: Lists = ([], [], [], [], [])
    for p in opt.param_groups[0]["params"]:
        g = p.grad
        if g is None:
            continue
        s = opt.state.get(p)
        if not s or g.is_sparse or (g.dtype, g.device) != (p.dtype, p.device):
            return None
        for lst, t in zip(out, (p, g, s["exp_avg"], s["exp_avg_sq"], s["step"]), strict=True):
            lst.append(t)
    return out if len({(p.device, p.dtype) for p in out[0]}) <= 1 else None


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
