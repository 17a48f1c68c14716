"""A contender (grid model) defined in tests/, registered without editing harness/, runs through the whole
grid: CLI flags, tasks on a Dask worker, the store, the report and the dry run; and the registry's rules."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import contenders
from harness.config import ConfigError, build_parser, make_config, parse_args
from harness.contenders import REGISTRY, ContenderError, model_methods, register
from harness.run import main
from harness.tasks import drug_data, drug_splits, split_data
from pertvae_core.evaluation import score_method
from tests.e2e import load, tiny_args, tiny_cube
from tests.harness.shift_contender import MeanChange, Nameless, ShiftContender
from tests.harness.test_cost import _dry
from tests.pertvae_core.test_methods import _install

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def shift():
    """ShiftContender registered for one test, then removed (other tests see the built-in registry)."""
    register(ShiftContender)
    yield REGISTRY["shift"]
    REGISTRY.pop("shift", None)


def _args(cube: Path, out: Path, *extra: str) -> list[str]:
    return tiny_args(cube, out, "--models", "shift", "pca", "--latents-shift", "3", *extra, workers=1)


def test_a_registered_contender_runs_through_the_grid_report_and_dry_run(tmp_path_factory, tmp_path, shift,
                                                                         capsys):
    cube = tiny_cube(tmp_path_factory)
    out = tmp_path / "run"
    assert main(_args(cube, out)) == 0   # one LocalCluster worker: the contender travels with its tasks
    ds = load(out)
    assert list(ds.model.values) == ["shift", "pca"] and "shift_mean" in list(ds.method.values)
    status = ds.status.sel(model="shift", latent=3, drug=["drugA", "drugB"]).values   # not the pooled one
    assert (status == "done").all()
    # its score is the method's own, scored directly on the same split
    cfg = parse_args(_args(cube, out))
    dd = drug_data(str(cube), "drugA", cfg)
    sp = split_data(dd, drug_splits(dd, cfg)[4])
    want = score_method(sp, MeanChange().fit(sp).predict)["delta_pearson"]
    got = ds.score.sel({"model": "shift", "method": "shift_mean", "drug": "drugA", "latent": 3, "split": 4,
                        "metric": "delta_pearson"}).item()
    assert got == pytest.approx(want, rel=1e-12)
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["method"]) == {"shift_mean"} and np.isfinite(scores["value"]).any()
    assert (out / "figure2.png").exists()   # PCA beside it still draws Figure 2
    capsys.readouterr()
    # the dry run of the same grid (a fresh OUT: nothing is written there)
    dry = tmp_path / "dry"
    assert _dry(parse_args(_args(cube, dry, "--dry-run")), capsys) == 0
    text = capsys.readouterr().out
    rows = [line.split() for line in text.splitlines() if line.startswith("shift ")]
    assert [r[:5] for r in rows] == [["shift", "3", "2", "12", "2"]]   # 2 drugs x 6 splits in 2 tasks
    # pca: its 2 latent sizes of the pooled pseudo-drug in one task
    assert "grid: 3 tasks, 24 fits (shift 12, pca 12)" in text and not dry.exists()


def test_registered_contender_gets_flags_and_methods(shift):
    flags = {s for a in build_parser()._actions for s in a.option_strings}
    assert "--latents-shift" in flags
    cfg = parse_args(["--models", "shift", "--latents-shift", "5,6"])
    assert cfg.models == ("shift",) and cfg.latents_shift == (5, 6)
    assert parse_args(["--models", "shift"]).latents_for("shift") == ShiftContender.default_latents
    assert model_methods(["shift_mean", "mine"])["shift"] == ("shift_mean",)
    assert model_methods(["shift_mean", "mine"])["baselines"][-1] == "mine"   # a --method of the run


def test_unknown_model_and_bad_contenders_are_refused(shift):
    with pytest.raises(ConfigError, match="invalid choice 'shfit'; did you mean shift"):
        parse_args(["--models", "shfit"])
    with pytest.raises(ConfigError, match="unknown model 'nope' in 'latents_nope'"):
        make_config("demo", latents_nope=[2])
    register(ShiftContender)   # the same class again: a no-op
    with pytest.raises(ContenderError, match="name '' must be a lowercase identifier"):
        register(Nameless)
    clash = type("Clash", (ShiftContender,), {"name": "clash"})
    with pytest.raises(ContenderError, match=r"method\(s\) \['shift_mean'\] already scored by"):
        register(clash)
    other = type("Other", (ShiftContender,), {"name": "shift", "methods": ()})
    with pytest.raises(ContenderError, match="'shift': already registered"):
        register(other)
    with pytest.raises(ContenderError, match="not a harness.contenders.base.Contender"):
        register(MeanChange())


def test_contender_registered_by_entry_point(tmp_path, monkeypatch):
    _install(tmp_path, "shiftpkg", {})
    info = tmp_path / "shiftpkg-1.0.dist-info" / "entry_points.txt"
    info.write_text(f"[{contenders.ENTRY_POINT_GROUP}]\n"
                    "shift = tests.harness.shift_contender:ShiftContender\n"
                    "broken = tests.harness.shift_contender:Missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        contenders._load_entry_points()
        assert isinstance(REGISTRY["shift"], ShiftContender)
        assert "has no attribute 'Missing'" in contenders.LOAD_ERRORS["broken"]
        with pytest.raises(ConfigError, match="invalid choice 'broken' .*has no attribute 'Missing'"):
            parse_args(["--models", "broken"])
    finally:
        REGISTRY.pop("shift", None)
        contenders.LOAD_ERRORS.pop("broken", None)


def test_a_contender_that_raises_or_exits_when_loaded_is_a_load_error(tmp_path, monkeypatch):
    """An installed contender whose constructor raises, or whose module calls sys.exit, is kept in
    LOAD_ERRORS (said when a run names it) and does not break every pertvae-bench command."""
    _install(tmp_path, "failpkg", {})
    info = tmp_path / "failpkg-1.0.dist-info" / "entry_points.txt"
    info.write_text(f"[{contenders.ENTRY_POINT_GROUP}]\n"
                    "fails_to_start = tests.harness.shift_contender:FailsToStart\n"
                    "exits = tests.harness.plugin_mods.exits_contender:Nope\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        contenders._load_entry_points()
        assert "RuntimeError: cannot find my config file" in contenders.LOAD_ERRORS["fails_to_start"]
        assert "sys.exit('no GPU found')" in contenders.LOAD_ERRORS["exits"]
        assert "fails_to_start" not in REGISTRY and "exits" not in REGISTRY
        with pytest.raises(ConfigError, match="invalid choice 'fails_to_start' .*cannot find my config"):
            parse_args(["--models", "fails_to_start"])
    finally:
        for name in ("fails_to_start", "exits"):
            contenders.LOAD_ERRORS.pop(name, None)
        sys.modules.pop("tests.harness.plugin_mods.exits_contender", None)


def test_a_contender_cannot_change_the_data_the_other_models_get(tmp_path_factory, tmp_path):
    """A worker keeps each drug's data for its tasks (harness.task_data): a contender whose task_data edits
    it in place fails its own task and leaves the data every other model's tasks get as it was."""
    from tests.harness.shift_contender import CentersItsData

    cube = tiny_cube(tmp_path_factory)
    cfg = parse_args(tiny_args(cube, tmp_path / "out"))
    dd = drug_data(str(cube), "drugA", cfg)
    before = {f: np.array(getattr(dd, f)) for f in ("x1", "x2", "xs", "xc")}
    with pytest.raises(ValueError, match="read-only"):
        CentersItsData().task_data(dd, str(cube), [(0, 0)], cfg)
    again = drug_data(str(cube), "drugA", cfg)
    for f, a in before.items():
        np.testing.assert_array_equal(getattr(again, f), a)
    sp = split_data(again, drug_splits(again, cfg)[0])   # the models' splits: their own, writable arrays
    assert sp.x1_train.flags.writeable


def test_figure2_pca_standardizes_the_profiles_as_the_run_says():
    """The PCA contender fits with the run's --standardize, the VAE's, so that Figure 2 compares two models
    of the same standardized profiles (it ignored the setting and pooled)."""
    from pertvae_core.api import evaluate_pca_latents
    from tests.pertvae_core.test_baselines_svd_cache import _split

    sp = _split()

    def rho_rec(rows: dict) -> list[float]:
        return [r["rho_rec"] for lat in (2, 5) for r in rows[lat]]

    got = {st: rho_rec(REGISTRY["pca"].run_latents([sp], [2, 5], {}, make_config("demo", standardize=st)))
           for st in ("per_source", "pooled")}
    assert got["per_source"] != got["pooled"]
    for st, values in got.items():
        assert values == rho_rec(evaluate_pca_latents([sp], [2, 5], st))
