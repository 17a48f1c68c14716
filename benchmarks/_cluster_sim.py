"""A cluster simulated here (issue 23): no-op contenders under the paper's model names, and a probe on the
harness's driver (harness.run) that measures its CPU per fit and samples the progress line's ETA.

The no-op contenders keep every class attribute of the built-in ones (so the grid, tasks, store slots and
methods are the paper's), and replace ``run`` by a sleep (no CPU: a stand-in for the fit's duration, so the
ETA has fits of the paper's relative lengths to predict) and result rows shaped like the real ones (scores,
per-cell and per-gene detail, method statuses) filled with seeded noise, so the driver deserializes and
writes what a real run would. They live at module level so that workers unpickle them by reference.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import math
import os
import pstats
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.contenders import REGISTRY, Contender
from harness.contenders.baselines import Baselines
from harness.contenders.pca import PCA
from harness.contenders.pertvae import PertVAE
from harness.contenders.vae import VAE
from pertvae_core.evaluation import GENE_METRICS, METRICS, Scores

# Seconds one fit sleeps, per model, in the ratio of the paper's fit times (PCA 0.05 s, baselines 0.2 s,
# VAE 20 s, PertVAE 60 s on a CPU; benchmarks/test_eta.py), times the run's scale (env SLEEP_SCALE_ENV).
SLEEP = {"pca": 0.05 / 60, "baselines": 0.2 / 60, "vae": 20 / 60, "pertvae": 1.0}
SLEEP_SCALE_ENV = "PERTVAE_SIM_SLEEP_SCALE"


def _detail(sp: Any, rng: np.random.Generator) -> Scores:
    cells = tuple(dict.fromkeys(str(c) for c in sp.test_cell_line))
    g = int(np.shape(sp.x1_test)[1])
    return Scores(summary={k: float(rng.normal()) for k in METRICS}, cell_lines=cells,
                  per_cell={k: rng.normal(size=len(cells)) for k in METRICS},
                  per_gene={k: rng.normal(size=g) for k in GENE_METRICS})


def noop_row(methods: Sequence[str], user_methods: bool, sp: Any, seed: int, seconds: float) -> dict:
    """A result row shaped like the real contender's (pertvae_core.api), values drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    row: dict = {k: float(rng.uniform(-1, 1)) for k in ("rho_rec", "rho_rec_pert", "rho_pred_pert")}
    row.update(test_loss=float(rng.uniform(1, 2)), epochs=40.0, best_epoch=20.0, fit_seconds=seconds,
               status="done", reason="")
    if methods:
        row["detail"] = {m: _detail(sp, rng) for m in methods}
        row["scores"] = {m: d.summary for m, d in row["detail"].items()}
    if user_methods:
        row.update(method_status=dict.fromkeys(methods, "done"), method_reason=dict.fromkeys(methods, ""),
                   method_traceback={})
    return row


class _Noop:
    """``run`` of a no-op contender: sleep for the fits, return rows shaped like the real ones; a task of
    several latent sizes (PCA's) runs it at each, as the base contender does (not PCA's real run_latents)."""

    run_latents = Contender.run_latents

    def run(self, data: Sequence[Any], latent: int, seeds: Sequence[int], cfg: Any) -> list[dict]:
        seconds = SLEEP[self.name] * float(os.environ.get(SLEEP_SCALE_ENV, "1"))
        time.sleep(seconds * len(data))
        return [noop_row(self.methods, self.hosts_user_methods, sp, s, seconds)
                for sp, s in zip(data, seeds, strict=True)]


class NoopPertVAE(_Noop, PertVAE):
    pass


class NoopVAE(_Noop, VAE):
    pass


class NoopPCA(_Noop, PCA):
    pass


class NoopBaselines(_Noop, Baselines):
    pass


NOOP = (NoopPertVAE, NoopVAE, NoopPCA, NoopBaselines)


@contextlib.contextmanager
def noop_contenders(sleep_scale: float) -> Iterator[None]:
    """The registry's paper models replaced by their no-op twins (and the workers' sleep scale set) for the
    block; the built-in ones restored after. Workers inherit the environment when they start."""
    saved = {c.name: REGISTRY[c.name] for c in NOOP}
    old = os.environ.get(SLEEP_SCALE_ENV)
    os.environ[SLEEP_SCALE_ENV] = str(sleep_scale)
    try:
        for c in NOOP:
            REGISTRY[c.name] = c()
        yield
    finally:
        REGISTRY.update(saved)
        if old is None:
            os.environ.pop(SLEEP_SCALE_ENV, None)
        else:
            os.environ[SLEEP_SCALE_ENV] = old


class EtaRecorder(io.TextIOBase):
    """The progress line's stream: keeps (monotonic time, ETA seconds or None while "estimating"), and
    echoes a line every ``echo_every`` seconds to stderr (a long run shows it is alive)."""

    def __init__(self, echo_every: float = 30.0) -> None:
        super().__init__()
        self.samples: list[tuple[float, float | None]] = []
        self.last = ""
        self.echo_every, self._echoed = echo_every, -math.inf

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        now = time.monotonic()
        for line in text.splitlines():
            m = re.search(r"ETA (estimating|(?:(\d+):)?(\d+):(\d+))", line)
            if m:
                self.last = line
                eta = None if m.group(1) == "estimating" else (
                    int(m.group(2) or 0) * 3600 + int(m.group(3)) * 60 + int(m.group(4)))
                self.samples.append((now, eta))
                if now - self._echoed >= self.echo_every:
                    self._echoed = now
                    print(line, file=sys.__stderr__, flush=True)
        return len(text)


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by thread name (Linux: psutil's per-thread times)."""
    import psutil

    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for t in psutil.Process().threads():
        name = _kind(names.get(t.id, "other"))
        out[name] = out.get(name, 0.0) + t.user_time + t.system_time
    return out


def _kind(name: str) -> str:
    """Thread groups: the main thread, Dask's event loop (scheduler and client comms), zarr's I/O loop, the
    progress clock, the rest."""
    low = name.lower()
    for key, words in (("main", ("mainthread",)), ("dask_loop", ("loop", "tornado", "asyncio")),
                       ("zarr_io", ("zarr",)), ("progress", ("progress",))):
        if any(w in low for w in words):
            return key
    return "other"


def _workers_cpu() -> float:
    """CPU seconds of every live process below this one (the workers and their nannies)."""
    import psutil

    total = 0.0
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


@dataclass
class DriverProbe:
    """What the probe saw of one run's grid loop (harness.run._run_on_cluster)."""

    fits: int = 0
    tasks: int = 0
    t0: float = 0.0
    t1: float = 0.0
    cpu: float = 0.0
    threads: dict[str, float] = field(default_factory=dict)
    workers_cpu: float = 0.0
    write_cpu: float = 0.0
    write_wall: float = 0.0
    eta: EtaRecorder = field(default_factory=EtaRecorder)
    profile: str = ""
    prog: Any = None
    stopped: bool = False   # interrupted at the time budget
    # (monotonic time, [(model, latent, status, fit_seconds)]) of each finished task, for an offline replay
    # of the progress line (benchmarks/test_eta.py replays such a trace)
    updates: list[tuple[float, list[tuple[str, int, str, float]]]] = field(default_factory=list)
    remaining: dict[str, int] = field(default_factory=dict)   # the fits to run, "model/latent" -> n

    def trace(self) -> dict:
        """The run's finished tasks as the progress line saw them, with its start and the loop's end."""
        start = self.prog.t0 if self.prog is not None else self.t0
        return {"t0": start, "t1": self.t1, "remaining": self.remaining, "updates": self.updates}

    @property
    def finished(self) -> int:
        """Fits this run finished (done or failed), also when stopped early."""
        return self.prog.fits_now + self.prog.failed if self.prog is not None else 0


@contextlib.contextmanager
def probe_driver(profile: bool = False, budget: float = 0.0) -> Iterator[DriverProbe]:
    """Wrap harness.run's grid loop, its progress and its store write for the block: CPU time of this
    process (driver and, in a LocalCluster, the scheduler) per thread, of the workers, of the writes; the
    progress line drawn every second into an :class:`EtaRecorder`; with ``profile``, cProfile of the main
    thread by process CPU time (top entries in ``profile``). With ``budget`` > 0 the grid loop is interrupted
    after that many seconds (as Ctrl-C would: the run keeps its finished fits and exits 130)."""
    import harness.run as hr

    p = DriverProbe()
    loop, progress, write = hr._run_on_cluster, hr._progress, hr._write

    def _progress(*a: Any, **k: Any) -> Any:
        prog = progress(*a, **k)
        prog.stream, prog.tty, prog.line_every, prog.enabled = p.eta, False, 1.0, True
        p.prog, p.remaining = prog, {f"{m}/{lat}": n for (m, lat), n in prog.remaining.items()}
        update = prog.update

        def _update(rows: Sequence[dict]) -> None:
            p.updates.append((time.monotonic(), [(str(r["model"]), int(r["latent"]), str(r["status"]),
                                                  float(r.get("fit_seconds", math.nan))) for r in rows]))
            update(rows)

        prog.update = _update
        return prog

    def _write(*a: Any, **k: Any) -> None:
        c0, t0 = time.process_time(), time.perf_counter()
        write(*a, **k)
        p.write_cpu += time.process_time() - c0
        p.write_wall += time.perf_counter() - t0

    def _loop(tasks: Sequence[Any], *a: Any) -> None:
        p.tasks, p.fits = len(tasks), sum(t.n_fits for t in tasks)
        th0, w0, c0 = _thread_cpu(), _workers_cpu(), time.process_time()
        p.t0 = time.monotonic()
        prof = cProfile.Profile(time.process_time) if profile else None
        timer = threading.Timer(budget, _stop, args=(p,)) if budget > 0 else None
        if timer is not None:
            timer.start()
        try:
            if prof is None:
                loop(tasks, *a)
            else:
                prof.runcall(loop, tasks, *a)
        finally:
            if timer is not None:
                timer.cancel()
            p.t1 = time.monotonic()
            p.cpu = time.process_time() - c0
            p.workers_cpu = _workers_cpu() - w0
            th1 = _thread_cpu()
            p.threads = {k: th1[k] - th0.get(k, 0.0) for k in th1}
            p.threads["unattributed"] = p.cpu - sum(p.threads.values())
            if prof is not None:
                p.profile = _top(prof)

    hr._run_on_cluster, hr._progress, hr._write = _loop, _progress, _write
    try:
        yield p
    finally:
        hr._run_on_cluster, hr._progress, hr._write = loop, progress, write


def _stop(p: DriverProbe) -> None:
    import _thread

    p.stopped = True
    _thread.interrupt_main()


def _top(prof: cProfile.Profile, n: int = 12) -> str:
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats("tottime").print_stats(n)
    st.sort_stats("cumulative").print_stats(n)
    return buf.getvalue()


def eta_errors(samples: Sequence[tuple[float, float | None]], t0: float, t1: float) -> dict[str, float]:
    """The ETA against the real finish ``t1`` of a loop started at ``t0``: the share of the run it said
    "estimating"; over the readings after the first 10% of the run with over 5 s truly left, the median and
    90th percentile of |ETA - truth| / truth; the largest factor between two successive readings; and the
    relative error at 25/50/75% of the run."""
    span = max(t1 - t0, 1e-9)
    t = np.array([s[0] for s in samples], dtype=float)
    shown = np.array([math.nan if s[1] is None else s[1] for s in samples], dtype=float)
    truth = t1 - t
    inside = (t >= t0) & (t <= t1)
    est = float(np.mean(~np.isfinite(shown[inside]))) if inside.any() else math.nan
    late = inside & (t - t0 > 0.1 * span) & (truth > 5) & np.isfinite(shown)
    rel = np.abs(shown[late] - truth[late]) / truth[late]
    a, b = shown[:-1], shown[1:]
    ok = np.isfinite(a) & np.isfinite(b) & (a > 5) & (b > 5)
    out = {"eta_estimating_fraction": round(est, 3),
           "eta_median_rel_error": round(float(np.median(rel)), 3) if rel.size else math.nan,
           "eta_p90_rel_error": round(float(np.quantile(rel, 0.9)), 3) if rel.size else math.nan,
           "eta_max_swing_ratio": round(float(np.max(np.maximum(a[ok] / b[ok], b[ok] / a[ok]))), 2)
           if ok.any() else math.nan, "eta_readings": int(inside.sum())}
    for q in (25, 50, 75):
        near = inside & np.isfinite(shown) & (truth > 1)
        if near.any():
            i = int(np.argmin(np.where(near, np.abs((t - t0) / span - q / 100), np.inf)))
            out[f"eta_rel_error_at_{q}pct"] = round(float((shown[i] - truth[i]) / truth[i]), 3)
    return out
