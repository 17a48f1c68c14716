"""issue 19: a one-gene h5ad built a cube that failed only at run time (a traceback in the noise ceiling),
and a drug that no cell line pairs stopped the run at its start. Every builder now refuses such a cube with
one ``error:`` line, before anything is written."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from datasets_test_helpers import GENES, baseline_values, write_depmap

from datasets.cube import CubeError, check_pairs, make_cube, unpaired_drugs
from tests.datasets.build_cli import build_err, build_inputs, cli

CELLS = [c for c in ("A375", "MCF7", "PC3", "HT29") for _ in range(4)]
CONDS = ["control", "control", "vorinostat", "vorinostat"] * 4


def _h5ad(path: Path, n_genes: int, cells: list[str] = CELLS, conds: list[str] = CONDS,
          nan_gene_of: str | None = None) -> Path:
    x = np.random.default_rng(0).normal(8, 2, size=(len(cells), n_genes)).astype(np.float32)
    if nan_gene_of is not None:
        x[np.asarray(conds) == nan_gene_of, 0] = np.nan
    obs = pd.DataFrame({"cell_line": cells, "condition": conds}, index=[f"s{i}" for i in range(len(cells))])
    ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[str(1000 + g) for g in range(n_genes)])).write_h5ad(path)
    return path


def _refused(tmp_path: Path, h5: Path, capsys: pytest.CaptureFixture, *extra: str) -> str:
    out = tmp_path / "c.zarr"
    err = cli("--h5ad", h5, "--out", out, *extra, capsys=capsys).stderr
    assert not out.exists() and not list(tmp_path.glob(".c.zarr.*"))
    return err


def test_one_gene_h5ad_is_refused_at_build_time(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    h5 = _h5ad(tmp_path / "one.h5ad", 1)
    assert _refused(tmp_path, h5, capsys) == (f"error: {h5}: AnnData: 16 profiles x 1 genes; the cube needs "
                                              f"profiles and at least 2 genes (the benchmark's scores are "
                                              f"correlations across genes)\n")


def test_a_drug_no_cell_line_pairs_is_refused_at_build_time(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    h5 = _h5ad(tmp_path / "nopair.h5ad", 5, CELLS + ["K562", "K562"], CONDS + ["trametinib", "trametinib"])
    err = _refused(tmp_path, h5, capsys)
    assert err == (f"error: {h5}: the cube: no cell line has both a fully measured control and a fully "
                   f"measured profile of drug(s) 'trametinib' (a profile with a NaN gene is not used), so a "
                   f"benchmark run could not pair them; add controls of their cell lines, or leave them "
                   f"out\n")
    # with --allow-nan a drug whose every profile misses a gene pairs nowhere either (datasets.pairs' rule)
    h5 = _h5ad(tmp_path / "nan.h5ad", 5, nan_gene_of="vorinostat")
    assert "of drug(s) 'vorinostat'" in _refused(tmp_path, h5, capsys, "--allow-nan")


def test_cube_checks() -> None:
    e = np.zeros((2, 2, 1, 1), dtype=np.float32)
    args = (["A", "B"], ["control", "d"], ["1"], ["g"], np.zeros((2, 2)), ["L1000", "L1000"], {})
    with pytest.raises(CubeError, match=r"<in memory>: 1 gene\(s\); the benchmark needs at least 2"):
        make_cube(e, *args)
    e = np.full((2, 3, 1, 2), np.nan, dtype=np.float32)
    e[0, 0], e[1, 1], e[0, 2] = 1.0, 1.0, 1.0  # d1 only where no control is; d2 paired in A
    ds = make_cube(e, ["A", "B"], ["control", "d1", "d2"], ["1", "2"], ["a", "b"], np.zeros((2, 3)),
                   ["L1000"] * 3, {})
    assert unpaired_drugs(ds) == ["d1"]
    with pytest.raises(CubeError, match=r"^here: .*of drug\(s\) 'd1'"):
        check_pairs(ds, "here")


def test_l1000_build_refuses_a_single_shared_gene(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    base = write_depmap(tmp_path / "one.csv", ["A375", "MCF7"], GENES[:1], baseline_values("ab", GENES[:1]))
    err = build_err(f, base=base, capsys=capsys)
    assert err.startswith("error: only 1 gene in common between the L1000 genes (6") and "at least 2" in err
