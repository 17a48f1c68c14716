"""The run's progress in one unit: fits, each weighted by its expected time.

A PCA fit takes milliseconds and a PertVAE fit minutes, so counting fits (or Dask tasks, as the dashboard
does) says little about how much work is left. Each planned fit weighs its expected seconds: the mean
``fit_seconds`` of the done fits of the same (model, latent) (from this run, or from the store when
resuming), else of the same model, else of all done fits. The percent shown is the share of that expected
work done (a failed fit's is not: a run ends under 100% when fits failed; '?' while the fits left are
mostly of models with no fit timed yet, whose time would be borrowed); the line names its unit and also gives
the fits and the tasks done (the dashboard's count), so that the two can be compared:

    fits, weighted by expected time:  50%|#####     | [1:23, 120/260 fits, 0 failed; tasks 43/100, ETA 4:56]

On a terminal the line is redrawn in place every second, as much of it as the terminal's width holds: whole
parts are dropped (the bar, the unit's long name, the tasks, the elapsed time), never a number cut short;
off a terminal (a pipe, a log file) a plain line is written at the start, at most every :data:`LINE_EVERY`
seconds, and at the end.

The ETA (:class:`Eta`) says "estimating" until this run's finished work means something (until then, where
the fits left are timed already, as a resumed run's are by the store, it assumes each worker slot busy), then
smooths.
"""

from __future__ import annotations

import bisect
import math
import os
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO

UNIT = "fits, weighted by expected time"
LINE_EVERY = 30.0  # seconds between progress lines off a terminal
MIN_FITS = 5       # the ETA waits for this many fits finished in this run...
MIN_WORK = 0.02    # ...and this share of this run's expected work
TAU_MIN = 5.0      # the ETA's smoothing time constant: TAU_SHARE of the elapsed time, at least this
TAU_SHARE = 0.05
WINDOW = 0.25      # the ETA's rate: over this share of the time since the first finish...
WINDOW_MIN = 10.0  # ...at least this many seconds
KNOWN_SHARE = 0.8  # the ETA and percent wait until models with a timed fit hold this share of fits left
STALL_GAPS = 4.0   # a wait since the last finish this many mean gaps long counts in the rate
MIN_BAR = 10       # the bar is drawn only where it gets this many characters
COLUMNS = 80       # a terminal's width where it reports none (0: a pty without a size)


class WorkModel:
    """Expected seconds per fit of each (model, latent), learned from done fits."""

    def __init__(self, done_seconds: Iterable[tuple[str, int, float]] = ()):
        self._sum: dict[tuple[str, int], float] = defaultdict(float)
        self._n: Counter[tuple[str, int]] = Counter()
        for model, latent, sec in done_seconds:
            self.add(model, latent, sec)

    def add(self, model: str, latent: int, seconds: float) -> None:
        if math.isfinite(seconds) and seconds >= 0:
            self._sum[(model, int(latent))] += seconds
            self._n[(model, int(latent))] += 1

    def seconds(self, model: str, latent: int) -> float | None:
        """Expected seconds of one fit; None while nothing is known at all."""
        for keys in ([(model, int(latent))], [k for k in self._n if k[0] == model], list(self._n)):
            n = sum(self._n[k] for k in keys)
            if n:
                return sum(self._sum[k] for k in keys) / n
        return None

    def knows(self, model: str) -> bool:
        """Whether a fit of ``model`` is done (its expected time is not borrowed from other models)."""
        return any(k[0] == model for k in self._n)

    def done_seconds(self) -> float:
        """Seconds of every done fit."""
        return sum(self._sum.values())


class Eta:
    """Seconds left from the recent rate of this run's finished work (expected seconds finished per second
    of wall time, which counts the workers), or None ("estimating") until that rate means something: at
    least :data:`MIN_FITS` fits and :data:`MIN_WORK` of this run's expected work finished, and the models
    timed by a fit of their own holding :data:`KNOWN_SHARE` of the fits left (early on, a PertVAE fit would
    otherwise weigh what a PCA fit took; harness.run submits one task of each model first, so that each is
    timed early; a model left untimed borrows the mean of all done fits, WorkModel). Waiting for every
    model kept the paper grid's simulated run "estimating" for 43% of it: PCA's one task of 350 fits ends
    late.

    The rate is taken between finishes, so the workers' start (seconds to minutes before anything can
    finish, a Slurm queue's wait) does not weigh on it: the faster of the rates over the last
    :data:`WINDOW` of the time since the first finish (at least :data:`WINDOW_MIN` s), which follows a change
    of the fits' mix (the grid runs model by model), and over all of it (:meth:`_rate`). The finish it
    implies is anchored at the last finish, so it does not drift between finishes of fits that end
    together; once the wait since the last finish is longer than the window's mean gap between finishes
    times :data:`STALL_GAPS`, the rate counts that wait too (a stalled run's ETA grows). It is smoothed
    exponentially with a time constant of :data:`TAU_SHARE` of the elapsed time (at least :data:`TAU_MIN`
    s), so one batch of fits finishing together moves it little.

    Each finished fit counts the expected seconds of its (model, latent) as known now, not the seconds it
    took, as the work left does: where fits speed up (a machine at load 20 quieting, the workers' first fits
    at each shape), the slow early ones raise both alike, where counting their own seconds raised the work
    left only (200 fits on 4 workers, those started in the first 600 s 4x slower: the ETA read 1.9x the time
    left at a fifth of the run, 1.3x at half; now 1.6x, then within 15% from 30% on).

    Work in flight is counted nowhere until its fit ends, so the work left includes what the workers have
    half done: a ``lag`` comes off the time left, a quarter of the work-weighted mean duration of the
    finished fits (benchmarks/test_eta.py: a half over-corrects where fits of different lengths
    interleave)."""

    def __init__(self, min_fits: int = MIN_FITS, min_work: float = MIN_WORK) -> None:
        self.min_fits, self.min_work = min_fits, min_work
        self._finish: float | None = None
        self._last = 0.0
        self._times: list[float] = []                    # when this run's finished fits changed...
        self._counts: dict[tuple[str, int], list[int]] = {}   # ...and to what, per (model, latent)
        self._seconds: dict[tuple[str, int], float] = {}      # the expected seconds of one fit of each

    def update(self, now: float, elapsed: float, finished: Mapping[tuple[str, int], int],
               seconds: Callable[[str, int], float | None], left: float | None, known: bool, lag: float = 0.0,
               prior: float = 0.0) -> float | None:
        """``finished``: this run's fits finished in ``elapsed`` seconds, by (model, latent); ``seconds``:
        the expected seconds of one fit of a (model, latent) (WorkModel.seconds); ``left``: expected seconds
        left (None: unknown); ``known``: the models left with a timed fit of their own hold enough of the fits
        left (:data:`KNOWN_SHARE`); ``prior``: the rate assumed until this run's own means something (the
        worker slots, each finishing a second of expected work a second; 0: none), so that a resumed run with
        fewer than :data:`MIN_FITS` fits left, timed by the store's fits, is not "estimating" to its end."""
        fits = sum(finished.values())
        if fits > 0 and (not self._times or fits != self._fits(-1)):
            for key in finished.keys() - self._counts.keys():
                self._counts[key] = [0] * len(self._times)
            self._times.append(now)
            for key, counts in self._counts.items():
                counts.append(finished.get(key, 0))
        self._seconds = {k: seconds(*k) or 0.0 for k in self._counts}
        done = self._work(-1) if self._times else 0.0
        if left is not None and left <= 0:
            return 0.0
        if left is None or not known:
            self._finish = None
            return None
        measured, assumed = self._rate(now), False
        if fits < self.min_fits or measured is None or done / (done + left) < self.min_work:
            if prior <= 0:
                self._finish = None
                return None
            # from this run's last finish (its start before any), or from now once that is overdue; not
            # smoothed: each of these few finishes says more than the ETA before it (smoothed, it read 0:00
            # for the last 5 s of a resumed run's 13)
            start = self._times[-1] if self._times else now - elapsed
            measured, assumed = (prior, start if start + left / prior >= now else now), True
        rate, anchor = measured
        target = anchor + max(left / rate - min(max(lag, 0.0), elapsed / 2), 0.0)
        if self._finish is None or assumed:
            self._finish = target
        else:
            alpha = 1.0 - math.exp(-(now - self._last) / max(TAU_MIN, TAU_SHARE * elapsed))
            self._finish += alpha * (target - self._finish)
        self._last = now
        return max(0.0, self._finish - now)

    def _rate(self, now: float) -> tuple[float, float] | None:
        """Work finished per second, and the time the finish is counted from: the last finish, or ``now``
        in a stall (None before two finishes at different times). The faster of the rates over the recent
        window and over all the time since the first finish: the recent one follows a change of the fits'
        mix (the cheap fits' tasks, done early, hold workers longer than their fit times say), the long one
        is not thrown by a few seconds in which only cheap fits ended (seen on a loaded machine: an ETA
        of 1 h 47 min with 72 s left)."""
        times = self._times
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        best, anchor = 0.0, times[-1]
        for share, least in ((WINDOW, WINDOW_MIN), (1.0, 0.0)):
            start = times[-1] - max(least, share * (times[-1] - times[0]))
            a = max(bisect.bisect_right(times, start) - 1, 0)
            span = times[-1] - times[a]
            if now - times[-1] > STALL_GAPS * span / (len(times) - 1 - a):
                span, anchor = now - times[a], now
            best = max(best, (self._work(-1) - self._work(a)) / span)
        return best, anchor

    def _fits(self, i: int) -> int:
        """This run's fits finished at its ``i``-th change."""
        return sum(counts[i] for counts in self._counts.values())

    def _work(self, i: int) -> float:
        """This run's work finished at its ``i``-th change, each fit at its expected seconds as known now."""
        return sum(self._seconds[k] * counts[i] for k, counts in self._counts.items())


class Progress:
    """The run's progress line (see the module docstring): fits done / planned, failures, tasks, ETA.

    ``stream``: where it is written (default stderr); ``clock``: seconds, for tests; ``tasks``: the tasks of
    this run (one per Dask task); ``slots``: how many of them the workers run at a time (0: unknown)."""

    def __init__(self, remaining: Mapping[tuple[str, int], int], done: int, planned: int, work: WorkModel,
                 enabled: bool, tasks: int = 0, stream: IO[str] | None = None,
                 clock: Callable[[], float] = time.monotonic, line_every: float = LINE_EVERY,
                 slots: int = 0):
        self.remaining = Counter(remaining)
        self.work, self.enabled = work, enabled
        self.done, self.planned, self.failed = done, planned, 0
        self.failed_fits: Counter[tuple[str, int]] = Counter()   # this run's failed fits by (model, latent)
        self.failed_in_methods = 0   # of them, those whose other methods scored (only a plug-in failed)
        self.tasks, self.tasks_done = tasks, 0
        self.slots = slots   # tasks the workers run at a time (the ETA's rate before this run's is measured)
        self.fits_now = 0
        self.finished_now: Counter[tuple[str, int]] = Counter()   # this run's done fits by (model, latent)
        self.done_now = 0.0  # seconds of the fits finished in this run
        self._sq_now = 0.0   # and the sum of their squares (their work-weighted mean duration)
        self.tracebacks: dict[tuple, str] = {}
        self.devices: Counter[str] = Counter()   # this run's fits of trained models by the device they used
        self.fit_cpu_seconds = 0.0   # this run's fits' CPU time, as their workers measured it
        self.worker_rss: dict[str, float] = {}   # each worker's peak memory in MiB, as its tasks measured it
        self.worker_children_rss: dict[str, float] = {}   # and of its largest ended child process
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock, self.line_every = clock, line_every
        self.eta = Eta()
        self._shown = 0   # characters of the line last drawn on the terminal
        self.t0 = clock()
        self._next_line = math.inf
        self._started = self._closed = False
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _left(self) -> float | None:
        return self._expected(self.remaining)

    def _expected(self, fits: Mapping[tuple[str, int], int]) -> float | None:
        """Expected seconds of ``fits`` ({(model, latent): count}); None while a fit's is unknown."""
        total = 0.0
        for (model, latent), n in fits.items():
            s = self.work.seconds(model, latent) if n > 0 else 0.0
            if s is None:
                return None
            total += n * s
        return total

    def _timed(self) -> bool:
        """Whether the models left with a timed fit of their own hold :data:`KNOWN_SHARE` of the fits left."""
        left = [(m, n) for (m, _), n in self.remaining.items() if n > 0]
        return sum(n for m, n in left if self.work.knows(m)) >= KNOWN_SHARE * sum(n for _, n in left)

    def fraction(self) -> float | None:
        """Share of the expected work done (fits done / planned while no fit has a time); None (shown '?')
        while the fits left are mostly of models not timed yet, as the ETA waits: their time borrowed from
        the cheap baselines' read 37% at 15 of 40 fits, 6% a fit later. A failed fit's expected work stays
        in the whole, not done: a run whose fits all failed ended at '100% | 5/15 fits, 10 failed'."""
        left, failed = self._left(), self._expected(self.failed_fits)
        if left is None or failed is None:
            return self.done / max(self.planned, 1)
        done = self.work.done_seconds()
        if done > 0 and not self._timed():
            return None
        whole = done + left + failed
        return (0.0 if self.failed else 1.0) if whole == 0 else min(1.0, done / whole)

    def eta_text(self) -> str:
        now = self.clock()
        lag = self._sq_now / self.done_now / 4 if self.done_now > 0 else 0.0
        prior = min(self.slots, self.tasks - self.tasks_done) if self.tasks else self.slots
        left = self.eta.update(now, now - self.t0, self.finished_now, self.work.seconds, self._left(),
                               self._timed(), lag, prior)
        return "estimating" if left is None else _hms(left)

    def counts_text(self) -> str:
        tasks = f"; tasks {self.tasks_done}/{self.tasks}" if self.tasks else ""
        partly = f" ({self.failed_in_methods} in some methods only)" if self.failed_in_methods else ""
        return f"{self.done}/{self.planned} fits, {self.failed} failed{partly}{tasks}"

    def line(self) -> str:
        """The plain progress line (off a terminal)."""
        return (f"progress ({UNIT}): {_percent(self.fraction())} | {self.counts_text()} | elapsed "
                f"{_hms(self.clock() - self.t0)}, ETA {self.eta_text()}")

    def tty_text(self, width: int) -> str:
        """The terminal's line in at most ``width`` characters: the first of these that fits, so that a
        narrow terminal loses whole parts, not the ends of numbers (tqdm cut '... tasks 43/100, ETA 4:56]'
        to '... tasks 4' on an 80-column terminal, and showed no count at all on a 40-column one)."""
        share = self.fraction()
        pct, eta, counts = _percent(share), self.eta_text(), self.counts_text()
        fits = f"{self.done}/{self.planned} fits" + (f", {self.failed} failed" if self.failed else "")
        rest = f"[{_hms(self.clock() - self.t0)}, {counts}, ETA {eta}]"
        bar = width - len(f"{UNIT}: {pct}|| {rest}") if share is not None else 0   # no bar for '?'
        filled = round(bar * (share or 0.0))
        for text in (f"{UNIT}: {pct}|{'#' * filled}{' ' * (bar - filled)}| {rest}" if bar >= MIN_BAR else "",
                     f"{UNIT}: {pct} {rest}", f"{pct} of expected work {rest}",
                     f"{pct} of expected work, {fits}, ETA {eta}", f"{pct}, {fits}, ETA {eta}",
                     f"{pct}, {fits}"):
            if text and len(text) <= width:
                return text
        return pct.strip()[:max(width, 0)]

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        if self.tty:
            text = self.tty_text(_columns(self.stream) - 1)   # the last column would wrap on some terminals
            self.stream.write("\r" + text.ljust(self._shown))   # spaces over a longer line drawn before
            self.stream.flush()
            self._shown = len(text)
        elif force or self.clock() >= self._next_line:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._next_line = self.clock() + self.line_every

    def start(self) -> None:
        """Show the progress (after the dashboard link is printed, so that the link is not drawn into it)."""
        if self._started:
            return
        self._started = True
        self.t0 = self.clock()
        with self._lock:
            self._draw(force=True)
        if self.enabled:
            threading.Thread(target=self._tick, name="progress-clock", daemon=True).start()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                if not self._closed:   # woken just before close(): a draw after its newline ran into 'done:'
                    self._draw()

    def update(self, rows: Sequence[dict]) -> None:
        """Count a finished task's rows (done or failed)."""
        self.start()
        with self._lock:
            self.tasks_done += 1
            for r in rows:
                self._count(r)
            self._draw()

    def _count(self, r: dict) -> None:
        key = (str(r["model"]), int(r["latent"]))
        self.remaining[key] -= 1
        fit = (r["model"], r["drug"], int(r["latent"]), int(r["repeat"]), int(r["fold"]))
        if r.get("device"):
            self.devices[r["device"]] += 1
        if math.isfinite(cpu := float(r.get("fit_cpu_seconds", math.nan))):
            self.fit_cpu_seconds += cpu
        for name, peaks in (("worker_peak_rss_mib", self.worker_rss),
                            ("worker_children_peak_rss_mib", self.worker_children_rss)):
            if math.isfinite(rss := float(r.get(name, math.nan))):
                peaks[r["worker"]] = max(rss, peaks.get(r["worker"], 0.0))
        if r.get("traceback"):
            self.tracebacks[fit] = r["traceback"]
        for method, tb in (r.get("method_traceback") or {}).items():
            self.tracebacks[(*fit, method)] = tb
        if r["status"] == "failed":
            self.failed += 1
            self.failed_in_methods += "done" in (r.get("method_status") or {}).values()
            self.failed_fits[key] += 1
            return
        self.done += 1
        self.fits_now += 1
        self.finished_now[key] += 1
        sec = float(r.get("fit_seconds", math.nan))
        self.work.add(*key, sec)
        if math.isfinite(sec) and sec >= 0:
            self.done_now += sec
            self._sq_now += sec * sec

    def close(self) -> None:
        """Stop the clock; draw the last state (off a terminal: the closing line). Idempotent."""
        self._stop.set()
        with self._lock:
            if self._closed or not self._started:
                return
            self._closed = True
            self._draw(force=True)
            if self.enabled and self.tty:
                self.stream.write("\n")
                self.stream.flush()


def _percent(share: float | None) -> str:
    return "  ?%" if share is None else f"{100 * share:3.0f}%"


def _columns(stream: IO[str]) -> int:
    """The width of the terminal ``stream`` writes to (of $COLUMNS, else :data:`COLUMNS`, where it reports
    none)."""
    try:
        cols = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        cols = 0
    if cols <= 0:
        env = os.environ.get("COLUMNS", "")
        cols = int(env) if env.isdigit() and int(env) > 0 else COLUMNS
    return cols


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
