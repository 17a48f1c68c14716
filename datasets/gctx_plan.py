"""Which parts of a GCTX matrix to read for a (samples x genes) selection, planned from its HDF5 chunk layout.

The matrix ``/0/DATA/0/matrix`` is stored [samples, genes] in chunks (GEO's files: 1000 samples x 262 genes,
cmapPy/cmapM's chunking; a contiguous matrix counts as chunks of one sample x all genes). HDF5 reads a
chunk either whole (always when the chunk is filtered, e.g. gzip: it must be inflated; an unfiltered one
in one request when the chunk cache holds it) or, for an unfiltered chunk without a cache, only the selected
bytes, one request per selected sample row within the chunk (the reader reads by rows without a cache and
whole chunks through a cache of one chunk). So the plan:

- genes: only the gene chunks holding a wanted gene; consecutive ones form a *run* read as one column span
  (the span from the run's first to its last wanted gene: a few genes between landmarks come along, no
  extra request, since a request never crosses a chunk);
- samples: grouped by sample chunk; each touched sample chunk is read either as its *rows* (a fancy
  selection of the wanted samples: per wanted sample, one request per touched gene chunk) or as a *block*
  (the whole chunks, one request each), whichever pulls fewer bytes. A request costs its bytes plus one
  page (:data:`PAGE`): the operating system reads whole pages, so a 1 KB request pulls about 1 KB + one
  page from the disk. A filtered chunk is always pulled whole (its stored, compressed size). Blocks are
  read a row of sample chunks at a time, cut across the genes where that row is over the memory budget
  (chunks of every sample x a few genes: the row is the whole matrix).

:func:`plan_reads` returns the reads with the bytes each pulls, so a reader can report progress by bytes
and a benchmark can compare the bytes read with the bytes needed.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np

PAGE = mmap.PAGESIZE  # bytes the OS reads for the smallest request


@dataclass(frozen=True)
class Layout:
    """How the matrix is stored: shape [samples, genes], chunk shape, item size, and whether chunks are
    filtered (compressed: read whole) with their mean stored size as a fraction of the raw size."""

    shape: tuple[int, int]
    chunks: tuple[int, int]
    itemsize: int
    filtered: bool = False
    stored_fraction: float = 1.0

    @classmethod
    def of(cls, dset) -> Layout:
        """The layout of an h5py dataset (contiguous: chunks of one sample row)."""
        shape = (int(dset.shape[0]), int(dset.shape[1]))
        if dset.chunks is None:
            return cls(shape, (1, max(shape[1], 1)), dset.dtype.itemsize)
        chunks = (int(dset.chunks[0]), int(dset.chunks[1]))
        filtered = dset.id.get_create_plist().get_nfilters() > 0
        fraction = 1.0
        if filtered:
            n_chunks = dset.id.get_num_chunks()
            raw = n_chunks * chunks[0] * chunks[1] * dset.dtype.itemsize
            fraction = dset.id.get_storage_size() / raw if raw else 1.0
        return cls(shape, chunks, dset.dtype.itemsize, filtered, fraction)

    @property
    def chunk_bytes(self) -> int:
        """Bytes one chunk pulls when read whole (edge chunks are stored full size)."""
        return int(round(self.chunks[0] * self.chunks[1] * self.itemsize * self.stored_fraction))


@dataclass(frozen=True)
class Read:
    """One HDF5 read: ``rows`` (a slice of whole sample chunks, or the wanted sample indices themselves) x
    the gene slice ``genes``. It returns the wanted samples ``samples[s0:s1]`` and the wanted genes
    ``genes_wanted[g0:g1]`` (positions in the plan's sorted unique samples and genes)."""

    rows: slice | np.ndarray
    genes: slice
    s0: int
    s1: int
    g0: int
    g1: int
    nbytes: int  # bytes this read pulls from the file (estimate, see the module docstring)


@dataclass(frozen=True)
class Plan:
    """The reads of a selection, in file order, and what they cost."""

    samples: np.ndarray  # sorted unique wanted sample indices
    genes: np.ndarray  # sorted unique wanted gene indices
    reads: list[Read]
    needed_bytes: int  # the wanted cells only
    chunks_touched: int  # chunks holding a wanted cell
    whole_chunks: int  # sample chunks pulled whole (filtered: all; the rest pulled by rows)

    @property
    def nbytes(self) -> int:
        """Bytes the plan pulls from the file (estimate)."""
        return sum(r.nbytes for r in self.reads)


def gene_runs(genes: np.ndarray, layout: Layout) -> list[tuple[int, int, int]]:
    """Runs of consecutive gene chunks holding wanted genes: (g0, g1, n_chunks), ``genes[g0:g1]`` being the
    run's wanted genes."""
    gj = genes // layout.chunks[1]
    cuts = np.flatnonzero(np.diff(gj) > 1) + 1  # a gap of at least one chunk holding no wanted gene
    bounds = [0, *cuts.tolist(), len(genes)]
    return [(a, b, int(gj[b - 1] - gj[a] + 1)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def plan_reads(layout: Layout, samples: np.ndarray, genes: np.ndarray, max_rows: int = 10_000,
               budget_bytes: int = 64 * 2**20) -> Plan:
    """Reads of ``samples`` x ``genes`` (sorted unique indices) from a matrix stored as ``layout``.

    A read returns at most ``max_rows`` samples, and holds in memory and pulls from the file at most about
    ``budget_bytes`` (at least one chunk), so memory stays bounded and progress moves.
    """
    samples = np.asarray(samples, dtype=np.int64)
    genes = np.asarray(genes, dtype=np.int64)
    needed = len(samples) * len(genes) * layout.itemsize
    if len(samples) == 0 or len(genes) == 0:
        return Plan(samples, genes, [], needed, 0, 0)
    runs = gene_runs(genes, layout)
    n_gchunks = sum(n for _, _, n in runs)
    width = sum(int(genes[g1 - 1] - genes[g0] + 1) for g0, g1, _ in runs)  # genes read per wanted sample
    row_cost = width * layout.itemsize + n_gchunks * PAGE  # one wanted sample, read by rows
    block_cost = n_gchunks * (layout.chunk_bytes + PAGE)  # one sample chunk, read whole
    ids, starts, counts = np.unique(samples // layout.chunks[0], return_index=True, return_counts=True)
    whole = np.full(len(ids), True) if layout.filtered else block_cost < counts * row_cost
    reads: list[Read] = []
    costs = (width * layout.itemsize, row_cost, block_cost)
    for k, end in _batches(layout, ids, counts, whole, costs, max_rows, budget_bytes):
        batch_runs = runs
        if whole[k] and not layout.filtered:  # a slice of whole chunks: at most the budget per read
            per = budget_bytes // ((end - k) * layout.chunks[0] * layout.chunks[1] * layout.itemsize)
            batch_runs = [r for run in runs for r in _cut_run(genes, run, layout.chunks[1], max(per, 1))]
        reads += _batch_reads(layout, samples, genes, batch_runs, ids[k:end], int(starts[k]),
                              int(starts[end - 1] + counts[end - 1]), bool(whole[k]))
    return Plan(samples, genes, reads, needed, len(ids) * n_gchunks, int(whole.sum()))


def _cut_run(genes: np.ndarray, run: tuple[int, int, int], width: int,
             per: int) -> list[tuple[int, int, int]]:
    """A run of gene chunks cut into runs of at most ``per`` chunks: whole chunks are read a row of sample
    chunks at a time, and where a chunk holds many samples (every sample of a few genes) a row of them can be
    the whole matrix; cut, a read holds at most the budget (at least one chunk)."""
    g0, g1, n_ch = run
    if n_ch <= per:
        return [run]
    first = int(genes[g0]) // width
    bounds = np.searchsorted(genes[g0:g1], np.arange(first, first + n_ch + per, per) * width) + g0
    return [(int(a), int(b), int(genes[b - 1]) // width - int(genes[a]) // width + 1)
            for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def _batches(layout: Layout, ids: np.ndarray, counts: np.ndarray, whole: np.ndarray,
             costs: tuple[int, int, int], max_rows: int, budget_bytes: int) -> list[tuple[int, int]]:
    """Consecutive touched sample chunks ``ids[k:end]`` read the same way, within the row bound and, in
    memory held and in bytes pulled, the budget (so progress moves); chunks read as blocks must also be
    adjacent in the file (a slice covers them). ``costs``: bytes held per row, bytes pulled per wanted
    row (by rows) and per sample chunk (whole)."""
    held, row_cost, block_cost = costs
    out, k = [], 0
    while k < len(ids):
        block = bool(whole[k]) and not layout.filtered
        rows = pulled = 0
        end = k
        while end < len(ids) and whole[end] == whole[k]:
            add = layout.chunks[0] if block else int(counts[end])
            more = block_cost if whole[end] else add * row_cost
            over = rows + add > max_rows or max((rows + add) * held, pulled + more) > budget_bytes
            if end > k and (over or (block and ids[end] != ids[end - 1] + 1)):
                break
            rows, pulled, end = rows + add, pulled + more, end + 1
        out.append((k, end))
        k = end
    return out


def _batch_reads(layout: Layout, samples: np.ndarray, genes: np.ndarray, runs: list[tuple[int, int, int]],
                 ids: np.ndarray, s0: int, s1: int, whole: bool) -> list[Read]:
    """One read per gene run of the sample chunks ``ids`` (wanted samples ``samples[s0:s1]``): whole
    unfiltered chunks as a slice of chunk rows x the chunk-aligned gene span, else the wanted rows x the
    run's gene span (a filtered chunk is pulled whole either way)."""
    cs, cg = layout.chunks
    block = whole and not layout.filtered
    rows = slice(int(ids[0]) * cs, min((int(ids[-1]) + 1) * cs, layout.shape[0])) if block else samples[s0:s1]
    reads = []
    for g0, g1, n_ch in runs:
        if block:
            lo = int(genes[g0]) // cg * cg
            span = slice(lo, min(lo + n_ch * cg, layout.shape[1]))
        else:
            span = slice(int(genes[g0]), int(genes[g1 - 1]) + 1)
        if whole:
            cost = len(ids) * n_ch * (layout.chunk_bytes + PAGE)
        else:
            cost = (s1 - s0) * ((span.stop - span.start) * layout.itemsize + n_ch * PAGE)
        reads.append(Read(rows, span, s0, s1, g0, g1, int(cost)))
    return reads
