"""Shared helpers for the end-to-end tests of ``python -m harness.run``.

A tiny real cube (datasets.cube.make_cube + write_cube, zarr v3 on disk) with a known latent-linear drug
effect, a tiny grid (2 drugs x 2 repeats x 3 folds; PertVAE, VAE, PCA, baselines; a few epochs), and a
cached in-session reference run that other tests compare against.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
DRUGS = ("drugA", "drugB")
NUMERIC = ("rho_rec_pert", "rho_pred_pert", "rho_rec", "score",
           "test_loss", "epochs")


def make_tiny_cube(path: Path, seed: int = 0, n_cells: int = 12, n_genes: int = 24) -> Path:
    """Write a tiny cube: 12 paired cell lines, 2 drugs (drugA strong effect, drugB none), 8 baseline-only."""
    from datasets.cube import CONDITION_BASELINE, CONDITION_CONTROL, make_cube, write_cube

    rng = np.random.default_rng(seed)
    n_extra, n_rep, k = 8, 3, 3
    n_all = n_cells + n_extra
    a = rng.normal(size=(k, 16))
    b = rng.normal(size=(16, n_genes)) / 4

    def decode(u: np.ndarray) -> np.ndarray:
        return np.tanh(u @ a) @ b

    u = rng.normal(size=(n_all, k))
    conditions = [CONDITION_CONTROL, *DRUGS, CONDITION_BASELINE]
    expr = np.full((n_all, len(conditions), n_rep, n_genes), np.nan, dtype=np.float32)
    shift = {"drugA": np.array([1.5, -1.0, 0.5]), "drugB": np.zeros(k)}
    for c in range(n_cells):
        for r in range(2):
            expr[c, 0, r] = decode(u[c]) + 0.1 * rng.normal(size=n_genes)
        for j, d in enumerate(DRUGS, start=1):
            for r in range(n_rep):
                expr[c, j, r] = decode(u[c] + shift[d]) + 0.1 * rng.normal(size=n_genes)
    for c in range(n_all):
        expr[c, 3, 0] = 1.1 * decode(u[c]) + 0.2 + 0.15 * rng.normal(size=n_genes)
    dose = np.full((n_all, len(conditions)), np.nan)
    dose[:n_cells, 1:3] = 10.0
    ds = make_cube(
        expr,
        cell_lines=[f"CL{i:02d}" for i in range(n_all)],
        conditions=conditions,
        genes=[str(1000 + g) for g in range(n_genes)],
        gene_symbols=[f"G{g}" for g in range(n_genes)],
        dose_um=dose,
        source=["synthetic", "synthetic", "synthetic", "synthetic"],
        attrs={"generator": "tests/e2e tiny cube", "seed": seed},
    )
    return write_cube(ds, path)


def tiny_args(cube: Path, out: Path, *extra: str, workers: int = 2, cluster: str = "local") -> list[str]:
    """CLI flags of the tiny grid."""
    return [
        "--data", str(cube), "--out", str(out), "--cluster", cluster, "--workers", str(workers),
        "--models", "pertvae", "vae", "pca", "baselines",
        "--latents-pertvae", "3", "--latents-vae", "2", "3", "--latents-pca", "2", "3",
        "--latents-baselines", "3",
        "--n-repeats", "2", "--n-folds", "3",
        "--hidden", "16", "8", "--context", "8", "--iaf-steps", "1", "--iaf-hidden", "8",
        "--max-epochs", "6", "--patience", "3", "--mc-samples", "2", "--batch-pairs", "16",
        "--batch-singletons", "16", "--no-progress", "--dashboard-address", ":0",
        *extra,
    ]


def load(out: Path) -> xr.Dataset:
    """The result store of a run, loaded into memory, with the paper's metrics (which the store keeps in
    ``score``) as variables [model, drug, latent, split] of their own too (harness.results.paper_metric)."""
    from harness.results import paper_metric
    from harness.store import PAPER_VARS

    ds = xr.open_zarr(Path(out) / "results.zarr").load()
    for key in PAPER_VARS:
        ds[key] = (("model", "drug", "latent", "split"),
                   np.stack([paper_metric(ds, str(m), key).values for m in ds["model"].values]))
    return ds


def planned(ds: xr.Dataset) -> xr.DataArray:
    """Bool mask [model, drug, latent, split] of fits in the grid."""
    return ds.planned.broadcast_like(ds.status)


def assert_same_numbers(a: xr.Dataset, b: xr.Dataset) -> None:
    """Every numeric result (not the timing) is identical, and so is every status."""
    assert (a.status.values == b.status.values).all()
    for v in NUMERIC:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)


def n_status(out: Path, status: str = "done") -> int:
    """Fits with ``status`` in the store (0 if the store does not exist yet)."""
    import zarr

    p = Path(out) / "results.zarr"
    if not (p / "zarr.json").exists():
        return 0
    try:
        return int((np.asarray(zarr.open_array(str(p / "status"), mode="r")[:]) == status).sum())
    except Exception:
        return 0


# ``python -m harness.run`` with Ctrl-C acted on as in a terminal: a test runner started in the background by
# a shell without job control (nohup ... &) has SIGINT ignored, and its children inherit that
AS_IN_A_TERMINAL = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                    "sys.argv = ['harness.run', *sys.argv[1:]]; runpy.run_module('harness.run', "
                    "run_name='__main__')")


def start_driver(args: list[str], log: Path, sigint: bool = False) -> subprocess.Popen:
    """``python -m harness.run ARGS`` in its own process group (so the test can kill driver + workers);
    ``sigint``: with SIGINT's default handler even where the test runner has it ignored."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = ["-c", AS_IN_A_TERMINAL] if sigint else ["-m", "harness.run"]
    return subprocess.Popen([PYTHON, *cmd, *args], cwd=ROOT, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(pred, timeout: float, proc: subprocess.Popen | None = None, poll: float = 0.1) -> bool:
    """Poll ``pred()`` until true; False on timeout or when ``proc`` exits first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        if proc is not None and proc.poll() is not None:
            return bool(pred())
        time.sleep(poll)
    return False


_REFERENCE: dict[str, xr.Dataset] = {}


def reference(tmp_root: Path, cube: Path) -> xr.Dataset:
    """The tiny grid run once per session on a 1-worker LocalCluster (the numbers others must match)."""
    key = str(cube)
    if key not in _REFERENCE:
        from harness.run import main

        out = tmp_root / "reference"
        assert main(tiny_args(cube, out, workers=1)) == 0
        _REFERENCE[key] = load(out)
    return _REFERENCE[key]


def tiny_cube(tmp_path_factory) -> Path:
    """The session's tiny cube (created once under pytest's base temp dir)."""
    path = Path(tmp_path_factory.getbasetemp()) / "tiny_cube.zarr"
    if not path.exists():
        make_tiny_cube(path)
    return path
