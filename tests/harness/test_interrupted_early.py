"""A run interrupted outside its grid (preparing the cube, opening the store, reporting) said "finished fits
are safe in OUT/results.zarr (if it exists)": a hedge the run can resolve, since the store is made whole or
not at all. It now says there is none yet, or names the store."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness.run
from harness.run import main
from tests.harness.test_few_cell_lines import DRUG, _cube


def _interrupt(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt


def test_an_interrupted_run_says_what_it_kept(tmp_path: Path, capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    args = ["--data", _cube(tmp_path / "cube.zarr", 5), "--out", str(out), "--cluster", "none", "--drugs",
            DRUG, "--models", "baselines", "--latents-baselines", "2", "--n-repeats", "1", "--no-progress"]
    with monkeypatch.context() as m:   # Ctrl-C before the store is created
        m.setattr(harness.run, "drug_meta", _interrupt)
        assert main(args) == 130
    assert capsys.readouterr().out.splitlines()[-1] == ("interrupted: no result was written yet; run the "
                                                        "same command again")
    assert not out.exists()
    assert main(args) == 0
    capsys.readouterr()
    with monkeypatch.context() as m:   # Ctrl-C on resume, the store there
        m.setattr(harness.run, "_repair", _interrupt)
        assert main(args) == 130
    store = out / "results.zarr"
    assert capsys.readouterr().out.splitlines()[-1] == (f"interrupted: the finished fits in {store} are "
                                                        "kept: run the same command again to resume")
