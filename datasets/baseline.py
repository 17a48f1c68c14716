"""Baseline (unpaired, pre-treatment) expression readers: DepMap CSV, GDSC TSV, CCLE GCT, generic CSV.

Every reader returns a :class:`BaselineTable` (cell lines x genes). Cell line names are matched to L1000
``cell_id`` values by the key L1000 and AnnData names are checked with (datasets.cell_names.cell_line_key:
case and punctuation ignored, ``A-375`` == ``A375``; CCLE names such as ``A375_SKIN`` lose their tissue
suffix first) after an optional mapping CSV (columns ``source_name,cell_line``) is applied; a matched cell
line takes the L1000 spelling, so it is one cell line of the cube, never two.
Genes are matched to L1000 Entrez IDs by Entrez ID where the source has them, else by symbol
(case-insensitive). Duplicate genes within one source: the first occurrence is kept; a cell line named twice
in a CSV header or DepMap's rows is an error; a GDSC COSMIC column repeated (the official RMA file repeats
four), a CCLE name repeated once its tissue suffix is gone (``KMH2_THYROID`` and ``KMH2_HAEMATOPOIETIC...``
are two cell lines) and names that differ only in case or punctuation: the first is kept and the others are
reported (``BaselineTable.repeated``; ``BaselineMatch.collapsed``). Unreadable tables (binary, compressed,
ragged, empty) are errors naming the file and line.

Ids that are no names (GDSC COSMIC ids, DepMap ``ACH-`` ids, its profile ``PR-`` and sequencing ``CDS-`` ids,
which Model.csv does not map, and CCLE names such as ``A375_SKIN`` in a DepMap file) must be mapped to names
(``--model`` Model.csv, ``--cell-map``): one left unmapped would be a cell line named by its number, matching
no L1000 cell line and possibly a second copy of a cell line another source names (a leakage route). Those
are left out and listed (``BaselineTable.unmapped``, the build summary's line); a file none of whose ids is
mapped is an error.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.cell_names import cell_line_key
from datasets.cube import CubeError
from datasets.files import plural
from datasets.l1000 import NA_TOKENS, L1000Error, read_gct
from datasets.text_tables import undecodable

FORMATS = ("auto", "depmap", "gdsc", "ccle", "csv")
SOURCE_NAMES = {"depmap": "DepMap", "gdsc": "GDSC", "ccle": "CCLE", "csv": "CSV"}
_DEPMAP_COL = re.compile(r"^\s*(.+?)\s*\((\d+)\)\s*$")
_ENTREZ = re.compile(r"^(\d+)(?:_at)?$")
CELL_IDS = {"gdsc": (re.compile(r"\d+"), "COSMIC id"),   # DepMap's: ModelID, profile, sequencing, CCLE name
            "depmap": (re.compile(r"ACH-\d+|(?:PR|CDS)-\w+|[A-Z0-9]+(?:_[A-Z]+)+"), "DepMap id")}
_NOT_MODEL_IDS = re.compile(r"(?:PR|CDS)-\w+")  # profile, sequencing ids: Model.csv does not map them
DEPMAP_DEFAULT = "IsDefaultEntryForModel"  # a sequencing of the model the long layout marks "Yes"


class BaselineError(CubeError):
    """Bad baseline expression input; the message names the file/field/value."""


@dataclass
class BaselineTable:
    """One baseline source: values [n_cells, n_genes] float32, names, Entrez IDs ('' if unknown), symbols."""

    path: Path
    source: str  # "GDSC", "CCLE", "DepMap", "CSV"
    cell_lines: list[str]
    entrez: np.ndarray  # [n_genes] str
    symbols: np.ndarray  # [n_genes] str
    values: np.ndarray  # [n_cells, n_genes] float32
    repeated: tuple[str, ...] = ()  # cell-line columns named more than once (GDSC; CCLE names without their
    #                                  tissue suffix, e.g. KMH2 of KMH2_THYROID and KMH2_HAEMATOPOIETIC...)
    scale: str = "as in the file"  # the scale of ``values`` and how it was reached (read_baseline)
    unmapped: tuple[str, ...] = ()  # ids no cell map names (GDSC COSMIC, DepMap ACH-): left out


def normalize_name(name: str) -> str:
    """Case- and punctuation-insensitive key: 'A-375' -> 'a375', 'Hep G2' -> 'hepg2'. Letters beyond ASCII
    stay: 'β-lapachone' and 'α-lapachone' are two compounds, not one name punctuated two ways."""
    return "".join(ch for ch in str(name).casefold() if ch.isalnum())


_PARSER_LINE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _check_text(path: Path, what: str) -> None:
    """Refuse a compressed or binary file before pandas reads it."""
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if head.startswith(b"\x1f\x8b"):
        raise BaselineError(f"{path}: gzip-compressed; gunzip the {what} first")
    if b"\0" in head:
        raise BaselineError(f"{path}: binary data, not a text {what} (CSV/TSV)")


def _read_table(path: Path, what: str, **kw) -> tuple[pd.DataFrame, list[str]]:
    """A CSV/TSV as strings (``pd.read_csv`` keywords ``kw``) and its raw header (pandas renames repeated
    names ``x`` to ``x.1``); any parse failure -> BaselineError naming the file (and line)."""
    _check_text(path, what)
    sep = kw.get("sep", ",")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = [h.strip() for h in next(csv.reader(fh, delimiter=sep), [])]
        df = pd.read_csv(path, dtype=str, keep_default_na=False, **kw)
    except pd.errors.EmptyDataError:
        raise BaselineError(f"{path}: empty {what} (no header line)") from None
    except pd.errors.ParserError as e:
        m = _PARSER_LINE.search(str(e))
        detail = (f"line {m.group(2)} has {m.group(3)} fields, the lines before it {m.group(1)}" if m
                  else str(e).strip().splitlines()[-1])
        raise BaselineError(f"{path}: malformed {what}: {detail} (ragged table?)") from None
    except UnicodeDecodeError:
        raise BaselineError(f"{path}: not UTF-8 text at {undecodable(path)}; save the {what} as UTF-8 (e.g. "
                            f"iconv -f LATIN1 -t UTF-8)") from None
    except (csv.Error, ValueError) as e:
        raise BaselineError(f"{path}: cannot read as a text {what}: {e}") from None
    return df, header


def _refuse_duplicates(names: Sequence[str], path: Path, what: str) -> None:
    seen, dup = set(), []
    for n in names:
        if n in seen and n not in dup:
            dup.append(n)
        seen.add(n)
    if dup:
        raise BaselineError(f"{path}: {what} named more than once: {', '.join(map(repr, dup[:5]))}"
                            f"{f' (and {len(dup) - 5} more)' if len(dup) > 5 else ''}; keep one of each")


def _refuse_unnamed(names: Sequence[str], path: Path, what: str, where: Callable[[int], str]) -> None:
    """A cell line (``what``: a row or column) without a name is an error naming where it is (pandas would
    name a column ``Unnamed: 2``, a cell line of the cube; a row would be left out unsaid)."""
    empty = [k for k, n in enumerate(names) if not str(n).strip()]
    if empty:
        raise BaselineError(f"{path}: {plural(len(empty), 'cell line ' + what)} without a name (first: "
                            f"{where(empty[0])}); name it or delete it")


def read_cell_map(path: str | Path | None) -> dict[str, str]:
    """Mapping CSV ``source_name,cell_line`` (or the first two columns) -> {normalized name: cell line}. A
    line with one of the two empty, or a name (as looked up: case and punctuation ignored) mapped to two
    different cell lines, is an error naming the lines (else one mapping would be dropped unsaid)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.exists():
        raise BaselineError(f"{path}: cell map file not found")
    if not path.is_file():
        raise BaselineError(f"{path}: cell map is not a file")
    df, header = _read_table(path, "cell map")
    if not {"source_name", "cell_line"} & set(header) and header and re.fullmatch(r"\d+|ACH-\d+", header[0]):
        raise BaselineError(f"{path}: its first line {','.join(header)!r} is a mapping, not the header line; "
                            f"add the header source_name,cell_line as the first line (read as a header, that "
                            f"mapping would be lost)")
    if df.shape[1] < 2:
        raise BaselineError(f"{path}: cell map needs two columns (source_name,cell_line), "
                            f"found {list(df.columns)}")
    src_col = "source_name" if "source_name" in df.columns else df.columns[0]
    dst_col = "cell_line" if "cell_line" in df.columns else df.columns[1]
    out: dict[str, str] = {}
    first: dict[str, int] = {}
    for i, (src, dst) in enumerate(zip(df[src_col].str.strip(), df[dst_col].str.strip(), strict=True)):
        if bool(src) != bool(dst):
            raise BaselineError(f"{path}: line {_file_line(path, i, ',')} maps {src!r} to {dst!r}; every "
                                f"line needs a source_name and a cell_line: fill it in or delete the line")
        key = normalize_name(src)
        if key in out and out[key] != dst:
            j = first[key]
            was = df[src_col].iat[j].strip()
            alike = "" if was == src else " (one name: case and punctuation are ignored)"
            raise BaselineError(f"{path}: {was!r} (line {_file_line(path, j, ',')}) and {src!r} (line "
                                f"{_file_line(path, i, ',')}){alike} map to two cell lines, {out[key]!r} and "
                                f"{dst!r}; keep one")
        if src:
            out[key] = dst
            first.setdefault(key, i)
    return out


def detect_format(path: Path) -> str:
    """Guess depmap | gdsc | ccle | csv from the header."""
    _check_file(path)
    _check_text(path, "baseline file")
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline()
    if first.startswith("#1.2") or first.startswith("#1.3"):
        return "ccle"
    if "GENE_SYMBOLS" in first:
        return "gdsc"
    sep = "\t" if first.count("\t") > first.count(",") else ","
    cols = next(csv.reader([first], delimiter=sep))
    if len(cols) > 1 and sum(bool(_DEPMAP_COL.match(c)) for c in cols[1:]) >= 0.5 * (len(cols) - 1):
        return "depmap"
    if len(cols) > 1:
        return "csv"
    raise BaselineError(f"{path}: cannot tell the baseline format from its header {first[:80]!r}; "
                        f"pass --baseline-format depmap|gdsc|ccle|csv")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise BaselineError(f"{path}: baseline file not found")
    if not path.is_file():
        raise BaselineError(f"{path}: not a file")


def _numeric(df: pd.DataFrame, path: Path, names: Sequence[str], what: str, sep: str = ",") -> np.ndarray:
    """Float values of a table of strings; empty fields and the null tokens (datasets.l1000.NA_TOKENS:
    ``NaN``, ``NA``, ``-666``, ...) are missing (NaN: an error only on a kept gene, match_baseline), other
    text is an error naming the value, its file line (1-based, the header is line 1), the row's ``what``
    (``names``: per row its cell line or gene) and the column."""
    null = (df.isna() | df.apply(lambda c: c.astype(str).str.strip().isin(NA_TOKENS))).to_numpy()
    vals = df.mask(null).apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(vals) & ~null
    if bad.any():
        i, j = np.argwhere(bad)[0]
        line = _file_line(path, int(i), sep)
        raise BaselineError(f"{path}: non-numeric value {df.iat[i, j]!r} at line {line} ({what} "
                            f"{str(names[i]).strip()!r}), column {df.columns[j]!r}; fix the value, or write "
                            f"a missing one as empty or NA")
    return vals


def _file_line(path: Path, row: int, sep: str) -> int:
    """The 1-based line of the file where data row ``row`` (0-based, after the header; blank lines skipped,
    as pandas reads it) begins."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        start, seen, header = 1, -1, False
        for rec in reader:
            if rec:
                if header:
                    seen += 1
                    if seen == row:
                        return start
                header = True
            start = reader.line_num + 1
    return row + 2  # not reached for a row pandas read


def read_depmap(path: str | Path) -> BaselineTable:
    """DepMap expression CSV: rows cell lines (first column), columns ``SYMBOL (ENTREZ)``. DepMap's long
    layout (25Q2 on: a row number, then ``SequencingID``, ``ModelID``, ``IsDefaultEntryForModel``, ...,
    a row per sequencing) is read by its ``ModelID``, one row a model: the one marked its default entry.
    Read by the row numbers, every cell line was named 0, 1, ..., matching none."""
    path = Path(path)
    _check_file(path)
    df, _ = _read_table(path, "DepMap baseline file", index_col=0)
    rows = np.arange(len(df))   # the rows read, by their place in the file (its lines in messages)
    if "ModelID" in df.columns:
        if DEPMAP_DEFAULT in df.columns:
            rows = np.flatnonzero(df[DEPMAP_DEFAULT].str.strip().str.lower().isin(("yes", "true", "1")))
        df = df.set_index("ModelID")
    names = [str(df.index[r]) for r in rows]
    _refuse_unnamed([n.strip() for n in names], path, "row",
                    lambda k: f"line {_file_line(path, int(rows[k]), ',')}")
    _refuse_duplicates([n.strip() for n in names], path, "cell line (row)")
    ent, sym, keep = [], [], []
    for j, c in enumerate(df.columns):
        m = _DEPMAP_COL.match(c)
        if m:
            sym.append(m.group(1))
            ent.append(m.group(2))
            keep.append(j)
    if not keep:
        raise BaselineError(f"{path}: no DepMap gene columns of the form 'SYMBOL (ENTREZ)' "
                            f"(first columns: {list(df.columns[:5])})")
    sub = df.iloc[:, keep]
    vals = _numeric(sub, path, list(df.index), "cell line")[rows].astype(np.float32)
    return BaselineTable(path, "DepMap", names, np.array(ent, dtype=object),
                         np.array(sym, dtype=object), vals)


def read_gdsc(path: str | Path, cell_map: dict[str, str] | None = None) -> BaselineTable:
    """GDSC basal expression TSV: ``GENE_SYMBOLS``, ``GENE_title``, ``DATA.<COSMIC id>`` (genes x cells)."""
    path = Path(path)
    _check_file(path)
    df, header = _read_table(path, "GDSC baseline file", sep="\t")
    if "GENE_SYMBOLS" not in df.columns:
        raise BaselineError(f"{path}: required column 'GENE_SYMBOLS' missing "
                            f"(columns: {list(df.columns[:5])})")
    data_cols = [c for c in df.columns if c.startswith("DATA.")]
    if not data_cols:
        raise BaselineError(f"{path}: no 'DATA.<COSMIC id>' columns")
    cells = []
    cm = cell_map or {}
    for c in data_cols:
        cosmic = c[len("DATA."):].split(".")[0]  # pandas renames a repeated X as X.1
        cells.append(cm.get(normalize_name(c), cm.get(normalize_name(cosmic), cosmic)))
    sym = df["GENE_SYMBOLS"].str.strip().to_numpy(dtype=object)
    vals = _numeric(df[data_cols], path, sym, "gene", sep="\t").T.astype(np.float32)
    data = [h for h in header if h.startswith("DATA.")]
    repeated = tuple(dict.fromkeys(h for i, h in enumerate(data) if h in data[:i]))
    return BaselineTable(path, "GDSC", cells, np.array([""] * len(sym), dtype=object), sym, vals, repeated)


def read_ccle(path: str | Path) -> BaselineTable:
    """CCLE GCT (genes x cell lines ``NAME_TISSUE``); Entrez from ``Name`` if it is ``<id>``/``<id>_at``."""

    path = Path(path)
    _check_file(path)
    try:
        g = read_gct(path)
    except L1000Error as e:
        raise BaselineError(str(e)) from e
    names = [str(r) for r in g.row_ids]
    ent = np.array([(m.group(1) if (m := _ENTREZ.match(n)) else "") for n in names], dtype=object)
    cands = ("pr_gene_symbol", "Description")
    desc_col = next((c for c in cands if c in g.row_meta.columns), None)
    sym = (g.row_meta[desc_col].fillna("").astype(str).to_numpy(dtype=object) if desc_col
           else np.array(names, dtype=object))
    cells = [str(s).split("_", 1)[0] for s in g.sample_ids]
    full: dict[str, list[str]] = {}
    for c, s in zip(cells, g.sample_ids, strict=True):
        full.setdefault(c, []).append(str(s))
    repeated = tuple(f"{c} ({' = '.join(v)})" for c, v in full.items() if len(v) > 1)  # e.g. KMH2_THYROID
    return BaselineTable(path, "CCLE", cells, ent, sym, g._matrix.astype(np.float32), repeated)


def read_generic_csv(path: str | Path) -> BaselineTable:
    """Generic genes x cell lines CSV: first column gene (Entrez ID or symbol), optional ``gene_symbol``."""
    path = Path(path)
    _check_file(path)
    df, header = _read_table(path, "baseline CSV")
    if df.shape[1] < 2:
        raise BaselineError(f"{path}: expected a gene column and at least one cell line column")
    _refuse_unnamed(header[1:], path, "column", lambda k: f"column {k + 2} of the header")
    _refuse_duplicates(header[1:], path, "cell line column")
    gid = df.iloc[:, 0].str.strip()
    sym_col = next((c for c in df.columns[1:] if c.lower() in ("gene_symbol", "symbol")), None)
    is_ent = gid.str.fullmatch(r"\d+").to_numpy()
    ent = np.where(is_ent, gid, "").astype(object)
    sym = (df[sym_col].str.strip().to_numpy(dtype=object) if sym_col
           else np.where(is_ent, "", gid).astype(object))
    cell_cols = [c for c in df.columns[1:] if c != sym_col]
    vals = _numeric(df[cell_cols], path, list(gid), "gene").T.astype(np.float32)
    return BaselineTable(path, "CSV", [str(c) for c in cell_cols], ent, sym, vals)


def read_baseline(path: str | Path, fmt: str = "auto",
                  cell_map: dict[str, str] | None = None) -> BaselineTable:
    """Read one baseline file in the given (or detected) format, apply the cell map to its names."""
    path = Path(path)
    if fmt not in FORMATS:
        raise BaselineError(f"unknown baseline format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "gdsc":
        t = read_gdsc(path, cell_map)
    else:
        t = {"depmap": read_depmap, "ccle": read_ccle, "csv": read_generic_csv}[fmt](path)
    cm = cell_map or {}
    t.cell_lines = [cm.get(normalize_name(c), c) for c in t.cell_lines]
    _leave_out_unmapped(t, fmt)
    inf = np.isinf(t.values)
    if inf.any():
        i, j = np.argwhere(inf)[0]
        gene = t.symbols[j] or t.entrez[j] or f"number {j + 1}"
        raise BaselineError(f"{path}: {int(inf.sum())} infinite expression value(s), e.g. {t.values[i, j]} "
                            f"for cell line {str(t.cell_lines[i])!r}, gene {str(gene)!r}; write a missing "
                            f"value as empty or NA (log2 of 0 is -inf: the baseline is log2(x+1))")
    to_log2(t, fmt)
    return t


def _leave_out_unmapped(t: BaselineTable, fmt: str) -> None:
    """Drop the cell lines still named by an id (module docstring) into ``t.unmapped``; all of them: error."""
    if fmt not in CELL_IDS:
        return
    pattern, what = CELL_IDS[fmt]
    ids = [bool(pattern.fullmatch(str(c).strip())) for c in t.cell_lines]
    if not any(ids):
        return
    unmapped = tuple(dict.fromkeys(str(c).strip() for c, i in zip(t.cell_lines, ids, strict=True) if i))
    if all(ids):
        others = [u for u in unmapped if _NOT_MODEL_IDS.fullmatch(u)] if fmt == "depmap" else []
        how = ("DepMap's Model.csv (--model) or a --cell-map CSV (source_name,cell_line)" if not others else
               f"a --cell-map CSV (source_name,cell_line): {others[0]!r} is a DepMap profile (PR-) or "
               f"sequencing (CDS-) id, which Model.csv does not map; or use DepMap's expression file of "
               f"ModelIDs (ACH-) with --model")
        raise BaselineError(f"{t.path}: none of its {plural(len(unmapped), what)} ({', '.join(unmapped[:5])}"
                            f"{', ...' if len(unmapped) > 5 else ''}) is mapped to a cell line name; give "
                            f"{how}")
    keep = ~np.asarray(ids)
    t.cell_lines = [c for c, k in zip(t.cell_lines, keep, strict=True) if k]
    t.values = t.values[keep]
    t.unmapped = unmapped
    t.repeated = tuple(r for r in t.repeated if r.removeprefix("DATA.") not in unmapped)  # none of them kept


LINEAR_MAX = 100.0  # log2 expression (RMA, log2(TPM+1), L1000 Level 3) stays below ~20; above 100: linear


def to_log2(t: BaselineTable, fmt: str) -> None:
    """Put ``t`` on the log2 scale of the L1000 profiles and the other sources, and say so in ``t.scale``.

    A source whose values exceed :data:`LINEAR_MAX` is on a linear scale (RPKM, TPM, counts): the CCLE
    RNA-seq GCT (``CCLE_RNAseq_genes_rpkm_*.gct``, linear RPKM) becomes log2(RPKM+1), the transform
    DepMap publishes its RNA-seq with (log2(TPM+1)); any other
    linear source is an error (its unit is not known here, so no transform is guessed). Log2 sources are
    left as they are.
    """
    finite = t.values[np.isfinite(t.values)]
    if not finite.size:
        return
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= LINEAR_MAX:
        t.scale = f"as in the file (log2 scale: values {lo:.3g} to {hi:.3g})"
        return
    if fmt != "ccle":
        raise BaselineError(f"{t.path}: values up to {hi:.6g}: a linear scale (RPKM, TPM or counts; log2 "
                            f"expression stays below {LINEAR_MAX:g}), while the L1000 profiles are log2 and "
                            f"a cube's baseline must match them; convert the file to log2(x+1) first (as "
                            f"DepMap's *TPMLogp1* files are)")
    if lo < 0:
        raise BaselineError(f"{t.path}: values from {lo:.6g} to {hi:.6g}: linear (above {LINEAR_MAX:g}) "
                            f"but negative, so neither log2 nor RPKM; give the CCLE RNA-seq RPKM GCT or a "
                            f"log2 file")
    t.values = np.log2(t.values + np.float32(1.0))
    t.scale = (f"log2(x+1) of the file's linear values (CCLE RNA-seq RPKM, {lo:.3g} to {hi:.6g}), to match "
               f"the log2 L1000 profiles")


@dataclass
class BaselineMatch:
    """Baseline profiles aligned to the L1000 genes: per cell line a [n_sources_present, G] array."""

    profiles: dict[str, np.ndarray]  # cube cell line name -> [n_rep, G]
    gene_mask: np.ndarray  # [G_l1000] bool, genes found in every source
    matched: dict[str, int]  # source path -> number of its cell lines matched to L1000 cell lines
    n_cells: dict[str, int]  # source path -> number of its cell lines
    sources: list[str]
    collapsed: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # path -> (kept, dropped) names
    repeated_genes: dict[str, list[str]] = field(default_factory=dict)  # path -> kept genes of several rows


def gene_columns(table: BaselineTable, entrez: Sequence[str], symbols: Sequence[str]) -> np.ndarray:
    """Column index in ``table`` for each L1000 gene (-1 if absent): Entrez first, symbol fallback. A column
    serves one L1000 gene at most: the symbol fallback never takes a column another gene's Entrez ID (or an
    earlier gene's symbol) matched, so no two genes of the cube share one baseline gene's values."""
    by_ent: dict[str, int] = {}
    by_sym: dict[str, int] = {}
    for j, (e, s) in enumerate(zip(table.entrez, table.symbols, strict=True)):
        if e and e not in by_ent:
            by_ent[e] = j
        key = str(s).upper()
        if s and key not in by_sym:
            by_sym[key] = j
    out = np.array([by_ent.get(str(e), -1) for e in entrez], dtype=np.int64)
    taken = set(out[out >= 0].tolist())
    for i, s in enumerate(symbols):
        if out[i] < 0 and s:
            j = by_sym.get(str(s).upper(), -1)
            if j >= 0 and j not in taken:
                out[i] = j
                taken.add(j)
    return out


def repeated_genes(table: BaselineTable, col: np.ndarray, entrez: Sequence[str], symbols: Sequence[str],
                   mask: np.ndarray) -> list[str]:
    """The kept L1000 genes (``mask``) whose matched id (Entrez ID, else symbol) names several rows of
    ``table``, as ``'ATF1 (2 rows)'``: the first row is used (:func:`gene_columns`)."""
    ent = pd.Series(table.entrez).value_counts()
    sym = pd.Series([str(x).upper() for x in table.symbols]).value_counts()
    out = []
    for i in np.flatnonzero(mask):
        j = int(col[i])
        by_ent = bool(table.entrez[j]) and table.entrez[j] == str(entrez[i])
        n = int(ent[table.entrez[j]]) if by_ent else int(sym[str(table.symbols[j]).upper()])
        if n > 1:
            out.append(f"{symbols[i] or entrez[i]} ({n} rows)")
    return out


def match_baseline(tables: Sequence[BaselineTable], l1000_cells: Sequence[str], entrez: Sequence[str],
                   symbols: Sequence[str]) -> BaselineMatch:
    """Align sources to L1000 genes and cell names. Union of cell lines; one replicate per source holding it.

    Genes kept are those found in every source; cell lines whose :func:`cell_line_key` equals an L1000
    ``cell_id``'s take that name, the others keep their (mapped) source name. Of the names of one key in one
    source the first is kept and the others are reported in ``collapsed``.
    """
    l1000_key = {cell_line_key(c): c for c in l1000_cells}
    cols = [gene_columns(t, entrez, symbols) for t in tables]
    gene_mask = np.all(np.stack([c >= 0 for c in cols]), axis=0) if cols else np.zeros(len(entrez), bool)
    if gene_mask.sum() < 2:  # the benchmark's scores are correlations across genes
        names = ", ".join(str(t.path) for t in tables)
        some = [str(e) for e in entrez[:3]]
        raise BaselineError(f"{'no genes' if not gene_mask.any() else 'only 1 gene'} in common between the "
                            f"L1000 genes ({len(entrez)}, e.g. {some}) and baseline {names} (matched by "
                            f"Entrez ID, then symbol); the cube needs at least 2")
    profiles: dict[str, list[np.ndarray]] = {}
    matched, n_cells = {}, {}
    display: dict[str, str] = {}
    collapsed: dict[str, list[tuple[str, str]]] = {}
    repeated: dict[str, list[str]] = {}
    for t, c in zip(tables, cols, strict=True):
        seen: dict[str, str] = {}
        n_match = 0
        for i, name in enumerate(t.cell_lines):
            key = cell_line_key(name)
            if not key:
                raise BaselineError(f"{t.path}: cell line name {name!r} has no letter or digit, so it "
                                    f"matches no cell line (names are compared by their letters and "
                                    f"digits); rename it (or map it with --cell-map)")
            if key in seen and seen[key] != str(name):
                collapsed.setdefault(str(t.path), []).append((seen[key], str(name)))
            if key in seen:
                continue
            seen[key] = str(name)
            if key in l1000_key:
                n_match += 1
                display[key] = l1000_key[key]
            else:
                display.setdefault(key, str(name))
            profiles.setdefault(key, []).append(t.values[i, c[gene_mask]])
            row = profiles[key][-1]
            if not np.isfinite(row).all():
                j = int(np.flatnonzero(~np.isfinite(row))[0])
                raise BaselineError(f"{t.path}: cell line {name!r} has a missing or infinite value "
                                    f"({row[j]}) for gene {str(np.asarray(entrez)[gene_mask][j])!r}")
        matched[str(t.path)] = n_match
        n_cells[str(t.path)] = len(seen)
        genes_twice = repeated_genes(t, c, entrez, symbols, gene_mask)
        if genes_twice:
            repeated[str(t.path)] = genes_twice
    return BaselineMatch(profiles={display[k]: np.stack(v) for k, v in profiles.items()}, gene_mask=gene_mask,
                         matched=matched, n_cells=n_cells, sources=[t.source for t in tables],
                         collapsed=collapsed, repeated_genes=repeated)
