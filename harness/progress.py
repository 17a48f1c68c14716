"""The run's progress bar, weighted by what each fit costs.

A PCA fit takes milliseconds and a PertVAE fit minutes, so counting fits says little about how much work is
left. Each planned fit weighs its expected seconds: the mean ``fit_seconds`` of the done fits of the same
(model, latent) (from this run, or from the store when resuming), else of the same model, else of all done
fits. The bar shows the share of the expected work done; the ETA is this run's elapsed time times the
remaining work over the work done in this run (so it accounts for the number of workers). A background
thread redraws the bar every second, so its clock moves during long fits.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SCALE = 1000  # the bar counts thousandths of the expected work


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


class Progress:
    """tqdm bar of the expected work (see the module docstring), with fits done / planned and failures."""

    def __init__(self, remaining: Mapping[tuple[str, int], int], done: int, planned: int, work: WorkModel,
                 enabled: bool):
        self.remaining = Counter(remaining)
        self.work, self.enabled = work, enabled
        self.done, self.planned = done, planned
        self.failed = 0
        self.done_now = 0.0  # expected seconds of the fits finished in this run
        self.tracebacks: dict[tuple, str] = {}
        self.bar: Any = None
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _left(self) -> float | None:
        total = 0.0
        for (model, latent), n in self.remaining.items():
            s = self.work.seconds(model, latent)
            if s is None:
                return None
            total += n * s
        return total

    def _draw(self) -> None:
        left = self._left()
        if left is None:
            frac, eta = self.done / max(self.planned, 1), "?"
        else:
            frac = 1.0 if left == 0 else min(1.0, self.done_work() / (self.done_work() + left))
            rate = self.done_now / max(time.monotonic() - self.t0, 1e-9)
            eta = _hms(left / rate) if rate > 0 else "?"
        self.bar.n = int(round(SCALE * frac))
        self.bar.set_postfix_str(f"{self.done}/{self.planned} fits, {self.failed} failed, ETA {eta}",
                                 refresh=False)
        self.bar.refresh()

    def done_work(self) -> float:
        """Expected seconds of every done fit (this run and before)."""
        return sum(self.work._sum.values())

    def start(self) -> None:
        """Show the bar (after the dashboard link is printed, so that the link is not drawn into it)."""
        from tqdm import tqdm

        if self.bar is not None:
            return
        self.t0 = time.monotonic()
        self.bar = tqdm(total=SCALE, disable=not self.enabled, dynamic_ncols=True, desc="work",
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}{postfix}]")
        with self._lock:
            self._draw()
        if self.enabled:
            threading.Thread(target=self._tick, name="progress-clock", daemon=True).start()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                self._draw()

    def update(self, rows: Sequence[dict]) -> None:
        """Count a finished task's rows (done or failed)."""
        self.start()
        with self._lock:
            for r in rows:
                key = (str(r["model"]), int(r["latent"]))
                self.remaining[key] -= 1
                fit = (r["model"], r["drug"], int(r["latent"]), int(r["repeat"]), int(r["fold"]))
                if r.get("traceback"):
                    self.tracebacks[fit] = r["traceback"]
                for method, tb in (r.get("method_traceback") or {}).items():
                    self.tracebacks[(*fit, method)] = tb
                if r["status"] == "failed":
                    self.failed += 1
                    continue
                self.done += 1
                sec = float(r.get("fit_seconds", math.nan))
                self.work.add(*key, sec)
                self.done_now += sec if math.isfinite(sec) else 0.0
            self._draw()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self.bar is not None:
                self.bar.close()


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
