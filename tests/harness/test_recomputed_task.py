"""A finished task the scheduler runs again (its worker lost after it finished: killed, or restarted by the
--fit-timeout watchdog) does nothing when its fits are done in the store: in a demo run whose worker was
restarted, the finished PertVAE task (10 fits, status written at 20:02:38) ran again and rewrote its fits'
per-gene chunks at 20:04:37."""

from __future__ import annotations

import pytest

from harness import run
from harness.config import make_config
from harness.grid import Task
from harness.results import fits_done_at
from harness.store import ResultStore


@pytest.fixture
def stored(tmp_path):
    cfg = make_config("demo", models=["pertvae", "pca"], latents_pertvae=[4], latents_pca=[2, 4],
                      n_repeats=2, n_folds=3, figure2_scope="per-drug")
    store = ResultStore.open(tmp_path / "out", cfg, "cube-fp", drugs=["dA", "dB"])
    store.write([dict(model="pertvae", drug="dA", latent=4, repeat=r, fold=f, status="done", reason="",
                      fit_seconds=1.0) for r, f in ((0, 0), (0, 1))])
    store.write([dict(model="pertvae", drug="dA", latent=4, repeat=0, fold=2, status="failed", reason="x")])
    return cfg, store.path


def test_a_task_whose_fits_are_done_is_not_run_again(stored, monkeypatch):
    cfg, path = stored
    ran = []
    monkeypatch.setattr(run, "run_task", lambda task, *a: ran.append(task) or [])
    done = Task("pertvae", "dA", 4, ((0, 0), (0, 1)))
    assert run.run_and_store(done, "cube", cfg, None, str(path)) == []
    assert ran == []
    for left in (Task("pertvae", "dA", 4, ((0, 1), (0, 2))), Task("pertvae", "dB", 4, ((0, 0),))):
        run.run_and_store(left, "cube", cfg, None, str(path))   # a failed or unrun fit: it runs
    assert len(ran) == 2


def test_a_store_that_cannot_be_read_runs_the_task(tmp_path):
    from harness.grid import FitKey

    assert not fits_done_at(tmp_path / "none", [FitKey("pertvae", "dA", 4, 0, 0)])
    assert not fits_done_at(tmp_path / "none", [])
