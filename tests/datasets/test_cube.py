"""datasets.cube: real zarr v3 stores written and read in tmp_path."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from datasets.cube import (
    CONDITION_BASELINE,
    CONDITION_CONTROL,
    CubeError,
    cube_fingerprint,
    drugs,
    make_cube,
    open_cube,
    write_cube,
)

CONDS = [CONDITION_CONTROL, "drugA", "drugB", CONDITION_BASELINE]


def small_cube(n_cells: int = 5, n_rep: int = 3, n_genes: int = 6, seed: int = 0, lazy: bool = False,
               attrs: dict | None = None) -> xr.Dataset:
    """5 cell lines: controls for all, drugA on the first 2, drugB on none, baseline on all (1 replicate)."""
    rng = np.random.default_rng(seed)
    e = np.full((n_cells, len(CONDS), n_rep, n_genes), np.nan, dtype=np.float32)
    e[:, 0] = rng.normal(size=(n_cells, n_rep, n_genes))
    e[:2, 1, :2] = rng.normal(size=(2, 2, n_genes))
    e[:, 3, 0] = rng.normal(size=(n_cells, n_genes))
    dose = np.full((n_cells, len(CONDS)), np.nan)
    dose[:2, 1] = 10.0
    expr = da.from_array(e, chunks=(2, 1, n_rep, n_genes)) if lazy else e
    return make_cube(expr, [f"CL{i}" for i in range(n_cells)], CONDS, [str(100 + g) for g in range(n_genes)],
                     [f"G{g}" for g in range(n_genes)], dose, ["L1000", "L1000", "L1000", "GDSC"],
                     attrs if attrs is not None else {"provenance": json.dumps({"inputs": [], "seed": seed})})


def test_roundtrip_values_coords_dtypes(tmp_path: Path) -> None:
    ds = small_cube()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no UnstableSpecificationWarning, no consolidated-metadata warnings
        path = write_cube(ds, tmp_path / "c.zarr")
        back = open_cube(path)
        np.testing.assert_array_equal(back["expression"].values, ds["expression"].values)
    assert back["expression"].dtype == np.float32
    assert list(back["cell_line"].values) == [f"CL{i}" for i in range(5)]
    assert list(back["condition"].values) == CONDS
    assert list(back["gene_symbol"].values) == [f"G{g}" for g in range(6)]
    assert list(back["source"].values) == ["L1000", "L1000", "L1000", "GDSC"]
    np.testing.assert_array_equal(back["dose_um"].values, ds["dose_um"].values)
    assert json.loads(back.attrs["provenance"]) == {"inputs": [], "seed": 0}
    assert drugs(back) == ["drugA", "drugB"]
    assert cube_fingerprint(back) == cube_fingerprint(ds)


def test_string_coords_use_zarr_v3_string_dtype(tmp_path: Path) -> None:
    path = write_cube(small_cube(), tmp_path / "c.zarr", cell_block=2)
    for name in ("cell_line", "condition", "gene", "gene_symbol", "source"):
        meta = json.loads((path / name / "zarr.json").read_text())
        assert meta["zarr_format"] == 3
        assert meta["data_type"] == "string", (name, meta["data_type"])
    meta = json.loads((path / "expression" / "zarr.json").read_text())
    assert meta["data_type"] == "float32"
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [2, 1, 3, 6]
    assert meta["fill_value"] == "NaN"


def test_all_nan_chunks_are_not_written(tmp_path: Path) -> None:
    path = write_cube(small_cube(), tmp_path / "c.zarr", cell_block=2)
    root = path / "expression" / "c"
    files = {p.relative_to(root).parts[:2] for p in root.rglob("*") if p.is_file()}
    # chunk keys (cell block, condition): controls in all 3 blocks, drugA only in block 0, drugB nowhere,
    # baseline in all 3 blocks
    assert files == {("0", "0"), ("1", "0"), ("2", "0"), ("0", "1"), ("0", "3"), ("1", "3"), ("2", "3")}


def test_lazy_dask_expression_roundtrip(tmp_path: Path) -> None:
    eager, lazy = small_cube(), small_cube(lazy=True)
    path = write_cube(lazy, tmp_path / "c.zarr", cell_block=4)
    np.testing.assert_array_equal(open_cube(path)["expression"].values, eager["expression"].values)


def test_existing_path_refused_unless_overwrite(tmp_path: Path) -> None:
    path = write_cube(small_cube(seed=0), tmp_path / "c.zarr")
    for ds in (small_cube(seed=0), small_cube(seed=1)):
        with pytest.raises(CubeError, match=r"c\.zarr.*already exists.*--overwrite"):
            write_cube(ds, path)
    write_cube(small_cube(seed=1), path, overwrite=True)
    np.testing.assert_array_equal(open_cube(path)["expression"].values,
                                  small_cube(seed=1)["expression"].values)
    assert [p.name for p in tmp_path.iterdir()] == ["c.zarr"]  # no temp or old dirs left


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    orig = xr.Dataset.to_zarr

    def half_then_fail(self, store, **kw):  # write for real, then fail as a crash mid-build would
        orig(self, store, **kw)
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_zarr", half_then_fail)
    with pytest.raises(CubeError, match=r"disk full writing .*new\.zarr: check the disk or use --out"):
        write_cube(small_cube(), tmp_path / "new.zarr")  # issue 19: a CubeError (one error line), not OSError
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    path = write_cube(small_cube(seed=0), tmp_path / "c.zarr")
    monkeypatch.setattr(xr.Dataset, "to_zarr", half_then_fail)
    with pytest.raises(CubeError, match="nothing was written, the cube there is unchanged"):
        write_cube(small_cube(seed=1), path, overwrite=True)
    np.testing.assert_array_equal(open_cube(path)["expression"].values,
                                  small_cube(seed=0)["expression"].values)
    assert [p.name for p in tmp_path.iterdir()] == ["c.zarr"]


def test_fingerprint_changes_with_identity() -> None:
    a = small_cube()
    assert cube_fingerprint(a) == cube_fingerprint(small_cube())
    assert cube_fingerprint(a) != cube_fingerprint(small_cube(attrs={"provenance": "other"}))
    assert cube_fingerprint(a) != cube_fingerprint(small_cube(n_genes=7))
    assert cube_fingerprint(a) == cube_fingerprint(small_cube(lazy=True))
    same_attrs = {"provenance": json.dumps({"inputs": [], "seed": 0})}
    assert cube_fingerprint(a) != cube_fingerprint(small_cube(seed=1, attrs=same_attrs)), "values count"
    b = small_cube()
    b["expression"][0, 0, 0, 0] += 1e-3
    assert cube_fingerprint(a) != cube_fingerprint(b)


def test_make_cube_rejects_bad_input() -> None:
    e = np.zeros((2, 2, 1, 3), dtype=np.float32)
    args = dict(cell_lines=["a", "b"], conditions=["control", "d"], genes=["1", "2", "3"],
                gene_symbols=["x", "y", "z"], dose_um=np.zeros((2, 2)), source=["s", "s"], attrs={})
    make_cube(e, **args)
    with pytest.raises(CubeError, match="expression: shape"):
        make_cube(e[:1], **args)
    with pytest.raises(CubeError, match=r"cell_lines: duplicate.*'a'"):
        make_cube(e, **{**args, "cell_lines": ["a", "a"]})
    with pytest.raises(CubeError, match="gene_symbols: 2 values for 3 genes"):
        make_cube(e, **{**args, "gene_symbols": ["x", "y"]})
    with pytest.raises(CubeError, match="dose_um: shape"):
        make_cube(e, **{**args, "dose_um": np.zeros(2)})
    with pytest.raises(CubeError, match="contains inf"):
        make_cube(np.full_like(e, np.inf), **args)
    with pytest.raises(CubeError, match="no drug condition"):
        make_cube(e, **{**args, "conditions": ["control", "baseline"]})
    with pytest.raises(CubeError, match=r"attrs\['bad'\]: not JSON"):
        make_cube(e, **{**args, "attrs": {"bad": object()}})


def _raw_store(path: Path, ds: xr.Dataset) -> Path:
    ds.to_zarr(path, zarr_format=3, consolidated=False)
    return path


def test_open_cube_rejects_bad_stores(tmp_path: Path) -> None:
    with pytest.raises(CubeError, match=r"nope\.zarr: no such cube"):
        open_cube(tmp_path / "nope.zarr")
    (tmp_path / "junk.zarr").mkdir()
    (tmp_path / "junk.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(CubeError, match=r"junk\.zarr: cannot open"):
        open_cube(tmp_path / "junk.zarr")
    good = small_cube()
    p = _raw_store(tmp_path / "noexpr.zarr", good.rename({"expression": "values"}))
    with pytest.raises(CubeError, match=r"noexpr\.zarr: no 'expression'"):
        open_cube(p)
    p = _raw_store(tmp_path / "f64.zarr", good.assign(expression=good["expression"].astype(np.float64)))
    with pytest.raises(CubeError, match=r"f64\.zarr: expression dtype float64"):
        open_cube(p)
    bad = good["expression"].values.copy()
    bad[0, 0, 0, 0] = np.inf
    p = _raw_store(tmp_path / "inf.zarr", good.assign(expression=(good["expression"].dims, bad)))
    with pytest.raises(CubeError, match=r"inf\.zarr: expression contains 1 inf"):
        open_cube(p)
    p = _raw_store(tmp_path / "nodrug.zarr", good.sel(condition=["control", "baseline"]))
    with pytest.raises(CubeError, match=r"nodrug\.zarr: no drug condition"):
        open_cube(p)
    p = _raw_store(tmp_path / "nosym.zarr", good.drop_vars("gene_symbol"))
    with pytest.raises(CubeError, match="missing coordinate 'gene_symbol'"):
        open_cube(p)


def test_open_cube_is_lazy(tmp_path: Path) -> None:
    path = write_cube(small_cube(), tmp_path / "c.zarr")
    ds = open_cube(path)
    assert dask.is_dask_collection(ds["expression"].data)


def with_plates(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` rebuilt with a plate per measured profile ("" elsewhere)."""
    measured = ~np.isnan(ds["expression"].values).all(axis=-1)
    plate = np.where(measured, np.array([f"P{r}" for r in range(ds.sizes["replicate"])]), "")
    return make_cube(ds["expression"].values, ds["cell_line"].values, ds["condition"].values,
                     ds["gene"].values, ds["gene_symbol"].values, ds["dose_um"].values, ds["source"].values,
                     dict(ds.attrs), plate=plate)


def test_plate_roundtrip_and_fingerprint(tmp_path: Path) -> None:
    plain = small_cube()
    ds = with_plates(plain)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = open_cube(write_cube(ds, tmp_path / "c.zarr", cell_block=2))
        plates = back["plate"].values
    assert back["plate"].dims == ("cell_line", "condition", "replicate")
    assert list(plates[0, 0]) == ["P0", "P1", "P2"] and list(plates[0, 2]) == ["", "", ""]
    meta = json.loads((tmp_path / "c.zarr" / "plate" / "zarr.json").read_text())
    assert meta["data_type"] == "string" and meta["chunk_grid"]["configuration"]["chunk_shape"] == [2, 1, 3]
    chunks = tmp_path / "c.zarr" / "plate" / "c" / "0"
    assert (chunks / "0" / "0").is_file() and not (chunks / "2").exists()  # all-"" chunks not written
    assert cube_fingerprint(back) == cube_fingerprint(ds) != cube_fingerprint(plain)
    other = ds.copy(deep=True)
    other["plate"][0, 0, 0] = "P9"
    assert cube_fingerprint(other) != cube_fingerprint(ds)
    assert "plate" not in open_cube(write_cube(plain, tmp_path / "old.zarr"))  # cubes without plates work
    with pytest.raises(CubeError, match=r"plate: shape \(1, 4, 3\)"):
        make_cube(plain["expression"].values, plain["cell_line"].values, CONDS, plain["gene"].values,
                  plain["gene_symbol"].values, plain["dose_um"].values, plain["source"].values, {},
                  plate=np.full((1, 4, 3), ""))
