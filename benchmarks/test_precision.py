"""bf16 against fp32 matrix products: the training step's time ratio, measured side by side in one run.

A PertVAE step (64 pairs + 64 singletons: 192 profiles through encoder, IAF and decoder) and a plain VAE step
(128 profiles) at the paper's sizes (978 genes, hidden (500, 300), latent 100, context 200, 2 IAF steps of
300), S = 1 and S = 10 models batched, and S = 1 with torch.compile (the paper preset's default), on one
torch thread (as a grid worker). The fp32 and bf16 steps alternate in one process, a turn's first step
untimed (a fit's steps run back to back), and each keeps the median of its CPU times (benchmarks/_data.py).
extra_info: ``fp32_ms``, ``bf16_ms``, ``bf16_over_fp32`` (goal at paper size, S = 1: <= 0.75), the load
average and ``memory_gbps`` (one thread's memory rate before and after, harness.calibrate.stream_rate): the
two steps share the same memory-bound work (Adam, the weight norms), so when the host's memory is busy the
ratio rises (the VAE's compiled step: 0.752 on one day, 0.834 on a day when every step took ~2x as long at
the same load average).
With --benchmark-disable a small model is used so the run stays quick. Nothing here asserts a time.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks._data import alternate, load_average
from harness.calibrate import stream_rate
from pertvae_core.config import FitConfig
from pertvae_core.model import PertVAE
from pertvae_core.train import make_train_step

PAPER = {"latent": 100, "hidden": (500, 300), "context": 200, "iaf_hidden": 300, "iaf_steps": 2}
SMALL = {"latent": 8, "hidden": (32, 16), "context": 8, "iaf_hidden": 16, "iaf_steps": 2}


def train_step(model_kind: str, precision: str, n_models: int, genes: int, sizes: dict,
               with_model: bool = False, compiled: bool = False):
    """One train step of ``n_models`` batched PertVAEs (or VAEs) on fixed random data, as a callable (and
    the model, ``with_model``); ``compiled``: its loss by torch.compile (FitConfig.compile)."""
    pairs = model_kind == "pertvae"
    cfg = FitConfig(precision=precision, compile=compiled, **sizes)
    model = PertVAE(genes, cfg, [torch.Generator().manual_seed(i) for i in range(n_models)], pairs=pairs)
    g = torch.Generator().manual_seed(99)
    bp, bs = (64, 64) if pairs else (0, 128)
    x1, x2, xs = (torch.randn(n_models, b, genes, generator=g) for b in (bp, bp, bs))
    eps = torch.randn(n_models, 2 * bp + bs, cfg.latent, generator=g)
    w = torch.full((n_models,), 0.5 if pairs else 0.0)
    step, _ = make_train_step(model, cfg, w, 1 - w)
    active = torch.ones(n_models, dtype=torch.bool)
    run = lambda: step(x1, x2, xs, eps, active)   # noqa: E731
    return (run, model) if with_model else run


@pytest.mark.parametrize(("n_models", "compiled"), [(1, False), (10, False), (1, True)],
                         ids=["S1", "S10", "S1-compiled"])
@pytest.mark.parametrize("model_kind", ["pertvae", "vae"])
def test_bf16_over_fp32_step(benchmark, request, one_thread, model_kind: str, n_models: int,
                             compiled: bool) -> None:
    small = request.config.getoption("benchmark_disable")
    if small and (n_models > 1 or compiled):
        pytest.skip("S = 10 and torch.compile only with the benchmark enabled")
    sizes, genes = (SMALL, 50) if small else (PAPER, 978)
    runs = {p: train_step(model_kind, p, n_models, genes, sizes, compiled=compiled)
            for p in ("fp32", "bf16")}
    load, memory = load_average(), stream_rate("cpu")
    med = alternate(runs, reps=3 if small else (15 if n_models == 1 else 5), warmup=2, settle=1)
    loss = benchmark.pedantic(runs["bf16"], rounds=1, iterations=1)
    assert loss.shape == (n_models,) and torch.isfinite(loss).all()
    info = {"model": model_kind, "models_batched": n_models, "compiled": compiled, "genes": genes,
            "latent": sizes["latent"],
            "threads": torch.get_num_threads(), "fp32_ms": round(med["fp32"] * 1e3, 2),
            "bf16_ms": round(med["bf16"] * 1e3, 2), "bf16_over_fp32": round(med["bf16"] / med["fp32"], 3),
            "load_average": [load, load_average()], "clock": "process CPU time, median of alternating steps",
            "memory_gbps": [round(memory / 1e9, 1), round(stream_rate("cpu") / 1e9, 1)]}
    info["headline"] = ["fp32_ms", "bf16_ms", "bf16_over_fp32"]
    benchmark.extra_info.update(info)
    mode = ", compiled" if compiled else ""
    print(f"\n{model_kind} step, S={n_models}{mode}, {genes} genes: fp32 {info['fp32_ms']} ms, bf16 "
          f"{info['bf16_ms']} ms (CPU time): bf16/fp32 = {info['bf16_over_fp32']} (load average {load:.1f}, "
          f"memory {info['memory_gbps'][0]} GB/s per thread)")
