"""The result store OUT/results.zarr: results[model, drug, latent, split], one zarr v3 group.

This module writes, checks and repairs it; harness.results reads it for the report and every other reader
(:func:`harness.results.load_results`: the store in memory, checked for damage); any zarr reader
(``xr.open_zarr(path)``) can read it as well.

Layout:

- dims ``model`` (str), ``drug`` (str), ``latent`` (int), ``split`` (int = repeat * n_folds + fold), with
  non-index coords ``repeat(split)`` and ``fold(split)``;
- float64 vars ``test_loss, epochs, best_epoch, fit_seconds`` (NaN = not run / not applicable;
  ``fit_seconds``: wall time inside the worker, a batched task's shared among its splits) and
  ``fit_cpu_seconds``: the fit's CPU time (harness.tasks.cpu_seconds: the fitting thread's and its plug-in
  processes', which a busy machine does not inflate as it does wall time; the task's shared among its fits
  as their ``fit_seconds`` are); a store written before it gets it (all NaN) when a run resumes it;
- float64 ``score[model, drug, latent, split, method, metric]``: every method's score on every metric
  (pertvae_core.evaluation; methods and metrics are coords, so a new one does not change the schema); a
  model fills the methods it produces (its contender's ``stored_methods``: pertvae: pertvae, pertvae_rec;
  baselines: identity, train_mean, mean_shift, pca_latent_linear, ridge_delta; Figure 2's vae and pca:
  their reconstruction), NaN elsewhere. The paper's metrics are there too, where the contender's
  ``paper_scores`` puts them: rho_pred_pert = score[pertvae, rho_pred_pert], rho_rec_pert = the
  reconstruction's rho_pred_pert (score[pertvae_rec | vae | pca, rho_pred_pert]) and Figure 2's rho_rec =
  score[pertvae_rec | vae | pca, rho_rec]. Stores of ``store_layout`` 1 and 2 hold these three as variables
  ``rho_rec_pert, rho_pred_pert, rho_rec[model, drug, latent, split]``: harness.results reads them as
  layout 3 (:func:`paper_into_score`), and a resume converts the store once (:func:`convert_layout`);
- float64 ``cell_score[model, drug, latent, split, method, metric, cell_line]``: the per-test-cell-line values
  behind ``score`` (NaN where the cell line is not in the split's test set), and ``gene_score[model, drug,
  latent, split, method, gene_metric, gene]``: per gene, the mean observed and predicted change over the
  split's independent test cell lines and their correlation across them (pertvae_core.evaluation
  .score_detail); ``cell_line`` holds the run's paired cell lines, ``gene`` the cube's gene ids;
- string vars ``status`` ("" = not run, "done", "failed"), ``reason``, ``worker``, ``slurm_job_id``;
- string var ``products``: how the fit's matrix products were computed on the worker that ran it
  (pertvae_core.layers.products_way: "fp32", or "bf16: " and how this machine computes bf16 products; "" for
  a fit that trains no model, PCA and the baselines). A store written before it gets it (all "") when a run
  resumes it;
- string vars ``method_status[model, drug, latent, split, method]`` ("done", "failed", or "" where the fit's
  status stands for its methods) and ``method_reason``: a fit of several independently fitted methods (the
  baselines and the run's own) fails when one of them fails, and these say which one and why, so that the
  others' scores still count (:func:`harness.benchmark.method_done`). Stores written before them get them
  (all "") when a run resumes them;
- bool non-index coord ``planned(model, drug, latent)``: whether the run's grid has that cell at all (the
  latent axis is the union over models, so e.g. PertVAE at latent 2 is not planned; with
  ``figure2_scope = "pooled"`` the drug axis ends with the pseudo-drug harness.grid.POOLED, on which only
  Figure 2's VAE and PCA run, and they run on no other drug);
- attrs (JSON strings): ``config`` ({"science": science key, "execution": cluster settings}),
  ``n_cell_lines`` {drug: n}, ``n_train_test`` {drug: [n_train, n_test]} (cell lines, averaged over splits;
  n_train counts the cell lines trained on, validation excluded: harness.run.drug_meta), ``fingerprint``
  (cube fingerprint + science key hash), ``versions``, ``grid`` {model: [latents]}, ``ceiling`` {drug:
  {"ceiling_delta_pearson", "n_cell_lines", "reason"}}, ``pairing`` {drug: rule}, ``ground_truth`` (the
  synthetic cube's, JSON, "" for real data), ``test_sets`` {drug: [repeat][fold] -> the split's test set,
  numbered: splits of one number test the same cell lines; absent in stores written before it, whose
  splits then each count as a test set of their own} (harness.run.test_set_labels); ``split_notes``
  {drug: [line]}, the harness.shapes.split_warnings the run printed, printed again on resume (absent in
  stores written before it, whose resumes print none); in a run with a
  response model, ``response_test_sets`` and ``response_n_train_test`` the same for the response splits
  (their labelled test and training cell lines: harness.run.drug_meta; absent before them, where
  response.md takes the ratio 1/(k - 1) and every split as a test set).

The full store is created once (all NaN, status "") in a temporary directory and renamed into place; each
finished task then writes only its own cells, values first and ``status`` last. On a cluster the worker
writes its fits' per-fit chunks itself (:func:`write_detail_at`: each chunk is one fit's, so no two tasks
share one) and sends back the rest, which the driver alone writes, status last; in process the driver
writes everything. The small variables (every one but the per-cell-line and per-gene scores) have one chunk
per (model, drug, latent) x all splits, read, modified and written again by a write; ``cell_score`` and
``gene_score`` have one chunk per fit (``store_layout`` 2), written whole without a read, so a fit's write
costs its own bytes, not its cell's (a store of layout 1, written before, has one chunk per cell for them
too, and is written that way). Zarr's local store writes every chunk atomically (temporary file + rename),
so a crash never loses or corrupts finished results; a fit counts as finished only once its status is
written. With ``background=True`` (harness.run), :meth:`ResultStore.write` hands its rows to a writer
thread and returns: the writer writes every row kept so far together (one read-modify-write of each small
chunk for all of them), so rows that arrive slowly reach the disk at once, one by one, and rows that arrive
while it writes go together in its next write, and a driver receiving hundreds of fits a second is not held
up. Every read of the store writes the kept rows first; rows kept when the process dies are not done and are
recomputed on resume. A background write that fails is raised by the next ``write`` or ``flush`` on the
driver (whose own rows are not taken), its rows kept for the next flush.

Every write stores all of its chunks (empty ones included), so on resume :meth:`ResultStore.repair` can check
that a cell with a status has every small variable's chunk readable, a known status and a fit time for each
done fit, and that each fit with a status has its per-cell-line and per-gene chunks on disk with a sound
header (these two are large, so their values are not decoded: the zstd frame's magic number and content size
are checked: a chunk damaged past its header is found only when read, e.g. by the report's per-gene table,
which then fails naming zarr's error), and that a cell whose fit times are on disk has its status chunk; a
damaged cell (a deleted or garbage chunk) is reset and its fits are recomputed. A variable whose own
metadata (``VAR/zarr.json``) is missing, unreadable or not the root's consolidated copy of it is rewritten
from that copy (zarr reads through the consolidated copy, so the damage would otherwise stay unseen). Damage
that cannot be repaired (no readable group metadata or coordinates, results.zarr not a directory) raises
StoreDamagedError saying what to move away.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import threading
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from zarr.core.sync import sync

from datasets.cube import pid_alive
from harness.config import RunConfig, execution_settings, resume_flags, science_key
from harness.contenders import REGISTRY, built_in_methods, paper_methods, run_metrics
from harness.grid import POOLED, FitKey, model_drugs
from pertvae_core.evaluation import GENE_METRICS, SCORING
from pertvae_core.methods import METHODS

log = logging.getLogger(__name__)

FLOAT_VARS = ("test_loss", "epochs", "best_epoch", "fit_seconds")
# The paper's per-fit values (pertvae_core.api's row keys): a row's are written into ``score`` at the
# (method, metric) its contender's ``paper_scores`` names; stores of layout 1 and 2 have them as variables of
# their own, read as layout 3 by :func:`paper_into_score` and converted on resume (:func:`convert_layout`).
PAPER_VARS = ("rho_rec_pert", "rho_pred_pert", "rho_rec")
DIMS = ("model", "drug", "latent", "split")
SCORE_VAR = "score"
CELL_VAR = "cell_score"
GENE_VAR = "gene_score"
DETAIL_VARS = (CELL_VAR, GENE_VAR)
STR_VARS = ("status", "reason", "worker", "slurm_job_id")
# Per method of a fit (the baselines' and the run's own methods, each fitted alone): "done"/"failed" and
# the failed one's reason; "" = no per-method record, the fit's status stands for all its methods.
METHOD_VARS = ("method_status", "method_reason")
# versions' entry that is not a package: how the machine would compute bf16 products, whatever the run's
# precision (report.products in run.json, the store's ``products``, say how each fit's were computed)
BF16_KEY = "bf16 products on this CPU, if a run asks for them"
OLD_BF16_KEY = "bf16 products on this CPU"   # its name in runs before 2026-12-05
SOURCE_KEY = "pertvae-bench source"   # versions' digest of the code (harness.report_stamp.source_digest)
FIT_TEXT_VARS = ("products",)   # per fit, added to older stores on resume (as METHOD_VARS)
FIT_FLOAT_VARS = ("fit_cpu_seconds",)   # per fit, added to older stores on resume (all NaN)
TEXT_VARS = (*STR_VARS, *METHOD_VARS, *FIT_TEXT_VARS)
STORE_NAME = "results.zarr"
# 3: the paper's metrics in score[method, metric] (before: PAPER_VARS); 2: cell_score and gene_score chunked
# per fit; 1 (no ``store_layout`` attr): per (model, drug, latent) cell
LAYOUT = 3
# A row key set by :meth:`ResultStore.write_detail` in a worker: its per-fit chunks are on disk already.
DETAIL_STORED = "detail_stored"
# rows kept unwritten at most, beyond which ``write`` waits to write them (a PertVAE row's per-gene block is
# ~0.3 MB)
MAX_PENDING = 256


class StoreMismatchError(ValueError):
    """OUT already holds results of a different config or dataset."""


class StoreDamagedError(ValueError):
    """OUT/results.zarr is damaged beyond repair; the message says what to move away."""


def _beyond_repair(path: Path, why: str) -> StoreDamagedError:
    return StoreDamagedError(
        f"{path} {why}, so its results cannot be trusted or repaired; move it aside (mv {path} "
        f"{path}.damaged) and run pertvae-bench run again with the same settings and --out {path.parent} to "
        f"recompute every fit, or restore it from a backup")


@dataclass(frozen=True)
class Repair:
    """Damaged (model, drug, latent) cells found and reset by :meth:`ResultStore.repair`."""

    cells: dict[tuple[str, str, int], list[str]]  # cell -> what is wrong with it
    n_fits: int  # done fits whose results were lost (every planned fit of a cell whose status is unreadable)
    metadata: dict[str, str] = field(default_factory=dict)  # variable -> what is wrong with its zarr.json

    def describe(self, limit: int = 5) -> str:
        """``model/drug/latent N (what)`` for the first ``limit`` cells."""
        items = [f"{m}/{d}/latent {x} ({', '.join(why)})" for (m, d, x), why in self.cells.items()]
        more = f" and {len(items) - limit} more" if len(items) > limit else ""
        return "; ".join(items[:limit]) + more

    def describe_metadata(self) -> str:
        """``VAR/zarr.json (what)`` for every variable whose own metadata is damaged."""
        return "; ".join(f"{v}/zarr.json ({why})" for v, why in self.metadata.items())


@dataclass(frozen=True)
class _Entry:
    """One row to write: its (model, drug, latent) cell, split and the value of each variable there (a
    scalar, or the fit's block of a variable with more dims; None: all NaN)."""

    cell: tuple[int, int, int]
    split: int
    values: dict[str, Any]


def clean_stale_tmp(out_dir: str | Path) -> list[Path]:
    """Remove ``results.zarr.tmp-<pid>`` left in OUT by a run that is no longer alive; returns them."""
    removed = []
    for tmp in Path(out_dir).glob(f"{STORE_NAME}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid)):
            continue
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def set_aside(out_dir: str | Path) -> Path:
    """Where a layout conversion (:func:`convert_layout`) renames the old store until the new one is in
    place."""
    return Path(out_dir) / f"{STORE_NAME}.before-layout-{LAYOUT}"


def finish_conversion(out_dir: str | Path) -> Path | None:
    """Settle a layout conversion (:func:`convert_layout`) that a kill stopped between its renames
    (:func:`_write_whole`): with no results.zarr, the old store (complete, untouched, renamed aside first)
    goes back into place, to be converted again, where a new run would have started over beside it; with
    the new store in place, the old one left beside it is removed. Returns the store restored, if any."""
    path = Path(out_dir) / STORE_NAME
    old = set_aside(out_dir)
    if not old.is_dir() or old.is_symlink():
        return None
    if path.exists() or path.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
        return None
    os.rename(old, path)
    return path


def files_signature(path: str | Path) -> str:
    """SHA-256 of the names, sizes and modification times of every file under ``path``: changes whenever a
    file is written, added or removed (a stat of each, no read)."""
    root = Path(path)
    h = hashlib.sha256()
    if root.is_file():
        st = root.stat()
        h.update(f"{st.st_size}\0{st.st_mtime_ns}".encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            f = Path(dirpath) / name
            st = f.stat()
            h.update(f"{f.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def known_fingerprint(out_dir: str | Path, cube_path: str | Path) -> str | None:
    """The cube fingerprint OUT/results.zarr was made with, when the cube's files are those recorded then
    (:func:`files_signature`); None otherwise (no store, an older one, or the cube changed): compute it."""
    try:
        attrs = json.loads((Path(out_dir) / STORE_NAME / "zarr.json").read_text()).get("attributes", {})
        recorded = json.loads(attrs.get("cube_files", '""'))
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    fp = attrs.get("data_fingerprint")
    if not recorded or not isinstance(fp, str) or recorded != files_signature(cube_path):
        return None
    return fp


def versions() -> dict[str, str]:
    """Versions of the packages that produce the numbers, and how this machine computes bf16 products (were
    they asked for: an fp32 run records it too)."""
    import importlib.metadata as md
    import platform

    from harness.report_stamp import source_digest
    from pertvae_core.layers import bf16_way  # imports torch: not at harness.store's import

    out = {"python": platform.python_version()}
    for pkg in ("pertvae-bench", "torch", "numpy", "scipy", "xarray", "zarr", "dask", "distributed"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    out[SOURCE_KEY] = source_digest()
    out[BF16_KEY] = bf16_way("cpu", compiled=None)   # of the machine that started the run
    return out


def science_hash(cfg: RunConfig) -> str:
    """SHA-256 (16 hex digits) of the canonical JSON of the science key."""
    return hashlib.sha256(json.dumps(science_key(cfg), sort_keys=True).encode()).hexdigest()[:16]


def _dict_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        if old.get(k, "<unset>") != new.get(k, "<unset>"):
            out.append(f"{k}: {old.get(k, '<unset>')!r} (stored) vs {new.get(k, '<unset>')!r} (now)")
    return out


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Act on a SIGINT or SIGTERM that arrives in the block only after it. zarr writes from a background
    thread that an interrupt of this one does not stop, so an interrupted store creation could go on
    writing files into the directory its cleanup has just removed (seen: a results.zarr.tmp-<pid> left
    behind). Creating the store takes seconds; only the main thread can have signal handlers. Used by
    harness.cluster too, while a local cluster starts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    saved = {sig: h for sig in (signal.SIGINT, signal.SIGTERM) if (h := signal.getsignal(sig)) is not None}
    for sig in saved:
        signal.signal(sig, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if got:
            signal.raise_signal(got[0])  # now, with the handler the run had


def _nan_lazy(shape: tuple[int, ...]) -> Any:
    """An all-NaN dask array chunked like the store's per-fit chunks (never computed: metadata only)."""
    import dask.array as da

    return da.full(shape, np.nan, dtype=np.float64, chunks=(1, 1, 1, 1, *shape[4:]))


def _empty_str(shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, "", dtype=object)


def _store_methods(methods: Sequence[str], cfg: RunConfig) -> list[str]:
    """The store's ``method`` coordinate: ``methods`` (the benchmark's and the run's own), then the
    store-only methods of the run's models (Figure 2's reconstructions, harness.contenders.paper_methods):
    last, so that a store of layout 1 or 2 converts by appending them (:func:`paper_into_score`)."""
    names = [str(m) for m in methods]
    return names + [m for m in paper_methods(cfg.models) if m not in names]


def _renamed_plugins(path: Path, stored: Sequence[str], methods: Sequence[str]) -> str | None:
    """Why a store whose config matches the run's has another ``method`` coordinate (``stored``) than the
    run's (``methods``), where it lacks some of the run's own methods and holds others no built-in model
    scores: the store is sound, a plug-in's ``name`` (its spec unchanged) changed since it was written.
    None otherwise."""
    built_in = set(METHODS) | set(built_in_methods())
    gone = [m for m in stored if m not in methods and m not in built_in]
    new = [m for m in methods if m not in stored and m not in built_in]
    if not gone or not new:
        return None
    return (f"{path} holds the scores of the run's own method(s) {gone}, but its --method / "
            f"--response-method plug-ins (the same specs) are now named {new}: a plug-in's name changed "
            f"since the store was written. Give it its old name back to resume, or use another --out")


def _planned(cfg: RunConfig, models: list[str], drugs: list[str], latents: list[int]) -> np.ndarray:
    """Bool [model, drug, latent]: the cells of the run's grid (a model's latents, on its drugs)."""
    study = [d for d in drugs if d != POOLED]
    return np.array([[[x in cfg.latents_for(m) and d in model_drugs(cfg, m, study) for x in latents]
                      for d in drugs] for m in models], dtype=bool)


def _empty_dataset(cfg: RunConfig, drugs: list[str], cell_lines: list[str], genes: list[str],
                   methods: list[str], gene_symbols: list[str] | None) -> xr.Dataset:
    """The new store's variables (all NaN / "") and coordinates; the large per-cell-line and per-gene
    scores lazy (dask), never written in full, only fit by fit."""
    models = list(cfg.models)
    latents = sorted({int(x) for m in models for x in cfg.latents_for(m)})
    metrics = run_metrics(models)  # the run's metrics (evaluation's, the paper's, Dr.VAE's)
    shape = (len(models), len(drugs), len(latents), cfg.n_repeats * cfg.n_folds)
    data_vars: dict[str, Any] = {v: (DIMS, np.full(shape, np.nan)) for v in (*FLOAT_VARS, *FIT_FLOAT_VARS)}
    data_vars.update({v: (DIMS, _empty_str(shape)) for v in (*STR_VARS, *FIT_TEXT_VARS)})
    data_vars.update({v: ((*DIMS, "method"), _empty_str((*shape, len(methods)))) for v in METHOD_VARS})
    data_vars[SCORE_VAR] = ((*DIMS, "method", "metric"),
                            np.full((*shape, len(methods), len(metrics)), np.nan))
    data_vars[CELL_VAR] = ((*DIMS, "method", "metric", "cell_line"),
                           _nan_lazy((*shape, len(methods), len(metrics), len(cell_lines))))
    data_vars[GENE_VAR] = ((*DIMS, "method", "gene_metric", "gene"),
                           _nan_lazy((*shape, len(methods), len(GENE_METRICS), len(genes))))
    split = np.arange(shape[3])
    coords = {
        "model": np.array(models, dtype=object), "drug": np.array(drugs, dtype=object),
        "latent": np.array(latents, dtype=np.int64), "split": split.astype(np.int64),
        "repeat": ("split", (split // cfg.n_folds).astype(np.int64)),
        "fold": ("split", (split % cfg.n_folds).astype(np.int64)),
        "method": np.array(methods, dtype=object), "metric": np.array(metrics, dtype=object),
        "cell_line": np.array(cell_lines, dtype=object), "gene_metric": np.array(GENE_METRICS, dtype=object),
        "gene": np.array(genes, dtype=object),
        "planned": (("model", "drug", "latent"), _planned(cfg, models, drugs, latents)),
    }
    if gene_symbols is not None:
        coords["gene_symbol"] = ("gene", np.array(gene_symbols, dtype=object))
    return xr.Dataset(data_vars, coords=coords)


def _new_attrs(cfg: RunConfig, data_fp: str, full_fp: str, n_cell_lines: dict[str, int],
               n_train_test: dict[str, list[float]], extra_attrs: dict[str, Any]) -> dict[str, Any]:
    """The new store's attributes (module docstring), JSON strings where they are not plain values."""
    return {
        "config": json.dumps({"science": science_key(cfg), "execution": execution_settings(cfg)},
                             sort_keys=True),
        "n_cell_lines": json.dumps(n_cell_lines, sort_keys=True),
        "n_train_test": json.dumps(n_train_test, sort_keys=True),
        "fingerprint": full_fp,
        "data_fingerprint": data_fp,
        "science_key_hash": full_fp.rsplit("+", 1)[-1],
        "versions": json.dumps(versions(), sort_keys=True),
        "grid": json.dumps({m: list(cfg.latents_for(m)) for m in cfg.models}),
        "n_folds": cfg.n_folds,
        "n_repeats": cfg.n_repeats,
        "store_layout": LAYOUT,
        **{k: json.dumps(v, sort_keys=True) for k, v in extra_attrs.items()},
    }


def _encoding(ds: xr.Dataset) -> dict[str, dict[str, tuple[int, ...]]]:
    """Chunks of every variable (module docstring): the small ones one chunk per (model, drug, latent)
    cell and all its splits; the per-cell-line and per-gene scores one chunk per fit (layout 2 on), so a
    fit's write costs its own bytes."""
    cell = (1, 1, 1, ds.sizes["split"])
    out = {v: {"chunks": cell + ds[v].shape[4:]} for v in ds.data_vars if v not in DETAIL_VARS}
    for v in DETAIL_VARS:
        out[v] = {"chunks": (1, 1, 1, 1, *(max(1, n) for n in ds[v].shape[4:]))}
    return out


def _write_whole(ds: xr.Dataset, path: Path, encoding: dict, compute: bool, every_chunk: bool = False
                 ) -> None:
    """Write ``ds`` as the store at ``path`` through ``path.tmp-<pid>`` and a rename (``compute=False``:
    the lazy variables get their metadata only). ``every_chunk``: all-NaN chunks too, as a write of a fit
    stores them (a new store has none: its cells are not written yet). Nothing is left behind when it
    fails or is interrupted."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        with warnings.catch_warnings(), deferred_interrupts():
            # zarr warns that consolidated metadata is not in the v3 spec; we keep it so that plain
            # xr.open_zarr(path) reads the store quietly and fast. Region writes never change metadata.
            warnings.simplefilter("ignore", UserWarning)
            with zarr.config.set({"array.write_empty_chunks": every_chunk}):
                ds.to_zarr(str(tmp), zarr_format=3, mode="w", consolidated=True, encoding=encoding,
                           compute=compute)
            if path.exists():   # a conversion: the old store goes once the new one is complete
                old = path.with_name(f"{path.name}.before-layout-{LAYOUT}")
                os.rename(path, old)
                os.rename(tmp, path)
                shutil.rmtree(old)
            else:
                os.rename(tmp, path)
    except BaseException:  # a full disk (or an interrupt raised inside): leave no partial store behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fit_counts_of(status: np.ndarray, planned: np.ndarray,
                  method_status: np.ndarray | None) -> dict[str, int]:
    """planned, done, failed, not_run and missing (= planned - done) fits, and ``failed_in_methods``: the
    failed fits in which some methods scored and only others failed (a plug-in's fit failed beside the
    built-in baselines), so that a count of failed fits does not read as scores lost that are not."""
    done = int(((status == "done") & planned).sum())
    failed_fits = (status == "failed") & planned
    in_methods = 0
    if method_status is not None and method_status.size:
        in_methods = int((failed_fits & (method_status == "done").any(axis=-1)).sum())
    failed = int(failed_fits.sum())
    planned_n = int(planned.sum())
    return {"planned": planned_n, "done": done, "failed": failed, "failed_in_methods": in_methods,
            "not_run": planned_n - done - failed, "missing": planned_n - done}


def config_mismatch(path: Path, stored_cfg: Mapping[str, Any], cfg: RunConfig) -> StoreMismatchError:
    """The error of a store at ``path`` holding results of another config (science key ``stored_cfg``)."""
    diff = _dict_diff(dict(stored_cfg), science_key(cfg)) or ["(science key hash differs)"]
    flags = resume_flags(stored_cfg, cfg)
    resume = f" To resume it, give {' '.join(flags)}." if flags else ""
    return StoreMismatchError(
        f"{path} holds results of a different config; refusing to mix them. Differences: "
        + "; ".join(diff) + _data_hint(stored_cfg, cfg) + _precision_hint(stored_cfg, cfg)
        + _scoring_hint(stored_cfg)
        + f".{resume} Use another --out, or delete "
        f"{path.parent} to start over.")


def _scoring_hint(stored_cfg: Mapping[str, Any]) -> str:
    """Why a store of older code is refused: its fits were trained or scored by other rules (SCORING), and
    mixing them with new fits would put numbers that mean different things in one table."""
    if stored_cfg.get("scoring") == SCORING:
        return ""
    return (" (the store was made by a version of pertvae-bench that trains or scores fits otherwise; "
            "its numbers and new ones would not mean the same)")


def _data_hint(stored_cfg: Mapping[str, Any], cfg: RunConfig) -> str:
    """The way on for a store of the synthetic cube its run generated, resumed with --data (its own
    OUT/data.zarr, say) or another preset: no flag gives the stored 'synthetic:<preset>', and deleting OUT
    (the advice) lost the fits, where leaving --data unset or giving the preset resumes them."""
    source = str(stored_cfg.get("data_source", ""))
    preset = source.removeprefix("synthetic:")
    if not source.startswith("synthetic:") or not cfg.data and preset == cfg.preset:
        return ""
    way = " and ".join(w for w, needed in (("leave --data unset", cfg.data),
                                           (f"give --preset {preset}", preset != cfg.preset)) if needed)
    return (f" (its fits are on the synthetic cube its run generated for the {preset} preset: to resume "
            f"them, {way})")


def _precision_hint(stored_cfg: Mapping[str, Any], cfg: RunConfig) -> str:
    """Why the precision can differ though the command did not: ``--precision auto`` (the paper's default)
    is resolved on the machine that starts the command, so the same command resumed on another machine (or
    from a Slurm login node without a GPU) can ask for the other precision."""
    stored = stored_cfg.get("precision")
    if stored is None or stored == cfg.precision:
        return ""
    return (" (--precision auto is resolved on the machine that starts the run: bf16 where it computes "
            "bfloat16 natively, else fp32)")


def failed_words(counts: Mapping[str, int]) -> str:
    """'N failed', saying how many of them failed in some methods only (their other methods scored)."""
    n, k = counts["failed"], counts.get("failed_in_methods", 0)
    if not k:
        return f"{n} failed"
    which = "all" if k == n else f"{k} of them"
    return f"{n} failed ({which} in some methods only: their other methods are scored)"


class ResultStore:
    """Handle on OUT/results.zarr. Create/validate with :meth:`open`."""

    def __init__(self, path: Path, background: bool = False):
        """Open the group and read its coordinates; StoreDamagedError if that fails. ``background``: rows
        are written by a writer thread (module docstring)."""
        self.path = Path(path)
        self.background = bool(background)
        self._pending: list[_Entry] = []
        self._lock = threading.Lock()   # guards _pending, _writer and _error
        self._flushing = threading.Lock()   # one write to disk at a time
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        self._error: BaseException | None = None
        self._cache: dict[str, tuple[np.ndarray, set[tuple[int, int, int]]]] = {}   # _read's
        self._blocks: dict[tuple[tuple[int, int, int], str], np.ndarray] = {}   # _write_entries'
        self._cells: list[tuple[int, int, int]] | None = None
        if not self.path.is_dir():
            raise _beyond_repair(self.path, "is not a directory (a result store is one)")
        if not (self.path / "zarr.json").is_file():
            raise _beyond_repair(self.path, "has no zarr.json (its metadata: config, data fingerprint)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                # every write stores all chunks of its cell, empty ones too: repair() relies on it
                with zarr.config.set({"array.write_empty_chunks": True}):
                    self._group = zarr.open_group(str(self.path), mode="r+")
                    self.method_vars = tuple(v for v in METHOD_VARS if v in self._group)
                    self.fit_text_vars = tuple(v for v in FIT_TEXT_VARS if v in self._group)
                    self.fit_float_vars = tuple(v for v in FIT_FLOAT_VARS if v in self._group)
                    # layout 1 and 2: read (find_damage, dataset), converted before a write (open, resume)
                    self.paper_vars = tuple(v for v in PAPER_VARS if v in self._group)
                    self.vars = (*FLOAT_VARS, *self.paper_vars, SCORE_VAR, *DETAIL_VARS, *STR_VARS,
                                 *self.method_vars, *self.fit_text_vars, *self.fit_float_vars)
                    self._arrays = {v: self._group[v].async_array for v in self.vars}
                    # chunked per fit (layout 2): written whole, never read back by a write
                    self._per_fit = tuple(v for v in DETAIL_VARS if self._group[v].chunks[3] == 1)
                    self._fit_shape = {v: self._group[v].shape[4:] for v in DETAIL_VARS}
            self.attrs = dict(self._group.attrs)
            self.models = [str(m) for m in self._group["model"][:]]
            self.drugs = [str(d) for d in self._group["drug"][:]]
            self.latents = [int(x) for x in self._group["latent"][:]]
            self.repeats = np.asarray(self._group["repeat"][:], dtype=int)
            self.folds = np.asarray(self._group["fold"][:], dtype=int)
            self.n_folds = int(self.folds.max()) + 1
            self._planned = np.asarray(self._group["planned"][:], dtype=bool)
            self.methods = [str(m) for m in self._group["method"][:]]
            self.metrics = [str(m) for m in self._group["metric"][:]]
            self.cell_lines = [str(c) for c in self._group["cell_line"][:]]
            self.genes = [str(g) for g in self._group["gene"][:]]
        except Exception as e:  # zarr raises many types for damaged metadata or coordinates
            raise _beyond_repair(self.path, f"cannot be read ({type(e).__name__}: {e})") from None
        self.layout = int(self.attrs.get("store_layout", 1))
        self._m = {m: i for i, m in enumerate(self.models)}
        self._d = {d: i for i, d in enumerate(self.drugs)}
        self._l = {x: i for i, x in enumerate(self.latents)}

    # ------------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, out_dir: str | Path, cfg: RunConfig, fingerprint: str, *, drugs: Sequence[str],
             n_cell_lines: Mapping[str, int] | None = None,
             n_train_test: Mapping[str, Sequence[float]] | None = None,
             extra_attrs: Mapping[str, Any] | None = None, cell_lines: Sequence[str] = (),
             genes: Sequence[str] = (), methods: Sequence[str] = METHODS,
             gene_symbols: Sequence[str] | None = None, background: bool = False,
             cube_path: str | Path | None = None) -> ResultStore:
        """Open OUT/results.zarr for ``cfg`` on the cube with ``fingerprint``, creating it if absent.

        Raises StoreMismatchError when the store holds another config (science key) or another dataset.
        ``extra_attrs`` (JSON-able values: ceiling, pairing, ground_truth) are stored as JSON strings.
        ``cell_lines`` (the run's paired cell lines) and ``genes`` (the cube's gene ids) are the coordinates
        of the per-cell-line and per-gene scores; ``methods`` those of the scores (the built-in ones and the
        run's own, harness.config ``method``). ``gene_symbols`` (one per gene id, e.g. the cube's
        ``gene_symbol``) become the ``gene_symbol`` coordinate of a new store, for the report's genes.csv.
        ``background``: see :class:`ResultStore`. ``cube_path``: the cube's files are recorded (names,
        sizes, modification times) so that a resume can take the stored fingerprint
        (:func:`known_fingerprint`) instead of reading the cube again.
        """
        out = Path(out_dir)
        path = out / STORE_NAME
        methods = _store_methods(methods, cfg)
        key_hash = science_hash(cfg)
        full_fp = f"{fingerprint}+{key_hash}"
        finish_conversion(out)
        clean_stale_tmp(out)
        if path.exists() or path.is_symlink():
            store = cls(path, background)
            stored_fp = store.attrs.get("fingerprint")
            if stored_fp == full_fp:
                store = store._converted(background)
                store._check_coords(cfg, list(drugs), [str(c) for c in cell_lines], [str(g) for g in genes],
                                    [str(m) for m in methods])
                return store._with_added_vars(background)
            stored_cfg = json.loads(store.attrs.get("config", "{}")).get("science", {})
            if store.attrs.get("data_fingerprint") != fingerprint:
                raise StoreMismatchError(
                    f"{path} holds results for a different dataset (cube fingerprint "
                    f"{store.attrs.get('data_fingerprint')!r}, this run's cube has {fingerprint!r}). "
                    f"Use another --out, or delete {out} to start over.")
            raise config_mismatch(path, stored_cfg, cfg)
        out.mkdir(parents=True, exist_ok=True)
        extra = dict(extra_attrs or {})
        if cube_path is not None:
            extra["cube_files"] = files_signature(cube_path)
        cls._create(path, cfg, fingerprint, full_fp, list(drugs), dict(n_cell_lines or {}),
                    {k: list(v) for k, v in (n_train_test or {}).items()}, extra,
                    [str(c) for c in cell_lines], [str(g) for g in genes], [str(m) for m in methods],
                    None if gene_symbols is None else [str(g) for g in gene_symbols])
        return cls(path, background)

    @classmethod
    def resume(cls, out_dir: str | Path, cfg: RunConfig, fingerprint: str, *, drugs: Sequence[str],
               genes: Sequence[str], methods: Sequence[str] = METHODS, background: bool = False
               ) -> ResultStore | None:
        """OUT/results.zarr when it holds ``cfg``'s results on the cube with ``fingerprint`` (checked as
        :meth:`open` checks them, but for the cell lines, which the data and config determine), else None:
        a resume needs none of the per-drug figures :meth:`open` stores when it creates the store."""
        path = Path(out_dir) / STORE_NAME
        finish_conversion(out_dir)
        if not (path / "zarr.json").is_file():
            return None
        store = cls(path, background)
        if store.attrs.get("fingerprint") != f"{fingerprint}+{science_hash(cfg)}":
            return None
        store = store._converted(background)
        store._check_coords(cfg, list(drugs), None, [str(g) for g in genes], _store_methods(methods, cfg))
        clean_stale_tmp(out_dir)
        return store._with_added_vars(background)

    @staticmethod
    def _create(path: Path, cfg: RunConfig, data_fp: str, full_fp: str, drugs: list[str],
                n_cell_lines: dict[str, int], n_train_test: dict[str, list[float]],
                extra_attrs: dict[str, Any], cell_lines: list[str], genes: list[str],
                methods: list[str], gene_symbols: list[str] | None = None) -> None:
        """Write the new, empty store (all NaN, status "") into a temporary directory and rename it into
        place, so that OUT never holds half a store."""
        ds = _empty_dataset(cfg, drugs, cell_lines, genes, methods, gene_symbols)
        ds.attrs.update(_new_attrs(cfg, data_fp, full_fp, n_cell_lines, n_train_test, extra_attrs))
        _write_whole(ds, path, _encoding(ds), compute=False)

    def _converted(self, background: bool) -> ResultStore:
        """This store, converted to layout 3 when it holds the paper's metrics as variables of their own
        (:func:`convert_layout`, saying so); else itself."""
        if not self.paper_vars:
            return self
        print(f"{self.path}: converting the result store from layout {self.layout} (rho_rec_pert, "
              f"rho_pred_pert and rho_rec as variables of their own) to layout {LAYOUT} (in "
              f"score[method, metric]); every value is kept, this is done once", flush=True)
        convert_layout(self.path)
        return type(self)(self.path, background)

    def _check_coords(self, cfg: RunConfig, drugs: list[str], cell_lines: list[str] | None,
                      genes: list[str], methods: list[str]) -> None:
        """StoreDamagedError unless the stored coordinates are those this config and cube create
        (``cell_lines`` None: not checked)."""
        latents = sorted({int(x) for m in cfg.models for x in cfg.latents_for(m)})
        want = (list(cfg.models), drugs, latents, cfg.n_repeats * cfg.n_folds, methods,
                list(run_metrics(cfg.models)), self.cell_lines if cell_lines is None else cell_lines, genes)
        stored = self.methods
        if set(stored) - set(methods) <= set(METHODS) and [m for m in stored if m in methods] == methods:
            stored = methods   # written before a store held only its run's methods: every built-in one too
        have = (self.models, self.drugs, self.latents, len(self.repeats), stored, self.metrics,
                self.cell_lines, self.genes)
        if have != want:
            renamed = _renamed_plugins(self.path, stored, methods)
            if renamed and have[:4] + have[5:] == want[:4] + want[5:]:
                raise StoreMismatchError(renamed)
            raise _beyond_repair(self.path, "has coordinates (model, drug, latent, split, method, metric, "
                                            "cell_line, gene) that do not match its own config and cube")

    def _with_added_vars(self, background: bool) -> ResultStore:
        """This store, given the variables of :data:`METHOD_VARS`, :data:`FIT_TEXT_VARS` and
        :data:`FIT_FLOAT_VARS` it was written without, all "" or NaN (every chunk written, as
        :meth:`find_damage` expects), and its consolidated metadata their entries, its attributes (config,
        fingerprints) kept; itself when it has them all."""
        if (self.method_vars, self.fit_text_vars, self.fit_float_vars) == (METHOD_VARS, FIT_TEXT_VARS,
                                                                           FIT_FLOAT_VARS):
            return self
        shape = (len(self.models), len(self.drugs), len(self.latents), len(self.repeats))
        ds = xr.Dataset({v: ((*DIMS, "method"), _empty_str((*shape, len(self.methods))))
                         for v in METHOD_VARS if v not in self.method_vars})
        ds = ds.assign({v: (DIMS, _empty_str(shape)) for v in FIT_TEXT_VARS if v not in self.fit_text_vars})
        ds = ds.assign({v: (DIMS, np.full(shape, np.nan)) for v in FIT_FLOAT_VARS
                        if v not in self.fit_float_vars})
        ds.attrs = dict(self.attrs)   # an append writes the dataset's attrs as the group's: keep the store's
        encoding = {v: {"chunks": (1, 1, 1, *ds[v].shape[3:])} for v in ds.data_vars}
        with warnings.catch_warnings(), zarr.config.set({"array.write_empty_chunks": True}):
            warnings.simplefilter("ignore", UserWarning)
            ds.to_zarr(str(self.path), mode="a", zarr_format=3, consolidated=True, encoding=encoding)
        return type(self)(self.path, background)

    # ------------------------------------------------------------------------------------------------
    def _index(self, model: str, drug: str, latent: int, repeat: int, fold: int) -> tuple[int, int, int, int]:
        try:
            split = int(repeat) * self.n_folds + int(fold)
            return (self._m[model], self._d[drug], self._l[int(latent)], split)
        except KeyError as e:
            raise KeyError(f"fit ({model}, {drug}, {latent}, r{repeat}, f{fold}) is not in {self.path}: "
                           f"unknown {e}") from None

    def status(self) -> np.ndarray:
        """The status array [model, drug, latent, split] (str)."""
        return self._read("status")[0].astype(str)

    def _cell_name(self, cell: tuple[int, int, int]) -> tuple[str, str, int]:
        return (self.models[cell[0]], self.drugs[cell[1]], self.latents[cell[2]])

    def _written_cells(self) -> list[tuple[int, int, int]]:
        """The cells whose status chunk is on disk: a write stores all of its cells' chunks, so the others
        were never written (or were lost with their status: not done) and read as fill values."""
        arr = self._group["status"]
        key = arr.metadata.encode_chunk_key
        return [c for c in np.ndindex(*arr.shape[:3]) if (self.path / "status" / key((*c, 0))).is_file()]

    def _read(self, var: str) -> tuple[np.ndarray, set[tuple[int, int, int]]]:
        """``var`` in full (object for text, else float) and the cells whose chunk could not be decoded
        (read as fill values). Only the written cells are read, and what is read is kept until the next
        write (rows are written and the store read by one thread, the driver)."""
        self.flush()
        if var not in self._cache:
            if self._cells is None:
                self._cells = self._written_cells()
            cells, a = self._cells, self._arrays[var]

            async def read_all() -> list[Any]:
                return await asyncio.gather(*(a.getitem((*c, slice(None))) for c in cells),
                                            return_exceptions=True)

            text = var in TEXT_VARS
            out = np.full(self._group[var].shape, "" if text else np.nan, dtype=object if text else float)
            lost = set()
            for c, value in zip(cells, sync(read_all()), strict=True):
                if isinstance(value, Exception):  # a garbage or truncated chunk
                    lost.add(c)
                else:
                    out[c] = np.asarray(value).astype(out.dtype)
            self._cache[var] = (out, lost)
        return self._cache[var]

    def _read_checked(self, var: str, bad: dict[tuple[int, int, int], list[str]]) -> np.ndarray:
        """``var`` in full (:meth:`_read`); cells whose chunk cannot be decoded go into ``bad``."""
        values, lost = self._read(var)
        for c in lost:
            bad[c].append(f"{var}: unreadable chunk")
        return values

    def _check_decodable(self, var: str, cells: list[tuple[int, ...]],
                         bad: dict[tuple[int, int, int], list[str]], batch: int = 16) -> None:
        """Add to ``bad`` the ``cells`` whose chunk of ``var`` cannot be decoded (``batch`` at a time)."""
        a = self._arrays[var]

        async def read(part: list[tuple[int, ...]]) -> list[Any]:
            return await asyncio.gather(*(a.getitem((*c, slice(None))) for c in part), return_exceptions=True)

        for i in range(0, len(cells), batch):
            part = cells[i:i + batch]
            for c, value in zip(part, sync(read(part)), strict=True):
                if isinstance(value, Exception):
                    bad[c].append(f"{var}: unreadable chunk")

    def find_damage(self) -> Repair:
        """The damaged (model, drug, latent) cells, what is wrong with each, and the done fits they hold.

        A cell that has any status must have every small variable's chunk on disk and decodable, only known
        status values and a finite fit time for each done fit, and each of its fits with a status its
        per-cell-line and per-gene chunks on disk with a sound header (module docstring); a cell whose
        status chunk is unreadable counts all its planned fits.
        """
        self.flush()
        bad: dict[tuple[int, int, int], list[str]] = defaultdict(list)
        st = self._read_checked("status", bad).astype(str)
        status_lost = set(bad)
        unmarked = self._unmarked_cells()
        for c in unmarked:
            bad[c].append("status: chunk missing")
        seconds = self._read_checked("fit_seconds", bad).astype(float)
        for v in self.vars:   # the small ones: the per-fit chunks are checked by _check_chunks
            if v not in ("status", "fit_seconds", *DETAIL_VARS):
                values = self._read_checked(v, bad)
                if v == "method_status":
                    unknown = ~np.isin(values.astype(str), ("", "done", "failed")).reshape(*st.shape[:3], -1)
                    for c in zip(*np.nonzero(unknown.any(axis=3)), strict=True):
                        bad[c].append("method_status: unknown value")
        known = np.isin(st, ("", "done", "failed"))
        for c in zip(*np.nonzero(~known.all(axis=3)), strict=True):
            bad[c].append("status: unknown value")
        self._check_chunks(st, bad)
        no_time = (st == "done") & ~np.isfinite(seconds)
        for c in zip(*np.nonzero(no_time.any(axis=3)), strict=True):
            if not bad.get(c):
                bad[c].append("fit_seconds: missing for a done fit")
        pm = self.planned_mask()
        n_fits = 0
        for c in bad:
            n_fits += (int(pm[c].sum()) if c in status_lost else unmarked[c] if c in unmarked
                       else int(((st[c] == "done") & pm[c]).sum()))
        return Repair({self._cell_name(c): sorted(set(why)) for c, why in bad.items()}, n_fits,
                      self._metadata_damage())

    def _unmarked_cells(self) -> dict[tuple[int, int, int], int]:
        """{cell: its fits with a fit time} of the cells whose status chunk is missing but whose
        ``fit_seconds`` chunk holds fit times: their status was lost (a deleted chunk or ``status``
        directory), not never written, and their finished fits would otherwise be rerun unsaid as "not run"
        (after a metadata repair that said "no fit lost"). A chunk too damaged to read counts every planned
        fit of its cell. (A crash between a cell's first values and its status leaves the same: those fits
        had finished too, and are rerun either way.)"""
        written = set(self._written_cells())
        arr, pm = self._group["fit_seconds"], self.planned_mask()
        key = arr.metadata.encode_chunk_key
        out = {}
        for c in np.ndindex(*arr.shape[:3]):
            if c in written or not (self.path / "fit_seconds" / key((*c, 0))).is_file():
                continue
            try:
                n = int(np.isfinite(np.asarray(arr[c], dtype=float)).sum())
            except Exception:  # noqa: BLE001 - zarr raises many types for a garbage chunk
                n = int(pm[c].sum())
            if n:
                out[c] = n
        return out

    def _check_chunks(self, st: np.ndarray, bad: dict[tuple[int, int, int], list[str]]) -> None:
        """Add to ``bad`` the started cells with a chunk missing, or a per-cell-line or per-gene chunk whose
        header is not that of its variable's compressed chunk (those are too large to decode here)."""
        started = [tuple(int(i) for i in c) for c in zip(*np.nonzero((st != "").any(axis=3)), strict=True)]
        undecodable = []
        for v in self.vars:
            arr = self._group[v]
            raw = _zstd_raw_size(arr) if v in DETAIL_VARS else None
            if v in DETAIL_VARS and raw is None:
                undecodable.append(v)   # not zstd: decoded, as small variables are
            for c in started:
                splits = np.nonzero(st[c] != "")[0] if v in self._per_fit else [0]
                for s in splits:
                    key = arr.metadata.encode_chunk_key((*c, int(s), *[0] * (arr.ndim - 4)))
                    problem = _chunk_problem(self.path / v / key, raw)
                    if problem:
                        bad[c].append(f"{v}: {problem}")
        for v in undecodable:
            self._check_decodable(v, started, bad)

    def _consolidated(self) -> dict[str, Any]:
        """The root's consolidated copy of every variable's and coordinate's metadata ({} when absent)."""
        root = json.loads((self.path / "zarr.json").read_text())
        return dict((root.get("consolidated_metadata") or {}).get("metadata") or {})

    def _metadata_damage(self) -> dict[str, str]:
        """Variable or coordinate -> what is wrong with its own zarr.json: missing, unreadable, or not the
        consolidated copy (written together at creation and never changed since)."""
        out = {}
        for name, meta in self._consolidated().items():
            f = self.path / name / "zarr.json"
            try:
                own = json.loads(f.read_bytes())
            except FileNotFoundError:
                out[name] = "missing"
                continue
            except (OSError, ValueError):
                out[name] = "unreadable"
                continue
            if own != meta:
                out[name] = "not the consolidated copy"
        return out

    def repair(self) -> Repair:
        """Rewrite damaged variable metadata from the consolidated copy; reset every damaged cell (status
        first, so a crash leaves it not done) for its fits to be rerun."""
        damage = self.find_damage()
        consolidated = self._consolidated()
        for name in damage.metadata:
            f = self.path / name / "zarr.json"
            f.parent.mkdir(exist_ok=True)
            tmp = f.with_name(f".zarr.json.tmp-{os.getpid()}")
            tmp.write_text(json.dumps(consolidated[name], indent=2))
            os.replace(tmp, f)
        self._reset(damage.cells)
        return damage

    def reset_model(self, model: str) -> int:
        """Reset every fit of ``model`` (status first, so a crash leaves it not done) for them to be rerun;
        the number of its fits that were done or failed."""
        m = self._m[model]
        n = int(np.isin(self.status()[m], ("done", "failed")).sum())
        self._reset([self._cell_name(c) for c in self._written_cells() if c[0] == m])
        return n

    def _reset(self, cells: Sequence[tuple[str, str, int]]) -> None:
        n_split = len(self.repeats)
        if cells:
            self._forget()
            self._blocks.clear()
        for m, d, x in cells:
            sel = (self._m[m], self._d[d], self._l[x], slice(None))
            sync(self._arrays["status"].setitem(sel, _empty_str((n_split,))))
            for v in self.vars:
                shape = self._group[v].shape[3:]
                fill = _empty_str(shape) if v in TEXT_VARS else np.full(shape, np.nan)
                sync(self._arrays[v].setitem(sel, fill))

    def method_failures(self) -> dict[tuple[str, str, int, int, int], list[tuple[str, str]]]:
        """(model, drug, latent, repeat, fold) -> [(method, reason)] of the methods that failed on their own
        in that fit (``method_status``; {} for a store without it)."""
        if "method_status" not in self.method_vars:
            return {}
        st = self._read("method_status")[0].astype(str)
        why = self._read("method_reason")[0].astype(str)
        out: dict[tuple[str, str, int, int, int], list[tuple[str, str]]] = {}
        for m, d, x, s, k in zip(*np.nonzero(st == "failed"), strict=True):
            key = (self.models[m], self.drugs[d], self.latents[x], int(self.repeats[s]), int(self.folds[s]))
            out.setdefault(key, []).append((self.methods[k], str(why[m, d, x, s, k])))
        return out

    def done_keys(self) -> set[FitKey]:
        """Fits whose status is "done"."""
        st = self.status()
        out = set()
        for m, d, l, s in zip(*np.nonzero(st == "done"), strict=True):
            out.add(FitKey(self.models[m], self.drugs[d], self.latents[l], int(self.repeats[s]),
                           int(self.folds[s])))
        return out

    def planned_mask(self) -> np.ndarray:
        """Bool [model, drug, latent, split]: fits the run's grid contains."""
        shape = (len(self.models), len(self.drugs), len(self.latents), len(self.repeats))
        return np.broadcast_to(self._planned[..., None], shape)

    def counts(self) -> dict[str, int]:
        """Planned, done, failed (and of those, failed in some methods only) and missing fits."""
        methods = self._read("method_status")[0].astype(str) if "method_status" in self.method_vars else None
        return fit_counts_of(self.status(), self.planned_mask(), methods)

    def n_missing(self) -> int:
        """Planned fits that are not done (not run or failed)."""
        return self.counts()["missing"]

    def write(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Write result rows (dicts with model, drug, latent, repeat, fold and result keys) into their fits.

        A bad row raises here, before any row is written. ``status`` is written after every value, so a
        crash mid-write leaves those fits not done (they are rerun). With ``background`` the rows reach the
        disk in the writer thread (module docstring). Returns the number of rows.
        """
        entries = [self._entry(r) for r in rows]
        with self._lock:
            self._raise_background_error()
            self._pending.extend(entries)
            now = not self.background or len(self._pending) >= MAX_PENDING
            if not now and self._writer is None:
                self._writer = threading.Thread(target=self._write_behind, name="results.zarr writer",
                                                daemon=True)
                self._writer.start()
        if now:
            self.flush()
        else:
            self._wake.set()
        return len(entries)

    def flush(self) -> None:
        """Write the kept rows to disk now; raises the error of a failed background write (its rows are
        kept and written again by the next flush)."""
        with self._flushing:
            with self._lock:
                self._raise_background_error()
                entries, self._pending = self._pending, []
            if not entries:
                return
            self._forget()
            try:
                sync(self._write_entries(entries))
            except BaseException:
                with self._lock:
                    self._pending[:0] = entries
                raise

    def _write_behind(self) -> None:
        """The writer thread: write whatever is kept each time a write hands it rows."""
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                self.flush()
            except BaseException as e:  # raised on the driver by its next write or flush
                with self._lock:
                    self._error = e

    def _forget(self) -> None:
        """Drop what :meth:`_read` kept (the store is about to change)."""
        self._cache.clear()
        self._cells = None

    def close(self) -> None:
        """Write the kept rows (:meth:`flush`); the store stays usable."""
        self.flush()

    def _raise_background_error(self) -> None:
        """Raise (once) the error of a failed background flush; call with ``_lock`` held."""
        if self._error is not None:
            e, self._error = self._error, None
            raise e

    def _entry(self, row: Mapping[str, Any], only: Sequence[str] | None = None) -> _Entry:
        """A row's value of every variable at its fit (``only``: of those variables), checked (KeyError,
        ValueError) before any write. A row whose per-fit detail a worker wrote already
        (:data:`DETAIL_STORED`) has no value of the per-fit variables: they are not written again."""
        m, d, l, s = self._index(row["model"], row["drug"], row["latent"], row["repeat"], row["fold"])
        if row.get("status") not in ("done", "failed"):
            raise ValueError(f"row status must be 'done' or 'failed', got {row.get('status')!r} in {row}")
        detail = row.get("detail") or {}
        skip = self._per_fit if row.get(DETAIL_STORED) else ()
        values: dict[str, Any] = {}
        for v in self.vars if only is None else only:
            if v in skip:
                continue
            if v in METHOD_VARS:
                given = row.get(v) or {}
                values[v] = np.array([str(given.get(k, "") or "") for k in self.methods], dtype=object)
            elif v == SCORE_VAR:
                values[v] = self._score_block(row_scores(row))
            elif v == CELL_VAR:
                values[v] = self._cell_block(detail) if detail else None   # None: all NaN
            elif v == GENE_VAR:
                values[v] = self._gene_block(detail) if detail else None
            elif v in FLOAT_VARS or v in PAPER_VARS or v in FIT_FLOAT_VARS:
                values[v] = _float(row.get(v))
            else:
                values[v] = str(row.get(v, "") or "")
        return _Entry((m, d, l), s, values)

    def write_detail(self, rows: Sequence[Mapping[str, Any]]) -> list[dict]:
        """In a worker (harness.run): write ``rows``' per-fit chunks of ``cell_score`` and ``gene_score``
        now, and return the rows without their ``detail``, marked :data:`DETAIL_STORED`, so that only their
        small values travel to the driver, which writes them and the status (last, as always: a fit whose
        status the driver never wrote is not done, whatever chunks it has). Each chunk belongs to one fit,
        so workers never write the same chunk but for the same fit again (a retried task: the same values,
        each chunk replaced atomically). The rows come back unchanged, for the driver to write as before,
        when this store keeps those variables per cell (layout 1), or a row is not one it can store or the
        write fails (the driver then raises or reports why, as it does for its own writes)."""
        rows = [dict(r) for r in rows]
        if set(self._per_fit) != set(DETAIL_VARS):
            return rows
        try:
            entries = [self._entry(r, DETAIL_VARS) for r in rows]

            async def write_all() -> None:
                await asyncio.gather(*(self._arrays[v].setitem((*e.cell, e.split), self._value(v, e))
                                       for e in entries for v in DETAIL_VARS))

            sync(write_all())
        except (KeyError, ValueError, OSError):
            log.warning("the per-fit detail of %d row(s) is left to the driver to write", len(rows),
                        exc_info=True)
            return rows
        for r in rows:
            r.pop("detail", None)
            r[DETAIL_STORED] = True
        return rows

    def _value(self, var: str, entry: _Entry) -> Any:
        value = entry.values[var]
        if value is None:
            value = np.full(self._fit_shape[var], np.nan)
        return value

    async def _write_entries(self, entries: list[_Entry]) -> None:
        """Every value of ``entries``, then their ``status``: a small variable's (model, drug, latent) chunk
        is given all its entries and written once; a per-fit chunk is written whole, unread. A small chunk
        is read the first time only and kept (``_blocks``): this process is its only writer, so what it
        last wrote is what is on disk; a write that fails drops what is kept, to be read again."""
        by_cell: dict[tuple[int, int, int], dict[int, _Entry]] = defaultdict(dict)
        for e in entries:
            by_cell[e.cell][e.split] = e   # a fit written twice: the later row
        per_cell = [v for v in self.vars if v not in self._per_fit]
        need = [(c, v) for c in by_cell for v in per_cell if (c, v) not in self._blocks]
        got = await asyncio.gather(*(self._arrays[v].getitem((*c, slice(None))) for c, v in need))
        for (c, v), block in zip(need, got, strict=True):
            self._blocks[(c, v)] = np.array(block, dtype=object if v in TEXT_VARS else np.float64)
        values, status = [], []
        for c, fits in by_cell.items():
            for v in per_cell:
                block = self._blocks[(c, v)]
                for s, e in fits.items():
                    block[s] = self._value(v, e)
                (status if v == "status" else values).append((v, (*c, slice(None)), block))
            values += [(v, (*c, s), self._value(v, e)) for v in self._per_fit for s, e in fits.items()
                       if v in e.values]
        try:
            await asyncio.gather(*(self._arrays[v].setitem(sel, block) for v, sel, block in values))
            await asyncio.gather(*(self._arrays[v].setitem(sel, block) for v, sel, block in status))
        except BaseException:
            self._blocks.clear()
            raise

    def _score_block(self, scores: Mapping[str, Mapping[str, Any]]) -> np.ndarray:
        """[method, metric] float block of a row's ``scores`` {method: {metric: value}} (NaN where absent)."""
        unknown = sorted(set(scores) - set(self.methods))
        if unknown:
            raise ValueError(f"scores for unknown method(s) {unknown}; {self.path} has {self.methods}")
        out = np.full((len(self.methods), len(self.metrics)), np.nan)
        for i, m in enumerate(self.methods):
            for j, k in enumerate(self.metrics):
                out[i, j] = _float(scores.get(m, {}).get(k))
        return out

    def _cell_block(self, detail: Mapping[str, Any]) -> np.ndarray:
        """[method, metric, cell_line] block of a row's ``detail`` {method: evaluation.Scores}."""
        out = np.full((len(self.methods), len(self.metrics), len(self.cell_lines)), np.nan)
        pos = {c: i for i, c in enumerate(self.cell_lines)}
        for i, m in enumerate(self.methods):
            d = detail.get(m)
            if d is None:
                continue
            unknown = [c for c in d.cell_lines if c not in pos]
            if unknown:
                raise ValueError(f"per-cell-line scores for cell line(s) {unknown[:5]} that {self.path} "
                                 f"lacks")
            cols = [pos[c] for c in d.cell_lines]
            for j, k in enumerate(self.metrics):
                if k in d.per_cell:
                    out[i, j, cols] = d.per_cell[k]
        return out

    def _gene_block(self, detail: Mapping[str, Any]) -> np.ndarray:
        """[method, gene_metric, gene] block of a row's ``detail`` {method: evaluation.Scores}."""
        out = np.full((len(self.methods), len(GENE_METRICS), len(self.genes)), np.nan)
        for i, m in enumerate(self.methods):
            d = detail.get(m)
            if d is None:
                continue
            for j, k in enumerate(GENE_METRICS):
                v = np.asarray(d.per_gene[k], dtype=np.float64)
                if v.shape != (len(self.genes),):
                    raise ValueError(f"per-gene scores of {m} have {v.shape[0]} genes, {self.path} has "
                                     f"{len(self.genes)}")
                out[i, j] = v
        return out

    def open_dataset(self) -> xr.Dataset:
        """The store as an xarray Dataset (lazy)."""
        self.flush()
        return xr.open_zarr(str(self.path))

    def to_dataframe(self, planned_only: bool = True) -> pd.DataFrame:
        """One row per fit (model, drug, latent, split, values, status..., fold, repeat)."""
        idx = np.indices((len(self.models), len(self.drugs), len(self.latents), len(self.repeats)))
        idx = idx.reshape(4, -1)
        data: dict[str, Any] = {"model": np.array(self.models, dtype=object)[idx[0]],
                                "drug": np.array(self.drugs, dtype=object)[idx[1]],
                                "latent": np.array(self.latents, dtype=np.int64)[idx[2]],
                                "split": idx[3].astype(np.int64)}
        for v in (*FLOAT_VARS, *self.fit_float_vars, *STR_VARS):
            data[v] = self._read(v)[0].reshape(-1)
        data["fold"] = self.folds[idx[3]].astype(np.int64)
        data["repeat"] = self.repeats[idx[3]].astype(np.int64)
        df = pd.DataFrame(data)
        if planned_only:
            df = df[self.planned_mask().reshape(-1)].reset_index(drop=True)
        for v in STR_VARS + ("model", "drug"):
            df[v] = df[v].astype(str)
        return df

    def dataset(self) -> xr.Dataset:
        """The store in memory as an xarray Dataset (what :meth:`_read` keeps), ``cell_score`` and
        ``gene_score`` lazy (large: read one chunk at a time)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            lazy = xr.open_zarr(str(self.path), chunks=None)
        names = list(lazy.data_vars)
        ds = lazy.drop_vars(names).load()
        for v in names:
            if v not in DETAIL_VARS:
                ds[v] = (lazy[v].dims, self._read(v)[0])
        for v in names:
            if v in DETAIL_VARS:
                ds[v] = lazy[v]
        return ds


def row_scores(row: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A result row's scores {method: {metric: value}} with its paper's values (PAPER_VARS keys) put where
    its model's contender keeps them (``paper_scores``): one place for every metric of a fit."""
    scores = {str(m): dict(v) for m, v in (row.get("scores") or {}).items()}
    c = REGISTRY.get(str(row.get("model")))
    for key, (method, metric) in (c.paper_scores.items() if c is not None else ()):
        if key in row:
            scores.setdefault(method, {})[metric] = row[key]
    return scores


def _float(x: Any) -> float:
    if x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _zstd_raw_size(arr: Any) -> int | None:
    """The decoded bytes of a chunk of the float64 ``arr`` when its codecs are bytes + zstd, else None."""
    names = [type(c).__name__ for c in arr.metadata.codecs]
    if names != ["BytesCodec", "ZstdCodec"]:
        return None
    return int(np.prod(arr.metadata.chunk_grid.chunk_shape)) * 8


def _zstd_content_size(head: bytes) -> int | None:
    """The content size in a zstd frame header (RFC 8878 3.1.1.1), None if ``head`` does not start one or
    its header does not give the size."""
    if len(head) < 6 or head[:4] != ZSTD_MAGIC:
        return None
    fhd = head[4]
    single = (fhd >> 5) & 1
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3]
    size = (1 if single else 0, 2, 4, 8)[fhd >> 6]
    if size == 0 or len(head) < pos + size:
        return None
    value = int.from_bytes(head[pos:pos + size], "little")
    return value + 256 if size == 2 else value


def _chunk_problem(path: Path, raw_size: int | None) -> str | None:
    """"chunk missing", "unreadable chunk" (with ``raw_size``: not a zstd frame of that many bytes), or
    None."""
    try:
        with open(path, "rb") as f:
            head = f.read(18) if raw_size is not None else b""
    except FileNotFoundError:
        return "chunk missing"
    except OSError:
        return "unreadable chunk"
    if raw_size is not None and _zstd_content_size(head) != raw_size:
        return "unreadable chunk"
    return None


# the store as a worker opens it (harness.run: its tasks write their fits' per-fit chunks themselves)
_IN_WORKER: dict[str, tuple[int, ResultStore]] = {}


def write_detail_at(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> list[dict]:
    """:meth:`ResultStore.write_detail` of the store at ``path``, opened once per process (again when its
    metadata changed: a store converted or given new variables); ``rows`` unchanged, for the driver to
    write, when this process cannot open it (e.g. a worker that does not see the driver's disk)."""
    key = str(path)
    try:
        stamp = (Path(path) / "zarr.json").stat().st_mtime_ns
        if key not in _IN_WORKER or _IN_WORKER[key][0] != stamp:
            _IN_WORKER[key] = (stamp, ResultStore(Path(path)))
    except (OSError, StoreDamagedError):
        log.warning("cannot open %s here: the driver writes these rows' detail", path, exc_info=True)
        return [dict(r) for r in rows]
    return _IN_WORKER[key][1].write_detail(rows)


# ---------------------------------------------------------------------------------------------------
# a store of an older layout as layout 3 (harness.results reads through it; a resume converts the store)


def _appended(ds: xr.Dataset, dim: str, names: Iterable[str]) -> list[str]:
    """``ds``'s ``dim`` coordinate (empty when absent) with ``names`` it lacks appended."""
    have = [str(x) for x in ds[dim].values] if dim in ds.coords else []
    return list(dict.fromkeys([*have, *names]))


def paper_into_score(ds: xr.Dataset) -> xr.Dataset:
    """A store of layout 1 or 2 (the paper's metrics as variables of their own, PAPER_VARS) as layout 3
    has it: each model's values in ``score`` at its contender's ``paper_scores`` (method, metric), those
    variables dropped; ``ds`` itself when it has none of them. The ``method`` and ``metric`` coordinates
    get the names they lack appended (as a new store orders them: harness.contenders.run_metrics, and
    harness.prepare.resolve_methods), NaN (or "") elsewhere; the per-cell-line and per-gene scores stay
    lazy (dask, one chunk per cell)."""
    old = [v for v in PAPER_VARS if v in ds.data_vars]
    if not old:
        return ds
    models = [str(m) for m in ds["model"].values]
    where = {m: REGISTRY[m].paper_scores for m in models if m in REGISTRY}
    methods = _appended(ds, "method", (mt for w in where.values() for mt, _ in w.values()))
    metrics = _appended(ds, "metric", (k for w in where.values() for _, k in w.values()))
    if SCORE_VAR not in ds.data_vars:   # a store from before the scores: the paper's metrics alone
        ds = ds.assign({SCORE_VAR: xr.DataArray(np.full((*ds["status"].shape, 0, 0), np.nan),
                                                dims=(*ds["status"].dims, "method", "metric"))})
    for v in DETAIL_VARS:
        if v in ds.data_vars:
            ds[v] = ds[v].chunk(dict.fromkeys(("model", "drug", "latent"), 1))
    ds = ds.reindex({"method": np.array(methods, dtype=object), "metric": np.array(metrics, dtype=object)},
                    fill_value={v: "" for v in METHOD_VARS if v in ds.data_vars})
    score = np.array(ds[SCORE_VAR].transpose(*DIMS, "method", "metric").values, dtype=np.float64)
    for mi, model in enumerate(models):
        for key, (method, metric) in where.get(model, {}).items():
            if key in old:
                vals = np.asarray(ds[key].transpose(*DIMS).values[mi], dtype=np.float64)
                k, j = methods.index(method), metrics.index(metric)
                score[mi, ..., k, j] = np.where(np.isfinite(vals), vals, score[mi, ..., k, j])
    ds[SCORE_VAR] = ((*DIMS, "method", "metric"), score)
    return ds.drop_vars(old)


def convert_layout(path: str | Path) -> None:
    """Rewrite the result store at ``path`` of layout 1 or 2 as layout 3 (:func:`paper_into_score`),
    keeping every value, attribute and coordinate: written whole beside it, then renamed into place.
    harness.run does this once when it resumes such a store."""
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        lazy = xr.open_zarr(str(path), chunks=None)
    detail = [v for v in DETAIL_VARS if v in lazy.data_vars]
    ds = lazy.drop_vars(detail).load()
    for v in detail:
        ds[v] = lazy[v]
    ds = paper_into_score(ds)
    ds.attrs["store_layout"] = LAYOUT
    encoding = _encoding(ds)
    for name in ds.variables:
        ds[name].encoding = {}
    for v in detail:
        ds[v] = ds[v].chunk(dict(zip(ds[v].dims, encoding[v]["chunks"], strict=True)))
    _write_whole(ds, path, encoding, compute=True, every_chunk=True)
