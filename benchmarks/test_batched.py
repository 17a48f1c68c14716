"""S = 10 fits trained as one batched model vs 10 sequential S = 1 fits, the same fixed number of steps.

Each fit is a PertVAE at the paper's sizes (978 genes, latent 100, batch 64 pairs + 64 singletons) doing
``STEPS`` optimizer steps (forward, backward, fused Adam) on device-resident minibatches. extra_info:
``batched_s`` (S = 10 at once), ``sequential_s`` (10 fits one after another) and ``batched_speedup`` =
sequential_s / batched_s, the per-fit ratio. On a 2-core CPU it is not expected to exceed 1; on a GPU
batching is the main lever. --benchmark-disable uses a small model and 2 steps so the run stays quick.
"""

from __future__ import annotations

import time

import pytest
import torch

from pertvae_core.config import FitConfig
from pertvae_core.model import PertVAE
from pertvae_core.train import make_train_step

S = 10


def _runner(cfg: FitConfig, n_models: int, genes: int, pairs: int, singles: int, steps: int):
    gens = [torch.Generator().manual_seed(i) for i in range(n_models)]
    model = PertVAE(genes, cfg, gens)
    g = torch.Generator().manual_seed(99)
    x1, x2, xs = (torch.randn(n_models, b, genes, generator=g) for b in (pairs, pairs, singles))
    eps = torch.randn(n_models, 2 * pairs + singles, cfg.latent, generator=g)
    w = torch.full((n_models,), pairs / (pairs + singles))
    step, _ = make_train_step(model, cfg, w, 1 - w)
    active = torch.ones(n_models, dtype=torch.bool)

    def run() -> torch.Tensor:
        for _ in range(steps):
            loss = step(x1, x2, xs, eps, active)
        return loss

    return run


@pytest.fixture
def sizes(request) -> dict:
    if request.config.getoption("benchmark_disable"):
        return {"cfg": FitConfig(latent=8, hidden=(32, 16), context=8, iaf_hidden=16), "genes": 50,
                "pairs": 8, "singles": 8, "steps": 2}
    return {"cfg": FitConfig(), "genes": 978, "pairs": 64, "singles": 64, "steps": 5}


def test_batched_vs_sequential(benchmark, sizes) -> None:
    torch.set_flush_denormal(True)
    kw = {k: sizes[k] for k in ("genes", "pairs", "singles", "steps")}
    batched = _runner(sizes["cfg"], S, **kw)
    singles = [_runner(sizes["cfg"], 1, **kw) for _ in range(S)]
    batched()  # warm-up
    for r in singles:
        r()
    loss = benchmark.pedantic(batched, rounds=3, iterations=1)
    assert loss.shape == (S,) and torch.isfinite(loss).all()
    t0 = time.perf_counter()
    batched()
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in singles:
        r()
    t_seq = time.perf_counter() - t0
    benchmark.extra_info.update({
        "fits": S, "steps": sizes["steps"], "genes": sizes["genes"], "latent": sizes["cfg"].latent,
        "batched_s": t_batched, "sequential_s": t_seq, "batched_speedup": t_seq / t_batched,
        "threads": torch.get_num_threads(),
    })
    assert t_batched > 0 and t_seq > 0
