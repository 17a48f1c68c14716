"""Review of the data ingestion (pass 50): ids no cell map names, and the other problems of this pass, each
reproduced with a small file in the public layout."""

from __future__ import annotations

import pytest
from datasets_test_helpers import GENES, baseline_values, write_ccle, write_gdsc

from datasets.cube import open_cube
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

