"""Store and run faults of issue 19, each through the real CLI: two runs on one --out (a lock), an --out
that cannot be written (read-only mount, a dangling symlink), a disk that fills while the store is written,
damaged store metadata, a store written before per-method statuses existed, a worker killed while the
cluster starts. Each: one ``error:`` line (or a repair line), a documented exit code, no traceback, no
hang, nothing lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from harness import outlock
from tests.datasets.tmpfs import mounted_tmpfs
from tests.e2e import PYTHON, ROOT, load, n_status, start_driver, tiny_cube, wait_for
from tests.e2e.test_bad_input_run import assert_error, cli, fast_args

pytestmark = pytest.mark.timeout(300)

BAD = "tests.pertvae_core.bad_methods"


def run_here(capsys, *args: str) -> subprocess.CompletedProcess:
    """``harness.run`` in this process (its imports paid once), as a CompletedProcess."""
    from harness.run import main

    code = main(list(args))
    got = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, got.out, got.err)


def report_here(capsys, out: Path) -> subprocess.CompletedProcess:
    """``harness.report OUT`` in this process, as a CompletedProcess."""
    from harness.report import main

    code = main([str(out)])
    got = capsys.readouterr()
    return subprocess.CompletedProcess([str(out)], code, got.out, got.err)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """(cube, OUT) of a finished fast grid; tests copy OUT before damaging it."""
    cube = tiny_cube(tmp_path_factory)
    out = tmp_path_factory.mktemp("finished19") / "run"
    p = cli(*fast_args(cube, out))
    assert p.returncode == 0, p.stderr
    return cube, out


def copy_run(finished: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    cube, src = finished
    out = tmp_path / "run"
    shutil.copytree(src, out)
    return cube, out


def same_results(a: Path, b: Path) -> None:
    x, y = load(a), load(b)
    assert (x.status.values == y.status.values).all()
    for v in ("rho_rec", "score", "cell_score", "gene_score"):
        np.testing.assert_array_equal(x[v].values, y[v].values, err_msg=v)


# --- a lock on --out ---------------------------------------------------------------------------------


def hold_lock(out: Path) -> subprocess.Popen:
    """Another process holding OUT's lock (as a run does) until killed."""
    code = ("import sys, time; from harness import outlock; outlock.acquire(sys.argv[1], 'harness.run'); "
            "print('locked', flush=True); time.sleep(600)")
    p = subprocess.Popen([PYTHON, "-c", code, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_two_runs_started_together_one_refused(finished, tmp_path):
    cube, _ = finished
    out = tmp_path / "fresh"
    cmd = [PYTHON, "-m", "harness.run", *fast_args(cube, out)]
    a = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    b = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    (ao, ae), (bo, be) = a.communicate(timeout=240), b.communicate(timeout=240)
    codes = sorted([a.returncode, b.returncode])
    assert codes == [0, 2], (ao + ae, bo + be)
    winner, loser = (a, b) if a.returncode == 0 else (b, a)
    err = be if loser is b else ae
    assert "Traceback" not in ae + be
    lines = [x for x in err.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1 and f"in use by pid {winner.pid} on host {socket.gethostname()}" in lines[0]
    assert n_status(out) == 8  # every fit once, by the winner
    assert (out / ".lock").read_text() == ""  # released


def test_run_and_report_refused_while_a_run_holds_out(finished, tmp_path, capsys):
    cube, out = copy_run(finished, tmp_path)
    holder = hold_lock(out)
    try:
        p = run_here(capsys, *fast_args(cube, out))
        assert_error(p, 2, f"--out {out} is in use by pid {holder.pid} on host {socket.gethostname()} "
                           "(harness.run, since", "give another --out")
        r = report_here(capsys, out)
        assert_error(r, 2, f"is being written by pid {holder.pid}", "harness.report.load(")
        assert not p.stdout  # refused before any work
    finally:
        holder.kill()
        holder.wait()
    outlock.acquire(out, "test").release()  # the lock died with its holder


def test_a_killed_runs_lock_record_is_taken_over(finished, tmp_path, capsys):
    cube, out = copy_run(finished, tmp_path)
    dead = subprocess.run([PYTHON, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = {"pid": int(dead.stdout), "host": socket.gethostname(), "command": "harness.run",
              "started": "2026-01-01T00:00:00+00:00"}
    (out / ".lock").write_text(json.dumps(record))
    p = run_here(capsys, *fast_args(cube, out))
    assert p.returncode == 0, p.stderr
    assert f"was locked by pid {record['pid']}" in p.stdout and "taking it over" in p.stdout


def test_without_flock_the_record_decides(tmp_path, monkeypatch):
    """A file system without flock (some network file systems): the pid and host recorded decide."""
    import errno
    import fcntl

    from harness import outlock

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    sleeper = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(600)"])
    try:
        for rec, busy in (({"pid": sleeper.pid, "host": socket.gethostname()}, "in use by pid"),
                          ({"pid": 1, "host": "elsewhere"}, "delete"),
                          ({"pid": 2**22 + 7, "host": socket.gethostname()}, None)):
            (tmp_path / ".lock").write_text(json.dumps(rec))
            if busy:
                with pytest.raises(outlock.OutBusy, match=busy):
                    outlock.acquire(tmp_path, "harness.run")
            else:
                with outlock.acquire(tmp_path, "harness.run") as lock:
                    assert lock.stale == rec
    finally:
        sleeper.kill()
        sleeper.wait()


# --- --out that cannot be written --------------------------------------------------------------------


@pytest.fixture
def read_only_dir(tmp_path: Path):
    """A read-only tmpfs (root ignores chmod 555), unmounted afterwards; skipped where mounting fails."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        mnt.chmod(0o555)
        yield mnt
        mnt.chmod(0o755)
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.parametrize("where", ["inside", "itself"])
def test_read_only_out_is_one_error_before_the_cube_is_opened(read_only_dir, tmp_path, where, capsys):
    out = read_only_dir / "run" if where == "inside" else read_only_dir
    missing_cube = tmp_path / "no_such_cube.zarr"   # would be an error of its own, later
    p = run_here(capsys, *fast_args(missing_cube, out))
    what = "read-only file system" if os.geteuid() == 0 else "permission denied"
    assert_error(p, 2, f"--out {out}", what, "use --out on a disk you can write to")
    assert "no such cube" not in p.stderr and not p.stdout


def test_unwritable_out_for_a_user(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes through chmod 555 (the read-only mount test covers root)")
    d = tmp_path / "locked"
    d.mkdir(mode=0o555)
    p = run_here(capsys, *fast_args(tmp_path / "cube.zarr", d / "run"))
    assert_error(p, 2, "permission denied")


def test_out_as_a_dangling_symlink(tmp_path, capsys):
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone")
    for out in (link, link / "run"):
        p = run_here(capsys, *fast_args(tmp_path / "cube.zarr", out))
        assert_error(p, 2, f"{link} is a symbolic link to {tmp_path / 'gone'}, which does not exist")


# --- a full disk while the store is written ---------------------------------------------------------


def fill(mnt: Path) -> Path:
    """Fill the file system at ``mnt`` to the last byte."""
    filler = mnt / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A 16 MiB tmpfs (the tiny_tmpfs fixture's 64 KiB cannot hold a store)."""
    yield from mounted_tmpfs(tmp_path / "tmpfs", "size=16m")


def test_disk_full_while_writing_fits_is_one_error_and_loses_nothing(finished, small_tmpfs, capsys):
    """A run whose plug-in failed every fit; its rerun retries them onto a full disk, then onto a free one."""
    cube, _ = finished
    out = small_tmpfs / "run"
    args = fast_args(cube, out, "--method", f"{BAD}:GpuOom")
    assert run_here(capsys, *args).returncode == 3
    before = load(out)
    filler = fill(small_tmpfs)
    p = run_here(capsys, *args)
    assert_error(p, 2, "no space left on device", "are kept: run the same command again to resume")
    after = load(out)
    assert (after.status.values == before.status.values).all()
    for v in ("rho_rec", "score"):
        np.testing.assert_array_equal(after[v].values, before[v].values, err_msg=v)
    filler.unlink()
    p = run_here(capsys, *args)
    assert p.returncode == 3 and "repairing" not in p.stdout, p.stdout + p.stderr
    assert n_status(out) == 4 and n_status(out, "failed") == 4  # pca done; baselines: gpu_oom failed


# --- damaged store metadata --------------------------------------------------------------------------


def test_damaged_variable_metadata_is_named_and_repaired(finished, tmp_path, capsys):
    """score/zarr.json deleted, status/zarr.json garbage, method_status/zarr.json empty: zarr would read
    through the root's consolidated copy and never notice."""
    cube, out = copy_run(finished, tmp_path)
    damage = {"score": None, "status": b"{not json", "method_status": b""}
    original = {}
    for var, content in damage.items():
        meta = out / "results.zarr" / var / "zarr.json"
        original[var] = meta.read_bytes()
        if content is None:
            meta.unlink()
        else:
            meta.write_bytes(content)
    r = report_here(capsys, out)
    assert_error(r, 2, "score/zarr.json (missing)", "status/zarr.json (unreadable)",
                 "method_status/zarr.json (unreadable)", "pertvae-bench run again")
    p = run_here(capsys, *fast_args(cube, out))
    assert p.returncode == 0, p.stderr
    assert f"repairing {out / 'results.zarr'}: rewrote " in p.stdout and "0 to run" in p.stdout
    for var in damage:
        meta = out / "results.zarr" / var / "zarr.json"
        assert json.loads(meta.read_bytes()) == json.loads(original[var])
        zarr.open_array(str(meta.parent), mode="r")[:]  # readable on its own again
    same_results(out, finished[1])
    assert report_here(capsys, out).returncode == 0


# --- a store written before per-method statuses -----------------------------------------------------


def test_a_store_without_method_statuses_is_read_and_resumed(finished, tmp_path, capsys):
    cube, out = copy_run(finished, tmp_path)
    store = out / "results.zarr"
    for v in ("method_status", "method_reason"):
        shutil.rmtree(store / v)
    root = json.loads((store / "zarr.json").read_text())
    for v in ("method_status", "method_reason"):
        del root["consolidated_metadata"]["metadata"][v]
    (store / "zarr.json").write_text(json.dumps(root))
    want = pd.read_csv(finished[1] / "scores.csv")
    assert report_here(capsys, out).returncode == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "scores.csv"), want)
    p = run_here(capsys, *fast_args(cube, out))
    assert p.returncode == 0 and "0 to run" in p.stdout and "repairing" not in p.stdout, p.stdout + p.stderr
    assert (load(out).method_status.values == "").all()  # added, empty: the fits' statuses stand
    pd.testing.assert_frame_equal(pd.read_csv(out / "scores.csv"), want)


# --- a worker killed while the cluster starts --------------------------------------------------------


def test_worker_killed_while_the_cluster_starts(finished, tmp_path):
    import psutil

    cube, _ = finished
    out = tmp_path / "run"
    args = [*fast_args(cube, out), "--cluster", "local", "--workers", "1", "--dashboard-address", ":0"]
    p = subprocess.Popen([PYTHON, "-m", "harness.run", *args], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    killed = None
    try:
        end = time.monotonic() + 200
        while killed is None and p.poll() is None and time.monotonic() < end:
            try:
                for c in psutil.Process(p.pid).children(recursive=True):
                    cmd = " ".join(c.cmdline())
                    if "spawn_main" in cmd and "resource_tracker" not in cmd:
                        c.kill()
                        killed = c.pid
            except psutil.Error:
                pass
            time.sleep(0.01)
        stdout, stderr = p.communicate(timeout=120)  # no hang
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert killed is not None
    lines = [x for x in stderr.splitlines() if x.startswith("error: ")]
    if p.returncode == 0:  # the nanny restarted the worker before the cluster reported it: fine too
        return
    assert p.returncode == 2 and "Traceback" not in stdout + stderr, stdout + stderr
    assert len(lines) == 1 and "worker" in lines[0] and "run the same command again" in lines[0]


# --- SIGTERM while the store is created --------------------------------------------------------------


def test_sigterm_while_the_store_is_created(finished, tmp_path, capsys):
    """Terminated as soon as the store's temporary directory appears: no partial store, OUT released."""
    cube, _ = finished
    out = tmp_path / "run"
    p = start_driver(fast_args(cube, out), tmp_path / "driver.log")
    try:
        assert wait_for(lambda: any(out.glob("results.zarr*")), 200, p, poll=0.005)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=120) == 143, (tmp_path / "driver.log").read_text()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert "Traceback" not in (tmp_path / "driver.log").read_text()
    assert not list(out.glob("results.zarr.tmp-*"))
    assert not out.exists() or (out / ".lock").read_text() == ""   # released (OUT removed if empty)
    assert run_here(capsys, *fast_args(cube, out)).returncode == 0


def test_an_interrupt_during_store_creation_is_acted_on_after_it():
    from harness.store import deferred_interrupts

    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop(signum)

    saved = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(Stop):
            with deferred_interrupts():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)  # the handler would run here, mid-creation
                finished_inside = True
        assert finished_inside and signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, saved)
