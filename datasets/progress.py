"""Progress of a long build phase by bytes on stderr: ``reading L1000 matrix: 1.2 GB of 3.4 GB (35%), 80 MB/s,
ETA 27s``.

A phase stays silent for its first :data:`DELAY_S` seconds, and always when it is known to handle less than
:data:`MIN_BYTES`, so a short phase, or a small bad input that fails at once, prints nothing but its outcome
(however busy the machine); after that a line every 10 s off a terminal (logs of long builds show
where they are) or one redrawn in place every 0.5 s on a terminal, and a closing line with the time taken.
Bytes done come from the phase's own reports (:meth:`Phase.update`) or, for code that cannot report (pandas,
HDF5 metadata, zarr writes), from a counter polled by the phase: the bytes this process read or wrote
(:func:`io_counter`, Linux ``/proc/self/io``), against a total known beforehand (the input file sizes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from datasets.files import duration, human_bytes

DELAY_S = 2.0  # a phase shorter than this prints nothing
MIN_BYTES = 8 * 10**6  # nor one known to handle fewer bytes
TICK_S = 0.25


def io_counter(field: str) -> Callable[[], int] | None:
    """Bytes this process has read (``"rchar"``) or written (``"wchar"``) so far, page cache included;
    None where ``/proc/self/io`` is missing."""
    path = Path("/proc/self/io")

    def read() -> int:
        for line in path.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise OSError(f"{path}: no {field}")

    try:
        read()
    except (OSError, ValueError):
        return None
    return read


class Phase:
    """One phase's progress (a context manager; a ticker thread draws the line while it runs).

    ``total``: bytes the phase handles; ``counter``: a byte counter polled instead of :meth:`update` (its
    value at entry counts as zero). ``stream=None``: silent.
    """

    def __init__(self, what: str, total: int, stream: IO[str] | None = None,
                 counter: Callable[[], int] | None = None, delay: float | None = None,
                 every: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.total, self.stream = what, max(int(total), 0), stream
        self.counter, self.clock = counter, clock
        self.delay = DELAY_S if delay is None else delay
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every = every if every is not None else (0.5 if self.tty else 10.0)
        self.done = 0
        self.shown = False
        self._base = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def update(self, done: int, total: int | None = None) -> None:
        """The bytes done so far (and the total, when it became known only now)."""
        self.done = int(done)
        if total is not None:
            self.total = int(total)

    def __enter__(self) -> Phase:
        self.t0 = self._last = self.clock()
        if self.counter is not None:
            self._base = self.counter()
        if self.stream is not None:
            self._thread = threading.Thread(target=self._run, name=f"progress {self.what}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.stream is None:
            return
        if exc_type is None and (self.shown or self._due(self.clock())):
            self._poll()
            dt = self.clock() - self.t0
            rate = f" ({human_bytes(self.done / dt if dt > 0 else 0)}/s)" if self.done else ""
            self._write(f"{self.what}: {human_bytes(self.done)} in {dt:.1f} s{rate}" if self.done
                        else f"{self.what}: done in {dt:.1f} s", final=True)
        elif self.shown and self.tty:
            self.stream.write("\n")  # the error line starts on its own line
            self.stream.flush()

    def _poll(self) -> None:
        if self.counter is not None:
            self.done = self.counter() - self._base

    def _due(self, now: float) -> bool:
        """Long enough (and not known to be small) to show."""
        return now - self.t0 >= self.delay and not 0 < self.total < MIN_BYTES

    def tick(self) -> None:
        """Draw the line if the phase is due and the last line is ``every`` seconds old (the ticker thread
        calls this every :data:`TICK_S` seconds)."""
        now = self.clock()
        if not self._due(now) or (self.shown and now - self._last < self.every):
            return
        self._last = now
        self._poll()
        self._write(self.line(now))

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            self.tick()

    def line(self, now: float | None = None) -> str:
        """``what: done of total (pct), rate, ETA`` (``finishing`` once the bytes are all done)."""
        dt = max((self.clock() if now is None else now) - self.t0, 1e-9)
        if not self.total and not self.done:  # nothing measurable: the time so far
            return f"{self.what}: {duration(dt)} so far"
        done = min(self.done, self.total) if self.total else self.done
        rate = self.done / dt
        s = f"{self.what}: {human_bytes(done)}"
        if self.total:
            s += f" of {human_bytes(self.total)} ({100 * done / self.total:.0f}%)"
        s += f", {human_bytes(rate)}/s"
        if self.total and done >= 0.999 * self.total:  # the bytes are done, the work is not
            s += f", finishing ({duration(dt)})"
        elif self.total and rate > 0:
            s += f", ETA {duration((self.total - done) / rate)}"
        return s

    def _write(self, text: str, final: bool = False) -> None:
        with self._lock:
            self.shown = True
            if self.tty:
                self.stream.write("\r\x1b[K" + text + ("\n" if final else ""))
            else:
                self.stream.write(text + "\n")
            self.stream.flush()
