"""Real drug names through ``build --drugs`` and the name matching (names55 review): a pert_iname holding a
comma, Greek letters."""

from __future__ import annotations

from datasets_test_helpers import (
    GENES,
    baseline_values,
    gene_meta,
    l1000_design,
    values,
    write_depmap,
    write_gctx,
    write_inst_info,
)

from datasets.build import main
from datasets.cube import drugs, open_cube
from datasets.studies import resolve_drugs


def test_build_drugs_takes_a_name_with_a_comma_whole(tmp_path):
    """'2,3-DCPE' was split into '2' and '3-DCPE' (neither a drug: the build failed); a value that is no
    drug's name is still split at its commas."""
    cols = l1000_design(cells=("A375", "MCF7"), drugs={"2,3-DCPE": (10.0,), "vorinostat": (10.0,),
                                                       "trametinib": (3.33,)})
    rows = gene_meta()
    gctx = write_gctx(tmp_path / "x.gctx", values(len(cols), len(rows)), rows, None,
                      sample_ids=cols["inst_id"])
    inst = write_inst_info(tmp_path / "inst_info.txt", cols)
    dm = write_depmap(tmp_path / "dm.csv", ["A375", "MCF7"], GENES[:6], baseline_values("ab", GENES[:6]))
    out = tmp_path / "c.zarr"
    assert main(["--l1000", str(gctx), "--inst-info", str(inst), "--baseline", str(dm), "--out", str(out),
                 "--drugs", "2,3-DCPE", "vorinostat,trametinib"]) == 0
    assert drugs(open_cube(out)) == ["2,3-DCPE", "vorinostat", "trametinib"]


def test_a_greek_letter_is_no_punctuation():
    """'β-lapachone' resolved to the cube's 'α-lapachone', another compound, 'ignoring case and punctuation'
    (normalize_name dropped every non-ASCII character: both keyed 'lapachone'); --drugs ran, build selected
    and a response file gave the wrong drug. Case and punctuation are still ignored around the letter."""
    assert resolve_drugs(["β-lapachone"], ["α-lapachone", "olaparib"])[0].via == "not resolved"
    assert resolve_drugs(["Β-LAPACHONE"], ["α-lapachone", "β-lapachone "])[0].pert_iname == "β-lapachone "
