"""Issue 10, datasets side: bad input and faults against the real ``python -m datasets.build`` CLI.

Each case asserts the exit code, the one ``error: ...`` line (no traceback) and that nothing was lost
(inputs, an existing file or directory at --out) or left behind (no cube, no hidden temp/old stores).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from datasets_test_helpers import (
    GENES,
    baseline_values,
    write_csv,
    write_depmap,
    write_gct,
    write_gctx,
    write_gdsc,
    write_inst_info,
)

from datasets.build import main
from datasets.cube import open_cube
from tests.datasets.build_cli import ENV, ROOT, build_err, build_inputs, cli, hidden


@pytest.fixture
def f(tmp_path):
    return build_inputs(tmp_path)


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------ 1, 2: --overwrite data loss
def test_overwrite_refuses_out_holding_the_inputs(f):
    data = f["dir"] / "data"
    data.mkdir()
    gctx, base = f["gctx"].rename(data / "x.gctx"), f["base"].rename(data / "dm.csv")
    before = snapshot(data)
    r = cli("--l1000", gctx, "--baseline", base, "--out", data, "--overwrite")
    assert f"{data}: --out contains the input file {gctx}; choose another --out" in r.stderr
    r = cli("--l1000", gctx, "--baseline", base, "--out", base, "--overwrite")
    assert f"{base}: --out is the input file {base}" in r.stderr
    assert snapshot(data) == before and hidden(data) == [] and hidden(base) == []


def test_overwrite_refuses_a_directory_that_is_not_a_cube(f):
    mine = f["out"]
    mine.mkdir()
    (mine / "notes.txt").write_text("my results")
    (mine / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    err = build_err_keep(f, "--overwrite")
    assert "is an existing directory that is not a cube written by this project" in err
    assert "--overwrite refuses to delete it" in err
    assert (mine / "notes.txt").read_text() == "my results"


def test_overwrite_refuses_a_cube_holding_other_files(f, capsys):
    cli("--l1000", f["gctx"], "--baseline", f["base"], "--out", f["out"], rc=0, capsys=capsys)
    (f["out"] / "keep.txt").write_text("x")
    err = build_err_keep(f, "--overwrite", "--drugs", "trametinib")
    assert "not a cube written by this project" in err and (f["out"] / "keep.txt").exists()


def build_err_keep(f: dict, *extra: str) -> str:
    """A failing build whose --out already exists and must stay as it was."""
    before = snapshot(f["out"]) if f["out"].is_dir() else f["out"].read_bytes()
    r = cli("--l1000", f["gctx"], "--baseline", f["base"], "--out", f["out"], *extra)
    assert (snapshot(f["out"]) if f["out"].is_dir() else f["out"].read_bytes()) == before
    assert hidden(f["out"]) == []
    return r.stderr


def test_overwrite_refuses_a_regular_file_and_leaves_nothing(f):
    f["out"].write_text("not a cube")
    err = build_err_keep(f, "--overwrite")
    assert f"{f['out']}: --out is an existing file, not a cube" in err
    assert "move or delete it yourself" in err


def test_overwrite_replaces_own_cube_cleanly(f, capsys):
    args = ["--l1000", f["gctx"], "--baseline", f["base"], "--out", f["out"]]
    cli(*args, rc=0, capsys=capsys)
    cli(*args, "--drugs", "trametinib", "--overwrite", rc=0, capsys=capsys)
    assert open_cube(f["out"]).condition.values.tolist() == ["control", "trametinib", "baseline"]
    assert hidden(f["out"]) == []


# -------------------------------------------------------------------------------- 6, 7, 8: GCT/GCTX ingest
@pytest.mark.parametrize("token", ["NA", "", "NaN", "nan", "-666"])
def test_gct_missing_values_outside_selection_are_ignored(f, token, capsys):
    gct = write_gct(f["dir"] / "x.gct", f["mat"], f["rows"], f["cols"])
    c = f["cols"]
    k = int(np.flatnonzero(c.pert_time == "6")[0])  # never selected at --time 24
    lines = gct.read_text().splitlines()
    n_cmeta = len(c.columns) - 1
    fields = lines[3 + n_cmeta].split("\t")
    fields[1 + 3 + k] = token  # id + 3 row metadata columns
    lines[3 + n_cmeta] = "\t".join(fields)
    gct.write_text("\n".join(lines) + "\n")
    cli("--l1000", gct, "--baseline", f["base"], "--out", f["out"], rc=0,
        capsys=None if token == "NA" else capsys)
    assert np.isfinite(open_cube(f["out"])["expression"].sel(condition="control", cell_line="A375")
                       .values[:6]).all()


def gct_with_first_value(f: dict, value: str) -> Path:
    """The fixture as GCT 1.3 with the first gene's value in sample 0 (a selected A375 control) replaced."""
    gct = write_gct(f["dir"] / "x.gct", f["mat"], f["rows"], f["cols"])
    lines = gct.read_text().splitlines()
    n_cmeta = len(f["cols"].columns) - 1
    fields = lines[3 + n_cmeta].split("\t")
    fields[4] = value  # id + 3 row metadata columns, then sample 0
    lines[3 + n_cmeta] = "\t".join(fields)
    gct.write_text("\n".join(lines) + "\n")
    return gct


def test_gct_missing_value_in_selected_sample_names_it(f):
    err = build_err(f, l1000=gct_with_first_value(f, "NA"))
    assert f"e.g. sample {f['cols'].inst_id[0]!r} gene '5720' (row '5720_at') = nan" in err


def test_gct_non_numeric_value_is_named(f):
    err = build_err(f, l1000=gct_with_first_value(f, "high"))
    assert (f"non-numeric expression value 'high' for gene '5720' (row '5720_at'), sample "
            f"{f['cols'].inst_id[0]!r}") in err


@pytest.mark.parametrize("fmt", ["gctx", "gct"])
def test_metadata_null_tokens_are_missing(f, fmt, capsys):
    c = f["cols"].copy()
    tokens = ["NA", "na", "NULL", "None", "#N/A", "-666"]
    c["rna_plate"] = [tokens[i % len(tokens)] for i in range(len(c))]  # no plate known anywhere
    c["cell_id"] = [f"  {v} " for v in c.cell_id]  # blanks around values are stripped
    path = (write_gctx(f["dir"] / "t.gctx", f["mat"], f["rows"], c) if fmt == "gctx"
            else write_gct(f["dir"] / "t.gct", f["mat"], f["rows"], c))
    cli("--l1000", path, "--baseline", f["base"], "--out", f["out"], rc=0,
        capsys=capsys if fmt == "gct" else None)
    ds = open_cube(f["out"])
    assert ds.cell_line.values.tolist() == ["A375", "MCF7"]
    plates = set(ds["plate"].sel(condition="control").values.ravel()) - {""}
    assert plates and not plates & set(tokens)  # fell back to the inst id prefix
    assert plates <= {i.split(":")[0] for i in c.inst_id}


def test_gct_quoted_fields_are_unquoted(f):
    c = f["cols"].copy()
    c["pert_iname"] = c.pert_iname.replace({"vorinostat": "vorinostat\tSAHA"})  # a quoted tab
    gct = write_gct(f["dir"] / "q.gct", f["mat"], f["rows"], c)
    lines = gct.read_text().splitlines()
    out = lines[:2]
    for ln in lines[2:]:
        out.append("\t".join(f'"{v}"' if not _is_num(v) else v for v in ln.split("\t")))
    text = "\n".join(out).replace('"vorinostat"\t"SAHA"', '"vorinostat\tSAHA"')
    gct.write_text(text + "\n")
    cli("--l1000", gct, "--baseline", f["base"], "--out", f["out"], rc=0)
    ds = open_cube(f["out"])
    assert ds.condition.values.tolist() == ["control", "trametinib", "vorinostat\tSAHA", "baseline"]
    assert ds.cell_line.values.tolist() == ["A375", "MCF7"] and "5720" in ds.gene.values


def _is_num(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def test_gct12_description_gives_gene_symbols(f):
    gct = write_gct(f["dir"] / "v12.gct", f["mat"], f["rows"], f["cols"], version="1.2")
    inst = write_inst_info(f["dir"] / "inst.txt", f["cols"])
    cli("--l1000", gct, "--inst-info", inst, "--baseline", f["base"], "--out", f["out"], rc=0)
    ds = open_cube(f["out"])
    assert ds.gene_symbol.values.tolist() == [s for _, s in GENES[:6]]  # matched to the baseline by symbol


# ------------------------------------------------------------------------------- 9: duplicate cell lines
def test_csv_baseline_repeated_cell_line_header(f):
    base = write_csv(f["dir"] / "b.csv", ["cl-00", "A375", "cl-00"], GENES[:6],
                     baseline_values("abc", GENES[:6]))
    err = build_err(f, base=base)
    assert f"{base}: cell line column named more than once: 'cl-00'" in err


def test_depmap_repeated_cell_line_row(f):
    base = write_depmap(f["dir"] / "d.csv", ["A375", "MCF7", "A375"], GENES[:6],
                        baseline_values("abc", GENES[:6]))
    assert f"{base}: cell line (row) named more than once: 'A375'" in build_err(f, base=base)


def test_gdsc_repeated_cell_line_column_first_kept(f, capsys):
    # the official GDSC RMA file repeats four COSMIC columns: the first is used and the summary says so
    base = write_gdsc(f["dir"] / "g.txt", ["906793", "905946"], GENES[:6], baseline_values("ab", GENES[:6]))
    lines = base.read_text().splitlines()
    lines = [ln + "\t" + (ln.split("\t")[2] if i == 0 else "99") for i, ln in enumerate(lines)]
    base.write_text("\n".join(lines) + "\n")
    cmap = f["dir"] / "map.csv"
    cmap.write_text("source_name,cell_line\n906793,A375\n905946,K562\n")
    r = cli("--l1000", f["gctx"], "--baseline", base, "--cell-map", cmap, "--out", f["out"], rc=0,
            capsys=capsys)
    assert ("2 cell lines, 1 matched to L1000 cell lines; repeated columns, first kept: DATA.906793"
            in r.stdout)
    got = open_cube(f["out"])["expression"].sel(cell_line="A375", condition="baseline").values[0]
    np.testing.assert_allclose(got, baseline_values("ab", GENES[:6])[0], rtol=1e-5)


# --------------------------------------------------------------------------- 10: messages, not tracebacks
def test_gctx_matrix_is_a_group(f):
    with h5py.File(f["gctx"], "a") as h:
        del h["/0/DATA/0/matrix"]
        h.create_group("/0/DATA/0/matrix")
    assert "not a GCTX 1.0 file, /0/DATA/0/matrix is an HDF5 group, not a dataset" in build_err(f)


def test_ragged_baseline_csv(f):
    base = f["dir"] / "r.csv"
    base.write_text("gene,A375,MCF7\n5720,1,2\n466,1,2,3\n")
    err = build_err(f, base=base)
    assert f"{base}: malformed baseline CSV: line 3 has 4 fields, the lines before it 3" in err


def test_ragged_gdsc_tsv(f):
    base = write_gdsc(f["dir"] / "g.txt", ["906793"], GENES[:6], baseline_values("a", GENES[:6]))
    base.write_text(base.read_text() + "RHOA\tt\t1.0\t2.0\n")
    err = build_err(f, "--baseline-format", "gdsc", base=base)
    assert f"{base}: malformed GDSC baseline file: line 8 has 4 fields, the lines before it 3" in err


def test_empty_cell_map(f):
    cmap = f["dir"] / "map.csv"
    cmap.write_text("")
    assert f"{cmap}: empty cell map (no header line)" in build_err(f, "--cell-map", str(cmap))


@pytest.mark.parametrize("kind", ["binary", "gzip"])
def test_binary_baseline(f, kind, capsys):
    base = f["dir"] / "junk.csv"
    data = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    base.write_bytes(b"\x1f\x8b" + data if kind == "gzip" else b"gene,A375\n" + data + b"\0")
    err = build_err(f, base=base, capsys=capsys if kind == "gzip" else None)
    assert (f"{base}: gzip-compressed; gunzip the baseline file first" if kind == "gzip"
            else f"{base}: binary data, not a text baseline file") in err


def test_out_under_a_regular_file_checked_before_reading(f):
    blocker = f["dir"] / "results"
    blocker.write_text("x")
    out = blocker / "sub" / "cube.zarr"
    r = cli("--l1000", f["dir"] / "missing.gctx", "--baseline", f["base"], "--out", out)
    assert f"{out}: cannot create --out because {blocker} is a file, not a directory" in r.stderr
    assert blocker.read_text() == "x"


# ------------------------------------------------------------------------------------------- 11: --drugs
@pytest.mark.parametrize("drugs", [[","], [""], [" , "], []])
def test_empty_drugs_is_an_error(f, drugs, capsys):
    err = build_err(f, "--drugs", *drugs, capsys=capsys if drugs != [","] else None)
    assert err.startswith("error: --drugs: no drug name given")


@pytest.mark.parametrize("drugs", [["trametinib", "vorinostat"], ["trametinib,vorinostat"],
                                   ["trametinib,", "vorinostat"]])
def test_drugs_comma_or_space_separated(f, drugs, capsys):
    cli("--l1000", f["gctx"], "--baseline", f["base"], "--out", f["out"], "--drugs", *drugs, rc=0,
        capsys=None if drugs == ["trametinib", "vorinostat"] else capsys)
    assert open_cube(f["out"]).condition.values.tolist() == ["control", "trametinib", "vorinostat",
                                                             "baseline"]


# ---------------------------------------------------------------------------------- 12: cube size
def test_default_max_controls_is_auto(f, capsys):
    r = cli("--l1000", f["gctx"], "--baseline", f["base"], "--out", f["out"], rc=0, capsys=capsys)
    # 8 vehicle controls per cell line; auto keeps its largest drug replicate count (3 x 2 plates)
    assert ("controls: 12 of 16 vehicle profiles at the time point kept, in 2 cell lines; left out: 4 by "
            "--max-controls auto") in r.stdout
    assert open_cube(f["out"]).sizes["replicate"] == 6


def test_cube_too_big_refused_before_reading(f):
    rows = pd.DataFrame({"id": [str(i) for i in range(1, 979)], "pr_gene_id": [str(i) for i in range(1, 979)],
                         "pr_is_lmark": ["1"] * 978})
    recs = []
    for c in range(500):
        recs.append((f"c{c}:ctl", f"CL{c}", "ctl_vehicle", "DMSO"))
        recs += [(f"c{c}:d{d}", f"CL{c}", "trt_cp", f"drug{d}") for d in range(10)]
    recs += [(f"big:{k}", "CL0", "trt_cp", "drug0") for k in range(20_000)]
    cols = pd.DataFrame(recs, columns=["inst_id", "cell_id", "pert_type", "pert_iname"])
    cols["pert_dose"], cols["pert_dose_unit"] = "10", "uM"
    cols["pert_time"], cols["pert_time_unit"] = "24", "h"
    gctx = f["dir"] / "huge.gctx"
    with h5py.File(gctx, "w") as h:  # the matrix is never written: a tiny file that declares 25,500 x 978
        h.create_dataset("/0/DATA/0/matrix", shape=(len(cols), 978), dtype="f4", chunks=(1000, 978))
        h["/0/META/COL/id"] = np.array(cols.inst_id, dtype="S")
        h["/0/META/ROW/id"] = np.array(rows.id, dtype="S")
        for c in cols.columns[1:]:
            h[f"/0/META/COL/{c}"] = np.array(cols[c], dtype="S")
        for c in rows.columns[1:]:
            h[f"/0/META/ROW/{c}"] = np.array(rows[c], dtype="S")
    t0 = time.monotonic()
    err = build_err(f, l1000=gctx)
    assert time.monotonic() - t0 < 60
    assert "the cube would need about" in err and "GiB of memory (500 cell lines x 12 conditions x " \
                                                  "20001 replicates x 978 genes, float32)" in err
    assert "fewer --drugs (now 10; the most replicates, 20001, are drug0 in CL0)" in err


# ------------------------------------------------------------------------------- 13: interrupted write
SLOW_WRITE = """
import runpy, signal, sys, time
import zarr.storage
# Ctrl-C as in a terminal, even when the test runner was started in the background (SIGINT ignored there)
signal.signal(signal.SIGINT, signal.default_int_handler)
orig = zarr.storage.LocalStore.set
async def slow(self, key, value):
    time.sleep(0.3)  # blocks zarr's event loop: its concurrent chunk writes take 0.3 s each, one by one
    return await orig(self, key, value)
zarr.storage.LocalStore.set = slow
sys.argv = ["datasets.build", *sys.argv[1:]]
runpy.run_module("datasets.build", run_name="__main__")
"""


def test_ctrl_c_during_cube_write_leaves_nothing(f):
    p = subprocess.Popen([sys.executable, "-c", SLOW_WRITE, "--l1000", str(f["gctx"]), "--baseline",
                          str(f["base"]), "--out", str(f["out"])], cwd=ROOT, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(f["dir"].glob(".cube.zarr.tmp-*/zarr.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.poll() is None, p.communicate()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert err == f"interrupted: no cube written at {f['out']} (an existing one is unchanged)\n"
    time.sleep(0.5)  # nothing written after the exit either
    assert not f["out"].exists() and hidden(f["out"]) == []


CUT_SHORT = """
import sys
import datasets.build as build
async def update_attributes():   # as zarr's sync API makes one, before its event loop runs it
    pass
def cut_short(*args):
    pending = update_attributes()   # noqa: F841 - never awaited: Ctrl-C lands first
    raise KeyboardInterrupt
build._build_l1000 = cut_short
sys.exit(build.main(sys.argv[1:]))
"""


def test_ctrl_c_inside_a_zarr_write_is_still_one_line(f):
    """Ctrl-C between zarr making a coroutine and its event loop awaiting it (CI saw this once in the test
    above): the coroutine warns as it is collected; the command still says only its one line."""
    p = subprocess.run([sys.executable, "-c", CUT_SHORT, "--l1000", str(f["gctx"]), "--baseline",
                        str(f["base"]), "--out", str(f["out"])], cwd=ROOT, env=ENV, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 130, p.stderr
    assert p.stderr == f"interrupted: no cube written at {f['out']} (an existing one is unchanged)\n"


def test_stale_temp_stores_are_removed_by_the_next_build(f, capsys):
    dead = f["dir"] / ".cube.zarr.tmp-999999999-deadbeef"
    legacy = f["dir"] / ".cube.zarr.tmp-0123abcd"
    live = f["dir"] / f".cube.zarr.tmp-{os.getpid()}-cafebabe"
    other = f["dir"] / ".other.zarr.tmp-999999999-deadbeef"
    for d in (dead, legacy, live, other):
        (d / "expression").mkdir(parents=True)
        (d / "zarr.json").write_text("{}")
    cli("--l1000", f["gctx"], "--baseline", f["base"], "--out", f["out"], rc=0, capsys=capsys)
    assert hidden(f["out"]) == [live.name] and other.exists()


def test_interrupt_between_the_renames_keeps_the_old_cube(f, capsys, monkeypatch):
    args = ["--l1000", str(f["gctx"]), "--baseline", str(f["base"]), "--out", str(f["out"])]
    assert main(args) == 0
    orig = Path.rename

    def rename(self: Path, target: Path) -> Path:
        if self.name.startswith(".cube.zarr.tmp-"):  # the old cube is already moved aside
            raise KeyboardInterrupt
        return orig(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    assert main([*args, "--drugs", "trametinib", "--overwrite"]) == 130
    monkeypatch.undo()
    conditions = open_cube(f["out"]).condition.values.tolist()
    assert conditions == ["control", "trametinib", "vorinostat", "baseline"]  # the first build's cube
    assert hidden(f["out"]) == []
