"""``run --device cuda`` where this machine has no CUDA GPU and the workers run here (a local cluster, or in
process): every fit fell back to the CPU (a warning in run.log alone) while run.json recorded device "cuda",
and the GPU's default batching (all of a drug's splits per task) ran on the CPU. Now refused before any
work, as the dry run refuses it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from harness import run


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
@pytest.mark.parametrize("cluster", ["local", "none"])
def test_a_cuda_run_on_this_machine_without_a_gpu_is_refused_before_any_work(tmp_path, capsys, cluster):
    out = tmp_path / "out"
    assert run.main(["--device", "cuda", "--cluster", cluster, "--out", str(out), "--drugs", "selumetinib",
                     "--n-repeats", "1", "--models", "pertvae"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --device cuda: this machine has no CUDA GPU (torch {torch.__version__}, built "
                   f"without CUDA) and the run's workers run here ('--cluster {cluster}'): they would train "
                   f"on the CPU; give --device cpu (or auto: cuda where there is a GPU), or run where the "
                   f"GPU is\n"), err[-3000:]
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_a_worker_without_cuda_fails_a_cuda_runs_trained_fits_with_the_reason(tmp_path):
    """``--cluster slurm --device cuda --gpus-per-job 0``: the driver cannot check the workers (its Slurm
    jobs, which get a GPU only with --gres), and a worker without CUDA trained every fit on the CPU
    (resolve_device's fallback, a warning in run.log alone) with the GPU's batching, the user told nothing.
    Such a worker fails the trained models' fits, naming itself and what to give; PCA needs no device."""
    from distributed import Client, LocalCluster

    from datasets.cube import drugs, open_cube
    from datasets.synthetic import generate, write_cube
    from harness.config import make_config
    from harness.contenders import contender
    from harness.grid import build_grid
    from harness.tasks import no_cuda, run_task

    cube = str(write_cube(generate("demo", 0, n_genes=60, max_cells=15, n_baseline=160), tmp_path / "c.zarr"))
    cfg = make_config("demo", data=cube, models=["pertvae", "pca"], latents_pertvae=[2], latents_pca=[2],
                      n_repeats=1, n_folds=3, max_epochs=2, cluster="slurm", device="cuda", progress=False)
    drug = drugs(open_cube(cube))[0]
    tasks = build_grid(cfg, [drug], splits_per_task=3)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        rows = {t.model: client.submit(run_task, t, cube, cfg, pure=False).result() for t in tasks}
    assert {r["status"] for r in rows["pertvae"]} == {"failed"} and len(rows["pertvae"]) == 3
    reason = rows["pertvae"][0]["reason"]
    assert reason.startswith("--device cuda: this worker (tcp://") and "has no CUDA GPU" in reason, reason
    assert "trained on the CPU" in reason and "--gpus-per-job 1" in reason, reason
    assert all(r.get("device", "") == "" for r in rows["pertvae"])   # none for fits that never ran
    assert {r["status"] for r in rows["pca"]} == {"done"}
    with_gpus = no_cuda(dataclasses.replace(cfg, gpus_per_job=1), contender("pertvae"))
    assert "check the partition's GPUs" in with_gpus and "give --gpus-per-job" not in with_gpus
