"""DepMap expression files by the kind of id that names their rows. DepMap's long layout (25Q2 on: a row
number, then SequencingID, ModelID, IsDefaultEntryForModel, ModelConditionID, IsDefaultEntryForMC, the genes;
a row per sequencing) was read by its row numbers: the build put cell lines named "0", "1", ... into the cube
(exit 0, "0 matched", with --model too). Rows named by profile (PR-) or sequencing (CDS-) ids, which Model.csv
does not map, became cell lines of those names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets_test_helpers import GENES, baseline_values, write_depmap

from datasets.baseline import BaselineError, read_baseline
from datasets.studies import model_cell_names
from tests.datasets.build_cli import build_inputs, cli

GENE_COLS = [f"{s} ({e})" for e, s in GENES[:6]]


def model_csv(path: Path) -> Path:
    pd.DataFrame({"ModelID": ["ACH-000219", "ACH-000019"], "CellLineName": ["A-375", "MCF7"],
                  "StrippedCellLineName": ["A375", "MCF7"], "CCLEName": ["A375_SKIN", "MCF7_BREAST"],
                  "COSMICID": ["906793", "905946"]}).to_csv(path, index=False)
    return path


def long_layout(path: Path, vals: np.ndarray) -> Path:
    """A375 sequenced twice (the second its default entry), MCF7 once, in DepMap's long layout."""
    ids = pd.DataFrame({"SequencingID": ["CDS-01aaaa", "CDS-02bbbb", "CDS-03cccc"],
                        "ModelID": ["ACH-000219", "ACH-000219", "ACH-000019"],
                        "IsDefaultEntryForModel": ["No", "Yes", "Yes"],
                        "ModelConditionID": ["MC-000001-a", "MC-000001-b", "MC-000002-c"],
                        "IsDefaultEntryForMC": ["Yes", "Yes", "Yes"]})
    pd.concat([ids, pd.DataFrame(vals, columns=GENE_COLS)], axis=1).to_csv(path)
    return path


def test_the_long_layout_is_read_by_model_id_and_default_entry(tmp_path: Path) -> None:
    vals = baseline_values("abc", GENES[:6])
    t = read_baseline(long_layout(tmp_path / "long.csv", vals), "auto",
                      model_cell_names(model_csv(tmp_path / "Model.csv")))
    assert t.cell_lines == ["A375", "MCF7"]
    np.testing.assert_array_equal(t.values, vals[1:])   # A375's default sequencing, not its first


def test_the_long_layout_builds_a_cube_of_the_l1000_cell_lines(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    f = build_inputs(tmp_path)
    base = long_layout(tmp_path / "long.csv", baseline_values("abc", GENES[:6]))
    r = cli("--l1000", f["gctx"], "--baseline", base, "--model", model_csv(tmp_path / "Model.csv"),
            "--out", f["out"], rc=0, capsys=capsys)
    assert f"baseline {base}: 2 cell lines, 2 matched to L1000 cell lines" in r.stdout


def test_a_non_numeric_value_names_its_line_in_the_long_layout(tmp_path: Path) -> None:
    path = long_layout(tmp_path / "long.csv", baseline_values("abc", GENES[:6]))
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",high"   # MCF7's row, after A375's skipped one
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BaselineError, match=r"'high' at line 4 \(cell line 'ACH-000019'\)"):
        read_baseline(path, "depmap", model_cell_names(model_csv(tmp_path / "Model.csv")))


@pytest.mark.parametrize("ids", [["PR-Ab12Cd", "PR-Ef34Gh"], ["CDS-010xyz", "CDS-020abc"]])
def test_profile_and_sequencing_ids_are_refused_naming_what_maps_them(tmp_path: Path, ids: list[str]) -> None:
    path = write_depmap(tmp_path / "d.csv", ids, GENES[:6], baseline_values("ab", GENES[:6]))
    with pytest.raises(BaselineError) as e:
        read_baseline(path, "auto", model_cell_names(model_csv(tmp_path / "Model.csv")))
    assert str(e.value) == (f"{path}: none of its 2 DepMap ids ({', '.join(ids)}) is mapped to a cell line "
                            f"name; give a --cell-map CSV (source_name,cell_line): {ids[0]!r} is a DepMap "
                            f"profile (PR-) or sequencing (CDS-) id, which Model.csv does not map; or use "
                            f"DepMap's expression file of ModelIDs (ACH-) with --model")


def test_a_profile_id_beside_model_ids_is_left_out(tmp_path: Path) -> None:
    path = write_depmap(tmp_path / "d.csv", ["ACH-000219", "PR-Ab12Cd"], GENES[:6],
                        baseline_values("ab", GENES[:6]))
    t = read_baseline(path, "auto", model_cell_names(model_csv(tmp_path / "Model.csv")))
    assert (t.cell_lines, t.unmapped) == (["A375"], ("PR-Ab12Cd",))


def test_ccle_names_are_mapped_by_model_csv_or_refused(tmp_path: Path) -> None:
    """Rows named A375_SKIN became a cell line 'A375_SKIN' beside A375 (0 matched): a second copy of a
    cell line another source names A375. Model.csv's CCLEName maps them; without it they are refused."""
    path = write_depmap(tmp_path / "d.csv", ["A375_SKIN", "MCF7_BREAST"], GENES[:6],
                        baseline_values("ab", GENES[:6]))
    t = read_baseline(path, "auto", model_cell_names(model_csv(tmp_path / "Model.csv")))
    assert t.cell_lines == ["A375", "MCF7"]
    with pytest.raises(BaselineError, match=r"none of its 2 DepMap ids \(A375_SKIN, MCF7_BREAST\) is mapped "
                                            r"to a cell line name; give DepMap's Model.csv \(--model\)"):
        read_baseline(path)


@pytest.mark.parametrize("name", ["A375", "A-375", "SK-MEL-28", "NCI_H460", "HL_60", "Hep G2"])
def test_cell_line_names_are_kept(tmp_path: Path, name: str) -> None:
    path = write_depmap(tmp_path / "d.csv", [name], GENES[:6], baseline_values("a", GENES[:6]))
    assert read_baseline(path).cell_lines == [name]
