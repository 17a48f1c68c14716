"""Synthetic cubes with known ground truth, shaped like the paper's L1000 + baseline data.

Generative model: each cell line has a low-dimensional state ``z ~ N(0, I)``; a profile is
``x = decode(z + e_z) + e_x`` with a fixed random 2-layer tanh MLP ``decode`` (genes on the output),
per-replicate latent jitter ``e_z`` and gene noise ``e_x``. A drug acts in the latent space as the paper's
latent linear map (Eq. 5): ``z2 = z1 + s (A z1 + b)`` with strength ``s`` (0 for null drugs).
Baseline singletons come from a second "platform": ``x = scale * decode(z) + shift + noisier e_x``.
Cell lines treated with drugs are drawn from a pool that mostly overlaps the baseline cell lines.

``python -m datasets.synthetic --out cube.zarr [--preset paper|demo] [--seed N] [--overwrite]``
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np
import xarray as xr

from datasets.cube import (
    CONDITION_BASELINE,
    CONDITION_CONTROL,
    PACKAGE_VERSION,
    CubeError,
    make_cube,
    write_cube,
)

# The paper's Table 1: drug -> number of cell lines with pairs.
TABLE1_DRUGS: dict[str, int] = {
    "olaparib": 56, "selumetinib": 56, "vorinostat": 56, "bortezomib": 51, "navitoclax": 51, "SN-38": 51,
    "temsirolimus": 51, "tipifarnib": 51, "GDC-0941": 19, "gefitinib": 19, "NU-7441": 19, "saracatinib": 19,
    "vinorelbine": 14, "docetaxel": 13, "paclitaxel": 13, "afatinib": 12, "etoposide": 12, "doxorubicin": 8,
    "linsitinib": 6,
}
# Significant in the paper's Table 1 (p < 0.05): effective in the ground truth, all others null.
EFFECTIVE_DRUGS = ("selumetinib", "vorinostat", "bortezomib", "SN-38", "temsirolimus", "doxorubicin")

PRESETS: dict[str, dict] = {
    "paper": dict(n_genes=978, latent_dim=10, hidden=64, max_replicates=15, max_cells=None, min_cells=6,
                  pool_size=80, n_baseline=1300, baseline_overlap=0.75, strength=1.0, latent_jitter=0.15,
                  noise_sd=0.25, baseline_scale=1.3, baseline_shift=0.5, baseline_noise_sd=0.5,
                  dose_um=10.0),
    "demo": dict(n_genes=200, latent_dim=10, hidden=64, max_replicates=4, max_cells=20, min_cells=6,
                 pool_size=30, n_baseline=200, baseline_overlap=0.75, strength=1.5, latent_jitter=0.15,
                 noise_sd=0.25, baseline_scale=1.3, baseline_shift=0.5, baseline_noise_sd=0.5,
                 dose_um=10.0),
}
_DENSE_LIMIT = 64_000_000  # expression elements above which the cube is built lazily (dask) per cell block
_BLOCK = 64


def _params(preset: str, overrides: dict) -> dict:
    if preset not in PRESETS:
        raise CubeError(f"preset {preset!r}: unknown, expected one of {sorted(PRESETS)}")
    p = dict(PRESETS[preset])
    unknown = sorted(set(overrides) - set(p))
    if unknown:
        raise CubeError(f"generate(): unknown override(s) {unknown}; known: {sorted(p)}")
    p.update(overrides)
    for k in ("n_genes", "latent_dim", "hidden", "max_replicates", "pool_size", "min_cells"):
        if int(p[k]) < 1:
            raise CubeError(f"generate(): {k} must be >= 1, got {p[k]}")
    if p["n_baseline"] < 0:
        raise CubeError(f"generate(): n_baseline must be >= 0, got {p['n_baseline']}")
    return p


def _counts(p: dict) -> dict[str, int]:
    """Per-drug cell line counts: Table 1, capped by max_cells (floor min_cells) and by the pool size."""
    out = {}
    for d, n in TABLE1_DRUGS.items():
        if p["max_cells"] is not None:
            n = max(min(n, int(p["max_cells"])), int(p["min_cells"]))
        out[d] = min(n, int(p["pool_size"]))
    return out


def generate(preset: str = "paper", seed: int = 0, **overrides) -> xr.Dataset:
    """A synthetic cube (see the module docstring) with ``attrs["ground_truth"]`` as a JSON string.

    Overrides (keyword): any key of ``PRESETS[preset]``, e.g. ``n_genes``, ``n_baseline``, ``max_replicates``,
    ``max_cells``, ``pool_size``, ``strength``, ``noise_sd``.
    """
    p = _params(preset, overrides)
    rng = np.random.default_rng([int(seed), 0])
    d, h, g = int(p["latent_dim"]), int(p["hidden"]), int(p["n_genes"])
    w1 = rng.normal(size=(d, h)) / np.sqrt(d) * 1.5
    c1 = rng.normal(size=h) * 0.3
    w2 = rng.normal(size=(h, g)) / np.sqrt(h) * 2.0
    c2 = rng.normal(size=g) * 2.0 + 6.0  # L1000-like log-expression levels

    drug_names = list(TABLE1_DRUGS)
    maps = {}
    truth = {}
    for name in drug_names:
        s = float(p["strength"]) if name in EFFECTIVE_DRUGS else 0.0
        a = rng.normal(size=(d, d)) / np.sqrt(d)
        b = rng.normal(size=d)
        maps[name] = (s * a, s * b)
        truth[name] = {"strength": s, "effective": s > 0}

    pool = int(p["pool_size"])
    counts = _counts(p)
    treated = {name: np.sort(rng.choice(pool, size=counts[name], replace=False)) for name in drug_names}
    n_overlap = int(round(p["baseline_overlap"] * pool))
    base_pool = np.sort(rng.choice(pool, size=min(n_overlap, int(p["n_baseline"])), replace=False))
    n_extra = max(0, int(p["n_baseline"]) - len(base_pool))
    n_cells = pool + n_extra
    baseline_cells = np.concatenate([base_pool, np.arange(pool, n_cells)]).astype(int)
    conditions = [CONDITION_CONTROL, *drug_names, CONDITION_BASELINE]
    n_cond, r_max = len(conditions), int(p["max_replicates"])
    # replicate counts [cell, condition] (0 = not measured)
    nrep = np.zeros((n_cells, n_cond), dtype=np.int64)
    for j, name in enumerate(drug_names, start=1):
        nrep[treated[name], j] = rng.integers(1, r_max + 1, size=len(treated[name]))
    has_drug = nrep[:, 1:-1].any(axis=1)
    nrep[has_drug, 0] = rng.integers(1, r_max + 1, size=int(has_drug.sum()))
    nrep[baseline_cells, -1] = 1
    dose = np.where(nrep > 0, float(p["dose_um"]), np.nan)
    dose[:, 0] = np.nan
    dose[:, -1] = np.nan
    z = rng.normal(size=(n_cells, d))

    def decode(u: np.ndarray) -> np.ndarray:
        return np.tanh(u @ w1 + c1) @ w2 + c2

    def block(i0: int, i1: int) -> np.ndarray:
        out = np.full((i1 - i0, n_cond, r_max, g), np.nan, dtype=np.float32)
        for i in range(i0, i1):
            crng = np.random.default_rng([int(seed), 1, i])
            for j in range(n_cond):
                k = int(nrep[i, j])
                if k == 0:
                    continue
                if j == n_cond - 1:
                    x = p["baseline_scale"] * decode(z[i][None]) + p["baseline_shift"]
                    x = x + p["baseline_noise_sd"] * crng.normal(size=(k, g))
                else:
                    u = z[i] + p["latent_jitter"] * crng.normal(size=(k, d))
                    if 1 <= j <= len(drug_names):
                        a, b = maps[drug_names[j - 1]]
                        u = u + u @ a.T + b  # z2 = z1 + A z1 + b (latent linear map, Eq. 5)
                    x = decode(u) + p["noise_sd"] * crng.normal(size=(k, g))
                out[i - i0, j, :k] = x
        return out

    total = n_cells * n_cond * r_max * g
    bounds = [(i, min(i + _BLOCK, n_cells)) for i in range(0, n_cells, _BLOCK)]
    if total <= _DENSE_LIMIT:
        expr = np.concatenate([block(a, b) for a, b in bounds], axis=0)
    else:
        import dask
        import dask.array as da

        expr = da.concatenate([da.from_delayed(dask.delayed(block)(a, b), shape=(b - a, n_cond, r_max, g),
                                               dtype=np.float32) for a, b in bounds], axis=0)
    provenance = {"generator": "datasets.synthetic.generate", "preset": preset, "seed": int(seed),
                  "options": {k: v for k, v in p.items()}, "package_version": PACKAGE_VERSION, "inputs": []}
    attrs = {"provenance": json.dumps(provenance, sort_keys=True), "ground_truth": json.dumps(truth),
             "units": "dose_um: micromolar", "normalization": "synthetic log-expression",
             "pairing": "cyclic: drug replicate r pairs with control replicate r mod n_ctrl (datasets.pairs)"}
    src = ["synthetic-L1000"] * (n_cond - 1) + ["synthetic-baseline"]
    return make_cube(expr, [f"CL{i + 1:04d}" for i in range(n_cells)], conditions,
                     [str(10000 + k) for k in range(g)], [f"SYN{k + 1}" for k in range(g)], dose, src, attrs)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: generate a synthetic cube and write it."""
    ap = argparse.ArgumentParser(prog="python -m datasets.synthetic", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output zarr v3 store")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="replace an existing store")
    args = ap.parse_args(argv)
    try:
        ds = generate(args.preset, args.seed)
        path = write_cube(ds, args.out, overwrite=args.overwrite)
    except CubeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    truth = json.loads(ds.attrs["ground_truth"])
    eff = [k for k, v in truth.items() if v["effective"]]
    print(f"wrote {path}: {ds.sizes['cell_line']} cell lines, {ds.sizes['condition'] - 2} drugs, "
          f"{ds.sizes['replicate']} max replicates, {ds.sizes['gene']} genes (preset {args.preset}, "
          f"seed {args.seed}); effective drugs: {', '.join(eff)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
