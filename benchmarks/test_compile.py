"""torch.compile with bf16 products, per fit, compile time included, by CPU time.

Each variant runs in a fresh process, as a grid worker's first fits do, on one torch thread, with inductor
compiling in-process (``TORCHINDUCTOR_COMPILE_THREADS=1``) so that its C++ compiler runs as waited-for child
processes whose CPU time is counted (this process's and its children's, benchmarks/_data.py):

- ``eager``: two fits;
- ``compile_cold``: two fits with ``FitConfig.compile``, inductor's on-disk cache empty (a new machine);
- ``compile_warm``: one fit, a new process on the cache the cold one filled (a worker after the first).

Fits: ``pertvae``, a paper-sized PertVAE on olaparib's first two splits of the ``paper`` synthetic cube to
their early stop; ``vae``, the pooled Figure 2 VAE at latent 20 on its first two splits, capped at
``PERTVAE_BENCH_COMPILE_VAE_EPOCHS`` epochs (default 20; a whole one runs ~200). extra_info per variant and
fit: ``cpu_s``, ``epochs``, ``best_epoch``; derived: ``compiled_over_eager_per_epoch`` (the second fits'),
``compile_cpu_s_cold`` / ``compile_cpu_s_warm`` (a compiled first fit's CPU time beyond its epochs at the
compiled rate) and ``break_even_fits`` (fits of this size a worker needs before compiling has paid for a cold
compile), with the load average. Runs with --benchmark-only only (compiling takes minutes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks._data import load_average

ROOT = Path(__file__).resolve().parents[1]


def _data(model: str) -> tuple[list, int]:
    """The fits' splits and latent size."""
    from benchmarks._data import drug_splits

    if model == "pertvae":
        return drug_splits("paper", "olaparib", n_repeats=1)[:2], 100
    from datasets.pairs import drug_data, pool
    from datasets.synthetic import generate
    from harness.config import make_config
    from harness.grid import POOLED
    from harness.tasks import drug_splits as splits_of
    from harness.tasks import split_data

    cube = generate(preset="paper", seed=0)
    names = [str(c) for c in cube["condition"].values if str(c) not in ("control", "baseline")]
    dd = pool([drug_data(cube, d) for d in names], POOLED)
    return [split_data(dd, sp) for sp in splits_of(dd, make_config("paper"))[:2]], 20


def main(model: str, compiled: bool, n_fits: int) -> None:
    """Run ``n_fits`` fits in this process and print one JSON line each (the subprocess side)."""
    import torch

    from benchmarks._data import cpu_seconds, fit_config
    from pertvae_core.train import fit

    torch.set_num_threads(1)
    data, latent = _data(model)
    cap = int(os.environ.get("PERTVAE_BENCH_COMPILE_VAE_EPOCHS", "20")) if model == "vae" else 200
    for i in range(n_fits):
        cfg = fit_config("paper", latent=latent, compile=compiled, precision="auto", max_epochs=cap)
        c0 = cpu_seconds(children=True)
        st = fit([data[i]], cfg, [1000 + i], pairs=model == "pertvae")
        print(json.dumps({"cpu_s": round(cpu_seconds(children=True) - c0, 2), "epochs": st.epochs[0],
                          "best_epoch": st.best_epoch[0], "precision": st.precision,
                          "history": [round(h, 6) for h in st.history[0]]}), flush=True)


def _run(model: str, compiled: bool, n_fits: int, cache: Path) -> list[dict]:
    env = {**os.environ, "TORCHINDUCTOR_COMPILE_THREADS": "1", "TORCHINDUCTOR_CACHE_DIR": str(cache),
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "benchmarks.test_compile", model, str(int(compiled)),
                          str(n_fits)], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("model", ["pertvae", "vae"])
def test_compile_per_fit(benchmark, request, tmp_path, model: str) -> None:
    if request.config.getoption("benchmark_disable"):
        pytest.skip("torch.compile of paper-sized fits takes minutes: --benchmark-only")
    load = load_average()
    cache = tmp_path / "inductor"

    def variants() -> dict[str, list[dict]]:
        return {"eager": _run(model, False, 2, cache), "compile_cold": _run(model, True, 2, cache),
                "compile_warm": _run(model, True, 1, cache)}

    runs = benchmark.pedantic(variants, rounds=1, iterations=1)
    eager, cold, warm = runs["eager"], runs["compile_cold"], runs["compile_warm"]
    per_epoch = {k: [f["cpu_s"] / f["epochs"] for f in v] for k, v in runs.items()}
    compiled_rate = per_epoch["compile_cold"][1]   # a compiled fit after the compile
    compile_cold = cold[0]["cpu_s"] - cold[0]["epochs"] * compiled_rate
    compile_warm = warm[0]["cpu_s"] - warm[0]["epochs"] * compiled_rate
    saved_per_fit = (per_epoch["eager"][1] - compiled_rate) * eager[1]["epochs"]
    info = {
        "model": model, "precision": eager[0]["precision"],
        "fits": {k: [{x: f[x] for x in ("cpu_s", "epochs", "best_epoch")} for f in v]
                 for k, v in runs.items()},
        "compiled_over_eager_per_epoch": round(compiled_rate / per_epoch["eager"][1], 3),
        "compile_cpu_s_cold": round(compile_cold, 1), "compile_cpu_s_warm": round(compile_warm, 1),
        "saved_cpu_s_per_fit": round(saved_per_fit, 2),
        "break_even_fits": round(compile_cold / saved_per_fit, 1) if saved_per_fit > 0 else None,
        "same_epochs_as_eager": [f["epochs"] for f in cold] == [f["epochs"] for f in eager],
        "load_average": [load, load_average()], "clock": "CPU time of the process and its children",
        "headline": ["compiled_over_eager_per_epoch", "compile_cpu_s_cold", "compile_cpu_s_warm",
                     "break_even_fits"],
    }
    benchmark.extra_info.update(info)
    print(f"\ntorch.compile, {model} ({info['precision']}): compiled/eager per epoch "
          f"{info['compiled_over_eager_per_epoch']}; compile {info['compile_cpu_s_cold']} CPU-s cold, "
          f"{info['compile_cpu_s_warm']} warm; saves {info['saved_cpu_s_per_fit']} CPU-s per fit: pays after "
          f"{info['break_even_fits']} fits; fits {info['fits']}; load average {load:.1f}")
    assert all(f["epochs"] >= 1 for v in runs.values() for f in v)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]))
