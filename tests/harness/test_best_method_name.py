"""Review 57: where PertVAE was best, the summary's headline named it by its key: "...measure a change:
pertvae on 1 (selumetinib)." beside "On delta_pearson, PertVAE predicts..." and "PertVAE on none" when it is
not. Every sentence now calls it PertVAE."""

from __future__ import annotations

from pathlib import Path

from harness.report import render_report
from tests.harness.test_verdicts import _store_of


def test_the_headline_names_pertvae_best_by_its_name(tmp_path: Path) -> None:
    _store_of(tmp_path, ["pertvae", "baselines"], best="pertvae")
    render_report(tmp_path, with_figures=False)
    result = (tmp_path / "summary.txt").read_text().split("Files in")[0]
    assert "measure a change: PertVAE on 1 (selumetinib)." in result, result
    assert "pertvae" not in result and "pertvae" not in (tmp_path / "benchmark.md").read_text().split(
        "In short:")[1].splitlines()[0]
