"""One drug's (x1, x2) pairs and the unpaired singletons, read from the cube.

Every measured post-treatment profile gives exactly one pair (the paper's x2); its x1 is a measured control
replicate of the same cell line, chosen per cell line as follows (replicates in replicate order):

- rule ``"plate"``: a post-treatment replicate whose plate (the cube's ``plate`` variable) is known and holds
  controls of the cell line is paired with a control of its own plate; the post-treatment replicates of a
  plate cycle over that plate's controls (the k-th with control ``k mod n_plate_ctrl``);
- rule ``"cyclic"`` (fallback, and the whole rule for cubes without plates): the remaining post-treatment
  replicates (plate unknown or without controls) cycle over the cell line's controls, those not used by the
  plate rule first (the k-th with control ``k mod n_ctrl`` of that order; without plates, control
  ``k mod n_ctrl``).

``DrugData.pairing`` records what was used for the drug: ``"plate"``, ``"cyclic"`` or
``"plate+cyclic fallback for N of M treated replicates"``. Controls are reused when there are fewer of them
than post-treatment replicates. Cell lines with post-treatment profiles but no control are skipped.
Singletons (the paper's unpaired x) are all measured replicates of the ``"baseline"`` condition.

For scoring, every measured control replicate of a paired cell line is kept (``xc``, ``control_cell_line``),
and ``pair_control[i]`` is the row of ``xc`` that pair ``i`` uses as x1 (pertvae_core.evaluation splits a
cell line's controls into model inputs and an independent reference for the observed change).
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from datasets.cube import CONDITION_BASELINE, CONDITION_CONTROL, CubeError, drugs, plate_ids

PAIRING_NOTE = ("plate: a drug replicate pairs with a control of its own plate (a plate's drug replicates "
                "cycle over its controls); cyclic fallback (the remaining replicates cycle over the cell "
                "line's controls, unused ones first) where the plate is unknown or has no control "
                "(datasets.pairs)")


@dataclass(frozen=True)
class DrugData:
    """A drug's pairs and singletons (see the module docstring for the pairing rule)."""

    drug: str
    genes: np.ndarray
    x1: np.ndarray
    x2: np.ndarray
    pair_cell_line: np.ndarray
    xs: np.ndarray
    singleton_cell_line: np.ndarray
    pairing: str
    xc: np.ndarray
    control_cell_line: np.ndarray
    pair_control: np.ndarray
    control_plate: np.ndarray  # [n_controls] plate of each xc row ("" unknown)
    # [n_pairs] the cube's replicate index of each pair's x1 (a control) and x2 (a post-treatment profile):
    # with pair_cell_line (and the drug), where each pair's profiles are in the cube
    pair_x1_replicate: np.ndarray | None = None
    pair_x2_replicate: np.ndarray | None = None


def _measured(block: np.ndarray) -> np.ndarray:
    """[cell, replicate] mask of fully measured profiles (no NaN gene)."""
    return ~np.isnan(block).any(axis=-1)


def _cell_blocks(ds: xr.Dataset) -> list[tuple[int, int]]:
    """The cube's chunks along cell_line as (start, stop); blocks of 64 for an in-memory cube."""
    chunks = ds["expression"].chunks
    n = int(ds.sizes["cell_line"])
    sizes = chunks[0] if chunks else [min(64, n - a) for a in range(0, n, 64)]
    stops = np.cumsum(sizes)
    return [(int(b - k), int(b)) for k, b in zip(sizes, stops, strict=True)]


@dataclass(frozen=True)
class _Profiles:
    """The fully measured profiles of one condition, in (cell, replicate) order."""

    cell: np.ndarray  # [n] cell line index
    replicate: np.ndarray  # [n] replicate index
    x: np.ndarray  # float32 [n, gene]


def _profiles(ds: xr.Dataset, cond: str, cells: np.ndarray | None = None) -> _Profiles:
    """The measured profiles of ``cond`` (of the sorted cell line indices ``cells`` only, if given), read
    one chunk of cell lines at a time and only those chunks: a worker holds a task's profiles, never a
    whole condition (a condition of the paper-shaped cube is 77 MB dense, mostly NaN)."""
    e = ds["expression"].sel(condition=cond)
    ci: list[np.ndarray] = []
    ri: list[np.ndarray] = []
    xs: list[np.ndarray] = []
    for a, b in _cell_blocks(ds):
        want = np.arange(a, b) if cells is None else cells[(cells >= a) & (cells < b)]
        if len(want) == 0:
            continue
        sel = slice(a, b) if cells is None else want
        block = np.asarray(e.isel(cell_line=sel).values, dtype=np.float32)  # [cell, replicate, gene]
        c, r = np.nonzero(_measured(block))
        ci.append(want[c])
        ri.append(r)
        xs.append(block[c, r])
    g = int(ds.sizes["gene"])
    if not xs:
        return _Profiles(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, g), np.float32))
    return _Profiles(np.concatenate(ci), np.concatenate(ri), np.concatenate(xs))


def condition_plates(ds: xr.Dataset, cond: str, shape: tuple[int, ...]) -> np.ndarray:
    """str [cell, replicate] plate ids of one condition ("" unknown; all "" without a plate variable)."""
    if "plate" not in ds.data_vars:
        return np.full(shape, "", dtype=object)
    return plate_ids(ds["plate"].sel(condition=cond).values)


def pick_controls(ctrl_plates: Sequence[str], post_plates: Sequence[str]) -> tuple[np.ndarray, int]:
    """One cell line's pairing (module docstring): given the plates of its measured controls and of its
    measured post-treatment replicates ("" unknown), the position among the controls of each replicate's
    x1, and how many replicates were paired by the cyclic rule."""
    on_plate: dict[str, list[int]] = {}  # plate -> its controls' positions
    for k, plate in enumerate(ctrl_plates):
        if plate:
            on_plate.setdefault(plate, []).append(k)
    seen: Counter[str] = Counter()
    pick = np.full(len(post_plates), -1)
    for r, plate in enumerate(post_plates):
        own = on_plate.get(plate, []) if plate else []
        if own:
            pick[r] = own[seen[plate] % len(own)]
            seen[plate] += 1
    rest = np.flatnonzero(pick < 0)
    n = len(ctrl_plates)
    used = np.isin(np.arange(n), pick)
    order = np.concatenate([np.flatnonzero(~used), np.flatnonzero(used)])  # unused controls first
    pick[rest] = order[np.arange(len(rest)) % n]
    return pick, len(rest)


def _rule(n_plate: int, n_cyclic: int) -> str:
    """The pairing rule actually used, from the counts of treated replicates paired each way."""
    if n_cyclic == 0:
        return "plate"
    if n_plate == 0:
        return "cyclic"
    return f"plate+cyclic fallback for {n_cyclic} of {n_plate + n_cyclic} treated replicates"


def _check_drug(ds: xr.Dataset, drug: str) -> None:
    available = drugs(ds)
    if drug not in available:
        close = difflib.get_close_matches(drug, available, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; available: {', '.join(available[:30])}"
        raise CubeError(f"drug {drug!r}: not in the cube{hint}")


def _singletons(ds: xr.Dataset, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The baseline's measured profiles (float32 [n, gene]) and their cell lines (none without baseline)."""
    if CONDITION_BASELINE not in [str(c) for c in ds["condition"].values]:
        return np.zeros((0, int(ds.sizes["gene"])), dtype=np.float32), np.zeros(0, dtype=object)
    base = _profiles(ds, CONDITION_BASELINE)
    return base.x, cells[base.cell]


def drug_data(ds: xr.Dataset, drug: str,
              singletons: tuple[np.ndarray, np.ndarray] | None = None) -> DrugData:
    """Pairs (control x1, post-treatment x2) of ``drug`` and the baseline singletons (module docstring).

    Reads the drug's measured profiles, the controls of its cell lines only, and the baseline (unless
    ``singletons``, the cube's (xs, singleton_cell_line), are given), a chunk of cell lines at a time
    (:func:`_profiles`): the memory it takes is the result's, not the cube's."""
    _check_drug(ds, drug)
    cells = np.asarray([str(c) for c in ds["cell_line"].values], dtype=object)
    genes = np.asarray([str(g) for g in ds["gene"].values], dtype=object)
    post = _profiles(ds, drug)
    ctrl = _profiles(ds, CONDITION_CONTROL, np.unique(post.cell))
    shape = (len(cells), int(ds.sizes["replicate"]))
    pl_ctrl = condition_plates(ds, CONDITION_CONTROL, shape)
    pl_post = condition_plates(ds, drug, shape)
    x1, x2, xc, pc = [], [], [], []  # rows of ctrl.x / post.x, and each pair's row of xc
    n_plate = n_cyclic = 0
    for i in np.unique(post.cell):
        c_rows = np.flatnonzero(ctrl.cell == i)
        if len(c_rows) == 0:
            continue
        p_rows = np.flatnonzero(post.cell == i)
        pick, n_rest = pick_controls(pl_ctrl[i, ctrl.replicate[c_rows]],
                                     pl_post[i, post.replicate[p_rows]])  # positions in c_rows
        pc.append(sum(len(r) for r in xc) + pick)
        xc.append(c_rows)
        x1.append(c_rows[pick])
        x2.append(p_rows)
        n_plate, n_cyclic = n_plate + len(p_rows) - n_rest, n_cyclic + n_rest
    if not x2:
        raise CubeError(f"drug {drug!r}: no cell line has both control and post-treatment profiles")
    rows_c, rows_x1, rows_p = np.concatenate(xc), np.concatenate(x1), np.concatenate(x2)
    xs, scl = _singletons(ds, cells) if singletons is None else singletons
    return DrugData(drug=drug, genes=genes, x1=ctrl.x[rows_x1], x2=post.x[rows_p],
                    pair_cell_line=cells[post.cell[rows_p]], xs=xs, singleton_cell_line=scl,
                    pairing=_rule(n_plate, n_cyclic), xc=ctrl.x[rows_c],
                    control_cell_line=cells[ctrl.cell[rows_c]],
                    pair_control=np.concatenate(pc).astype(np.int64),
                    control_plate=pl_ctrl[ctrl.cell[rows_c], ctrl.replicate[rows_c]],
                    pair_x1_replicate=ctrl.replicate[rows_x1], pair_x2_replicate=post.replicate[rows_p])


def pool(datas: Sequence[DrugData], name: str) -> DrugData:
    """Several drugs' pairs as one DrugData named ``name`` (Figure 2's pooled scope): every drug's pairs in
    the given order (a control appears once per post-treatment replicate it is paired with, as in each
    drug's own data), the singletons (the same for every drug of a cube), and each cell line's controls once.
    """
    if not datas:
        raise ValueError("pool: no drugs given")
    genes = datas[0].genes
    for d in datas[1:]:
        if list(d.genes) != list(genes):
            raise ValueError(f"pool: drug {d.drug!r} has other genes than {datas[0].drug!r}")
    xc: list[np.ndarray] = []
    ccl: list[np.ndarray] = []
    cpl: list[np.ndarray] = []
    first: dict[str, int] = {}  # cell line -> its first control row in the pooled xc
    pc: list[np.ndarray] = []
    for d in datas:
        own_first: dict[str, int] = {}
        for i, c in enumerate(np.asarray(d.control_cell_line).astype(str)):
            own_first.setdefault(c, i)
        for c in own_first:
            if c not in first:
                rows = np.flatnonzero(np.asarray(d.control_cell_line).astype(str) == c)
                first[c] = sum(len(a) for a in xc)
                xc.append(d.xc[rows])
                ccl.append(d.control_cell_line[rows])
                cpl.append(d.control_plate[rows])
        pcl = np.asarray(d.pair_cell_line).astype(str)
        pc.append(np.asarray([first[c] + int(p) - own_first[c] for c, p in zip(pcl, d.pair_control,
                                                                               strict=True)], dtype=np.int64))
    rules = sorted({d.pairing for d in datas})
    return DrugData(drug=name, genes=genes, x1=np.concatenate([d.x1 for d in datas]),
                    x2=np.concatenate([d.x2 for d in datas]),
                    pair_cell_line=np.concatenate([d.pair_cell_line for d in datas]), xs=datas[0].xs,
                    singleton_cell_line=datas[0].singleton_cell_line,
                    pairing=rules[0] if len(rules) == 1 else "; ".join(rules),
                    xc=np.concatenate(xc), control_cell_line=np.concatenate(ccl),
                    pair_control=np.concatenate(pc), control_plate=np.concatenate(cpl),
                    pair_x1_replicate=_joined([d.pair_x1_replicate for d in datas]),
                    pair_x2_replicate=_joined([d.pair_x2_replicate for d in datas]))


def _joined(parts: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """The parts concatenated, or None when one is missing."""
    return None if any(p is None for p in parts) else np.concatenate(parts)


def pooled_data(ds: xr.Dataset, names: Sequence[str], name: str) -> DrugData:
    """:func:`pool` of the drugs ``names``, with the baseline read once and shared by all of them (the
    largest task of a run: every drug's pairs)."""
    if not names:
        raise ValueError("pool: no drugs given")
    cells = np.asarray([str(c) for c in ds["cell_line"].values], dtype=object)
    singletons = _singletons(ds, cells)
    return pool([drug_data(ds, d, singletons) for d in names], name)
