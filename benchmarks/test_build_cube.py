"""Build I/O and speed on a generated GCTX with GEO's layout (tests/datasets/geo_gctx.py: 12,328 genes, 978
landmark rows scattered, chunks of 1000 samples x 262 genes, plates of 384 wells; uncompressed like GEO's
file, and gzip like cmapPy's writer), 20,000 samples, against the reader at main's commit ec49623 (the
"before"), variants alternating, in one run. With --benchmark-disable (a quick check that it all runs): 1,200
samples, a gzip file of 1,000 x 2,000 genes, one round, the ~1% build only.

- Bytes read / bytes needed for uniform 1% and 10% sample selections x the landmark genes: ``read`` is what
  HDF5 asked the OS for (``/proc/self/io`` rchar, page cache or not), ``disk`` what the OS then read from
  storage with the file evicted from the page cache first (read_bytes; pages and the kernel's readahead
  included; None where the kernel does not count it).
- Build CPU seconds per GB of GCTX (process CPU time, all threads) of the whole build (metadata, matrix,
  baseline, provenance hashes, cube write) and its bytes read / needed (the matrix phase, the whole build) at
  ~1% and ~10% selections: before (main's reader, every input
  hashed), after with fetch's MANIFEST.json beside the files (hashes reused), after without it (hashed).
  The cubes are the same, value for value (cube fingerprint); each phase's progress line is checked.
- Reading one drug from the cube vs from the GCTX.

Timings by CPU time, medians over alternating rounds, with the load average; nothing asserts a time.
"""

from __future__ import annotations

import io
import json
import os
import re
import statistics
import time
from pathlib import Path

import numpy as np
import pytest

from datasets.build import build
from datasets.cube import cube_fingerprint, open_cube
from datasets.l1000 import _read_gctx_selection, load_profiles, open_l1000, select_genes, select_samples
from datasets.provenance import sha256_file
from tests.datasets.geo_gctx import drug_names, main_reader, write_geo_gctx

FULL, SMALL = 20_000, 1_200
PHASES = ("reading metadata", "reading L1000 matrix", "reading baseline", "hashing inputs", "writing cube")


def _io() -> dict[str, int]:
    try:
        lines = Path("/proc/self/io").read_text().splitlines()
    except OSError:
        pytest.skip("needs /proc/self/io (Linux)")
    return {k: int(v) for k, v in (ln.split(":") for ln in lines)}


def _evict(*paths: Path) -> None:
    """Drop the files' (clean) pages from the page cache, so the next read comes from storage."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _measured(fn, *files: Path) -> dict:
    """CPU seconds, bytes asked of the OS (rchar) and read from storage (read_bytes) by ``fn()``."""
    _evict(*files)
    a, t = _io(), time.process_time()
    value = fn()
    cpu, b = time.process_time() - t, _io()
    disk = b.get("read_bytes", 0) - a.get("read_bytes", 0)
    return {"cpu": cpu, "read": b["rchar"] - a["rchar"], "disk": disk, "value": value}


@pytest.fixture(scope="module")
def geo(request, tmp_path_factory) -> dict:
    n = SMALL if request.config.getoption("benchmark_disable") else FULL
    d = tmp_path_factory.mktemp("geo_bench")
    for sub in ("geo", "gzip"):
        (d / sub).mkdir()
    files = {"geo": write_geo_gctx(d / "geo", n),  # each in its own directory: its own MANIFEST.json
             "gzip": write_geo_gctx(d / "gzip", n, compression="gzip") if n == FULL
             else write_geo_gctx(d / "gzip", 1_000, n_genes=2_000, n_landmarks=160, compression="gzip")}
    return {"n": n, "rounds": 1 if n == SMALL else 3, **files}


def _round(x: float, k: int = 1) -> float:
    return round(float(x), k)


def test_read_bytes_over_needed(benchmark, geo):
    """Bytes read / needed by the chunk-planned reader (new) and main's, at 1% and 10% of the samples."""
    info: dict = {"samples_in_file": geo["n"], "loadavg_start": os.getloadavg()}
    rng = np.random.default_rng(5)
    for layout in ("geo", "gzip"):
        f = geo[layout]
        n = len(f.meta)
        for frac in (0.01, 0.1):
            idx = np.sort(rng.choice(n, max(1, int(n * frac)), replace=False))
            need = len(idx) * len(f.landmarks) * 4
            runs: dict[str, list[dict]] = {"new": [], "main": []}
            for _ in range(geo["rounds"]):
                for name, fn in (("new", _read_gctx_selection), ("main", main_reader)):
                    args = (f.gctx, idx, f.landmarks, 10_000)
                    runs[name].append(_measured(lambda fn=fn, args=args: fn(*args), f.gctx))
            np.testing.assert_array_equal(runs["new"][0]["value"], runs["main"][0]["value"])
            tag = f"{layout}_{round(frac * 100)}pct"
            for name, rs in runs.items():
                info[f"{tag}_read_over_needed_{name}"] = _round(rs[0]["read"] / need)
                disk = rs[0]["disk"]
                info[f"{tag}_disk_over_needed_{name}"] = _round(disk / need) if disk else None
                info[f"{tag}_cpu_s_{name}"] = _round(statistics.median(r["cpu"] for r in rs), 3)
            if layout == "geo":
                assert info[f"{tag}_read_over_needed_new"] <= 20, info  # the goal at 1% (and 10%)
    f = geo["geo"]
    idx = np.sort(rng.choice(len(f.meta), len(f.meta) // 100, replace=False))
    benchmark.pedantic(_read_gctx_selection, args=(f.gctx, idx, f.landmarks, 10_000), rounds=3, iterations=1)
    info["loadavg_end"] = os.getloadavg()
    info["headline"] = [k for k in info if "_over_needed_" in k and "gzip" not in k] + [
        "gzip_1pct_read_over_needed_new"]
    benchmark.extra_info.update(info)


def _manifest(f, on: bool, shas: dict) -> None:
    """fetch's MANIFEST.json beside the files (as fetch writes it: size, sha256, mtime_ns), or none."""
    m = f.gctx.parent / "MANIFEST.json"
    if not on:
        m.unlink(missing_ok=True)
        return
    recs = {p.name: {"url": f"file://{p}", "size": p.stat().st_size, "sha256": sha, "date": "",
                     "checksum": "benchmark", "mtime_ns": p.stat().st_mtime_ns} for p, sha in shas.items()}
    m.write_text(json.dumps({"files": recs}))


def test_build_cube(benchmark, geo, tmp_path, monkeypatch):
    """Whole builds, before vs after, CPU seconds per GB of GCTX at ~1% and ~10% selections."""
    f = geo["geo"]
    gb = f.gctx.stat().st_size / 1e9
    inputs = [f.gctx, f.inst_info, f.gene_info, f.baseline]
    shas = {p: sha256_file(p) for p in inputs}
    variants = {"before": (main_reader, False), "after_manifest": (_read_gctx_selection, True),
                "after_hashing": (_read_gctx_selection, False)}
    info: dict = {"samples_in_file": geo["n"], "gctx_gb": _round(gb, 3), "loadavg_start": os.getloadavg()}
    matrix_read: list[int] = []  # rchar of each build's L1000 matrix phase

    def counted_load_profiles(*a, **kw):
        r0 = _io()["rchar"]
        out = load_profiles(*a, **kw)
        matrix_read.append(_io()["rchar"] - r0)
        return out

    monkeypatch.setattr("datasets.build.load_profiles", counted_load_profiles)
    for k, label in ((1, "1pct"), (21, "10pct"))[:1 if geo["n"] == SMALL else 2]:
        kw = dict(inst_info=f.inst_info, gene_info=f.gene_info, drugs=drug_names(0)[:k], overwrite=True)
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for _ in range(geo["rounds"]):
            for v, (reader, manifest) in variants.items():
                monkeypatch.setattr("datasets.l1000._read_gctx_selection", reader)
                _manifest(f, manifest, shas)
                args = (f.gctx, [f.baseline], tmp_path / f"{v}.zarr")
                runs[v].append(_measured(lambda args=args, kw=kw: build(*args, **kw), *inputs))
                runs[v][-1]["matrix"] = matrix_read[-1]
        _, summary = runs["after_manifest"][0]["value"]
        selected = summary.controls + sum(summary.replicates_per_drug.values())
        fps = {cube_fingerprint(open_cube(tmp_path / f"{v}.zarr")) for v in variants}
        assert len(fps) == 1  # the same cube whichever reader, hashed or from the manifest
        info[f"{label}_selected_fraction"] = round(selected / geo["n"], 4)
        need = selected * len(f.landmarks) * 4
        for v, rs in runs.items():
            info[f"{label}_{v}_matrix_read_over_needed"] = _round(rs[0]["matrix"] / need)
            info[f"{label}_{v}_build_read_over_needed"] = _round(rs[0]["read"] / need)
            info[f"{label}_{v}_cpu_s_per_gb"] = _round(statistics.median(r["cpu"] for r in rs) / gb, 2)
            info[f"{label}_{v}_read_gb"] = _round(rs[0]["read"] / 1e9, 3)
            info[f"{label}_{v}_disk_gb"] = _round(rs[0]["disk"] / 1e9, 3) if rs[0]["disk"] else None
        info[f"{label}_before_over_after_manifest_cpu"] = _round(
            info[f"{label}_before_cpu_s_per_gb"] / max(info[f"{label}_after_manifest_cpu_s_per_gb"], 1e-9))
    monkeypatch.setattr("datasets.l1000._read_gctx_selection", _read_gctx_selection)
    _manifest(f, True, shas)
    info["phases_s"] = _phases(f, tmp_path, monkeypatch)
    benchmark.pedantic(build, args=(f.gctx, [f.baseline], tmp_path / "b.zarr"), rounds=1, iterations=1,
                       kwargs=dict(inst_info=f.inst_info, gene_info=f.gene_info, drugs=drug_names(0)[:1],
                                   overwrite=True))
    info["loadavg_end"] = os.getloadavg()
    ends = ("_cpu_s_per_gb", "_over_after_manifest_cpu", "_matrix_read_over_needed")
    info["headline"] = [k for k in info if k.endswith(ends)]
    benchmark.extra_info.update(info)


def _phases(f, tmp_path: Path, monkeypatch) -> dict[str, float]:
    """Each phase's closing progress line (shown here whatever its length): its seconds."""
    monkeypatch.setattr("datasets.progress.DELAY_S", 0.0)
    monkeypatch.setattr("datasets.progress.MIN_BYTES", 0)
    _manifest(f, False, {})
    err = io.StringIO()
    build(f.gctx, [f.baseline], tmp_path / "p.zarr", inst_info=f.inst_info, gene_info=f.gene_info,
          drugs=drug_names(0)[:1], overwrite=True, progress=err)
    seconds = {m[1]: float(m[2]) for m in re.finditer(r"^(.+?): .* in (\d+\.\d) s", err.getvalue(), re.M)}
    assert set(seconds) == set(PHASES), err.getvalue()
    return seconds


def test_read_one_drug_cube_vs_gctx(benchmark, geo, tmp_path):
    f = geo["geo"]
    out = tmp_path / "cube_read.zarr"
    drugs = drug_names(0)[:5]
    build(f.gctx, [f.baseline], out, inst_info=f.inst_info, gene_info=f.gene_info, drugs=drugs)
    drug = drugs[3]

    def from_cube() -> np.ndarray:
        return open_cube(out)["expression"].sel(condition=[drug, "control"]).values

    def from_gctx() -> dict:
        src = open_l1000(f.gctx, inst_info=f.inst_info, gene_info=f.gene_info)
        return load_profiles(src, select_samples(src, [drug]), select_genes(src)).profiles

    def cpu_of(fn) -> float:
        t = time.process_time()
        fn()
        return time.process_time() - t

    cube_arr = benchmark(from_cube)
    t_cube, t_gctx = [], []
    for _ in range(3):  # alternating
        t_cube.append(cpu_of(from_cube))
        t_gctx.append(cpu_of(from_gctx))
    benchmark.extra_info.update({"samples_in_file": geo["n"], "cube_read_cpu_s": round(min(t_cube), 4),
                                 "gctx_read_cpu_s": round(min(t_gctx), 4),
                                 "gctx_over_cube": round(min(t_gctx) / min(t_cube), 2),
                                 "loadavg": os.getloadavg()})
    prof = from_gctx()  # the same numbers either way
    ds = open_cube(out)
    cells = ds.cell_line.values.tolist()
    c = next(c for c, dd in prof if dd == drug)
    x = cube_arr[cells.index(c), 0]
    np.testing.assert_array_equal(x[np.isfinite(x[:, 0])], prof[(c, drug)])
