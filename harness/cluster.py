"""Where tasks run: a Dask LocalCluster (CPU or one worker per GPU), a Slurm cluster, or in-process.

    with open_cluster(cfg) as handle:        # cfg: harness.config.RunConfig
        handle.client.submit(f, ..., resources=handle.resources)

``local``: ``--workers`` processes with 1 thread each (torch threads set to match in every worker); with
CUDA present (and no ``--device cpu``) one worker per GPU, each with its own CUDA_VISIBLE_DEVICES, advertising
the resource ``GPU=1`` (``handle.resources == {"GPU": 1}``). ``slurm``: dask_jobqueue.SLURMCluster,
``adapt()`` between 0 and ``--jobs`` jobs, worker lifetime below the walltime so jobs are replaced before
Slurm kills them.
``none``: no client, the caller runs tasks in-process, with the threads of one local worker
(:func:`in_process_threads`).

Worker processes start with glibc's trim threshold at 1 GiB and mmap threshold at 32 MiB instead of Dask's
default ``MALLOC_TRIM_THRESHOLD_=65536`` (:func:`worker_spawn_environ`): that default also pins the mmap
threshold at 128 KiB, so every tensor of a training step above that size is mmap'ed and unmapped again; a
PertVAE fit ran 1.7x slower in a Dask worker than in a plain process because of it (17.4 s vs 10.4 s for
one demo drug's 10 splits, 1 thread each; 9.3 s with these settings). They also start with glibc's heap in
transparent huge pages (harness.hugepages; a paper-sized step 0.83-0.97x the time).

Library noise stays out of the terminal: :func:`run_log` sends this process's Dask/tornado/bokeh logging
(every logger of theirs, also those distributed's logging config gives a stderr handler of their own, such
as ``tornado.application``, which logs a dashboard client's errors), the root logger's records and Python
warnings to OUT/run.log (timestamped); a local worker's stderr goes there from the moment the worker is
created (the preload harness.worker_stderr, :func:`worker_preloads`), and the :class:`RunLog` worker plugin
adds its logging and warnings.

A Slurm worker job is checked with ``sbatch --test-only`` before anything is queued, and
:meth:`ClusterHandle.as_completed` stops the run (:class:`ClusterError`) when a worker job is rejected or no
worker has joined for ``--worker-timeout`` seconds. A task that runs longer than its limit
(``ClusterHandle.limits``, from ``--fit-timeout``) is cancelled and its worker restarted by the nanny (on
Slurm closed, its job with it): the thread of a task cannot be stopped, its process can
(:meth:`ClusterHandle.watch`). On Slurm a task that ran
(nearly) a whole worker lifetime without finishing is cancelled when it starts again on a new worker: a
worker retiring at its lifetime hands its task on without Dask counting it as suspicious, so such a task
started again on every new job, forever, and its ``--fit-timeout`` clock started again each time. Worker
processes that die while the cluster starts are one :class:`ClusterError`, the rest of the cluster closed.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from harness import hugepages
from harness.cpus import usable_cpus

# A worker's threads: torch's and the BLAS pools, and torch.compile's compile workers (with the default, one
# per core, every local worker would start a pool of Python processes of its own on the first compile)
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TORCHINDUCTOR_COMPILE_THREADS")
# Environment variable naming the network interface Slurm workers use to reach the scheduler ("lo" on a
# single-node test cluster, e.g. "ib0" on a real one); RunConfig has no field for it.
SLURM_INTERFACE_ENV = "HARNESS_SLURM_INTERFACE"
# Environment variable naming the run's log file in a local worker process (harness.worker_stderr).
RUN_LOG_ENV = "HARNESS_RUN_LOG"
LIBRARY_LOGGERS = ("distributed", "dask", "dask_jobqueue", "tornado", "bokeh", "asyncio", "py.warnings",
                   "harness")
LOG_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s: %(message)s"


class LogFormatter(logging.Formatter):
    """run.log's lines (:data:`LOG_FORMAT`) timed in UTC, said: run.json's times are UTC, and in the host's
    local time, unmarked, a failed fit's line sat hours away from the run's recorded start."""

    converter = time.gmtime
    default_msec_format = "%s,%03d UTC"

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)

SILENT_SECONDS = 30.0   # a worker without a heartbeat this long has its tasks timed by the driver alone
# What a task's attempt on a fresh worker falls short of that worker's lifetime: the worker's start, joining
# and plugins come first, and the driver sees run times every ClusterHandle.watch_every s, a heartbeat late
LIFETIME_SLACK_SECONDS = 30.0
# Attempts of one task, each of at least half a lifetime and ended by its worker's leaving, after which it is
# stopped whatever their length: a worker whose start (imports from a slow shared file system, a busy node)
# took more than the slack never shows a whole lifetime, and its task would start again without end
LEFT_WORKERS = 3
SLURM_HINT = ("check --partition, --account, --memory, --walltime, --cores-per-job, --gpus-per-job and "
              "--job-extra against what sinfo shows; the job script is in OUT/run.log")

log = logging.getLogger(__name__)


class ClusterError(ValueError):
    """A cluster that cannot be opened with the given settings; the message names the field and value."""


@dataclass
class ClusterHandle:
    """An open cluster: the client (None for ``none``), dashboard link, task resources and kind.

    ``failures`` collects the errors of rejected Slurm job submissions; ``worker_timeout`` (seconds, 0 =
    forever) bounds how long :meth:`as_completed` waits with no worker connected. ``limits`` {task key:
    seconds} bounds how long a task may run (:meth:`watch`); ``timed_out`` {task key: reason} lists those
    stopped. ``lifetime`` (Slurm: a worker's (lifetime, stagger) seconds, :func:`worker_lifetime`, from
    ``walltime``) stops a task that outlives a worker (:meth:`_outlived`).
    """

    client: Any | None
    dashboard_link: str | None
    resources: dict | None
    kind: str = "local"
    cluster: Any | None = None
    n_workers: int = 0
    info: dict = field(default_factory=dict)
    worker_timeout: float = 0.0
    failures: list[str] = field(default_factory=list)
    limits: dict[str, float] = field(default_factory=dict)
    timed_out: dict[str, str] = field(default_factory=dict)
    watch_every: float = 5.0
    lifetime: tuple[int, int] = (0, 0)
    walltime: str = ""
    _alone_since: float | None = field(default=None, init=False, repr=False)
    _next_watch: float = field(default=0.0, init=False, repr=False)
    _waiting: Any = field(default=None, init=False, repr=False)
    _by_key: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    # task key -> (when it started by this process's clock, the run time last reported, its worker, the run
    # time last seen)
    _started: dict[str, tuple[float, float, str, float]] = field(default_factory=dict, init=False, repr=False)
    # task key -> (the run time last seen of its attempt that ended, that attempt's worker)
    _ended: dict[str, tuple[float, str]] = field(default_factory=dict, init=False, repr=False)
    # task key -> its attempts of half a lifetime or more whose worker left (:meth:`_outlived`)
    _left: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def check(self) -> None:
        """Raise ClusterError when a worker job was rejected, or no worker has been connected for
        ``worker_timeout`` seconds."""
        if self.failures:
            raise ClusterError(f"Slurm rejected a worker job: {self.failures[0]} ({SLURM_HINT})")
        if self.cluster is None or self.worker_timeout <= 0:
            return
        now = time.monotonic()
        if self.cluster.scheduler_info.get("workers"):
            self._alone_since = None
        elif self._alone_since is None:
            self._alone_since = now
        elif now - self._alone_since > self.worker_timeout:
            raise ClusterError(self._no_worker_message())

    def as_completed(self, futures: Sequence[Any], poll: float = 0.1) -> Iterator[Any]:
        """Yield ``futures`` as they finish, one by one (:meth:`batches`)."""
        for batch in self.batches(futures, poll):
            yield from batch

    def batches(self, futures: Sequence[Any], poll: float = 0.1) -> Iterator[list[Any]]:
        """Yield lists of ``futures`` as they finish, each list what finished since the last
        (distributed.as_completed), so that their results can be fetched together; :meth:`check` and
        :meth:`watch` are called meanwhile (a future stopped by :meth:`watch` is yielded as cancelled);
        a future given to :meth:`add` meanwhile is yielded too."""
        from distributed import as_completed

        ac = self._waiting = as_completed(futures)
        self._by_key = {f.key: f for f in futures}
        while not ac.is_empty():
            if ac.has_ready():
                yield ac.next_batch(block=False)
            else:
                self.check()
                self.watch(self._by_key)
                time.sleep(poll)

    def add(self, future: Any) -> None:
        """Wait for ``future`` too in the running :meth:`batches` (a task submitted again)."""
        self._by_key[future.key] = future
        self._waiting.add(future)

    def watch(self, futures: dict[str, Any]) -> None:
        """Every ``watch_every`` seconds: cancel each of ``futures`` (by key) that has run longer than its
        limit on a worker (:meth:`_run_time`: a frozen worker's too), record why in ``timed_out`` and end
        that worker (:meth:`_stop`)."""
        now = time.monotonic()
        if not self.limits or self.client is None or now < self._next_watch:
            return
        self._next_watch = now + self.watch_every
        try:
            running = self.client.run_on_scheduler(_executing)
        except Exception:  # the scheduler is busy or going away: next time
            log.exception("reading the tasks' run times from the scheduler failed")
            return
        for key in set(self._started) - set(running):   # ended (or between attempts)
            _, _, worker, seconds = self._started.pop(key)
            self._ended[key] = (seconds, worker)
        for key, (reported, worker) in running.items():
            seconds = self._run_time(key, reported, worker, now)
            ended = self._ended.pop(key, None)
            limit = self.limits.get(key, 0.0)
            if key not in futures or key in self.timed_out:
                continue
            if limit > 0 and seconds > limit:
                ended_how = "closed, its Slurm job with it" if self.lifetime[0] else "restarted"
                self.timed_out[key] = (f"timed out after {limit:g} s (--fit-timeout, for each fit of the "
                                       f"task); its worker {worker} was {ended_how}")
                log.warning("task %s ran %.0f s, over its limit of %g s: cancelled, ending %s", key, seconds,
                            limit, worker)
                self._stop(futures[key], worker)
            elif ended is not None and self._outlived(key, ended, worker, futures[key]):
                lifetime, stagger = self.lifetime
                n = self._left[key]
                self.timed_out[key] = (
                    f"did not finish in {ended[0]:.0f} s on a Slurm worker, which then left"
                    + (f" ({n} workers in all left while it ran)" if n > 1 else "") + ": a worker "
                    f"lives {lifetime - stagger}-{lifetime + stagger} s (--walltime {self.walltime} less a "
                    f"margin), and a task longer than that would start again on each new worker without "
                    f"end; run again with a longer --walltime or fewer --splits-per-task")
                log.warning("task %s ran %.0f s on %s, which left; started again on %s: cancelled, as it "
                            "cannot finish within a worker's lifetime of %d-%d s", key, ended[0], ended[1],
                            worker, lifetime - stagger, lifetime + stagger)
                self._stop(futures[key], worker)

    def _stop(self, future: Any, worker: str) -> None:
        """Cancel ``future`` and end ``worker``, whose thread would run on: its nanny restarts it, or on
        Slurm it is closed with its nanny (:func:`_close_worker`) and its job ends (adapt() submits a new
        one). Restarted inside its job, a Slurm worker's lifetime started again there and outlived the job:
        Slurm killed the job at its walltime with the next task in it."""
        self.client.cancel([future])
        try:
            if self.lifetime[0]:
                self.client.run_on_scheduler(_close_worker, address=worker)
            else:
                self.client.restart_workers([worker], raise_for_error=False)
        except Exception:
            log.exception("ending worker %s failed", worker)

    def _outlived(self, key: str, ended: tuple[float, str], worker: str, future: Any) -> bool:
        """Whether task ``key``, starting again on ``worker`` and still pending, had its attempt ``ended``
        (the run time last seen, its worker) on a worker that left after (nearly) a whole worker lifetime:
        the shortest, less :data:`LIFETIME_SLACK_SECONDS` (a quarter of it at most); or this is the
        :data:`LEFT_WORKERS`-th attempt of half a lifetime or more whose worker left. It cannot finish on
        any worker then. A retry on the same worker, or while the first still runs, is an exception's."""
        lifetime, stagger = self.lifetime
        shortest = lifetime - stagger
        seconds, where = ended
        if (not lifetime or where == worker or getattr(future, "status", "pending") != "pending"
                or seconds < shortest / 2):
            return False
        try:
            if where in self.client.run_on_scheduler(_worker_addresses):
                return False
        except Exception:  # the scheduler is busy or going away: the task goes on
            log.exception("reading the workers from the scheduler failed")
            return False
        self._left[key] = self._left.get(key, 0) + 1
        return (seconds >= shortest - min(LIFETIME_SLACK_SECONDS, shortest / 4)
                or self._left[key] >= LEFT_WORKERS)

    def _run_time(self, key: str, reported: float, worker: str, now: float) -> float:
        """Seconds task ``key`` has run on ``worker``: what the scheduler reports (as of the worker's last
        heartbeat), or the time since this process first saw it running, whichever is longer. A worker that
        stops heartbeating (frozen, or its event loop starved by a fit that holds the GIL) keeps reporting
        the same run time, so the reported one alone never passed the limit. A run time that fell, or
        another worker, is a new attempt of the task (a retry)."""
        start, last, where, seen = self._started.get(key, (math.inf, math.inf, "", 0.0))
        if reported < last or where != worker:
            if where:
                self._ended[key] = (seen, where)
            start = now - reported
        seconds = max(reported, now - start)
        self._started[key] = (start, reported, worker, seconds)
        return seconds

    def _no_worker_message(self) -> str:
        t = f"no Dask worker joined in {self.worker_timeout:g} s (--worker-timeout; 0 waits forever)"
        if self.kind != "slurm":
            return f"{t}: the worker processes failed to start or died; see OUT/run.log"
        ids = [str(j) for j in (getattr(w, "job_id", None) for w in self.cluster.workers.values()) if j]
        jobs = _squeue(ids) if ids else "no job was submitted"
        where = getattr(self.cluster.scheduler, "address", None) or "the scheduler"
        return (f"{t}; Slurm jobs: {jobs}. Check why they wait (squeue -j JOBID -o %r) or failed (their logs "
                f"in OUT/slurm-logs), and that the compute nodes can reach {where} (set "
                f"{SLURM_INTERFACE_ENV} to their network interface, e.g. ib0); raise --worker-timeout if "
                f"jobs queue for long")


def _executing(dask_scheduler: Any) -> dict[str, tuple[float, str]]:
    """On the scheduler: {task key: (seconds it has run, worker address)} of every executing task, as of
    the workers' last heartbeats. Only tasks still processing: a worker's list is replaced at each of its
    heartbeats and never pruned between them, so a worker that stopped heartbeating leaves the task that
    had just finished there (a frozen worker's finished PertVAE task was cancelled and its worker's
    restart named it). A worker silent for :data:`SILENT_SECONDS` has every task it was given listed (at 0 s
    where its heartbeat did not list it), so that the watchdog counts the time of the one it hangs in."""
    import time as clock

    now = clock.time()
    out = {}
    for ws in dask_scheduler.workers.values():
        running = {ts: float(seconds) for ts, seconds in ws.executing.items() if ts.state == "processing"}
        if now - ws.last_seen > SILENT_SECONDS:
            running = {ts: running.get(ts, 0.0) for ts in ws.processing} | running
        out |= {str(ts.key): (seconds, ws.address) for ts, seconds in running.items()}
    return out


async def _close_worker(dask_scheduler: Any, address: str) -> str:
    """On the scheduler: remove worker ``address`` and close it, its nanny with it, its results lost (the
    scheduler computes again those still wanted). Not retire_workers: it gives up on a worker whose results
    no other worker can take (a run holds its finished futures; with one Slurm job there is no other
    worker), and the worker stayed, its thread in the stopped task."""
    import time as clock

    return await dask_scheduler.remove_worker(address, close=True, expected=True,
                                              stimulus_id=f"harness-stop-task-{clock.time()}")


def _worker_addresses(dask_scheduler: Any) -> list[str]:
    """On the scheduler: the addresses of its workers."""
    return list(dask_scheduler.workers)


def _squeue(ids: Sequence[str]) -> str:
    """``ID STATE (REASON)`` of Slurm jobs ``ids``, or the ids alone when squeue cannot tell."""
    try:
        r = subprocess.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T (%r)"], capture_output=True,
                           text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ", ".join(ids)
    states = [line.strip() for line in r.stdout.splitlines() if line.strip()]
    return ", ".join(states) if r.returncode == 0 and states else f"{', '.join(ids)} (not in squeue)"


def _command_error(text: str) -> str:
    """The stderr part of a failed sbatch call (dask_jobqueue's message or sbatch's own), on one line."""
    _, sep, err = text.partition("stderr:")
    lines = [x.strip() for x in (err if sep else text).splitlines() if x.strip()]
    return "; ".join(lines) or text.strip()


class _AppendHandler(logging.Handler):
    """Appends formatted records to a file. Not a StreamHandler on purpose: while a cluster is open,
    distributed's ``silence_logs`` lowers every StreamHandler of its loggers to ERROR."""

    def __init__(self, path: Path):
        super().__init__()
        self._file = path.open("a", encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._file.write(self.format(record) + "\n")
            self._file.flush()
        except OSError:  # a full or failing disk: the line is lost, the run says why when it writes results
            pass
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)

    def close(self) -> None:
        self._file.close()
        super().close()


def _library_loggers() -> list[logging.Logger]:
    """:data:`LIBRARY_LOGGERS` and every existing logger below them that has handlers of its own:
    distributed's logging config gives ``tornado.application``, ``distributed.client`` and
    ``distributed.gc`` their own stderr handler with ``propagate=False``, so redirecting their parents
    alone lets tornado's "Uncaught exception" tracebacks (a dashboard tab closed mid-run) reach the
    terminal."""
    names = set(LIBRARY_LOGGERS)
    for name, lg in list(logging.Logger.manager.loggerDict.items()):
        if (isinstance(lg, logging.Logger) and lg.handlers
                and any(name.startswith(f"{top}.") for top in LIBRARY_LOGGERS)):
            names.add(name)
    return [logging.getLogger(n) for n in sorted(names)]


class _WithoutWatchdogPolls(logging.Filter):
    """Drops the scheduler's INFO line for each poll of the fit-timeout watchdog (``Run out-of-band function
    '_executing'``, every 5 s: ~0.7 MB of run.log over a 10 h run, nothing to read)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO
                    and record.getMessage() == f"Run out-of-band function '{_executing.__name__}'")


@contextmanager
def run_log(path: Path) -> Iterator[Path]:
    """Send this process's library logging (:func:`_library_loggers`; the root logger's records too, which
    would otherwise fall to logging's last-resort stderr handler) and Python warnings to ``path``
    (appended, timestamped) instead of the terminal; the loggers are restored on exit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _AppendHandler(path)
    handler.setFormatter(LogFormatter())
    handler.addFilter(_WithoutWatchdogPolls())
    saved = []
    for lg in _library_loggers():
        saved.append((lg, list(lg.handlers), lg.propagate, lg.level))
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.addHandler(handler)
        lg.propagate = False
        if lg.name == "harness":
            lg.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    logging.captureWarnings(True)
    logging.getLogger("harness").info("run log of process %d: library logs, warnings, failed fits' "
                                      "tracebacks", os.getpid())
    try:
        yield path
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        for lg, handlers, propagate, level in saved:
            lg.removeHandler(handler)
            for h in handlers:
                lg.addHandler(h)
            lg.propagate, lg.level = propagate, level
        handler.close()


def stderr_to(path: str) -> None:
    """Point this process's stderr (file descriptor 2: Python's and C libraries' writes alike) at ``path``,
    appended."""
    fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 2)
    os.close(fd)


def worker_preloads(log_path: Path | None) -> list[str]:
    """The local workers' preload modules: harness.worker_stderr first (their stderr goes to ``log_path``
    from the moment each worker is created, before its startup messages and the other preloads), then
    Dask's configured ``distributed.worker.preload`` (an explicit list replaces it)."""
    import dask

    configured = list(dask.config.get("distributed.worker.preload", default=[]) or [])
    return (["harness.worker_stderr"] if log_path is not None else []) + configured


class RunLog(WorkerPlugin):
    """Worker plugin: the worker process's stderr (Dask's logging, warnings, tracebacks of failed tasks)
    goes to the run's log file ``path`` instead of the driver's terminal, its root logger and warnings
    too."""

    name = "harness-run-log"

    def __init__(self, path: str):
        self.path = str(path)

    def setup(self, worker: Any) -> None:
        stderr_to(self.path)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(LogFormatter())
        logging.getLogger().addHandler(handler)
        logging.captureWarnings(True)


def set_torch_threads(n: int) -> None:
    """Set torch's intra-op threads (and the BLAS env knobs) to ``n``; run inside each worker at start."""
    if n < 1:
        raise ClusterError(f"set_torch_threads: n must be >= 1, got {n!r}")
    for k in THREAD_ENV:
        os.environ[k] = str(n)
    import torch

    torch.set_num_threads(n)


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """This process's environment with ``values`` set within the block, restored after."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def in_process_threads(n: int = 1) -> Iterator[int]:
    """``--cluster none``: run the block with torch's intra-op threads and the BLAS pools (threadpoolctl;
    without it the BLAS env knobs, read by libraries loaded later) at ``n``, the threads of one local worker,
    then restore them. Left at torch's default (every core) tiny in-process fits took ~50 s instead of the
    5-9 s they take in a 1-thread worker."""
    if n < 1:
        raise ClusterError(f"in_process_threads: n must be >= 1, got {n!r}")
    import torch

    before = torch.get_num_threads()
    with _environ({k: str(n) for k in THREAD_ENV}):
        torch.set_num_threads(n)
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            limits: Any = nullcontext()
        else:
            limits = threadpool_limits(limits=n)
        try:
            with limits:
                yield n
        finally:
            torch.set_num_threads(before)


def torch_threads() -> int:
    """torch's intra-op thread count in this process (for checks from the driver via client.run)."""
    import torch

    return torch.get_num_threads()


class TorchThreads(WorkerPlugin):
    """Worker plugin: at worker start, set torch threads to the worker's thread count."""

    name = "harness-torch-threads"

    def setup(self, worker: Any) -> None:
        set_torch_threads(max(1, int(worker.state.nthreads)))


MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(1 << 25)}


def worker_spawn_environ() -> dict[str, str]:
    """Dask's ``distributed.nanny.pre-spawn-environ`` with :data:`MALLOC_ENV` and the heap in huge pages
    (harness.hugepages: GLIBC_TUNABLES, this process's or the config's, with glibc.malloc.hugetlb=1 added)
    (module docstring)."""
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    env = {str(k): str(v) for k, v in {**env, **MALLOC_ENV}.items()}
    return {**env, hugepages.ENV: hugepages.tunables(env.get(hugepages.ENV, os.environ.get(hugepages.ENV)))}


def cuda_device_count() -> int:
    """GPUs torch sees in this process (0 without CUDA)."""
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # pragma: no cover - torch is a dependency
        return 0


def _port_free(address: str) -> bool:
    host, _, port = address.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return True
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host or "", int(port)))
        except OSError:
            return False
    return True


def dashboard_address(cfg: Any) -> str:
    """``cfg.dashboard_address`` (default ``:8787``), or ``:0`` (a free port) when that port is taken."""
    addr = getattr(cfg, "dashboard_address", None) or ":8787"
    if ":" not in addr:
        raise ClusterError(f"field 'dashboard_address' = {addr!r}: use HOST:PORT or :PORT")
    return addr if _port_free(addr) else f"{addr.rpartition(':')[0]}:0"


def gpu_compile_threads(n_gpu: int) -> int:
    """torch.compile's compile threads for a worker driving one of ``n_gpu`` local GPUs: this machine's cores
    shared among them. A CPU worker compiles on its one core; a GPU worker's host cores are otherwise idle
    (on an H200 the dry run's calibration, compiling on one thread, did not finish in 320 s)."""
    return max(1, usable_cpus() // max(1, n_gpu))


def _local(cfg: Any, gpus: int | None, timeout: float, log_path: Path | None) -> ClusterHandle:
    from distributed import Client, LocalCluster, Nanny, Scheduler, SpecCluster

    # --device cpu trains on CPU workers (--workers of them) even where CUDA is (harness.cost.worker_slots)
    n_gpu = (0 if getattr(cfg, "device", "auto") == "cpu" else cuda_device_count()) if gpus is None else gpus
    if n_gpu < 0:
        raise ClusterError(f"gpus must be >= 0, got {n_gpu!r}")
    env = {k: "1" for k in THREAD_ENV} | ({RUN_LOG_ENV: str(log_path)} if log_path is not None else {})
    preload = worker_preloads(log_path)
    dash = dashboard_address(cfg)
    if n_gpu > 0:
        # One worker per GPU, pinned to its device, advertising GPU=1 so tasks submitted with
        # resources={"GPU": 1} run one at a time per GPU.
        workers = {
            f"gpu-{i}": {"cls": Nanny, "options": {
                "nthreads": 1, "resources": {"GPU": 1}, "preload": preload,
                "env": {**env, "CUDA_VISIBLE_DEVICES": str(i),
                        "TORCHINDUCTOR_COMPILE_THREADS": str(gpu_compile_threads(n_gpu))}}}
            for i in range(n_gpu)
        }
        scheduler = {"cls": Scheduler, "options": {"dashboard_address": dash}}
        cluster: Any = _started(lambda: SpecCluster(workers=workers, scheduler=scheduler, name="harness-gpu"))
        resources: dict | None = {"GPU": 1}
        n = n_gpu
    else:
        n = cfg.workers if getattr(cfg, "workers", None) is not None else usable_cpus()
        if n < 1:
            raise ClusterError(f"field 'workers' = {n!r}: must be >= 1")
        cluster = _started(lambda: LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                dashboard_address=dash, env=env, preload=preload))
        resources = None
    try:
        client = Client(cluster)
        if log_path is not None:
            client.register_plugin(RunLog(str(log_path)))
        client.register_plugin(TorchThreads())
        try:
            client.wait_for_workers(n, timeout=timeout or None)
        except TimeoutError:
            raise ClusterError(f"{n} local Dask worker(s) did not start in {timeout:g} s (--worker-timeout); "
                               f"see OUT/run.log") from None
    except BaseException:
        cluster.close()
        raise
    return ClusterHandle(client, client.dashboard_link, resources, "local", cluster, n,
                         {"gpus": n_gpu}, worker_timeout=timeout)


def _started(make: Any) -> Any:
    """``make()`` (a local cluster, which starts its worker processes), or ClusterError when one of them dies
    while starting (killed, out of memory): distributed then raises "Nanny failed to start" after closing
    the cluster; any worker process it left behind is killed, so that nothing keeps this process alive.

    A Ctrl-C or SIGTERM while it starts is acted on once it has started, and the cluster is closed first:
    interrupted mid-start, the half-started cluster was left to distributed's exit hook, which failed on it
    and printed tracebacks and Dask's log lines on the terminal after the run's 'interrupted:' line."""
    import multiprocessing

    from harness.store import deferred_interrupts

    cluster = None
    try:
        with deferred_interrupts():
            cluster = make()
        return cluster
    except KeyboardInterrupt:
        if cluster is not None:
            cluster.close()
        raise
    except Exception as e:
        for child in multiprocessing.active_children():
            child.kill()
        cause = e.__cause__ or e
        raise ClusterError(f"the local Dask workers failed to start ({type(cause).__name__}: {cause}): a "
                           f"worker process died while starting (killed, or out of memory?); see OUT/run.log "
                           f"and run the same command again") from None


def worker_lifetime(walltime_s: int) -> tuple[int, int]:
    """(lifetime, stagger) seconds for a Slurm worker: it retires a margin before the walltime ends, and its
    job with it; adapt() submits a new job for the tasks left."""
    margin = min(max(60, walltime_s // 10), 600)
    lifetime = max(30, walltime_s - margin)
    stagger = max(1, min(margin // 4, lifetime // 10))
    return lifetime, stagger


def slurm_kwargs(cfg: Any) -> dict[str, Any]:
    """Keyword arguments of dask_jobqueue.SLURMCluster for ``cfg`` (separate for testing)."""
    from harness.config import walltime_seconds

    gpus = int(getattr(cfg, "gpus_per_job", 0) or 0)
    cores = int(cfg.cores_per_job)
    lifetime, stagger = worker_lifetime(walltime_seconds(cfg.walltime))
    # no --lifetime-restart: the worker would restart inside its job, which Slurm then kills at the walltime
    extra_args = ["--lifetime", f"{lifetime}s", "--lifetime-stagger", f"{stagger}s"]
    directives = list(getattr(cfg, "job_extra", ()) or ())
    if gpus > 0:
        # One worker process per job owning the job's GPUs; tasks ask for GPU=1 each.
        directives.append(f"--gres=gpu:{gpus}")
        extra_args += ["--resources", f"GPU={gpus}"]
        processes = 1
    else:
        processes = cores   # one 1-thread worker process per core
    threads = max(1, cores // processes)
    kw: dict[str, Any] = {
        "queue": cfg.partition,
        "account": cfg.account,
        "walltime": cfg.walltime,
        "memory": cfg.memory,
        "cores": cores,
        "processes": processes,
        "job_extra_directives": directives,
        "worker_extra_args": extra_args,
        "job_script_prologue": [f"export {k}={threads}" for k in THREAD_ENV]
        + [f"export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON=\"{worker_spawn_environ()!r}\""],
        "scheduler_options": {"dashboard_address": dashboard_address(cfg)},
        "python": sys.executable,
        "name": "harness-worker",
    }
    iface = getattr(cfg, "slurm_interface", None) or os.environ.get(SLURM_INTERFACE_ENV)
    if iface:
        kw["interface"] = iface
    out = getattr(cfg, "out_dir", None)
    if out is not None:
        kw["log_directory"] = str(out / "slurm-logs")
    return kw


def sbatch_test(script: str) -> None:
    """Check a job script with ``sbatch --test-only`` (nothing is queued); ClusterError with sbatch's own
    error when Slurm would reject it (no such partition, bad --gres, too much memory...)."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise ClusterError("field 'cluster' = 'slurm': sbatch is not on PATH (run on a Slurm login node, or "
                           "use --cluster local)")
    try:
        r = subprocess.run([sbatch, "--test-only"], input=script, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        log.warning("sbatch --test-only did not answer in 60 s; submitting without that check")
        return
    if r.returncode != 0:
        why = _command_error(r.stderr or r.stdout)
        raise ClusterError(f"Slurm rejects the worker job: {why} ({SLURM_HINT})")


def _job_class(failures: list[str]) -> type:
    """dask_jobqueue's SLURMJob that records a rejected submission in ``failures`` (seen by
    ClusterHandle.check) and marks itself failed so that closing the cluster does not trip over it."""
    from dask_jobqueue.slurm import SLURMJob
    from distributed.core import Status

    class Job(SLURMJob):
        async def start(self) -> None:
            try:
                await super().start()
            except Exception as e:
                self.status = Status.failed
                failures.append(_command_error(str(e)))
                raise

    return Job


def _slurm_cluster_class() -> type:
    """dask_jobqueue.SLURMCluster, imported with this process's SIGINT handler kept: importing dask_jobqueue
    (its runner module) sets that handler to ``sys.exit()``, so a Ctrl-C ended a Slurm run with exit 0, no
    'interrupted:' line and no run.json, as if every fit were done."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        from dask_jobqueue import SLURMCluster
    finally:
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)
    return SLURMCluster


def _slurm(cfg: Any, timeout: float) -> ClusterHandle:
    try:
        SLURMCluster = _slurm_cluster_class()
    except ImportError as e:  # pragma: no cover - dependency
        raise ClusterError(f"field 'cluster' = 'slurm' needs dask-jobqueue: {e}") from None
    from distributed import Client

    if int(cfg.jobs) < 1:
        raise ClusterError(f"field 'jobs' = {cfg.jobs!r}: must be >= 1")
    failures: list[str] = []
    try:
        cluster = SLURMCluster(job_cls=_job_class(failures), **slurm_kwargs(cfg))
    except ValueError as e:   # e.g. a memory or walltime dask_jobqueue cannot parse
        raise ClusterError(f"Slurm settings: {e}") from None
    try:
        script = cluster.job_script()
        log.info("Slurm worker job script:\n%s", script)
        sbatch_test(script)
        cluster.adapt(minimum_jobs=0, maximum_jobs=int(cfg.jobs))
        client = Client(cluster)
        client.register_plugin(TorchThreads())
    except BaseException:
        cluster.close()
        raise
    from harness.config import walltime_seconds

    gpus = int(getattr(cfg, "gpus_per_job", 0) or 0)
    return ClusterHandle(client, client.dashboard_link, {"GPU": 1} if gpus > 0 else None, "slurm", cluster,
                         0, {"job_script": script}, worker_timeout=timeout, failures=failures,
                         lifetime=worker_lifetime(walltime_seconds(cfg.walltime)), walltime=cfg.walltime)


@contextmanager
def open_cluster(cfg: Any, gpus: int | None = None, log_path: Path | None = None) -> Iterator[ClusterHandle]:
    """Open the cluster ``cfg.cluster`` names (local | slurm | none); close it on exit.

    ``gpus`` overrides the local GPU count (default: torch.cuda.device_count(), 0 with ``--device cpu``);
    ``gpus=2`` on a CPU machine builds the GPU layout (2 workers advertising GPU=1) so resource routing can
    be tested.
    ``log_path``: local workers send their stderr there (:class:`RunLog`).
    """
    kind = getattr(cfg, "cluster", None)
    timeout = float(getattr(cfg, "worker_timeout", 0.0) or 0.0)
    if not math.isfinite(timeout) or timeout < 0:
        raise ClusterError(f"field 'worker_timeout' = {timeout!r}: must be a number of seconds >= 0 "
                           f"(0 waits forever)")
    if kind == "none":
        yield ClusterHandle(None, None, None, "none")
        return
    if kind == "local":
        import dask

        spawn = worker_spawn_environ()
        # Dask lets this process's environment override the config's pre-spawn values: a GLIBC_TUNABLES of
        # the user's would drop the huge-page tunable, so the merged value stands in while workers start
        with dask.config.set({"distributed.nanny.pre-spawn-environ": spawn}), \
                _environ({hugepages.ENV: spawn[hugepages.ENV]}):
            handle = _local(cfg, gpus, timeout, log_path)
    elif kind == "slurm":
        handle = _slurm(cfg, timeout)
    else:
        raise ClusterError(f"field 'cluster' = {kind!r}: must be one of local, slurm, none")
    try:
        yield handle
    finally:
        try:
            handle.client.close()
        finally:
            try:
                handle.cluster.close()
            except Exception:  # a library's teardown error must not hide the run's own outcome
                log.exception("closing the Dask cluster failed")
