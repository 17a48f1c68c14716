"""Figure 2's pooled fits do not depend on the order the run's drugs are given in."""

from __future__ import annotations

import numpy as np
import pytest

from datasets.cube import write_cube
from datasets.synthetic import generate
from harness.config import make_config
from harness.grid import POOLED, Task
from harness.tasks import run_task

DRUGS = ("selumetinib", "linsitinib")


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    ds = generate("demo", 0, n_genes=24, max_cells=12, n_baseline=40)
    return write_cube(ds, tmp_path_factory.mktemp("pooled_order") / "demo.zarr")


def test_a_pooled_vae_fit_is_the_same_whatever_the_order_of_the_drugs(cube):
    def rows(drugs: tuple[str, ...]) -> dict:
        cfg = make_config("demo", data=str(cube), drugs=drugs, models=["vae"], latents_vae=[2], n_repeats=1,
                          n_folds=3, max_epochs=3, min_epochs=1)
        return run_task(Task("vae", POOLED, 2, ((0, 0),)), str(cube), cfg)[0]

    a, b = rows(DRUGS), rows(DRUGS[::-1])
    assert a["status"] == b["status"] == "done"
    assert a["test_loss"] == b["test_loss"]
    for k, v in a.items():
        if isinstance(v, float) and k not in ("fit_seconds", "fit_cpu_seconds"):
            assert v == b[k] or np.isnan(v) and np.isnan(b[k]), k
