"""The benchmark tables: every method's scores, PertVAE against every other method, and the plain verdict.

Reads the ``score[model, drug, latent, split, method, metric]`` variable of OUT/results.zarr (see
harness/store.py) and writes, through harness/report.py:

- ``scores.csv``: tidy, one row per (drug, latent, repeat, fold, method, metric) of a done fit, ``value``;
- ``comparisons.csv``: per drug, latent, metric and method, PertVAE minus the method over the splits:
  ``mean_diff`` with its 95% interval from the corrected resampled t (Nadeau-Bengio), one-sided paired
  Wilcoxon and corrected-t p-values that PertVAE is better, ``q_bh`` = Benjamini-Hochberg over the drugs of
  ``p_corrected_t`` within each (latent, method, metric); and the same for "PertVAE is worse"
  (``p_corrected_t_worse``, ``q_bh_worse``). Sign: mean_diff > 0 means PertVAE scored higher, which is
  better for every metric but ``mse_z`` (lower is better: there mean_diff < 0 means PertVAE is better; the
  p-values always test "better" in the metric's own direction);
- ``benchmark.md``: per drug, every method's mean primary metric (delta_pearson) with the noise ceiling,
  the best method in bold, and one sentence saying whom PertVAE beats and loses to (q < 0.05); with a
  synthetic cube, how those calls match the cube's ground truth; a legend in plain words, and a WARNING line
  naming the drugs whose p-values rest on fewer than MIN_SPLITS splits;
- ``drugs.png``: per drug, the primary metric of every method over splits, the ceiling as a dashed line,
  marks only for PertVAE-vs-method comparisons with q < 0.05, above the method they refer to; one legend
  below the panels;
- ``cell_lines.csv`` (from ``cell_score``): per drug, latent, method, metric and test cell line, the mean
  over the splits that tested that cell line and ``n_splits``;
- ``genes.csv`` (from ``gene_score``): per drug, latent, method and gene, the means over splits of the
  observed and the predicted change (z space, mean over the independent test cell lines), of
  ``gene_pearson`` (their correlation across test cell lines), ``sign_agreement`` (both means non-zero and
  of the same sign) and ``n_splits``.

A user's own methods (``--method``) are scored in the baselines model's fits
(pertvae_core.methods.model_methods). Stores written before ``cell_score``/``gene_score`` existed give empty
cell-line and gene tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from harness.grid import POOLED
from pertvae_core.evaluation import HIGHER_IS_BETTER, PRIMARY
from pertvae_core.methods import MODEL_METHODS, REFERENCE, model_methods
from pertvae_core.stats import benjamini_hochberg, paired_comparison

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["study_drugs", "scores_table", "comparisons", "verdict", "benchmark_markdown", "drugs_figure",
           "plot_drugs", "cell_line_table", "gene_table", "few_splits_line"]

ALPHA = 0.05
MIN_SPLITS = 5  # a p-value over fewer splits gets a warning line
SCORE_COLUMNS = ("drug", "latent", "repeat", "fold", "method", "metric", "value")
COMPARISON_COLUMNS = ("drug", "latent", "metric", "method", "mean_diff", "ci_low", "ci_high", "p_wilcoxon",
                      "p_corrected_t", "q_bh", "p_wilcoxon_worse", "p_corrected_t_worse", "q_bh_worse",
                      "n_splits")
CELL_LINE_COLUMNS = ("drug", "latent", "method", "metric", "cell_line", "mean", "n_splits")
GENE_COLUMNS = ("drug", "latent", "method", "gene", "gene_symbol", "observed_change", "predicted_change",
                "gene_pearson", "sign_agreement", "n_splits")
CELL_VAR, GENE_VAR = "cell_score", "gene_score"  # harness/store.py's per-cell-line and per-gene scores
# What each method predicts, in plain words (benchmark.md's legend).
METHOD_LEGEND = {
    "pertvae": "PertVAE's prediction: the untreated profile encoded, shifted by the drug's learned effect in "
               "the latent space, decoded",
    "pertvae_rec": "PertVAE's reconstruction of the untreated profile, taken as the prediction (the paper's "
                   "comparator: the model without the drug's effect)",
    "identity": "'the drug changes nothing': the treated profile predicted to equal the untreated one "
                "(scores 0 by definition)",
    "train_mean": "the average treated profile of the training cell lines, the same for every cell line",
    "mean_shift": "the untreated profile plus the drug's average change in the training cell lines (one "
                  "change for all cell lines)",
    "pca_latent_linear": "PertVAE's linear twin: a linear drug effect in a PCA code instead of a VAE",
    "ridge_delta": "a linear regression of the change on the untreated profile's principal components "
                   "(Ahlmann-Eltze et al. 2025)",
}


def _json(ds: xr.Dataset, name: str) -> dict:
    raw = ds.attrs.get(name)
    try:
        val = json.loads(raw) if isinstance(raw, str) and raw else {}
    except json.JSONDecodeError:
        return {}
    return val if isinstance(val, dict) else {}


def _str(values: Any) -> np.ndarray:
    """A string array as numpy ``str`` (zarr v3 may hand back StringDType or object arrays)."""
    return np.asarray(values).astype(object).astype(str)


def study_drugs(ds: xr.Dataset) -> list[str]:
    """The store's drugs without Figure 2's pooled pseudo-drug (harness.grid.POOLED)."""
    return [str(d) for d in ds["drug"].values if str(d) != POOLED]


def scores_table(ds: xr.Dataset) -> pd.DataFrame:
    """Tidy scores of the done fits (see the module docstring); empty when the store has no scores."""
    if "score" not in ds.data_vars:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    status = _str(ds["status"].transpose("model", "drug", "latent", "split").values)
    score = ds["score"].transpose("model", "drug", "latent", "split", "method", "metric", ...)
    vals = np.asarray(score.values, dtype=np.float64)
    models = [str(m) for m in ds["model"].values]
    drugs = _str(ds["drug"].values)
    methods = [str(m) for m in ds["method"].values]
    metrics = [str(m) for m in ds["metric"].values]
    frames = []
    owned = model_methods(methods)
    for mi, model in enumerate(models):
        for name in owned.get(model, ()):
            if name not in methods:
                continue
            k = methods.index(name)
            block = np.where((status[mi] == "done")[..., None], vals[mi, :, :, :, k, :], np.nan)
            d, li, s, j = np.nonzero(np.isfinite(block))
            if d.size == 0:
                continue
            frames.append(pd.DataFrame({
                "drug": drugs[d],
                "latent": np.asarray(ds["latent"].values, dtype=np.int64)[li],
                "repeat": np.asarray(ds["repeat"].values, dtype=np.int64)[s],
                "fold": np.asarray(ds["fold"].values, dtype=np.int64)[s],
                "method": name, "metric": np.asarray(metrics)[j], "value": block[d, li, s, j]}))
    if not frames:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(SCORE_COLUMNS)]


def _detail_blocks(ds: xr.Dataset, var: str, kind_dim: str, item_dim: str):
    """(drug, latent, method, values [done split, kind, item]) of ``var`` per study drug and model method."""
    arr = ds[var].transpose("model", "drug", "latent", "split", "method", kind_dim, item_dim)
    status = _str(ds["status"].transpose("model", "drug", "latent", "split").values)
    methods = [str(m) for m in ds["method"].values]
    latents = np.asarray(ds["latent"].values, dtype=np.int64)
    study = set(study_drugs(ds))
    owned = model_methods(methods)
    for mi, model in enumerate(str(m) for m in ds["model"].values):
        names = [n for n in owned.get(model, ()) if n in methods]
        for di, drug in enumerate(str(d) for d in ds["drug"].values):
            if not names or drug not in study:
                continue
            for li, latent in enumerate(latents):
                done = status[mi, di, li] == "done"
                if not done.any():
                    continue
                # one stored chunk (model, drug, latent) at a time: the full variable can be large
                chunk = np.asarray(arr[mi, di, li].values, dtype=np.float64)[done]
                for name in names:
                    yield drug, int(latent), name, chunk[:, methods.index(name)]


def _mean_over_splits(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over axis 0 of the finite values (NaN where none) and their count."""
    ok = np.isfinite(values)
    n = ok.sum(axis=0)
    total = np.where(ok, values, 0.0).sum(axis=0)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan), n


def cell_line_table(ds: xr.Dataset) -> pd.DataFrame:
    """Per-test-cell-line scores of the done fits (see the module docstring); empty without ``cell_score``."""
    if CELL_VAR not in ds.data_vars:
        return pd.DataFrame(columns=list(CELL_LINE_COLUMNS))
    metrics = _str(ds["metric"].values)
    cells = _str(ds["cell_line"].values)
    frames = []
    for drug, latent, method, block in _detail_blocks(ds, CELL_VAR, "metric", "cell_line"):
        mean, n = _mean_over_splits(block)  # [metric, cell_line]
        j, c = np.nonzero(n > 0)
        if j.size:
            frames.append(pd.DataFrame({"drug": drug, "latent": latent, "method": method,
                                        "metric": metrics[j], "cell_line": cells[c], "mean": mean[j, c],
                                        "n_splits": n[j, c]}))
    if not frames:
        return pd.DataFrame(columns=list(CELL_LINE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(CELL_LINE_COLUMNS)]


def gene_table(ds: xr.Dataset) -> pd.DataFrame:
    """Per-gene scores of the done fits (see the module docstring); empty without ``gene_score``."""
    if GENE_VAR not in ds.data_vars:
        return pd.DataFrame(columns=list(GENE_COLUMNS))
    kinds = list(_str(ds["gene_metric"].values))
    genes = _str(ds["gene"].values)
    symbols = _str(ds["gene_symbol"].values) if "gene_symbol" in ds.coords else genes   # older stores: ids
    frames = []
    for drug, latent, method, block in _detail_blocks(ds, GENE_VAR, "gene_metric", "gene"):
        obs, n = _mean_over_splits(block[:, kinds.index("observed_change")])
        pred, _ = _mean_over_splits(block[:, kinds.index("predicted_change")])
        rho, _ = _mean_over_splits(block[:, kinds.index("gene_pearson")])
        g = np.flatnonzero(n > 0)
        if g.size:
            frames.append(pd.DataFrame({
                "drug": drug, "latent": latent, "method": method, "gene": genes[g], "gene_symbol": symbols[g],
                "observed_change": obs[g], "predicted_change": pred[g], "gene_pearson": rho[g],
                "sign_agreement": (obs[g] != 0) & (np.sign(obs[g]) == np.sign(pred[g])), "n_splits": n[g]}))
    if not frames:
        return pd.DataFrame(columns=list(GENE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(GENE_COLUMNS)]


def comparisons(scores: pd.DataFrame, n_train_test: dict[str, Any]) -> pd.DataFrame:
    """PertVAE against every other method per (drug, latent, metric), with BH q-values over the drugs."""
    rows = []
    if scores.empty or REFERENCE not in set(scores["method"]):
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    wide = scores.pivot_table(index=["drug", "latent", "metric", "repeat", "fold"], columns="method",
                              values="value", aggfunc="first")
    for (drug, latent, metric), block in wide.groupby(level=["drug", "latent", "metric"], sort=False):
        if REFERENCE not in block:
            continue
        tt = n_train_test.get(drug) or [float("nan"), float("nan")]
        n_train, n_test = float(tt[0]), float(tt[1])
        ref = block[REFERENCE].to_numpy(dtype=float)
        for method in block.columns:
            if method == REFERENCE:
                continue
            other = block[method].to_numpy(dtype=float)
            if not (np.isfinite(ref) & np.isfinite(other)).any() or not min(n_train, n_test) > 0:
                continue
            res = paired_comparison(ref, other, n_train, n_test, HIGHER_IS_BETTER.get(metric, True))
            rows.append({"drug": drug, "latent": int(latent), "metric": metric, "method": method, **res})
    df = pd.DataFrame(rows, columns=[c for c in COMPARISON_COLUMNS if c not in ("q_bh", "q_bh_worse")])
    df["q_bh"] = np.nan
    df["q_bh_worse"] = np.nan
    for _, idx in df.groupby(["latent", "method", "metric"]).groups.items():
        df.loc[idx, "q_bh"] = benjamini_hochberg(df.loc[idx, "p_corrected_t"].to_numpy(dtype=float))
        df.loc[idx, "q_bh_worse"] = benjamini_hochberg(df.loc[idx, "p_corrected_t_worse"].to_numpy(float))
    return df[list(COMPARISON_COLUMNS)]


def _methods_in(scores: pd.DataFrame) -> list[str]:
    order = [m for ms in MODEL_METHODS.values() for m in ms]
    present = set(scores["method"])
    return [m for m in order if m in present] + sorted(present - set(order))


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def verdict(comp: pd.DataFrame, drug: str, latent: int, metric: str = PRIMARY) -> str:
    """One plain sentence: whom PertVAE beats and loses to on ``metric`` (q < 0.05)."""
    sub = comp[(comp["drug"] == drug) & (comp["latent"] == latent) & (comp["metric"] == metric)]
    if sub.empty:
        return "no comparison (PertVAE or the other methods have no finished fits)"
    beats = sub.loc[sub["q_bh"] < ALPHA, "method"].tolist()
    loses = sub.loc[sub["q_bh_worse"] < ALPHA, "method"].tolist()
    parts = []
    parts.append(f"PertVAE beats {_join(beats)}" if beats else "PertVAE beats no method")
    parts.append(f"loses to {_join(loses)}" if loses else "no method beats it")
    return "; ".join(parts) + " (q < 0.05)."


def _truth_line(ds: xr.Dataset, comp: pd.DataFrame, latent: int) -> str:
    """How the report's calls match a synthetic cube's ground truth ('' for real data)."""
    truth = _json(ds, "ground_truth")
    if not truth:
        return ""
    eff = [d for d, t in truth.items() if t.get("effective")]
    null = [d for d, t in truth.items() if not t.get("effective")]
    sub = comp[(comp["latent"] == latent) & (comp["metric"] == PRIMARY) & (comp["method"] == "identity")]
    called = set(sub.loc[sub["q_bh"] < ALPHA, "drug"])
    found = [d for d in eff if d in called]
    false = [d for d in null if d in called]
    kinds = {d: t.get("kind", "latent_linear") for d, t in truth.items()}
    missed = [f"{d} ({kinds[d]})" for d in eff if d not in called]
    line = (f"Ground truth (synthetic cube): PertVAE predicts the change (delta_pearson above identity's 0, "
            f"q < 0.05) for {len(found)} of {len(eff)} drugs with a real effect and {len(false)} of "
            f"{len(null)} null drugs")
    if missed:
        line += f"; missed: {', '.join(missed)}"
    if false:
        line += f"; false calls: {', '.join(false)}"
    return line + "."


def few_splits_line(n_splits: dict[str, int]) -> str:
    """A WARNING line naming the drugs whose p-values rest on fewer than MIN_SPLITS splits ('' if none)."""
    few = {d: n for d, n in n_splits.items() if n < MIN_SPLITS}
    if not few:
        return ""
    return (f"WARNING: p-values rest on fewer than {MIN_SPLITS} splits for "
            + ", ".join(f"{d} ({n} split{'s' if n != 1 else ''})" for d, n in few.items())
            + "; too few for a reliable test: run more repeats (--n-repeats) or folds (--n-folds).")


def _few_splits(comp: pd.DataFrame) -> dict[str, int]:
    """drug -> the fewest splits behind a finite p-value of a primary-metric comparison."""
    sub = comp[(comp["metric"] == PRIMARY) & np.isfinite(comp["p_corrected_t"].to_numpy(dtype=float))]
    return {str(d): int(n) for d, n in sub.groupby("drug", sort=False)["n_splits"].min().items()}


def _legend(methods: list[str]) -> list[str]:
    """benchmark.md's legend: what each column means, in plain words."""
    lines = ["How to read the table (one row per drug; numbers are the mean delta_pearson over the test cell "
             "lines of all splits, '-' = no finished fit):",
             f"- {PRIMARY}: does the method predict how the drug changes each gene? The Pearson correlation "
             "across genes of the predicted change (x2_hat - x1) with the measured change (x2 - x1) in one "
             "test cell line: 1 = the predicted change goes up and down across the genes like the measured "
             "one, 0 = no better than predicting no change, below 0 = the opposite direction. Genes are "
             "standardized first (the training split's L1000 statistics), so every gene counts alike, "
             "whatever its expression level.",
             "- ceiling: how well two halves of the drug's own replicate measurements agree on that change, "
             "i.e. roughly the best score the data's noise allows (n/a: too few replicates).",
             ]
    lines += [f"- {m}: {METHOD_LEGEND.get(m, 'your own method, added to this run with --method')}."
              for m in methods]
    lines.append(f"- verdict: which methods PertVAE predicts significantly better or worse than "
                 f"(q < {ALPHA}: corrected resampled t-test paired over splits, Benjamini-Hochberg over "
                 "drugs). Bold = the best mean in the row.")
    return lines


def benchmark_markdown(ds: xr.Dataset, scores: pd.DataFrame, comp: pd.DataFrame, partial_line: str) -> str:
    """benchmark.md (see the module docstring)."""
    ceiling = _json(ds, "ceiling")
    lines = [partial_line, ""] if partial_line else []
    warn = few_splits_line(_few_splits(comp))
    if warn:
        lines += [warn, ""]
    lines += [f"Benchmark: how well each method predicts the drug's change in cell lines it never saw "
              f"(primary metric {PRIMARY}; the columns are explained below the tables).", ""]
    if scores.empty:
        return "\n".join(lines + ["(no scores in this run)"]) + "\n"
    prim = scores[scores["metric"] == PRIMARY]
    methods = _methods_in(scores)
    for latent in sorted(prim["latent"].unique().tolist()):
        sub = prim[prim["latent"] == latent]
        means = sub.groupby(["drug", "method"])["value"].mean()
        lines.append(f"### latent {latent}")
        lines.append("")
        lines.append("| drug | ceiling | " + " | ".join(methods) + " | verdict |")
        lines.append("|---|---:|" + "---:|" * len(methods) + "---|")
        for drug in study_drugs(ds):
            vals = {m: means.get((drug, m), np.nan) for m in methods}
            finite = {m: v for m, v in vals.items() if np.isfinite(v)}
            best = max(finite, key=finite.get) if finite else None
            cells = [("**{:.3f}**" if m == best else "{:.3f}").format(v) if np.isfinite(v) else "-"
                     for m, v in vals.items()]
            c = (ceiling.get(drug) or {}).get("ceiling_delta_pearson", np.nan)
            c_txt = f"{c:.3f}" if isinstance(c, int | float) and np.isfinite(c) else "n/a"
            lines.append(f"| {drug} | {c_txt} | " + " | ".join(cells) + f" | {verdict(comp, drug, latent)} |")
        lines.append("")
        truth = _truth_line(ds, comp, latent)
        if truth:
            lines += [truth, ""]
    lines += [*_legend(methods), ""]
    pairing = _json(ds, "pairing")
    if pairing:
        lines.append("Pairing of x1 (control) with x2 (treated) replicates (datasets.pairs): "
                     + "; ".join(f"{d}: {r}" for d, r in pairing.items() if d != POOLED) + ".")
        lines.append("")
    reasons = sorted({(d, v.get("reason", "")) for d, v in ceiling.items() if (v or {}).get("reason")})
    if reasons:
        lines.append("Ceiling n/a: " + "; ".join(f"{d}: {r}" for d, r in reasons) + ".")
    return "\n".join(lines).rstrip() + "\n"


def plot_drugs(ds: xr.Dataset, scores: pd.DataFrame, comp: pd.DataFrame, partial: bool) -> Figure:
    """drugs.png's figure (see the module docstring): one panel per drug, one legend below the panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    drugs = study_drugs(ds)
    prim = scores[scores["metric"] == PRIMARY] if not scores.empty else scores
    latents = sorted(prim["latent"].unique().tolist()) if not prim.empty else []
    latent = latents[0] if latents else None
    methods = _methods_in(prim) if not prim.empty else []
    ceiling = _json(ds, "ceiling")
    ncol = min(4, max(1, len(drugs)))
    nrow = max(1, -(-len(drugs) // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.9 * nrow + 0.8), squeeze=False, sharey=True)
    colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(methods)}
    for ax in axes.ravel()[len(drugs):]:
        ax.set_axis_off()
    for ax, drug in zip(axes.ravel(), drugs, strict=False):
        ax.set_title(drug, fontsize=9)
        ax.axhline(0.0, color="0.6", lw=0.6)
        if latent is None:
            ax.text(0.5, 0.5, "no scores", ha="center", va="center", transform=ax.transAxes)
            continue
        sub = prim[(prim["drug"] == drug) & (prim["latent"] == latent)]
        data = [sub.loc[sub["method"] == m, "value"].to_numpy(dtype=float) for m in methods]
        keep = [i for i, d in enumerate(data) if d.size]
        if keep:
            bp = ax.boxplot([data[i] for i in keep], positions=keep, widths=0.6, patch_artist=True,
                            showfliers=False, manage_ticks=False, medianprops={"color": "k"})
            for patch, i in zip(bp["boxes"], keep, strict=True):
                patch.set_facecolor(colors[methods[i]])
                patch.set_alpha(0.5)
        c = (ceiling.get(drug) or {}).get("ceiling_delta_pearson", np.nan)
        if isinstance(c, int | float) and np.isfinite(c):
            ax.axhline(c, color="k", ls="--", lw=0.8)
        cmp = comp[(comp["drug"] == drug) & (comp["latent"] == latent) & (comp["metric"] == PRIMARY)]
        for _, r in cmp.iterrows():
            if r["method"] not in methods:
                continue
            i = methods.index(r["method"])
            top = np.nanmax(data[i]) if data[i].size else 0.0
            if r["q_bh"] < ALPHA:
                ax.text(i, top + 0.03, "*", ha="center", va="bottom", fontsize=11, color="tab:green")
            elif r["q_bh_worse"] < ALPHA:
                ax.text(i, top + 0.03, "v", ha="center", va="bottom", fontsize=9, color="tab:red")
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=60, ha="right", fontsize=6)
        ax.grid(True, axis="y", alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{PRIMARY} (z space)", fontsize=8)
    fig.suptitle(f"{PRIMARY} per method over splits (latent {latent})" + (" [PARTIAL]" if partial else ""),
                 fontsize=9)
    handles = [Patch(facecolor=colors[m], alpha=0.5, label=m) for m in methods]
    handles += [Line2D([], [], color="k", ls="--", lw=0.8, label="noise ceiling"),
                Line2D([], [], ls="none", marker="$*$", color="tab:green",
                       label=f"PertVAE better than it (q < {ALPHA})"),
                Line2D([], [], ls="none", marker="$v$", color="tab:red",
                       label=f"PertVAE worse than it (q < {ALPHA})")]
    legend = fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4 if ncol == 1 else 5),
                        fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.0))
    bottom = legend.get_window_extent(fig.canvas.get_renderer()).height / fig.bbox.height + 0.01
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


def drugs_figure(ds: xr.Dataset, scores: pd.DataFrame, comp: pd.DataFrame, out: Path, partial: bool) -> Path:
    """Write drugs.png (:func:`plot_drugs`) into ``out``."""
    import matplotlib.pyplot as plt

    fig = plot_drugs(ds, scores, comp, partial)
    path = out / "drugs.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
