"""The result store's write path at the paper grid's size: fits per second through ``ResultStore.write``.

The paper preset's grid (19 drugs x 50 splits; PertVAE at latent 100, Figure 2's VAE and PCA pooled at 7
latent sizes, the baselines at latent 100: 2,600 fits in 1,320 tasks on a CPU) is written task by task, as
harness.run's driver writes them (one ``write`` per finished task: one fit for PertVAE and the VAE, a drug's
50 splits for the baselines, all 7 x 50 for PCA), into a store created for the paper synthetic cube's drugs,
paired cell lines and 978 genes. The rows are real rows: the baselines' and PCA's of one split of the paper
cube (pertvae_core.api), PertVAE's and the VAE's built on them with the keys harness.tasks returns for those
models. Figures: ``fits_per_cpu_s`` (fits / this process's CPU seconds, the goal >= 200 on this machine),
``fits_per_wall_s``, ``single_fit_writes_per_cpu_s`` (the one-fit writes alone: a cluster's steady state),
with the load average before and after; ``run`` writes as harness.run does (a writer thread writes the rows
that arrived while it wrote the previous ones together), ``write_through`` each task's rows at once (the
per-fit chunks alone). ``PERTVAE_BENCH_STORE_TASKS=N`` writes only the first N tasks of each model (a quick
look at a slow write path); with --benchmark-disable, 40 of each.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from benchmarks._data import load_average

N_GENES = 978


@functools.lru_cache(maxsize=1)
def paper_inputs() -> tuple[list[str], list[str], list[str], dict[str, dict]]:
    """The paper cube's drugs, paired cell lines (all drugs) and genes, and one real row per model kind
    (from the first split of its first drug)."""
    from benchmarks._data import _cube, drug_splits
    from datasets.cube import drugs
    from datasets.pairs import drug_data
    from harness.tasks import paired_cell_lines
    from pertvae_core import api

    cube = _cube("paper")
    names = list(drugs(cube))
    cells = sorted({c for d in names for c in paired_cell_lines(drug_data(cube, d))})
    genes = [str(g) for g in cube["gene"].values]
    split = drug_splits("paper", names[0], n_repeats=1)[0]
    base = api.evaluate_baselines([split], 100)[0]
    pca = api.evaluate_pca([split], 100)[0]
    base.pop("method_traceback", None)
    fit = {"epochs": 40.0, "best_epoch": 20.0, "fit_seconds": 12.5, "status": "done", "reason": "",
           "rho_rec": pca["rho_rec"], "rho_rec_pert": pca["rho_rec_pert"], "test_loss": 0.9}
    d = base["detail"]
    first, second = list(d)[:2]
    pert_detail = {"pertvae": d[first], "pertvae_rec": d[second]}
    pertvae = {**fit, "rho_pred_pert": 0.5, "detail": pert_detail,
               "scores": {m: s.summary for m, s in pert_detail.items()}}
    return names, cells, genes, {"pertvae": pertvae, "vae": fit, "pca": pca, "baselines": base}


def paper_config(n_repeats: int | None = None):
    """The paper preset as harness.run resolves it on a CPU (one split per PertVAE and VAE task), with
    ``n_repeats`` of its 5-fold CV when given (a fifth of the grid per repeat)."""
    from harness.config import make_config

    repeats = {"n_repeats": n_repeats} if n_repeats else {}
    return make_config("paper", precision="fp32", device="cpu", **repeats)


def open_paper_store(out: Path, fingerprint: str = "bench-cube", background: bool = True,
                     n_repeats: int | None = None):
    """A new (or the existing) paper-sized store in ``out``, writing as harness.run's does (a writer thread)
    unless ``background`` is False."""
    from harness.grid import store_drugs
    from harness.store import ResultStore

    names, cells, genes, _ = paper_inputs()
    cfg = paper_config(n_repeats)
    return ResultStore.open(out, cfg, fingerprint, drugs=store_drugs(cfg, names), cell_lines=cells,
                            genes=genes, background=background)


def paper_tasks(per_model: int | None = None, n_repeats: int | None = None) -> list:
    """The paper grid's tasks (harness.grid), the first ``per_model`` of each model when given."""
    from harness.grid import build_grid

    names = paper_inputs()[0]
    tasks = build_grid(paper_config(n_repeats), names, splits_per_task=1)
    if per_model is None:
        return tasks
    seen: dict[str, int] = {}
    out = []
    for t in tasks:
        seen[t.model] = seen.get(t.model, 0) + 1
        if seen[t.model] <= per_model:
            out.append(t)
    return out


def task_rows(task, templates: dict[str, dict]) -> list[dict]:
    """The rows harness.tasks.run_task returns for ``task`` (its fits, the model's template row)."""
    return [{**templates[task.model], "model": k.model, "drug": k.drug, "latent": k.latent,
             "repeat": k.repeat, "fold": k.fold, "worker": "tcp://127.0.0.1:1234 host=h pid=1",
             "slurm_job_id": ""} for k in task.fit_keys()]


def write_grid(store, tasks: Sequence) -> dict:
    """Write ``tasks``' rows through ``store.write`` one task at a time; CPU and wall seconds, overall and
    for the one-fit writes (CPU time of the process while they ran: the writer thread's included)."""
    templates = paper_inputs()[3]
    batches = [task_rows(t, templates) for t in tasks]
    load0 = load_average()
    c0, w0 = time.process_time(), time.perf_counter()
    single_cpu, single_fits = 0.0, 0
    for rows in batches:
        t = time.process_time()
        store.write(rows)
        if len(rows) == 1:
            single_cpu += time.process_time() - t
            single_fits += 1
    store.flush()   # the rows still kept: every fit on disk before the clock stops
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    fits = sum(len(b) for b in batches)
    return {"fits": fits, "tasks": len(batches), "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
            "fits_per_cpu_s": round(fits / cpu, 1), "fits_per_wall_s": round(fits / wall, 1),
            "single_fit_writes_per_cpu_s": round(single_fits / single_cpu, 1) if single_cpu else None,
            "load_average_before": load0, "load_average": load_average()}


@pytest.mark.parametrize("flush", ["run", "write_through"])
def test_store_write_throughput(benchmark, request, tmp_path, flush) -> None:
    env = os.environ.get("PERTVAE_BENCH_STORE_TASKS")
    per_model = int(env) if env else (40 if request.config.getoption("benchmark_disable") else None)
    tasks = paper_tasks(per_model)
    store = open_paper_store(tmp_path / "out", background=flush == "run")
    out = benchmark.pedantic(lambda: write_grid(store, tasks), rounds=1, iterations=1)
    counts = store.counts()
    assert counts["done"] == out["fits"]   # every row landed as a done fit
    out["headline"] = ["fits_per_cpu_s", "fits_per_wall_s", "single_fit_writes_per_cpu_s", "fits",
                       "load_average"]
    benchmark.extra_info.update(out)
    print(out)
