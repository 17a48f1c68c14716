"""A cube rebuilt at its path while a run is running: the run's later tasks read the new data, and their fits
were saved beside the earlier ones under the fingerprint of the old cube; the run said "done". In process and
on a LocalCluster (its workers read the cube themselves)."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr

from datasets.cube import write_cube
from datasets.synthetic import generate
from harness import run


@pytest.mark.parametrize("cluster", ["none", "local"])
def test_a_cube_rebuilt_during_the_run_stops_it(cluster: str, tmp_path: Path, monkeypatch, capsys) -> None:
    cube = write_cube(generate("demo", 0), tmp_path / "cube.zarr")
    real = run._write
    written: list[int] = []

    def rebuilt_after_the_first(*a, **k):  # the first task's fits are saved, then the cube is rebuilt
        real(*a, **k)
        if not written:
            write_cube(generate("demo", 1), cube, overwrite=True)
        written.append(1)

    monkeypatch.setattr(run, "_write", rebuilt_after_the_first)
    out = tmp_path / "out"
    store = out / "results.zarr"
    args = ["--data", str(cube), "--out", str(out), "--cluster", cluster, "--workers", "1", "--models", "pca",
            "--drugs", "selumetinib", "vorinostat", "--latents-pca", "2", "--n-repeats", "1",
            "--figure2-scope", "per-drug", "--no-progress"]
    assert run.main(args) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {cube}: the cube's files changed while this run was running (rebuilt, copied "
                   f"over or edited): the fits that ended since may have read its new data and were not "
                   f"saved; the 5 fits done in {store} are of the cube as the run opened it. Run the same "
                   f"command again: on the same data it resumes, on other data it refuses {store}\n"), err
    status = xr.open_zarr(store, zarr_format=3)["status"].astype(object).values.ravel().tolist()
    assert status.count("done") == 5   # the first task's, read before the rebuild; not the second's
    assert run.main(args) == 2
    assert "holds results for a different dataset" in capsys.readouterr().err
