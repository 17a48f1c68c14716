"""The response resources of ``datasets.fetch``'s catalog (gdsc1-response, gdsc2-response, ctrpv2,
prism-secondary) fetched from a real HTTP server on 127.0.0.1 (small files in the public layouts at the
catalog URLs' paths): the CTRPv2 zip's four files extracted and recorded, reused verified, a changed member
caught; then ``build --study rampasek2017 --response`` on the fetched files, the paper's drug names matched to
GDSC's (GDC-0941 = Pictilisib)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from datasets import build, fetch
from datasets.cube import RESPONSE, open_cube
from datasets.provenance import manifest_sha256
from datasets.response_tables import read_ctrp, read_prism
from datasets.studies import RAMPASEK2017_DRUGS
from tests.datasets.local_http import LocalServer
from tests.datasets.real_layout import CELLS, drug_cells, release_files
from tests.datasets.response_layout import CTRP_FILES, ctrp_frames, ctrp_zip, write_gdsc, write_prism

RESOURCES = ("gdsc1-response", "gdsc2-response", "ctrpv2", "prism-secondary")
GDSC_NAME = {"GDC-0941": "Pictilisib", "SN-38": "SN38"}  # how GDSC writes two of the paper's drugs


def auc(drug: str, cell: str) -> float:
    """A known AUC per (drug, cell line) in (0, 1)."""
    return round(0.05 + (sum(map(ord, drug + cell)) % 90) / 100, 4)


def gdsc_rows() -> list[tuple]:
    by_id = {c[0]: c for c in CELLS}
    return [(by_id[c][4], by_id[c][2], GDSC_NAME.get(d, d.capitalize()), "0.1", str(auc(d, c)), "0.0")
            for d, _, _ in RAMPASEK2017_DRUGS for c in drug_cells()[d]]


def ctrp() -> dict:
    return ctrp_frames(curves=[("1", "7", "11.5"), ("2", "7", "9.0")], cells={"100": "A375", "101": "MCF7"},
                       compounds={"7": "vorinostat"}, experiments={"1": "100", "2": "101"})


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("bodies")
    bodies = {"gdsc1-response": write_gdsc(d / "g1.csv", gdsc_rows()[:3], dataset="GDSC1").read_bytes(),
              "gdsc2-response": write_gdsc(d / "g2.csv", gdsc_rows()).read_bytes(),
              "ctrpv2": ctrp_zip(ctrp()),
              "prism-secondary": write_prism(d / "p.csv", [("ACH-000219", "A375_SKIN", "vorinostat", "0.4",
                                                            "2", "TRUE", "MTS010")]).read_bytes()}
    files = release_files()
    files.update({urlsplit(fetch.CATALOG[r].files[0].url).path: b for r, b in bodies.items()})
    return files


def test_fetch_response_resources_and_reuse(tmp_path: Path, served, capsys) -> None:
    data = tmp_path / "data"
    with LocalServer(files=dict(served)) as srv:
        assert fetch.main([*RESOURCES, "--base-url", srv.url, "--dir", str(data)]) == 0
        err = capsys.readouterr().err
        assert "CTRPv2.0_2015_ctd2_ExpandedDataset.zip: unpacked to " + ", ".join(CTRP_FILES) in err
        assert sorted(p.name for p in data.iterdir()) == sorted([  # the zip removed, its other files not kept
            "MANIFEST.json", "GDSC1_fitted_dose_response_27Oct23.csv",
            "GDSC2_fitted_dose_response_27Oct23.csv", "secondary-screen-dose-response-curve-parameters.csv",
            *CTRP_FILES])
        manifest = json.loads((data / "MANIFEST.json").read_text())["files"]
        rec = manifest["CTRPv2.0_2015_ctd2_ExpandedDataset.zip"]
        assert rec["archive_removed"] and sorted(rec["members"]) == sorted(CTRP_FILES)
        assert manifest_sha256(data / CTRP_FILES[3]) == rec["members"][CTRP_FILES[3]]["sha256"]
        t = read_ctrp(data / CTRP_FILES[0])
        assert dict(zip(t.cell_name, t.value, strict=True)) == {"A375": -11.5, "MCF7": -9.0}
        prism = read_prism(data / "secondary-screen-dose-response-curve-parameters.csv")
        assert prism.value.tolist() == [0.6]
        n = len(srv.log)
        assert fetch.main([*RESOURCES, "--base-url", srv.url, "--dir", str(data)]) == 0
        assert len(srv.log) == n  # all reused, verified against the manifest
        assert f"{', '.join(CTRP_FILES)}: present, verified against MANIFEST.json" in capsys.readouterr().err
        (data / CTRP_FILES[2]).write_text("master_ccl_id\tccl_name\n100\tA375\n")  # changed after the fetch
        assert fetch.main(["ctrpv2", "--base-url", srv.url, "--dir", str(data)]) == 2
        assert "v20.meta.per_cell_line.txt: does not match MANIFEST.json" in capsys.readouterr().err


def test_zip_without_a_member_is_refused(tmp_path: Path, served, capsys) -> None:
    frames = ctrp()
    del frames[CTRP_FILES[3]]
    files = {**served, urlsplit(fetch.CATALOG["ctrpv2"].files[0].url).path: ctrp_zip(frames)}
    with LocalServer(files=files) as srv:
        assert fetch.main(["ctrpv2", "--base-url", srv.url, "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the download's progress lines
    assert err.startswith("error: ")
    assert "CTRPv2.0_2015_ctd2_ExpandedDataset.zip: expected one v20.meta.per_compound.txt in the zip" in err
    assert not (tmp_path / CTRP_FILES[0]).exists()


def test_study_build_with_fetched_gdsc_response(tmp_path: Path, served, capsys) -> None:
    data, out = tmp_path / "data", tmp_path / "cube.zarr"
    with LocalServer(files=dict(served)) as srv:
        assert fetch.main(["lincs-gse92742", "depmap", "gdsc2-response", "--base-url", srv.url,
                           "--dir", str(data)]) == 0
    capsys.readouterr()
    g = data / "GDSC2_fitted_dose_response_27Oct23.csv"
    assert build.main(["--study", "rampasek2017", "--dir", str(data), "--response", str(g),
                       "--out", str(out)]) == 0
    s = capsys.readouterr().out
    assert "GDC-0941 = 'Pictilisib' (synonym table)" in s and "SN-38 = 'SN38' (GDSC drug name, ignoring " in s
    ds = open_cube(out)
    r = ds[RESPONSE]
    for d, _, _ in RAMPASEK2017_DRUGS:
        for c in drug_cells()[d]:  # COSMIC ids named through the fetched Model.csv
            assert float(r.sel(cell_line=c, condition=d)) == pytest.approx(1 - auc(d, c)), (d, c)
    assert int((~np.isnan(r.values)).sum()) == sum(len(v) for v in drug_cells().values())
    prov = json.loads(ds.attrs["provenance"])
    assert prov["options"]["study"] == "rampasek2017"
    assert prov["options"]["response_drug_names"]["GDC-0941"] == "Pictilisib"
