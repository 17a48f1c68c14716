"""Each fit's CPU time (the store's ``fit_cpu_seconds``, harness.tasks.cpu_seconds and share_cpu): it counts
the fitting thread's work and its waited-for child processes', not another thread's; a task's is shared among
its fits as their wall times are; an older store gets the variable (NaN) on resume; fits.csv has it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import xarray as xr

from harness.config import make_config
from harness.report import fits_table
from harness.results import load_results
from harness.store import ResultStore
from harness.tasks import cpu_seconds, run_task, share_cpu
from tests.harness.test_products import _open, _resume, _row, _without


def _burn(seconds: float) -> None:
    t0 = time.thread_time()
    x = 0
    while time.thread_time() - t0 < seconds:
        x += 1


def test_cpu_seconds_counts_this_thread_and_waited_children_not_other_threads(monkeypatch):
    import torch

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    other = threading.Thread(target=_burn, args=(0.6,))
    t0 = cpu_seconds()
    other.start()
    other.join()   # another thread's 0.6 s of CPU: not this task's
    assert cpu_seconds() - t0 < 0.3
    t0 = cpu_seconds()
    _burn(0.4)
    assert 0.35 < cpu_seconds() - t0 < 1.0
    t0 = cpu_seconds()
    subprocess.run([sys.executable, "-c", "import time\nt=time.process_time()\n"
                    "while time.process_time()-t<0.5: pass"], check=True)
    assert cpu_seconds() - t0 >= 0.45   # a plug-in's process, waited for


def test_share_cpu_follows_wall_time_or_splits_evenly():
    rows = [{"fit_seconds": 1.0}, {"fit_seconds": 3.0}]
    share_cpu(rows, 8.0)
    assert [r["fit_cpu_seconds"] for r in rows] == pytest.approx([2.0, 6.0])
    rows = [{"fit_seconds": np.nan}, {}]
    share_cpu(rows, 8.0)
    assert [r["fit_cpu_seconds"] for r in rows] == pytest.approx([4.0, 4.0])
    rows = [{"fit_seconds": 0.0}, {"fit_seconds": 0.0}, {"fit_seconds": 0.0}]
    share_cpu(rows, 3.0)
    assert [r["fit_cpu_seconds"] for r in rows] == pytest.approx([1.0, 1.0, 1.0])


def test_a_task_records_its_fits_cpu_time(tmp_path):
    from datasets.cube import drugs, open_cube
    from datasets.synthetic import generate, write_cube
    from harness.grid import build_grid

    cube = str(write_cube(generate("demo", 0, n_genes=60, max_cells=15, n_baseline=160), tmp_path / "c.zarr"))
    cfg = make_config("demo", data=cube, models=["pertvae"], latents_pertvae=[2], n_repeats=1, n_folds=3,
                      max_epochs=2, cluster="none", progress=False)
    drug = drugs(open_cube(cube))[0]
    task = build_grid(cfg, [drug], splits_per_task=3)[0]
    t0 = cpu_seconds()
    rows = run_task(task, cube, cfg)
    spent = cpu_seconds() - t0
    cpu = np.array([r["fit_cpu_seconds"] for r in rows])
    assert len(rows) == task.n_fits and np.all(cpu > 0)
    assert cpu.sum() <= spent + 1e-6   # the fitting, not the task's reading of the cube
    assert np.allclose(cpu, cpu[0])   # a batched task's fits share it equally, as their wall time


def test_fits_keep_their_cpu_time_and_an_older_store_gets_the_variable_on_resume(tmp_path):
    cfg = make_config("demo", models=["pertvae", "pca"], latents_pertvae=[4], latents_pca=[2, 4],
                      n_repeats=2, n_folds=3, figure2_scope="per-drug")
    out = tmp_path / "out"
    st = _open(out, cfg)
    st.write([{**_row("dA", 0, 1, "fp32"), "fit_cpu_seconds": 0.75}])
    ds = xr.open_zarr(st.path).load()
    assert ds.fit_cpu_seconds.sel(model="pertvae", drug="dA", latent=4, split=1).item() == 0.75
    assert np.isnan(ds.fit_cpu_seconds.values).sum() == ds.fit_cpu_seconds.size - 1
    _without(st.path, "fit_cpu_seconds")
    old = ResultStore(st.path)
    assert old.fit_float_vars == () and old.done_keys() and not old.repair().cells
    assert "fit_cpu_seconds" not in old.to_dataframe()
    fits = fits_table(load_results(out))   # a store without it: NaN in fits.csv
    assert fits["fit_cpu_seconds"].isna().all()
    again = _resume(out, cfg)
    assert again is not None and again.fit_float_vars == ("fit_cpu_seconds",)
    assert not again.repair().cells   # the added variable has every chunk, as a write leaves it
    again.write([{**_row("dB", 1, 2, "fp32"), "fit_cpu_seconds": 1.5}])
    fits = fits_table(load_results(out)).query("model == 'pertvae'").set_index(["drug", "split"])
    assert np.isnan(fits.loc[("dA", 1), "fit_cpu_seconds"])   # written before: unknown
    assert fits.loc[("dB", 5), "fit_cpu_seconds"] == 1.5
    assert fits["fit_cpu_seconds"].notna().sum() == 1
    again_df = again.to_dataframe().query("model == 'pertvae'").set_index(["drug", "split"])
    assert again_df.loc[("dB", 5), "fit_cpu_seconds"] == 1.5
