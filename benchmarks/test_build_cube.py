"""Build speed: a generated L1000-shaped GCTX (100,000 samples x 978 genes; 5,000 with --benchmark-disable)
-> cube, and reading one drug's slice from the cube vs. from the source GCTX.

Layout of the generated file, like real L1000 plates: each 384-well plate holds one cell line, 16 DMSO
vehicle controls and 3 replicates x 3 doses of the 40 compounds of one compound group (5 groups, 200
compounds). The build selects the 10 drugs of one group, so it reads ~1/5 of the file by HDF5 selection.
Times are this process's CPU time (every thread; a read served from the page cache is CPU work), each with
the load average; reads of the cube and the GCTX alternate and keep their best. Figures go to extra_info;
nothing here asserts a time.
"""

from __future__ import annotations

import resource
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from benchmarks._data import load_average
from datasets.build import build
from datasets.cube import open_cube
from datasets.l1000 import load_profiles, open_l1000, select_genes, select_samples

FULL_SAMPLES = 100_000
SMALL_SAMPLES = 3_000
N_GENES = 978
N_CELLS = 30
N_GROUPS = 5
PER_GROUP = 40
DOSES = ("0.37", "3.33", "10")
DRUGS = [f"cpd-{k:03d}" for k in range(10)]  # group 0


def _layout(n_samples: int, rng: np.random.Generator) -> pd.DataFrame:
    rows, plate = [], 0
    while len(rows) < n_samples:
        cell = f"CELL{plate % N_CELLS:02d}"
        group = (plate // N_CELLS) % N_GROUPS
        name = f"BEN{plate:04d}_{cell}_24H_X1"
        wells = [("ctl_vehicle", "DMSO", "-666")] * 16
        for k in range(PER_GROUP):
            for d in DOSES:
                wells += [("trt_cp", f"cpd-{group * PER_GROUP + k:03d}", d)] * 3
        wells = wells[:384]
        order = rng.permutation(len(wells))
        for w, i in enumerate(order):
            t, iname, dose = wells[i]
            rows.append((f"{name}_B1:W{w:03d}", cell, t, iname, dose, name))
        plate += 1
    df = pd.DataFrame(rows[:n_samples], columns=["inst_id", "cell_id", "pert_type", "pert_iname", "pert_dose",
                                                 "rna_plate"])
    df["pert_dose_unit"] = np.where(df.pert_type == "trt_cp", "um", "-666")
    df["pert_time"] = "24"
    df["pert_time_unit"] = "h"
    return df


def _write_gctx(path: Path, meta: pd.DataFrame, genes: list[str], rng: np.random.Generator) -> None:
    n = len(meta)
    with h5py.File(path, "w") as f:
        dset = f.create_dataset("/0/DATA/0/matrix", shape=(n, N_GENES), dtype="f4", chunks=(256, N_GENES))
        for s in range(0, n, 10_000):
            e = min(n, s + 10_000)
            dset[s:e] = rng.normal(8.0, 2.0, size=(e - s, N_GENES)).astype(np.float32)
        f["/0/META/COL/id"] = meta.inst_id.to_numpy().astype("S")
        for c in meta.columns:
            if c != "inst_id":
                f[f"/0/META/COL/{c}"] = meta[c].to_numpy().astype("S")
        f["/0/META/ROW/id"] = np.array(genes, dtype="S")
        f["/0/META/ROW/pr_gene_symbol"] = np.array([f"G{g}" for g in genes], dtype="S")
        f["/0/META/ROW/pr_is_lmark"] = np.ones(N_GENES, dtype="S1")


@pytest.fixture(scope="session")
def bench_files(request, tmp_path_factory) -> dict:
    disabled = bool(request.config.getoption("benchmark_disable"))
    n = SMALL_SAMPLES if disabled else FULL_SAMPLES
    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("build_bench")
    genes = [str(10_000 + k) for k in range(N_GENES)]
    meta = _layout(n, rng)
    gctx = d / f"l1000_{n}.gctx"
    _write_gctx(gctx, meta, genes, rng)
    n_base = 50 if disabled else 300  # baseline-only cell lines
    cells = [f"CELL{k:02d}" for k in range(N_CELLS)] + [f"BASE{k:03d}" for k in range(n_base)]
    base = pd.DataFrame(rng.normal(5, 1, size=(N_GENES - 75, len(cells))).astype(np.float32), columns=cells)
    base.insert(0, "gene", genes[:N_GENES - 75])
    csv = d / "baseline.csv"
    base.to_csv(csv, index=False, float_format="%.5f")
    return {"gctx": gctx, "baseline": csv, "n": n, "dir": d, "meta": meta}


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def test_build_cube(benchmark, bench_files):
    f = bench_files
    out = f["dir"] / "cube.zarr"
    rss0 = _maxrss_mb()
    load = load_average()
    t0 = time.process_time()
    ds, summary = benchmark.pedantic(build, args=(f["gctx"], [f["baseline"]], out),
                                     kwargs={"drugs": DRUGS, "overwrite": True}, rounds=1, iterations=1)
    seconds = time.process_time() - t0
    rss1 = _maxrss_mb()
    tracemalloc.start()
    build(f["gctx"], [f["baseline"]], None, drugs=DRUGS)  # same build, not written: Python-heap peak
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    selected = summary.controls + sum(summary.replicates_per_drug.values())
    benchmark.extra_info.update({
        "samples_in_file": f["n"], "genes": N_GENES, "samples_selected": selected,
        "build_seconds": round(seconds, 3), "clock": "process CPU time",
        "load_average": [load, load_average()],
        "file_samples_per_s": round(f["n"] / seconds, 1),
        "selected_samples_per_s": round(selected / seconds, 1),
        "peak_tracemalloc_mb": round(peak / 2**20, 1),
        "maxrss_delta_mb": round(rss1 - rss0, 1),
        "cube_shape": dict(ds.sizes),
    })
    # the cube holds what the layout says
    m = f["meta"]
    c0 = open_cube(out)
    assert c0.condition.values.tolist() == ["control", *DRUGS, "baseline"]
    sel = m[(m.pert_iname == DRUGS[0]) & (m.pert_dose == "10")]
    assert summary.replicates_per_drug[DRUGS[0]] == len(sel)
    assert summary.genes_kept == N_GENES - 75


def test_read_one_drug_cube_vs_gctx(benchmark, bench_files):
    f = bench_files
    out = f["dir"] / "cube_read.zarr"
    build(f["gctx"], [f["baseline"]], out, drugs=DRUGS, overwrite=True)
    drug = DRUGS[3]

    def from_cube() -> np.ndarray:
        ds = open_cube(out)
        return ds["expression"].sel(condition=[drug, "control"]).values

    def from_gctx() -> dict:
        src = open_l1000(f["gctx"])
        sel = select_samples(src, [drug], time=24)
        return load_profiles(src, sel, select_genes(src)).profiles

    cube_arr = benchmark(from_cube)
    load = load_average()
    ts: dict[str, list[float]] = {"cube": [], "gctx": []}
    for _ in range(3):   # alternating, the best of each (CPU time)
        for name, fn in (("cube", from_cube), ("gctx", from_gctx)):
            t = time.process_time()
            fn()
            ts[name].append(time.process_time() - t)
    t_cube, t_gctx = min(ts["cube"]), min(ts["gctx"])
    benchmark.extra_info.update({"samples_in_file": f["n"], "cube_read_s": round(t_cube, 4),
                                 "gctx_read_s": round(t_gctx, 4),
                                 "gctx_over_cube": round(t_gctx / t_cube, 2), "clock": "process CPU time",
                                 "load_average": [load, load_average()]})
    # same numbers either way (gene subset: the cube keeps the genes shared with the baseline)
    prof = from_gctx()
    ds = open_cube(out)
    cells = ds.cell_line.values.tolist()
    c = next(c for c, dd in prof if dd == drug)
    x = cube_arr[cells.index(c), 0]
    got = x[np.isfinite(x[:, 0])]
    np.testing.assert_array_equal(got, prof[(c, drug)][:, : ds.sizes["gene"]])
