"""run.json's record of every run in OUT (``runs``, oldest first): a resume rewrote the top level, and the
first run's device, command and timings were lost."""

from __future__ import annotations

import json
from pathlib import Path

from harness import outlock
from harness.run import main
from tests.harness.test_few_cell_lines import DRUG, _cube

RUN_RECORD = ("command", "timings", "used", "peak_rss_mib", "interrupted", "signal")   # in ``runs``


def _args(tmp_path: Path) -> list[str]:
    return ["--data", _cube(tmp_path / "cube.zarr", 5), "--out", str(tmp_path / "out"), "--cluster", "none",
            "--drugs", DRUG, "--models", "baselines", "--latents-baselines", "2", "--n-repeats", "1",
            "--no-progress"]


def _info(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / "run.json").read_text())


def test_a_resume_keeps_the_first_runs_record(tmp_path: Path) -> None:
    args = _args(tmp_path)
    assert main(args) == 0
    first = _info(tmp_path)
    assert first["runs"] == [{k: first[k] for k in RUN_RECORD}] and first["timings"]["fits_run"] > 0
    # a run that ended without writing run.json (its output closed, a failed cluster) leaves its mark
    mark = {"started": "2026-12-01T10:00:00+00:00", "pid": 12345}
    (tmp_path / "out" / "run.json").write_text(json.dumps({**first, outlock.UNFINISHED_RUN: mark}))
    assert main([*args, "--splits-per-task", "1"]) == 0
    second = _info(tmp_path)
    assert second["timings"]["fits_run"] == 0 and second["command"]["args"][-2:] == ["--splits-per-task", "1"]
    assert second["runs"] == [first["runs"][0], {**mark, "unfinished": True},
                              {k: second[k] for k in RUN_RECORD}]
    assert outlock.UNFINISHED_RUN not in second


def test_a_run_json_written_before_the_list_gives_its_run_first(tmp_path: Path) -> None:
    args = _args(tmp_path)
    assert main(args) == 0
    old = {k: v for k, v in _info(tmp_path).items() if k != "runs"}
    (tmp_path / "out" / "run.json").write_text(json.dumps(old))
    assert main(args) == 0
    assert _info(tmp_path)["runs"][0] == {k: old[k] for k in RUN_RECORD}


def test_a_directory_where_run_json_goes_is_one_error_line(tmp_path: Path, capsys) -> None:
    """OUT/run.json a directory: the run ended in the IsADirectoryError's traceback (exit 1), before any fit;
    it is one error: line naming the path and what to do, exit 2 (bad input), the fits kept."""
    args = _args(tmp_path)
    assert main(args) == 0
    (tmp_path / "out" / "run.json").unlink()
    (tmp_path / "out" / "run.json").mkdir()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"error: {tmp_path / 'out' / 'run.json'}: Is a directory, where the run writes a file: move it away; "
        f"the finished fits in {tmp_path / 'out' / 'results.zarr'} are kept"), err
