"""pertvae-bench: subcommands dispatch to the modules' CLIs, exit codes pass through, one-line errors."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from harness import cli
from harness.contenders import REGISTRY

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
    for name in ("run", "report", "fetch", "build", "synth", "info"):
        assert f"\n  {name} " in r.stdout
    r = bench()
    assert r.returncode == 2 and "usage: pertvae-bench COMMAND" in r.stderr


def test_unknown_command_suggests_the_closest():
    r = bench("rnu")
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["error: unknown command 'rnu'; did you mean run? (commands: run, "
                                     "report, fetch, build, synth, info; see pertvae-bench --help)"]


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
                                     f"(choose from {', '.join(REGISTRY)})"]   # every registered model


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


def _parser_of(command: str, monkeypatch) -> argparse.ArgumentParser:
    """The argparse parser a subcommand builds (caught as it parses ``--help``)."""
    seen: list[argparse.ArgumentParser] = []
    original = argparse.ArgumentParser.parse_known_args

    def spy(self, args=None, namespace=None):
        seen.append(self)
        return original(self, args, namespace)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", spy)
    try:
        cli.main([command, "--help"])
    except SystemExit as e:
        assert e.code == 0
    return seen[0]


def test_one_cli_voice_every_flag_explained(monkeypatch, capsys):
    """Every subcommand says `pertvae-bench <command>` in its usage line and explains every flag."""
    for command in cli.COMMANDS:
        parser = _parser_of(command, monkeypatch)
        assert parser.prog == f"pertvae-bench {command}", command
        assert capsys.readouterr().out.startswith(f"usage: pertvae-bench {command}"), command
        bare = [a.option_strings or [a.dest] for a in parser._actions
                if not a.help and not isinstance(a, argparse._HelpAction)]
        assert not bare, (command, bare)


def test_info_describes_a_run_and_a_cube_and_refuses_anything_else(tmp_path, capsys):
    from tests.e2e import make_tiny_cube
    from tests.harness.test_report import make_store

    make_store(tmp_path / "run")
    assert cli.main(["info", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"run {tmp_path / 'run'}: 240 of 240 fits done, 0 failed, 0 not run")
    assert "  strong: pertvae 10/10, vae 30/30, pca 30/30, baselines 10/10" in out
    assert "config: models pertvae, vae, pca, baselines; scoring version 1" in out
    make_tiny_cube(tmp_path / "cube.zarr")
    assert cli.main(["info", str(tmp_path / "cube.zarr")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"cube {tmp_path / 'cube.zarr'}: 20 cell lines x 4 conditions x 3 replicates")
    assert "  drugA: 12 paired cell lines, 36 treated profiles" in out
    assert "baseline singletons: 20 profiles of 20 cell lines" in out
    assert cli.main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path}: neither a run directory") and len(err.splitlines()) == 1
    # a run's store given for its run: 'neither a run directory ... nor a cube' named no way on
    assert cli.main(["info", str(tmp_path / "run" / "results.zarr")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'run' / 'results.zarr'}: the result store of the "
                                       f"run in {tmp_path / 'run'}; give the run's directory: pertvae-bench "
                                       f"info {tmp_path / 'run'}\n")


def test_models_help_names_every_contender(capsys):
    """`run --help` lists every model --models takes, the drug-response ones too, not only the default."""
    from harness.contenders import REGISTRY

    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    line = text[text.index("--models MODEL [MODEL ...] models to run"):][:400]
    for name in REGISTRY:
        assert f" {name} " in line, name
    assert "(the perturbation study)" in line and "(drug response" in line
