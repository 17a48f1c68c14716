"""Task grid: coverage, blocks, deterministic seeds, resume filtering."""

from __future__ import annotations

from collections import Counter

from harness.config import make_config
from harness.grid import POOLED, FitKey, Task, build_grid, fit_seed, remaining, store_drugs


def _cfg(**kw):
    base = dict(models=["pertvae", "vae", "pca", "baselines"], latents_pertvae=[4], latents_vae=[2, 4],
                latents_pca=[2, 4], latents_baselines=[4], n_repeats=2, n_folds=3)
    base.update(kw)
    return make_config("demo", **base)


def test_grid_covers_every_fit_exactly_once():
    cfg = _cfg(figure2_scope="per-drug")
    for spt in (1, 2, 4, 6, 10):
        tasks = build_grid(cfg, ["d1", "d2"], splits_per_task=spt)
        keys = [fk for t in tasks for fk in t.fit_keys()]
        counts = Counter(keys)
        assert max(counts.values()) == 1
        # pertvae 1 latent + vae 2 + pca 2 + baselines 1 = 6 (model, latent) x 2 drugs x 6 splits
        assert len(keys) == 6 * 2 * 6
        for t in tasks:
            if t.model in ("pertvae", "vae"):
                assert len(t.splits) <= spt
            else:
                assert len(t.splits) == 6      # cheap models take all of a drug's splits
        assert len({t.key for t in tasks}) == len(tasks)


def test_a_cheap_model_takes_all_its_latents_and_splits_in_one_task_per_drug():
    """PCA's decomposition of a split then serves every latent size (issue 23); trained models keep a task
    per latent."""
    tasks = build_grid(_cfg(figure2_scope="per-drug"), ["d1", "d2"], splits_per_task=2)
    pca = [t for t in tasks if t.model == "pca"]
    assert [(t.drug, t.latents, len(t.splits), t.n_fits) for t in pca] == [("d1", (2, 4), 6, 12),
                                                                          ("d2", (2, 4), 6, 12)]
    assert [k.latent for k in pca[0].fit_keys()] == [2] * 6 + [4] * 6
    assert pca[0].key == "pca-d1-L2+4-r0f0..r1f2"
    assert all(len(t.latents) == 1 for t in tasks if t.model in ("pertvae", "vae", "baselines"))


def test_remaining_keeps_the_latents_with_the_same_splits_left_together():
    t = Task("pca", "d", 2, ((0, 0), (0, 1)), (5, 10))
    done = {FitKey("pca", "d", 5, 0, 0), FitKey("pca", "d", 10, 0, 1), FitKey("pca", "d", 2, 0, 1)}
    left = remaining([t], done)
    assert left == [Task("pca", "d", 2, ((0, 0),), (10,)), Task("pca", "d", 5, ((0, 1),))]
    assert remaining([t], set()) == [t]
    assert remaining([t], set(t.fit_keys())) == []


def test_task_keys_stay_unique_when_drug_names_need_escaping():
    names = ["SN-38", "SN_38", "SN 38", "selumetinib", POOLED]
    keys = {Task("pertvae", d, 10, ((0, 0),)).key for d in names}
    assert len(keys) == len(names)
    assert Task("pertvae", "selumetinib", 10, ((0, 0),)).key == "pertvae-selumetinib-L10-r0f0"
    assert all(k.isascii() and " " not in k for k in keys)


def test_pooled_scope_runs_figure2_once_per_split_and_latent():
    cfg = _cfg()  # figure2_scope="pooled" is the default
    tasks = build_grid(cfg, ["d1", "d2", "d3"], splits_per_task=6)
    by_model = Counter((t.model, t.drug) for t in tasks)
    assert {d for m, d in by_model if m in ("vae", "pca")} == {POOLED}
    assert {d for m, d in by_model if m in ("pertvae", "baselines")} == {"d1", "d2", "d3"}
    # vae and pca: 2 latents x 6 splits on POOLED alone; pertvae + baselines: 3 drugs x 6 splits each
    keys = [fk for t in tasks for fk in t.fit_keys()]
    assert len(keys) == (2 + 2) * 6 + 2 * 3 * 6
    assert store_drugs(cfg, ["d1", "d2", "d3"]) == ["d1", "d2", "d3", POOLED]
    assert store_drugs(_cfg(models=["pertvae"]), ["d1"]) == ["d1"]
    assert store_drugs(_cfg(figure2_scope="per-drug"), ["d1"]) == ["d1"]


def test_splits_are_repeat_major():
    tasks = build_grid(_cfg(models=["vae"], latents_vae=[2], figure2_scope="per-drug"), ["d"],
                       splits_per_task=6)
    assert tasks == [Task("vae", "d", 2, ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)))]


def test_fit_seed_is_stable_and_distinct():
    k = FitKey("pertvae", "drugA", 10, 1, 3)
    s = fit_seed(0, k)
    assert s == fit_seed(0, FitKey("pertvae", "drugA", 10, 1, 3))
    assert 0 <= s < 2**63
    variants = [FitKey("vae", "drugA", 10, 1, 3), FitKey("pertvae", "drugB", 10, 1, 3),
                FitKey("pertvae", "drugA", 11, 1, 3), FitKey("pertvae", "drugA", 10, 0, 3),
                FitKey("pertvae", "drugA", 10, 1, 2)]
    others = [fit_seed(1, k)] + [fit_seed(0, v) for v in variants]
    assert len({s, *others}) == 7
    # independent of the layout of tasks: a known value pins the derivation (sha256 of the key text)
    import hashlib
    want = int.from_bytes(hashlib.sha256(b"0/pertvae/drugA/10/1/3").digest()[:8], "big") >> 1
    assert s == want


def test_remaining_drops_done_fits_only():
    cfg = _cfg(models=["pertvae"], latents_pertvae=[4])
    tasks = build_grid(cfg, ["d1"], splits_per_task=4)
    done = {FitKey("pertvae", "d1", 4, r, k) for r, k in ((0, 0), (0, 1), (0, 2), (1, 0))}
    left = remaining(tasks, done)
    assert [t.splits for t in left] == [((1, 1), (1, 2))]
    assert remaining(tasks, set()) == tasks
    all_keys = {fk for t in tasks for fk in t.fit_keys()}
    assert remaining(tasks, all_keys) == []


def test_dask_keys_group_per_model_whatever_the_drug_name():
    from dask.utils import key_split

    from harness.run import dask_key

    for drug in ("SN-38", "GDC-0941", "selumetinib", "5-FU", "(pooled)"):
        for model in ("pertvae", "vae", "pca", "baselines"):
            t = Task(model, drug, 10, ((0, 0), (0, 1)))
            assert key_split(dask_key(t, "181500123456")) == model, (drug, model)


def test_dask_keys_read_as_the_dashboard_shows_them():
    """The dashboard's task names: the latent once, the drug's name as it is (not ``_pooled__9fd7ee``)."""
    from harness.run import dask_key

    t = Task("pertvae", "selumetinib", 10, ((0, 0), (0, 1)))
    assert dask_key(t, "181500123456") == "pertvae-L10-selumetinib-r0f0-r0f1-181500123456"
    assert dask_key(Task("vae", POOLED, 5, ((1, 2),)), "7") == "vae-L5-(pooled)-r1f2-7"
    sn = [dask_key(Task("pca", d, 2, ((0, 0),)), "7") for d in ("SN-38", "SN_38")]
    assert sn == ["pca-L2-SN-38-r0f0-7", "pca-L2-SN_38-r0f0-7"]
    assert dask_key(Task("pca", POOLED, 2, ((0, 0),), (5, 10)), "7") == "pca-L2+5+10-(pooled)-r0f0-7"


def test_the_driver_submits_one_task_of_each_model_first():
    """harness.run.timed_first: each model's first task leads (the ETA waits for a timed fit of every
    model left), the rest keep the grid's order, and every task is submitted once."""
    from harness.run import timed_first

    tasks = build_grid(_cfg(figure2_scope="per-drug"), ["d1", "d2"], splits_per_task=1)
    order = timed_first(tasks)
    models = ["pertvae", "vae", "pca", "baselines"]
    assert order[:4] == [next(t for t in tasks if t.model == m) for m in models]
    assert order[4:] == [t for t in tasks if t not in order[:4]]
    assert sorted(map(repr, order)) == sorted(map(repr, tasks))
