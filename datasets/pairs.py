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


def _condition(ds: xr.Dataset, cond: str) -> np.ndarray:
    """float32 [cell, replicate, gene] of one condition (reads only that condition's chunks)."""
    return np.asarray(ds["expression"].sel(condition=cond).values, dtype=np.float32)


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


def drug_data(ds: xr.Dataset, drug: str) -> DrugData:
    """Pairs (control x1, post-treatment x2) of ``drug`` and the baseline singletons (module docstring)."""
    available = drugs(ds)
    if drug not in available:
        close = difflib.get_close_matches(drug, available, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; available: {', '.join(available[:30])}"
        raise CubeError(f"drug {drug!r}: not in the cube{hint}")
    cells = np.asarray([str(c) for c in ds["cell_line"].values], dtype=object)
    genes = np.asarray([str(g) for g in ds["gene"].values], dtype=object)
    conds = [str(c) for c in ds["condition"].values]
    ctrl, post = _condition(ds, CONDITION_CONTROL), _condition(ds, drug)
    m_ctrl, m_post = _measured(ctrl), _measured(post)
    pl_ctrl = condition_plates(ds, CONDITION_CONTROL, m_ctrl.shape)
    pl_post = condition_plates(ds, drug, m_post.shape)
    x1, x2, pcl, xc, ccl, cpl, pc, r1, r2 = [], [], [], [], [], [], [], [], []
    n_plate = n_cyclic = 0
    for i in np.flatnonzero(m_post.any(axis=1)):
        c_idx = np.flatnonzero(m_ctrl[i])
        if len(c_idx) == 0:
            continue
        first = len(xc)
        xc.extend(ctrl[i, c_idx])
        ccl.extend([cells[i]] * len(c_idx))
        cpl.extend(pl_ctrl[i, c_idx])
        p_idx = np.flatnonzero(m_post[i])
        pick, n_rest = pick_controls(pl_ctrl[i, c_idx], pl_post[i, p_idx])  # positions in c_idx
        x1.extend(ctrl[i, c_idx[pick]])
        x2.extend(post[i, p_idx])
        pcl.extend([cells[i]] * len(p_idx))
        pc.extend(first + pick)
        r1.extend(c_idx[pick])
        r2.extend(p_idx)
        n_plate, n_cyclic = n_plate + len(p_idx) - n_rest, n_cyclic + n_rest
    if not x2:
        raise CubeError(f"drug {drug!r}: no cell line has both control and post-treatment profiles")
    g = len(genes)
    if CONDITION_BASELINE in conds:
        base = _condition(ds, CONDITION_BASELINE)
        ci, ri = np.nonzero(_measured(base))
        xs, scl = base[ci, ri], cells[ci]
    else:
        xs, scl = np.zeros((0, g), dtype=np.float32), np.zeros(0, dtype=object)
    return DrugData(drug=drug, genes=genes, x1=np.stack(x1).astype(np.float32),
                    x2=np.stack(x2).astype(np.float32),
                    pair_cell_line=np.asarray(pcl, dtype=object), xs=np.asarray(xs, dtype=np.float32),
                    singleton_cell_line=np.asarray(scl, dtype=object), pairing=_rule(n_plate, n_cyclic),
                    xc=np.stack(xc).astype(np.float32), control_cell_line=np.asarray(ccl, dtype=object),
                    pair_control=np.asarray(pc, dtype=np.int64),
                    control_plate=np.asarray(cpl, dtype=object),
                    pair_x1_replicate=np.asarray(r1, dtype=np.int64),
                    pair_x2_replicate=np.asarray(r2, dtype=np.int64))


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
