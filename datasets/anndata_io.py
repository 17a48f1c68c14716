"""AnnData in and out: the cube as one row per profile, cubes built from .h5ad files, predictions as .h5ad.

The AnnData layout (what :func:`to_anndata` writes and :func:`from_anndata` reads; ``obs_keys`` maps the
field names to other obs columns, e.g. ``{"cell_line": "cell_id", "condition": "pert_iname"}``):

=========  ========  =========================================================================================
obs        required  meaning
=========  ========  =========================================================================================
cell_line  yes       cell line name (spellings of one name, ``mcf7`` / ``MCF-7`` / ``MCF7``: see below)
condition  yes       ``"control"`` (vehicle, the x1 state; another label via ``control=``, e.g. ``"DMSO"``),
                     a drug name (post-treatment, x2) or ``"baseline"`` (unpaired singletons)
replicate  no        label unique within (cell line, condition); the profiles fill the cube's replicate slots
                     0, 1, ... in the sort order of these labels (in row order when the column is absent)
dose_um    no        dose in micromolar, one value per (cell line, condition); NaN, empty or absent: none
plate      no        plate (batch) id, ``""`` or missing where unknown; absent: the cube has no ``plate``
source     no        platform, one value per condition; absent: ``"L1000"`` (``"baseline"`` for baseline)
=========  ========  =========================================================================================

var_names are the gene ids (Entrez ids as strings; ``gene_key`` takes them from a var column instead),
unique; var ``gene_symbol`` is optional (missing symbols: the id). X (or ``layers[layer]``, dense or sparse)
must be numeric, finite and on a log scale (values up to 100: counts or TPM are refused; store
log2(x+1)); NaN only with ``allow_nan=True`` (genes not measured: datasets.pairs then skips
the profile). The cube's cell line and condition order is that of categorical columns' categories (unused
ones dropped), else of first appearance; cell lines and conditions without profiles are not carried.
``uns["cube_attrs"]`` (JSON, written by :func:`to_anndata`) restores the cube's attrs, so cube -> AnnData ->
cube keeps values, labels, doses, plates, sources, attrs and the fingerprint (replicate slots are compacted:
a cube with gaps between measured replicates comes back without them). ``uns["cube_response"]`` (JSON) carries
the cube's drug response (datasets.cube ``response``): its attrs and every measured (cell line, condition,
value); :func:`from_anndata` restores it on the cube's axes.

Cell line names that differ only in case or punctuation (datasets.cell_names' key: ``mcf7``, ``MCF-7`` and
``MCF7`` are one) would be separate cell lines, and one cell line could sit in a training and a test fold:
they are refused with one error naming every clash, or merged under the spelling with the most profiles
with ``merge_cell_spellings=True`` (``build --merge-cell-spellings``; a warning line lists every merge and
the cube's ``merged_cell_spellings`` attribute records them). A condition that differs from the control
label only in case or punctuation (``dmso`` beside ``DMSO``) would be a drug made of controls: refused; so
are conditions that differ only in case or blanks (``vorinostat``, ``Vorinostat``), as datasets.l1000 refuses
such pert_inames; drug conditions that differ only in punctuation (``SN-38``, ``SN38``) are kept apart and
named in the summary (:func:`describe`).
obs names need not be unique (rows are placed by position, never by name): where they repeat, messages name
a row by its name and position (:func:`row_name`), and anndata's warning about them is not printed.

Predictions (:func:`predictions_anndata`, :func:`write_h5ad`): obs ``cell_line``, ``split``, optional
``repeat``, ``fold``, ``kind`` (``prediction`` | ``reconstruction``), ``condition`` (the drug) and any further
columns (e.g. the cube's replicate of each row's x1 and x2); var: genes (and symbols); optional layers (e.g.
the measured x2) and a structured ``uns``.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import xarray as xr

from datasets import chunk_files
from datasets.baseline import LINEAR_MAX
from datasets.cell_names import cell_line_key, resolve_spellings
from datasets.cube import (
    CONDITION_BASELINE,
    CONDITION_CONTROL,
    RESPONSE,
    CubeError,
    check_out_path,
    check_pairs,
    make_cube,
    plate_ids,
    remove_stale_temps,
    write_cube,
)
from datasets.files import available_memory, check_inputs_outside, package_version, plural, sha256_file
from datasets.pairs import PAIRING_NOTE

OBS_FIELDS = ("cell_line", "condition", "replicate", "dose_um", "plate", "source")
REQUIRED_OBS = ("cell_line", "condition")
ATTRS_KEY = "cube_attrs"
RESPONSE_KEY = "cube_response"
PREDICTION_KINDS = ("prediction", "reconstruction")
_BLOCK_VALUES = 2**24  # X values converted per block (64 MiB as float32)


def to_anndata(ds: xr.Dataset, conditions: Sequence[str] | None = None) -> ad.AnnData:
    """The cube's measured profiles (at least one non-NaN gene) as AnnData, one row per profile.

    Rows in cube order (condition, then cell line, then replicate); obs as in the module docstring
    (``plate`` only when the cube has one), var_names the gene ids with var ``gene_symbol``, X float32,
    ``uns["cube_attrs"]`` the cube's attrs as JSON (less the record of its store's chunk files,
    datasets.chunk_files: a cube written from it records its own). ``conditions``: only these (default: all).
    """
    all_conds = [str(c) for c in ds["condition"].values]
    conds = all_conds if conditions is None else [str(c) for c in conditions]
    unknown = [c for c in conds if c not in all_conds]
    if unknown:
        raise CubeError(f"conditions: {unknown} not in the cube (conditions: {', '.join(all_conds[:30])})")
    cells = np.asarray([str(c) for c in ds["cell_line"].values], dtype=object)
    source = dict(zip(all_conds, (str(s) for s in ds["source"].values), strict=True))
    has_plate = "plate" in ds.data_vars
    dose = np.asarray(ds["dose_um"].values, dtype=np.float64)
    x, cols = [], {f: [] for f in OBS_FIELDS}
    for k in conds:
        sub = ds[["expression", "plate"] if has_plate else ["expression"]].reset_coords(drop=True)
        sub = sub.sel(condition=k).compute()  # one read of the condition's chunks
        block = np.asarray(sub["expression"].values, dtype=np.float32)  # [cell, rep, gene]
        ci, ri = np.nonzero(~np.isnan(block).all(axis=-1))
        x.append(block[ci, ri])
        cols["cell_line"].append(cells[ci])
        cols["condition"].append(np.full(len(ci), k, dtype=object))
        cols["replicate"].append(ri.astype(np.int64))
        cols["dose_um"].append(dose[ci, all_conds.index(k)])
        cols["source"].append(np.full(len(ci), source[k], dtype=object))
        if has_plate:
            cols["plate"].append(plate_ids(sub["plate"].values)[ci, ri])
    obs = pd.DataFrame({
        "cell_line": pd.Categorical(np.concatenate(cols["cell_line"]), categories=list(cells)),
        "condition": pd.Categorical(np.concatenate(cols["condition"]), categories=conds),
        "replicate": np.concatenate(cols["replicate"]),
        "dose_um": np.concatenate(cols["dose_um"]),
        "source": pd.Categorical(np.concatenate(cols["source"])),
    })
    if has_plate:
        obs["plate"] = np.concatenate(cols["plate"]).astype(str)
    obs.index = pd.Index([f"{c}|{k}|{r}" for c, k, r in zip(obs["cell_line"], obs["condition"],
                                                              obs["replicate"], strict=True)])
    genes = [str(g) for g in ds["gene"].values]
    var = pd.DataFrame({"gene_symbol": [str(s) for s in ds["gene_symbol"].values]}, index=pd.Index(genes))
    attrs = {k: v for k, v in ds.attrs.items() if k != chunk_files.ATTR}
    uns = {ATTRS_KEY: json.dumps(attrs, sort_keys=True)}
    if RESPONSE in ds.data_vars:
        uns[RESPONSE_KEY] = _response_json(ds, conds)
    adata = ad.AnnData(X=np.concatenate(x, axis=0), obs=obs, var=var, uns=uns)
    if not adata.obs_names.is_unique:  # only when labels contain "|"
        adata.obs_names_make_unique()
    return adata


def _response_json(ds: xr.Dataset, conds: Sequence[str]) -> str:
    """The response's attrs and measured (cell line, condition, value) triples of ``conds``, as JSON."""
    r = ds[RESPONSE].sel(condition=list(conds)).transpose("cell_line", "condition")
    v = np.asarray(r.values, dtype=np.float64)
    ci, ki = np.nonzero(~np.isnan(v))
    cells = [str(c) for c in ds["cell_line"].values]
    return json.dumps({"attrs": dict(r.attrs), "cell_line": [cells[i] for i in ci],
                       "condition": [str(conds[k]) for k in ki], "value": [float(x) for x in v[ci, ki]]})


def _response_from_uns(uns: Mapping, cells: Sequence[str], conds: Sequence[str],
                       merged: Mapping[str, str]) -> tuple[np.ndarray | None, dict | None]:
    """``uns["cube_response"]`` on the new cube's axes (cell lines renamed by ``merged``; entries of cell
    lines or conditions the AnnData does not hold are dropped); (None, None) without one."""
    if RESPONSE_KEY not in uns:
        return None, None
    try:
        raw = json.loads(str(uns[RESPONSE_KEY]))
        triples = list(zip(raw["cell_line"], raw["condition"], raw["value"], strict=True))
        attrs = dict(raw["attrs"])
    except (ValueError, KeyError, TypeError) as e:
        raise CubeError(f"uns[{RESPONSE_KEY!r}]: not the JSON to_anndata writes (attrs, cell_line, "
                        f"condition, value; {e}); delete it (del adata.uns[{RESPONSE_KEY!r}])") from None
    ci = {c: i for i, c in enumerate(cells)}
    ki = {c: k for k, c in enumerate(conds)}
    out = np.full((len(cells), len(conds)), np.nan)
    for c, k, val in triples:
        c = merged.get(str(c), str(c))
        if c in ci and k in ki:
            if not np.isnan(out[ci[c], ki[k]]) and out[ci[c], ki[k]] != float(val):
                raise CubeError(f"uns[{RESPONSE_KEY!r}]: cell line {c!r} (merged spellings) has two "
                                f"responses to {k!r}; keep one")
            out[ci[c], ki[k]] = float(val)
    return out, attrs


def _obs_keys(obs_keys: Mapping[str, str] | None) -> dict[str, str]:
    keys = {f: f for f in OBS_FIELDS}
    for f, col in dict(obs_keys or {}).items():
        if f not in keys:
            raise CubeError(f"obs_keys: unknown field {f!r} (build --obs-key FIELD=COLUMN); fields: "
                            f"{', '.join(OBS_FIELDS)}")
        keys[f] = str(col)
    return keys


def row_name(index: pd.Index, i: int) -> str:
    """Row ``i`` as messages name it: its obs name, and its position where obs names repeat (an AnnData may
    repeat them, e.g. after concatenating two; the cube places rows by position, never by name)."""
    name = repr(index[i].item() if isinstance(index[i], np.generic) else index[i])
    return name if index.is_unique else f"{name} (position {i}: obs names repeat)"


def _labels(values: pd.Series | pd.Index, where: str, what: str) -> np.ndarray:
    """Non-empty string labels as an object array; a missing or empty one is an error naming its row."""
    arr = np.asarray(values.astype(object), dtype=object)
    bad = np.flatnonzero(pd.isna(arr) | (arr.astype(str) == ""))
    if len(bad):
        row = row_name(values.index, int(bad[0])) if isinstance(values, pd.Series) else repr(int(bad[0]))
        raise CubeError(f"{where}: {len(bad)} missing or empty value(s) (first at row {row}); every "
                        f"{what} needs one: fill them in or drop those rows")
    return np.asarray([str(v) for v in arr], dtype=object)


def _refuse_control_spellings(conds: np.ndarray, control: str, where: str) -> None:
    """A condition spelled like the control label but not equal to it would be a drug made of controls."""
    key = cell_line_key(control)
    alike = sorted({str(c) for c in set(conds) if c != control and cell_line_key(c) == key})
    if alike:
        raise CubeError(f"{where}: condition(s) {', '.join(map(repr, alike))} differ from the control label "
                        f"{control!r} only in case or punctuation and would be drugs made of controls; make "
                        f"the labels agree (or name the control label with control=, build --control)")


def _refuse_drug_spellings(conds: np.ndarray, where: str) -> None:
    """Conditions equal but for case or blanks (``vorinostat``, ``Vorinostat``) would be two drugs (or one
    selected in part): refused, as datasets.l1000 refuses such pert_inames."""
    by_key: dict[str, list[str]] = {}
    for c in pd.unique(conds):
        by_key.setdefault("".join(str(c).split()).lower(), []).append(str(c))
    clash = next((sorted(v) for v in by_key.values() if len(v) > 1), None)
    if clash:
        n = pd.Series(conds).value_counts()
        spelled = " and ".join(f"{c!r} ({plural(int(n[c]), 'profile')})" for c in clash)
        raise CubeError(f"{where}: condition written as {spelled}: one drug under two spellings would be two "
                        f"drugs; make the spellings agree")


def alike_conditions(conds: Sequence[str]) -> list[list[str]]:
    """Drug conditions of one cell_line_key (only punctuation differs: ``SN-38``, ``SN38``): kept apart, as
    punctuation can tell compounds apart, and named by :func:`describe`."""
    by_key: dict[str, list[str]] = {}
    for c in conds:
        if c not in (CONDITION_CONTROL, CONDITION_BASELINE):
            by_key.setdefault(cell_line_key(c), []).append(c)
    return [v for v in by_key.values() if len(v) > 1]


def _order(col: pd.Series, labels: np.ndarray) -> list[str]:
    """Axis order: a categorical column's categories (unused dropped), else order of first appearance."""
    seen = set(labels)
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = [str(c) for c in col.cat.categories]
        return [c for c in cats if c in seen]
    return list(dict.fromkeys(labels))


def _no_dose(col: pd.Series) -> np.ndarray:
    """Rows whose dose is left empty: missing, or text that is empty or 'nan' (a column of numbers saved as
    strings writes its NaN so); the error for a bad dose tells the user to leave it empty, so empty text
    must count as no dose."""
    text = col.astype(object).to_numpy()
    return np.asarray([pd.isna(v) or (isinstance(v, str) and v.strip().lower() in ("", "nan")) for v in text],
                      dtype=bool)


def _per_group(values: np.ndarray, group: np.ndarray) -> np.ndarray | None:
    """First row index of a group whose values differ (NaN equal to NaN), else None."""
    df = pd.DataFrame({"g": group, "v": values})
    n = df.groupby("g", sort=False)["v"].nunique(dropna=False)
    bad = n.index[n > 1]
    return None if len(bad) == 0 else int(np.flatnonzero(group == bad[0])[0])


def _replicate_slots(obs: pd.DataFrame, col: str | None, group: np.ndarray,
                     where: str) -> np.ndarray:
    """Replicate slot of each row: rank of its label within its (cell line, condition) group."""
    n = len(group)
    if col is None:
        code = np.arange(n)
    else:
        s = obs[col]
        if s.isna().any():
            row = row_name(s.index, int(np.flatnonzero(s.isna().to_numpy())[0]))
            raise CubeError(f"{where}: missing value at row {row}; give every profile a replicate label "
                            f"or drop the column (replicates then follow the row order)")
        if pd.api.types.is_numeric_dtype(s) and not isinstance(s.dtype, pd.CategoricalDtype):
            vals = s.to_numpy()
        else:
            vals = np.asarray([str(v) for v in s.to_numpy()], dtype=object)
        code = pd.Index(np.unique(vals)).get_indexer(vals)
    order = np.lexsort((code, group))
    g, c = group[order], code[order]
    first = np.r_[True, g[1:] != g[:-1]]
    dup = np.flatnonzero(~first & np.r_[False, c[1:] == c[:-1]])
    if len(dup):
        i = order[dup[0]]
        label = obs[col].iloc[i]  # a numpy scalar's repr would read np.int64(0)
        label = label.item() if isinstance(label, np.generic) else label
        raise CubeError(f"{where}: two profiles of the same cell line and condition share replicate label "
                        f"{label!r} (row {row_name(obs.index, int(i))}); make the labels unique within each "
                        f"(cell line, condition) or drop the column")
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    slot = np.empty(n, dtype=np.int64)
    slot[order] = np.arange(n) - start
    return slot


def _matrix(adata: ad.AnnData, layer: str | None) -> Any:
    if layer is not None:
        if layer not in adata.layers:
            raise CubeError(f"layers[{layer!r}]: no such layer (layers: {list(adata.layers) or 'none'}); "
                            f"name one of them or leave layer out to read X")
        return adata.layers[layer]
    if adata.X is None:
        raise CubeError("X: the AnnData has no X; give the values in X or name a layer")
    return adata.X


def _check_log_scale(top: float, xname: str) -> None:
    """Refuse values on a linear scale (counts, TPM, RPKM): the models and the change metrics compare
    profiles on a log scale, as the L1000 profiles and the baselines are (datasets.baseline.LINEAR_MAX:
    log expression stays below ~20), and a cube of counts would be scored without a word of warning."""
    if top > LINEAR_MAX:
        raise CubeError(f"{xname}: values up to {top:.6g}: a linear scale (counts, TPM or RPKM; log "
                        f"expression stays below {LINEAR_MAX:g}), while the cube's profiles are compared on "
                        f"a log scale; store log2(x+1) of them (or name a log-scale layer) and build again")


def _check_memory(shape: tuple[int, int, int, int]) -> None:
    need = int(np.prod(shape, dtype=np.float64)) * 4 + int(np.prod(shape[:3], dtype=np.float64)) * 8
    memory = available_memory()
    if need > memory:
        raise CubeError(f"the cube would need about {need / 2**30:.1f} GiB of memory ({shape[0]} cell lines "
                        f"x {shape[1]} conditions x {shape[2]} replicates x {shape[3]} genes, float32), "
                        f"more than the {memory / 2**30:.1f} GiB available; subset the AnnData first (fewer "
                        f"drugs, one dose, fewer control replicates per cell line)")


def from_anndata(adata: ad.AnnData, *, obs_keys: Mapping[str, str] | None = None, gene_key: str | None = None,
                 symbol_key: str = "gene_symbol", layer: str | None = None, control: str = CONDITION_CONTROL,
                 allow_nan: bool = False, attrs: Mapping[str, Any] | None = None,
                 merge_cell_spellings: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> xr.Dataset:
    """A cube from AnnData profiles laid out as in the module docstring (backed AnnData is read in blocks).

    ``attrs`` are merged over ``uns["cube_attrs"]``; ``merge_cell_spellings`` merges cell line spellings of
    one name instead of refusing them (module docstring); ``progress(rows_done, rows_total)`` is called
    after each block of X. Bad input raises :class:`CubeError` naming the field and what to do. With
    ``allow_nan``, a row NaN in every gene is no profile: its slot stays unmeasured (see
    :func:`empty_rows`, which ``build --h5ad`` reports).
    """
    return _from_anndata(adata, obs_keys=obs_keys, gene_key=gene_key, symbol_key=symbol_key, layer=layer,
                         control=control, allow_nan=allow_nan, attrs=attrs,
                         merge_cell_spellings=merge_cell_spellings, progress=progress)[0]


@dataclass(frozen=True)
class EmptyRows:
    """Rows of an AnnData that are NaN in every gene (``allow_nan`` only): no profile, not in the cube."""

    names: tuple[str, ...] = ()  # obs names as messages give them (row_name: repr, position if repeated)
    groups: tuple[tuple[str, str], ...] = ()  # (cell line, condition) of each

    def line(self) -> str:
        """The summary line, "" when there are none."""
        if not self.names:
            return ""
        c, k = self.groups[0]
        return (f"left out: {plural(len(self.names), 'row')} NaN in every gene, so no profile (--allow-nan; "
                f"e.g. row {self.names[0]}, {c} / {k})")


def _from_anndata(adata: ad.AnnData, *, obs_keys: Mapping[str, str] | None, gene_key: str | None,
                  symbol_key: str, layer: str | None, control: str, allow_nan: bool,
                  attrs: Mapping[str, Any] | None, merge_cell_spellings: bool,
                  progress: Callable[[int, int], None] | None) -> tuple[xr.Dataset, EmptyRows]:
    """:func:`from_anndata`, and the rows it left out as NaN in every gene."""
    keys = _obs_keys(obs_keys)
    obs, n = adata.obs, int(adata.n_obs)
    if n == 0 or adata.n_vars < 2:
        raise CubeError(f"AnnData: {n} profiles x {adata.n_vars} genes; the cube needs profiles and at least "
                        f"2 genes (the benchmark's scores are correlations across genes)")
    for f in REQUIRED_OBS:
        if keys[f] not in obs.columns:
            raise CubeError(f"obs[{keys[f]!r}]: missing column (the {f} of each profile); add it, or map "
                            f"another column with obs_keys={{{f!r}: 'COLUMN'}} (build --obs-key "
                            f"{f}=COLUMN; obs columns: {', '.join(map(str, obs.columns[:20])) or 'none'})")
    ck, kk = keys["cell_line"], keys["condition"]
    cell = _labels(obs[ck], f"obs[{ck!r}]", "profile's cell line")
    cell, merged = resolve_spellings(cell, f"obs[{ck!r}]", merge_cell_spellings)
    raw = _labels(obs[kk], f"obs[{kk!r}]", "profile's condition")
    _refuse_control_spellings(raw, control, f"obs[{kk!r}]")
    _refuse_drug_spellings(raw, f"obs[{kk!r}]")
    if control != CONDITION_CONTROL and (raw == CONDITION_CONTROL).any():
        raise CubeError(f"obs[{kk!r}]: has both {control!r} (control=) and {CONDITION_CONTROL!r}; the cube's "
                        f"control condition is {CONDITION_CONTROL!r}: rename one of them")
    cond = np.where(raw == control, CONDITION_CONTROL, raw).astype(object)
    cells = _order(obs[ck], cell)
    conds = [CONDITION_CONTROL if c == control else c for c in _order(obs[kk], raw)]
    if CONDITION_CONTROL not in conds:
        raise CubeError(f"obs[{kk!r}]: no control profile (no row with condition {control!r}); name the "
                        f"vehicle label with control='LABEL' (build --control LABEL), e.g. 'DMSO'")
    if not [c for c in conds if c not in (CONDITION_CONTROL, CONDITION_BASELINE)]:
        raise CubeError(f"obs[{kk!r}]: no drug condition (values: {', '.join(conds)}); the cube needs "
                        f"controls and profiles of at least one drug")
    ci = pd.Index(cells).get_indexer(cell)
    ki = pd.Index(conds).get_indexer(cond)
    group = ci.astype(np.int64) * len(conds) + ki
    rk = keys["replicate"] if keys["replicate"] in obs.columns else None
    slot = _replicate_slots(obs, rk, group, f"obs[{rk!r}]")

    dose = np.full((len(cells), len(conds)), np.nan)
    dk = keys["dose_um"]
    if dk in obs.columns:
        d = pd.to_numeric(obs[dk].astype(object), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero((np.isnan(d) & ~_no_dose(obs[dk])) | np.isinf(d) | (d < 0))
        if len(bad):
            v = obs[dk].iloc[bad[0]]
            raise CubeError(f"obs[{dk!r}]: value {v.item() if isinstance(v, np.generic) else v!r} at row "
                            f"{row_name(obs.index, int(bad[0]))} is "
                            f"not a finite dose >= 0 in micromolar; fix it or leave it empty (NaN: no dose)")
        row = _per_group(d, group)
        if row is not None:
            both = sorted({f"{v:g}" for v in d[group == group[row]]})
            raise CubeError(f"obs[{dk!r}]: cell line {cell[row]!r}, condition {cond[row]!r} has several "
                            f"doses ({', '.join(both)}); the cube holds one dose per cell line and "
                            f"condition: subset the AnnData to one dose first")
        dose[ci, ki] = d
    sk = keys["source"]
    source = {c: "baseline" if c == CONDITION_BASELINE else "L1000" for c in conds}
    if sk in obs.columns:
        src = _labels(obs[sk], f"obs[{sk!r}]", "profile's source (or no source column)")
        row = _per_group(src, ki)
        if row is not None:
            raise CubeError(f"obs[{sk!r}]: condition {cond[row]!r} has several sources "
                            f"({', '.join(sorted(set(src[ki == ki[row]])))}); give one source per condition")
        source.update(zip(cond, src, strict=True))
    plate = None
    pk = keys["plate"]
    if pk in obs.columns:
        p = obs[pk].astype(object).to_numpy()
        plate = np.full((len(cells), len(conds), int(slot.max()) + 1), "", dtype=object)
        plate[ci, ki, slot] = ["" if pd.isna(v) else str(v) for v in p]

    where = f"var[{gene_key!r}]" if gene_key is not None else "var_names"
    if gene_key is not None and gene_key not in adata.var.columns:
        raise CubeError(f"{where}: no such var column (var columns: "
                        f"{', '.join(map(str, adata.var.columns[:20])) or 'none'})")
    genes = _labels(adata.var[gene_key] if gene_key is not None else adata.var_names, where, "gene's id")
    u, c = np.unique(genes.astype(str), return_counts=True)
    if (c > 1).any():
        raise CubeError(f"{where}: duplicate gene id(s) {[str(v) for v in u[c > 1][:5]]}; the cube needs one "
                        f"column per gene: drop or merge the duplicate columns first")
    if symbol_key in adata.var.columns:
        sym = adata.var[symbol_key].astype(object).to_numpy()
        symbols = [g if pd.isna(s) or str(s) == "" else str(s) for g, s in zip(genes, sym, strict=True)]
    else:
        symbols = list(genes)

    mat = _matrix(adata, layer)
    xname = f"layers[{layer!r}]" if layer is not None else "X"
    if np.dtype(mat.dtype).kind not in "iuf":
        raise CubeError(f"{xname}: dtype {mat.dtype} is not numeric; the cube holds expression values: "
                        f"convert them to floats first")
    shape = (len(cells), len(conds), int(slot.max()) + 1, len(genes))
    _check_memory(shape)
    expr = np.full(shape, np.nan, dtype=np.float32)
    step = max(1, _BLOCK_VALUES // len(genes))
    empty: list[int] = []
    top = -np.inf
    for a in range(0, n, step):
        b = min(n, a + step)
        x = mat[a:b]
        with np.errstate(over="ignore"):  # out of float32 range -> inf, reported below
            x = np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float32)
        bad = np.isinf(x) if allow_nan else ~np.isfinite(x)
        if bad.any():
            r, g = np.argwhere(bad)[0]
            what = "inf" if allow_nan else "non-finite"
            hint = ("" if allow_nan else " (NaN only with build --allow-nan, from_anndata(allow_nan=True) in "
                                         "Python, where a gene was not measured)")
            raise CubeError(f"{xname}: {int(bad.sum())} {what} value(s) in rows {a}..{b - 1} (first: row "
                            f"{row_name(obs.index, int(a + r))}, gene {genes[g]!r}, value {x[r, g]}, as "
                            f"float32); the "
                            f"cube takes finite values{hint}: impute or drop those profiles or genes")
        expr[ci[a:b], ki[a:b], slot[a:b]] = x
        top = max(top, float(np.nanmax(x, initial=-np.inf)))
        if allow_nan:
            empty += (a + np.flatnonzero(np.isnan(x).all(axis=1))).tolist()
        if progress is not None:
            progress(b, n)

    _check_log_scale(top, xname)
    base: dict[str, Any] = {}
    if ATTRS_KEY in adata.uns:
        try:
            base = json.loads(str(adata.uns[ATTRS_KEY]))
            if not isinstance(base, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            raise CubeError(f"uns[{ATTRS_KEY!r}]: not a JSON object of cube attrs ({e}); delete it "
                            f"(del adata.uns[{ATTRS_KEY!r}])") from None
    base.update(attrs or {})
    if merged:
        base["merged_cell_spellings"] = json.dumps(merged, sort_keys=True)
    response, response_attrs = _response_from_uns(adata.uns, cells, conds, merged)
    ds = make_cube(expr, cells, conds, genes, symbols, dose, [source[c] for c in conds], base, plate=plate,
                   response=response, response_attrs=response_attrs)
    return ds, EmptyRows(tuple(row_name(obs.index, i) for i in empty),
                         tuple((str(cell[i]), str(raw[i])) for i in empty))


def _unpaired(treated: np.ndarray, paired: np.ndarray) -> str:
    """Words on a drug's treated cell lines that no fit can pair (``paired``: a fully measured control and
    treated profile): a fit pairs x1 with x2 within a cell line, so those are left out of its fits and
    scores."""
    alone = int((treated & ~paired).sum())
    return f" ({int(paired.sum())} with controls: {alone} left out of the fits)" if alone else ""


def _nan_gene_line(measured: np.ndarray, partial: np.ndarray, conds: list[str]) -> str:
    """The summary line on profiles with a NaN gene (``allow_nan``), "" when there are none: a run pairs and
    trains on fully measured profiles only (datasets.pairs), so the counts above include profiles it does
    not use."""
    n = {c: int(partial[:, k].sum()) for k, c in enumerate(conds) if partial[:, k].any()}
    if not n:
        return ""
    return (f"not used by a run: {plural(sum(n.values()), 'profile')} with a NaN gene (a run pairs and "
            "trains on fully measured profiles only): "
            + ", ".join(f"{c} {k} of {int(measured[:, conds.index(c)].sum())}" for c, k in n.items()))


def describe(ds: xr.Dataset, empty: EmptyRows | None = None) -> str:
    """A few lines on an in-memory cube: per drug its cell lines, profiles and doses; controls; baseline;
    the profiles with a NaN gene, which a run does not use; the ``empty`` rows (NaN in every gene) left
    out."""
    e = np.asarray(ds["expression"].values)
    measured = ~np.isnan(e).all(axis=-1)  # [cell, condition, replicate]
    conds = [str(c) for c in ds["condition"].values]
    dose = np.asarray(ds["dose_um"].values, dtype=np.float64)
    drugs = [c for c in conds if c not in (CONDITION_CONTROL, CONDITION_BASELINE)]
    lines = [f"{c}: {plural(int(measured[:, conds.index(c)].sum()), 'profile')} in "
             f"{plural(int(measured[:, conds.index(c)].any(axis=1).sum()), 'cell line')}"
             for c in (CONDITION_CONTROL, CONDITION_BASELINE) if c in conds]
    lines.append(f"drugs: {len(drugs)}")
    full = measured & ~np.isnan(e).any(axis=-1)   # the profiles a run uses (datasets.pairs)
    control = (full[:, conds.index(CONDITION_CONTROL)].any(axis=1) if CONDITION_CONTROL in conds
               else np.zeros(len(measured), dtype=bool))
    for c in drugs:
        k = conds.index(c)
        m = measured[:, k]
        have = m.any(axis=1)
        dz = [f"{v:g}" for v in sorted(set(dose[have, k][~np.isnan(dose[have, k])]))]
        paired = full[:, k].any(axis=1) & control
        lines.append(f"  {c}: {plural(int(have.sum()), 'cell line')}{_unpaired(have, paired)}, "
                     f"{plural(int(m.sum()), 'profile')}" + (f", dose {', '.join(dz)} uM" if dz else ""))
    for group in alike_conditions(drugs):
        lines.append(f"  drug names alike (only punctuation differs), kept apart: "
                     f"{' and '.join(map(repr, group))}; if they are one compound, make the labels agree")
    if nan_genes := _nan_gene_line(measured, measured & ~full, conds):
        lines.append(nan_genes)
    if empty is not None and empty.line():
        lines.append(empty.line())
    lines.append(f"cube: {plural(ds.sizes['cell_line'], 'cell line')} x {len(conds)} conditions x "
                 f"{plural(ds.sizes['replicate'], 'replicate')} x {plural(ds.sizes['gene'], 'gene')}")
    return "\n".join(lines)


def build_from_h5ad(path: str | Path, out: str | Path, *, overwrite: bool = False,
                    obs_keys: Mapping[str, str] | None = None, gene_key: str | None = None,
                    symbol_key: str = "gene_symbol", layer: str | None = None,
                    control: str = CONDITION_CONTROL, allow_nan: bool = False,
                    merge_cell_spellings: bool = False,
                    progress: Callable[[int, int], None] | None = None) -> tuple[xr.Dataset, str]:
    """Read an .h5ad of profiles (layout: module docstring), write the cube at ``out`` with
    :func:`datasets.cube.write_cube` (atomic); returns (cube, :func:`describe` summary).

    Refuses, before reading, an ``out`` that cannot be written or replaced (``overwrite`` replaces only a
    cube store) or that is the input; X is read in blocks from the file (backed mode). The provenance
    records the input's path and sha256, the options, and the provenance of the cube it came from, if any.
    """
    # at call time: datasets.build imports this module
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise CubeError(f"{path}: no such .h5ad file")
    check_inputs_outside(out, [path])
    check_out_path(out, overwrite)
    try:
        with warnings.catch_warnings():  # duplicate gene ids are refused below, with what to do
            warnings.filterwarnings("ignore", message="Variable names are not unique", category=UserWarning)
            # repeated obs names are harmless (rows are placed by position) and named by position in errors
            warnings.filterwarnings("ignore", message="Observation names are not unique",
                                    category=UserWarning)
            adata = ad.read_h5ad(path, backed="r")
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad input file
        raise CubeError(f"{path}: cannot read as .h5ad ({type(e).__name__}: {e}); write it with "
                        f"anndata's AnnData.write_h5ad") from None
    options = {"obs_keys": dict(obs_keys or {}), "gene_key": gene_key, "symbol_key": symbol_key,
               "layer": layer, "control": control, "allow_nan": allow_nan,
               "merge_cell_spellings": bool(merge_cell_spellings)}
    try:
        upstream = json.loads(str(adata.uns[ATTRS_KEY])).get("provenance") if ATTRS_KEY in adata.uns else None
    except (ValueError, AttributeError):
        upstream = None  # from_anndata reports a bad uns entry
    provenance = {"inputs": [{"role": "h5ad", "path": str(path.resolve()), "sha256": sha256_file(path)}],
                  "build_time": datetime.now(UTC).isoformat(timespec="seconds"),
                  "package_version": package_version(), "options": options,
                  "builder": "datasets.anndata_io.build_from_h5ad"}
    if upstream is not None:
        provenance["upstream"] = upstream
    attrs = {"provenance": json.dumps(provenance, sort_keys=True), "units": "dose_um: micromolar",
             "pairing": PAIRING_NOTE}
    if ATTRS_KEY not in adata.uns:
        attrs["normalization"] = f"values as in the .h5ad's {f'layers[{layer!r}]' if layer else 'X'}"
    try:
        ds, empty = _from_anndata(adata, obs_keys=obs_keys, gene_key=gene_key, symbol_key=symbol_key,
                                  layer=layer, control=control, allow_nan=allow_nan, attrs=attrs,
                                  merge_cell_spellings=merge_cell_spellings, progress=progress)
        check_pairs(ds, "the cube")  # before the write, so that the error names the input
    except CubeError as e:
        raise CubeError(f"{path}: {e}") from None
    finally:
        adata.file.close()
    write_cube(ds, out, overwrite=overwrite)
    return ds, describe(ds, empty)


def _column(value: Any, n: int, name: str) -> np.ndarray:
    """A scalar broadcast to ``n`` rows, or a sequence of ``n`` values."""
    if value is None or np.isscalar(value):
        return np.full(n, value, dtype=object)
    arr = np.asarray(value, dtype=object)
    if arr.shape != (n,):
        raise CubeError(f"{name}: {arr.shape} values for {n} rows of x2_hat; give one value or one per row")
    return arr


def predictions_anndata(x2_hat: np.ndarray, cell_line: Sequence[str], split: str | Sequence[str],
                        genes: Sequence[str], *, repeat: int | Sequence[int] | None = None,
                        fold: int | Sequence[int] | None = None,
                        kind: str | Sequence[str] = "prediction", drug: str | None = None,
                        method: str | None = None, gene_symbols: Sequence[str] | None = None,
                        obs: Mapping[str, Any] | None = None, layers: Mapping[str, np.ndarray] | None = None,
                        uns: Mapping[str, Any] | None = None) -> ad.AnnData:
    """Predicted (or reconstructed) profiles as AnnData: X float32 [rows, genes] as given (raw gene space).

    obs: ``cell_line``, ``split`` (e.g. ``"test"``), ``kind`` (``prediction`` | ``reconstruction``), and
    ``repeat``, ``fold`` (int) and ``condition`` (= ``drug``) when given, then the columns of ``obs`` (a
    scalar or one value per row each); scalars apply to every row. var_names: ``genes`` (var
    ``gene_symbol`` when given). layers: ``layers`` (float32, X's shape). uns: ``drug``, ``method`` when
    given, then ``uns`` (nested dicts stay structured in the .h5ad).
    """
    x = np.asarray(x2_hat)
    if x.ndim != 2 or x.dtype.kind not in "iuf":
        raise CubeError(f"x2_hat: expected a numeric [rows, genes] array, got shape {x.shape}, "
                        f"dtype {x.dtype}")
    n = x.shape[0]
    g = np.asarray([str(v) for v in genes], dtype=object)
    if len(g) != x.shape[1]:
        raise CubeError(f"genes: {len(g)} ids for {x.shape[1]} columns of x2_hat")
    if len(set(g)) != len(g):
        raise CubeError("genes: duplicate gene ids; give one id per column of x2_hat")
    table = pd.DataFrame(index=pd.Index([str(i) for i in range(n)]))
    _base_obs(table, n, cell_line, split, kind, repeat, fold, drug)
    for name, v in (obs or {}).items():
        arr = np.asarray(v)
        arr = np.full(n, v) if arr.ndim == 0 else arr
        if arr.shape != (n,):
            raise CubeError(f"obs {name!r}: {arr.shape} values for {n} rows of x2_hat; give one value or one "
                            f"per row")
        table[str(name)] = arr if arr.dtype.kind in "iufb" else pd.Categorical([str(x) for x in arr])
    var = pd.DataFrame(index=pd.Index(list(g)))
    if gene_symbols is not None:
        sym = [str(s) for s in gene_symbols]
        if len(sym) != len(g):
            raise CubeError(f"gene_symbols: {len(sym)} values for {len(g)} genes")
        var["gene_symbol"] = sym
    extra = {}
    for name, v in (layers or {}).items():
        arr = np.asarray(v)
        if arr.shape != x.shape or arr.dtype.kind not in "iuf":
            raise CubeError(f"layer {name!r}: shape {arr.shape}, dtype {arr.dtype}; expected numbers of "
                            f"x2_hat's shape {x.shape}")
        extra[str(name)] = arr.astype(np.float32)
    meta = {k: str(v) for k, v in (("drug", drug), ("method", method)) if v is not None}
    return ad.AnnData(X=x.astype(np.float32), obs=table, var=var, uns={**meta, **dict(uns or {})},
                      layers=extra or None)


def _base_obs(obs: pd.DataFrame, n: int, cell_line: Sequence[str], split: str | Sequence[str],
              kind: str | Sequence[str], repeat: Any, fold: Any, drug: str | None) -> None:
    """:func:`predictions_anndata`'s own obs columns, checked."""
    one = isinstance(cell_line, str)   # one cell line for every row: list("MCF7") would be its letters
    obs["cell_line"] = pd.Categorical([str(v) for v in _column(cell_line if one else list(cell_line), n,
                                                              "cell_line")])
    obs["split"] = pd.Categorical([str(v) for v in _column(split, n, "split")])
    kinds = [str(v) for v in _column(kind, n, "kind")]
    if set(kinds) - set(PREDICTION_KINDS):
        raise CubeError(f"kind: {sorted(set(kinds) - set(PREDICTION_KINDS))}; expected one of "
                        f"{PREDICTION_KINDS}")
    obs["kind"] = pd.Categorical(kinds, categories=list(PREDICTION_KINDS))
    for name, v in (("repeat", repeat), ("fold", fold)):
        if v is not None:
            try:
                obs[name] = _column(v, n, name).astype(np.int64)
            except (TypeError, ValueError):
                raise CubeError(f"{name}: expected integers, got {v!r}") from None
    if drug is not None:
        obs["condition"] = pd.Categorical([str(drug)] * n)


def write_h5ad(adata: ad.AnnData, path: str | Path) -> Path:
    """Write ``adata`` to ``path`` atomically (temp sibling file, then ``os.replace``; an existing file is
    replaced, a failed write leaves nothing behind). Readable by ``anndata.read_h5ad`` (scanpy, pertpy)."""
    path = Path(path)
    if path.is_dir():
        raise CubeError(f"{path}: is a directory; give a file path ending in .h5ad")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CubeError(f"{path}: cannot create its directory ({e.strerror}); choose another path") from None
    remove_stale_temps(path)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        adata.write_h5ad(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise CubeError(f"{path}: cannot write ({e.strerror or e}); choose another path") from None
        raise
    return path
