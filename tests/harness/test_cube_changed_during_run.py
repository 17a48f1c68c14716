"""A cube rebuilt at its path while a run is running: the run's later tasks read the new data, and their fits
were saved beside the earlier ones under the fingerprint of the old cube; the run said "done"."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from datasets.cube import write_cube
from datasets.synthetic import generate
from harness import run


def test_a_cube_rebuilt_during_the_run_stops_it(tmp_path: Path, monkeypatch, capsys) -> None:
    cube = write_cube(generate("demo", 0), tmp_path / "cube.zarr")
    real = run.run_task
    tasks: list[str] = []

    def rebuilt_as_the_second_starts(task, *a, **k):  # between the tasks: one reads each cube
        if tasks:
            write_cube(generate("demo", 1), cube, overwrite=True)
        tasks.append(task.drug)
        return real(task, *a, **k)

    monkeypatch.setattr(run, "run_task", rebuilt_as_the_second_starts)
    out = tmp_path / "out"
    store = out / "results.zarr"
    args = ["--data", str(cube), "--out", str(out), "--cluster", "none", "--models", "pca", "--drugs",
            "selumetinib", "vorinostat", "--latents-pca", "2", "--n-repeats", "1", "--figure2-scope",
            "per-drug", "--no-progress"]
    assert run.main(args) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {cube}: the cube's files changed while this run was running (rebuilt, copied "
                   f"over or edited): the fits that ended since may have read its new data and were not "
                   f"saved; the 5 fits done in {store} are of the cube as the run opened it. Run the same "
                   f"command again: on the same data it resumes, on other data it refuses {store}\n"), err
    status = xr.open_zarr(store, zarr_format=3)["status"].astype(object)
    assert status.sel(drug="selumetinib").values.ravel().tolist() == ["done"] * 5   # read before the rebuild
    assert "done" not in status.sel(drug="vorinostat").values.ravel().tolist()
    assert run.main(args) == 2
    assert "holds results for a different dataset" in capsys.readouterr().err
