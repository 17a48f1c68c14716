"""Synthetic cubes with known ground truth, shaped like the paper's L1000 + baseline data.

Generative model: each cell line has a low-dimensional state ``z ~ N(0, I)``; a profile is
``x = decode(z + e_z) + e_x`` with a fixed random 2-layer tanh MLP ``decode`` (genes on the output),
per-replicate latent jitter ``e_z`` and gene noise ``e_x``. A drug's effect has one of four kinds (random
``A``, ``b`` and gene direction ``u`` per drug, strength ``s``):

- ``latent_linear``: the paper's latent linear map (Eq. 5), ``z2 = z1 + s (A z1 + b)`` (PertVAE's own model
  class);
- ``latent_nonlinear``: ``z2 = z1 + s c (A z1) * tanh(A z1 + b)`` (elementwise; depends on the cell line's
  state, far from affine in z), ``c`` set so its latent displacement has the RMS (over the cell lines) of
  the linear map with the same ``A``, ``b``;
- ``gene_additive``: ``x2 = decode(z1) + delta``, the same gene-space change for every cell line (a
  mean-shift predictor's best case), ``delta`` along ``u`` with the RMS gene change the linear map would
  cause;
- ``none``: no effect.

Defaults: the paper's significant drugs (``EFFECTIVE_DRUGS``) act by ``latent_linear``, the others not at all.
The ``demo`` preset mixes kinds among the effective drugs (``DEMO_EFFECTS``: temsirolimus gene_additive,
bortezomib latent_nonlinear, the other four latent_linear) and its latent_dim (8) differs from the demo
PertVAE's latent size (10), so the contest is not rigged for PertVAE; the ``paper`` preset keeps the
defaults. ``attrs["ground_truth"]``: per drug ``strength``, ``effective``, ``kind`` and ``response``.
Drug response (``response[cell_line, condition]``, higher = more sensitive), for every cell line (paired and
baseline-only alike), of one of three kinds per drug (``RESPONSES``; unlisted drugs: ``none``), each from its
own random stream (``[seed, 3, drug index]``: the expression of a seed is the same with or without them):

- ``perturbation``: driven by the drug's effect in latent space, ``y = std(w' (z2 - z1)) + n e``, ``z2`` the
  drug's post-treatment state of the cell line (:func:`latent_shift`), ``w`` the direction in which the
  drug's latent change varies most over the cell lines (top eigenvector of its covariance): modelling the
  perturbation should help. Needs a latent effect kind (latent_linear or latent_nonlinear): asked for
  (``responses=``) on another it is an error; a preset's perturbation drug whose effect an ``effects=``
  override made non-latent gets ``baseline`` instead (the ground truth says so);
- ``baseline``: driven by the untreated state alone, ``y = std(v' z1) + n e``, ``v`` the direction the drug
  moves least (last eigenvector of the second moment of ``z2 - z1``; a random direction for a drug with no
  latent effect): modelling the perturbation should not help (``moved`` in the ground truth: the drug's RMS
  change along ``v`` relative to its RMS change per latent direction, 0 = not moved at all);
- ``none``: pure noise, ``y = sqrt(1 + n^2) e``.

``std`` standardizes over all cell lines, ``e ~ N(0, 1)``, ``n = response_noise``; every kind has variance
``1 + n^2``. A fraction ``response_missing`` of each drug's cell lines, drawn at random, has no response
(NaN).
``attrs["ground_truth"][drug]["response"]``: ``kind``, ``noise_sd``, ``direction`` (w or v), ``moved``.
Baseline singletons come from a second "platform": ``x = scale * decode(z) + shift + noisier e_x``.
Cell lines treated with drugs are drawn from a pool that mostly overlaps the baseline cell lines.
Plates (``plate`` variable, no batch effect in the values): cell line ``i`` has ``plates_per_cell`` plates;
control replicate ``r`` sits on its plate ``r mod plates_per_cell``, each drug replicate on a random one,
so some drug replicates have same-plate controls and others fall back (datasets.pairs); baseline: ``""``.

``python -m datasets.synthetic --out cube.zarr [--preset paper|demo] [--seed N] [--overwrite]``
"""

# ruff: noqa: E402
# (its imports follow the __main__ hand-off below, which must run before them)
from __future__ import annotations

import sys

if __name__ == "__main__":   # before the heavy imports: a Ctrl-C while they load is one line, exit 130
    from datasets.interrupt import run_module

    sys.exit(run_module("datasets.synthetic"))

import argparse
import json
from collections.abc import Sequence

import numpy as np
import xarray as xr

from datasets.argparsing import OneLineParser
from datasets.cube import (
    CONDITION_BASELINE,
    CONDITION_CONTROL,
    PACKAGE_VERSION,
    RESPONSE_DIRECTION,
    CubeError,
    make_cube,
    write_cube,
)
from datasets.interrupt import interrupt_code, quiet_unawaited_coroutines
from datasets.pairs import PAIRING_NOTE

# The paper's Table 1: drug -> number of cell lines with pairs.
TABLE1_DRUGS: dict[str, int] = {
    "olaparib": 56, "selumetinib": 56, "vorinostat": 56, "bortezomib": 51, "navitoclax": 51, "SN-38": 51,
    "temsirolimus": 51, "tipifarnib": 51, "GDC-0941": 19, "gefitinib": 19, "NU-7441": 19, "saracatinib": 19,
    "vinorelbine": 14, "docetaxel": 13, "paclitaxel": 13, "afatinib": 12, "etoposide": 12, "doxorubicin": 8,
    "linsitinib": 6,
}
# Significant in the paper's Table 1 (p < 0.05): effective in the ground truth, all others null.
EFFECTIVE_DRUGS = ("selumetinib", "vorinostat", "bortezomib", "SN-38", "temsirolimus", "doxorubicin")
KINDS = ("latent_linear", "latent_nonlinear", "gene_additive", "none")
# Effect kinds differing from the default (latent_linear for EFFECTIVE_DRUGS, none for the others).
DEMO_EFFECTS = {"temsirolimus": "gene_additive", "bortezomib": "latent_nonlinear"}
RESPONSE_KINDS = ("perturbation", "baseline", "none")
# Response kinds of both presets (unlisted: none): perturbation on four effective drugs (bortezomib is
# latent_nonlinear in the demo), baseline on two effective drugs (doxorubicin, latent_linear: a drug that
# moves the cells can still have a response its perturbation does not explain; temsirolimus, gene_additive in
# the demo) and three null ones; none on the other ten.
RESPONSES = {"selumetinib": "perturbation", "vorinostat": "perturbation", "bortezomib": "perturbation",
             "SN-38": "perturbation", "doxorubicin": "baseline", "temsirolimus": "baseline",
             "olaparib": "baseline", "navitoclax": "baseline", "GDC-0941": "baseline"}

PRESETS: dict[str, dict] = {
    "paper": dict(n_genes=978, latent_dim=10, hidden=64, max_replicates=15, max_cells=None, min_cells=6,
                  pool_size=80, n_baseline=1300, baseline_overlap=0.75, strength=1.0, latent_jitter=0.15,
                  noise_sd=0.25, baseline_scale=1.3, baseline_shift=0.5, baseline_noise_sd=0.5,
                  dose_um=10.0, effects={}, plates_per_cell=3, responses=RESPONSES, response_noise=0.5,
                  response_missing=0.1),
    "demo": dict(n_genes=200, latent_dim=8, hidden=64, max_replicates=4, max_cells=20, min_cells=6,
                 pool_size=30, n_baseline=200, baseline_overlap=0.75, strength=1.5, latent_jitter=0.15,
                 noise_sd=0.25, baseline_scale=1.3, baseline_shift=0.5, baseline_noise_sd=0.5,
                 dose_um=10.0, effects=DEMO_EFFECTS, plates_per_cell=3, responses=RESPONSES,
                 response_noise=0.5, response_missing=0.1),
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
    for k in ("n_genes", "latent_dim", "hidden", "max_replicates", "pool_size", "min_cells",
              "plates_per_cell"):
        if int(p[k]) < 1:
            raise CubeError(f"generate(): {k} must be >= 1, got {p[k]}")
    if int(p["n_genes"]) < 2:  # datasets.cube refuses it: the benchmark's scores are correlations over genes
        raise CubeError(f"generate(): n_genes must be >= 2, got {p['n_genes']}")
    if p["n_baseline"] < 0:
        raise CubeError(f"generate(): n_baseline must be >= 0, got {p['n_baseline']}")
    for d, k in dict(p["effects"]).items():
        if d not in TABLE1_DRUGS or k not in KINDS:
            raise CubeError(f"generate(): effects[{d!r}] = {k!r}: expected a drug of TABLE1_DRUGS and a kind "
                            f"in {KINDS}")
    for d, k in dict(p["responses"] or {}).items():
        if d not in TABLE1_DRUGS or k not in RESPONSE_KINDS:
            raise CubeError(f"generate(): responses[{d!r}] = {k!r}: expected a drug of TABLE1_DRUGS and a "
                            f"kind in {RESPONSE_KINDS}")
    _check_scales(p)
    if not (p["response_noise"] >= 0 and 0 <= p["response_missing"] < 1):
        raise CubeError(f"generate(): response_noise must be >= 0 and response_missing in [0, 1), got "
                        f"{p['response_noise']} and {p['response_missing']}")
    return p


def _check_scales(p: dict) -> None:
    """Noise SDs and the baseline overlap are refused outside their ranges here, where numpy would stop on an
    overlap outside [0, 1] with its own message naming no option ('Cannot take a larger sample than
    population') and would take a negative SD as its absolute value while the provenance kept the sign."""
    for k in ("latent_jitter", "noise_sd", "baseline_noise_sd"):
        if not (np.isfinite(p[k]) and p[k] >= 0):
            raise CubeError(f"generate(): {k} must be a finite SD >= 0, got {p[k]}")
    if not 0 <= p["baseline_overlap"] <= 1:
        raise CubeError(f"generate(): baseline_overlap must be in [0, 1] (the fraction of treated-pool cell "
                        f"lines with a baseline profile), got {p['baseline_overlap']}")


def _check_seed(seed: int) -> int:
    """The seed as an int in [0, 2**63), as ``--seed`` takes it; numpy would refuse a negative one with
    'expected non-negative integer', naming no argument."""
    if not 0 <= int(seed) < 2**63:
        raise CubeError(f"generate(): seed must be in [0, 2**63), got {seed}")
    return int(seed)


def latent_shift(kind: str, z: np.ndarray, a: np.ndarray, b: np.ndarray, strength: float,
                 scale: float = 1.0) -> np.ndarray:
    """Post-treatment latent states of states ``z`` [n, d] (module docstring; unchanged for gene_additive and
    none)."""
    if kind == "latent_linear":
        return z + strength * (z @ a.T + b)
    if kind == "latent_nonlinear":
        v = z @ a.T
        return z + strength * scale * v * np.tanh(v + b)
    return z


def _unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to length 1, signed so that its largest component is positive (eigenvectors' sign is
    arbitrary)."""
    v = v / np.linalg.norm(v)
    return v if v[np.argmax(np.abs(v))] > 0 else -v


def synthetic_response(kind: str, z: np.ndarray, dz: np.ndarray, rng: np.random.Generator, noise: float,
                       missing: float) -> tuple[np.ndarray, dict]:
    """One drug's responses [n_cells] (NaN: not measured) of ``kind`` and its ground truth (module
    docstring), from the cell lines' states ``z`` [n, d] and the drug's latent changes ``dz = z2 - z1``."""
    n, d = z.shape
    truth: dict = {"kind": kind, "noise_sd": float(noise), "direction": None, "moved": None}
    if kind == "perturbation":
        w = _unit(np.linalg.eigh(np.cov(dz, rowvar=False))[1][:, -1])
        signal = dz @ w
        truth["direction"] = w
    elif kind == "baseline":
        second = dz.T @ dz / n
        if np.trace(second) > 0:
            evals, evecs = np.linalg.eigh(second)
            v = _unit(evecs[:, 0])
            truth["moved"] = float(np.sqrt(max(evals[0], 0.0) / (np.trace(second) / d)))
        else:  # the drug does not move the latent state: any direction is one it does not move
            v = _unit(rng.normal(size=d))
            truth["moved"] = 0.0
        signal = z @ v
        truth["direction"] = v
    if kind == "none":
        y = np.sqrt(1 + noise ** 2) * rng.normal(size=n)
    else:
        sd = float(signal.std())
        if not sd > 1e-12:
            raise CubeError(f"generate(): a {kind} response needs a signal that varies over the cell lines")
        y = (signal - signal.mean()) / sd + noise * rng.normal(size=n)
    y[rng.random(n) < missing] = np.nan
    if truth["direction"] is not None:
        truth["direction"] = [round(float(x), 6) for x in truth["direction"]]
        truth["moved"] = None if truth["moved"] is None else round(truth["moved"], 6)
    return y, truth


def _responses(p: dict, seed: int, names: list[str], z: np.ndarray, effects: dict, truth: dict,
               n_cond: int, explicit: bool) -> np.ndarray:
    """[cell_line, condition] responses of every drug (condition ``j + 1`` is drug ``j``), each from its own
    stream ``[seed, 3, j]``; their ground truth added to ``truth``. ``explicit``: the kinds were asked for
    (a perturbation response without a latent effect is then an error, else baseline)."""
    out = np.full((len(z), n_cond), np.nan)
    for j, name in enumerate(names):
        kind = dict(p["responses"]).get(name, "none")
        effect, s, a, b, scale, _ = effects[name]
        if kind == "perturbation" and effect not in ("latent_linear", "latent_nonlinear"):
            if explicit:
                raise CubeError(f"generate(): responses[{name!r}] = 'perturbation' needs a latent effect "
                                f"(latent_linear or latent_nonlinear); its effect is {effect}")
            kind = "baseline"
        dz = latent_shift(effect, z, a, b, s, scale) - z
        rng = np.random.default_rng([int(seed), 3, j])
        out[:, j + 1], truth[name]["response"] = synthetic_response(
            kind, z, dz, rng, float(p["response_noise"]), float(p["response_missing"]))
    return out


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
    ``max_cells``, ``pool_size``, ``strength``, ``noise_sd``, ``plates_per_cell``, ``effects`` (drug -> kind
    for the drugs whose kind differs from the default; replaces the preset's mapping), ``responses`` (drug ->
    response kind, unlisted drugs ``none``; ``None``: no response variable), ``response_noise``,
    ``response_missing``.
    """
    p = _params(preset, overrides)
    seed = _check_seed(seed)
    rng = np.random.default_rng([seed, 0])
    d, h, g = int(p["latent_dim"]), int(p["hidden"]), int(p["n_genes"])
    w1 = rng.normal(size=(d, h)) / np.sqrt(d) * 1.5
    c1 = rng.normal(size=h) * 0.3
    w2 = rng.normal(size=(h, g)) / np.sqrt(h) * 2.0
    c2 = rng.normal(size=g) * 2.0 + 6.0  # L1000-like log-expression levels

    drug_names = list(TABLE1_DRUGS)
    pool = int(p["pool_size"])
    n_base = min(int(round(p["baseline_overlap"] * pool)), int(p["n_baseline"]))  # pool cells with a baseline
    n_cells = pool + int(p["n_baseline"]) - n_base
    z = rng.normal(size=(n_cells, d))

    def decode(u: np.ndarray) -> np.ndarray:
        return np.tanh(u @ w1 + c1) @ w2 + c2

    def rms(v: np.ndarray) -> float:
        return float(np.sqrt(np.mean(v ** 2)))

    effects = {}  # drug -> (kind, strength, a, b, scale, gene-space delta)
    truth = {}
    for name in drug_names:
        kind = dict(p["effects"]).get(name, "latent_linear" if name in EFFECTIVE_DRUGS else "none")
        s = 0.0 if kind == "none" else float(p["strength"])
        kind = kind if s > 0 else "none"
        a = rng.normal(size=(d, d)) / np.sqrt(d)
        b = rng.normal(size=d)
        u = rng.normal(size=g)
        zp, scale, delta = z[:pool], 1.0, np.zeros(g)
        linear = latent_shift("latent_linear", zp, a, b, s) - zp
        if kind == "latent_nonlinear":
            scale = rms(linear) / max(rms(latent_shift(kind, zp, a, b, s) - zp), 1e-12)
        elif kind == "gene_additive":
            delta = u * rms(decode(zp + linear) - decode(zp)) / rms(u)
        effects[name] = (kind, s, a, b, scale, delta)
        truth[name] = {"strength": s, "effective": s > 0, "kind": kind}

    counts = _counts(p)
    treated = {name: np.sort(rng.choice(pool, size=counts[name], replace=False)) for name in drug_names}
    base_pool = np.sort(rng.choice(pool, size=n_base, replace=False))
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
    n_plates = int(p["plates_per_cell"])
    plate_of = np.random.default_rng([int(seed), 2]).integers(n_plates, size=(n_cells, n_cond, r_max))
    plate_of[:, 0] = np.arange(r_max) % n_plates
    names = np.array([[f"SYN{i + 1:04d}_X{k + 1}" for k in range(n_plates)] for i in range(n_cells)])
    measured = np.arange(r_max) < nrep[..., None]
    plate = np.where(measured, names[np.arange(n_cells)[:, None, None], plate_of], "")
    plate[:, -1] = ""

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
                    delta = 0.0
                    if 1 <= j <= len(drug_names):
                        kind, s, a, b, scale, delta = effects[drug_names[j - 1]]
                        u = latent_shift(kind, u, a, b, s, scale)
                    x = decode(u) + delta + p["noise_sd"] * crng.normal(size=(k, g))
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
    response, response_attrs = None, None
    if p["responses"] is not None:
        response = _responses(p, seed, drug_names, z, effects, truth, n_cond, "responses" in overrides)
        response_attrs = {"measure": "synthetic sensitivity", "direction": RESPONSE_DIRECTION,
                          "units": f"synthetic units (signal standardized to sd 1, noise sd "
                                   f"{float(p['response_noise']):g})",
                          "source": f"datasets.synthetic.generate (preset {preset}, seed {int(seed)})"}
    attrs = {"provenance": json.dumps(provenance, sort_keys=True), "ground_truth": json.dumps(truth),
             "units": "dose_um: micromolar", "normalization": "synthetic log-expression",
             "pairing": PAIRING_NOTE}
    src = ["synthetic-L1000"] * (n_cond - 1) + ["synthetic-baseline"]
    return make_cube(expr, [f"CL{i + 1:04d}" for i in range(n_cells)], conditions,
                     [str(10000 + k) for k in range(g)], [f"SYN{k + 1}" for k in range(g)], dose, src, attrs,
                     plate=plate, response=response, response_attrs=response_attrs)


def _seed(value: str) -> int:
    """argparse ``type`` of ``--seed``: an integer in [0, 2**63), as ``run --data-seed`` takes."""
    try:
        seed = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {value!r}") from None
    if not 0 <= seed < 2**63:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**63), got {seed}")
    return seed


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: generate a synthetic cube and write it."""
    ap = OneLineParser(prog="pertvae-bench synth", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output zarr v3 store")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                    help="the cube's shape: paper (978 genes, the 19 drugs with Table 1's cell-line counts, "
                         "up to 15 replicates) or demo (200 genes, up to 20 cell lines per drug, mixed "
                         "effect kinds) [default: paper]")
    ap.add_argument("--seed", type=_seed, default=0,
                    help="seed of the generator: the same seed gives the same cube [default: 0]")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing store")
    args = ap.parse_args(argv)
    try:
        ds = generate(args.preset, args.seed)
        path = write_cube(ds, args.out, overwrite=args.overwrite)
    except CubeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:   # write_cube removed its temporary store
        quiet_unawaited_coroutines()
        print(f"interrupted: no cube written at {args.out} (an existing one is unchanged)", file=sys.stderr)
        return interrupt_code(e)
    truth = json.loads(ds.attrs["ground_truth"])
    eff = [f"{k} ({v['kind']})" for k, v in truth.items() if v["effective"]]
    kinds = [v["response"]["kind"] for v in truth.values() if "response" in v]
    print(f"wrote {path}: {ds.sizes['cell_line']} cell lines, {ds.sizes['condition'] - 2} drugs, "
          f"{ds.sizes['replicate']} max replicates, {ds.sizes['gene']} genes (preset {args.preset}, "
          f"seed {args.seed}); effective drugs: {', '.join(eff)}; drug responses: "
          + ", ".join(f"{kinds.count(k)} {k}" for k in RESPONSE_KINDS))
    return 0

