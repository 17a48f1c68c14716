"""A plug-in's stdout and stderr, passed on capped (harness.sandbox).

A plug-in's process writes to pipes; a thread per pipe passes its first :data:`KEEP` bytes on to the worker's
own stream as they come (on a local cluster the worker's stderr is OUT/run.log), keeps its last :data:`KEEP`
bytes and drops what lies between, and at the end writes the kept tail after a note of how many bytes were
dropped. A plug-in that prints in a loop so costs the run's disk at most 2 x KEEP bytes a stream a fit,
where it wrote without limit (20 MB a fit, 60 MB of run.log for 3 fits); its first words (what it says as
it starts) and its last (a traceback) are kept.
"""

from __future__ import annotations

import os
import select
import threading

KEEP = 32 * 1024   # bytes kept of the start, and of the end, of one stream of one fit


def _write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd``; a stream that cannot take it (closed, disk full) loses it quietly."""
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass


class CappedStream:
    """Reads the pipe ``read_fd`` in a thread until :meth:`close`, passing it on to ``out_fd`` capped (see the
    module docstring); ``label`` names the stream in the note (e.g. ``mypkg:Method's stderr``)."""

    def __init__(self, read_fd: int, out_fd: int, label: str, keep: int = KEEP) -> None:
        self.read_fd, self.out_fd, self.label, self.keep = read_fd, out_fd, label, keep
        self.passed = 0      # bytes passed on as they came
        self.tail = b""      # the last ``keep`` bytes after those
        self.dropped = 0     # bytes between the two, dropped
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True, name=f"capped {label}")
        self._thread.start()

    def _take(self, data: bytes) -> None:
        head = data[:max(0, self.keep - self.passed)]
        if head:
            _write_all(self.out_fd, head)
            self.passed += len(head)
        rest = self.tail + data[len(head):]
        self.dropped += max(0, len(rest) - self.keep)
        self.tail = rest[-self.keep:] if len(rest) > self.keep else rest

    def _pump(self) -> None:
        while True:
            ready, _, _ = select.select([self.read_fd], [], [], 0.1 if self._stop.is_set() else 1.0)
            if not ready:
                if self._stop.is_set():   # nothing more came after the process ended
                    return
                continue
            data = os.read(self.read_fd, 1 << 16)
            if not data:
                return
            self._take(data)

    def close(self, wait: float = 5.0) -> None:
        """After the process ended: read what is left (up to ``wait`` s; a process it started that escaped
        its group may hold the pipe open), then write the note and the tail, and close the pipe."""
        self._stop.set()
        self._thread.join(wait)
        if self.dropped:
            note = (f"\n[harness: {self.dropped} bytes of {self.label} dropped here: only the first and the "
                    f"last {self.keep} bytes of a fit are kept]\n")
            _write_all(self.out_fd, note.encode())
        _write_all(self.out_fd, self.tail)
        if not self._thread.is_alive():
            os.close(self.read_fd)


class CappedPipes:
    """A child's stdout and stderr as pipes passed on capped to this process's own (file descriptors 1 and
    2): give :attr:`popen` to ``subprocess.Popen``, call :meth:`started` once it returned (or failed), and
    :meth:`close` after the child ended. ``label`` names the child in the notes (``mypkg:Method``)."""

    def __init__(self, label: str) -> None:
        self.label = label
        (self._out_r, out_w), (self._err_r, err_w) = os.pipe(), os.pipe()
        self.popen = {"stdout": out_w, "stderr": err_w}
        self._streams: list[CappedStream] = []

    def started(self, ok: bool = True) -> None:
        """Close the write ends here (the child has its own); ``ok``: start passing its output on, else (the
        child did not start) close the read ends too."""
        for fd in self.popen.values():
            os.close(fd)
        if ok:
            self._streams = [CappedStream(self._out_r, 1, f"{self.label}'s stdout"),
                             CappedStream(self._err_r, 2, f"{self.label}'s stderr")]
        else:
            os.close(self._out_r)
            os.close(self._err_r)

    def close(self) -> None:
        """After the child ended: the rest of its output, the notes of what was dropped (CappedStream)."""
        for stream in self._streams:
            stream.close()
