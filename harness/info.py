"""``pertvae-bench info PATH``: what a cube or a run holds, without running anything.

- a cube (a zarr store with an ``expression`` variable): its sizes, each drug with its paired cell lines and
  treated profiles (and, when the cube has a drug response, its cell lines with a response: how many have
  pairs and a baseline singleton), the baseline singletons, the response's measure, units and source, the
  units and where it came from (provenance: inputs with their sha256, build time and options), and a
  synthetic cube's ground truth (with each drug's response kind);
- a run (a directory holding ``results.zarr``): whether a run is writing it now or was killed writing it
  (its lock record, harness.outlock) or ended without writing its run.json (run.json's mark), its config
  in brief (with its precision and seeds), the fits done / failed / not run by model and drug, how the fits
  computed their matrix products (harness.products), the package versions, its timings, and how the run that
  wrote run.json ran (its command, devices, splits per task, CPU seconds, load and peak memory), and the
  report files present.

Exit status: 0, or 2 with one ``error:`` line when PATH is neither, or is a damaged or incomplete cube: a
metadata file (``zarr.json``) missing or unreadable (named), or a drug no cell line pairs, which build and
synth never write (its chunk files missing, e.g. an interrupted copy; counted).
"""

# ruff: noqa: E402
# (its imports follow the __main__ hand-off below, which must run before them)
from __future__ import annotations

import sys

if __name__ == "__main__":   # before the heavy imports: a Ctrl-C while they load is one line, exit 130
    from harness.entry import run_module

    sys.exit(run_module("harness.info"))

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datasets.argparsing import OneLineParser
from datasets.chunk_files import unrecorded_note
from datasets.cube import (
    CONDITION_BASELINE,
    CONDITION_CONTROL,
    RESPONSE,
    CubeError,
    damaged_metadata,
    drugs,
    is_cube_store,
    missing_chunks,
    open_cube,
)
from datasets.files import plural
from harness import outlock
from harness.products import products_line
from harness.report import ReportError, fit_counts, fits_table, open_results
from harness.results import as_str, json_attr, planned_mask
from harness.store import BF16_KEY, OLD_BF16_KEY, failed_words, fit_counts_of

__all__ = ["describe", "describe_cube", "describe_run", "main"]


def _json(raw: Any) -> Any:
    """A cube's JSON attribute (a run's are read by harness.results.json_attr)."""
    try:
        return json.loads(raw) if isinstance(raw, str) and raw else (raw or {})
    except json.JSONDecodeError:
        return {}


def describe_cube(path: Path) -> str:
    """A few lines on the cube at ``path`` (module docstring)."""
    ds = open_cube(path)   # checked: a damaged chunk is one error line, not a traceback from the reads below
    measured = np.asarray(ds["expression"].notnull().all("gene").transpose("cell_line", "condition",
                                                                           "replicate").values)
    conds = [str(c) for c in ds["condition"].values]
    per_cond = measured.sum(axis=2)  # [cell_line, condition]: measured replicates
    ctrl = per_cond[:, conds.index(CONDITION_CONTROL)] > 0 if CONDITION_CONTROL in conds else 0
    lines = [f"cube {path}: {plural(ds.sizes['cell_line'], 'cell line')} x "
             f"{plural(ds.sizes['condition'], 'condition')} x {plural(ds.sizes['replicate'], 'replicate')} x "
             f"{plural(ds.sizes['gene'], 'gene')}"]
    names = drugs(ds)
    has_response = RESPONSE in ds.data_vars
    resp = np.asarray(ds[RESPONSE].transpose("cell_line", "condition").values) if has_response else None
    single = (per_cond[:, conds.index(CONDITION_BASELINE)] > 0 if CONDITION_BASELINE in conds
              else np.zeros(len(per_cond), dtype=bool))
    lines.append(f"drugs ({len(names)}; paired cell lines, treated profiles"
                 f"{'; cell lines with a response' if has_response else ''}):")
    unpaired = [d for d in names if not ((per_cond[:, conds.index(d)] > 0) & ctrl).any()]
    if unpaired:
        chunks = missing_chunks(path)
        short = bool(chunks) and chunks[0] < chunks[1]
        what = "a damaged or incomplete cube" if short else "a cube a run cannot use"
        files = (f"; {chunks[0]} of the {chunks[1]} expression chunk files are present (all-NaN chunks are "
                 f"not written, the others are missing?)" if short else "")
        raise CubeError(f"{path}: {what}: no cell line pairs drug(s) {', '.join(map(repr, unpaired))} (no "
                        f"fully measured control and profile of the drug in one cell line), which "
                        f"pertvae-bench build and synth never write{files}; copy the cube again or rebuild "
                        f"it")
    for d in names:
        n = per_cond[:, conds.index(d)]
        paired = (n > 0) & ctrl
        line = (f"  {d}: {plural(int(paired.sum()), 'paired cell line')}, "
                f"{plural(int(n.sum()), 'treated profile')}")
        if resp is not None:
            r = ~np.isnan(resp[:, conds.index(d)])
            line += (f"; {int(r.sum())} with a response ({int((r & paired).sum())} paired, "
                     f"{int((r & single).sum())} with a singleton)")
        lines.append(line)
    if CONDITION_BASELINE in conds:
        b = per_cond[:, conds.index(CONDITION_BASELINE)]
        lines.append(f"baseline singletons: {plural(int(b.sum()), 'profile')} of "
                     f"{plural(int((b > 0).sum()), 'cell line')}")
    if has_response:
        a = ds[RESPONSE].attrs
        lines.append(f"response: {a.get('measure')} ({a.get('units')}; {a.get('direction')}) from "
                     f"{a.get('source')}")
    for key in ("units", "normalization"):
        if ds.attrs.get(key):
            lines.append(f"{key}: {ds.attrs[key]}")
    lines += _provenance(_json(ds.attrs.get("provenance")))
    if note := unrecorded_note(ds.attrs):
        lines.append(f"note: {note}")
    truth = _json(ds.attrs.get("ground_truth"))
    if truth:
        eff = [f"{d} ({t.get('kind', '?')})" for d, t in truth.items() if t.get("effective")]
        lines.append(f"synthetic ground truth: effective {', '.join(eff) or 'none'}; the others null")
        kinds: dict[str, list[str]] = {}
        for d, t in truth.items():
            if isinstance(t.get("response"), dict):
                kinds.setdefault(str(t["response"].get("kind")), []).append(d)
        if kinds:
            lines.append("synthetic response kinds: " + "; ".join(f"{k}: {', '.join(v)}"
                                                                  for k, v in kinds.items()))
    return "\n".join(lines)


def _provenance(prov: dict) -> list[str]:
    if not prov:
        return ["provenance: none recorded"]
    made = prov.get("build_time") or (f"generated by {prov['generator']} (preset {prov.get('preset')}, seed "
                                      f"{prov.get('seed')})" if prov.get("generator") else "?")
    out = [f"built: {made}, package version {prov.get('package_version', '?')}"]
    for item in prov.get("inputs", []) or []:
        if isinstance(item, dict):
            out.append(f"  input {item.get('path', item.get('name', '?'))} sha256 "
                       f"{str(item.get('sha256', '?'))[:16]}...")
    opts = prov.get("options")
    if isinstance(opts, dict) and opts:
        out.append("options: " + ", ".join(f"{k}={v}" for k, v in sorted(opts.items())))
    return out


def _cell(fits: Any, in_methods: int = 0) -> str:
    """``model done/planned`` with the failed and not-run counts where there are any; ``in_methods``: of
    the failed, those that failed in some methods only (harness.store.failed_words), said so."""
    n = fits["status"].value_counts()
    k = int(n.get("failed", 0))
    partly = "" if not in_methods else (f", {'all' if in_methods == k else in_methods} in some methods only, "
                                        "their other methods scored")
    extra = [f"{k} failed{partly}"] if k else []
    extra += [f"{n['not_run']} not run"] if n.get("not_run", 0) else []
    more = f" ({', '.join(extra)})" if extra else ""
    return f"{fits['model'].iloc[0]} {n.get('done', 0)}/{len(fits)}{more}"


def _failed_in_methods(ds: Any) -> dict[tuple[str, str], int]:
    """(model, drug) -> its failed fits in which some methods scored and only others failed ({} without
    per-method statuses)."""
    if "method_status" not in ds.data_vars:
        return {}
    ds = ds.transpose("model", "drug", "latent", "split", ...)
    st, pm = as_str(ds["status"].values), planned_mask(ds)
    ms = as_str(ds["method_status"].transpose("model", "drug", "latent", "split", "method").values)
    return {(str(m), str(d)): fit_counts_of(st[i, j], pm[i, j], ms[i, j])["failed_in_methods"]
            for i, m in enumerate(ds["model"].values) for j, d in enumerate(ds["drug"].values)}


def describe_run(out: Path) -> str:
    """A few lines on the run in ``out`` (module docstring)."""
    ds = open_results(out)
    fits = fits_table(ds)
    counts = fit_counts(ds)
    science = json_attr(ds, "config").get("science", {})
    lines = [f"run {out}: {counts['done']} of {counts['planned']} fits done, {failed_words(counts)}, "
             f"{counts['not_run']} not run" + (" (PARTIAL)" if counts["missing"] else "")]
    state, holder = _holder(out)
    lines += [holder] if holder else []
    parts = [f"models {', '.join(science['models'])}" if science.get("models") else "",
             "latents " + "; ".join(f"{m} {v}" for m, v in science["latents"].items())
             if science.get("latents") else "",
             f"{science['n_repeats']} x {science['n_folds']}-fold CV" if science.get("n_folds") else "",
             f"data {science['data_source']}" if science.get("data_source") else "",
             f"precision {science['precision']}" if science.get("precision") else "",
             f"base seed {science['base_seed']} (splits and fits)" if "base_seed" in science else "",
             f"data seed {science['data_seed']} (the synthetic cube)" if "data_seed" in science else "",
             f"scoring version {science.get('scoring', '1 (before the scoring version was recorded)')}"]
    lines.append("config: " + "; ".join(p for p in parts if p))
    lines.append("fits by drug and model (done of planned; failed, not run where any):")
    partly = _failed_in_methods(ds)
    lines += [f"  {drug}: " + ", ".join(_cell(g, partly.get((str(model), str(drug)), 0))
                                       for model, g in part.groupby("model", sort=False))
              for drug, part in fits.groupby("drug", sort=False)]
    if products := products_line(ds):
        lines.append(products)
    versions = json_attr(ds, "versions")
    if bf16 := versions.pop(BF16_KEY, None) or versions.pop(OLD_BF16_KEY, None):
        lines.append(f"bf16 products on the CPU that started the run, if asked for: {bf16}")
    try:   # not JSON, or not even text: no record, as a run and a report take it
        run = _json((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    except UnicodeDecodeError:
        run = {}
    run = run if isinstance(run, dict) else {}
    if isinstance(later := run.get(outlock.UNFINISHED_RUN), dict) and not state:
        state = "unrecorded"
        lines.insert(1, f"stopped: a run started {later.get('started')} (pid {later.get('pid')}) ended "
                        "without recording its end (its output closed, or an error); its finished fits are "
                        "counted above: run the same command again to resume")
    when = "an earlier run" if state else "last run"   # a live or killed run writes run.json at its end
    lines += _versions_lines(versions, run.get("versions"), when)
    if t := run.get("timings", {}):
        stop = f"; interrupted ({run.get('signal') or 'a signal'})" if run.get("interrupted") else ""
        lines.append(f"{when}: started {t.get('started')}, {t.get('seconds')} s, {t.get('fits_run')} fits"
                     + stop)
    lines += _how_it_ran(run, when)
    lines += report_files_lines(out, run)
    return "\n".join(lines)


def _how_it_ran(run: dict[str, Any], when: str) -> list[str]:
    """How the run that wrote run.json ran (harness.run): its command, the devices and splits per task its
    fits used, its CPU time and the host's load, its peak memory; a field it does not record (an older
    run.json) is left out."""
    def got(key: str) -> dict[str, Any]:
        v = run.get(key)
        return v if isinstance(v, dict) else {}

    lines = []
    if line := got("command").get("line"):
        lines.append(f"{when}'s command: {line} (in {got('command').get('cwd')})")
    if used := got("used"):
        devices = ", ".join(f"{d} for {n} fit(s)" for d, n in (used.get("device") or {}).items())
        devices = f"{devices} of trained models" if devices else "none (no trained model's fit ran)"
        spt = ", ".join(f"{m} {n}" for m, n in (used.get("splits_per_task") or {}).items())
        lines.append(f"{when} used: device {devices}; splits per task {spt or 'none (no task ran)'}")
    timings = got("timings")
    cpu, load = timings.get("cpu_seconds"), timings.get("load_average")
    if isinstance(cpu, dict) and isinstance(load, dict):
        own, children, fits = cpu.get("driver"), cpu.get("children"), cpu.get("fits")
        lines.append(f"{when}'s CPU seconds: {own} in its own process, {children} in "
                     f"its ended child processes, {fits} in its fits (as their workers measured "
                     f"them); load average (1, 5, 15 min) {_avg(load.get('start'))} at its start, "
                     f"{_avg(load.get('end'))} at its end")
    if peak := got("peak_rss_mib"):
        workers = peak.get("workers") or {}
        n = f"{len(workers)} process{' that' if len(workers) == 1 else 'es that'}"   # --cluster none: its own
        most = f", up to {max(workers.values())} MiB in the {n} ran its fits" if workers else ""
        kids = [v for v in (peak.get("worker_children") or {}).values() if v]   # not in older run.json
        most += (f", up to {max(kids)} MiB in one of their ended child processes (their --method plug-ins, "
                 f"torch.compile's compiler)" if kids else "")
        own, children = peak.get("driver"), peak.get("children")
        # getrusage's children peak is 0 where none ended (a resume with nothing to run starts no cluster)
        children = f"{children} MiB its largest ended child process" if children else "no child process ended"
        lines.append(f"{when}'s peak memory: {own} MiB its own process, {children}{most}")
    if isinstance(runs := run.get("runs"), list) and len(runs) > 1:
        lines.append(f"{len(runs)} runs recorded in run.json's runs, oldest first; the lines above describe "
                     "the latest")
    return lines


def _avg(load: Any) -> str:
    """A load average as run.json records it ([1, 5, 15 minutes]), without the list's brackets."""
    return ", ".join(map(str, load)) if isinstance(load, list) else str(load)


def _versions_lines(stored: dict[str, Any], last: Any, when: str) -> list[str]:
    """The store's versions (written once, by the run that made it) and, where run.json's differ, those of
    the run that wrote it: a resume with other code or libraries adds its fits under the first run's."""
    if not stored:
        return []
    lines = ["versions of the run that made the store: " + ", ".join(f"{k} {v}" for k, v in stored.items())]
    last = last if isinstance(last, dict) else {}
    if differ := [f"{k} {last[k]}" for k in stored if k in last and last[k] != stored[k]]:
        whose = "the last run" if when == "last run" else when
        lines.append(f"versions of {whose} (run.json), where they differ: {', '.join(differ)} (the store "
                     "records no version per fit)")
    return lines


def _holder(out: Path) -> tuple[str, str]:
    """Whether a run (or report) is writing ``out`` now, or was killed writing it (harness.outlock.holder),
    and the line that says so: without it, a live run's 'not run' read as fits given up on, and 'last run'
    (run.json, of a run before it) as this one."""
    state, rec = outlock.holder(out)
    who = outlock.describe(rec)
    if state == "running":
        return state, f"in progress: {who}; these counts are as of now"
    if state == "elsewhere":
        return state, (f"in progress or killed: {who} holds {out} (another host: not checkable from here); "
                       "these counts are as of now")
    if state == "ended":
        return state, (f"stopped: {who} ended without finishing (killed?); its finished fits are counted "
                       "above: run the same command again to resume")
    return "", ""


REPORT_KINDS = (".md", ".csv", ".png", ".svg", ".tex", ".txt")
RUN_FILES = ("failures.csv",)   # written by the run, not by its report


def report_files_lines(out: Path, run: dict[str, Any]) -> list[str]:
    """The report's files in OUT: those the last finished render wrote (run.json's ``report.files``), and
    apart those present that it did not write (left by an earlier report, e.g. figures kept by
    --no-figures) or every one present when no finished render is recorded (a render that stopped
    half-way, or a run that stopped before its report: they are an earlier report's, perhaps of fewer
    results)."""
    present = sorted(p.name for p in out.iterdir()
                     if p.is_file() and p.suffix in REPORT_KINDS and p.name not in RUN_FILES)
    report = run.get("report")
    later = run.get(outlock.UNFINISHED_RUN)
    later = later if isinstance(later, dict) else {}
    if not present:
        return [f"report files: none yet (pertvae-bench report {out})"]
    again = f"pertvae-bench report {out} writes a current one"
    rendered = str(report.get("rendered") or "") if isinstance(report, dict) else ""
    if rendered and rendered < str(later.get("started", "")):
        return [f"report files: none current: a run started {later.get('started')}, after the last report "
                f"(rendered {rendered}), may have changed the store since; present from that report or an "
                f"earlier one: {', '.join(present)}; {again}"]
    if not isinstance(report, dict) or not isinstance(report.get("files"), list):
        if isinstance(report, dict) and report.get("unfinished"):
            why = (f"the last report, started {report.get('started')}, did not finish; present, from it or "
                   "an earlier report (perhaps of fewer results)")
        else:
            why = ("run.json records no finished report of the run as it is now (its last run stopped before "
                   "writing one); present from an earlier report, perhaps of fewer results")
        return [f"report files: none current: {why}: {', '.join(present)}; {again}"]
    wrote = {str(f) for f in report["files"]}
    current = [p for p in present if p in wrote]
    lines = ["report files: " + (", ".join(current) or "none"),
             f"report rendered: {report.get('rendered', '?')}"]
    if old := [p for p in present if p not in wrote]:
        lines.append("left from an earlier report, not rewritten by the last one (perhaps of fewer results): "
                     + ", ".join(old))
    if gone := sorted(wrote - set(present) - {"run.json"}):
        lines.append(f"written by the last report and since removed: {', '.join(gone)}")
    return lines


def describe(path: str | Path) -> str:
    """:func:`describe_run` for a run directory, :func:`describe_cube` for a cube; ValueError otherwise."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: no such file or directory")
    if (p / "results.zarr").is_dir():
        return describe_run(p)
    if is_cube_store(p):
        try:
            return describe_cube(p)
        except CubeError as e:
            raise ValueError(f"{p}: {e}" if not str(e).startswith(f"{p}: ") else str(e)) from None
    if p.is_dir() and ((p / "expression").is_dir() or (p / "zarr.json").is_file()):
        why = damaged_metadata(p)
        if why:
            raise ValueError(f"{p}: a damaged or incomplete cube: {why}; copy the cube again or rebuild it "
                             f"(pertvae-bench build/synth)")
    if p.name == "results.zarr" and p.is_dir():   # a run's store given for its run
        raise ValueError(f"{p}: the result store of the run in {p.parent}; give the run's directory: "
                         f"pertvae-bench info {p.parent}")
    raise ValueError(f"{p}: neither a run directory (holding results.zarr) nor a cube (a zarr store with an "
                     f"'expression' variable); give a run's --out or a cube from pertvae-bench build/synth")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print what PATH holds; exit 2 with one error line when it is neither a cube nor a run."""
    ap = OneLineParser(prog="pertvae-bench info",
                       description="Describe a cube (sizes, drugs with their cell lines, provenance) or a "
                                   "run (fits done, failed and missing by model and drug, config, versions).")
    ap.add_argument("path", help="a cube (zarr) or a run's --out directory")
    args = ap.parse_args(argv)
    try:
        print(describe(args.path), flush=True)
    except (ValueError, ReportError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0

