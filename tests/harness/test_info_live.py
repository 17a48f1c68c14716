"""``pertvae-bench info`` on a run that is writing its store now, or was killed writing it: said, from the
lock record (harness.outlock.holder), and run.json's timings are not passed off as that run's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from harness.info import describe_run
from tests.harness.test_review47_report import _store


def _locked(out: Path, pid: int, host: str | None = None) -> None:
    rec = {"pid": pid, "host": host or socket.gethostname(), "command": "harness.run",
           "started": "2026-12-05T22:43:19+00:00"}
    (out / ".lock").write_text(json.dumps(rec))


def test_info_says_a_live_run_and_a_killed_one(tmp_path: Path) -> None:
    out = _store(tmp_path, ["pertvae"])
    (out / "run.json").write_text(json.dumps({"timings": {"started": "2026-12-01T10:00:00+00:00",
                                                          "seconds": 12.5, "fits_run": 10}}))
    lines = describe_run(out).splitlines()
    assert lines[1].startswith("config: ")
    assert "last run: started 2026-12-01T10:00:00+00:00, 12.5 s, 10 fits" in lines

    _locked(out, os.getpid())
    lines = describe_run(out).splitlines()
    assert lines[1] == (f"in progress: pid {os.getpid()} on host {socket.gethostname()} "
                        "(harness.run, since 2026-12-05T22:43:19+00:00); these counts are as of now")
    assert "an earlier run: started 2026-12-01T10:00:00+00:00, 12.5 s, 10 fits" in lines

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    _locked(out, dead)
    assert describe_run(out).splitlines()[1] == (
        f"stopped: pid {dead} on host {socket.gethostname()} (harness.run, since 2026-12-05T22:43:19+00:00) "
        "ended without finishing (killed?); its finished fits are counted above: run the same command again "
        "to resume")

    _locked(out, 1, host="node-elsewhere")
    assert describe_run(out).splitlines()[1].startswith("in progress or killed: pid 1 on host node-elsewhere")

    (out / ".lock").write_text("")   # emptied by a run that ended normally
    assert describe_run(out).splitlines()[1].startswith("config: ")
