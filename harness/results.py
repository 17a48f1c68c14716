"""Reading a run's results: OUT/results.zarr for harness.report, harness.benchmark, harness.info and the
other readers, through :func:`load_results` (the store in memory, checked for damage and read as the current
layout), :func:`planned_mask`, :func:`json_attr` and :func:`method_done`. The store's layout and its writing
are harness.store's; any zarr reader (``xr.open_zarr(path)``) can read it as well.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from harness.contenders import REGISTRY
from harness.grid import FitKey
from harness.store import (
    DETAIL_VARS,
    DIMS,
    SCORE_VAR,
    STORE_NAME,
    Repair,
    ResultStore,
    StoreDamagedError,
    finish_conversion,
    paper_into_score,
    set_aside,
)


class StoreReadError(ValueError):
    """OUT holds no readable result store; the message says what is wrong and what to do."""


def load_results(out_dir: str | Path) -> xr.Dataset:
    """OUT/results.zarr in memory (``cell_score`` and ``gene_score`` lazy), checked: a store harness.run
    wrote must be undamaged (:meth:`ResultStore.find_damage`), any store must have the variables a report
    needs. StoreReadError says what is wrong and how to recompute."""
    out = Path(out_dir)
    path = out / STORE_NAME
    finish_conversion(out)
    check_store_path(out)
    ds = _load_own(out) if _written_by_run(path) else None
    if ds is None:
        ds = _load_any(out)
    lacking = sorted({"status"} - set(ds.data_vars))
    if lacking or not set(DIMS) <= set(ds.dims):
        raise StoreReadError(f"{path}: not a result store (dims {sorted(ds.dims)}, missing variables "
                             f"{lacking})")
    return paper_into_score(ds)


def check_store_path(out_dir: str | Path) -> None:
    """StoreReadError unless OUT holds a result store directory, or the one a layout conversion set aside
    (harness.store.finish_conversion puts it back): checked before anything is written into OUT (the
    report's lock file), so that a folder that is no run's is left as it was."""
    out = Path(out_dir)
    path = out / STORE_NAME
    if path.exists() and not path.is_dir():
        raise StoreReadError(f"{path}: is a file, not a result store (a directory); move it away and rerun "
                             f"pertvae-bench run --out {out} to compute the results")
    if not path.is_dir() and not (set_aside(out).is_dir() and not set_aside(out).is_symlink()):
        raise StoreReadError(f"{out}: no {STORE_NAME} here; give the --out directory of a run "
                             f"(pertvae-bench run --out {out} creates one)")


def paper_metric(ds: xr.Dataset, model: str, key: str) -> xr.DataArray:
    """The paper's ``key`` (one of PAPER_VARS) of ``model``'s fits, [drug, latent, split]: ``score`` at
    the (method, metric) its contender's ``paper_scores`` names; NaN where it has none (whatever the
    fits' status: the caller keeps the done ones)."""
    where = REGISTRY[model].paper_scores.get(key) if model in REGISTRY else None
    if where is None or where[0] not in ds["method"].values or where[1] not in ds["metric"].values:
        return xr.full_like(ds["status"].sel(model=model), np.nan, dtype=np.float64)
    return ds[SCORE_VAR].sel({"model": model, "method": where[0], "metric": where[1]}).transpose(*DIMS[1:])


def _written_by_run(path: Path) -> bool:
    """Whether the group's attributes say harness.run's ResultStore made it (a data fingerprint)."""
    try:
        return "data_fingerprint" in json.loads((path / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False


def _load_own(out: Path) -> xr.Dataset:
    """A store harness.run wrote: its damage check, then its variables as that check read them."""
    try:
        store = ResultStore(out / STORE_NAME)
        damage = store.find_damage()
    except StoreDamagedError as e:
        raise StoreReadError(str(e)) from None
    msg = damage_message(out, damage)
    if msg:
        raise StoreReadError(msg)
    try:
        return store.dataset()
    except Exception as e:  # zarr/xarray raise many types for a damaged store
        raise StoreReadError(f"{out / STORE_NAME}: cannot be read as a result store: "
                             f"{type(e).__name__}: {e}") from None


def _load_any(out: Path) -> xr.Dataset:
    """A store in the layout but not written by harness.run (tests, older tools): read as it is."""
    path = out / STORE_NAME
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # consolidated metadata is not in the v3 spec
            warnings.simplefilter("ignore", RuntimeWarning)  # ... and its absence is only slower
            lazy = xr.open_zarr(str(path), chunks=None)  # no dask: one read per variable, not per chunk
            detail = [v for v in DETAIL_VARS if v in lazy.data_vars]
            ds = lazy.drop_vars(detail).load()
            for v in detail:  # large: stays lazy, read one (model, drug, latent) chunk at a time
                ds[v] = lazy[v]
    except Exception as e:  # zarr/xarray raise many types for a damaged store
        raise StoreReadError(_damage_text(out) or f"{path}: cannot be read as a result store: "
                                                  f"{type(e).__name__}: {e}") from None
    return ds


def _damage_text(out: Path) -> str | None:
    """What is damaged in OUT/results.zarr as harness.run's store sees it, or None (no damage, or not a
    store harness.run wrote)."""
    try:
        return damage_message(out, ResultStore(out / STORE_NAME).find_damage())
    except StoreDamagedError as e:
        return str(e)
    except Exception:  # not a store harness.run wrote: the caller's message stands
        return None


def damage_message(out: Path, damage: Repair) -> str | None:
    """What ``damage`` in OUT/results.zarr is and how to recompute it, or None when there is none."""
    path = out / STORE_NAME
    what, fix = [], []
    if damage.metadata:   # a variable's chunks lost with its metadata are damaged cells too: both said
        what.append(damage.describe_metadata())
        fix.append("rewrites that metadata from the store's consolidated copy")
    if damage.cells:
        what.append(f"{len(damage.cells)} cell(s) with unreadable or missing values, {damage.n_fits} done "
                    f"fit(s) lost: {damage.describe()}")
        fix.append("recomputes them")
    if not what:
        return None
    return (f"{path} is damaged: {'; '.join(what)}; run pertvae-bench run again with the same settings and "
            f"--out {out}: it {' and '.join(fix)}" + ("" if damage.cells else " (no fit is lost)"))


def gene_symbols_and_fingerprint(out_dir: str | Path) -> tuple[tuple[str, ...] | None, str]:
    """OUT/results.zarr's gene symbols (None for a store without them) and fingerprint, read from its
    metadata and one coordinate, not the store (harness.predictions labels its files with them)."""
    group = zarr.open_group(str(Path(out_dir) / STORE_NAME), mode="r")
    symbols = tuple(str(s) for s in group["gene_symbol"][:]) if "gene_symbol" in group else None
    return symbols, str(group.attrs.get("fingerprint", ""))


def as_str(values: Any) -> np.ndarray:
    """A string array as numpy ``str`` (zarr v3 may hand back StringDType or object arrays)."""
    return np.asarray(values).astype(object).astype(str)


def json_attr(ds: xr.Dataset, name: str) -> dict:
    """The store's JSON attribute ``name`` as a dict ({} when absent or not a JSON object); StoreReadError
    when it is not valid JSON."""
    raw = ds.attrs.get(name)
    if raw is None or raw == "":
        return {}
    try:
        val = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as e:
        raise StoreReadError(f"{STORE_NAME} attrs[{name!r}] is not valid JSON: {e}") from None
    return dict(val) if isinstance(val, dict) else {}


def planned_mask(ds: xr.Dataset) -> np.ndarray:
    """Bool [model, drug, latent, split]: fits the run's grid contains.

    From the ``planned(model, drug, latent)`` coord (older stores: ``planned(model, latent)``), else
    attrs["grid"] {model: [latents]}, else every (model, latent) with at least one non-empty status.
    """
    models = [str(m) for m in ds["model"].values]
    latents = [int(x) for x in ds["latent"].values]
    shape = (len(models), ds.sizes["drug"], len(latents), ds.sizes["split"])
    if "planned" in ds.variables and "drug" in ds["planned"].dims:
        return np.broadcast_to(np.asarray(ds["planned"].transpose("model", "drug", "latent").values,
                                          dtype=bool)[..., None], shape)
    if "planned" in ds.variables:
        ml = np.asarray(ds["planned"].transpose("model", "latent").values, dtype=bool)
    else:
        grid = json_attr(ds, "grid")
        if grid:
            ml = np.array([[x in {int(v) for v in grid.get(m, [])} for x in latents] for m in models], bool)
        else:
            st = as_str(ds["status"].transpose("model", "drug", "latent", "split", ...).values)
            ml = (st != "").any(axis=(1, 3))
    return np.broadcast_to(ml[:, None, :, None], shape)


def method_done(ds: xr.Dataset) -> np.ndarray:
    """Bool [model, drug, latent, split, method]: the method's scores of that fit count. Where the store
    records the method's own status (``method_status``) it decides: a fit whose other method failed still
    counts for this one; elsewhere (PertVAE's two methods, stores written before it) the fit's status
    stands for all its methods."""
    status = as_str(ds["status"].transpose("model", "drug", "latent", "split").values)
    done = np.broadcast_to((status == "done")[..., None], (*status.shape, ds.sizes["method"]))
    if "method_status" not in ds.data_vars:
        return done
    own = as_str(ds["method_status"].transpose("model", "drug", "latent", "split", "method").values)
    return np.where(own == "", done, own == "done")


def fits_done_at(path: str | Path, keys: Sequence[FitKey]) -> bool:
    """Whether every fit of ``keys`` is "done" in the result store at ``path`` as its files say now (False
    for no keys, or a store this process cannot read: a worker that does not see the driver's disk). A
    cluster task checks it before it runs (harness.run.run_and_store): the driver holds finished tasks'
    futures, so a worker lost later (killed, restarted by --fit-timeout's watchdog) had the scheduler run
    its finished tasks again, their fits stored already."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            group = zarr.open_group(str(path), mode="r")
            models = [str(m) for m in group["model"][:]]
            drugs = [str(d) for d in group["drug"][:]]
            latents = [int(x) for x in group["latent"][:]]
            n_folds = int(np.max(group["fold"][:])) + 1
            status = group["status"]
            cells: dict[tuple[int, int, int], np.ndarray] = {}
            for k in keys:
                cell = (models.index(k.model), drugs.index(k.drug), latents.index(int(k.latent)))
                if cell not in cells:
                    cells[cell] = as_str(status[cell])
                if cells[cell][int(k.repeat) * n_folds + int(k.fold)] != "done":
                    return False
    except Exception:  # noqa: BLE001 - no readable store here: the task runs
        return False
    return bool(keys)
