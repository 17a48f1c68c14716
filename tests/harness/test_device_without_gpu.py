"""``run --device cuda`` where this machine has no CUDA GPU and the workers run here (a local cluster, or in
process): every fit fell back to the CPU (a warning in run.log alone) while run.json recorded device "cuda",
and the GPU's default batching (all of a drug's splits per task) ran on the CPU. Now refused before any
work, as the dry run refuses it."""

from __future__ import annotations

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
