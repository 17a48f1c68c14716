"""Baseline readers (DepMap, GDSC, CCLE, generic CSV), name normalization, gene/cell matching."""

from __future__ import annotations

import numpy as np
import pytest
from datasets_test_helpers import GENES, baseline_values, write_ccle, write_csv, write_depmap, write_gdsc

from datasets.baseline import (
    BaselineError,
    detect_format,
    match_baseline,
    normalize_name,
    read_baseline,
    read_cell_map,
)

L1000_GENES = np.array([e for e, _ in GENES[:8]])
L1000_SYMBOLS = np.array([s for _, s in GENES[:8]])


def test_normalize_name():
    assert normalize_name("A-375") == normalize_name("A375") == normalize_name("a375 ")
    assert normalize_name("Hep G2") == normalize_name("HEPG2")
    assert normalize_name("NCI-H460") != normalize_name("NCI-H46")


@pytest.mark.parametrize("fmt", ["depmap", "gdsc", "ccle", "csv", "csv-symbol"])
def test_each_format_reads_and_autodetects(tmp_path, fmt):
    genes = GENES[2:10]  # overlaps L1000_GENES on 6 genes (indices 2..7)
    cells = ["A-375", "MCF7", "HT-29"]
    vals = baseline_values(cells, genes, seed=4)
    cmap = None
    if fmt == "depmap":
        path = write_depmap(tmp_path / "d.csv", cells, genes, vals)
    elif fmt == "gdsc":
        cosmic = ["906793", "905946", "905939"]
        path = write_gdsc(tmp_path / "g.txt", cosmic, genes, vals)
        (tmp_path / "map.csv").write_text("source_name,cell_line\n" + "".join(
            f"{k},{c}\n" for k, c in zip(cosmic, cells, strict=True)))
        cmap = read_cell_map(tmp_path / "map.csv")
    elif fmt == "ccle":
        path = write_ccle(tmp_path / "c.gct", [f"{c.replace('-', '')}_SKIN" for c in cells], genes, vals)
    else:
        by = "symbol" if fmt == "csv-symbol" else "entrez"
        path = write_csv(tmp_path / "x.csv", cells, genes, vals, by=by)
    expect = {"depmap": "depmap", "gdsc": "gdsc", "ccle": "ccle"}.get(fmt, "csv")
    assert detect_format(path) == expect
    t = read_baseline(path, "auto", cmap)
    assert t.values.shape == (3, 8)
    np.testing.assert_allclose(t.values, vals, atol=1e-5)
    m = match_baseline([t], ["A375", "MCF7", "PC3"], L1000_GENES, L1000_SYMBOLS)
    assert m.gene_mask.tolist() == [False, False] + [True] * 6
    assert m.matched[str(path)] == 2  # A375 (any spelling) and MCF7; HT-29 is baseline-only
    assert set(m.profiles) == {"A375", "MCF7", t.cell_lines[2]}
    # the A375 profile holds the overlapping genes in L1000 order
    np.testing.assert_allclose(m.profiles["A375"][0], vals[0, :6], atol=1e-5)


def test_entrez_preferred_over_symbol(tmp_path):
    # a source whose symbol for Entrez 5720 is stale ("PA28A") still matches by Entrez ID
    genes = [("5720", "PA28A"), ("466", "ATF1")]
    vals = baseline_values(["A375"], genes)
    t = read_baseline(write_depmap(tmp_path / "d.csv", ["A375"], genes, vals))
    m = match_baseline([t], ["A375"], L1000_GENES, L1000_SYMBOLS)
    assert m.gene_mask[:2].tolist() == [True, True] and m.gene_mask.sum() == 2


def test_symbol_fallback_never_reuses_a_column_an_entrez_id_matched(tmp_path):
    # DepMap's "ATF1 (5720)": Entrez 5720 is the L1000 PSME1; the L1000 ATF1 (466) is absent by Entrez ID
    # and must not take that same column by its symbol (one baseline gene as two genes of the cube)
    genes = [("5720", "ATF1"), ("6009", "RHEB"), ("2309", "FOXO3")]
    vals = baseline_values(["A375"], genes)
    t = read_baseline(write_depmap(tmp_path / "d.csv", ["A375"], genes, vals))
    m = match_baseline([t], ["A375"], L1000_GENES, L1000_SYMBOLS)
    assert m.gene_mask[:4].tolist() == [True, False, True, True] and m.gene_mask.sum() == 3
    np.testing.assert_allclose(m.profiles["A375"][0], vals[0], atol=1e-6)


def test_two_sources_union_of_cells_and_replicates(tmp_path):
    g1, g2 = GENES[:6], GENES[1:8]
    a = read_baseline(write_depmap(tmp_path / "d.csv", ["A375", "K562"], g1, baseline_values("ab", g1)))
    b = read_baseline(write_ccle(tmp_path / "c.gct", ["A375_SKIN", "HELA_CERVIX"], g2,
                                 baseline_values("ab", g2)))
    m = match_baseline([a, b], ["A375"], L1000_GENES, L1000_SYMBOLS)
    assert m.gene_mask.sum() == 5  # genes in both sources
    assert m.profiles["A375"].shape == (2, 5)  # one replicate per source
    assert m.profiles["K562"].shape == (1, 5) and m.profiles["HELA"].shape == (1, 5)
    assert m.sources == ["DepMap", "CCLE"]


def test_cell_map_applies_to_depmap_ids(tmp_path):
    genes = GENES[:4]
    path = write_depmap(tmp_path / "d.csv", ["ACH-000219", "ACH-000019"], genes, baseline_values("ab", genes))
    (tmp_path / "m.csv").write_text("source_name,cell_line\nACH-000219,A375\n")
    t = read_baseline(path, "depmap", read_cell_map(tmp_path / "m.csv"))
    assert t.cell_lines == ["A375"] and t.unmapped == ("ACH-000019",)  # an unmapped id is no cell line
    assert match_baseline([t], ["A375"], L1000_GENES, L1000_SYMBOLS).matched[str(path)] == 1


def test_cell_map_without_header_line_is_refused(tmp_path):
    # before: the first mapping (906793 -> A375) was read as the header and lost, so GDSC's A375 became a
    # baseline-only cell line '906793' of the cube beside the L1000 A375
    (tmp_path / "m.csv").write_text("906793,A375\n905946,MCF7\n")
    with pytest.raises(BaselineError, match=r"m\.csv: its first line '906793,A375' is a mapping, not the "
                                            r"header line; add the header source_name,cell_line"):
        read_cell_map(tmp_path / "m.csv")
    (tmp_path / "h.csv").write_text("COSMIC identifier,Sample Name\n906793,A375\n")
    assert read_cell_map(tmp_path / "h.csv") == {"906793": "A375"}


def test_no_common_genes(tmp_path):
    genes = [("999999", "NOTAGENE"), ("999998", "NOTAGENE2")]
    t = read_baseline(write_depmap(tmp_path / "d.csv", ["A375"], genes, baseline_values("a", genes)))
    with pytest.raises(BaselineError, match=r"no genes in common .*d\.csv"):
        match_baseline([t], ["A375"], L1000_GENES, L1000_SYMBOLS)


def test_infinite_value_is_named(tmp_path):
    # a log2(0) written as -inf: the error names the value, cell line and gene, and what to write instead
    genes = GENES[:3]
    path = write_depmap(tmp_path / "d.csv", ["A375", "MCF7"], genes, baseline_values("ab", genes))
    text = path.read_text().splitlines()
    text[2] = text[2].rsplit(",", 1)[0] + ",-inf"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(BaselineError, match=r"d\.csv: 1 infinite expression value\(s\), e\.g\. -inf for "
                                            r"cell line 'MCF7', gene 'RHEB'; write a missing value as empty"):
        read_baseline(path)


def test_non_numeric_and_nan_values(tmp_path):
    genes = GENES[:3]
    path = write_depmap(tmp_path / "d.csv", ["A375", "MCF7"], genes, baseline_values("ab", genes))
    text = path.read_text().splitlines()
    text[2] = text[2].rsplit(",", 1)[0] + ",oops"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(BaselineError, match=r"non-numeric value 'oops' at line 3 \(cell line 'MCF7'\)"):
        read_baseline(path)
    text[2] = text[2].rsplit(",", 1)[0] + ","
    path.write_text("\n".join(text) + "\n")
    t = read_baseline(path)
    with pytest.raises(BaselineError, match=r"cell line 'MCF7' has a missing or infinite value .* '6009'"):
        match_baseline([t], ["A375"], L1000_GENES, L1000_SYMBOLS)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(BaselineError, match="baseline file not found"):
        read_baseline(tmp_path / "nope.csv")
    with pytest.raises(BaselineError, match="unknown baseline format 'xls'"):
        read_baseline(tmp_path / "nope.csv", "xls")
    (tmp_path / "one.txt").write_text("justonecolumn\n1\n")
    with pytest.raises(BaselineError, match="cannot tell the baseline format"):
        read_baseline(tmp_path / "one.txt")


def test_build_help_gives_the_csv_layout_the_reader_takes(tmp_path, capsys):
    """`build --help` said csv was 'cell lines x genes'; a file laid out so was read with its gene ids as cell
    lines and its cell lines as genes. The reader takes genes x cell lines, and the help must say so."""
    from datasets.build import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    words = " ".join(capsys.readouterr().out.split())
    assert "csv (genes x cell lines" in words
    t = read_baseline(write_csv(tmp_path / "x.csv", ["A375", "MCF7"], GENES[:3], np.zeros((2, 3))), "csv")
    assert t.cell_lines == ["A375", "MCF7"] and list(t.entrez) == [e for e, _ in GENES[:3]]
