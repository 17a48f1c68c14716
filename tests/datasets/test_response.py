"""The cube's response variable (datasets.cube) and datasets.response: schema checks, a real zarr store and
AnnData round trip, the fingerprint, matching a response file to the cube's drugs and cell lines (synonyms,
ids through the cell map, the mean of repeated measurements) and one drug's responses read back."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import xarray as xr

from datasets.anndata_io import from_anndata, to_anndata, write_h5ad
from datasets.baseline import normalize_name
from datasets.cube import (
    RESPONSE,
    RESPONSE_DIRECTION,
    CubeError,
    add_response,
    cube_fingerprint,
    make_cube,
    open_cube,
    write_cube,
)
from datasets.pairs import drug_data
from datasets.response import attach_response, drug_response, match_response, render, response_attrs
from datasets.response_tables import ResponseError, read_gdsc
from datasets.studies import StudyError
from tests.datasets.response_layout import write_gdsc

CELLS = ["A375", "MCF7", "PC3", "HT29"]
CONDS = ["control", "selumetinib", "GDC-0941", "baseline"]
ATTRS = {"measure": "1 - AUC", "units": "fraction", "direction": RESPONSE_DIRECTION, "source": "f.csv"}
# The cube below without a response, fingerprinted by datasets.cube before the response variable existed.
FINGERPRINT_BEFORE = "b9f62f123de049d0a192ad7be21d4943e3eb2acf2c1cc6a74d4e24ef8ae9cac8"


def cube_args(conds: list[str] | None = None) -> dict:
    """4 cell lines: controls for all, drug 1 on the first 3 (PC3's drug profile has a NaN gene: not paired),
    drug 2 on the last 3, baseline singletons for all but HT29."""
    rng = np.random.default_rng(7)
    e = np.full((4, 4, 2, 5), np.nan, dtype=np.float32)
    e[:, 0] = rng.normal(size=(4, 2, 5))
    e[:3, 1, :2] = rng.normal(size=(3, 2, 5))
    e[1:, 2, 0] = rng.normal(size=(3, 5))
    e[:, 3, 0] = rng.normal(size=(4, 5))
    dose = np.full((4, 4), np.nan)
    dose[:3, 1] = 10.0
    dose[1:, 2] = 1.0
    args = dict(expression=e, cell_lines=CELLS,
                conditions=conds or ["control", "selumetinib", "SN-38", "baseline"],
                genes=[str(100 + g) for g in range(5)], gene_symbols=[f"G{g}" for g in range(5)],
                dose_um=dose, source=["L1000"] * 3 + ["GDSC"],
                attrs={"provenance": json.dumps({"inputs": [], "seed": 7})})
    return args


def cube_with_gaps(conds: list[str] | None = None) -> xr.Dataset:
    args = cube_args(conds)
    args["expression"][2, 1, :, 0] = np.nan  # PC3's selumetinib profiles lack a gene: no pair
    args["expression"][3, 3] = np.nan  # HT29: no singleton
    return make_cube(**args)


def response(values: dict[tuple[int, int], float]) -> np.ndarray:
    r = np.full((4, 4), np.nan)
    for (i, k), v in values.items():
        r[i, k] = v
    return r


def test_fingerprint_without_response_unchanged_and_with_it_changed() -> None:
    ds = make_cube(**cube_args())
    assert cube_fingerprint(ds) == FINGERPRINT_BEFORE
    with_r = add_response(ds, response({(0, 1): 0.6, (1, 1): 0.1}), ATTRS)
    other = add_response(ds, response({(0, 1): 0.6, (1, 1): 0.2}), ATTRS)
    relabelled = add_response(ds, response({(0, 1): 0.6, (1, 1): 0.1}), {**ATTRS, "measure": "-LN_IC50"})
    prints = {cube_fingerprint(x) for x in (ds, with_r, other, relabelled)}
    assert len(prints) == 4
    assert cube_fingerprint(with_r.drop_vars(RESPONSE)) == FINGERPRINT_BEFORE


def test_response_roundtrips_through_zarr_and_anndata(tmp_path: Path) -> None:
    r = response({(0, 1): 0.6, (1, 1): 0.1, (2, 2): -0.25})
    ds = make_cube(**cube_args(), response=r, response_attrs=ATTRS)
    back = open_cube(write_cube(ds, tmp_path / "c.zarr"))
    np.testing.assert_array_equal(back[RESPONSE].values, r)
    assert dict(back[RESPONSE].attrs) == ATTRS and back[RESPONSE].dims == ("cell_line", "condition")
    assert cube_fingerprint(back) == cube_fingerprint(ds)
    h5 = write_h5ad(to_anndata(back), tmp_path / "c.h5ad")
    again = from_anndata(ad.read_h5ad(h5))
    np.testing.assert_array_equal(again[RESPONSE].values, r)
    assert cube_fingerprint(again) == cube_fingerprint(ds)
    part = from_anndata(to_anndata(ds, conditions=["control", "SN-38", "baseline"]))  # one drug only
    np.testing.assert_array_equal(part[RESPONSE].values, r[:, [0, 2, 3]])


@pytest.mark.parametrize("change, message", [
    (lambda a: {**a, "values": np.zeros((3, 4))}, r"response: shape \(3, 4\), expected \(cell_lines, cond"),
    (lambda a: {**a, "attrs": {k: v for k, v in ATTRS.items() if k != "units"}},
     r"response attrs \['units'\] missing or empty"),
    (lambda a: {**a, "attrs": {**ATTRS, "direction": "lower = more sensitive"}},
     r"response direction 'lower = more sensitive'.*convert the values \(e\.g\. 1 - AUC"),
    (lambda a: {**a, "values": response({(0, 0): 1.0})}, r"response has values for condition 'control'"),
    (lambda a: {**a, "values": response({(0, 3): 1.0})}, r"response has values for condition 'baseline'"),
    (lambda a: {**a, "values": response({(0, 1): np.inf})}, r"response contains 1 inf value"),
])
def test_bad_response_refused(change, message) -> None:
    ds = make_cube(**cube_args())
    a = change({"values": response({(0, 1): 0.5}), "attrs": ATTRS})
    with pytest.raises(CubeError, match=message):
        add_response(ds, a["values"], a["attrs"])


def test_open_cube_checks_a_stored_response(tmp_path: Path) -> None:
    ds = make_cube(**cube_args(), response=response({(0, 1): 0.5}), response_attrs=ATTRS)
    path = write_cube(ds, tmp_path / "c.zarr")
    meta = path / RESPONSE / "zarr.json"
    m = json.loads(meta.read_text())
    m["attributes"]["direction"] = "lower = more sensitive"
    meta.write_text(json.dumps(m))
    with pytest.raises(CubeError, match=r"c\.zarr: response direction 'lower = more sensitive'"):
        open_cube(path)


# ---------------------------------------------------------------------------------------------- matching
GDSC_ROWS = [
    ("906793", "A-375", "Selumetinib", "-2.0", "0.40", "-1.0"),  # A375 by COSMIC id (cell map)
    ("906793", "A-375", "Selumetinib", "-1.0", "0.50", "-0.5"),  # measured twice: mean
    ("905946", "MCF7", "Selumetinib", "1.0", "0.90", "0.8"),
    ("000001", "HT-29", "Selumetinib", "0.0", "0.70", "0.0"),  # no id in the cell map: by its name
    ("1330988", "KMS-11", "Selumetinib", "0.5", "0.80", "0.2"),  # not in the cube
    ("905934", "PC-3", "Pictilisib", "0.5", "0.30", "0.2"),  # GDC-0941 under its other name
    ("905946", "MCF7", "Pictilisib", "0.7", "0.65", "0.3"),
]
CELL_MAP = {normalize_name("906793"): "A375", normalize_name("905946"): "MCF7",
            normalize_name("905934"): "PC3"}


@pytest.fixture
def gdsc(tmp_path: Path):
    return read_gdsc(write_gdsc(tmp_path / "GDSC2_fitted_dose_response_27Oct23.csv", GDSC_ROWS))


def test_match_resolves_names_maps_ids_and_averages(gdsc) -> None:
    ds = cube_with_gaps(CONDS)
    m = match_response(gdsc, CELLS, CONDS, CELL_MAP)
    assert {x.requested: (x.pert_iname, x.via) for x in m.matches} == {
        "selumetinib": ("Selumetinib", "GDSC drug name, ignoring case and punctuation"),
        "GDC-0941": ("Pictilisib", "synonym table")}
    expect = response({(0, 1): np.mean([0.6, 0.5]), (1, 1): 0.1, (3, 1): 0.3, (2, 2): 0.7, (1, 2): 0.35})
    np.testing.assert_allclose(m.values, expect)
    assert m.counts[0, 1] == 2 and m.counts.max() == 2 and m.unmatched_cells == ["KMS-11"]
    out = attach_response(ds, m)
    attrs = dict(out[RESPONSE].attrs)
    assert attrs["measure"] == "1 - AUC" and attrs["direction"] == RESPONSE_DIRECTION
    assert attrs["source"] == "GDSC2_fitted_dose_response_27Oct23.csv" and attrs["format"] == "gdsc"
    assert "1 cell line-drug pairs had several, up to 2" in attrs["aggregation"]
    assert attrs == response_attrs(m)
    text = render(m, out)
    assert "response: GDSC AUC stored as 1 - AUC (higher = more sensitive)" in text
    assert "GDC-0941 = 'Pictilisib' (synonym table): 2 cell lines with a response (2 with pairs, 2 with a " \
           "baseline singleton)" in text
    assert "selumetinib = 'Selumetinib' (GDSC drug name, ignoring case and punctuation): 3 cell lines with " \
           "a response (2 with pairs, 2 with a baseline singleton)" in text
    assert "cell lines: 4 of the file's 5 matched to cube cell lines; not in the cube: KMS-11" in text


def test_drug_missing_is_an_error_or_partial(gdsc) -> None:
    conds = ["control", "selumetinib", "vorinostat", "baseline"]
    with pytest.raises(ResponseError, match=r"no response rows for cube drug\(s\) 'vorinostat'.*"
                                            r"--response-partial"):
        match_response(gdsc, CELLS, conds, CELL_MAP)
    m = match_response(gdsc, CELLS, conds, CELL_MAP, partial=True)
    assert m.missing == ["vorinostat"] and np.isnan(m.values[:, 2]).all()
    assert "vorinostat: not in the file: no response" in render(m, attach_response(cube_with_gaps(conds), m))


def test_drug_without_cube_cell_lines_and_no_cell_line_matched(tmp_path: Path) -> None:
    rows = [*GDSC_ROWS, ("1330988", "KMS-11", "SN-38", "0", "0.5", "0")]
    t = read_gdsc(write_gdsc(tmp_path / "g.csv", rows))
    conds = ["control", "selumetinib", "SN-38", "baseline"]
    with pytest.raises(ResponseError, match=r"no response for any cube cell line for cube drug\(s\) 'SN-38'"):
        match_response(t, CELLS, conds, CELL_MAP)
    with pytest.raises(ResponseError, match=r"none of its cell lines .* is a cube cell line.*--model"):
        match_response(t, ["X1", "X2"], conds, {}, partial=True)


def test_ambiguous_drug_name_is_refused(tmp_path: Path) -> None:
    t = read_gdsc(write_gdsc(tmp_path / "g.csv", [*GDSC_ROWS, ("906793", "A375", "SN-38", "0", "0.5", "0"),
                                                 ("906793", "A375", "SN38", "0", "0.4", "0")]))
    with pytest.raises(StudyError, match=r"drug 'sn-38' is ambiguous \(GDSC drug name, ignoring case and "
                                         r"punctuation\): it names GDSC drug name SN-38, SN38; the response "
                                         r"file g\.csv writes one drug two ways: give its rows one name"):
        match_response(t, CELLS, ["control", "sn-38", "baseline"], CELL_MAP)


def test_drug_response_for_the_harness(gdsc) -> None:
    ds = attach_response(cube_with_gaps(CONDS), match_response(gdsc, CELLS, CONDS, CELL_MAP))
    r = drug_response(ds, "selumetinib")
    assert list(r.cell_line) == ["A375", "MCF7", "HT29"]
    np.testing.assert_allclose(r.value, [0.55, 0.1, 0.3])
    assert list(r.paired) == [True, True, False] and list(r.singleton) == [True, True, False]
    assert r.attrs["measure"] == "1 - AUC"
    dd = drug_data(ds, "selumetinib")
    np.testing.assert_allclose(r.lookup(dd.pair_cell_line), [0.55, 0.55, 0.1, 0.1])
    np.testing.assert_allclose(r.lookup(dd.singleton_cell_line), [0.55, 0.1, np.nan])
    with pytest.raises(CubeError, match=r"drug 'selumetnib': not in the cube; did you mean selumetinib"):
        drug_response(ds, "selumetnib")
    with pytest.raises(CubeError, match=r"the cube has no drug response"):
        drug_response(ds.drop_vars(RESPONSE), "selumetinib")


def test_docs_example_runs(capsys) -> None:
    text = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    code = text.split("Example (run by\ntests/datasets/test_response.py):", 1)[1]
    code = code.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "docs/api.md", "exec"), {})
    assert "synthetic sensitivity - " in capsys.readouterr().out
