"""docs/drug_response.md: its Python block runs as written (a small drvae-demo run, in a temporary folder),
its commands' flags parse, and its table of models is the registry's."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from harness.config import parse_args
from harness.contenders import RESPONSE_MODELS, contender
from harness.presets import PRESETS

DOC = Path(__file__).resolve().parents[2] / "docs" / "drug_response.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)

pytestmark = pytest.mark.timeout(400)


def _blocks(lang: str) -> list[tuple[int, str]]:
    text = DOC.read_text()
    return [(text[: m.start()].count("\n") + 2, m.group(2)) for m in BLOCK.finditer(text)
            if m.group(1) == lang]


def test_the_commands_parse(tmp_path: Path) -> None:
    (_, bash), = _blocks("bash")
    commands = [shlex.split(line.split("#")[0]) for line in bash.splitlines() if line.strip()]
    assert len(commands) == 4
    for argv in commands:
        assert argv[:2] == ["pertvae-bench", "run"]
        cfg = parse_args(argv[2:] + ["--out", str(tmp_path / "out")])
        assert set(cfg.models) <= set(RESPONSE_MODELS), argv
    assert parse_args(commands[2][2:]).response_label_value == 0.75


def test_the_table_of_models_is_the_registry() -> None:
    rows = [line.split("|")[1:3] for line in DOC.read_text().splitlines() if line.startswith("| `")]
    assert [r[0].strip(" `") for r in rows] == list(RESPONSE_MODELS)
    for name, methods in ((r[0].strip(" `"), r[1]) for r in rows):
        named = re.findall(r"`(\w+)`", methods)
        assert set(named) <= set(contender(name).methods) and named[0] == contender(name).methods[0], name
    assert PRESETS["drvae-demo"]["models"] == PRESETS["drvae"]["models"] == RESPONSE_MODELS[:3]


def test_the_python_block_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (line, code), = _blocks("python")
    ns: dict = {"__name__": "__docs__"}
    exec(compile("\n" * (line - 1) + code, str(DOC), "exec"), ns)
    auroc = ns["auroc"]
    methods = [m for name in RESPONSE_MODELS[:3] for m in contender(name).methods]
    for drug in ("olaparib", "tipifarnib"):
        assert sorted(auroc.loc[drug].index) == sorted(methods)
        assert np.isfinite(auroc.loc[drug, "mean"].to_numpy(float)).all()
    assert "Labels (binary head): the waterfall rule" in (tmp_path / "runs/response/response.md").read_text()
    assert "logreg_x1" in capsys.readouterr().out
