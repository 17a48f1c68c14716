"""Review of the data ingestion (pass 50): ids no cell map names, and the other problems of this pass, each
reproduced with a small file in the public layout."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from datasets_test_helpers import (
    GENES,
    baseline_values,
    gene_meta,
    l1000_design,
    values,
    write_ccle,
    write_gct,
    write_gctx,
    write_gdsc,
    write_inst_info,
)

from datasets.baseline import read_cell_map
from datasets.cube import CubeError, open_cube
from datasets.fetch import main as fetch_main
from datasets.l1000 import read_gct
from datasets.response import match_response, render
from datasets.response_tables import read_response
from tests.datasets.build_cli import build_err, build_inputs, cli


@pytest.fixture
def f(tmp_path):
    return build_inputs(tmp_path)


# ------------------------------------------------------------------- 1: a COSMIC id no cell map names
def test_an_unmapped_cosmic_id_is_left_out_and_said(f, capsys):
    # before: GDSC's 906826 (unmapped) became a cube cell line '906826' beside CCLE's HT29 (one cell line
    # twice, counted in the summary's '3 cell lines'); now it is left out and the summary names it
    gdsc = write_gdsc(f["dir"] / "g.txt", ["906793", "905946", "906826"], GENES[:6],
                      baseline_values("abc", GENES[:6]))
    ccle = write_ccle(f["dir"] / "c.gct", ["A375_SKIN", "HT29_LARGE_INTESTINE"], GENES[:6],
                      baseline_values("ab", GENES[:6]))
    cmap = f["dir"] / "map.csv"
    cmap.write_text("source_name,cell_line\n906793,A375\n905946,MCF7\n")
    r = cli("--l1000", f["gctx"], "--baseline", gdsc, "--baseline", ccle, "--cell-map", cmap, "--out",
            f["out"], rc=0, capsys=capsys)
    assert f"baseline {gdsc}: 2 cell lines, 2 matched to L1000 cell lines\n" in r.stdout
    assert ("  left out: 1 COSMIC id that no cell map names (906826): not cell lines of the cube; map them "
            "with --cell-map" in r.stdout)
    assert sorted(open_cube(f["out"]).cell_line.values.tolist()) == ["A375", "HT29", "MCF7"]
    assert "cube: 3 cell lines" in r.stdout


def test_a_gdsc_file_with_no_mapped_id_is_refused(f, capsys):
    gdsc = write_gdsc(f["dir"] / "g.txt", ["906793", "905946"], GENES[:6], baseline_values("ab", GENES[:6]))
    err = build_err(f, base=gdsc, capsys=capsys)
    assert (f"{gdsc}: none of its 2 COSMIC ids (906793, 905946) is mapped to a cell line name; give DepMap's "
            f"Model.csv (--model) or a --cell-map CSV" in err)



# ------------------------------------------------------- 3: CMap metadata with a Latin-1 byte (micro sign)
def _latin1_micro(path):
    """``path`` with its dose unit 'um' written 'µM' in Latin-1 (one byte, 0xB5), as GCTX metadata has it."""
    path.write_bytes(path.read_bytes().replace(b"\tum", b"\t\xb5M"))
    return path


def test_inst_info_with_a_latin1_micro_sign_is_read(f, capsys):
    # before: "cannot parse as a tab-separated inst_info file: 'utf-8' codec can't decode byte 0xb5 in
    # position 479" (a byte offset, no line); the GCTX reader already read Latin-1 metadata
    inst = _latin1_micro(write_inst_info(f["dir"] / "inst_info.txt", f["cols"]))
    r = cli("--l1000", f["gctx"], "--inst-info", inst, "--baseline", f["base"], "--out", f["out"], rc=0,
            capsys=capsys)
    assert "trametinib: 2 cell lines, 12 replicates, dose 3.33 uM" in r.stdout


def test_inst_info_with_an_ambiguous_byte_names_the_line(f, capsys):
    inst = write_inst_info(f["dir"] / "inst_info.txt", f["cols"])
    lines = inst.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b"\tum", b"\t\x93um")  # a Windows-1252 quote: not Latin-1 text
    inst.write_bytes(b"\n".join(lines))
    err = build_err(f, "--inst-info", inst, capsys=capsys)
    assert f"{inst}: line 6, byte " in err and "b'\\x93' is neither UTF-8 nor printable Latin-1" in err
    assert "save the file as UTF-8" in err


def test_gct_with_a_latin1_micro_sign_is_read_not_replaced(tmp_path):
    # before: errors="replace" made the unit '\ufffdM' (the byte lost); now 'µM', as from a GCTX
    cols = build_inputs(tmp_path)["cols"]
    gct = _latin1_micro(write_gct(tmp_path / "x.gct", values(len(cols), 8), gene_meta(), cols))
    units = {u for u in read_gct(gct).col_meta["pert_dose_unit"] if isinstance(u, str)}  # -666: NaN
    assert "\u00b5M" in units and not any("\ufffd" in u for u in units)


def test_baseline_not_utf8_names_the_line(f, capsys):
    base = f["dir"] / "b.csv"
    base.write_bytes(b"gene,A375,MCF7\n5720,1,2\n466,1,2\xb5\n")
    err = build_err(f, base=base, capsys=capsys)
    assert f"{base}: not UTF-8 text at line 3, byte 8 (b'\\xb5'); save the baseline CSV as UTF-8" in err


# ------------------------------------------------------- 4: drug names that differ only in punctuation
def test_drug_names_alike_in_punctuation_are_named_in_the_summary(tmp_path, capsys):
    # before: SN-38 (A375's 6 samples) and SN38 (MCF7's 6) became two drugs with no word of it, and
    # --drugs SN38 left SN-38's 6 samples out unsaid
    f = build_inputs(tmp_path)
    cols = l1000_design(cells=("A375", "MCF7"), drugs={"SN-38": (1.0,), "vorinostat": (10.0,)})
    cols.loc[(cols.cell_id == "MCF7") & (cols.pert_iname == "SN-38"), "pert_iname"] = "SN38"
    gctx = write_gctx(tmp_path / "sn.gctx", values(len(cols), len(f["rows"])), f["rows"], cols)
    r = cli("--l1000", gctx, "--baseline", f["base"], "--out", f["out"], rc=0, capsys=capsys)
    assert "drugs: 3\n" in r.stdout
    assert ("  pert_inames alike (only punctuation differs; trt_cp samples at the time point), kept apart: "
            "'SN-38' (6) and 'SN38' (6); if they are one compound, make the spellings agree" in r.stdout)
    r = cli("--l1000", gctx, "--baseline", f["base"], "--out", tmp_path / "one.zarr", "--drugs", "SN38", rc=0,
            capsys=capsys)
    assert "kept apart: 'SN-38' (6, not selected) and 'SN38' (6);" in r.stdout
    r = cli("--l1000", gctx, "--baseline", f["base"], "--out", tmp_path / "vor.zarr", "--drugs", "vorinostat",
            rc=0, capsys=capsys)
    assert "pert_inames alike" not in r.stdout  # only groups that hold a drug of the cube


# ------------------------------------------------------------------- 5: an h5ad with repeated obs names
H5AD_KEYS = ("--obs-key", "cell_line=cell_id", "--obs-key", "condition=pert_iname", "--obs-key",
             "replicate=rep", "--obs-key", "dose_um=pert_dose", "--obs-key", "plate=rna_plate", "--gene-key",
             "entrez", "--control", "DMSO")


def _repeated_names(tmp_path, **obs):
    from tests.datasets.test_anndata_io import hand_made

    adata = hand_made()
    adata.obs.index = ["s0", "s0", "s2", "s3", "s4", "s5", "s6", "s6"]
    for k, v in obs.items():
        adata.obs[k] = v
    adata.write_h5ad(tmp_path / "in.h5ad")
    return tmp_path / "in.h5ad"


def test_h5ad_with_repeated_obs_names_keeps_every_row_and_says_nothing_false(tmp_path):
    # before: anndata's two-line "UserWarning: Observation names are not unique ..." (its source path and
    # line) on stderr of every such build; the rows were placed by position (nothing overwritten): kept so
    path = _repeated_names(tmp_path)
    out = tmp_path / "c.zarr"
    r = cli("--h5ad", path, *H5AD_KEYS, "--out", out, rc=0)  # a subprocess: pytest would catch the warning
    assert r.stderr == ""
    x = open_cube(out)["expression"].values[..., 0]  # gene 0 holds each row's position (hand_made)
    assert sorted(x[~np.isnan(x)].astype(int).tolist()) == list(range(8))


def test_h5ad_error_names_a_repeated_obs_name_by_position(tmp_path, capsys):
    # before: "(row 's0')", two rows of that name
    path = _repeated_names(tmp_path, rep=["X1"] * 8)
    r = cli("--h5ad", path, *H5AD_KEYS, "--out", tmp_path / "c.zarr", capsys=capsys)
    assert "share replicate label 'X1' (row 's0' (position 1: obs names repeat))" in r.stderr


# ------------------------------------------------------------- a cell map that maps one name two ways
@pytest.mark.parametrize("rows, msg", [
    ("906793,A375\n905946,MCF7\n906793,MCF7\n",
     "'906793' (line 2) and '906793' (line 4) map to two cell lines, 'A375' and 'MCF7'; keep one"),
    ("HT-29,HT29\nht29,SW480\n",
     "'HT-29' (line 2) and 'ht29' (line 3) (one name: case and punctuation are ignored) map to two cell "
     "lines, 'HT29' and 'SW480'"),
    ("906793,A375\n,A549\n", "line 3 maps '' to 'A549'; every line needs a source_name and a cell_line"),
])
def test_a_cell_map_line_that_would_be_dropped_is_refused(f, capsys, rows, msg):
    # before: the last of two mappings of 906793 won unsaid ({'906793': 'MCF7'}), and a line with an empty
    # field was skipped
    cmap = f["dir"] / "map.csv"
    cmap.write_text("source_name,cell_line\n" + rows)
    assert f"{cmap}: {msg}" in build_err(f, "--cell-map", cmap, capsys=capsys)


def test_a_cell_map_may_repeat_a_mapping(tmp_path):
    (tmp_path / "m.csv").write_text("source_name,cell_line\n906793,A375\nA-375,A375\n906793,A375\n")
    assert read_cell_map(tmp_path / "m.csv") == {"906793": "A375", "a375": "A375"}


# ------------------------------------------------------------- a baseline cell line without a name
@pytest.mark.parametrize("name, text, msg", [
    ("b.csv", "gene,A375,,MCF7\n5720,1,2,3\n466,1,2,3\n",
     "1 cell line column without a name (first: column 3 of the header); name it or delete it"),
    ("d.csv", ",PSME1 (5720),ATF1 (466)\nA375,1,2\n,3,4\nMCF7,5,6\n",
     "1 cell line row without a name (first: line 3); name it or delete it"),
    ("e.csv", "gene,A375,--,MCF7\n5720,1,2,3\n466,1,2,3\n",
     "cell line name '--' has no letter or digit, so it matches no cell line"),
])
def test_a_baseline_cell_line_without_a_name_is_refused(f, capsys, name, text, msg):
    # before: the CSV's empty header became a cube cell line 'Unnamed: 2'; the DepMap row without a name and
    # the CSV's '--' were left out unsaid (the summary's count without them)
    base = f["dir"] / name
    base.write_text(text)
    assert f"{base}: {msg}" in build_err(f, base=base, capsys=capsys)


def test_a_baseline_gene_of_several_rows_is_named(f, capsys):
    # before: GDSC's second ATF1 row was ignored unsaid (the first used)
    genes = [*GENES[:6], GENES[1]]
    gdsc = write_gdsc(f["dir"] / "g.txt", ["906793", "905946"], genes, baseline_values("ab", genes))
    cmap = f["dir"] / "map.csv"
    cmap.write_text("source_name,cell_line\n906793,A375\n905946,MCF7\n")
    r = cli("--l1000", f["gctx"], "--baseline", gdsc, "--cell-map", cmap, "--out", f["out"], rc=0,
            capsys=capsys)
    assert (f"baseline {gdsc}: 2 cell lines, 2 matched to L1000 cell lines\n  genes in several rows, the "
            f"first used: ATF1 (2 rows)\n" in r.stdout)
    got = open_cube(f["out"])["expression"].sel(cell_line="A375", condition="baseline").values[0]
    np.testing.assert_allclose(got, baseline_values("ab", genes)[0, :6], rtol=1e-5)  # the first row's


# ------------------------------------------------- h5ad conditions that differ only in case or punctuation
def test_h5ad_conditions_differing_in_case_are_refused(tmp_path, capsys):
    # before: 'vorinostat' (MCF7, 2 profiles) and 'Vorinostat' (A375, 1) became two drugs
    inames = ["DMSO", "DMSO", "vorinostat", "vorinostat", "DMSO", "trametinib", "Vorinostat", "baseline"]
    path = _repeated_names(tmp_path, pert_iname=inames)
    r = cli("--h5ad", path, *H5AD_KEYS, "--out", tmp_path / "c.zarr", capsys=capsys)
    assert ("obs['pert_iname']: condition written as 'Vorinostat' (1 profile) and 'vorinostat' (2 profiles): "
            "one drug under two spellings would be two drugs" in r.stderr)


def test_h5ad_conditions_differing_in_punctuation_are_named(tmp_path, capsys):
    inames = ["DMSO", "DMSO", "SN38", "SN38", "DMSO", "trametinib", "SN-38", "baseline"]
    path = _repeated_names(tmp_path, pert_iname=inames)
    r = cli("--h5ad", path, *H5AD_KEYS, "--out", tmp_path / "c.zarr", rc=0, capsys=capsys)
    assert "drugs: 3\n" in r.stdout
    assert "  drug names alike (only punctuation differs), kept apart: 'SN38' and 'SN-38'; if" in r.stdout


# --------------------------------------------------------------- a Model.csv id that names two cell lines
def test_a_model_csv_id_of_two_cell_lines_is_left_unmapped_and_said(f, capsys):
    # before: COSMICID 905946 of MCF7 and of T47D: the last row won unsaid (GDSC's 905946 became T47D)
    model = f["dir"] / "Model.csv"
    model.write_text("ModelID,StrippedCellLineName,COSMICID\nACH-000219,A375,906793.0\n"
                     "ACH-000019,MCF7,905946.0\nACH-000147,T47D,905946.0\n")
    gdsc = write_gdsc(f["dir"] / "g.txt", ["906793", "905946"], GENES[:6], baseline_values("ab", GENES[:6]))
    r = cli("--l1000", f["gctx"], "--baseline", gdsc, "--model", model, "--out", f["out"], rc=0,
            capsys=capsys)
    assert ("Model.csv ids naming two cell lines, left unmapped: 905946 (MCF7 / T47D); settle them with "
            "--cell-map" in r.stdout)
    assert "left out: 1 COSMIC id that no cell map names (905946)" in r.stdout
    assert "T47D" not in open_cube(f["out"]).cell_line.values.tolist()
    cmap = f["dir"] / "map.csv"
    cmap.write_text("source_name,cell_line\n905946,MCF7\n")
    r = cli("--l1000", f["gctx"], "--baseline", gdsc, "--model", model, "--cell-map", cmap, "--out", f["out"],
            "--overwrite", rc=0, capsys=capsys)
    assert "Model.csv ids" not in r.stdout and f"baseline {gdsc}: 2 cell lines, 2 matched" in r.stdout


# --------------------------------------------------- CSVs saved by Excel as "CSV UTF-8" (a byte order mark)
BOM = "\ufeff"


def test_a_response_csv_with_a_byte_order_mark_is_read(tmp_path):
    # before: "cannot tell the response format from its header '\ufeffCOSMIC_ID,...'" (Excel's CSV UTF-8,
    # what the .xlsx refusal asks for); with --response-format gdsc: "needs column(s) COSMIC_ID"
    path = tmp_path / "g.csv"
    path.write_text(BOM + "COSMIC_ID,CELL_LINE_NAME,DRUG_NAME,AUC\n906793,A375,SN-38,0.25\n",
                    encoding="utf-8")
    for fmt in ("auto", "gdsc"):
        t = read_response(path, fmt)
        assert t.fmt == "gdsc" and t.cell_name.tolist() == ["A375"] and t.value.tolist() == [0.75]


def test_a_headerless_cell_map_with_a_byte_order_mark_is_refused(tmp_path):
    # before: its first line '\ufeff906793,A375' was not seen as a mapping, read as the header: lost unsaid
    (tmp_path / "m.csv").write_text(BOM + "906793,A375\n905946,MCF7\n", encoding="utf-8")
    with pytest.raises(CubeError, match="its first line '906793,A375' is a mapping, not the header line"):
        read_cell_map(tmp_path / "m.csv")


# ------------------------------------------------------------------------------ fetch: a bad --url
@pytest.mark.parametrize("args, msg", [
    (["--url", "htp://example.org/x.csv"], "--url 'htp://example.org/x.csv': not an http(s) URL with a host"),
    (["--url", "http:///x.csv"], "--url 'http:///x.csv': not an http(s) URL with a host"),
    (["--url", "http://[::1/x.csv"], "--url 'http://[::1/x.csv': not a valid URL (Invalid IPv6 URL)"),
    (["gdsc", "--base-url", "http://[::1"], "--base-url 'http://[::1': not a valid URL"),
])
def test_a_bad_url_is_one_error_before_any_attempt(tmp_path, capsys, args, msg):
    # before: 'htp://' and a URL without a host were tried and retried as network failures ("download failed
    # after 6 attempts (str: unknown url type: htp)"), '[::1' a ValueError traceback
    assert fetch_main([*args, "--dir", str(tmp_path / "d"), "--retry-wait", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {msg}") and err.count("\n") == 1
    assert not (tmp_path / "d").exists()


# -------------------------------------------------- a missing --model, --cell-map or baseline: said first
@pytest.mark.parametrize("flag, name, msg", [
    ("--model", "nope.csv", "--model file not found"),
    ("--model", ".", "--model file is not a file"),
    ("--cell-map", "nope.csv", "--cell-map file not found"),
    ("--baseline", "gone.csv", "baseline file not found"),
])
def test_a_missing_small_input_is_said_before_the_l1000_read(f, capsys, monkeypatch, flag, name, msg):
    # before: a missing or directory --model was a FileNotFoundError/IsADirectoryError traceback, and every
    # one of these was found only after the L1000 matrix was read (hours for GSE92742)
    import datasets.build

    def no_read(*args, **kwargs):
        raise AssertionError("the L1000 matrix was read")

    monkeypatch.setattr(datasets.build, "load_profiles", no_read)
    path = f["dir"] / name
    extra = () if flag == "--baseline" else (flag, path)
    err = build_err(f, *extra, base=path if flag == "--baseline" else None, capsys=capsys)
    assert f"{path}: {msg}" in err


def test_gctx_metadata_mixing_utf8_and_latin1_reads_each_value(f, capsys):
    # before: one Latin-1 value made the whole field Latin-1: the UTF-8 'µM' of the other samples became
    # 'Â\xb5M', a unit no one knows
    units = f["cols"]["pert_dose_unit"].to_numpy(dtype=object)
    raw = [b"\xc2\xb5M" if u == "um" and k % 2 else b"\xb5M" if u == "um" else u.encode()
           for k, u in enumerate(units)]
    with h5py.File(f["gctx"], "a") as h:
        del h["/0/META/COL/pert_dose_unit"]
        h.create_dataset("/0/META/COL/pert_dose_unit", data=np.array(raw, dtype="S"))
    r = cli("--l1000", f["gctx"], "--baseline", f["base"], "--out", f["out"], rc=0, capsys=capsys)
    assert "trametinib: 2 cell lines, 12 replicates, dose 3.33 uM" in r.stdout


def test_a_repeated_column_of_an_unmapped_id_is_not_said_kept(f, capsys):
    # before: 'repeated columns, first kept: DATA.905946' of a cell line left out (its id unmapped)
    gdsc = write_gdsc(f["dir"] / "g.txt", ["906793", "905946"], GENES[:6], baseline_values("ab", GENES[:6]))
    lines = gdsc.read_text().splitlines()
    # DATA.905946 repeated (as the official file repeats four columns)
    gdsc.write_text("\n".join(ln + "\t" + (ln.split("\t")[3] if i == 0 else "9")
                              for i, ln in enumerate(lines)))
    cmap = f["dir"] / "map.csv"
    cmap.write_text("source_name,cell_line\n906793,A375\n")
    r = cli("--l1000", f["gctx"], "--baseline", gdsc, "--cell-map", cmap, "--out", f["out"], rc=0,
            capsys=capsys)
    assert f"baseline {gdsc}: 1 cell line, 1 matched to L1000 cell lines\n" in r.stdout  # not 'first kept'
    assert "left out: 1 COSMIC id that no cell map names (905946)" in r.stdout


# ------------------------------------------------- response: two of the file's cell lines, one cube cell line
def test_response_cell_lines_joined_into_one_cube_cell_line_are_named(tmp_path):
    # before: KM-H2 (COSMIC 1, AUC 0.2) and KMH-2 (COSMIC 2, AUC 0.8), two cell lines of one name key, were
    # averaged into the cube's KMH2 (0.5) and the summary said only 'several measurements averaged for 2
    # cell line-drug pairs', as of MCF7's two screens of one cell line
    from tests.datasets.response_layout import write_gdsc as write_response
    from tests.datasets.test_response import cube_with_gaps

    path = write_response(tmp_path / "g.csv", [
        ("1", "KM-H2", "SN-38", "", "0.2", ""), ("2", "KMH-2", "SN-38", "", "0.8", ""),
        ("3", "A375", "SN-38", "", "0.5", ""), ("4", "MCF7", "selumetinib", "", "0.5", ""),
        ("4", "MCF7", "selumetinib", "", "0.7", "")])
    ds = cube_with_gaps().assign_coords(cell_line=["A375", "MCF7", "PC3", "KMH2"])
    m = match_response(read_response(path), [str(c) for c in ds.cell_line.values],
                       [str(c) for c in ds.condition.values])
    assert m.joined == {"KMH2": ["KM-H2 (1)", "KMH-2 (2)"]}
    text = render(m, ds)
    assert ("  KMH2: the file's cell lines KM-H2 (1) and KMH-2 (2) matched it (one name key), their "
            "measurements averaged" in text)
    assert "MCF7: the file's" not in text  # one cell line (one COSMIC id) measured twice: no such line


def test_a_ragged_gct_line_is_named_by_its_file_line(tmp_path):
    # before: 'line 5' (blank lines not counted) for the 7th line of the file
    path = tmp_path / "x.gct"
    path.write_text("#1.2\n3\t2\nName\tDescription\tS1\tS2\n\ng1\tA\t1\t2\n\ng2\tB\t1\t2\t3\ng3\tC\t1\t2\n")
    with pytest.raises(CubeError, match=r"x.gct: line 7 has 5 fields, expected 4"):
        read_gct(path)


# --------------------------------------------------------------- response errors name the file's line
def test_response_errors_name_the_file_line(tmp_path):
    # before: PRISM's IC50 0 on line 4 was 'line 3' (the STR-failed row on line 2 dropped first), and a GDSC
    # value after a blank line was one line early
    from tests.datasets.response_layout import write_gdsc as write_response
    from tests.datasets.response_layout import write_prism

    prism = write_prism(tmp_path / "p.csv", [
        ("ACH-1", "A375_SKIN", "SN-38", "0.5", "1", "FALSE", "HTS002"),
        ("ACH-2", "MCF7_BREAST", "SN-38", "0.5", "1", "TRUE", "HTS002"),
        ("ACH-3", "PC3_PROSTATE", "SN-38", "0.5", "0", "TRUE", "HTS002")])
    with pytest.raises(CubeError, match=r"p.csv: column 'ic50', line 4: IC50 0 is not a positive"):
        read_response(prism, "prism", "ln_ic50")
    gdsc = write_response(tmp_path / "g.csv", [("1", "A375", "SN-38", "", "0.2", ""),
                                               ("2", "MCF7", "SN-38", "", "abc", "")])
    lines = gdsc.read_text().splitlines()
    gdsc.write_text("\n".join([lines[0], lines[1], "", lines[2]]) + "\n")
    with pytest.raises(CubeError, match=r"g.csv: column 'AUC', line 4: 'abc' is not a number"):
        read_response(gdsc, "gdsc")


def test_an_unknown_landmark_flag_is_refused(tmp_path, capsys):
    # before: pr_is_lmark 'L' (neither yes nor no) counted as 'not a landmark' unsaid: 'genes kept: 5 of 5'
    f = build_inputs(tmp_path)
    rows = f["rows"].copy()
    rows.loc[2, "pr_is_lmark"] = "L"
    gctx = write_gctx(tmp_path / "lm.gctx", f["mat"], rows, f["cols"])
    err = build_err(f, l1000=gctx, capsys=capsys)
    assert (f"{gctx}: pr_is_lmark 'L' (row '6009_at'; 1 row in all) is neither a yes (1, Y, true) nor a no"
            in err)
