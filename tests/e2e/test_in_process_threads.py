"""``--cluster none`` runs its fits with the threads of one local worker (issue 23): torch's intra-op threads
and the BLAS pools at 1 inside every fit, whatever the process had before (restored after the run). Left at
every core, tiny in-process fits took ~50 s instead of 5-9 s."""

from __future__ import annotations

import pytest

from tests.e2e import tiny_args, tiny_cube

pytestmark = pytest.mark.timeout(300)


def test_in_process_fits_see_one_thread_and_the_process_gets_its_threads_back(tmp_path_factory, tmp_path,
                                                                                 monkeypatch):
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    import harness.run as run_mod

    seen: list[tuple[int, list[int]]] = []
    real = run_mod.run_task

    def spy(*args, **kwargs):
        seen.append((torch.get_num_threads(), [p["num_threads"] for p in threadpool_info()]))
        return real(*args, **kwargs)

    monkeypatch.setattr(run_mod, "run_task", spy)
    cube = tiny_cube(tmp_path_factory)
    args = tiny_args(cube, tmp_path / "run", "--models", "pca", "baselines", "--n-repeats", "1",
                     cluster="none")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threadpool_limits(limits=2):
            assert run_mod.main(args) == 0
            assert torch.get_num_threads() == 2   # restored
            assert all(p["num_threads"] == 2 for p in threadpool_info() if p["internal_api"] != "openmp")
    finally:
        torch.set_num_threads(before)
    assert seen, "no fit ran"
    for torch_threads, blas in seen:
        assert torch_threads == 1 and blas and set(blas) == {1}, seen
