"""The benchmark's numbers: every method's scores, PertVAE against every other method, each method's
cell-specificity gain, the metrics' agreement, and the per-cell-line and per-gene tables.

Reads the ``score[model, drug, latent, split, method, metric]`` variable of OUT/results.zarr (see
harness/store.py); harness/verdicts.py turns these tables into words and harness/figures.py into figures.

- ``scores.csv``: tidy, one row per (drug, latent, repeat, fold, method, metric) of a done fit, ``value``;
- ``comparisons.csv``: per drug, latent and metric, ``reference`` minus ``method`` over the splits:
  ``mean_diff`` with its 95% interval from the corrected resampled t (Nadeau-Bengio), one-sided paired
  Wilcoxon and corrected-t p-values that the reference is better (``p_wilcoxon``, ``p_corrected_t``) and
  worse (``*_worse``; the Wilcoxon treats the splits as independent, which repeats of the same cell lines
  are not: 0.26 of equal-skill comparisons below 0.05 at 10 x 5 splits, tests/pertvae_core/
  test_verdict_error_rate.py; the verdicts and q-values use the corrected t), the splits where it is
  better and worse (``n_better``, ``n_worse``), the paired splits (``n_splits``) and the distinct test
  sets among them (``n_test_sets``: a repeat that tests the same cell lines again, as every repeat of a drug
  in as many cell lines as folds does, adds a split but no test set; the corrected t's degrees of freedom
  rest on these, pertvae_core.stats). Two ``kind``s of rows: ``versus``, reference ``pertvae``
  against every other method on every metric but the ablation's; and ``cell_gain``, each method's
  cell-specificity gain (reference = the method, method = ``<method> (ablated)``,
  metric delta_pearson: the method on its own test inputs against the same fit
  predicting from another test cell line's, pertvae_core.evaluation). ``q_bh`` / ``q_bh_worse``:
  Benjamini-Hochberg over one family per (latent, metric, kind): every drug x method x direction (better
  and worse together), so a run's verdicts
  share one false discovery rate whatever the number of methods. Sign: mean_diff > 0 means the reference
  scored higher, which is better for every metric but ``mse_z``; the p-values test the metric's own
  direction;
- ``cell_lines.csv`` (from ``cell_score``): per drug, latent, method, metric and test cell line, the mean
  over repeats (each repeat tests every cell line once: its folds are pooled), its 95% t-interval over the
  repeats (how much the score moves with the training set and seed; the cell line's own measurement noise
  is not in it; clipped to the metric's range, :data:`METRIC_RANGE`) and ``n_repeats``;
- ``genes.csv`` (from ``gene_score``): per drug, latent, method and gene, with a repeat's folds pooled so
  that every cell line is tested once: the mean observed and predicted change (z space) over the test cell
  lines with the observed change's 95% interval over cell lines, ``gene_pearson`` (their correlation across
  cell lines within splits, :func:`_gene_stats`) with its Fisher-z 95% interval, ``sign_agreement`` (1 or
  0: whether the mean predicted change has the observed one's sign; 0.5 for a predicted change of 0,
  chance) and ``n_cell_lines``; means over repeats;
- ``metric_agreement.csv``: per latent and metric, Kendall's tau between the methods' ranking by that metric
  and by the primary one, averaged over drugs, and the drugs where the two name different best methods
  (each among its methods scored on the most splits, as the report's best column; ties as printed together).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats as _st

from harness.contenders import model_methods
from harness.grid import POOLED
from harness.results import as_str, method_done
from harness.store import CELL_VAR, GENE_VAR
from pertvae_core.evaluation import ABLATED, HIGHER_IS_BETTER, PRIMARY, RHO_REC
from pertvae_core.methods import REFERENCE
from pertvae_core.metrics import NO_CHANGE_RTOL
from pertvae_core.stats import benjamini_hochberg, paired_comparison, paired_differences

__all__ = ["study_drugs", "method_done", "failed_methods", "scores_table", "comparisons", "cell_line_table",
           "gene_table", "metric_agreement", "full_split_means", "best_methods", "fmt_mean",
           "method_order", "ablated_name", "ALPHA"]

ALPHA = 0.05
SCORE_COLUMNS = ("drug", "latent", "repeat", "fold", "method", "metric", "value")
COMPARISON_COLUMNS = ("drug", "latent", "metric", "kind", "reference", "method", "mean_diff", "ci_low",
                      "ci_high", "p_wilcoxon", "p_corrected_t", "q_bh", "p_wilcoxon_worse",
                      "p_corrected_t_worse", "q_bh_worse", "n_better", "n_worse", "n_splits", "n_test_sets")
CELL_LINE_COLUMNS = ("drug", "latent", "method", "metric", "cell_line", "mean", "ci_low", "ci_high",
                     "n_repeats")
GENE_COLUMNS = ("drug", "latent", "method", "gene", "gene_symbol", "observed_change", "observed_ci_low",
                "observed_ci_high", "predicted_change", "gene_pearson", "pearson_ci_low", "pearson_ci_high",
                "sign_agreement", "n_cell_lines", "n_repeats")
AGREEMENT_COLUMNS = ("latent", "metric", "kendall_tau", "n_drugs", "drugs_with_another_best")
ABLATED_SUFFIX = " (ablated)"


def ablated_name(method: str) -> str:
    """The name of ``method``'s input-ablation control in comparisons.csv."""
    return method + ABLATED_SUFFIX


def study_drugs(ds: xr.Dataset) -> list[str]:
    """The store's drugs without Figure 2's pooled pseudo-drug (harness.grid.POOLED)."""
    return [str(d) for d in ds["drug"].values if str(d) != POOLED]


def method_order(methods: Any) -> list[str]:
    """``methods`` in report order: PertVAE's, the baselines, then a user's own."""
    present = {str(m) for m in methods}
    # dict.fromkeys: a plug-in is owned by every model that may host it (harness.contenders.model_methods)
    order = list(dict.fromkeys(m for ms in model_methods(sorted(present)).values() for m in ms))
    return [m for m in order if m in present] + sorted(present - set(order))


def failed_methods(ds: xr.Dataset) -> pd.DataFrame:
    """One row per (model, drug, latent, method) with failed fits of that method alone (``method_status``):
    ``n_failed`` of ``n_planned`` splits and the first ``reason``; empty for stores without it."""
    cols = ["model", "drug", "latent", "method", "n_failed", "n_planned", "reason"]
    if "method_status" not in ds.data_vars:
        return pd.DataFrame(columns=cols)
    own = as_str(ds["method_status"].transpose("model", "drug", "latent", "split", "method").values)
    why = as_str(ds["method_reason"].transpose("model", "drug", "latent", "split", "method").values)
    rows = []
    for mi, di, li, k in zip(*np.nonzero((own == "failed").any(axis=3)), strict=True):
        failed = own[mi, di, li, :, k] == "failed"
        rows.append({"model": str(ds["model"].values[mi]), "drug": str(ds["drug"].values[di]),
                     "latent": int(ds["latent"].values[li]), "method": str(ds["method"].values[k]),
                     "n_failed": int(failed.sum()), "n_planned": int(failed.size),
                     "reason": why[mi, di, li, :, k][failed][0]})
    return pd.DataFrame(rows, columns=cols)


def scores_table(ds: xr.Dataset) -> pd.DataFrame:
    """Tidy scores of the done fits (see the module docstring; per method, :func:`method_done`); empty
    when the store has no scores."""
    if "score" not in ds.data_vars:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    done = method_done(ds)
    score = ds["score"].transpose("model", "drug", "latent", "split", "method", "metric", ...)
    vals = np.array(score.values, dtype=np.float64)
    models = [str(m) for m in ds["model"].values]
    drugs = as_str(ds["drug"].values)
    methods = [str(m) for m in ds["method"].values]
    metrics = [str(m) for m in ds["metric"].values]
    if RHO_REC in metrics:   # Figure 2's reconstruction of x1, no prediction of x2: not the benchmark's
        vals[..., metrics.index(RHO_REC)] = np.nan
    frames = []
    owned = model_methods(methods)
    for mi, model in enumerate(models):
        for name in owned.get(model, ()):
            if name not in methods:
                continue
            k = methods.index(name)
            block = np.where(done[mi, :, :, :, k, None], vals[mi, :, :, :, k, :], np.nan)
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


# ---------------------------------------------------------------------------------------------------
# comparisons


def _row(drug: str, latent: int, metric: str, kind: str, reference: str, method: str, a: np.ndarray,
         b: np.ndarray, tt: tuple[float, float], groups: list[int] | None) -> dict[str, Any] | None:
    """One comparison of ``a`` (the reference) with ``b`` over the paired splits (``groups``: each one's test
    set, or None), or None without pairs."""
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any() or not min(tt) > 0:
        return None
    up = HIGHER_IS_BETTER.get(metric, True)
    diff = paired_differences(a, b) * (1 if up else -1)   # round-off is neither better nor worse
    res = paired_comparison(a, b, tt[0], tt[1], up, groups)
    return {"drug": drug, "latent": int(latent), "metric": metric, "kind": kind, "reference": reference,
            "method": method,
            **res, "n_better": int((diff > 0).sum()), "n_worse": int((diff < 0).sum())}


def _family_q(df: pd.DataFrame) -> pd.DataFrame:
    """q_bh and q_bh_worse by Benjamini-Hochberg over each family (module docstring)."""
    df["q_bh"] = np.nan
    df["q_bh_worse"] = np.nan
    for _, idx in df.groupby(["latent", "metric", "kind"]).groups.items():
        p = np.concatenate([df.loc[idx, "p_corrected_t"].to_numpy(float),
                            df.loc[idx, "p_corrected_t_worse"].to_numpy(float)])
        q = benjamini_hochberg(p)
        df.loc[idx, "q_bh"], df.loc[idx, "q_bh_worse"] = q[: len(idx)], q[len(idx):]
    return df


def _versus(block: pd.DataFrame, key: tuple[str, int, str], tt: tuple[float, float],
            groups: list[int] | None) -> list:
    """PertVAE against every other method on one (drug, latent, metric)."""
    if REFERENCE not in block:
        return []
    ref = block[REFERENCE].to_numpy(dtype=float)
    return [_row(*key, "versus", REFERENCE, m, ref, block[m].to_numpy(dtype=float), tt, groups)
            for m in method_order(block.columns) if m != REFERENCE]


def _gains(block: pd.DataFrame, ablated: pd.DataFrame, key: tuple[str, int, str],
           tt: tuple[float, float], groups: list[int] | None) -> list:
    """Each method on its own inputs against its input-ablation control, on one (drug, latent, metric)."""
    abl = ablated.reindex(block.index.droplevel(["drug", "latent", "metric"]))
    return [_row(*key, "cell_gain", m, ablated_name(m), block[m].to_numpy(dtype=float),
                 abl[m].to_numpy(dtype=float), tt, groups) for m in method_order(block.columns) if m in abl]


def split_test_sets(labels: Any, repeats: Any, folds: Any) -> list[int] | None:
    """The test set of each split (``repeats[i]``, ``folds[i]``) in ``labels`` ([repeat][fold] -> label: the
    store's ``test_sets`` of one drug, harness.run.test_set_labels), or None where it has none for a split
    (a store written before them: every split then counts as a test set of its own)."""
    if not isinstance(labels, list):
        return None
    out = []
    for r, f in zip((int(x) for x in repeats), (int(x) for x in folds), strict=True):
        if not (0 <= r < len(labels) and isinstance(labels[r], list) and 0 <= f < len(labels[r])):
            return None
        out.append(labels[r][f])
    return out


def comparisons(scores: pd.DataFrame, n_train_test: dict[str, Any], test_sets: dict[str, Any] | None = None
                ) -> pd.DataFrame:
    """PertVAE against every other method, and every method's cell-specificity gain, per (drug, latent,
    metric), with q-values over each family (module docstring); ``test_sets``: drug -> [repeat][fold] ->
    the split's test set (the store's attribute), so that repeats of the same test set count once."""
    if scores.empty:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    wide = scores.pivot_table(index=["drug", "latent", "metric", "repeat", "fold"], columns="method",
                              values="value", aggfunc="first")
    present = set(wide.index.droplevel(["repeat", "fold"]))
    rows = []
    for (drug, latent, metric), block in wide.groupby(level=["drug", "latent", "metric"], sort=False):
        if metric in ABLATED.values():
            continue
        tt = n_train_test.get(drug) or [float("nan"), float("nan")]
        tt = (float(tt[0]), float(tt[1]))
        groups = split_test_sets((test_sets or {}).get(drug), block.index.get_level_values("repeat"),
                                 block.index.get_level_values("fold"))
        rows += _versus(block, (drug, latent, metric), tt, groups)
        if (drug, latent, ABLATED.get(metric)) in present:
            ablated = wide.xs((drug, latent, ABLATED[metric]), level=["drug", "latent", "metric"])
            rows += _gains(block, ablated, (drug, latent, metric), tt, groups)
    cols = [c for c in COMPARISON_COLUMNS if c not in ("q_bh", "q_bh_worse")]
    df = pd.DataFrame([r for r in rows if r is not None], columns=cols)
    return _family_q(df)[list(COMPARISON_COLUMNS)]


# ---------------------------------------------------------------------------------------------------
# metric agreement


def full_split_means(rows: pd.DataFrame) -> pd.Series:
    """Per method, the mean ``value`` of ``rows`` (one drug, latent and metric) among the methods scored on
    the most splits: one whose fits failed on some splits (or have not run yet) is not ranked by a mean over
    fewer, other splits than the rest's (the report's "best" column, harness.verdicts, chooses so too)."""
    means = rows.groupby("method")["value"].mean().dropna()
    n = rows.dropna(subset=["value"]).groupby("method")["value"].count()
    return means[n.reindex(means.index).fillna(0) == n.max()] if len(n) else means


def fmt_mean(v: float) -> str:
    """A mean as the report prints it: 3 decimals, '-' when there is none, and 0.000 for one that rounds to
    zero from below: 'no change' scores exactly 0, and a mean of -2e-4 beside it printed as -0.000 read as
    a lower score, not the tie the printed digits are."""
    if not np.isfinite(v):
        return "-"
    text = f"{v:.3f}"
    return "0.000" if text == "-0.000" else text


def best_methods(means: pd.Series, up: bool = True) -> set[str]:
    """The methods whose mean prints as the best (3 decimals, as the report prints them: a lead of 4e-6
    is no lead, harness.verdicts names such methods together)."""
    if means.empty:
        return set()
    top = fmt_mean(means.max() if up else means.min())
    return {str(m) for m, v in means.items() if fmt_mean(v) == top}


def metric_agreement(scores: pd.DataFrame) -> pd.DataFrame:
    """Per latent and metric: Kendall's tau between the methods' order by that metric and by the primary
    one (each oriented so that better is higher), averaged over the drugs, and the drugs whose best method
    differs between the two (no best method of one among the other's, ties included). Each metric ranks
    only its methods scored on the most splits (:func:`full_split_means`), as the report's best column
    does; a drug with fewer than 3 such methods in common is skipped."""
    rows = []
    if scores.empty:
        return pd.DataFrame(columns=list(AGREEMENT_COLUMNS))
    groups = dict(tuple(scores.groupby(["latent", "drug", "metric"])))
    for latent in sorted(scores["latent"].unique().tolist()):
        keys = [k for k in groups if k[0] == latent]
        others = sorted({k[2] for k in keys if k[2] != PRIMARY and k[2] not in ABLATED.values()})
        drugs = sorted({k[1] for k in keys if k[2] == PRIMARY})
        for metric in others:   # the ablation is a control, not a metric
            taus, differ = [], []
            for drug in drugs:
                if (latent, drug, metric) not in groups:
                    continue
                a = full_split_means(groups[(latent, drug, PRIMARY)])
                up = HIGHER_IS_BETTER.get(metric, True)
                b = full_split_means(groups[(latent, drug, metric)])
                common = a.index.intersection(b.index)
                if len(common) < 3:
                    continue
                oriented = b[common] * (1 if up else -1)
                tau = _st.kendalltau(a[common].to_numpy(), oriented.to_numpy()).statistic
                if np.isfinite(tau):
                    taus.append(tau)
                if not best_methods(a) & best_methods(b, up):
                    differ.append(str(drug))
            if taus:
                rows.append({"latent": int(latent), "metric": metric, "kendall_tau": float(np.mean(taus)),
                             "n_drugs": len(taus), "drugs_with_another_best": ", ".join(differ)})
    return pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))


# ---------------------------------------------------------------------------------------------------
# per cell line and per gene


def _detail_blocks(ds: xr.Dataset, var: str, kind_dim: str, item_dim: str
                   ) -> Iterator[tuple[str, int, str, np.ndarray, np.ndarray]]:
    """(drug, latent, method, repeat of each done split, values [done split, kind, item]) of ``var`` per
    study drug and model method."""
    arr = ds[var].transpose("model", "drug", "latent", "split", "method", kind_dim, item_dim)
    ok = method_done(ds)
    methods = [str(m) for m in ds["method"].values]
    latents = np.asarray(ds["latent"].values, dtype=np.int64)
    repeats = np.asarray(ds["repeat"].values, dtype=np.int64)
    study = set(study_drugs(ds))
    owned = model_methods(methods)
    for mi, model in enumerate(str(m) for m in ds["model"].values):
        names = [n for n in owned.get(model, ()) if n in methods]
        for di, drug in enumerate(str(d) for d in ds["drug"].values):
            if not names or drug not in study:
                continue
            for li, latent in enumerate(latents):
                if not ok[mi, di, li].any():
                    continue
                # one stored chunk (model, drug, latent) at a time: the full variable can be large
                chunk = np.asarray(arr[mi, di, li].values, dtype=np.float64)
                for name in names:
                    done = ok[mi, di, li, :, methods.index(name)]
                    values = chunk[done, methods.index(name)]
                    # a plug-in is owned by every model that may host it; it has values where it ran
                    if done.any() and np.isfinite(values).any():
                        yield drug, int(latent), name, repeats[done], values


def _per_repeat(repeats: np.ndarray, block: np.ndarray, how: str) -> np.ndarray:
    """[repeat, ...]: a repeat's folds pooled: ``how`` = "one" (each item is in one fold: its finite value)
    or "sum" (sums of sufficient statistics, NaN ignored)."""
    out = []
    for r in np.unique(repeats):
        part = block[repeats == r]
        if how == "sum":
            out.append(np.nansum(part, axis=0))
        else:
            ok = np.isfinite(part)
            n = ok.sum(axis=0)
            out.append(np.where(n > 0, np.where(ok, part, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan))
    return np.stack(out)


def _t_interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean over axis 0 of the finite values, its 95% t-interval (NaN with fewer than 2) and the count."""
    ok = np.isfinite(values)
    n = ok.sum(axis=0)
    v = np.where(ok, values, 0.0)
    mean = np.where(n > 0, v.sum(axis=0) / np.maximum(n, 1), np.nan)
    var = np.where(n > 1, (np.where(ok, values - mean, 0.0) ** 2).sum(axis=0) / np.maximum(n - 1, 1), np.nan)
    half = _st.t.ppf(0.975, np.maximum(n - 1, 1)) * np.sqrt(var / np.maximum(n, 1))
    return mean, mean - half, mean + half, n


# The values a per-cell-line metric can take: a t-interval over a few repeats is clipped to them (with 2
# repeats t = 12.7, and "0.947 [0.806, 1.088]" is no correlation's interval).
METRIC_RANGE = {"mse_z": (0.0, np.inf), "de_sign_top50": (0.0, 1.0), "retrieval": (0.0, 1.0)}
CORRELATION_RANGE = (-1.0, 1.0)   # every other cell-line metric is a correlation


def cell_line_table(ds: xr.Dataset) -> pd.DataFrame:
    """Per-test-cell-line scores of the done fits (see the module docstring); empty without ``cell_score``."""
    if CELL_VAR not in ds.data_vars:
        return pd.DataFrame(columns=list(CELL_LINE_COLUMNS))
    metrics = as_str(ds["metric"].values)
    cells = as_str(ds["cell_line"].values)
    frames = []
    for drug, latent, method, repeats, block in _detail_blocks(ds, CELL_VAR, "metric", "cell_line"):
        mean, lo, hi, n = _t_interval(_per_repeat(repeats, block, "one"))  # [metric, cell_line]
        j, c = np.nonzero(n > 0)
        if j.size:
            low, high = np.array([METRIC_RANGE.get(m, CORRELATION_RANGE) for m in metrics[j]]).T
            frames.append(pd.DataFrame({"drug": drug, "latent": latent, "method": method,
                                        "metric": metrics[j], "cell_line": cells[c], "mean": mean[j, c],
                                        "ci_low": np.maximum(lo[j, c], low),
                                        "ci_high": np.minimum(hi[j, c], high), "n_repeats": n[j, c]}))
    if not frames:
        return pd.DataFrame(columns=list(CELL_LINE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(CELL_LINE_COLUMNS)]


# Per split, about the split's own means (:func:`_within_split`): each split's predictions share its
# training set, so their differences between the folds of a repeat are no knowledge of the cell lines.
WITHIN = ("n_splits", "within_predicted2", "within_observed2", "within_cross")


def _within_split(block: np.ndarray, kinds: list[str]) -> np.ndarray:
    """[split, WITHIN, gene] from a block of :data:`pertvae_core.evaluation.GENE_METRICS` sums [split, kind,
    gene]: 1 for a split with cell lines, and the sums of squares and cross-products of d_hat and d about
    that split's means (0 without cell lines)."""
    def k(name: str) -> np.ndarray:
        return block[:, kinds.index(name)]

    n = np.nan_to_num(k("n_cells"))
    ok, m = n > 0, np.maximum(n, 1.0)
    with np.errstate(invalid="ignore"):
        parts = (np.ones_like(n), k("sum_predicted2") - k("sum_predicted") ** 2 / m,
                 k("sum_observed2") - k("sum_observed") ** 2 / m,
                 k("sum_cross") - k("sum_predicted") * k("sum_observed") / m)
    return np.stack([np.where(ok, p, 0.0) for p in parts], axis=1)


def _gene_stats(sums: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per repeat and gene, from pooled sufficient statistics (:data:`GENE_METRICS` and :data:`WITHIN`):
    means, the observed change's 95% interval over cell lines, Pearson across cell lines within splits
    and its Fisher-z interval (NaN with fewer than 3 cell lines beyond one per split).

    Within splits: a repeat's folds are fitted on different training sets, so a method's predictions
    differ between folds even where they know nothing of the cell lines (mean_shift: each fold's training
    mean change), and a fold's training mean moves against its test cell lines' (leave-fold-out); pooled
    about the repeat's means, mean_shift's correlation averaged -0.19 over the demo's null drugs' genes.
    Each split's means are removed (a partial correlation on the splits: Fisher z's n - 3 less one per
    further split). A predicted change the same for every cell line of a split has no correlation: its
    variance from the sums is round-off (sum of squares less n mean^2), so it counts as 0 below
    NO_CHANGE_RTOL of the change's RMS, as :func:`pertvae_core.metrics.change_pearson_rows` judges a row."""
    n = sums["n_cells"]
    df = n - sums["n_splits"] - 2   # Fisher z's n - 3 with the splits' means removed
    with np.errstate(invalid="ignore", divide="ignore"):
        mo, mp = sums["sum_observed"] / n, sums["sum_predicted"] / n
        vo = (sums["sum_observed2"] - n * mo**2) / (n - 1)
        spp, soo, spo = sums["within_predicted2"], sums["within_observed2"], sums["within_cross"]
        varies = spp / n > (NO_CHANGE_RTOL * np.maximum(np.sqrt(sums["sum_predicted2"] / n), 1.0)) ** 2
        r = np.clip(np.where((soo > 0) & varies, spo / np.sqrt(spp * soo), np.nan), -1, 1)
        half = _st.t.ppf(0.975, np.maximum(n - 1, 1)) * np.sqrt(np.maximum(vo, 0) / n)
        zh = _st.norm.ppf(0.975) / np.sqrt(np.where(df > 0, df, np.nan))
        z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    return {"observed": mo, "observed_lo": mo - half, "observed_hi": mo + half, "predicted": mp, "r": r,
            "r_lo": np.tanh(z - zh), "r_hi": np.tanh(z + zh), "n": n}


def _mean_over_repeats(values: np.ndarray) -> np.ndarray:
    ok = np.isfinite(values)
    n = ok.sum(axis=0)
    return np.where(n > 0, np.where(ok, values, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)


def _sign_agreement(obs: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per gene, 1 where the mean predicted change has the mean observed change's sign, else 0; a predicted
    change of 0 (within NO_CHANGE_RTOL, z units) names no direction and counts half, the chance level of
    any prediction unrelated to the change, as in de_sign_top50 (a prediction of no change at 0 would sit
    below chance in the fraction of genes it gets right)."""
    agree = ((obs != 0) & (np.sign(obs) == np.sign(pred))).astype(np.float64)
    return np.where(np.abs(pred) <= NO_CHANGE_RTOL, 0.5, agree)


def gene_table(ds: xr.Dataset) -> pd.DataFrame:
    """Per-gene scores of the done fits (see the module docstring); empty without ``gene_score`` or for a
    store written before the per-gene sufficient statistics."""
    if GENE_VAR not in ds.data_vars or "n_cells" not in set(as_str(ds["gene_metric"].values)):
        return pd.DataFrame(columns=list(GENE_COLUMNS))
    kinds = list(as_str(ds["gene_metric"].values))
    genes = as_str(ds["gene"].values)
    symbols = as_str(ds["gene_symbol"].values) if "gene_symbol" in ds.coords else genes   # older stores: ids
    frames = []
    for drug, latent, method, repeats, block in _detail_blocks(ds, GENE_VAR, "gene_metric", "gene"):
        block = np.concatenate([block, _within_split(block, kinds)], axis=1)
        pooled = _per_repeat(repeats, block, "sum")  # [repeat, kind, gene]
        st = _gene_stats({k: pooled[:, i] for i, k in enumerate([*kinds, *WITHIN])})
        n_rep = (st["n"] > 0).sum(axis=0)
        mean = {k: _mean_over_repeats(v) for k, v in st.items()}
        g = np.flatnonzero(n_rep > 0)
        if g.size:
            obs, pred = mean["observed"][g], mean["predicted"][g]
            frames.append(pd.DataFrame({
                "drug": drug, "latent": latent, "method": method, "gene": genes[g], "gene_symbol": symbols[g],
                "observed_change": obs, "observed_ci_low": mean["observed_lo"][g],
                "observed_ci_high": mean["observed_hi"][g], "predicted_change": pred,
                "gene_pearson": mean["r"][g], "pearson_ci_low": mean["r_lo"][g],
                "pearson_ci_high": mean["r_hi"][g],
                "sign_agreement": _sign_agreement(obs, pred),
                "n_cell_lines": st["n"].max(axis=0)[g].astype(int), "n_repeats": n_rep[g]}))
    if not frames:
        return pd.DataFrame(columns=list(GENE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(GENE_COLUMNS)]


def power_floor(n_splits: int, n_train: float, n_test: float, n_test_sets: int | None = None
                ) -> tuple[float, float]:
    """What J = ``n_splits`` paired splits can show at best: the paired Wilcoxon test's smallest one-sided
    p (1 / 2^J, a method better in every split) and the smallest mean difference, in standard deviations
    of the per-split differences, that the corrected resampled t-test calls at p < 0.05 (on G - 1 degrees
    of freedom for G = ``n_test_sets`` distinct test sets among the splits, J - 1 without)."""
    g = n_splits if n_test_sets is None else n_test_sets
    if g < 2 or not min(n_train, n_test) > 0:
        return float("nan"), float("nan")
    t = float(_st.t.ppf(1 - ALPHA, g - 1))
    return 0.5**n_splits, t * math.sqrt(1.0 / n_splits + n_test / n_train)
