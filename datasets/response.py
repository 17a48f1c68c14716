"""Drug response in the cube: a response table (datasets.response_tables) matched to the cube's drugs and cell
lines, stored as ``response[cell_line, condition]`` (datasets.cube), and one drug's responses read back.

Matching, as the L1000 build matches names:

- drugs: each cube drug is looked up among the file's drug names by :func:`datasets.studies.resolve_drugs`
  (the name itself, the name ignoring case and punctuation, a pert_info alias, the synonym table). A cube drug
  the file does not have, or whose cell lines the file does not have, is an error naming it (and the file's
  closest names), unless ``partial`` (``build --response-partial``): then it has no response (NaN).
- cell lines: a row's id (GDSC ``COSMIC_ID``, PRISM ``depmap_id``) is mapped to a name by the cell map (DepMap
  Model.csv and ``--cell-map``, as the build maps baseline names), else its name is used (cell map applied);
  the name matches the cube cell line with the same datasets.cell_names key (``HT-29`` = ``HT29``).
- several measurements of one (cube cell line, drug) (a drug screened twice, GDSC1 and GDSC2 rows of one
  name, PRISM's screens, two file names of one cell line): their **mean** is stored (after the conversion,
  so for ln_ic50 the mean of the logs) and the count is reported (:attr:`ResponseMatch.counts`). Where two
  of the file's cell lines (two ids, else two names) match one cube cell line (``KM-H2`` and ``KMH-2``, one
  key but two cell lines), the summary names them (:attr:`ResponseMatch.joined`).

For the harness: :func:`drug_response` reads one drug's responses with, per cell line, whether it has pairs
of the drug and a baseline singleton; :meth:`DrugResponse.lookup` aligns them with datasets.pairs'
``pair_cell_line`` / ``singleton_cell_line`` (NaN where a cell line has no response).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from datasets.baseline import normalize_name
from datasets.cell_names import cell_line_key
from datasets.cube import (
    CONDITION_BASELINE,
    CONDITION_CONTROL,
    RESPONSE,
    RESPONSE_DIRECTION,
    add_response,
    drugs,
)
from datasets.errors import CubeError
from datasets.response_tables import ResponseError, ResponseTable
from datasets.studies import DrugMatch, resolve_drugs

SOURCE_NAMES = {"gdsc": "GDSC", "ctrp": "CTRPv2", "prism": "PRISM"}
PARTIAL_FLAG = "--response-partial"


@dataclass
class ResponseMatch:
    """A response table matched to a cube's cell lines and conditions (module docstring)."""

    table: ResponseTable
    values: np.ndarray  # [cell_line, condition] float64 mean, NaN = none
    counts: np.ndarray  # [cell_line, condition] measurements averaged
    matches: list[DrugMatch]  # per cube drug, in cube order ("not resolved": not in the file)
    cell_lines: dict[str, str]  # the file's (mapped) cell line name -> cube cell line
    unmatched_cells: list[str]  # the file's cell line names not in the cube
    missing: list[str] = field(default_factory=list)  # cube drugs left without a response (partial)
    joined: dict[str, list[str]] = field(default_factory=dict)  # cube cell line -> the file's cell lines
    #   (ids, else names) it joins: their measurements averaged (KM-H2 and KMH-2: one key, two cell lines)

    def drug_cells(self, k: int) -> int:
        """Cube cell lines with a response for condition ``k``."""
        return int((~np.isnan(self.values[:, k])).sum())


def file_cell_names(table: ResponseTable, cell_map: dict[str, str]) -> np.ndarray:
    """Each row's cell line name: its id through the cell map, else its name (through the cell map). Computed
    once per distinct (id, name): a PRISM file has hundreds of thousands of rows."""
    pairs = pd.MultiIndex.from_arrays([table.cell_id.astype(str), table.cell_name.astype(str)])
    codes, uniq = pd.factorize(pairs)

    def name_of(cid: str, name: str) -> str:
        mapped = cell_map.get(normalize_name(cid)) if cid else None
        return mapped or cell_map.get(normalize_name(name), name) or cid

    return np.asarray([name_of(c, n) for c, n in uniq], dtype=object)[codes]


def resolve_response_drugs(table: ResponseTable, cube_drugs: Sequence[str],
                           pert_info: str | Path | None = None) -> list[DrugMatch]:
    """Each cube drug among the file's drug names (module docstring); "not resolved" where absent. A name
    that finds two of the file's drugs is an error."""
    names = sorted({str(d) for d in table.drug})
    hint = f"the response file {table.files[0].name} writes one drug two ways: give its rows one name"
    return [resolve_drugs([d], names, pert_info, target=f"{SOURCE_NAMES[table.fmt]} drug name",
                          ambiguous_hint=hint)[0] for d in cube_drugs]  # one at a time: two cube drugs may
    #                                                                      name one compound


def _absent(table: ResponseTable, drugs_: Sequence[str], why: str) -> ResponseError:
    names = sorted({str(d) for d in table.drug})
    hints = []
    for d in drugs_[:5]:
        close = difflib.get_close_matches(d, names, n=3, cutoff=0.6)
        hints.append(f"{d!r}" + (f" (closest: {', '.join(close)})" if close else ""))
    return ResponseError(f"{table.files[0]}: {why} for cube drug(s) {', '.join(hints)}"
                         f"{f' and {len(drugs_) - 5} more' if len(drugs_) > 5 else ''}; check the names "
                         f"(synonyms: --pert-info), use another response file, or build without their "
                         f"responses ({PARTIAL_FLAG})")


def check_drugs(table: ResponseTable, cube_drugs: Sequence[str], pert_info: str | Path | None = None,
                partial: bool = False) -> list[DrugMatch]:
    """The cube drugs' matches; a drug the file does not have is an error unless ``partial``. Cheap: run it
    before the long L1000 read."""
    matches = resolve_response_drugs(table, cube_drugs, pert_info)
    lost = [m.requested for m in matches if m.via == "not resolved"]
    if lost and not partial:
        raise _absent(table, lost, "no response rows")
    return matches


def match_response(table: ResponseTable, cells: Sequence[str], conditions: Sequence[str],
                   cell_map: dict[str, str] | None = None, pert_info: str | Path | None = None,
                   partial: bool = False) -> ResponseMatch:
    """The table on the cube's axes: per (cell line, condition) the mean of its measurements (module
    docstring). Errors: no cell line of the file in the cube; a drug with no response (unless ``partial``)."""
    cells = [str(c) for c in cells]
    conditions = [str(c) for c in conditions]
    cube_drugs = [c for c in conditions if c not in (CONDITION_CONTROL, CONDITION_BASELINE)]
    matches = check_drugs(table, cube_drugs, pert_info, partial)
    names = file_cell_names(table, cell_map or {})
    key_to_cell = {cell_line_key(c): i for i, c in enumerate(cells)}
    codes, uniq = pd.factorize(names)
    row_cell = np.asarray([key_to_cell.get(cell_line_key(n), -1) for n in uniq], dtype=np.int64)[codes]
    matched = {str(n): cells[i] for n, i in zip(names, row_cell, strict=True) if i >= 0}
    if not matched:
        some = ", ".join(sorted(set(names.astype(str)))[:5])
        raise ResponseError(f"{table.files[0]}: none of its cell lines ({some}, ...) is a cube cell line "
                            f"(compared ignoring case and punctuation); map their ids with --model (DepMap "
                            f"Model.csv) or --cell-map")
    total = np.zeros((len(cells), len(conditions)))
    counts = np.zeros((len(cells), len(conditions)), dtype=np.int64)
    drug_rows: dict[str, list[int]] = {}
    for m in matches:
        if m.via != "not resolved":
            drug_rows.setdefault(m.pert_iname, []).append(conditions.index(m.requested))
    for name, ks in drug_rows.items():
        rows = np.flatnonzero((table.drug == name) & (row_cell >= 0))
        for k in ks:
            np.add.at(total[:, k], row_cell[rows], table.value[rows])
            np.add.at(counts[:, k], row_cell[rows], 1)
    with np.errstate(invalid="ignore"):
        values = np.where(counts > 0, total / np.maximum(counts, 1), np.nan)
    unmatched = sorted({str(n) for n, i in zip(names, row_cell, strict=True) if i < 0})
    out = ResponseMatch(table, values, counts, matches, matched, unmatched,
                        joined=_joined(table, row_cell, cells))
    none = [d for d in cube_drugs if out.drug_cells(conditions.index(d)) == 0]
    if none and not partial:  # check_drugs refused those not in the file: these are, without cube cell lines
        raise _absent(table, none, "no response for any cube cell line")
    out.missing = none
    return out


def _joined(table: ResponseTable, row_cell: np.ndarray, cells: Sequence[str]) -> dict[str, list[str]]:
    """Cube cell lines that two or more of the file's cell lines (by id where the file has ids, else by
    name) were matched to, with those cell lines as ``'NAME (ID)'``."""
    ident = pd.Series([f"{n} ({i})" if i else str(n) for i, n in zip(table.cell_id, table.cell_name,
                                                                       strict=True)])
    keyed = pd.Series([str(i) if i else str(n) for i, n in zip(table.cell_id, table.cell_name, strict=True)])
    df = pd.DataFrame({"cell": row_cell, "key": keyed, "ident": ident})
    df = df[df["cell"] >= 0].drop_duplicates("key")
    many = df.groupby("cell")["ident"].agg(list)
    return {cells[int(c)]: sorted(v) for c, v in many.items() if len(v) > 1}


def response_attrs(match: ResponseMatch) -> dict[str, str]:
    """The response variable's attrs: measure, units, direction, source, and how they were made."""
    t = match.table
    several = match.counts > 1
    return {
        "measure": t.measure.stored,
        "units": t.measure.units,
        "direction": RESPONSE_DIRECTION,
        "source": "; ".join(p.name for p in t.files),
        "format": t.fmt,
        "release": t.release,
        "conversion": t.measure.conversion,
        "aggregation": f"mean of the measurements of one cell line and drug ({int(several.sum())} cell "
                       f"line-drug pairs had several, up to {int(match.counts.max(initial=0))})",
        "drug_names": "; ".join(f"{m.requested}={m.pert_iname}" for m in match.matches
                                if m.via != "not resolved"),
    }


def attach_response(ds: xr.Dataset, match: ResponseMatch) -> xr.Dataset:
    """``ds`` with the matched response (datasets.cube.add_response)."""
    return add_response(ds, match.values, response_attrs(match))


def render(match: ResponseMatch, ds: xr.Dataset) -> str:
    """The build's response summary: measure, drugs (how matched, cell lines with a response, paired and
    singletons), cell lines matched and not, repeated measurements."""
    t = match.table
    conds = [str(c) for c in ds["condition"].values]
    control, single = _has_profile(ds, CONDITION_CONTROL), _has_profile(ds, CONDITION_BASELINE)
    lines = [f"response: {SOURCE_NAMES[t.fmt]} {t.measure.column} stored as {t.measure.stored} "
             f"({RESPONSE_DIRECTION}) from {t.files[0].name} ({len(t.value)} measurements"
             f"{f', {t.n_missing} rows without a value dropped' if t.n_missing else ''})"]
    lines += [f"  {n}" for n in t.notes]
    for m in match.matches:
        if m.via == "not resolved":
            lines.append(f"  {m.requested}: not in the file: no response ({PARTIAL_FLAG})")
            continue
        k = conds.index(m.requested)
        has = ~np.isnan(match.values[:, k])
        paired = has & control & _has_profile(ds, m.requested)
        how = "" if m.via == m.target else f" ({m.via})"
        lines.append(f"  {m.requested} = {m.pert_iname!r}{how}: {int(has.sum())} cell lines with a response "
                     f"({int(paired.sum())} with pairs, {int((has & single).sum())} with a baseline "
                     f"singleton)")
    n_file = len(match.cell_lines) + len(match.unmatched_cells)
    lines.append(f"  cell lines: {len(match.cell_lines)} of the file's {n_file} matched to cube cell lines"
                 + (f"; not in the cube: {', '.join(match.unmatched_cells[:5])}"
                    f"{', ...' if len(match.unmatched_cells) > 5 else ''}" if match.unmatched_cells else ""))
    for cell, who in match.joined.items():
        lines.append(f"  {cell}: the file's cell lines {' and '.join(who)} matched it (one name key), their "
                     f"measurements averaged; if they are different cell lines, map one of them elsewhere "
                     f"with --cell-map")
    several = match.counts > 1
    if several.any():
        lines.append(f"  several measurements averaged for {int(several.sum())} cell line-drug pairs (up to "
                     f"{int(match.counts.max())})")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- reading it back
@dataclass(frozen=True)
class DrugResponse:
    """One drug's measured responses, cube order, with each cell line's data for the drug."""

    drug: str
    cell_line: np.ndarray  # [n] str: the cell lines with a measured response
    value: np.ndarray  # [n] float64, higher = more sensitive
    paired: np.ndarray  # [n] bool: has a fully measured control and a fully measured profile of the drug
    singleton: np.ndarray  # [n] bool: has a fully measured baseline singleton
    attrs: dict  # the response variable's attrs (measure, units, direction, source, ...)

    def lookup(self, cell_lines: Sequence[str]) -> np.ndarray:
        """float64 responses of ``cell_lines`` (e.g. DrugData.pair_cell_line), NaN where none."""
        at = dict(zip(self.cell_line.astype(str), self.value, strict=True))
        return np.asarray([at.get(str(c), np.nan) for c in cell_lines], dtype=np.float64)


def _has_profile(ds: xr.Dataset, cond: str) -> np.ndarray:
    """[cell_line] whether the cell line has a fully measured profile of ``cond`` (datasets.pairs' rule)."""
    if cond not in [str(c) for c in ds["condition"].values]:
        return np.zeros(int(ds.sizes["cell_line"]), dtype=bool)
    block = np.asarray(ds["expression"].sel(condition=cond).values)
    return (~np.isnan(block).any(axis=-1)).any(axis=-1)


def drug_response(ds: xr.Dataset, drug: str) -> DrugResponse:
    """``drug``'s responses (module docstring); reads the response and the drug's, control's and baseline's
    expression chunks. A cube without a response variable, or a condition that is no drug, is an error."""
    if RESPONSE not in ds.data_vars:
        raise CubeError(f"the cube has no drug response (no {RESPONSE!r} variable); build it with --response "
                        f"FILE or generate a synthetic cube")
    names = drugs(ds)
    if drug not in names:
        close = difflib.get_close_matches(drug, names, n=3, cutoff=0.5)
        raise CubeError(f"drug {drug!r}: not in the cube"
                        + (f"; did you mean {', '.join(close)}?" if close else ""))
    v = np.asarray(ds[RESPONSE].sel(condition=drug).values, dtype=np.float64)
    has = ~np.isnan(v)
    cells = np.asarray([str(c) for c in ds["cell_line"].values], dtype=object)
    paired = _has_profile(ds, CONDITION_CONTROL) & _has_profile(ds, drug)
    return DrugResponse(drug, cells[has], v[has], paired[has], _has_profile(ds, CONDITION_BASELINE)[has],
                        dict(ds[RESPONSE].attrs))
