"""Peak memory of a worker reading its task's data from the cube (issue 23: a worker holds what its task
needs, not the cube).

Each figure comes from a fresh process that does what a Dask worker does (harness.tasks: open the cube
lazily, read a task's DrugData with the synchronous scheduler, through the worker's caches): peak RSS
(VmHWM) after opening the cube and after the task's read, against the cube's dense size and the task's own
arrays (x1, x2, xc, xs). Three tasks: the largest drug's, the POOLED pseudo-drug's (every drug's pairs,
Figure 2; the largest task of a run), and a worker that runs every drug and then POOLED (its caches kept).
The cube is the ``paper`` preset (1,320 cell lines x 21 conditions x 15 replicates x 978 genes: 1.5 GiB
dense); with --benchmark-disable the ``demo`` preset keeps the run quick.

Measured on the paper cube (2 shared cores, load average 4.0-4.7), peak RSS over the opened cube (~405 MiB
with torch) before -> after this change: the largest drug (selumetinib, 10.1 MiB of arrays) 341 -> 54 MiB;
POOLED (41.9 MiB) 490 -> 135 MiB; a worker through every drug and POOLED 489 -> 163 MiB; the dense cube is
1,551 MiB. Before, each condition was read whole and the worker cached up to 64 drugs. The assertions are on
memory (bounds the former reader fails), never on time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks._data import load_average
from datasets.cube import write_cube
from datasets.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]
MIB = 2 ** 20
SLACK_MIB = 96  # imports done on the first read (zarr codecs, dask.array), allocator arenas

_PROBE = r"""
import json, os, resource, sys, time

def peak_mib():
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        unit = 2 ** 20 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / unit

from harness import task_data as tasks
from harness.config import RunConfig
from harness.grid import POOLED

path, names = sys.argv[1], sys.argv[2:]
cfg, sizes = RunConfig(), {}  # a worker has its config (and torch, which RunConfig() imports) before a task
tasks._cube(path)
opened = peak_mib()
t0 = time.process_time()
for name in names:
    dd = tasks.drug_data(path, POOLED if name == "POOLED" else name, cfg)
    sizes[name] = sum(getattr(dd, k).nbytes for k in ("x1", "x2", "xc", "xs")) / 2 ** 20
print(json.dumps({"opened_mib": opened, "peak_mib": peak_mib(), "arrays_mib": sizes,
                  "read_cpu_s": time.process_time() - t0,
                  "load_average": os.getloadavg()[0]}))
"""


def probe(cube: Path, names: list[str], src: Path = ROOT) -> dict:
    """Peak RSS of a fresh process that opens ``cube`` as a worker does and reads the tasks ``names``
    (drugs or POOLED) in turn, with the code of ``src`` (this checkout)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", _PROBE, str(cube), *names], cwd=src, env=env,
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["task_mib"] = r["peak_mib"] - r["opened_mib"]
    return r


@pytest.fixture(scope="module")
def cube(request, tmp_path_factory) -> dict:
    preset = "demo" if request.config.getoption("benchmark_disable") else "paper"
    ds = generate(preset, seed=0)
    path = write_cube(ds, tmp_path_factory.mktemp("worker_memory") / f"{preset}.zarr")
    drugs = [str(c) for c in ds["condition"].values][1:-1]
    return {"path": path, "preset": preset, "drugs": drugs,
            "dense_mib": ds["expression"].size * 4 / MIB}


def _record(benchmark, cube: dict, task: str, r: dict, arrays_mib: float) -> None:
    benchmark.extra_info.update({
        "preset": cube["preset"], "task": task, "dense_cube_mib": round(cube["dense_mib"], 1),
        "opened_mib": round(r["opened_mib"], 1), "peak_mib": round(r["peak_mib"], 1),
        "task_mib": round(r["task_mib"], 1), "task_arrays_mib": round(arrays_mib, 1),
        "task_over_cube_ratio": round(r["task_mib"] / cube["dense_mib"], 3),
        "read_cpu_s": round(r["read_cpu_s"], 2),
        "load_average": r["load_average"], "load_average_after": load_average(),
        "headline": ["task_mib", "task_arrays_mib", "dense_cube_mib", "task_over_cube_ratio",
                     "load_average"]})


def test_worker_all_drugs_then_pooled(benchmark, cube) -> None:
    """A worker that reads every drug's task and then POOLED: its caches hold a few tasks, not the cube."""
    names = [*cube["drugs"], "POOLED"]
    r = benchmark.pedantic(probe, (cube["path"], names), rounds=1, iterations=1)
    biggest = max(r["arrays_mib"].values())
    _record(benchmark, cube, "every drug, then POOLED", r, biggest)
    assert r["task_mib"] <= 6 * biggest + SLACK_MIB


@pytest.mark.parametrize("which", ["largest drug", "POOLED"])
def test_one_task(benchmark, cube, which: str) -> None:
    """Peak RSS of one task's read in a fresh worker-like process: bounded by the task's arrays."""
    if which == "POOLED":
        name = "POOLED"
    else:  # the drug with the most pair and control data
        sizes = probe(cube["path"], cube["drugs"])["arrays_mib"]
        name = max(sizes, key=sizes.get)
    r = benchmark.pedantic(probe, (cube["path"], [name]), rounds=1, iterations=1)
    arrays = r["arrays_mib"][name]
    _record(benchmark, cube, name, r, arrays)
    assert r["task_mib"] <= 4 * arrays + SLACK_MIB
