"""``--save-predictions``: each fit's x2_hat for its test pairs in OUT/predictions/<method>/<drug>.h5ad.

One AnnData per (method, drug), readable by anndata / scanpy / pertpy: X [rows, genes] float32 in the raw
gene space (as the method predicts it at each test pair's x1); obs ``cell_line``, ``split`` (split index),
``repeat``, ``fold``, ``latent``, ``kind`` (``prediction``, or ``reconstruction`` for ``pertvae_rec``:
PertVAE's reconstruction of x1), ``condition`` (the drug); var: the cube's gene ids. The driver writes a
task's predictions before its results (harness.run), replacing any rows of the same (split, latent) left by an
interrupted earlier attempt, so every done fit has its predictions; each file is replaced atomically.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DIR = "predictions"


def _safe(name: str) -> str:
    """A file-name-safe version of a drug or method name (``/`` and other separators replaced)."""
    return "".join(c if c.isalnum() or c in "._-()+" else "_" for c in str(name)) or "_"


def path_for(out: str | Path, method: str, drug: str) -> Path:
    """OUT/predictions/<method>/<drug>.h5ad."""
    return Path(out) / DIR / _safe(method) / f"{_safe(drug)}.h5ad"


def save(out: str | Path, rows: Iterable[Mapping[str, Any]], genes: Sequence[str], n_folds: int
         ) -> list[Path]:
    """Write the ``predictions`` of ``rows`` (harness.tasks rows with ``test_cell_line``: those of the methods
    that succeeded, also in a fit whose other method failed); returns the files written."""
    import anndata as ad
    import pandas as pd

    from datasets.anndata_io import predictions_anndata, write_h5ad

    new: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for r in rows:
        if not r.get("predictions"):  # a failed fit has none, except of its methods that succeeded
            continue
        split = int(r["repeat"]) * n_folds + int(r["fold"])
        for method, x2_hat in r["predictions"].items():
            a = predictions_anndata(np.asarray(x2_hat), r["test_cell_line"], str(split), genes,
                                    repeat=int(r["repeat"]), fold=int(r["fold"]), drug=str(r["drug"]),
                                    method=method,
                                    kind="reconstruction" if method == "pertvae_rec" else "prediction")
            a.obs["latent"] = np.int64(r["latent"])
            new[(method, str(r["drug"]))].append(a)
    written = []
    for (method, drug), parts in new.items():
        path = path_for(out, method, drug)
        fresh = ad.concat(parts, join="outer", merge="same", uns_merge="same")
        if path.exists():
            old = ad.read_h5ad(path)
            ids = set(zip(fresh.obs["split"].astype(str), fresh.obs["latent"].astype(int), strict=True))
            keep = [(s, x) not in ids for s, x in zip(old.obs["split"].astype(str),
                                                      old.obs["latent"].astype(int), strict=True)]
            fresh = ad.concat([old[np.asarray(keep)], fresh], join="outer", merge="same", uns_merge="same")
        fresh.obs_names = pd.Index([str(i) for i in range(fresh.n_obs)])
        for col in ("cell_line", "split", "kind", "condition"):
            fresh.obs[col] = pd.Categorical(fresh.obs[col].astype(str))
        path.parent.mkdir(parents=True, exist_ok=True)
        written.append(write_h5ad(fresh, path))
    return written
