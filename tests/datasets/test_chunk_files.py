"""The record of a cube's chunk files (datasets.chunk_files): all-missing chunks are never written, so a chunk
file deleted later read as unmeasured data and every check passed (a demo cube's baseline chunk of cell lines
64-127 deleted: ``info`` said 136 singletons instead of 200, exit 0, and a run trained on them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from datasets import chunk_files
from datasets.cube import CubeError, cube_fingerprint, open_cube, write_cube
from datasets.synthetic import generate

BASELINE_CHUNK = "expression/c/1/20/0/0"   # the demo cube's cell lines 64-127 of condition 'baseline'


@pytest.fixture(scope="module")
def cube(tmp_path_factory) -> Path:
    return write_cube(generate("demo", 0), tmp_path_factory.mktemp("c") / "cube.zarr")


@pytest.fixture()
def copy(cube: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(cube, tmp_path / "copy.zarr"))


def test_a_deleted_chunk_file_is_named(copy: Path) -> None:
    (copy / BASELINE_CHUNK).unlink()
    with pytest.raises(CubeError) as e:
        open_cube(copy)
    assert str(e.value) == (f"{copy}: a damaged or changed cube: 1 of the 52 chunk files its writer wrote is "
                            f"missing ({BASELINE_CHUNK}; a missing chunk reads as unmeasured data); copy the "
                            f"cube again or rebuild it (pertvae-bench build/synth)")
    open_cube(copy, check=False)   # a worker, after the driver's check, does not walk the files again


def test_an_added_chunk_file_is_named(copy: Path) -> None:
    (copy / "expression/c/3/0/0").mkdir(parents=True)
    shutil.copy(copy / "expression/c/0/0/0/0", copy / "expression/c/3/0/0/0")
    with pytest.raises(CubeError, match=r"1 chunk file\(s\) its writer did not write is there "
                                        r"\(expression/c/3/0/0/0\)"):
        open_cube(copy)


def test_many_missing_files_are_counted(copy: Path) -> None:
    shutil.rmtree(copy / "plate" / "c")
    with pytest.raises(CubeError, match=r"20 of the 52 chunk files its writer wrote are missing "
                                        r"\(plate/c/0/0/0, plate/c/0/1/0, plate/c/0/10/0, "
                                        r"\.\.\. \(17 more\)"):
        open_cube(copy)


def test_a_cube_without_the_record_opens_with_a_note(cube: Path, copy: Path) -> None:
    """A cube written before the record existed: opened as before, its fingerprint that of the same cube
    with the record (a run's store made on it resumes), and the note says what to do."""
    meta = json.loads((copy / "zarr.json").read_text())
    del meta["attributes"][chunk_files.ATTR]
    (copy / "zarr.json").write_text(json.dumps(meta))
    old, new = open_cube(copy), open_cube(cube)
    assert cube_fingerprint(old) == cube_fingerprint(new)
    assert chunk_files.unrecorded_note(new.attrs) is None
    assert "rebuild it (pertvae-bench build/synth) to have its files checked" in chunk_files.unrecorded_note(
        old.attrs)


def test_a_cube_written_again_records_its_own_files(cube: Path, tmp_path: Path) -> None:
    """A cube read back carries the record of its store; written again with other chunks it records anew."""
    again = write_cube(open_cube(cube), tmp_path / "again.zarr", cell_block=16)
    assert json.loads(open_cube(again).attrs[chunk_files.ATTR])["expression"]["grid"] == [13, 21, 1, 1]


def test_an_unreadable_record_is_said(copy: Path) -> None:
    meta = json.loads((copy / "zarr.json").read_text())
    meta["attributes"][chunk_files.ATTR] = "{not json"
    (copy / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(CubeError, match=r"its 'chunk_files' attribute \(the chunk files its writer "
                                        r"wrote\) is not readable"):
        open_cube(copy)
