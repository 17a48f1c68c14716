"""Real-world drug names (LINCS pert_inames, GDSC names) through the report: a '|' in a name must not add a
column to a markdown table (names55 review)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from harness import predictions
from harness.report import render_report
from tests.harness.test_report import make_store

PIPED = 'A549|ACH "x"'   # e.g. CMap's 'name|id' labels


def _renamed_store(out: Path, names: dict[str, str]) -> None:
    """test_report's store with its drugs renamed by ``names`` (coordinate and every JSON attribute)."""
    ds = make_store(out)
    drugs = [names.get(str(d), str(d)) for d in ds["drug"].values]
    attrs = dict(ds.attrs)
    for old, new in names.items():
        attrs = {k: json.dumps(json.loads(v.replace(json.dumps(old), json.dumps(new))))
                 if isinstance(v, str) and json.dumps(old) in v else v for k, v in attrs.items()}
    ds = ds.assign_coords(drug=np.array(drugs, dtype=object))
    ds.attrs = attrs
    ds.to_zarr(str(out / "results.zarr"), zarr_format=3, mode="w", consolidated=False)


def _cells(row: str) -> int:
    """The cells of a markdown table row, as GitHub's table parser counts them (an escaped '\\|' is text)."""
    return len(re.split(r"(?<!\\)\|", row.strip().strip("|")))


def test_a_pipe_in_a_drug_name_keeps_every_markdown_table_a_table(tmp_path: Path) -> None:
    _renamed_store(tmp_path, {"strong": PIPED})
    render_report(tmp_path, with_figures=False)
    for name in ("benchmark.md", "table1.md"):
        text = (tmp_path / name).read_text()
        assert "A549\\|ACH" in text, name
        for table in re.findall(r"(?m)(?:^\|.*\n)+", text):
            rows = table.splitlines()
            assert {_cells(r) for r in rows} == {_cells(rows[0])}, (name, rows)
    assert PIPED in set(pd.read_csv(tmp_path / "table1.csv")["drug"])   # the csv keeps the name as it is


def test_table1_tex_sets_pipes_and_greek_letters_as_written(tmp_path: Path) -> None:
    """LaTeX's default text font set '|' as an em dash ('A549—ACH'), and pdflatex stops at a 'β' it has no
    font for."""
    _renamed_store(tmp_path, {"strong": PIPED, "weak": "β-lapachone"})
    render_report(tmp_path, with_figures=False)
    tex = (tmp_path / "table1.tex").read_text()
    assert r"A549\textbar{}ACH" in tex and r"\ensuremath{\beta}-lapachone" in tex
    assert "|" not in tex.split(r"\midrule")[1] and "β" not in tex


def test_drugs_whose_names_differ_in_a_separator_get_their_own_predictions_file(tmp_path: Path) -> None:
    paths = {d: predictions.path_for(tmp_path, "identity", d)
             for d in ("palbociclib/PD-0332991", "palbociclib PD-0332991", "palbociclib_PD-0332991")}
    assert len(set(paths.values())) == 3     # one file, and the later drug's predictions replaced the first's
    assert paths["palbociclib_PD-0332991"].name == "palbociclib_PD-0332991.h5ad"  # a file name: kept
    assert all(p.parent == tmp_path / "predictions" / "identity" for p in paths.values())
