"""datasets.pairs: the plate and cyclic pairing rules on hand-built cubes written to real zarr v3 stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from datasets.cube import CONDITION_BASELINE, CONDITION_CONTROL, CubeError, make_cube, open_cube, write_cube
from datasets.pairs import drug_data, pool

CONDS = [CONDITION_CONTROL, "vorinostat", "olaparib", "empty", CONDITION_BASELINE]
G = 4


def value(cell: int, cond: int, rep: int) -> np.ndarray:
    """A profile that encodes where it came from: [cell, cond, rep, 0]."""
    return np.array([cell, cond, rep, 0], dtype=np.float32)


def cube_path(tmp_path: Path) -> Path:
    """Cell 0: controls at replicates 0,1, vorinostat at 0..4. Cell 1: no control, vorinostat at 0,1.
    Cell 2: controls at replicates 1,3 (0 and 2 missing), vorinostat at 1,2, olaparib at 0.
    Cell 3: only baseline (2 replicates). Baseline also for cells 0 and 2 (1 replicate)."""
    e = np.full((4, len(CONDS), 5, G), np.nan, dtype=np.float32)
    for r in (0, 1):
        e[0, 0, r] = value(0, 0, r)
    for r in range(5):
        e[0, 1, r] = value(0, 1, r)
    for r in (0, 1):
        e[1, 1, r] = value(1, 1, r)
    for r in (1, 3):
        e[2, 0, r] = value(2, 0, r)
    for r in (1, 2):
        e[2, 1, r] = value(2, 1, r)
    e[2, 2, 0] = value(2, 2, 0)
    e[3, 4, 0], e[3, 4, 1] = value(3, 4, 0), value(3, 4, 1)
    e[0, 4, 0], e[2, 4, 0] = value(0, 4, 0), value(2, 4, 0)
    e[1, 3, 0, :2] = 1.0  # a partly measured profile (NaN genes) in "empty" does not count
    ds = make_cube(e, ["A", "B", "C", "D"], CONDS, [str(g) for g in range(G)], [f"g{g}" for g in range(G)],
                   np.full((4, len(CONDS)), np.nan), ["L1000"] * 4 + ["GDSC"], {})
    return write_cube(ds, tmp_path / "c.zarr", cell_block=1)


def test_cyclic_pairing(tmp_path: Path) -> None:
    dd = drug_data(open_cube(cube_path(tmp_path)), "vorinostat")
    assert dd.pairing == "cyclic"
    assert list(dd.genes) == ["0", "1", "2", "3"]
    # cell B has no control and is skipped; cell A's 5 replicates cycle over its 2 controls; cell C's
    # post-treatment replicates 1,2 (0th and 1st measured) pair with its controls at replicates 1 and 3
    assert list(dd.pair_cell_line) == ["A"] * 5 + ["C"] * 2
    x1_src = [tuple(int(v) for v in row[:3]) for row in dd.x1]
    x2_src = [tuple(int(v) for v in row[:3]) for row in dd.x2]
    assert x1_src == [(0, 0, 0), (0, 0, 1), (0, 0, 0), (0, 0, 1), (0, 0, 0), (2, 0, 1), (2, 0, 3)]
    assert x2_src == [(0, 1, r) for r in range(5)] + [(2, 1, 1), (2, 1, 2)]
    assert dd.x1.dtype == np.float32 and dd.x2.dtype == np.float32


def test_singletons_are_all_baseline_profiles(tmp_path: Path) -> None:
    dd = drug_data(open_cube(cube_path(tmp_path)), "olaparib")
    assert list(dd.pair_cell_line) == ["C"]
    assert sorted(dd.singleton_cell_line) == ["A", "C", "D", "D"]
    assert dd.xs.shape == (4, G) and dd.xs.dtype == np.float32
    assert {tuple(int(v) for v in row[:3]) for row in dd.xs} == {(0, 4, 0), (2, 4, 0), (3, 4, 0), (3, 4, 1)}


def test_unknown_drug_suggests_close_matches(tmp_path: Path) -> None:
    ds = open_cube(cube_path(tmp_path))
    with pytest.raises(CubeError, match=r"'vorinostatt'.*did you mean vorinostat"):
        drug_data(ds, "vorinostatt")
    with pytest.raises(CubeError, match=r"'control'.*not in the cube"):
        drug_data(ds, "control")


def test_drug_without_pairs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CubeError, match=r"'empty': no cell line has both control and post-treatment"):
        drug_data(open_cube(cube_path(tmp_path)), "empty")


def test_reads_only_the_needed_conditions(tmp_path: Path) -> None:
    """Corrupt olaparib's only chunk on disk: vorinostat still reads, olaparib fails."""
    path = cube_path(tmp_path)
    chunk = path / "expression" / "c" / "2" / "2" / "0" / "0"
    assert chunk.is_file()
    chunk.write_bytes(b"\x00garbage")
    with pytest.raises(CubeError, match=r"c\.zarr: cannot read"):
        open_cube(path)  # it checks every value
    ds = xr.open_zarr(path, consolidated=False, zarr_format=3)
    dd = drug_data(ds, "vorinostat")
    assert len(dd.x2) == 7
    with pytest.raises(Exception):  # noqa: B017 - the codec's own error on the corrupted chunk
        drug_data(ds, "olaparib")


def test_all_controls_kept_and_pairs_point_at_them(tmp_path: Path) -> None:
    dd = drug_data(open_cube(cube_path(tmp_path)), "vorinostat")
    # cell A: controls 0, 1; cell C: controls 1, 3 (cell B has none and is skipped)
    assert [tuple(r[:3]) for r in dd.xc] == [(0, 0, 0), (0, 0, 1), (2, 0, 1), (2, 0, 3)]
    assert list(dd.control_cell_line) == ["A", "A", "C", "C"]
    np.testing.assert_array_equal(dd.xc[dd.pair_control], dd.x1)
    assert (dd.control_cell_line[dd.pair_control] == dd.pair_cell_line).all()


PLATED = [CONDITION_CONTROL, "mixed", "same_plate", "no_plates"]


def plated_cube_path(tmp_path: Path) -> Path:
    """Cell A: controls 0,1,2 on plates P1,P1,P2; "mixed" replicates 0..4 on P1,P2,P1,P3,"" (P3 has no
    control, "" is unknown). Cell B: controls 0,1 on P5,P6, "mixed" 0,1 on P5,"".
    "same_plate": A's 0,1 on P2,P1. "no_plates": A's 0..2 with unknown plates."""
    e = np.full((2, len(PLATED), 5, G), np.nan, dtype=np.float32)
    plate = np.full(e.shape[:3], "", dtype=object)

    def put(cell: int, cond: int, plates: list[str]) -> None:
        for r, p in enumerate(plates):
            e[cell, cond, r], plate[cell, cond, r] = value(cell, cond, r), p

    put(0, 0, ["P1", "P1", "P2"])
    put(0, 1, ["P1", "P2", "P1", "P3", ""])
    put(1, 0, ["P5", "P6"])
    put(1, 1, ["P5", ""])
    put(0, 2, ["P2", "P1"])
    put(0, 3, ["", "", ""])
    ds = make_cube(e, ["A", "B"], PLATED, [str(g) for g in range(G)], [f"g{g}" for g in range(G)],
                   np.full((2, len(PLATED)), np.nan), ["L1000"] * len(PLATED), {}, plate=plate)
    return write_cube(ds, tmp_path / "plated.zarr", cell_block=1)


def sources(rows: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(int(v) for v in row[:3]) for row in rows]


def test_plate_pairing_with_cyclic_fallback(tmp_path: Path) -> None:
    ds = open_cube(plated_cube_path(tmp_path))
    dd = drug_data(ds, "mixed")
    assert dd.pairing == "plate+cyclic fallback for 3 of 7 treated replicates"
    assert sources(dd.x2) == [(0, 1, r) for r in range(5)] + [(1, 1, 0), (1, 1, 1)]
    # A: P1's two replicates cycle over P1's controls 0,1; P2's over control 2; P3 (no control) and "" fall
    # back to the cyclic rule over all of A's controls (all used by the plate rule: controls 0, 1). B's ""
    # replicate falls back to the control the plate rule left unused (1), not to control 0
    assert sources(dd.x1) == [(0, 0, 0), (0, 0, 2), (0, 0, 1), (0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 1)]
    assert list(dd.control_plate) == ["P1", "P1", "P2", "P5", "P6"]
    assert list(dd.control_cell_line) == ["A", "A", "A", "B", "B"]
    np.testing.assert_array_equal(dd.xc[dd.pair_control], dd.x1)
    assert (dd.control_cell_line[dd.pair_control] == dd.pair_cell_line).all()
    same = drug_data(ds, "same_plate")
    assert same.pairing == "plate"
    assert sources(same.x1) == [(0, 0, 2), (0, 0, 0)]
    none = drug_data(ds, "no_plates")
    assert none.pairing == "cyclic"
    assert sources(none.x1) == [(0, 0, 0), (0, 0, 1), (0, 0, 2)]


def test_cube_without_plates_pairs_cyclically(tmp_path: Path) -> None:
    ds = open_cube(cube_path(tmp_path))
    assert "plate" not in ds
    dd = drug_data(ds, "vorinostat")
    assert dd.pairing == "cyclic" and list(dd.control_plate) == [""] * 4


def test_pool_concatenates_pairs_and_keeps_each_control_once(tmp_path: Path) -> None:
    ds = open_cube(cube_path(tmp_path))
    vor, ola = drug_data(ds, "vorinostat"), drug_data(ds, "olaparib")
    p = pool([vor, ola], "(pooled)")
    assert p.drug == "(pooled)"
    np.testing.assert_array_equal(p.x1, np.concatenate([vor.x1, ola.x1]))
    np.testing.assert_array_equal(p.x2, np.concatenate([vor.x2, ola.x2]))
    assert list(p.pair_cell_line) == ["A"] * 5 + ["C"] * 2 + ["C"]
    np.testing.assert_array_equal(p.xs, vor.xs)
    # cell C's controls (in both drugs) appear once; every pair's control row is its x1
    assert list(p.control_cell_line) == ["A", "A", "C", "C"]
    np.testing.assert_array_equal(p.xc[p.pair_control], p.x1)
    with pytest.raises(ValueError, match="no drugs"):
        pool([], "(pooled)")
