"""harness.verdicts: a drug where PertVAE loses on every split is never reported as "no method beats it";
every word is checked against p- and q-values computed here with scipy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.report import load, render_report

DRUGS = ("temsirolimus", "d1", "d2", "d3", "d4")
N_TT = (30.0, 8.0)
METHODS = ("pertvae", "pertvae_rec", "identity", "train_mean", "mean_shift", "pca_latent_linear",
           "ridge_delta")


def _means(drug: str) -> dict[str, float]:
    if drug == "temsirolimus":  # the review's case: mean_shift 0.966 vs PertVAE 0.814
        return {"pertvae": 0.814, "pertvae_rec": 0.09, "identity": 0.0, "train_mean": 0.67,
                "mean_shift": 0.966, "pca_latent_linear": 0.91, "ridge_delta": 0.94}
    return dict.fromkeys(METHODS, 0.0)


def _store(out: Path, n_folds: int, seed: int = 0) -> dict[tuple[str, str], np.ndarray]:
    """A real result store (harness.store) of one repeat of ``n_folds`` folds; returns the primary scores."""
    from harness.config import make_config
    from harness.store import ResultStore
    from pertvae_core.methods import METHODS as BUILT_IN

    cfg = make_config("demo", models=["pertvae", "baselines"], latents_pertvae=[10], latents_baselines=[10],
                      n_repeats=1, n_folds=n_folds)
    ceiling = {d: {"ceiling_delta_pearson": 0.97 if d == "temsirolimus" else 0.05, "se": 0.01,
                   "signal_z": 40.0 if d == "temsirolimus" else 0.3, "reason": ""} for d in DRUGS}
    st = ResultStore.open(out, cfg, "fp", drugs=list(DRUGS), n_train_test=dict.fromkeys(DRUGS, list(N_TT)),
                          methods=BUILT_IN, extra_attrs={"ceiling": ceiling}, cell_lines=["c1"],
                          genes=["g1", "g2"])
    rng = np.random.default_rng(seed)
    values, rows = {}, []
    for drug in DRUGS:
        for m, mean in _means(drug).items():
            sd = 0.0 if m == "identity" else (0.06 if m == "pertvae" else 0.01)
            values[(drug, m)] = mean + sd * rng.normal(size=n_folds) if sd else np.zeros(n_folds)
        for model, own in (("pertvae", METHODS[:2]), ("baselines", METHODS[2:])):
            for f in range(n_folds):
                scores = {m: {"delta_pearson": float(values[(drug, m)][f])} for m in own}
                rows.append({"model": model, "drug": drug, "latent": 10, "repeat": 0, "fold": f,
                             "status": "done", "scores": scores, "fit_seconds": 1.0})
    st.write(rows)
    return values


def _expected(values: dict[tuple[str, str], np.ndarray], n: int) -> pd.DataFrame:
    """Corrected resampled t p-values (better, worse) of PertVAE against each method, and BH over the
    family of every drug x method x direction, with scipy."""
    rows = []
    for drug in DRUGS:
        for m in METHODS[1:]:
            d = values[(drug, "pertvae")] - values[(drug, m)]
            se = math.sqrt((1 / n + N_TT[1] / N_TT[0]) * d.var(ddof=1))
            t = d.mean() / se
            rows.append({"drug": drug, "method": m, "p": stats.t.sf(t, n - 1),
                         "p_worse": stats.t.sf(-t, n - 1), "mean": d.mean(),
                         "half": stats.t.ppf(0.975, n - 1) * se})
    df = pd.DataFrame(rows)
    q = stats.false_discovery_control(np.concatenate([df["p"], df["p_worse"]]), method="bh")
    df["q"], df["q_worse"] = q[: len(df)], q[len(df):]
    return df


@pytest.mark.parametrize("n_folds", [5, 10])
def test_a_drug_lost_on_every_split_is_never_called_unbeaten(tmp_path: Path, n_folds: int) -> None:
    values = _store(tmp_path, n_folds)
    d = values[("temsirolimus", "pertvae")] - values[("temsirolimus", "mean_shift")]
    assert (d < 0).all()  # PertVAE loses to mean_shift on every split
    render_report(tmp_path)
    want = _expected(values, n_folds).set_index(["drug", "method"])
    bench = (tmp_path / "benchmark.md").read_text()
    row = next(line for line in bench.splitlines() if line.startswith("| temsirolimus |"))
    ms = want.loc[("temsirolimus", "mean_shift")]
    word = "loses to" if ms["q_worse"] < 0.05 else "not distinguishable from"
    cells = [c.strip() for c in row.split("|")]
    verdict = cells[-2]
    assert "no method beats it" not in bench
    assert f"{word} " in verdict and "mean_shift" in verdict.split(word)[1].split(";")[0]
    assert verdict.endswith(f"({n_folds} splits).")
    best = max(METHODS, key=lambda m: values[("temsirolimus", m)].mean())
    assert cells[-4] == best == "mean_shift"
    b = want.loc[("temsirolimus", best)]
    assert cells[-3] == (f"{b['mean']:+.3f} [{b['mean'] - b['half']:+.3f}, {b['mean'] + b['half']:+.3f}], "
                         f"behind on {n_folds} of {n_folds} splits")
    comp = load(tmp_path).comparisons.query("kind == 'versus' and metric == 'delta_pearson'")
    got = comp.set_index(["drug", "method"]).loc[want.index]
    np.testing.assert_allclose(got["q_bh"], want["q"], rtol=1e-9)
    np.testing.assert_allclose(got["q_bh_worse"], want["q_worse"], rtol=1e-9)
    assert got.loc[("temsirolimus", "mean_shift"), "n_worse"] == n_folds
    if n_folds < 10:  # the power warning says where the floor lies
        assert f"cannot go below p = 1/2^{n_folds}" in bench.splitlines()[0] and "Power:" not in bench
    else:  # no warning, but the same numbers (scipy's) as a plain line
        assert "WARNING" not in bench
        k = stats.t.ppf(0.95, n_folds - 1) * math.sqrt(1 / n_folds + N_TT[1] / N_TT[0])
        family = 2 * len(want)
        assert (f"Power: with {n_folds} splits the paired Wilcoxon test cannot go below p = 1/2^{n_folds} "
                f"= {0.5 ** n_folds:.3g} even for a method better in every split; the corrected t-test "
                f"behind the verdicts needs a mean difference of at least {k:.2f} standard deviations of the "
                f"per-split differences for p < 0.05, and after Benjamini-Hochberg over the {family} "
                f"comparisons of the verdict family a lone call needs p < {0.05 / family:.2g}. So 'not "
                "distinguishable' here can mean too few splits to tell, not equal;") in bench, bench[:2000]
    summary = (tmp_path / "summary.txt").read_text()
    assert ("on the 1 drug(s) whose replicates measure a change: mean_shift on 1 (temsirolimus); PertVAE on "
            "none." in summary)
    assert "Best mean delta_pearson (the correlation of the predicted with the measured change;" in summary
    assert "4 drug(s) show no measured change; no delta_pearson comparison is called on them." in summary


def _store_of(out: Path, models: list[str], no_identity_on: tuple[str, ...] = (),
              mse_z_worse_on: tuple[str, ...] = (), best: str = "mean_shift", d1_folds: int = 5,
              tie: bool = False) -> None:
    """A real store of ``models`` on a synthetic cube's drugs (ground truth: selumetinib has an effect,
    d1 none); ``best`` is best on both; 'no change' (identity) has no scores on ``no_identity_on``; with
    ``mse_z_worse_on``, every method has mse_z too, PertVAE's 4x the others' on those drugs; d1 has fits on
    its first ``d1_folds`` folds only; with ``tie``, ridge_delta scores 1e-6 above mean_shift everywhere."""
    from harness.config import make_config
    from harness.store import ResultStore
    from pertvae_core.methods import METHODS as BUILT_IN

    drugs = ("selumetinib", "d1")
    cfg = make_config("demo", models=models, latents_pertvae=[10], latents_baselines=[10], n_repeats=1,
                      n_folds=5)
    ceiling = {d: {"ceiling_delta_pearson": 0.9, "se": 0.01, "signal_z": 40.0 if d == "selumetinib" else 0.3,
                   "reason": ""} for d in drugs}
    truth = {"selumetinib": {"effective": True, "kind": "latent_linear"}, "d1": {"effective": False}}
    st = ResultStore.open(out, cfg, "fp", drugs=list(drugs), n_train_test=dict.fromkeys(drugs, list(N_TT)),
                          methods=BUILT_IN, extra_attrs={"ceiling": ceiling, "ground_truth": truth},
                          cell_lines=["c1"], genes=["g1", "g2"])
    rng = np.random.default_rng(0)
    own = {"pertvae": METHODS[:2], "baselines": METHODS[2:]}

    def scores(m: str, d: str) -> dict[str, float]:
        out = {"delta_pearson": 0.0 if m == "identity" else float(rng.normal(0.5 if m == best else 0.1,
                                                                               0.05))}
        if mse_z_worse_on:
            out["mse_z"] = float(rng.normal(0.4 if m == "pertvae" and d in mse_z_worse_on else 0.1, 0.01))
        return out

    def row_scores(model: str, d: str) -> dict[str, dict[str, float]]:
        out = {m: scores(m, d) for m in own[model] if not (m == "identity" and d in no_identity_on)}
        if tie and "ridge_delta" in out:
            out["ridge_delta"] = {k: v + 1e-6 for k, v in out["mean_shift"].items()}
        return out

    rows = [{"model": model, "drug": d, "latent": 10, "repeat": 0, "fold": f, "status": "done",
             "scores": row_scores(model, d),
             "fit_seconds": 1.0}
            for model in models for d in drugs for f in range(5) if d != "d1" or f < d1_folds]
    st.write(rows)


def test_a_baselines_run_says_nothing_about_pertvae(tmp_path: Path) -> None:
    """``--models baselines``: no verdict, no "missed", no PertVAE column or sentence (issue 24 #5)."""
    _store_of(tmp_path, ["baselines"])
    render_report(tmp_path, with_figures=False)
    result = (tmp_path / "summary.txt").read_text().split("Files in")[0]
    bench = (tmp_path / "benchmark.md").read_text()
    assert "PertVAE" not in result, result
    assert "mean_shift on 1" in result and "5 splits per drug" in result
    about = [x for x in bench.splitlines() if "PertVAE" in x]
    assert not about, about
    assert "missed" not in bench and "Ground truth" not in bench
    assert "| drug | measured change | ceiling | identity |" in bench and "verdict" not in bench


def test_the_headline_names_drugs_with_fewer_splits(tmp_path: Path) -> None:
    """"5 splits per drug" was the first drug's count: a drug with fewer is named with its own."""
    for models in (["pertvae", "baselines"], ["baselines"]):
        out = tmp_path / models[0]
        _store_of(out, models, d1_folds=3)
        render_report(out, with_figures=False)
        assert "latent 10, 5 splits per drug, fewer on d1 (3))" in (out / "summary.txt").read_text()


def test_a_run_with_pertvae_keeps_its_verdicts_and_ground_truth(tmp_path: Path) -> None:
    _store_of(tmp_path, ["pertvae", "baselines"])
    render_report(tmp_path, with_figures=False)
    result = (tmp_path / "summary.txt").read_text()
    bench = (tmp_path / "benchmark.md").read_text()
    assert "PertVAE on none" in result and "PertVAE predicts the change better" in result
    assert "missed: selumetinib (generated effect: latent_linear)" in bench
    assert "PertVAE - best [95% CI] | verdict |" in bench


def test_without_no_change_no_sentence_says_pertvae_beats_it_on_none(tmp_path: Path) -> None:
    """``--models pertvae``: no 'no change' fits, so "better than 'no change' on 0 of 1" and the ground
    truth's "missed" would be untrue; the summary and benchmark.md say it was not compared."""
    _store_of(tmp_path, ["pertvae"])
    render_report(tmp_path, with_figures=False)
    result = (tmp_path / "summary.txt").read_text()
    bench = (tmp_path / "benchmark.md").read_text()
    assert ("On delta_pearson, PertVAE was not compared with 'no change' (its baseline, identity, has no "
            "finished fits in this run: add --models baselines) and loses significantly on 0 of all 2 drugs."
            ) in result
    assert "better than 'no change'" not in result + bench and "missed" not in bench
    assert ("Ground truth (synthetic cube): not checked: PertVAE was not compared with 'no change'"
            in bench)


def test_no_change_counted_only_where_it_was_compared(tmp_path: Path) -> None:
    """identity's fits missing on one drug: the ground truth counts the drugs compared and names the other;
    the headline's count is over the compared drugs with a measured change."""
    _store_of(tmp_path, ["pertvae", "baselines"], no_identity_on=("d1",))
    render_report(tmp_path, with_figures=False)
    bench = (tmp_path / "benchmark.md").read_text()
    assert ("Ground truth (synthetic cube): PertVAE predicts the change better than 'no change' (q < 0.05) "
            "for 0 of 1 drugs with a real effect and 0 of 0 null drugs; missed: selumetinib (generated "
            "effect: latent_linear); not compared (no finished 'no change' fits): d1.") in bench
    assert "PertVAE predicts the change better than 'no change' on 0 of the 1 with a measured change and" in (
        tmp_path / "summary.txt").read_text()
    other = tmp_path / "other"
    _store_of(other, ["pertvae", "baselines"], no_identity_on=("selumetinib",))
    render_report(other, with_figures=False)
    assert ("PertVAE predicts the change better than 'no change' on 0 of the 0 compared with it (not "
            "compared, no finished 'no change' fits: selumetinib) and") in (other / "summary.txt").read_text()


def test_the_headline_names_losses_on_other_metrics_too(tmp_path: Path) -> None:
    """PertVAE is best on both drugs by delta_pearson but its treated profile (mse_z) is 4x everyone's on d1:
    "loses significantly on 0 of all 2 drugs" alone would read as no loss anywhere; the headline adds it."""
    _store_of(tmp_path, ["pertvae", "baselines"], mse_z_worse_on=("d1",), best="pertvae")
    render_report(tmp_path, with_figures=False)
    result = (tmp_path / "summary.txt").read_text()
    assert ("and loses significantly on 0 of all 2 drugs; by another metric it is significantly worse than "
            "some method on 1 more (mse_z; benchmark.md's 'Where PertVAE is significantly worse' lists "
            "them).") in result
    bench = (tmp_path / "benchmark.md").read_text()
    assert "- d1: mse_z (pertvae_rec, identity, train_mean, mean_shift, pca_latent_linear, ridge_delta)" in (
        bench)
    assert "(PertVAE worse)" in bench and "(PertVAE worse) / (PertVAE better): PertVAE's mse_z is" in bench
    plain = tmp_path / "plain"
    _store_of(plain, ["pertvae", "baselines"], best="pertvae")
    render_report(plain, with_figures=False)
    assert "by another metric" not in (plain / "summary.txt").read_text()


def test_a_baselines_run_says_nothing_about_pertvae_in_any_line_of_its_summary(tmp_path: Path) -> None:
    """Not in the file list either (benchmark.md's words; forest.png, an empty figure then, is left out),
    and no method's legend describes a baseline by PertVAE."""
    _store_of(tmp_path, ["baselines"])
    (tmp_path / "forest.png").write_bytes(b"")   # as the figures would leave it
    render_report(tmp_path, with_figures=False)
    summary = (tmp_path / "summary.txt").read_text()
    assert "benchmark.md" in summary and "forest.png" not in summary
    for text in (summary, (tmp_path / "benchmark.md").read_text()):
        assert "PertVAE" not in text and "pertvae" not in text, text
    with_pertvae = tmp_path / "with"
    _store_of(with_pertvae, ["pertvae", "baselines"])
    (with_pertvae / "forest.png").write_bytes(b"")
    render_report(with_pertvae, with_figures=False)
    summary = (with_pertvae / "summary.txt").read_text()
    assert "PertVAE's verdicts and losses" in summary and "PertVAE minus each method" in summary


def test_each_methods_legend_is_its_contenders_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmark.md's legend asks the registry: every built-in method has its contender's own line, a
    registered model's method its line (or the model's legend), and a method none scores is the run's own."""
    from harness.contenders import REGISTRY, Contender
    from harness.verdicts import method_legend

    for c in list(REGISTRY.values()):
        for m in c.methods:
            assert method_legend(m) == c.method_legends[m]

    class Drift(Contender):
        name = "drift"
        methods = ("drift_a", "drift_b")
        legend = "a drifting model of this test"
        method_legends = {"drift_a": "the drift, as it is"}

    monkeypatch.setitem(REGISTRY, "drift", Drift())
    assert method_legend("drift_a") == "the drift, as it is"
    assert method_legend("drift_b") == "from the drift model: a drifting model of this test"
    assert method_legend("knn_mine") == "your own method, added to this run with --method"


def test_the_difference_to_the_best_gives_the_splits_behind_or_ahead(tmp_path: Path) -> None:
    """An interval excluding 0 beside 'not distinguishable' (BH over the family) read as a contradiction;
    the cell gives the splits PertVAE is behind (or, when best, ahead) on, as comparisons.csv counts them."""
    for best in ("mean_shift", "pertvae"):
        out = tmp_path / best
        _store_of(out, ["pertvae", "baselines"], best=best)
        render_report(out, with_figures=False)
        comp = load(out).comparisons.query("kind == 'versus' and metric == 'delta_pearson' and drug == 'd1'")
        bench = (out / "benchmark.md").read_text()
        row = next(x for x in bench.splitlines() if x.startswith("| d1 |"))
        if best == "pertvae":
            runner = comp.sort_values("mean_diff").iloc[0]
            assert (f"leads {runner['method']} by {runner['mean_diff']:+.3f} [{runner['ci_low']:+.3f}, "
                    f"{runner['ci_high']:+.3f}], ahead on {runner['n_better']} of 5 splits |") in row, row
        else:
            r = comp.set_index("method").loc["mean_shift"]
            assert f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}], behind on {r['n_worse']} of 5 splits |" in row
        assert "not adjusted for the verdict family's many comparisons" in bench


def test_a_lead_of_a_millionth_is_a_tie(tmp_path: Path) -> None:
    """ridge_delta 1e-6 above mean_shift: the headline and the table name both, both in bold."""
    _store_of(tmp_path, ["pertvae", "baselines"], tie=True)
    render_report(tmp_path, with_figures=False)
    assert "ridge_delta on 1 (selumetinib, tied with mean_shift)" in (tmp_path / "summary.txt").read_text()
    row = next(x for x in (tmp_path / "benchmark.md").read_text().splitlines() if x.startswith("| d1 |"))
    assert row.count("**") == 4 and "| ridge_delta = mean_shift |" in row, row


def test_a_ceiling_interval_past_minus_one_is_written_by_its_ends() -> None:
    """linsitinib's -0.382 +/- 1.060 reached below -1, which no correlation can."""
    from harness.verdicts import _ceiling_text
    c = {"d": {"ceiling_delta_pearson": -0.382, "se": 1.060 / 1.96}, "e": {"ceiling_delta_pearson": 0.9,
                                                                        "se": 0.01}}
    assert _ceiling_text(c, "d") == "-0.382 [-1.000, 0.678]"
    assert _ceiling_text(c, "e") == "0.900 +/- 0.020"


def test_the_power_line_holds_for_every_drug_of_the_fewest_splits() -> None:
    """Two drugs with 10 splits and different test/train ratios: the stated need is the larger one (it was
    the first drug's)."""
    from harness.benchmark import power_floor
    from harness.verdicts import _power
    comp = pd.DataFrame({"metric": "delta_pearson", "kind": "versus", "drug": ["a", "b"]})
    tt = {"a": [80.0, 20.0], "b": [60.0, 40.0]}
    k = max(power_floor(10, *tt[d])[1] for d in tt)
    assert f"at least {k:.2f} standard deviations" in _power(comp, tt, {"a": 10, "b": 10})
    assert k == pytest.approx(power_floor(10, 60.0, 40.0)[1])


def test_counts_of_one_are_singular():
    from harness.verdicts import _drug_splits

    assert _drug_splits({"a": 1}) == "1 split per drug"
    assert _drug_splits({"a": 3, "b": 3}) == "3 splits per drug"


def test_the_legend_names_the_genes_the_metrics_run_over(tmp_path: Path) -> None:
    """The primary metric is a correlation across genes: the legend says across how many (the store's two
    here), which a reader of a subset cube's report could not tell."""
    _store(tmp_path, n_folds=5)
    render_report(tmp_path, with_figures=False)
    bench = (tmp_path / "benchmark.md").read_text()
    assert "The Pearson correlation across the 2 genes of the predicted change" in bench


def test_the_few_test_sets_warning_does_not_send_away_from_repeats_that_add_test_sets() -> None:
    """6 cell lines at 2 x 5 folds: 10 splits, 7 test sets (one fold of 2 a repeat); a third repeat can add
    a new pair, so 'more repeats do not help' was false there."""
    from harness.verdicts import few_test_sets_words

    line = few_test_sets_words({"linsitinib": (10, 7)})
    assert line.startswith("WARNING: p-values rest on fewer than 10 distinct test sets for linsitinib "
                           "(10 splits, 7 distinct test sets)")
    assert "do not help" not in line and "add test sets only where a fold holds 2 or more" in line
