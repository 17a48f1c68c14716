"""pertvae-bench run --help says what the code does (review 43, items 7, 8, 12, 29) and a TOML file's bad
preset is named with the file (item 30)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.config import ConfigError, RunConfig, build_parser, parse_args
from harness.presets import PRESETS


def _help_of(flag: str) -> str:
    """The help text of ``flag`` in ``run --help``, on one line."""
    action = next(a for a in build_parser()._actions if flag in a.option_strings)
    return " ".join(action.help.replace("%%", "%").split())


def test_preset_help_names_every_preset():
    assert "come from: " + " | ".join(PRESETS) + " [" in _help_of("--preset")
    assert len(PRESETS) > 2


def test_figure2_scope_help_states_no_made_up_factor():
    text = _help_of("--figure2-scope")
    assert "19x" not in text and not re.search(r"\d+x the cost", text)
    assert "as many times the fits as there are drugs" in text


@pytest.mark.parametrize(("flag", "want"), [
    ("--compile", "[paper: True, otherwise: False]"),
    ("--precision", "drvae-demo: fp32, otherwise: auto]"),
    ("--free-bits", "paper: 0.02, otherwise: 0.0]"),
    ("--latents-drvae", "drvae-demo: 8, otherwise: 50]"),
])
def test_preset_defaults_say_what_the_other_presets_get(flag, want):
    assert _help_of(flag).endswith(want)


def test_every_flag_states_its_default_for_every_preset():
    """A bracket that names some presets ends with "otherwise: ..." unless it names them all."""
    for a in build_parser()._actions:
        bracket = re.search(r"\[([^\[\]]*)\]$", " ".join((a.help or "").split()))
        if bracket is None or bracket.group(1).startswith("default: "):
            continue
        named = {p for p in PRESETS if f"{p}: " in bracket.group(1)}
        assert named == set(PRESETS) or ", otherwise: " in bracket.group(1), a.option_strings


@pytest.mark.parametrize("flag", ["--data", "--out", "--workers", "--drugs", "--splits-per-task"])
def test_a_default_stated_in_words_is_not_repeated_as_none(flag):
    text = _help_of(flag)
    assert "default: " in text and "None" not in text, text


def test_a_default_of_none_not_stated_in_words_is_shown():
    assert _help_of("--partition").endswith("[default: None]")
    assert all(f.metadata["help"] for f in RunConfig.__dataclass_fields__.values())


def test_a_toml_files_unknown_preset_names_the_file(tmp_path: Path):
    toml = tmp_path / "presetbad.toml"
    toml.write_text('preset = "papr"\n')
    with pytest.raises(ConfigError) as e:
        parse_args(["--config", str(toml)])
    assert str(e.value) == (f"field 'preset' = 'papr' ({toml}): unknown preset; did you mean paper? (known: "
                            f"{', '.join(PRESETS)})")
    toml.write_text("preset = [1]\n")   # not a name: refused as one, no TypeError
    with pytest.raises(ConfigError, match=rf"\({re.escape(str(toml))}\): unknown preset"):
        parse_args(["--config", str(toml)])
    assert parse_args(["--config", str(toml), "--preset", "paper"]).preset == "paper"
