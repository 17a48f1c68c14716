"""S = 10 fits trained as one batched model vs 10 sequential S = 1 fits, the same fixed number of steps.

Each fit is a PertVAE at the paper's sizes (978 genes, latent 100, batch 64 pairs + 64 singletons) doing
``STEPS`` optimizer steps (forward, backward, fused Adam) on device-resident minibatches. extra_info (CPU
time, the two ways alternating, medians; with the load average): ``batched_s`` (S = 10 at once),
``sequential_s`` (10 fits one after another) and ``batched_speedup`` = sequential_s / batched_s, the per-fit
ratio. Both ways must give the same losses (fit i: seed i, data i).
On a 2-core CPU the speedup is not expected to exceed 1; on a GPU batching is the main lever.
--benchmark-disable uses a small model and 2 steps so the run stays quick.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks._data import alternate, load_average
from pertvae_core.config import FitConfig
from pertvae_core.model import PertVAE
from pertvae_core.train import make_train_step

S = 10


def _data(cfg: FitConfig, genes: int, pairs: int, singles: int) -> tuple[torch.Tensor, ...]:
    """x1, x2, xs and eps of the S fits (one slice each)."""
    g = torch.Generator().manual_seed(99)
    x1, x2, xs = (torch.randn(S, b, genes, generator=g) for b in (pairs, pairs, singles))
    return x1, x2, xs, torch.randn(S, 2 * pairs + singles, cfg.latent, generator=g)


def _runner(cfg: FitConfig, fits: slice, data: tuple[torch.Tensor, ...], steps: int):
    """``steps`` train steps of the fits ``fits`` (their seeds and data slices) as one batched model."""
    seeds = range(S)[fits]
    n_models = len(seeds)
    x1, x2, xs, eps = (t[fits] for t in data)
    model = PertVAE(x1.shape[-1], cfg, [torch.Generator().manual_seed(i) for i in seeds])
    pairs, singles = x1.shape[1], xs.shape[1]
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
    data = _data(sizes["cfg"], sizes["genes"], sizes["pairs"], sizes["singles"])
    batched = _runner(sizes["cfg"], slice(None), data, sizes["steps"])
    singles = [_runner(sizes["cfg"], slice(i, i + 1), data, sizes["steps"]) for i in range(S)]
    # warm-up, and the check that both ways train the same S fits
    torch.testing.assert_close(batched(), torch.cat([r() for r in singles]), rtol=1e-4, atol=1e-4)
    loss = benchmark.pedantic(batched, rounds=3, iterations=1)
    assert loss.shape == (S,) and torch.isfinite(loss).all()
    load = load_average()
    med = alternate({"batched": batched, "sequential": lambda: [r() for r in singles]}, reps=3, warmup=0)
    t_batched, t_seq = med["batched"], med["sequential"]
    benchmark.extra_info.update({
        "load_average": [load, load_average()], "clock": "process CPU time, median of alternating runs",
        "fits": S, "steps": sizes["steps"], "genes": sizes["genes"], "latent": sizes["cfg"].latent,
        "batched_s": t_batched, "sequential_s": t_seq, "batched_speedup": t_seq / t_batched,
        "threads": torch.get_num_threads(),
    })
