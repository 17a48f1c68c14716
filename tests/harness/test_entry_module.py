"""``python -m harness.entry`` runs the console script's main (huge-page re-exec, then harness.cli)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def entry(*args: str) -> subprocess.CompletedProcess:
    """``python -m harness.entry ARGS`` on this checkout (its root first on PYTHONPATH)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-m", "harness.entry", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)


def test_help_prints_the_usage_and_exits_0():
    r = entry("--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: pertvae-bench COMMAND")
    for name in ("run", "report", "fetch", "build", "synth", "info"):
        assert f"\n  {name} " in r.stdout


def test_the_exit_status_passes_through():
    r = entry()
    assert r.returncode == 2 and "usage: pertvae-bench COMMAND" in r.stderr
    r = entry("rnu")
    assert r.returncode == 2 and r.stderr.startswith("error: unknown command 'rnu'; did you mean run?")


def test_a_ctrl_c_no_command_handled_is_one_line_and_130(monkeypatch, capsys):
    """Ctrl-C while torch and the command's modules were still being imported printed a traceback."""
    from harness import cli, entry, hugepages

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(hugepages, "reexec", lambda: None)
    monkeypatch.setattr(cli, "main", interrupted)
    assert entry.main() == 130
    assert capsys.readouterr().err == "interrupted\n"


def _closed_pipe_run(*args: str) -> subprocess.CompletedProcess:
    """``python -m harness.entry ARGS`` with stdout a pipe whose reader has already gone (``| head``)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "harness.entry", *args], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": path})
    finally:
        os.close(write)


def test_output_to_a_closed_pipe_is_no_traceback():
    """``pertvae-bench info RUN | head -3`` (or ``--help | head -1``, ``fetch --list | head``) printed a
    BrokenPipeError traceback; now the command ends quietly with 141 (128 + SIGPIPE, as a shell reports).
    (A subcommand's ``--help`` is argparse's, which ignores the error itself.)"""
    for args in (["--help"], ["--version"], ["fetch", "--list"]):
        r = _closed_pipe_run(*args)
        assert "Traceback" not in r.stderr and "BrokenPipeError" not in r.stderr, (args, r.stderr)
        assert r.returncode == 141, (args, r.returncode, r.stderr)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("module, args", [
    ("harness.run", ["--preset", "demo", "--out", "{tmp}/out", "--drugs", "none-such"]),
    ("harness.report", ["{tmp}/none"]),
    ("harness.info", ["{tmp}/none"]),
    ("harness.cost", ["--preset", "demo"]),
    ("datasets.synthetic", ["--preset", "demo", "--out", "{tmp}/cube.zarr"]),
])
def test_ctrl_c_while_python_m_a_command_imports_is_one_line_and_130(tmp_path, module, args, sig, code):
    """``python -m harness.run`` (and report, info, cost) interrupted while its modules were still loading
    (numpy imported, torch, pandas and xarray not yet) printed a traceback through the import machinery and
    died of SIGINT. SIGTERM there (a scheduler's stop in a run's first seconds; in ``report`` at any time,
    which had no handler of its own) killed the process with no line at all: now it says what Ctrl-C says,
    with 143."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", module,
                             *(a.format(tmp=tmp_path) for a in args)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": path}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    for line in proc.stderr:   # -X importtime: a line as each module is imported
        seen.append(line)
        if line.rsplit("|", 1)[-1].strip() == "numpy":
            proc.send_signal(sig)
            break
    rest = proc.stderr.read()
    proc.wait(timeout=120)
    assert seen[-1].rsplit("|", 1)[-1].strip() == "numpy", "numpy was never imported"
    assert proc.returncode == code, rest[-2000:]
    assert "Traceback" not in rest and rest.splitlines()[-1] == "interrupted"
    assert not (tmp_path / "out").exists() and not (tmp_path / "cube.zarr").exists()


@pytest.mark.parametrize("argv", [
    ["-m", "harness.entry", "info", "{long}"],
    ["-m", "harness.entry", "synth", "--preset", "demo", "--out", "{long}/c.zarr"],
    ["-m", "datasets.synthetic", "--preset", "demo", "--out", "{long}"],
])
def test_a_path_too_long_is_one_error_line(tmp_path, argv):
    """A path the file system refuses (a name over 255 bytes; ENAMETOOLONG) was an OSError traceback from
    the command's first look at it (info's exists(), synth's is_symlink()), exit 1."""
    long = str(tmp_path / ("n" * 300))
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    r = subprocess.run([sys.executable, *(a.format(long=long) for a in argv)], capture_output=True, text=True,
                       timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": path})
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.startswith("error: path too long for the file system (") and r.stderr.count("\n") == 1, \
        r.stderr[-2000:]
    assert r.stderr.endswith("; give a shorter path (or shorter folder and file names)\n")
    assert list(tmp_path.iterdir()) == []
