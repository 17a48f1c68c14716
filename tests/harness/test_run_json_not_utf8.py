"""A run.json that is not UTF-8 (a truncated copy, a disk error): ``pertvae-bench report`` ended in a
UnicodeDecodeError traceback and ``info`` in "error: 'utf-8' codec can't decode byte 0xff ...", naming no
file, while text that is not JSON was taken as no record in both."""

from __future__ import annotations

import json
from pathlib import Path

from harness.info import describe_run
from harness.report import main as report_main
from tests.harness.test_review47_report import _store


def test_a_run_json_that_is_not_text_is_no_record(tmp_path: Path, capsys) -> None:
    out = _store(tmp_path, ["pertvae"])
    (out / "run.json").write_bytes(b"\xff\xfe\x00garbage")
    assert describe_run(out).startswith(f"run {out}: ")
    assert report_main([str(out), "--no-figures"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert json.loads((out / "run.json").read_text())["previous_run_json_unreadable"] is True
