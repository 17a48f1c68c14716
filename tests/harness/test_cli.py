"""pertvae-bench: subcommands dispatch to the modules' CLIs, exit codes pass through, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from harness import cli

SCRIPT = Path(sys.executable).parent / "pertvae-bench"


def bench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed console script (pip install -e . puts it next to the interpreter)."""
    assert SCRIPT.exists(), f"{SCRIPT} missing: pip install -e ."
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_version_and_help():
    r = bench("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"pertvae-bench {version('pertvae-bench')}"
    r = bench("--help")
    assert r.returncode == 0
    for name in ("run", "report", "fetch", "build", "synth"):
        assert f"\n  {name} " in r.stdout
    r = bench()
    assert r.returncode == 2 and "usage: pertvae-bench COMMAND" in r.stderr


def test_unknown_command_suggests_the_closest():
    r = bench("rnu")
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["error: unknown command 'rnu'; did you mean run? (commands: run, "
                                     "report, fetch, build, synth; see pertvae-bench --help)"]


def test_synth_writes_a_cube_and_its_exit_status_passes_through(tmp_path):
    out = tmp_path / "c.zarr"
    r = bench("synth", "--preset", "demo", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout and (out / "zarr.json").exists()
    again = bench("synth", "--preset", "demo", "--out", str(out))   # exists, no --overwrite
    assert again.returncode == 2
    assert again.stderr.startswith("error: ") and len(again.stderr.strip().splitlines()) == 1


def test_run_flag_errors_are_one_line_exit_2():
    r = bench("run", "--n-repeat", "1")
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr.splitlines() == ["error: unknown flag --n-repeat; did you mean --n-repeats? (see --help "
                                     "for all flags)"]
    # the python -m form stays
    r = subprocess.run([sys.executable, "-m", "harness.run", "--models", "pertvae", "vea"],
                       capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr.splitlines() == ["error: argument --models: invalid choice 'vea'; did you mean vae? "
                                     "(choose from pertvae, vae, pca, baselines)"]


def test_run_exit_status_passes_through(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = bench("run", "--out", str(blocker), "--cluster", "none")
    assert r.returncode == 2 and r.stderr.startswith(f"error: --out {blocker}: is a file")


def test_report_exit_status_passes_through(tmp_path):
    r = bench("report", str(tmp_path))
    assert r.returncode == 2 and r.stderr.startswith(f"error: {tmp_path}: no results.zarr")


def test_build_and_fetch_dispatch(tmp_path):
    r = bench("build", "--h5ad", str(tmp_path / "missing.h5ad"), "--out", str(tmp_path / "cube.zarr"))
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "missing.h5ad" in r.stderr
    assert not (tmp_path / "cube.zarr").exists()
    r = bench("fetch", "--help")
    assert r.returncode == 0 and "fetch" in r.stdout


def test_a_missing_module_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "fetch", ("datasets.no_such_module", "download"))
    assert cli.main(["fetch", "--list"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: pertvae-bench fetch: module datasets.no_such_module is not part of this "
                   "installation (reinstall the package, or update it: pip install -e .)\n")
