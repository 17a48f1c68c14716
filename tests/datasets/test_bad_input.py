"""Every bad-input case of the build: one clear 'error: ...' line naming the file/field/value, exit 2,
no traceback, and no cube left at --out."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from datasets_test_helpers import (
    baseline_values,
    write_depmap,
    write_gct,
    write_gctx,
    write_inst_info,
)

from datasets.build import main
from tests.datasets.build_cli import build_err, build_inputs


@pytest.fixture
def files(tmp_path):
    return build_inputs(tmp_path)


def test_missing_file_cli(files):
    err = build_err(files, l1000=files["dir"] / "nope.gctx")
    assert "nope.gctx: file not found" in err


def test_missing_baseline_file_cli(files):
    err = build_err(files, base=files["dir"] / "gone.csv")
    assert "gone.csv: baseline file not found" in err


def test_not_gct_or_gctx(files, capsys):
    bad = files["dir"] / "matrix.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    err = build_err(files, l1000=bad, capsys=capsys)
    assert "matrix.csv: not a GCT or GCTX file" in err


def test_truncated_hdf5(files, capsys):
    gctx = write_gctx(files["dir"] / "t.gctx", files["mat"], files["rows"], files["cols"])
    data = gctx.read_bytes()
    gctx.write_bytes(data[: len(data) // 2])
    err = build_err(files, l1000=gctx, capsys=capsys)
    assert "t.gctx: cannot read" in err and "truncated or corrupt" in err


def test_gctx_matrix_shape_disagrees_with_ids(files, capsys):
    c = files["cols"]
    gctx = write_gctx(files["dir"] / "s.gctx", files["mat"][:-1], files["rows"], c.iloc[:-1],
                      sample_ids=list(c.inst_id.iloc[:-1]))
    with h5py.File(gctx, "a") as f:  # one id too many
        del f["/0/META/COL/id"]
        f["/0/META/COL/id"] = np.array(list(c.inst_id), dtype="S")
    err = build_err(files, l1000=gctx, capsys=capsys)
    n, g = len(c) - 1, len(files["rows"])
    assert f"/0/DATA/0/matrix has shape ({n}, {g}) but there are {n + 1} column (sample) ids" in err


def test_gctx_metadata_length_disagrees(files, capsys):
    gctx = write_gctx(files["dir"] / "m.gctx", files["mat"], files["rows"], files["cols"])
    with h5py.File(gctx, "a") as f:
        del f["/0/META/COL/cell_id"]
        f["/0/META/COL/cell_id"] = np.array(["A375"] * 3, dtype="S")
    err = build_err(files, l1000=gctx, capsys=capsys)
    assert "metadata /0/META/COL/cell_id has shape (3,)" in err


def test_gct_truncated_rows(files, capsys):
    gct = write_gct(files["dir"] / "x.gct", files["mat"], files["rows"], files["cols"])
    lines = gct.read_text().splitlines()
    gct.write_text("\n".join(lines[:-2]) + "\n")
    err = build_err(files, l1000=gct, capsys=capsys)
    assert "x.gct: found 6 data rows but line 2 declares 8" in err


def test_inst_info_missing_samples(files, capsys):
    c = files["cols"]
    gctx = write_gctx(files["dir"] / "x.gctx", files["mat"], files["rows"], None, sample_ids=c.inst_id)
    inst = write_inst_info(files["dir"] / "inst_info.txt", c.iloc[5:])
    err = build_err(files, "--inst-info", inst, l1000=gctx, capsys=capsys)
    assert "inst_info.txt: 5 of" in err and "have no inst_info row" in err and repr(c.inst_id[0]) in err


def test_duplicate_sample_ids(files, capsys):
    c = files["cols"].copy()
    c.loc[3, "inst_id"] = c.loc[2, "inst_id"]
    gctx = write_gctx(files["dir"] / "d.gctx", files["mat"], files["rows"], c)
    err = build_err(files, l1000=gctx, capsys=capsys)
    assert f"d.gctx: duplicate sample id {c.loc[2, 'inst_id']!r}" in err


def test_duplicate_gene_ids(files, capsys):
    r = files["rows"].copy()
    r.loc[4, "id"] = r.loc[1, "id"]
    gct = write_gct(files["dir"] / "d.gct", files["mat"], r, files["cols"])
    err = build_err(files, l1000=gct, capsys=capsys)
    assert "d.gct: duplicate gene (row) id '466_at'" in err


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_selected_data(files, capsys, bad):
    mat = files["mat"].copy()
    c = files["cols"]
    k = int(np.flatnonzero((c.pert_type == "ctl_vehicle") & (c.cell_id == "MCF7") & (c.pert_time == "24"))[0])
    mat[k, 3] = bad
    gctx = write_gctx(files["dir"] / "n.gctx", mat, files["rows"], c)
    err = build_err(files, l1000=gctx, capsys=capsys)
    assert f"e.g. sample {c.inst_id[k]!r} gene '2309' (row '2309_at') = {bad}" in err


def test_nan_outside_selection_is_fine(files, capsys):
    mat = files["mat"].copy()
    c = files["cols"]
    k = int(np.flatnonzero(c.pert_time == "6")[0])  # never selected at --time 24
    mat[k, 0] = np.nan
    gctx = write_gctx(files["dir"] / "ok.gctx", mat, files["rows"], c)
    assert main(["--l1000", str(gctx), "--baseline", str(files["base"]), "--out", str(files["out"])]) == 0


def test_required_metadata_missing(files, capsys):
    gctx = write_gctx(files["dir"] / "r.gctx", files["mat"], files["rows"],
                      files["cols"].drop(columns=["pert_type", "pert_time"]))
    err = build_err(files, l1000=gctx, capsys=capsys)
    assert "r.gctx: required column metadata missing: pert_type, pert_time (or pert_itime)" in err


def test_no_vehicle_controls(files, capsys):
    c = files["cols"]
    keep = ~((c.pert_type == "ctl_vehicle") & (c.pert_time == "24"))
    gctx = write_gctx(files["dir"] / "v.gctx", files["mat"][keep.to_numpy()], files["rows"], c[keep])
    err = build_err(files, "--drugs", "trametinib", l1000=gctx, capsys=capsys)
    assert ("no vehicle controls (pert_type ctl_vehicle at 24 h) for the cell lines of drug 'trametinib'"
            in err)
    assert "A375, MCF7" in err


def test_drug_not_found_suggests_cli(files):
    err = build_err(files, "--drugs", "Trametinibb")
    assert "drug 'Trametinibb' not found in pert_iname; did you mean: trametinib?" in err


def test_no_genes_in_common(files, capsys):
    other = [("999999", "NOTAGENE"), ("999998", "NOTAGENE2")]
    base = write_depmap(files["dir"] / "other.csv", ["A375"], other, baseline_values("a", other))
    err = build_err(files, base=base, capsys=capsys)
    assert "no genes in common between the L1000 genes (6" in err and "other.csv" in err


def test_bad_dose_value_cli(files):
    err = build_err(files, "--dose", "lots")
    assert err == ("error: argument --dose: --dose must be 'highest' or a number in uM, got 'lots' (see "
                   "pertvae-bench build --help)\n")


def test_output_holds_a_different_cube(files, capsys):
    base = ["--l1000", str(files["gctx"]), "--baseline", str(files["base"]), "--out", str(files["out"])]
    assert main([*base, "--drugs", "vorinostat"]) == 0
    capsys.readouterr()
    rc = main([*base, "--drugs", "trametinib"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and str(files["out"]) in err and "Traceback" not in err
    from datasets.cube import open_cube

    assert open_cube(files["out"]).condition.values.tolist() == ["control", "vorinostat", "baseline"]
    assert main([*base, "--drugs", "trametinib", "--overwrite"]) == 0
    assert open_cube(files["out"]).condition.values.tolist() == ["control", "trametinib", "baseline"]
