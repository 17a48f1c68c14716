"""The run summary's drug-response line (harness.response_report.verdict_line) stays readable with many
methods: few are named, many are counted with the ones left out, and verdict groups stay apart; and it, the
tables and the legend say what the tests did: every metric's verdicts, one q for one test, intervals with the
tests' variance, names that read as one name in a list."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.contenders import RESPONSE_MODELS, contender
from harness.report import FILE_WORDS, RESPONSE_ONLY
from harness.response_report import (
    COLUMNS,
    LIST_MAX,
    _mean_ci,
    _method_rows,
    _q,
    label,
    listed,
    plain_name,
    response_markdown,
    summary_lines,
    verdict_line,
)
from pertvae_core.stats import corrected_t_greater

TT = (4.0, 1.0)   # 5-fold CV: the corrected t's n_train, n_test (test/train ratio 1/4)


def test_listed_names_few_and_counts_many() -> None:
    among = [f"m{i}" for i in range(10)]
    assert listed(among[:LIST_MAX], among) == "; ".join(among[:LIST_MAX])
    assert listed(among, among) == "all 10 methods"
    assert listed(among, among, "any of the") == "any of the 10 methods"   # after "not distinguishable from"
    assert listed(among[:8], among) == "8 of 10 methods (all but these 2: m8; m9)"
    assert listed(among[:9], among) == "9 of 10 methods (all but m9)"     # not "all but these 1"
    assert listed(among[:5], among) == "5 of 10 methods (the table in response.md lists them)"


def test_plain_names_read_as_one_name_in_a_list() -> None:
    """A list is joined by "; " and a plain name holds no comma outside its brackets: "all but these 2:
    Dr.VAE, identity perturbation; training prior" read as excluding Dr.VAE; and one model has one name."""
    names = [plain_name(m) for name in RESPONSE_MODELS for m in contender(name).methods]
    assert not [n for n in names if "," in re.sub(r"\([^)]*\)|\[[^]]*\]", "", n)], names
    assert plain_name("drvae_identity") == "Dr.VAE (identity perturbation)"
    assert plain_name("drvae_continuous") == "Dr.VAE (continuous head)"
    assert plain_name("drvae_continuous_identity") == "Dr.VAE (continuous head, identity perturbation)"


def test_a_drug_line_with_many_methods() -> None:
    methods = ["drvae", "drvae_identity", "logreg_x1", "rf_x1", "svm_x1", "logreg_pca", "rf_pca", "prior"]
    verdict = [np.nan, "not distinguishable from", "loses to", "not distinguishable from",
               "not distinguishable from", "not distinguishable from", "not distinguishable from", "beats"]
    q_chance = [0.2, 0.2, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1.0]
    table = pd.DataFrame({"verdict": verdict, "q_chance": q_chance}, index=methods)
    line = verdict_line(table, "olaparib")
    assert line.startswith("olaparib: Dr.VAE beats training prior — loses to logistic L2 on x1 — "
                           "not distinguishable from 5 of 7 methods (all but these 2: logistic L2 on x1; "
                           "training prior) (AUROC).")
    assert line.endswith("Above chance (AUROC, q < 0.05): 5 of 8 methods (all but these 3: Dr.VAE; "
                         "Dr.VAE (identity perturbation); training prior).")


def _tied(means: list[float], ahead: list[float], metric: str = "auroc") -> pd.DataFrame:
    """Dr.VAE and two methods, neither distinguishable from it; Dr.VAE - method as the means give."""
    methods = ["drvae", "logreg_x1", "rf_x1"] if metric == "auroc" else ["drvae_continuous", "ridge_x1",
                                                                          "drug_mean"]
    return pd.DataFrame({"metric": metric, "mean": means,
                         "diff_vs_drvae": [np.nan, means[0] - means[1], means[0] - means[2]],
                         "splits_ahead_of_drvae": [np.nan, *ahead], "n_paired": [np.nan, 10, 10],
                         "n_splits": 10,
                         "verdict": [np.nan, "not distinguishable from", "not distinguishable from"],
                         "q_chance": [0.2, 0.01, 0.3]}, index=methods)


def test_not_distinguishable_does_not_hide_a_method_ahead_on_every_split() -> None:
    """The drvae-demo's olaparib: Dr.VAE's AUROC 0.618, logistic L2 on x1's 0.928, higher on 10 of 10
    splits, yet not significant after the corrected t and Benjamini-Hochberg: the line says both."""
    line = verdict_line(_tied([0.618, 0.928, 0.7], [10, 7]), "olaparib")
    assert line.startswith("olaparib: Dr.VAE not distinguishable from logistic L2 on x1; random forest on x1 "
                           "(AUROC); of those, logistic L2 on x1 has the highest mean (0.928 against 0.618) "
                           "and is ahead of Dr.VAE on 10 of 10 splits. Above chance")
    assert "of those" not in verdict_line(_tied([0.9, 0.8, 0.7], [3, 1]), "olaparib")  # Dr.VAE's mean is best
    rmse = verdict_line(_tied([0.62, 0.58, 0.7], [9, 2], "rmse"), "olaparib", "RMSE",
                        "Dr.VAE (continuous head)")
    assert ("(RMSE); of those, ridge on x1 has the lowest mean (0.580 against 0.620) and is ahead of "
            "Dr.VAE (continuous head) on 9 of 10 splits.") in rmse


def test_a_better_mean_on_few_splits_is_not_worded_as_a_hidden_lead() -> None:
    """The drvae-demo's tipifarnib: ridge on x1's mean Pearson 0.102 against 0.083, ahead on 4 of 10 splits:
    "though ... is ahead on 4 of 10" flagged a lead that is not there; the clause reads the same both ways."""
    line = verdict_line(_tied([0.083, 0.102, 0.05], [4, 3], "pearson"), "tipifarnib", "Pearson",
                        "Dr.VAE (continuous head)")
    assert "though" not in line
    assert ("(Pearson); of those, ridge on x1 has the highest mean (0.102 against 0.083) and is ahead of "
            "Dr.VAE (continuous head) on 4 of 10 splits.") in line


def test_a_tie_with_every_method_reads_as_one() -> None:
    """"not distinguishable from all 6 methods" reads as "from some of them": the line says "any"."""
    methods = ["drvae", "drvae_identity", "logreg_x1", "rf_x1", "svm_x1", "logreg_pca", "prior"]
    table = pd.DataFrame({"verdict": [np.nan, *["not distinguishable from"] * 6], "q_chance": 0.5},
                         index=methods)
    assert verdict_line(table, "olaparib").startswith(
        "olaparib: Dr.VAE not distinguishable from any of the 6 methods (AUROC). Above chance")


def _row(method: str, metric: str, mean: float, verdict: str = "", family: str = "versus", **kw) -> dict:
    """A response.csv row with what the report reads (ten splits)."""
    ref = method == ("drvae" if metric in ("auroc", "aupr") else "drvae_continuous")
    row = dict.fromkeys(COLUMNS, np.nan)
    row.update({"drug": "vorinostat", "latent": 8, "method": method, "classifier": label(method)[0],
                "features": "x1", "metric": metric, "mean": mean, "ci_low": mean - 0.05,
                "ci_high": mean + 0.05, "chance": 0.0, "n_splits": 10, "q_chance": 1e-4,
                "verdict": "" if ref else verdict, "verdict_family": "" if ref else family,
                "n_paired": np.nan if ref else 10})
    row.update(kw)
    return row


def _continuous(ridge_rmse: str) -> pd.DataFrame:
    """The drvae-demo's vorinostat, continuous head: Dr.VAE's continuous head not distinguishable from ridge
    on x1 by Pearson and Spearman, ``ridge_rmse`` by RMSE (0.611 against 0.571), above the drug mean."""
    tie = "not distinguishable from"
    rows = [_row("drvae_continuous", "pearson", 0.826), _row("ridge_x1", "pearson", 0.852, tie,
                                                             diff_vs_drvae=-0.026, splits_ahead_of_drvae=9),
            _row("drvae_continuous", "spearman", 0.800), _row("ridge_x1", "spearman", 0.827, tie,
                                                              diff_vs_drvae=-0.027, splits_ahead_of_drvae=9),
            _row("drvae_continuous", "rmse", 0.611),
            _row("ridge_x1", "rmse", 0.571, ridge_rmse, diff_vs_drvae=0.040, diff_ci_low=0.010,
                 diff_ci_high=0.069, splits_ahead_of_drvae=10),
            _row("drug_mean", "rmse", 1.077, "beats", "chance", diff_vs_drvae=-0.466, diff_ci_low=-0.609,
                 diff_ci_high=-0.323, splits_ahead_of_drvae=0)]
    return pd.DataFrame(rows)[list(COLUMNS)]


def test_a_loss_by_another_metric_is_in_the_line_and_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """The drvae-demo's vorinostat: Dr.VAE's continuous head lost to ridge on x1 by RMSE while the line gave
    only Pearson's verdicts and response.md only Pearson's and the drug mean's RMSE win."""
    table = _continuous("loses to")
    md = response_markdown(table)
    ridge = [line for line in md.splitlines() if line.startswith("| ridge | x1 |")]
    assert len(ridge) == 3 and ridge[2].endswith("| +0.040 [+0.010, +0.069] | loses to |")  # the RMSE table
    assert "| drug mean | x1 | 1.077 [1.027, 1.127] | 0.0001 | -0.466 [-0.609, -0.323] | beats † |" in md
    line = next(s for s in md.splitlines() if s.startswith("vorinostat: "))
    assert ("By RMSE: Dr.VAE (continuous head) beats drug mean — loses to ridge on x1." in line
            and "By Spearman: Dr.VAE (continuous head) not distinguishable from ridge on x1" in line)
    monkeypatch.setattr("harness.response_report.has_response", lambda ds: True)
    monkeypatch.setattr("harness.response_report.response_table", lambda ds: table)
    head, short = summary_lines(None)   # the summary: Pearson, and RMSE where Dr.VAE loses; not Spearman
    assert head == ("Drug response (response.md has every metric; below, Pearson, and another metric "
                    "(Spearman, RMSE) only where Dr.VAE loses on it):")
    assert short == "  " + line.replace(line[line.index(" By Spearman"):line.index(" By RMSE")], "")
    assert "By RMSE: Dr.VAE (continuous head) beats drug mean — loses to ridge on x1." in short
    tied = next(s for s in response_markdown(_continuous("not distinguishable from")).splitlines()
                if s.startswith("vorinostat: "))
    assert ("By RMSE: Dr.VAE (continuous head) beats drug mean — not distinguishable from ridge on x1; of "
            "those, ridge on x1 has the lowest mean (0.571 against 0.611) and is ahead of Dr.VAE (continuous "
            "head) on 10 of 10 splits.") in tied      # a win by RMSE is not shown alone
    monkeypatch.setattr("harness.response_report.response_table",
                        lambda ds: _continuous("not distinguishable from"))
    assert "By RMSE" not in summary_lines(None)[1]   # no loss by RMSE: the summary keeps to Pearson


def _p_rows(n_null: int = 20) -> pd.DataFrame:
    """One (drug, latent, metric): Dr.VAE one-sided p 0.03 above chance; the training prior exactly at chance
    (so Dr.VAE against it is the same test, the same p); ``n_null`` methods far above chance and level with
    Dr.VAE: a lenient chance family and a strict verdict family, where the same p got q < 0.05 in one and
    not in the other."""
    rows = [{"method": "drvae", "p_chance": 0.03, "p_chance_worse": 0.97, "p_better": np.nan,
             "p_worse": np.nan, "at_chance": False},
            {"method": "prior", "p_chance": 1.0, "p_chance_worse": 1.0, "p_better": 0.03, "p_worse": 0.97,
             "at_chance": True}]
    rows += [{"method": f"m{i}", "p_chance": 1e-6, "p_chance_worse": 1.0, "p_better": 0.5, "p_worse": 0.5,
              "at_chance": False} for i in range(n_null)]
    return pd.DataFrame(rows).assign(drug="selumetinib", latent=8, metric="auroc")


def test_one_test_has_one_q_where_a_method_scores_exactly_chance() -> None:
    """The drvae-demo's selumetinib: Dr.VAE "above chance" (q 0.043) yet "not distinguishable from" the
    training prior (q 0.351), whose AUROC is 0.5 on every split: one test, p 0.0285, two q-values. The prior's
    verdict is now Dr.VAE's test against chance, and the verdict family is the comparisons between models."""
    df = _q(_p_rows()).set_index("method")
    assert df.loc["drvae", "q_chance"] < 0.05 and df.loc["prior", "verdict"] == "beats"
    assert df.loc["prior", "q_better"] == df.loc["drvae", "q_chance"]
    assert df.loc["prior", "verdict_family"] == "chance" and df.loc["m0", "verdict_family"] == "versus"
    # the verdict family holds both directions of the 20 other comparisons only: BH's q of p 0.5 over 40
    assert df.loc["m0", "q_better"] == pytest.approx(0.5)
    below = _p_rows().assign(p_chance=lambda d: d["p_chance"].where(d["method"] != "drvae", 0.97),
                             p_chance_worse=lambda d: d["p_chance_worse"].where(d["method"] != "drvae", 1e-4))
    assert _q(below).set_index("method").loc["prior", "verdict"] == "loses to"   # Dr.VAE below chance


def test_a_means_interval_excludes_chance_exactly_when_its_test_is_below_0025() -> None:
    """The drvae-demo's olaparib: Dr.VAE's AUROC 0.618 [0.502, 0.733] by a plain t-interval, yet corrected p
    0.125: the interval now has the corrected t's variance, so the two agree (and stays within [0, 1])."""
    rng = np.random.default_rng(0)
    for shift in np.linspace(0.0, 0.3, 31):
        v = np.clip(0.5 + shift + rng.normal(0, 0.15, 10), 0, 1)
        mean, lo, hi = _mean_ci(v, "auroc", TT)
        assert mean == pytest.approx(v.mean()) and 0.0 <= lo <= mean <= hi <= 1.0
        assert (lo > 0.5) == (corrected_t_greater(v, np.full(10, 0.5), *TT) < 0.025), shift
    z = rng.normal(size=10)
    v = 0.618 + (z - z.mean()) / z.std(ddof=1) * 0.1622       # olaparib's mean and spread
    plain_low = v.mean() - stats.t.ppf(0.975, 9) * v.std(ddof=1) / np.sqrt(10)
    assert plain_low == pytest.approx(0.502, abs=1e-3) and _mean_ci(v, "auroc", TT)[1] < 0.5


def test_the_legend_says_the_difference_intervals_are_not_adjusted() -> None:
    md = response_markdown(_continuous("loses to"))
    assert ("Dr.VAE − method: paired over the splits, with its corrected-t 95% interval per comparison, "
            "not adjusted for the up to 2 comparisons of its verdict family, clipped to the range a "
            "difference of the metric can take (AUROC's and AUPR's -1 to 1, Pearson's and Spearman's -2 to "
            "2); the verdict uses the Benjamini-Hochberg q instead") in md
    assert "Scored exactly at their chance level on every split: drug mean (RMSE)." in md


def test_the_response_only_runs_files_and_words() -> None:
    """The drug-response run's summary lists response.csv, and does not say the run has no model of the
    drug's change (Dr.VAE's p(z2|z1) is one; the response PertVAE is fitted per split)."""
    assert "response.csv" in FILE_WORDS
    assert "no model of the drug's change" not in RESPONSE_ONLY and "Table 1" in RESPONSE_ONLY


def test_chance_is_the_mean_over_the_splits_the_mean_is_over() -> None:
    """A one-class test fold has no AUPR (NaN) but a chance level (its prevalence, 0): averaged in, the
    training prior's AUPR of 0.3 on every scored split (exactly its chance) was reported against a chance of
    0.24."""
    ch = [0.3, 0.3, 0.3, 0.3, 0.0]
    block = pd.DataFrame({("aupr", "drvae"): [0.6, 0.7, 0.65, 0.62, np.nan], ("aupr_chance", "drvae"): ch,
                          ("aupr", "prior"): [0.3, 0.3, 0.3, 0.3, np.nan], ("aupr_chance", "prior"): ch})
    rows = {r["method"]: r for r in _method_rows(block, "olaparib", 8, "aupr", TT, ["drvae", "prior"])}
    assert rows["prior"]["mean"] == pytest.approx(0.3) and rows["prior"]["at_chance"]
    assert rows["prior"]["chance"] == pytest.approx(0.3)
    assert rows["drvae"]["chance"] == pytest.approx(0.3) and rows["drvae"]["n_splits"] == 4


def test_the_labels_sentence_is_true_of_the_fixed_rule() -> None:
    """The fixed rule's threshold is the given number: response.md said it was "set per drug and split from
    the training cell lines' responses only"."""
    fixed = response_markdown(_continuous("loses to"), rule="fixed 100").splitlines()[2]
    assert "training cell lines" not in fixed and "at least 100" in fixed
    assert "one threshold for every drug and split" in fixed
    assert "set per drug and split from the training cell lines' responses only" in response_markdown(
        _continuous("loses to"), rule="quantile 0.75").splitlines()[2]


def test_summary_lines_say_the_latent_size_when_the_run_has_several(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two latent sizes gave two "vorinostat: " lines, one "loses to ridge on x1" and one not, with nothing
    to tell them apart: each line now names its latent size (one latent size: the drug alone, as before)."""
    table = pd.concat([_continuous("loses to"),
                       _continuous("not distinguishable from").assign(latent=16)], ignore_index=True)
    monkeypatch.setattr("harness.response_report.has_response", lambda ds: True)
    monkeypatch.setattr("harness.response_report.response_table", lambda ds: table)
    lines = summary_lines(None)[1:]
    assert [s.split(": ")[0] for s in lines] == ["  vorinostat (latent 8)", "  vorinostat (latent 16)"]
    assert "loses to ridge on x1" in lines[0] and "loses to" not in lines[1]
    monkeypatch.setattr("harness.response_report.response_table", lambda ds: _continuous("loses to"))
    assert summary_lines(None)[1].startswith("  vorinostat: ")


def test_no_empty_models_sentence_without_scores() -> None:
    """A run whose every response fit failed wrote "Models (`--models`) and their methods' code names
    (response.csv): ." in response.md."""
    md = response_markdown(pd.DataFrame(columns=list(COLUMNS)), rule="fixed 100")
    assert "code names (response.csv): ." not in md and "Models (`--models`)" not in md
    assert "Models (`--models`) and their methods' code names" in response_markdown(_continuous("loses to"))


def test_binary_means_over_fewer_splits_for_one_class_test_folds_say_so(monkeypatch: pytest.MonkeyPatch
                                                                          ) -> None:
    """A drug whose test cell lines were all resistant on one split and all sensitive on another (AUROC and
    AUPR undefined there, for every method alike) was headed '## olaparib (latent 8, 5 splits)' above AUROC
    means over the other 3 with nothing to say so: no row is below the table's own 3 (the edge-case run of
    the second drug-response review). The head now says how many splits are undefined and why."""
    import xarray as xr

    from harness import response_report as rr

    rows = []
    for fold, prevalence in enumerate((0.5, 0.4, 0.0, 0.6, 1.0)):
        one_class = prevalence in (0.0, 1.0)
        for m, auroc in (("drvae", 0.6 + 0.02 * fold), ("logreg_x1", 0.8 + 0.01 * fold), ("prior", 0.5)):
            rows += [("olaparib", 8, 0, fold, "auroc", m, np.nan if one_class else auroc),
                     ("olaparib", 8, 0, fold, "auroc_chance", m, 0.5),
                     ("olaparib", 8, 0, fold, "aupr", m, np.nan if one_class else auroc),
                     ("olaparib", 8, 0, fold, "aupr_chance", m, prevalence)]
    tidy = pd.DataFrame(rows, columns=["drug", "latent", "repeat", "fold", "metric", "method", "value"])
    wide = tidy.pivot_table(index=["drug", "latent", "repeat", "fold"], columns=["metric", "method"],
                            values="value", aggfunc="first")
    monkeypatch.setattr(rr, "_wide", lambda ds: wide)
    monkeypatch.setattr(rr, "has_response", lambda ds: True)
    table = rr.response_table(xr.Dataset(coords={"method": ["drvae"]}, attrs={"n_folds": 5}))
    assert set(table["n_splits"]) == {3} and set(table["n_one_class"]) == {2}
    md = response_markdown(table)
    assert "## olaparib (latent 8, 5 splits)" in md
    assert ("AUROC and AUPR are undefined on 2 of 5 splits, whose test cell lines are all of one class (all "
            "sensitive or all resistant): this head's means, tests and verdicts are over the other 3.") in md


def test_the_power_line_counts_the_splits_a_verdict_pairs() -> None:
    """The verdicts' tests pair each method with Dr.VAE on the splits both scored (n_paired): with Dr.VAE's
    fits failed on 2 of 5 splits and a baseline scored on all 5, the Power line read 'with 5 splits', the
    baseline's own count, where its verdict rests on 3 (and the threshold it gives on 5)."""
    from harness.response_report import power_line

    tie = "not distinguishable from"
    table = pd.DataFrame([_row("drvae", "auroc", 0.6, n_splits=3),
                          _row("logreg_x1", "auroc", 0.8, tie, n_splits=5, n_paired=3)])
    assert power_line(table, 5).startswith("Power: with 3 splits of 5-fold CV")


def test_a_better_mean_is_printed_apart_from_dr_vaes() -> None:
    """This review's edge-case run (olaparib, RMSE): 'Dr.VAE (continuous head, identity perturbation) has the
    lowest mean (1.106 against 1.106)', 1.10564 against 1.10597 rounded alike: the two means now get the
    digits that tell them apart."""
    line = verdict_line(_tied([1.10597, 1.10564, 1.2], [3, 1], "rmse"), "olaparib", "RMSE",
                        "Dr.VAE (continuous head)")
    assert "has the lowest mean (1.1056 against 1.1060)" in line
    assert "(0.580 against 0.620)" in verdict_line(_tied([0.62, 0.58, 0.7], [9, 2], "rmse"), "olaparib",
                                                   "RMSE", "Dr.VAE (continuous head)")


def test_a_q_beside_the_threshold_is_printed_on_its_side() -> None:
    """A q of 0.04996 printed as '0.05' beside an above-chance call at q < 0.05 (and in the line's 'Above
    chance' list): 3 significant digits put it on the threshold. It keeps the digits that show its side;
    the drvae-demo's 0.0500402 (not above chance) still reads '0.05'."""
    from harness.response_report import _q_cell

    assert _q_cell(0.04996) == "0.04996"
    assert _q_cell(0.0500402) == "0.05"
    assert _q_cell(0.000626) == "0.000626" and _q_cell(np.nan) == "—"
