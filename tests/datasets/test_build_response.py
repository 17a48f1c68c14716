"""``pertvae-bench build --response``: a GDSC, PRISM or CTRPv2 table in its public layout added to a cube
built from a generated GCTX (A375 and MCF7, vorinostat and trametinib), the values, attrs, provenance and
summary checked against what the files hold; bad input is one error line, exit 2, nothing written;
``info`` shows the response per drug."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datasets.build import main
from datasets.cube import RESPONSE, open_cube
from harness.info import describe
from tests.datasets.build_cli import build_err, build_inputs
from tests.datasets.response_layout import ctrp_frames, write_ctrp, write_gdsc, write_prism


def write_model(path: Path) -> Path:
    """DepMap Model.csv for the two L1000 cell lines (COSMIC ids written as floats, as DepMap does)."""
    pd.DataFrame([dict(ModelID="ACH-000219", CellLineName="A375", StrippedCellLineName="A375",
                       CCLEName="A375_SKIN", COSMICID="906793.0"),
                  dict(ModelID="ACH-000019", CellLineName="MCF7", StrippedCellLineName="MCF7",
                       CCLEName="MCF7_BREAST", COSMICID="905946.0")]).to_csv(path, index=False)
    return path


GDSC = [("906793", "A375", "Vorinostat", "1.0", "0.8", "0.1"),
        ("905946", "MCF-7", "Vorinostat", "2.0", "0.9", "0.5"),
        ("906793", "A375", "Trametinib", "-3.0", "0.2", "-2.0"),
        ("905946", "MCF7", "Trametinib", "-1.0", "0.5", "-0.5"),
        ("905946", "MCF7", "Trametinib", "-2.0", "0.4", "-1.0"),  # GDSC1 and GDSC2 rows: mean
        ("1330988", "KMS-11", "Trametinib", "0.0", "0.7", "0.0")]


@pytest.fixture
def files(tmp_path: Path) -> dict:
    f = build_inputs(tmp_path)
    f["model"] = write_model(tmp_path / "Model.csv")
    return f


def build(files: dict, capsys, *extra: str | Path) -> tuple[str, object]:
    rc = main(["--l1000", str(files["gctx"]), "--baseline", str(files["base"]),
               "--model", str(files["model"]), "--out", str(files["out"]), *map(str, extra)])
    out = capsys.readouterr().out
    assert rc == 0, out
    return out, open_cube(files["out"])


def response_of(ds, cell: str, drug: str) -> float:
    return float(ds[RESPONSE].sel(cell_line=cell, condition=drug).values)


def test_gdsc_response_in_the_cube_with_provenance(files, capsys) -> None:
    g = write_gdsc(files["dir"] / "GDSC2_fitted_dose_response_27Oct23.csv", GDSC)
    out, ds = build(files, capsys, "--response", g)
    assert response_of(ds, "A375", "trametinib") == pytest.approx(0.8)
    assert response_of(ds, "MCF7", "trametinib") == pytest.approx(1 - 0.45)
    assert response_of(ds, "MCF7", "vorinostat") == pytest.approx(0.1)
    assert np.isnan(ds[RESPONSE].sel(condition=["control", "baseline"]).values).all()
    a = ds[RESPONSE].attrs
    assert (a["measure"], a["direction"], a["format"]) == ("1 - AUC", "higher = more sensitive", "gdsc")
    assert a["drug_names"] == "trametinib=Trametinib; vorinostat=Vorinostat"
    prov = json.loads(ds.attrs["provenance"])
    assert {i["role"] for i in prov["inputs"]} >= {"response"}
    assert [i["path"] for i in prov["inputs"] if i["role"] == "response"] == [str(g.resolve())]
    assert prov["options"]["response_format"] == "gdsc" and prov["options"]["response_measure"] == "auc"
    assert "response: GDSC AUC stored as 1 - AUC (higher = more sensitive)" in out
    assert "trametinib = 'Trametinib' (GDSC drug name, ignoring case and punctuation): 2 cell lines with a " \
           "response (2 with pairs, 2 with a baseline singleton)" in out
    assert "cell lines: 2 of the file's 3 matched to cube cell lines; not in the cube: KMS-11" in out
    assert "several measurements averaged for 1 cell line-drug pairs (up to 2)" in out
    text = describe(files["out"])
    assert "trametinib: 2 paired cell lines, 12 treated profiles; 2 with a response (2 paired, 2 with a " \
           "singleton)" in text
    assert "response: 1 - AUC (" in text and "GDSC2_fitted_dose_response_27Oct23.csv" in text


def test_prism_ln_ic50_through_depmap_ids(files, capsys) -> None:
    p = write_prism(files["dir"] / "secondary-screen-dose-response-curve-parameters.csv", [
        ("ACH-000219", "A375_SKIN", "vorinostat", "0.6", "2.0", "TRUE", "MTS010"),
        ("ACH-000019", "MCF7_BREAST", "vorinostat", "0.8", "8.0", "TRUE", "MTS010"),
        ("ACH-000019", "MCF7_BREAST", "trametinib", "0.3", "0.01", "TRUE", "MTS010"),
        ("ACH-000219", "NOT_A_NAME", "trametinib", "0.1", "0.001", "TRUE", "HTS002")])  # named by its id
    out, ds = build(files, capsys, "--response", p, "--response-measure", "ln_ic50")
    assert response_of(ds, "A375", "vorinostat") == pytest.approx(-np.log(2.0))
    assert response_of(ds, "A375", "trametinib") == pytest.approx(-np.log(0.001))
    assert ds[RESPONSE].attrs["measure"] == "-ln(ic50)"
    assert "response: PRISM ic50 stored as -ln(ic50)" in out


def test_ctrp_files_beside_the_curves(files, capsys) -> None:
    c = write_ctrp(files["dir"] / "ctrp", ctrp_frames(
        curves=[("1", "7", "10.0"), ("2", "7", "12.0"), ("1", "8", "5.0"), ("2", "8", "6.0")],
        cells={"100": "A375", "101": "MCF7"}, compounds={"7": "vorinostat", "8": "trametinib"},
        experiments={"1": "100", "2": "101"}))
    out, ds = build(files, capsys, "--response", c, "--response-format", "ctrp")
    assert response_of(ds, "MCF7", "vorinostat") == -12.0 and response_of(ds, "A375", "trametinib") == -5.0
    assert ds[RESPONSE].attrs["source"] == ("v20.data.curves_post_qc.txt; v20.meta.per_experiment.txt; "
                                            "v20.meta.per_cell_line.txt; v20.meta.per_compound.txt")
    roles = [i["role"] for i in json.loads(ds.attrs["provenance"])["inputs"]]
    assert roles.count("response") == 4


def test_partial_keeps_a_drug_without_response(files, capsys) -> None:
    g = write_gdsc(files["dir"] / "g.csv", [r for r in GDSC if r[2] == "Vorinostat"])
    out, ds = build(files, capsys, "--response", g, "--response-partial")
    assert np.isnan(ds[RESPONSE].sel(condition="trametinib").values).all()
    assert "trametinib: not in the file: no response (--response-partial)" in out
    assert json.loads(ds.attrs["provenance"])["options"]["response_partial"] is True


def test_bad_response_is_one_error_line_before_the_matrix_read(files) -> None:
    g = write_gdsc(files["dir"] / "noauc.csv", GDSC)
    g.write_text(g.read_text().replace(",AUC,", ",AREA,"))
    err = build_err(files, "--model", files["model"], "--response", g)  # the real CLI, a subprocess
    assert "noauc.csv: GDSC fitted dose response needs column(s) AUC (found: DATASET" in err


@pytest.mark.parametrize("rows, extra, message", [
    ([r for r in GDSC if r[2] == "Vorinostat"], (),
     "g.csv: no response rows for cube drug(s) 'trametinib'; check the names"),
    ([*GDSC[:2], ("1330988", "KMS-11", "Trametinib", "0", "0.5", "0")], (),
     "g.csv: no response for any cube cell line for cube drug(s) 'trametinib'"),
    (GDSC, ("--response-format", "ctrp"), "g.csv: CTRPv2 curves file needs column(s) experiment_id"),
    (GDSC, ("--response-measure", "z_score", "--response-format", "prism"),
     "--response-measure 'z_score': the prism format has auc, ln_ic50"),
])
def test_bad_response_cases(files, capsys, rows, extra, message) -> None:
    g = write_gdsc(files["dir"] / "g.csv", rows)
    err = build_err(files, "--model", files["model"], "--response", g, *extra, capsys=capsys)
    assert message in err, err


@pytest.mark.parametrize("args, message", [
    (("--response-measure", "auc"), "error: --response-measure applies only with --response FILE; add it"),
    (("--response-partial", "--response-format", "gdsc"),
     "error: --response-format, --response-partial apply only with --response FILE"),
    (("--h5ad", "x.h5ad", "--response", "g.csv"), "error: --response does not combine with --h5ad yet"),
])
def test_response_flags_refused_by_the_parser(files, capsys, args, message) -> None:
    base = ("--l1000", files["gctx"], "--baseline", files["base"]) if "--h5ad" not in args else ()
    with pytest.raises(SystemExit) as e:
        main([*map(str, base), "--out", str(files["out"]), *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(message) and err.count("\n") == 1, err
    assert not files["out"].exists()
