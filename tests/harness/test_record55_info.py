"""``pertvae-bench info`` on what the last run did: the code that ran it when a resume ran other code than the
run that made the store, and a last run that was interrupted (run.json records both)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.info import describe_run
from harness.report import open_results
from harness.results import json_attr
from harness.store import SOURCE_KEY
from tests.harness.test_review47_report import _store


def _run_json(out: Path, **extra: object) -> None:
    info = {"timings": {"started": "2026-12-01T10:00:00+00:00", "seconds": 12.5, "fits_run": 10}, **extra}
    (out / "run.json").write_text(json.dumps(info))


def test_versions_of_a_resume_with_other_code_are_not_the_stores(tmp_path: Path) -> None:
    out = _store(tmp_path, ["pertvae"])
    stored = json_attr(open_results(out), "versions")
    _run_json(out, versions={**stored, SOURCE_KEY: "c016c59306107ad0"})
    lines = describe_run(out).splitlines()
    made = [ln for ln in lines if ln.startswith("versions of the run that made the store: ")]
    assert len(made) == 1 and f"{SOURCE_KEY} {stored[SOURCE_KEY]}" in made[0]
    assert (f"versions of the last run (run.json), where they differ: {SOURCE_KEY} c016c59306107ad0 (the "
            "store records no version per fit)") in lines

    _run_json(out, versions=stored)   # the same code: no second line
    assert not [ln for ln in describe_run(out).splitlines() if "where they differ" in ln]


def test_an_interrupted_last_run_is_said(tmp_path: Path) -> None:
    out = _store(tmp_path, ["pertvae"])
    _run_json(out, interrupted=True, signal="SIGTERM")
    assert ("last run: started 2026-12-01T10:00:00+00:00, 12.5 s, 10 fits; interrupted (SIGTERM)"
            in describe_run(out).splitlines())


def test_a_variable_lost_with_its_metadata_loses_fits(tmp_path: Path) -> None:
    """status/ removed whole (its zarr.json and chunks): info said the run 'rewrites that metadata from the
    store's consolidated copy (no fit is lost)'; the run then recomputed every fit."""
    import shutil

    import pytest

    from harness.report import ReportError

    out = _store(tmp_path, ["pertvae"])
    shutil.rmtree(out / "results.zarr" / "status")
    with pytest.raises(ReportError) as e:
        describe_run(out)
    assert "no fit is lost" not in str(e.value)
    assert ("status/zarr.json (missing); 2 cell(s) with unreadable or missing values, 10 done fit(s) lost: "
            in str(e.value))
    assert str(e.value).endswith("it rewrites that metadata from the store's consolidated copy and "
                                 "recomputes them")


def test_a_run_that_ended_without_its_run_json_is_not_passed_off_as_the_one_before(tmp_path: Path) -> None:
    """A resume whose output was closed (``run ... | head``: exit 141) ends without writing run.json: info
    gave the run before it as the 'last run' and that run's report files as current, while the resume had
    repaired (or trained into) the store."""
    import os
    import subprocess
    import sys

    from harness.run import main
    from tests.harness.test_few_cell_lines import DRUG, _cube

    out = tmp_path / "out"
    args = ["run", "--data", _cube(tmp_path / "cube.zarr", 5), "--out", str(out), "--cluster", "none",
            "--drugs", DRUG, "--models", "baselines", "--latents-baselines", "2", "--n-repeats", "1",
            "--no-progress"]
    assert main(args[1:]) == 0
    assert "report files: benchmark.md" in describe_run(out)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), *sys.path])}
    resume = subprocess.Popen([sys.executable, "-m", "harness.entry", *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    resume.stdout.close()   # a reader that stopped at once
    assert resume.wait(timeout=300) == 141
    lines = describe_run(out).splitlines()
    assert lines[1].startswith("stopped: a run started ") and "ended without recording its end" in lines[1]
    assert not [ln for ln in lines if ln.startswith("last run: ")]
    assert [ln for ln in lines if ln.startswith("report files: none current: a run started ")]
