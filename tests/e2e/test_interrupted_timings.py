"""run.json's ``timings`` and ``pertvae-bench info``'s 'last run' count the fits a run recorded: an
interrupted run's said every fit it had planned to run (review 48: 60 fits for a run stopped after 20)."""

from __future__ import annotations

import json

import pytest

from tests.e2e import tiny_args, tiny_cube

pytestmark = pytest.mark.timeout(300)


def test_an_interrupted_runs_timings_count_the_fits_it_ran(tmp_path_factory, tmp_path, monkeypatch):
    import harness.run as run_mod
    from harness.info import describe_run

    real = run_mod.run_task
    ran: list[int] = []

    def stop_at_the_second(task, *args, **kwargs):
        if ran:
            raise KeyboardInterrupt   # Ctrl-C during the second task
        ran.append(task.n_fits)
        return real(task, *args, **kwargs)

    monkeypatch.setattr(run_mod, "run_task", stop_at_the_second)
    out = tmp_path / "run"
    args = tiny_args(tiny_cube(tmp_path_factory), out, "--models", "pca", "baselines", "--n-repeats", "1",
                     cluster="none")
    assert run_mod.main(args) == 130
    info = json.loads((out / "run.json").read_text())
    assert info["interrupted"] and info["counts"]["done"] == ran[0] < info["counts"]["planned"]
    assert (info["timings"]["fits_run"], info["timings"]["tasks_run"]) == (ran[0], 1)
    assert f" s, {ran[0]} fits; interrupted (SIGINT)\n" in describe_run(out)
