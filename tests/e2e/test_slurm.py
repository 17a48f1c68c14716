"""A real single-node Slurm (scripts/start-local-slurm.sh): ``python -m harness.run --cluster slurm --jobs 2``
on a small grid runs to completion and every fit records the worker and the Slurm job that ran it.

Needs root (the script installs slurm-wlm/munge with apt-get if missing and starts the daemons); skipped
otherwise. Slurm is stopped afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from tests.e2e import AS_IN_A_TERMINAL, PYTHON, ROOT, load, planned, tiny_args, tiny_cube, wait_for

pytestmark = pytest.mark.timeout(900)

SCRIPT = ROOT / "scripts" / "start-local-slurm.sh"


@pytest.fixture(scope="module")
def slurm():
    if os.geteuid() != 0:
        pytest.skip("the real-Slurm test needs root (start-local-slurm.sh installs and starts slurmctld, "
                    "slurmd and munged); run the tests as root to include it")
    r = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=600)
    try:
        assert r.returncode == 0, f"start-local-slurm.sh failed:\n{r.stdout}\n{r.stderr}"
        assert shutil.which("squeue") and shutil.which("scontrol")
        yield "debug"
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True, timeout=120)


def test_slurm_run_completes_and_records_slurm_jobs(slurm, tmp_path_factory, tmp_path):
    cube = tiny_cube(tmp_path_factory)
    out = tmp_path / "run"
    args = tiny_args(cube, out, "--cluster", "slurm", "--jobs", "2", "--partition", slurm,
                     "--walltime", "00:15:00", "--memory", "2GB", "--cores-per-job", "1",
                     "--models", "pertvae", "pca")
    env = dict(os.environ, PYTHONUNBUFFERED="1", HARNESS_SLURM_INTERFACE="lo")
    r = subprocess.run([PYTHON, "-m", "harness.run", *args], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=800)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log
    assert "Dask dashboard: http" in log and "ssh -N -L" in log

    ds = load(out)
    mask = planned(ds).values
    assert mask.sum() == 2 * 6 + 6 * 2   # 2 drugs x 6 splits x pertvae@3 + 6 splits x pooled (pca@2, pca@3)
    assert (ds.status.values[mask] == "done").all(), log
    job_ids = ds.slurm_job_id.values[mask]
    workers = ds.worker.values[mask]
    assert all(str(j).isdigit() for j in job_ids), set(job_ids)
    assert all(str(w).startswith("tcp://") for w in workers), set(workers)
    pv = ds.sel(model="pertvae", latent=3, drug=["drugA", "drugB"])
    assert np.isfinite(pv.rho_pred_pert.values).all()

    # the ids are real Slurm jobs submitted by this run: each wrote its dask-jobqueue log file
    logs = out / "slurm-logs"
    for j in set(job_ids):
        assert list(logs.glob(f"*-{j}.err")) or list(logs.glob(f"*-{j}.out")), (j, list(logs.iterdir()))
    # and no job of the run is left behind in the queue
    assert wait_for(lambda: not (_queue() & set(job_ids)), timeout=60), _queue()


def _queue(*states: str) -> set[str]:
    """Ids of the jobs in the queue (pending, running or completing), or of those in ``states`` (R...)."""
    q = subprocess.run(["squeue", "-h", *(["-t", ",".join(states)] if states else []), "-o", "%i"],
                       capture_output=True, text=True, timeout=30)
    return set(q.stdout.split())


def _run_slurm(tmp_path, cube, *extra: str) -> subprocess.CompletedProcess:
    args = tiny_args(cube, tmp_path / "run", "--cluster", "slurm", "--jobs", "1", "--walltime", "00:10:00",
                     "--memory", "1GB", "--models", "pca", "--latents-pca", "2", "--n-repeats", "1", *extra)
    env = dict(os.environ, PYTHONUNBUFFERED="1", HARNESS_SLURM_INTERFACE="lo")
    return subprocess.run([PYTHON, "-m", "harness.run", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.mark.parametrize(("flags", "sbatch_says"), [
    (("--partition", "nosuch"), "invalid partition specified: nosuch"),
    (("--partition", "debug", "--gpus-per-job", "1"), "Invalid generic resource (gres) specification"),
])
def test_rejected_slurm_job_stops_with_sbatchs_error(slurm, tmp_path_factory, tmp_path, flags, sbatch_says):
    """issue 10 #16: sbatch's own error, exit 2, at once (no hang), nothing queued, the script in run.log."""
    before = _queue()
    r = _run_slurm(tmp_path, tiny_cube(tmp_path_factory), *flags)
    line = _one_error_line(r)
    assert "Slurm rejects the worker job" in line and sbatch_says in line and "--partition" in line, line
    assert _queue() <= before
    assert "#SBATCH" in (tmp_path / "run" / "run.log").read_text()


def test_no_worker_within_worker_timeout_stops_with_exit_2(slurm, tmp_path_factory, tmp_path):
    """issue 10 #16: a job that stays pending (--begin in an hour): after --worker-timeout, exit 2 naming the
    pending job and what to check; the job is cancelled."""
    r = _run_slurm(tmp_path, tiny_cube(tmp_path_factory), "--partition", slurm, "--worker-timeout", "3",
                   "--job-extra=--begin=now+3600")
    line = _one_error_line(r)
    assert "no Dask worker joined in 3 s (--worker-timeout" in line and "PENDING (BeginTime)" in line, line
    assert "squeue" in line and "slurm-logs" in line and "HARNESS_SLURM_INTERFACE" in line, line
    job = re.search(r"Slurm jobs: (\d+) PENDING", line).group(1)
    assert wait_for(lambda: job not in _queue(), timeout=30), _queue()


def test_ctrl_c_stops_a_slurm_run_as_interrupted_and_cancels_its_jobs(slurm, tmp_path_factory, tmp_path):
    """A Ctrl-C while a worker job runs: exit 130, the 'interrupted:' line and run.json, the jobs cancelled.
    Importing dask_jobqueue had set SIGINT's handler to sys.exit(): the run ended with exit 0 and no word.
    The fits never stop by themselves (100,000 epochs): at 400 a quiet machine finished the run in 18 s,
    before the job was seen running. Started with SIGINT's default handler (AS_IN_A_TERMINAL): a test run
    started in the background has it ignored, and its children inherit that."""
    import signal

    args = tiny_args(tiny_cube(tmp_path_factory), tmp_path / "run", "--cluster", "slurm", "--jobs", "1",
                     "--partition", slurm, "--walltime", "00:10:00", "--memory", "1GB", "--models", "pertvae",
                     "--max-epochs", "100000", "--patience", "100000")
    env = dict(os.environ, PYTHONUNBUFFERED="1", HARNESS_SLURM_INTERFACE="lo")
    before = _queue()
    p = subprocess.Popen([PYTHON, "-c", AS_IN_A_TERMINAL, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: _queue("R") - before or p.poll() is not None, timeout=120), _queue()
        assert p.poll() is None, p.communicate()
        jobs = _queue("R") - before
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, out + err
    assert "interrupted: 0 of" in out and "run the same command again to resume" in out, out + err
    assert "Traceback" not in out + err
    assert (tmp_path / "run" / "run.json").exists()
    assert wait_for(lambda: not (_queue() & jobs), timeout=30), _queue()


def _job_state(job: str) -> str:
    r = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, timeout=30)
    m = re.search(r"JobState=(\w+)", r.stdout)
    return m.group(1) if m else "?"


def test_a_busy_worker_at_its_lifetime_ends_its_job_before_the_walltime_and_a_new_job_takes_over(
        slurm, tmp_path, monkeypatch):
    """Workers retire a margin before the walltime so that Slurm never kills a job with a task in it: the job
    ends with its worker (COMPLETED) and adapt() submits another for the tasks left. With --lifetime-restart
    the nanny restarted the worker inside the same job, which Slurm then killed at its walltime (TIMEOUT,
    'CANCELLED ... DUE TO TIME LIMIT') with whatever task it ran. Walltime 40 s (Slurm: 1 min): lifetime
    30 s; 2-s tasks one after another keep the worker busy (an idle one adapt() would cancel)."""
    from harness.cluster import open_cluster
    from harness.config import make_config

    def job_after(seconds: float) -> str:
        import time

        time.sleep(seconds)
        return os.environ["SLURM_JOB_ID"]

    monkeypatch.setenv("HARNESS_SLURM_INTERFACE", "lo")
    cfg = make_config("demo", cluster="slurm", jobs=1, partition=slurm, walltime="00:00:40", memory="1GB",
                      dashboard_address=":0", out=str(tmp_path))
    with open_cluster(cfg) as handle:
        jobs = [handle.client.submit(job_after, 0, pure=False).result(timeout=120)]
        while jobs[-1] == jobs[0] and len(jobs) < 60:
            jobs.append(handle.client.submit(job_after, 2, pure=False).result(timeout=120))
    assert jobs[-1] != jobs[0], jobs
    assert wait_for(lambda: _job_state(jobs[0]) not in ("RUNNING", "COMPLETING"), timeout=30)
    assert _job_state(jobs[0]) == "COMPLETED", (jobs[0], _job_state(jobs[0]))


@pytest.mark.timeout(300)   # without the fix it never ends
def test_a_task_longer_than_a_workers_lifetime_is_stopped_with_the_walltime_named(slurm, tmp_path,
                                                                                   monkeypatch):
    """A task that outlives its worker (walltime 2 min: a lifetime of 54-66 s) started again on every new
    job, without end (a demo task of 2000 epochs: 5 jobs in 6.5 min, 0 of 10 fits). It is now stopped when
    it starts on the second job, the reason naming the walltime, and that job ends too. The task sleeps:
    the point is Slurm's and Dask's handling, not the CPU."""
    import time

    from harness.cluster import open_cluster
    from harness.config import make_config

    monkeypatch.setenv("HARNESS_SLURM_INTERFACE", "lo")
    cfg = make_config("demo", cluster="slurm", jobs=1, partition=slurm, walltime="00:02:00", memory="1GB",
                      dashboard_address=":0", out=str(tmp_path))
    before = _queue()
    with open_cluster(cfg) as handle:
        handle.watch_every = 1.0
        task = handle.client.submit(time.sleep, 3600, key="longer-than-a-lifetime")
        handle.limits[task.key] = 0.0   # --fit-timeout 0
        assert list(handle.as_completed([task])) == [task]
        assert task.cancelled()
        jobs = _queue() - before
    reason = handle.timed_out[task.key]
    assert reason.startswith("did not finish in "), reason
    assert "which then left: a worker lives 54-66 s (--walltime 00:02:00 less a margin)" in reason, reason
    assert "longer --walltime or fewer --splits-per-task" in reason, reason
    logs = {p.stem.rsplit("-", 1)[1] for p in (tmp_path / "slurm-logs").glob("*.err")}
    assert len(logs) == 2, logs   # the first job's worker retired, the second's was stopped with the task
    assert wait_for(lambda: not (_queue() & (jobs | logs)), timeout=60), _queue()


def test_a_task_over_its_fit_timeout_ends_its_slurm_job_and_the_next_task_runs_in_a_new_one(
        slurm, tmp_path, monkeypatch):
    """The --fit-timeout watchdog restarted a Slurm worker inside its job, where its lifetime started again
    and outlived the job: with --walltime 00:05:00 Slurm killed the job at 5:00 (TIMEOUT) with the next task
    in it. The worker is now retired and its job ends; the next task runs in a new job."""
    import time

    from harness.cluster import open_cluster
    from harness.config import make_config

    def job_after(seconds: float) -> str:
        time.sleep(seconds)
        return os.environ["SLURM_JOB_ID"]

    monkeypatch.setenv("HARNESS_SLURM_INTERFACE", "lo")
    cfg = make_config("demo", cluster="slurm", jobs=1, partition=slurm, walltime="00:10:00", memory="1GB",
                      dashboard_address=":0", out=str(tmp_path))
    with open_cluster(cfg) as handle:
        handle.watch_every = 1.0
        held = handle.client.submit(job_after, 0, pure=False)   # a run holds its finished futures
        first = held.result(timeout=120)
        hung = handle.client.submit(job_after, 3600, key="hung", pure=False)
        handle.limits[hung.key] = 5.0
        assert list(handle.as_completed([hung])) == [hung] and hung.cancelled()
        after = handle.client.submit(job_after, 0, pure=False).result(timeout=120)
    assert after != first   # without the fix: the same job, its worker restarted in it
    assert handle.timed_out["hung"].endswith("was closed, its Slurm job with it"), handle.timed_out
    assert wait_for(lambda: _job_state(first) not in ("RUNNING", "COMPLETING"), timeout=60)
    assert _job_state(first) in ("COMPLETED", "CANCELLED"), (first, _job_state(first))
