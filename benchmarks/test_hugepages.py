"""The heap in huge pages (harness.hugepages: glibc.malloc.hugetlb=1) against 4 KiB pages: a training step's
CPU time, side by side.

glibc reads the tunable when a process starts, so each variant runs in a process of its own: a compiled bf16
step at the paper's sizes (the pooled VAE at latent 2, ~70% of the paper grid, and PertVAE at latent 100), on
one torch thread, with GLIBC_TUNABLES=glibc.malloc.hugetlb=0 ("off") or =1 ("on"). The two variants
alternate, ``ROUNDS`` processes each, every process timing its steps by thread CPU time after a warm-up
(the median counts); each variant keeps the median of its processes. extra_info: ``off_ms``, ``on_ms``,
``on_over_off`` (measured 0.83-0.90), the huge pages each variant's process held (``anon_huge_kib``: 0 when
the kernel or glibc gave none, and then the ratio is noise), the load average and the memory rate. With
--benchmark-disable a small eager model runs once per variant. Nothing here asserts a time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks._data import load_average
from harness import hugepages
from harness.calibrate import stream_rate

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 3
SCRIPT = """
import json, statistics, sys, time
import torch
torch.set_num_threads(1)
from benchmarks.test_precision import PAPER, SMALL, train_step
kind, latent, small, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
sizes, genes = (SMALL, 50) if small else (dict(PAPER, latent=latent), 978)
run = train_step(kind, "bf16", 1, genes, sizes, compiled=not small)
for _ in range(10):
    run()
ts = []
for _ in range(steps):
    t0 = time.thread_time()
    run()
    ts.append(time.thread_time() - t0)
huge = [int(l.split()[1]) for l in open("/proc/self/smaps_rollup") if l.startswith("AnonHugePages:")]
print(json.dumps({"ms": statistics.median(ts) * 1e3, "anon_huge_kib": huge[0] if huge else 0}))
"""


def _step(kind: str, latent: int, small: bool, on: bool) -> dict:
    """One process's median step time and the huge pages it held."""
    env = {**os.environ, hugepages.ENV: f"{hugepages.TUNABLE}={int(on)}", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", SCRIPT, kind, str(latent), str(int(small)),
                          "10" if small else "80"], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=1200)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize(("model_kind", "latent"), [("vae", 2), ("pertvae", 100)])
def test_hugepages_step(benchmark, request, model_kind: str, latent: int) -> None:
    small = request.config.getoption("benchmark_disable")
    load, memory = load_average(), stream_rate("cpu")
    runs: dict[str, list[dict]] = {"off": [], "on": []}

    def alternate() -> None:
        for _ in range(1 if small else ROUNDS):
            for variant in runs:
                runs[variant].append(_step(model_kind, latent, small, variant == "on"))

    benchmark.pedantic(alternate, rounds=1, iterations=1)
    ms = {v: statistics.median(r["ms"] for r in rs) for v, rs in runs.items()}
    huge = {v: [r["anon_huge_kib"] for r in rs] for v, rs in runs.items()}
    assert all(m > 0 for m in ms.values())
    info = {"model": model_kind, "latent": latent, "small": small, "off_ms": round(ms["off"], 2),
            "on_ms": round(ms["on"], 2), "on_over_off": round(ms["on"] / ms["off"], 3),
            "anon_huge_kib": huge, "supported": hugepages.supported(),
            "load_average": [load, load_average()], "memory_gbps": round(memory / 1e9, 1),
            "clock": "thread CPU time, median of each process's steps, median of the processes",
            "headline": ["off_ms", "on_ms", "on_over_off"]}
    benchmark.extra_info.update(info)
    what = "small eager" if small else "compiled"
    print(f"\n{model_kind} latent {latent} step, {what} bf16: 4 KiB pages {info['off_ms']} ms, huge pages "
          f"{info['on_ms']} ms (thread CPU time): {info['on_over_off']}x; huge pages held {huge}; load "
          f"average {load:.1f}")
