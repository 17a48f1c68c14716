"""datasets.splits: grouped repeated cross-validation."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets.cube import CubeError
from datasets.splits import Split, make_splits, singleton_mask, split_seed, val_seed

CELLS = [f"CL{i:02d}" for i in range(23)]


def check_structure(splits: list[Split], cells: list[str], n_repeats: int, n_folds: int) -> None:
    """Repeat-major order; per split disjoint and complete; per repeat every cell line tested exactly once
    and validation spread evenly: no cell line validated more than ceil(validation slots / cell lines)
    times."""
    assert [(s.repeat, s.fold) for s in splits] == [(r, f) for r in range(n_repeats) for f in range(n_folds)]
    for s in splits:
        tr, va, te = set(s.train_cell_lines), set(s.val_cell_lines), set(s.test_cell_lines)
        assert not (tr & va) and not (tr & te) and not (va & te)
        assert tr | va | te == set(cells)
        assert len(tr) >= 1 and len(va) >= 1 and len(te) >= 1
    for r in range(n_repeats):
        tested = [c for s in splits if s.repeat == r for c in s.test_cell_lines]
        assert sorted(tested) == sorted(cells)
        sizes = [len(s.test_cell_lines) for s in splits if s.repeat == r]
        assert max(sizes) - min(sizes) <= 1
        validated = [c for s in splits if s.repeat == r for c in s.val_cell_lines]
        assert max(validated.count(c) for c in cells) <= -(-len(validated) // len(cells))


def test_grouping_coverage_and_validation_subset() -> None:
    splits = make_splits(CELLS, "vorinostat")
    check_structure(splits, CELLS, 10, 5)
    for s in splits:
        n_rest = len(s.train_cell_lines) + len(s.val_cell_lines)
        assert len(s.val_cell_lines) == round(0.2 * n_rest)


def test_each_fold_draws_its_own_validation_cell_lines() -> None:
    """Issue 9: validation rotates over the training cell lines (not one fixed ~20% held out in 4 of 5 folds);
    test folds are the repeat's shuffled cell lines dealt round-robin, as before."""
    cells = [f"CL{i:02d}" for i in range(56)]
    splits = make_splits(cells, "vorinostat", n_repeats=3, n_folds=5, base_seed=7)
    check_structure(splits, cells, 3, 5)
    for r in range(3):
        rep = [s for s in splits if s.repeat == r]
        trained = [c for s in rep for c in s.train_cell_lines]
        assert min(trained.count(c) for c in cells) >= 5 - 2
        perm = [cells[i] for i in np.random.default_rng(split_seed("vorinostat", r, 7)).permutation(56)]
        assert [s.test_cell_lines for s in rep] == [tuple(sorted(perm[f::5])) for f in range(5)]
    assert splits == make_splits(cells, "vorinostat", n_repeats=3, n_folds=5, base_seed=7)
    assert val_seed("d", 1, 2, 0) == int.from_bytes(hashlib.sha256(b"val/0/d/1/2").digest()[:8], "little")


def test_duplicates_in_input_are_one_group() -> None:
    """Cell lines repeat once per pair upstream; a cell line is a group, not a row."""
    splits = make_splits(CELLS + CELLS[:5], "x", n_repeats=2)
    check_structure(splits, CELLS, 2, 5)


def test_deterministic_and_reshuffled_per_repeat() -> None:
    a = make_splits(CELLS, "vorinostat", base_seed=3)
    assert a == make_splits(list(reversed(CELLS)), "vorinostat", base_seed=3)
    assert len({s.test_cell_lines for s in a if s.fold == 0}) > 1  # repeats differ
    assert make_splits(CELLS, "olaparib", base_seed=3) != a
    assert make_splits(CELLS, "vorinostat", base_seed=4) != a
    assert split_seed("d", 0, 0) == int.from_bytes(hashlib.sha256(b"splits/0/d/0").digest()[:8], "little")


def test_too_few_cell_lines_names_drug_and_counts() -> None:
    msg = r"drug 'linsitinib': 4 cell line\(s\) with pairs, fewer than n_folds=5"
    with pytest.raises(CubeError, match=msg):
        make_splits(CELLS[:4], "linsitinib")
    with pytest.raises(CubeError, match="val_fraction"):
        make_splits(CELLS, "d", val_fraction=1.0)
    smallest = make_splits(CELLS[:6], "linsitinib")  # the paper's smallest drug: 6 cell lines
    check_structure(smallest, CELLS[:6], 10, 5)


def test_singleton_mask_excludes_test_cell_lines() -> None:
    s = Split(0, 0, ("A", "B"), ("C",), ("D",))
    scl = np.array(["A", "D", "Z", "D", "C"], dtype=object)
    assert singleton_mask(scl, s).tolist() == [True, False, True, False, True]
    assert singleton_mask(scl, s, include_test=True).tolist() == [True] * 5
    assert singleton_mask(np.array([], dtype=object), s).shape == (0,)


@settings(max_examples=40, deadline=None)
@given(n_cells=st.integers(5, 60), n_folds=st.integers(2, 5), n_repeats=st.integers(1, 4),
       val_fraction=st.floats(0.0, 0.5), seed=st.integers(0, 2**31), drug=st.text(min_size=1, max_size=8))
def test_property_structure(n_cells: int, n_folds: int, n_repeats: int, val_fraction: float, seed: int,
                            drug: str) -> None:
    cells = [f"c{i}" for i in range(n_cells)]
    splits = make_splits(cells, drug, n_repeats=n_repeats, n_folds=n_folds, val_fraction=val_fraction,
                         base_seed=seed)
    check_structure(splits, cells, n_repeats, n_folds)
    assert splits == make_splits(cells, drug, n_repeats=n_repeats, n_folds=n_folds, val_fraction=val_fraction,
                                 base_seed=seed)


def test_spellings_of_one_cell_line_are_refused_not_split_apart() -> None:
    """Grouped by exact name, 'MCF7' and 'mcf-7' were two groups: with seed 0, repeat 0 fold 2 tested 'MCF7'
    and trained on 'mcf-7' (and fold 1 the reverse), one cell line's replicates on both sides of a split."""
    with pytest.raises(CubeError, match=r"'MCF7' and 'mcf-7' differ only in case or punctuation"):
        make_splits(["MCF7", "mcf-7", "A", "B", "C", "D", "E"], "d", n_repeats=2)


def test_singleton_mask_leaves_out_other_spellings_of_a_test_cell_line() -> None:
    """Compared by exact name, the baseline profiles 'MCF-7' and 'mcf7' of test cell line 'MCF7' trained
    (mask [True, True, False, True]); they are that cell line's profiles, as the baseline match says."""
    s = Split(0, 0, ("A", "B"), ("C",), ("MCF7",))
    assert singleton_mask(["MCF-7", "mcf7", "MCF7", "A"], s).tolist() == [False, False, False, True]
