"""``python -m datasets.build`` end to end: real A375 plate and generated GCTX -> zarr cube on disk."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets_test_helpers import (
    GENES,
    baseline_values,
    gene_meta,
    l1000_design,
    values,
    write_ccle,
    write_depmap,
    write_gctx,
    write_gdsc,
    write_inst_info,
)

from datasets.build import main
from datasets.cube import open_cube
from datasets.l1000 import read_gct
from datasets.pairs import drug_data

ROOT = Path(__file__).resolve().parents[2]
PLATE = ROOT / "tests" / "data" / "l1000_A375_LJP005_n377x978.gct"


@pytest.fixture(scope="module")
def plate_genes():
    src = read_gct(PLATE)
    rm = src.row_meta
    return list(zip(rm["pr_gene_id"], rm["pr_gene_symbol"], strict=True))


def test_cli_real_plate(tmp_path, plate_genes):
    # a GDSC-like table with 900 of the 978 landmark genes, A375 under its COSMIC id plus 3 other cell lines
    genes = plate_genes[:900]
    cells = ["906793", "905946", "905939", "910927"]
    vals = baseline_values(cells, genes, seed=5)
    gdsc = write_gdsc(tmp_path / "gdsc.txt", cells, genes, vals)
    cmap = tmp_path / "map.csv"
    cmap.write_text("source_name,cell_line\n906793,A-375\n905946,MCF7\n905939,HT-29\n910927,K-562\n")
    out = tmp_path / "cube.zarr"
    r = subprocess.run([sys.executable, "-m", "datasets.build", "--l1000", str(PLATE),
                        "--baseline", str(gdsc), "--cell-map", str(cmap), "--drugs", "NU-7441,vemurafenib",
                        "--time", "24", "--max-controls", "all", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert "genes kept: 900 of 978" in r.stdout
    assert "NU-7441: 1 cell line," in r.stdout and "dose 10 uM" in r.stdout
    assert "4 cell lines, 1 matched to L1000 cell lines" in r.stdout
    assert "controls: 26 vehicle profiles in 1 cell line\n" in r.stdout

    ds = open_cube(out)
    assert list(ds.condition.values) == ["control", "NU-7441", "vemurafenib", "baseline"]
    assert ds.sizes["gene"] == 900 and ds.sizes["replicate"] == 26
    assert sorted(ds.cell_line.values.tolist()) == ["A375", "HT-29", "K-562", "MCF7"]
    expr = ds["expression"]
    ctl = expr.sel(cell_line="A375", condition="control").values
    assert np.isfinite(ctl).all() and ctl.shape == (26, 900)
    nu = expr.sel(cell_line="A375", condition="NU-7441").values
    n_nu = int(np.isfinite(nu[:, 0]).sum())
    assert n_nu >= 1 and np.isnan(nu[n_nu:]).all()
    assert float(ds["dose_um"].sel(cell_line="A375", condition="NU-7441")) == pytest.approx(10.0)
    assert np.isnan(float(ds["dose_um"].sel(cell_line="A375", condition="control")))
    # baseline: one replicate per source, values as written, in the cube's gene order
    base = expr.sel(condition="baseline").values
    assert np.isfinite(base[:, 0]).all() and np.isnan(base[:, 1:]).all()
    a375 = expr.sel(cell_line="A375", condition="baseline", replicate=0).values
    np.testing.assert_allclose(a375, vals[0], atol=1e-5)
    assert ds["gene"].values.tolist() == [str(g) for g, _ in genes]
    # drugs exist only for L1000 cell lines
    assert np.isnan(expr.sel(cell_line="MCF7", condition="NU-7441").values).all()
    assert list(ds["source"].values) == ["L1000", "L1000", "L1000", "GDSC"]
    prov = json.loads(ds.attrs["provenance"])
    by_role = {i["role"]: i for i in prov["inputs"]}
    assert by_role["l1000"]["sha256"] == hashlib.sha256(PLATE.read_bytes()).hexdigest()
    assert by_role["baseline"]["sha256"] == hashlib.sha256(gdsc.read_bytes()).hexdigest()
    assert prov["options"]["drugs"] == ["NU-7441", "vemurafenib"] and prov["options"]["dose"] == "highest"


def test_main_generated_gctx_inst_info_two_sources(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("datasets.progress.DELAY_S", 0.0)  # show every phase's progress on a small input
    monkeypatch.setattr("datasets.progress.MIN_BYTES", 0)
    cols = l1000_design(cells=("A375", "MCF7", "PC3"))
    rows = gene_meta(8, 2)
    mat = values(len(cols), len(rows))
    gctx = write_gctx(tmp_path / "l3.gctx", mat, rows, None, sample_ids=cols["inst_id"])
    inst = write_inst_info(tmp_path / "inst_info.txt", cols)
    g1, g2 = GENES[:6], GENES[:5]
    dm = write_depmap(tmp_path / "dm.csv", ["A375", "PC-3", "K562"], g1, baseline_values("abc", g1, 1))
    cc = write_ccle(tmp_path / "cc.gct", ["A375_SKIN", "HELA_CERVIX"], g2, baseline_values("ab", g2, 2))
    out = tmp_path / "c.zarr"
    rc = main(["--l1000", str(gctx), "--inst-info", str(inst), "--baseline", str(dm), "--baseline", str(cc),
               "--drugs", "trametinib", "--dose", "0.04", "--max-controls", "all", "--out", str(out)])
    assert rc == 0
    cap = capsys.readouterr()
    txt = cap.out
    # progress of each phase on stderr, by bytes (here: each one's closing line)
    for what in ("reading metadata", "reading L1000 matrix", "reading baseline", "hashing inputs",
                 "writing cube"):
        assert re.search(rf"^{what}: (\d+(\.\d)? [KMG]?B in \d+\.\d s|done in)", cap.err, re.M), cap.err
    assert "trametinib: 3 cell lines, 18 replicates, dose 0.04 uM" in txt
    assert "genes kept: 5 of 6" in txt
    ds = open_cube(out)
    assert ds.sizes["replicate"] == 8  # 4 controls on each of the 2 plates
    assert set(ds.cell_line.values.tolist()) == {"A375", "MCF7", "PC3", "K562", "HELA"}
    base = ds["expression"].sel(condition="baseline")
    assert int(np.isfinite(base.sel(cell_line="A375").values[:, 0]).sum()) == 2  # one per source
    assert int(np.isfinite(base.sel(cell_line="MCF7").values[:, 0]).sum()) == 0
    assert ds["source"].values[-1] == "DepMap+CCLE"
    tr = ds["expression"].sel(cell_line="PC3", condition="trametinib").values[:6]
    ids = cols.index[(cols.cell_id == "PC3") & (cols.pert_iname == "trametinib") & (cols.pert_dose == "0.04")
                     & (cols.pert_time == "24")]
    np.testing.assert_allclose(np.sort(tr[:, 0]), np.sort(mat[ids, 0]))
    # plates from inst_info's rna_plate: controls round-robin over the 2 plates, treatments by plate
    plate = ds["plate"].sel(cell_line="PC3")
    pc3 = [f"TST00{p}_PC3_24H_X{p + 1}" for p in range(2)]
    assert list(plate.sel(condition="control").values) == pc3 * 4
    assert list(plate.sel(condition="trametinib").values) == [pc3[0]] * 3 + [pc3[1]] * 3 + ["", ""]
    assert set(ds["plate"].sel(condition="baseline").values.ravel()) == {""}
    dd = drug_data(ds, "trametinib")
    assert dd.pairing == "plate"
    x2_plate = plate.sel(condition="trametinib").values[:6]
    assert list(dd.control_plate[dd.pair_control][dd.pair_cell_line == "PC3"]) == list(x2_plate)


def test_rebuild_same_inputs_with_overwrite(tmp_path, capsys):
    cols = l1000_design(cells=("A375",))
    rows = gene_meta()
    gctx = write_gctx(tmp_path / "x.gctx", values(len(cols), len(rows)), rows, cols)
    dm = write_depmap(tmp_path / "dm.csv", ["A375"], GENES[:6], baseline_values("a", GENES[:6]))
    out = tmp_path / "c.zarr"
    args = ["--l1000", str(gctx), "--baseline", str(dm), "--out", str(out)]
    assert main(args) == 0
    assert main([*args, "--drugs", "vorinostat", "--overwrite"]) == 0
    assert open_cube(out).condition.values.tolist() == ["control", "vorinostat", "baseline"]


def test_cli_h5ad_builds_the_same_cube(tmp_path):
    """``datasets.build --h5ad``: a cube written as AnnData and built back has the same values and labels."""
    from datasets.anndata_io import to_anndata, write_h5ad
    from datasets.cube import write_cube
    from datasets.synthetic import generate

    src = write_cube(generate(preset="demo", seed=0).isel(cell_line=slice(0, 12)), tmp_path / "src.zarr")
    h5 = write_h5ad(to_anndata(open_cube(src)), tmp_path / "p.h5ad")
    out = tmp_path / "c.zarr"
    cmd = [sys.executable, "-m", "datasets.build", "--h5ad", str(h5), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout and r.stderr == ""   # a small input: no progress lines
    a, b = open_cube(src), open_cube(out)
    for d in ("selumetinib", "vorinostat"):
        np.testing.assert_array_equal(drug_data(a, d).x2, drug_data(b, d).x2)
    # mixing --h5ad with another input, or a bad --obs-key: one error line, exit 2, nothing written
    for extra in (["--l1000", str(h5)], ["--obs-key", "cell_line"]):
        bad = tmp_path / "bad.zarr"
        r = subprocess.run([*cmd[:-1], str(bad), *extra], cwd=ROOT, capture_output=True, text=True,
                           timeout=60, env=env)
        assert r.returncode == 2 and "Traceback" not in r.stderr and not bad.exists(), r.stderr
        assert "--h5ad" in r.stderr or "--obs-key" in r.stderr
    garbage = tmp_path / "g.h5ad"
    garbage.write_bytes(b"not hdf5")
    r = subprocess.run([*cmd[:3], "--h5ad", str(garbage), "--out", str(tmp_path / "g.zarr")], cwd=ROOT,
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "g.h5ad" in r.stderr, r.stderr


def test_read_progress_lines_off_a_terminal():
    import io

    from datasets.build import ReadProgress

    buf = io.StringIO()
    p = ReadProgress("reading L1000", "samples", every=0.0, stream=buf, min_total=100)
    for done in (40, 80, 100):
        p(done, 100)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3 and "ETA" in lines[0]
    assert lines[0].startswith("reading L1000: 40 / 100 samples (40%)")
    assert lines[-1].startswith("reading L1000: 100 / 100 samples (100%)")
    quiet = io.StringIO()
    ReadProgress("x", "samples", stream=quiet, min_total=1000)(50, 50)
    assert quiet.getvalue() == ""
