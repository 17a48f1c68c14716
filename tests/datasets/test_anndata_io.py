"""datasets.anndata_io: cube <-> AnnData, cubes from real .h5ad files, saved predictions; the opened cube's
string coordinates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import dask
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import xarray as xr

from datasets import anndata_io
from datasets.anndata_io import (
    build_from_h5ad,
    describe,
    from_anndata,
    predictions_anndata,
    to_anndata,
    write_h5ad,
)
from datasets.cube import (
    CONDITION_BASELINE,
    CONDITION_CONTROL,
    CubeError,
    cube_fingerprint,
    make_cube,
    open_cube,
    write_cube,
)
from datasets.synthetic import generate

STRINGS = ("cell_line", "condition", "gene", "gene_symbol", "source")


@pytest.fixture(scope="module")
def demo_cube(tmp_path_factory: pytest.TempPathFactory) -> tuple[xr.Dataset, xr.Dataset]:
    """The demo synthetic cube in memory and as opened from its zarr store."""
    ds = generate(preset="demo")
    return ds, open_cube(write_cube(ds, tmp_path_factory.mktemp("demo") / "c.zarr"))


def test_opened_cube_strings_convert_with_astype_str(demo_cube: tuple[xr.Dataset, xr.Dataset]) -> None:
    ds, back = demo_cube
    for name in (*STRINGS, "plate"):
        assert back[name].dtype.kind in "OU", (name, back[name].dtype)
        np.testing.assert_array_equal(back[name].astype(str).values, ds[name].values.astype(str))
        np.testing.assert_array_equal(back[name].values.astype(str), ds[name].values.astype(str))
    assert dask.is_dask_collection(back["plate"].data)  # still lazy
    assert dask.is_dask_collection(back["expression"].data)
    assert back.sel(cell_line="CL0002", condition=CONDITION_CONTROL)["plate"].values[0] == "SYN0002_X1"
    assert cube_fingerprint(back) == cube_fingerprint(ds)


def measured(ds: xr.Dataset) -> np.ndarray:
    """[cell, condition, replicate] mask of profiles with at least one value."""
    return ~np.isnan(np.asarray(ds["expression"].values)).all(axis=-1)


def assert_same_cube(a: xr.Dataset, b: xr.Dataset) -> None:
    np.testing.assert_array_equal(a["expression"].values, b["expression"].values)
    for name in (*STRINGS, "plate"):
        assert list(a[name].values.astype(str).ravel()) == list(b[name].values.astype(str).ravel()), name
    np.testing.assert_array_equal(a["dose_um"].values, b["dose_um"].values)
    assert dict(a.attrs) == dict(b.attrs)
    assert cube_fingerprint(a) == cube_fingerprint(b)


def test_demo_cube_roundtrip_through_anndata_and_h5ad(demo_cube: tuple[xr.Dataset, xr.Dataset],
                                                      tmp_path: Path) -> None:
    ds, opened = demo_cube
    m = measured(ds)
    assert m.any(axis=(1, 2)).all() and m.any(axis=(0, 2)).all()  # every cell line and condition has profiles
    adata = to_anndata(opened)
    assert adata.shape == (int(m.sum()), ds.sizes["gene"])
    assert list(adata.obs.columns) == ["cell_line", "condition", "replicate", "dose_um", "source", "plate"]
    assert list(adata.var_names) == [str(g) for g in ds["gene"].values]
    assert list(adata.var["gene_symbol"]) == [str(g) for g in ds["gene_symbol"].values]
    assert adata.X.dtype == np.float32
    row = adata.obs.reset_index(drop=True).query("condition == 'SN-38'").index[0]
    o = adata.obs.iloc[row]
    np.testing.assert_array_equal(adata.X[row], ds["expression"].sel(cell_line=o.cell_line, condition="SN-38",
                                                                     replicate=o.replicate).values)
    assert o.dose_um == 10.0 and o.source == "synthetic-L1000"
    assert o.plate == ds["plate"].sel(cell_line=o.cell_line, condition="SN-38", replicate=o.replicate).item()
    assert_same_cube(from_anndata(adata), ds)
    path = write_h5ad(adata, tmp_path / "profiles.h5ad")
    read = ad.read_h5ad(path)
    assert_same_cube(from_anndata(read), ds)
    only = to_anndata(opened, conditions=[CONDITION_CONTROL, "SN-38"])
    assert set(only.obs["condition"]) == {CONDITION_CONTROL, "SN-38"}
    sub = from_anndata(only)
    assert list(sub["condition"].values) == [CONDITION_CONTROL, "SN-38"]
    np.testing.assert_array_equal(sub["expression"].sel(condition="SN-38").values,
                                  ds["expression"].sel(condition="SN-38", cell_line=sub["cell_line"]).values)
    with pytest.raises(CubeError, match="'nope'"):
        to_anndata(opened, conditions=["nope"])


def hand_made(n_genes: int = 5, sparse: bool = False) -> ad.AnnData:
    """L1000-style AnnData: CMap column names, DMSO controls, string replicate labels out of order, two
    drugs, one baseline profile, a missing plate, genes keyed by symbol with Entrez ids in a var column."""
    rows = [  # cell_id, pert_iname, rep, dose, plate
        ("MCF7", "DMSO", "X2", None, "P1"), ("MCF7", "DMSO", "X1", None, "P1"),
        ("MCF7", "vorinostat", "X1", 10.0, "P1"), ("MCF7", "vorinostat", "X3", 10.0, None),
        ("A375", "DMSO", "X1", None, "P2"), ("A375", "trametinib", "X1", 0.04, "P2"),
        ("A375", "vorinostat", "X2", 3.33, "P2"), ("PC3", "baseline", "X1", None, None),
    ]
    obs = pd.DataFrame(rows, columns=["cell_id", "pert_iname", "rep", "pert_dose", "rna_plate"],
                       index=[f"s{i}" for i in range(len(rows))])
    x = np.random.default_rng(3).normal(8, 2, size=(len(rows), n_genes)).astype(np.float32)
    x[:, 0] = np.arange(len(rows))  # row id in gene 0
    var = pd.DataFrame({"entrez": ["5720", "466", "6009", "2309", "387"][:n_genes]},
                       index=["PSME1", "ATF1", "RHEB", "FOXO3", "RHOA"][:n_genes])
    return ad.AnnData(X=sp.csr_matrix(x) if sparse else x, obs=obs, var=var)


KEYS = {"cell_line": "cell_id", "condition": "pert_iname", "replicate": "rep", "dose_um": "pert_dose",
        "plate": "rna_plate"}


@pytest.mark.parametrize("sparse", [False, True])
def test_hand_made_anndata_to_cube_and_back(sparse: bool) -> None:
    adata = hand_made(sparse=sparse)
    ds = from_anndata(adata, obs_keys=KEYS, gene_key="entrez", symbol_key="nothing", control="DMSO")
    assert list(ds["cell_line"].values) == ["MCF7", "A375", "PC3"]  # first appearance
    assert list(ds["condition"].values) == [CONDITION_CONTROL, "vorinostat", "trametinib", CONDITION_BASELINE]
    assert list(ds["gene"].values) == ["5720", "466", "6009", "2309", "387"]
    assert list(ds["gene_symbol"].values) == list(ds["gene"].values)  # no symbol column: the ids
    assert ds.sizes["replicate"] == 2
    row = ds["expression"].sel(gene="5720")  # the source row of each slot
    assert list(row.sel(cell_line="MCF7", condition=CONDITION_CONTROL).values) == [1, 0]  # X1 before X2
    assert list(row.sel(cell_line="MCF7", condition="vorinostat").values) == [2, 3]
    assert np.isnan(row.sel(cell_line="A375", condition="trametinib").values[1])
    assert list(ds["source"].values) == ["L1000", "L1000", "L1000", "baseline"]
    dose = ds["dose_um"].to_pandas()
    assert dose.loc["MCF7", "vorinostat"] == 10.0 and dose.loc["A375", "vorinostat"] == 3.33
    assert np.isnan(dose.loc["MCF7", CONDITION_CONTROL]) and np.isnan(dose.loc["PC3", "trametinib"])
    assert list(ds["plate"].sel(cell_line="MCF7", condition="vorinostat").values) == ["P1", ""]
    x = adata.X.toarray() if sparse else adata.X
    back = to_anndata(ds)
    assert back.n_obs == adata.n_obs
    ids = back.X[:, 0].astype(int)
    np.testing.assert_array_equal(back.X, x[ids])
    np.testing.assert_array_equal(back.obs["cell_line"].astype(str), adata.obs["cell_id"].iloc[ids])
    want_cond = adata.obs["pert_iname"].iloc[ids].replace("DMSO", CONDITION_CONTROL)
    np.testing.assert_array_equal(back.obs["condition"].astype(str), want_cond)
    np.testing.assert_array_equal(back.obs["dose_um"], adata.obs["pert_dose"].iloc[ids].astype(float))
    assert_same_cube(from_anndata(back), ds)


def test_categorical_order_and_nan_profiles() -> None:
    adata = hand_made()
    for col, cats in (("cell_id", ["PC3", "A375", "MCF7", "HT29"]),
                      ("pert_iname", ["trametinib", "DMSO", "vorinostat", "baseline", "unused"])):
        adata.obs[col] = pd.Categorical(adata.obs[col], categories=cats)
    adata.X[3, 2] = np.nan
    ds = from_anndata(adata, obs_keys=KEYS, gene_key="entrez", control="DMSO", allow_nan=True)
    assert list(ds["cell_line"].values) == ["PC3", "A375", "MCF7"]  # categories, unused dropped
    assert list(ds["condition"].values) == ["trametinib", CONDITION_CONTROL, "vorinostat", CONDITION_BASELINE]
    v = ds["expression"].sel(cell_line="MCF7", condition="vorinostat", replicate=1).values
    assert np.isnan(v[2]) and v[0] == 3
    assert "plate" in ds.data_vars
    no_plate = from_anndata(adata, obs_keys={**KEYS, "plate": "absent"}, gene_key="entrez", control="DMSO",
                            allow_nan=True)
    assert "plate" not in no_plate.data_vars
    assert "plate" not in to_anndata(no_plate).obs.columns


def _obs(**changes) -> ad.AnnData:
    adata = hand_made()
    for k, v in changes.items():
        adata.obs[k] = v
    return adata


BAD = {
    "missing cell line column": (lambda: hand_made(), {"obs_keys": {**KEYS, "cell_line": "cell"}},
                                 r"obs\['cell'\]: missing column .*obs_keys=\{'cell_line': 'COLUMN'\}"),
    "empty cell line": (lambda: _obs(cell_id=["MCF7", "", *["A375"] * 6]), {},
                        r"obs\['cell_id'\]: 1 missing or empty value\(s\) \(first at row 's1'\)"),
    "NaN value": (lambda: _x(np.nan), {},
                  r"X: 1 non-finite value\(s\) .*row 's4', gene '6009'.*allow_nan=True"),
    "inf value": (lambda: _x(np.inf), {"allow_nan": True}, r"X: 1 inf value\(s\) .*row 's4', gene '6009'"),
    "too big for float32": (lambda: _x(1e300), {}, r"X: 1 non-finite value.*as float32"),
    "non-numeric X": (lambda: ad.AnnData(X=np.full((8, 5), "a", dtype=object), obs=hand_made().obs,
                                         var=hand_made().var), {}, r"X: dtype object is not numeric"),
    "duplicate genes": (lambda: _var(["5720", "466", "5720", "2309", "387"]), {},
                        r"var\['entrez'\]: duplicate gene id\(s\) \['5720'\]; .*drop or merge"),
    "missing gene id": (lambda: _var(["5720", "466", None, "2309", "387"]), {},
                        r"var\['entrez'\]: 1 missing or empty value"),
    "unknown gene column": (lambda: hand_made(), {"gene_key": "entrez_id"},
                            r"var\['entrez_id'\]: no such var"),
    "several doses": (lambda: _obs(pert_dose=[None, None, 10.0, 1.0, None, 0.04, 3.33, None]), {},
                      r"obs\['pert_dose'\]: cell line 'MCF7', condition 'vorinostat' has several "
                      r"doses \(1, 10\)"),
    "negative dose": (lambda: _obs(pert_dose=[None, None, -1.0, 10.0, None, 0.04, 3.33, None]), {},
                      r"obs\['pert_dose'\]: value -1.0 at row 's2' is not a finite dose"),
    "text dose": (lambda: _obs(pert_dose=[None, None, "ten", "ten", None, 0.04, 3.33, None]), {},
                  r"obs\['pert_dose'\]: value 'ten' at row 's2'"),
    "duplicate replicate": (lambda: _obs(rep=["X1", "X1", "X1", "X2", "X1", "X1", "X1", "X1"]), {},
                            r"obs\['rep'\]: .*share replicate label 'X1' \(row 's[01]'\)"),
    "missing replicate": (lambda: _obs(rep=["X1", None, "X1", "X2", "X1", "X1", "X1", "X1"]), {},
                          r"obs\['rep'\]: missing value at row 's1'"),
    "no control": (lambda: hand_made(), {"control": "vehicle"},
                   r"obs\['pert_iname'\]: no control profile .*control='LABEL'"),
    "control clash": (lambda: _obs(pert_iname=["DMSO", "control", *hand_made().obs["pert_iname"][2:]]), {},
                      r"has both 'DMSO' \(control=\) and 'control'"),
    "no drug": (lambda: hand_made()[[0, 1, 4, 7]].copy(), {}, r"obs\['pert_iname'\]: no drug condition"),
    "several sources": (lambda: _obs(source=[*["L1000"] * 3, "other", *["L1000"] * 3, "GDSC"]), {},
                        r"obs\['source'\]: condition 'vorinostat' has several"),
    "unknown field": (lambda: hand_made(), {"obs_keys": {"cell": "cell_id"}},
                      r"obs_keys: unknown field 'cell'"),
    "missing layer": (lambda: hand_made(), {"layer": "counts"}, r"layers\['counts'\]: no such layer"),
    "empty": (lambda: hand_made()[:0].copy(), {}, r"AnnData: 0 profiles x 5 genes"),
    "bad uns attrs": (lambda: _uns("{not json"), {}, r"uns\['cube_attrs'\]: not a JSON object"),
}


def _x(value: float) -> ad.AnnData:
    adata = hand_made()
    adata.X = adata.X.astype(np.float64)
    adata.X[4, 2] = value
    return adata


def _var(entrez: list) -> ad.AnnData:
    adata = hand_made()
    adata.var["entrez"] = entrez
    return adata


def _uns(text: str) -> ad.AnnData:
    adata = hand_made()
    adata.uns["cube_attrs"] = text
    return adata


@pytest.mark.parametrize("case", list(BAD))
def test_bad_anndata_names_the_field(case: str) -> None:
    make, kwargs, pattern = BAD[case]
    kw = {"obs_keys": KEYS, "gene_key": "entrez", "control": "DMSO", **kwargs}
    with pytest.raises(CubeError, match=pattern) as e:
        from_anndata(make(), **kw)
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value)


def test_memory_estimate_refuses_a_huge_cube(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets.anndata_io

    monkeypatch.setattr(datasets.anndata_io, "available_memory", lambda: 600)
    with pytest.raises(CubeError, match=r"the cube would need about 0\.0 GiB .*3 cell lines x 4 conditions x "
                                         r"2 replicates x 5 genes.*subset the AnnData"):
        from_anndata(hand_made(), obs_keys=KEYS, gene_key="entrez", control="DMSO")


def test_build_from_h5ad_reads_in_blocks_and_writes_atomically(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    adata = hand_made()
    src = write_h5ad(adata, tmp_path / "in.h5ad")
    monkeypatch.setattr(anndata_io, "_BLOCK_VALUES", 15)  # 3 rows of 5 genes per block
    seen: list[tuple[int, int]] = []
    ds, summary = build_from_h5ad(src, tmp_path / "cube.zarr", obs_keys=KEYS, gene_key="entrez",
                                  control="DMSO", progress=lambda i, n: seen.append((i, n)))
    assert seen == [(3, 8), (6, 8), (8, 8)]
    cube = open_cube(tmp_path / "cube.zarr")
    want = from_anndata(adata, obs_keys=KEYS, gene_key="entrez", control="DMSO")
    np.testing.assert_array_equal(cube["expression"].values, want["expression"].values)
    np.testing.assert_array_equal(ds["expression"].values, want["expression"].values)
    prov = json.loads(cube.attrs["provenance"])
    assert prov["builder"] == "datasets.anndata_io.build_from_h5ad"
    assert prov["inputs"][0]["role"] == "h5ad" and len(prov["inputs"][0]["sha256"]) == 64
    assert prov["options"]["control"] == "DMSO"
    assert "vorinostat: 2 cell lines, 3 profiles, dose 3.33, 10 uM" in summary
    assert "cube: 3 cell lines x 4 conditions x 2 replicates x 5 genes" in summary
    with pytest.raises(CubeError, match="already exists"):
        build_from_h5ad(src, tmp_path / "cube.zarr", obs_keys=KEYS, gene_key="entrez", control="DMSO")
    with pytest.raises(CubeError, match="--out is the input file"):
        build_from_h5ad(src, src, overwrite=True)
    (tmp_path / "text.h5ad").write_text("not hdf5\n")
    with pytest.raises(CubeError, match=r"text\.h5ad: cannot read as \.h5ad"):
        build_from_h5ad(tmp_path / "text.h5ad", tmp_path / "c2.zarr")
    with pytest.raises(CubeError, match=r"obs\['cell_line'\]: missing column"):  # bad content
        build_from_h5ad(src, tmp_path / "c2.zarr")
    with pytest.raises(CubeError, match="no such .h5ad file"):
        build_from_h5ad(tmp_path / "absent.h5ad", tmp_path / "c2.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.zarr", "in.h5ad", "text.h5ad"]


def test_build_from_h5ad_of_a_cube_keeps_its_provenance_upstream(demo_cube: tuple[xr.Dataset, xr.Dataset],
                                                                  tmp_path: Path) -> None:
    ds, opened = demo_cube
    src = write_h5ad(to_anndata(opened), tmp_path / "demo.h5ad")
    built, _ = build_from_h5ad(src, tmp_path / "cube.zarr")
    cube = open_cube(tmp_path / "cube.zarr")
    np.testing.assert_array_equal(cube["expression"].values, ds["expression"].values)
    assert json.loads(cube.attrs["provenance"])["upstream"] == ds.attrs["provenance"]
    assert cube.attrs["ground_truth"] == ds.attrs["ground_truth"]


def test_predictions_written_as_h5ad_readable_by_anndata(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    genes = ["5720", "466", "6009"]
    x2_hat = rng.normal(size=(6, 3))
    kinds = ["prediction"] * 3 + ["reconstruction"] * 3
    adata = predictions_anndata(x2_hat, ["A", "B", "C"] * 2, "test", genes, repeat=1,
                                fold=[0, 0, 1, 0, 0, 1], kind=kinds, drug="SN-38", method="pertvae",
                                gene_symbols=["PSME1", "ATF1", "RHEB"])
    path = write_h5ad(adata, tmp_path / "predictions" / "pertvae" / "SN-38.h5ad")
    back = ad.read_h5ad(path)
    np.testing.assert_array_equal(back.X, x2_hat.astype(np.float32))
    assert list(back.var_names) == genes and list(back.var["gene_symbol"]) == ["PSME1", "ATF1", "RHEB"]
    assert list(back.obs["cell_line"]) == ["A", "B", "C"] * 2
    assert list(back.obs["split"]) == ["test"] * 6 and list(back.obs["kind"]) == kinds
    assert list(back.obs["repeat"]) == [1] * 6 and list(back.obs["fold"]) == [0, 0, 1, 0, 0, 1]
    assert list(back.obs["condition"]) == ["SN-38"] * 6
    assert back.uns["drug"] == "SN-38" and back.uns["method"] == "pertvae"
    assert os.listdir(path.parent) == ["SN-38.h5ad"]
    # further obs columns keep their type, a layer of X's shape, uns stays structured
    more = predictions_anndata(x2_hat, ["A", "B", "C"] * 2, "test", genes, obs={"x2_replicate": np.arange(6),
                               "plate": "P1"}, layers={"x2": x2_hat + 1}, uns={"join": {"x2": "sel(...)"}})
    back = ad.read_h5ad(write_h5ad(more, tmp_path / "more.h5ad"))
    assert back.obs["x2_replicate"].dtype.kind == "i" and list(back.obs["plate"]) == ["P1"] * 6
    np.testing.assert_array_equal(back.layers["x2"], (x2_hat + 1).astype(np.float32))
    assert back.uns["join"] == {"x2": "sel(...)"}
    # replaced atomically: a failed write keeps the old file and leaves no temp file
    smaller = predictions_anndata(x2_hat[:2], ["A", "B"], "test", genes)
    assert "repeat" not in smaller.obs and list(smaller.obs["kind"]) == ["prediction"] * 2

    def fail(self: ad.AnnData, filename: Path, **kwargs) -> None:
        Path(filename).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ad.AnnData, "write_h5ad", fail)
        with pytest.raises(CubeError, match="SN-38.h5ad: cannot write \\(No space left on device\\)"):
            write_h5ad(smaller, path)
    assert ad.read_h5ad(path).n_obs == 6 and os.listdir(path.parent) == ["SN-38.h5ad"]
    write_h5ad(smaller, path)
    assert ad.read_h5ad(path).n_obs == 2
    # a temp file of a killed writer is removed
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = path.parent / f".SN-38.h5ad.tmp-{dead}-0123abcd"
    stale.write_bytes(b"x")
    write_h5ad(smaller, path)
    assert os.listdir(path.parent) == ["SN-38.h5ad"]


@pytest.mark.parametrize("call, pattern", [
    (lambda: predictions_anndata(np.zeros((2, 3)), ["A", "B"], "test", ["1", "2"]), "genes: 2 ids for 3"),
    (lambda: predictions_anndata(np.zeros((2, 2)), ["A", "B"], "test", ["1", "1"]), "genes: duplicate"),
    (lambda: predictions_anndata(np.zeros((2, 2)), ["A"], "test", ["1", "2"]), r"cell_line: \(1,\) values"),
    (lambda: predictions_anndata(np.zeros((2, 2)), ["A", "B"], "test", ["1", "2"], kind="pred"),
     r"kind: \['pred'\]; expected one of"),
    (lambda: predictions_anndata(np.zeros((2, 2)), ["A", "B"], "test", ["1", "2"], fold="x"),
     "fold: expected integers"),
    (lambda: predictions_anndata(np.zeros(2), ["A", "B"], "test", ["1", "2"]), "x2_hat: expected a numeric"),
    (lambda: predictions_anndata(np.zeros((2, 2)), ["A", "B"], "test", ["1", "2"], layers={"x": np.zeros(2)}),
     r"layer 'x': shape \(2,\)"),
    (lambda: predictions_anndata(np.zeros((2, 2)), ["A", "B"], "test", ["1", "2"], obs={"x2_replicate": [1]}),
     r"obs 'x2_replicate': \(1,\) values for 2 rows"),
])
def test_bad_predictions_input(call, pattern: str) -> None:
    with pytest.raises(CubeError, match=pattern):
        call()


def test_write_h5ad_refuses_a_directory(tmp_path: Path) -> None:
    adata = predictions_anndata(np.zeros((1, 1)), ["A"], "test", ["1"])
    with pytest.raises(CubeError, match="is a directory"):
        write_h5ad(adata, tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(CubeError, match="cannot create its directory"):
        write_h5ad(adata, tmp_path / "file" / "p.h5ad")


def test_cube_without_plates_roundtrip() -> None:
    rng = np.random.default_rng(1)
    e = np.full((2, 3, 2, 4), np.nan, dtype=np.float32)
    e[:, 0] = rng.normal(size=(2, 2, 4))
    e[0, 1, 0] = rng.normal(size=4)
    e[1, 2, :] = rng.normal(size=(2, 4))
    dose = np.array([[np.nan, 1.0, np.nan], [np.nan, np.nan, 2.5]])
    ds = make_cube(e, ["a", "b"], [CONDITION_CONTROL, "d1", "d2"], ["1", "2", "3", "4"], list("WXYZ"), dose,
                   ["L1000"] * 3, {"note": {"nested": [1, 2]}})
    back = from_anndata(to_anndata(ds))
    assert "plate" not in back.data_vars
    np.testing.assert_array_equal(back["expression"].values, e)
    np.testing.assert_array_equal(back["dose_um"].values, dose)
    assert back.attrs == ds.attrs and cube_fingerprint(back) == cube_fingerprint(ds)


def test_docs_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    text = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    section = text.split("## AnnData in and out", 1)[1].split("\n## ", 1)[0]
    code = section.split("Example (run by tests/datasets/test_anndata_io.py):", 1)[1]
    code = code.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "docs/api.md", "exec"), {})
    out = capsys.readouterr().out
    assert "control" in out and "{'cell_line': 2, 'condition': 2, 'replicate': 1, 'gene': 3}" in out


@pytest.mark.parametrize("empty", ["", "nan", " NaN "])
def test_dose_left_empty_as_text_is_no_dose(empty: str) -> None:
    """A dose column of strings ('' or 'nan' where there is no dose, as numbers saved as text write NaN) was
    refused with "value '' ... is not a finite dose ...; fix it or leave it empty", though it was empty."""
    doses = [empty, empty, "10", "10", empty, "0.04", "3.33", empty]
    ds = from_anndata(_obs(pert_dose=doses), obs_keys=KEYS, gene_key="entrez", control="DMSO")
    dose = ds["dose_um"].sel(cell_line="MCF7")
    assert float(dose.sel(condition="vorinostat")) == 10.0
    assert np.isnan(float(dose.sel(condition="control")))


def test_duplicate_numeric_replicate_label_reads_as_the_number() -> None:
    """Integer replicate labels were named by numpy's repr: "share replicate label np.int64(1)"."""
    with pytest.raises(CubeError, match=r"share replicate label 1 \(row 's[01]'\);"):
        from_anndata(_obs(rep=[1, 1, 1, 2, 1, 1, 1, 1]), obs_keys=KEYS, gene_key="entrez", control="DMSO")


@pytest.mark.parametrize("extra, flag", [
    ([], "--control LABEL"),                                   # controls labelled DMSO, not 'control'
    (["--control", "DMSO", "--obs-key", "cell_line=cell"], "--obs-key cell_line=COLUMN"),
    (["--control", "DMSO", "--obs-key", "cell=cell_id"], "--obs-key FIELD=COLUMN"),
])
def test_h5ad_build_errors_name_the_build_flag(tmp_path: Path, capsys: pytest.CaptureFixture, extra: list,
                                               flag: str) -> None:
    """build --h5ad told its users to pass control='LABEL' or obs_keys={...}, Python keywords the command
    line does not take; the error now names the flag as well."""
    from datasets.build import main as build_main

    src = write_h5ad(hand_made(), tmp_path / "in.h5ad")
    keys = [a for f, c in KEYS.items() if f != "cell_line" for a in ("--obs-key", f"{f}={c}")]
    out = tmp_path / "cube.zarr"
    argv = ["--h5ad", str(src), "--out", str(out), "--gene-key", "entrez",
            "--obs-key", "cell_line=cell_id", *keys, *extra]
    assert build_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and flag in err, err
    assert not out.exists()


def test_counts_are_refused_as_a_linear_scale(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Counts (or TPM) were built into a cube as they were and scored as if log expression; the baselines
    had the same rule (datasets.baseline.LINEAR_MAX) and the h5ad input none. log2(x+1) of them builds."""
    from datasets.build import main as build_main

    adata = hand_made()
    counts = np.random.default_rng(0).poisson(300, size=adata.shape).astype(np.float32)
    adata.X = counts
    with pytest.raises(CubeError, match=r"^X: values up to \d+: a linear scale .*store log2\(x\+1\)"):
        from_anndata(adata, obs_keys=KEYS, gene_key="entrez", control="DMSO")
    src = write_h5ad(adata, tmp_path / "counts.h5ad")
    keys = [a for f, c in KEYS.items() for a in ("--obs-key", f"{f}={c}")]
    argv = ["--h5ad", str(src), "--out", str(tmp_path / "cube.zarr"), "--gene-key", "entrez",
            "--control", "DMSO", *keys]
    assert build_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {src}: X: values up to ") and err.count("\n") == 1
    assert not (tmp_path / "cube.zarr").exists()
    adata.X = np.log2(counts + 1)
    ds = from_anndata(adata, obs_keys=KEYS, gene_key="entrez", control="DMSO")
    assert float(ds["expression"].max()) <= 10.0


def test_one_cell_line_given_as_a_string_labels_every_row() -> None:
    """A str cell_line was split into its letters ('MCF' for 3 rows: 'M', 'C', 'F'), mislabelling rows."""
    from datasets.anndata_io import predictions_anndata

    a = predictions_anndata(np.zeros((3, 2)), "MCF", "test", ["1", "2"])
    assert list(a.obs["cell_line"]) == ["MCF", "MCF", "MCF"]


def test_summary_says_which_treated_cell_lines_have_no_control() -> None:
    adata = hand_made()
    keep = ~((adata.obs["cell_id"] == "A375") & (adata.obs["pert_iname"] == "DMSO")).to_numpy()
    summary = describe(from_anndata(adata[keep].copy(), obs_keys=KEYS, gene_key="entrez", control="DMSO"))
    assert "vorinostat: 2 cell lines (1 with controls: 1 left out of the fits), 3 profiles" in summary
    assert "trametinib: 1 cell line (0 with controls: 1 left out of the fits), 1 profile" in summary
    whole = describe(from_anndata(adata, obs_keys=KEYS, gene_key="entrez", control="DMSO"))
    assert "vorinostat: 2 cell lines, 3 profiles" in whole


def test_summary_counts_profiles_with_a_nan_gene_as_not_used() -> None:
    """--allow-nan (review edge54): a run pairs and trains on fully measured profiles only, but the summary
    counted a profile with one NaN gene as measured: A375's only control missing a gene left A375 out of
    every vorinostat and trametinib fit while the summary said 'vorinostat: 2 cell lines, 3 profiles'."""
    adata = hand_made()
    adata.X[4, 2] = np.nan   # A375's only control
    adata.X[2, 1] = np.nan   # one of MCF7's two vorinostat replicates
    summary = describe(from_anndata(adata, obs_keys=KEYS, gene_key="entrez", control="DMSO", allow_nan=True))
    assert "vorinostat: 2 cell lines (1 with controls: 1 left out of the fits), 3 profiles" in summary
    assert "trametinib: 1 cell line (0 with controls: 1 left out of the fits), 1 profile" in summary
    assert ("not used by a run: 2 profiles with a NaN gene (a run pairs and trains on fully measured "
            "profiles only): control 1 of 3, vorinostat 1 of 3") in summary
    assert "NaN gene" not in describe(from_anndata(hand_made(), obs_keys=KEYS, gene_key="entrez",
                                                   control="DMSO"))
