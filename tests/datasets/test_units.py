"""issue 19: inst_info without ``pert_dose_unit`` silently meant micromolar (and without ``pert_time_unit``,
hours). A dose or time whose unit is missing is now an error naming the file, column or sample, unless the
build states the unit (``--dose-unit`` / ``--time-unit``), which the cube's provenance records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets_test_helpers import write_gctx

from datasets.build import main
from datasets.l1000 import DOSE, TIME, dose_um, read_quantity, time_h
from tests.datasets.build_cli import build_err, build_inputs, cli


def _gctx(f: dict, cols: pd.DataFrame, name: str) -> Path:
    return write_gctx(f["dir"] / name, f["mat"], f["rows"], cols)


def test_no_unit_column_is_refused_naming_file_and_column(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    gctx = _gctx(f, f["cols"].drop(columns="pert_dose_unit"), "nounit.gctx")
    first = f["cols"][f["cols"].pert_type == "trt_cp"].inst_id.iloc[0]
    err = build_err(f, l1000=gctx, capsys=capsys)
    assert err == (f"error: {gctx}: column 'pert_dose_unit' missing, so the unit of pert_dose (1.11) is "
                   f"unknown for sample {first!r} (and 47 more samples); add the column, or state the unit "
                   f"with --dose-unit uM\n")
    gctx = _gctx(f, f["cols"].drop(columns="pert_time_unit"), "notime.gctx")
    err = build_err(f, l1000=gctx, capsys=capsys)
    assert err.startswith(f"error: {gctx}: column 'pert_time_unit' missing, so the unit of pert_time (24) is "
                          f"unknown for sample ") and err.endswith("state the unit with --time-unit h\n")


def test_stated_units_are_used_and_recorded(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    gctx = _gctx(f, f["cols"].drop(columns=["pert_dose_unit", "pert_time_unit"]), "nounits.gctx")
    cli("--l1000", gctx, "--baseline", f["base"], "--out", f["out"], "--dose-unit", "nM", "--time-unit", "h",
        rc=0, capsys=capsys)
    from datasets.cube import open_cube

    ds = open_cube(f["out"])
    assert float(ds["dose_um"].sel(cell_line="A375", condition="vorinostat")) == pytest.approx(0.01)  # 10 nM
    options = json.loads(ds.attrs["provenance"])["options"]
    assert (options["dose_unit"], options["time_unit"]) == ("nM", "h")


def test_a_missing_or_unknown_unit_of_one_sample_is_refused(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    cols = f["cols"].copy()
    i = cols.index[cols.pert_type == "trt_cp"][5]
    cols.loc[i, "pert_dose_unit"] = "-666"
    err = build_err(f, l1000=_gctx(f, cols, "a.gctx"), capsys=capsys)
    assert (f"sample {cols.inst_id[i]!r}: pert_dose {float(cols.pert_dose[i]):g} has no pert_dose_unit; fill "
            f"in the unit, or state the unit of doses written without one with --dose-unit uM") in err
    cols.loc[i, "pert_dose_unit"] = "mg/ml"
    err = build_err(f, l1000=_gctx(f, cols, "b.gctx"), capsys=capsys)
    assert (f"sample {cols.inst_id[i]!r}: pert_dose_unit 'mg/ml' is not a unit of dose (uM (µM, micromolar), "
            f"nM, mM, pM, M); convert those doses to one of") in err


def test_read_quantity_never_guesses() -> None:
    meta = pd.DataFrame({"pert_dose": ["10", "10", "-666", None, None],
                         "pert_dose_unit": ["um", None, None, None, None],
                         "pert_idose": [None, None, None, "500 nM", "3"]})
    meta = meta.where(meta != "-666")
    values, why = read_quantity(meta, DOSE)
    np.testing.assert_array_equal(values, [10.0, np.nan, np.nan, 0.5, np.nan])
    assert list(why) == ["", "pert_dose 10 has no pert_dose_unit", "", "", "pert_idose '3' has no unit"]
    np.testing.assert_allclose(dose_um(meta, unit="nM"), [10.0, 0.01, np.nan, 0.5, 0.003])
    t = pd.DataFrame({"pert_time": ["24", "6", "1"], "pert_time_unit": ["h", None, "d"]})
    np.testing.assert_array_equal(time_h(t), [24.0, np.nan, 24.0])
    assert read_quantity(t, TIME)[1][1] == "pert_time 6 has no pert_time_unit"


@pytest.mark.parametrize(("args", "message"), [
    (("--dose-unit", "mg"), "argument --dose-unit: 'mg' is not a unit of dose (uM (µM, micromolar), nM, mM, "
                            "pM, M)"),
    (("--time-unit", "weeks"), "argument --time-unit: 'weeks' is not a unit of time"),
])
def test_bad_unit_flags(capsys: pytest.CaptureFixture, args: tuple, message: str) -> None:
    assert _parse_error(["--l1000", "x.gctx", "--baseline", "b.csv", "--out", "c.zarr", *args], capsys) \
        .startswith(f"error: {message}")


def test_unit_flags_do_not_apply_to_h5ad(capsys: pytest.CaptureFixture) -> None:
    err = _parse_error(["--h5ad", "x.h5ad", "--out", "c.zarr", "--dose-unit", "uM"], capsys)
    assert err.startswith("error: --h5ad holds the whole dataset; leave out --dose-unit")


def _parse_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """The one error line of a flag the parser refuses (exit status 2)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    return err


def test_unnamed_treatments_are_not_a_drug_named_empty(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    cols = f["cols"].copy()
    i = cols.index[cols.pert_type == "trt_cp"][0]
    cols.loc[i, "pert_iname"] = "-666"
    gctx = _gctx(f, cols, "noname.gctx")
    err = build_err(f, l1000=gctx, capsys=capsys)
    assert err == (f"error: {gctx}: 1 trt_cp samples at 24 h have no pert_iname (e.g. {cols.inst_id[i]!r}): "
                   f"name them, drop them, or choose drugs with --drugs\n")
    cli("--l1000", gctx, "--baseline", f["base"], "--out", f["out"], "--drugs", "vorinostat", rc=0,
        capsys=capsys)
