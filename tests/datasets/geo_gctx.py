"""A generated GCTX with GEO's layout, for the reader's tests and benchmarks/test_build_cube.py; and the GCTX
reader as it was at main's commit ec49623 (before the chunk plan), the reference for "the same cube" and the
"before" figures.

Layout, as GSE92742's Level 3 file: ``/0/DATA/0/matrix`` float32 [samples, genes] with 12,328 genes whose 978
landmark rows are scattered among them (seeded positions), chunked 1000 samples x 262 genes (cmapPy/cmapM's
chunking), uncompressed like GEO's file or gzip (``compression="gzip"``: cmapPy's writer compresses the
matrix); ids only in the file (Entrez ids for rows, ``<plate>:<well>`` for columns), the metadata in
``inst_info.txt`` and ``gene_info.txt`` beside it. Plates of 384 wells in file order, each one cell line: 24
DMSO vehicle controls and 40 compounds x 3 doses x 3 replicates of one compound group, wells shuffled. Plate
``p`` holds cell line ``p % n_cells`` and group ``(p // n_cells) % n_groups``; :func:`drug_names` lists a
group's compounds, so a build of ``k`` of group 0's drugs selects ``3k + 3`` wells (replicates at the highest
dose, and as many controls) on each group-0 plate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from datasets.l1000 import GCTX_MATRIX, L1000Error

N_GENES = 12_328
N_LANDMARKS = 978
CHUNKS = (1000, 262)
WELLS = 384
N_DMSO = 24
PER_GROUP = 40
DOSES = ("0.37", "3.33", "10")
REPS = 3


@dataclass(frozen=True)
class GeoFiles:
    gctx: Path
    inst_info: Path
    gene_info: Path
    baseline: Path
    meta: pd.DataFrame  # inst_info's rows, in file order
    landmarks: np.ndarray  # row positions of the landmark genes


def drug_names(group: int) -> list[str]:
    return [f"cpd-g{group}-{k:02d}" for k in range(PER_GROUP)]


def inst_info(n_samples: int, n_cells: int = 10, n_groups: int = 2, seed: int = 0) -> pd.DataFrame:
    """GSE92742 inst_info columns for ``n_samples`` wells on plates of 384 (the last plate cut short)."""
    rng = np.random.default_rng(seed)
    wells = [("ctl_vehicle", "DMSO", "-666")] * N_DMSO
    wells += [("trt_cp", k, d) for k in range(PER_GROUP) for d in DOSES for _ in range(REPS)]
    assert len(wells) == WELLS
    rows = []
    for p in range(-(-n_samples // WELLS)):
        cell, group = f"CELL{p % n_cells:02d}", (p // n_cells) % n_groups
        plate = f"GEO{p:04d}_{cell}_24H_X1"
        for w, i in enumerate(rng.permutation(WELLS)):
            t, k, dose = wells[i]
            name = "DMSO" if t == "ctl_vehicle" else drug_names(group)[k]
            rows.append((f"{plate}:{w:03d}", plate, cell, t, name, dose, "um" if t == "trt_cp" else "-666"))
    df = pd.DataFrame(rows[:n_samples], columns=["inst_id", "rna_plate", "cell_id", "pert_type", "pert_iname",
                                                 "pert_dose", "pert_dose_unit"])
    df["pert_time"], df["pert_time_unit"] = "24", "h"
    return df


def write_geo_gctx(d: Path, n_samples: int, *, n_genes: int = N_GENES, n_landmarks: int = N_LANDMARKS,
                   chunks: tuple[int, int] | None = CHUNKS, compression: str | None = None,
                   n_cells: int = 10, seed: int = 0) -> GeoFiles:
    """The GCTX, inst_info.txt, gene_info.txt and a baseline CSV (every landmark gene, the cell lines and
    5 baseline-only ones) in ``d``. Values: float32 N(8, 2), seeded, written a chunk row at a time."""
    rng = np.random.default_rng(seed)
    entrez = np.sort(rng.choice(np.arange(1, 120_000), size=n_genes, replace=False)).astype(str)
    landmarks = np.sort(rng.choice(n_genes, size=n_landmarks, replace=False))
    meta = inst_info(n_samples, n_cells=n_cells, seed=seed)
    tag = f"{n_samples}{'_' + compression if compression else ''}"
    gctx = d / f"geo_{tag}.gctx"
    with h5py.File(gctx, "w") as f:
        f.attrs["version"] = "GCTX1.0"
        dset = f.create_dataset(GCTX_MATRIX, shape=(n_samples, n_genes), dtype="f4", chunks=chunks,
                                compression=compression)
        step = chunks[0] if chunks else 1000
        for s in range(0, n_samples, step):
            e = min(n_samples, s + step)
            dset[s:e] = rng.standard_normal((e - s, n_genes), dtype=np.float32) * 2 + 8
        f["/0/META/COL/id"] = meta.inst_id.to_numpy().astype("S")
        f["/0/META/ROW/id"] = entrez.astype("S")
    info = d / f"inst_info_{tag}.txt"
    meta.to_csv(info, sep="\t", index=False)
    lm = np.zeros(n_genes, dtype=int)
    lm[landmarks] = 1
    genes = d / f"gene_info_{tag}.txt"
    pd.DataFrame({"pr_gene_id": entrez, "pr_gene_symbol": [f"G{e}" for e in entrez], "pr_is_lm": lm}).to_csv(
        genes, sep="\t", index=False)
    cells = [f"CELL{k:02d}" for k in range(n_cells)] + [f"BASE{k}" for k in range(5)]
    base = pd.DataFrame(rng.normal(5, 1, size=(n_landmarks, len(cells))).round(4), columns=cells)
    base.insert(0, "gene", entrez[landmarks])
    baseline = d / f"baseline_{tag}.csv"
    base.to_csv(baseline, index=False)
    return GeoFiles(gctx, info, genes, baseline, meta, landmarks)


# ------------------------------------------------------------------------ the reader at main's ec49623
MAIN_READ_BUDGET_BYTES = 256 * 2**20


def main_reader(path: Path, sample_idx: np.ndarray, row_idx: np.ndarray, chunk_samples: int = 10_000,
                progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """``datasets.l1000._read_gctx_selection`` at ec49623, unchanged: sorted sample blocks x the contiguous
    row span covering the wanted rows."""
    out = np.empty((len(sample_idx), len(row_idx)), dtype=np.float32)
    if len(sample_idx) == 0 or len(row_idx) == 0:
        return out
    order = np.argsort(sample_idx, kind="stable")
    sorted_idx = sample_idx[order]
    r_lo, r_hi = int(row_idx.min()), int(row_idx.max()) + 1
    rel_rows = row_idx - r_lo
    try:
        with h5py.File(path, "r") as f:
            dset = f[GCTX_MATRIX]
            per_sample = (r_hi - r_lo) * dset.dtype.itemsize
            step = max(1, min(chunk_samples, MAIN_READ_BUDGET_BYTES // max(per_sample, 1)))
            for start in range(0, len(sorted_idx), step):
                idx = sorted_idx[start:start + step]
                uniq, inverse = np.unique(idx, return_inverse=True)
                lo, hi = int(uniq[0]), int(uniq[-1]) + 1
                if (hi - lo) <= 4 * len(uniq) and (hi - lo) * per_sample <= MAIN_READ_BUDGET_BYTES:
                    block = dset[lo:hi, r_lo:r_hi][uniq - lo]  # dense span: one contiguous hyperslab
                else:
                    block = dset[uniq.tolist(), r_lo:r_hi]  # sparse: point selection of sorted rows
                out[order[start:start + step]] = block[inverse][:, rel_rows]
                if progress is not None:
                    progress(min(start + step, len(sorted_idx)), len(sorted_idx))
    except OSError as e:
        raise L1000Error(f"{path}: cannot read {GCTX_MATRIX} (truncated or corrupt GCTX?): {e}") from e
    return out

