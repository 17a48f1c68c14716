"""The chunk-planned GCTX reader (datasets.gctx_plan, datasets.l1000._read_gctx_selection): the plan by hand
on a small layout, the same values as a full read and as main's reader on every storage layout (chunked, gzip,
shuffle+gzip, contiguous, odd chunks), and the bytes HDF5 reads (``/proc/self/io`` rchar: every byte HDF5
asked the OS for, page cache or not) against the bytes needed, on GEO's layout scaled down in genes (2,000
genes, 160 landmarks scattered: the same ~12.5 genes per landmark as 12,328 / 978)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from datasets.build import build
from datasets.cube import cube_fingerprint
from datasets.gctx_plan import PAGE, Layout, gene_runs, plan_reads
from datasets.l1000 import GCTX_MATRIX, open_l1000
from datasets.progress import io_counter
from tests.datasets.geo_gctx import drug_names, main_reader, write_geo_gctx

rchar = io_counter("rchar")
needs_rchar = pytest.mark.skipif(rchar is None, reason="needs /proc/self/io (Linux)")


# --------------------------------------------------------------------------------------------- the plan
def test_plan_by_hand():
    lay = Layout((5000, 1000), (1000, 100), 4)
    genes = np.array([5, 50, 250, 260, 999])  # gene chunks 0, 0, 2, 2, 9: three runs
    assert gene_runs(genes, lay) == [(0, 2, 1), (2, 4, 1), (4, 5, 1)]
    rng = np.random.default_rng(0)
    samples = np.sort(np.concatenate([[10, 20, 999],  # 3 in chunk 0: by rows
                                      2000 + rng.choice(1000, 97, replace=False),  # chunk 2: whole
                                      4000 + rng.choice(1000, 500, replace=False)]))  # chunk 4: whole
    plan = plan_reads(lay, samples, genes)
    # a wanted sample by rows pulls 46 + 11 + 1 genes and a page per gene chunk; a sample chunk whole pulls
    # 3 chunks of 400,000 bytes and a page each: whole wins from 97 samples on (96 x 12,520 < 1,212,288)
    row_cost, block_cost = 58 * 4 + 3 * PAGE, 3 * (400_000 + PAGE)
    assert 96 * row_cost < block_cost < 97 * row_cost
    assert len(plan.reads) == 9 and plan.whole_chunks == 2 and plan.chunks_touched == 9
    r = plan.reads
    np.testing.assert_array_equal(r[0].rows, [10, 20, 999])
    assert [x.genes for x in r[:3]] == [slice(5, 51), slice(250, 261), slice(999, 1000)]
    assert r[0].nbytes == 3 * (46 * 4 + PAGE)
    # chunks 2 and 4 are not adjacent: two slices of whole chunks, chunk-aligned gene spans
    assert [x.rows for x in r[3:]] == [slice(2000, 3000)] * 3 + [slice(4000, 5000)] * 3
    assert [x.genes for x in r[3:6]] == [slice(0, 100), slice(200, 300), slice(900, 1000)]
    assert (r[3].s0, r[3].s1, r[6].s0, r[6].s1) == (3, 100, 100, 600)
    assert plan.nbytes == 3 * row_cost + 2 * block_cost
    assert plan.needed_bytes == 600 * 5 * 4
    # filtered (compressed) chunks are pulled whole at their stored size, read by rows
    gz = plan_reads(Layout((5000, 1000), (1000, 100), 4, filtered=True, stored_fraction=0.5), samples, genes)
    assert all(isinstance(x.rows, np.ndarray) for x in gz.reads) and gz.whole_chunks == 3
    assert gz.nbytes == 3 * 3 * (200_000 + PAGE)


def test_plan_bounds_rows_and_memory():
    lay = Layout((50_000, 978), (1000, 262), 4)
    samples = np.arange(0, 50_000, 10)  # 100 per chunk: by rows
    plan = plan_reads(lay, samples, np.arange(978), max_rows=700, budget_bytes=10**9)
    assert max(x.s1 - x.s0 for x in plan.reads) <= 700
    assert [x.s0 for x in plan.reads] == sorted({x.s0 for x in plan.reads})  # file order, no overlap
    plan = plan_reads(lay, samples, np.arange(978), budget_bytes=400 * 978 * 4)
    assert max(x.s1 - x.s0 for x in plan.reads) <= 400  # memory held
    plan = plan_reads(lay, samples, np.arange(978), budget_bytes=5 * 10**6)  # bytes pulled: a chunk's 100
    assert max(x.nbytes for x in plan.reads) <= 5 * 10**6 and len(plan.reads) == 25  # rows pull ~2.03 MB
    assert plan_reads(lay, np.array([], int), np.arange(5)).reads == []


# ------------------------------------------------------------------------------- values and bytes read
def _file(tmp_path, name, mat, **kw):
    path = tmp_path / name
    with h5py.File(path, "w") as f:
        f.create_dataset(GCTX_MATRIX, data=mat, **kw)
    return path


@pytest.mark.parametrize("kw", [dict(chunks=(1000, 262)), dict(chunks=(1000, 262), compression="gzip"),
                                dict(chunks=(64, 50), compression="gzip", shuffle=True), {},
                                dict(chunks=(37, 23))], ids=["geo", "gzip", "shuffle", "contiguous", "odd"])
def test_same_values_as_full_read_and_main(tmp_path, kw):
    from datasets.l1000 import _read_gctx_selection

    rng = np.random.default_rng(1)
    mat = rng.standard_normal((2600, 700), dtype=np.float32)
    path = _file(tmp_path, "m.h5", mat, **kw)
    genes = np.sort(rng.choice(700, 60, replace=False))
    for idx in (rng.choice(2600, 26, replace=False), np.arange(900, 1900), rng.choice(2600, 400)):
        g = rng.permutation(np.concatenate([genes, genes[:3]]))  # unsorted, repeated genes
        got = _read_gctx_selection(path, idx, g, 10_000)
        np.testing.assert_array_equal(got, mat[idx][:, g])
        np.testing.assert_array_equal(got, main_reader(path, idx, g))
        np.testing.assert_array_equal(_read_gctx_selection(path, idx, g, 7), got)  # reads of <= 7 rows


@pytest.fixture(scope="module")
def geo(tmp_path_factory):
    d = tmp_path_factory.mktemp("geo")
    return {c: write_geo_gctx(d, 3000, n_genes=2000, n_landmarks=160, compression=c) for c in (None, "gzip")}


def _bytes_read(fn, path, idx, genes) -> tuple[int, np.ndarray]:
    r0 = rchar()
    out = fn(path, idx, genes, 10_000)
    return rchar() - r0, out


@needs_rchar
@pytest.mark.parametrize("frac", [0.01, 0.1])
def test_geo_layout_reads_at_most_20x_the_needed_bytes(geo, frac):
    from datasets.l1000 import _read_gctx_selection

    f = geo[None]
    idx = np.sort(np.random.default_rng(2).choice(3000, int(3000 * frac), replace=False))
    need = len(idx) * len(f.landmarks) * 4
    new, a = _bytes_read(_read_gctx_selection, f.gctx, idx, f.landmarks)
    old, b = _bytes_read(main_reader, f.gctx, idx, f.landmarks)
    np.testing.assert_array_equal(a, b)
    assert new <= 20 * need, new / need  # ~12.6: each wanted sample's row within each landmark chunk
    assert old > 100 * need  # main's reader pulled whole 1000-sample chunks


@needs_rchar
def test_gzip_reads_only_the_chunks_holding_wanted_cells(geo):
    """Compressed chunks are inflated whole: the plan touches only the chunks holding wanted cells (here
    landmarks in 2 of the 8 gene chunks, samples in 1 of the 3 sample chunks), main's reader every chunk of
    the gene span."""
    from datasets.l1000 import _read_gctx_selection

    f = geo["gzip"]
    genes = np.r_[3:40, 1900:1990]  # gene chunks 0 and 7
    idx = np.arange(1100, 1900, 9)
    with h5py.File(f.gctx, "r") as h:
        dset = h[GCTX_MATRIX]
        stored = sum(dset.id.get_chunk_info_by_coord((1000, j * 262)).size for j in (0, 7))
        plan = plan_reads(Layout.of(dset), idx, genes)
    new, a = _bytes_read(_read_gctx_selection, f.gctx, idx, genes)
    old, b = _bytes_read(main_reader, f.gctx, idx, genes)
    np.testing.assert_array_equal(a, b)
    assert stored <= new <= stored + 64 * 1024  # the two chunks (and a little HDF5 metadata)
    assert plan.chunks_touched == 2 and abs(plan.nbytes - stored) < 0.25 * stored  # edge chunks: smaller
    assert old > 3 * new


def test_progress_by_bytes_reaches_the_plan_total(geo):
    f = geo[None]
    src = open_l1000(f.gctx)
    seen = []
    src.read(np.arange(0, 3000, 3), f.landmarks, chunk_samples=300, progress=lambda d, t: seen.append((d, t)))
    done = [d for d, _ in seen]
    assert len(seen) >= 3 and done == sorted(done) and seen[-1][0] == seen[-1][1] > 0


def test_build_gives_the_same_cube_as_mains_reader(geo, monkeypatch):
    f = geo["gzip"]
    kw = dict(inst_info=f.inst_info, gene_info=f.gene_info, drugs=drug_names(0)[:3])
    ds, summary = build(f.gctx, [f.baseline], **kw)
    monkeypatch.setattr("datasets.l1000._read_gctx_selection", main_reader)
    ref, _ = build(f.gctx, [f.baseline], **kw)
    assert summary.controls > 0 and ds["expression"].shape == ref["expression"].shape
    for v in [*ds.data_vars, *ds.coords]:
        np.testing.assert_array_equal(ds[v].values, ref[v].values)
    assert cube_fingerprint(ds) == cube_fingerprint(ref)


@pytest.mark.skipif(io_counter("syscr") is None, reason="needs /proc/self/io (Linux)")
def test_whole_chunks_are_read_one_request_each(tmp_path):
    """A chunk the plan reads whole costs one request, as the plan counts it. Without a chunk cache HDF5 read
    an unfiltered chunk one sample row at a time: a 200,000 x 978 GCTX chunked 20,000 samples x 4 genes,
    1.5% of its samples, took 4.9 million reads of 16 bytes per sample chunk (15 s of system time)."""
    from datasets.l1000 import _read_gctx_selection

    syscr = io_counter("syscr")
    mat = np.random.default_rng(3).standard_normal((4000, 40), dtype=np.float32)
    path = _file(tmp_path, "tall.h5", mat, chunks=(2000, 4))  # 20 chunks of 2,000 rows
    idx = np.arange(0, 4000, 5)
    with h5py.File(path, "r") as h:
        plan = plan_reads(Layout.of(h[GCTX_MATRIX]), idx, np.arange(40))
    assert plan.whole_chunks == 2
    r0 = syscr()
    got = _read_gctx_selection(path, idx, np.arange(40), 10_000)
    np.testing.assert_array_equal(got, mat[idx])
    assert syscr() - r0 < 200  # 20 chunks and the file's metadata; row by row: 40,000


def test_whole_chunk_reads_hold_at_most_the_budget():
    """Chunks of every sample x 8 genes (a 200,000 x 978 GCTX): a row of sample chunks is the whole matrix,
    so a read of whole chunks is cut across the genes. Before, one read held all 782 MB (the build's peak RSS
    1.04 GB, 340 MB with GEO's chunking)."""
    lay = Layout((200_000, 978), (200_000, 8), 4)
    genes = np.arange(978)
    plan = plan_reads(lay, np.arange(0, 200_000, 10), genes, budget_bytes=64 * 2**20)
    assert plan.whole_chunks == 1
    for r in plan.reads:
        held = (r.rows.stop - r.rows.start) * (r.genes.stop - r.genes.start) * 4
        assert held <= 64 * 2**20
    np.testing.assert_array_equal(np.concatenate([genes[r.g0:r.g1] for r in plan.reads]), genes)
    assert sum(r.nbytes for r in plan.reads) == 123 * (lay.chunk_bytes + PAGE)  # every chunk, once


def test_whole_chunk_reads_cut_across_genes_give_the_same_values(tmp_path, monkeypatch):
    from datasets.l1000 import _read_gctx_selection

    mat = np.random.default_rng(4).standard_normal((3000, 90), dtype=np.float32)
    path = _file(tmp_path, "cols.h5", mat, chunks=(3000, 8))
    idx, genes = np.arange(0, 3000, 2), np.r_[0:20, 30:33, 50:90]
    budget = 3000 * 24 * 4  # three chunks
    with h5py.File(path, "r") as h:
        reads = plan_reads(Layout.of(h[GCTX_MATRIX]), idx, genes, budget_bytes=budget).reads
    assert len(reads) == 4 and all(isinstance(r.rows, slice) for r in reads)  # chunks 0-2, 3-4, 6-8, 9-11
    monkeypatch.setattr("datasets.l1000.READ_BUDGET_BYTES", budget)
    np.testing.assert_array_equal(_read_gctx_selection(path, idx, genes, 10_000), mat[idx][:, genes])
