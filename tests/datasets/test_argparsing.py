"""datasets.argparsing: every CLI's bad flag or value is one ``error:`` line, exit 2, no usage block."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from datasets.argparsing import OneLineParser, did_you_mean

ROOT = Path(__file__).resolve().parents[2]


def _parser() -> OneLineParser:
    p = OneLineParser(prog="tool")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", choices=["demo", "paper"], default="demo")
    p.add_argument("--overwrite", action="store_true")
    return p


@pytest.mark.parametrize("argv, line", [
    (["--seed", "x"], "error: argument --seed: invalid int value: 'x' (see tool --help)"),
    (["--preset", "papr"], "error: argument --preset: invalid choice 'papr'; did you mean paper? "
                           "(choose from demo, paper) (see tool --help)"),
    (["--overwrit"], "error: unknown flag --overwrit; did you mean --overwrite? (see tool --help)"),
    (["--over"], "error: unknown flag --over; did you mean --overwrite? (see tool --help)"),  # no abbrev
    (["--zzz=1"], "error: unknown flag --zzz (see tool --help)"),
    (["extra"], "error: unexpected argument 'extra' (see tool --help)"),
])
def test_errors_are_one_line_exit_2(argv, line, capsys):
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(argv)
    assert e.value.code == 2
    cap = capsys.readouterr()
    assert cap.err.splitlines() == [line] and cap.out == ""


def test_good_flags_parse_and_suggestions():
    ns = _parser().parse_args(["--seed", "3", "--overwrite"])
    assert (ns.seed, ns.preset, ns.overwrite) == (3, "demo", True)
    assert did_you_mean("vea", ["vae", "pca"]) == "; did you mean vae?"
    assert did_you_mean("zzz", ["vae", "pca"]) == ""


@pytest.mark.parametrize("argv, start", [
    (["datasets.build", "--dose", "lots", "--out", "x"], "error: argument --dose: "),
    (["datasets.fetch", "--retries", "x"], "error: argument --retries: invalid int value: 'x'"),
    (["datasets.synthetic", "--out", "x", "--seed", "x"], "error: argument --seed: invalid int value"),
    (["harness.report"], "error: the following arguments are required: out"),
    (["harness.report", "a", "--bogus"], "error: unknown flag --bogus"),
])
def test_every_cli_uses_it(argv, start, tmp_path):
    r = subprocess.run([sys.executable, "-m", *argv], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith(start), r.stderr
    assert list(tmp_path.iterdir()) == []   # nothing written
