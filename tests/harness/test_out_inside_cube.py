"""``run --out`` at or inside the cube: the run wrote its store, tables and lock into the cube's directory,
after which ``info`` described it as a run and ``synth/build --overwrite`` refused to replace it (no longer
"a cube written by this project"). Now refused before any work, the cube untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from datasets.cube import is_cube_store, write_cube
from datasets.synthetic import generate
from harness import cost, run


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cube(tmp_path_factory) -> Path:
    return write_cube(generate("demo", 0), tmp_path_factory.mktemp("c") / "cube.zarr")


@pytest.mark.parametrize("main", [run.main, cost.main], ids=["run", "dry-run"])
@pytest.mark.parametrize("sub, where", [("", "is"), ("runs/x", "is inside")])
def test_out_at_or_inside_the_cube_is_refused(cube, capsys, main, sub, where):
    before = _snapshot(cube)
    out = cube / sub if sub else cube
    assert main(["--data", str(cube), "--out", str(out), "--cluster", "none"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --out {out}: {where} the cube {cube}; a run's files would mix with the cube's: "
                   f"give a directory outside it\n"), err[-3000:]
    assert _snapshot(cube) == before and is_cube_store(cube)


@pytest.mark.parametrize("main", [run.main, cost.main], ids=["run", "dry-run"])
@pytest.mark.parametrize("sub, where", [("", "is"), ("x", "is inside")])
def test_out_at_or_inside_a_result_store_is_refused(cube, tmp_path, capsys, main, sub, where):
    """``run --out OUT/results.zarr`` (the store for its run): the run generated its cube, store, tables,
    run.json and lock among the store's variables, exit 0."""
    from tests.harness.test_report import make_store

    make_store(tmp_path / "done")
    store = tmp_path / "done" / "results.zarr"
    before = _snapshot(store)
    out = store / sub if sub else store
    small = ["--drugs", "selumetinib", "--models", "pca", "--latents-pca", "2"]   # cheap if it ever runs
    assert main(["--data", str(cube), "--out", str(out), "--cluster", "none", *small]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --out {out}: {where} the result store {store}; a run's files would mix with its "
                   f"results: give its run's directory {store.parent} to resume that run, or another "
                   f"directory\n"), err[-3000:]
    assert _snapshot(store) == before
