"""One drug's (x1, x2) pairs and the unpaired singletons, read from the cube.

Pairing rule ``"cyclic"``: for each cell line, the measured post-treatment replicates (in replicate order) and
the measured control replicates (in replicate order) are listed; post-treatment replicate ``r`` is paired
with control replicate ``r mod n_ctrl``. So every post-treatment profile gives exactly one pair (the paper's
x2), and the controls are reused round-robin when there are fewer of them than post-treatment replicates.
Cell lines with post-treatment profiles but no control are skipped. Singletons (the paper's unpaired x)
are all measured replicates of the ``"baseline"`` condition.

For scoring, every measured control replicate of a paired cell line is kept (``xc``, ``control_cell_line``),
and ``pair_control[i]`` is the row of ``xc`` that pair ``i`` uses as x1 (pertvae_core.evaluation splits a
cell line's controls into model inputs and an independent reference for the observed change).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import xarray as xr

from datasets.cube import CONDITION_BASELINE, CONDITION_CONTROL, CubeError, drugs

PAIRING = "cyclic"


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


def _measured(block: np.ndarray) -> np.ndarray:
    """[cell, replicate] mask of fully measured profiles (no NaN gene)."""
    return ~np.isnan(block).any(axis=-1)


def _condition(ds: xr.Dataset, cond: str) -> np.ndarray:
    """float32 [cell, replicate, gene] of one condition (reads only that condition's chunks)."""
    return np.asarray(ds["expression"].sel(condition=cond).values, dtype=np.float32)


def drug_data(ds: xr.Dataset, drug: str) -> DrugData:
    """Pairs (control x1, post-treatment x2) of ``drug`` and the baseline singletons, by the cyclic rule."""
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
    x1, x2, pcl, xc, ccl, pc = [], [], [], [], [], []
    for i in np.flatnonzero(m_post.any(axis=1)):
        c_idx = np.flatnonzero(m_ctrl[i])
        if len(c_idx) == 0:
            continue
        first = len(xc)
        xc.extend(ctrl[i, c_idx])
        ccl.extend([cells[i]] * len(c_idx))
        for r, p in enumerate(np.flatnonzero(m_post[i])):
            x1.append(ctrl[i, c_idx[r % len(c_idx)]])
            x2.append(post[i, p])
            pcl.append(cells[i])
            pc.append(first + r % len(c_idx))
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
                    singleton_cell_line=np.asarray(scl, dtype=object), pairing=PAIRING,
                    xc=np.stack(xc).astype(np.float32), control_cell_line=np.asarray(ccl, dtype=object),
                    pair_control=np.asarray(pc, dtype=np.int64))
