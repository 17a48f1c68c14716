"""``python -m datasets.build``: L1000 GCT/GCTX + baseline expression files -> one zarr cube.

``--study rampasek2017 --dir data/`` builds the paper's selection from the files ``datasets.fetch`` left in
``data/`` (see datasets.studies). Conditions of the cube: ``control`` (vehicle controls, x1), one per drug
(x2 at the chosen dose, named by its ``pert_iname``, or by the paper's name with ``--study``) and
``baseline`` (unpaired profiles: one replicate per baseline source holding the cell line; the cell lines
are the union over sources and L1000). Genes: L1000 landmark genes (Entrez IDs)
present in every baseline source. ``plate``: each L1000 profile's plate (``rna_plate``, else ``det_plate``,
else the inst id before ``:``), ``""`` for baseline profiles. ``--response FILE`` adds the drugs' measured
sensitivity (``response[cell_line, condition]``, higher = more sensitive) from a GDSC, CTRPv2 or PRISM table
(datasets.response). See docs/real_data.md.
"""

# ruff: noqa: E402
# (its imports follow the __main__ hand-off below, which must run before them)
from __future__ import annotations

import sys

if __name__ == "__main__":   # before the heavy imports: a Ctrl-C while they load is one line, exit 130
    from datasets.interrupt import run_module

    sys.exit(run_module("datasets.build"))

import argparse
import json
import os
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np

from datasets.argparsing import OneLineParser
from datasets.baseline import (
    CELL_IDS,
    FORMATS,
    BaselineMatch,
    BaselineTable,
    match_baseline,
    normalize_name,
    read_baseline,
    read_cell_map,
)
from datasets.cube import (
    CONDITION_BASELINE,
    CONDITION_CONTROL,
    CubeError,
    check_out_path,
    check_pairs,
    make_cube,
    write_cube,
)
from datasets.files import available_memory, check_inputs_outside, package_version, plural
from datasets.interrupt import interrupt_code, quiet_unawaited_coroutines
from datasets.l1000 import (
    DOSE,
    TIME,
    DrugSelection,
    L1000Profiles,
    Quantity,
    load_profiles,
    open_l1000,
    select_genes,
    select_samples,
    unit_key,
)
from datasets.pairs import PAIRING_NOTE
from datasets.progress import Phase, io_counter
from datasets.provenance import hash_inputs
from datasets.response import attach_response, check_drugs, match_response
from datasets.response import render as render_response
from datasets.response_tables import FORMATS as RESPONSE_FORMATS
from datasets.response_tables import MEASURES, ResponseTable, read_response
from datasets.studies import (
    STUDIES,
    DrugMatch,
    Study,
    find_inputs,
    model_cell_map,
    resolve_drugs,
    split_drug_values,
    study_table,
)


@dataclass
class BuildSummary:
    drugs: list[str]
    cells_per_drug: dict[str, int]
    replicates_per_drug: dict[str, int]
    controls: int
    control_cell_lines: int
    genes_l1000: int  # rows of the L1000 file considered (its landmark rows, or every row)
    genes_kept: int
    baseline_cells: dict[str, int]
    baseline_matched: dict[str, int]
    baseline_repeated: dict[str, tuple[str, ...]]
    n_cell_lines: int
    n_replicates: int
    doses: dict[str, list[float]]
    dropped: dict[str, list[str]] = field(default_factory=dict)
    control_fallback: list[str] = field(default_factory=list)
    matches: list[DrugMatch] = field(default_factory=list)
    baseline_collapsed: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    merged_spellings: dict[str, str] = field(default_factory=dict)
    baseline_scale: dict[str, str] = field(default_factory=dict)  # path -> BaselineTable.scale
    baseline_unmapped: dict[str, str] = field(default_factory=dict)  # path -> its unmapped ids, left out
    model_ambiguous: dict[str, list[str]] = field(default_factory=dict)  # Model.csv ids of 2+ names: unmapped
    # path -> kept genes of several rows (BaselineMatch.repeated_genes)
    baseline_genes_repeated: dict[str, list[str]] = field(default_factory=dict)
    response: str = ""  # datasets.response.render's lines, "" without --response
    genes_landmark: bool = True  # genes_l1000 counts landmark rows (else every row)
    genes_note: str = ""  # L1000 rows left out before the baseline match (GeneSelection.note)
    controls_at_time: int = -1  # vehicle controls of the cube's cell lines at the time point (-1: unknown)
    controls_off_plate: int = 0  # of those, left out by the same-plate rule
    max_controls: str = "all"  # --max-controls as given
    alike_drugs: list[list[tuple[str, int, bool]]] = field(default_factory=list)  # DrugSelection.alike_names

    def render(self) -> str:
        lines = [m.render() for m in self.matches if m.via != "pert_iname"]
        lines.append(f"drugs: {len(self.drugs)}")
        for d in self.drugs:
            dz = sorted(set(self.doses[d]))
            lines.append(f"  {d}: {plural(self.cells_per_drug[d], 'cell line')}, "
                         f"{plural(self.replicates_per_drug[d], 'replicate')}, "
                         f"dose {', '.join(f'{x:g}' for x in dz)} uM"
                         + (f"; dropped (no vehicle controls): {', '.join(self.dropped[d])}"
                            if d in self.dropped else ""))
        for group in self.alike_drugs:
            names = " and ".join(f"{n!r} ({k}{'' if sel else ', not selected'})" for n, k, sel in group)
            lines.append(f"  pert_inames alike (only punctuation differs; trt_cp samples at the time point), "
                         f"kept apart: {names}; if they are one compound, make the spellings agree in the "
                         f"file (or --inst-info)")
        lines.append(self._controls_line())
        lines.append(f"genes kept: {self.genes_kept} of {self.genes_l1000} L1000 "
                     f"{'landmark ' if self.genes_landmark else ''}genes"
                     + (f" ({self.genes_note})" if self.genes_note else ""))
        if self.model_ambiguous:
            ids = "; ".join(f"{k} ({' / '.join(v)})" for k, v in list(self.model_ambiguous.items())[:8])
            more = f" and {len(self.model_ambiguous) - 8} more" if len(self.model_ambiguous) > 8 else ""
            lines.append(f"Model.csv ids naming two cell lines, left unmapped: {ids}{more}; settle them with "
                         f"--cell-map")
        for p, n in self.baseline_cells.items():
            lines.append(f"baseline {p}: {plural(n, 'cell line')}, "
                         f"{self.baseline_matched[p]} matched to L1000 cell lines"
                         + (f"; repeated columns, first kept: {', '.join(self.baseline_repeated[p])}"
                            if self.baseline_repeated.get(p) else "")
                         + (f"; names of one cell line key, first kept: "
                            f"{', '.join(f'{a!r} (not {b!r})' for a, b in self.baseline_collapsed[p])}"
                            if self.baseline_collapsed.get(p) else ""))
            if self.baseline_genes_repeated.get(p):
                genes = self.baseline_genes_repeated[p]
                lines.append(f"  genes in several rows, the first used: {', '.join(genes[:8])}"
                             f"{f' and {len(genes) - 8} more' if len(genes) > 8 else ''}")
            if self.baseline_unmapped.get(p):
                lines.append(f"  left out: {self.baseline_unmapped[p]}")
            if self.baseline_scale.get(p):
                lines.append(f"  values: {self.baseline_scale[p]}")
        if self.merged_spellings:
            lines.append("cell_id spellings merged (--merge-cell-spellings): "
                         + ", ".join(f"{a!r} -> {b!r}" for a, b in self.merged_spellings.items()))
        if self.response:
            lines.append(self.response)
        lines.append(f"cube: {plural(self.n_cell_lines, 'cell line')} x {len(self.drugs) + 2} conditions x "
                     f"{plural(self.n_replicates, 'replicate')} x {plural(self.genes_kept, 'gene')}")
        return "\n".join(lines)

    def _controls_line(self) -> str:
        """The vehicle controls kept, and, where the plate rule or --max-controls left some out, of how many
        and why (so that a control dropped is never unsaid)."""
        cells = plural(self.control_cell_lines, "cell line")
        fallback = (f" (other-plate controls for {', '.join(self.control_fallback)})"
                    if self.control_fallback else "")
        total = self.controls_at_time
        if total <= self.controls:
            return f"controls: {plural(self.controls, 'vehicle profile')} in {cells}{fallback}"
        why = []
        if self.controls_off_plate:
            why.append(f"{self.controls_off_plate} on plates without the cell line's treatments (controls "
                       f"are taken from its treatments' plates)")
        capped = total - self.controls_off_plate - self.controls
        if capped:
            rule = (": per cell line as many as its largest drug replicate count"
                    if self.max_controls == "auto" else " per cell line")
            why.append(f"{capped} by --max-controls {self.max_controls}{rule}; --max-controls all keeps "
                       f"every one on those plates")
        return (f"controls: {self.controls} of {plural(total, 'vehicle profile')} at the time point kept, "
                f"in {cells}{fallback}; left out: {'; '.join(why)}")


@dataclass(frozen=True)
class ResponseOptions:
    """``--response FILE`` and its options (datasets.response, datasets.response_tables)."""

    path: Path
    fmt: str = "auto"  # auto | gdsc | ctrp | prism
    measure: str | None = None  # auc (default) | ln_ic50 | z_score, as the format has them
    partial: bool = False  # drugs without a response get none instead of an error


def _read_response(opts: ResponseOptions | None, progress: IO[str] | None) -> ResponseTable | None:
    """The response table, read before the long L1000 read so that a bad file fails fast."""
    if opts is None:
        return None
    with _io_phase("reading response", _file_bytes(opts.path), progress):
        return read_response(opts.path, opts.fmt, opts.measure)


def assemble(prof: L1000Profiles, base: BaselineMatch, attrs: dict) -> tuple:
    """L1000 profiles + aligned baseline -> make_cube's arguments (expression [cell, cond, rep, gene], ...,
    attrs, plate [cell, cond, rep])."""
    mask = base.gene_mask
    genes = prof.genes.entrez[mask]
    symbols = prof.genes.symbols[mask]
    drugs = prof.drugs
    conditions = [CONDITION_CONTROL, *drugs, CONDITION_BASELINE]
    l_cells = prof.cell_lines
    cells = l_cells + sorted(c for c in base.profiles if c not in set(l_cells))
    ci = {c: i for i, c in enumerate(cells)}
    ki = {k: i for i, k in enumerate(conditions)}
    n_rep = max([v.shape[0] for v in prof.profiles.values()] + [v.shape[0] for v in base.profiles.values()])
    expr = np.full((len(cells), len(conditions), n_rep, int(mask.sum())), np.nan, dtype=np.float32)
    dose = np.full((len(cells), len(conditions)), np.nan)
    plate = np.full(expr.shape[:3], "", dtype=object)
    for (c, cond), v in prof.profiles.items():
        expr[ci[c], ki[cond], : v.shape[0]] = v[:, mask]
        plate[ci[c], ki[cond], : v.shape[0]] = prof.plates[(c, cond)]
        dose[ci[c], ki[cond]] = prof.doses[(c, cond)]
    for c, v in base.profiles.items():
        expr[ci[c], ki[CONDITION_BASELINE], : v.shape[0]] = v
    source = ["L1000"] * (1 + len(drugs)) + ["+".join(dict.fromkeys(base.sources))]
    return expr, cells, conditions, list(genes), list(symbols), dose, source, attrs, plate


def n_profiles(sel: DrugSelection) -> int:
    """L1000 profiles the selection reads (controls and treatments)."""
    return sum(len(v) for v in sel.controls.values()) + sum(
        len(v) for per_cell in sel.treatments.values() for v in per_cell.values())


def check_cube_size(sel: DrugSelection, n_cells: int, n_rep: int, n_genes: int, all_genes: bool,
                    max_controls: int | str | None) -> None:
    """Refuse a cube that cannot fit in memory, with the estimate and the options that shrink it.

    Needed: the dense float32 cube and its plate ids (8-byte references) plus the selected profiles.
    """
    n_cond = len(sel.treatments) + 2
    cube = n_cells * n_cond * n_rep * (n_genes * 4 + 8)
    need = cube + n_profiles(sel) * n_genes * 4
    memory = available_memory()
    if need <= memory:
        return
    ctl = max((len(v) for v in sel.controls.values()), default=0)
    trt = max(((len(v), d, c) for d, per_cell in sel.treatments.items() for c, v in per_cell.items()),
              default=(0, "", ""))
    shrink = []
    if ctl > trt[0]:
        shrink.append(f"--max-controls auto or a number (vehicle controls per cell line, now up to {ctl}; "
                      f"--max-controls is {max_controls})")
    shrink.append(f"fewer --drugs (now {n_cond - 2}; the most replicates, {trt[0]}, are {trt[1]} in "
                  f"{trt[2]})")
    shrink.append("a numeric --dose")
    if all_genes:
        shrink.append("no --all-genes (landmark genes only)")
    raise CubeError(f"the cube would need about {need / 2**30:.1f} GiB of memory ({n_cells} cell lines x "
                    f"{n_cond} conditions x {n_rep} replicates x {n_genes} genes, float32), more than the "
                    f"{memory / 2**30:.1f} GiB available; shrink it with {'; '.join(shrink)}")


PROGRESS_MIN_TOTAL = 20_000  # reads smaller than this finish in seconds: no progress lines


class ReadProgress:
    """``what: done / total unit (pct), rate, ETA`` on stderr for reads of at least ``min_total`` items
    (default :data:`PROGRESS_MIN_TOTAL`): redrawn in place on a terminal, else a line every ``every`` seconds
    and at the end (so that logs of long builds show where they are)."""

    def __init__(self, what: str, unit: str, every: float = 10.0, stream=None, min_total: int | None = None):
        self.what, self.unit, self.every = what, unit, every
        self.stream = stream if stream is not None else sys.stderr
        self.min_total = PROGRESS_MIN_TOTAL if min_total is None else min_total
        self.t0 = _time.monotonic()
        self.last = -float("inf")

    def __call__(self, done: int, total: int) -> None:
        if total < self.min_total:
            return
        now = _time.monotonic()
        end = done >= total
        tty = getattr(self.stream, "isatty", lambda: False)()
        if not end and now - self.last < (0.5 if tty else self.every):
            return
        self.last = now
        dt = max(now - self.t0, 1e-9)
        rate = done / dt
        eta = (total - done) / rate if rate > 0 else float("nan")
        eta_txt = f", ETA {eta:.0f} s" if not end and eta == eta else f", {dt:.1f} s"
        line = (f"{self.what}: {done:,} / {total:,} {self.unit} ({100 * done / max(total, 1):.0f}%), "
                f"{rate:,.0f} {self.unit}/s{eta_txt}")
        self.stream.write(("\r" + line + ("\n" if end else "")) if tty else line + "\n")
        self.stream.flush()


def _relabel(sel: DrugSelection, names: dict[str, str]) -> None:
    """Rename the selection's drugs (pert_iname -> label) in place."""
    sel.treatments = {names.get(d, d): v for d, v in sel.treatments.items()}
    sel.doses = {names.get(d, d): v for d, v in sel.doses.items()}
    sel.dropped = {names.get(d, d): v for d, v in sel.dropped.items()}


def build(l1000: str | Path, baseline: Sequence[str | Path], out: str | Path | None = None, *,
          inst_info: str | Path | None = None, gene_info: str | Path | None = None,
          baseline_format: str = "auto", cell_map: str | Path | None = None,
          drugs: Sequence[str] | None = None, time: float = 24.0, dose: str | float = "highest",
          all_genes: bool = False, max_controls: int | str | None = "auto", overwrite: bool = False,
          pert_info: str | Path | None = None, model: str | Path | None = None,
          label: str = "pert_iname", study: str | None = None, dose_unit: str | None = None,
          time_unit: str | None = None, merge_cell_spellings: bool = False, progress: IO[str] | None = None,
          response: ResponseOptions | None = None):
    """Build (and write when ``out`` is given) the cube; returns (dataset, BuildSummary).

    ``drugs`` may be synonyms (:func:`datasets.studies.resolve_drugs`, with ``pert_info``); the drug
    conditions are named by their ``pert_iname`` (``label="pert_iname"``) or as requested
    (``label="requested"``, e.g. the paper's names). ``model``: DepMap Model.csv, mapping COSMIC and ACH- ids
    to cell line names (``cell_map`` entries win). ``dose_unit`` / ``time_unit``: the unit of L1000 doses /
    times written without one (never assumed: without it such a sample is an error);
    ``merge_cell_spellings``: merge cell_id spellings of one cell line (datasets.cell_names) instead of
    refusing them. Refuses, before reading, an --out that cannot be written or replaced, and a cube too big
    for the memory available (:func:`check_cube_size`).
    ``progress``: a stream (stderr) for the progress of each long phase by bytes (reading metadata, the
    L1000 matrix and the baseline, hashing inputs, writing the cube; :mod:`datasets.progress`); None: silent.
    ``response``: add the drugs' responses from this table (datasets.response: drug names resolved like
    ``drugs``, cell lines through ``model`` and ``cell_map``); its file, columns and drug names are checked
    before the L1000 matrix is read.
    """
    if not baseline:
        raise CubeError("at least one --baseline file is required")
    if out is not None:  # refuse before the (long) read
        check_inputs_outside(Path(out), [l1000, inst_info, gene_info, cell_map, pert_info, model, *baseline,
                                         response.path if response else None])
        check_out_path(out, overwrite)
    _check_files([("baseline", b) for b in baseline] + [("--cell-map", cell_map), ("--model", model),
                                                         ("--pert-info", pert_info)])
    model_map, model_ambiguous = model_cell_map(model) if model is not None else ({}, {})
    given = read_cell_map(cell_map)  # the small tables first: their errors before the long reads
    cmap = {**model_map, **given}
    model_ambiguous = {k: v for k, v in model_ambiguous.items() if normalize_name(k) not in given}
    table = _read_response(response, progress)
    with _io_phase("reading metadata", _metadata_bytes(l1000, inst_info, gene_info, pert_info), progress):
        src = open_l1000(l1000, inst_info=inst_info, gene_info=gene_info)
        genes = select_genes(src, all_genes=all_genes)
        matches: list[DrugMatch] = []
        if drugs and {"pert_type", "pert_iname"} <= set(src.col_meta.columns):
            meta = src.col_meta
            inames = meta.loc[meta["pert_type"] == "trt_cp", "pert_iname"].dropna().astype(str).unique()
            matches = resolve_drugs(split_drug_values(drugs, list(inames)), list(inames), pert_info)
            drugs = [m.pert_iname for m in matches]
        elif drugs:
            drugs = split_drug_values(drugs, [])
        sel = select_samples(src, drugs=drugs, time=time, dose=dose, max_controls=max_controls,
                             dose_unit=dose_unit, time_unit=time_unit,
                             merge_cell_spellings=merge_cell_spellings)
    if label == "requested" and matches:
        _relabel(sel, {m.pert_iname: m.requested for m in matches})
    response_names = (check_drugs(table, list(sel.treatments), pert_info, response.partial)
                      if table is not None else [])
    n_rep = max(len(v) for per_cell in [sel.controls, *sel.treatments.values()] for v in per_cell.values())
    l_cells = set(sel.controls).union(*sel.treatments.values())
    check_cube_size(sel, len(l_cells), n_rep, len(genes.row_idx), all_genes, max_controls)
    with Phase("reading L1000 matrix", n_profiles(sel) * len(genes.row_idx) * 4, progress) as phase:
        prof = load_profiles(src, sel, genes, progress=phase.update)
    with _io_phase("reading baseline", _file_bytes(*baseline), progress):
        tables = [read_baseline(b, baseline_format, cmap) for b in baseline]
        base = match_baseline(tables, prof.cell_lines, prof.genes.entrez, prof.genes.symbols)
    n_cells = len(set(prof.cell_lines) | set(base.profiles))
    n_rep = max([n_rep] + [v.shape[0] for v in base.profiles.values()])
    check_cube_size(sel, n_cells, n_rep, int(base.gene_mask.sum()), all_genes, max_controls)
    inputs = [("l1000", l1000), ("inst_info", inst_info), ("gene_info", gene_info), ("cell_map", cell_map),
              ("pert_info", pert_info), ("model", model)]
    inputs += [("baseline", b) for b in baseline]
    inputs += [("response", f) for f in (table.files if table is not None else ())]
    provenance = {
        "inputs": [h.record() for h in hash_inputs([(r, p) for r, p in inputs if p is not None], progress)],
        "build_time": datetime.now(UTC).isoformat(timespec="seconds"),
        "package_version": package_version(),
        "options": {"drugs": list(prof.drugs), "time_h": float(time), "dose": str(dose),
                    "all_genes": bool(all_genes), "baseline_format": baseline_format,
                    "max_controls": max_controls, "study": study, "dose_unit": dose_unit,
                    "time_unit": time_unit, "merge_cell_spellings": bool(merge_cell_spellings),
                    "lincs_pert_iname": {m.requested if label == "requested" else m.pert_iname: m.pert_iname
                                         for m in matches},
                    **_response_options(table, response, response_names)},
        "builder": "datasets.build",
    }
    attrs = {"provenance": json.dumps(provenance, sort_keys=True),
             "normalization": "L1000 values as in the input file (Level 3 or 4, log2); baseline values: "
                              + "; ".join(f"{t.source} {t.path.name}: {t.scale}" for t in tables)
                              + " (no other cross-platform rescaling)",
             "units": "dose_um: micromolar", "pairing": PAIRING_NOTE}
    if sel.merged_spellings:  # as datasets.anndata_io records them
        attrs["merged_cell_spellings"] = json.dumps(sel.merged_spellings, sort_keys=True)
    args = assemble(prof, base, attrs)
    ds = make_cube(*args)
    response_text = ""
    if table is not None:
        match = match_response(table, args[1], args[2], cmap, pert_info, response.partial)
        ds = attach_response(ds, match)
        response_text = render_response(match, ds)
    check_pairs(ds, "the cube")  # select_samples drops cell lines without controls: a safeguard
    summary = BuildSummary(
        drugs=prof.drugs,
        cells_per_drug={d: len(sel.treatments[d]) for d in prof.drugs},
        replicates_per_drug={d: int(sum(len(v) for v in sel.treatments[d].values())) for d in prof.drugs},
        controls=int(sum(len(v) for v in sel.controls.values())),
        control_cell_lines=len(sel.controls),
        controls_at_time=int(sum(sel.controls_at_time.get(c, 0) for c in sel.controls)),
        controls_off_plate=int(sum(sel.controls_at_time.get(c, 0) - sel.controls_on_plates.get(c, 0)
                                   for c in sel.controls)),
        max_controls="all" if max_controls is None else str(max_controls),
        alike_drugs=sel.alike_names,
        genes_l1000=prof.genes.n_rows if prof.genes.n_rows >= 0 else len(prof.genes.entrez),
        genes_kept=int(base.gene_mask.sum()), genes_landmark=prof.genes.landmark_column is not None,
        genes_note=prof.genes.note,
        baseline_cells=base.n_cells, baseline_matched=base.matched,
        baseline_repeated={str(t.path): t.repeated for t in tables}, baseline_collapsed=base.collapsed,
        baseline_scale={str(t.path): t.scale for t in tables},
        baseline_unmapped={str(t.path): _unmapped_text(t) for t in tables if t.unmapped},
        baseline_genes_repeated=base.repeated_genes,
        model_ambiguous=model_ambiguous,
        merged_spellings=sel.merged_spellings,
        n_cell_lines=len(args[1]), n_replicates=int(args[0].shape[2]),
        doses={d: list(sel.doses[d].values()) for d in prof.drugs},
        dropped=sel.dropped, control_fallback=sel.control_fallback, matches=matches, response=response_text)
    if out is not None:
        with _io_phase("writing cube", int(ds.nbytes), progress, field="wchar"):
            write_cube(ds, out, overwrite=overwrite)
    return ds, summary


def _unmapped_text(t: BaselineTable) -> str:
    """The summary's words on ``t``'s ids that no cell map names (datasets.baseline: left out)."""
    ids = t.unmapped
    what = CELL_IDS[{"GDSC": "gdsc", "DepMap": "depmap"}[t.source]][1]
    more = ", ..." if len(ids) > 8 else ""
    return (f"{plural(len(ids), what)} that no cell map names ({', '.join(ids[:8])}{more}): not cell lines "
            f"of the cube; map them with --cell-map (source_name,cell_line) or --model "
            f"Model.csv to keep them")


def _check_files(files: Sequence[tuple[str, str | Path | None]]) -> None:
    """Each given input (what, path) is a file, checked before any long read: else one error naming it."""
    for what, p in files:
        if p is not None and not Path(p).is_file():
            raise CubeError(f"{p}: {what} file {'is not a file' if Path(p).exists() else 'not found'}")


def _response_options(table: ResponseTable | None, opts: ResponseOptions | None,
                      names: Sequence[DrugMatch]) -> dict:
    """The provenance options of ``--response`` ({} without it)."""
    if table is None or opts is None:
        return {}
    return {"response_format": table.fmt, "response_measure": table.measure.name,
            "response_partial": bool(opts.partial),
            "response_drug_names": {m.requested: m.pert_iname for m in names if m.via != "not resolved"}}


def _io_phase(what: str, total: int, stream: IO[str] | None, field: str = "rchar") -> Phase:
    """A phase whose bytes are the bytes this process reads (``rchar``) or writes (``wchar``) meanwhile,
    against ``total``; where that count is unavailable, the phase shows its elapsed time only."""
    counter = io_counter(field)
    return Phase(what, total if counter is not None else 0, stream, counter=counter)


def _file_bytes(*paths: str | Path | None) -> int:
    return sum(os.path.getsize(p) for p in paths if p is not None and os.path.isfile(p))


def _metadata_bytes(l1000: str | Path, *tables: str | Path | None) -> int:
    """Bytes the metadata phase reads: a GCTX's /0/META datasets (a GCT text file: all of it) and the
    metadata tables."""
    import h5py

    n = _file_bytes(*tables)
    try:
        with h5py.File(l1000, "r") as f:
            sizes: list[int] = []
            f["/0/META"].visititems(lambda _, obj: sizes.append(obj.id.get_storage_size())
                                    if isinstance(obj, h5py.Dataset) else None)
            return n + sum(sizes)
    except (OSError, KeyError, TypeError):  # text (GCT) or not a GCTX: open_l1000 says what is wrong
        return n + _file_bytes(l1000)


def _dose_arg(v: str) -> str | float:
    if v == "highest":
        return v
    try:
        x = float(v)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--dose must be 'highest' or a number in uM, got {v!r}") from e
    if not x > 0:
        raise argparse.ArgumentTypeError(f"--dose must be positive, got {v!r}")
    return x


def _unit_arg(q: Quantity) -> Callable[[str], str]:
    """argparse type of ``q.flag``: a unit of ``q`` (e.g. uM, nM for doses; h, min, d for times)."""
    def check(v: str) -> str:
        if unit_key(v) not in q.units:
            raise argparse.ArgumentTypeError(f"{v!r} is not a unit of {q.name} ({q.spelled})")
        return v
    return check


def _max_controls_arg(v: str) -> str | int:
    if v in ("auto", "all"):
        return v
    try:
        n = int(v)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--max-controls must be 'auto', 'all' or a number, "
                                         f"got {v!r}") from e
    if n < 1:
        raise argparse.ArgumentTypeError(f"--max-controls must be at least 1, got {v!r}")
    return n


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="pertvae-bench build", description=__doc__.split("\n")[0])
    p.add_argument("--study", choices=sorted(STUDIES),
                   help="a paper's selection, inputs found in --dir under their published names "
                        "(as 'pertvae-bench fetch' leaves them)")
    p.add_argument("--dir", default="data", help="with --study: the download directory (default data/)")
    p.add_argument("--l1000", help="L1000 matrix: GCTX 1.0 or GCT 1.2/1.3 (required without --study or "
                                   "--h5ad)")
    p.add_argument("--h5ad", help="build the cube from an AnnData .h5ad of profiles instead (obs: cell_line, "
                                  "condition, optional replicate, dose_um, plate, source; docs/api.md)")
    p.add_argument("--control", default="control", help="with --h5ad: the condition label of the controls")
    p.add_argument("--obs-key", action="append", default=[], metavar="FIELD=COLUMN",
                   help="with --h5ad: read FIELD (cell_line, condition, replicate, dose_um, plate, source) "
                        "from obs COLUMN (repeatable)")
    p.add_argument("--gene-key", help="with --h5ad: var column holding the gene ids (default: var_names)")
    p.add_argument("--layer", help="with --h5ad: take values from this layer instead of X")
    p.add_argument("--allow-nan", action="store_true", help="with --h5ad: NaN values mark unmeasured genes")
    p.add_argument("--inst-info", help="inst_info TSV keyed by inst_id (replaces embedded column metadata)")
    p.add_argument("--gene-info", help="gene_info TSV keyed by pr_gene_id (landmark flags, symbols)")
    p.add_argument("--pert-info", help="pert_info TSV: pert_id and alias columns resolve --drugs names")
    p.add_argument("--model", help="DepMap Model.csv: maps COSMIC and ACH- ids to cell line names")
    p.add_argument("--baseline", action="append",
                   help="baseline expression file (repeatable; required without --study)")
    p.add_argument("--baseline-format", default="auto", choices=FORMATS,
                   help="layout of the --baseline files: auto (detected from each file), depmap (DepMap "
                        "expression CSV), gdsc (GDSC RMA TSV), ccle (CCLE GCT) or csv (genes x cell lines: "
                        "a row per gene, first column its Entrez id or symbol, a column per cell line) "
                        "[default: auto]")
    p.add_argument("--cell-map", help="CSV source_name,cell_line mapping baseline names to L1000 cell_id")
    p.add_argument("--drugs", nargs="*", action="extend",
                   help="drug names, comma- or space-separated: pert_iname values or synonyms (case and "
                        "punctuation ignored; default: all trt_cp at --time)")
    p.add_argument("--time", type=float, help="pert_time in hours (default 24, a study's own)")
    p.add_argument("--dose", type=_dose_arg, default="highest", help="'highest' (default) or a dose in uM")
    p.add_argument("--all-genes", action="store_true", help="keep all genes, not only landmarks")
    p.add_argument("--max-controls", type=_max_controls_arg, default="auto",
                   help="vehicle controls kept per cell line: 'auto' (default: its largest drug replicate "
                        "count, round-robin over plates), 'all', or a number")
    p.add_argument("--dose-unit", type=_unit_arg(DOSE),
                   help="unit of L1000 doses written without one (pert_dose_unit absent or empty, pert_idose "
                        "without unit): uM, nM, mM, ...; never assumed, such a dose is an error without it")
    p.add_argument("--time-unit", type=_unit_arg(TIME),
                   help="unit of L1000 time points written without one (pert_time_unit absent or empty): h, "
                        "min, d; never assumed")
    p.add_argument("--merge-cell-spellings", action="store_true",
                   help="merge cell line names that differ only in case or punctuation (mcf7, MCF-7, MCF7) "
                        "under the spelling with the most profiles, with a warning listing each merge "
                        "(default: refuse them; they would be separate cell lines)")
    p.add_argument("--response", metavar="FILE",
                   help="add the drugs' measured sensitivity (response per cell line and drug, higher = more "
                        "sensitive) from a GDSC fitted dose response CSV, a CTRPv2 "
                        "v20.data.curves_post_qc.txt (its v20.meta.* files beside it) or a PRISM "
                        "secondary-screen-dose-response-curve-parameters.csv; drug names resolved like "
                        "--drugs, cell lines through --model and --cell-map")
    p.add_argument("--response-format", choices=RESPONSE_FORMATS, default="auto",
                   help="layout of --response: auto (from its header), gdsc, ctrp or prism [default: auto]")
    p.add_argument("--response-measure", choices=sorted({m for f in MEASURES.values() for m in f}),
                   help="what --response holds: auc (GDSC 1 - AUC, CTRPv2 -area_under_curve, PRISM 1 - auc), "
                        "ln_ic50 (-ln IC50 in uM; GDSC, PRISM) or z_score (-Z_SCORE; GDSC) [default: auc]")
    p.add_argument("--response-partial", action="store_true",
                   help="keep drugs the --response file has no response for (they get none) instead of "
                        "refusing them")
    p.add_argument("--out", required=True, help="output cube (zarr directory)")
    p.add_argument("--overwrite", action="store_true", help="replace a different cube at --out")
    a = p.parse_args(argv)
    if a.response is None:
        given = [f for f, v in (("--response-format", a.response_format != "auto"),
                                ("--response-measure", a.response_measure is not None),
                                ("--response-partial", a.response_partial)) if v]
        if given:
            many = len(given) > 1
            p.error(f"{', '.join(given)} {'apply' if many else 'applies'} only with --response FILE; add it "
                    f"or leave {'them' if many else 'it'} out")
    if a.h5ad and a.response is not None:
        p.error("--response does not combine with --h5ad yet; build from --l1000/--baseline (or --study) to "
                "add drug responses")
    if a.h5ad:
        flags = (("--study", a.study), ("--l1000", a.l1000), ("--inst-info", a.inst_info),
                 ("--gene-info", a.gene_info), ("--baseline", a.baseline), ("--drugs", a.drugs),
                 ("--dose-unit", a.dose_unit), ("--time-unit", a.time_unit))
        given = [f for f, v in flags if v is not None]
        if given:
            p.error(f"--h5ad holds the whole dataset; leave out {', '.join(given)} (or leave out --h5ad)")
        for kv in a.obs_key:
            if "=" not in kv or not all(kv.split("=", 1)):
                p.error(f"--obs-key {kv!r}: use FIELD=COLUMN, e.g. --obs-key cell_line=cell_id")
    elif a.study:
        flags = (("--l1000", a.l1000), ("--inst-info", a.inst_info), ("--gene-info", a.gene_info),
                 ("--baseline", a.baseline), ("--drugs", a.drugs))
        given = [f for f, v in flags if v is not None]
        if given:
            p.error(f"--study takes its files and drugs from --dir; leave out {', '.join(given)} (or leave "
                    f"out --study)")
    else:
        missing = [f for f, v in (("--l1000", a.l1000), ("--baseline", a.baseline)) if v is None]
        if missing:
            p.error(f"the following arguments are required: {', '.join(missing)} (or --study)")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: prints the summary; bad input -> 'error: ...' on stderr and exit status 2; Ctrl-C -> exit
    status 130, nothing written."""
    a = parse_args(argv)
    drugs = None
    if a.drugs is not None:
        drugs = [d for d in a.drugs if d.replace(",", "").strip()]   # split by build, which knows the names
        if not drugs:
            given = " ".join(repr(d) for d in a.drugs) or "nothing"
            print(f"error: --drugs: no drug name given (got {given}); name drugs (comma- or space-separated) "
                  f"or leave --drugs out to take every trt_cp drug", file=sys.stderr)
            return 2
    study = STUDIES[a.study] if a.study else None  # parse_args refuses --study with --h5ad
    time = a.time if a.time is not None else (study.time_h if study else 24.0)
    try:
        summary: BuildSummary | str = _build_h5ad(a) if a.h5ad else _build_l1000(a, study, drugs, time)
    except CubeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        quiet_unawaited_coroutines()
        print(f"interrupted: no cube written at {a.out} (an existing one is unchanged)", file=sys.stderr)
        return interrupt_code(e)
    if isinstance(summary, str):  # --h5ad
        print(summary)
    else:
        print(summary.render())
        if study:
            print(study_table(study, summary.matches, summary.cells_per_drug, summary.replicates_per_drug,
                              summary.doses, time, summary.genes_kept))
    print(f"wrote {a.out}")
    return 0


def _build_l1000(a: argparse.Namespace, study: Study | None, drugs: list[str] | None,
                 time: float) -> BuildSummary:
    """The cube from ``--l1000``/``--baseline`` or ``--study``'s files in ``--dir``: its summary."""
    kw = dict(inst_info=a.inst_info, gene_info=a.gene_info, pert_info=a.pert_info, model=a.model)
    l1000, baseline = a.l1000, a.baseline
    if study:
        found = find_inputs(a.dir, cell_map_given=a.cell_map is not None)
        l1000, baseline, drugs = found.l1000, found.baseline, list(study.drugs)
        kw = dict(inst_info=found.inst_info, gene_info=found.gene_info,
                  pert_info=a.pert_info or found.pert_info, model=a.model or found.model)
        print(f"study {study.name}: {study.notes}")
        for line in [f"L1000: {l1000.name} ({found.series})", *found.notes]:
            print(f"  {line}")
    response = (ResponseOptions(Path(a.response), a.response_format, a.response_measure, a.response_partial)
                if a.response is not None else None)
    _, summary = build(l1000, baseline, a.out, baseline_format=a.baseline_format, cell_map=a.cell_map,
                       drugs=drugs, time=time, dose=a.dose, all_genes=a.all_genes,
                       max_controls=a.max_controls, overwrite=a.overwrite,
                       label="requested" if study else "pert_iname", study=a.study, dose_unit=a.dose_unit,
                       time_unit=a.time_unit, merge_cell_spellings=a.merge_cell_spellings,
                       progress=sys.stderr, response=response, **kw)
    return summary


def _build_h5ad(a: argparse.Namespace) -> str:
    """``--h5ad FILE``: the cube from datasets.anndata_io.build_from_h5ad; its summary."""
    from datasets.anndata_io import build_from_h5ad  # here: only an h5ad build needs anndata (slow to import)

    obs_keys = dict(kv.split("=", 1) for kv in a.obs_key)
    _, summary = build_from_h5ad(a.h5ad, a.out, overwrite=a.overwrite, obs_keys=obs_keys,
                                 gene_key=a.gene_key, layer=a.layer, control=a.control,
                                 allow_nan=a.allow_nan, merge_cell_spellings=a.merge_cell_spellings,
                                 progress=ReadProgress("reading h5ad", "profiles"))
    return summary

