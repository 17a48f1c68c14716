"""Review 45b, items 10-12: a --method plug-in that fails on some splits, on a real result store.

- item 10: the split counts are per method (the built-ins' comparisons rest on all the splits, the
  plug-in's on fewer), never the fewest shown as everyone's;
- item 11: the PARTIAL line is printed once, names the methods whose scores are missing, and ``partial`` in
  the csvs is per method (a built-in with all its scores is not partial);
- item 12: benchmark.md says that the plug-ins are in the built-in comparisons' Benjamini-Hochberg family.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.report import load, main, render_report

DRUG = "selumetinib"
N_FOLDS = 5
BASE = ("identity", "train_mean", "mean_shift", "pca_latent_linear", "ridge_delta")
MEANS = {"pertvae": 0.5, "pertvae_rec": 0.45, "identity": 0.0, "train_mean": 0.55, "mean_shift": 0.4,
         "pca_latent_linear": 0.55, "ridge_delta": 0.6, "one_split": 0.4, "steady": 0.4}


def _store(out: Path, plugins: tuple[str, ...] = ("one_split", "steady"), failing: str | None = "one_split",
           ) -> None:
    """A real store (harness.store) of PertVAE, the baselines and ``plugins`` on one drug; ``failing`` fails
    on split 0 (its baselines fit is 'failed' there, every other method of it done)."""
    from harness.config import make_config
    from harness.store import ResultStore
    from pertvae_core.methods import METHODS as BUILT_IN

    cfg = make_config("demo", models=["pertvae", "baselines"], latents_pertvae=[4], latents_baselines=[4],
                      n_repeats=1, n_folds=N_FOLDS)
    ceiling = {DRUG: {"ceiling_delta_pearson": 0.97, "se": 0.01, "signal_z": 40.0, "reason": ""}}
    st = ResultStore.open(out, cfg, "fp", drugs=[DRUG], n_train_test={DRUG: [30.0, 8.0]},
                          methods=(*BUILT_IN, *plugins), extra_attrs={"ceiling": ceiling}, cell_lines=["c1"],
                          genes=["g1", "g2"])
    rng = np.random.default_rng(0)
    rows = []
    for f in range(N_FOLDS):
        vals = {m: (0.0 if m == "identity" else v + 0.05 * rng.normal()) for m, v in MEANS.items()}
        rows.append({"model": "pertvae", "drug": DRUG, "latent": 4, "repeat": 0, "fold": f, "status": "done",
                     "scores": {m: {"delta_pearson": vals[m]} for m in ("pertvae", "pertvae_rec")},
                     "fit_seconds": 1.0})
        fails = failing is not None and f == 0
        own = {m: ("failed" if fails and m == failing else "done") for m in (*BASE, *plugins)}
        rows.append({"model": "baselines", "drug": DRUG, "latent": 4, "repeat": 0, "fold": f,
                     "status": "failed" if fails else "done",
                     "reason": f"{failing}: ValueError: odd split (in fit())" if fails else "",
                     "scores": {m: {"delta_pearson": vals[m]} for m, s in own.items() if s == "done"},
                     "method_status": own,
                     "method_reason": {m: ("ValueError: odd split (in fit())" if s == "failed" else "")
                                       for m, s in own.items()},
                     "fit_seconds": 1.0})
    st.write(rows)


def test_split_counts_are_per_method_not_the_plugins_fewest(tmp_path: Path) -> None:
    """Item 10: one plug-in failing on one split made the verdict say '(4 splits)' and the headline '4 splits
    per drug', though every built-in comparison rests on 5 (comparisons.csv's n_splits)."""
    _store(tmp_path)
    res = load(tmp_path)
    vs = res.comparisons.query("kind == 'versus' and metric == 'delta_pearson'").set_index("method")
    assert vs.loc["one_split", "n_splits"] == N_FOLDS - 1
    assert (vs.drop(index="one_split")["n_splits"] == N_FOLDS).all()
    render_report(tmp_path, with_figures=False)
    bm = (tmp_path / "benchmark.md").read_text()
    row = next(x for x in bm.splitlines() if x.startswith(f"| {DRUG} |"))
    assert row.endswith(f"({N_FOLDS} splits; {N_FOLDS - 1} for one_split). |"), row
    assert f"({N_FOLDS - 1} splits)" not in bm
    head = next(x for x in bm.splitlines() if x.startswith("In short: "))
    assert f"latent 4, {N_FOLDS} splits per drug; {N_FOLDS - 1} for one_split)" in head, head
    summary = (tmp_path / "summary.txt").read_text()
    assert f"{N_FOLDS} splits per drug; {N_FOLDS - 1} for one_split" in summary


def test_a_run_without_failures_still_says_one_count(tmp_path: Path) -> None:
    _store(tmp_path, failing=None)
    render_report(tmp_path, with_figures=False)
    bm = (tmp_path / "benchmark.md").read_text()
    row = next(x for x in bm.splitlines() if x.startswith(f"| {DRUG} |"))
    assert row.endswith(f"({N_FOLDS} splits). |"), row
    assert f"latent 4, {N_FOLDS} splits per drug)" in bm
    assert not bm.startswith("PARTIAL") and not pd.read_csv(tmp_path / "scores.csv")["partial"].any()


def test_partial_is_printed_once_names_the_plugin_and_marks_it_alone(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """Item 11: 'PARTIAL: 1 of 10 fits missing' was printed twice (render_report, then the summary), and every
    method's csv rows were partial=True though only the plug-in lacks scores. Review r57: that fit is not
    missing (its other methods are scored): the line said '1 of 10 fits missing (1 failed, 0 not run)'."""
    _store(tmp_path)
    want = (f"PARTIAL: 1 of {2 * N_FOLDS} fits not done: 1 failed (all in some methods only: their other "
            f"methods are scored), 0 not run; scores missing for one_split (1 of {N_FOLDS} fits); every "
            "other method has all its scores")
    assert main([str(tmp_path), "--no-figures"]) == 0
    got = capsys.readouterr()
    assert [x for x in got.out.splitlines() if x.startswith("PARTIAL")] == [want]
    assert "PARTIAL" not in got.err
    assert main([str(tmp_path), "--no-figures", "--quiet"]) == 0   # --quiet: once, on stderr
    got = capsys.readouterr()
    assert got.out == "" and [x for x in got.err.splitlines() if x.startswith("PARTIAL")] == [want]
    for name in ("benchmark.md", "summary.txt", "table1.md"):
        assert (tmp_path / name).read_text().splitlines()[0] == want, name

    scores = pd.read_csv(tmp_path / "scores.csv")
    assert set(scores.loc[scores["partial"], "method"]) == {"one_split"}
    comp = pd.read_csv(tmp_path / "comparisons.csv")
    flagged = comp.loc[comp["partial"], ["reference", "method"]].drop_duplicates()
    assert sorted(map(tuple, flagged.to_numpy())) == [("one_split", "one_split (ablated)"),
                                                     ("pertvae", "one_split")] or \
        sorted(map(tuple, flagged.to_numpy())) == [("pertvae", "one_split")]
    assert not comp.query("method == 'ridge_delta'")["partial"].any()
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["partial"] is True and info["report"]["partial_methods"] == ["one_split"]
    res = load(tmp_path)
    assert res.partial and res.partial_methods == {"one_split"}
    assert res.missing["ridge_delta"] == (0, N_FOLDS) and res.missing["one_split"] == (1, N_FOLDS)


def test_a_whole_fit_missing_names_its_methods_without_the_others_line(tmp_path: Path) -> None:
    """Every method of a missing PertVAE fit lacks its scores; the other methods are complete."""
    _store(tmp_path, failing=None)
    import xarray as xr
    ds = xr.open_zarr(tmp_path / "results.zarr", consolidated=False).load()
    ds["status"].loc[{"model": "pertvae", "drug": DRUG, "latent": 4, "split": 0}] = ""
    ds[["status"]].to_zarr(str(tmp_path / "results.zarr"), mode="r+", consolidated=False)
    res = load(tmp_path)
    assert res.partial_methods == {"pertvae", "pertvae_rec"}
    assert res.partial_line() == (f"PARTIAL: 1 of {2 * N_FOLDS} fits missing (0 failed, 1 not run); scores "
                                  f"missing for pertvae (1 of {N_FOLDS} fits), pertvae_rec (1 of {N_FOLDS} "
                                  "fits); every other method has all its scores")


def _legend_line(bm: str) -> list[str]:
    return [x for x in bm.splitlines() if x.startswith("- your --method plug-ins are in the verdict family")]


def test_benchmark_md_says_the_plugins_share_the_builtins_q_value_family(tmp_path: Path) -> None:
    """Item 12: a plug-in joins the Benjamini-Hochberg family of PertVAE against the built-ins, so adding one
    changes their q-values; benchmark.md now says so where it explains the verdicts, with the family's
    size."""
    with_plugins, without = tmp_path / "with", tmp_path / "without"
    _store(with_plugins, failing=None)
    _store(without, plugins=(), failing=None)
    q = {name: load(out).comparisons.query("kind == 'versus' and metric == 'delta_pearson'")
         .set_index("method")["q_bh"] for name, out in (("with", with_plugins), ("without", without))}
    assert not np.allclose(q["with"][list(BASE)], q["without"][list(BASE)])   # the plug-ins moved them
    for out in (with_plugins, without):
        render_report(out, with_figures=False)
    line = _legend_line((with_plugins / "benchmark.md").read_text())
    family = 2 * (len(BASE) + 1 + 2)   # PertVAE against pertvae_rec, the baselines, 2 plug-ins; 2 directions
    assert line == [f"- your --method plug-ins are in the verdict family: its q-values correct {family} "
                    "delta_pearson p-values together (the largest family), PertVAE against your 2 plug-ins "
                    "(one_split and steady) among them: adding or removing a plug-in changes the q-values, "
                    "and can change the verdicts, of PertVAE against the built-in methods too (their scores "
                    "stay the same)."]
    assert _legend_line((without / "benchmark.md").read_text()) == []


def test_the_power_warning_counts_the_p_values_bh_corrects(tmp_path: Path) -> None:
    """The WARNING's 'Benjamini-Hochberg over the N comparisons' counted a plug-in comparison without a
    p-value (fewer than 2 splits) that BH does not count."""
    from harness.verdicts import verdict_family_size
    _store(tmp_path)
    comp = load(tmp_path).comparisons
    prim = comp.query("kind == 'versus' and metric == 'delta_pearson'")
    n = int(np.isfinite(prim[["p_corrected_t", "p_corrected_t_worse"]].to_numpy(dtype=float)).sum())
    assert verdict_family_size(comp) == n
    render_report(tmp_path, with_figures=False)
    warn = next(x for x in (tmp_path / "benchmark.md").read_text().splitlines() if x.startswith("WARNING:"))
    assert f"over the {n} comparisons of the verdict family" in warn
    assert f"{DRUG} ({N_FOLDS - 1}-{N_FOLDS} splits)" in warn


def test_table1_caption_does_not_call_fits_failed_in_a_plugin_missing() -> None:
    """Review r57: with 5 of 50 fits failed only in a --method plug-in (their other methods scored),
    table1.tex's caption ended 'Partial: 5 of 50 fits missing.'"""
    from harness.report import table1_caption

    counts = {"planned": 50, "done": 45, "failed": 5, "failed_in_methods": 5, "not_run": 0, "missing": 5}
    assert table1_caption(pd.DataFrame(), counts).endswith(
        " Partial: 5 of 50 fits not done: 5 failed (all in some methods only: their other methods are "
        "scored), 0 not run.")
    lost = {**counts, "failed_in_methods": 0}
    assert table1_caption(pd.DataFrame(), lost).endswith(
        " Partial: 5 of 50 fits missing (5 failed, 0 not run).")
