"""A real single-node Slurm (scripts/start-local-slurm.sh): ``python -m harness.run --cluster slurm --jobs 2``
on a small grid runs to completion and every fit records the worker and the Slurm job that ran it.

Needs root (the script installs slurm-wlm/munge with apt-get if missing and starts the daemons); skipped
otherwise. Slurm is stopped afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from tests.e2e import PYTHON, ROOT, load, planned, tiny_args, tiny_cube, wait_for

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
    assert mask.sum() == 2 * 6 * 3   # 2 drugs x 6 splits x (pertvae@3, pca@2, pca@3)
    assert (ds.status.values[mask] == "done").all(), log
    job_ids = ds.slurm_job_id.values[mask]
    workers = ds.worker.values[mask]
    assert all(str(j).isdigit() for j in job_ids), set(job_ids)
    assert all(str(w).startswith("tcp://") for w in workers), set(workers)
    pv = ds.sel(model="pertvae", latent=3)
    assert np.isfinite(pv.rho_pred_pert.values).all()

    # the ids are real Slurm jobs submitted by this run: each wrote its dask-jobqueue log file
    logs = out / "slurm-logs"
    for j in set(job_ids):
        assert list(logs.glob(f"*-{j}.err")) or list(logs.glob(f"*-{j}.out")), (j, list(logs.iterdir()))
    # and no job of the run is left behind in the queue
    assert wait_for(lambda: not (_queue() & set(job_ids)), timeout=60), _queue()


def _queue() -> set[str]:
    q = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30)
    return set(q.stdout.split())
