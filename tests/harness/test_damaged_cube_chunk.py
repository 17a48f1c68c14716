"""A cube with a truncated chunk file (a copy cut short): ``info`` and ``run --dry-run`` opened it unchecked,
then read its values and died with a zstd traceback (info exit 1); the run itself said one line. A deleted
one (datasets.chunk_files) read as unmeasured data everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datasets import chunk_files
from datasets.cube import write_cube
from datasets.synthetic import generate
from harness import cost, info, run


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> Path:
    cube = write_cube(generate("demo", 0), tmp_path_factory.mktemp("c") / "cube.zarr")
    chunk = next(p for p in sorted((cube / "expression" / "c").rglob("*")) if p.is_file())
    chunk.write_bytes(chunk.read_bytes()[:100])
    return cube


def _one_error_line(capsys, cube: Path) -> None:
    cap = capsys.readouterr()
    assert cap.err == (f"error: {cube}: cannot read the cube's values (RuntimeError: Zstd decompression "
                       f"error: invalid input data): a chunk file is damaged or truncated; copy the cube "
                       f"again or rebuild it (pertvae-bench build/synth)\n"), cap.err[-3000:]


def test_info_on_a_truncated_chunk_is_one_error_line(damaged, capsys):
    assert info.main([str(damaged)]) == 2
    _one_error_line(capsys, damaged)


def test_dry_run_on_a_truncated_chunk_is_one_error_line(damaged, tmp_path, capsys):
    assert cost.main(["--data", str(damaged), "--out", str(tmp_path / "out"), "--cluster", "none"]) == 2
    _one_error_line(capsys, damaged)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def deleted(tmp_path_factory) -> Path:
    """A cube whose chunk file of cell lines 64-127 of the baseline is deleted: read as unmeasured, it had
    ``info`` say 136 baseline singletons instead of 200 (exit 0) and a run train on them, unnoticed."""
    cube = write_cube(generate("demo", 0), tmp_path_factory.mktemp("d") / "cube.zarr")
    (cube / "expression/c/1/20/0/0").unlink()
    return cube


def _deleted_error_line(capsys, cube: Path) -> None:
    cap = capsys.readouterr()
    assert cap.err == (f"error: {cube}: a damaged or changed cube: 1 of the 52 chunk files its writer wrote "
                       f"is missing (expression/c/1/20/0/0; a missing chunk reads as unmeasured data); copy "
                       f"the cube again or rebuild it (pertvae-bench build/synth)\n"), cap.err[-3000:]


def test_info_on_a_deleted_chunk_is_one_error_line(deleted, capsys):
    assert info.main([str(deleted)]) == 2
    _deleted_error_line(capsys, deleted)


def test_dry_run_on_a_deleted_chunk_is_one_error_line(deleted, tmp_path, capsys):
    assert cost.main(["--data", str(deleted), "--out", str(tmp_path / "out"), "--cluster", "none"]) == 2
    _deleted_error_line(capsys, deleted)
    assert not (tmp_path / "out").exists()


def test_run_on_a_deleted_chunk_is_one_error_line(deleted, tmp_path, capsys):
    args = ["--data", str(deleted), "--out", str(tmp_path / "out"), "--cluster", "none", "--models", "pca",
            "--drugs", "selumetinib", "--latents-pca", "2", "--n-repeats", "1", "--no-progress"]
    assert run.main(args) == 2
    _deleted_error_line(capsys, deleted)
    assert not (tmp_path / "out" / "results.zarr").exists()


def test_a_cube_without_its_record_is_run_with_a_note(tmp_path, capsys):
    """A cube written before the record of its chunk files: info and the run say that its deleted chunk
    files would go unnoticed, and what to do; nothing else changes."""
    cube = write_cube(generate("demo", 0), tmp_path / "cube.zarr")
    meta = json.loads((cube / "zarr.json").read_text())
    del meta["attributes"][chunk_files.ATTR]
    (cube / "zarr.json").write_text(json.dumps(meta))
    note = ("note: the cube has no record of the chunk files it was written with (written by an older "
            "version): a chunk file deleted since would read as unmeasured data, unnoticed; rebuild it "
            "(pertvae-bench build/synth) to have its files checked")
    assert info.main([str(cube)]) == 0
    assert f"\n{note}\n" in capsys.readouterr().out
    args = ["--data", str(cube), "--out", str(tmp_path / "out"), "--cluster", "none", "--models", "pca",
            "--drugs", "selumetinib", "--latents-pca", "2", "--n-repeats", "1", "--no-progress"]
    assert run.main(args) == 0
    assert note.replace("note: ", f"note: {cube}: ") in capsys.readouterr().out
