"""The result store OUT/results.zarr: results[model, drug, latent, split], one zarr v3 group.

Layout (read by harness/report.py with ``xr.open_zarr(path)``):

- dims ``model`` (str), ``drug`` (str), ``latent`` (int), ``split`` (int = repeat * n_folds + fold), with
  non-index coords ``repeat(split)`` and ``fold(split)``;
- float64 vars ``rho_rec_pert, rho_pred_pert, rho_rec, test_loss, epochs, best_epoch, fit_seconds``
  (NaN = not run / not applicable);
- float64 ``score[model, drug, latent, split, method, metric]``: every method's score on every metric
  (pertvae_core.evaluation; methods and metrics are coords, so a new one does not change the schema); a
  model fills the methods it produces (pertvae: pertvae, pertvae_rec; baselines: identity, train_mean,
  mean_shift, pca_latent_linear, ridge_delta), NaN elsewhere;
- float64 ``cell_score[model, drug, latent, split, method, metric, cell_line]``: the per-test-cell-line values
  behind ``score`` (NaN where the cell line is not in the split's test set), and ``gene_score[model, drug,
  latent, split, method, gene_metric, gene]``: per gene, the mean observed and predicted change over the
  split's independent test cell lines and their correlation across them (pertvae_core.evaluation
  .score_detail); ``cell_line`` holds the run's paired cell lines, ``gene`` the cube's gene ids;
- string vars ``status`` ("" = not run, "done", "failed"), ``reason``, ``worker``, ``slurm_job_id``;
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
  n_train counts every non-test cell line of the drug, validation included), ``fingerprint``
  (cube fingerprint + science key hash), ``versions``, ``grid`` {model: [latents]}, ``ceiling`` {drug:
  {"ceiling_delta_pearson", "n_cell_lines", "reason"}}, ``pairing`` {drug: rule}, ``ground_truth`` (the
  synthetic cube's, JSON, "" for real data).

The full store is created once (all NaN, status "") in a temporary directory and renamed into place; each
finished task then writes only its own cells (read-modify-write of its (model, drug, latent) chunks),
values first and ``status`` last, by the driver alone (no concurrent writers). Zarr's local store writes
every chunk atomically (temporary file + rename), so a crash never loses or corrupts finished results;
a fit counts as finished only once its status is written. Every write stores all of its cell's chunks
(empty ones included), so on resume :meth:`ResultStore.repair` can check that a cell with a status has
every chunk on disk, readable, a known status and a fit time for each done fit; a damaged cell (a deleted
or garbage chunk) is reset and its fits are recomputed. A variable whose own metadata (``VAR/zarr.json``) is
missing, unreadable or not the root's consolidated copy of it is rewritten from that copy (zarr reads through
the consolidated copy, so the damage would otherwise stay unseen). Damage that cannot be repaired (no
readable group metadata or coordinates, results.zarr not a directory) raises StoreDamagedError saying what to
move away.
Chunks: one (model, drug, latent) x all splits.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
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
from harness.config import RunConfig, execution_settings, science_key
from harness.contenders import run_metrics
from harness.grid import POOLED, FitKey, model_drugs
from pertvae_core.evaluation import GENE_METRICS
from pertvae_core.methods import METHODS

FLOAT_VARS = ("rho_rec_pert", "rho_pred_pert", "rho_rec", "test_loss", "epochs", "best_epoch", "fit_seconds")
SCORE_VAR = "score"
CELL_VAR = "cell_score"
GENE_VAR = "gene_score"
DETAIL_VARS = (CELL_VAR, GENE_VAR)
STR_VARS = ("status", "reason", "worker", "slurm_job_id")
# Per method of a fit (the baselines' and the run's own methods, each fitted alone): "done"/"failed" and
# the failed one's reason; "" = no per-method record, the fit's status stands for all its methods.
METHOD_VARS = ("method_status", "method_reason")
TEXT_VARS = (*STR_VARS, *METHOD_VARS)
STORE_NAME = "results.zarr"


class StoreMismatchError(ValueError):
    """OUT already holds results of a different config or dataset."""


class StoreDamagedError(ValueError):
    """OUT/results.zarr is damaged beyond repair; the message says what to move away."""


def _beyond_repair(path: Path, why: str) -> StoreDamagedError:
    return StoreDamagedError(
        f"{path} {why}, so its results cannot be trusted or repaired; move it aside (mv {path} "
        f"{path}.damaged) and run the same command again to recompute every fit, or restore it from a backup")


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


def versions() -> dict[str, str]:
    """Versions of the packages that produce the numbers."""
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for pkg in ("pertvae-bench", "torch", "numpy", "scipy", "xarray", "zarr", "dask", "distributed"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
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
def _deferred_interrupts() -> Iterator[None]:
    """Act on a SIGINT or SIGTERM that arrives in the block only after it. zarr writes from a background
    thread that an interrupt of this one does not stop, so an interrupted store creation could go on
    writing files into the directory its cleanup has just removed (seen: a results.zarr.tmp-<pid> left
    behind). Creating the store takes seconds; only the main thread can have signal handlers."""
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
    """An all-NaN dask array chunked like the store (one (model, drug, latent) cell per chunk)."""
    import dask.array as da

    return da.full(shape, np.nan, dtype=np.float64, chunks=(1, 1, 1, *shape[3:]))


def _empty_str(shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, "", dtype=object)


class ResultStore:
    """Handle on OUT/results.zarr. Create/validate with :meth:`open`."""

    def __init__(self, path: Path):
        """Open the group and read its coordinates; StoreDamagedError if that fails."""
        self.path = Path(path)
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
                    self.vars = (*FLOAT_VARS, SCORE_VAR, *DETAIL_VARS, *STR_VARS, *self.method_vars)
                    self._arrays = {v: self._group[v].async_array for v in self.vars}
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
             gene_symbols: Sequence[str] | None = None) -> ResultStore:
        """Open OUT/results.zarr for ``cfg`` on the cube with ``fingerprint``, creating it if absent.

        Raises StoreMismatchError when the store holds another config (science key) or another dataset.
        ``extra_attrs`` (JSON-able values: ceiling, pairing, ground_truth) are stored as JSON strings.
        ``cell_lines`` (the run's paired cell lines) and ``genes`` (the cube's gene ids) are the coordinates
        of the per-cell-line and per-gene scores; ``methods`` those of the scores (the built-in ones and the
        run's own, harness.config ``method``). ``gene_symbols`` (one per gene id, e.g. the cube's
        ``gene_symbol``) become the ``gene_symbol`` coordinate of a new store, for the report's genes.csv.
        """
        out = Path(out_dir)
        path = out / STORE_NAME
        key_hash = science_hash(cfg)
        full_fp = f"{fingerprint}+{key_hash}"
        clean_stale_tmp(out)
        if path.exists() or path.is_symlink():
            store = cls(path)
            stored_fp = store.attrs.get("fingerprint")
            if stored_fp == full_fp:
                store._check_coords(cfg, list(drugs), [str(c) for c in cell_lines], [str(g) for g in genes],
                                    [str(m) for m in methods])
                if len(store.method_vars) < len(METHOD_VARS):
                    store._add_method_vars()
                    store = cls(path)
                return store
            stored_cfg = json.loads(store.attrs.get("config", "{}")).get("science", {})
            if store.attrs.get("data_fingerprint") != fingerprint:
                raise StoreMismatchError(
                    f"{path} holds results for a different dataset (cube fingerprint "
                    f"{store.attrs.get('data_fingerprint')!r}, this run's cube has {fingerprint!r}). "
                    f"Use another --out, or delete {out} to start over.")
            diff = _dict_diff(stored_cfg, science_key(cfg)) or ["(science key hash differs)"]
            raise StoreMismatchError(
                f"{path} holds results of a different config; refusing to mix them. Differences: "
                + "; ".join(diff) + f". Use another --out, or delete {out} to start over.")
        out.mkdir(parents=True, exist_ok=True)
        cls._create(path, cfg, fingerprint, full_fp, list(drugs), dict(n_cell_lines or {}),
                    {k: list(v) for k, v in (n_train_test or {}).items()}, dict(extra_attrs or {}),
                    [str(c) for c in cell_lines], [str(g) for g in genes], [str(m) for m in methods],
                    None if gene_symbols is None else [str(g) for g in gene_symbols])
        return cls(path)

    @staticmethod
    def _create(path: Path, cfg: RunConfig, data_fp: str, full_fp: str, drugs: list[str],
                n_cell_lines: dict[str, int], n_train_test: dict[str, list[float]],
                extra_attrs: dict[str, Any], cell_lines: list[str], genes: list[str],
                methods: list[str], gene_symbols: list[str] | None = None) -> None:
        models = list(cfg.models)
        latents = sorted({int(x) for m in models for x in cfg.latents_for(m)})
        n_split = cfg.n_repeats * cfg.n_folds
        METRICS = run_metrics(models)  # the run's metrics (evaluation's without Dr.VAE)
        shape = (len(models), len(drugs), len(latents), n_split)
        dims = ("model", "drug", "latent", "split")
        study = [d for d in drugs if d != POOLED]
        planned = np.array([[[x in cfg.latents_for(m) and d in model_drugs(cfg, m, study) for x in latents]
                             for d in drugs] for m in models], dtype=bool)
        data_vars: dict[str, Any] = {v: (dims, np.full(shape, np.nan, dtype=np.float64)) for v in FLOAT_VARS}
        data_vars.update({v: (dims, _empty_str(shape)) for v in STR_VARS})
        data_vars.update({v: ((*dims, "method"), _empty_str((*shape, len(methods)))) for v in METHOD_VARS})
        data_vars[SCORE_VAR] = ((*dims, "method", "metric"),
                                np.full((*shape, len(methods), len(METRICS)), np.nan, dtype=np.float64))
        # lazily allocated (dask): never written in full, only cell by cell
        data_vars[CELL_VAR] = ((*dims, "method", "metric", "cell_line"),
                               _nan_lazy((*shape, len(methods), len(METRICS), len(cell_lines))))
        data_vars[GENE_VAR] = ((*dims, "method", "gene_metric", "gene"),
                               _nan_lazy((*shape, len(methods), len(GENE_METRICS), len(genes))))
        split = np.arange(n_split)
        ds = xr.Dataset(
            data_vars,
            coords={
                "model": np.array(models, dtype=object),
                "drug": np.array(drugs, dtype=object),
                "latent": np.array(latents, dtype=np.int64),
                "split": split.astype(np.int64),
                "repeat": ("split", (split // cfg.n_folds).astype(np.int64)),
                "fold": ("split", (split % cfg.n_folds).astype(np.int64)),
                "method": np.array(methods, dtype=object),
                "metric": np.array(METRICS, dtype=object),
                "cell_line": np.array(cell_lines, dtype=object),
                "gene_metric": np.array(GENE_METRICS, dtype=object),
                "gene": np.array(genes, dtype=object),
                "planned": (("model", "drug", "latent"), planned),
                **({} if gene_symbols is None else {"gene_symbol": ("gene", np.array(gene_symbols, object))}),
            },
            attrs={
                "config": json.dumps({"science": science_key(cfg), "execution": execution_settings(cfg)},
                                     sort_keys=True),
                "n_cell_lines": json.dumps(n_cell_lines, sort_keys=True),
                "n_train_test": json.dumps(n_train_test, sort_keys=True),
                "fingerprint": full_fp,
                "data_fingerprint": data_fp,
                "science_key_hash": full_fp.rsplit("+", 1)[-1],
                "versions": json.dumps(versions(), sort_keys=True),
                "grid": json.dumps({m: list(cfg.latents_for(m)) for m in models}),
                "n_folds": cfg.n_folds,
                "n_repeats": cfg.n_repeats,
                **{k: json.dumps(v, sort_keys=True) for k, v in extra_attrs.items()},
            },
        )
        chunks = (1, 1, 1, n_split)
        encoding = {v: {"chunks": chunks} for v in (*FLOAT_VARS, *STR_VARS)}
        encoding[SCORE_VAR] = {"chunks": (*chunks, len(methods), len(METRICS))}
        encoding.update({v: {"chunks": (*chunks, len(methods))} for v in METHOD_VARS})
        encoding[CELL_VAR] = {"chunks": (*chunks, len(methods), len(METRICS), max(1, len(cell_lines)))}
        encoding[GENE_VAR] = {"chunks": (*chunks, len(methods), len(GENE_METRICS), max(1, len(genes)))}
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        try:
            with warnings.catch_warnings(), _deferred_interrupts():
                # zarr warns that consolidated metadata is not in the v3 spec; we keep it so that plain
                # xr.open_zarr(path) reads the store quietly and fast. Region writes never change metadata.
                warnings.simplefilter("ignore", UserWarning)
                # compute=False: the lazy per-cell-line and per-gene arrays get their metadata only
                ds.to_zarr(str(tmp), zarr_format=3, mode="w", consolidated=True, encoding=encoding,
                           compute=False)
                os.rename(tmp, path)
        except BaseException:  # a full disk (or an interrupt raised inside): leave no partial store behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _check_coords(self, cfg: RunConfig, drugs: list[str], cell_lines: list[str],
                      genes: list[str], methods: list[str]) -> None:
        """StoreDamagedError unless the stored coordinates are those this config and cube create."""
        latents = sorted({int(x) for m in cfg.models for x in cfg.latents_for(m)})
        want = (list(cfg.models), drugs, latents, cfg.n_repeats * cfg.n_folds, methods,
                list(run_metrics(cfg.models)),
                cell_lines, genes)
        have = (self.models, self.drugs, self.latents, len(self.repeats), self.methods, self.metrics,
                self.cell_lines, self.genes)
        if have != want:
            raise _beyond_repair(self.path, "has coordinates (model, drug, latent, split, method, metric, "
                                            "cell_line, gene) that do not match its own config and cube")

    def _add_method_vars(self) -> None:
        """Give a store written before :data:`METHOD_VARS` existed those variables, all "" (every chunk
        written, as :meth:`find_damage` expects), and its consolidated metadata their entries."""
        shape = (len(self.models), len(self.drugs), len(self.latents), len(self.repeats), len(self.methods))
        dims = ("model", "drug", "latent", "split", "method")
        ds = xr.Dataset({v: (dims, _empty_str(shape)) for v in METHOD_VARS if v not in self.method_vars})
        encoding = {v: {"chunks": (1, 1, 1, shape[3], shape[4])} for v in ds.data_vars}
        with warnings.catch_warnings(), zarr.config.set({"array.write_empty_chunks": True}):
            warnings.simplefilter("ignore", UserWarning)
            ds.to_zarr(str(self.path), mode="a", zarr_format=3, consolidated=True, encoding=encoding)

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
        return np.asarray(self._group["status"][:])

    def _cell_name(self, cell: tuple[int, int, int]) -> tuple[str, str, int]:
        return (self.models[cell[0]], self.drugs[cell[1]], self.latents[cell[2]])

    def _read_checked(self, var: str, bad: dict[tuple[int, int, int], list[str]]) -> np.ndarray:
        """``var`` in full; cells whose chunk cannot be decoded go into ``bad`` and read as fill values."""
        arr = self._group[var]
        try:
            return np.asarray(arr[:]).astype(object if var in TEXT_VARS else float)
        except Exception:  # a garbage or truncated chunk: find which cells
            pass
        cells = list(np.ndindex(*arr.shape[:3]))
        a = self._arrays[var]

        async def read_all() -> list[Any]:
            reads = (a.getitem((*c, slice(None))) for c in cells)
            return await asyncio.gather(*reads, return_exceptions=True)

        got = sync(read_all())
        text = var in TEXT_VARS
        out = np.full(arr.shape, "" if text else np.nan, dtype=object if text else float)
        for c, value in zip(cells, got, strict=True):
            if isinstance(value, Exception):
                bad[c].append(f"{var}: unreadable chunk")
            else:
                out[c] = np.asarray(value).astype(out.dtype)
        return out

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

        A cell that has any status must have every variable's chunk on disk and decodable, only known
        status values, and a finite fit time for each done fit; a cell whose status chunk is unreadable
        counts all its planned fits.
        """
        bad: dict[tuple[int, int, int], list[str]] = defaultdict(list)
        st = self._read_checked("status", bad).astype(str)
        status_lost = set(bad)
        seconds = self._read_checked("fit_seconds", bad).astype(float)
        for v in (*FLOAT_VARS, SCORE_VAR, *STR_VARS, *self.method_vars):
            if v not in ("status", "fit_seconds"):
                values = self._read_checked(v, bad)
                if v == "method_status":
                    unknown = ~np.isin(values.astype(str), ("", "done", "failed")).reshape(*st.shape[:3], -1)
                    for c in zip(*np.nonzero(unknown.any(axis=3)), strict=True):
                        bad[c].append("method_status: unknown value")
        known = np.isin(st, ("", "done", "failed"))
        for c in zip(*np.nonzero(~known.all(axis=3)), strict=True):
            bad[c].append("status: unknown value")
        started = (st != "").any(axis=3)
        started_cells = [tuple(int(i) for i in c) for c in zip(*np.nonzero(started), strict=True)]
        for v in DETAIL_VARS:  # large: checked cell by cell, only where written
            self._check_decodable(v, started_cells, bad)
        for c in started_cells:
            for v in self.vars:
                key = self._group[v].metadata.encode_chunk_key((*c, *[0] * (self._group[v].ndim - 3)))
                if not (self.path / v / key).is_file():
                    bad[c].append(f"{v}: chunk missing")
        no_time = (st == "done") & ~np.isfinite(seconds)
        for c in zip(*np.nonzero(no_time.any(axis=3)), strict=True):
            if not bad.get(c):
                bad[c].append("fit_seconds: missing for a done fit")
        pm = self.planned_mask()
        n_fits = 0
        for c in bad:
            n_fits += int(pm[c].sum()) if c in status_lost else int(((st[c] == "done") & pm[c]).sum())
        return Repair({self._cell_name(c): sorted(set(why)) for c, why in bad.items()}, n_fits,
                      self._metadata_damage())

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
        n_split = len(self.repeats)
        for m, d, x in damage.cells:
            sel = (self._m[m], self._d[d], self._l[x], slice(None))
            sync(self._arrays["status"].setitem(sel, _empty_str((n_split,))))
            for v in self.vars:
                shape = self._group[v].shape[3:]
                fill = _empty_str(shape) if v in TEXT_VARS else np.full(shape, np.nan)
                sync(self._arrays[v].setitem(sel, fill))
        return damage

    def method_failures(self) -> dict[tuple[str, str, int, int, int], list[tuple[str, str]]]:
        """(model, drug, latent, repeat, fold) -> [(method, reason)] of the methods that failed on their own
        in that fit (``method_status``; {} for a store without it)."""
        if "method_status" not in self.method_vars:
            return {}
        st = np.asarray(self._group["method_status"][:]).astype(object).astype(str)
        why = np.asarray(self._group["method_reason"][:]).astype(object).astype(str)
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
        """Planned, done, failed and missing (planned, not done) fits."""
        st = self.status()
        pm = self.planned_mask()
        done = int(((st == "done") & pm).sum())
        failed = int(((st == "failed") & pm).sum())
        planned = int(pm.sum())
        return {"planned": planned, "done": done, "failed": failed, "missing": planned - done}

    def n_missing(self) -> int:
        """Planned fits that are not done (not run or failed)."""
        return self.counts()["missing"]

    def write(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Write result rows (dicts with model, drug, latent, repeat, fold and result keys) into their cells.

        Rows of one (model, drug, latent) go in one write per variable; ``status`` is written last so a
        crash mid-write leaves those fits not done (they are rerun). Returns the number of rows written.
        """
        groups: dict[tuple[int, int, int], list[tuple[int, Mapping[str, Any]]]] = defaultdict(list)
        n = 0
        for row in rows:
            m, d, l, s = self._index(row["model"], row["drug"], row["latent"], row["repeat"], row["fold"])
            if row.get("status") not in ("done", "failed"):
                raise ValueError(f"row status must be 'done' or 'failed', got {row.get('status')!r} in {row}")
            groups[(m, d, l)].append((s, row))
            n += 1
        for (m, d, l), items in groups.items():
            sync(self._write_cell_rows((m, d, l), items))
        return n

    async def _write_cell_rows(self, cell: tuple[int, int, int],
                               items: list[tuple[int, Mapping[str, Any]]]) -> None:
        """Read-modify-write the (model, drug, latent) chunk of every variable: all values concurrently, then
        ``status`` alone (so a fit is done only once all its values are on disk)."""
        sel = (*cell, slice(None))
        names = self.vars
        arrays = [self._arrays[v] for v in names]
        current = await asyncio.gather(*(a.getitem(sel) for a in arrays))
        new = {}
        for v, row in zip(names, current, strict=True):
            row = np.array(row, dtype=object if v in TEXT_VARS else np.float64)
            for s, r in items:
                if v in METHOD_VARS:
                    given = r.get(v) or {}
                    row[s] = [str(given.get(m, "") or "") for m in self.methods]
                elif v == SCORE_VAR:
                    row[s] = self._score_block(r.get("scores") or {})
                elif v == CELL_VAR:
                    row[s] = self._cell_block(r.get("detail") or {})
                elif v == GENE_VAR:
                    row[s] = self._gene_block(r.get("detail") or {})
                elif v in FLOAT_VARS:
                    row[s] = _float(r.get(v))
                else:
                    row[s] = str(r.get(v, "") or "")
            new[v] = row
        await asyncio.gather(*(self._arrays[v].setitem(sel, new[v]) for v in names if v != "status"))
        await self._arrays["status"].setitem(sel, new["status"])

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
        return xr.open_zarr(str(self.path))

    def to_dataframe(self, planned_only: bool = True) -> pd.DataFrame:
        """One row per fit (model, drug, latent, split, repeat, fold, values, status...)."""
        ds = self.open_dataset()[[*FLOAT_VARS, *STR_VARS]].drop_vars(["planned"]).load()
        df = ds.to_dataframe().reset_index()
        if planned_only:
            pm = self.planned_mask().reshape(-1)
            df = df[pm].reset_index(drop=True)
        for v in STR_VARS + ("model", "drug"):
            df[v] = df[v].astype(str)
        return df


def _float(x: Any) -> float:
    if x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan
