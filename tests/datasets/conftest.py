"""Helpers that write small GCT/GCTX/baseline files in the public formats, for the dataset reader tests.

``l1000_design`` lays out an experiment (cell lines x drugs x doses x replicates + vehicle controls, several
plates); ``write_gct``/``write_gctx`` write it; ``write_gdsc``/``write_depmap``/``write_ccle``/``write_csv``
write baseline tables. Values are drawn from a seeded generator, so every test knows exactly what it wrote.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

# Test modules import these helpers as ``datasets_test_helpers``: pytest imports this conftest under a name
# that depends on the package layout (``conftest`` or ``tests.datasets.conftest``), this alias does not.
sys.modules.setdefault("datasets_test_helpers", sys.modules[__name__])

# Real Entrez IDs / symbols of a few L1000 landmark genes (from the fixture plate)
GENES = [("5720", "PSME1"), ("466", "ATF1"), ("6009", "RHEB"), ("2309", "FOXO3"), ("387", "RHOA"),
         ("3553", "IL1B"), ("427", "ASAH1"), ("5898", "RALA"), ("23200", "ATP11B"), ("6657", "SOX2"),
         ("1026", "CDKN1A"), ("7157", "TP53")]


def l1000_design(cells: Sequence[str] = ("A375", "MCF7", "PC3"),
                 drugs: dict[str, Sequence[float]] | None = None, reps: int = 3, n_ctrl: int = 4,
                 n_plates: int = 2, time: int = 24, other_time: int = 6, seed: int = 0) -> pd.DataFrame:
    """Column metadata of a small L1000 experiment (one row per sample, CMap inst_info columns)."""
    drugs = drugs if drugs is not None else {"vorinostat": (1.11, 10.0), "trametinib": (0.04, 3.33)}
    rows = []
    for c in cells:
        for p in range(n_plates):
            plate = f"TST00{p}_{c}_{time}H_X{p + 1}"
            w = 0
            for _ in range(n_ctrl):
                rows.append(dict(inst_id=f"{plate}_B1:A{w:02d}", cell_id=c, pert_type="ctl_vehicle",
                                 pert_iname="DMSO", pert_dose="-666", pert_dose_unit="-666",
                                 pert_time=str(time), pert_time_unit="h", rna_plate=plate))
                w += 1
            for d, doses in drugs.items():
                for dose in doses:
                    for _ in range(reps):
                        rows.append(dict(inst_id=f"{plate}_B1:A{w:02d}", cell_id=c, pert_type="trt_cp",
                                         pert_iname=d, pert_dose=f"{dose:g}", pert_dose_unit="um",
                                         pert_time=str(time), pert_time_unit="h", rna_plate=plate))
                        w += 1
        # a different time point that must never be selected
        plate = f"TST009_{c}_{other_time}H_X1"
        for k in range(2):
            rows.append(dict(inst_id=f"{plate}_B1:C{k:02d}", cell_id=c, pert_type="ctl_vehicle",
                             pert_iname="DMSO", pert_dose="-666", pert_dose_unit="-666",
                             pert_time=str(other_time), pert_time_unit="h", rna_plate=plate))
            d = next(iter(drugs))
            rows.append(dict(inst_id=f"{plate}_B1:D{k:02d}", cell_id=c, pert_type="trt_cp", pert_iname=d,
                             pert_dose="100", pert_dose_unit="um", pert_time=str(other_time),
                             pert_time_unit="h", rna_plate=plate))
    return pd.DataFrame(rows)


def gene_meta(n_genes: int = 8, n_nonlm: int = 2) -> pd.DataFrame:
    """Row metadata: Affymetrix-style probe ids with pr_gene_id/symbol, the last ``n_nonlm`` not landmark."""
    g = GENES[:n_genes]
    return pd.DataFrame({
        "id": [f"{e}_at" for e, _ in g],
        "pr_gene_id": [e for e, _ in g],
        "pr_gene_symbol": [s for _, s in g],
        "pr_is_lmark": ["1"] * (n_genes - n_nonlm) + ["0"] * n_nonlm,
    })


def values(n_samples: int, n_genes: int, seed: int = 0) -> np.ndarray:
    """Samples x genes float32 expression values."""
    return np.random.default_rng(seed).normal(8.0, 2.0, size=(n_samples, n_genes)).astype(np.float32)


def write_gct(path: Path, mat: np.ndarray, rows: pd.DataFrame, cols: pd.DataFrame,
              version: str = "1.3") -> Path:
    """GCT text; ``mat`` is samples x genes (written transposed, genes x samples, as the format wants)."""
    sample_ids = list(cols["inst_id"])
    row_ids = list(rows["id"])
    rmeta = [c for c in rows.columns if c != "id"]
    cmeta = [c for c in cols.columns if c != "inst_id"]
    out = []
    if version == "1.2":
        out += ["#1.2", f"{len(row_ids)}\t{len(sample_ids)}", "\t".join(["Name", "Description", *sample_ids])]
        desc = rows["pr_gene_symbol"] if "pr_gene_symbol" in rows else rows["id"]
        for i, r in enumerate(row_ids):
            out.append("\t".join([r, str(desc.iloc[i]), *(f"{v:.5f}" for v in mat[:, i])]))
    else:
        out += ["#1.3", f"{len(row_ids)}\t{len(sample_ids)}\t{len(rmeta)}\t{len(cmeta)}",
                "\t".join(["id", *rmeta, *sample_ids])]
        for c in cmeta:
            out.append("\t".join([c, *(["na"] * len(rmeta)), *map(str, cols[c])]))
        for i, r in enumerate(row_ids):
            meta = [str(rows[m].iloc[i]) for m in rmeta]
            out.append("\t".join([r, *meta, *(f"{v:.5f}" for v in mat[:, i])]))
    path.write_text("\n".join(out) + "\n")
    return path


def write_gctx(path: Path, mat: np.ndarray, rows: pd.DataFrame, cols: pd.DataFrame | None,
               sample_ids: Sequence[str] | None = None, chunks: tuple[int, int] | None = None) -> Path:
    """GCTX 1.0: /0/DATA/0/matrix samples x genes, ids + (optional) embedded metadata under /0/META."""
    ids = list(sample_ids) if sample_ids is not None else list(cols["inst_id"])
    with h5py.File(path, "w") as f:
        f.attrs["version"] = "GCTX1.0"
        f.create_dataset("/0/DATA/0/matrix", data=mat, chunks=chunks or True)
        f.create_dataset("/0/META/COL/id", data=np.array(ids, dtype="S"))
        f.create_dataset("/0/META/ROW/id", data=np.array(list(rows["id"]), dtype="S"))
        for c in rows.columns:
            if c != "id":
                f.create_dataset(f"/0/META/ROW/{c}", data=np.array(list(rows[c]), dtype="S"))
        if cols is not None:
            for c in cols.columns:
                if c != "inst_id":
                    f.create_dataset(f"/0/META/COL/{c}", data=np.array(list(cols[c]), dtype="S"))
    return path


def write_inst_info(path: Path, cols: pd.DataFrame) -> Path:
    cols.to_csv(path, sep="\t", index=False)
    return path


def baseline_values(cells: Sequence[str], genes: Sequence[tuple[str, str]], seed: int = 1) -> np.ndarray:
    """Cell lines x genes float32 baseline values."""
    return np.random.default_rng(seed).normal(5.0, 1.0, size=(len(cells), len(genes))).astype(np.float32)


def write_gdsc(path: Path, cells: Sequence[str], genes: Sequence[tuple[str, str]], vals: np.ndarray) -> Path:
    """GDSC basal expression TSV; ``cells`` are COSMIC ids."""
    df = pd.DataFrame({"GENE_SYMBOLS": [s for _, s in genes], "GENE_title": ["t"] * len(genes)})
    for k, c in enumerate(cells):
        df[f"DATA.{c}"] = vals[k]
    df.to_csv(path, sep="\t", index=False)
    return path


def write_depmap(path: Path, cells: Sequence[str], genes: Sequence[tuple[str, str]],
                 vals: np.ndarray) -> Path:
    """DepMap CSV: rows cell lines, columns 'SYMBOL (ENTREZ)'."""
    df = pd.DataFrame(vals, index=list(cells), columns=[f"{s} ({e})" for e, s in genes])
    df.to_csv(path)
    return path


def write_ccle(path: Path, cells: Sequence[str], genes: Sequence[tuple[str, str]], vals: np.ndarray) -> Path:
    """CCLE GCT 1.2: Name '<entrez>_at', Description symbol, columns like A375_SKIN."""
    out = ["#1.2", f"{len(genes)}\t{len(cells)}", "\t".join(["Name", "Description", *cells])]
    for j, (e, s) in enumerate(genes):
        out.append("\t".join([f"{e}_at", s, *(f"{v:.6f}" for v in vals[:, j])]))
    path.write_text("\n".join(out) + "\n")
    return path


def write_csv(path: Path, cells: Sequence[str], genes: Sequence[tuple[str, str]], vals: np.ndarray,
              by: str = "entrez") -> Path:
    """Generic genes x cell lines CSV keyed by Entrez ID (or by symbol)."""
    key = [e for e, _ in genes] if by == "entrez" else [s for _, s in genes]
    df = pd.DataFrame(vals.T, columns=list(cells))
    df.insert(0, "gene", key)
    df.to_csv(path, index=False)
    return path


@pytest.fixture
def small_l1000(tmp_path: Path) -> dict:
    """A small GCTX with embedded metadata and matching files; returns paths and what was written."""
    cols = l1000_design()
    rows = gene_meta()
    mat = values(len(cols), len(rows))
    gctx = write_gctx(tmp_path / "small.gctx", mat, rows, cols)
    return {"gctx": gctx, "cols": cols, "rows": rows, "mat": mat, "dir": tmp_path}


@pytest.fixture
def small_baseline(tmp_path: Path) -> dict:
    """A DepMap CSV with the design's cell lines (spelled differently) plus two baseline-only ones."""
    cells = ["A-375", "mcf7", "PC-3", "HT-29", "K562"]
    genes = GENES[:6]
    vals = baseline_values(cells, genes)
    path = write_depmap(tmp_path / "depmap.csv", cells, genes, vals)
    return {"path": path, "cells": cells, "genes": genes, "vals": vals}
