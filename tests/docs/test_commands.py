"""Every command line of README.md's and docs/*.md's code blocks, and the `python -m` form a comment gives
beside one, is one the CLI takes today: a subcommand (or its module) whose parser has each flag."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from harness import cli
from tests.harness.test_cli import _parser_of

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
COMMAND = re.compile(r"(?:pertvae-bench (\w+)|python -m ([\w.]+))(.*)")
MODULES = {module: name for name, (module, _) in cli.COMMANDS.items()} | {"harness.entry": None}


def _lines() -> list[tuple[str, str, list[str]]]:
    """(page, command, argv after it) of every command in a code block, continuations joined; a comment's
    `python -m` form counts as a command of its own."""
    found = []
    for page in PAGES:
        for block in BLOCK.finditer(page.read_text()):
            for line in block.group(2).replace("\\\n", " ").splitlines():
                for part in line.split("#"):
                    if m := COMMAND.match(part.strip()):
                        name = m.group(1) or MODULES.get(m.group(2), m.group(2))
                        found.append((page.name, name, shlex.split(m.group(3))))
    return found


def test_every_command_line_is_one_the_cli_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _lines()
    assert len(lines) >= 25 and {page for page, _, _ in lines} >= {"README.md", "real_data.md",
                                                                  "drug_response.md"}
    flags = {name: set(_parser_of(name, monkeypatch)._option_string_actions) for name in cli.COMMANDS}
    for page, name, argv in lines:
        assert name in cli.COMMANDS, (page, name)
        assert {a.split("=")[0] for a in argv if a.startswith("--")} <= flags[name], (page, name, argv)
