"""harness.corun: steps timed while helper processes train beside this one, their factor on the estimate, and
helpers that fail or linger."""

from __future__ import annotations

import math
import multiprocessing

import psutil
import pytest

from harness import corun, cost
from harness.calibrate import Calibration, Point
from harness.config import make_config
from harness.cpus import usable_cpus
from harness.shapes import SplitShape

SP = SplitShape(n_train=20, n_val=4, n_test=4, n_single=10, test_pairs=(4,), test_controls=(2,))
TINY = {"hidden": (16, 8), "context": 4, "iaf_hidden": 8, "batch_pairs": 8, "batch_singletons": 8}


def _helpers_running() -> bool:
    """Whether every helper process runs (not stopped); there is at least one."""
    kids = multiprocessing.active_children()
    assert kids
    return all(psutil.Process(k.pid).status() != psutil.STATUS_STOPPED for k in kids)


def test_factors_per_trained_model_and_no_helper_left():
    cfg = make_config("demo", **TINY)
    points = [Point("pertvae", 3, (SP,), (3,)), Point("vae", 3, (SP,), (4,)), Point("pca", 3, (SP,))]
    factors = corun.corun_factors(points, 30, cfg, threads=1, others=1)
    assert set(factors) == {"pertvae", "vae"}   # PCA is not trained: no step to time
    assert all(math.isfinite(f) and f >= 1.0 for f in factors.values())
    assert multiprocessing.active_children() == []


def test_no_other_worker_no_helper():
    cfg = make_config("demo", **TINY)
    points = [Point("vae", 3, (SP,), (4,))]
    assert corun.corun_factors(points, 30, cfg, threads=1, others=0) == {}
    assert multiprocessing.active_children() == []


def test_a_failing_helper_leaves_the_factors_unmeasured():
    cfg = make_config("demo", **TINY)
    broken = SplitShape(n_train=0, n_val=0, n_test=0, n_single=0, test_pairs=(), test_controls=())
    points = [Point("vae", 3, (broken,), (1,))]
    assert corun.corun_factors(points, 30, cfg, threads=1, others=1) == {}
    assert multiprocessing.active_children() == []


def test_a_factor_pairs_each_fit_beside_the_helpers_with_one_while_they_are_paused(monkeypatch):
    """This process's fits (faked: 1.5x slower while the real helper runs, and the whole machine 2x slower
    from the third fit on, as when another tenant starts) are timed alone with the helper stopped and beside
    it in turn: the factor is 1.5, where timing only the side-by-side fits against a calibration made before
    the slowdown would say 3."""
    cfg = make_config("demo", **TINY)
    calls = []

    def fit(p, genes, cfg, clock):
        calls.append(_helpers_running())
        step = (2.0 if len(calls) > 2 else 1.0) * (1.5 if calls[-1] else 1.0)
        return Calibration(p.model, p.latent, 1, step, 0.0, 0.0, 0.0)

    monkeypatch.setattr(corun, "calibrate_fit", fit)
    factors = corun.corun_factors([Point("vae", 3, (SP,), (4,))], 30, cfg, threads=1, others=1)
    assert factors == {"vae": pytest.approx(1.5)}
    pairs = [[False, True], [True, False]]   # paired rounds (alone, beside), in alternating order
    assert calls == [c for r in range(corun.CORUN_ROUNDS) for c in pairs[r % 2]]
    assert multiprocessing.active_children() == []


def test_scaled_multiplies_the_models_times():
    c = Calibration("vae", 2, 1, step=0.01, validation=0.02, setup=0.3, evaluation=0.1, step_one=0.01,
                    validation_one=0.02, flops_step=5.0, flops_val_pair=2.0, first_fit=1.0)
    s = corun.scaled(c, {"vae": 1.5, "pertvae": 2.0})
    assert (s.step, s.validation, s.setup, s.evaluation) == pytest.approx((0.015, 0.03, 0.45, 0.15))
    assert (s.flops_step, s.flops_val_pair, s.first_fit) == (5.0, 2.0, 1.0)   # not times, or paid once
    assert corun.scaled(c, {"pertvae": 2.0}) is c


def test_who_trains_beside_whom():
    local = make_config("demo", cluster="local", workers=4)
    cores = usable_cpus()
    assert cost.side_by_side(local, 4, "cpu") == min(4, cores) - 1
    assert cost.side_by_side(local, 1, "cpu") == 0
    assert cost.side_by_side(local, 4, "cuda") == 0
    assert cost.side_by_side(make_config("demo", cluster="none"), 1, "cpu") == 0
    assert cost.side_by_side(make_config("demo", cluster="slurm"), 8, "cpu") == 0


def test_the_dry_run_says_what_side_by_side_did():
    base = dict(tasks=(), fit_cost={}, epochs={}, max_epochs=10, slots=2, threads=1, device="cpu", where="",
                calibrations=(), calibration_seconds=0.0, load=0.0)
    est = cost.Estimate(**base, corun={"vae": 1.06}, corun_others=1)
    assert cost.side_by_side_how(est).startswith("side by side: a step took vae 1.06x its time alone (above) "
                                                "while 1 other worker(s) trained")
    failed = cost.Estimate(**base, corun={}, corun_others=1)
    assert "not measured" in cost.side_by_side_how(failed)


def test_nothing_trained_nothing_timed_side_by_side(tmp_path):
    """PCA and the baselines alone on 2 local workers: no step to time beside another, so the dry run says
    nothing of it (not that a helper failed)."""
    from datasets.cube import write_cube
    from datasets.synthetic import generate

    cube = write_cube(generate("demo", 0), tmp_path / "demo.zarr")
    cfg = make_config("demo", data=str(cube), drugs=("selumetinib",), models=("pca", "baselines"),
                      n_repeats=1, n_folds=3, cluster="local", workers=2)
    est = cost.estimate(cfg, cube, ["selumetinib"])
    assert est.corun_others == 0 and est.corun == {}
    assert "side by side" not in cost.render(cfg, est, "cube x")
    assert multiprocessing.active_children() == []


def test_a_fit_too_short_to_time_alone_gives_no_factor(monkeypatch):
    """A step timed at 0 s alone (below the clock's resolution) has no ratio: no factor, not a crash."""
    cfg = make_config("demo", **TINY)
    monkeypatch.setattr(corun, "calibrate_fit", lambda p, genes, cfg, clock: Calibration(
        p.model, p.latent, 1, 1.0 if _helpers_running() else 0.0, 0.0, 0.0, 0.0))
    assert corun.corun_factors([Point("vae", 3, (SP,), (4,))], 30, cfg, threads=1, others=1) == {}
    assert multiprocessing.active_children() == []
