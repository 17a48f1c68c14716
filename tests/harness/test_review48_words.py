"""What the user reads stays true of the run (review 48): each test renders a real result store's report
and checks a sentence against what the run did."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.report import render_report
from harness.store import ResultStore
from tests.harness.test_review47_report import _store, _summary


@pytest.mark.parametrize("how", ["failed", "not run"])
def test_baselines_in_the_run_without_finished_fits_are_not_said_to_be_missing(tmp_path: Path, how,
                                                                              monkeypatch) -> None:
    """--models pertvae baselines with no finished baseline fit (all failed, or not run yet: an interrupted
    run's report): 'identity has no finished fits in this run: add --models baselines' was false advice,
    the baselines being in the run; the sentence says their fits failed or have not run, and to rerun."""
    if how == "not run":   # the baselines' rows never written, as when the run was stopped before them
        write = ResultStore.write
        monkeypatch.setattr(ResultStore, "write",
                            lambda self, rows: write(self, [r for r in rows if r["model"] != "baselines"]))
    _store(tmp_path, ["pertvae", "baselines"], failed=("baselines",) if how == "failed" else ())
    render_report(tmp_path, with_figures=False)
    summary = _summary(tmp_path)
    assert summary.startswith("PARTIAL: ")
    text = summary + (tmp_path / "benchmark.md").read_text()
    assert "add --models baselines" not in text
    assert ("PertVAE was not compared with 'no change' (its baseline, identity, is in this run but has no "
            "finished fits: they failed or have not run yet; run the same command again to retry them)"
            ) in summary


def test_the_summary_names_the_saved_predictions(tmp_path: Path) -> None:
    """summary.txt ends with where every output is; a --save-predictions run's OUT/predictions/ was left
    out. It is listed where it exists, and only there."""
    _store(tmp_path, ["pertvae", "baselines"])
    render_report(tmp_path, with_figures=False)
    assert "predictions/" not in _summary(tmp_path)
    (tmp_path / "predictions" / "pertvae").mkdir(parents=True)
    render_report(tmp_path, with_figures=False)
    assert ("  predictions/  the predicted x2 of each test pair of the fits run with --save-predictions (a "
            "fit run without it, e.g. retried on a resume without it, has none): <method>/<drug>.h5ad\n"
            "  results.zarr") in _summary(tmp_path)
    assert "every fit's predicted" not in _summary(tmp_path)   # review 50: a resume without it saves none


def test_info_lists_every_report_file(tmp_path: Path) -> None:
    """pertvae-bench info's 'report files:' left out summary.txt, one of the files the report writes
    (docs/report.md)."""
    from harness.info import describe_run

    _store(tmp_path, ["pertvae", "baselines"])
    render_report(tmp_path, with_figures=False)
    line = next(x for x in describe_run(tmp_path).splitlines() if x.startswith("report files: "))
    assert "summary.txt" in line.split(": ", 1)[1].split(", ")


def test_figure2s_title_counts_the_runs_drugs(tmp_path: Path) -> None:
    """A pooled Figure 2 of a run of some drugs (--drugs) was titled 'one fit per split on all drugs' pairs',
    as if every drug of the cube were pooled; it names how many drugs the run pooled."""
    import matplotlib

    _store(tmp_path, ["vae", "pca"])
    with matplotlib.rc_context({"svg.fonttype": "none"}):   # the title as text in figure2.svg
        render_report(tmp_path)
    svg = (tmp_path / "figure2.svg").read_text().replace("&#39;", "'")
    assert "all drugs" not in svg
    assert "pooled: one fit per split on the pairs of the run's 2 drugs + singletons" in svg
