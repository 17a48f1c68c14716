"""datasets.response_tables: each reader on small files in its release's layout (tests/datasets/
response_layout.py), the values' conversion to higher = more sensitive against numbers written by hand, and
every bad input as one ResponseError naming the file and the column, line or value."""

from __future__ import annotations

import gzip
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest

from datasets.response_tables import (
    MEASURES,
    ResponseError,
    detect_format,
    read_ctrp,
    read_gdsc,
    read_prism,
    read_response,
)
from tests.datasets.response_layout import CTRP_FILES, ctrp_frames, write_ctrp, write_gdsc, write_prism

GDSC_ROWS = [("906793", "A375", "Selumetinib", "-2.5", "0.40", "-1.1"),
             ("905946.0", "MCF7", "Selumetinib", "1.25", "0.90", "0.8"),
             ("905939", "HT-29", "Selumetinib", "", "", ""),  # not measured
             ("906793", "A375", "Vorinostat", "0.5", "0.75", "0.1")]


def rows_of(t, drug: str) -> dict[str, float]:
    return {str(n): float(v) for n, d, v in zip(t.cell_name, t.drug, t.value, strict=True) if d == drug}


def test_gdsc_measures_are_converted_to_higher_more_sensitive(tmp_path: Path) -> None:
    f = write_gdsc(tmp_path / "GDSC2_fitted_dose_response_27Oct23.csv", GDSC_ROWS)
    auc = read_gdsc(f)
    assert auc.fmt == "gdsc" and auc.measure.stored == "1 - AUC" and auc.n_missing == 1
    assert rows_of(auc, "Selumetinib") == pytest.approx({"A375": 0.60, "MCF7": 0.10})
    assert list(auc.cell_id) == ["906793", "905946", "906793"]  # '.0' of a float-written id dropped
    ln = read_gdsc(f, "ln_ic50")
    assert rows_of(ln, "Selumetinib") == pytest.approx({"A375": 2.5, "MCF7": -1.25})
    z = read_gdsc(f, "z_score")
    assert rows_of(z, "Vorinostat") == pytest.approx({"A375": -0.1})
    # the more sensitive cell line (lower AUC, lower IC50) has the higher stored value under every measure
    for t in (auc, ln, z):
        r = rows_of(t, "Selumetinib")
        assert r["A375"] > r["MCF7"]


def test_prism_reads_auc_and_ic50_drops_failed_str_rows(tmp_path: Path) -> None:
    f = write_prism(tmp_path / "secondary-screen-dose-response-curve-parameters.csv", [
        ("ACH-000219", "A375_SKIN", "trametinib", "0.3", "0.05", "TRUE", "MTS010"),
        ("ACH-000219", "A375_SKIN", "trametinib", "0.5", "0.2", "TRUE", "HTS002"),
        ("ACH-000019", "MCF7_BREAST", "trametinib", "0.95", "Inf", "TRUE", "MTS010"),
        ("ACH-000552", "HT29_LARGE_INTESTINE", "trametinib", "0.7", "NA", "FALSE", "MTS010")])
    auc = read_prism(f)
    assert list(auc.cell_name) == ["A375", "A375", "MCF7"] and list(auc.cell_id)[0] == "ACH-000219"
    np.testing.assert_allclose(auc.value, [0.7, 0.5, 0.05])
    assert any("1 row(s) of cell lines that failed STR profiling dropped" in n for n in auc.notes)
    ic = read_prism(f, "ln_ic50")
    np.testing.assert_allclose(ic.value, [-math.log(0.05), -math.log(0.2)])
    assert ic.n_missing == 1 and any("1 infinite ic50" in n for n in ic.notes)  # Inf: not measured


def ctrp_tables() -> dict:
    return ctrp_frames(curves=[("1", "411", "12.5"), ("2", "411", "7.25"), ("1", "55", "14.0"),
                               ("2", "55", "NaN")],
                       cells={"100": "A375", "101": "HEPG2"}, compounds={"411": "selumetinib", "55": "SN-38"},
                       experiments={"1": "100", "2": "101"})


def test_ctrp_joins_experiments_cell_lines_and_compounds(tmp_path: Path) -> None:
    f = write_ctrp(tmp_path / "ctrp", ctrp_tables())
    t = read_ctrp(f)
    assert t.measure.stored == "-area_under_curve" and t.n_missing == 1
    assert rows_of(t, "selumetinib") == {"A375": -12.5, "HEPG2": -7.25}
    assert rows_of(t, "SN-38") == {"A375": -14.0}
    assert [p.name for p in t.files] == list(CTRP_FILES)


def test_detect_format_and_read_response(tmp_path: Path) -> None:
    g = write_gdsc(tmp_path / "g.csv", GDSC_ROWS)
    p = write_prism(tmp_path / "p.csv", [("ACH-000219", "A375_SKIN", "x", "0.3", "1", "TRUE", "MTS010")])
    c = write_ctrp(tmp_path / "c", ctrp_tables())
    assert [detect_format(x) for x in (g, c, p)] == ["gdsc", "ctrp", "prism"]
    assert read_response(g, measure="ln_ic50").measure.name == "ln_ic50"
    assert read_response(c).fmt == "ctrp"
    assert set(MEASURES) == {"gdsc", "ctrp", "prism"}


def _bad_cases(tmp_path: Path) -> dict:
    d = tmp_path
    cases = {}
    f = write_gdsc(d / "noauc.csv", GDSC_ROWS)
    f.write_text(f.read_text().replace(",AUC,", ",AUC_X,"))
    cases["missing column"] = (lambda: read_gdsc(f),
                               r"noauc\.csv: GDSC fitted dose response needs column\(s\) AUC")
    x = d / "GDSC2_fitted_dose_response_27Oct23.xlsx"
    with zipfile.ZipFile(x, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    cases["xlsx"] = (lambda: read_response(x), r"\.xlsx: an Excel \.xlsx .*save the sheet as CSV")
    gz = d / "g.csv.gz"
    gz.write_bytes(gzip.compress(write_gdsc(d / "plain.csv", GDSC_ROWS).read_bytes()))
    cases["gzip"] = (lambda: read_gdsc(gz), r"g\.csv\.gz: gzip-compressed; gunzip")
    junk = write_gdsc(d / "junk.csv", [*GDSC_ROWS[:2], ("1", "X", "Selumetinib", "-1", "abc", "0")])
    cases["not a number"] = (lambda: read_gdsc(junk),
                             r"junk\.csv: column 'AUC', line 4: 'abc' is not a number")
    cases["measure of another format"] = (
        lambda: read_gdsc(junk, "ic50"), r"--response-measure 'ic50': the gdsc format has auc, ln_ic50")
    cases["ctrp measure"] = (lambda: read_response(write_ctrp(d / "c1", ctrp_tables()), "ctrp", "ln_ic50"),
                             r"the ctrp format has auc")
    alone = d / "c2"
    write_ctrp(alone, ctrp_tables())
    (alone / CTRP_FILES[2]).unlink()
    cases["ctrp metadata missing"] = (lambda: read_ctrp(alone / CTRP_FILES[0]),
                                      r"CTRPv2 metadata v20\.meta\.per_cell_line\.txt missing beside it")
    frames = ctrp_tables()
    frames[CTRP_FILES[1]].loc[0, "master_ccl_id"] = "101"  # experiment 1 now listed for two cell lines
    two = write_ctrp(d / "c3", frames)
    cases["ctrp experiment of two cell lines"] = (
        lambda: read_ctrp(two), r"per_experiment\.txt: experiment_id '1' has several master_ccl_id values")
    frames = ctrp_tables()
    frames[CTRP_FILES[0]].loc[2, "experiment_id"] = "9"
    orphan = write_ctrp(d / "c4", frames)
    cases["ctrp unknown experiment"] = (
        lambda: read_ctrp(orphan), r"experiment_id '9' \(line 4; 1 row\(s\) in all\) is not in v20\.meta")
    zero = write_prism(d / "zero.csv", [("ACH-1", "A_SKIN", "x", "0.3", "0", "TRUE", "MTS010")])
    cases["ic50 zero"] = (lambda: read_prism(zero, "ln_ic50"),
                          r"line 2: IC50 0 is not a positive concentration")
    other = d / "other.csv"
    other.write_text("a,b\n1,2\n")
    cases["unknown layout"] = (lambda: read_response(other),
                               r"cannot tell the response format .*--response-format")
    cases["unknown format"] = (lambda: read_response(other, "ccle"), r"unknown response format 'ccle'")
    cases["missing file"] = (lambda: read_response(d / "nope.csv"), r"nope\.csv: response file not found")
    return cases


CASES = ("missing column", "xlsx", "gzip", "not a number", "measure of another format", "ctrp measure",
         "ctrp metadata missing", "ctrp experiment of two cell lines", "ctrp unknown experiment", "ic50 zero",
         "unknown layout", "unknown format", "missing file")


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_error_naming_what(tmp_path: Path, case: str) -> None:
    call, pattern = _bad_cases(tmp_path)[case]
    with pytest.raises(ResponseError, match=pattern) as e:
        call()
    assert "\n" not in str(e.value)


def test_rows_without_a_name_are_counted_apart_from_rows_without_a_value(tmp_path: Path) -> None:
    rows = [*GDSC_ROWS, ("906794", "SK-MEL-2", "", "0.1", "0.5", "0.2"),   # a value, no drug name
            ("", "", "Selumetinib", "0.3", "0.6", "0.1")]                    # a value, no cell line
    t = read_gdsc(write_gdsc(tmp_path / "GDSC2_fitted_dose_response_27Oct23.csv", rows))
    assert t.n_missing == 1   # the HT-29 row alone has no value
    assert "2 row(s) with a value but no drug or cell line name dropped" in t.notes
    assert len(t.value) == 3
