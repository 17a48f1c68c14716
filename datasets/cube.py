"""The data cube: ``expression[cell_line, condition, replicate, gene]``, an xarray Dataset in a zarr v3 store.

Conditions are ``"control"`` (pre-treatment profiles, the x1 of the paper's pairs), one entry per drug
(post-treatment profiles, x2) and ``"baseline"`` (unpaired singleton profiles from a second platform).
NaN marks a profile that was not measured. Chunks are ``(cell_block, 1, all replicates, all genes)`` so
one drug's slice is read without touching the others; all-NaN chunks are never written.

Every cube (made, written or opened) has at least 2 genes, a control condition, a drug, and cell line names
that are distinct by datasets.cell_names' key (``mcf7`` and ``MCF7`` would be one cell line under two names).
The builders (datasets.build, its ``--h5ad``) also refuse a drug that no cell line pairs
(:func:`check_pairs`), so that a benchmark run never meets a cube it could only reject then; a cube made
here may hold such a condition (all its chunks unwritten).
Optional ``plate[cell_line, condition, replicate]``: the plate (batch) id of each profile, ``""`` where
unknown or not measured (cubes written before it existed have no such variable; datasets.pairs then pairs
by the cyclic rule).
Optional ``response[cell_line, condition]`` (float64): each cell line's measured sensitivity to each drug
(drug response), NaN where not measured and always NaN for ``control`` and ``baseline``. Its direction is
normalized: higher = more sensitive (:data:`RESPONSE_DIRECTION`; each source's conversion is in
datasets.response_tables). Its attrs name at least :data:`RESPONSE_ATTRS`: ``measure`` (what was measured,
after the conversion, e.g. ``"1 - AUC"``), ``units``, ``direction`` and ``source`` (file(s) or generator).
A cube without it is valid and keeps its fingerprint.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from datasets import chunk_files
from datasets.cell_names import spelling_clashes
from datasets.disk import write_failure
from datasets.errors import CubeError
from datasets.files import human_bytes

CONDITION_CONTROL = "control"
CONDITION_BASELINE = "baseline"
DIMS = ("cell_line", "condition", "replicate", "gene")
PLATE_DIMS = DIMS[:3]
RESPONSE = "response"
RESPONSE_DIMS = DIMS[:2]
RESPONSE_ATTRS = ("measure", "units", "direction", "source")
RESPONSE_DIRECTION = "higher = more sensitive"
PACKAGE_VERSION = "0.1.0"


def _str_array(values: Sequence[str], field: str) -> np.ndarray:
    """Variable-length strings as an object array of ``str`` (zarr v3 writes these as its string dtype)."""
    arr = np.asarray(list(values), dtype=object)
    if arr.ndim != 1:
        raise CubeError(f"{field}: expected a 1-d sequence of strings, got shape {arr.shape}")
    out = np.empty(len(arr), dtype=object)
    for i, v in enumerate(arr):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            raise CubeError(f"{field}[{i}]: missing value")
        out[i] = str(v)
    return out


def plate_ids(values: np.ndarray) -> np.ndarray:
    """Plate ids as an object array of ``str`` of the same shape (None -> "")."""
    arr = np.asarray(values, dtype=object)
    return np.asarray(["" if v is None else str(v) for v in arr.ravel()], dtype=object).reshape(arr.shape)


def _jsonable_attrs(attrs: dict, provenance: bool = True) -> dict:
    """Attrs as zarr-storable JSON values: nested dicts/lists are kept if JSON-serializable; a cube's attrs
    (``provenance``) get a minimal provenance where they have none."""
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        try:
            json.dumps(v)
        except TypeError as e:
            raise CubeError(f"attrs[{k!r}]: not JSON-serializable ({e})") from None
        out[str(k)] = v
    if provenance and "provenance" not in out:
        prov = {"package_version": PACKAGE_VERSION, "created_by": "datasets.cube.make_cube"}
        out["provenance"] = json.dumps(prov, sort_keys=True)
    return out


def make_cube(expression: np.ndarray, cell_lines: Sequence[str], conditions: Sequence[str],
              genes: Sequence[str], gene_symbols: Sequence[str], dose_um: np.ndarray, source: Sequence[str],
              attrs: dict, plate: np.ndarray | None = None, response: np.ndarray | None = None,
              response_attrs: dict | None = None) -> xr.Dataset:
    """Assemble and check a cube Dataset (float32 expression, NaN = not measured; ``plate`` optional;
    ``response`` [cell_line, condition] optional, with its ``response_attrs``: :func:`add_response`)."""
    lazy = hasattr(expression, "chunks") and hasattr(expression, "dask")
    expr = expression.astype(np.float32) if lazy else np.asarray(expression, dtype=np.float32)
    if expr.ndim != 4:
        raise CubeError(f"expression: expected 4 dims {DIMS}, got shape {expr.shape}")
    cl = _str_array(cell_lines, "cell_lines")
    cond = _str_array(conditions, "conditions")
    g = _str_array(genes, "genes")
    sym = _str_array(gene_symbols, "gene_symbols")
    src = _str_array(source, "source")
    want = (len(cl), len(cond), expr.shape[2], len(g))
    if expr.shape != want:
        raise CubeError(f"expression: shape {expr.shape} does not match "
                        f"(cell_lines, conditions, replicates, genes) = {want}")
    if len(sym) != len(g):
        raise CubeError(f"gene_symbols: {len(sym)} values for {len(g)} genes")
    if len(src) != len(cond):
        raise CubeError(f"source: {len(src)} values for {len(cond)} conditions")
    for name, arr in (("cell_lines", cl), ("conditions", cond), ("genes", g)):
        u, c = np.unique(arr.astype(str), return_counts=True)
        if (c > 1).any():
            raise CubeError(f"{name}: duplicate value(s) {list(u[c > 1][:5])}")
    dose = np.asarray(dose_um, dtype=np.float64)
    if dose.shape != (len(cl), len(cond)):
        raise CubeError(f"dose_um: shape {dose.shape}, expected (cell_lines, conditions) = "
                        f"{(len(cl), len(cond))}")
    if not lazy and np.isinf(expr).any():
        raise CubeError("expression: contains inf")
    ds = xr.Dataset(
        {"expression": (DIMS, expr)},
        coords={
            "cell_line": ("cell_line", cl),
            "condition": ("condition", cond),
            "replicate": ("replicate", np.arange(expr.shape[2], dtype=np.int64)),
            "gene": ("gene", g),
            "gene_symbol": ("gene", sym),
            "dose_um": (("cell_line", "condition"), dose),
            "source": ("condition", src),
        },
        attrs=_jsonable_attrs(attrs),
    )
    if plate is not None:
        pl = np.asarray(plate, dtype=object)
        if pl.shape != expr.shape[:3]:
            raise CubeError(f"plate: shape {pl.shape}, expected (cell_lines, conditions, replicates) = "
                            f"{expr.shape[:3]}")
        ds["plate"] = (PLATE_DIMS, plate_ids(pl))
    if response is not None:
        ds = add_response(ds, response, response_attrs or {})
    _validate(ds, "<in memory>", check_values=not lazy)  # a lazy cube's values are checked by write_cube
    return ds


def add_response(ds: xr.Dataset, values: np.ndarray, attrs: dict) -> xr.Dataset:
    """``ds`` with the ``response[cell_line, condition]`` variable (module docstring) set to ``values``
    (float64, NaN = not measured) and ``attrs`` (at least :data:`RESPONSE_ATTRS`, JSON-serializable);
    a response already there is replaced. Checked as :func:`open_cube` checks it."""
    v = np.asarray(values, dtype=np.float64)
    want = (int(ds.sizes["cell_line"]), int(ds.sizes["condition"]))
    if v.shape != want:
        raise CubeError(f"response: shape {v.shape}, expected (cell_lines, conditions) = {want}")
    out = ds.copy()
    out[RESPONSE] = xr.Variable(RESPONSE_DIMS, v, attrs=_jsonable_attrs(dict(attrs), provenance=False))
    _validate_response(out, "<in memory>", check_values=True)
    return out


def drugs(ds: xr.Dataset) -> list[str]:
    """The drug conditions (every condition other than control and baseline), in cube order."""
    return [str(c) for c in ds["condition"].values if str(c) not in (CONDITION_CONTROL, CONDITION_BASELINE)]


def cube_fingerprint(ds: xr.Dataset) -> str:
    """Stable sha256 of the cube's identity and content.

    Hashes the attrs (the provenance's ``build_time`` and the record of the chunk files written,
    datasets.chunk_files, left out, so rebuilding the same inputs gives the same fingerprint), shape,
    coordinates, doses and a content digest: per condition, the count, sum and sum of
    squares of the measured expression values (one lazy pass over the chunks), and, when the cube has
    ``plate``, a sha256 of each condition's plate ids, when it has ``response``, its attrs and a sha256 of
    its values (cubes without them keep their old fingerprint).
    """
    attrs = dict(ds.attrs)
    attrs.pop(chunk_files.ATTR, None)
    try:
        prov = json.loads(attrs.get("provenance", "{}"))
        if isinstance(prov, dict):
            prov.pop("build_time", None)
            attrs["provenance"] = prov
    except (TypeError, ValueError):
        pass
    e = ds["expression"].astype(np.float64)
    over = ("cell_line", "replicate", "gene")
    count, total, squares = (np.asarray(v.values) for v in
                             xr.Dataset({"n": e.count(over), "s": e.sum(over), "q": (e * e).sum(over)})
                             .compute().data_vars.values())
    ident = {
        "attrs": attrs,
        "shape": [int(ds.sizes[d]) for d in DIMS],
        "cell_line": [str(v) for v in ds["cell_line"].values],
        "condition": [str(v) for v in ds["condition"].values],
        "gene": [str(v) for v in ds["gene"].values],
        "gene_symbol": [str(v) for v in ds["gene_symbol"].values],
        "source": [str(v) for v in ds["source"].values],
        "dose_um": [f"{v:.9g}" for v in np.asarray(ds["dose_um"].values, dtype=np.float64).ravel()],
        "content": [[int(n), f"{s:.9g}", f"{q:.9g}"] for n, s, q in zip(count, total, squares, strict=True)],
    }
    if "plate" in ds.data_vars:
        plates = (plate_ids(ds["plate"].isel(condition=k).values).ravel()
                  for k in range(int(ds.sizes["condition"])))
        ident["plate"] = [hashlib.sha256("\x1f".join(p).encode()).hexdigest() for p in plates]
    if RESPONSE in ds.data_vars:
        values = np.asarray(ds[RESPONSE].transpose(*RESPONSE_DIMS).values, dtype=np.float64).ravel()
        ident["response"] = {"attrs": dict(ds[RESPONSE].attrs), "values": hashlib.sha256(
            "\x1f".join(f"{v:.12g}" for v in values).encode()).hexdigest()}
    h = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _validate(ds: xr.Dataset, where: str, check_values: bool = True) -> None:
    """Schema, dims, dtypes and content checks with messages naming ``where``."""
    if "expression" not in ds.data_vars:
        raise CubeError(f"{where}: no 'expression' variable (not a cube?)")
    e = ds["expression"]
    if tuple(e.dims) != DIMS:
        raise CubeError(f"{where}: expression dims {tuple(e.dims)}, expected {DIMS}")
    if e.dtype != np.float32:
        raise CubeError(f"{where}: expression dtype {e.dtype}, expected float32")
    for c, dims in (("cell_line", ("cell_line",)), ("condition", ("condition",)), ("gene", ("gene",)),
                    ("gene_symbol", ("gene",)), ("dose_um", ("cell_line", "condition")),
                    ("source", ("condition",))):
        if c not in ds.coords:
            raise CubeError(f"{where}: missing coordinate {c!r}")
        if tuple(ds[c].dims) != dims:
            raise CubeError(f"{where}: coordinate {c!r} has dims {tuple(ds[c].dims)}, expected {dims}")
    for c in ("cell_line", "condition", "gene", "gene_symbol", "source"):
        if ds[c].dtype.kind not in "OUT":
            raise CubeError(f"{where}: coordinate {c!r} has dtype {ds[c].dtype}, expected strings")
    if "plate" in ds.data_vars:
        if tuple(ds["plate"].dims) != PLATE_DIMS:
            raise CubeError(f"{where}: plate has dims {tuple(ds['plate'].dims)}, expected {PLATE_DIMS}")
        if ds["plate"].dtype.kind not in "OUT":
            raise CubeError(f"{where}: plate has dtype {ds['plate'].dtype}, expected strings")
    _validate_response(ds, where, check_values)
    if ds["dose_um"].dtype.kind != "f":
        raise CubeError(f"{where}: dose_um dtype {ds['dose_um'].dtype}, expected float")
    conds = [str(c) for c in ds["condition"].values]
    if CONDITION_CONTROL not in conds:
        raise CubeError(f"{where}: no {CONDITION_CONTROL!r} condition")
    if not drugs(ds):
        raise CubeError(f"{where}: no drug condition (conditions: {conds})")
    if ds.sizes["gene"] < 2:
        raise CubeError(f"{where}: {ds.sizes['gene']} gene(s); the benchmark needs at least 2 (its scores "
                        f"are correlations across genes): keep more genes")
    _refuse_cell_spellings(ds, where)
    if check_values:
        dose = np.asarray(ds["dose_um"].values)
        if np.isinf(dose).any():
            raise CubeError(f"{where}: dose_um contains inf")
        data = e.data
        n_inf = int(np.isinf(data).sum() if isinstance(data, np.ndarray) else np.isinf(e).sum().compute())
        if n_inf:
            raise CubeError(f"{where}: expression contains {n_inf} inf value(s)")


def _validate_response(ds: xr.Dataset, where: str, check_values: bool) -> None:
    """The optional response variable: dims, dtype, attrs, direction; with ``check_values``, no inf and
    nothing measured for the control and baseline conditions."""
    if RESPONSE not in ds.data_vars:
        return
    r = ds[RESPONSE]
    if tuple(r.dims) != RESPONSE_DIMS:
        raise CubeError(f"{where}: response has dims {tuple(r.dims)}, expected {RESPONSE_DIMS}")
    if r.dtype.kind != "f":
        raise CubeError(f"{where}: response has dtype {r.dtype}, expected float (NaN = not measured)")
    missing = [k for k in RESPONSE_ATTRS if not isinstance(r.attrs.get(k), str) or not r.attrs[k].strip()]
    if missing:
        raise CubeError(f"{where}: response attrs {missing} missing or empty; a response states its "
                        f"{', '.join(RESPONSE_ATTRS)}")
    if r.attrs["direction"] != RESPONSE_DIRECTION:
        raise CubeError(f"{where}: response direction {r.attrs['direction']!r}; the cube stores responses "
                        f"with {RESPONSE_DIRECTION!r}: convert the values (e.g. 1 - AUC, -LN_IC50) first")
    if not check_values:
        return
    v = np.asarray(r.transpose(*RESPONSE_DIMS).values, dtype=np.float64)
    if np.isinf(v).any():
        raise CubeError(f"{where}: response contains {int(np.isinf(v).sum())} inf value(s)")
    conds = [str(c) for c in ds["condition"].values]
    for c in (CONDITION_CONTROL, CONDITION_BASELINE):
        if c in conds and not np.isnan(v[:, conds.index(c)]).all():
            raise CubeError(f"{where}: response has values for condition {c!r}; responses are per drug "
                            f"(NaN for control and baseline)")


def _refuse_cell_spellings(ds: xr.Dataset, where: str) -> None:
    """Cell lines whose names differ only in case or punctuation are one cell line under two names: a
    training and a test fold could share it."""
    clashes = spelling_clashes(str(c) for c in ds["cell_line"].values)
    if clashes:
        named = "; ".join(" and ".join(repr(s) for s, _ in v) for v in clashes.values())
        raise CubeError(f"{where}: cell lines {named} differ only in case or punctuation (one cell line "
                        f"under two names could sit in a training and a test fold); rebuild the cube with "
                        f"the spellings made to agree, or with --merge-cell-spellings")


def unpaired_drugs(ds: xr.Dataset) -> list[str]:
    """The drugs no cell line pairs: none has both a fully measured control and a fully measured profile of
    the drug (datasets.pairs' rule: a profile with a NaN gene is not used). Reads one condition at a time."""
    def measured(cond: str) -> np.ndarray:  # [cell_line] any fully measured replicate
        block = np.asarray(ds["expression"].sel(condition=cond).values)
        return (~np.isnan(block).any(axis=-1)).any(axis=-1)

    ctrl = measured(CONDITION_CONTROL)
    return [d for d in drugs(ds) if not (ctrl & measured(d)).any()]


def check_pairs(ds: xr.Dataset, where: str) -> None:
    """Refuse a cube with a drug no cell line pairs (:func:`unpaired_drugs`), naming the drugs."""
    lost = unpaired_drugs(ds)
    if lost:
        raise CubeError(f"{where}: no cell line has both a fully measured control and a fully measured "
                        f"profile of drug(s) {', '.join(map(repr, lost))} (a profile with a NaN gene is not "
                        f"used), so a benchmark run could not pair them; add controls of their cell lines, "
                        f"or leave them out")


def is_cube_store(path: str | Path) -> bool:
    """Whether ``path`` is a store :func:`write_cube` wrote: a zarr v3 group with the cube's ``provenance``
    attribute and an ``expression`` array, holding nothing but zarr nodes (what ``--overwrite`` may
    replace)."""
    path = Path(path)
    try:
        meta = json.loads((path / "zarr.json").read_text())
        expr = json.loads((path / "expression" / "zarr.json").read_text())
        children = list(path.iterdir())
    except (OSError, ValueError):
        return False
    if not (isinstance(meta, dict) and meta.get("zarr_format") == 3 and meta.get("node_type") == "group"
            and "provenance" in (meta.get("attributes") or {})):
        return False
    if not (isinstance(expr, dict) and expr.get("node_type") == "array"):
        return False
    return all(c.name == "zarr.json" or (c.is_dir() and (c / "zarr.json").is_file()) for c in children)


def damaged_metadata(path: str | Path) -> str | None:
    """What is wrong with the zarr metadata of the store at ``path`` (its ``zarr.json`` and those of its
    variables): the first file missing, unreadable or not zarr v3 metadata, named; None when all read."""
    path = Path(path)
    try:
        files = [path / "zarr.json"] + [c / "zarr.json" for c in sorted(path.iterdir()) if c.is_dir()]
    except OSError as e:
        return f"{path} cannot be listed ({e.strerror or e})"
    for f in files:
        try:
            meta = json.loads(f.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return f"{f} is missing"
        except UnicodeDecodeError as e:
            return f"{f} is not text ({e.reason})"
        except OSError as e:
            return f"{f} cannot be read ({e.strerror or e})"
        except ValueError as e:
            return f"{f} is not valid JSON ({e})"
        if not (isinstance(meta, dict) and meta.get("zarr_format") == 3 and "node_type" in meta):
            return f"{f} is not zarr v3 metadata"
    return None


def missing_chunks(path: str | Path, name: str = "expression") -> tuple[int, int] | None:
    """(chunk files present, chunks in the grid) of variable ``name`` of the store at ``path`` (all-NaN chunks
    are never written, so fewer files can be valid); None when its metadata does not say."""
    var = Path(path) / name
    try:
        meta = json.loads((var / "zarr.json").read_text(encoding="utf-8"))
        shape = meta["shape"]
        chunk = meta["chunk_grid"]["configuration"]["chunk_shape"]
        grid = 1
        for n, c in zip(shape, chunk, strict=True):
            grid *= -(-int(n) // max(1, int(c)))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    root = var / "c"
    present = sum(1 for f in root.rglob("*") if f.is_file()) if root.is_dir() else 0
    return present, grid


def check_out_path(path: str | Path, overwrite: bool = False, flag: str = "--out") -> Path:
    """Refuse an output path that cannot be written or must not be replaced, before any work is done.

    ``path`` must not exist unless ``overwrite`` and it is a cube store (:func:`is_cube_store`); its nearest
    existing ancestor must be a writable directory.
    """
    path = Path(path)
    if path.is_symlink() or path.exists():  # a file or non-cube: said first, --overwrite would not take it
        if not path.is_dir() or path.is_symlink():
            raise CubeError(f"{path}: {flag} is an existing file, not a cube; --overwrite replaces only a "
                            f"cube written by this project: move or delete it yourself, or choose another "
                            f"{flag}")
        if not is_cube_store(path):
            raise CubeError(f"{path}: {flag} is an existing directory that is not a cube written by this "
                            f"project (no cube zarr.json with provenance, or other files inside); "
                            f"--overwrite refuses to delete it: move it yourself, or choose another {flag}")
        if not overwrite:
            raise CubeError(f"{path}: already exists (a cube written by this project); use --overwrite to "
                            f"replace it")
    anc = path.absolute().parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise CubeError(f"{path}: cannot create {flag} because {anc} is a file, not a directory; "
                        f"choose another {flag}")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise CubeError(f"{path}: cannot create {flag}: directory {anc} is not writable; "
                        f"choose another {flag}")
    return path


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (owned by us or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Delete ``.NAME.tmp-<pid>-<hex>`` stores next to ``path`` that :func:`write_cube` left behind when
    its process was killed (pid no longer running; older ``.NAME.tmp-<hex>`` names too). Returns them."""
    path = Path(path)
    gone = []
    if not path.parent.is_dir():
        return gone
    for p in path.parent.glob(f".{path.name}.tmp-*"):
        m = re.fullmatch(r"(\d+)-[0-9a-f]{8}|[0-9a-f]{8}", p.name[len(path.name) + 6:])
        if m is None or (m.group(1) and pid_alive(int(m.group(1)))):
            continue
        _rmtree(p)
        gone.append(p)
    return gone


def _rmtree(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _stop_zarr_io(timeout: float = 10.0) -> None:
    """Cancel zarr's pending writes: an interrupt stops only the waiting thread, zarr's event loop thread
    would go on writing chunks into the temp store after it is deleted."""
    try:
        from zarr.core.sync import _get_loop

        loop = _get_loop()

        async def cancel_others() -> None:
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_others(), loop).result(timeout)
    except Exception:  # noqa: BLE001 - best effort: the removal below retries
        pass


def _remove_partial(tmp: Path, interrupted: bool) -> None:
    """Delete a partial temp store; after an interrupt, stop zarr's writes first and make sure it is gone."""
    if interrupted:
        _stop_zarr_io()
    deadline = time.monotonic() + (5.0 if interrupted else 0.0)
    while True:
        _rmtree(tmp)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
        if not tmp.exists():
            break


def write_cube(ds: xr.Dataset, path: str | Path, overwrite: bool = False, cell_block: int = 64) -> Path:
    """Write ``ds`` as a zarr v3 store at ``path`` atomically (temp sibling dir, then rename).

    Refuses an existing ``path`` unless ``overwrite`` and it is a cube store (then the old store is
    replaced only after the new one is complete); refuses a path that cannot be created; a write that fails
    (disk full, quota, read-only) is a CubeError saying so (datasets.disk). All-NaN chunks are
    not written (fill value NaN); which chunk files were is recorded in the store (datasets.chunk_files),
    for :func:`open_cube` to notice one deleted later. A failed or interrupted write removes its temp store;
    temp stores of killed writers are removed first (:func:`remove_stale_temps`).
    """
    path = Path(path)
    if cell_block < 1:
        raise CubeError(f"cell_block: must be >= 1, got {cell_block}")
    _validate(ds, str(path))
    check_out_path(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    n_rep, n_gene = int(ds.sizes["replicate"]), int(ds.sizes["gene"])
    out = ds.copy()
    out["expression"] = out["expression"].astype(np.float32, copy=False)  # no second copy of a big cube
    block = min(cell_block, max(1, int(ds.sizes["cell_line"])))
    if out["expression"].chunks is not None:  # dask-backed: align with the zarr chunks
        out["expression"] = out["expression"].chunk({"cell_line": block, "condition": 1, "replicate": -1,
                                                     "gene": -1})
    for c in ("cell_line", "condition", "gene", "gene_symbol", "source"):
        out[c] = out[c].copy(data=np.asarray([str(v) for v in out[c].values], dtype=object))
    for v in out.variables.values():
        v.encoding = {}
    out.attrs.pop(chunk_files.ATTR, None)   # a cube read back carries its own: this write records anew
    encoding = {
        "expression": {"chunks": (block, 1, max(1, n_rep), max(1, n_gene)),
                       "fill_value": np.float32(np.nan)},
    }
    if "plate" in out.data_vars:
        out["plate"] = out["plate"].copy(data=plate_ids(out["plate"].values))
        encoding["plate"] = {"chunks": (block, 1, max(1, n_rep)), "fill_value": ""}
    if RESPONSE in out.data_vars:  # small: one chunk
        out[RESPONSE] = out[RESPONSE].transpose(*RESPONSE_DIMS).astype(np.float64)
        encoding[RESPONSE] = {"chunks": tuple(max(1, int(ds.sizes[d])) for d in RESPONSE_DIMS),
                              "fill_value": np.nan}
    old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
    try:
        out.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False, encoding=encoding,
                    write_empty_chunks=False)
        _record_chunk_files(tmp)
        if path.exists():
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException as e:
        if old.exists() and not path.exists():  # interrupted between the two renames: put the old cube back
            old.rename(path)
        # zarr's other writes may still be running (a full disk fails one of many): stop them first
        _remove_partial(tmp, interrupted=not isinstance(e, Exception) or isinstance(e, OSError))
        if isinstance(e, OSError):  # a full disk is no traceback: say it, and what to do
            size = human_bytes(int(ds["expression"].size) * 4)
            raise CubeError(f"{write_failure(e, path, None, '--out')} (the cube takes up to {size} "
                            f"uncompressed); nothing was written"
                            f"{', the cube there is unchanged' if path.exists() else ''}") from None
        raise
    return path


def _record_chunk_files(store: Path) -> None:
    """Add the record of the store's chunk files (datasets.chunk_files) to its group attributes."""
    meta_file = store / "zarr.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    meta.setdefault("attributes", {})[chunk_files.ATTR] = chunk_files.record(store)
    meta_file.write_text(json.dumps(meta, indent=2), encoding="utf-8")


def _plain_strings(ds: xr.Dataset) -> xr.Dataset:
    """String variables as object arrays of ``str``: zarr v3 reads variable-length strings as numpy's
    StringDType, which ``.astype(str)`` refuses. Dask-backed ones (``plate``) stay lazy."""
    names = [n for n, v in ds.variables.items() if v.dtype.kind == "T"]
    ds = ds.assign_coords({n: ds[n].astype(object) for n in names if n in ds.coords})
    for n in names:
        if n in ds.data_vars:
            ds[n] = ds[n].astype(object)
    return ds


def open_cube(path: str | Path, check: bool = True) -> xr.Dataset:
    """Open and validate a cube written by :func:`write_cube` (lazy, dask-backed per chunk).

    String coordinates and ``plate`` come back as object arrays of ``str`` (``.astype(str)`` works).
    ``check=False`` skips the scan of every value (the inf check) and of the chunk files (against the record
    :func:`write_cube` made, datasets.chunk_files) and keeps the schema checks: for a cube already checked
    once, e.g. by the driver before its workers open it.
    """
    path = Path(path)
    if not path.exists():
        raise CubeError(f"{path}: no such cube")
    try:
        ds = _plain_strings(xr.open_zarr(path, consolidated=False, zarr_format=3))
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad cube
        if path.is_dir() and (path / "expression").is_dir() and (why := damaged_metadata(path)):
            raise CubeError(f"{path}: a damaged or incomplete cube: {why}; copy the cube again or rebuild it "
                            f"(pertvae-bench build/synth)") from None
        raise CubeError(f"{path}: cannot open as a zarr v3 cube ({type(e).__name__}: {e}); give a cube "
                        f"directory written by pertvae-bench build or synth") from None
    recorded = ds.attrs.get(chunk_files.ATTR)
    if check and recorded is not None and (why := chunk_files.check(path, recorded)):
        raise CubeError(f"{path}: a damaged or changed cube: {why}; copy the cube again or rebuild it "
                        f"(pertvae-bench build/synth)")
    try:
        _validate(ds, str(path), check_values=check)
    except CubeError:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt chunk or codec failure
        raise CubeError(f"{path}: cannot read the cube's values ({type(e).__name__}: {e}): a chunk file is "
                        f"damaged or truncated; copy the cube again or rebuild it (pertvae-bench build/synth)"
                        ) from None
    return ds
