"""Where a paper-sized training step's time goes beyond its matrix products, and the cuts made there.

``test_step_breakdown``: paper-sized steps (S = 1, one torch thread, as a grid worker) of PertVAE (64 pairs +
64 singletons: 192 profiles through encoder, IAF and decoder) and the VAE (128 profiles), in the paper
preset's precision on this machine (bf16 where native) and in fp32. Every aten operator is timed by thread
CPU time (a TorchDispatchMode; torch.profiler times by wall clock, which a busy machine inflates at random)
and goes to one class (:func:`op_class`): GEMM (the products), optimizer (fused Adam), weight-sized passes
(an operator whose first operand has a parameter's shape: the weight norms, the bf16 casts of the weights,
the widening and correction of dL/dv, the IAF masks), activation casts, elementwise and reductions on
activations, views and allocation; "Python & autograd engine" is the rest of the step's median CPU time
(the custom Function's Python, autograd nodes, the optimizer's Python, dispatch above aten). ``fixed_ms``
is the same step at tiny sizes: the per-step cost that does not scale with the arithmetic.

The other tests time each cut side by side with what it replaced, alternating in one process (CPU time,
medians, load average recorded): ``test_row_gather`` (minibatch rows by one index_select instead of
torch.gather over an expanded index) and ``test_head_split`` (a head's halves by torch.split instead of two
slices: one concatenation in the backward instead of two zero-filled tensors and their sum), each checking
that both give the same values; ``test_fused_log_lik`` (log p(x|z) and its gradient by
elbo.gaussian_log_lik against normal_log_prob of the clamped halves through autograd) and
``test_validation_sample`` (a paper-sized pooled VAE's and PertVAE's validation loss with z drawn by
PertVAE.sample against encode, whose log q(z|x) validation never used, and the draws' means summed, not
each divided); ``test_bf16_math_against_casts`` (eager bf16 products as oneDNN's bfloat16
arithmetic on float32 operands, against casting the operands and widening the outputs (a compiled step
always casts); the code takes the math on AMX only: pertvae_core.layers.CPU_BF16_MATH; their numbers:
tests/pertvae_core/test_precision.py); ``test_small_products_in_fp32`` (the VAE's eager
bf16 step at small latent sizes with its products below layers.SMALL_PRODUCT_FLOPS in float32, as the code
does, against every product in bf16); ``test_adam_step`` (the optimizer step of a paper-sized VAE's and
PertVAE's parameters by pertvae_core.adam.adam_step_, torch's fused Adam kernel called directly, against
torch.optim.Adam's step and zero_grad, checking the parameters stay bit-identical);
``test_compiled_step_layouts`` (a compiled bf16 step with a layer of small products in float32 and dL/dv's
(gy s)^T laid out contiguous, layers._small and layers._weight_product, against neither). With
--benchmark-disable small sizes keep the run quick. Nothing here
asserts a time.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks._data import alternate, load_average
from benchmarks.test_precision import PAPER, SMALL, train_step
from pertvae_core import layers, train
from pertvae_core import precision as prec
from pertvae_core.adam import adam_step_
from pertvae_core.config import FitConfig
from pertvae_core.elbo import gaussian_log_lik, normal_log_prob
from pertvae_core.model import LOG_SIGMA_MAX, LOG_SIGMA_MIN, PertVAE
from pertvae_core.precision import resolve_precision
from pertvae_core.train import _gather, _masked_mean

GEMM = {"aten::bmm", "aten::mm", "aten::baddbmm", "aten::addmm"}
OPTIMIZER = {"aten::_fused_adam_", "aten::_fused_adamw_"}
CASTS = {"aten::copy_", "aten::_to_copy", "aten::to"}
VIEWS = {"aten::empty", "aten::empty_strided", "aten::empty_like", "aten::as_strided", "aten::view",
         "aten::slice", "aten::transpose", "aten::unsqueeze", "aten::expand", "aten::split_with_sizes",
         "aten::split", "aten::select", "aten::detach", "aten::t", "aten::reshape", "aten::_unsafe_view",
         "aten::alias", "aten::squeeze", "aten::flip", "aten::lift_fresh", "aten::resolve_conj",
         "aten::resolve_neg", "aten::narrow", "aten::zeros_like", "aten::result_type"}
CLASSES = ("GEMM", "optimizer", "weight-sized passes", "activation casts", "elementwise & reductions",
           "views & allocation", "Python & autograd engine")


def op_class(name: str, first_shape: tuple[int, ...] | None, weight_shapes: set[tuple[int, ...]]) -> str:
    """The class of one aten operator (module docstring)."""
    if name in GEMM:
        return "GEMM"
    if name in OPTIMIZER:
        return "optimizer"
    if first_shape in weight_shapes:
        return "weight-sized passes"
    if name in CASTS:
        return "activation casts"
    return "views & allocation" if name in VIEWS else "elementwise & reductions"


class _OpClock(TorchDispatchMode):
    """Adds each aten operator's thread CPU time (its kernel and the dispatch below autograd) to its class."""

    def __init__(self, weight_shapes: set[tuple[int, ...]]) -> None:
        super().__init__()
        self.weight_shapes, self.seconds = weight_shapes, dict.fromkeys(CLASSES, 0.0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        first = args[0] if args else None
        shape = tuple(first.shape) if isinstance(first, torch.Tensor) else None
        t0 = time.thread_time()
        out = func(*args, **(kwargs or {}))
        dt = time.thread_time() - t0
        self.seconds[op_class(f"aten::{func.overloadpacket.__name__}", shape, self.weight_shapes)] += dt
        return out


def step_breakdown(run, weight_shapes: set[tuple[int, ...]], steps: int, step_s: float) -> dict[str, float]:
    """CPU seconds per step and class (:data:`CLASSES`): each aten operator timed by thread CPU time over
    ``steps`` calls of ``run``; "Python & autograd engine" is the rest of the unprofiled step time
    ``step_s`` (the custom Function's Python, autograd nodes, the optimizer's Python, dispatch above aten)."""
    clock = _OpClock(weight_shapes)
    with clock:
        for _ in range(steps):
            run()
    out = {k: v / steps for k, v in clock.seconds.items()}
    out["Python & autograd engine"] = max(0.0, step_s - sum(out.values()))
    return out


def median_step(run, reps: int) -> float:
    """Median CPU seconds of ``run`` after a warm-up call."""
    return alternate({"step": run}, reps=reps, warmup=2)["step"]


@pytest.mark.parametrize("precision", ["auto", "fp32"])
@pytest.mark.parametrize("model_kind", ["pertvae", "vae"])
def test_step_breakdown(benchmark, request, one_thread, model_kind: str, precision: str) -> None:
    small = request.config.getoption("benchmark_disable")
    sizes, genes = (SMALL, 50) if small else (PAPER, 978)
    precision = resolve_precision(precision, "cpu")
    run, model = train_step(model_kind, precision, 1, genes, sizes, with_model=True)
    tiny = dict(sizes, latent=2, hidden=(4, 4), context=2, iaf_hidden=4)
    fixed_run = train_step(model_kind, precision, 1, 8, tiny)
    load = load_average()
    t_step = median_step(run, 5 if small else 20)
    t_fixed = median_step(fixed_run, 20 if small else 100)
    shares = step_breakdown(run, {tuple(p.shape) for p in model.parameters()}, 3 if small else 10, t_step)
    total = sum(shares.values())
    assert shares["GEMM"] > 0 and shares["optimizer"] > 0 and shares["weight-sized passes"] > 0
    loss = benchmark.pedantic(run, rounds=1, iterations=1)
    assert torch.isfinite(loss).all()
    info = {"model": model_kind, "precision": precision, "genes": genes, "step_ms": round(t_step * 1e3, 2),
            "fixed_ms": round(t_fixed * 1e3, 2), "load_average": [load, load_average()],
            "clock": "CPU time: the step's median; each operator's by thread CPU time, the rest Python"}
    for k in CLASSES:
        info[f"{k}_fraction"] = round(shares[k] / total, 3)
        info[f"{k}_ms"] = round(shares[k] / total * t_step * 1e3, 2)
    info["headline"] = ["step_ms", "fixed_ms"] + [f"{k}_ms" for k in CLASSES]
    benchmark.extra_info.update(info)
    print(f"\n{model_kind} {precision} step {info['step_ms']} ms (CPU time, load {load:.1f}); fixed "
          f"(tiny sizes) {info['fixed_ms']} ms")
    for k in CLASSES:
        print(f"  {k:28s} {info[f'{k}_ms']:7.2f} ms  {100 * info[f'{k}_fraction']:5.1f}%")


def _old_gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """What pertvae_core.train._gather replaced."""
    return torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[-1]))


@pytest.mark.parametrize("shape", [(1, 4100, 128), (1, 1300, 64), (10, 1300, 64)],
                         ids=["vae-pooled", "pertvae", "pertvae-S10"])
def test_row_gather(benchmark, request, one_thread, shape: tuple[int, int, int]) -> None:
    S, N, B = shape
    if request.config.getoption("benchmark_disable"):
        N, B = 64, 8
    g = torch.Generator().manual_seed(0)
    x, idx = torch.randn(S, N, 978, generator=g), torch.randint(0, N, (S, B), generator=g)
    assert torch.equal(_gather(x, idx), _old_gather(x, idx))
    load = load_average()
    med = alternate({"gather": lambda: _old_gather(x, idx), "index_select": lambda: _gather(x, idx)},
                    reps=50, warmup=3)
    benchmark.pedantic(_gather, args=(x, idx), rounds=1, iterations=1)
    _record(benchmark, med, "gather", "index_select", load)


def _record(benchmark, med: dict[str, float], old: str, new: str, load: float) -> None:
    info = {f"{old}_us": round(med[old] * 1e6, 1), f"{new}_us": round(med[new] * 1e6, 1),
            "new_over_old": round(med[new] / med[old], 3), "load_average": [load, load_average()],
            "clock": "process CPU time, median of alternating calls"}
    info["headline"] = [f"{old}_us", f"{new}_us", "new_over_old"]
    benchmark.extra_info.update(info)


def _head_step(x: torch.Tensor, split: bool) -> torch.Tensor:
    """A decoder head's (mean, clamped log-sigma) and a loss of both, forward and backward; dL/dx."""
    n = x.shape[-1] // 2
    mean, log_sigma = torch.split(x, [n, n], dim=-1) if split else (x[..., :n], x[..., n:])
    loss = mean.square().sum() + log_sigma.clamp(-6.0, 4.0).exp().sum()
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def test_head_split(benchmark, request, one_thread) -> None:
    rows, genes = (16, 50) if request.config.getoption("benchmark_disable") else (192, 978)
    x = torch.randn(1, rows, 2 * genes, generator=torch.Generator().manual_seed(0), requires_grad=True)
    assert torch.equal(_head_step(x, True), _head_step(x, False))
    load = load_average()
    med = alternate({"slices": lambda: _head_step(x, False), "split": lambda: _head_step(x, True)}, reps=50,
                    warmup=3)
    benchmark.pedantic(_head_step, args=(x, True), rounds=1, iterations=1)
    _record(benchmark, med, "slices", "split", load)


def _log_lik_step(x: torch.Tensor, head: torch.Tensor, fused: bool) -> torch.Tensor:
    """log p(x|z) from a decoder head [mean | log-sigma] and its gradient, fused or through autograd."""
    if fused:
        rec = gaussian_log_lik(x, head)
    else:
        mean, log_sigma = layers.halves(head)
        rec = normal_log_prob(x, mean, log_sigma.clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)).sum(-1)
    (grad,) = torch.autograd.grad(rec.sum(), head)
    return grad


def test_fused_log_lik(benchmark, request, one_thread) -> None:
    rows, genes = (16, 50) if request.config.getoption("benchmark_disable") else (192, 978)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, rows, genes, generator=g)
    head = (torch.randn(1, rows, 2 * genes, generator=g) * 3).requires_grad_()
    torch.testing.assert_close(_log_lik_step(x, head, True), _log_lik_step(x, head, False))
    load = load_average()
    med = alternate({"autograd": lambda: _log_lik_step(x, head, False),
                     "fused": lambda: _log_lik_step(x, head, True)}, reps=50, warmup=3)
    benchmark.pedantic(_log_lik_step, args=(x, head, True), rounds=1, iterations=1)
    _record(benchmark, med, "autograd", "fused", load)


@torch.no_grad()
def _old_validation(model, data, cfg, n_val):
    """What train._validation_loss (stop_on "mse") replaced: z by encode, each draw's mean divided."""
    v1, K, pairs = data.x1_val, cfg.val_samples, data.pairs
    mean, head = torch.zeros_like(v1), model.encoder_head(v1)
    for k in range(K):
        z, _ = model.encode(v1, data.eps1_val[:, k], head)
        if pairs:
            m2, ls2 = model.drug_effect(z)
            z = torch.addcmul(m2, torch.exp(ls2), data.eps2_val[:, k])
        mean += model.decode_mean(z) / K
    nll = 0.5 * (mean - (data.x2_val if pairs else v1)).square().sum(-1)
    return _masked_mean(nll, n_val).cpu().numpy()


@pytest.mark.parametrize("model_kind", ["pertvae", "vae"])
def test_validation_sample(benchmark, request, monkeypatch, one_thread, model_kind: str) -> None:
    from benchmarks._data import drug_splits, fit_config, seeds
    from harness.grid import POOLED

    small = request.config.getoption("benchmark_disable")
    pairs = model_kind == "pertvae"
    data = drug_splits("paper", "olaparib" if pairs else POOLED, n_repeats=1)[:1]
    cfg = fit_config("paper", precision="auto", **({"hidden": (32, 16), "context": 8, "iaf_hidden": 16}
                                                   if small else {}))
    seen = {}
    new = train._validation_loss
    monkeypatch.setattr(train, "_validation_loss", lambda *a: seen.setdefault("args", a) and new(*a))
    train.fit(data, cfg, seeds(1), pairs=pairs, max_steps=40)   # past the first epoch end: validated
    args = seen["args"]
    np.testing.assert_allclose(new(*args), _old_validation(*args), rtol=1e-5)
    load = load_average()
    med = alternate({"encode": lambda: _old_validation(*args), "sample": lambda: new(*args)},
                    reps=5 if small else 15, warmup=2)
    benchmark.pedantic(new, args=args, rounds=1, iterations=1)
    _record(benchmark, med, "encode", "sample", load)
    benchmark.extra_info["validation_rows"] = int(args[1].x1_val.shape[1])


@pytest.mark.parametrize("model_kind", ["pertvae", "vae"])
def test_bf16_math_against_casts(benchmark, request, one_thread, monkeypatch, model_kind: str) -> None:
    """An eager bf16 step with oneDNN's bfloat16 arithmetic on float32 operands (layers.bf16_math_bmm) against
    casting the operands to bfloat16 and widening the outputs, alternating in one process; ``chosen`` is the
    way the code takes on this CPU (layers.CPU_BF16_MATH: the math on AMX, where oneDNN computes it in
    bfloat16; casts elsewhere, where it computes float32). Compiled steps always cast (0.93-0.96x the math's
    time on AMX, the VAE, when the math could still be compiled: layers.CPU_BF16_MATH)."""
    if not layers.BF16_MATH_AVAILABLE:
        pytest.skip("this torch has no oneDNN bfloat16 arithmetic for float32 products")
    small = request.config.getoption("benchmark_disable")
    sizes, genes = (SMALL, 50) if small else (PAPER, 978)
    chosen = "bf16_math" if layers.CPU_BF16_MATH else "casts"
    runs = {}
    for name in ("casts", "bf16_math"):
        monkeypatch.setattr(layers, "CPU_BF16_MATH", name == "bf16_math")
        runs[name] = train_step(model_kind, "bf16", 1, genes, sizes)
        runs[name]()

    def variant(name: str):
        def call():
            monkeypatch.setattr(layers, "CPU_BF16_MATH", name == "bf16_math")
            return runs[name]()
        return call

    load = load_average()
    med = alternate({k: variant(k) for k in runs}, reps=5 if small else 30, warmup=2)
    loss = benchmark.pedantic(variant(chosen), rounds=1, iterations=1)
    assert torch.isfinite(loss).all()
    info = {"model": model_kind, "chosen": chosen,
            "casts_ms": round(med["casts"] * 1e3, 2), "bf16_math_ms": round(med["bf16_math"] * 1e3, 2),
            "math_over_casts": round(med["bf16_math"] / med["casts"], 3),
            "amx": prec.cpu_has_amx_bf16(), "load_average": [load, load_average()],
            "clock": "process CPU time, median of alternating steps"}
    info["headline"] = ["chosen", "casts_ms", "bf16_math_ms", "math_over_casts"]
    benchmark.extra_info.update(info)


@pytest.mark.parametrize("latent", [2, 10])
def test_small_products_in_fp32(benchmark, request, one_thread, monkeypatch, latent: int) -> None:
    """The VAE's eager bf16 step (one model, paper sizes) with the products below
    layers.SMALL_PRODUCT_FLOPS in float32, against every product in bf16 (oneDNN's bf16 kernel costs ~40 us a
    call at a small latent's sizes), alternating in one process (the threshold is read at each product).
    Eager: a compiled step casts its operands instead (layers.CPU_BF16_MATH)."""
    if not layers.CPU_BF16_MATH:
        pytest.skip("the code takes oneDNN's bf16 arithmetic on float32 operands only on AMX (CPU_BF16_MATH)")
    small = request.config.getoption("benchmark_disable")
    sizes, genes = ({**SMALL, "latent": latent}, 50) if small else ({**PAPER, "latent": latent}, 978)
    run = train_step("vae", "bf16", 1, genes, sizes)
    flops = {"all_bf16": 0.0, "small_fp32": layers.SMALL_PRODUCT_FLOPS}

    def variant(name: str):
        def call():
            monkeypatch.setattr(layers, "SMALL_PRODUCT_FLOPS", flops[name])
            return run()
        return call

    load = load_average()
    med = alternate({k: variant(k) for k in flops}, reps=5 if small else 40, warmup=3, settle=1,
                    clock=time.thread_time)
    loss = benchmark.pedantic(variant("small_fp32"), rounds=1, iterations=1)
    assert torch.isfinite(loss).all()
    info = {"model": "vae", "latent": latent, "all_bf16_ms": round(med["all_bf16"] * 1e3, 2),
            "small_fp32_ms": round(med["small_fp32"] * 1e3, 2),
            "new_over_old": round(med["small_fp32"] / med["all_bf16"], 3),
            "load_average": [load, load_average()], "clock": "thread CPU time, median of alternating steps",
            "headline": ["all_bf16_ms", "small_fp32_ms", "new_over_old"]}
    benchmark.extra_info.update(info)


def _adam_turn(params: list[torch.Tensor], grads: list[torch.Tensor], opt: torch.optim.Optimizer,
               direct: bool) -> None:
    """One optimizer step on fixed gradients, as a train step ends it."""
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    if direct:
        adam_step_(opt)
    else:
        opt.step()
        opt.zero_grad(set_to_none=True)


@pytest.mark.parametrize("model_kind", ["pertvae", "vae"])
def test_adam_step(benchmark, request, one_thread, model_kind: str) -> None:
    sizes = SMALL if request.config.getoption("benchmark_disable") else PAPER
    cfg = FitConfig(**{**sizes, "latent": 2 if model_kind == "vae" else sizes["latent"]})
    twins = [list(PertVAE(978, cfg, [torch.Generator().manual_seed(0)]).parameters()) for _ in range(2)]
    grads = [torch.randn(p.shape, generator=torch.Generator().manual_seed(i)) for i, p in enumerate(twins[0])]
    opts = [train.make_optimizer(ps, 1e-3) for ps in twins]
    load = load_average()
    med = alternate({"torch": lambda: _adam_turn(twins[0], grads, opts[0], False),
                     "direct": lambda: _adam_turn(twins[1], grads, opts[1], True)}, reps=200, warmup=3)
    assert all(torch.equal(a, b) for a, b in zip(*twins, strict=True))
    benchmark.pedantic(_adam_turn, args=(twins[1], grads, opts[1], True), rounds=1, iterations=1)
    _record(benchmark, med, "torch", "direct", load)
    benchmark.extra_info["parameters"] = sum(p.numel() for p in twins[0])


def _layouts(monkeypatch, new: bool) -> None:
    """layers' settings of the compiled step's layouts: this version's, or the code before them (every
    product of a bf16 layer cast, dL/dv's product of the transposed view)."""
    monkeypatch.setattr(layers, "SMALL_PRODUCT_FLOPS", 3e6 if new else 0.0)
    monkeypatch.setattr(layers, "CONTIGUOUS_WEIGHT_GRAD", new)


@pytest.mark.parametrize(("model_kind", "latent"), [("vae", 2), ("vae", 200), ("pertvae", 100)])
def test_compiled_step_layouts(benchmark, request, one_thread, monkeypatch, model_kind: str,
                               latent: int) -> None:
    """A compiled bf16 step (one model, paper sizes) as the code takes it on a CPU against the one before
    layers._small and layers._weight_product, alternating in one process: dynamo keeps a graph for each
    setting (it guards on them), so each call runs its own."""
    if request.config.getoption("benchmark_disable"):
        pytest.skip("torch.compile of paper-sized steps takes a minute: with the benchmark enabled")
    if train.no_cpp_compiler():
        pytest.skip("torch.compile needs a C++ compiler on the CPU")
    sizes = dict(PAPER, latent=latent)
    runs = {}
    for name in ("before", "after"):
        _layouts(monkeypatch, name == "after")
        runs[name] = train_step(model_kind, "bf16", 1, 978, sizes, compiled=True)
        runs[name]()

    def variant(name: str):
        def call():
            _layouts(monkeypatch, name == "after")
            return runs[name]()
        return call

    load = load_average()
    med = alternate({k: variant(k) for k in runs}, reps=40, warmup=2, settle=1)
    loss = benchmark.pedantic(variant("after"), rounds=1, iterations=1)
    assert torch.isfinite(loss).all()
    _record(benchmark, med, "before", "after", load)
    benchmark.extra_info.update({"model": model_kind, "latent": latent, "clock": "process CPU time, median "
                                 "of alternating compiled steps"})
