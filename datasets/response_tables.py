"""Readers of the public drug-response tables: GDSC fitted dose response, CTRPv2 curves, PRISM secondary
screen.

Each reader returns a :class:`ResponseTable`: one row per measurement (the cell line's id and name as the file
writes them, the drug's name, and the value converted so that **higher = more sensitive**), rows without a
value dropped and counted. Layouts followed (column names checked against the releases' published headers and
code that reads them; only the columns named here are read, others may come and go):

- ``gdsc``: GDSC release 8.5 ``GDSC1_fitted_dose_response_27Oct23.csv`` / ``GDSC2_...csv`` (8.2 ``25Feb20``
  and 8.4 ``24Jul22`` have the same columns): comma-separated, ``DATASET, NLME_RESULT_ID, NLME_CURVE_ID,
  COSMIC_ID, CELL_LINE_NAME, SANGER_MODEL_ID, TCGA_DESC, DRUG_ID, DRUG_NAME, PUTATIVE_TARGET, PATHWAY_NAME,
  COMPANY_ID, WEBRELEASE, MIN_CONC, MAX_CONC, LN_IC50, AUC, RMSE, Z_SCORE``; needed: ``COSMIC_ID``,
  ``CELL_LINE_NAME``, ``DRUG_NAME`` and the measure's column. The ``.xlsx`` sheets are refused (save as CSV).
- ``ctrp``: CTRPv2.0 (``CTRPv2.0_2015_ctd2_ExpandedDataset.zip`` of the CTD2 portal), tab-separated:
  ``v20.data.curves_post_qc.txt`` (``experiment_id, master_cpd_id, area_under_curve``, ...) and, in the same
  directory, ``v20.meta.per_experiment.txt`` (``experiment_id -> master_ccl_id``; an experiment is one cell
  line, listed once per its rows), ``v20.meta.per_cell_line.txt`` (``master_ccl_id -> ccl_name``) and
  ``v20.meta.per_compound.txt`` (``master_cpd_id -> cpd_name``).
- ``prism``: DepMap PRISM Repurposing 19Q4 secondary screen ``secondary-screen-dose-response-curve-
  parameters.csv``: comma-separated, ``broad_id, depmap_id, ccle_name, screen_id, upper_limit, lower_limit,
  slope, r2, auc, ec50, ic50, name, moa, target, ..., passed_str_profiling, row_name``; needed:
  ``depmap_id``, ``ccle_name``, ``name`` and the measure's column. Rows whose ``passed_str_profiling`` is
  FALSE (the cell line's identity failed STR profiling) are dropped and counted.

Measures (:data:`MEASURES`) and how each becomes higher = more sensitive:

- ``auc``: GDSC ``AUC`` and PRISM ``auc`` are areas under the fitted viability curve as a fraction of the
  tested dose range (lower = more sensitive): stored ``1 - AUC`` (the activity area, ``1 - auc``). CTRP's
  ``area_under_curve`` is the area under the viability curve over its (compound-specific) log concentration
  range, not a fraction (lower = more sensitive): stored ``-area_under_curve``.
- ``ln_ic50``: GDSC ``LN_IC50`` (natural log of the IC50 in micromolar) stored negated; PRISM ``ic50``
  (micromolar) stored as ``-ln(ic50)`` (so both read ``-ln(IC50 / uM)``; an IC50 <= 0 is an error, an
  infinite one, a curve that never reaches 50%, counts as not measured).
- ``z_score`` (GDSC only): ``Z_SCORE``, the LN_IC50's z-score across the drug's cell lines, stored negated.

Values: empty and the NA tokens of datasets.l1000 are "not measured" (dropped, counted); anything else that
is not a number is an error naming the file, line, column and value.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.baseline import _check_text, _file_line
from datasets.errors import CubeError
from datasets.l1000 import NA_TOKENS
from datasets.text_tables import undecodable

FORMATS = ("auto", "gdsc", "ctrp", "prism")
CTRP_CURVES = "v20.data.curves_post_qc.txt"
CTRP_EXPERIMENTS = "v20.meta.per_experiment.txt"
CTRP_CELL_LINES = "v20.meta.per_cell_line.txt"
CTRP_COMPOUNDS = "v20.meta.per_compound.txt"
RELEASES = {"gdsc": "GDSC release 8.5 fitted dose response (GDSC1/GDSC2, 27Oct23 layout)",
            "ctrp": "CTRPv2.0 (CTRPv2.0_2015_ctd2_ExpandedDataset, curves post QC)",
            "prism": "PRISM Repurposing 19Q4 secondary screen (dose-response curve parameters)"}


class ResponseError(CubeError):
    """Bad drug-response input; the message names the file, column, line or value and what to do."""


@dataclass(frozen=True)
class Measure:
    """One measure of one format: the file's column and its conversion to higher = more sensitive."""

    name: str  # auc | ln_ic50 | z_score
    column: str  # the file's column
    stored: str  # what the cube holds, e.g. "1 - AUC"
    units: str
    conversion: str  # the source's direction and what was done to it
    convert: Callable[[np.ndarray], np.ndarray]


def _one_minus(v: np.ndarray) -> np.ndarray:
    return 1.0 - v


def _negated(v: np.ndarray) -> np.ndarray:
    return -v


def _minus_ln(v: np.ndarray) -> np.ndarray:
    return -np.log(v)


_FRACTION = "fraction of the tested dose range's area (about 0-1)"
MEASURES: dict[str, dict[str, Measure]] = {
    "gdsc": {
        "auc": Measure("auc", "AUC", "1 - AUC", _FRACTION,
                       "GDSC AUC: area under the fitted viability curve, lower = more sensitive; stored "
                       "1 - AUC",
                       _one_minus),
        "ln_ic50": Measure("ln_ic50", "LN_IC50", "-LN_IC50", "-ln(IC50 / uM)",
                           "GDSC LN_IC50: ln of the IC50 in uM, lower = more sensitive; stored negated",
                           _negated),
        "z_score": Measure("z_score", "Z_SCORE", "-Z_SCORE", "standard deviations over the drug's cell lines",
                           "GDSC Z_SCORE: z-score of LN_IC50, lower = more sensitive; stored negated",
                           _negated)},
    "ctrp": {
        "auc": Measure("auc", "area_under_curve", "-area_under_curve",
                       "area under the viability curve over the compound's log concentration range, negated",
                       "CTRPv2 area_under_curve: area under the viability curve, lower = more sensitive; "
                       "stored negated", _negated)},
    "prism": {
        "auc": Measure("auc", "auc", "1 - auc", _FRACTION,
                       "PRISM auc: area under the fitted viability curve, lower = more sensitive; stored "
                       "1 - auc",
                       _one_minus),
        "ln_ic50": Measure("ln_ic50", "ic50", "-ln(ic50)", "-ln(IC50 / uM)",
                           "PRISM ic50 in uM, lower = more sensitive; stored -ln(ic50)", _minus_ln)},
}
DEFAULT_MEASURE = "auc"


@dataclass
class ResponseTable:
    """One response file's measurements (module docstring), one row each."""

    fmt: str  # gdsc | ctrp | prism
    release: str
    files: tuple[Path, ...]  # the file, then (CTRP) its metadata files
    measure: Measure
    cell_id: np.ndarray  # [rows] str: COSMIC_ID (GDSC), depmap_id (PRISM), "" (CTRP)
    cell_name: np.ndarray  # [rows] str: CELL_LINE_NAME, ccle_name without its tissue suffix, ccl_name
    drug: np.ndarray  # [rows] str, as the file writes it
    value: np.ndarray  # [rows] float64, converted: higher = more sensitive
    n_missing: int  # rows without a value (dropped)
    notes: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------ reading text
def _check_file(path: Path) -> None:
    if not path.exists():
        raise ResponseError(f"{path}: response file not found")
    if not path.is_file():
        raise ResponseError(f"{path}: not a file")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK\x03\x04"):
        raise ResponseError(f"{path}: an Excel .xlsx (or zip) file; open it and save the sheet as CSV (GDSC "
                            f"publishes the same table as CSV: pertvae-bench fetch gdsc2-response), or unzip "
                            f"it first")
    try:
        _check_text(path, "response file")
    except CubeError as e:  # baseline's error type: one message, this reader's type
        raise ResponseError(str(e)) from None


def _header(path: Path, sep: str) -> list[str]:
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        return [h.strip() for h in next(csv.reader(fh, delimiter=sep), [])]


def _columns(path: Path, sep: str, need: Sequence[str], what: str, optional: Sequence[str] = ()
             ) -> pd.DataFrame:
    """The ``need`` (and present ``optional``) columns of a text table as stripped strings; a missing column
    or a malformed table is one ResponseError naming the file."""
    _check_file(path)
    header = _header(path, sep)
    missing = [c for c in need if c not in header]
    if missing:
        raise ResponseError(f"{path}: {what} needs column(s) {', '.join(missing)} (found: "
                            f"{', '.join(header[:12]) or 'no header'}{', ...' if len(header) > 12 else ''})")
    cols = list(dict.fromkeys([*need, *(c for c in optional if c in header)]))
    try:
        df = pd.read_csv(path, sep=sep, usecols=cols, dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.ParserError as e:
        raise ResponseError(f"{path}: malformed {what}: {str(e).strip().splitlines()[-1]} (ragged "
                            f"table?)") from None
    except UnicodeDecodeError:
        raise ResponseError(f"{path}: not UTF-8 text at {undecodable(path)}; save the {what} as UTF-8 (e.g. "
                            f"iconv -f LATIN1 -t UTF-8)") from None
    except ValueError as e:
        raise ResponseError(f"{path}: cannot read as a text {what}: {e}") from None
    return df.apply(lambda s: s.str.strip())


def _line(path: Path, row: object, sep: str) -> int:
    """The file line of data row ``row`` (its label in the frame read: blank lines and rows dropped since
    are counted, as pandas skips them; line 1 is the header)."""
    return _file_line(path, int(row), sep)


def _numbers(df: pd.DataFrame, col: str, path: Path, sep: str = ",") -> np.ndarray:
    """float64 values of ``col``: NA tokens -> NaN; anything else non-numeric is an error naming the line
    (line 1 is the header)."""
    raw = df[col].to_numpy(dtype=object)
    na = np.isin(raw, list(NA_TOKENS))
    vals = pd.to_numeric(pd.Series(np.where(na, "", raw)), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(np.isnan(vals) & ~na)
    if len(bad):
        i = int(bad[0])
        line = _line(path, df.index[i], sep)
        raise ResponseError(f"{path}: column {col!r}, line {line}: {raw[i]!r} is not a number ({len(bad)} "
                            f"such value(s)); fix or empty them (empty = not measured)")
    return vals


def _convert(m: Measure, vals: np.ndarray, path: Path, rows: np.ndarray,
             sep: str) -> tuple[np.ndarray, list[str]]:
    """Converted values and notes; an IC50 <= 0 is an error (naming the line of data row ``rows[i]``),
    infinite values are not measured."""
    notes = []
    if m.convert is _minus_ln and (vals <= 0).any():
        i = int(np.flatnonzero(vals <= 0)[0])
        line = _line(path, rows[i], sep)
        raise ResponseError(f"{path}: column {m.column!r}, line {line}: IC50 {vals[i]:g} is not a positive "
                            f"concentration")
    inf = np.isinf(vals)
    if inf.any():
        notes.append(f"{int(inf.sum())} infinite {m.column} value(s) counted as not measured")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = m.convert(np.where(inf, np.nan, vals))
    return out, notes


def _measure(fmt: str, name: str | None) -> Measure:
    name = name or DEFAULT_MEASURE
    if name not in MEASURES[fmt]:
        raise ResponseError(f"--response-measure {name!r}: the {fmt} format has {', '.join(MEASURES[fmt])}")
    return MEASURES[fmt][name]


def _table(fmt: str, files: Sequence[Path], m: Measure, cell_id: np.ndarray, cell_name: np.ndarray,
           drug: np.ndarray, raw: np.ndarray, notes: list[str], rows: np.ndarray, sep: str) -> ResponseTable:
    value, more = _convert(m, raw, files[0], rows, sep)
    missing = np.isnan(value)
    unnamed = ~missing & ((drug == "") | ((cell_name == "") & (cell_id == "")))
    if unnamed.any():
        more.append(f"{int(unnamed.sum())} row(s) with a value but no drug or cell line name dropped")
    keep = ~missing & ~unnamed
    return ResponseTable(fmt, RELEASES[fmt], tuple(files), m, cell_id[keep].astype(object),
                         cell_name[keep].astype(object), drug[keep].astype(object), value[keep],
                         int(missing.sum()), tuple(notes + more))


# ----------------------------------------------------------------------------------------------- readers
def read_gdsc(path: str | Path, measure: str | None = None) -> ResponseTable:
    """GDSC fitted dose response CSV (module docstring)."""
    path = Path(path)
    m = _measure("gdsc", measure)
    df = _columns(path, ",", ("COSMIC_ID", "CELL_LINE_NAME", "DRUG_NAME", m.column),
                  "GDSC fitted dose response")
    cosmic = np.asarray([c.removesuffix(".0") for c in df["COSMIC_ID"]], dtype=object)
    return _table("gdsc", [path], m, cosmic, df["CELL_LINE_NAME"].to_numpy(dtype=object),
                  df["DRUG_NAME"].to_numpy(dtype=object), _numbers(df, m.column, path), [],
                  df.index.to_numpy(), ",")


def read_prism(path: str | Path, measure: str | None = None) -> ResponseTable:
    """PRISM secondary-screen dose-response curve parameters CSV (module docstring)."""
    path = Path(path)
    m = _measure("prism", measure)
    df = _columns(path, ",", ("depmap_id", "ccle_name", "name", m.column), "PRISM secondary screen",
                  optional=("passed_str_profiling",))
    raw = _numbers(df, m.column, path)
    notes = []
    if "passed_str_profiling" in df.columns:
        failed = df["passed_str_profiling"].str.upper().isin(("FALSE", "F", "0")).to_numpy()
        if failed.any():
            notes.append(f"{int(failed.sum())} row(s) of cell lines that failed STR profiling dropped")
            df, raw = df[~failed], raw[~failed]
    names = np.asarray([n.split("_", 1)[0] for n in df["ccle_name"]], dtype=object)  # A375_SKIN -> A375
    return _table("prism", [path], m, df["depmap_id"].to_numpy(dtype=object), names,
                  df["name"].to_numpy(dtype=object), raw, notes, df.index.to_numpy(), ",")


def _lookup(path: Path, key: str, value: str, what: str) -> dict[str, str]:
    """{key: value} of a CTRP metadata file; a key with two different values is an error."""
    df = _columns(path, "\t", (key, value), what).drop_duplicates()
    dup = df[key].duplicated(keep=False)
    if dup.any():
        k = df[key][dup].iloc[0]
        vals = ", ".join(repr(v) for v in df[value][df[key] == k])
        raise ResponseError(f"{path}: {key} {k!r} has several {value} values ({vals}); one is expected")
    return dict(zip(df[key], df[value], strict=True))


def read_ctrp(path: str | Path, measure: str | None = None) -> ResponseTable:
    """CTRPv2 ``v20.data.curves_post_qc.txt`` with its metadata files beside it (module docstring)."""
    path = Path(path)
    m = _measure("ctrp", measure)
    df = _columns(path, "\t", ("experiment_id", "master_cpd_id", m.column), "CTRPv2 curves file")
    metas = [path.parent / n for n in (CTRP_EXPERIMENTS, CTRP_CELL_LINES, CTRP_COMPOUNDS)]
    absent = [p.name for p in metas if not p.is_file()]
    if absent:
        raise ResponseError(f"{path}: CTRPv2 metadata {', '.join(absent)} missing beside it (in "
                            f"{path.parent}); unzip all of CTRPv2.0_2015_ctd2_ExpandedDataset.zip there "
                            f"(pertvae-bench fetch ctrpv2 does)")
    experiment = _lookup(metas[0], "experiment_id", "master_ccl_id", "CTRPv2 per-experiment metadata")
    cell = _lookup(metas[1], "master_ccl_id", "ccl_name", "CTRPv2 per-cell-line metadata")
    compound = _lookup(metas[2], "master_cpd_id", "cpd_name", "CTRPv2 per-compound metadata")
    for col, table, meta in (("experiment_id", experiment, metas[0]), ("master_cpd_id", compound, metas[2])):
        unknown = ~df[col].isin(list(table)).to_numpy()
        if unknown.any():
            i = int(np.flatnonzero(unknown)[0])
            line = _line(path, df.index[i], "\t")
            raise ResponseError(f"{path}: {col} {df[col].iloc[i]!r} (line {line}; {int(unknown.sum())} "
                                f"row(s) in all) is not in {meta.name}; use the metadata of the same CTRPv2 "
                                f"release")
    ccl = df["experiment_id"].map(experiment)
    orphan = ~ccl.isin(list(cell)).to_numpy()
    if orphan.any():
        k = ccl[orphan].iloc[0]
        raise ResponseError(f"{metas[0]}: master_ccl_id {k!r} is not in {metas[1].name}; use the metadata of "
                            f"the same CTRPv2 release")
    names = ccl.map(cell).to_numpy(dtype=object)
    return _table("ctrp", [path, *metas], m, np.full(len(df), "", dtype=object), names,
                  df["master_cpd_id"].map(compound).to_numpy(dtype=object),
                  _numbers(df, m.column, path, "\t"), [], df.index.to_numpy(), "\t")


READERS: dict[str, Callable[..., ResponseTable]] = {"gdsc": read_gdsc, "ctrp": read_ctrp, "prism": read_prism}


def detect_format(path: str | Path) -> str:
    """gdsc | ctrp | prism from the header (module docstring's columns)."""
    path = Path(path)
    _check_file(path)
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline()
    sep = "\t" if first.count("\t") > first.count(",") else ","
    cols = set(_header(path, sep))
    if {"experiment_id", "master_cpd_id"} <= cols:
        return "ctrp"
    if {"COSMIC_ID", "DRUG_NAME"} <= cols:
        return "gdsc"
    if {"depmap_id", "name"} <= cols:
        return "prism"
    raise ResponseError(f"{path}: cannot tell the response format from its header {first[:80].strip()!r} "
                        f"(GDSC has COSMIC_ID and DRUG_NAME, CTRPv2 experiment_id and master_cpd_id, PRISM "
                        f"depmap_id and name); pass --response-format gdsc|ctrp|prism")


def read_response(path: str | Path, fmt: str = "auto", measure: str | None = None) -> ResponseTable:
    """Read one response file in the given (or detected) format with the given measure (default auc)."""
    if fmt not in FORMATS:
        raise ResponseError(f"unknown response format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(path)
    return READERS[fmt](path, measure)

