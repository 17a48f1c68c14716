"""Table 1, Figure 2 and per-drug distributions from OUT/results.zarr; ``python -m harness.report OUT``.

Reads the store written by harness/store.py (``results[model, drug, latent, split]``, see its docstring) and
writes into OUT:

- ``table1.csv`` / ``table1.md`` / ``table1.tex``: the paper's Table 1, one row per drug and PertVAE latent
  size: mean rho_rec_pert and rho_pred_pert over the done splits (the paper's metrics: Spearman in the raw
  gene space), the paper's one-sided Mann-Whitney p (H1: rho_rec_pert < rho_pred_pert), the paired Wilcoxon
  p, the Nadeau-Bengio corrected t-test p, BH q-values of the corrected-t p over the drugs of each latent
  size; PertVAE's rho_pred_pert_z and delta_pearson (pertvae_core.evaluation); and the baselines' raw
  rho_pred_pert (identity, mean_shift, pca_latent_linear at the same latent size);
- ``scores.csv``, ``comparisons.csv``, ``metric_agreement.csv`` (harness/benchmark.py), ``benchmark.md``
  (harness/verdicts.py), ``drugs.png`` and ``forest.png`` (harness/figures.py): the benchmark;
- ``figure2.png`` / ``.svg``: reconstruction Spearman rho_rec of VAE and PCA by latent size, mean and
  standard deviation over splits (and drugs, in the per-drug scope), the paper's Figure 2; its title says
  which ``figure2_scope`` produced it (pooled: one fit per split on every drug's pairs and the singletons,
  on the pseudo-drug harness.grid.POOLED; per-drug: one fit per drug and split) and which of its models has
  no finished fit (:func:`figure2_drawn`; the summary names the models drawn); the VAE's legend gives the
  share of its fits that ran to ``max_epochs`` instead of stopping early (:func:`figure2_stops`);
- ``cell_lines.csv`` / ``genes.csv``: per-test-cell-line and per-gene scores (harness/benchmark.py), when the
  store has them;
- ``run.json``: a ``report`` block (planned/done/failed/not_run/missing counts, files, and
  ``figure2_vae_stops``: the VAE fits that ran to max_epochs, overall and per latent size, and
  ``partial_methods``) and ``partial``.

Table 1 and benchmark.md end with a legend in plain words and warn where a p-value rests on fewer than
five splits; table1.tex is a captioned table without the bookkeeping columns (n_failed, n_missing).
``load(OUT)`` returns the same tables as pandas DataFrames, read from the store (no csv needed).

Only fits with status "done" count. A fit is *missing* when it is planned and not done (failed or not run),
as in ResultStore.counts(); a report with missing fits is marked partial everywhere it is written: a
PARTIAL line naming the methods whose scores are missing (:func:`missing_methods`: a fit of the baselines in
which only a --method plug-in failed is missing for the plug-in alone), and per row in the csvs' ``partial``
column (the row's method, or either method of a comparison).
"""

# ruff: noqa: E402
# (its imports follow the __main__ hand-off below, which must run before them)
from __future__ import annotations

import sys

if __name__ == "__main__":   # before the heavy imports: a Ctrl-C while they load is one line, exit 130
    from harness.entry import run_module

    sys.exit(run_module("harness.report"))

import contextlib
import dataclasses
import errno
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from datasets.disk import DISK_ERRORS, write_replacing
from datasets.files import plural
from harness import benchmark as bench
from harness import figures, predictions, report_stamp, response_report, verdicts
from harness.contenders import built_in_methods, figure2_models, model_methods, reference_model
from harness.prepare import GENERATED_CUBE, GENERATED_MARKER
from harness.products import products_counts, products_line
from harness.results import (
    StoreReadError,
    as_str,
    check_store_path,
    json_attr,
    load_results,
    paper_metric,
    planned_mask,
)
from harness.store import failed_words, fit_counts_of
from pertvae_core.early_stopping import DIVERGED
from pertvae_core.evaluation import PRIMARY
from pertvae_core.methods import REFERENCE
from pertvae_core.stats import (
    benjamini_hochberg,
    corrected_t_greater,
    mann_whitney_greater,
    test_set_df,
    wilcoxon_greater,
)

TABLE_COLUMNS = ("drug", "latent", "n_cell_lines", "n_splits", "rho_rec_pert", "rho_pred_pert",
                 "p_mannwhitney", "p_wilcoxon", "p_corrected_t", "q_bh", "rho_identity", "rho_meanshift",
                 "rho_pca_latent", "rho_pred_pert_z", "delta_pearson", "n_failed", "n_missing")
BOOKKEEPING = ("n_failed", "n_missing")  # in table1.csv/.md, not in the paper's table1.tex
# What each Table 1 column means, in plain words (table1.md's legend).
TABLE1_LEGEND = {
    "drug": "the compound",
    "latent": "PertVAE's latent size (how many hidden features summarize a profile)",
    "n_cell_lines": "cell lines with both untreated and treated profiles for the drug",
    "n_splits": "cross-validation splits with a finished PertVAE fit (each repeat's folds hold out every "
                "cell line once; with few cell lines the repeats hold out the same sets again, named below "
                "the table); rho_rec_pert, rho_pred_pert and the p-values rest on them, p_corrected_t on "
                "their distinct test sets, each other score column on the splits where its score exists "
                "(fewer are listed below the table)",
    "rho_rec_pert": "how similar PertVAE's reconstruction of the untreated profile is to the treated "
                    "profile (Spearman over all genes, raw expression): the score of ignoring the drug",
    "rho_pred_pert": "the same for PertVAE's prediction of the treated profile; above rho_rec_pert means "
                     "the learned drug effect helps",
    "p_mannwhitney": "the paper's test that rho_pred_pert beats rho_rec_pert (one-sided Mann-Whitney over "
                     "the splits, as if they were independent samples, which they are not: kept to compare "
                     "with the paper, not valid as a p-value here)",
    "p_wilcoxon": "the same test paired by split (one-sided Wilcoxon signed-rank), also as if the splits "
                  "were independent samples: for two equally good methods it is below 0.05 on about a "
                  "quarter of drugs at 10 x 5 splits, as repeats test the same cell lines again; not valid "
                  "as a p-value here",
    "p_corrected_t": "the same with the corrected resampled t-test (Nadeau-Bengio), which allows for the "
                     "splits sharing training cell lines (the other two treat them as independent "
                     "samples); it weighs the size of the differences, not only their ranks, so its p can "
                     "be smaller or larger than theirs",
    "q_bh": "p_corrected_t corrected for testing many drugs (Benjamini-Hochberg false discovery rate over "
            "the drugs of the latent size); the column to read for significance",
    "rho_identity": "rho_pred_pert of predicting no change at all (treated = untreated): whole-profile "
                    "correlations are high even then, because they mostly reflect each gene's usual level",
    "rho_meanshift": "rho_pred_pert of adding the drug's average change in the training cell lines",
    "rho_pca_latent": "rho_pred_pert of PertVAE's linear twin (a linear drug effect in a PCA code)",
    "rho_pred_pert_z": "PertVAE's Spearman over all genes after standardizing each gene, so that highly "
                       "expressed genes do not dominate, per test cell line between replicate means (the "
                       "prediction from half its untreated replicates against the mean of its treated ones), "
                       "then over cell lines: the replicates' noise is averaged out, so it runs higher than "
                       "rho_pred_pert per pair on standardized genes would be, not the paper's number in "
                       "another space",
    "delta_pearson": "does PertVAE predict how the drug changes each gene? Correlation across genes of the "
                     "predicted with the measured change (standardized genes; 0 = no better than predicting "
                     "no change): the benchmark's primary metric, see benchmark.md",
    "n_failed": "PertVAE fits that failed (e.g. diverged)",
    "n_missing": "planned PertVAE fits without a result (failed or not run yet)",
}
# Table 1 column -> (method, metric) in the score variable.
SCORE_COLUMNS = {"rho_pred_pert_z": (REFERENCE, "rho_pred_pert_z"),
                 "delta_pearson": (REFERENCE, "delta_pearson"),
                 "rho_identity": ("identity", "rho_pred_pert"),
                 "rho_meanshift": ("mean_shift", "rho_pred_pert"),
                 "rho_pca_latent": ("pca_latent_linear", "rho_pred_pert")}


class ReportError(ValueError):
    """OUT has no readable result store."""


@dataclass(frozen=True)
class Results:
    """A run's tidy tables (:func:`load`): Table 1, every method's scores, PertVAE's comparisons and the
    methods' cell-specificity gains, the per-cell-line and per-gene scores (empty for stores without them),
    the metrics' agreement, one row per planned fit and the drug-response table (response.csv; empty without
    a response model)."""

    table1: pd.DataFrame
    scores: pd.DataFrame
    comparisons: pd.DataFrame
    cell_lines: pd.DataFrame
    genes: pd.DataFrame
    agreement: pd.DataFrame
    fits: pd.DataFrame
    counts: dict[str, int]  # fit_counts: planned, done, failed, not_run, missing
    response: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    # missing_methods: method -> (its planned fits without its scores, its planned fits)
    missing: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)

    @property
    def partial(self) -> bool:
        """Whether planned fits are missing (failed or not run)."""
        return self.counts["missing"] > 0

    @property
    def partial_methods(self) -> frozenset[str]:
        """The methods with a planned fit whose scores are missing (a fit of the baselines in which only a
        --method plug-in failed makes the plug-in partial, not the baselines)."""
        return frozenset(m for m, (k, _) in self.missing.items() if k)

    def partial_line(self) -> str:
        """The PARTIAL line of the report's files ('' when no planned fit is missing)."""
        return _partial_line(self.counts, self.missing) if self.partial else ""

    def __repr__(self) -> str:
        """A few lines (the tables' sizes and columns), not every table in full."""
        c = self.counts
        lines = [f"Results: {c['done']} of {c['planned']} fits done, {failed_words(c)}"
                 + (" (PARTIAL)" if self.partial else "")]
        for f in dataclasses.fields(self):
            table = getattr(self, f.name)
            if isinstance(table, pd.DataFrame):
                cols = ", ".join(map(str, table.columns[:6])) + (", ..." if table.shape[1] > 6 else "")
                lines.append(f"  .{f.name}: {len(table):,} rows [{cols}]")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# reading


def open_results(out_dir: str | Path) -> xr.Dataset:
    """Load OUT/results.zarr into memory, checked (harness.results.load_results); ReportError if it fails."""
    try:
        return load_results(out_dir)
    except StoreReadError as e:
        raise ReportError(str(e)) from None


def _json_attr(ds: xr.Dataset, name: str) -> dict:
    try:
        return json_attr(ds, name)
    except StoreReadError as e:
        raise ReportError(str(e)) from None


def _status(ds: xr.Dataset) -> np.ndarray:
    return as_str(ds["status"].values)


def figure2_scope(ds: xr.Dataset) -> str:
    """The run's ``figure2_scope`` ("per-drug" for stores written before the setting existed)."""
    science = _json_attr(ds, "config").get("science", {})
    return str(science.get("figure2_scope", "per-drug"))


def fit_counts(ds: xr.Dataset) -> dict[str, int]:
    """planned, done, failed (failed_in_methods: of those, the ones failed in some methods only), not_run
    and missing (= planned - done) fit counts (harness.store.fit_counts_of)."""
    ds = ds.transpose("model", "drug", "latent", "split", ...)
    methods = (as_str(ds["method_status"].transpose("model", "drug", "latent", "split", "method").values)
               if "method_status" in ds.variables else None)
    return fit_counts_of(_status(ds), planned_mask(ds), methods)


# ---------------------------------------------------------------------------------------------------
# Table 1


def _done_values(ds: xr.Dataset, model: str, key: str, drug: str, latent: int) -> np.ndarray:
    """Values over splits of the paper's ``key`` (harness.results.paper_metric) for one (model, drug,
    latent), NaN where the fit is not done."""
    if model not in ds["model"].values:
        return np.full(ds.sizes["split"], np.nan)
    vals = np.asarray(paper_metric(ds, model, key).sel(drug=drug, latent=latent).values, dtype=np.float64)
    done = as_str(ds["status"].sel(model=model, drug=drug, latent=latent).values) == "done"
    return np.where(done, vals, np.nan)


def _score_values(ds: xr.Dataset, method: str, metric: str, drug: str, latent: int,
                  done: xr.DataArray | None) -> np.ndarray:
    """Scores over splits of ``method`` on ``metric`` (from the model producing it), NaN where not done
    (``done``: :func:`harness.benchmark.method_done` as a DataArray)."""
    model = next((m for m, ms in model_methods([method]).items() if method in ms), None)
    if (done is None or "score" not in ds.data_vars or model not in ds["model"].values
            or method not in ds["method"].values or metric not in ds["metric"].values):
        return np.full(ds.sizes["split"], np.nan)
    sel = {"model": model, "drug": drug, "latent": latent, "method": method}
    ok = np.asarray(done.sel(sel).values, dtype=bool)
    cell = ds.sel({**sel, "metric": metric})
    return np.where(ok, np.asarray(cell["score"].values, dtype=np.float64), np.nan)


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def table1(ds: xr.Dataset) -> pd.DataFrame:
    """One row per drug and PertVAE latent size (see the module docstring for the columns)."""
    ds = ds.transpose("model", "drug", "latent", "split", ...)
    drugs = [str(d) for d in ds["drug"].values]
    study = set(bench.study_drugs(ds))
    models = [str(m) for m in ds["model"].values]
    n_cells = _json_attr(ds, "n_cell_lines")
    n_tt = _json_attr(ds, "n_train_test")
    test_sets = _json_attr(ds, "test_sets")
    rows: list[dict[str, Any]] = []
    fewer: list[tuple[str, int, str, int]] = []   # (drug, latent, column, splits) below the row's n_splits
    repeated: list[tuple[str, int, int, int]] = []   # (drug, latent, splits, distinct test sets among them)
    ref = reference_model()   # the model of the paper's Table 1 (harness.contenders)
    if ref in models:
        pm = planned_mask(ds)
        st = _status(ds)
        done = (xr.DataArray(bench.method_done(ds), dims=("model", "drug", "latent", "split", "method"),
                             coords={d: ds[d] for d in ("model", "drug", "latent", "split", "method")})
                if "score" in ds.data_vars else None)
        mi = models.index(ref)
        lat_all = [int(x) for x in ds["latent"].values]
        latents = [x for i, x in enumerate(lat_all) if pm[mi, :, i, :].any()]
        for latent in latents:
            li = lat_all.index(latent)
            for di, drug in enumerate(drugs):
                if drug not in study:
                    continue
                rec = _done_values(ds, ref, "rho_rec_pert", drug, latent)
                pred = _done_values(ds, ref, "rho_pred_pert", drug, latent)
                ok = np.isfinite(rec) & np.isfinite(pred)
                tt = n_tt.get(drug)
                groups = bench.split_test_sets(test_sets.get(drug), ds["repeat"].values, ds["fold"].values)
                p_t = (corrected_t_greater(pred, rec, float(tt[0]), float(tt[1]), groups)
                       if tt and len(tt) == 2 and min(float(tt[0]), float(tt[1])) > 0 else float("nan"))
                n_sets = test_set_df(pred, rec, groups) + 1
                if n_sets < ok.sum():
                    repeated.append((drug, latent, int(ok.sum()), n_sets))
                cell_st = st[mi, di, li, :]
                row = {
                    "drug": drug, "latent": latent,
                    "n_cell_lines": int(n_cells[drug]) if drug in n_cells else -1,
                    "n_splits": int(ok.sum()),
                    "rho_rec_pert": _nanmean(rec[ok]), "rho_pred_pert": _nanmean(pred[ok]),
                    "p_mannwhitney": mann_whitney_greater(pred[ok], rec[ok]),
                    "p_wilcoxon": wilcoxon_greater(pred, rec),
                    "p_corrected_t": p_t,
                    "q_bh": float("nan"),
                }
                for col, (method, metric) in SCORE_COLUMNS.items():
                    vals = _score_values(ds, method, metric, drug, latent, done)
                    row[col] = _nanmean(vals)
                    k = int(np.isfinite(vals).sum())
                    if 0 < k < row["n_splits"]:
                        fewer.append((drug, latent, col, k))
                row["n_failed"] = int((cell_st == "failed").sum())
                row["n_missing"] = int((pm[mi, di, li, :] & (cell_st != "done")).sum())
                rows.append(row)
    df = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    df.attrs["fewer_splits"] = fewer
    df.attrs["repeated_test_sets"] = repeated
    df.attrs["empty_columns"] = _empty_columns(ds, df)
    for idx in df.groupby("latent").groups.values():
        df.loc[idx, "q_bh"] = benjamini_hochberg(df.loc[idx, "p_corrected_t"].to_numpy(dtype=float))
    return df


def _empty_columns(ds: xr.Dataset, df: pd.DataFrame) -> list[str]:
    """Why the columns of other methods than PertVAE (rho_identity, rho_meanshift, rho_pca_latent) are '-'
    on every row: their model is not in the run, ran at other latent sizes only (Table 1 pairs fits of one
    latent size), or has no finished fit; [] when each has a value somewhere (or the table is empty)."""
    if df.empty:
        return []
    models = [str(m) for m in ds["model"].values]
    pm, lat_all = planned_mask(ds), [int(x) for x in ds["latent"].values]
    why: dict[str, list[str]] = {}
    for col, (method, _) in SCORE_COLUMNS.items():
        if method == REFERENCE or np.isfinite(df[col].to_numpy(dtype=float)).any():
            continue
        model = next((m for m, ms in model_methods([method]).items() if method in ms), None)
        sizes = ([x for i, x in enumerate(lat_all) if pm[models.index(model), :, i, :].any()]
                 if model in models else [])
        if model not in models:
            reason = f"{model} is not in this run (--models {model} adds it)"
        elif not set(sizes) & set(df["latent"]):
            reason = (f"{model} ran at latent {'size' if len(sizes) == 1 else 'sizes'} "
                      f"{', '.join(map(str, sizes))} only, and Table 1 pairs fits of PertVAE's latent size")
        else:
            reason = f"no finished {model} fit at PertVAE's latent sizes gave them a value"
        why.setdefault(reason, []).append(col)
    return [f"'-' on every row of {', '.join(cols)}: {reason}." for reason, cols in why.items()]


def _fmt(col: str, v: Any) -> str:
    if isinstance(v, float | np.floating):
        if math.isnan(v):
            return "-"
        if col.startswith(("p_", "q_")):
            return f"{v:.2e}" if v < 1e-3 else f"{v:.3f}"
        return f"{v:.3f}"
    return str(v)


def _missing_words(counts: dict[str, int]) -> str:
    """'N of M fits missing (F failed, R not run)', or, where some failed in some methods only (their
    other methods scored: not missing), 'N of M fits not done: F failed (...), R not run' (failed_words)."""
    n = f"{counts['missing']} of {counts['planned']} fits"
    if counts.get("failed_in_methods"):
        return f"{n} not done: {failed_words(counts)}, {counts['not_run']} not run"
    return f"{n} missing ({counts['failed']} failed, {counts['not_run']} not run)"


def _partial_line(counts: dict[str, int], missing: dict[str, tuple[int, int]] | None = None) -> str:
    """The PARTIAL line; with ``missing`` (:func:`missing_methods`) it names the methods whose scores are
    missing, and says that the others have all theirs when some do (e.g. only a --method plug-in failed). A
    fit failed in some methods only is not done but not missing either: its other methods are scored."""
    line = f"PARTIAL: {_missing_words(counts)}"
    lacking = {m: v for m, v in (missing or {}).items() if v[0]}
    if not lacking:
        return line
    named = [f"{m} ({k} of {n} fits)" for m, (k, n) in lacking.items()]
    line += ("; scores missing for " + (", ".join(named[:8]) + f" and {len(named) - 8} more methods"
                                        if len(named) > 9 else ", ".join(named)))
    if len(lacking) < len(missing or {}):
        line += "; every other method has all its scores"
    return line


def _method_models(ds: xr.Dataset) -> np.ndarray:
    """Bool [model, method]: the model's fits produce the method: its own methods and its store-only ones
    (Figure 2's vae and pca: a PARTIAL line that left them out said 'every other method has all its scores'
    of a run whose every VAE fit failed), and a --method or --response-method plug-in where the store
    records it in that model's fits (``method_status``; where it records it nowhere, in every model that may
    host it: harness.contenders.model_methods)."""
    from harness.contenders import REGISTRY

    models = [str(m) for m in ds["model"].values]
    methods = [str(m) for m in ds["method"].values]
    owned = {name: (*own, *(REGISTRY[name].stored_methods if name in REGISTRY else ()))
             for name, own in model_methods(methods).items()}
    known = set(built_in_methods())
    has = np.zeros((len(models), len(methods)), dtype=bool)
    if "method_status" in ds.data_vars:
        own = as_str(ds["method_status"].transpose("model", "drug", "latent", "split", "method").values)
        has = (own != "").any(axis=(1, 2, 3))
    out = np.zeros((len(models), len(methods)), dtype=bool)
    for mi, model in enumerate(models):
        for k, name in enumerate(methods):
            if name in owned.get(model, ()):
                out[mi, k] = name in known or has[mi, k] or not has[:, k].any()
    return out


def missing_methods(ds: xr.Dataset) -> dict[str, tuple[int, int]]:
    """Method -> (planned fits without its scores, its planned fits), for every method the run's models
    produce (harness.benchmark.method_done decides which scores count): a fit of the baselines in which
    only a --method plug-in failed is missing for the plug-in alone."""
    ds = ds.transpose("model", "drug", "latent", "split", ...)
    pm = planned_mask(ds)[..., None] & _method_models(ds)[:, None, None, None, :]
    lacking = pm & ~bench.method_done(ds)
    methods = [str(m) for m in ds["method"].values]
    return {m: (int(lacking[..., k].sum()), int(pm[..., k].sum())) for k, m in enumerate(methods)
            if pm[..., k].any()}


def _few_splits(df: pd.DataFrame) -> dict[str, int]:
    """drug -> the fewest splits behind a Table 1 row with a finite p-value."""
    ps = df[["p_mannwhitney", "p_wilcoxon", "p_corrected_t"]].to_numpy(dtype=float)
    sub = df[np.isfinite(ps).any(axis=1)]
    return {str(d): int(n) for d, n in sub.groupby("drug", sort=False)["n_splits"].min().items()}


def _fewer_lines(fewer: list[tuple[str, int, str, int]]) -> list[str]:
    """A line naming the score columns that rest on fewer splits than their row's n_splits (a split whose
    held-out cell lines give that score no value), so that n_splits is not read as theirs."""
    if not fewer:
        return []
    by_col: dict[str, list[str]] = {}
    for drug, latent, col, k in fewer:
        by_col.setdefault(col, []).append(f"{drug} at latent {latent} ({k})")
    return ["", "Fewer splits than n_splits behind: " + "; ".join(
        f"{col} on {', '.join(where)}" for col, where in by_col.items()) + "."]


def _repeated_lines(repeated: list[tuple[str, int, int, int]]) -> list[str]:
    """A line naming the rows whose splits hold out the same cell lines again (a drug in as many cell lines
    as folds: every repeat's folds are the same), so that n_splits is not read as that many test sets."""
    if not repeated:
        return []
    where = "; ".join(f"{d} at latent {x}: {verdicts.splits_words(n, g)}" for d, x, n, g in repeated)
    return ["", "Splits that hold out the same cell lines again (with few cell lines the repeats deal some "
            f"folds again; with as many cell lines as folds, every one): {where}. p_corrected_t counts "
            "each test set once (its degrees of freedom: their number - 1); "
            "p_mannwhitney and p_wilcoxon count every split."]


def table1_markdown(df: pd.DataFrame, counts: dict[str, int], products: str = "",
                    missing: dict[str, tuple[int, int]] | None = None) -> str:
    """Markdown Table 1 with its legend; a PARTIAL line on top when fits are missing, a WARNING line when
    p-values rest on fewer than verdicts.MIN_SPLITS splits; ``products`` (harness.products.products_line)
    last."""
    lines = []
    if counts["missing"]:
        lines += [_partial_line(counts, missing), ""]
    warn = verdicts.few_splits_line(_few_splits(df))
    if warn:
        lines += [warn, ""]
    repeated = df.attrs.get("repeated_test_sets", [])
    sets_warn = verdicts.few_test_sets_words({d: (n, g) for d, _, n, g in repeated})
    if sets_warn:
        lines += [sets_warn, ""]
    lines.append(f"Table 1 (the paper's): does PertVAE's prediction of the treated profile beat its "
                 f"reconstruction of the untreated one, per drug? ({counts['done']} of {counts['planned']} "
                 f"fits done; the columns are explained below the table)")
    lines.append("")
    cols = list(df.columns)
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---" if c == "drug" else "---:" for c in cols) + "|")
    for rec in df.itertuples(index=False):
        lines.append("| " + " | ".join(verdicts.md_cell(_fmt(c, v)) for c, v in zip(cols, rec, strict=True))
                     + " |")
    if df.empty:
        lines.append("")
        lines.append("(no PertVAE results in this run)")
    lines += ["", "Columns (means over the splits; '-' = not available; p- and q-values with three decimals, "
                  "below 0.001 in scientific notation, e.g. 2.3e-05):"]
    lines += [f"- {c}: {TABLE1_LEGEND[c]}" for c in cols if c in TABLE1_LEGEND]
    lines += _fewer_lines(df.attrs.get("fewer_splits", []))
    lines += _repeated_lines(repeated)
    lines += [f"\n{line}" for line in df.attrs.get("empty_columns", [])]
    lines += ["", "The rho_* columns are the paper's whole-profile Spearman correlations in the raw gene "
              "space, which mostly measure the genes' usual levels; delta_pearson measures the change. A "
              "prediction that is one number for every gene ranks no gene and counts 0 in them (chance), "
              "not an undefined value left out of the mean."]
    if products:
        lines += ["", products]
    return "\n".join(lines) + "\n"


_TEX = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
        "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
        # LaTeX's default (OT1) text font sets these as an em dash and inverted marks ('A549|ACH': 'A549—ACH')
        "|": r"\textbar{}", "<": r"\textless{}", ">": r"\textgreater{}",
        # drug names such as 'β-lapachone': pdflatex stops at a Greek letter it has no font for
        **{chr(0x3B1 + i): ("o" if g == "omicron" else rf"\ensuremath{{\{g}}}") for i, g in enumerate(
            "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
            "varsigma sigma tau upsilon phi chi psi omega".split())}}


def _tex_escape(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def table1_caption(df: pd.DataFrame, counts: dict[str, int]) -> str:
    """table1.tex's caption, in plain words."""
    n = sorted({int(x) for x in df["n_splits"]}) if not df.empty else []
    splits = (f"{n[0]}" if len(n) == 1 else f"{n[0]}-{n[-1]}") if n else "no"
    text = (f"PertVAE's prediction of drug-treated expression profiles of held-out cell lines. Per drug and "
            f"latent size, means over {splits} cross-validation splits of the Spearman correlation with the "
            f"treated profile of PertVAE's reconstruction of the untreated profile (rho_rec_pert) and of its "
            f"prediction of the treated profile (rho_pred_pert); one-sided p-values that the prediction is "
            f"better (Mann-Whitney as in the paper, paired Wilcoxon, corrected resampled t-test) and "
            f"Benjamini-Hochberg q-values over drugs of the corrected-t p. rho_identity, rho_meanshift and "
            f"rho_pca_latent: the same correlation for predicting no change, the average change and a linear "
            f"latent model; rho_pred_pert_z and delta_pearson: PertVAE on standardized genes, per test cell "
            f"line on replicate means, and on the change itself (correlation of the predicted with the "
            f"measured change), each over the splits "
            f"where it has a value" + (" (fewer for some drugs: table1.md names them)."
                                       if df.attrs.get("fewer_splits") else ".")
            + "".join(f" {line}" for line in df.attrs.get("empty_columns", [])))
    if counts["missing"]:
        text += f" Partial: {_missing_words(counts)}."
    return text


# table1.tex's column heads: the paper's symbols and plain words, not the csv's names.
TEX_HEADERS = {
    "drug": "drug", "latent": "latent", "n_cell_lines": "cell lines", "n_splits": "splits",
    "rho_rec_pert": r"$\rho_{rec,pert}$", "rho_pred_pert": r"$\rho_{pred,pert}$",
    "p_mannwhitney": r"$p$ Mann-Whitney", "p_wilcoxon": r"$p$ Wilcoxon", "p_corrected_t": r"$p$ corr.\ $t$",
    "q_bh": r"$q$ (BH)", "rho_identity": r"$\rho$ no change", "rho_meanshift": r"$\rho$ avg.\ change",
    "rho_pca_latent": r"$\rho$ linear (PCA)", "rho_pred_pert_z": r"$\rho_{pred,pert}$ (z)",
    "delta_pearson": r"$\Delta$ Pearson",
}


def _tex_caption(df: pd.DataFrame, counts: dict[str, int]) -> str:
    """:func:`table1_caption` escaped, naming the columns by their heads (:data:`TEX_HEADERS`)."""
    text = _tex_escape(table1_caption(df, counts)).replace("--", "-{}-")   # a flag, not an en dash
    for col in sorted(TEX_HEADERS, key=len, reverse=True):   # rho_pred_pert_z before rho_pred_pert
        text = text.replace(_tex_escape(col), TEX_HEADERS[col])
    return text


def table1_latex(df: pd.DataFrame, counts: dict[str, int],
                 missing: dict[str, tuple[int, int]] | None = None) -> str:
    """A captioned booktabs table of Table 1 without the bookkeeping columns (a comment line marks a partial
    report)."""
    cols = [c for c in df.columns if c not in BOOKKEEPING]
    out = []
    if counts["missing"]:
        out.append("% " + _partial_line(counts, missing))
    out += [r"\begin{table}[htbp]", r"\centering", r"\caption{" + _tex_caption(df, counts) + "}",
            r"\label{tab:table1}"]
    out.append(r"\begin{tabular}{l" + "r" * (len(cols) - 1) + "}")
    out.append(r"\toprule")
    out.append(" & ".join(TEX_HEADERS.get(c, _tex_escape(c)) for c in cols) + r" \\")
    out.append(r"\midrule")
    for rec in df[cols].itertuples(index=False):
        out.append(" & ".join(_tex_escape(_fmt(c, v)) for c, v in zip(cols, rec, strict=True)) + r" \\")
    out.append(r"\bottomrule")
    out.append(r"\end{tabular}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------
# figures


def figure2_stops(ds: xr.Dataset) -> dict[str, Any]:
    """How Figure 2's VAE fits ended: of the done fits, how many trained until ``max_epochs`` (the cap) rather
    than stopping early (``patience`` epochs without improvement), overall and per latent size. Fits that hit
    the cap might have improved further; if most do, raise max_epochs. One whose patience ran out on the
    cap's epoch itself (best epoch = max_epochs - patience) stopped early as well and is not counted. {}
    without done VAE fits."""
    model = next((c.name for c in figure2_models() if c.trained), None)   # the VAE (harness.contenders)
    if model not in [str(m) for m in ds["model"].values] or "epochs" not in ds.data_vars:
        return {}
    science = _json_attr(ds, "config").get("science", {})
    cap = science.get("max_epochs")
    vae = ds.sel(model=model)
    st = as_str(vae["status"].values)
    epochs = np.asarray(vae["epochs"].values, dtype=np.float64)
    done = (st == "done") & np.isfinite(epochs) & planned_mask(ds)[list(ds["model"].values).index(model)]
    if cap is None or not done.any():
        return {}
    at_cap = done & (epochs >= int(cap)) & ~_patience_ran_out(vae, epochs, science)
    lat_axis = list(vae["status"].dims).index("latent")
    per = {}
    for li, lat in enumerate(int(x) for x in ds["latent"].values):
        d, c = np.take(done, li, axis=lat_axis), np.take(at_cap, li, axis=lat_axis)
        if d.any():
            per[str(lat)] = {"fits": int(d.sum()), "at_max_epochs": int(c.sum()),
                             "mean_epochs": round(float(np.take(epochs, li, axis=lat_axis)[d].mean()), 1)}
    return {"max_epochs": int(cap), "fits": int(done.sum()), "at_max_epochs": int(at_cap.sum()),
            "share_at_max_epochs": round(float(at_cap.sum() / done.sum()), 4), "per_latent": per}


def _patience_ran_out(fits: xr.Dataset, epochs: np.ndarray, science: dict[str, Any]) -> np.ndarray:
    """Whether each fit's last epoch was ``patience`` epochs or more after its best (at ``min_epochs`` or
    later): pertvae_core.early_stopping's rule, which can stop a fit on the cap's epoch too (False where the
    store or the config does not say)."""
    patience = science.get("patience")
    if patience is None or "best_epoch" not in fits.data_vars:
        return np.zeros(epochs.shape, dtype=bool)
    since_best = epochs - np.asarray(fits["best_epoch"].values, dtype=np.float64)
    return (since_best >= int(patience)) & (epochs >= int(science.get("min_epochs") or 0))


def figure2_drawn(ds: xr.Dataset) -> tuple[list[str], list[str]]:
    """(the labels of Figure 2's models in the run with a finished reconstruction score, the labels of those
    in the run without one, e.g. every VAE fit failed): the figure and its words name what it shows."""
    models = [str(m) for m in ds["model"].values]
    pm, st = planned_mask(ds), _status(ds)
    drawn, lacking = [], []
    for c in figure2_models():
        if c.name not in models or not pm[models.index(c.name)].any():
            continue
        mi = models.index(c.name)
        vals = np.asarray(paper_metric(ds, c.name, "rho_rec").values, dtype=np.float64)
        ok = np.isfinite(vals) & (st[mi] == "done") & pm[mi]
        (drawn if ok.any() else lacking).append(c.figure2_label)
    return drawn, lacking


def failures_words(ds: xr.Dataset) -> str:
    """failures.csv's line in the summary: what a rerun does with its fits, as the run's last line says
    (harness.run): a seeded fit that diverged diverges again with the same settings, so "a rerun retries
    them" was false where every failed fit had diverged (``--lr 10``)."""
    ds = ds.transpose("model", "drug", "latent", "split", ...)
    failed = (as_str(ds["status"].values) == "failed") & planned_mask(ds)
    diverged = failed & (np.char.find(as_str(ds["reason"].values), DIVERGED) >= 0)
    n, n_diverged = int(failed.sum()), int(diverged.sum())
    words = FILE_WORDS["failures.csv"]
    if not n_diverged:
        return words
    again = (f"the {n_diverged} that diverged diverge again with the same settings: change them as their "
             "reason says")
    rest = "" if n_diverged == n else "a rerun retries those that did not diverge; "
    return words.replace("a rerun retries them", rest + again)


def figure2_words(ds: xr.Dataset) -> str:
    """figure2.png's line in the summary: the models it draws ('VAE vs PCA' only when both are there)."""
    drawn, lacking = figure2_drawn(ds)
    what = " vs ".join(drawn) + " reconstruction by latent size" if drawn else "no reconstruction drawn"
    none = f"; no finished {' or '.join(lacking)} fit" if lacking else ""
    return f"the paper's Figure 2: {what}{none} (also .svg)"


def _figure2(ds: xr.Dataset, out: Path, partial: bool) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.6), layout="constrained")
    pm = planned_mask(ds)
    models = [str(m) for m in ds["model"].values]
    latents = [int(x) for x in ds["latent"].values]
    st = _status(ds)
    plotted = False
    for c in figure2_models():
        model, color = c.name, c.figure2_color
        if model not in models:
            continue
        mi = models.index(model)
        vals = np.asarray(paper_metric(ds, model, "rho_rec").values, dtype=np.float64)  # drug, latent, split
        vals = np.where(st[mi] == "done", vals, np.nan)
        xs, mean, sd, n = [], [], [], []
        for li, lat in enumerate(latents):
            if not pm[mi, :, li, :].any():
                continue
            v = vals[:, li, :]
            v = v[np.isfinite(v)]
            if v.size == 0:
                continue
            xs.append(lat)
            mean.append(v.mean())
            sd.append(v.std(ddof=1) if v.size > 1 else 0.0)
            n.append(v.size)
        if not xs:
            continue
        x, m, s = np.array(xs), np.array(mean), np.array(sd)
        nfits = str(min(n)) if min(n) == max(n) else f"{min(n)}-{max(n)}"
        capped = ""
        if c.trained and (stops := figure2_stops(ds)):
            by_size = ", ".join(f"{lat}: {v['at_max_epochs'] / v['fits']:.0%}"
                                for lat, v in stops["per_latent"].items())
            capped = (f"; {stops['share_at_max_epochs']:.0%} ran to max_epochs {stops['max_epochs']} without "
                      f"stopping early\n(by latent size {by_size})")   # a 2nd line: the legend is not cut
        ax.plot(x, m, "o-", color=color, label=f"{c.figure2_label}: mean of {nfits} fits per size{capped}")
        ax.fill_between(x, m - s, m + s, color=color, alpha=0.2,
                        label=f"{c.figure2_label}: +/- 1 s.d. over fits")
        # the same s.d. as bars: a band over one latent size has no width and is not seen
        ax.errorbar(x, m, yerr=s, fmt="none", ecolor=color, elinewidth=1, capsize=3, alpha=0.7)
        plotted = True
    ax.set_xscale("log")
    if plotted:
        ticks = sorted({int(x) for line in ax.get_lines() for x in line.get_xdata()})
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
        ax.set_xticks([], minor=True)
        fig.legend(loc="outside lower center", fontsize=7, ncol=1, frameon=False)
    else:
        ax.text(0.5, 0.5, "no VAE/PCA reconstruction results", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel("latent size")
    ax.set_ylabel("Spearman correlation of the reconstructed\nwith the measured untreated profile")
    n_drugs = len(bench.study_drugs(ds))   # the run's (--drugs), not necessarily all of the cube's
    scope = (f"pooled: one fit per split on the pairs of the run's {plural(n_drugs, 'drug')} + "
             "singletons" if figure2_scope(ds) == "pooled"
             else "per drug: mean +/- s.d. over splits and drugs")
    lacking = figure2_drawn(ds)[1]
    ax.set_title(f"Figure 2: reconstruction of held-out cell lines\n({scope})"
                 + (f"\nno finished {' or '.join(lacking)} fit" if lacking else "")
                 + (" [PARTIAL]" if partial else ""), fontsize=9)
    ax.grid(True, alpha=0.3)
    paths = [out / "figure2.png", out / "figure2.svg"]
    for p in paths:
        figures.save_replacing(fig, p, dpi=150)
    plt.close(fig)
    return paths


# ---------------------------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> None:
    write_replacing(path, lambda tmp: tmp.write_text(text))


FIT_COLUMNS = ("model", "drug", "latent", "split", "repeat", "fold", "status", "reason", "epochs",
               "best_epoch", "fit_seconds", "fit_cpu_seconds", "test_loss", "worker", "products")


def fits_table(ds: xr.Dataset) -> pd.DataFrame:
    """One row per planned fit: its status ("done", "failed", "not_run"), reason, epochs, best_epoch,
    fit_seconds (wall), fit_cpu_seconds (CPU time: harness.tasks.cpu_seconds), test_loss, worker and how its
    matrix products were computed (NaN/"" where the store has no value)."""
    ds = ds.transpose("model", "drug", "latent", "split", ...)
    m, d, li, s = np.nonzero(planned_mask(ds))
    status = _status(ds)[m, d, li, s]
    df = pd.DataFrame({
        "model": as_str(ds["model"].values)[m], "drug": as_str(ds["drug"].values)[d],
        "latent": np.asarray(ds["latent"].values, dtype=np.int64)[li], "split": s,
        "repeat": np.asarray(ds["repeat"].values, dtype=np.int64)[s],
        "fold": np.asarray(ds["fold"].values, dtype=np.int64)[s],
        "status": np.where(status == "", "not_run", status)})
    for col in ("reason", "worker", "products"):
        df[col] = as_str(ds[col].values)[m, d, li, s] if col in ds.data_vars else ""
    for col in ("epochs", "best_epoch", "fit_seconds", "fit_cpu_seconds", "test_loss"):
        df[col] = (np.asarray(ds[col].values, dtype=np.float64)[m, d, li, s] if col in ds.data_vars
                   else np.nan)
    return df[list(FIT_COLUMNS)]


def _tables(ds: xr.Dataset) -> Results:
    scores = bench.scores_table(ds)
    return Results(table1=table1(ds), scores=scores,
                   comparisons=bench.comparisons(scores, _json_attr(ds, "n_train_test"),
                                                  _json_attr(ds, "test_sets")),
                   cell_lines=bench.cell_line_table(ds), genes=bench.gene_table(ds),
                   agreement=bench.metric_agreement(scores), fits=fits_table(ds),
                   counts=fit_counts(ds), response=response_report.response_table(ds),
                   missing=missing_methods(ds))


def load(out_dir: str | Path) -> Results:
    """The tidy tables of the run in ``out_dir`` as pandas DataFrames, read from OUT/results.zarr.

    Raises ReportError (naming ``out_dir``) when there is no readable result store.
    """
    with _store_errors():
        return _tables(open_results(out_dir).transpose("model", "drug", "latent", "split", ...))


@contextlib.contextmanager
def _store_errors() -> Any:
    """Raise what the store finds unreadable while the report reads it (harness.results.StoreReadError, e.g.
    a JSON attribute that is not JSON) as ReportError: one ``error:`` line from the CLI and harness.run."""
    try:
        yield
    except StoreReadError as e:
        raise ReportError(str(e)) from None


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_replacing(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6g"))


# What each output is, in the end-of-run summary (file -> words), in this order.
FILE_WORDS = {
    "benchmark.md": "the benchmark: every method per drug, the best one, PertVAE's verdicts and losses, "
                    "whether each method uses the cell line",
    "drugs.png": "each method's score per drug over the splits, with the noise ceiling where the replicates "
                 "measure it",
    "forest.png": "PertVAE minus each method per drug, with 95% intervals",
    "table1.md": "the paper's Table 1 (also .csv, .tex)",
    "figure2.png": "the paper's Figure 2: VAE vs PCA reconstruction by latent size (also .svg)",
    "scores.csv": "tidy tables, also as DataFrames from harness.report.load: scores.csv, comparisons.csv, "
                  "cell_lines.csv, genes.csv, metric_agreement.csv",
    "response.md": "drug response per drug: Dr.VAE and its baselines by AUROC/AUPR (the continuous head by "
                   "Pearson/Spearman/RMSE), with Dr.VAE's verdicts",
    "response.csv": "the same as a table, one row per drug, method and metric (also harness.report.load)",
    "predictions/": "the predicted x2 of each test pair of the fits run with --save-predictions (a fit run "
                    "without it, e.g. retried on a resume without it, has none): <method>/<drug>.h5ad",
    "results.zarr": "every fit's values and status (the resumable store)",
    GENERATED_CUBE: "the synthetic cube a run generated here",
    "failures.csv": "each failed fit with its reason, and its traceback where known (a rerun retries them)",
    "run.json": "the record of the runs (config, versions, counts; each run's command, timings and devices "
                "used) and of the report's files",
    "run.log": "the runs' library logs, warnings and failed fits' tracebacks (appended, timestamped)",
}
# Listed in the summary where they are in OUT: written by the run, not by the report (run.json by both).
RUN_FILES = (GENERATED_CUBE, "failures.csv", "run.json", "run.log")
# run.json where no run recorded itself (a report of a store copied without its run.json).
REPORT_ONLY_RUN_JSON = "the record of the report's files (no run is recorded in it)"
# The same without PertVAE in the run: nothing said about it (forest.png then has no comparison to draw).
FILE_WORDS_WITHOUT_REFERENCE = {
    **{k: v for k, v in FILE_WORDS.items() if k != "forest.png"},
    "benchmark.md": "the benchmark: every method per drug, the best one, whether each method uses the cell "
                    "line",
}
# PertVAE in the run without a finished fit: forest.png is written, and says it has no comparison.
FILE_WORDS_WITHOUT_REFERENCE_FIT = {
    k: FILE_WORDS_WITHOUT_REFERENCE.get(k, "PertVAE minus each method per drug: empty, no finished "
                                           "PertVAE fit to compare") for k in FILE_WORDS}


def parts(ds: xr.Dataset) -> frozenset[str]:
    """The parts of the report the run's models give, so that a run writes only what it has: "table1"
    (the reference model, PertVAE, ran), "figure2" (a reconstruction model ran), "benchmark" (a model
    scored the change of expression: benchmark.md, drugs.png and the tidy csvs), "forest" (the benchmark
    with PertVAE to compare against) and "response" (a response model ran: response.md/.csv).

    A baselines-only run thus gets no Table 1 (PertVAE versus its own reconstruction) and no Figure 2,
    and a response-only run only its response report, instead of empty tables and placeholder figures."""
    from harness.contenders import REGISTRY

    models = [REGISTRY[m] for m in (str(x) for x in ds["model"].values) if m in REGISTRY]
    have = set()
    if any(c.table1 for c in models):
        have.add("table1")
    if any(c.figure2 for c in models):
        have.add("figure2")
    if any(c.methods and PRIMARY in c.metrics for c in models):
        have.add("benchmark")
        if "table1" in have:
            have.add("forest")
    if response_report.has_response(ds):
        have.add("response")
    return frozenset(have)


RESPONSE_ONLY = ("This run is the drug-response study alone: response.md and response.csv are its report; "
                 "there is no benchmark of the predicted change in expression, Table 1 or figure.")
FIGURE2_ONLY = ("This run fits Figure 2's reconstruction models alone (none predicts a drug's change): "
                "figure2.png is its report; there is no benchmark, Table 1 or verdict (--models pertvae "
                "baselines adds them).")


NOT_REDRAWN = " (not redrawn: --no-figures; drawn by an earlier report, perhaps of fewer results)"


def summary_text(out: Path, ds: xr.Dataset, res: Results, written: Sequence[str] | None = None,
                 kept: Sequence[str] = ()) -> str:
    """The end of a run in a few lines: the headline (harness.verdicts.headline) and where every output is
    (``written``: the names of the files this report wrote; default: those in ``out``; ``kept``: figures
    an earlier report drew, which this one did not redraw, said so)."""
    response = response_report.summary_lines(ds)
    lines = []
    if parts(ds) == {"figure2"}:   # 'No scores in this run.' would deny Figure 2's reconstruction scores
        lines = ["Result:", f"  {FIGURE2_ONLY}"]
    elif "benchmark" in parts(ds) or not response:
        lines = ["Result:"] + [f"  {s}" for s in verdicts.headline(ds, res.scores, res.comparisons)]
    lines += response
    if response and "benchmark" not in parts(ds):
        lines.append(RESPONSE_ONLY)
    lines[:0] = verdicts.failed_method_lines(ds)
    if res.partial:
        lines.insert(0, res.partial_line())
    width = max(len(k) for k in FILE_WORDS)
    lines.append(f"Files in {out}:")
    files = FILE_WORDS if verdicts.ran(res.scores) else FILE_WORDS_WITHOUT_REFERENCE_FIT
    if "forest" not in parts(ds):   # no PertVAE in the run: no forest.png
        files = FILE_WORDS_WITHOUT_REFERENCE
    if res.scores.empty:   # the figure says 'no scores in this run'
        files = {**files, "drugs.png": "each method's score per drug: empty, no scores in this run"}
    shown = set(written) | set(kept) if written is not None else {n for n in files if (out / n).exists()}
    files = {**files, "figure2.png": figure2_words(ds)} if "figure2.png" in shown else files
    files = {**files, "response.md": response_report.file_words(ds)} if "response.md" in shown else files
    if (out / predictions.DIR).is_dir():   # written by the run's fits (--save-predictions), not the report
        shown.add("predictions/")
    shown |= {n for n in RUN_FILES if (out / n).is_file() or n == GENERATED_CUBE and (out / n).is_dir()}
    if "failures.csv" in shown:
        files = {**files, "failures.csv": failures_words(ds)}
    if (out / GENERATED_MARKER).is_file():
        how = f"{files[GENERATED_CUBE]} (its preset and seed: {GENERATED_MARKER})"
        files = {**files, GENERATED_CUBE: how}
    if "run.json" in shown and "timings" not in _run_json(out):
        files = {**files, "run.json": REPORT_ONLY_RUN_JSON}
    lines += [f"  {name.ljust(width)}  {words}" + (NOT_REDRAWN if name in kept else "")
              for name, words in files.items() if name in shown or name == "results.zarr"]
    return "\n".join(lines) + "\n"


def _write_tables(out: Path, ds: xr.Dataset, res: Results, have: frozenset[str]) -> list[Path]:
    """The tables of the report's ``have`` parts (:func:`parts`)."""
    partial_line = res.partial_line()
    written = []
    if "table1" in have:
        _write_csv(out / "table1.csv", res.table1)
        _write_text(out / "table1.md",
                    table1_markdown(res.table1, res.counts, products_line(ds), res.missing))
        _write_text(out / "table1.tex", table1_latex(res.table1, res.counts, res.missing))
        written += [out / "table1.csv", out / "table1.md", out / "table1.tex"]
    if "benchmark" in have:
        tidy = {"scores.csv": res.scores, "comparisons.csv": res.comparisons,
                "metric_agreement.csv": res.agreement}
        if bench.CELL_VAR in ds.data_vars:
            tidy["cell_lines.csv"] = res.cell_lines
        if bench.GENE_VAR in ds.data_vars:
            tidy["genes.csv"] = res.genes
        for name, frame in tidy.items():
            _write_csv(out / name, frame.assign(partial=_partial_rows(frame, res)))
            written.append(out / name)
        _write_text(out / "benchmark.md", verdicts.benchmark_markdown(ds, res.scores, res.comparisons,
                                                                  partial_line))
        written.append(out / "benchmark.md")
    return written + response_report.write_response_report(ds, out, partial_line, res.partial_methods)


def _partial_rows(frame: pd.DataFrame, res: Results) -> Any:
    """The ``partial`` column of a tidy csv: per row, whether its method (in comparisons.csv, either of the
    two compared) has planned fits without scores; a table without a method column (metric_agreement.csv,
    over every method) is partial when any method is."""
    if "method" not in frame.columns:
        return bool(res.partial_methods)
    hit = frame["method"].astype(str).str.removesuffix(bench.ABLATED_SUFFIX).isin(res.partial_methods)
    if "reference" in frame.columns:
        hit |= frame["reference"].astype(str).isin(res.partial_methods)
    return hit.to_numpy(dtype=bool)


# (report part, figure file): a re-render without figures keeps those already in OUT and lists them.
FIGURES = (("figure2", "figure2.png"), ("benchmark", "drugs.png"), ("forest", "forest.png"))


def _write_figures(out: Path, ds: xr.Dataset, res: Results, have: frozenset[str]) -> list[Path]:
    """The figures of the report's ``have`` parts (:func:`parts`)."""
    written = _figure2(ds, out, res.partial) if "figure2" in have else []
    if "benchmark" in have:
        written.append(figures.drugs_figure(ds, res.scores, res.comparisons, out, res.partial))
    if "forest" in have:
        written.append(figures.forest_figure(ds, res.comparisons, out, res.partial))
    return written


def render_report(out_dir: str | Path, with_figures: bool = True) -> Path:
    """Write the report's parts the run has (:func:`parts`): table1.csv/.md/.tex, figure2.png/.svg,
    scores.csv, comparisons.csv, metric_agreement.csv, benchmark.md, drugs.png, forest.png, (when the store
    has them) cell_lines.csv and genes.csv, response.md/.csv; then summary.txt (:func:`summary_text`) into
    ``out_dir`` and update run.json.

    ``with_figures=False`` skips the figures. Returns the path of summary.txt, whose first line is the
    PARTIAL line when planned fits are missing; it prints nothing (the run and ``pertvae-bench report``
    print the summary, so the line is printed once).
    """
    with _store_errors():
        return _render_report(Path(out_dir), with_figures)


def _run_json(out: Path) -> dict[str, Any]:
    """OUT/run.json's contents ({} without one; a note when it is not JSON)."""
    if not (out / "run.json").exists():
        return {}
    try:
        info = json.loads((out / "run.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"previous_run_json_unreadable": True}
    return info if isinstance(info, dict) else {"previous_run_json_unreadable": True}


def _begin_render(out: Path) -> None:
    """Before a render writes anything: remove summary.txt and mark run.json's ``report`` unfinished (no
    ``files``), so that a render that stops half-way (Ctrl-C, a full disk) leaves no summary, and no list
    of files, of an earlier report passing for this one (``pertvae-bench info`` says so)."""
    with contextlib.suppress(FileNotFoundError):
        (out / "summary.txt").unlink()
    info = _run_json(out)
    info["report"] = {"unfinished": True, "started": datetime.now(UTC).isoformat()}
    _write_text(out / "run.json", json.dumps(info, indent=2, sort_keys=True, default=str))


def _render_report(out: Path, with_figures: bool) -> Path:
    """:func:`render_report`'s work."""
    ds = open_results(out).transpose("model", "drug", "latent", "split", ...)
    _begin_render(out)
    res = _tables(ds)
    counts, partial = res.counts, res.partial
    have = parts(ds)
    written = _write_tables(out, ds, res, have)
    if with_figures:
        written += _write_figures(out, ds, res, have)
    kept = [] if with_figures else [n for part, n in FIGURES if part in have and (out / n).exists()]
    _write_text(out / "summary.txt", summary_text(out, ds, res, [p.name for p in written], kept))
    written.append(out / "summary.txt")
    run_json = out / "run.json"
    info = _run_json(out)
    info["report"] = {**counts, "partial": partial, "rendered": datetime.now(UTC).isoformat(),
                      "files": sorted(p.name for p in written)}
    if stops := figure2_stops(ds):
        info["report"]["figure2_vae_stops"] = stops
    if ways := products_counts(ds):
        info["report"]["products"] = ways
    info["report"]["partial_methods"] = sorted(res.partial_methods)
    info["partial"] = partial
    _write_text(run_json, json.dumps(info, indent=2, sort_keys=True, default=str))
    return out / "summary.txt"


def _lock(out: Path) -> Any:
    """OUT's lock (harness.outlock) for the report's writes. A run that holds it writes its own report when
    it ends; a report written meanwhile could replace that final report with an older, partial one, so it
    is refused (ReportError), pointing to :func:`load`, which reads the results so far and writes nothing."""
    from harness import outlock

    if not out.is_dir():
        return contextlib.nullcontext()  # render_report says what is wrong with OUT
    try:
        return outlock.acquire(out, "harness.report")
    except outlock.OutBusy as e:
        raise ReportError(f"{out} is being written by {outlock.describe(e.record)}, which writes this report "
                          f"when it ends; to see the results so far without writing into {out}: "
                          f"harness.report.load({str(out)!r}) in Python") from None
    except OSError as e:
        if e.errno in DISK_ERRORS:
            raise ReportError(_unwritable(out, e)) from None
        raise ReportError(f"cannot write the report into {out}: {e.strerror or e}") from None


def _unwritable(out: Path | str, e: OSError) -> str:
    """What stopped the report's writes into OUT (e.errno in DISK_ERRORS), and what to do."""
    fix = "free some space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "make it writable"
    return (f"{DISK_ERRORS[e.errno]} writing the report into {out}: {fix} and run the same command again; a "
            f"report does not change results.zarr")


def _check_out(out: Path) -> None:
    """ReportError when OUT is a file (no run's --out can be one: ``run --out FILE`` is refused) or holds
    no result store; checked before the lock file is created, which a folder that is no run's kept (empty)."""
    if out.exists() and not out.is_dir():
        raise ReportError(f"{out}: is a file, not a run's --out directory (the directory that holds "
                          f"results.zarr)")
    from datasets.cube import is_cube_store

    blocker = next((d for d in out.absolute().parents if d.exists() and not d.is_dir()), None)
    if blocker is not None:   # 'run --out OUT creates one' was the advice, which run refuses too
        raise ReportError(f"{out}: {blocker} is a file, so no run is here; give the --out directory of a run")
    if is_cube_store(out):   # 'run --out CUBE creates one' was the advice, which run refuses
        raise ReportError(f"{out}: is a cube (pertvae-bench info {out} describes it), not a run's --out "
                          f"directory; give the --out directory of a run (pertvae-bench run --data {out} "
                          f"--out DIR makes one)")
    try:
        check_store_path(out)
    except StoreReadError as e:
        raise ReportError(str(e)) from None


def _stdout_to_stderr(quiet: bool) -> contextlib.AbstractContextManager:
    """With ``quiet``, whatever rendering the report prints goes to stderr: stdout stays empty on success
    (:func:`main` puts a partial run's PARTIAL line there too, so that it does not pass silently)."""
    return contextlib.redirect_stdout(sys.stderr) if quiet else contextlib.nullcontext()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.report OUT``: re-render the report of a finished or partial run and print its
    summary (the wide tables stay in files)."""
    from datasets.argparsing import OneLineParser

    ap = OneLineParser(prog="pertvae-bench report",
                       description="Re-render a run's tables and figures from OUT/results.zarr (finished or "
                                   "partial) and print its summary; the files are listed in docs/report.md.",
                       epilog="exit status: 0 = report written (a partial run's too: its summary starts "
                              "with the PARTIAL line), 1 = report failed (results.zarr "
                              "unchanged; fix what the error: line names), 2 = bad input (one error: line: "
                              "OUT holds no readable result store, is read-only or full, or a run is writing "
                              "it), 130 = interrupted (Ctrl-C), 143 = terminated (SIGTERM); rerun the same "
                              "command.")
    ap.add_argument("out", help="the run's --out directory (holds results.zarr)")
    ap.add_argument("--no-figures", action="store_true",
                    help="write the tables only (faster on a large run; the figures already in OUT stay)")
    ap.add_argument("--quiet", action="store_true",
                    help="print nothing on success; a partial run's PARTIAL line goes to stderr (as errors "
                         "do)")
    args = ap.parse_args(argv)
    try:
        _check_out(Path(args.out))
        with _lock(Path(args.out)), _stdout_to_stderr(args.quiet):
            report_stamp.forget(Path(args.out))
            summary = render_report(args.out, with_figures=not args.no_figures)
            if not args.no_figures:   # a resume keeps a full report of an unchanged store
                report_stamp.record(Path(args.out))
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except OSError as e:
        if e.errno in DISK_ERRORS:
            print(f"error: {_unwritable(args.out, e)}", file=sys.stderr, flush=True)
            return 2
        # e.g. a directory where a report file goes: a traceback, where run says it in one line (exit 1)
        where = e.filename2 or e.filename
        what = f"{e.strerror or e}: {where}" if where else f"{e.strerror or e}"
        print(f"error: the report failed: {type(e).__name__}: {what} (results.zarr is unchanged: fix that "
              f"and run the same command again)", file=sys.stderr, flush=True)
        return 1
    if not args.quiet:
        print(summary.read_text(), end="", flush=True)
    elif (line := summary.read_text().splitlines()[0]).startswith("PARTIAL: "):
        print(line, file=sys.stderr, flush=True)   # --quiet: a partial report does not pass silently
    return 0

