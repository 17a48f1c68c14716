"""datasets.pairs reads a drug's data a chunk of cell lines at a time (issue 23: a worker holds its task's
data, not the cube): the arrays equal those of the former whole-condition reader (kept here as the
reference), and the zarr chunks read are exactly the drug's, its cell lines' controls and the baseline."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from zarr.storage import LocalStore

from datasets.cube import CONDITION_BASELINE, CONDITION_CONTROL, drugs, open_cube, write_cube
from datasets.pairs import DrugData, _rule, condition_plates, drug_data, pick_controls, pool, pooled_data
from datasets.synthetic import generate


def dense_reference(ds: xr.Dataset, drug: str) -> DrugData:
    """The former drug_data: every condition it uses read whole ([cell_line, replicate, gene])."""
    def cond(c: str) -> np.ndarray:
        return np.asarray(ds["expression"].sel(condition=c).values, dtype=np.float32)

    def measured(block: np.ndarray) -> np.ndarray:
        return ~np.isnan(block).any(axis=-1)

    cells = np.asarray([str(c) for c in ds["cell_line"].values], dtype=object)
    ctrl, post = cond(CONDITION_CONTROL), cond(drug)
    m_ctrl, m_post = measured(ctrl), measured(post)
    pl_ctrl, pl_post = (condition_plates(ds, c, m_ctrl.shape) for c in (CONDITION_CONTROL, drug))
    x1, x2, pcl, xc, ccl, cpl, pc, r1, r2 = [], [], [], [], [], [], [], [], []
    n_plate = n_cyclic = 0
    for i in np.flatnonzero(m_post.any(axis=1)):
        c_idx, p_idx = np.flatnonzero(m_ctrl[i]), np.flatnonzero(m_post[i])
        if len(c_idx) == 0:
            continue
        pick, n_rest = pick_controls(pl_ctrl[i, c_idx], pl_post[i, p_idx])
        pc.extend(len(xc) + pick)
        xc.extend(ctrl[i, c_idx])
        ccl.extend([cells[i]] * len(c_idx))
        cpl.extend(pl_ctrl[i, c_idx])
        x1.extend(ctrl[i, c_idx[pick]])
        x2.extend(post[i, p_idx])
        pcl.extend([cells[i]] * len(p_idx))
        r1.extend(c_idx[pick])
        r2.extend(p_idx)
        n_plate, n_cyclic = n_plate + len(p_idx) - n_rest, n_cyclic + n_rest
    base = cond(CONDITION_BASELINE)
    ci, ri = np.nonzero(measured(base))
    return DrugData(drug=drug, genes=np.asarray([str(g) for g in ds["gene"].values], dtype=object),
                    x1=np.stack(x1), x2=np.stack(x2), pair_cell_line=np.asarray(pcl, dtype=object),
                    xs=base[ci, ri], singleton_cell_line=cells[ci], pairing=_rule(n_plate, n_cyclic),
                    xc=np.stack(xc), control_cell_line=np.asarray(ccl, dtype=object),
                    pair_control=np.asarray(pc, dtype=np.int64), control_plate=np.asarray(cpl, dtype=object),
                    pair_x1_replicate=np.asarray(r1, dtype=np.int64),
                    pair_x2_replicate=np.asarray(r2, dtype=np.int64))


def assert_same(a: DrugData, b: DrugData) -> None:
    for f in dataclasses.fields(DrugData):
        u, v = getattr(a, f.name), getattr(b, f.name)
        if isinstance(u, np.ndarray):
            assert u.dtype == v.dtype and u.shape == v.shape and np.array_equal(u, v), f.name
        else:
            assert u == v, f.name


@pytest.fixture(scope="module")
def cubes(tmp_path_factory) -> dict[str, xr.Dataset]:
    """The demo cube in memory and written; a small paper-preset cube (plates, cell lines without
    controls' chunks) written in blocks of 16 cell lines."""
    tmp = tmp_path_factory.mktemp("chunked")
    demo = generate("demo", seed=3)
    paper = generate("paper", seed=1, n_genes=40, n_baseline=90, pool_size=40, max_replicates=5)
    return {"demo": demo, "demo.zarr": open_cube(write_cube(demo, tmp / "demo.zarr", cell_block=7)),
            "paper.zarr": open_cube(write_cube(paper, tmp / "paper.zarr", cell_block=16))}


@pytest.mark.parametrize("name", ["demo", "demo.zarr", "paper.zarr"])
def test_same_arrays_as_the_whole_condition_reader(cubes, name: str) -> None:
    ds = cubes[name]
    for d in drugs(ds):
        assert_same(drug_data(ds, d), dense_reference(ds, d))


@pytest.mark.parametrize("name", ["demo", "paper.zarr"])
def test_pooled_data_equals_pool_of_each_drug(cubes, name: str) -> None:
    ds = cubes[name]
    names = drugs(ds)[::-1]
    p = pooled_data(ds, names, "(pooled)")
    assert_same(p, pool([dense_reference(ds, d) for d in names], "(pooled)"))
    with pytest.raises(ValueError, match="no drugs"):
        pooled_data(ds, [], "(pooled)")


def test_reads_only_the_task_chunks(tmp_path: Path, monkeypatch) -> None:
    """Count the store's reads of expression chunks: opening reads none; a drug reads each of its chunks,
    the control chunks of the cell blocks that hold its cell lines and the baseline's, each once."""
    ds = generate("paper", seed=1, n_genes=40, n_baseline=90, pool_size=40, max_replicates=5)
    path = write_cube(ds, tmp_path / "c.zarr", cell_block=8)
    reads: list[str] = []
    get = LocalStore.get

    async def counting_get(self, key, *args, **kwargs):
        reads.append(key)
        return await get(self, key, *args, **kwargs)

    monkeypatch.setattr(LocalStore, "get", counting_get)
    cube = open_cube(path, check=False)
    chunk = re.compile(r"expression/c/(\d+)/(\d+)/0/0")
    assert not [k for k in reads if chunk.fullmatch(k)]
    conds = [str(c) for c in cube["condition"].values]
    n_blocks = -(-int(cube.sizes["cell_line"]) // 8)
    for drug in ("olaparib", "selumetinib"):
        reads.clear()
        dd = drug_data(cube, drug)
        got = [tuple(int(v) for v in chunk.fullmatch(k).groups()) for k in reads if chunk.fullmatch(k)]
        assert len(got) == len(set(got)), "a chunk read twice"
        cells = [str(c) for c in cube["cell_line"].values]
        own_blocks = {cells.index(c) // 8 for c in dd.pair_cell_line}
        want = ({(b, conds.index(drug)) for b in range(n_blocks)}
                | {(b, conds.index(CONDITION_CONTROL)) for b in own_blocks}
                | {(b, conds.index(CONDITION_BASELINE)) for b in range(n_blocks)})
        assert set(got) == want
        assert len(own_blocks) < n_blocks  # the test means something: some control blocks are not read
