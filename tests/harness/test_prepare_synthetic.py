"""harness.prepare.prepare_cube's line about the cube it generates names the datasets.synthetic preset it
used: a drvae-demo run said "generating the synthetic 'drvae-demo' cube" of a cube whose provenance says
preset 'demo' (there is no synthetic 'drvae-demo': pertvae-bench synth --preset drvae-demo is refused)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harness.prepare as prepare
from harness.config import make_config


@pytest.mark.parametrize(("preset", "said"), [
    ("drvae-demo", "generating the synthetic 'demo' cube (seed 3, for the drvae-demo preset) into "),
    ("demo", "generating the synthetic 'demo' cube (seed 3) into "),
])
def test_the_line_names_the_synthetic_preset_generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture, preset: str,
                                                       said: str) -> None:
    import datasets.synthetic as synthetic

    made: list[str] = []
    real = synthetic.generate

    def small(preset: str, seed: int):  # the preset's cube, small: only the name and seed matter here
        made.append(preset)
        return real(preset, seed, n_genes=6, n_baseline=10, max_cells=6, max_replicates=2)

    monkeypatch.setattr(synthetic, "generate", small)
    path = prepare.prepare_cube(make_config(preset, data_seed=3), tmp_path)
    out = capsys.readouterr().out
    assert out == said + f"{path}\n"
    assert made == ["demo"]
    from datasets.cube import open_cube
    assert json.loads(open_cube(path).attrs["provenance"])["preset"] == "demo"
