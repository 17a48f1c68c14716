"""README.md says what the tools take and do today: its command lines are ones the CLI takes, every flag it
names exists, its exit statuses are `run --help`'s, and the files and tests it points to are there."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from harness import cli
from harness.config import parse_args
from tests.harness.test_cli import _parser_of

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
# flags README names that belong to other tools: pytest, pip, sbatch and Slurm's job script
OTHER_TOOLS = {"--benchmark-only", "--index-url", "--test-only", "--gres"}


def _commands() -> list[list[str]]:
    """The ``pertvae-bench`` lines of README's shell blocks, comments dropped."""
    return [shlex.split(line.split("#", 1)[0]) for m in BLOCK.finditer(README) if m.group(1) == ""
            for line in m.group(2).splitlines() if line.startswith("pertvae-bench")]


def _flags(command: str, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    return set(_parser_of(command, monkeypatch)._option_string_actions)


def test_the_command_lines_are_ones_the_cli_takes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = _commands()
    assert len(commands) >= 12 and {c[1] for c in commands} >= {"run", "report", "synth", "fetch", "build"}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.toml").write_text("max_epochs = 50\n")
    for argv in commands:
        assert argv[1] in cli.COMMANDS, argv
        flags = _flags(argv[1], monkeypatch)
        assert {a.split("=")[0] for a in argv[2:] if a.startswith("--")} <= flags, argv
        if argv[1] == "run" and "--help" not in argv:
            parse_args(argv[2:])   # values too: choices, types, the TOML


def test_every_flag_named_is_one_of_a_command(monkeypatch: pytest.MonkeyPatch) -> None:
    known = set().union(*(_flags(c, monkeypatch) for c in cli.COMMANDS)) | {"--version"}
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]", README)) - OTHER_TOOLS
    assert named and named <= known, sorted(named - known)


def test_the_modules_are_the_commands() -> None:
    text = " ".join(README.split())
    names = re.findall(r"`(\w+)`", text.split("has the subcommands ", 1)[1].split(", and `--version`", 1)[0])
    said = text.split("is also `python -m` of its module (", 1)[1].split(")", 1)[0]
    modules = dict(zip(names, re.findall(r"`([\w.]+)`", said), strict=True))
    assert modules == {name: module for name, (module, _) in cli.COMMANDS.items()}


def test_the_exit_statuses_are_run_helps(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    epilog = " ".join(capsys.readouterr().out.split()).split("exit status:", 1)[1]
    resume = " ".join(README.split("- **Resume**", 1)[1].split("\n\n", 1)[0].split())
    assert re.findall(r"\b(\d+) = ", resume.split("Exit status", 1)[1]) == re.findall(r"\b(\d+) = ", epilog)


def test_the_files_and_tests_it_points_to_exist() -> None:
    paths = set(re.findall(r"\b((?:harness|datasets|pertvae_core|benchmarks|tests|scripts|docs)/[\w./-]*\w)"
                           r"(?:::(\w+))?", README))
    assert len(paths) > 10
    for path, test in paths:
        assert (ROOT / path).exists(), path
        assert not test or f"def {test}(" in (ROOT / path).read_text(), (path, test)


def test_where_the_dry_run_names_the_cpu() -> None:
    """README said the dry run prints the CPU's model name 'beside the peak'; the peak is on the floor line
    and the model name ends the `times:` line, after the load average (harness.cost._load_text)."""
    import inspect

    from harness import cost

    assert "cpu_model()" in inspect.getsource(cost._load_text)
    assert inspect.getsource(cost).count("cpu_model()") == 1
    text = " ".join(README.split())
    assert "model name beside the peak" not in text and "model name after the load average" in text


def test_how_many_tasks_a_gpu_job_runs_at_a_time() -> None:
    """README said a Slurm GPU job's one worker trains 'a task at a time per core of --cores-per-job';
    it advertises GPU=--gpus-per-job and each task asks for GPU=1, so it runs the fewer of the two: with
    --cores-per-job 4 --gpus-per-job 1, one task at a time, and the dry run counts one."""
    from harness.cluster import slurm_kwargs
    from harness.config import make_config
    from harness.cost import worker_slots

    cfg = make_config("paper", cluster="slurm", jobs=3, cores_per_job=4, gpus_per_job=1)
    kw = slurm_kwargs(cfg)
    assert kw["processes"] == 1 and kw["worker_extra_args"][-2:] == ["--resources", "GPU=1"]
    assert worker_slots(cfg)[0] == 3
    text = " ".join(README.split())
    assert "a task at a time per core" not in text
    assert ("trains as many tasks at a time as the fewer of its cores (`--cores-per-job`) and its GPUs "
            "(`--gpus-per-job`)") in text


def test_cpu_time_is_not_said_to_be_immune_to_load() -> None:
    """The cost model said a busy machine cannot inflate CPU time; on the Xeon the paper grid's steps
    calibrated 1.21-1.36x slower by CPU time at load 7 than at 2-4 (shared caches and memory): README says so
    with the loads, and the docstring no longer says it cannot."""
    from harness import cost

    text = " ".join(README.split())
    assert "CPU time is not immune to a busy machine" in text and "1.21-1.36x slower at load 7" in text
    assert "cannot inflate" not in " ".join((cost.__doc__ or "").split())
