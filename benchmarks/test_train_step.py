"""One PertVAE training step at the paper's sizes as a fraction of this machine's matmul rate, fp32 and bf16.

Batch 128 = 64 pairs + 64 singletons, i.e. 192 profiles through encoder, IAF and decoder and 64 through the
drug effect; 978 genes, latent 100, hidden (500, 300), context 200, IAF hidden 300, S = 1. In the same run
torch.mm is timed at every matrix product of the step (forward, grad-weight and grad-input, less the first
layer's grad-input: the data needs no gradient); their FLOPs are checked against torch's FlopCounterMode on an
eager step. Times are this process's CPU time (every torch thread; medians), so ``gflops`` is per core.
extra_info: ``gflops`` = the step's matmul FLOPs / step time, ``mm_gflops`` = the same FLOPs / the summed
torch.mm times (in the step's precision: bfloat16 operands for bf16), ``gemm_fraction`` = gflops / mm_gflops,
and the load average. Variants: ``eager`` and ``compiled`` (FitConfig.compile, torch.compile of the forward;
compiling takes tens of seconds, so it runs only with the benchmark enabled), each with fp32 and bf16 products
(FitConfig.precision). With --benchmark-disable a small model is used so the run stays quick. Nothing here
asserts a time.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks._data import load_average, median_seconds
from pertvae_core.config import FitConfig
from pertvae_core.model import PertVAE
from pertvae_core.train import make_train_step

PAPER = FitConfig(latent=100, hidden=(500, 300), context=200, iaf_hidden=300, iaf_steps=2)
SMALL = FitConfig(latent=8, hidden=(32, 16), context=8, iaf_hidden=16, iaf_steps=2)


def matmul_shapes(cfg: FitConfig, genes: int, pairs: int, singles: int) -> list[tuple[int, int, int]]:
    """(rows, in, out) of every matmul in the forward pass of one step."""
    n = 2 * pairs + singles
    h0, h1 = cfg.hidden
    L, C = cfg.latent, cfg.context
    enc = [(n, genes, h0), (n, h0, h1), (n, h1, 2 * L + C)]
    iaf = [(n, L + C, cfg.iaf_hidden), (n, cfg.iaf_hidden, 2 * L)] * cfg.iaf_steps
    dec = [(n, L, h1), (n, h1, h0), (n, h0, 2 * genes)]
    return enc + iaf + dec + [(pairs, L, 2 * L)]


def step_products(cfg: FitConfig, genes: int, pairs: int, singles: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of every matrix product (m x k) @ (k x n) of one step: each forward product, its grad-weight
    and its grad-input, except the first layer's grad-input (the input data needs no gradient)."""
    out = []
    for i, (m, k, n) in enumerate(matmul_shapes(cfg, genes, pairs, singles)):
        out += [(m, k, n), (k, m, n)] + ([(m, n, k)] if i > 0 else [])
    return out


def mm_seconds(products: list[tuple[int, int, int]], reps: int, dtype: torch.dtype = torch.float32) -> float:
    """Summed median torch.mm CPU time over the products, with operands of ``dtype``."""
    total = 0.0
    for m, k, n in products:
        x, y = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
        total += median_seconds(lambda x=x, y=y: torch.mm(x, y), reps, warmup=1)
    return total


def _step(cfg: FitConfig, genes: int, pairs: int, singles: int):
    """One S = 1 train step on fixed random data, as a callable."""
    model = PertVAE(genes, cfg, [torch.Generator().manual_seed(0)])
    g = torch.Generator().manual_seed(1)
    x1, x2, xs = (torch.randn(1, b, genes, generator=g) for b in (pairs, pairs, singles))
    eps = torch.randn(1, 2 * pairs + singles, cfg.latent, generator=g)
    w = torch.tensor([pairs / (pairs + singles)])
    step, _ = make_train_step(model, cfg, w, 1 - w)
    active = torch.ones(1, dtype=torch.bool)
    return lambda: step(x1, x2, xs, eps, active)


def counted_flops(cfg: FitConfig, genes: int, pairs: int, singles: int) -> int:
    """The matmul FLOPs torch's FlopCounterMode counts in one eager step."""
    run = _step(FitConfig(**{**cfg.__dict__, "compile": False, "precision": "fp32"}), genes, pairs, singles)
    with FlopCounterMode(display=False) as fc:
        run()
    return fc.get_total_flops()


@pytest.fixture(params=["eager-fp32", "eager-bf16", "compiled-fp32", "compiled-bf16"])
def step_setup(request):
    disabled = request.config.getoption("benchmark_disable")
    mode, precision = request.param.split("-")
    if mode == "compiled" and disabled:
        pytest.skip("torch.compile takes tens of seconds: compiled variant only with the benchmark enabled")
    cfg = SMALL if disabled else PAPER
    cfg = FitConfig(**{**cfg.__dict__, "compile": mode == "compiled", "precision": precision})
    genes, pairs, singles = (50, 8, 8) if disabled else (978, 64, 64)
    torch.set_flush_denormal(True)
    return {"cfg": cfg, "genes": genes, "pairs": pairs, "singles": singles, "disabled": disabled,
            "variant": request.param, "run": _step(cfg, genes, pairs, singles)}


def test_train_step(benchmark, step_setup) -> None:
    st = step_setup
    st["run"]()  # warm-up (compiles the compiled variant)
    loss = benchmark(st["run"])
    assert loss.shape == (1,) and torch.isfinite(loss).all()
    reps = 3 if st["disabled"] else 20
    sizes = (st["cfg"], st["genes"], st["pairs"], st["singles"])
    products = step_products(*sizes)
    flops = sum(2 * m * k * n for m, k, n in products)
    assert flops == counted_flops(*sizes)  # the products timed below are those the step computes
    load = load_average()
    t_step = median_seconds(st["run"], reps, warmup=1)
    low = st["cfg"].precision == "bf16"
    t_mm = mm_seconds(products, reps, torch.bfloat16 if low else torch.float32)
    gflops, mm_gflops = flops / t_step / 1e9, flops / t_mm / 1e9
    benchmark.extra_info.update({
        "load_average": [load, load_average()], "precision": st["cfg"].precision,
        "variant": st["variant"], "genes": st["genes"], "batch_pairs": st["pairs"],
        "batch_singletons": st["singles"],
        "latent": st["cfg"].latent, "step_flops": flops, "step_s": t_step, "mm_s": t_mm,
        "gflops": gflops, "mm_gflops": mm_gflops, "gemm_fraction": gflops / mm_gflops,
        "threads": torch.get_num_threads(),
    })
