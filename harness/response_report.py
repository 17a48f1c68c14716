"""The drug-response report: per drug, every response method's AUROC and AUPR (Dr.VAE's results layout:
classifier x feature set), and for the continuous head Pearson, Spearman and RMSE, above chance or not, and
Dr.VAE against each method by every metric; OUT/response.md and OUT/response.csv, written by harness.report
when the store has response scores.

From the store's ``score`` (harness.benchmark.scores_table: done fits only), per (drug, latent, method,
metric) for metric in auroc, aupr (the binary head's methods, against Dr.VAE "drvae") and pearson, spearman,
rmse (the continuous head's, against Dr.VAE's continuous head "drvae_continuous"; RMSE: lower is better,
its chance the RMSE of the training mean):
- ``mean`` over the splits with its 95% corrected-t interval (``ci_low``, ``ci_high``: the Nadeau-Bengio
  variance the tests use, so that an interval excluding a constant chance level is a one-sided p < 0.025;
  clipped to the metric's range),
  ``chance`` (the mean of the split's chance level: 0.5 for AUROC, a random ranking's expected AP for AUPR,
  pertvae_core.response_metrics) and
  ``n_splits``, and for AUROC and AUPR ``n_one_class``: the method's splits whose test cell lines are all of
  one class (its stored AUPR chance, then the test prevalence, 0 or 1), where neither is defined;
- above chance: the method against its chance level on the same splits, by the perturbation benchmark's
  paired tests (pertvae_core.stats.paired_comparison: one-sided Wilcoxon and Nadeau-Bengio corrected t with
  the test/train ratio ``test_train_ratio`` n_test / n_train of the drug's response splits, their labelled
  test and training cell lines with validation excluded, as the perturbation benchmark counts them, and the
  degrees of freedom of the distinct test sets: ``n_test_sets`` among the ``n_splits``, ``paired_test_sets``
  among the ``n_paired``; store attrs ``response_n_train_test``, ``response_test_sets``, harness.run.
  response_meta; a store written before them: 1 / (k - 1) and every split a test set), ``q_chance`` by
  Benjamini-Hochberg over every drug x method of a (latent, metric);
- versus Dr.VAE (``drvae - method``: ``diff_vs_drvae`` with its corrected-t 95% interval, per comparison,
  clipped to the range a difference of the metric can take,
  ``q_better``, ``q_worse``: Dr.VAE better or worse, Benjamini-Hochberg over every drug x method x direction
  of a (latent, metric), as harness.benchmark's comparisons) and the verdict: Dr.VAE "beats", "loses to" or
  is "not distinguishable from" the method at q < 0.05. A method that scores exactly its chance level on
  every split (the training prior's AUROC and AUPR, the drug mean's RMSE, Pearson and Spearman) is chance
  itself: Dr.VAE against it is Dr.VAE against chance, so its verdict is that test, with q_better and q_worse
  from the chance family (Dr.VAE's q_chance and its below-chance direction, which joins that family;
  ``verdict_family`` "chance", else "versus"), not a second test of the same difference with another q. The
  identity-perturbation ablation (drvae_identity) is one of the methods: its row is the ablation's
  difference.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from harness.benchmark import ALPHA, _family_q, power_floor, scores_table, split_test_sets
from harness.contenders import RESPONSE_MODELS, built_in_methods, contender
from harness.products import products_line
from harness.results import as_str, json_attr, planned_mask
from pertvae_core.stats import corrected_t_interval, paired_comparison, test_set_df

__all__ = ["response_table", "response_markdown", "write_response_report", "has_response", "summary_lines",
           "METRICS", "plain_name", "model_legend"]

BINARY, CONTINUOUS = ("auroc", "aupr"), ("pearson", "spearman", "rmse")
METRICS = BINARY + CONTINUOUS
HEADS = (BINARY, CONTINUOUS)     # each head's metrics, its verdict line's metric first
NAMES = {"auroc": "AUROC", "aupr": "AUPR", "pearson": "Pearson", "spearman": "Spearman", "rmse": "RMSE"}
# Dr.VAE's method each metric's methods are compared with (the contenders drvae and drvae_continuous).
REFERENCES = {**dict.fromkeys(BINARY, "drvae"), **dict.fromkeys(CONTINUOUS, "drvae_continuous")}
LOWER_IS_BETTER = ("rmse",)
VERDICTS = ("beats", "loses to", "not distinguishable from")
# The feature-set column of the run's own --response-method plug-ins (they take what they like).
OWN_FEATURES = "your method (--response-method)"
LIST_MAX = 4   # a summary line names at most this many methods of one verdict (:func:`listed`)
MARK = "†"     # response.md: a verdict that is Dr.VAE's test against chance (:func:`_q`)
# Each metric's range: a mean's interval is clipped to it (an AUROC above 1 is no estimate), a difference's
# to the difference of its ends (:func:`_diff_ci`).
BOUNDS = {"auroc": (0.0, 1.0), "aupr": (0.0, 1.0), "pearson": (-1.0, 1.0), "spearman": (-1.0, 1.0),
          "rmse": (0.0, np.inf)}
COLUMNS = ("drug", "latent", "method", "classifier", "features", "metric", "mean", "ci_low", "ci_high",
           "chance", "n_splits", "n_test_sets", "n_one_class", "p_chance", "q_chance", "diff_vs_drvae",
           "diff_ci_low", "diff_ci_high", "splits_ahead_of_drvae", "n_paired", "paired_test_sets", "q_better",
           "q_worse", "verdict", "verdict_family", "test_train_ratio")


def response_methods(ds: xr.Dataset | None = None) -> list[str]:
    """Every method of the registered response models, in report order, then the run's own
    (``--response-method``: a method of ``ds`` that no contender scores; it has response scores only where
    it ran, harness.contenders.model_methods)."""
    built_in = [m for name in RESPONSE_MODELS for m in contender(name).methods]
    known = set(built_in_methods())
    own = [str(m) for m in ds["method"].values if str(m) not in known] if ds is not None else []
    return built_in + own


def has_response(ds: xr.Dataset) -> bool:
    """Whether the store has a response metric (a run with a response model)."""
    return "metric" in ds.coords and bool(set(METRICS) & {str(m) for m in ds["metric"].values})


def label(method: str) -> tuple[str, str]:
    """(classifier, feature set) of a response method, for the table: its contender's ``labels``; the run's
    own method by its name."""
    for name in RESPONSE_MODELS:
        labels = getattr(contender(name), "labels", {})
        if method in labels:
            return labels[method]
    return method, OWN_FEATURES


def plain_name(method: str) -> str:
    """A response method in words for the verdicts ("logistic L2 on x1", "Dr.VAE (identity perturbation)",
    "training prior"); the run's own method by its name. The tables give the same as classifier and
    features, the code names (``--models``, response.csv) are in the legend (:func:`model_legend`)."""
    classifier, features = label(method)
    plain = features in ("", "none", "x1 (model)", OWN_FEATURES)
    return classifier if plain else f"{classifier} on {features}"


def model_legend(methods: list[str]) -> str:
    """Which model (``--models``) scores which of ``methods``, with their code names (response.csv's
    ``method``): one line for response.md ("" without a method: a run whose every fit failed)."""
    parts = []
    for name in RESPONSE_MODELS:
        mine = [m for m in contender(name).methods if m in methods]
        if mine:
            parts.append(f"`{name}` ({', '.join(f'{plain_name(m)}: `{m}`' for m in mine)})")
    own = [m for m in methods if label(m)[1] == OWN_FEATURES]
    if own:
        parts.append(f"`--response-method` ({', '.join(f'`{m}`' for m in own)})")
    if not parts:
        return ""
    return "Models (`--models`) and their methods' code names (response.csv): " + "; ".join(parts) + "."


def _mean_ci(v: np.ndarray, metric: str, tt: tuple[float, float], groups: list | None = None
             ) -> tuple[float, float, float]:
    """Mean of the finite values with its corrected-t 95% interval, clipped to the metric's range: the
    variance the chance test uses (pertvae_core.stats.corrected_t_interval against 0), so that an interval
    excluding a constant chance level and a one-sided p < 0.025 against it say the same (a plain t-interval
    would exclude chance at p = 0.1)."""
    mean, lo, hi = corrected_t_interval(v, np.zeros_like(v), tt[0], tt[1], groups=groups)
    low, high = BOUNDS.get(metric, (-np.inf, np.inf))
    return mean, max(lo, low) if np.isfinite(lo) else lo, min(hi, high) if np.isfinite(hi) else hi


def _diff_ci(vs: dict, metric: str) -> tuple[float, float]:
    """A difference's 95% interval (``vs``: :func:`_compare`), clipped to what a difference of the metric
    can be (an AUROC's within [-1, 1], a correlation's within [-2, 2]): with few test sets a corrected-t
    interval can pass those, and no difference lies there."""
    lo, hi = vs.get("ci_low", np.nan), vs.get("ci_high", np.nan)
    low, high = BOUNDS.get(metric, (-np.inf, np.inf))
    return (max(lo, low - high) if np.isfinite(lo) else lo), (min(hi, high - low) if np.isfinite(hi) else hi)


def _wide(ds: xr.Dataset) -> pd.DataFrame:
    """[drug, latent, repeat, fold] x (metric, method) of the response methods' done scores."""
    sc = scores_table(ds)
    sc = sc[sc["method"].isin(response_methods(ds))]
    return sc.pivot_table(index=["drug", "latent", "repeat", "fold"], columns=["metric", "method"],
                          values="value", aggfunc="first")


def _compare(a: np.ndarray, b: np.ndarray, metric: str, tt: tuple[float, float], groups: list | None = None
             ) -> dict:
    """paired_comparison of ``a`` with ``b`` in the metric's direction ({} without a finite pair)."""
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return {}
    return paired_comparison(a, b, tt[0], tt[1], metric not in LOWER_IS_BETTER, groups)


def _at_chance(v: np.ndarray, chance: np.ndarray) -> bool:
    """Whether a method scored exactly its chance level on every split it has (the training prior's AUROC
    and AUPR, the drug mean's RMSE, Pearson and Spearman): Dr.VAE against it is then Dr.VAE against chance
    (:func:`_q`)."""
    ok = np.isfinite(v)
    return bool(ok.any()) and bool(np.allclose(v[ok], chance[ok], rtol=1e-12, atol=1e-12))


def _ahead(v: np.ndarray, ref: np.ndarray | None, metric: str) -> tuple[float, float]:
    """(splits where the method scored better than the reference, splits where both scored), NaN without
    a reference: a plain count beside the test, so that a verdict of "not distinguishable" cannot hide a
    method ahead on every split."""
    if ref is None:
        return np.nan, np.nan
    ok = np.isfinite(v) & np.isfinite(ref)
    ahead = v[ok] < ref[ok] if metric in LOWER_IS_BETTER else v[ok] > ref[ok]
    return float(ahead.sum()), float(ok.sum())


def _chance_of(v: np.ndarray, chance: np.ndarray) -> float:
    """The mean chance level over the splits the mean is taken on (those where the method has a score): a
    split whose metric is undefined (a one-class test fold: AUPR NaN, its chance 0 or 1) is left out of
    both; over every split where the method has none."""
    scored = np.isfinite(v)
    c = chance[scored] if scored.any() else chance
    return float(np.nanmean(c)) if np.isfinite(c).any() else float("nan")


def _one_class(block: pd.DataFrame, metric: str, method: str) -> float:
    """The method's scored splits whose test cell lines are all of one class (their AUPR chance is then the
    test prevalence, 0 or 1): AUROC and AUPR are undefined there for every method alike, so no row is below
    the table's other rows, and only this count says the means are over fewer splits. NaN for the continuous
    head."""
    if metric not in BINARY or ("aupr_chance", method) not in block:
        return np.nan
    return float(np.isin(block[("aupr_chance", method)].to_numpy(float), (0.0, 1.0)).sum())


def _method_rows(block: pd.DataFrame, drug: str, latent: int, metric: str, tt: tuple[float, float],
                 order: list[str], groups: list | None = None) -> list:
    rows, methods = [], [m for m in order if (metric, m) in block]
    reference = REFERENCES[metric]
    ref = block[(metric, reference)].to_numpy(float) if (metric, reference) in block else None
    for m in methods:
        v = block[(metric, m)].to_numpy(float)
        chance = block[(f"{metric}_chance", m)].to_numpy(float)
        mean, lo, hi = _mean_ci(v, metric, tt, groups)
        above = _compare(v, chance, metric, tt, groups)
        vs = _compare(ref, v, metric, tt, groups) if ref is not None and m != reference else {}
        ahead, paired = _ahead(v, ref if m != reference else None, metric)
        diff_lo, diff_hi = _diff_ci(vs, metric)
        rows.append({"drug": drug, "latent": int(latent), "method": m, "classifier": label(m)[0],
                     "features": label(m)[1], "metric": metric, "mean": mean, "ci_low": lo, "ci_high": hi,
                     "chance": _chance_of(v, chance), "n_splits": int(np.isfinite(v).sum()),
                     "n_test_sets": test_set_df(v, v, groups) + 1,
                     "n_one_class": _one_class(block, metric, m),
                     "p_chance": above.get("p_corrected_t", np.nan),
                     "p_chance_worse": above.get("p_corrected_t_worse", np.nan),
                     "at_chance": m != reference and _at_chance(v, chance),
                     "diff_vs_drvae": vs.get("mean_diff", np.nan), "diff_ci_low": diff_lo,
                     "diff_ci_high": diff_hi, "splits_ahead_of_drvae": ahead,
                     "n_paired": paired, "paired_test_sets": vs.get("n_test_sets", np.nan),
                     "test_train_ratio": tt[1] / tt[0], "p_better": vs.get("p_corrected_t", np.nan),
                     "p_worse": vs.get("p_corrected_t_worse", np.nan)})
    return rows


def _block_max(df: pd.DataFrame, column: pd.Series) -> pd.Series:
    """Each row's largest value of ``column`` over its (drug, latent, metric) (NaN where all are)."""
    return column.groupby([df["drug"], df["latent"], df["metric"]]).transform("max")


def _q(df: pd.DataFrame) -> pd.DataFrame:
    """q_chance, q_better and q_worse (module docstring) and the verdict. A method at chance on every split
    leaves the verdict family: Dr.VAE against it is Dr.VAE against chance, so its verdict is that test, in
    the chance family with Dr.VAE's below-chance direction, and one test has one q (not "above chance" in
    one family and "not distinguishable from the training prior" in the other)."""
    at = df["at_chance"].astype(bool)
    ref = df["method"] == df["metric"].map(REFERENCES)
    two_sided = ref & _block_max(df, at.astype(float)).eq(1.0)
    chance = df[["latent", "metric"]].assign(kind="chance", p_corrected_t=df["p_chance"],
                                             p_corrected_t_worse=df["p_chance_worse"].where(two_sided))
    qc = _family_q(chance)
    df["q_chance"] = qc["q_bh"]
    vs = df[["latent", "metric"]].assign(kind="versus", p_corrected_t=df["p_better"].mask(at),
                                         p_corrected_t_worse=df["p_worse"].mask(at))
    q = _family_q(vs)
    df["q_better"] = q["q_bh"].where(~at, _block_max(df, qc["q_bh"].where(two_sided)))
    df["q_worse"] = q["q_bh_worse"].where(~at, _block_max(df, qc["q_bh_worse"].where(two_sided)))
    df["verdict"] = np.where(df["q_better"] < ALPHA, "beats",
                             np.where(df["q_worse"] < ALPHA, "loses to",
                                      np.where(df["q_better"].notna(), "not distinguishable from", "")))
    df["verdict_family"] = np.where(df["verdict"] == "", "", np.where(at, "chance", "versus"))
    return df


def response_table(ds: xr.Dataset) -> pd.DataFrame:
    """One row per (drug, latent, method, metric) of the response methods (module docstring)."""
    if not has_response(ds):
        return pd.DataFrame(columns=list(COLUMNS))
    wide = _wide(ds)
    k = int(ds.attrs.get("n_folds", 5))
    sizes, sets = json_attr(ds, "response_n_train_test"), json_attr(ds, "response_test_sets")
    rows, order = [], response_methods(ds)
    for (drug, latent), block in wide.groupby(level=["drug", "latent"], sort=False):
        given = sizes.get(str(drug))
        # a store written before the sizes: k-fold CV's one fold tested, k - 1 trained (validation included)
        tt = (float(given[0]), float(given[1])) if given and min(given) > 0 else (float(k - 1), 1.0)
        groups = split_test_sets(sets.get(str(drug)), block.index.get_level_values("repeat"),
                                 block.index.get_level_values("fold"))
        for metric in METRICS:
            rows += _method_rows(block, str(drug), int(latent), metric, tt, order, groups)
    df = _scored_only(pd.DataFrame(rows)) if rows else pd.DataFrame()
    if df.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    return _q(df)[list(COLUMNS)]


def _scored_only(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the methods with a score at their (drug, latent) by some metric: a model run at other
    latent sizes only has none there (its empty rows were counted among 'the methods' a verdict line tests,
    'above chance: 5 of 9 methods (all but ... Dr.VAE)', and named 'no AUROC or AUPR')."""
    scored = df.groupby(["drug", "latent", "method"])["n_splits"].transform("max") > 0
    return df[scored].reset_index(drop=True)


def _cell_of(r: pd.Series | None) -> str:
    """A row's mean [95% CI], "—" without one; a mean without an interval says why (it printed
    "[nan, nan]" where the splits hold one test set, on which the corrected t has no degree of freedom)."""
    if r is None or not np.isfinite(r["mean"]):
        return "—"
    if not np.isfinite(r["ci_low"]):
        one = r.get("n_test_sets") == 1 or r["n_splits"] == 1
        return f"{r['mean']:.3f} (no interval" + (": one test set)" if one else ")")
    return f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"


def _q_cell(q: float) -> str:
    """q with 3 significant digits, more where those would put it on the other side of the calls' threshold
    (0.04996 is a call at q < 0.05, not "0.05")."""
    if not np.isfinite(q):
        return "—"
    d = 3
    while (float(f"{q:.{d}g}") < ALPHA) != (q < ALPHA) and d < 9:
        d += 1
    return f"{q:.{d}g}"


def _diff(r: pd.Series) -> str:
    return "" if not np.isfinite(r["diff_vs_drvae"]) else \
        f"{r['diff_vs_drvae']:+.3f} [{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}]"


def _chance_line(sub: pd.DataFrame, head: tuple[str, ...]) -> str:
    """The head's chance levels (the means over the splits of those that vary by split)."""
    level = sub.groupby("metric")["chance"].mean()
    if head == BINARY:
        return (f"Chance: AUROC 0.5, AUPR {level.get('aupr', np.nan):.3f} (a random ranking's average, "
                "above the test prevalence on small test sets).")
    return (f"Continuous response: chance Pearson and Spearman 0, RMSE {level.get('rmse', np.nan):.3f} (the "
            "training mean's).")


def _metric_table(sub: pd.DataFrame, metric: str) -> list[str]:
    """One metric's table: every method's mean, its test against chance, Dr.VAE minus it and the verdict."""
    t = sub[sub["metric"] == metric].set_index("method")
    who = plain_name(REFERENCES[metric])
    first = "classifier" if metric in BINARY else "method"
    side = "below" if metric in LOWER_IS_BETTER else "above"
    name = NAMES[metric]
    lines = [f"| {first} | features | {name} mean [95% CI] | q {side} chance | {who} − method [95% CI] | "
             f"{who} |", "|---|---|---|---|---|---|"]
    top = int(t["n_splits"].max()) if len(t) else 0
    for _, r in t.iterrows():
        verdict = r["verdict"] + (f" {MARK}" if r["verdict_family"] == "chance" else "")
        fewer = f" ({int(r['n_splits'])} of {top} splits)" if 0 < int(r["n_splits"]) < top else ""
        lines.append(f"| {r['classifier']} | {r['features']} | {_cell_of(r)}{fewer} | "
                     f"{_q_cell(r['q_chance'])} | {_diff(r)} | {verdict} |")
    return lines + [""]


CORRELATIONS = {"pearson", "spearman"}
CORRELATION_WHY = "a correlation needs two or more test cell lines whose responses differ"


def _unscored(sub: pd.DataFrame, head: tuple[str, ...]) -> list[str]:
    """A line naming the head's methods without a score by some of its metrics (a correlation on test sets
    of one cell line, or of equal responses), so that a missing row is not read as left out."""
    t = sub[sub["metric"].isin(head) & np.isfinite(sub["mean"].astype(float))]
    methods = dict.fromkeys(sub.loc[sub["metric"].isin(head), "method"])
    lacks = {m: [k for k in head if not ((t["metric"] == k) & (t["method"] == m)).any()] for m in methods}
    lacks = {m: ks for m, ks in lacks.items() if ks}
    if not lacks:
        return []
    why = f" ({CORRELATION_WHY})" if all(set(ks) <= CORRELATIONS for ks in lacks.values()) else ""
    named = "; ".join(f"{plain_name(m)} has no {' or '.join(NAMES[k] for k in ks)}"
                      for m, ks in lacks.items())
    return [f"Not in a table: {named}{why}.", ""]


def _splits(sub: pd.DataFrame) -> int:
    """The splits a (drug, latent)'s methods were scored on, one-class test folds included."""
    return int((sub["n_splits"] + sub["n_one_class"].fillna(0)).max()) if len(sub) else 0


def _one_class_line(sub: pd.DataFrame, head: tuple[str, ...]) -> list[str]:
    """The binary head's line on its splits with a one-class test set (:func:`_one_class`), [] without."""
    rows = sub[sub["metric"].isin(head)]
    k = int(rows["n_one_class"].fillna(0).max()) if head == BINARY and len(rows) else 0
    if k == 0:
        return []
    n = _splits(rows)
    return [f"AUROC and AUPR are undefined on {k} of {n} splits, whose test cell lines are all of one class "
            f"(all sensitive or all resistant): this head's means, tests and verdicts are over the other "
            f"{n - k}.", ""]


def _head_section(sub: pd.DataFrame, head: tuple[str, ...], every_latent: pd.DataFrame,
                  absent: Callable[[str, str, int], str] | None = None) -> list[str]:
    """A head's chance levels, a table per metric, and Dr.VAE's verdicts in words, by its first metric with
    a comparison (:func:`line_metrics`: RMSE where test sets of one cell line leave Pearson and Spearman
    undefined)."""
    lines = [_chance_line(sub, head), ""] + _one_class_line(sub, head)
    scored = scored_metrics(sub, head) or tuple(k for k in head if (sub["metric"] == k).any())
    for metric in scored:
        lines += _metric_table(sub, metric)
    lines += _unscored(sub, head)
    return lines + [head_line(sub, str(sub["drug"].iloc[0]), line_metrics(sub, head) or scored,
                              every_latent=every_latent, absent=absent), ""]


def scored_metrics(sub: pd.DataFrame, head: tuple[str, ...]) -> tuple[str, ...]:
    """The head's metrics that some method has a score by in ``sub`` (one drug at one latent size), in the
    head's order. A drug whose test sets leave Pearson undefined beside drugs that have it has Pearson rows
    without scores."""
    return tuple(k for k in head if (sub.loc[sub["metric"] == k, "n_splits"] > 0).any())


def line_metrics(sub: pd.DataFrame, head: tuple[str, ...]) -> tuple[str, ...]:
    """:func:`scored_metrics`, the first with a comparison with Dr.VAE (a verdict) put first: a drug's verdict
    line is by it. Judged by the head's first metric, a drug without it, or with Dr.VAE alone scored by it,
    read "no comparison" though its RMSE compares."""
    scored = scored_metrics(sub, head)
    compared = [k for k in scored if sub.loc[sub["metric"] == k, "verdict"].isin(VERDICTS).any()]
    first = compared[:1] or list(scored[:1])
    return (*first, *(k for k in scored if k not in first))


def _drug_section(sub: pd.DataFrame, drug: str, latent: int, every_latent: pd.DataFrame,
                  absent: Callable[[str, str, int], str] | None = None) -> list[str]:
    """A drug's section: the binary head's tables and the continuous head's, for those the run has."""
    lines = [f"## {drug} (latent {latent}, {_splits(sub)} splits)", ""]
    for head in HEADS:
        if sub["metric"].isin(head).any():
            lines += _head_section(sub, head, every_latent, absent)
    return lines


def listed(names: list[str], among: list[str], every: str = "all") -> str:
    """``names`` (a subset of ``among``) in words: each name when there are few, else a count with the ones
    left out, so that a drug's line stays readable with 17 methods (response.md lists them all). ``every``
    words the whole set: "any of the" after a negation ("not distinguishable from all 17" would read as
    "from some")."""
    if len(names) <= LIST_MAX:
        return "; ".join(names)   # semicolons: a name may hold a comma ("Dr.VAE (continuous head, ...)")
    if len(names) == len(among):
        return f"{every} {len(names)} methods"
    rest = [m for m in among if m not in names]
    if len(rest) == 1:
        return f"{len(names)} of {len(among)} methods (all but {rest[0]})"
    if len(rest) <= LIST_MAX:
        return f"{len(names)} of {len(among)} methods (all but these {len(rest)}: {'; '.join(rest)})"
    return f"{len(names)} of {len(among)} methods (the table in response.md lists them)"


def _verdict_parts(table: pd.DataFrame) -> list[str]:
    """"beats X", "loses to Y", "not distinguishable from Z" for the verdicts that ``table`` has."""
    compared = [plain_name(m) for m in table.index[table["verdict"].isin(VERDICTS)]]
    return [f"{w} " + listed([plain_name(m) for m in table.index[table["verdict"] == w]], compared,
                             "any of the" if w.startswith("not") else "all")
            for w in VERDICTS if (table["verdict"] == w).any()]


def verdict_line(table: pd.DataFrame, drug: str, metric: str = "AUROC", who: str = "Dr.VAE",
                 others: pd.DataFrame | None = None, only_losses: bool = False, why: str = "") -> str:
    """``who``'s verdicts on one drug in words (q < 0.05) by ``metric``'s rows ``table`` (one per method),
    then by each of the head's other metrics (``others``: their rows, indexed by method, with ``metric``),
    so that a line cannot show one metric's wins while another's loss stays in the table; and which methods
    beat chance by ``metric`` (below it for RMSE, as its table's "q below chance": "above chance" said the
    error was larger than the training mean's). ``why``: why there is no comparison, where there is none
    (:func:`no_comparison_why`)."""
    every = [plain_name(m) for m in table.index]
    above = [plain_name(m) for m in table.index[table["q_chance"] < ALPHA]]
    side = "Below" if metric in {NAMES[k] for k in LOWER_IS_BETTER} else "Above"
    return (f"{drug}: {_verdicts(table, who, f' ({metric})', why)}.{_other_metrics(others, who, only_losses)}"
            f" {side} chance ({metric}, q < {ALPHA}): {listed(above, every) if above else 'no method'}.")


def no_comparison_why(rows: pd.DataFrame, latent: int, metric: str,
                      absent: Callable[[str, str, int], str] | None = None) -> str:
    """Why a drug has no comparison with Dr.VAE by ``metric`` at ``latent`` (``rows``: the drug's rows at
    every latent size): Dr.VAE scored it at other latent sizes only (comparisons pair fits of one latent
    size, so the methods were run, and adding none of them would change it), or nowhere (``absent``'s
    words, :func:`reference_absence`; without them, the three reasons it may be); no other method
    scored at this size; '' when Dr.VAE and another method both have scores here."""
    ref = REFERENCES[metric]
    who = plain_name(ref)
    has = rows[(rows["metric"] == metric) & (rows["n_splits"] > 0)]
    here = set(has.loc[has["latent"] == latent, "method"])
    if ref in here:
        return "" if here - {ref} else f": no other method has a score at latent {latent}"
    sizes = sorted({int(x) for x in has.loc[has["method"] == ref, "latent"]})
    if not sizes:
        if absent is not None:
            return f": {absent(ref, str(rows['drug'].iloc[0]), latent)}"
        return f": {who} has no score for this drug (not in this run, or its fits failed or have not run)"
    return (f": {who} ran at latent {'size' if len(sizes) == 1 else 'sizes'} "
            f"{', '.join(map(str, sizes))} only, these methods at {latent}, and a comparison pairs fits of "
            "one latent size (give the response models the same --latents-* sizes)")


def _verdicts(table: pd.DataFrame, who: str, metric: str = "", why: str = "") -> str:
    """"<who> beats X — loses to Y — not distinguishable from Z<metric>; of those, ..." for one metric's
    rows (:func:`_ahead_clause`); without a verdict, "no <who> comparison<metric><why>"."""
    parts = _verdict_parts(table)
    if not parts:
        return f"no {who} comparison{metric}{why}"
    return f"{who} " + " — ".join(parts) + metric + _ahead_clause(table, who)


def _other_metrics(others: pd.DataFrame | None, who: str, only_losses: bool = False) -> str:
    """" By RMSE: <who> ...." for each metric of ``others`` with a comparison ("" without); with
    ``only_losses`` (the run summary, kept short) only those where ``who`` loses to a method."""
    if others is None or others.empty:
        return ""
    by = [others[others["metric"] == k] for k in METRICS if k in set(others["metric"])]
    keep = ("loses to",) if only_losses else VERDICTS
    return "".join(f" By {NAMES[str(t['metric'].iloc[0])]}: {_verdicts(t, who)}." for t in by
                   if t["verdict"].isin(keep).any())


def _ahead_clause(table: pd.DataFrame, who: str = "Dr.VAE") -> str:
    """"; of those," the method not distinguishable from Dr.VAE with the best mean, where that mean is
    better than Dr.VAE's, with the splits it is ahead on ("" otherwise): the test's "not distinguishable"
    alone reads as a tie where a method may lead on every split. Worded alike whether it leads on most
    splits or on few. The method is the furthest ahead over the splits both scored (``diff_vs_drvae``); where
    those are fewer than either's splits (failed fits), their own means may rank the other way ("the highest
    mean (0.605 against 0.689)"), so the clause gives the paired difference and the splits of each mean."""
    if "splits_ahead_of_drvae" not in table or table.empty:
        return ""
    code = str(table["metric"].iloc[0])
    ref = table.index == REFERENCES.get(code)
    sign = 1.0 if code in LOWER_IS_BETTER else -1.0   # diff_vs_drvae = Dr.VAE - method
    tied = table[(table["verdict"] == "not distinguishable from") & (sign * table["diff_vs_drvae"] > 0)]
    if tied.empty or not ref.any():
        return ""
    best = (sign * tied["diff_vs_drvae"]).idxmax()
    r = tied.loc[best]
    mine, theirs = _apart(float(r["mean"]), float(table.loc[ref, "mean"].iloc[0]))
    paired, n, n_ref = int(r["n_paired"]), int(r["n_splits"]), int(table.loc[ref, "n_splits"].iloc[0])
    means = f"({mine} against {theirs})"
    if not paired == n == n_ref:
        means = (f"on the splits both scored ({abs(float(r['diff_vs_drvae'])):.3f} "
                 f"{'below' if sign > 0 else 'above'} {who}'s on {paired}; the table's means, {mine} and "
                 f"{theirs}, are over {n} and {n_ref})")
    return (f"; of those, {plain_name(str(best))} has the {'lowest' if sign > 0 else 'highest'} mean "
            f"{means} and is ahead of {who} on {int(r['splits_ahead_of_drvae'])} of {paired} splits")


def _apart(a: float, b: float) -> tuple[str, str]:
    """``a`` and ``b`` with 3 decimals, more (up to 6) where 3 print them alike: a line saying one mean is
    the better must not print the two as one number ("1.106 against 1.106")."""
    for d in range(3, 7):
        if f"{a:.{d}f}" != f"{b:.{d}f}":
            break
    return f"{a:.{d}f}", f"{b:.{d}f}"


def head_line(sub: pd.DataFrame, drug: str, head: tuple[str, ...], only_losses: bool = False,
              every_latent: pd.DataFrame | None = None,
              absent: Callable[[str, str, int], str] | None = None) -> str:
    """One drug's verdict line for a head (:func:`verdict_line`): its first metric's verdicts, then each
    other metric's (``only_losses``: those where Dr.VAE loses); ``sub`` is the drug's rows (every metric)
    at one latent size, ``every_latent`` its rows at every size (default ``sub``), which say why there is
    no comparison, with ``absent`` (:func:`no_comparison_why`)."""
    rows = sub[sub["metric"].isin(head)]
    first = rows[rows["metric"] == head[0]].set_index("method")
    others = rows[rows["metric"] != head[0]].set_index("method")
    why = no_comparison_why(sub if every_latent is None else every_latent, int(sub["latent"].iloc[0]),
                            head[0], absent) if len(sub) else ""
    return verdict_line(first, drug, NAMES[head[0]], plain_name(REFERENCES[head[0]]), others, only_losses,
                        why)


def summary_lines(ds: xr.Dataset) -> list[str]:
    """The run summary's drug-response lines: per drug and head, Dr.VAE's verdicts by the head's first
    metric with a comparison (AUROC, Pearson; :func:`line_metrics`) and by each of its later metrics where
    Dr.VAE loses, and the methods better than chance (the full tables are response.md); none without
    response scores."""
    table = response_table(ds) if has_response(ds) else pd.DataFrame()
    if table.empty:
        return []
    present = set(table["metric"])
    heads = [h for h in (tuple(k for k in head if k in present) for head in HEADS) if h]
    several = table["latent"].nunique() > 1   # a drug's lines at two latent sizes say which is which
    absent = functools.partial(reference_absence, ds)
    lines, firsts, others = [], [], []
    for head in heads:
        used: set[str] = set()
        for (d, lat), sub in table[table["metric"].isin(head)].groupby(["drug", "latent"], sort=False):
            metrics = line_metrics(sub, head) or head
            used.add(metrics[0])
            name = f"{d} (latent {lat})" if several else str(d)
            lines.append("  " + head_line(table[(table["drug"] == d) & (table["latent"] == lat)], name,
                                          metrics, True, table[table["drug"] == d], absent))
        used_in_order = [k for k in head if k in used]
        firsts.append(_firsts_words(used_in_order))
        # a metric before a line's own has no comparison there: only the later ones can show a loss
        others += [NAMES[k] for k in head[head.index(used_in_order[0]) + 1:]]
    by = " or ".join(firsts)
    also = f", and another metric ({', '.join(others)}) only where Dr.VAE loses on it" if others else ""
    return [f"Drug response (response.md has every metric; below, {by}{also}{_no_score(present)}):", *lines]


def reference_absence(ds: xr.Dataset, ref: str, drug: str, latent: int) -> str:
    """Why Dr.VAE's method ``ref`` has no score for ``drug`` at ``latent``, in words: its model is not among
    the run's (the store's ``model``, the run's --models), it has no fit planned there, or how many of its
    planned fits failed, have not run, or are done without a score (``planned``, ``status``). A line that
    offered all three ("not in this run, or its fits failed or have not run") left the user to guess."""
    who = plain_name(ref)
    model = next(n for n in RESPONSE_MODELS if ref in contender(n).methods)
    models = [str(m) for m in ds["model"].values]
    if model not in models:
        return f"{who} is not among this run's models (--models {model} adds it)"
    at = (models.index(model), [str(d) for d in ds["drug"].values].index(drug),
          [int(x) for x in ds["latent"].values].index(latent))
    status = as_str(ds["status"].transpose("model", "drug", "latent", "split").values)
    return _fits_words(who, latent, planned_mask(ds)[at], status[at])


def _fits_words(who: str, latent: int, planned: np.ndarray, status: np.ndarray) -> str:
    """What became of ``who``'s planned fits of a drug at ``latent`` (``planned``, ``status``: per split)."""
    n = int(planned.sum())
    if n == 0:
        return f"{who} has no fit planned for this drug at latent {latent}"
    failed, missing = int((planned & (status == "failed")).sum()), int((planned & (status == "")).sum())
    parts = [f"{failed} failed (failures.csv has why)" if failed else "",
             f"{missing} have not run (a rerun with the same --out runs them)" if missing else "",
             f"{n - failed - missing} done without a score by it" if n - failed - missing else ""]
    return f"of {who}'s {n} fits for this drug at latent {latent}, " + "; ".join(p for p in parts if p)


def _firsts_words(used: list[str]) -> str:
    """The metrics a head's drug lines are by (``used``, in the head's order): "Pearson", or "Pearson (RMSE
    for a drug without a comparison by Pearson)" where some drug has none by the first."""
    if len(used) == 1:
        return NAMES[used[0]]
    later = " or ".join(NAMES[k] for k in used[1:])
    return f"{NAMES[used[0]]} ({later} for a drug without a comparison by {NAMES[used[0]]})"


def _no_score(present: set[str]) -> str:
    """'; no Pearson or Spearman: WHY' for the metrics of a head in the run that no method has a score by,
    so that the summary does not leave the user to guess why its head is judged by RMSE alone."""
    missing = [k for head in HEADS if present & set(head) for k in head if k not in present]
    if not missing:
        return ""
    why = f": {CORRELATION_WHY}" if set(missing) <= CORRELATIONS else " (no method has a score by it)"
    return f"; no {' or '.join(NAMES[k] for k in missing)}{why}"


def file_words(ds: xr.Dataset) -> str:
    """response.md's line in the run summary: the heads the store has scores by, and Dr.VAE's verdicts
    where Dr.VAE has a score (a run of the baselines alone read "Dr.VAE and its baselines by AUROC/AUPR
    (the continuous head by ...), with Dr.VAE's verdicts" over ridge's RMSE alone)."""
    scored = set(_wide(ds).columns)
    metrics = {k for k, _ in scored}
    drvae = any((k, REFERENCES[k]) in scored for k in METRICS)
    binary, continuous = "/".join(NAMES[k] for k in BINARY), "/".join(NAMES[k] for k in CONTINUOUS)
    if metrics & set(BINARY):
        by = binary + (f" (the continuous head by {continuous})" if metrics & set(CONTINUOUS) else "")
    else:
        by = f"{continuous} (the continuous head)"
    who = "Dr.VAE and its baselines" if drvae else "each response method"
    verdicts = ", with Dr.VAE's verdicts" if drvae else ", against chance (Dr.VAE has no score: no verdicts)"
    return f"drug response per drug: {who} by {by}{verdicts}"


def label_rule(ds: xr.Dataset) -> str:
    """The run's response label rule as the store records it ("waterfall", "quantile 0.75", "fixed 0.3"):
    its config's ``response_label`` and ``response_label_value`` (a store written before they existed:
    the waterfall rule, then the only one)."""
    cfg = json_attr(ds, "config")
    given = {**cfg.get("execution", {}), **cfg.get("science", {})}
    kind, value = given.get("response_label", "waterfall"), given.get("response_label_value")
    return kind if value is None else f"{kind} {value:g}"


def _family_size(table: pd.DataFrame) -> int:
    """The largest verdict family's size (both directions of every drug x method of a (latent, metric)
    compared with Dr.VAE, a method at chance aside; 0 without one)."""
    vs = table[table["verdict_family"] == "versus"]
    return 2 * int(vs.groupby(["latent", "metric"]).size().max()) if len(vs) else 0


def _ratio(table: pd.DataFrame, n_folds: int) -> float:
    """The largest test/train ratio of the table's drugs (response.csv's test_train_ratio; 1 / (k - 1) for
    a table without it): the widest correction, the weakest tests."""
    r = table["test_train_ratio"] if "test_train_ratio" in table else pd.Series(dtype=float)
    return float(r.max()) if r.notna().any() else 1.0 / (n_folds - 1)


def power_line(table: pd.DataFrame, n_folds: int) -> str:
    """What the verdicts can call with the run's splits (harness.benchmark.power_floor, at the largest
    test/train ratio, :func:`_ratio`, on the fewest distinct test sets a verdict pairs) and the verdict
    family's size: "" without a verdict."""
    vs = table[table["verdict_family"] == "versus"]
    if vs.empty:
        return ""
    j = int(vs["n_paired"].min())   # the splits a verdict's test pairs: both Dr.VAE and the method scored
    sets = vs["paired_test_sets"] if "paired_test_sets" in vs else pd.Series(dtype=float)
    g = int(sets.min()) if sets.notna().any() else j
    k = power_floor(j, 1.0, _ratio(table, n_folds), g)[1]
    family = _family_size(table)
    distinct = f" ({g} distinct test sets)" if g < j else ""
    return (f"Power: with {j} splits{distinct} of {n_folds}-fold CV the corrected t-test behind the verdicts "
            f"needs a mean difference of at least {k:.2f} standard deviations of the per-split differences "
            f"for p < {ALPHA}, and after Benjamini-Hochberg over up to {family} comparisons of a verdict "
            f"family a lone call needs p < {ALPHA / family:.2g}. So 'not distinguishable' can mean too few "
            "splits to tell, not equal: a drug's line names the method with a better mean than Dr.VAE's and "
            "the splits it is ahead on (response.csv: splits_ahead_of_drvae of n_paired).")


def _at_chance_sentence(table: pd.DataFrame) -> str:
    """The legend's sentence on the methods scored exactly at chance (:func:`_q`), "" without one."""
    at = table[table["verdict_family"] == "chance"]
    if at.empty:
        return ""
    named = "; ".join(f"{plain_name(m)} ({', '.join(NAMES[k] for k in dict.fromkeys(g['metric']))})"
                      for m, g in at.groupby("method", sort=False))
    return (f" Scored exactly at their chance level on every split: {named}. Dr.VAE against these is "
            f"Dr.VAE against chance, so their verdict ({MARK}) is that one test, Dr.VAE's q against chance "
            "(with its below-chance direction in the chance family), not a second test of the same "
            "difference with a q from the verdict family.")


def _ratio_words(table: pd.DataFrame, n_folds: int) -> str:
    """The legend's test/train ratio and, where a drug's repeats test the same cell lines again, the
    degrees of freedom its tests take."""
    if "test_train_ratio" not in table or not table["test_train_ratio"].notna().any():
        return f"1/{n_folds - 1} of {n_folds}-fold CV"
    r = table["test_train_ratio"].dropna()
    lo, hi = f"{r.min():.3f}", f"{r.max():.3f}"   # one value where both ends round alike
    return (f"n_test/n_train, the labelled test and training cell lines of a drug's response splits, "
            f"validation excluded, {lo}" + ("" if lo == hi else f" to {hi}")
            + " (response.csv's test_train_ratio)")


def _repeats_sentence(table: pd.DataFrame) -> str:
    """The legend's sentence on the drugs whose repeats test the same cell lines again ("" without)."""
    if "n_test_sets" not in table:
        return ""
    rep = table[table["n_test_sets"] < table["n_splits"]].drop_duplicates("drug")
    if rep.empty:
        return ""
    return (" Repeats that test the same cell lines again add no test set: the tests and intervals of "
            + "; ".join(f"{d} ({int(n)} splits, {int(g)} distinct test sets)" for d, n, g in
                        zip(rep["drug"], rep["n_splits"], rep["n_test_sets"], strict=True))
            + " have the degrees of freedom of the test sets (response.csv's n_test_sets, paired_test_sets).")


def legend(table: pd.DataFrame, n_folds: int) -> str:
    """response.md's legend: what the intervals, q-values and verdicts are."""
    family = _family_size(table)
    adjusted = f", not adjusted for the up to {family} comparisons of its verdict family" if family else ""
    return ("Legend: means over the splits with 95% corrected-t intervals (Nadeau-Bengio, test/train ratio "
            f"{_ratio_words(table, n_folds)}: the variance the tests use; clipped to the metric's "
            "range), so where chance is one number (AUROC 0.5, Pearson and Spearman 0) an interval that "
            "excludes it means a one-sided p below 0.025 against it, before multiplicity (but where "
            "every split differs from chance by the same amount the interval is that one value, and the p "
            "the exact sign test's 2^-n for n distinct test sets: 0.25 at 2; AUPR's and "
            "RMSE's chance vary by split: their tests pair each split with its own). Test sets are "
            "labelled untreated profiles of held-out cell lines. q above chance (below, for RMSE: lower is "
            "better): the method against its chance level on the same splits (corrected resampled t, "
            "one-sided, Benjamini-Hochberg over every drug and method of a metric and latent size). Dr.VAE − "
            f"method: paired over the splits, with its corrected-t 95% interval per comparison{adjusted}, "
            "clipped to the range a difference of the metric can take (AUROC's and AUPR's -1 to 1, "
            "Pearson's and Spearman's -2 to 2); "
            "the verdict uses the Benjamini-Hochberg q instead (over drugs, methods and both directions of a "
            "metric and latent size), at q < 0.05. The calls are one-sided at 0.05, the intervals two-sided "
            "at 95%: a call whose p lies between 0.025 and 0.05 sits beside an interval that just reaches "
            "chance (or 0)."
            f"{_repeats_sentence(table)}{_at_chance_sentence(table)}{_rows_sentences(table)}")


IDENTITY = ("drvae_identity", "drvae_continuous_identity")   # Dr.VAE's identity-perturbation ablations


def _rows_sentences(table: pd.DataFrame) -> str:
    """The legend's sentences on the identity-perturbation rows and the continuous head, each where the
    table has them: a run of the baselines alone read "The identity-perturbation rows are the ablation"
    of rows it does not have."""
    identity = (" The identity-perturbation rows are the ablation: Dr.VAE's fits predicting with p(z2|z1) "
                "replaced by the identity." if table["method"].isin(IDENTITY).any() else "")
    continuous = (" Continuous response: Pearson and Spearman against 0, RMSE against the training mean's, "
                  "each method against Dr.VAE's continuous head."
                  if table["metric"].isin(CONTINUOUS).any() else "")
    return identity + continuous


def labels_line(rule: str) -> str:
    """response.md's sentence on the binary head's labels for the run's ``rule`` (:func:`label_rule`): the
    waterfall and quantile rules set a threshold per drug and split from the training cell lines' responses;
    the fixed rule's threshold is the given number, the same for every drug and split."""
    if rule.split()[0] == "fixed":
        value = rule.split(" ", 1)[1] if " " in rule else "?"
        return (f"Labels (binary head): the fixed rule (pertvae_core.response_labels): sensitive where the "
                f"response is at least {value} (the response's units), one threshold for every drug and "
                "split, set by --response-label-value, not from any cell line's response.")
    return (f"Labels (binary head): the {rule} rule (pertvae_core.response_labels), its threshold set per "
            "drug and split from the training cell lines' responses only.")


def response_markdown(table: pd.DataFrame, partial_line: str = "", rule: str = "waterfall",
                      products: str = "", n_folds: int = 5,
                      absent: Callable[[str, str, int], str] | None = None) -> str:
    """response.md: one section per drug and latent (module docstring), then the legend; ``rule`` is the
    label rule the binary head's labels come from (:func:`label_rule`); ``products``
    (harness.products.products_line) after it, then :func:`power_line` for the run's ``n_folds``;
    ``absent``: why Dr.VAE has no score where it has none (:func:`reference_absence`)."""
    lines = ["# Drug response", ""] + ([partial_line, ""] if partial_line else [])
    lines += [labels_line(rule), ""]
    lines += [products, ""] if products else []
    lines += [power, ""] if (power := power_line(table, n_folds)) else []
    for (drug, latent), sub in table.groupby(["drug", "latent"], sort=False):
        lines += _drug_section(sub, str(drug), int(latent), table[table["drug"] == drug], absent)
    lines += [legend(table, n_folds), ""]
    lines += [models, ""] if (models := model_legend(list(dict.fromkeys(table["method"])))) else []
    return "\n".join(lines)


def write_response_report(ds: xr.Dataset, out: Path, partial_line: str = "",
                          partial_methods: Collection[str] | None = None) -> list[Path]:
    """Write OUT/response.csv and OUT/response.md when the store has response scores; the paths written.
    response.csv's ``partial``: per row, whether its method is in ``partial_methods`` (those with planned
    fits without scores: harness.report.missing_methods); without them, whether ``partial_line`` is set."""
    if not has_response(ds):
        return []
    table = response_table(ds)
    out = Path(out)
    rule = label_rule(ds)
    partial = (table["method"].astype(str).isin(set(partial_methods)).to_numpy(dtype=bool)
               if partial_methods is not None else bool(partial_line))
    table.assign(partial=partial, label_rule=rule).to_csv(out / "response.csv", index=False,
                                                                     float_format="%.6g")
    n_folds = int(ds.attrs.get("n_folds", 5))
    md = response_markdown(table, partial_line, rule, products_line(ds), n_folds,
                           functools.partial(reference_absence, ds))
    (out / "response.md").write_text(md)
    return [out / "response.csv", out / "response.md"]
