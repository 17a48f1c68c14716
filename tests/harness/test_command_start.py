"""run.json's start and the run's 'N s wall since the command started' count from the command's own start:
they were taken once harness.run ran, after the interpreter, the huge-pages exec and the imports (2.5 s of a
9 s resume on a loaded host)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from tests.harness.test_few_cell_lines import DRUG, _cube

LATE = 3.0   # seconds the command spends before it imports anything of the harness (margin: a loaded host)


def test_a_run_counts_from_its_command_start(tmp_path: Path) -> None:
    cube = _cube(tmp_path / "cube.zarr", 5)
    args = ["pertvae-bench", "run", "--data", cube, "--out", str(tmp_path / "out"), "--cluster", "none",
            "--drugs", DRUG, "--models", "baselines", "--latents-baselines", "2", "--n-repeats", "1",
            "--no-progress"]
    code = (f"import sys, time; time.sleep({LATE}); sys.argv = {args!r}; "
            "from harness.entry import main; raise SystemExit(main())")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), *sys.path])}
    launched = time.time()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    started = datetime.fromisoformat(
        json.loads((tmp_path / "out" / "run.json").read_text())["timings"]["started"]).timestamp()
    assert started < launched + LATE - 0.5   # the sleep counted, as any command's imports
    wall = float(re.search(r"\(([\d.]+) s wall since the command started", done.stdout).group(1))
    assert wall >= LATE
