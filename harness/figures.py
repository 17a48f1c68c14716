"""The benchmark's figures, readable without the code: drugs.png and forest.png.

- ``drugs.png``: one panel per drug whose replicates measure a change or are too few to tell
  (harness.verdicts.has_change), in plain words: the correlation of the predicted with the measured change per
  method over the splits (boxes; the splits beyond the whiskers as circles, in the legend), PertVAE's box
  highlighted, the noise ceiling as a grey band (its 95% uncertainty; "ceiling n/a" in the title where the
  replicates are too few to measure it), chance as a line, and above each method whether PertVAE is
  significantly better (green triangle up) or worse (red triangle down) than it (in the legend only where
  PertVAE has scores); the drugs without a measured change share one compact last panel (each method's mean
  per drug, where every method should sit at chance, on a scale of at least +/- 0.1).
- ``forest.png``: PertVAE minus each method per drug with its 95% interval (corrected resampled t; a hollow
  dot where one split gives none), one panel per method on one shared scale, significant differences coloured
  (green: PertVAE better, red: worse).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from datasets.disk import write_replacing
from datasets.files import plural
from harness.benchmark import ALPHA, method_order, study_drugs
from harness.cells import cell
from harness.results import json_attr
from harness.verdicts import has_change, primary_latents
from pertvae_core.evaluation import PRIMARY
from pertvae_core.methods import REFERENCE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["LABELS", "plot_drugs", "plot_forest", "drugs_figure", "forest_figure"]

# Plain names of the built-in methods on figures (a user's own method keeps its name).
LABELS = {"pertvae": "PertVAE", "pertvae_rec": "PertVAE, no drug", "identity": "no change",
          "train_mean": "training mean", "mean_shift": "average change", "pca_latent_linear": "linear (PCA)",
          "ridge_delta": "ridge on change"}
Y_LABEL = "correlation of predicted\nand measured change"
BETTER, WORSE = "tab:green", "tab:red"
NULL_SPAN = 0.1   # the null panel's y axis spans at least +/- this


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(methods: list[str]) -> dict[str, Any]:
    """PertVAE blue; the others from tab10 without blue, green and red (green and red mark the calls), grey
    only for a seventh method (grey is the noise ceiling's band)."""
    plt = _pyplot()
    palette = [plt.cm.tab10(i) for i in (1, 4, 5, 6, 9, 8, 7)]   # grey last: the ceiling band is grey
    others = [m for m in methods if m != REFERENCE]
    out = {m: palette[i % len(palette)] for i, m in enumerate(others)}
    out[REFERENCE] = "tab:blue"
    return out


def _label(method: str) -> str:
    return LABELS.get(method, method)


def _calls(comp: pd.DataFrame, drug: str, latent: int) -> dict[str, str]:
    """method -> "better" | "worse": PertVAE's significant calls on the primary metric."""
    sub = cell(comp, drug, latent, PRIMARY)
    sub = sub[sub["kind"] == "versus"]
    out = {r.method: "better" for r in sub.itertuples() if r.q_bh < ALPHA}
    out.update({r.method: "worse" for r in sub.itertuples() if r.q_bh_worse < ALPHA})
    return out


def _drug_panel(ax: Axes, prim: pd.DataFrame, comp: pd.DataFrame, ceiling: dict, drug: str, latent: int,
                methods: list[str], colors: dict[str, Any]) -> None:
    sub = prim[(prim["drug"] == drug) & (prim["latent"] == latent)]
    data = [sub.loc[sub["method"] == m, "value"].to_numpy(dtype=float) for m in methods]
    keep = [i for i, d in enumerate(data) if d.size]
    c = ceiling.get(drug) or {}
    value, se = c.get("ceiling_delta_pearson", np.nan), c.get("se", np.nan)
    if isinstance(value, int | float) and np.isfinite(value):
        half = 1.96 * se if isinstance(se, int | float) and np.isfinite(se) else 0.0
        ax.axhspan(max(value - half, -1.0), min(value + half, 1.0), color="0.85", zorder=0)   # a correlation
        ax.axhline(value, color="0.45", lw=0.8, ls="--", zorder=1)
    ax.axhline(0.0, color="0.3", lw=0.6, zorder=1)
    if keep:
        # fliers shown: a split far below the rest (a fit that went wrong) is part of the method's record
        bp = ax.boxplot([data[i] for i in keep], positions=keep, widths=0.6, patch_artist=True,
                        manage_ticks=False, medianprops={"color": "k"}, zorder=2,
                        flierprops={"marker": "o", "ms": 3, "mfc": "none", "mec": "0.25"})
        for patch, i in zip(bp["boxes"], keep, strict=True):
            ref = methods[i] == REFERENCE
            patch.set_facecolor(colors[methods[i]])
            patch.set_alpha(0.95 if ref else 0.45)
            patch.set_linewidth(2.0 if ref else 0.8)
    calls = _calls(comp, drug, latent)
    finite = [v for d in data for v in d if np.isfinite(v)] or [0.0]
    top = max(max(finite), value if np.isfinite(value) else -np.inf)
    for m, call in calls.items():
        if m in methods:
            ax.plot(methods.index(m), top + 0.08, "^" if call == "better" else "v", ms=7,
                    color=BETTER if call == "better" else WORSE, zorder=3, clip_on=False)
    ax.set_ylim(min(min(finite), 0.0) - 0.08, top + 0.16)
    per = sub.groupby("method")["value"].size()   # a method that failed on some splits has fewer
    lo, hi = (int(per.min()), int(per.max())) if not sub.empty else (0, 0)
    no_ceiling = "" if _has_ceiling(ceiling, drug) else "; ceiling n/a"
    splits = plural(hi, "split") if lo == hi else f"{lo}-{hi} splits"
    ax.set_title(f"{drug} ({splits}{no_ceiling})", fontsize=9)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels([_label(m) for m in methods], rotation=50, ha="right", fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)


def _has_ceiling(ceiling: dict, drug: str) -> bool:
    """Whether the drug's noise ceiling was measured (NaN with a reason where its replicates are too few:
    such a panel has no band, and the legend offers none unless another panel has one)."""
    value = (ceiling.get(drug) or {}).get("ceiling_delta_pearson", np.nan)
    return isinstance(value, int | float) and bool(np.isfinite(value))


def _null_panel(ax: Axes, prim: pd.DataFrame, drugs: list[str], latent: int, methods: list[str],
                colors: dict[str, Any]) -> None:
    sub = prim[(prim["latent"] == latent) & prim["drug"].isin(drugs)]
    means = sub.groupby(["drug", "method"])["value"].mean()
    width = 0.8 / max(1, len(methods))
    for j, m in enumerate(methods):
        xs = np.arange(len(drugs)) + (j - (len(methods) - 1) / 2) * width
        ys = [means.get((d, m), np.nan) for d in drugs]
        ax.plot(xs, ys, "o", ms=6 if m == REFERENCE else 4, color=colors[m],
                mec="k" if m == REFERENCE else "none", zorder=3)
    ax.axhline(0.0, color="0.3", lw=0.6)
    # At least +/- NULL_SPAN: a scale zoomed to the noise would make chance-level scatter look like effects.
    span = max(NULL_SPAN, 1.15 * float(np.nanmax(np.abs(means.to_numpy(dtype=float)), initial=0.0)))
    ax.set_ylim(-span, span)
    ax.set_xticks(range(len(drugs)))
    ax.set_xticklabels(drugs, rotation=50, ha="right", fontsize=7)
    ax.set_title("drugs without a measured change: mean per method (chance = 0)", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)


def plot_drugs(ds: xr.Dataset, scores: pd.DataFrame, comp: pd.DataFrame, partial: bool) -> Figure:
    """drugs.png's figure (module docstring)."""
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    prim = scores[scores["metric"] == PRIMARY] if not scores.empty else scores
    latents = primary_latents(scores) if not prim.empty else []
    latent = latents[0] if latents else None   # the headline's
    methods = method_order(prim.loc[prim["latent"] == latent, "method"].unique()) if latents else []
    ceiling = json_attr(ds, "ceiling")
    drugs = study_drugs(ds)
    real = [d for d in drugs if has_change(ceiling, d)]
    null = [d for d in drugs if d not in real]
    ncol = min(4, max(1, len(real)))
    nrow = -(-len(real) // ncol) + (1 if null else 0) if real else 1
    width = max(3.4 * ncol, 6.5)
    fig = plt.figure(figsize=(width, 3.3 * nrow + 1.6), layout="constrained")
    grid = fig.add_gridspec(nrow, ncol)
    colors = _colors(methods)
    if latent is None:
        ax = fig.add_subplot(grid[0, :])
        ax.text(0.5, 0.5, "no scores in this run", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        for k, drug in enumerate(real):
            ax = fig.add_subplot(grid[k // ncol, k % ncol])
            _drug_panel(ax, prim, comp, ceiling, drug, latent, methods, colors)
            if k % ncol == 0:
                ax.set_ylabel(Y_LABEL, fontsize=8)
        if null:
            ax = fig.add_subplot(grid[nrow - 1, :])
            _null_panel(ax, prim, null, latent, methods, colors)
            ax.set_ylabel(Y_LABEL, fontsize=8)
    title = "How well each method predicts the drug's change in held-out cell lines"
    fig.suptitle(title + (f" (latent size {latent})" if latent else "") + (" [PARTIAL]" if partial else ""),
                 fontsize=10)
    handles = [Patch(facecolor=colors[m], alpha=0.95 if m == REFERENCE else 0.45, label=_label(m))
               for m in methods]
    if latent is not None and any(_has_ceiling(ceiling, d) for d in real):
        handles.append(Patch(facecolor="0.85", edgecolor="0.45", ls="--",
                             label="noise ceiling (best possible on average, 95% band)"))
    if latent is not None and real:
        handles.append(Line2D([], [], ls="none", marker="o", ms=3, mfc="none", mec="0.25",
                              label="a split beyond the whiskers (1.5 x the box)"))
    if REFERENCE in methods:   # a run without PertVAE (--models baselines) has no calls to mark
        handles += [Line2D([], [], ls="none", marker="^", color=BETTER,
                           label=f"PertVAE better than it (q < {ALPHA})"),
                    Line2D([], [], ls="none", marker="v", color=WORSE,
                           label=f"PertVAE worse than it (q < {ALPHA})")]
    fig.legend(handles=handles, loc="outside lower center", ncol=max(1, min(len(handles), int(width // 2.6))),
               fontsize=7, frameon=False)
    return fig


def plot_forest(ds: xr.Dataset, comp: pd.DataFrame, partial: bool) -> Figure:
    """forest.png's figure (module docstring)."""
    plt = _pyplot()
    sub = comp[(comp["metric"] == PRIMARY) & (comp["kind"] == "versus")]
    latent = int(sub["latent"].min()) if not sub.empty else None
    sub = sub[sub["latent"] == latent] if latent is not None else sub
    methods = method_order(sub["method"].unique()) if not sub.empty else []
    ceiling = json_attr(ds, "ceiling")
    drugs = sorted(study_drugs(ds), key=lambda d: not has_change(ceiling, d))
    ncol = max(1, len(methods))
    fig, axes = plt.subplots(1, ncol, figsize=(2.3 * ncol + 1.2, 0.28 * len(drugs) + 1.8), sharey=True,
                             sharex=True, squeeze=False, layout="constrained")
    y = np.arange(len(drugs))[::-1]
    no_interval = 0
    for ax, m in zip(axes[0], methods, strict=False):
        rows = sub[sub["method"] == m].set_index("drug")
        for yi, d in zip(y, drugs, strict=True):
            if d not in rows.index:
                continue
            r = rows.loc[d]
            color = BETTER if r["q_bh"] < ALPHA else WORSE if r["q_bh_worse"] < ALPHA else "0.35"
            if not np.isfinite([r["ci_low"], r["ci_high"]]).all():   # one split: a bare dot would pass for
                ax.plot(r["mean_diff"], yi, "o", ms=4, mfc="none", mec=color)   # a precise estimate
                no_interval += 1
                continue
            err = [[r["mean_diff"] - r["ci_low"]], [r["ci_high"] - r["mean_diff"]]]
            ax.errorbar(r["mean_diff"], yi, xerr=err, fmt="o", ms=4, color=color, capsize=2, lw=1)
        ax.axvline(0.0, color="0.3", lw=0.7)
        ax.set_title(f"PertVAE minus\n{_label(m)}", fontsize=8)
        ax.grid(True, axis="x", alpha=0.3)
        ax.tick_params(labelsize=7)
    if methods:
        axes[0, 0].set_xlim(*_forest_span(sub, [d for d in drugs if has_change(ceiling, d)]))
    axes[0, 0].set_yticks(y)
    axes[0, 0].set_yticklabels([d if has_change(ceiling, d) else f"{d} (no measured change)" for d in drugs],
                               fontsize=7)
    if not methods:
        axes[0, 0].text(0.5, 0.5, "no comparisons in this run", ha="center", va="center",
                        transform=axes[0, 0].transAxes)
    fig.supxlabel("difference in correlation of predicted and measured change (95% interval per comparison, "
                  "not adjusted for multiplicity, cut at the axis; green: PertVAE better, red: worse, "
                  "Benjamini-Hochberg q < 0.05" + (f"; hollow: {no_interval} difference(s) on one split, "
                  "no interval" if no_interval else "") + ")", fontsize=8)
    fig.suptitle("PertVAE against each method, per drug" + (f" (latent size {latent})" if latent else "")
                 + (" [PARTIAL]" if partial else ""), fontsize=10)
    return fig


def _forest_span(sub: pd.DataFrame, real: list[str]) -> tuple[float, float]:
    """forest.png's one x range for every panel, so that the panels compare: every difference, and the
    intervals of the drugs with a measured change (those of drugs without one, on few cell lines, can be
    wide enough to squeeze the rest into a line; they are cut at the axis)."""
    intervals = sub.loc[sub["drug"].isin(real), ["ci_low", "ci_high"]].to_numpy(float).ravel()
    ends = np.concatenate([sub["mean_diff"].to_numpy(float), intervals, [0.0]])
    ends = ends[np.isfinite(ends)]
    lo, hi = float(ends.min()), float(ends.max())
    pad = 0.08 * max(hi - lo, 0.1)
    return lo - pad, hi + pad


def save_replacing(fig: Figure, path: Path, dpi: int) -> None:
    """``fig`` saved to ``path`` through a temporary file and a rename (datasets.disk.write_replacing): a full
    disk or a kill mid-save leaves the previous report's figure whole, not a truncated image. The format is
    named, the temporary file's name not ending in it."""
    write_replacing(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".")))


def _save(fig: Figure, path: Path) -> Path:
    save_replacing(fig, path, dpi=110)
    _pyplot().close(fig)
    return path


def drugs_figure(ds: xr.Dataset, scores: pd.DataFrame, comp: pd.DataFrame, out: Path, partial: bool) -> Path:
    """Write drugs.png (:func:`plot_drugs`) into ``out``."""
    return _save(plot_drugs(ds, scores, comp, partial), out / "drugs.png")


def forest_figure(ds: xr.Dataset, comp: pd.DataFrame, out: Path, partial: bool) -> Path:
    """Write forest.png (:func:`plot_forest`) into ``out``."""
    return _save(plot_forest(ds, comp, partial), out / "forest.png")
