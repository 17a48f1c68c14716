"""A cube with a truncated chunk file (a copy cut short): ``info`` and ``run --dry-run`` opened it unchecked,
then read its values and died with a zstd traceback (info exit 1); the run itself said one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from datasets.cube import write_cube
from datasets.synthetic import generate
from harness import cost, info


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
