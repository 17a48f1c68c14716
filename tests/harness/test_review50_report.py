"""The report's numbers and words against the store they come from (review 50): an absent value must not
read as a positive one, a listed file must be the current report's, and a sentence must say why a
comparison is missing. Each test builds a real result store (harness.store) and renders the report."""

from __future__ import annotations

import json
from pathlib import Path

import zarr

from harness.report import render_report
from tests.harness.test_review47_report import _store


def _drop_signal_z(out: Path) -> None:
    """Rewrite the store's ceiling as a store written before the reliability z existed."""
    g = zarr.open_group(str(out / "results.zarr"), mode="r+")
    ceiling = json.loads(g.attrs["ceiling"])
    for v in ceiling.values():
        v.pop("signal_z", None)
    g.attrs["ceiling"] = json.dumps(ceiling)


def test_a_store_without_signal_z_does_not_say_yes(tmp_path: Path) -> None:
    """A store written before the ceiling's reliability z: both drugs' 'measured change' read 'yes' (and
    the headline counted them among 'the drugs whose replicates measure a change') with no measure behind
    it; they are counted as before (not known to be null) but read 'not recorded'."""
    out = _store(tmp_path, ["pertvae", "baselines"])
    _drop_signal_z(out)
    render_report(out, with_figures=False)
    bench = (out / "benchmark.md").read_text()
    assert "| dA | not recorded |" in bench and "| dB | not recorded |" in bench
    assert "| yes |" not in bench
    summary = (out / "summary.txt").read_text()
    assert ("on the 2 drug(s) whose replicates measure a change or whose store does not record it (dA and "
            "dB: written before the measure):") in summary
