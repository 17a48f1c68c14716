"""The benchmark in words: benchmark.md, each drug's verdict, and the end-of-run summary.

Every sentence is computed from harness/benchmark.py's tables and says what they say, including losses:

- a verdict names, for one drug, whom PertVAE **beats**, **loses to** and is **not distinguishable from**
  on the primary metric (q < 0.05 in the verdict family: every drug x method x direction of one latent
  size, Benjamini-Hochberg), with the number of splits behind it;
- each row names the best method by mean and PertVAE's difference to it with its 95% interval (or, where
  PertVAE is best, its lead over the runner-up);
- drugs come in two groups: those whose replicates measure a change (the noise ceiling's reliability
  z > 3, pertvae_core.ceiling) and those that do not, where every method should sit at chance;
- a WARNING says when the number of splits, or of distinct test sets among them (a drug in as many cell
  lines as folds: 50 splits, 5 test sets), leaves the tests little power, and where the smallest p and q
  lie (harness.benchmark.power_floor);
- every metric on which PertVAE is significantly worse than another method is listed per drug, and
  ``mse_z`` (the absolute profile) gets its own table;
- each method's cell-specificity gain (its score minus the same fit predicting from another cell line's
  input) and retrieval score show whether it uses the cell line at all;
- the metrics' agreement (Kendall's tau with the primary metric) shows when the metric picks the winner.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from datasets.files import plural
from datasets.pairs import PAIRING_NOTE
from harness.benchmark import (
    ALPHA,
    failed_methods,
    fmt_mean,
    full_split_means,
    method_order,
    metric_agreement,
    power_floor,
    study_drugs,
)
from harness.cells import cell
from harness.change_splits import no_change_scores, unscored_line
from harness.contenders import REGISTRY, built_in_methods
from harness.products import products_line
from harness.results import json_attr
from pertvae_core.baselines import Identity
from pertvae_core.evaluation import CHANCE, HIGHER_IS_BETTER, PRIMARY
from pertvae_core.methods import REFERENCE

__all__ = ["method_legend", "MIN_SPLITS", "SIGNAL_Z", "verdict", "verdict_parts", "best_line",
           "primary_latents", "has_change", "headline", "power_warning", "power_line", "benchmark_markdown",
           "few_splits_line", "few_test_sets_words", "splits_words"]

MIN_SPLITS = 10  # fewer splits behind a drug's comparisons get the power warning
SIGNAL_Z = 3.0   # the ceiling's reliability z above which a drug's replicates measure a change


def method_legend(method: str) -> str:
    """What ``method`` predicts, in plain words (benchmark.md's legend): the line of the registered contender
    that scores it (harness.contenders), or its ``legend``; a method none scores is the run's own."""
    for c in REGISTRY.values():
        if method in c.methods:
            return c.method_legends.get(method) or f"from the {c.name} model: {c.legend or c.name}"
    return "your own method, added to this run with --method"


NO_CHANGE = Identity.name   # the baseline that predicts no change
NOT_COMPARED = ("PertVAE was not compared with 'no change' (its baseline, identity, has no finished fits in "
                "this run: add --models baselines)")
NOT_FINISHED = ("PertVAE was not compared with 'no change' (its baseline, identity, is in this run but has "
                "no finished fits: they failed or have not run yet; run the same command again to retry "
                "them)")


def no_change_in_run(ds: xr.Dataset) -> bool:
    """Whether one of the run's models scores 'no change' (identity: the baselines)."""
    return any(NO_CHANGE in REGISTRY[m].methods for m in (str(x) for x in ds["model"].values)
               if m in REGISTRY)


def not_compared(scores: pd.DataFrame, latent: int, in_run: bool = False) -> str:
    """Why PertVAE has no comparison with 'no change' at ``latent``: :data:`NOT_COMPARED` when identity has
    no scores at all and its model is not in the run (``in_run`` False), :data:`NOT_FINISHED` when it is
    (its fits failed or were not run: adding --models baselines would change nothing); when it has them
    only at other latent sizes (--latents-baselines unlike --latents-pertvae), that: comparisons pair the
    fits of one latent size, so adding the baselines, which already ran, would change nothing."""
    sizes = scores.loc[scores["method"] == NO_CHANGE, "latent"]
    elsewhere = [str(x) for x in sorted({int(x) for x in sizes} - {int(latent)})]
    if not elsewhere:
        return NOT_FINISHED if in_run else NOT_COMPARED
    return ("PertVAE was not compared with 'no change' (its baseline, identity, has finished fits only at "
            f"latent {'size' if len(elsewhere) == 1 else 'sizes'} {_join(elsewhere)}, not at "
            f"PertVAE's {latent}, and comparisons pair fits of one latent size: give --latents-baselines "
            "PertVAE's latent sizes)")


def compared_with_no_change(comp: pd.DataFrame, drugs: list[str], latent: int) -> list[str]:
    """The drugs on which PertVAE has a primary-metric comparison with 'no change' at ``latent``: only there
    can it be said to beat it or not (a run without the baselines, or whose identity fits failed, has
    none)."""
    return [d for d in drugs if NO_CHANGE in set(_vs(comp, d, latent)["method"])]


def _named(method: str) -> str:
    """A method in a sentence: PertVAE as every sentence calls it (not its key, "pertvae"); the others by
    the key their table column has."""
    return "PertVAE" if method == REFERENCE else method


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _vs(comp: pd.DataFrame, drug: str, latent: int, metric: str = PRIMARY) -> pd.DataFrame:
    sub = cell(comp, drug, latent, metric)
    return sub[sub["kind"] == "versus"]


def verdict_parts(comp: pd.DataFrame, drug: str, latent: int, metric: str = PRIMARY) -> dict[str, list[str]]:
    """{"beats": [...], "loses to": [...], "not distinguishable from": [...], UNTESTED: [...]}: PertVAE
    against each method; UNTESTED: those without a test in either direction (one paired split: a paired
    test needs two), which 'not distinguishable' would pass off as tested."""
    sub = _vs(comp, drug, latent, metric)
    beats = sub["q_bh"] < ALPHA
    loses = sub["q_bh_worse"] < ALPHA
    untested = sub["q_bh"].isna() & sub["q_bh_worse"].isna()
    return {"beats": sub.loc[beats, "method"].tolist(), "loses to": sub.loc[loses, "method"].tolist(),
            "not distinguishable from": sub.loc[~beats & ~loses & ~untested, "method"].tolist(),
            UNTESTED: sub.loc[untested, "method"].tolist()}


UNTESTED = "not tested (too few paired splits) against"


def verdict(comp: pd.DataFrame, drug: str, latent: int, metric: str = PRIMARY) -> str:
    """PertVAE's verdict on one drug in words: whom it beats, loses to and cannot be told from (q < 0.05 in
    the verdict family), and on how many splits."""
    sub = _vs(comp, drug, latent, metric)
    if sub.empty:
        return "no comparison (PertVAE or the other methods have no finished fits)"
    parts = [f"{word} {_join(names)}" for word, names in verdict_parts(comp, drug, latent, metric).items()
             if names]
    return "PertVAE " + "; ".join(parts) + f" ({_per_method_splits(sub)})."


def _per_method_splits(sub: pd.DataFrame) -> str:
    """The splits behind each comparison of ``sub``: "10 splits", or "10 splits; 9 for a and b" naming the
    methods compared on fewer (a method that failed on some splits), never the fewest as everyone's."""
    n = sub.groupby("method", sort=False)["n_splits"].max().astype(int)
    top = int(n.max())
    fewer = n[n < top]
    sets = (int(sub.loc[sub["n_splits"] == top, "n_test_sets"].max()) if "n_test_sets" in sub else top)
    if fewer.empty:
        return splits_words(top, sets)
    by_count = [f"{k} for {_join(list(fewer[fewer == k].index))}" for k in sorted(set(fewer), reverse=True)]
    return f"{splits_words(top, sets)}; " + ", ".join(by_count)


def _rows(scores: pd.DataFrame, drug: str, latent: int, metric: str) -> pd.DataFrame:
    return cell(scores, drug, latent, metric)


def _mean_scores(scores: pd.DataFrame, drug: str, latent: int, metric: str) -> pd.Series:
    return _rows(scores, drug, latent, metric).groupby("method")["value"].mean()


def _split_counts(scores: pd.DataFrame, drug: str, latent: int, metric: str) -> pd.Series:
    """Scored splits per method of (drug, latent, metric)."""
    return _rows(scores, drug, latent, metric).dropna(subset=["value"]).groupby("method")["value"].count()


FULL_SPLITS = ("among those scored on the most splits (a method with fewer, its fits failed or not yet run, "
               "shows '(k of n splits)' and is not named best)")


def _best_candidates(scores: pd.DataFrame, drug: str, latent: int, metric: str) -> pd.Series:
    """The means of the methods scored on the most splits: one whose fits failed on some splits (or have
    not run yet) is not named best by a mean over fewer, other splits than the rest's."""
    return full_split_means(_rows(scores, drug, latent, metric))   # as the metrics' agreement does


def best_line(scores: pd.DataFrame, comp: pd.DataFrame, drug: str, latent: int,
              metric: str = PRIMARY) -> tuple[str, str]:
    """(the best method by mean among those scored on the most splits, PertVAE's difference to it with its
    95% interval; or, where PertVAE is best, its lead over the runner-up)."""
    means = _best_candidates(scores, drug, latent, metric)
    if means.empty:
        return "-", "-"
    up = HIGHER_IS_BETTER.get(metric, True)
    order = means.sort_values(ascending=not up)
    best = str(order.index[0])
    other = best if best != REFERENCE else (str(order.index[1]) if len(order) > 1 else None)
    row = _vs(comp, drug, latent, metric)
    row = row[row["method"] == other] if other else row.iloc[:0]
    if row.empty:
        return best, "-"
    r = row.iloc[0]
    text = f"{r['mean_diff']:+.3f} {_interval(r)}"
    if best == REFERENCE:
        return best, f"leads {other} by {text}, ahead on {int(r['n_better'])} of {int(r['n_splits'])} splits"
    return best, f"{text}, behind on {int(r['n_worse'])} of {int(r['n_splits'])} splits"


def _interval(r: pd.Series) -> str:
    """A comparison's 95% interval; one paired split gives none (the corrected t needs two), which is said
    instead of printing '[+nan, +nan]'."""
    if np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"]):
        return f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
    return f"[no interval: {plural(int(r['n_splits']), 'split')}]"


def _tied(means: pd.Series, best: str) -> list[str]:
    """The methods other than ``best`` whose mean prints the same (3 decimals): a lead of 4e-6 is no lead,
    so the table and the headline name them together."""
    if best not in means:
        return []
    return [str(m) for m, v in means.items() if m != best and fmt_mean(v) == fmt_mean(means[best])]


def has_change(ceiling: dict[str, Any], drug: str) -> bool:
    """Whether the drug's replicates measure a change (reliability z > SIGNAL_Z; True without the figure,
    e.g. for stores written before it)."""
    z = (ceiling.get(drug) or {}).get("signal_z")
    return not isinstance(z, int | float) or not np.isfinite(z) or z > SIGNAL_Z


def change_unknown(ceiling: dict[str, Any], drug: str) -> bool:
    """Whether the drug's replicates were too few to tell whether it changes anything: its ceiling has no
    reliability z (e.g. one post-treatment replicate per cell line: the ceiling's reason says). has_change
    keeps such a drug with the measured changes, as it is not known to be null; the words must not say
    that its replicates measure a change."""
    c = ceiling.get(drug) or {}
    z = c.get("signal_z")
    return "signal_z" in c and not (isinstance(z, int | float) and np.isfinite(z))


def change_not_recorded(ceiling: dict[str, Any], drug: str) -> bool:
    """Whether the store records no reliability z for the drug (a store written before the measure, or
    without a ceiling): has_change counts it with the measured changes, as it is not known to be null, but
    an absent value must not read as a measured change."""
    return "signal_z" not in (ceiling.get(drug) or {})


NOT_RECORDED = "not recorded"


def _change_cell(ceiling: dict[str, Any], drug: str) -> str:
    """The 'measured change' column: yes, no, n/a (too few replicates to tell) or not recorded (a store
    written before the measure)."""
    if change_not_recorded(ceiling, drug):
        return NOT_RECORDED
    if change_unknown(ceiling, drug):
        return "n/a"
    return "yes" if has_change(ceiling, drug) else "no"


def _unknown_words(ceiling: dict[str, Any], real: list[str], lead: str) -> str:
    """'' when every drug of ``real`` measures its change, else ``lead`` and the drugs whose replicates were
    too few to tell, then the drugs whose store records no measure (both counted with ``real``: they are
    not known to be null)."""
    unknown = [d for d in real if change_unknown(ceiling, d)]
    unrecorded = [d for d in real if change_not_recorded(ceiling, d)]
    return ((f"{lead} ({_join(unknown)})" if unknown else "")
            + (f" or whose store does not record it ({_join(unrecorded)}: written before the measure)"
               if unrecorded else ""))


def ran(scores: pd.DataFrame, latent: int | None = None) -> bool:
    """Whether PertVAE has scores (at ``latent``): sentences about PertVAE appear only then (a ``--models
    baselines`` run says nothing about it)."""
    sub = scores[scores["method"] == REFERENCE]
    return not (sub if latent is None else sub[sub["latent"] == latent]).empty


def _n_scored_splits(scores: pd.DataFrame, drug: str, latent: int) -> int:
    """The splits with a primary score for ``drug`` at ``latent`` (any method)."""
    sub = cell(scores, drug, latent, PRIMARY)
    return int(sub[["repeat", "fold"]].drop_duplicates().shape[0]) if not sub.empty else 0


def primary_latents(scores: pd.DataFrame) -> list[int]:
    """The latent sizes of PertVAE's primary scores (of every method's where PertVAE has none), smallest
    first: the headline and drugs.png speak of the first."""
    prim = scores[(scores["metric"] == PRIMARY) & (scores["method"] == REFERENCE)]
    if prim.empty:
        prim = scores[scores["metric"] == PRIMARY]
    return sorted(int(x) for x in prim["latent"].unique())


NO_SCORES = "No scores in this run."


def headline(ds: xr.Dataset, scores: pd.DataFrame, comp: pd.DataFrame) -> list[str]:
    """Two or three plain sentences: who is best where, where PertVAE wins and loses (primary metric, the
    first PertVAE latent size; nothing about PertVAE when it did not run), and what happens on drugs without
    a measured change."""
    latents = primary_latents(scores)
    if scores.empty:
        return [NO_SCORES]
    if not latents:
        return [no_change_scores(scores)]
    latent = latents[0]
    with_pertvae = ran(scores, latent)
    ceiling = json_attr(ds, "ceiling")
    drugs = [d for d in study_drugs(ds) if not _mean_scores(scores, d, latent, PRIMARY).empty]
    real = [d for d in drugs if has_change(ceiling, d)]
    null = [d for d in drugs if d not in real]
    best: dict[str, list[str]] = {}
    tops: set[str] = set()   # the best and those tied with it
    for d in real:
        top = best_line(scores, comp, d, latent)[0]
        tied = _tied(_best_candidates(scores, d, latent, PRIMARY), top)
        with_tied = f", tied with {_join([_named(m) for m in tied])}" if tied else ""
        best.setdefault(top, []).append(d + with_tied)
        tops.update([top, *tied])
    tally = "; ".join(f"{_named(m)} on {len(ds_)} ({', '.join(ds_)})"
                      for m, ds_ in sorted(best.items(), key=lambda kv: -len(kv[1])))
    lines = [f"Best mean {PRIMARY} (the correlation of the predicted with the measured change; latent "
             f"{latent}, {_splits_text(comp, scores, drugs, latent, with_pertvae)}) on the {len(real)} "
             "drug(s) whose replicates measure a change"
             + _unknown_words(ceiling, real, " or are too few to tell") + ": "
             f"{tally or 'none'}"
             + ("" if REFERENCE in tops or not with_pertvae else "; PertVAE on none") + "."]
    if with_pertvae:
        losses = {d: verdict_parts(comp, d, latent)["loses to"] for d in drugs}
        lost = [f"{d} (to {_join(m)})" for d, m in losses.items() if m]
        n_run = len(study_drugs(ds))
        all_drugs = (f"all {plural(len(drugs), 'drug')}" if len(drugs) == n_run
                     else f"the {plural(len(drugs), 'drug')} with scores (of the run's {n_run})")
        against = _against_no_change(scores, comp, real, drugs, latent, ceiling, no_change_in_run(ds))
        lines.append(f"On {PRIMARY}, {against} and loses significantly on {len(lost)} of {all_drugs}"
                     + (f": {'; '.join(lost)}" if lost else "")
                     + _other_losses(comp, [d for d in drugs if not losses[d]], latent) + ".")
    if null:
        called = [d for d in null if any(verdict_parts(comp, d, latent)[k] for k in ("beats", "loses to"))]
        tail = ("" if not with_pertvae else f"; {PRIMARY} comparisons called on {_join(called)}" if called
                else f"; no {PRIMARY} comparison is called on them")
        lines.append(f"{len(null)} drug(s) show no measured change{tail}.")
    return lines


def _splits_text(comp: pd.DataFrame, scores: pd.DataFrame, drugs: list[str], latent: int,
                 with_pertvae: bool) -> str:
    """"N splits per drug", naming the drugs with fewer (a split without a test pair of a drug gives no
    score there): the splits behind PertVAE's comparisons, or the scored splits without PertVAE."""
    n, short = {}, {}   # drug -> its splits; method -> its counts where fewer than its drug's
    for d in drugs:
        if with_pertvae:
            per = _vs(comp, d, latent).groupby("method")["n_splits"].max()
        else:
            sub = cell(scores, d, latent, PRIMARY)
            per = sub.groupby("method").size()
        n[d] = (int(per.max()) if len(per) else 0) if with_pertvae else _n_scored_splits(scores, d, latent)
        for m, k in per[per < n[d]].items():
            short.setdefault(str(m), []).append(int(k))
    if not n:
        return "0 splits per drug"
    fewer = [(str(min(k)) if min(k) == max(k) else f"{min(k)}-{max(k)}") + f" for {m}"
             for m, k in ((m, short[m]) for m in method_order(short))]
    return _drug_splits(n) + (f"; {_join(fewer)}" if fewer else "")


def _drug_splits(n: dict[str, int]) -> str:
    """"N splits per drug", naming the drugs with fewer."""
    top = max(n.values())
    fewer = {d: k for d, k in n.items() if k < top}
    if not fewer:
        return f"{plural(top, 'split')} per drug"
    if len(fewer) > 4:
        return f"{top} splits per drug, fewer on {len(fewer)} drugs (benchmark.md gives each drug's)"
    return f"{top} splits per drug, fewer on " + _join([f"{d} ({k})" for d, k in fewer.items()])


def _other_losses(comp: pd.DataFrame, drugs: list[str], latent: int) -> str:
    """A clause naming how many of ``drugs`` PertVAE is significantly worse on by another metric than the
    primary one, so that a headline about the primary metric cannot read as PertVAE's only losses."""
    sub = comp[(comp["latent"] == latent) & (comp["kind"] == "versus") & (comp["q_bh_worse"] < ALPHA)
               & (comp["metric"] != PRIMARY) & comp["drug"].isin(drugs)]
    if sub.empty:
        return ""
    metrics = ", ".join(sorted(sub["metric"].unique()))
    return (f"; by another metric it is significantly worse than some method on {sub['drug'].nunique()} "
            f"more ({metrics}; benchmark.md's 'Where PertVAE is significantly worse' lists them)")


def _against_no_change(scores: pd.DataFrame, comp: pd.DataFrame, real: list[str], drugs: list[str],
                       latent: int, ceiling: dict[str, Any], in_run: bool = False) -> str:
    """Whether PertVAE predicts the change better than 'no change', counted over the drugs with a measured
    change where the two were compared (and saying so when that is not all of them, or none)."""
    anywhere = compared_with_no_change(comp, drugs, latent)
    if not anywhere:
        return not_compared(scores, latent, in_run)
    compared = [d for d in real if d in anywhere]
    wins = [d for d in compared if NO_CHANGE in verdict_parts(comp, d, latent)["beats"]]
    if len(compared) == len(real):
        return (f"PertVAE predicts the change better than 'no change' on {len(wins)} of the {len(real)} "
                "with a measured change" + _unknown_words(ceiling, real, " or too few replicates to tell"))
    missing = [d for d in real if d not in compared]
    return (f"PertVAE predicts the change better than 'no change' on {len(wins)} of the {len(compared)} "
            f"compared with it (not compared, no finished 'no change' fits: {_join(missing)})")


def _n_splits(comp: pd.DataFrame) -> dict[str, int]:
    """drug -> the fewest splits behind a finite p-value of a primary-metric PertVAE comparison."""
    return {d: lo for d, (lo, _) in _split_range(comp).items()}


def _split_range(comp: pd.DataFrame, column: str = "n_splits") -> dict[str, tuple[int, int]]:
    """drug -> (fewest, most) splits (or, ``column`` "n_test_sets", distinct test sets) behind the finite
    p-values of its primary-metric PertVAE comparisons (fewer for a method that failed on some splits); a
    table without n_test_sets (written before it) counts every split as a test set."""
    sub = comp[(comp["metric"] == PRIMARY) & (comp["kind"] == "versus")
               & np.isfinite(comp["p_corrected_t"].to_numpy(dtype=float))]
    n = sub.groupby("drug", sort=False)[column if column in sub else "n_splits"]
    return {str(d): (int(lo), int(hi)) for (d, lo), hi in zip(n.min().items(), n.max(), strict=True)}


def _n_test_sets(comp: pd.DataFrame) -> dict[str, int]:
    """drug -> the fewest distinct test sets behind a finite p-value of a primary-metric PertVAE comparison
    (the corrected t's degrees of freedom + 1, pertvae_core.stats.test_set_df)."""
    return {d: lo for d, (lo, _) in _split_range(comp, "n_test_sets").items()}


def splits_words(n_splits: int, n_test_sets: int) -> str:
    """"50 splits", or "50 splits, 5 distinct test sets" where repeats test the same cell lines again."""
    sets = f", {plural(n_test_sets, 'distinct test set')}" if n_test_sets < n_splits else ""
    return plural(n_splits, "split") + sets


def few_test_sets_line(comp: pd.DataFrame) -> str:
    """:func:`few_test_sets_words` of the primary-metric PertVAE comparisons."""
    splits, sets = _n_splits(comp), _n_test_sets(comp)
    return few_test_sets_words({d: (n, sets[d]) for d, n in splits.items()})


def few_test_sets_words(counts: dict[str, tuple[int, int]]) -> str:
    """A WARNING line naming the drugs of ``counts`` (drug -> (splits, distinct test sets)) with MIN_SPLITS
    splits or more whose p-values rest on fewer distinct test sets ('' if none): a drug in as many cell
    lines as folds holds out each cell line alone in every repeat, so its 50 splits are 5 test sets, and
    more repeats add none."""
    few = {d: (n, g) for d, (n, g) in counts.items() if n >= MIN_SPLITS and g < MIN_SPLITS}
    if not few:
        return ""
    return (f"WARNING: p-values rest on fewer than {MIN_SPLITS} distinct test sets for "
            + ", ".join(f"{d} ({splits_words(n, g)})" for d, (n, g) in few.items())
            + ": with few cell lines the repeats hold out the same cell lines again, which adds splits but "
            "no test set (the corrected t-test counts each test set once); too few for a reliable test: add "
            "cell lines (more repeats add test sets only where a fold holds 2 or more cell lines).")


def few_splits_line(n_splits: dict[str, int] | dict[str, tuple[int, int]]) -> str:
    """A WARNING line naming the drugs whose p-values rest on fewer than MIN_SPLITS splits ('' if none); a
    drug's count is one number or the (fewest, most) of its comparisons, written "9-10 splits"."""
    span = {d: n if isinstance(n, tuple) else (n, n) for d, n in n_splits.items()}
    few = {d: (lo, hi) for d, (lo, hi) in span.items() if lo < MIN_SPLITS}
    if not few:
        return ""
    return (f"WARNING: p-values rest on fewer than {MIN_SPLITS} splits for "
            + ", ".join(f"{d} ({plural(lo, 'split') if lo == hi else str(lo) + '-' + plural(hi, 'split')})"
                        for d, (lo, hi) in few.items())
            + "; too few for a reliable test: run more repeats (--n-repeats) or folds (--n-folds).")


def power_warning(comp: pd.DataFrame, n_train_test: dict[str, Any]) -> str:
    """A WARNING when the splits behind PertVAE's comparisons leave the tests little power: where the
    smallest achievable p and q lie ('' when every drug has MIN_SPLITS splits or more)."""
    counts, sets = _n_splits(comp), _n_test_sets(comp)
    few = {d: n for d, n in counts.items() if n < MIN_SPLITS or sets[d] < MIN_SPLITS}
    if not few:
        return ""
    lines = " ".join(w for w in (few_splits_line(_split_range(comp)), few_test_sets_line(comp)) if w)
    return f"{lines} {_power(comp, n_train_test, few)} means too few splits to tell, not equal."


def power_line(comp: pd.DataFrame, n_train_test: dict[str, Any]) -> str:
    """For the drugs :func:`power_warning` does not warn of, the same numbers as a plain line: even with many
    splits the corrected t-test's variance term for the overlap of training sets stays, so a method ahead on
    every split can still be 'not distinguishable' ('' without comparisons, or when every drug is warned
    of)."""
    counts, sets = _n_splits(comp), _n_test_sets(comp)
    enough = {d: n for d, n in counts.items() if n >= MIN_SPLITS and sets[d] >= MIN_SPLITS}
    if not enough:
        return ""
    power = _power(comp, n_train_test, enough)
    repeated = any(sets[d] < MIN_SPLITS <= n for d, n in counts.items())
    sets_too = ", as many distinct test sets" if repeated else ""
    which = "" if len(enough) == len(counts) else f" (the drugs with {MIN_SPLITS} splits or more{sets_too})"
    return (f"Power{which}: {power[0].lower()}{power[1:]} can mean too few splits to tell, not equal; "
            "each row's 'PertVAE - best' and its interval give the direction.")


def _power(comp: pd.DataFrame, n_train_test: dict[str, Any], counts: dict[str, int]) -> str:
    """What the fewest splits of ``counts`` can show (harness.benchmark.power_floor), up to "So 'not
    distinguishable' here"."""
    j = min(counts.values())
    sets = _n_test_sets(comp) if "p_corrected_t" in comp else {}   # {}: every split a test set
    g = min(sets.get(d, n) for d, n in counts.items())
    floors = [power_floor(n, *(float(x) for x in (n_train_test.get(d) or [float("nan")] * 2)), sets.get(d, n))
              for d, n in counts.items()]
    k = max((f[1] for f in floors), key=lambda v: -np.inf if np.isnan(v) else v)   # the largest holds for all
    p_min = 0.5**j
    family = verdict_family_size(comp)
    sets_words = f" ({plural(g, 'distinct test set')})" if g < j else ""
    return (f"With {plural(j, 'split')}{sets_words} the paired Wilcoxon test cannot go below "
            f"p = 1/2^{j} = {p_min:.3g} even for a method better in every split; the corrected t-test behind "
            f"the verdicts needs a mean difference of at least {k:.2f} standard deviations of the per-split "
            f"differences for p < 0.05, and after Benjamini-Hochberg over the {family} comparisons of the "
            f"verdict family a lone call needs p < {ALPHA / max(family, 1):.2g}. So 'not distinguishable' "
            "here")


def verdict_family_size(comp: pd.DataFrame) -> int:
    """The p-values Benjamini-Hochberg corrects together in the largest primary-metric verdict family (one
    per latent size: every drug x method x direction with a finite p; harness.benchmark._family_q)."""
    sub = comp[(comp["metric"] == PRIMARY) & (comp["kind"] == "versus")]
    if not {"latent", "p_corrected_t", "p_corrected_t_worse"} <= set(sub.columns):
        return 2 * len(sub)   # a table without the p-values: every row's two directions
    finite = (np.isfinite(sub["p_corrected_t"].to_numpy(dtype=float)).astype(int)
              + np.isfinite(sub["p_corrected_t_worse"].to_numpy(dtype=float)).astype(int))
    per = pd.Series(finite, index=sub.index).groupby(sub["latent"]).sum()
    return int(per.max()) if len(per) else 0


def _ceiling_text(ceiling: dict[str, Any], drug: str) -> str:
    c = ceiling.get(drug) or {}
    v, se = c.get("ceiling_delta_pearson", np.nan), c.get("se", np.nan)
    if not isinstance(v, int | float) or not np.isfinite(v):
        return "n/a"
    if not isinstance(se, int | float) or not np.isfinite(se):
        return f"{v:.3f}"
    half = 1.96 * se
    if v - half < -1 or v + half > 1:   # a correlation's interval: clipped, so written by its ends
        return f"{v:.3f} [{max(v - half, -1.0):.3f}, {min(v + half, 1.0):.3f}]"
    return f"{v:.3f} +/- {half:.3f}"


def md_cell(text: str) -> str:
    """``text`` for a markdown table cell: a '|' in a name (CMap's 'name|id' labels) escaped, so that it is
    text and not a column break that shifts the row's cells under the wrong heads."""
    return str(text).replace("|", "\\|")


def _primary_table(ds: xr.Dataset, scores: pd.DataFrame, comp: pd.DataFrame, latent: int,
                   methods: list[str]) -> list[str]:
    """The primary metric's table; PertVAE's difference and verdict columns only where PertVAE ran."""
    ceiling = json_attr(ds, "ceiling")
    with_pertvae = ran(scores, latent)
    extra = " PertVAE - best [95% CI] | verdict |" if with_pertvae else ""
    lines = [f"| drug | measured change | ceiling | {' | '.join(methods)} | best |{extra}",
             "|---|---|---:|" + "---:|" * len(methods) + "---|" + ("---|---|" if with_pertvae else "")]
    drugs = study_drugs(ds)
    for drug in sorted(drugs, key=lambda d: not has_change(ceiling, d)):  # measured changes first
        means = _mean_scores(scores, drug, latent, PRIMARY)
        best, diff = best_line(scores, comp, drug, latent)
        tied = _tied(_best_candidates(scores, drug, latent, PRIMARY), best)
        n = _split_counts(scores, drug, latent, PRIMARY)
        cells = [("**{}**" if m == best or m in tied else "{}").format(fmt_mean(means.get(m, np.nan)))
                 + (f" ({n[m]} of {n.max()} splits)" if m in n and n[m] < n.max() else "") for m in methods]
        named = " = ".join([best, *tied])
        lines.append(f"| {md_cell(drug)} | {_change_cell(ceiling, drug)} | "
                     f"{_ceiling_text(ceiling, drug)} | " + " | ".join(cells) + f" | {named} |"
                     + (f" {diff} | {verdict(comp, drug, latent)}{_null_words(ceiling, comp, drug, latent)} |"
                        if with_pertvae else ""))
    return lines


NULL_WORDS = (" Expected where the replicates measure no change: every method should sit at chance there, so "
              "this tells nothing of how well PertVAE predicts a change.")


def _null_words(ceiling: dict[str, Any], comp: pd.DataFrame, drug: str, latent: int) -> str:
    """For a drug without a measured change on which no comparison is called: why 'not distinguishable'
    there is no tie of skill (:data:`NULL_WORDS`); '' otherwise (a call on such a drug stands as it is)."""
    if has_change(ceiling, drug) or _vs(comp, drug, latent).empty:
        return ""
    parts = verdict_parts(comp, drug, latent)
    return "" if parts["beats"] or parts["loses to"] else NULL_WORDS


def _losses(ds: xr.Dataset, comp: pd.DataFrame, latent: int) -> list[str]:
    sub = comp[(comp["latent"] == latent) & (comp["kind"] == "versus") & (comp["q_bh_worse"] < ALPHA)]
    if sub.empty:
        return [f"PertVAE is not significantly worse than any method on any metric (q < {ALPHA})."]
    lines = [f"Where PertVAE is significantly worse (q < {ALPHA}; on {PRIMARY}: PertVAE minus the method "
             "[95% CI]):"]
    for drug in study_drugs(ds):
        part = sub[sub["drug"] == drug]
        if part.empty:
            continue
        prim = part[part["metric"] == PRIMARY]
        diffs = [f"{r.method} {r.mean_diff:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
                 for r in prim.itertuples()]
        items = [f"{PRIMARY}: " + ", ".join(diffs)] if diffs else []
        items += [f"{metric} ({', '.join(rows['method'])})"
                  for metric, rows in part[part["metric"] != PRIMARY].groupby("metric", sort=False)]
        lines.append(f"- {drug}: " + "; ".join(items))
    return lines


def _metric_table(ds: xr.Dataset, scores: pd.DataFrame, comp: pd.DataFrame, latent: int, metric: str,
                  methods: list[str]) -> list[str]:
    lines = [f"| drug | {' | '.join(methods)} |", "|---|" + "---:|" * len(methods)]
    for drug in study_drugs(ds):
        means = _mean_scores(scores, drug, latent, metric)
        n = _split_counts(scores, drug, latent, metric)
        worse = set(_vs(comp, drug, latent, metric).query("q_bh_worse < @ALPHA")["method"])
        better = set(_vs(comp, drug, latent, metric).query("q_bh < @ALPHA")["method"])
        cells = [fmt_mean(means.get(m, np.nan))
                 + (f" ({n[m]} of {n.max()} splits)" if m in n and n[m] < n.max() else "")
                 + (" (PertVAE worse)" if m in worse else "") + (" (PertVAE better)" if m in better else "")
                 for m in methods]
        lines.append(f"| {md_cell(drug)} | " + " | ".join(cells) + " |")
    return lines


def _gain_table(ds: xr.Dataset, scores: pd.DataFrame, comp: pd.DataFrame, latent: int,
                methods: list[str]) -> list[str]:
    gains = comp[(comp["latent"] == latent) & (comp["kind"] == "cell_gain")]
    if gains.empty:
        return []
    lines = [f"| drug | splits | {' | '.join(methods)} |", "|---|---:|" + "---:|" * len(methods)]
    ceiling = json_attr(ds, "ceiling")
    for drug in sorted(study_drugs(ds), key=lambda d: not has_change(ceiling, d)):
        g = gains[gains["drug"] == drug].set_index("reference")
        ret = _mean_scores(scores, drug, latent, "retrieval")
        cells = [_gain_splits(g, scores, drug, latent)]
        for m in methods:
            if m not in g.index:
                cells.append("-")
                continue
            r = g.loc[m]
            star = "*" if r["q_bh"] < ALPHA else ""
            gain = 0.0 if abs(r["mean_diff"]) < 5e-4 else r["mean_diff"]   # no "-0.000" from rounding
            cells.append(f"{gain:+.3f}{star} / {fmt_mean(ret.get(m, np.nan))}")
        lines.append(f"| {md_cell(drug)} | " + " | ".join(cells) + " |")
    return lines


def _gain_splits(g: pd.DataFrame, scores: pd.DataFrame, drug: str, latent: int) -> str:
    """"gain / retrieval" splits behind a drug's row (a range where methods differ): a derangement or a
    retrieval needs two held-out cell lines, so a drug with few cell lines has fewer than delta_pearson."""
    sub = cell(scores, drug, latent, "retrieval")
    ret = sub[np.isfinite(sub["value"].to_numpy(dtype=float))].groupby("method").size()

    def span(n: pd.Series) -> str:
        lo, hi = (int(n.min()), int(n.max())) if len(n) else (0, 0)
        return str(lo) if lo == hi else f"{lo}-{hi}"
    return f"{span(g['n_splits']) if 'n_splits' in g else '-'} / {span(ret)}"


def _agreement(scores: pd.DataFrame, latent: int) -> list[str]:
    agree = metric_agreement(scores)
    agree = agree[agree["latent"] == latent]
    if agree.empty:
        return []
    lines = [f"| metric | Kendall tau with {PRIMARY} | drugs where it names another best method |",
             "|---|---:|---|"]
    lines += [f"| {r.metric} | {r.kendall_tau:.2f} (over {plural(int(r.n_drugs), 'drug')}) | "
              f"{md_cell(r.drugs_with_another_best or '-')} |" for r in agree.itertuples()]
    return lines


def _truth_line(ds: xr.Dataset, scores: pd.DataFrame, comp: pd.DataFrame, latent: int) -> str:
    """How the report's calls match a synthetic cube's ground truth ('' for real data)."""
    truth = json_attr(ds, "ground_truth")
    if not truth:
        return ""
    compared = compared_with_no_change(comp, list(truth), latent)
    if not compared:
        why = not_compared(scores, latent, no_change_in_run(ds))
        return f"Ground truth (synthetic cube): not checked: {why}."
    eff = [d for d in compared if truth[d].get("effective")]
    null = [d for d in compared if not truth[d].get("effective")]
    called = {d for d in compared if NO_CHANGE in verdict_parts(comp, d, latent)["beats"]}
    found = [d for d in eff if d in called]
    false = [d for d in null if d in called]
    kinds = {d: t.get("kind", "latent_linear") for d, t in truth.items()}
    missed = [f"{d} (generated effect: {kinds[d]})" for d in eff if d not in called]
    line = (f"Ground truth (synthetic cube): PertVAE predicts the change better than 'no change' "
            f"(q < {ALPHA}) for {len(found)} of {len(eff)} drugs with a real effect and {len(false)} of "
            f"{len(null)} null drugs")
    if missed:
        line += f"; missed: {', '.join(missed)}"
    if false:
        line += f"; false calls: {', '.join(false)}"
    if len(compared) < len(truth):
        line += "; not compared (no finished 'no change' fits): " + ", ".join(d for d in truth
                                                                             if d not in compared)
    return line + "."


def _constant_words(scores: pd.DataFrame) -> str:
    """" One number for every gene ...: <method> (k of its n fits), ..." for the methods whose rho_pred_pert
    is exactly 0 on some fit (pertvae_core.metrics.prediction_spearman_rows: a prediction constant across
    genes on every test pair; a mean of informative correlations is never exactly 0), '' without one."""
    sub = scores[scores["metric"] == "rho_pred_pert"].dropna(subset=["value"])
    if sub.empty:
        return ""
    n = sub.groupby("method", sort=False)["value"].agg(zero=lambda v: int((v == 0.0).sum()), total="size")
    hit = n[n["zero"] > 0]
    if hit.empty:
        return ""
    return (" One number for every gene on every test pair of a fit, so rho_pred_pert 0 there: "
            + ", ".join(f"{m} ({int(r['zero'])} of its {plural(int(r['total']), 'fit')})"
                        for m, r in hit.iterrows()) + ".")


def _legend(methods: list[str], comp: pd.DataFrame, scores: pd.DataFrame, n_genes: int = 0) -> list[str]:
    """benchmark.md's legend: what each column means, in plain words (PertVAE's columns only where it
    ran); ``n_genes``: the genes the metrics are computed over (the store's; 0 = not known)."""
    lines = [
        "How to read the tables (numbers are means over the splits of each split's mean over its test cell "
        "lines, so every split weighs the same, whatever its number of cell lines; '-' = no finished fit):",
        f"- {PRIMARY}: does the method predict how the drug changes each gene? The Pearson correlation "
        f"across {_genes_words(n_genes)} of the predicted change (x2_hat - x1) with the measured change "
        "(x2 - x1) in one test cell line, each a mean over the cell line's replicates (the measured change's "
        "x1: its control replicates the method was not given, so that the input's own noise is not in it): "
        "1 = the predicted change goes up and down across the genes like "
        "the measured one, 0 = chance (the score of predicting no change), below 0 = the opposite direction. "
        "Genes are standardized first (the training split's L1000 statistics), so every gene counts alike, "
        "whatever its expression level.",
        "- measured change: whether the drug's replicates measure a reproducible change at all (the signal's "
        f"share of the measured change's variance is above 0 at z > {SIGNAL_Z:g}); on drugs without one, "
        "every method should sit at chance. n/a: the replicates are too few to tell (the ceiling's reason "
        "is at the end); such a drug is counted with those with a measured change, as it is not known to be "
        f"null. {NOT_RECORDED}: the result store was written before this measure existed; such a drug is "
        "counted with those with a measured change too.",
        f"- ceiling: the expected {PRIMARY} of a predictor that knows each test cell line's true change, "
        "estimated from the replicate scatter for the measured change exactly as the metric builds it (the "
        "same reference controls and replicate counts), pooled over the drug's splits; +/- its 95% "
        "uncertainty (by its ends where that passes -1 or 1). No method can exceed the true ceiling on "
        "average; a mean above the estimate but within its uncertainty is no contradiction. For a drug that "
        "changes nothing the true ceiling is 0 and the estimate can be negative: centred at 0 where the "
        "genes' noise is independent, somewhat below 0 where genes share noise (the synthetic demo's drugs "
        "that change nothing: -0.08 on average, their 95% uncertainty covering 0 for 95% of them). n/a: "
        "too few replicates to measure the noise.",
    ]
    lines += [f"- {m}: {method_legend(m)}." for m in methods]
    if REFERENCE not in methods:
        lines.append(f"- best: the method with the highest mean (bold) {FULL_SPLITS}.")
    else:
        lines += [
            f"- best: the method with the highest mean {FULL_SPLITS}; PertVAE - best: PertVAE's mean minus "
            "the best's, with the 95% interval of the corrected resampled t, and the splits on which PertVAE "
            "scored below it (where PertVAE is best, its lead over the runner-up and the splits it is ahead "
            "on). The interval is per comparison, not adjusted for the verdict family's many comparisons: it "
            "can exclude 0 where the verdict, after Benjamini-Hochberg, is 'not distinguishable'; and the "
            "verdicts are one-sided at 0.05, the interval two-sided at 95%.",
            f"- verdict: PertVAE beats / loses to / is not distinguishable from each method (q < {ALPHA}: "
            "corrected resampled t-test paired over splits; Benjamini-Hochberg over one family per latent "
            "size and metric: every drug x method x direction, better and worse together); not tested "
            "against: a method with fewer than two splits paired with PertVAE's, too few for a paired test. "
            "Bold = the best mean."]
        own = [m for m in methods if m not in built_in_methods()]
        if own:
            lines.append(
                f"- your --method plug-ins are in the verdict family: its q-values correct "
                f"{verdict_family_size(comp)} {PRIMARY} p-values together (the largest family), PertVAE "
                f"against your {plural(len(own), 'plug-in')} ({_join(own)}) among them: "
                "adding or removing a plug-in changes the q-values, and can change the verdicts, of PertVAE "
                "against the built-in methods too (their scores stay the same).")
    lines += [
        "- chance levels: " + ", ".join(f"{m} {v:g}" for m, v in CHANCE.items()) + "; mse_z and the Spearman "
        "metrics describe the whole profile and have none, but a prediction that is one number for every "
        "gene ranks no gene above another and scores 0 on the Spearman metrics (rho_pred_pert, "
        "rho_pred_pert_z), as on the correlations of the change, not an undefined value left out of the "
        "means." + _constant_words(scores),
        "- cell-specificity gain: the method's delta_pearson minus that of the same fit predicting from "
        "another test cell line's untreated profile (a fixed derangement per split); ~0 for a method that "
        f"predicts one change for every cell line. * = gain > 0 at q < {ALPHA}. retrieval: how often the "
        "prediction is closer to its own cell line's measured change than to the others' (0.5 = chance). "
        "splits: those behind the gain / the retrieval (each needs two or more held-out cell lines, so a "
        "drug with few cell lines has fewer; a range where methods differ).",
    ]
    return lines


def _genes_words(n_genes: int) -> str:
    """"the 978 genes" (every gene of the store: the metrics are computed over all of them), or "genes"
    where the store's gene count is not known."""
    return f"the {plural(n_genes, 'gene')}" if n_genes > 0 else "genes"


def failed_method_lines(ds: xr.Dataset) -> list[str]:
    """One line per method that failed on its own in some fits (:func:`harness.benchmark.failed_methods`):
    how many, where and the first reason; [] when none did."""
    failed = failed_methods(ds)
    if failed.empty:
        return []
    lines = ["FAILED methods (their failed fits have no scores; every other method is scored as usual; every "
             "reason in failures.csv):"]
    for method, g in failed.groupby("method", sort=False):
        cells = dict.fromkeys(zip(g["drug"], g["latent"], strict=True))
        where = ", ".join(f"{d} latent {x}" for d, x in cells)
        reason = str(g["reason"].iloc[0]).splitlines()[0][:300]
        lines.append(f"- {method}: {int(g['n_failed'].sum())} of {int(g['n_planned'].sum())} fits failed "
                     f"({where}): {reason}")
    return lines


def benchmark_markdown(ds: xr.Dataset, scores: pd.DataFrame, comp: pd.DataFrame, partial_line: str) -> str:
    """benchmark.md (see the module docstring)."""
    lines = [partial_line, ""] if partial_line else []
    failed = failed_method_lines(ds)
    if failed:
        lines += [*failed, ""]
    warn = power_warning(comp, json_attr(ds, "n_train_test"))
    if warn:
        lines += [warn, ""]
    lines += ["# Benchmark: how well each method predicts the drug's change in cell lines it never saw", ""]
    if scores.empty:
        return "\n".join(lines + ["(no scores in this run)"]) + "\n"
    lines += ["In short: " + " ".join(headline(ds, scores, comp)), ""]
    lines += [unscored, ""] if (unscored := unscored_line(scores)) else []
    power = power_line(comp, json_attr(ds, "n_train_test"))
    lines += [power, ""] if power else []
    methods = method_order(scores["method"].unique())
    for latent in sorted(scores.loc[scores["metric"] == PRIMARY, "latent"].unique().tolist()):
        lines += [f"## latent {latent}", "", f"### {PRIMARY} (primary; higher is better; chance 0)", ""]
        lines += _primary_table(ds, scores, comp, latent, methods) + [""]
        if ran(scores, latent):
            truth = _truth_line(ds, scores, comp, latent)
            lines += [truth, ""] if truth else []
            lines += _losses(ds, comp, latent) + [""]
        lines += ["### mse_z (squared error of the standardized treated profile; lower is better)", ""]
        if ran(scores, latent):
            lines += [f"(PertVAE worse) / (PertVAE better): PertVAE's mse_z is significantly higher / lower "
                      f"than the method's (q < {ALPHA}; the verdicts' test, one family for mse_z).", ""]
        lines += _metric_table(ds, scores, comp, latent, "mse_z", methods) + [""]
        gain = _gain_table(ds, scores, comp, latent, methods)
        if gain:
            lines += ["### Does each method use the cell line? (cell-specificity gain / retrieval)", ""]
            lines += gain + [""]
        agree = _agreement(scores, latent)
        if agree:
            lines += ["### Do the metrics agree on the ranking of the methods?", ""] + agree + [""]
    lines += [*_legend(methods, comp, scores, int(ds.sizes.get("gene", 0))), ""]
    pairing = json_attr(ds, "pairing")
    if pairing:
        lines += [f"Pairing of x1 (control) with x2 (treated) replicates ({PAIRING_NOTE}): "
                  + "; ".join(f"{d}: {r}" for d, r in pairing.items() if d in study_drugs(ds)) + ".", ""]
    if products := products_line(ds):
        lines += [products, ""]
    reasons = sorted({(d, v.get("reason", "")) for d, v in json_attr(ds, "ceiling").items()
                      if (v or {}).get("reason")})
    if reasons:
        lines.append("Ceiling n/a: " + "; ".join(f"{d}: {r}" for d, r in reasons) + ".")
    return "\n".join(lines).rstrip() + "\n"
