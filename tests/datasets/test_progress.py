"""datasets.progress: a phase is silent while short or known small, then shows bytes, rate and ETA, throttled,
and a closing line; driven by a fake clock (``tick`` is what the ticker thread calls), and once with the real
thread."""

from __future__ import annotations

import io
import time

import pytest

from datasets.progress import Phase, human_bytes, io_counter


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_human_bytes():
    assert [human_bytes(x) for x in (512, 1_500, 2_500_000, 65e9)] == ["512 B", "1.5 KB", "2.5 MB", "65.0 GB"]


def test_short_phase_prints_nothing():
    clock, out = Clock(), io.StringIO()
    with Phase("hashing inputs", 10**9, out, delay=2.0, clock=clock) as p:
        clock.t = 1.9
        p.update(10**8)
        p.tick()
    assert out.getvalue() == ""


def test_long_phase_lines_throttled_and_closing_line():
    clock, out = Clock(), io.StringIO()
    with Phase("reading L1000 matrix", 0, out, delay=2.0, clock=clock) as p:
        p.update(10 * 10**6, 100 * 10**6)
        clock.t = 2.5
        p.tick()
        clock.t = 5.0
        p.update(40 * 10**6)
        p.tick()  # within 10 s of the last line (off a terminal): nothing
        clock.t = 12.5
        p.tick()
        p.update(100 * 10**6)
        clock.t = 20.0
    lines = out.getvalue().splitlines()
    assert lines == ["reading L1000 matrix: 10.0 MB of 100.0 MB (10%), 4.0 MB/s, ETA 22s",
                     "reading L1000 matrix: 40.0 MB of 100.0 MB (40%), 3.2 MB/s, ETA 19s",
                     "reading L1000 matrix: 100.0 MB in 20.0 s (5.0 MB/s)"]


def test_known_small_phase_never_prints():
    clock, out = Clock(), io.StringIO()
    with Phase("reading metadata", 5_000, out, clock=clock) as p:  # 5 KB: a small input, however slow
        clock.t = 60.0
        p.tick()
    assert out.getvalue() == ""


def test_polled_counter_and_unmeasured_phase():
    clock, out, n = Clock(), io.StringIO(), [1_000]
    with Phase("reading baseline", 50 * 10**6, out, counter=lambda: n[0], delay=0, clock=clock) as p:
        n[0] += 50 * 10**6
        clock.t = 10.0
        p.tick()
        assert out.getvalue() == "reading baseline: 50.0 MB of 50.0 MB (100%), 5.0 MB/s, finishing (10s)\n"
    out = io.StringIO()
    with Phase("writing cube", 0, out, delay=0, clock=clock) as p:  # no counter on this system
        clock.t = 13.0
        p.tick()
    assert out.getvalue().splitlines() == ["writing cube: 3s so far", "writing cube: done in 3.0 s"]


def test_terminal_redraws_in_place_and_an_error_starts_a_new_line():
    clock, out = Clock(), Tty()
    with pytest.raises(KeyboardInterrupt):
        with Phase("hashing inputs", 10**9, out, delay=0, clock=clock) as p:
            clock.t = 1.0
            p.update(10**8)
            p.tick()
            raise KeyboardInterrupt
    assert out.getvalue() == "\r\x1b[Khashing inputs: 100.0 MB of 1.0 GB (10%), 100.0 MB/s, ETA 9s\n"


def test_ticker_thread_draws_while_the_phase_runs():
    out = io.StringIO()
    with Phase("hashing inputs", 10**9, out, delay=0, every=0) as p:
        deadline = time.monotonic() + 30
        while "ETA" not in out.getvalue() and time.monotonic() < deadline:  # the thread ticks every 0.25 s
            p.update(p.done + 10**6)
            time.sleep(0.05)
    lines = out.getvalue().splitlines()
    assert "ETA" in lines[0] and " in " in lines[-1]


@pytest.mark.skipif(io_counter("rchar") is None, reason="needs /proc/self/io (Linux)")
def test_io_counter_counts_this_process_reads(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"\0" * 3_000_000)
    rchar = io_counter("rchar")
    a = rchar()
    assert f.read_bytes()
    assert rchar() - a >= 3_000_000
