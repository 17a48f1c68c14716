"""Small drug-response files in the public layouts (datasets.response_tables' docstring): GDSC release 8.5
fitted dose response CSV, the CTRPv2.0 curves file with its three metadata files (and the zip the CTD2 portal
publishes), and the PRISM 19Q4 secondary-screen curve parameters. Every column of the releases is written,
the values are the test's own: each test knows exactly what it wrote."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

GDSC_COLUMNS = ("DATASET", "NLME_RESULT_ID", "NLME_CURVE_ID", "COSMIC_ID", "CELL_LINE_NAME",
                "SANGER_MODEL_ID", "TCGA_DESC", "DRUG_ID", "DRUG_NAME", "PUTATIVE_TARGET", "PATHWAY_NAME",
                "COMPANY_ID", "WEBRELEASE", "MIN_CONC", "MAX_CONC", "LN_IC50", "AUC", "RMSE", "Z_SCORE")
PRISM_COLUMNS = ("broad_id", "depmap_id", "ccle_name", "screen_id", "upper_limit", "lower_limit", "slope",
                 "r2", "auc", "ec50", "ic50", "name", "moa", "target", "disease.area", "indication", "smiles",
                 "phase", "passed_str_profiling", "row_name")
CTRP_FILES = ("v20.data.curves_post_qc.txt", "v20.meta.per_experiment.txt", "v20.meta.per_cell_line.txt",
              "v20.meta.per_compound.txt")


def write_gdsc(path: Path, rows: Sequence[tuple], dataset: str = "GDSC2") -> Path:
    """GDSC fitted dose response CSV; ``rows``: (COSMIC_ID, CELL_LINE_NAME, DRUG_NAME, LN_IC50, AUC, Z_SCORE)
    (a value may be ``""``: not measured)."""
    out = []
    for k, (cosmic, name, drug, ln_ic50, auc, z) in enumerate(rows):
        out.append({"DATASET": dataset, "NLME_RESULT_ID": "343", "NLME_CURVE_ID": str(15946000 + k),
                    "COSMIC_ID": cosmic, "CELL_LINE_NAME": name, "SANGER_MODEL_ID": f"SIDM{k:05d}",
                    "TCGA_DESC": "SKCM", "DRUG_ID": str(1000 + sum(map(ord, drug)) % 900),
                    "DRUG_NAME": drug, "PUTATIVE_TARGET": "MEK1, MEK2", "PATHWAY_NAME": "ERK MAPK signaling",
                    "COMPANY_ID": "1046", "WEBRELEASE": "Y", "MIN_CONC": "0.00782", "MAX_CONC": "2.0",
                    "LN_IC50": ln_ic50, "AUC": auc, "RMSE": "0.0832", "Z_SCORE": z})
    pd.DataFrame(out, columns=list(GDSC_COLUMNS)).to_csv(path, index=False)
    return path


def write_prism(path: Path, rows: Sequence[tuple]) -> Path:
    """PRISM secondary-screen-dose-response-curve-parameters.csv; ``rows``: (depmap_id, ccle_name, name, auc,
    ic50, passed_str_profiling, screen_id)."""
    out = []
    for depmap, ccle, drug, auc, ic50, passed, screen in rows:
        out.append({"broad_id": f"BRD-K{sum(map(ord, drug)):08d}-001-01-1", "depmap_id": depmap,
                    "ccle_name": ccle, "screen_id": screen, "upper_limit": "1", "lower_limit": "0.1",
                    "slope": "-1.5", "r2": "0.9", "auc": auc, "ec50": "1.2", "ic50": ic50, "name": drug,
                    "moa": "MEK inhibitor", "target": "MAP2K1, MAP2K2", "disease.area": "oncology",
                    "indication": "melanoma", "smiles": "C", "phase": "Launched",
                    "passed_str_profiling": passed, "row_name": f"{ccle}::{screen}"})
    pd.DataFrame(out, columns=list(PRISM_COLUMNS)).to_csv(path, index=False)
    return path


def ctrp_frames(curves: Sequence[tuple], cells: dict[str, str], compounds: dict[str, str],
                experiments: dict[str, str]) -> dict[str, pd.DataFrame]:
    """The four CTRPv2 tables. ``curves``: (experiment_id, master_cpd_id, area_under_curve); ``cells``:
    master_ccl_id -> ccl_name; ``compounds``: master_cpd_id -> cpd_name; ``experiments``: experiment_id ->
    master_ccl_id (each experiment written twice, as the release lists an experiment once per its rows)."""
    cur = pd.DataFrame([{"experiment_id": e, "conc_pts_fit": "16", "fit_num_param": "3",
                         "p1_conf_int_high": "", "p1_conf_int_low": "", "p2_conf_int_high": "",
                         "p2_conf_int_low": "", "p4_conf_int_high": "", "p4_conf_int_low": "",
                         "p1_center": "1.2", "p2_slope": "2.1", "p3_total_decline": "", "p4_baseline": "1",
                         "apparent_ec50_umol": "3.1", "pred_pv_high_conc": "0.2", "area_under_curve": auc,
                         "master_cpd_id": cpd} for e, cpd, auc in curves])
    exp = pd.DataFrame([{"experiment_id": e, "run_id": str(k), "experiment_date": "20130101",
                         "culture_media": "RPMI001", "baseline_signal": "1000", "cells_per_well": "500",
                         "growth_mode": "adherent", "snp_fp_status": "matched", "master_ccl_id": c}
                        for k, (e, c) in enumerate(experiments.items()) for _ in range(2)])
    cell = pd.DataFrame([{"master_ccl_id": k, "ccl_name": v, "ccl_availability": "available",
                          "ccle_primary_site": "skin", "ccle_primary_hist": "malignant_melanoma",
                          "ccle_hist_subtype_1": ""} for k, v in cells.items()])
    cpd = pd.DataFrame([{"master_cpd_id": k, "cpd_name": v, "broad_cpd_id": f"BRD-K{k}",
                         "top_test_conc_umol": "10", "cpd_status": "FDA", "inclusion_rationale": "",
                         "gene_symbol_of_protein_target": "", "target_or_activity_of_compound": "",
                         "source_name": "", "source_catalog_id": "", "cpd_smiles": "C"}
                        for k, v in compounds.items()])
    return dict(zip(CTRP_FILES, (cur, exp, cell, cpd), strict=True))


def write_ctrp(d: Path, frames: dict[str, pd.DataFrame]) -> Path:
    """The four CTRPv2 files in ``d``; returns the curves file."""
    d.mkdir(parents=True, exist_ok=True)
    for name, df in frames.items():
        df.to_csv(d / name, sep="\t", index=False)
    return d / CTRP_FILES[0]


def ctrp_zip(frames: dict[str, pd.DataFrame]) -> bytes:
    """CTRPv2.0_2015_ctd2_ExpandedDataset.zip as the portal lays it out: the data files, the other metadata
    and documentation files beside them."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, df in frames.items():
            z.writestr(name, df.to_csv(sep="\t", index=False))
        z.writestr("v20._README.txt", "CTRPv2.0 readme\n")
        z.writestr("v20.meta.per_assay_plate.txt", "assay_plate_barcode\texperiment_id\nX\t1\n")
        z.writestr("v20.data.per_cpd_post_qc.txt", "experiment_id\tcpd_conc_umol\nX\t1\n")
    return buf.getvalue()
