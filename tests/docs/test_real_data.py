"""docs/real_data.md, the path from GSE92742 and GDSC to a study: its commands are ones the CLI takes (every
subcommand, flag and catalog name exists) and its copy of the paper's Table 1 is the paper's."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

from datasets.fetch import CATALOG
from harness import cli
from tests.harness.test_cli import _parser_of

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "real_data.md").read_text()


def _end_to_end_commands() -> list[list[str]]:
    """The ``pertvae-bench`` lines of section 0's first code block, comments dropped."""
    section = DOC.split("## 0.", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    return [shlex.split(line.split("#", 1)[0]) for line in block.splitlines()
            if line.startswith("pertvae-bench")]


def test_the_end_to_end_commands_are_ones_the_cli_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    commands = _end_to_end_commands()
    assert [c[1] for c in commands] == ["fetch", "build", "info", "run", "run", "info"]
    for argv in commands:
        command, args = argv[1], argv[2:]
        assert command in cli.COMMANDS, argv
        parser = _parser_of(command, monkeypatch)
        for flag in (a for a in args if a.startswith("--")):
            assert flag in parser._option_string_actions, (command, flag)
    names = [a for a in commands[0][2:] if not a.startswith("-") and a != "data/"]
    assert names and all(n in CATALOG for n in names), names


def test_the_papers_table1_in_the_docs_is_the_papers() -> None:
    section = DOC.split("### The paper's Table 1, to compare with", 1)[1].split("\n#", 1)[0]
    rows = [line.strip("| ").split(" | ") for line in section.splitlines()
            if re.match(r"\| [A-Za-z0-9-]+ \| \d", line)]
    doc = pd.DataFrame(rows, columns=["drug", "n_cell_lines", "rho_rec_pert", "rho_pred_pert", "p_value"])
    paper = pd.read_csv(ROOT / "tests" / "data" / "paper_table1.csv")
    assert doc["drug"].tolist() == paper["drug"].tolist()
    for col in ("n_cell_lines", "rho_rec_pert", "rho_pred_pert", "p_value"):
        want = paper[col].astype(float).tolist()
        assert doc[col].astype(float).tolist() == pytest.approx(want, rel=1e-9), col
