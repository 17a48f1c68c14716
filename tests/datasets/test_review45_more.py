"""Review 45 (data input), the rest: controls left out, all-NaN h5ad rows, damaged cubes in ``info``, files in
the wrong form (comma-separated, gzip-compressed), line numbers and gene ids in errors, plurals.

Each refused input gives one ``error:`` line naming the file, field or value and what to do (exit 2, no
traceback, nothing written); each accepted one is stated truly in the summary."""

from __future__ import annotations

import gzip
import json
import shutil
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from datasets_test_helpers import (
    GENES,
    baseline_values,
    l1000_design,
    values,
    write_gct,
    write_gctx,
    write_gdsc,
)

from datasets import chunk_files
from tests.datasets.build_cli import build_err, build_inputs, cli


# ------------------------------------------------------------- 12: vehicle controls left out are counted
def test_controls_left_out_by_max_controls_are_counted(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)  # 8 vehicle controls per cell line at 24 h, auto keeps 6 (3 reps x 2 plates)
    r = cli("--l1000", f["gctx"], "--baseline", f["base"], "--out", f["out"], rc=0, capsys=capsys)
    assert ("controls: 12 of 16 vehicle profiles at the time point kept, in 2 cell lines; left out: 4 by "
            "--max-controls auto: per cell line as many as its largest drug replicate count; --max-controls "
            "all keeps every one on those plates\n") in r.stdout
    r = cli("--l1000", f["gctx"], "--baseline", f["base"], "--out", f["out"], "--max-controls", "all",
            "--overwrite", rc=0, capsys=capsys)
    assert "controls: 16 vehicle profiles in 2 cell lines\n" in r.stdout


def test_controls_on_other_plates_are_counted(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    cols = l1000_design(cells=("A375", "MCF7"))
    extra = pd.DataFrame([dict(inst_id=f"TST007_A375_24H_X1_B1:E{k:02d}", cell_id="A375",
                               pert_type="ctl_vehicle", pert_iname="DMSO", pert_dose="-666",
                               pert_dose_unit="-666", pert_time="24", pert_time_unit="h",
                               rna_plate="TST007_A375_24H_X1") for k in range(3)])
    cols = pd.concat([cols, extra], ignore_index=True)
    gctx = write_gctx(tmp_path / "other.gctx", values(len(cols), len(f["rows"])), f["rows"], cols)
    r = cli("--l1000", gctx, "--baseline", f["base"], "--out", f["out"], "--max-controls", "all", rc=0,
            capsys=capsys)
    assert ("controls: 16 of 19 vehicle profiles at the time point kept, in 2 cell lines; left out: 3 on "
            "plates without the cell line's treatments (controls are taken from its treatments' plates)\n"
            ) in r.stdout


def test_one_is_singular(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    cols = l1000_design(cells=("A375", "MCF7"), reps=1, n_ctrl=1, n_plates=1)
    gctx = write_gctx(tmp_path / "one.gctx", values(len(cols), len(f["rows"])), f["rows"], cols)
    r = cli("--l1000", gctx, "--baseline", f["base"], "--out", f["out"], "--drugs", "vorinostat", rc=0,
            capsys=capsys)
    assert "  vorinostat: 2 cell lines, 2 replicates, dose 10 uM\n" in r.stdout
    assert "controls: 2 vehicle profiles in 2 cell lines\n" in r.stdout
    assert "cube: 2 cell lines x 3 conditions x 1 replicate x 6 genes\n" in r.stdout


# -------------------------------------------------- 14, 18: an h5ad row NaN in every gene; duplicate genes
def _h5ad(path: Path, x: np.ndarray, cells: list[str], conds: list[str],
          genes: list[str] | None = None) -> Path:
    obs = pd.DataFrame({"cell_line": cells, "condition": conds}, index=[f"s{i}" for i in range(len(cells))])
    var = pd.DataFrame(index=genes or [str(1000 + g) for g in range(x.shape[1])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ad.AnnData(X=x, obs=obs, var=var).write_h5ad(path)
    return path


H5_CELLS = [c for c in ("A375", "MCF7") for _ in range(4)]
H5_CONDS = ["control", "control", "drugA", "drugA"] * 2


def test_an_all_nan_h5ad_row_is_counted_in_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    x = np.random.default_rng(0).normal(8, 2, size=(8, 5)).astype(np.float32)
    x[2] = np.nan  # A375's first drugA profile: not measured at all
    h5 = _h5ad(tmp_path / "nanrow.h5ad", x, H5_CELLS, H5_CONDS)
    r = cli("--h5ad", h5, "--out", tmp_path / "c.zarr", "--allow-nan", rc=0, capsys=capsys)
    assert "  drugA: 2 cell lines, 3 profiles\n" in r.stdout
    assert "left out: 1 row NaN in every gene, so no profile (--allow-nan; e.g. row 's2', A375 / drugA)\n" \
        in r.stdout
    err = cli("--h5ad", h5, "--out", tmp_path / "d.zarr", capsys=capsys).stderr
    assert "(NaN only with build --allow-nan, from_anndata(allow_nan=True) in Python" in err


def test_duplicate_h5ad_genes_give_one_error_line_without_anndata_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    x = np.random.default_rng(0).normal(8, 2, size=(8, 3)).astype(np.float32)
    h5 = _h5ad(tmp_path / "dup.h5ad", x, H5_CELLS, H5_CONDS, ["1000", "1001", "1000"])
    r = cli("--h5ad", h5, "--out", tmp_path / "c.zarr")  # a subprocess: the warning goes to its stderr
    assert r.stderr == (f"error: {h5}: var_names: duplicate gene id(s) ['1000']; the cube needs one column "
                        f"per gene: drop or merge the duplicate columns first\n")


# ------------------------------------------------ 10, 11: info on a damaged cube says so, exit 2
def _info(path: Path, capsys: pytest.CaptureFixture, rc: int) -> tuple[str, str]:
    from harness.info import main as info_main

    assert info_main([str(path)]) == rc
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    if rc == 2:
        assert cap.err.startswith("error: ") and cap.err.count("\n") == 1 and cap.out == ""
    return cap.out, cap.err


def _cube(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    f = build_inputs(tmp_path)
    cli("--l1000", f["gctx"], "--baseline", f["base"], "--out", f["out"], rc=0, capsys=capsys)
    return f["out"]


def test_info_names_a_corrupt_variable_metadata_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cube = _cube(tmp_path, capsys)
    (cube / "expression" / "zarr.json").write_text("{bad")
    _, err = _info(cube, capsys, 2)
    assert err.startswith(f"error: {cube}: a damaged or incomplete cube: {cube / 'expression' / 'zarr.json'} "
                          f"is not valid JSON (")
    assert err.endswith("; copy the cube again or rebuild it (pertvae-bench build/synth)\n")
    (cube / "expression" / "zarr.json").unlink()
    assert f"{cube / 'expression' / 'zarr.json'} is missing" in _info(cube, capsys, 2)[1]


def test_info_on_a_cube_without_its_chunk_files_says_it_is_incomplete(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    cube = _cube(tmp_path, capsys)
    out, _ = _info(cube, capsys, 0)
    assert "  vorinostat: 2 paired cell lines, 12 treated profiles\n" in out
    shutil.rmtree(cube / "expression" / "c")  # an interrupted copy
    _, err = _info(cube, capsys, 2)
    assert err == (f"error: {cube}: a damaged or changed cube: 4 of the 14 chunk files its writer wrote are "
                   f"missing (expression/c/0/0/0/0, expression/c/0/1/0/0, expression/c/0/2/0/0, ... (1 "
                   f"more); a missing chunk reads as unmeasured data); copy the cube again or rebuild it "
                   f"(pertvae-bench build/synth)\n")
    meta = json.loads((cube / "zarr.json").read_text())   # a cube written before datasets.chunk_files
    del meta["attributes"][chunk_files.ATTR]
    (cube / "zarr.json").write_text(json.dumps(meta))
    _, err = _info(cube, capsys, 2)
    assert err == (f"error: {cube}: a damaged or incomplete cube: no cell line pairs drug(s) "
                   f"'trametinib', 'vorinostat' (no fully measured control and profile of the drug in one "
                   f"cell line), which pertvae-bench build and synth never write; 0 of the 4 expression "
                   f"chunk files are present (all-NaN chunks are not written, the others are missing?); "
                   f"copy the cube again or rebuild it\n")


# ------------------------------------------------- 8, 17: a comma-separated inst_info; a gzipped GCT/GCTX
@pytest.mark.parametrize("sep,name", [(",", "commas"), (";", "semicolons")])
def test_a_comma_separated_inst_info_is_said_to_be_not_tab_separated(
        tmp_path: Path, sep: str, name: str, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    inst = tmp_path / "inst.csv"
    f["cols"].to_csv(inst, sep=sep, index=False)
    err = build_err(f, "--inst-info", inst, capsys=capsys)
    assert err.startswith(f"error: {inst}: not tab-separated: its header is one field holding {name} "
                          f"('inst_id{sep}cell_id{sep}pert_type{sep}")
    assert err.endswith("...); inst_info files are tab-separated text (as GEO publishes it): save it with "
                        "tabs between the columns\n")


@pytest.mark.parametrize("fmt", ["gctx", "gct"])
def test_a_gzipped_l1000_file_is_named_as_such(tmp_path: Path, fmt: str,
                                               capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    src = f["gctx"] if fmt == "gctx" else write_gct(tmp_path / "x.gct", f["mat"], f["rows"], f["cols"])
    gz = tmp_path / f"x.{fmt}.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    err = build_err(f, l1000=gz, capsys=capsys)
    assert err == f"error: {gz}: gzip-compressed; gunzip the GCT/GCTX file first (gunzip -k x.{fmt}.gz)\n"


# --------------------------------------- 15: baseline errors give the file line (1-based, header = line 1)
def test_a_baseline_error_gives_the_file_line_and_the_row(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    genes = GENES[:6]
    vals = baseline_values(["A375", "MCF7"], genes).astype(str)
    vals[0, 2] = "abc"  # A375's RHEB: the third data row, line 4 of the file
    base = tmp_path / "b.csv"
    pd.DataFrame({"gene": [e for e, _ in genes], "A375": vals[0], "MCF7": vals[1]}).to_csv(base, index=False)
    err = build_err(f, base=base, capsys=capsys)
    assert err == (f"error: {base}: non-numeric value 'abc' at line 4 (gene '6009'), column 'A375'; fix the "
                   f"value, or write a missing one as empty or NA\n")
    text = base.read_text().splitlines()
    base.write_text("\n".join([text[0], "", *text[1:]]) + "\n")  # a blank line before the data: line 5
    assert " at line 5 (gene '6009')" in build_err(f, base=base, capsys=capsys)
    gdsc = write_gdsc(tmp_path / "g.txt", ["906793", "905946"], genes, baseline_values("ab", genes))
    text = gdsc.read_text().splitlines()
    text[2] = text[2].replace(text[2].split("\t")[2], "xyz", 1)  # ATF1's DATA.906793
    gdsc.write_text("\n".join(text) + "\n")
    err = build_err(f, base=gdsc, capsys=capsys)
    assert " non-numeric value 'xyz' at line 3 (gene 'ATF1'), column 'DATA.906793'; fix the value" in err


# ------------------------------------------------ 16: a GCT gene is named by its gene id and row id alike
def test_gct_value_errors_name_the_gene_id_and_the_row_id(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    rows = f["rows"].copy()
    rows["id"] = [f"2{k}_probe_at" for k in range(len(rows))]  # row ids unlike the Entrez ids
    sample = str(f["cols"].inst_id[7])  # A375's first vorinostat well at 10 uM (the highest dose)
    mat = f["mat"].copy()
    mat[7, 1] = np.nan
    gct = write_gct(tmp_path / "nan.gct", mat, rows, f["cols"])
    err = build_err(f, l1000=gct, capsys=capsys)
    assert err == (f"error: {gct}: 1 missing (-666/NaN) or infinite values in 1 selected profile, e.g. "
                   f"sample {sample!r} gene '466' (row '21_probe_at') = nan; fix the values in the file, or "
                   f"keep those samples out of the selection (e.g. give them another pert_type in "
                   f"--inst-info)\n")
    text = gct.read_text().replace("\tnan\t", "\tabc\t", 1)
    gct.write_text(text)
    err = build_err(f, l1000=gct, capsys=capsys)
    assert err == (f"error: {gct}: non-numeric expression value 'abc' for gene '466' (row '21_probe_at'), "
                   f"sample {sample!r}; fix the value (write a missing value as empty, NA, NaN or -666)\n")
