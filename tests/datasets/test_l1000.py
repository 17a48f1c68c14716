"""L1000 readers on the real CMap fixtures (tests/data) and on small generated GCT/GCTX files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from datasets_test_helpers import gene_meta, l1000_design, values, write_gct, write_gctx, write_inst_info

from datasets.l1000 import (
    L1000Error,
    dose_um,
    open_l1000,
    read_gct,
    read_l1000,
    select_genes,
    select_samples,
    time_h,
)

DATA = Path(__file__).resolve().parents[1] / "data"
PLATE = DATA / "l1000_A375_LJP005_n377x978.gct"
MODZ = DATA / "l1000_modz_n25x50.gctx"


# ------------------------------------------------------------------------------------ real fixtures
def test_real_plate_parses_gct13_with_metadata():
    src = read_gct(PLATE)
    assert src.fmt == "gct"
    assert len(src.sample_ids) == 377 and len(src.row_ids) == 978
    assert src.col_meta.shape == (377, 35)
    assert (src.col_meta["pert_type"] == "ctl_vehicle").sum() == 26
    # the CMap null -666 becomes missing in metadata
    assert src.col_meta.loc[src.col_meta["pert_type"] == "ctl_vehicle", "pert_dose"].isna().all()
    assert src.row_meta.loc["200814_at", "pr_gene_symbol"] == "PSME1"


def test_real_plate_yields_26_dmso_controls_and_nu7441_at_10um():
    prof = read_l1000(PLATE, drugs=["NU-7441"], time=24)
    assert prof.drugs == ["NU-7441"] and prof.cell_lines == ["A375"]
    ctl = prof.profiles[("A375", "control")]
    trt = prof.profiles[("A375", "NU-7441")]
    assert ctl.shape == (26, 978) and ctl.dtype == np.float32
    assert prof.doses[("A375", "NU-7441")] == pytest.approx(10.0)
    assert trt.shape[1] == 978
    # all the DMSO samples, and the NU-7441 samples are exactly those at 10 um
    src = read_gct(PLATE)
    meta = src.col_meta
    dmso = set(meta.index[meta["pert_type"] == "ctl_vehicle"])
    assert set(prof.sample_ids[("A375", "control")]) == dmso
    nu = meta[meta["pert_iname"] == "NU-7441"]
    assert set(prof.sample_ids[("A375", "NU-7441")]) == set(nu.index[nu["pert_dose"].astype(float) == 10])
    # values are the matrix values, gene order by landmark rows (Entrez IDs from pr_gene_id)
    sid = prof.sample_ids[("A375", "NU-7441")][0]
    col = list(src.sample_ids).index(sid)
    np.testing.assert_allclose(trt[0], src._matrix[col], rtol=1e-6)
    assert prof.genes.entrez[0] == "5720" and prof.genes.symbols[0] == "PSME1"


def test_real_plate_numeric_dose_rule():
    prof = read_l1000(PLATE, drugs=["NU-7441"], dose=1.11)
    assert prof.doses[("A375", "NU-7441")] == pytest.approx(1.11)
    with pytest.raises(L1000Error, match=r"NU-7441.*no treatments at dose 7\.0"):
        read_l1000(PLATE, drugs=["NU-7441"], dose=7.0)


def test_real_gctx_parses_with_embedded_metadata():
    src = open_l1000(MODZ)
    assert src.fmt == "gctx" and src.n_samples == 25 and len(src.row_ids) == 50
    assert src.sample_ids[0] == "CPC004_PC3_24H:BRD-A51714012-001-03-1:10"
    assert {"cell_id", "pert_iname", "pert_idose", "pert_itime", "pert_type"} <= set(src.col_meta.columns)
    assert src.col_meta["cell_id"].iloc[0] == "PC3"
    assert src.col_meta["pert_iname"].iloc[1] == "vemurafenib"
    # Affymetrix probe ids as row ids, Entrez IDs from pr_gene_id, landmarks from is_lm
    assert src.row_ids[0] == "200814_at"
    genes = select_genes(src)
    assert genes.landmark_column == "is_lm"
    assert genes.entrez[:3].tolist() == ["5720", "466", "6009"]
    # doses ('10 <b5>M', '500 nM') and times ('24 h', '6 h') are parsed from pert_idose / pert_itime
    d = dose_um(src.col_meta)
    assert d[0] == pytest.approx(10.0) and d[1] == pytest.approx(0.5)
    assert set(time_h(src.col_meta)) <= {6.0, 24.0}
    with h5py.File(MODZ) as f:
        full = f["/0/DATA/0/matrix"][()]
    idx = np.array([7, 2, 19])
    np.testing.assert_allclose(src.read(idx, genes.row_idx), full[idx][:, genes.row_idx], rtol=1e-6)


def test_real_gctx_has_no_vehicle_controls():
    with pytest.raises(L1000Error, match=r"no vehicle controls .*'vemurafenib': HEK293T"):
        read_l1000(MODZ, drugs=["vemurafenib"], time=24)


# ------------------------------------------------------------------------------------ generated files
@pytest.mark.parametrize("fmt", ["gctx", "gct13", "gct12+inst_info", "gctx+inst_info"])
def test_selection_rules_on_generated_files(tmp_path, fmt):
    cols = l1000_design()
    rows = gene_meta()
    mat = values(len(cols), len(rows))
    inst = None
    if fmt == "gctx":
        path = write_gctx(tmp_path / "x.gctx", mat, rows, cols)
    elif fmt == "gct13":
        path = write_gct(tmp_path / "x.gct", mat, rows, cols)
    elif fmt == "gct12+inst_info":
        path = write_gct(tmp_path / "x.gct", mat, rows, cols[["inst_id"]], version="1.2")
        inst = write_inst_info(tmp_path / "inst_info.txt", cols)
    else:
        path = write_gctx(tmp_path / "x.gctx", mat, rows, None, sample_ids=cols["inst_id"])
        inst = write_inst_info(tmp_path / "inst_info.txt", cols)
    prof = read_l1000(path, drugs=["vorinostat", "trametinib"], time=24, inst_info=inst)
    n_lm = 6 if not fmt.startswith("gct12") else 8  # GCT 1.2 has no landmark column: all rows kept
    assert len(prof.genes.entrez) == n_lm
    assert prof.cell_lines == ["A375", "MCF7", "PC3"]
    for c in prof.cell_lines:
        # 4 controls x 2 plates at 24 h (the 6 h plate excluded); 3 reps x 2 plates at the highest dose
        assert prof.profiles[(c, "control")].shape == (8, n_lm)
        assert prof.profiles[(c, "vorinostat")].shape == (6, n_lm)
        assert prof.doses[(c, "vorinostat")] == pytest.approx(10.0)
        assert prof.doses[(c, "trametinib")] == pytest.approx(3.33)
        ids = prof.sample_ids[(c, "vorinostat")]
        sel = cols[(cols.pert_iname == "vorinostat") & (cols.cell_id == c) & (cols.pert_time == "24")
                   & (cols.pert_dose == "10")]
        assert sorted(ids) == sorted(sel.inst_id)
        rowpos = [list(cols.inst_id).index(i) for i in ids]
        tol = 1e-4 if fmt.startswith("gct") else 0
        np.testing.assert_allclose(prof.profiles[(c, "vorinostat")], mat[rowpos][:, :n_lm], atol=tol)


def test_controls_restricted_to_treatment_plates(tmp_path):
    cols = l1000_design(cells=("A375",), drugs={"vorinostat": (10.0,)}, n_plates=2)
    # move the drug off plate X2: then only plate X1 controls belong to it
    plate2 = cols.rna_plate.str.contains("_X2") & (cols.pert_type == "trt_cp")
    cols = cols[~plate2].reset_index(drop=True)
    rows = gene_meta()
    path = write_gctx(tmp_path / "p.gctx", values(len(cols), len(rows)), rows, cols)
    src = open_l1000(path)
    sel = select_samples(src, ["vorinostat"], time=24)
    ctl_plates = set(cols.rna_plate.iloc[sel.controls["A375"]])
    assert ctl_plates == {"TST000_A375_24H_X1"} and len(sel.controls["A375"]) == 4
    assert sel.control_fallback == []
    # max_controls caps them deterministically
    assert len(select_samples(src, ["vorinostat"], time=24, max_controls=2).controls["A375"]) == 2


def test_controls_round_robin_over_plates_and_auto_cap(tmp_path):
    cols = l1000_design(cells=("A375",), drugs={"vorinostat": (10.0,), "trametinib": (1.0,)}, reps=2,
                        n_ctrl=4, n_plates=3)
    rows = gene_meta()
    src = open_l1000(write_gctx(tmp_path / "p.gctx", values(len(cols), len(rows)), rows, cols))
    full = select_samples(src, ["vorinostat", "trametinib"], time=24)
    assert len(full.controls["A375"]) == 12
    # the first three controls come from three different plates
    assert len(set(cols.rna_plate.iloc[full.controls["A375"][:3]])) == 3
    auto = select_samples(src, ["vorinostat", "trametinib"], time=24, max_controls="auto")
    assert len(auto.controls["A375"]) == 6  # 2 replicates x 3 plates of the drugs
    np.testing.assert_array_equal(auto.controls["A375"], full.controls["A375"][:6])


def test_controls_fall_back_to_other_plates_and_plate_from_inst_id(tmp_path):
    cols = l1000_design(cells=("A375",), drugs={"vorinostat": (10.0,)}, n_plates=1)
    # controls on their own plate; no rna_plate column -> plate is the inst id up to ':'
    is_ctl = cols.pert_type == "ctl_vehicle"
    cols.loc[is_ctl, "inst_id"] = [f"CTLPLATE:{k}" for k in range(is_ctl.sum())]
    cols = cols.drop(columns=["rna_plate"])
    rows = gene_meta()
    path = write_gctx(tmp_path / "p.gctx", values(len(cols), len(rows)), rows, cols)
    sel = select_samples(open_l1000(path), ["vorinostat"], time=24)
    assert sel.control_fallback == ["A375"]
    assert len(sel.controls["A375"]) == 4  # the 24 h ones only


def test_drug_name_suggestions(small_l1000):
    with pytest.raises(L1000Error, match=r"'vorinostatt' not found in pert_iname; did you mean: vorinostat"):
        read_l1000(small_l1000["gctx"], drugs=["vorinostatt"])


@pytest.mark.parametrize("drugs", [["vorinostat"], None])
def test_drug_spellings_that_differ_in_case_are_refused(tmp_path, drugs):
    # MCF7's vorinostat wells spelled 'Vorinostat': with --drugs vorinostat they fell out unsaid (MCF7
    # missing from the drug), without --drugs the drug became two conditions
    cols = l1000_design(cells=("A375", "MCF7"), drugs={"vorinostat": (10.0,)}, reps=2, n_ctrl=2, n_plates=1)
    cols.loc[(cols.cell_id == "MCF7") & (cols.pert_iname == "vorinostat"), "pert_iname"] = "Vorinostat"
    rows = gene_meta()
    path = write_gctx(tmp_path / "x.gctx", values(len(cols), len(rows)), rows, cols)
    with pytest.raises(L1000Error, match=r"drug '[vV]orinostat' is written as 'Vorinostat' \(2 samples\) and "
                                         r"'vorinostat' \(2 samples\) in pert_iname \(trt_cp at 24 h\)"):
        select_samples(open_l1000(path), drugs, time=24)


@pytest.mark.parametrize("label, n", [("ctl_vehicle", 1), ("trt_cp", 4)])
def test_pert_type_in_other_case_is_refused(tmp_path, label, n):
    # before: one of MCF7's two controls written 'CTL_VEHICLE' was left out unsaid (1 control kept), and
    # MCF7's treatments written 'TRT_CP' fell out of the drug unsaid (its cell lines: A375 only)
    cols = l1000_design(cells=("A375", "MCF7"), drugs={"vorinostat": (10.0,)}, reps=2, n_ctrl=2, n_plates=1)
    mcf7 = cols.index[(cols.pert_type == label) & (cols.cell_id == "MCF7")]
    cols.loc[mcf7[:n], "pert_type"] = label.upper()
    rows = gene_meta()
    path = write_gctx(tmp_path / "x.gctx", values(len(cols), len(rows)), rows, cols)
    with pytest.raises(L1000Error, match=rf"x\.gctx: pert_type '{label.upper()}' \({n} samples?\) is "
                                         rf"'{label}' written otherwise; .* make it '{label}' in the file"):
        select_samples(open_l1000(path), ["vorinostat"], time=24)


def test_drug_at_other_time_only(small_l1000):
    with pytest.raises(L1000Error, match=r"no trt_cp treatments at pert_time 48 h"):
        read_l1000(small_l1000["gctx"], time=48)


def test_all_genes_option(small_l1000):
    prof = read_l1000(small_l1000["gctx"], drugs=["vorinostat"], all_genes=True)
    assert len(prof.genes.entrez) == 8


def test_no_gene_ids_is_said_of_the_l1000_file(tmp_path):
    # every landmark row's pr_gene_id -666: before, the build read the matrix for 0 genes and then blamed the
    # baseline ("no genes in common between the L1000 genes (0, e.g. []) and baseline ...")
    cols = l1000_design(cells=("A375",), drugs={"vorinostat": (10.0,)}, reps=2, n_ctrl=2, n_plates=1)
    rows = gene_meta()
    rows["pr_gene_id"] = "-666"
    path = write_gctx(tmp_path / "x.gctx", values(len(cols), len(rows)), rows, cols)
    with pytest.raises(L1000Error, match=r"x\.gctx: none of the 6 rows considered \(pr_is_lmark 1\) has a "
                                         r"gene id \(pr_gene_id empty or -666, e\.g\. row '5720_at'\)"):
        select_genes(open_l1000(path))


def test_chunked_gctx_read_matches_full_read(tmp_path):
    cols = l1000_design(cells=("A375", "MCF7"), reps=5, n_ctrl=7)
    rows = gene_meta(12, 4)
    mat = values(len(cols), len(rows), seed=3)
    path = write_gctx(tmp_path / "c.gctx", mat, rows, cols, chunks=(5, 12))
    src = open_l1000(path)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(cols), size=40, replace=False)
    idx = np.concatenate([idx, idx[:3]])  # repeated and unsorted indices
    genes = np.array([1, 3, 4, 9])
    for chunk in (1, 7, 1000):
        np.testing.assert_array_equal(src.read(idx, genes, chunk_samples=chunk), mat[idx][:, genes])
    # far-apart samples: point selection instead of one contiguous span
    far = np.array([len(cols) - 1, 0, len(cols) // 2])
    np.testing.assert_array_equal(src.read(far, genes), mat[far][:, genes])


def test_missing_value_in_matrix_is_reported(tmp_path):
    cols = l1000_design(cells=("A375",), drugs={"vorinostat": (10.0,)})
    rows = gene_meta()
    mat = values(len(cols), len(rows))
    bad = int(np.flatnonzero((cols.pert_iname == "vorinostat") & (cols.pert_time == "24"))[0])
    mat[bad, 2] = -666
    path = write_gctx(tmp_path / "m.gctx", mat, rows, cols)
    with pytest.raises(L1000Error, match=rf"missing \(-666/NaN\).*{cols.inst_id[bad]}.*'6009'"):
        read_l1000(path, drugs=["vorinostat"])


def test_gene_info_file_gives_landmarks_for_entrez_row_ids(tmp_path):
    # GSE92742 style: row ids are Entrez IDs, landmark flags and symbols in a separate gene_info file
    cols = l1000_design(cells=("A375",))
    rows = gene_meta()
    bare = rows[["pr_gene_id"]].rename(columns={"pr_gene_id": "id"})
    mat = values(len(cols), len(rows))
    path = write_gctx(tmp_path / "l3.gctx", mat, bare, cols)
    gi = rows.drop(columns=["id"]).rename(columns={"pr_is_lmark": "pr_is_lm"})
    gi.to_csv(tmp_path / "gene_info.txt", sep="\t", index=False)
    prof = read_l1000(path, drugs=["vorinostat"], gene_info=tmp_path / "gene_info.txt")
    assert prof.genes.landmark_column == "pr_is_lm"
    assert prof.genes.entrez.tolist() == rows.pr_gene_id[:6].tolist()
    assert prof.genes.symbols.tolist() == rows.pr_gene_symbol[:6].tolist()
    with pytest.raises(L1000Error, match=r"gene_info2.txt: 1 of 8 ids of the matrix have no gene_info row"):
        gi.iloc[1:].to_csv(tmp_path / "gene_info2.txt", sep="\t", index=False)
        read_l1000(path, drugs=["vorinostat"], gene_info=tmp_path / "gene_info2.txt")
