"""run.json records what the run's fits ran with beside the settings as given (review rec255): its
``config.execution`` held ``device`` "auto" and ``splits_per_task`` 10 for a run whose fits trained on the
CPU, 3 splits per task."""

from __future__ import annotations

import json

import pytest

from tests.e2e import tiny_args, tiny_cube

pytestmark = pytest.mark.timeout(300)


def test_run_json_records_the_device_and_splits_per_task_the_fits_used(tmp_path_factory, tmp_path):
    from harness.run import main

    out = tmp_path / "run"
    args = tiny_args(tiny_cube(tmp_path_factory), out, "--models", "pertvae", "pca", "--drugs", "drugA",
                     "--n-repeats", "1", "--device", "auto", "--splits-per-task", "10", cluster="none")
    assert main(args) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["execution"]["device"] == "auto"   # as given, kept
    assert info["used"]["device"] == {"cpu": 3}   # PertVAE's 3 fits; PCA trains no model
    assert info["config"]["execution"]["splits_per_task"] == 10
    assert info["used"]["splits_per_task"] == {"pertvae": 3, "pca": 3}   # all of drugA's 1 x 3 splits


def test_run_json_records_the_command_that_ran(tmp_path_factory, tmp_path, monkeypatch):
    import shlex
    import sys

    from harness.run import main

    monkeypatch.chdir(tmp_path)
    args = tiny_args(tiny_cube(tmp_path_factory), tmp_path / "run", "--models", "pca", "--drugs", "drugA",
                     "--n-repeats", "1", cluster="none")
    args[args.index("--out") + 1] = "run"   # relative: from the directory the run records
    assert main(args) == 0
    command = json.loads((tmp_path / "run" / "run.json").read_text())["command"]
    assert command == {"line": shlex.join(sys.orig_argv), "cwd": str(tmp_path), "args": args}


def test_run_json_records_the_runs_cpu_time_and_load(tmp_path_factory, tmp_path):
    from harness.run import main
    from tests.e2e import load

    out = tmp_path / "run"
    args = tiny_args(tiny_cube(tmp_path_factory), out, "--models", "pertvae", "--drugs", "drugA",
                     "--n-repeats", "1", workers=1)
    assert main(args) == 0
    timings = json.loads((out / "run.json").read_text())["timings"]
    cpu, load_average = timings["cpu_seconds"], timings["load_average"]
    assert set(cpu) == {"driver", "children", "fits"} and cpu["driver"] > 0
    fits = float(load(out)["fit_cpu_seconds"].sum())   # the fits' own, as the workers stored them
    assert fits > 0 and cpu["fits"] == pytest.approx(fits, abs=0.01)
    assert [len(load_average[k]) for k in ("start", "end")] == [3, 3]
