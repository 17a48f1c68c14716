"""issue 19, the same kind as fetch's: a full disk while a cube is written was a zarr traceback (exit 1).
Now one ``error:`` line saying what it is, with nothing left behind and an existing cube unchanged."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import xarray as xr

from datasets.cube import CubeError, write_cube
from datasets.synthetic import generate
from datasets.synthetic import main as synth_main
from tests.datasets.tmpfs import tiny_tmpfs  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def cube() -> xr.Dataset:
    return generate("demo", seed=0, n_genes=40, n_baseline=20)


@pytest.mark.parametrize(("err", "said"), [
    (errno.ENOSPC, "no space left on device writing {out}: free some space or use --out elsewhere (the cube "
                   "takes up to"),
    (errno.EDQUOT, "disk quota exceeded writing {out}: free some space or use --out elsewhere"),
    (errno.EROFS, "read-only file system writing {out}: use --out on a disk you can write to"),
])
def test_a_failed_write_is_said_and_leaves_nothing(tmp_path: Path, cube: xr.Dataset, err: int, said: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "c.zarr"
    real = xr.Dataset.to_zarr

    def fail_midway(self, store, *args, **kw):
        real(self.isel(condition=[0]), store, *args, **kw)  # some chunks are on disk when the disk fills
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(xr.Dataset, "to_zarr", fail_midway)
    with pytest.raises(CubeError) as e:
        write_cube(cube, out)
    assert str(e.value).startswith(said.format(out=out)) and str(e.value).endswith("nothing was written")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    write_cube(cube, out)
    monkeypatch.setattr(xr.Dataset, "to_zarr", fail_midway)
    with pytest.raises(CubeError, match="nothing was written, the cube there is unchanged"):
        write_cube(cube, out, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr"]


def test_real_full_tmpfs_is_one_error_line(tiny_tmpfs: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: F811
    out = tiny_tmpfs / "s.zarr"
    assert synth_main(["--out", str(out), "--preset", "demo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no space left on device writing {out}: free some space or use --out "
                          f"elsewhere") and err.count("\n") == 1
    assert list(tiny_tmpfs.iterdir()) == []
