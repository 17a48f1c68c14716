"""LINCS L1000 readers: GCT 1.2/1.3 text and GCTX 1.0 (HDF5), CMap metadata, drug/control selection.

Conventions (documented in docs/real_data.md):
- ``-666`` is the CMap null. In metadata it and the tokens of :data:`NA_TOKENS` (``NA``, ``na``, ``NULL``,
  ``None``, ``#N/A``, ``NaN``, empty, ...; cmapPy's list) become missing (NaN/None); metadata values are
  stripped of surrounding blanks. In the expression matrix a value of exactly -666 and those tokens are
  also missing (real L1000 values never equal -666), and a missing or non-finite value in the *selected*
  profiles is an error naming the sample and gene.
- GCT text is tab-separated with optional double quotes (removed, a quoted field may hold a tab), as cmapPy
  reads it; GCT 1.2's ``Description`` column gives the gene symbols.
- Genes: the gene id is ``pr_gene_id`` (Entrez) when present, else the row id. Only landmark rows
  (``pr_is_lmark`` / ``is_lm`` / ``pr_is_lm``) are kept unless ``all_genes``; without a landmark column all
  rows are kept. Several probes of one Entrez ID (``all_genes`` only): the first is kept (counted); two
  landmark rows of one Entrez ID are an error; rows without one are left out (counted, named).
- Samples: vehicle controls ``pert_type == ctl_vehicle``, treatments ``pert_type == trt_cp`` with the given
  ``pert_iname`` at ``pert_time`` hours (or ``pert_itime`` such as ``"24 h"``). Dose in uM from
  ``pert_dose`` + ``pert_dose_unit`` or from ``pert_idose`` (``"10.0 um"``, ``"500 nM"``). A unit is never
  assumed: a selected sample whose dose or time has no unit (column absent, value empty, ``"10"``) or an
  unknown one is an error naming the file and the column or sample, unless ``dose_unit`` / ``time_unit``
  states the unit of values written without one (``build --dose-unit uM``).
- Names: a selected sample without ``cell_id`` (or, taking every drug, a ``trt_cp`` without ``pert_iname``)
  is an error; ``cell_id`` spellings of one cell line (``mcf7``, ``MCF7``) are refused, or merged with
  ``merge_cell_spellings`` (datasets.cell_names).
- Dose rule ``"highest"``: per (drug, cell line) the highest dose measured, all its replicates (within 1%
  of it; the paper's rule). A numeric dose keeps the treatments at exactly it, else those within 1% of it,
  which must share one measured dose (two different ones are an error); the measured dose is recorded. A
  selected treatment whose dose does not parse or is missing is an error naming the sample, column and
  value.
- Controls of a cell line: its vehicle controls at the time point on the plates of its selected treatments
  (plate = ``rna_plate``, else ``det_plate``, else the inst id up to the first ``:``); if none share a plate,
  all its vehicle controls at that time. Ordered round-robin over plates (each plate's by id), then capped:
  ``max_controls="auto"`` keeps as many as the cell line's largest drug replicate count, an int keeps that
  many, ``"all"`` (default) or ``None`` keeps all. Each selected profile's plate is kept
  (``L1000Profiles.plates``) for datasets.pairs' same-plate pairing.
- Big GCTX files are read by the chunk plan of :mod:`datasets.gctx_plan`: only the HDF5 chunks holding wanted
  (sample, gene) cells, each sample chunk by its wanted rows or whole, whichever pulls fewer bytes (reads of
  <= 10,000 samples and a memory budget); never the whole matrix.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from datasets.cell_names import cell_line_key, resolve_spellings
from datasets.cube import CubeError
from datasets.files import plural
from datasets.gctx_plan import Layout, plan_reads
from datasets.text_tables import decoded_text, read_text_table

CMAP_NULL = "-666"
NA_TOKENS = frozenset({"", CMAP_NULL, "-666.0", "#N/A", "N/A", "NA", "#NA", "NULL", "NaN", "-NaN", "nan",
                       "-nan", "#N/A!", "na", "None", "#VALUE!"})  # cmapPy's nan_values, -666 and empty
GCTX_MATRIX = "/0/DATA/0/matrix"
GCTX_ROW_IDS = "/0/META/ROW/id"
GCTX_COL_IDS = "/0/META/COL/id"
LANDMARK_COLUMNS = ("pr_is_lmark", "is_lm", "pr_is_lm")
READ_CHUNK_SAMPLES = 10_000
READ_BUDGET_BYTES = 64 * 2**20  # memory held by one read; progress moves after each


class L1000Error(CubeError):
    """Bad L1000 input (file, format, metadata or selection); the message names the file/field/value."""


# ----------------------------------------------------------------------------------------------- sources
@dataclass
class L1000Source:
    """An opened GCT/GCTX: ids and metadata in memory, the matrix read lazily (GCTX) or held (GCT)."""

    path: Path
    fmt: str  # "gct" | "gctx"
    sample_ids: np.ndarray  # [n_samples] str
    row_ids: np.ndarray  # [n_rows] str
    row_meta: pd.DataFrame  # index = row id, str/object columns, CMap null -> NaN
    col_meta: pd.DataFrame  # index = sample id
    meta_path: Path | None = None  # inst_info file when the column metadata came from one
    _matrix: np.ndarray | None = field(default=None, repr=False)  # GCT only: [n_samples, n_rows] float32

    @property
    def n_samples(self) -> int:
        return len(self.sample_ids)

    def read(self, sample_idx: np.ndarray, row_idx: np.ndarray, chunk_samples: int = READ_CHUNK_SAMPLES,
             progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Profiles [len(sample_idx), len(row_idx)] float32, -666 -> NaN, in the order of ``sample_idx``;
        ``progress(bytes_read, bytes_total)`` after each read (bytes pulled from the file, as planned)."""
        sample_idx = np.asarray(sample_idx, dtype=np.int64)
        row_idx = np.asarray(row_idx, dtype=np.int64)
        if self._matrix is not None:
            out = self._matrix[np.ix_(sample_idx, row_idx)].astype(np.float32)
            if progress is not None:
                progress(out.nbytes, out.nbytes)
        else:
            out = _read_gctx_selection(self.path, sample_idx, row_idx, chunk_samples, progress)
        out[out == -666.0] = np.nan
        return out


def _decode(arr: np.ndarray) -> np.ndarray:
    """HDF5 bytes/str array -> numpy object array of str (utf-8, latin-1 fallback, e.g. b'10 \\xb5M')."""
    if arr.dtype.kind == "S":  # vectorized; where a value is not utf-8, each distinct value on its own
        try:
            dec = np.char.decode(arr, "utf-8")
        except UnicodeDecodeError:  # not the whole field as latin-1: a utf-8 b'\xc2\xb5M' would be 'Â\xb5M'
            uniq, inv = np.unique(arr, return_inverse=True)
            dec = np.asarray([_decode_one(v) for v in uniq.tolist()], dtype=object)[inv.reshape(-1)]
            dec = dec.reshape(arr.shape).astype(str)
        return np.char.strip(dec).astype(object)
    if arr.dtype.kind == "O":
        vals = arr.tolist()
        out = []
        for v in vals:
            out.append((_decode_one(v) if isinstance(v, bytes) else str(v)).strip())
        return np.array(out, dtype=object)
    if arr.dtype.kind == "U":
        return arr.astype(object)
    return np.array([_num_to_str(v) for v in arr.tolist()], dtype=object)


def _decode_one(v: bytes) -> str:
    """One value: utf-8, else latin-1."""
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError:
        return v.decode("latin-1")


def _num_to_str(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _clean_meta(df: pd.DataFrame) -> pd.DataFrame:
    """Strings stripped of surrounding blanks, :data:`NA_TOKENS` (CMap null, NA, empty, ...) -> NaN."""
    df = df.astype(object).map(lambda v: v.strip() if isinstance(v, str) else v)
    return df.where(~df.isin(NA_TOKENS), np.nan)


def _check_unique(ids: np.ndarray, what: str, path: Path) -> None:
    s = pd.Series(ids)
    dup = s[s.duplicated()]
    if len(dup):
        raise L1000Error(f"{path}: duplicate {what} id {dup.iloc[0]!r} "
                         f"({dup.nunique()} duplicated {what} ids)")


def detect_format(path: Path) -> str:
    """'gctx' (HDF5 signature) or 'gct' (text starting with #1.2/#1.3), else L1000Error."""
    if not path.exists():
        raise L1000Error(f"{path}: file not found")
    if not path.is_file():
        raise L1000Error(f"{path}: not a file")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == b"\x89HDF\r\n\x1a\n":
        return "gctx"
    if head.startswith(b"#1.2") or head.startswith(b"#1.3"):
        return "gct"
    if head.startswith(b"\x1f\x8b"):
        raise L1000Error(f"{path}: gzip-compressed; gunzip the GCT/GCTX file first (gunzip -k {path.name})")
    raise L1000Error(f"{path}: not a GCT or GCTX file (expected '#1.2'/'#1.3' text header or an HDF5 "
                     f"signature, found {head[:8]!r})")


def read_gct(path: str | Path) -> L1000Source:
    """Read a GCT 1.2 or 1.3 text file (genes x samples) fully into memory."""
    path = Path(path)
    detect_format(path)
    with io.StringIO(decoded_text(path, "GCT file"), newline="") as fh:  # UTF-8, else Latin-1 per line
        version = fh.readline().strip()
        dims_line = fh.readline().rstrip("\n\r").split("\t")
        try:
            dims = [int(x) for x in dims_line if x.strip() != ""]
        except ValueError as e:
            raise L1000Error(f"{path}: line 2 must hold the dimensions, found {dims_line!r}") from e
        if version == "#1.2":
            if len(dims) < 2:
                raise L1000Error(f"{path}: GCT 1.2 line 2 needs '<rows> <columns>', found {dims_line!r}")
            n_rows, n_cols, n_rmeta, n_cmeta = dims[0], dims[1], 1, 0
        else:
            if len(dims) < 4:
                raise L1000Error(f"{path}: GCT 1.3 line 2 needs '<rows> <cols> <row-meta> <col-meta>', "
                                 f"found {dims_line!r}")
            n_rows, n_cols, n_rmeta, n_cmeta = dims[:4]
        rows, starts = [], []  # non-blank records and the file line each begins on (after lines 1-2)
        try:
            reader, prev = csv.reader(fh, delimiter="\t", quotechar='"'), 0
            for r in reader:
                if any(x.strip() for x in r):
                    rows.append(r)
                    starts.append(prev + 3)
                prev = reader.line_num
        except csv.Error as e:
            raise L1000Error(f"{path}: cannot parse as tab-separated GCT text ({e})") from e
    if not rows:
        raise L1000Error(f"{path}: no header line after the dimensions (truncated file)")
    header, fields = [h.strip() for h in rows[0]], rows[1:]
    if len(header) != 1 + n_rmeta + n_cols:
        raise L1000Error(f"{path}: header has {len(header) - 1 - n_rmeta} sample columns but line 2 "
                         f"declares {n_cols}")
    if len(fields) != n_cmeta + n_rows:
        raise L1000Error(f"{path}: found {len(fields) - n_cmeta} data rows but line 2 declares {n_rows} "
                         f"(truncated or malformed file)")
    width = len(header)
    for i, f in enumerate(fields):
        if len(f) != width:
            raise L1000Error(f"{path}: line {starts[i + 1]} has {len(f)} fields, expected {width} "
                             f"(1 id + {n_rmeta} row metadata + {n_cols} samples)")
    sample_ids = np.array([h.strip() for h in header[1 + n_rmeta:]], dtype=object)
    cmeta_rows = fields[:n_cmeta]
    data_rows = fields[n_cmeta:]
    row_ids = np.array([f[0].strip() for f in data_rows], dtype=object)
    _check_unique(sample_ids, "sample", path)
    _check_unique(row_ids, "gene (row)", path)
    if version == "#1.2":
        row_meta = pd.DataFrame({"Description": [f[1] for f in data_rows]}, index=row_ids)
    else:
        row_meta = pd.DataFrame([f[1:1 + n_rmeta] for f in data_rows], index=row_ids,
                                columns=header[1:1 + n_rmeta])
    col_meta = pd.DataFrame({r[0].strip(): r[1 + n_rmeta:] for r in cmeta_rows}, index=sample_ids)
    gene_ids = (row_meta["pr_gene_id"].to_numpy(dtype=object) if "pr_gene_id" in row_meta.columns
                else row_ids)
    mat = _gct_values([f[1 + n_rmeta:] for f in data_rows], path, row_ids, sample_ids, gene_ids)
    return L1000Source(path=path, fmt="gct", sample_ids=sample_ids, row_ids=row_ids,
                       row_meta=_clean_meta(row_meta), col_meta=_clean_meta(col_meta),
                       _matrix=np.ascontiguousarray(mat.T.astype(np.float32)))


def gene_name(gene_id: object, row_id: object) -> str:
    """A gene as errors name it: its gene id (Entrez) and, where it differs, the file's row id."""
    g, r = str(gene_id).strip(), str(row_id).strip()
    return f"gene {g!r}" if g == r or g in NA_TOKENS else f"gene {g!r} (row {r!r})"


def _gct_values(rows: list[list[str]], path: Path, row_ids: np.ndarray, sample_ids: np.ndarray,
                gene_ids: np.ndarray) -> np.ndarray:
    """GCT matrix fields -> float64 [rows, samples], :data:`NA_TOKENS` -> NaN; other text is an error naming
    the gene (its id and row id) and sample."""
    try:
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(sample_ids))
    except ValueError:
        pass
    out = np.empty((len(rows), len(sample_ids)))
    for i, r in enumerate(rows):
        for j, v in enumerate(r):
            try:
                out[i, j] = np.nan if v.strip() in NA_TOKENS else float(v)
            except ValueError:
                raise L1000Error(f"{path}: non-numeric expression value {v!r} for "
                                 f"{gene_name(gene_ids[i], row_ids[i])}, sample {sample_ids[j]!r}; fix the "
                                 f"value (write a missing value as empty, NA, NaN or -666)") from None
    return out


def read_gctx_meta(path: str | Path) -> L1000Source:
    """Open a GCTX 1.0 file: ids and embedded metadata only (the matrix stays on disk)."""
    import h5py

    path = Path(path)
    detect_format(path)
    try:
        with h5py.File(path, "r") as f:
            for key in (GCTX_MATRIX, GCTX_ROW_IDS, GCTX_COL_IDS):
                if key not in f:
                    raise L1000Error(f"{path}: not a GCTX 1.0 file, dataset {key} is missing")
                if not isinstance(f[key], h5py.Dataset):
                    raise L1000Error(f"{path}: not a GCTX 1.0 file, {key} is an HDF5 "
                                     f"{type(f[key]).__name__.lower()}, not a dataset")
            shape = f[GCTX_MATRIX].shape
            sample_ids = _decode(f[GCTX_COL_IDS][()])
            row_ids = _decode(f[GCTX_ROW_IDS][()])
            if len(shape) != 2 or shape != (len(sample_ids), len(row_ids)):
                raise L1000Error(f"{path}: {GCTX_MATRIX} has shape {shape} but there are {len(sample_ids)} "
                                 f"column (sample) ids and {len(row_ids)} row (gene) ids; expected "
                                 f"({len(sample_ids)}, {len(row_ids)})")
            metas = []
            for grp, ids in (("/0/META/ROW", row_ids), ("/0/META/COL", sample_ids)):
                cols = {}
                for name, dset in f[grp].items():
                    if name == "id" or not hasattr(dset, "shape"):
                        continue
                    if dset.shape != (len(ids),):
                        raise L1000Error(f"{path}: metadata {grp}/{name} has shape {dset.shape}, expected "
                                         f"({len(ids)},) to match the ids")
                    cols[name] = _decode(dset[()])
                metas.append(pd.DataFrame(cols, index=ids))
    except OSError as e:
        raise L1000Error(f"{path}: cannot read HDF5 (truncated or corrupt GCTX?): {e}") from e
    _check_unique(sample_ids, "sample", path)
    _check_unique(row_ids, "gene (row)", path)
    return L1000Source(path=path, fmt="gctx", sample_ids=sample_ids, row_ids=row_ids,
                       row_meta=_clean_meta(metas[0]), col_meta=_clean_meta(metas[1]))


def read_table_meta(path: Path, key: str, ids: np.ndarray, what: str) -> pd.DataFrame:
    """A tab-separated metadata file (inst_info / gene_info) keyed by ``key``, reindexed to ``ids``."""
    if not path.exists():
        raise L1000Error(f"{path}: file not found")
    try:
        df = read_text_table(path, what, sep="\t", dtype=str, keep_default_na=False, low_memory=False)
    except CubeError as e:  # not UTF-8 nor Latin-1 text: one message naming the line, this reader's type
        raise L1000Error(str(e)) from None
    except Exception as e:  # pandas raises many types for malformed text
        raise L1000Error(f"{path}: cannot parse as a tab-separated {what} file: {e}") from e
    if key not in df.columns and len(df.columns) == 1:
        head = str(df.columns[0])
        seps = [name for c, name in ((",", "commas"), (";", "semicolons")) if key in head.split(c)]
        if seps:
            raise L1000Error(f"{path}: not tab-separated: its header is one field holding {seps[0]} "
                             f"({head[:60]!r}{'...' if len(head) > 60 else ''}); {what} files are "
                             f"tab-separated text (as GEO publishes it): save it with tabs between the "
                             f"columns")
    if key not in df.columns:
        raise L1000Error(f"{path}: required column {key!r} missing from {what} (columns: "
                         f"{', '.join(df.columns[:12])})")
    df[key] = df[key].str.strip()
    dup = df[key][df[key].duplicated()]
    if len(dup):
        raise L1000Error(f"{path}: duplicate {key} {dup.iloc[0]!r} in {what}")
    df = df.set_index(key)
    missing = pd.Index(ids).difference(df.index)
    if len(missing):
        raise L1000Error(f"{path}: {len(missing)} of {len(ids)} ids of the matrix have no {what} row "
                         f"(e.g. {missing[0]!r}); metadata does not match the matrix")
    return _clean_meta(df.reindex(pd.Index(ids)))


def open_l1000(path: str | Path, inst_info: str | Path | None = None,
               gene_info: str | Path | None = None) -> L1000Source:
    """Open a GCT/GCTX; ``inst_info`` (by inst_id) / ``gene_info`` (by pr_gene_id) replace embedded meta."""
    path = Path(path)
    fmt = detect_format(path)
    src = read_gct(path) if fmt == "gct" else read_gctx_meta(path)
    if inst_info is not None:
        src.meta_path = Path(inst_info)
        src.col_meta = read_table_meta(Path(inst_info), "inst_id", src.sample_ids, "inst_info")
    if gene_info is not None:
        gi = read_table_meta(Path(gene_info), "pr_gene_id", src.row_ids, "gene_info")
        gi["pr_gene_id"] = gi.index
        src.row_meta = gi
    return src


def _read_gctx_selection(path: Path, sample_idx: np.ndarray, row_idx: np.ndarray, chunk_samples: int,
                         progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """[samples, rows] by the chunk plan of :mod:`datasets.gctx_plan`: only the chunks holding wanted cells,
    each sample chunk by rows or whole, whichever pulls fewer bytes. A read by rows opens the matrix without
    a chunk cache, so HDF5 reads an unfiltered chunk's selected rows only (a filtered one is inflated once
    per read; no two reads share a chunk); a read of whole chunks with a cache of one (:func:`_matrix`)."""
    import h5py

    out = np.empty((len(sample_idx), len(row_idx)), dtype=np.float32)
    if len(sample_idx) == 0 or len(row_idx) == 0:
        return out
    samples, s_inv = np.unique(sample_idx, return_inverse=True)
    genes, g_inv = np.unique(row_idx, return_inverse=True)
    try:
        with h5py.File(path, "r", rdcc_nbytes=0) as f:
            dset = f[GCTX_MATRIX]
            layout = Layout.of(dset)
            dset.id.close()
            plan = plan_reads(layout, samples, genes, max_rows=chunk_samples, budget_bytes=READ_BUDGET_BYTES)
            same = np.array_equal(samples, sample_idx) and np.array_equal(genes, row_idx)
            held = out if same else np.empty((len(samples), len(genes)), dtype=np.float32)
            done = 0
            if progress is not None:
                progress(0, plan.nbytes)
            for r in plan.reads:
                dset = _matrix(f, layout, isinstance(r.rows, slice))
                block = dset[r.rows, r.genes]
                dset.id.close()
                if isinstance(r.rows, slice):  # whole chunks: keep the wanted samples
                    block = block[samples[r.s0:r.s1] - r.rows.start]
                held[r.s0:r.s1, r.g0:r.g1] = block[:, genes[r.g0:r.g1] - r.genes.start]
                done += r.nbytes
                if progress is not None:
                    progress(done, plan.nbytes)
    except OSError as e:
        raise L1000Error(f"{path}: cannot read {GCTX_MATRIX} (truncated or corrupt GCTX?): {e}") from e
    if held is not out:
        out[:] = held[s_inv][:, g_inv]
    return out


def _matrix(f, layout: Layout, whole: bool):
    """The matrix of the open GCTX ``f`` for one read: with a chunk cache of one chunk for whole chunks, else
    none. Without a cache HDF5 reads an unfiltered chunk one sample row at a time even when the read takes
    it whole (a chunk of 20,000 samples x 4 genes: 20,000 requests of 16 bytes, not one of 320 KB); with
    one, it reads every chunk the read touches whole, rows or not. The open handles of a dataset share one
    cache, so the caller closes each before opening the next."""
    import h5py

    dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    nbytes = layout.chunks[0] * layout.chunks[1] * layout.itemsize if whole else 0
    dapl.set_chunk_cache(101, nbytes, 1.0)
    return h5py.Dataset(h5py.h5d.open(f.id, GCTX_MATRIX.encode(), dapl))


# -------------------------------------------------------------------------------------------------- genes
@dataclass(frozen=True)
class GeneSelection:
    row_idx: np.ndarray  # [G] int, rows of the source
    entrez: np.ndarray  # [G] str
    symbols: np.ndarray  # [G] str ("" when unknown)
    landmark_column: str | None  # the column used, None when all rows were kept
    n_rows: int = -1  # rows considered (the landmark rows, or every row): what "of N L1000 genes" counts
    no_id: tuple[str, ...] = ()  # row ids of those rows without a gene id (left out)
    repeated: int = 0  # rows left out as a later probe of a gene id already kept (all rows only)

    @property
    def note(self) -> str:
        """What the selection left out of the rows it considered, "" when nothing."""
        parts = []
        if self.no_id:
            parts.append(f"{len(self.no_id)} without an Entrez id (pr_gene_id empty or -666, e.g. row "
                         f"{self.no_id[0]!r}) left out")
        if self.repeated:
            parts.append(f"{self.repeated} later probes of a gene id already kept left out")
        return "; ".join(parts)


_TRUE = {"1", "1.0", "true", "t", "y", "yes"}
_FALSE = {"0", "0.0", "false", "f", "n", "no", "nan", "none", ""}  # nan/none: missing (-666 read as NaN)


def _truthy(v: object) -> bool:
    return str(v).strip().lower() in _TRUE


def select_genes(src: L1000Source, all_genes: bool = False) -> GeneSelection:
    """Landmark rows (or all) with Entrez IDs (``pr_gene_id`` else row id) and symbols."""
    rm = src.row_meta
    lm_col = next((c for c in LANDMARK_COLUMNS if c in rm.columns), None)
    keep = np.ones(len(src.row_ids), dtype=bool)
    if not all_genes and lm_col is not None:
        flags = rm[lm_col].map(lambda v: str(v).strip().lower())
        odd = np.flatnonzero(~flags.isin(_TRUE | _FALSE).to_numpy())
        if len(odd):
            i = int(odd[0])
            raise L1000Error(f"{src.path}: {lm_col} {rm[lm_col].iloc[i]!r} (row {str(src.row_ids[i])!r}; "
                             f"{plural(len(odd), 'row')} in all) is neither a yes (1, Y, true) nor a no (0, "
                             f"N, false): whether the gene is a landmark is unknown; fix the flag (or "
                             f"--gene-info), or take every row with --all-genes")
        keep = flags.isin(_TRUE).to_numpy(dtype=bool)
        if not keep.any():
            raise L1000Error(f"{src.path}: no landmark genes ({lm_col} is never 1); use --all-genes")
    ent = rm["pr_gene_id"] if "pr_gene_id" in rm.columns else pd.Series(src.row_ids, index=rm.index)
    ent = ent.map(lambda v: "" if pd.isna(v) else _num_to_str(_maybe_num(v))).to_numpy(dtype=object)
    sym_col = next((c for c in ("pr_gene_symbol", "gene_symbol", "symbol", "Description") if c in rm.columns),
                   None)
    sym = (rm[sym_col].fillna("").astype(str).to_numpy(dtype=object) if sym_col
           else np.array([""] * len(ent), dtype=object))
    no_id = np.flatnonzero(keep & (ent == ""))
    idx = np.flatnonzero(keep & (ent != ""))
    if not len(idx) and len(no_id):
        raise L1000Error(f"{src.path}: none of the {plural(int(keep.sum()), 'row')} considered "
                         f"({f'{lm_col} 1' if lm_col and not all_genes else 'every row'}) has a gene id "
                         f"(pr_gene_id empty or -666, e.g. row {str(src.row_ids[no_id[0]])!r}); fill in "
                         f"pr_gene_id (Entrez), or give --gene-info")
    _, first = np.unique(ent[idx], return_index=True)  # first probe per Entrez ID
    repeated = len(idx) - len(first)
    if repeated and not all_genes and lm_col is not None:
        # one row per landmark gene: a repeated id is a mislabelled row, not a second probe (DESIGN.md 8)
        dup = pd.Series(ent[idx])
        e = str(dup[dup.duplicated()].iloc[0])
        rows = [str(src.row_ids[i]) for i in idx[ent[idx] == e]]
        raise L1000Error(f"{src.path}: {plural(repeated, 'landmark row')} ({lm_col} 1) "
                         f"{'repeats' if repeated == 1 else 'repeat'} the Entrez id of "
                         f"another, e.g. pr_gene_id {e!r} on rows {', '.join(map(repr, rows))}; each "
                         f"landmark gene has one row: fix the pr_gene_id (or --gene-info) of those rows")
    idx = idx[np.sort(first)]
    return GeneSelection(row_idx=idx, entrez=ent[idx].astype(str), symbols=sym[idx].astype(str),
                         landmark_column=None if all_genes else lm_col, n_rows=int(keep.sum()),
                         no_id=tuple(str(src.row_ids[i]) for i in no_id), repeated=int(repeated))


def _maybe_num(v: object) -> object:
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


# ----------------------------------------------------------------------------------------- sample choice
_UNIT_TO_UM = {"um": 1.0, "µm": 1.0, "μm": 1.0, "micromolar": 1.0, "nm": 1e-3, "mm": 1e3, "pm": 1e-6,
               "m": 1e6}
_UNIT_TO_H = {"h": 1.0, "hr": 1.0, "hrs": 1.0, "hour": 1.0, "hours": 1.0, "m": 1 / 60, "min": 1 / 60,
              "d": 24.0, "day": 24.0, "days": 24.0}
_DOSE_RE = re.compile(r"^\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*([^\s\d].*)?$")


@dataclass(frozen=True)
class Quantity:
    """A CMap quantity: a value column with its unit column, or one text column holding both."""

    name: str  # "dose" | "time"
    value: str  # e.g. pert_dose
    unit: str  # e.g. pert_dose_unit
    text: str  # e.g. pert_idose ("10 uM")
    units: dict[str, float]  # unit (lower case) -> factor to the cube's unit
    flag: str  # the build flag that states the unit of values written without one
    example: str
    spelled: str  # the units, as a user writes them


DOSE = Quantity("dose", "pert_dose", "pert_dose_unit", "pert_idose", _UNIT_TO_UM, "--dose-unit", "uM",
                "uM (µM, micromolar), nM, mM, pM, M")
TIME = Quantity("time", "pert_time", "pert_time_unit", "pert_itime", _UNIT_TO_H, "--time-unit", "h",
                "h (hr, hours), min (m), d (days)")


def unit_key(unit: object) -> str:
    """A unit as the unit tables spell it (lower case; a latin-1 or mangled µ read as u)."""
    return str(unit).strip().lower().replace("<b5>", "u").replace("\ufffd", "u")


def _factors(units: pd.Series, table: dict[str, float]) -> np.ndarray:
    """Factor per row; NaN where the unit is missing or unknown (a unit is never guessed)."""
    codes, uniq = pd.factorize(units.astype(object), use_na_sentinel=True)
    per = np.array([table.get(unit_key(u), np.nan) for u in uniq] + [np.nan], dtype=float)
    return per[codes]  # code -1 (missing) -> the NaN appended last


def read_quantity(meta: pd.DataFrame, q: Quantity, unit: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(values in the cube's unit, why) per sample from ``q.value`` + ``q.unit``, else ``q.text``.

    ``unit`` is the unit of values written without one (the unit column absent or empty, a text without
    unit); without it such a value is unknown (NaN), never assumed. ``why`` [n] says, where a value is known
    but its unit is missing or not one of ``q.units``, what is wrong ("" elsewhere).
    """
    n = len(meta)
    out, why = np.full(n, np.nan), np.full(n, "", dtype=object)
    if q.value in meta.columns:
        val = pd.to_numeric(meta[q.value], errors="coerce").to_numpy(dtype=float)
        has_col = q.unit in meta.columns
        u = meta[q.unit].astype(object) if has_col else pd.Series(np.nan, index=meta.index, dtype=object)
        missing = u.isna().to_numpy()
        out = val * _factors(u.where(~missing, unit) if unit else u, q.units)
        for i in np.flatnonzero(~np.isnan(val) & np.isnan(out)):
            if not has_col:
                why[i] = f"column {q.unit!r} missing, so the unit of {q.value} ({val[i]:g}) is unknown"
            elif missing[i]:
                why[i] = f"{q.value} {val[i]:g} has no {q.unit}"
            else:
                why[i] = f"{q.unit} {u.iat[i]!r} is not a unit of {q.name} ({q.spelled})"
    if q.text in meta.columns:
        need = np.flatnonzero(np.isnan(out) & meta[q.text].notna().to_numpy())
        parts = meta[q.text].iloc[need].astype(str).str.extract(_DOSE_RE)
        num = pd.to_numeric(parts[0], errors="coerce").to_numpy(dtype=float)
        tu = parts[1].str.strip().replace("", np.nan)
        got = num * _factors(tu.fillna(unit) if unit else tu, q.units)
        out[need] = got
        for k in np.flatnonzero(~np.isnan(num) & np.isnan(got)):
            text = meta[q.text].iat[need[k]]
            why[need[k]] = (f"{q.text} {text!r} has no unit" if pd.isna(tu.iat[k])
                            else f"{q.text} {text!r}: {tu.iat[k]!r} is not a unit of {q.name} "
                                 f"({q.spelled})")
        why[need[~np.isnan(got)]] = ""
    return out, why


def dose_um(meta: pd.DataFrame, unit: str | None = None) -> np.ndarray:
    """Dose in uM per sample from pert_dose(+unit) or pert_idose; NaN where unknown (read_quantity)."""
    return read_quantity(meta, DOSE, unit)[0]


def time_h(meta: pd.DataFrame, unit: str | None = None) -> np.ndarray:
    """Time point in hours from pert_time (+pert_time_unit) or pert_itime ('24 h'); NaN where unknown."""
    return read_quantity(meta, TIME, unit)[0]


def _refuse_unknown_units(why: np.ndarray, rows: np.ndarray, q: Quantity, src: L1000Source,
                          where: Path) -> None:
    """One error for the first of ``rows`` whose ``q`` has a value but no usable unit."""
    bad = rows[why[rows] != ""]
    if not len(bad):
        return
    first = str(why[bad[0]])
    more = f" (and {len(bad) - 1} more samples)" if len(bad) > 1 else ""
    if first.startswith("column "):
        raise L1000Error(f"{where}: {first} for sample {src.sample_ids[bad[0]]!r}{more}; add the column, or "
                         f"state the unit with {q.flag} {q.example}")
    fix = (f"fill in the unit, or state the unit of {q.name}s written without one with {q.flag} {q.example}"
           if " has no " in first else f"convert those {q.name}s to one of {q.spelled}")
    raise L1000Error(f"{where}: sample {src.sample_ids[bad[0]]!r}: {first}{more}; {fix}")


_SAME_DOSE = 1e-6  # relative: doses closer than this are one dose (10 uM written as 10000 nM)


def _distinct(doses: np.ndarray) -> list[float]:
    """The distinct doses of ``doses`` (ascending), those closer than :data:`_SAME_DOSE` taken as one."""
    out: list[float] = []
    for x in np.sort(doses):
        if not out or not np.isclose(x, out[-1], rtol=_SAME_DOSE, atol=1e-12):
            out.append(float(x))
    return out


def _refuse_unknown_doses(doses: np.ndarray, rows: np.ndarray, meta: pd.DataFrame, src: L1000Source,
                          where: Path) -> None:
    """One error for the first of ``rows`` (selected treatments) whose dose is unknown: a value that does not
    parse as a number (``pert_dose`` 'ten', ``pert_idose`` 'high'), or none at all. Such a sample would
    otherwise fall out of the selection unsaid (a dose is never guessed)."""
    bad = rows[np.isnan(doses[rows])]
    if not len(bad):
        return
    i = bad[0]
    more = f" (and {len(bad) - 1} more samples)" if len(bad) > 1 else ""
    given = [(c, meta[c].iat[i]) for c in (DOSE.value, DOSE.text)
             if c in meta.columns and pd.notna(meta[c].iat[i])]
    if given:
        col, val = given[0]
        raise L1000Error(f"{where}: sample {src.sample_ids[i]!r}: {col} {val!r} is not a number{more}; fix "
                         f"the value (e.g. {DOSE.value} 10 with {DOSE.unit} uM) or drop the sample")
    cols = "/".join(c for c in (DOSE.value, DOSE.text) if c in meta.columns)
    raise L1000Error(f"{where}: sample {src.sample_ids[i]!r}: no dose ({cols} empty or -666){more}; fill it "
                     f"in or drop the sample")


def plates(src: L1000Source) -> np.ndarray:
    """Plate per sample: rna_plate, else det_plate, else the inst id up to the first ':'."""
    meta = src.col_meta
    for col in ("rna_plate", "det_plate"):
        if col in meta.columns:
            p = meta[col]
            fallback = pd.Series([s.split(":", 1)[0] for s in src.sample_ids], index=meta.index)
            return p.fillna(fallback).astype(str).to_numpy(dtype=object)
    return np.array([s.split(":", 1)[0] for s in src.sample_ids], dtype=object)


@dataclass
class DrugSelection:
    """Chosen sample indices: per drug per cell line the treatments, per cell line the controls."""

    treatments: dict[str, dict[str, np.ndarray]]  # drug -> cell line -> sample indices
    doses: dict[str, dict[str, float]]  # drug -> cell line -> dose uM
    controls: dict[str, np.ndarray]  # cell line -> sample indices
    dropped: dict[str, list[str]]  # drug -> cell lines dropped (no vehicle controls)
    control_fallback: list[str]  # cell lines whose controls came from other plates
    merged_spellings: dict[str, str] = field(default_factory=dict)  # cell_id spelling -> the one kept
    # cell line -> its vehicle controls at the time point (before the plate rule and the cap), and those left
    # after the plate rule (before the cap): what the summary's "N of M vehicle profiles kept" counts
    controls_at_time: dict[str, int] = field(default_factory=dict)
    controls_on_plates: dict[str, int] = field(default_factory=dict)
    # pert_inames of trt_cp samples at the time point that differ from a selected drug's only in punctuation
    # (SN-38, SN38): kept apart, named in the build summary; per group [(pert_iname, samples, selected)]
    alike_names: list[list[tuple[str, int, bool]]] = field(default_factory=list)


REQUIRED_COLUMNS = ("pert_type", "pert_iname", "cell_id")


def _cell_ids(src: L1000Source, rows: np.ndarray, where: Path, merge: bool) -> tuple[np.ndarray, dict]:
    """cell_id per sample, spellings of one cell line among ``rows`` (the selected samples) refused or
    merged (datasets.cell_names); a selected sample without a cell_id is an error."""
    cell = src.col_meta["cell_id"].astype(object).to_numpy().copy()
    empty = rows[pd.isna(cell[rows])]
    if len(empty):
        raise L1000Error(f"{where}: {len(empty)} selected samples have no cell_id (e.g. "
                         f"{src.sample_ids[empty[0]]!r}); fill it in or drop those samples")
    cell[pd.isna(cell)] = ""
    cell = cell.astype(str).astype(object)
    cell[rows], merged = resolve_spellings(cell[rows], f"{where}: cell_id", merge)
    return cell, merged


def _refuse_drug_spellings(inames: np.ndarray, drugs: Sequence[str], time: float, where: Path) -> None:
    """One error for a selected drug whose pert_iname is also written otherwise (case or blanks) among the
    trt_cp samples at the time point: only one spelling would be selected (with --drugs the others fall out
    unsaid; without, one drug becomes two conditions)."""
    counts = pd.Series(inames[inames != ""]).value_counts()
    by_key: dict[str, list[str]] = {}
    for n in counts.index:
        by_key.setdefault(re.sub(r"\s+", "", str(n)).lower(), []).append(str(n))
    for d in drugs:
        names = sorted(by_key.get(re.sub(r"\s+", "", str(d)).lower(), []))
        if len(names) > 1:
            spelled = " and ".join(f"{n!r} ({plural(int(counts[n]), 'sample')})" for n in names)
            raise L1000Error(f"{where}: drug {d!r} is written as {spelled} in pert_iname (trt_cp at {time:g} "
                             f"h): one drug under two spellings would be selected in part, or as two drugs; "
                             f"make the pert_iname spellings agree in the file (or --inst-info)")


def alike_drug_names(inames: np.ndarray, drugs: Sequence[str]) -> list[list[tuple[str, int, bool]]]:
    """Groups of ``inames`` (one per trt_cp sample) of one :func:`cell_line_key` (case and punctuation
    ignored) that hold a selected drug: [(pert_iname, samples, selected), ...]. Punctuation can tell compounds
    apart ((+)- and (-)-enantiomers), so they are not refused as case-only spellings are, but never unsaid."""
    counts = pd.Series(inames[inames != ""]).value_counts()
    by_key: dict[str, list[tuple[str, int, bool]]] = {}
    for n, k in counts.items():
        by_key.setdefault(cell_line_key(n), []).append((str(n), int(k), str(n) in set(drugs)))
    return [sorted(v) for v in by_key.values() if len(v) > 1 and any(sel for *_, sel in v)]


def _refuse_pert_type_spellings(ptype: np.ndarray, of_drugs: np.ndarray, where: Path) -> None:
    """One error for a pert_type written as ``ctl_vehicle`` (any sample) or ``trt_cp`` (a sample of the
    drugs) in other case or with blanks: CMap writes them in lower case, and such samples would be neither
    controls nor treatments, left out unsaid (or the drug reported as not in pert_iname)."""
    types = pd.Series(ptype)
    key = types.str.replace(" ", "", regex=False).str.lower()
    for label, rows in (("ctl_vehicle", np.ones(len(ptype), dtype=bool)), ("trt_cp", of_drugs)):
        other = types[rows & (key == label).to_numpy() & (types != label).to_numpy()].value_counts()
        if len(other):
            n = plural(int(other.iloc[0]), "sample")
            raise L1000Error(f"{where}: pert_type {other.index[0]!r} ({n}) is {label!r} written otherwise; "
                             f"CMap writes it {label!r} (lower case), and only that is taken: make it "
                             f"{label!r} in the file (or --inst-info)")


def select_samples(src: L1000Source, drugs: Sequence[str] | None = None, time: float = 24.0,
                   dose: str | float = "highest", max_controls: int | str | None = "all", *,
                   dose_unit: str | None = None, time_unit: str | None = None,
                   merge_cell_spellings: bool = False) -> DrugSelection:
    """Pick treatments (trt_cp, pert_iname, time, dose rule) and same-plate vehicle controls per cell line.

    ``dose_unit`` / ``time_unit``: the unit of doses / times written without one (otherwise such a selected
    sample is an error, never a guess); ``merge_cell_spellings``: merge cell_id spellings of one cell line
    (datasets.cell_names) instead of refusing them.
    """
    meta = src.col_meta
    where = src.meta_path or src.path
    missing = [c for c in REQUIRED_COLUMNS if c not in meta.columns]
    if "pert_time" not in meta.columns and "pert_itime" not in meta.columns:
        missing.append("pert_time (or pert_itime)")
    if "pert_dose" not in meta.columns and "pert_idose" not in meta.columns:
        missing.append("pert_dose (or pert_idose)")
    if missing:
        raise L1000Error(f"{where}: required column metadata missing: {', '.join(missing)}")
    ptype = meta["pert_type"].fillna("").astype(str).to_numpy()
    iname = meta["pert_iname"].fillna("").astype(str).to_numpy()
    t, t_why = read_quantity(meta, TIME, time_unit)
    of_drugs = np.isin(iname, list(drugs)) if drugs else np.ones(len(iname), dtype=bool)
    _refuse_pert_type_spellings(ptype, of_drugs, where)
    wanted = (ptype == "ctl_vehicle") | ((ptype == "trt_cp") & of_drugs)
    _refuse_unknown_units(t_why, np.flatnonzero(wanted), TIME, src, where)
    at_time = np.isclose(t, float(time), rtol=0, atol=1e-6)
    is_trt = (ptype == "trt_cp") & at_time
    is_ctl = (ptype == "ctl_vehicle") & at_time
    available = sorted(set(iname[is_trt]) - {""})
    if drugs is None or len(drugs) == 0:
        unnamed = np.flatnonzero(is_trt & (iname == ""))
        if len(unnamed):
            raise L1000Error(f"{where}: {len(unnamed)} trt_cp samples at {time:g} h have no pert_iname (e.g. "
                             f"{src.sample_ids[unnamed[0]]!r}): name them, drop them, or choose drugs with "
                             f"--drugs")
        drugs = available
        if not drugs:
            times = sorted({float(x) for x in t[(ptype == "trt_cp") & ~np.isnan(t)]})
            raise L1000Error(f"{where}: no trt_cp treatments at pert_time {time:g} h "
                             f"(times present: {times})")
    for d in drugs:
        if d not in available:
            anywhere = d in set(iname[ptype == "trt_cp"])
            hint = difflib.get_close_matches(d, available, n=5, cutoff=0.6)
            if anywhere:
                times = sorted({float(x) for x in t[(iname == d) & ~np.isnan(t)]})
                msg = f"drug {d!r} has no trt_cp treatments at pert_time {time:g} h (its times: {times})"
            else:
                msg = f"drug {d!r} not found in pert_iname"
            if hint:
                msg += f"; did you mean: {', '.join(hint)}?"
            raise L1000Error(f"{where}: {msg}")
    _refuse_drug_spellings(iname[is_trt], drugs, time, where)
    cell, merged = _cell_ids(src, np.flatnonzero(is_ctl | (is_trt & np.isin(iname, list(drugs)))), where,
                             merge_cell_spellings)
    doses_all, d_why = read_quantity(meta, DOSE, dose_unit)
    chosen = np.flatnonzero(is_trt & np.isin(iname, list(drugs)))
    _refuse_unknown_units(d_why, chosen, DOSE, src, where)
    _refuse_unknown_doses(doses_all, chosen, meta, src, where)
    plate = plates(src)
    treatments: dict[str, dict[str, np.ndarray]] = {}
    doses: dict[str, dict[str, float]] = {}
    for d in drugs:
        treatments[d], doses[d] = {}, {}
        sel = np.flatnonzero(is_trt & (iname == d))
        for c in sorted(set(cell[sel])):
            idx = sel[cell[sel] == c]
            dv = doses_all[idx]
            target = float(np.max(dv)) if dose == "highest" else float(dose)
            near = np.isclose(dv, target, rtol=1e-2, atol=1e-9)
            exact = np.isclose(dv, target, rtol=_SAME_DOSE, atol=1e-12)
            if dose == "highest":   # the highest dose's replicates, those within 1% of it too (9.99 by 10)
                pick, measured = idx[near], [target]
            else:   # a dose given exactly keeps only its wells
                pick = idx[exact] if exact.any() else idx[near]
                measured = _distinct(doses_all[pick])
            if len(measured) > 1:
                counts = ", ".join(f"{m:g} uM ({int(np.isclose(doses_all[pick], m, rtol=_SAME_DOSE).sum())} "
                                   f"samples)" for m in measured)
                raise L1000Error(f"{where}: drug {d!r} in cell line {c!r}: --dose {target:g} is within 1% of "
                                 f"{len(measured)} different measured doses: {counts}; give one of them "
                                 f"exactly with --dose")
            if len(pick):
                treatments[d][c] = pick[np.lexsort((src.sample_ids[pick].astype(str),
                                                    plate[pick].astype(str)))]
                doses[d][c] = measured[0]  # the dose the wells were measured at, not the one asked for
        if not treatments[d]:
            have = sorted({round(float(x), 4) for x in doses_all[sel] if not np.isnan(x)})
            raise L1000Error(f"{where}: drug {d!r}: no treatments at dose {dose} uM (doses present: {have})")
    controls: dict[str, np.ndarray] = {}
    at_time: dict[str, int] = {}
    on_plates: dict[str, int] = {}
    fallback: list[str] = []
    all_cells = sorted({c for d in drugs for c in treatments[d]})
    for c in all_cells:
        trt_plates = {p for d in drugs for p in plate[treatments[d].get(c, np.array([], int))]}
        cands = np.flatnonzero(is_ctl & (cell == c))
        same = cands[np.isin(plate[cands], list(trt_plates))]
        if len(same) == 0 and len(cands):
            same = cands
            fallback.append(c)
        at_time[c], on_plates[c] = len(cands), len(same)
        if len(same):
            same = same[np.lexsort((src.sample_ids[same].astype(str), plate[same].astype(str)))]
            p = plate[same].astype(str)
            rank = np.zeros(len(same), dtype=np.int64)  # position within its plate -> round-robin order
            for u in np.unique(p):
                rank[p == u] = np.arange(int((p == u).sum()))
            same = same[np.lexsort((p, rank))]
            if max_controls == "auto":
                cap = max(len(treatments[d].get(c, ())) for d in drugs)
            elif max_controls in (None, "all"):
                cap = len(same)
            else:
                cap = int(max_controls)
            controls[c] = same[:cap]
    dropped: dict[str, list[str]] = {}
    for d in drugs:
        lost = [c for c in treatments[d] if c not in controls]
        if lost:
            dropped[d] = lost
            for c in lost:
                del treatments[d][c]
                del doses[d][c]
        if not treatments[d]:
            raise L1000Error(f"{where}: no vehicle controls (pert_type ctl_vehicle at {time:g} h) for the "
                             f"cell lines of drug {d!r}: {', '.join(lost)}")
    return DrugSelection(treatments=treatments, doses=doses, controls=controls, dropped=dropped,
                         control_fallback=fallback, merged_spellings=merged, controls_at_time=at_time,
                         controls_on_plates=on_plates, alike_names=alike_drug_names(iname[is_trt], drugs))


# ------------------------------------------------------------------------------------------- profiles
@dataclass
class L1000Profiles:
    """Profiles per (cell line, condition): condition 'control' or a drug name; values [n_rep, G]."""

    genes: GeneSelection
    profiles: dict[tuple[str, str], np.ndarray]
    doses: dict[tuple[str, str], float]
    sample_ids: dict[tuple[str, str], list[str]]
    plates: dict[tuple[str, str], list[str]]  # plate per profile (see plates())
    selection: DrugSelection

    @property
    def drugs(self) -> list[str]:
        return list(self.selection.treatments)

    @property
    def cell_lines(self) -> list[str]:
        return sorted({c for c, _ in self.profiles})


def load_profiles(src: L1000Source, selection: DrugSelection, genes: GeneSelection,
                  chunk_samples: int = READ_CHUNK_SAMPLES,
                  progress: Callable[[int, int], None] | None = None) -> L1000Profiles:
    """Read the selected samples' gene rows once (chunk-planned HDF5 selection), group them; NaN/inf: error.
    ``progress(bytes_read, bytes_total)`` is called after each read."""
    groups: list[tuple[tuple[str, str], np.ndarray]] = [((c, "control"), idx)
                                                        for c, idx in selection.controls.items()]
    for d, per_cell in selection.treatments.items():
        groups += [((c, d), idx) for c, idx in per_cell.items()]
    all_idx = np.unique(np.concatenate([g[1] for g in groups])) if groups else np.array([], int)
    data = src.read(all_idx, genes.row_idx, chunk_samples=chunk_samples, progress=progress)
    bad = ~np.isfinite(data)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        n_samples = int(bad.any(axis=1).sum())
        raise L1000Error(f"{src.path}: {int(bad.sum())} missing (-666/NaN) or infinite values in "
                         f"{n_samples} selected profile{'' if n_samples == 1 else 's'}, e.g. sample "
                         f"{str(src.sample_ids[all_idx[i]])!r} "
                         f"{gene_name(genes.entrez[j], src.row_ids[genes.row_idx[j]])} = {data[i, j]}; fix "
                         f"the values in the file, or keep those samples out of the selection (e.g. give "
                         f"them another pert_type in --inst-info)")
    pos = {int(s): k for k, s in enumerate(all_idx)}
    plate = plates(src)
    profiles, doses, ids, pl = {}, {}, {}, {}
    for key, idx in groups:
        profiles[key] = data[[pos[int(s)] for s in idx]]
        ids[key] = [str(src.sample_ids[s]) for s in idx]
        pl[key] = [str(plate[s]) for s in idx]
        c, cond = key
        doses[key] = np.nan if cond == "control" else selection.doses[cond][c]
    return L1000Profiles(genes=genes, profiles=profiles, doses=doses, sample_ids=ids, plates=pl,
                         selection=selection)


def read_l1000(path: str | Path, drugs: Sequence[str] | None = None, time: float = 24.0,
               dose: str | float = "highest", inst_info: str | Path | None = None,
               gene_info: str | Path | None = None, all_genes: bool = False,
               max_controls: int | str | None = "all", **units_and_names: object) -> L1000Profiles:
    """Open, select and read in one call (see the module docstring for the rules); ``units_and_names``:
    :func:`select_samples`' ``dose_unit``, ``time_unit`` and ``merge_cell_spellings``."""
    src = open_l1000(path, inst_info=inst_info, gene_info=gene_info)
    genes = select_genes(src, all_genes=all_genes)
    sel = select_samples(src, drugs=drugs, time=time, dose=dose, max_controls=max_controls,
                         **units_and_names)  # type: ignore[arg-type]
    return load_profiles(src, sel, genes)
