"""Review 45 (data input): bad input that a build used to drop or misstate without a word.

Each refused input gives one ``error:`` line naming the file, sample or field and the value (exit 2, no
traceback, nothing written); each accepted one is stated truly in the cube and its summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets_test_helpers import GENES, baseline_values, l1000_design, write_ccle, write_csv, write_gctx

from datasets.cube import open_cube
from tests.datasets.build_cli import build_err, build_inputs, cli


def _gctx(f: dict, cols: pd.DataFrame, name: str) -> Path:
    return write_gctx(f["dir"] / name, f["mat"], f["rows"], cols)


# ------------------------------------------------------------------- 2, 9: a dose that does not parse
def test_one_unparseable_dose_is_refused_naming_sample_column_and_value(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    cols = f["cols"].copy()
    trt = cols.index[(cols.pert_type == "trt_cp") & (cols.pert_iname == "vorinostat")
                     & (cols.pert_dose == "10") & (cols.cell_id == "A375")]
    cols.loc[trt[0], "pert_dose"] = "ten"  # one replicate of several: it used to vanish unsaid
    gctx = _gctx(f, cols, "onebad.gctx")
    err = build_err(f, l1000=gctx, capsys=capsys)
    assert err == (f"error: {gctx}: sample {cols.inst_id[trt[0]]!r}: pert_dose 'ten' is not a number; fix "
                   f"the value (e.g. pert_dose 10 with pert_dose_unit uM) or drop the sample\n")


def test_every_dose_unparseable_names_the_value_not_no_dose_known(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    cols = f["cols"].copy()
    trt = (cols.pert_type == "trt_cp") & (cols.pert_iname == "vorinostat") & (cols.cell_id == "A375")
    cols.loc[trt, "pert_dose"] = "ten"
    err = build_err(f, l1000=_gctx(f, cols, "allbad.gctx"), capsys=capsys)
    assert "pert_dose 'ten' is not a number (and " in err and "no dose known" not in err


def test_a_treatment_without_any_dose_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    cols = f["cols"].copy()
    i = cols.index[cols.pert_type == "trt_cp"][2]
    cols.loc[i, "pert_dose"] = "-666"
    err = build_err(f, l1000=_gctx(f, cols, "nodose.gctx"), capsys=capsys)
    assert f"sample {cols.inst_id[i]!r}: no dose (pert_dose empty or -666); fill it in or drop" in err


# -------------------------------------------------------------- 6: the measured dose, not the requested one
def test_numeric_dose_records_the_measured_dose(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)  # trametinib wells at 3.33 uM
    r = cli("--l1000", f["gctx"], "--baseline", f["base"], "--out", f["out"], "--drugs", "trametinib",
            "--dose", "3.3", rc=0, capsys=capsys)
    assert "dose 3.33 uM" in r.stdout and "dose 3.3 uM" not in r.stdout
    ds = open_cube(f["out"])
    assert float(ds["dose_um"].sel(cell_line="A375", condition="trametinib")) == pytest.approx(3.33, rel=1e-9)


def test_two_measured_doses_in_the_window_are_refused_unless_one_is_given(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    cols = l1000_design(cells=("A375", "MCF7"), drugs={"vorinostat": (3.3, 3.33), "trametinib": (0.04, 3.33)})
    gctx = _gctx(f, cols, "two.gctx")
    err = build_err(f, "--drugs", "vorinostat", "--dose", "3.31", l1000=gctx, capsys=capsys)
    assert ("drug 'vorinostat' in cell line 'A375': --dose 3.31 is within 1% of 2 different measured doses: "
            "3.3 uM (6 samples), 3.33 uM (6 samples); give one of them exactly with --dose") in err
    r = cli("--l1000", gctx, "--baseline", f["base"], "--out", f["out"], "--drugs", "vorinostat",
            "--dose", "3.3", rc=0, capsys=capsys)
    assert "vorinostat: 2 cell lines, 12 replicates, dose 3.3 uM" in r.stdout


def test_the_highest_dose_keeps_its_replicates_within_one_percent(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    # wells at 10 and 9.95 uM are the highest dose's replicates (the paper's rule): none dropped unsaid
    f = build_inputs(tmp_path)
    cols = l1000_design(cells=("A375", "MCF7"),
                        drugs={"vorinostat": (1.0, 9.95, 10.0), "trametinib": (3.33,)})
    r = cli("--l1000", _gctx(f, cols, "near.gctx"), "--baseline", f["base"], "--out", f["out"], "--drugs",
            "vorinostat", rc=0, capsys=capsys)
    assert "vorinostat: 2 cell lines, 24 replicates, dose 10 uM" in r.stdout


# --------------------------------------------------- 3: L1000 rows with a missing or repeated Entrez id
def _rows_gctx(f: dict, rows: pd.DataFrame, name: str) -> Path:
    return write_gctx(f["dir"] / name, f["mat"], rows, f["cols"])


def test_a_repeated_landmark_entrez_id_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    rows = f["rows"].copy()
    rows.loc[1, "pr_gene_id"] = rows.loc[0, "pr_gene_id"]  # ATF1's row labelled PSME1's 5720
    gctx = _rows_gctx(f, rows, "dup.gctx")
    err = build_err(f, l1000=gctx, capsys=capsys)
    assert err == (f"error: {gctx}: 1 landmark row (pr_is_lmark 1) repeats the Entrez id of another, e.g. "
                   f"pr_gene_id '5720' on rows '5720_at', '466_at'; each landmark gene has one row: fix the "
                   f"pr_gene_id (or --gene-info) of those rows\n")


def test_a_landmark_row_without_entrez_id_is_counted_and_named(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)  # 8 rows, 6 landmarks, all 6 in the baseline
    rows = f["rows"].copy()
    rows.loc[2, "pr_gene_id"] = "-666"
    r = cli("--l1000", _rows_gctx(f, rows, "noid.gctx"), "--baseline", f["base"], "--out", f["out"], rc=0,
            capsys=capsys)
    assert ("genes kept: 5 of 6 L1000 landmark genes (1 without an Entrez id (pr_gene_id empty or -666, "
            "e.g. row '6009_at') left out)") in r.stdout


def test_all_genes_counts_the_later_probes_it_leaves_out(tmp_path: Path, capsys: pytest.CaptureFixture
                                                        ) -> None:
    f = build_inputs(tmp_path)
    rows = f["rows"].copy()
    rows.loc[7, "pr_gene_id"] = rows.loc[6, "pr_gene_id"]  # two probes of one gene, not landmarks
    r = cli("--l1000", _rows_gctx(f, rows, "probes.gctx"), "--baseline", f["base"], "--out", f["out"],
            "--all-genes", rc=0, capsys=capsys)
    assert "of 8 L1000 genes (1 later probes of a gene id already kept left out)" in r.stdout


# ------------------------------------------------------------- 4: null tokens in a baseline file are missing
def _csv_with(f: dict, token: str, gene: str, name: str) -> Path:
    """The generic baseline CSV of A375/MCF7 on the first 6 genes plus TP53 (never an L1000 gene here),
    ``token`` as MCF7's value of ``gene``."""
    genes = [*GENES[:6], GENES[11]]
    vals = baseline_values(["A375", "MCF7"], genes).astype(str)
    vals[1, [e for e, _ in genes].index(gene)] = token
    df = pd.DataFrame({"gene": [e for e, _ in genes], "A375": vals[0], "MCF7": vals[1]})
    path = f["dir"] / name
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("token", ["NaN", "NA", "nan", "", " NaN "])
def test_a_null_token_on_a_gene_not_kept_is_ignored(tmp_path: Path, token: str,
                                                    capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    cli("--l1000", f["gctx"], "--baseline", _csv_with(f, token, "7157", "b.csv"), "--out", f["out"], rc=0,
        capsys=capsys)


@pytest.mark.parametrize("token", ["NaN", "NA", ""])
def test_a_null_token_on_a_kept_gene_names_cell_line_and_gene(tmp_path: Path, token: str,
                                                              capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    base = _csv_with(f, token, "466", "b.csv")
    err = build_err(f, base=base, capsys=capsys)
    assert err == f"error: {base}: cell line 'MCF7' has a missing or infinite value (nan) for gene '466'\n"


def test_other_text_in_a_baseline_is_still_non_numeric(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    err = build_err(f, base=_csv_with(f, "abc", "7157", "b.csv"), capsys=capsys)
    assert "non-numeric value 'abc'" in err


# ------------------------------------- 5: a linear-scale baseline beside log2 ones (CCLE RNA-seq RPKM)
def test_ccle_rpkm_is_put_on_the_log2_scale_and_said(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    log2 = baseline_values(["A375", "MCF7"], GENES[:6], seed=4) + 3.0  # like CCLE's log2(RPKM+1), up to ~9
    rpkm = write_ccle(f["dir"] / "CCLE_RNAseq_genes_rpkm.gct", ["A375_SKIN", "MCF7_BREAST"], GENES[:6],
                      np.exp2(log2) - 1)  # the published file: linear RPKM (hundreds)
    r = cli("--l1000", f["gctx"], "--baseline", f["base"], "--baseline", rpkm, "--out", f["out"], rc=0,
            capsys=capsys)
    assert f"baseline {rpkm}: 2 cell lines, 2 matched to L1000 cell lines\n  values: log2(x+1) of the " \
           f"file's linear values (CCLE RNA-seq RPKM" in r.stdout
    assert f"baseline {f['base']}: 2 cell lines, 2 matched to L1000 cell lines\n  values: as in the file " \
           f"(log2 scale" in r.stdout
    ds = open_cube(f["out"])
    got = ds["expression"].sel(condition="baseline", cell_line="MCF7").values[1]  # rep 1: the CCLE source
    assert np.allclose(got, log2[1], atol=1e-4)
    norm = ds.attrs["normalization"]
    assert "CCLE CCLE_RNAseq_genes_rpkm.gct: log2(x+1) of the file's linear values" in norm


def test_a_linear_scale_in_another_source_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    tpm = write_csv(f["dir"] / "tpm.csv", ["A375", "MCF7"], GENES[:6],
                    np.exp2(baseline_values(["A375", "MCF7"], GENES[:6]) + 3.0))
    err = build_err(f, base=tpm, capsys=capsys)
    assert err.startswith(f"error: {tpm}: values up to ") and "a linear scale (RPKM, TPM or counts" in err
    assert "convert the file to log2(x+1) first" in err


# -------------------------------- 13: a file or non-cube directory at --out is said so without --overwrite
@pytest.mark.parametrize("kind", ["file", "dir"])
def test_a_non_cube_at_out_is_named_as_such_without_overwrite(tmp_path: Path, kind: str,
                                                              capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    if kind == "file":
        f["out"].write_text("not a cube")
    else:
        f["out"].mkdir()
        (f["out"] / "keep.txt").write_text("x")
    r = cli("--l1000", f["gctx"], "--baseline", f["base"], "--out", f["out"], capsys=capsys)
    want = ("is an existing file, not a cube" if kind == "file"
            else "is an existing directory that is not a cube")
    assert want in r.stderr and "use --overwrite" not in r.stderr


def test_an_earlier_cube_at_out_asks_for_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    cli("--l1000", f["gctx"], "--baseline", f["base"], "--out", f["out"], rc=0, capsys=capsys)
    r = cli("--l1000", f["gctx"], "--baseline", f["base"], "--out", f["out"], capsys=capsys)
    assert r.stderr == (f"error: {f['out']}: already exists (a cube written by this project); use "
                        f"--overwrite to replace it\n")
