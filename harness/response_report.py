"""The drug-response report: per drug, every response method's AUROC and AUPR (Dr.VAE's results layout:
classifier x feature set), above chance or not, and Dr.VAE against each method; OUT/response.md and
OUT/response.csv, written by harness.report when the store has response scores.

From the store's ``score`` (harness.benchmark.scores_table: done fits only), per (drug, latent, method,
metric) for metric in auroc and aupr:
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

from harness.benchmark import ALPHA, _family_q, _row, scores_table
from harness.contenders import RESPONSE_MODELS, contender

__all__ = ["response_table", "response_markdown", "write_response_report", "has_response", "summary_lines",
           "METRICS"]

METRICS = ("auroc", "aupr")
REFERENCE = "drvae"
COLUMNS = ("drug", "latent", "method", "classifier", "features", "metric", "mean", "ci_low", "ci_high",
           "chance", "n_splits", "p_chance", "q_chance", "diff_vs_drvae", "diff_ci_low", "diff_ci_high",
           "q_better", "q_worse", "verdict")


def response_methods() -> list[str]:
    """Every method of the registered response models, in report order."""
    return [m for name in RESPONSE_MODELS for m in contender(name).methods]


def has_response(ds: xr.Dataset) -> bool:
    """Whether the store has a response metric (a run with a response model)."""
    return "metric" in ds.coords and "auroc" in [str(m) for m in ds["metric"].values]


def label(method: str) -> tuple[str, str]:
    """(classifier, feature set) of a response method, for the table: its contender's ``labels``."""
    for name in RESPONSE_MODELS:
        labels = getattr(contender(name), "labels", {})
        if method in labels:
            return labels[method]
    return method, ""


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
    sc = sc[sc["method"].isin(response_methods())]
    return sc.pivot_table(index=["drug", "latent", "repeat", "fold"], columns=["metric", "method"],
                          values="value", aggfunc="first")


def _method_rows(block: pd.DataFrame, drug: str, latent: int, metric: str, tt: tuple[float, float]) -> list:
    rows, methods = [], [m for m in response_methods() if (metric, m) in block]
    ref = block[(metric, REFERENCE)].to_numpy(float) if (metric, REFERENCE) in block else None
    for m in methods:
        v = block[(metric, m)].to_numpy(float)
        chance = block[(f"{metric}_chance", m)].to_numpy(float)
        mean, lo, hi = _t_ci(v)
        above = _row(drug, latent, metric, "chance", m, "chance", v, chance, tt) or {}
        vs = (_row(drug, latent, metric, "versus", REFERENCE, m, ref, v, tt) if ref is not None
              and m != REFERENCE else None) or {}
        rows.append({"drug": drug, "latent": int(latent), "method": m, "classifier": label(m)[0],
                     "features": label(m)[1], "metric": metric, "mean": mean, "ci_low": lo, "ci_high": hi,
                     "chance": float(np.nanmean(chance)), "n_splits": int(np.isfinite(v).sum()),
                     "p_chance": above.get("p_corrected_t", np.nan),
                     "diff_vs_drvae": vs.get("mean_diff", np.nan), "diff_ci_low": vs.get("ci_low", np.nan),
                     "diff_ci_high": vs.get("ci_high", np.nan), "p_better": vs.get("p_corrected_t", np.nan),
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
    rows = []
    for (drug, latent), block in wide.groupby(level=["drug", "latent"], sort=False):
        for metric in METRICS:
            rows += _method_rows(block, str(drug), int(latent), metric, tt)
    if not rows:
        return pd.DataFrame(columns=list(COLUMNS))
    return _q(pd.DataFrame(rows))[list(COLUMNS)]


def _cell(mean: float, lo: float, hi: float) -> str:
    return "—" if not np.isfinite(mean) else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def _drug_section(sub: pd.DataFrame, drug: str, latent: int) -> list[str]:
    au, ap = (sub[sub["metric"] == m].set_index("method") for m in METRICS)
    n = int(au["n_splits"].max()) if len(au) else 0
    lines = [f"## {drug} (latent {latent}, {n} splits)", "",
             f"Chance: AUROC 0.5, AUPR {ap['chance'].mean():.3f} (the test prevalence).", "",
             "| classifier | features | AUROC mean [95% CI] | q above chance | AUPR mean [95% CI] | "
             "Dr.VAE − method (AUROC) [95% CI] | Dr.VAE |",
             "|---|---|---|---|---|---|---|"]
    for m, r in au.iterrows():
        a = ap.loc[m] if m in ap.index else None
        diff = "" if not np.isfinite(r["diff_vs_drvae"]) else \
            f"{r['diff_vs_drvae']:+.3f} [{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}]"
        lines.append(f"| {r['classifier']} | {r['features']} | "
                     f"{_cell(r['mean'], r['ci_low'], r['ci_high'])} | {r['q_chance']:.3g} | "
                     f"{_cell(a['mean'], a['ci_low'], a['ci_high']) if a is not None else '—'} | {diff} | "
                     f"{r['verdict']} |")
    return lines + ["", verdict_line(au, drug), ""]


def verdict_line(au: pd.DataFrame, drug: str) -> str:
    """Dr.VAE's AUROC verdict on one drug in words (q < 0.05), and which methods beat chance."""
    parts = [f"{word} {', '.join(au.index[au['verdict'] == word])}"
             for word in ("beats", "loses to", "not distinguishable from") if (au["verdict"] == word).any()]
    above = list(au.index[au["q_chance"] < ALPHA])
    head = f"{drug}: Dr.VAE " + "; ".join(parts) + " (AUROC)." if parts else f"{drug}: no Dr.VAE comparison."
    return head + f" Above chance (q < {ALPHA}): {', '.join(above) if above else 'no method'}."


def summary_lines(ds: xr.Dataset) -> list[str]:
    """The run summary's drug-response lines: Dr.VAE's AUROC verdict and the methods above chance per drug
    (the full table is response.md); none without response scores."""
    table = response_table(ds) if has_response(ds) else pd.DataFrame()
    if table.empty:
        return []
    au = table[table["metric"] == "auroc"]
    return ["Drug response (response.md):"] + [f"  {verdict_line(sub.set_index('method'), str(d))}"
                                               for (d, _), sub in au.groupby(["drug", "latent"], sort=False)]


def response_markdown(table: pd.DataFrame, partial_line: str = "") -> str:
    """response.md: one section per drug and latent (module docstring), then the legend."""
    lines = ["# Drug response", ""] + ([partial_line, ""] if partial_line else [])
    for (drug, latent), sub in table.groupby(["drug", "latent"], sort=False):
        lines += _drug_section(sub, str(drug), int(latent))
    lines += ["Legend: means over the splits with 95% t-intervals; test sets are labelled untreated profiles "
              "of held-out cell lines. q above chance: the method against its chance level on the same "
              "splits (corrected resampled t, Benjamini-Hochberg over every drug and method). "
              "Dr.VAE − method: paired over the splits with its corrected-t 95% interval; the verdict at "
              "q < 0.05 (Benjamini-Hochberg over drugs, methods and both directions). The "
              "identity-perturbation row is the ablation: Dr.VAE's fits predicting with p(z2|z1) "
              "replaced by the identity.", ""]
    return "\n".join(lines)


def write_response_report(ds: xr.Dataset, out: Path, partial_line: str = "") -> list[Path]:
    """Write OUT/response.csv and OUT/response.md when the store has response scores; the paths written."""
    if not has_response(ds):
        return []
    table = response_table(ds)
    out = Path(out)
    table.assign(partial=bool(partial_line)).to_csv(out / "response.csv", index=False, float_format="%.6g")
    (out / "response.md").write_text(response_markdown(table, partial_line))
    return [out / "response.csv", out / "response.md"]
