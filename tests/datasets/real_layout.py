"""Small generated files laid out like the real public releases, keyed by the catalog URLs' paths, for a
local HTTP server: GEO GSE92742 (Level 3 GCTX with ids only, inst_info, gene_info, cell_info, pert_info; all
gzipped), DepMap (Model.csv, OmicsExpressionProteinCodingGenesTPMLogp1.csv), GDSC (the RMA table zipped)
and CCLE (RNA-seq GCT 1.2, gzipped). Names, columns and id formats follow the releases; the sizes do not.

The design: 7 L1000 cell lines, the paper's 19 drugs at two doses (2 replicates each) on 2 plates per cell
line, 3 DMSO wells per plate, a 6 h time point that must not be selected; linsitinib on 6 cell lines (the
paper's count), every other drug on 2-3; GDC-0941 under its other name ``pictilisib``.
"""

from __future__ import annotations

import gzip
import io
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import h5py
import numpy as np
import pandas as pd

from datasets.fetch import CATALOG
from datasets.studies import RAMPASEK2017_DRUGS

# real Entrez IDs / symbols of L1000 landmark genes, the last two not landmarks in this design
GENES = [("5720", "PSME1"), ("466", "ATF1"), ("6009", "RHEB"), ("2309", "FOXO3"), ("387", "RHOA"),
         ("3553", "IL1B"), ("427", "ASAH1"), ("5898", "RALA"), ("23200", "ATP11B"), ("6657", "SOX2"),
         ("1026", "CDKN1A"), ("7157", "TP53")]
N_LANDMARK = 10
# L1000 cell_id, DepMap ModelID, CellLineName, StrippedCellLineName, COSMIC id, CCLE name
CELLS = [("A375", "ACH-000219", "A375", "A375", "906793", "A375_SKIN"),
         ("MCF7", "ACH-000019", "MCF7", "MCF7", "905946", "MCF7_BREAST"),
         ("PC3", "ACH-000090", "PC-3", "PC3", "905934", "PC3_PROSTATE"),
         ("HT29", "ACH-000552", "HT-29", "HT29", "905939", "HT29_LARGE_INTESTINE"),
         ("A549", "ACH-000681", "A549", "A549", "905949", "A549_LUNG"),
         ("HEPG2", "ACH-000739", "Hep G2", "HEPG2", "1240146", "HEPG2_LIVER"),
         ("VCAP", "ACH-000115", "VCaP", "VCAP", "1299075", "VCAP_PROSTATE")]
# baseline-only cell lines (no L1000 profiles)
EXTRA = [("ACH-000137", "KMS-11", "KMS11", "1330988", "KMS11_HAEMATOPOIETIC_AND_LYMPHOID_TISSUE"),
         ("ACH-000004", "HEL", "HEL", "907053", "HEL_HAEMATOPOIETIC_AND_LYMPHOID_TISSUE")]
LINCS_NAME = {"GDC-0941": "pictilisib"}  # the file's pert_iname where it differs from the paper's
DOSES = (3.33, 10.0)
REPS = 2


def drug_cells() -> dict[str, list[str]]:
    """Paper drug -> the L1000 cell lines it was measured in (linsitinib: 6, the paper's count)."""
    ids = [c[0] for c in CELLS]
    out = {}
    for k, (d, _, _) in enumerate(RAMPASEK2017_DRUGS):
        out[d] = ids[:6] if d == "linsitinib" else [ids[(k + j) % len(ids)] for j in range(2 + k % 2)]
    return out


def inst_info() -> pd.DataFrame:
    """GSE92742_Broad_LINCS_inst_info columns; inst_id = '<rna_plate>:<rna_well>'."""
    rows = []
    per_cell = drug_cells()
    for c, *_ in CELLS:
        for p in (1, 2):
            plate = f"CPC00{p}_{c}_24H_X{p}_B3_DUO52HI53LO"
            wells = (f"{r}{k:02d}" for r in "ABCDEFGHIJKLMNOP" for k in range(1, 25))
            for _ in range(3):
                w = next(wells)
                rows.append(dict(inst_id=f"{plate}:{w}", rna_plate=plate, rna_well=w, pert_id="DMSO",
                                 pert_iname="DMSO", pert_type="ctl_vehicle", pert_dose="-666",
                                 pert_dose_unit="-666", pert_time="24", pert_time_unit="h", cell_id=c))
            for d, cells in per_cell.items():
                if c not in cells:
                    continue
                for dose in DOSES:
                    w = next(wells)  # one replicate of each dose per plate: 2 replicates in all
                    rows.append(dict(inst_id=f"{plate}:{w}", rna_plate=plate, rna_well=w, pert_id=pert_id(d),
                                     pert_iname=LINCS_NAME.get(d, d), pert_type="trt_cp", pert_dose=f"{dose}",
                                     pert_dose_unit="µM", pert_time="24", pert_time_unit="h", cell_id=c))
        plate = f"CPC009_{c}_6H_X1_B3_DUO52HI53LO"  # 6 h: never selected
        for k, (pt, name) in enumerate((("ctl_vehicle", "DMSO"), ("trt_cp", "vorinostat"))):
            rows.append(dict(inst_id=f"{plate}:A0{k + 1}", rna_plate=plate, rna_well=f"A0{k + 1}",
                             pert_id="DMSO" if name == "DMSO" else pert_id(name), pert_iname=name,
                             pert_type=pt,
                             pert_dose="-666" if name == "DMSO" else "20.0",
                             pert_dose_unit="-666" if name == "DMSO" else "µM", pert_time="6",
                             pert_time_unit="h", cell_id=c))
    return pd.DataFrame(rows)


def pert_id(drug: str) -> str:
    real = {"vorinostat": "BRD-K81418486"}
    if drug in real:
        return real[drug]
    k = [d for d, _, _ in RAMPASEK2017_DRUGS].index(drug)
    return f"BRD-K{10000000 + 7919 * k:08d}"


def pert_info() -> pd.DataFrame:
    """GSE92742_Broad_LINCS_pert_info columns."""
    rows = [dict(pert_id="DMSO", pert_iname="DMSO", pert_type="ctl_vehicle", is_touchstone="0",
                 inchi_key_prefix="-666", inchi_key="-666", canonical_smiles="-666", pubchem_cid="-666")]
    for d, _, _ in RAMPASEK2017_DRUGS:
        rows.append(dict(pert_id=pert_id(d), pert_iname=LINCS_NAME.get(d, d), pert_type="trt_cp",
                         is_touchstone="1", inchi_key_prefix="WAEXFXRVDQXREF", inchi_key="-666",
                         canonical_smiles="-666", pubchem_cid="-666"))
    return pd.DataFrame(rows)


def gene_info() -> pd.DataFrame:
    """GSE92742_Broad_LINCS_gene_info columns (pr_is_lm, pr_is_bing)."""
    return pd.DataFrame({"pr_gene_id": [e for e, _ in GENES], "pr_gene_symbol": [s for _, s in GENES],
                         "pr_gene_title": ["title"] * len(GENES),
                         "pr_is_lm": ["1"] * N_LANDMARK + ["0"] * (len(GENES) - N_LANDMARK),
                         "pr_is_bing": ["1"] * len(GENES)})


def cell_info() -> pd.DataFrame:
    return pd.DataFrame({"cell_id": [c[0] for c in CELLS], "cell_type": ["cell line"] * len(CELLS),
                         "base_cell_id": [c[0] for c in CELLS], "primary_site": ["-666"] * len(CELLS)})


def _tsv(df: pd.DataFrame) -> bytes:
    return df.to_csv(sep="\t", index=False).encode()


def _gctx(inst: pd.DataFrame, seed: int = 0) -> bytes:
    mat = np.random.default_rng(seed).normal(8, 2, (len(inst), len(GENES))).astype(np.float32)
    with tempfile.TemporaryDirectory() as t:
        p = Path(t) / "m.gctx"
        with h5py.File(p, "w") as f:  # the GEO GCTX: matrix + ids, metadata in the .txt files
            f.attrs["version"] = "GCTX1.0"
            f.create_dataset("/0/DATA/0/matrix", data=mat, chunks=True)
            f.create_dataset("/0/META/COL/id", data=np.array(list(inst["inst_id"]), dtype="S"))
            f.create_dataset("/0/META/ROW/id", data=np.array([e for e, _ in GENES], dtype="S"))
        return p.read_bytes()


def baseline_genes(source: str) -> list[tuple[str, str]]:
    """Each source lacks one landmark gene, so the study keeps the landmarks in all of them."""
    drop = {"depmap": "387", "gdsc": "3553", "ccle": "427"}[source]
    return [g for g in GENES if g[0] != drop]


def _vals(n: int, g: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(5, 1, (n, g)).round(4)


def depmap_model() -> pd.DataFrame:
    rows = [dict(ModelID=m, PatientID=f"PT-{k:04d}", CellLineName=n, StrippedCellLineName=s,
                 OncotreeLineage="Skin", CCLEName=cc, COSMICID=f"{cos}.0", SangerModelID=f"SIDM{k:05d}")
            for k, (m, n, s, cos, cc) in enumerate([c[1:] for c in CELLS] + EXTRA)]
    return pd.DataFrame(rows)


def depmap_expression() -> bytes:
    ids = [c[1] for c in CELLS] + [e[0] for e in EXTRA]
    g = baseline_genes("depmap")
    df = pd.DataFrame(_vals(len(ids), len(g), 2), index=ids, columns=[f"{s} ({e})" for e, s in g])
    return df.to_csv().encode()


def gdsc_zip() -> bytes:
    cos = [c[4] for c in CELLS[:5]] + [EXTRA[0][3]]
    g = baseline_genes("gdsc")
    df = pd.DataFrame({"GENE_SYMBOLS": [s for _, s in g], "GENE_title": ["title"] * len(g)})
    for k, c in zip(cos, _vals(len(cos), len(g), 3), strict=True):
        df[f"DATA.{k}"] = c
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("Cell_line_RMA_proc_basalExp.txt", _tsv(df))
    return buf.getvalue()


def ccle_gct() -> bytes:
    names = [c[5] for c in CELLS[2:]] + [e[4] for e in EXTRA]
    g = baseline_genes("ccle")
    v = _vals(len(names), len(g), 4)
    out = ["#1.2", f"{len(g)}\t{len(names)}", "\t".join(["Name", "Description", *names])]
    out += ["\t".join([f"ENSG{int(e):011d}.5", s, *(f"{x:g}" for x in v[:, j])])
            for j, (e, s) in enumerate(g)]
    return gzip.compress(("\n".join(out) + "\n").encode())


def release_files() -> dict[str, bytes]:
    """{URL path: body} for the catalog resources lincs-gse92742, depmap, gdsc and ccle."""
    inst = inst_info()
    by_role = {"l1000": gzip.compress(_gctx(inst)), "inst_info": gzip.compress(_tsv(inst)),
               "gene_info": gzip.compress(_tsv(gene_info())), "cell_info": gzip.compress(_tsv(cell_info())),
               "pert_info": gzip.compress(_tsv(pert_info()))}
    bodies = {("lincs-gse92742", r): b for r, b in by_role.items()}
    bodies[("depmap", "baseline")] = depmap_expression()
    bodies[("depmap", "model")] = depmap_model().to_csv(index=False).encode()
    bodies[("gdsc", "baseline")] = gdsc_zip()
    bodies[("ccle", "baseline")] = ccle_gct()
    return {urlsplit(f.url).path: bodies[(r, f.role)] for r in ("lincs-gse92742", "depmap", "gdsc", "ccle")
            for f in CATALOG[r].files}
