"""One writer per ``--out``: an OS lock on ``OUT/.lock`` held for the life of a run (or of a report).

``flock`` (exclusive, non-blocking) on the lock file: the kernel releases it when the holder dies, however it
dies, so a killed run never blocks the next one. The file records the holder (pid, host, command, start
time) for the message of a refused run, and is emptied when the holder ends normally; a run that finds a
record left behind by a holder that died says that it takes over. Where the file system has no ``flock``
(some network file systems), the record alone decides: a holder on this host that is still alive, or one on
another host (which cannot be checked from here), keeps ``OUT``.

The lock file stays in ``OUT`` (deleting it while another process opens it would let two runs lock two
different files).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from datasets.cube import pid_alive

LOCK_NAME = ".lock"
# run.json's mark of a run that started and has not written its own run.json (harness.run, harness.info)
UNFINISHED_RUN = "unfinished_run"
NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


class OutBusy(RuntimeError):
    """``OUT`` is held by another run or report; the message names it and what to do, ``record`` is the
    holder's lock record."""

    def __init__(self, message: str, record: dict) -> None:
        super().__init__(message)
        self.record = record


@dataclass
class OutLock:
    """A held lock: ``release()`` it (or use it as a context manager). ``stale``: the record of a holder
    that died without releasing it, taken over ({} when there was none)."""

    path: Path
    fd: int
    stale: dict

    def release(self) -> None:
        if self.fd < 0:
            return
        try:
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        os.close(self.fd)  # releases the flock
        self.fd = -1

    def __enter__(self) -> OutLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _record(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 4096)
        rec = json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return rec if isinstance(rec, dict) else {}


def describe(rec: dict) -> str:
    """``pid P on host H (command, since T)`` of a lock record."""
    if not rec:
        return "another process"
    return (f"pid {rec.get('pid', '?')} on host {rec.get('host', '?')} ({rec.get('command', 'a run')}, since "
            f"{rec.get('started', '?')})")


def holder(out: str | Path) -> tuple[str, dict]:
    """Who holds ``out`` as far as its lock record says, read without locking (a lock taken only to look,
    however briefly, would refuse a run starting then): ("running", rec) for a live process on this host,
    ("elsewhere", rec) for one on another host (not checkable from here), ("ended", rec) for a process on
    this host that is gone without emptying its record (killed), ("", {}) when none."""
    try:
        fd = os.open(Path(out) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return "", {}
    try:
        rec = _record(fd)
    finally:
        os.close(fd)
    if not rec:
        return "", {}
    if rec.get("host") != socket.gethostname():
        return "elsewhere", rec
    alive = isinstance(rec.get("pid"), int) and pid_alive(rec["pid"])
    return ("running" if alive else "ended"), rec


def _busy(out: Path, rec: dict, extra: str = "") -> OutBusy:
    return OutBusy(f"--out {out} is in use by {describe(rec)}{extra}: wait for it to finish (or stop it), or "
                   f"give another --out; two runs on one result store would compute and write the same fits "
                   f"twice", rec)


def acquire(out: str | Path, command: str) -> OutLock:
    """Lock ``out`` (an existing, writable directory) for ``command``; OutBusy when another holds it.
    OSError when the lock file cannot be created (a read-only or unwritable OUT: the caller says so)."""
    out = Path(out)
    path = out / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        rec = _record(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            gone = (rec.get("host") == socket.gethostname() and isinstance(rec.get("pid"), int)
                    and not pid_alive(rec["pid"]))
            raise _busy(out, rec, "; that process has ended, but a process it started still holds the lock "
                                  f"(find it with: fuser -v {path})" if gone else "") from None
        except OSError as e:
            if e.errno not in NO_FLOCK:
                raise
            _check_record(out, path, rec)  # no flock here: the record decides
        rec = _record(fd)  # what the last holder left, now that it cannot change
        _write_record(fd, {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                           "started": datetime.now(UTC).isoformat(timespec="seconds")})
    except BaseException:
        os.close(fd)
        raise
    return OutLock(path, fd, rec)


def _write_record(fd: int, rec: dict) -> None:
    """Replace the lock file's record with ``rec``; on a full disk the lock is held without one (it only
    informs a refused run)."""
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        os.write(fd, json.dumps(rec).encode())
        os.fsync(fd)
    except OSError:
        os.ftruncate(fd, 0)


def _check_record(out: Path, path: Path, rec: dict) -> None:
    """Without flock: OutBusy when the record names a live process on this host, or any on another."""
    pid, host = rec.get("pid"), rec.get("host")
    if not isinstance(pid, int) or pid == os.getpid():
        return
    if host == socket.gethostname():
        if pid_alive(pid):
            raise _busy(out, rec)
        return
    raise _busy(out, rec, f"; this file system has no flock, so a run on another host cannot be checked from "
                          f"here: if it has ended, delete {path}")
