"""docs/drug_response.md: its Python blocks run as written (a small drvae-demo run and one with the user's
own response method, in a temporary folder), its commands' flags parse, and its table of models is the
registry's."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.config import parse_args
from harness.contenders import RESPONSE_MODELS, contender
from harness.presets import PRESETS

DOC = Path(__file__).resolve().parents[2] / "docs" / "drug_response.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
FILE = re.compile(r"# file: (\S+)\n")

pytestmark = pytest.mark.timeout(400)


def _blocks(lang: str) -> list[tuple[int, str]]:
    text = DOC.read_text()
    return [(text[: m.start()].count("\n") + 2, m.group(2)) for m in BLOCK.finditer(text)
            if m.group(1) == lang]


def test_the_commands_parse(tmp_path: Path) -> None:
    commands = [shlex.split(line.split("#")[0]) for _, bash in _blocks("bash") for line in bash.splitlines()
                if line.strip()]
    assert len(commands) == 6
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
    assert PRESETS["drvae-demo"]["models"] == PRESETS["drvae"]["models"] == RESPONSE_MODELS


def test_the_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """In order, in one namespace; a block that starts ``# file: NAME`` is written to NAME on the path (the
    user's own response method, which its sandboxed fits import by that path)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    ns: dict = {"__name__": "__docs__"}
    try:
        for line, code in _blocks("python"):
            if f := FILE.match(code):
                (tmp_path / f.group(1)).write_text(code)
            else:
                exec(compile("\n" * (line - 1) + code, str(DOC), "exec"), ns)
    finally:
        sys.modules.pop("my_response", None)
    auroc = ns["auroc"]
    methods = [m for name in RESPONSE_MODELS[:3] for m in contender(name).methods]
    for drug in ("olaparib", "tipifarnib"):
        assert sorted(auroc.loc[drug].index) == sorted(methods)
        assert np.isfinite(auroc.loc[drug, "mean"].to_numpy(float)).all()
    assert "Labels (binary head): the waterfall rule" in (tmp_path / "runs/response/response.md").read_text()
    assert "logreg_x1" in capsys.readouterr().out
    mine = ns["mine"]    # the user's method: a row per drug, above chance where logistic regression is
    want = {*contender("drvae").methods, *contender("response_baselines").methods, "nearest_centroid"}
    assert set(mine.loc["olaparib"].index) == want
    row = mine.loc[("olaparib", "nearest_centroid")]
    assert row["features"] == "your method (--response-method)" and row["mean"] > 0.5
    assert row["verdict"] in ("beats", "loses to", "not distinguishable from")
