"""``build --study rampasek2017`` end to end: files laid out like the real releases, fetched from a local HTTP
server with ``datasets.fetch``, then built; and drug-name resolution (synonyms, pert_info, case)."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datasets import build, fetch
from datasets.cube import open_cube
from datasets.studies import STUDIES, StudyError, resolve_drugs
from tests.datasets.local_http import LocalServer
from tests.datasets.real_layout import (
    CELLS,
    DOSES,
    EXTRA,
    GENES,
    N_LANDMARK,
    REPS,
    baseline_genes,
    drug_cells,
    release_files,
)

ROOT = Path(__file__).resolve().parents[2]
PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
ENV = {**{k: v for k, v in os.environ.items() if k not in PROXY_VARS}, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return release_files()


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch):
    for v in PROXY_VARS:
        monkeypatch.delenv(v, raising=False)


def cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=ENV)


def landmarks_in(*sources: str) -> int:
    common = set.intersection(*({e for e, _ in baseline_genes(s)} for s in sources))
    return sum(e in common for e, _ in GENES[:N_LANDMARK])


def test_fetch_then_build_study_depmap(tmp_path, files):
    data, out = tmp_path / "data", tmp_path / "cube.zarr"
    with LocalServer(files=dict(files)) as srv:
        r = cli("datasets.fetch", "lincs-gse92742", "depmap", "--base-url", srv.url, "--dir", str(data))
    assert r.returncode == 0, r.stderr
    assert (data / "GSE92742_Broad_LINCS_Level3_INF_mlr12k_n1319138x12328.gctx").is_file()
    assert not (data / "GSE92742_Broad_LINCS_inst_info.txt.gz").exists()  # unpacked, archive removed
    r = cli("datasets.build", "--study", "rampasek2017", "--dir", str(data), "--out", str(out))
    assert r.returncode == 0, r.stderr
    s = r.stdout
    assert "baseline: OmicsExpressionProteinCodingGenesTPMLogp1.csv (DepMap; the paper used GDSC+CCLE)" in s
    assert "drug 'GDC-0941' -> pert_iname 'pictilisib' (synonym table)" in s
    per = drug_cells()
    # the summary table: drug, LINCS name, cell lines, paper, replicates, dose, time
    row = {m.group(1): m.groups() for m in re.finditer(
        r"^(\S+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+)$", s, re.M)}
    assert row["linsitinib"] == ("linsitinib", "linsitinib", "6", "6", str(6 * REPS), "10", "24")
    assert row["GDC-0941"][1:5] == ("pictilisib", str(len(per["GDC-0941"])), "19",
                                    str(len(per["GDC-0941"]) * REPS))
    assert len(row) == 19
    assert "cell-line counts differing from the paper's Table 1: 18 of 19 drugs (olaparib 2 vs 56;" in s
    kept = landmarks_in("depmap")
    assert f"genes kept: {kept} (the paper kept 903) - differs from the paper" in s
    ds = open_cube(out)
    conds = list(ds.condition.values)
    assert conds[0] == "control" and conds[-1] == "baseline"
    assert "GDC-0941" in conds and "pictilisib" not in conds  # the paper's names
    assert ds.sizes["gene"] == kept
    cells = set(ds.cell_line.values)
    assert {c[0] for c in CELLS} | {e[2] for e in EXTRA} == cells  # ACH- ids named through Model.csv
    # highest dose only, all its replicates, 24 h only
    v = ds["expression"].sel(condition="vorinostat")
    for c in per["vorinostat"]:
        assert int(np.isfinite(v.sel(cell_line=c).values[:, 0]).sum()) == REPS
        assert float(ds["dose_um"].sel(cell_line=c, condition="vorinostat")) == pytest.approx(max(DOSES))


def test_study_gdsc_ccle_union(tmp_path, files, capsys):
    data, out = tmp_path / "data", tmp_path / "cube.zarr"
    with LocalServer(files=dict(files)) as srv:
        assert fetch.main(["lincs-gse92742", "depmap", "gdsc", "ccle", "--base-url", srv.url,
                           "--dir", str(data), "--retry-wait", "0"]) == 0
    capsys.readouterr()
    assert build.main(["--study", "rampasek2017", "--dir", str(data), "--out", str(out)]) == 0
    s = capsys.readouterr().out
    assert ("baseline: Cell_line_RMA_proc_basalExp.txt + CCLE_RNAseq_genes_rpkm_20180929.gct (the paper's "
            "GDSC+CCLE union); OmicsExpressionProteinCodingGenesTPMLogp1.csv not used") in s
    kept = landmarks_in("gdsc", "ccle")
    assert f"genes kept: {kept} (the paper kept 903)" in s
    ds = open_cube(out)
    base = ds["expression"].sel(condition="baseline").values[..., 0]
    n_rep = np.isfinite(base).sum(axis=1)
    by_cell = dict(zip(ds.cell_line.values, n_rep, strict=True))
    assert by_cell["PC3"] == 2 and by_cell["A375"] == 1 and by_cell["VCAP"] == 1  # GDSC+CCLE, GDSC, CCLE
    assert by_cell["KMS11"] == 2 and by_cell["HEL"] == 1  # singletons: COSMIC id via Model.csv; CCLE name


def test_study_missing_inputs_say_what_to_fetch(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    assert build.main(["--study", "rampasek2017", "--dir", str(data), "--out", str(tmp_path / "c.zarr")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {data}: no L1000 Level 3 matrix")
    assert err[0].endswith(f"run: pertvae-bench fetch lincs-gse92742 --dir {data}")
    (data / "GSE92742_Broad_LINCS_Level3_INF_mlr12k_n1319138x12328.gctx").write_bytes(b"")
    (data / "GSE92742_Broad_LINCS_inst_info.txt").write_text("")
    (data / "GSE92742_Broad_LINCS_gene_info.txt").write_text("")
    assert build.main(["--study", "rampasek2017", "--dir", str(data), "--out", str(tmp_path / "c.zarr")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {data}: no baseline expression (GDSC, CCLE or DepMap); run: pertvae-bench fetch "
                   f"depmap --dir {data} (or gdsc ccle)"]
    assert not (tmp_path / "c.zarr").exists()


def test_study_refuses_explicit_files(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        build.main(["--study", "rampasek2017", "--drugs", "olaparib", "--out", str(tmp_path / "c.zarr")])
    assert e.value.code == 2
    assert "--study takes its files and drugs from --dir; leave out --drugs" in capsys.readouterr().err


def test_study_matches_the_papers_table1():
    st = STUDIES["rampasek2017"]
    with (ROOT / "tests" / "data" / "paper_table1.csv").open() as f:   # the paper's Table 1
        rows = list(csv.DictReader(f))
    assert {r["drug"]: int(r["n_cell_lines"]) for r in rows} == st.paper_cell_lines
    assert len(st.drugs) == 19 and st.paper_genes == 903 and st.time_h == 24


INAMES = ["vorinostat", "SN-38", "pictilisib", "trametinib", "BRD-A1", "olaparib"]


@pytest.mark.parametrize("name, iname, via", [
    ("vorinostat", "vorinostat", "pert_iname"),
    ("Vorinostat", "vorinostat", "pert_iname, ignoring case and punctuation"),
    ("sn38", "SN-38", "pert_iname, ignoring case and punctuation"),
    ("SAHA", "vorinostat", "pert_info compound_aliases"),  # pert_info before the synonym table
    ("GDC-0941", "pictilisib", "synonym table"),
    ("azd-2281", "olaparib", "synonym table"),
    ("brd-k81418486", "vorinostat", "pert_info pert_id"),
    ("Mekinist", "trametinib", "pert_info compound_aliases"),
    ("nosuchdrug", "nosuchdrug", "not resolved"),
])
def test_resolve_drugs(tmp_path, name, iname, via):
    pi = tmp_path / "pert_info.txt"
    pi.write_text("pert_id\tpert_iname\tpert_type\tcompound_aliases\n"
                  "BRD-K81418486\tvorinostat\ttrt_cp\tSAHA|Zolinza\n"
                  "BRD-K12343256\ttrametinib\ttrt_cp\tGSK1120212|Mekinist\n")
    (m,) = resolve_drugs([name], INAMES, pi)
    assert (m.pert_iname, m.via) == (iname, via)


def test_resolve_drugs_ambiguous_and_repeated():
    with pytest.raises(StudyError, match=r"'brda1' is ambiguous .* BRD-A1, brd-a1"):
        resolve_drugs(["brda1"], ["BRD-A1", "brd-a1"])
    with pytest.raises(StudyError, match="drugs 'SAHA' and 'vorinostat' both name pert_iname 'vorinostat'"):
        resolve_drugs(["SAHA", "vorinostat"], INAMES)


def test_drugs_synonym_reported_and_named_by_pert_iname(tmp_path, files, capsys):
    data, out = tmp_path / "data", tmp_path / "cube.zarr"
    with LocalServer(files=dict(files)) as srv:
        assert fetch.main(["lincs-gse92742", "depmap", "--base-url", srv.url, "--dir", str(data)]) == 0
    capsys.readouterr()
    p = "GSE92742_Broad_LINCS_"
    assert build.main(["--l1000", str(data / f"{p}Level3_INF_mlr12k_n1319138x12328.gctx"),
                       "--inst-info", str(data / f"{p}inst_info.txt"),
                       "--gene-info", str(data / f"{p}gene_info.txt"),
                       "--baseline", str(data / "OmicsExpressionProteinCodingGenesTPMLogp1.csv"),
                       "--model", str(data / "Model.csv"), "--drugs", "saha, GDC0941",
                       "--out", str(out)]) == 0
    s = capsys.readouterr().out
    assert "drug 'saha' -> pert_iname 'vorinostat' (synonym table)" in s
    assert "drug 'GDC0941' -> pert_iname 'pictilisib' (synonym table)" in s
    assert list(open_cube(out).condition.values) == ["control", "vorinostat", "pictilisib", "baseline"]
