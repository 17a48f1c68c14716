"""harness.store.fit_counts_of and failed_words: the counts every 'done:' / 'run ...' / 'Results:' line
prints, checked against a direct count; a fit failed only in some of its methods is said to be one."""

from __future__ import annotations

import numpy as np

from harness.store import failed_words, fit_counts_of


def _grid(seed: int = 0):
    rng = np.random.default_rng(seed)
    status = rng.choice(np.array(["done", "failed", ""], dtype=object), size=(2, 3, 2, 4))
    planned = rng.random((2, 3, 2, 4)) < 0.8
    methods = rng.choice(np.array(["done", "failed", ""], dtype=object), size=(2, 3, 2, 4, 3))
    return status, planned, methods


def test_counts_match_a_direct_count():
    status, planned, methods = _grid()
    got = fit_counts_of(status, planned, methods)
    direct = {"planned": 0, "done": 0, "failed": 0, "failed_in_methods": 0, "not_run": 0}
    for idx in np.ndindex(*status.shape):
        if not planned[idx]:
            continue
        direct["planned"] += 1
        if status[idx] == "done":
            direct["done"] += 1
        elif status[idx] == "failed":
            direct["failed"] += 1
            direct["failed_in_methods"] += "done" in list(methods[idx])
        else:
            direct["not_run"] += 1
    assert got == {**direct, "missing": direct["planned"] - direct["done"]}
    assert fit_counts_of(status, planned, None)["failed_in_methods"] == 0


def test_the_words_say_which_failures_lost_no_other_scores():
    c = {"failed": 3, "failed_in_methods": 0}
    assert failed_words(c) == "3 failed"
    assert failed_words({**c, "failed_in_methods": 3}) == ("3 failed (all in some methods only: their other "
                                                           "methods are scored)")
    assert failed_words({**c, "failed_in_methods": 1}) == ("3 failed (1 of them in some methods only: their "
                                                           "other methods are scored)")


def test_the_plan_line_gives_the_splits_a_task_holds(tmp_path, capsys, monkeypatch):
    """'(10 split(s) per task)' was printed for a demo grid of 1 x 3 splits (no task held more than 3), and
    '(1 split(s) per task)' on a CPU while PCA's and the baselines' tasks hold all of a drug's splits."""
    from harness import config, run
    from harness.config import make_config
    from harness.grid import store_drugs
    from harness.store import ResultStore

    monkeypatch.setattr(config, "_cuda_available", lambda: False)
    for i, (preset, want) in enumerate((("demo", "3 split(s) per task"),
                                        ("paper", "1 split(s) per task; pca, baselines: all 3 of a drug's"))):
        out = tmp_path / str(i)
        cfg = make_config(preset, drugs=("selumetinib",), n_repeats=1, n_folds=3, out=str(out),
                          models=("pertvae", "pca", "baselines"))
        store = ResultStore.open(out, cfg, "fp", drugs=store_drugs(cfg, ["selumetinib"]))
        tasks, _ = run._plan(cfg, ["selumetinib"], store, out)
        assert max(len(t.splits) for t in tasks) == 3
        assert f"to run in {len(tasks)} tasks ({want}) on cluster 'local'" in capsys.readouterr().out


def test_the_plan_warns_when_compile_needs_more_graphs_than_dynamo_keeps(tmp_path, capsys):
    """--compile with 50 splits a task: 10 VAE latent sizes x 7 batch sizes of compaction are 70 graphs,
    past dynamo's 64, after which a worker silently trains eagerly: the run says so, in one line."""
    from harness import run
    from harness.config import make_config
    from harness.grid import store_drugs
    from harness.store import ResultStore

    for i, latents in enumerate(((2, 5), tuple(range(2, 12)))):
        out = tmp_path / str(i)
        cfg = make_config("paper", drugs=("selumetinib",), out=str(out), models=("vae",), latents_vae=latents,
                          compile=True, splits_per_task=50)
        store = ResultStore.open(out, cfg, "fp", drugs=store_drugs(cfg, ["selumetinib"]))
        run._plan(cfg, ["selumetinib"], store, out)
        warned = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning: ")]
        assert warned == ([] if i == 0 else [
            "warning: --compile: a worker may need up to 70 torch.compile graphs of the training step (10 "
            "model shapes, each at the batch sizes its compaction meets), more than the 64 dynamo keeps: "
            "past them it trains eagerly (fewer latent sizes or models per run keep under it)"])


def test_the_plan_says_a_slurm_job_trains_on_its_first_gpu_only(tmp_path, capsys):
    """--gpus-per-job 2: a job's one worker trains every fit on torch's "cuda", the job's first GPU, and the
    second is held idle; the dry run said so, the run's plan did not. It does now, and only above 1."""
    from harness import run
    from harness.config import make_config
    from harness.grid import store_drugs
    from harness.store import ResultStore

    for gpus, cores in ((1, 1), (2, 1), (3, 2)):
        out = tmp_path / f"{gpus}-{cores}"
        cfg = make_config("demo", cluster="slurm", jobs=4, gpus_per_job=gpus, cores_per_job=cores,
                          drugs=("selumetinib",), n_repeats=1, n_folds=3, out=str(out), models=("pertvae",))
        store = ResultStore.open(out, cfg, "fp", drugs=store_drugs(cfg, ["selumetinib"]))
        run._plan(cfg, ["selumetinib"], store, out)
        notes = [line for line in capsys.readouterr().out.splitlines() if "--gpus-per-job" in line]
        assert notes == ([] if gpus == 1 else [
            f"note: --gpus-per-job {gpus}: a job's worker trains every fit on the job's first GPU only, "
            f"{cores} task(s) at a time (the fewer of --cores-per-job and --gpus-per-job); its other "
            f"{gpus - 1} GPU(s) are held and stay idle: for more GPUs give more --jobs"])
