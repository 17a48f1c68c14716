"""GPU benchmarks, run with one command: ``make bench-gpu`` (``pytest benchmarks/test_gpu.py
--benchmark-only``). In this order, issue 21's two figures first (the paper grid in GPU-hours, then S=50
against S=1 eager), so that a GPU lease that ends early keeps them: the compiled variants after them
compile ~20 graphs, ~16 s each on the H200 of README.

- ``test_paper_grid_estimate_on_device``: the dry run's estimate of the whole paper grid on this machine's
  GPUs (harness.cost, calibrated there): ``gpu_hours`` (goal <= 1), ``wall_hours``, ``floor_hours``; its
  text is printed.
- ``test_batched_step_throughput[variant]``: train steps of S = 1, 10 and 50 batched PertVAEs at the paper's
  sizes (978 genes, hidden (500, 300), latent 100, 2 IAF steps, batch 64 pairs + 64 singletons), data and
  minibatch indices resident on the device (each step gathers its batch there, as ``train.fit`` does).
  extra_info: ``fit_steps_per_s_S{n}`` (S x steps per second: one fit's step counts once per split),
  ``ratio_S50_vs_S1`` (goal on a GPU: >= 20) and ``ratio_S10_vs_S1``, ``step_ms_S{n}``, each for bf16
  matrix products (FitConfig.precision; fp32's with the suffix ``_fp32``), and ``bf16_over_fp32_S{n}``: the
  two precisions alternate in one run. Variants: ``eager``, ``compile`` (torch.compile of the forward) and
  ``cudagraphs`` (torch.compile mode "reduce-overhead", which records CUDA graphs of forward and backward).
- ``test_paper_fit_on_device[variant][S]``: ``train.fit`` of olaparib's first S splits (S = 1, 50) of the
  ``paper`` synthetic cube, capped at ``PERTVAE_BENCH_PAPER_EPOCHS`` epochs (default 3): ``seconds_per_epoch``
  of the batched model and ``split_epochs_per_s``; eager and compiled (compaction on, as in a run), fp32 and
  bf16.

Times on a GPU are wall times after synchronizing it (its kernels' time is not the host's CPU time); on the
CPU fallback, this process's CPU time (benchmarks/_data.py). Each figure is recorded with the load average.

Without CUDA these skip with the reason, unless ``PERTVAE_BENCH_GPU_ON_CPU=1`` (or --benchmark-disable, as in
the test suite) runs them on the CPU at tiny sizes, so the path stays tested. Nothing asserts a time.
"""

from __future__ import annotations

import os
import sys
import time

import pytest
import torch

from benchmarks._data import alternate, drug_splits, fit_config, load_average, timed_fit
from pertvae_core.config import FitConfig
from pertvae_core.model import PertVAE
from pertvae_core.train import _gather, make_train_step

pytestmark = pytest.mark.gpu

GPU_ON_CPU = "PERTVAE_BENCH_GPU_ON_CPU"
SIZES = (1, 10, 50)
VARIANTS = {"eager": (False, None), "compile": (True, None), "cudagraphs": (True, "reduce-overhead")}
TINY = {"latent": 8, "hidden": (32, 16), "context": 8, "iaf_hidden": 16}


@pytest.fixture(scope="module")
def target(request) -> dict:
    """The device and sizes: the GPU at paper sizes, or the CPU at tiny sizes when asked (module doc)."""
    disabled = bool(request.config.getoption("benchmark_disable"))
    if torch.cuda.is_available():
        dev = torch.device("cuda")
    elif disabled or os.environ.get(GPU_ON_CPU) == "1":
        dev = torch.device("cpu")
    else:
        pytest.skip(f"no CUDA device (torch {torch.__version__}, cuda={torch.version.cuda}): GPU benchmarks "
                    f"skipped; {GPU_ON_CPU}=1 runs them on the CPU at tiny sizes")
    tiny = disabled or dev.type == "cpu"
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    return {"device": dev, "tiny": tiny, "disabled": disabled, "name": name}


def _variant(request, target: dict, variant: str) -> tuple[bool, str | None]:
    if variant != "eager" and target["disabled"]:
        pytest.skip("torch.compile takes tens of seconds: compiled variants only with the benchmark enabled")
    return VARIANTS[variant]


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def step_runner(cfg: FitConfig, n_models: int, genes: int, pairs: int, singles: int, steps: int,
                dev: torch.device, compile_mode: str | None = None):
    """``steps`` batched train steps on device-resident data: each gathers its minibatch by index there."""
    model = PertVAE(genes, cfg, [torch.Generator().manual_seed(i) for i in range(n_models)]).to(dev)
    g = torch.Generator().manual_seed(99)
    n = 4 * (pairs + singles)
    P1, P2, XS = (torch.randn(n_models, n, genes, generator=g).to(dev) for _ in range(3))
    idx = torch.randint(0, n, (steps, 2, n_models, max(pairs, singles)), generator=g).to(dev)
    eps = torch.randn(steps, n_models, 2 * pairs + singles, cfg.latent, generator=g).to(dev)
    w = torch.full((n_models,), pairs / (pairs + singles), device=dev)
    step, _ = make_train_step(model, cfg, w, 1 - w, compile_mode=compile_mode)
    active = torch.ones(n_models, dtype=torch.bool, device=dev)

    def run() -> torch.Tensor:
        for t in range(steps):
            ip, is_ = idx[t, 0, :, :pairs], idx[t, 1, :, :singles]
            loss = step(_gather(P1, ip), _gather(P2, ip), _gather(XS, is_), eps[t], active)
        _sync(dev)
        return loss

    return run


def test_paper_grid_estimate_on_device(benchmark, target) -> None:
    """The dry run's estimate of the paper grid (``--preset paper``: 19 drugs, 10 x 5 CV, Figure 2 pooled, on
    the paper-shaped synthetic cube) on this machine's GPUs, one local worker each, all of a drug's splits
    batched in a task (the default on a GPU); extra_info ``gpu_hours`` (goal <= 1), ``wall_hours``, the floor
    and the calibration. On the CPU fallback: a one-drug demo grid at tiny sizes, so the path stays tested."""
    from harness import cost
    from harness.config import make_config

    if target["tiny"]:
        cfg = make_config("demo", drugs=("selumetinib",), models=("pertvae", "vae"), latents_pertvae=(4,),
                          latents_vae=(2,), n_repeats=1, n_folds=3, cluster="local", workers=1,
                          device="cpu", **{k: v for k, v in TINY.items() if k != "latent"})
    else:
        cfg = make_config("paper", cluster="local", device="cuda")
    load = load_average()
    drugs = list(cfg.drugs) if cfg.drugs else None  # the paper preset names none: all of the cube's
    est = benchmark.pedantic(cost.estimate, args=(cfg, None, drugs), rounds=1, iterations=1,
                             kwargs={"progress": lambda line: print(line, file=sys.stderr, flush=True)})
    info = {"device": target["name"], "preset": cfg.preset, "precision": est.precision,
            "gpu_hours" if est.device == "cuda" else "cpu_hours": round(est.cpu_hours, 3),
            "wall_hours": round(est.wall_seconds / 3600, 3), "floor_hours": round(est.floor_cpu_hours, 3),
            "slots": est.slots, "calibration_s": round(est.calibration_seconds, 1),
            "calibration": cost.measured_how(est), "load_average": [load, load_average()],
            "disturbed": est.disturbed}
    info["headline"] = [k for k in ("gpu_hours", "cpu_hours", "wall_hours", "floor_hours") if k in info]
    info["headline"] += ["disturbed"] if est.disturbed else []
    benchmark.extra_info.update(info)
    if est.disturbed:   # the dry run prints no estimate then (exit 4): this one is not to be quoted
        print(f"\nnote: the dry run would print no estimate: {cost.disturbed_how(est)}")
    print("\n" + cost.render(cfg, est, "the preset's synthetic cube, in memory"))
    assert est.total_seconds > 0 and est.tasks


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_batched_step_throughput(benchmark, request, target, variant: str) -> None:
    compiled, mode = _variant(request, target, variant)
    dev, tiny = target["device"], target["tiny"]
    genes, pairs, singles = (50, 8, 8) if tiny else (978, 64, 64)
    steps, reps = (2, 2) if tiny else (10, 5)
    clock = time.perf_counter if dev.type == "cuda" else time.process_time
    torch.set_flush_denormal(True)
    info: dict = {"variant": variant, "device": target["name"], "genes": genes, "steps": steps,
                  "load_average": load_average()}
    runs = {}
    for s in SIZES:
        for precision in ("fp32", "bf16"):
            cfg = FitConfig(compile=compiled, precision=precision, **(TINY if tiny else {}))
            runs[(s, precision)] = step_runner(cfg, s, genes, pairs, singles, steps, dev, mode)
        med = alternate({p: runs[(s, p)] for p in ("fp32", "bf16")}, reps, warmup=2, clock=clock)
        for precision, t in med.items():
            sfx = "" if precision == "bf16" else "_fp32"
            info[f"step_ms_S{s}{sfx}"] = round(t / steps * 1e3, 3)
            info[f"fit_steps_per_s_S{s}{sfx}"] = round(s * steps / t, 2)
        info[f"bf16_over_fp32_S{s}"] = round(med["bf16"] / med["fp32"], 3)
    loss = benchmark.pedantic(runs[(SIZES[-1], "bf16")], rounds=3, iterations=1)
    assert loss.shape == (SIZES[-1],) and torch.isfinite(loss).all()
    for s in SIZES[1:]:
        for sfx in ("", "_fp32"):
            info[f"ratio_S{s}_vs_S1{sfx}"] = round(info[f"fit_steps_per_s_S{s}{sfx}"]
                                                   / info[f"fit_steps_per_s_S1{sfx}"], 3)
    if dev.type == "cuda":
        info["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
    info["headline"] = ([f"fit_steps_per_s_S{s}" for s in SIZES] + [f"ratio_S{s}_vs_S1" for s in SIZES[1:]]
                        + [f"bf16_over_fp32_S{s}" for s in SIZES])
    benchmark.extra_info.update(info)
    rates = ", ".join(f"S={s}: {info[f'fit_steps_per_s_S{s}']} fit-steps/s" for s in SIZES)
    print(f"\n{variant} on {target['name']} (bf16): {rates}; S=50 vs S=1: {info['ratio_S50_vs_S1']}x; "
          f"bf16/fp32 at S=1: {info['bf16_over_fp32_S1']}")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("n_splits", [1, 50])
@pytest.mark.parametrize("variant", ["eager", "compile"])
def test_paper_fit_on_device(benchmark, request, target, variant: str, n_splits: int, precision: str) -> None:
    compiled, _ = _variant(request, target, variant)
    tiny = target["tiny"]
    if tiny and precision == "bf16" and n_splits > 1:
        pytest.skip("tiny sizes on the CPU: bf16 at S=1 only (the path is the same; the test stays quick)")
    preset = "demo" if tiny else "paper"
    epochs = 4 if tiny else int(os.environ.get("PERTVAE_BENCH_PAPER_EPOCHS", "3"))
    data = drug_splits(preset, "selumetinib" if tiny else "olaparib", n_repeats=10)[:n_splits]
    # tiny: patience 1, so that splits stop at different epochs and compaction (recompiling) is exercised
    cfg = fit_config(preset, max_epochs=epochs, device=target["device"].type, compile=compiled,
                     precision=precision, **({**TINY, "patience": 1} if tiny else {}))
    r = benchmark.pedantic(timed_fit, args=(data, cfg), rounds=1, iterations=1)
    assert r["status"] == "done"
    info = {**r, "variant": variant, "device": target["name"], "preset": preset, "precision": precision,
            "split_epochs_per_s": round(n_splits / r["seconds_per_epoch"], 3)}
    info["headline"] = ["seconds_per_epoch", "split_epochs_per_s", "epochs"]
    benchmark.extra_info.update(info)
    print(f"\npaper fit on {target['name']} ({variant}, {precision}, S={n_splits}): "
          f"{r['seconds_per_epoch']:.3f} s/epoch, "
          f"{info['split_epochs_per_s']} split-epochs/s")
