"""Ctrl-C in ``python -m datasets.build`` / ``synthetic`` / ``fetch``: exit 130, one line, nothing written.

These modules cannot hand off to harness.entry (datasets sits below harness), so a Ctrl-C while their modules
loaded, and one while ``synthetic`` wrote its cube, ended with a traceback and death by SIGINT (-2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.datasets.build_cli import ENV, ROOT


def _default_sigint() -> None:
    """Ctrl-C as in a terminal, even when the test runner was started in the background (SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("module, after, args", [
    ("datasets.synthetic", "numpy", ["--preset", "demo", "--out", "{tmp}/cube.zarr"]),
    ("datasets.build", "numpy", ["--l1000", "{tmp}/x.gctx", "--baseline", "{tmp}/b.csv", "--out",
                                 "{tmp}/cube.zarr"]),
    ("datasets.fetch", "json", ["depmap", "--dir", "{tmp}/data"]),
])
def test_ctrl_c_while_python_m_imports_is_one_line_and_130(tmp_path, module, after, args):
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", module,
                             *(a.format(tmp=tmp_path) for a in args)], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    seen = []
    for line in proc.stderr:   # -X importtime: a line as each module is imported
        seen.append(line.rsplit("|", 1)[-1].strip())
        if seen[-1] == after:
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    proc.wait(timeout=120)
    assert seen[-1] == after, f"{after} was never imported"
    assert proc.returncode == 130, rest[-2000:]
    assert "Traceback" not in rest and rest.splitlines()[-1].startswith("interrupted"), rest[-2000:]
    assert list(tmp_path.iterdir()) == []


SLOW_WRITE = """
import runpy, sys, time
import zarr.storage
orig = zarr.storage.LocalStore.set
async def slow(self, key, value):
    time.sleep(0.3)  # blocks zarr's event loop: its chunk writes take 0.3 s each, one by one
    return await orig(self, key, value)
zarr.storage.LocalStore.set = slow
sys.argv = ["datasets.synthetic", *sys.argv[1:]]
runpy.run_module("datasets.synthetic", run_name="__main__")
"""


def test_ctrl_c_while_synth_writes_leaves_nothing(tmp_path):
    out = tmp_path / "cube.zarr"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITE, "--preset", "demo", "--out", str(out)],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".cube.zarr.tmp-*/zarr.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err == f"interrupted: no cube written at {out} (an existing one is unchanged)\n"
    time.sleep(0.5)  # nothing written after the exit either
    assert list(tmp_path.iterdir()) == []


def test_python_m_still_runs_the_command(tmp_path):
    """The hand-off runs the module's main as before (its exit status and output)."""
    r = subprocess.run([sys.executable, "-m", "datasets.fetch", "--list"], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "depmap" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-m", "datasets.synthetic", "--out", str(tmp_path / "c.zarr"),
                        "--seed", "-1"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: argument --seed: must be in [0"), r.stderr
    assert list(tmp_path.iterdir()) == []


def test_python_m_fetch_list_to_a_closed_pipe_is_no_traceback():
    """``python -m datasets.fetch --list | head -1`` printed a BrokenPipeError traceback (exit 1); the
    console script's form ended quietly with 141 already (harness.entry)."""
    read, write = os.pipe()
    os.close(read)
    try:
        r = subprocess.run([sys.executable, "-m", "datasets.fetch", "--list"], stdout=write,
                           stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT, env=ENV)
    finally:
        os.close(write)
    assert r.returncode == 141 and r.stderr == "", r.stderr[-2000:]


# a command whose zarr read or write (on zarr's event-loop thread) a Ctrl-C cuts short; the child sends itself
# SIGINT once the work runs (an event, no sleep to time it). "fan-out": tasks over threads, pending at exit;
# "busy": the loop thread inside a step (decoding a chunk) when zarr's exit hook stops and closes the loop
_CUT_ZARR_IO = """
import asyncio, os, signal, sys, threading, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from zarr.core.sync import sync
from datasets.interrupt import guarded
started = threading.Event()

async def chunk() -> None:
    started.set()
    for _ in range(100):
        await asyncio.to_thread(time.sleep, 0.01)

async def chunks() -> None:
    await asyncio.gather(*(asyncio.ensure_future(chunk()) for _ in range(8)))

async def busy() -> None:
    started.set()
    time.sleep(1)

def command() -> int:
    ctrl_c = lambda: (started.wait(), os.kill(os.getpid(), signal.SIGINT))
    threading.Thread(target=ctrl_c, daemon=True).start()
    sync(chunks() if sys.argv[1] == "fan-out" else busy())
    return 0

sys.exit(guarded(command))
"""


@pytest.mark.parametrize("io", ["fan-out", "busy"])
def test_ctrl_c_during_zarr_io_is_one_line_without_asyncio_noise(io):
    """Before: Ctrl-C while `pertvae-bench report OUT` read the store printed 'interrupted', then, as the
    process exited and zarr's exit hook stopped its loop: with tasks pending, 'Task was destroyed but it is
    pending!' and 'Task exception was never retrieved' with a RuntimeError traceback ('cannot schedule new
    futures after shutdown'); with the loop thread busy, 'Thread did not finish cleanly; forcefully closing
    the event loop.' and 'Exception ignored in atexit callback' ('Cannot close a running event loop').
    After: the one line."""
    p = subprocess.run([sys.executable, "-c", _CUT_ZARR_IO, io], cwd=ROOT, env=ENV, capture_output=True,
                       text=True, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (130, "", "interrupted\n")
