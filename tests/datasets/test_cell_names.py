"""issue 19: a cell line spelled ``mcf7`` on one plate and ``MCF7`` on another was two cell lines (a leakage
route: one cell line in a training and a test fold). Now refused naming every clash, or merged on request
with a warning; the L1000 reader, the h5ad reader, the cube and the baseline matcher share one key."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from datasets_test_helpers import GENES, baseline_values, write_ccle, write_depmap, write_gctx

from datasets.anndata_io import from_anndata
from datasets.baseline import BaselineTable, match_baseline
from datasets.cell_names import cell_line_key, resolve_spellings, spelling_clashes
from datasets.cube import CubeError, make_cube, open_cube
from tests.datasets.build_cli import build_err, build_inputs, cli


def test_key_is_ccle_style() -> None:
    assert cell_line_key("mcf-7") == cell_line_key("MCF7") == cell_line_key(" Mcf.7 ") == "MCF7"
    assert cell_line_key("Hep G2") == "HEPG2" and cell_line_key("NCI-H460") != cell_line_key("NCI-H46")
    assert spelling_clashes(["A375", "MCF7", "PC3"]) == {}
    assert spelling_clashes(["mcf7", "MCF7", "MCF7", "MCF-7"]) == {"MCF7": [("MCF7", 2), ("MCF-7", 1),
                                                                            ("mcf7", 1)]}


def test_refused_naming_every_clash_or_merged_with_one_warning(capsys: pytest.CaptureFixture) -> None:
    names = np.array(["MCF7"] * 3 + ["mcf7"] * 2 + ["A-375", "A375", "PC3"], dtype=object)
    with pytest.raises(CubeError, match=r"^f\.txt: cell_id: cell line names that differ only in case or "
                                        r"punctuation would be separate cell lines .*'A375' \(1 profile\) "
                                        r"and 'A-375' \(1 profile\); 'MCF7' \(3 profiles\) and 'mcf7' "
                                        r"\(2 profiles\); .*--merge-cell-spellings"):
        resolve_spellings(names, "f.txt: cell_id")
    out, merged = resolve_spellings(names, "f.txt: cell_id", merge=True)
    assert list(out) == ["MCF7"] * 5 + ["A375", "A375", "PC3"]
    assert merged == {"A-375": "A375", "mcf7": "MCF7"}  # on a tie the spelling written as its key
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: f.txt: cell_id: merged cell line spellings (--merge-cell-spellings): 'A-375' "
                   "(1 profile) into 'A375' (1 profile); 'mcf7' (2 profiles) into 'MCF7' (3 profiles); kept: "
                   "the spelling with the most profiles (on a tie the one written as its key, then the first "
                   "in sort order)"]
    out, merged = resolve_spellings(np.array(["mcf7"] * 3 + ["MCF7"], dtype=object), "w", merge=True)
    assert set(out) == {"mcf7"} and merged == {"MCF7": "mcf7"}  # most profiles wins over the key form


def _lowercase_plate(f: dict) -> Path:
    """The inputs of build_cli with MCF7 spelled 'mcf7' on its second plate (embedded GCTX metadata)."""
    cols = f["cols"].copy()
    cols.loc[(cols.cell_id == "MCF7") & cols.inst_id.str.startswith("TST001"), "cell_id"] = "mcf7"
    return write_gctx(f["dir"] / "case.gctx", f["mat"], f["rows"], cols)


def test_l1000_build_refuses_two_spellings_of_one_cell_line(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    err = build_err(f, l1000=_lowercase_plate(f), capsys=capsys)
    assert err.startswith(f"error: {f['dir']}/case.gctx: cell_id: cell line names that differ only in case "
                          f"or punctuation would be separate cell lines")
    assert "'MCF7' (16 profiles) and 'mcf7' (16 profiles)" in err and "--merge-cell-spellings" in err


def test_l1000_build_merges_on_request_and_records_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    gctx = _lowercase_plate(f)
    r = cli("--l1000", gctx, "--baseline", f["base"], "--out", f["out"], "--merge-cell-spellings", rc=0,
            capsys=capsys)
    assert r.stderr.splitlines()[0].startswith(f"warning: {gctx}: cell_id: merged cell line spellings "
                                               f"(--merge-cell-spellings): 'mcf7' (16 profiles) into 'MCF7'")
    assert "cell_id spellings merged (--merge-cell-spellings): 'mcf7' -> 'MCF7'" in r.stdout
    ds = open_cube(f["out"])
    assert sorted(ds["cell_line"].values) == ["A375", "MCF7"]
    assert json.loads(ds.attrs["merged_cell_spellings"]) == {"mcf7": "MCF7"}
    assert json.loads(ds.attrs["provenance"])["options"]["merge_cell_spellings"] is True
    # both plates are MCF7's now: 2 x 3 replicates of the highest dose, as many controls (--max-controls auto)
    e = ds["expression"].sel(cell_line="MCF7")
    counts = [int((~np.isnan(e.sel(condition=k).values).all(-1)).sum()) for k in ("vorinostat", "control")]
    assert counts == [6, 6]
    assert set(ds["plate"].sel(cell_line="MCF7", condition="control").values) == {"TST000_MCF7_24H_X1",
                                                                                  "TST001_MCF7_24H_X2"}


def test_a_selected_sample_without_cell_id_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    cols = f["cols"].copy()
    cols.loc[3, "cell_id"] = "-666"  # the CMap null
    gctx = write_gctx(f["dir"] / "nocell.gctx", f["mat"], f["rows"], cols)
    err = build_err(f, l1000=gctx, capsys=capsys)
    assert err == (f"error: {gctx}: 1 selected samples have no cell_id (e.g. {cols.inst_id[3]!r}); fill it "
                   f"in or drop those samples\n")


def _adata(cells: list[str], conds: list[str]) -> ad.AnnData:
    x = np.random.default_rng(0).normal(size=(len(cells), 4)).astype(np.float32)
    obs = pd.DataFrame({"cell_line": cells, "condition": conds}, index=[f"s{i}" for i in range(len(cells))])
    return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=["1", "2", "3", "4"]))


def test_h5ad_spellings_refused_or_merged_and_control_lookalikes_refused(capsys: pytest.CaptureFixture
                                                                         ) -> None:
    a = _adata(["MCF7", "MCF7", "mcf7", "A375", "A375"], ["control", "drugA", "drugA", "control", "drugA"])
    with pytest.raises(CubeError, match=r"^obs\['cell_line'\]: cell line names .* 'MCF7' \(2 profiles\) and "
                                        r"'mcf7' \(1 profile\)"):
        from_anndata(a)
    ds = from_anndata(a, merge_cell_spellings=True)
    assert list(ds["cell_line"].values) == ["MCF7", "A375"]
    assert json.loads(ds.attrs["merged_cell_spellings"]) == {"mcf7": "MCF7"}
    assert "into 'MCF7' (2 profiles)" in capsys.readouterr().err
    b = _adata(["A375", "A375", "A375"], ["DMSO", "dmso", "drugA"])
    with pytest.raises(CubeError, match=r"condition\(s\) 'dmso' differ from the control label 'DMSO' only in "
                                        r"case or punctuation and would be drugs made of controls"):
        from_anndata(b, control="DMSO")


def test_h5ad_build_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    h5 = tmp_path / "case.h5ad"
    _adata(["MCF7", "MCF7", "mcf7", "mcf7"], ["control", "drugA", "control", "drugA"]).write_h5ad(h5)
    out = tmp_path / "c.zarr"
    r = cli("--h5ad", h5, "--out", out, capsys=capsys)
    assert r.stderr.startswith(f"error: {h5}: obs['cell_line']: cell line names that differ only in case")
    assert not out.exists()


def test_a_cube_never_holds_two_spellings_of_one_cell_line() -> None:
    e = np.zeros((2, 2, 1, 3), dtype=np.float32)
    with pytest.raises(CubeError, match=r"<in memory>: cell lines 'MCF7' and 'mcf7' differ only in case or "
                                        r"punctuation"):
        make_cube(e, ["mcf7", "MCF7"], ["control", "d"], ["1", "2", "3"], ["a", "b", "c"], np.zeros((2, 2)),
                  ["L1000", "L1000"], {})


def test_baseline_names_match_l1000_by_the_same_key_and_collapsed_names_are_reported(tmp_path: Path) -> None:
    genes = GENES[:4]
    vals = baseline_values("abcd", genes)
    path = write_depmap(tmp_path / "dm.csv", ["mcf-7", "MCF.7", "A375", "HT29"], genes, vals)
    t = BaselineTable(path, "DepMap", ["mcf-7", "MCF.7", "A375", "HT29"], np.array([e for e, _ in genes]),
                      np.array([s for _, s in genes]), vals)
    m = match_baseline([t], ["MCF7", "A375"], [e for e, _ in genes], [s for _, s in genes])
    assert sorted(m.profiles) == ["A375", "HT29", "MCF7"]  # mcf-7 is the L1000 MCF7, one cell line
    np.testing.assert_array_equal(m.profiles["MCF7"][0], vals[0])  # the first of the two names
    assert m.collapsed == {str(path): [("mcf-7", "MCF.7")]} and m.matched[str(path)] == 2


def test_ccle_names_repeated_without_their_tissue_are_reported(tmp_path: Path) -> None:
    """CCLE's KMH2_THYROID and KMH2_HAEMATOPOIETIC... are two cell lines named KMH2 once the suffix is gone:
    the first is kept, the summary lists both (was silent)."""
    from datasets.baseline import read_ccle

    cells = ["KMH2_HAEMATOPOIETIC_AND_LYMPHOID_TISSUE", "A375_SKIN", "KMH2_THYROID"]
    t = read_ccle(write_ccle(tmp_path / "c.gct", cells, GENES[:3], baseline_values(cells, GENES[:3])))
    assert t.repeated == ("KMH2 (KMH2_HAEMATOPOIETIC_AND_LYMPHOID_TISSUE = KMH2_THYROID)",)
