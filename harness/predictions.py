"""``--save-predictions``: each fit's x2_hat for its test pairs in OUT/predictions/<method>/<drug>.h5ad (a
name that is no file name, e.g. 'palbociclib/PD-0332991', as 'palbociclib_PD-0332991-<8 hex digits>': its
uns ``drug`` and obs ``condition`` keep the name).

One AnnData per (method, drug), readable by anndata / scanpy / pertpy, that joins back to the cube exactly:

- X [rows, genes] float32 in the raw gene space (as the method predicts it at each test pair's x1);
- layer ``x2``: the measured x2 of the pair (the cube's values);
- obs: ``cell_line``, ``condition`` (the drug), ``dose_um`` (the cube's dose; NaN where unknown), ``split``
  (split index), ``repeat``, ``fold``, ``latent``, ``kind`` (``prediction``, or ``reconstruction`` for
  ``pertvae_rec``: PertVAE's reconstruction of x1), ``x1_replicate`` and ``x2_replicate`` (the cube's
  replicate of the pair's x1, a ``control`` profile, and of its x2); obs_names
  ``<cell line>/<drug>/<x2 replicate>/split<split>/L<latent>``;
- var: the cube's gene ids, and ``gene_symbol``;
- uns: ``drug``, ``method``, ``kind``, ``space`` and ``join`` (how obs finds the cube's profiles), and
  ``cube`` (its fingerprint), as structured entries.

So ``cube.expression.sel(cell_line=c, condition=drug, replicate=x2_replicate)`` is the row's ``x2`` layer
and ``sel(condition="control", replicate=x1_replicate)`` its input (the cube has no time axis: one time point
per cube). The worker ships each test pair's replicates, dose and measured x2 with a fit's row
(:func:`pair_samples`). The driver writes a task's predictions before its results (harness.run), replacing any
rows of the same (split, latent) left by an interrupted earlier attempt, so every done fit has its
predictions; each file is replaced atomically.
"""

from __future__ import annotations

import functools
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.results import gene_symbols_and_fingerprint

DIR = "predictions"
JOIN = {"x2": "expression.sel(cell_line=obs.cell_line, condition=obs.condition, replicate=obs.x2_replicate)",
        "x1": "expression.sel(cell_line=obs.cell_line, condition='control', replicate=obs.x1_replicate)"}


def _safe(name: str) -> str:
    """A file-name-safe version of a drug or method name (``/`` and other separators replaced)."""
    return "".join(c if c.isalnum() or c in "._-()+" else "_" for c in str(name)) or "_"


def _file_name(name: str) -> str:
    """:func:`_safe` of ``name``, with a digest of the name where that changed it: 'A/B' and 'A B' are two
    drugs, and one file for both would let the second's predictions replace the first's."""
    safe = _safe(name)
    return safe if safe == name else f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def path_for(out: str | Path, method: str, drug: str) -> Path:
    """OUT/predictions/<method>/<drug>.h5ad (:func:`_file_name`)."""
    return Path(out) / DIR / _file_name(method) / f"{_file_name(drug)}.h5ad"


@functools.lru_cache(maxsize=64)
def _doses(cube_path: str, drug: str) -> dict[str, float]:
    """{cell line: the cube's dose_um of ``drug``} ({} for a drug the cube does not have, e.g. POOLED)."""
    from datasets.cube import open_cube

    ds = open_cube(cube_path, check=False)
    if drug not in [str(c) for c in ds["condition"].values]:
        return {}
    dose = np.asarray(ds["dose_um"].sel(condition=drug).values, dtype=np.float64)
    return dict(zip((str(c) for c in ds["cell_line"].values), dose.tolist(), strict=True))


def pair_samples(dd: Any, split: Any, cube_path: str) -> dict[str, np.ndarray]:
    """In the worker: the test pairs of ``split`` (in pertvae_core's order, as harness.tasks.split_data
    takes them): each one's x1 and x2 replicate in the cube, dose and measured x2."""
    cl = np.asarray(dd.pair_cell_line).astype(str)
    idx = np.flatnonzero(np.isin(cl, np.asarray(list(split.test_cell_lines), dtype=str)))
    doses = _doses(str(cube_path), str(dd.drug))
    return {"x1_replicate": np.asarray(dd.pair_x1_replicate)[idx],
            "x2_replicate": np.asarray(dd.pair_x2_replicate)[idx],
            "dose_um": np.asarray([doses.get(c, np.nan) for c in cl[idx]], dtype=np.float64),
            "x2": np.asarray(dd.x2, dtype=np.float32)[idx]}


@functools.lru_cache(maxsize=8)
def _store_meta(out: str) -> tuple[tuple[str, ...] | None, str]:
    """The result store's gene symbols (None without) and fingerprint (harness.results.gene_symbols_and_
    fingerprint: the store is the one reader of results.zarr), once per process."""
    return gene_symbols_and_fingerprint(out)


def _anndata(r: Mapping[str, Any], method: str, x2_hat: np.ndarray, split: int, genes: Sequence[str],
             symbols: Sequence[str] | None, fingerprint: str) -> Any:
    from datasets.anndata_io import predictions_anndata

    tp, drug = r["test_pairs"], str(r["drug"])
    kind = "reconstruction" if method == "pertvae_rec" else "prediction"
    a = predictions_anndata(
        np.asarray(x2_hat), r["test_cell_line"], str(split), genes, repeat=int(r["repeat"]),
        fold=int(r["fold"]), drug=drug, method=method, kind=kind, gene_symbols=symbols,
        obs={"latent": np.int64(r["latent"]), "dose_um": tp["dose_um"],
             "x1_replicate": np.asarray(tp["x1_replicate"], dtype=np.int64),
             "x2_replicate": np.asarray(tp["x2_replicate"], dtype=np.int64)},
        layers={"x2": tp["x2"]},
        uns={"kind": kind, "space": "raw: the cube's expression values", "join": dict(JOIN),
             "cube": {"fingerprint": fingerprint}})
    a.obs_names = [f"{c}/{drug}/{x}/split{split}/L{int(r['latent'])}"
                   for c, x in zip(a.obs["cell_line"], a.obs["x2_replicate"], strict=True)]
    return a


def save(out: str | Path, rows: Iterable[Mapping[str, Any]], genes: Sequence[str], n_folds: int
         ) -> list[Path]:
    """Write the ``predictions`` of ``rows`` (harness.tasks rows with ``test_cell_line`` and ``test_pairs``,
    :func:`pair_samples`: those of the methods that succeeded, also in a fit whose other method failed);
    returns the files written."""
    symbols, fingerprint = _store_meta(str(out))
    new: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for r in rows:
        if not r.get("predictions"):  # a failed fit has none, except of its methods that succeeded
            continue
        split = int(r["repeat"]) * n_folds + int(r["fold"])
        for method, x2_hat in r["predictions"].items():
            new[(method, str(r["drug"]))].append(_anndata(r, method, x2_hat, split, genes, symbols,
                                                          fingerprint))
    return [_merge_write(path_for(out, method, drug), parts) for (method, drug), parts in new.items()]


def _merge_write(path: Path, parts: list[Any]) -> Path:
    """``parts`` merged into the file at ``path`` (its rows of the same (split, latent) replaced)."""
    import anndata as ad
    import pandas as pd

    from datasets.anndata_io import write_h5ad

    fresh = ad.concat(parts, join="outer", merge="same", uns_merge="same")
    if path.exists():
        old = ad.read_h5ad(path)
        ids = set(zip(fresh.obs["split"].astype(str), fresh.obs["latent"].astype(int), strict=True))
        keep = [(s, x) not in ids for s, x in zip(old.obs["split"].astype(str), old.obs["latent"].astype(int),
                                                  strict=True)]
        fresh = ad.concat([old[np.asarray(keep)], fresh], join="outer", merge="same", uns_merge="same")
    for col in ("cell_line", "split", "kind", "condition"):
        fresh.obs[col] = pd.Categorical(fresh.obs[col].astype(str))
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_h5ad(fresh, path)
