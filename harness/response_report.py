"""The drug-response report: per drug, every response method's AUROC and AUPR (Dr.VAE's results layout:
classifier x feature set), and for the continuous head Pearson, Spearman and RMSE, above chance or not, and
Dr.VAE against each method; OUT/response.md and OUT/response.csv, written by harness.report when the store
has response scores.

From the store's ``score`` (harness.benchmark.scores_table: done fits only), per (drug, latent, method,
metric) for metric in auroc, aupr (the binary head's methods, against Dr.VAE "drvae") and pearson, spearman,
rmse (the continuous head's, against Dr.VAE's continuous head "drvae_continuous"; RMSE: lower is better,
its chance the RMSE of the training mean):
- ``mean`` over the splits with its 95% t-interval (``ci_low``, ``ci_high``; one value per split), ``chance``
  (the mean of the split's chance level: 0.5 for AUROC, the test prevalence for AUPR) and ``n_splits``;
- above chance: the method against its chance level on the same splits, by the perturbation benchmark's
  paired tests (pertvae_core.stats.paired_comparison: one-sided Wilcoxon and Nadeau-Bengio corrected t with
  the test/train ratio of k-fold CV, 1 / (k - 1)), ``q_chance`` by Benjamini-Hochberg over every drug x
  method of a (latent, metric);
- versus Dr.VAE (``drvae - method``: ``diff_vs_drvae`` with its corrected-t 95% interval, ``q_better``,
  ``q_worse``: Dr.VAE better or worse, Benjamini-Hochberg over every drug x method x direction of a
  (latent, metric), as harness.benchmark's comparisons) and the verdict: Dr.VAE "beats", "loses to" or is
  "not distinguishable from" the method at q < 0.05. The identity-perturbation ablation (drvae_identity)
  is one of the methods: its row is the ablation's difference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats as _st

from harness.benchmark import ALPHA, _family_q, power_floor, scores_table
from harness.contenders import RESPONSE_MODELS, built_in_methods, contender
from harness.products import products_line
from harness.results import json_attr
from pertvae_core.stats import paired_comparison

__all__ = ["response_table", "response_markdown", "write_response_report", "has_response", "summary_lines",
           "METRICS", "plain_name", "model_legend"]

BINARY, CONTINUOUS = ("auroc", "aupr"), ("pearson", "spearman", "rmse")
METRICS = BINARY + CONTINUOUS
# Dr.VAE's method each metric's methods are compared with (the contenders drvae and drvae_continuous).
REFERENCES = {**dict.fromkeys(BINARY, "drvae"), **dict.fromkeys(CONTINUOUS, "drvae_continuous")}
LOWER_IS_BETTER = ("rmse",)
# The feature-set column of the run's own --response-method plug-ins (they take what they like).
OWN_FEATURES = "your method (--response-method)"
LIST_MAX = 4   # a summary line names at most this many methods of one verdict (:func:`listed`)
COLUMNS = ("drug", "latent", "method", "classifier", "features", "metric", "mean", "ci_low", "ci_high",
           "chance", "n_splits", "p_chance", "q_chance", "diff_vs_drvae", "diff_ci_low", "diff_ci_high",
           "splits_ahead_of_drvae", "n_paired", "q_better", "q_worse", "verdict")


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
    """A response method in words for the verdicts ("logistic L2 on x1", "Dr.VAE, identity perturbation",
    "training prior"); the run's own method by its name. The tables give the same as classifier and
    features, the code names (``--models``, response.csv) are in the legend (:func:`model_legend`)."""
    classifier, features = label(method)
    plain = features in ("", "none", "x1 (model)", OWN_FEATURES)
    return classifier if plain else f"{classifier} on {features}"


def model_legend(methods: list[str]) -> str:
    """Which model (``--models``) scores which of ``methods``, with their code names (response.csv's
    ``method``): one line for response.md."""
    parts = []
    for name in RESPONSE_MODELS:
        mine = [m for m in contender(name).methods if m in methods]
        if mine:
            parts.append(f"`{name}` ({', '.join(f'{plain_name(m)}: `{m}`' for m in mine)})")
    own = [m for m in methods if label(m)[1] == OWN_FEATURES]
    if own:
        parts.append(f"`--response-method` ({', '.join(f'`{m}`' for m in own)})")
    return "Models (`--models`) and their methods' code names (response.csv): " + "; ".join(parts) + "."


def _t_ci(v: np.ndarray) -> tuple[float, float, float]:
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(v.mean())
    if v.size < 2:
        return m, float("nan"), float("nan")
    half = float(_st.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return m, m - half, m + half


def _wide(ds: xr.Dataset) -> pd.DataFrame:
    """[drug, latent, repeat, fold] x (metric, method) of the response methods' done scores."""
    sc = scores_table(ds)
    sc = sc[sc["method"].isin(response_methods(ds))]
    return sc.pivot_table(index=["drug", "latent", "repeat", "fold"], columns=["metric", "method"],
                          values="value", aggfunc="first")


def _compare(a: np.ndarray, b: np.ndarray, metric: str, tt: tuple[float, float]) -> dict:
    """paired_comparison of ``a`` with ``b`` in the metric's direction ({} without a finite pair)."""
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return {}
    return paired_comparison(a, b, tt[0], tt[1], metric not in LOWER_IS_BETTER)


def _ahead(v: np.ndarray, ref: np.ndarray | None, metric: str) -> tuple[float, float]:
    """(splits where the method scored better than the reference, splits where both scored), NaN without
    a reference: a plain count beside the test, so that a verdict of "not distinguishable" cannot hide a
    method ahead on every split."""
    if ref is None:
        return np.nan, np.nan
    ok = np.isfinite(v) & np.isfinite(ref)
    ahead = v[ok] < ref[ok] if metric in LOWER_IS_BETTER else v[ok] > ref[ok]
    return float(ahead.sum()), float(ok.sum())


def _method_rows(block: pd.DataFrame, drug: str, latent: int, metric: str, tt: tuple[float, float],
                 order: list[str]) -> list:
    rows, methods = [], [m for m in order if (metric, m) in block]
    reference = REFERENCES[metric]
    ref = block[(metric, reference)].to_numpy(float) if (metric, reference) in block else None
    for m in methods:
        v = block[(metric, m)].to_numpy(float)
        chance = block[(f"{metric}_chance", m)].to_numpy(float)
        mean, lo, hi = _t_ci(v)
        above = _compare(v, chance, metric, tt)
        vs = _compare(ref, v, metric, tt) if ref is not None and m != reference else {}
        ahead, paired = _ahead(v, ref if m != reference else None, metric)
        rows.append({"drug": drug, "latent": int(latent), "method": m, "classifier": label(m)[0],
                     "features": label(m)[1], "metric": metric, "mean": mean, "ci_low": lo, "ci_high": hi,
                     "chance": float(np.nanmean(chance)), "n_splits": int(np.isfinite(v).sum()),
                     "p_chance": above.get("p_corrected_t", np.nan),
                     "diff_vs_drvae": vs.get("mean_diff", np.nan), "diff_ci_low": vs.get("ci_low", np.nan),
                     "diff_ci_high": vs.get("ci_high", np.nan), "splits_ahead_of_drvae": ahead,
                     "n_paired": paired, "p_better": vs.get("p_corrected_t", np.nan),
                     "p_worse": vs.get("p_corrected_t_worse", np.nan)})
    return rows


def _q(df: pd.DataFrame) -> pd.DataFrame:
    """q_chance, q_better and q_worse (module docstring) and the verdict."""
    chance = df[["latent", "metric", "p_chance"]].assign(kind="chance", p_corrected_t=df["p_chance"],
                                                          p_corrected_t_worse=np.nan)
    df["q_chance"] = _family_q(chance)["q_bh"]
    vs = df[["latent", "metric"]].assign(kind="versus", p_corrected_t=df["p_better"],
                                         p_corrected_t_worse=df["p_worse"])
    q = _family_q(vs)
    df["q_better"], df["q_worse"] = q["q_bh"], q["q_bh_worse"]
    df["verdict"] = np.where(df["q_better"] < ALPHA, "beats",
                             np.where(df["q_worse"] < ALPHA, "loses to",
                                      np.where(df["q_better"].notna(), "not distinguishable from", "")))
    return df


def response_table(ds: xr.Dataset) -> pd.DataFrame:
    """One row per (drug, latent, method, metric) of the response methods (module docstring)."""
    if not has_response(ds):
        return pd.DataFrame(columns=list(COLUMNS))
    wide = _wide(ds)
    k = int(ds.attrs.get("n_folds", 5))
    tt = (float(k - 1), 1.0)        # k-fold CV: one fold tested, k - 1 trained (validation included)
    rows, order = [], response_methods(ds)
    for (drug, latent), block in wide.groupby(level=["drug", "latent"], sort=False):
        for metric in METRICS:
            rows += _method_rows(block, str(drug), int(latent), metric, tt, order)
    if not rows:
        return pd.DataFrame(columns=list(COLUMNS))
    return _q(pd.DataFrame(rows))[list(COLUMNS)]


def _cell_of(r: pd.Series | None) -> str:
    """A row's mean [95% CI], "—" without one."""
    if r is None or not np.isfinite(r["mean"]):
        return "—"
    return f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"


def _binary_table(sub: pd.DataFrame) -> list[str]:
    au, ap = (sub[sub["metric"] == m].set_index("method") for m in BINARY)
    lines = [f"Chance: AUROC 0.5, AUPR {ap['chance'].mean():.3f} (the test prevalence).", "",
             "| classifier | features | AUROC mean [95% CI] | q above chance | AUPR mean [95% CI] | "
             "Dr.VAE − method (AUROC) [95% CI] | Dr.VAE |",
             "|---|---|---|---|---|---|---|"]
    for m, r in au.iterrows():
        a = ap.loc[m] if m in ap.index else None
        lines.append(f"| {r['classifier']} | {r['features']} | {_cell_of(r)} | {r['q_chance']:.3g} | "
                     f"{_cell_of(a)} | {_diff(r)} | {r['verdict']} |")
    return lines + ["", verdict_line(au, str(sub["drug"].iloc[0])), ""]


def _continuous_table(sub: pd.DataFrame) -> list[str]:
    pe, sp, rm = (sub[sub["metric"] == m].set_index("method") for m in CONTINUOUS)
    lines = [f"Continuous response: chance Pearson and Spearman 0, RMSE {rm['chance'].mean():.3f} (the "
             "training mean's).", "",
             "| method | features | Pearson mean [95% CI] | q above chance | Spearman mean [95% CI] | "
             "RMSE mean [95% CI] | q below chance | Dr.VAE − method (Pearson) [95% CI] | Dr.VAE |",
             "|---|---|---|---|---|---|---|---|---|"]
    # a constant prediction (the drug mean) has no correlation, only an RMSE: its row compares that
    for m in dict.fromkeys([*pe.index, *rm.index]):
        r, s, e = (t.loc[m] if m in t.index else None for t in (pe, sp, rm))
        q_rmse = e["q_chance"] if e is not None else np.nan
        q_pe, by = (r["q_chance"], r) if r is not None else (np.nan, e)
        vs, verdict = (_diff(r), r["verdict"]) if r is not None else \
            (f"{_diff(e)} (RMSE)" if _diff(e) else "", f"{e['verdict']} (RMSE)" if e["verdict"] else "")
        lines.append(f"| {by['classifier']} | {by['features']} | {_cell_of(r)} | {_q_cell(q_pe)} | "
                     f"{_cell_of(s)} | {_cell_of(e)} | {_q_cell(q_rmse)} | {vs} | {verdict} |")
    drug = str(sub["drug"].iloc[0])
    return lines + ["", verdict_line(pe, drug, "Pearson", "Dr.VAE (continuous head)"), ""]


def _q_cell(q: float) -> str:
    return f"{q:.3g}" if np.isfinite(q) else "—"


def _diff(r: pd.Series) -> str:
    return "" if not np.isfinite(r["diff_vs_drvae"]) else \
        f"{r['diff_vs_drvae']:+.3f} [{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}]"


def _drug_section(sub: pd.DataFrame, drug: str, latent: int) -> list[str]:
    """A drug's section: the binary head's table and the continuous head's, for those the run has."""
    n = int(sub["n_splits"].max()) if len(sub) else 0
    lines = [f"## {drug} (latent {latent}, {n} splits)", ""]
    if (sub["metric"] == "auroc").any():
        lines += _binary_table(sub)
    if (sub["metric"] == "pearson").any():
        lines += _continuous_table(sub)
    return lines


def listed(names: list[str], among: list[str], every: str = "all") -> str:
    """``names`` (a subset of ``among``) in words: each name when there are few, else a count with the ones
    left out, so that a drug's line stays readable with 17 methods (response.md lists them all). ``every``
    words the whole set: "any of the" after a negation ("not distinguishable from all 17" would read as
    "from some")."""
    if len(names) <= LIST_MAX:
        return "; ".join(names)   # not commas: plain names hold them ("Dr.VAE, identity perturbation")
    if len(names) == len(among):
        return f"{every} {len(names)} methods"
    rest = [m for m in among if m not in names]
    if len(rest) <= LIST_MAX:
        return f"{len(names)} of {len(among)} methods (all but these {len(rest)}: {'; '.join(rest)})"
    return f"{len(names)} of {len(among)} methods (the table in response.md lists them)"


def verdict_line(table: pd.DataFrame, drug: str, metric: str = "AUROC", who: str = "Dr.VAE") -> str:
    """``who``'s verdict on one drug in words (q < 0.05) by ``metric``'s rows ``table`` (one per method),
    and which methods beat chance."""
    words = ("beats", "loses to", "not distinguishable from")
    compared = [plain_name(m) for m in table.index[table["verdict"].isin(words)]]
    parts = [f"{w} " + listed([plain_name(m) for m in table.index[table["verdict"] == w]], compared,
                              "any of the" if w.startswith("not") else "all")
             for w in words if (table["verdict"] == w).any()]
    every = [plain_name(m) for m in table.index]
    above = [plain_name(m) for m in table.index[table["q_chance"] < ALPHA]]
    head = (f"{drug}: {who} " + " — ".join(parts) + f" ({metric}){_ahead_clause(table)}." if parts
            else f"{drug}: no {who} comparison ({metric}).")
    return head + f" Above chance (q < {ALPHA}): {listed(above, every) if above else 'no method'}."


def _ahead_clause(table: pd.DataFrame) -> str:
    """", though" and the method not distinguishable from Dr.VAE with the best mean, where that mean is
    better than Dr.VAE's, with the splits it is ahead on ("" otherwise): the test's "not distinguishable"
    alone reads as a tie where a method may lead on every split."""
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
    return (f", though {plain_name(str(best))} has a {'lower' if sign > 0 else 'higher'} mean "
            f"({r['mean']:.3f} against {float(table.loc[ref, 'mean'].iloc[0]):.3f}) and is ahead on "
            f"{int(r['splits_ahead_of_drvae'])} of {int(r['n_paired'])} splits")


def summary_lines(ds: xr.Dataset) -> list[str]:
    """The run summary's drug-response lines: Dr.VAE's AUROC verdict (and its continuous head's Pearson
    verdict) and the methods above chance per drug (the full table is response.md); none without response
    scores."""
    table = response_table(ds) if has_response(ds) else pd.DataFrame()
    if table.empty:
        return []
    lines = ["Drug response (response.md):"]
    heads = (("auroc", "AUROC", "Dr.VAE"), ("pearson", "Pearson", "Dr.VAE (continuous head)"))
    for metric, name, who in heads:
        rows = table[table["metric"] == metric]
        lines += [f"  {verdict_line(sub.set_index('method'), str(d), name, who)}"
                  for (d, _), sub in rows.groupby(["drug", "latent"], sort=False)]
    return lines


def label_rule(ds: xr.Dataset) -> str:
    """The run's response label rule as the store records it ("waterfall", "quantile 0.75", "fixed 0.3"):
    its config's ``response_label`` and ``response_label_value`` (a store written before they existed:
    the waterfall rule, then the only one)."""
    cfg = json_attr(ds, "config")
    given = {**cfg.get("execution", {}), **cfg.get("science", {})}
    kind, value = given.get("response_label", "waterfall"), given.get("response_label_value")
    return kind if value is None else f"{kind} {value:g}"


def power_line(table: pd.DataFrame, n_folds: int) -> str:
    """What the verdicts can call with the run's splits (harness.benchmark.power_floor; the corrected t's
    test/train ratio of k-fold CV, 1 / (k - 1)) and the verdict family's size: "" without a verdict."""
    vs = table[table["verdict"].isin(("beats", "loses to", "not distinguishable from"))]
    if vs.empty:
        return ""
    j = int(vs["n_splits"].min())
    k = power_floor(j, float(n_folds - 1), 1.0)[1]
    family = 2 * int(vs.groupby(["latent", "metric"]).size().max())
    return (f"Power: with {j} splits of {n_folds}-fold CV the corrected t-test behind the verdicts needs a "
            f"mean difference of at least {k:.2f} standard deviations of the per-split differences for "
            f"p < {ALPHA}, and after Benjamini-Hochberg over up to {family} comparisons of a verdict family "
            f"a lone call needs p < {ALPHA / family:.2g}. So 'not distinguishable' can mean too few splits "
            "to tell, not equal: a drug's line names the method with a better mean than Dr.VAE's and "
            "the splits it is ahead on (response.csv: splits_ahead_of_drvae of n_paired).")


def response_markdown(table: pd.DataFrame, partial_line: str = "", rule: str = "waterfall",
                      products: str = "", n_folds: int = 5) -> str:
    """response.md: one section per drug and latent (module docstring), then the legend; ``rule`` is the
    label rule the binary head's labels come from (:func:`label_rule`); ``products``
    (harness.products.products_line) after it, then :func:`power_line` for the run's ``n_folds``."""
    lines = ["# Drug response", ""] + ([partial_line, ""] if partial_line else [])
    lines += [f"Labels (binary head): the {rule} rule (pertvae_core.response_labels), its threshold set per "
              "drug and split from the training cell lines' responses only.", ""]
    lines += [products, ""] if products else []
    lines += [power, ""] if (power := power_line(table, n_folds)) else []
    for (drug, latent), sub in table.groupby(["drug", "latent"], sort=False):
        lines += _drug_section(sub, str(drug), int(latent))
    lines += ["Legend: means over the splits with 95% t-intervals; test sets are labelled untreated profiles "
              "of held-out cell lines. q above chance: the method against its chance level on the same "
              "splits (corrected resampled t, Benjamini-Hochberg over every drug and method). "
              "Dr.VAE − method: paired over the splits with its corrected-t 95% interval; the verdict at "
              "q < 0.05 (Benjamini-Hochberg over drugs, methods and both directions). The "
              "identity-perturbation row is the ablation: Dr.VAE's fits predicting with p(z2|z1) "
              "replaced by the identity. Continuous response: Pearson and Spearman against 0, RMSE against "
              "the training mean's (q below chance: lower RMSE), each method against Dr.VAE's continuous "
              "head.", "", model_legend(list(dict.fromkeys(table["method"]))), ""]
    return "\n".join(lines)


def write_response_report(ds: xr.Dataset, out: Path, partial_line: str = "") -> list[Path]:
    """Write OUT/response.csv and OUT/response.md when the store has response scores; the paths written."""
    if not has_response(ds):
        return []
    table = response_table(ds)
    out = Path(out)
    rule = label_rule(ds)
    table.assign(partial=bool(partial_line), label_rule=rule).to_csv(out / "response.csv", index=False,
                                                                     float_format="%.6g")
    n_folds = int(ds.attrs.get("n_folds", 5))
    (out / "response.md").write_text(response_markdown(table, partial_line, rule, products_line(ds), n_folds))
    return [out / "response.csv", out / "response.md"]
