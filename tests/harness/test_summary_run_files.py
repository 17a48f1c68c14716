"""summary.txt's list of the run's files named the report's alone: run.json, run.log and failures.csv, written
by the run, were missing from it. Each is listed where it is in OUT, and only then."""

from __future__ import annotations

from pathlib import Path

from harness.report import main as report_main
from harness.run import main
from tests.e2e import tiny_args, tiny_cube


def _listed(out: Path) -> list[str]:
    files = (out / "summary.txt").read_text().split(f"Files in {out}:\n")[1]
    return [line.split()[0] for line in files.splitlines()]


def test_the_summary_lists_the_runs_own_files_that_are_there(tmp_path_factory, tmp_path) -> None:
    out = tmp_path / "run"
    args = tiny_args(tiny_cube(tmp_path_factory), out, "--models", "pertvae", "pca", "--lr", "1e6",
                     "--n-repeats", "1", "--drugs", "drugA", workers=1, cluster="none")
    assert main(args) == 3   # diverged fits: failures.csv
    run_files = ["failures.csv", "run.json", "run.log"]
    assert all((out / n).is_file() for n in run_files)
    assert _listed(out)[-3:] == run_files
    (out / "run.log").unlink()
    (out / "failures.csv").unlink()
    assert report_main([str(out), "--no-figures"]) == 0
    assert _listed(out)[-1] == "run.json" and not set(_listed(out)) & {"run.log", "failures.csv"}
    assert all((out / n).exists() for n in _listed(out))
    assert "each run's command" in (out / "summary.txt").read_text()
    (out / "run.json").write_text("{}")   # a store copied without its run.json: the report writes one
    assert report_main([str(out), "--no-figures"]) == 0
    assert "run.json      the record of the report's files (no run is recorded in it)" in (
        out / "summary.txt").read_text()


def test_the_summary_lists_the_synthetic_cube_the_run_generated(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["--preset", "demo", "--out", str(out), "--cluster", "none", "--models", "baselines",
                 "--drugs", "selumetinib", "--n-repeats", "1", "--no-progress"]) == 0
    assert (out / "data.zarr").is_dir() and (out / "data.json").is_file()
    assert ("  data.zarr     the synthetic cube a run generated here (its preset and seed: data.json)"
            in (out / "summary.txt").read_text().splitlines())
    (out / "data.json").unlink()
    assert report_main([str(out), "--no-figures"]) == 0
    assert "  data.zarr     the synthetic cube a run generated here" in (out / "summary.txt").read_text(
        ).splitlines()
