"""``python -m harness.run``: run the benchmark grid on a Dask cluster, stream results into the store, report.

    python -m harness.run                                   # demo preset, synthetic cube, LocalCluster
    python -m harness.run --preset paper --data cube.zarr --cluster slurm --jobs 20 --gpus-per-job 1
    python -m harness.run --help                            # every setting

Rerunning the same command resumes: fits already "done" in OUT/results.zarr are not recomputed, failed ones
are retried, and fits whose stored values are damaged (a deleted or garbage chunk) are recomputed.
Exit status: 0 = every fit done and the report written, 1 = report failed, 2 = bad input (config, data,
paths, store mismatch or damage beyond repair), an OUT that cannot be written (read-only, no space left:
finished fits are kept, rerun to resume), an OUT in use by another run, a cluster that cannot start, or a
cube whose files changed during the run (the fits that ended since are not saved: :class:`CubeFiles`),
3 = grid finished but some fits failed (reasons listed at the end and in OUT/failures.csv; rerun to retry
them), 4 = ``--dry-run`` only: the calibration was disturbed by a busy machine and no estimate is printed
(harness.cost; rerun it when the machine is quieter), 130 = interrupted by Ctrl-C, 143 = terminated by
SIGTERM (rerun to resume).

One run at a time per OUT: a run holds an OS lock on OUT/.lock for its life (harness.outlock); a second one
exits 2 naming the first's pid and host.
"""

# ruff: noqa: E402
# (its imports follow the __main__ hand-off below, which must run before them)
from __future__ import annotations

import sys

if __name__ == "__main__":   # before the heavy imports: a Ctrl-C while they load is one line, exit 130
    from harness.entry import run_module

    sys.exit(run_module("harness.run"))

import contextlib
import csv
import dataclasses
import errno
import io
import json
import logging
import os
import resource
import shlex
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from datasets.disk import DISK_ERRORS, write_failure, write_replacing
from datasets.interrupt import interrupt_code, quiet_unawaited_coroutines, raise_terminated
from harness import cost, entry, outlock
from harness.config import (
    ConfigError,
    RunConfig,
    execution_settings,
    parse_args,
    run_device_kind,
    science_key,
)
from harness.contenders import REGISTRY, RESPONSE_MODELS
from harness.failure_groups import failure_lines
from harness.grid import POOLED, Task, build_grid, remaining, split_drugs, store_drugs
from harness.plugin_import import KnownPlugins
from harness.plugin_import import known as known_plugins
from harness.plugin_sources import rerun_changed
from harness.prepare import (
    RunError,
    check_device,
    check_paths,
    check_response,
    prepare_cube,
    resolve_methods,
    select_drugs,
    unsplittable,
)
from harness.products import emulated_bf16_note
from harness.progress import Progress, WorkModel
from harness.shapes import split_warnings
from harness.store import (
    Repair,
    ResultStore,
    StoreDamagedError,
    StoreMismatchError,
    failed_words,
    files_signature,
    known_fingerprint,
    versions,
    write_detail_at,
)
from harness.tasks import (
    drug_data,
    drug_splits,
    failed_rows,
    paired_cell_lines,
    peak_rss_mib,
    run_task,
    split_data,
    task_limit,
)
from pertvae_core.early_stopping import DIVERGED

log = logging.getLogger(__name__)

# The reason distributed's client gives every future it dropped on losing its scheduler connection (it then
# reconnects); such a task never failed, so the driver submits it again, up to LOST_RESUBMITS times.
CONNECTION_LOST = "scheduler-connection-lost"
LOST_RESUBMITS = 3


def _interrupt_code(e: KeyboardInterrupt) -> int:
    quiet_unawaited_coroutines()   # a store write cut short warns nothing the user can act on
    return interrupt_code(e)


def _say(msg: str) -> None:
    print(msg, flush=True)


def open_out(out: Path) -> outlock.OutLock:
    """Create ``out`` and lock it for this run (before the cube is opened: a read-only or unwritable OUT,
    or one in use by another run, costs nothing). RunError or outlock.OutBusy otherwise."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        return outlock.acquire(out, "harness.run")
    except OSError as e:
        why = write_failure(e, e.filename or out, None, "--out")
        raise RunError(f"--out {out}: {why}") from None


def test_set_labels(splits: Sequence[Any]) -> list[list[int]]:
    """[repeat][fold] -> the split's test set, numbered in order of first appearance: splits of one number
    test the same cell lines (every repeat of a drug in as many cell lines as folds does), and the report's
    tests count them once (pertvae_core.stats.test_set_df)."""
    seen: dict[tuple[str, ...], int] = {}
    out: list[list[int]] = []
    for s in splits:
        if s.fold == 0:
            out.append([])
        out[-1].append(seen.setdefault(tuple(s.test_cell_lines), len(seen)))
    return out


def drug_meta(cfg: RunConfig, cube: Any, cube_path: Path, drug_names: Sequence[str]
              ) -> tuple[dict, dict, dict, dict, list[str], dict, dict, dict]:
    """Per drug (and POOLED, without a ceiling): paired cell lines; [n_train, n_test] cell lines averaged
    over the splits; the noise ceiling of delta_pearson (:func:`drug_ceiling`); the pairing rule. Then the
    sorted paired cell lines of all drugs; each split drug's :func:`test_set_labels`; the
    harness.shapes.split_warnings of each drug that has any; last, the store's attrs
    ``response_test_sets`` and ``response_n_train_test`` of a run with a response model ({} without one):
    each drug's data is read once for all of these (a second loop read every drug again beyond the worker
    cache's four).

    n_train counts the cell lines actually trained on (validation cell lines excluded): the corrected
    resampled t-test (Nadeau & Bengio) takes the sizes of the data a model is fitted on and tested on; the
    response report's tests (harness.contenders.response_splits.response_test_sets) count a repeated test
    set once and take the response splits' own test/train ratio.
    """
    from harness.contenders.response_splits import response_test_sets

    n_cell: dict[str, int] = {}
    n_tt: dict[str, list[float]] = {}
    test_sets: dict[str, list[list[int]]] = {}
    notes: dict[str, list[str]] = {}
    ceiling: dict[str, dict] = {}
    pairing: dict[str, str] = {}
    all_cells: set[str] = set()
    bad: list[tuple[str, str, int]] = []
    responding = bool(set(cfg.models) & set(RESPONSE_MODELS))
    sets: dict[str, list[list[int]]] = {}
    sizes: dict[str, list[float]] = {}
    split = split_drugs(cfg, drug_names)
    for d in store_drugs(cfg, drug_names):
        dd = drug_data(str(cube_path), d, cfg)
        cells = paired_cell_lines(dd)
        all_cells.update(cells)
        n = len(cells)
        if d not in split:   # pooled into Figure 2's fits only: never split on its own
            n_cell[d], pairing[d] = n, str(dd.pairing)
            continue
        try:
            splits = drug_splits(dd, cfg)
        except ValueError as e:
            bad.append((d, str(e), n))
            continue
        if bad:   # a drug that cannot be split ends the run: no ceiling for the others
            continue
        n_cell[d] = n
        n_test = sum(len(s.test_cell_lines) for s in splits) / len(splits)
        n_train = sum(len(s.train_cell_lines) for s in splits) / len(splits)
        n_tt[d] = [float(n_train), float(n_test)]
        test_sets[d] = test_set_labels(splits)
        if d != POOLED and (lines := split_warnings(d, splits)):
            notes[d] = lines
        pairing[d] = str(dd.pairing)
        if d == POOLED:  # reconstruction only: no drug effect to bound
            continue
        ceiling[d] = drug_ceiling(dd, splits, cfg)
        if responding and (got := response_test_sets(dd, cube, cfg)) is not None:
            sets[d], sizes[d] = got
    if bad:
        raise RunError(unsplittable(bad, f" in {cube_path}"))
    response = {"response_test_sets": sets, "response_n_train_test": sizes} if responding else {}
    return n_cell, n_tt, ceiling, pairing, sorted(all_cells), test_sets, notes, response


def drug_ceiling(dd: Any, splits: Sequence[Any], cfg: RunConfig) -> dict:
    """The drug's noise ceiling of delta_pearson (pertvae_core.ceiling): each split's test cell lines'
    replicates in its own z space, as the metric scores them, pooled over the drug's splits; the mean of
    the split values ``ceiling_delta_pearson``, its standard error ``se``, the per-split values and the
    cell lines behind them (or a reason)."""
    from pertvae_core.ceiling import change_ceiling, combine

    per_split = [change_ceiling(split_data(dd, s, cfg.include_test_singletons)) for s in splits]
    both = combine(per_split)
    return {"ceiling_delta_pearson": both["value"], "se": both["se"], "n_cell_lines": both["n_cells"],
            "n_splits": both["n_splits"], "reason": both["reason"], "signal_z": both["signal_z"],
            "per_split": both["per_split"]}


def _ground_truth(cube: Any, drug_names: Sequence[str]) -> dict:
    """The synthetic cube's ground truth {drug: {...}} for the run's drugs ({} for real data)."""
    raw = cube.attrs.get("ground_truth")
    try:
        truth = json.loads(raw) if isinstance(raw, str) else {}
    except json.JSONDecodeError:
        return {}
    return {d: truth[d] for d in drug_names if isinstance(truth, dict) and d in truth}


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text[:2000]


def _failed(task: Task, exc: BaseException, reason: str | None = None) -> list[dict]:
    """failed_rows of a task that raised (or was stopped: ``reason``), each with the exception's traceback
    (for OUT/failures.csv)."""
    tb = "" if reason else "".join(traceback.format_exception(exc)).strip()
    return [dict(r, traceback=tb) for r in failed_rows(task, reason or _reason(exc))]


FAILURE_COLUMNS = ("model", "drug", "latent", "repeat", "fold", "method", "reason", "traceback")


def write_failures(store: ResultStore, out: Path, tracebacks: dict[tuple, str]) -> list[dict]:
    """Write OUT/failures.csv (one row per failed planned fit: key, reason, traceback if known; a fit whose
    methods failed on their own has one row per failed method, naming it) and return its rows; remove a
    stale one when no fit failed."""
    path = out / "failures.csv"
    df = store.to_dataframe()
    df = df[df["status"] == "failed"]
    per_method = store.method_failures()
    rows = []
    for r in df.itertuples():
        key = (r.model, r.drug, int(r.latent), int(r.repeat), int(r.fold))
        fit = dict(zip(FAILURE_COLUMNS[:5], key, strict=True))
        for method, reason in per_method.get(key) or [("", r.reason)]:
            rows.append({**fit, "method": method, "reason": reason,
                         "traceback": tracebacks.get((*key, method) if method else key, "")})
    if not rows:
        path.unlink(missing_ok=True)
        return rows
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=FAILURE_COLUMNS)
    w.writeheader()
    w.writerows(rows)
    write_replacing(path, lambda tmp: tmp.write_text(text.getvalue()))
    return rows


def _failure_summary(rows: list[dict], out: Path, in_methods: int) -> None:
    """The failed fits grouped by cause (harness.failure_groups), on stderr. ``in_methods`` of them failed
    in some methods only (the store's ``failed_in_methods``): counted apart, as the fits whose other methods
    are scored (a --method plug-in that raised) are not lost fits."""
    n_fits = len({tuple(r[k] for k in FAILURE_COLUMNS[:5]) for r in rows})
    n_methods = sum(1 for r in rows if r["method"])
    head = f"{n_fits - in_methods} fit(s) failed"
    if in_methods:
        head += (f", and {in_methods} fit(s) failed in some methods only (their other methods are scored): "
                 f"{n_methods} failed method fit(s) in them")
    elif n_methods:
        head += f" ({n_methods} failed method fit(s) in them)"
    lines = [head + "; reasons:"]
    lines += failure_lines(rows)
    n_diverged = len({tuple(r[k] for k in FAILURE_COLUMNS[:5]) for r in rows if DIVERGED in r["reason"]})
    retry = "run the same command again to retry them"
    if n_diverged:   # seeded fits: a rerun of the same settings diverges the same way
        retry = (f"the {n_diverged} that diverged diverge again with the same settings (change them as their "
                 "reason says)" + (f"; {retry.replace('them', 'the others')}" if n_diverged < n_fits else ""))
    lines.append(f"every failed fit with its reason and traceback: {out / 'failures.csv'}; {retry}")
    print("\n".join(lines), file=sys.stderr, flush=True)


def _progress(cfg: RunConfig, store: ResultStore, tasks: Sequence[Task], counts: dict[str, int]) -> Progress:
    """The cost-weighted progress bar (harness.progress) of ``tasks``, primed with the done fits' times."""
    df = store.to_dataframe()
    done = df[df["status"] == "done"]
    work = WorkModel(zip(done["model"], done["latent"].astype(int), done["fit_seconds"].astype(float),
                         strict=True))
    remaining = Counter((k.model, k.latent) for t in tasks for k in t.fit_keys())
    slots, _, device, _ = cost.worker_slots(cfg)
    cores = cost.local_cores(cfg, device)   # local CPU workers beyond the cores share them
    return Progress(remaining, counts["done"], counts["planned"], work, cfg.progress, tasks=len(tasks),
                    slots=min(slots, cores) if cores else slots)


class CubeChanged(RunError):
    """The cube's files changed while the run was running (:meth:`CubeFiles.check`)."""


@dataclasses.dataclass(frozen=True)
class CubeFiles:
    """The cube's files as the run opened them (harness.store.files_signature: names, sizes, modification
    times). A task reads its drug's data when it starts, in whichever process runs it, so a cube rebuilt at
    its path during a run fed the later fits other data than the earlier ones, all saved under the old
    cube's fingerprint: a task's rows are saved only while the files are unchanged (a stat of each file)."""
    path: Path
    signature: str

    def check(self) -> None:
        try:
            same = files_signature(self.path) == self.signature
        except OSError:   # a file removed during the walk: the cube is being replaced
            same = False
        if not same:
            raise CubeChanged(f"{self.path}: the cube's files changed while this run was running (rebuilt, "
                              f"copied over or edited): the fits that ended since may have read its new data "
                              f"and were not saved")


def _write(store: ResultStore, cfg: RunConfig, rows: list[dict], cube: CubeFiles) -> None:
    """A task's rows into the store, after its predictions (``--save-predictions``, harness.predictions):
    a fit counts as done only once both are on disk. Nothing is written once the cube changed."""
    cube.check()
    if cfg.save_predictions:
        from harness import predictions

        predictions.save(cfg.out_dir, rows, store.genes, store.n_folds)
    store.write(rows)


def _run_in_process(tasks: Sequence[Task], cube: CubeFiles, cfg: RunConfig, store: ResultStore,
                    prog: Progress) -> None:
    for t in tasks:
        try:
            rows = run_task(t, str(cube.path), cfg)
        except Exception as e:  # a task that raises fails its fits; the grid goes on
            rows = _failed(t, e)
        _write(store, cfg, rows, cube)
        prog.update(rows)


def run_and_store(task: Task, cube_path: str, cfg: RunConfig, model: Any, store_path: str) -> list[dict]:
    """A cluster task: :func:`harness.tasks.run_task`, then its fits' per-cell-line and per-gene scores
    written into the store at ``store_path`` by the worker itself (harness.store.write_detail_at), so that
    only the small values come back to the driver, which writes them and the status. Without this, that
    detail (~0.1 MB a fit) crossed the scheduler and was encoded and written on the driver: the most of
    its time per fit on a cluster (benchmarks/test_cluster_sim.py).

    A task whose fits are all done in the store already does nothing (:func:`harness.results.fits_done_at`):
    the scheduler runs a finished task again when the worker that holds its result is lost, though the
    driver has its rows (it holds the futures until the grid ends, for the dashboard)."""
    from harness.results import fits_done_at

    if fits_done_at(store_path, task.fit_keys()):
        log.warning("task %s: its fits are done in the store already (its worker was lost after it finished, "
                    "and the scheduler ran it again); not run again", task.key)
        return []
    return write_detail_at(store_path, run_task(task, cube_path, cfg, model))


def _run_on_cluster(tasks: Sequence[Task], cube: CubeFiles, cfg: RunConfig, store: ResultStore,
                    prog: Progress, handle: Any) -> None:
    token = datetime.now(UTC).strftime("%H%M%S%f")
    futures = {}
    lost: Counter[Task] = Counter()
    where = str(store.path.resolve())
    order = timed_first(tasks)
    # Dask runs tasks submitted together in an order of its own (one worker ran them last first): each
    # task's place is its priority
    priority = {t: len(order) - i for i, t in enumerate(order)}

    def submit(t: Task) -> Any:
        key = dask_key(t, token + (f"-again{lost[t]}" if lost[t] else ""))
        fut = handle.client.submit(run_and_store, t, str(cube.path), cfg, REGISTRY[t.model], where,
                                   resources=handle.resources, retries=cfg.retries, pure=False, key=key,
                                   priority=priority[t])
        futures[fut] = t
        handle.limits[fut.key] = task_limit(t, cfg)
        return fut

    for t in order:
        submit(t)
    # finished futures are held until the grid ends (their rows are small), so that the dashboard's
    # Progress panel counts them as done instead of forgetting them
    for batch in handle.batches(list(futures)):   # stops on a rejected Slurm job or no workers
        for fut, rows in _outcomes(handle.client, batch):
            t = futures[fut]
            if isinstance(rows, BaseException):   # raised after all retries, KilledWorker, cancelled
                if getattr(rows, "reason", None) == CONNECTION_LOST and lost[t] < LOST_RESUBMITS:
                    lost[t] += 1   # the client dropped every future when it lost the scheduler: run it again
                    log.warning("task %s lost with the scheduler connection; submitted again", t.key)
                    handle.add(submit(t))
                    continue
                rows = _failed(t, rows, handle.timed_out.get(fut.key))
            _write(store, cfg, rows, cube)
            prog.update(rows)


def timed_first(tasks: Sequence[Task]) -> list[Task]:
    """``tasks`` with the first of each model's moved to the front, the rest in their order: a cluster runs
    tasks about in the order they are submitted, and the progress line's ETA waits until every model left
    has a fit timed (harness.progress.Eta); in grid order (model by model) the last model's first fit
    would end late in the run."""
    seen: set[str] = set()
    first = [t for t in tasks if t.model not in seen and not seen.add(t.model)]
    return first + [t for t in tasks if t not in first]


def _outcomes(client: Any, batch: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(future, its rows or the exception it ended with) of each of ``batch``: the finished ones' rows
    fetched together (one request, where one per future cost the driver's event loop a round trip each)."""
    finished = {f.key: f for f in batch if f.status == "finished"}
    got = client.gather(finished, errors="skip") if finished else {}
    out = []
    for f in batch:
        rows = got.get(f.key)
        if rows is None:
            try:
                rows = f.result()
            except Exception as e:  # noqa: BLE001 - the task's own exception, recorded with its fits
                rows = e
        out.append((f, rows))
    return out


def dask_key(task: Task, token: str) -> str:
    """The task's Dask key as the dashboard shows it: ``<model>-L<latent>-<drug>-<splits>-<token>``, e.g.
    ``pertvae-L10-selumetinib-r0f0-r0f1-181500123456``, the drug's name as it is (``(pooled)``, ``SN-38``).
    Dask groups keys by their leading alphabetic words (dask.utils.key_split), so every key groups under its
    model, whatever the drug's name."""
    blocks = task.key.rsplit(f"-L{task.latent_label}-", 1)[1]
    return f"{task.model}-L{task.latent_label}-{task.drug}-{blocks}-{token}"


def _dashboard_hint(cfg: RunConfig, link: str | None) -> None:
    if not link:
        return
    _say(f"Dask dashboard: {link} (it counts Dask tasks; the progress line counts fits weighted by their "
         f"expected time, and gives the tasks too)")
    if cfg.cluster == "slurm":
        from urllib.parse import urlparse

        u = urlparse(link)
        port = u.port or 8787
        _say(f"  from your machine: ssh -N -L {port}:{u.hostname}:{port} <login-node>, then open "
             f"http://localhost:{port}{u.path}")


def run(cfg: RunConfig, args: Sequence[str] | None = None) -> int:
    """Run the grid for ``cfg`` (parsed from ``args``, recorded in run.json: None where a caller made
    ``cfg`` itself); see the module docstring for exit codes. SIGTERM is handled like Ctrl-C."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, raise_terminated) if main_thread else None
    try:
        return _run(cfg, args)
    except KeyboardInterrupt as e:  # outside the grid: while preparing, opening the store or reporting
        _say(f"interrupted: {_kept_words(cfg.out_dir / 'results.zarr')}")
        return _interrupt_code(e)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _run(cfg: RunConfig, args: Sequence[str] | None) -> int:
    """Check and lock OUT, then :func:`_run_locked`; a write to OUT that fails (no space left, read-only)
    ends the run with one error line (exit 2), the finished fits kept."""
    out = cfg.out_dir
    created = not out.exists()
    try:
        check_paths(cfg)
        check_device(cfg)
        lock = open_out(out)
    except (RunError, outlock.OutBusy) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    try:
        if lock.stale:
            _say(f"note: {out} was locked by {outlock.describe(lock.stale)}, which ended without releasing "
                 f"it; taking it over")
        return _run_locked(cfg, args)
    except OSError as e:
        if e.errno in IN_THE_WAY:   # e.g. a directory at OUT/run.json: was a traceback
            why = f"{e.filename2 or e.filename}: {e.strerror}, where the run writes a file: move it away"
        elif e.errno in DISK_ERRORS:
            why = write_failure(e, e.filename or out, None, "--out")
        else:
            raise
        print(f"error: {why}; {_kept_words(out / 'results.zarr')}", file=sys.stderr, flush=True)
        return 2
    finally:
        if created:
            _drop_if_unused(out, lock)
        lock.release()


# A path in OUT that is not what the run writes there (a directory where a file goes, or the reverse).
IN_THE_WAY = (errno.EISDIR, errno.ENOTDIR)


def _kept_words(store: Path) -> str:
    """What a run that ended early keeps: the store where it was created (it is made whole or not at all),
    else nothing yet (a hedge 'in OUT/results.zarr (if it exists)' left the user to look)."""
    if (store / "zarr.json").is_file():
        return f"the finished fits in {store} are kept: run the same command again to resume"
    return "no result was written yet; run the same command again"


def _cluster_words(cfg: RunConfig, tasks: Sequence[Task]) -> str:
    """" and the cluster's start" where one was started: none with --cluster none or nothing to run."""
    return " and the cluster's start" if tasks and cfg.cluster != "none" else ""


def _drop_if_unused(out: Path, lock: outlock.OutLock) -> None:
    """Remove OUT, made by this run, when it holds nothing but the lock (input refused, or interrupted
    before any write): a refused run leaves nothing behind. Done while the lock is held."""
    try:
        if [p.name for p in out.iterdir()] == [lock.path.name]:
            lock.path.unlink()
            out.rmdir()
    except OSError:
        pass


def _run_locked(cfg: RunConfig, args: Sequence[str] | None) -> int:
    """Prepare, run the grid, write run.json, failures.csv and the report."""
    out = cfg.out_dir
    t0 = time.perf_counter()
    if entry.STARTED is not None:   # the command's own start: its interpreter and imports included
        t0 = entry.STARTED
    started = datetime.now(UTC) - timedelta(seconds=time.perf_counter() - t0)
    load_start = os.getloadavg()
    try:
        from datasets.cube import CubeError
    except ImportError as e:  # pragma: no cover - package layout problem
        _say(f"error: cannot import datasets: {e}")
        return 2
    try:
        cfg, cube, drug_names, store = _open_run(cfg, out)
    except (RunError, StoreMismatchError, StoreDamagedError, ConfigError, CubeError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    _mark_unfinished(out, started)
    repair = _repair(store)
    for line in rerun_changed(out, store, known_plugins()):
        _say(f"note: {line}")
    tasks, before = _plan(cfg, drug_names, store, out)
    interrupted, tracebacks, ran, used = _execute(cfg, tasks, cube, store, before)
    fits_run, tasks_run, fits_cpu, worker_rss, worker_children_rss = ran
    if interrupted == 2:  # the cluster failed; said
        return 2
    counts = store.counts()
    failures = write_failures(store, out, tracebacks)
    seconds = time.perf_counter() - t0
    run_info = _run_info(cfg, cube.path, store, tasks, counts, repair.n_fits, interrupted)
    run_info["timings"] = {"started": started.isoformat(), "finished": datetime.now(UTC).isoformat(),
                           "seconds": round(seconds, 3), "fits_run": fits_run, "tasks_run": tasks_run,
                           "cpu_seconds": _cpu_seconds(fits_cpu),
                           "load_average": {"start": _load(load_start), "end": _load(os.getloadavg())}}
    run_info["used"] = used
    run_info["command"] = _command(args)
    run_info["peak_rss_mib"] = _peak_rss(worker_rss, worker_children_rss)
    run_info["runs"] = [*_earlier_runs(_read_run_json(out)), {k: run_info[k] for k in RUN_RECORD}]
    out.mkdir(parents=True, exist_ok=True)
    info = json.dumps(run_info, indent=2, sort_keys=True)
    write_replacing(out / "run.json", lambda tmp: tmp.write_text(info))
    if interrupted:
        _say(f"interrupted: {counts['done']} of {counts['planned']} fits are saved in {store.path}; "
             f"run the same command again to resume")
        return interrupted
    _say(f"done: {counts['done']} fits done, {failed_words(counts)}, {counts['not_run']} not run "
         f"({seconds:.1f} s wall since the command started, the data{_cluster_words(cfg, tasks)} included)")
    if repair.n_fits:
        _say(f"repaired: {repair.n_fits} fit(s) of damaged cells recomputed")
    return _report(out, store, failures, counts["failed_in_methods"])


def _command(args: Sequence[str] | None) -> dict[str, Any]:
    """run.json's ``command``: this process's command line (``sys.orig_argv``, shell-quoted: the
    interpreter and ``-m harness.entry`` or the console script included), the directory it ran in (its
    relative paths, e.g. the default OUT ``runs/<preset>``, are from there), and the run's own arguments
    (``pertvae-bench run`` and these rerun it there; None where the caller passed a config, not them)."""
    return {"line": shlex.join(sys.orig_argv), "cwd": os.getcwd(),
            "args": None if args is None else list(args)}


def _mark_unfinished(out: Path, started: datetime) -> None:
    """Record in OUT/run.json, before this run changes the store, that a run started and has not ended (its
    own run.json, written at its end, drops the mark): one that ended without writing it (its output closed,
    exit 141; its cluster failed, exit 2) left the run before it passing for it in ``pertvae-bench info``,
    with that run's timings and its report's files as current while the store had lost or gained fits."""
    info = _read_run_json(out)
    if isinstance(earlier := info.get(outlock.UNFINISHED_RUN), dict):   # a run that ended so, kept
        info["runs"] = [*_earlier_runs(info), {**earlier, "unfinished": True}]
    info[outlock.UNFINISHED_RUN] = {"started": started.isoformat(), "pid": os.getpid()}
    text = json.dumps(info, indent=2, sort_keys=True, default=str)
    write_replacing(out / "run.json", lambda tmp: tmp.write_text(text))


def _read_run_json(out: Path) -> dict[str, Any]:
    """OUT/run.json's contents, {} where there is none or it is not a JSON object."""
    try:
        info = json.loads((out / "run.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


# What run.json's ``runs`` keeps of each run; its top level describes the latest run alone.
RUN_RECORD = ("command", "timings", "used", "peak_rss_mib", "interrupted", "signal")


def _earlier_runs(info: dict[str, Any]) -> list[Any]:
    """run.json's ``runs`` so far, oldest first: a resume rewrites the top level, which lost the earlier
    run's device, command and timings. A run.json written before the list holds its one run at the top."""
    runs = info.get("runs")
    if isinstance(runs, list):
        return runs
    return [{k: info[k] for k in RUN_RECORD if k in info}] if "timings" in info else []


def _open_run(cfg: RunConfig, out: Path) -> tuple[RunConfig, CubeFiles, list[str], ResultStore]:
    """The cube (made for a synthetic run) and its files as opened, the drugs to run and the store opened
    for them; ``cfg`` with the cube's spelling of the drugs. Raises the bad-input errors
    :func:`_run_locked` reports."""
    from datasets.chunk_files import unrecorded_note
    from datasets.cube import cube_fingerprint, drugs, open_cube

    methods = resolve_methods(cfg)   # a plug-in that does not load: refused before the cube is made or hashed
    cube_path = prepare_cube(cfg, out)
    files = CubeFiles(cube_path, files_signature(cube_path))   # before the reads of its fingerprint
    cube = open_cube(cube_path)
    if note := unrecorded_note(cube.attrs):
        _say(f"note: {cube_path}: {note}")
    check_response(cfg, cube, cube_path)
    drug_names = select_drugs(cfg, drugs(cube), cube_path)
    if cfg.drugs is not None:  # the cube's names from here on: workers, science key, store
        cfg = dataclasses.replace(cfg, drugs=tuple(drug_names))
    fingerprint = known_fingerprint(out, cube_path) or cube_fingerprint(cube)
    genes = [str(g) for g in cube["gene"].values]
    store = ResultStore.resume(out, cfg, fingerprint, drugs=store_drugs(cfg, drug_names), genes=genes,
                               methods=methods, background=True)
    if store is None:  # a new store (or a mismatch, which open names): the per-drug figures first
        n_cell, n_tt, ceiling, pairing, cell_lines, test_sets, notes, response = drug_meta(
            cfg, cube, cube_path, drug_names)
        store = ResultStore.open(out, cfg, fingerprint, drugs=store_drugs(cfg, drug_names),
                                 n_cell_lines=n_cell, n_train_test=n_tt,
                                 extra_attrs={"ceiling": ceiling, "pairing": pairing, "test_sets": test_sets,
                                              "split_notes": notes,
                                              "ground_truth": _ground_truth(cube, drug_names),
                                              **response},
                                 cell_lines=cell_lines, genes=genes, methods=methods,
                                 gene_symbols=[str(g) for g in cube["gene_symbol"].values],
                                 background=True, cube_path=cube_path)
    else:   # a resume: the notes its store's run printed (the same splits), as a dry run prints them too
        notes = json.loads(store.attrs.get("split_notes", "{}"))
    for line in (line for d in notes for line in notes[d]):
        _say(line)
    return cfg, files, drug_names, store


def _repair(store: ResultStore) -> Repair:
    """Repair the store's damaged metadata and cells (their fits rerun), saying what was done."""
    repair = store.repair()
    if repair.metadata:   # a variable's chunks lost with its metadata are damaged cells, said next
        _say(f"repairing {store.path}: rewrote {repair.describe_metadata()} from the store's consolidated "
             f"metadata" + ("" if repair.cells else " (no fit lost)"))
    if repair.cells:
        _say(f"repairing {store.path}: {len(repair.cells)} damaged cell(s), {repair.n_fits} done fit(s) lost "
             f"and recomputed now: {repair.describe()}")
    return repair


def _plan(cfg: RunConfig, drug_names: Sequence[str], store: ResultStore, out: Path
          ) -> tuple[list[Task], dict[str, int]]:
    """The tasks left to run (the grid less the store's done fits) and the store's counts before them."""
    spt = cfg.resolved_splits_per_task(cuda=run_device_kind(cfg) == "cuda")   # the workers' device's default
    full = build_grid(cfg, drug_names, splits_per_task=spt)
    before = store.counts()
    tasks = remaining(full, store.done_keys())
    n_fits = sum(t.n_fits for t in tasks)
    n_splits = cfg.n_repeats * cfg.n_folds   # a task holds at most a drug's splits; a cheap model's, all
    cheap = [m for m in cfg.models if REGISTRY[m].cheap] if spt < n_splits else []
    per = f"{min(spt, n_splits)} split(s) per task" + (f"; {', '.join(cheap)}: all {n_splits} of a drug's"
                                                        if cheap else "")
    _say(f"{out}: {before['planned']} fits planned, {before['done']} already done, {n_fits} to run in "
         f"{len(tasks)} tasks ({per}) on cluster '{cfg.cluster}'")
    if tasks and (note := emulated_bf16_note(cfg)):
        _say(f"note: {note}")
    if tasks and cfg.cluster == "slurm" and cfg.gpus_per_job > 1:   # harness.cost.worker_slots counts it so
        n, at_a_time = cfg.gpus_per_job, min(cfg.cores_per_job, cfg.gpus_per_job)
        _say(f"note: --gpus-per-job {n}: a job's worker trains every fit on the job's first GPU only, "
             f"{at_a_time} task(s) at a time (the fewer of --cores-per-job and --gpus-per-job); its other "
             f"{n - 1} GPU(s) are held and stay idle: for more GPUs give more --jobs")
    if warning := cost.graphs_warning(cfg, tasks):
        _say(f"warning: {warning}")
    if tasks and cfg.performance_report and cfg.cluster == "none":
        _say(f"note: --performance-report {cfg.performance_report} is not written: --cluster none runs the "
             f"fits in this process, without Dask (use --cluster local for Dask's performance report)")
    return tasks, before


def _execute(cfg: RunConfig, tasks: Sequence[Task], cube: CubeFiles, store: ResultStore,
             before: dict[str, int]
             ) -> tuple[int, dict[tuple, str], tuple[int, int, float, dict[str, float], dict[str, float]],
                        dict[str, Any]]:
    """Run ``tasks`` in process or on the cluster, library logs in OUT/run.log: (0, or the exit code of an
    interrupt, or 2 when the cluster failed or the cube changed (said); the failed fits' tracebacks; the
    fits and the tasks whose results this run recorded, fewer than ``tasks`` hold when it was
    interrupted, those fits' CPU seconds, their workers' peak memory and their workers' children's; run.json's
    ``used``: what those
    fits ran with, :func:`_used`)."""
    if not tasks:
        return 0, {}, (0, 0, 0.0, {}, {}), _used(None, tasks)
    cluster_error: type[Exception] = RunError
    prog = _progress(cfg, store, tasks, before)
    try:
        import harness.cluster as cluster_mod

        cluster_error = cluster_mod.ClusterError
        # library logging, warnings and failed fits' tracebacks go to OUT/run.log, not the terminal
        with cluster_mod.run_log(cfg.out_dir / "run.log") as log_path:
            if cfg.cluster == "none":
                prog.start()
                with cluster_mod.in_process_threads(1):   # as in one local worker
                    _run_in_process(tasks, cube, cfg, store, prog)
            else:
                _run_with_cluster(cluster_mod, log_path, tasks, cube, cfg, store, prog)
    except KeyboardInterrupt as e:
        return _interrupt_code(e), prog.tracebacks, _ran(prog), _used(prog, tasks)
    except cluster_error as e:
        prog.close()
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2, {}, _ran(prog), _used(prog, tasks)
    except CubeChanged as e:
        prog.close()
        print(f"error: {e}; the {store.counts()['done']} fits done in {store.path} are of the cube as the "
              f"run opened it. Run the same command again: on the same data it resumes, on other data it "
              f"refuses {store.path}", file=sys.stderr, flush=True)
        return 2, {}, _ran(prog), _used(prog, tasks)
    finally:
        prog.close()
    return 0, prog.tracebacks, _ran(prog), _used(prog, tasks)


def _ran(prog: Progress) -> tuple[int, int, float, dict[str, float], dict[str, float]]:
    """The fits (done or failed) and the tasks whose results this run recorded, as ``prog`` counted them,
    those fits' CPU seconds (their ``fit_cpu_seconds``), each of their workers' peak memory in MiB and that
    of each worker's largest ended child process."""
    return (prog.fits_now + prog.failed, prog.tasks_done, prog.fit_cpu_seconds, dict(prog.worker_rss),
            dict(prog.worker_children_rss))


def _peak_rss(workers: dict[str, float], worker_children: dict[str, float]) -> dict[str, Any]:
    """run.json's ``peak_rss_mib``, the peak resident memory in MiB as of run.json's writing, the report
    after it not included: this process's (``driver``; with ``--cluster none`` the fits' included), the
    largest of its child processes that ended and were waited for, or of theirs (``children``: a local
    cluster's workers and their plug-ins, the ``--method`` plug-ins run here; 0 where none), and each
    worker's whose tasks this run recorded, as it measured itself at the end of its last one (``workers``:
    its address, host and pid -> MiB), and its largest ended child process's (``worker_children``: its
    ``--method`` plug-ins, each fitted in a process of its own, torch.compile's compiler; 0 where none; on
    Slurm the only figure of them)."""
    return {"driver": peak_rss_mib(resource.RUSAGE_SELF), "children": peak_rss_mib(resource.RUSAGE_CHILDREN),
            "workers": workers, "worker_children": worker_children}


def _cpu_seconds(fits: float) -> dict[str, float]:
    """run.json's ``timings.cpu_seconds``, where ``seconds`` is wall time alone: this process's user and
    system time from the command's start to run.json's writing, the report after it not included
    (``driver``; with ``--cluster none`` the fits' included), that of its child processes that ended and
    were waited for (``children``: a local cluster's workers, the ``--method`` plug-ins run here), and the
    sum of this run's fits' ``fit_cpu_seconds`` (``fits``: as their workers measured them, wherever they
    ran, e.g. Slurm nodes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"driver": round(own.ru_utime + own.ru_stime, 3),
            "children": round(children.ru_utime + children.ru_stime, 3), "fits": round(fits, 3)}


def _load(avg: tuple[float, float, float]) -> list[float]:
    """A load average (1, 5 and 15 minutes; os.getloadavg), for run.json: on a shared host it tells a
    slow run from a busy machine."""
    return [round(x, 2) for x in avg]


def _used(prog: Progress | None, tasks: Sequence[Task]) -> dict[str, Any]:
    """run.json's ``used``: what this run's fits ran with, where the config (``config.execution``) holds
    the setting as given: ``device``, each torch device the trained models' fits used (as their workers
    resolved "auto": "cpu", "cuda:0") -> its number of fits; ``splits_per_task``, each model's most
    splits in one of this run's tasks (the setting, or its default, capped at a drug's splits; a cheap
    model's tasks hold all of them). {} each when nothing ran."""
    spt: dict[str, int] = {}
    for t in tasks:
        spt[t.model] = max(spt.get(t.model, 0), len(t.splits))
    return {"device": dict(prog.devices.most_common()) if prog else {}, "splits_per_task": spt}


def _run_with_cluster(cluster_mod: Any, log_path: Path, tasks: Sequence[Task], cube: CubeFiles,
                      cfg: RunConfig, store: ResultStore, prog: Progress) -> None:
    """Open the local or Slurm cluster and run ``tasks`` on it, under Dask's performance report if asked."""
    with cluster_mod.open_cluster(cfg, log_path=log_path) as handle:
        if handle.client is not None and known_plugins():   # workers import no plug-in themselves
            handle.client.register_plugin(KnownPlugins(known_plugins()))
        _dashboard_hint(cfg, handle.dashboard_link)
        prog.start()
        report_ctx: Any = contextlib.nullcontext()
        if cfg.performance_report:
            from distributed import performance_report

            Path(cfg.performance_report).parent.mkdir(parents=True, exist_ok=True)
            # inline: BokehJS embedded, so the report opens offline
            report_ctx = performance_report(filename=str(cfg.performance_report), mode="inline")
        with report_ctx:
            _run_on_cluster(tasks, cube, cfg, store, prog, handle)


def _run_info(cfg: RunConfig, cube_path: Path, store: ResultStore, tasks: Sequence[Task],
              counts: dict[str, int], repaired: int, interrupted: int) -> dict[str, Any]:
    """run.json's record of the run (its timings added by the caller)."""
    return {
        "config": {"science": science_key(cfg), "execution": execution_settings(cfg)},
        "cube": str(cube_path),
        "fingerprint": store.attrs.get("fingerprint"),
        "versions": versions(),
        "counts": counts,
        "repaired_fits": repaired,
        "interrupted": bool(interrupted),
        "signal": {130: "SIGINT", 143: "SIGTERM"}.get(interrupted),
    }


def _report(out: Path, store: ResultStore, failures: list[dict], in_methods: int) -> int:
    """Write the report and print its summary: 0, 1 when the report failed, 3 when some fits failed
    (``in_methods`` of them in some methods only: :func:`_failure_summary`). The
    report of a store unchanged since it was rendered is kept (harness.report_stamp). A disk that is full
    or read-only is raised, for :func:`_run` to say so as it does for the fits (exit 2, what to free):
    reported as a failed report, it was the bare 'OSError: [Errno 28] No space left on device' and exit 1."""
    from harness import report_stamp
    from harness.report import ReportError, render_report

    try:
        store.close()
        stamp = report_stamp.fresh(out)
        if stamp is not None:
            report_stamp.restore(out, stamp)
            when = stamp["report"].get("rendered")
            _say(f"report: the store is unchanged since its report was rendered ({when}); kept")
        else:
            report_stamp.forget(out)
            render_report(out)
            report_stamp.record(out)
    except ReportError as e:
        print(f"error: the report failed: {e}", file=sys.stderr, flush=True)
        return 1
    except Exception as e:
        if isinstance(e, OSError) and e.errno in DISK_ERRORS:
            raise
        print(f"error: the report failed: {_reason(e)} (results are safe in {store.path}; "
              f"retry with pertvae-bench report {out})", file=sys.stderr, flush=True)
        return 1
    if (out / "summary.txt").exists():
        _say((out / "summary.txt").read_text().rstrip())
    if failures:
        _failure_summary(failures, out, in_methods)
        return 3
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: parse flags (see --help) and run."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = parse_args(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    if cfg.dry_run:
        return cost.dry_run(cfg)
    return run(cfg, args)

