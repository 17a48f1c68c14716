"""Reading one drug's slice (its chunks, the control's and the baseline's) from a synthetic cube.

The cube is generated once per session with the ``paper`` preset (1,320 cell lines x 21 conditions x
15 replicates x 978 genes, mostly unwritten all-NaN chunks); with --benchmark-disable the ``demo`` preset is
used so the run stays quick. Times are this process's CPU time (pytest-benchmark's timer,
benchmarks/conftest.py), with the load average. Figures go to extra_info; nothing here asserts a time.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks._data import load_average
from datasets.cube import open_cube, write_cube
from datasets.pairs import drug_data
from datasets.synthetic import TABLE1_DRUGS, generate

DRUG = "olaparib"  # one of the paper's largest drugs (56 cell lines)


def _dir_bytes(p: Path) -> tuple[int, int]:
    files = [f for f in p.rglob("*") if f.is_file()]
    return len(files), sum(f.stat().st_size for f in files)


@pytest.fixture(scope="session")
def bench_cube(request, tmp_path_factory) -> dict:
    preset = "demo" if request.config.getoption("benchmark_disable") else "paper"
    path = tmp_path_factory.mktemp("cube_read") / f"{preset}.zarr"
    t0 = time.process_time()
    ds = generate(preset, seed=0)
    write_cube(ds, path)
    return {"path": path, "preset": preset, "generate_write_s": time.process_time() - t0,
            "sizes": dict(ds.sizes), "conditions": [str(c) for c in ds["condition"].values]}


def test_read_one_drug(benchmark, bench_cube) -> None:
    ds = open_cube(bench_cube["path"])
    dd = benchmark(drug_data, ds, DRUG)
    assert len(set(dd.pair_cell_line)) == (TABLE1_DRUGS[DRUG] if bench_cube["preset"] == "paper" else 20)
    assert np.isfinite(dd.x1).all() and np.isfinite(dd.x2).all() and np.isfinite(dd.xs).all()
    idx = [str(c) for c in ds["condition"].values].index(DRUG)
    n_files, n_bytes = _dir_bytes(bench_cube["path"])
    drug_files = [f for f in (bench_cube["path"] / "expression" / "c").glob(f"*/{idx}/*/*") if f.is_file()]
    benchmark.extra_info.update({
        "preset": bench_cube["preset"], "drug": DRUG,
        "cube_shape": {k: int(v) for k, v in ds.sizes.items()},
        "n_pairs": int(len(dd.x2)), "n_singletons": int(len(dd.xs)),
        "store_files": n_files, "store_bytes": n_bytes,
        "drug_chunk_files": len(drug_files), "drug_chunk_bytes": sum(f.stat().st_size for f in drug_files),
        "generate_write_s": round(bench_cube["generate_write_s"], 3), "load_average": load_average(),
    })


def test_open_cube(benchmark, bench_cube) -> None:
    """open_cube validates the whole cube (schema and a pass over every value for inf)."""
    ds = benchmark(open_cube, bench_cube["path"])
    assert dict(ds.sizes) == bench_cube["sizes"]
    assert [str(c) for c in ds["condition"].values] == bench_cube["conditions"]
    benchmark.extra_info.update({"preset": bench_cube["preset"], "cells": int(ds.sizes["cell_line"]),
                                 "load_average": load_average()})
