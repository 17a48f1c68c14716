"""harness.cost: split shapes equal what the tasks fit, the step counts equal what fit runs, the grid and the
estimate's arithmetic, worker slots, and the dry run (grid printed, nothing written, bad input exit 2)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from datasets.cube import write_cube
from datasets.synthetic import generate
from harness import calibrate, cost
from harness.config import make_config
from harness.contenders import REGISTRY
from harness.cpus import usable_cpus
from harness.grid import POOLED, FitKey, Task, build_grid
from pertvae_core import layers, precision
from pertvae_core.data import distinct_rows

DRUGS = ("selumetinib", "linsitinib")   # 20 and 6 cell lines in the demo cube


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    return write_cube(generate("demo", 0), tmp_path_factory.mktemp("cost") / "demo.zarr")


def small(cube, **kw):
    return make_config("demo", data=str(cube), drugs=DRUGS, n_repeats=1, n_folds=3, cluster="local",
                       workers=2, **kw)


@pytest.mark.parametrize("include_test_singletons", [False, True])
def test_split_shapes_are_the_rows_a_task_fits(cube, include_test_singletons):
    from harness.tasks import drug_data, drug_splits, split_data

    cfg = small(cube, include_test_singletons=include_test_singletons)
    shapes = cost.drug_shapes(generate("demo", 0), DRUGS)
    shapes[POOLED] = cost.pooled_shape([shapes[d] for d in DRUGS])
    repeats = 0
    for drug, shape in shapes.items():
        dd = drug_data(str(cube), drug, cfg)
        predicted = cost.split_shapes(shape, cfg)
        for sp in drug_splits(dd, cfg):
            sd = split_data(dd, sp, include_test_singletons)
            got = predicted[(sp.repeat, sp.fold)]
            assert (got.n_train, got.n_val, got.n_test, got.n_single) == (
                len(sd.x1_train), len(sd.x1_val), len(sd.x1_test), len(sd.xs_train)), (drug, sp)
            assert sum(got.test_pairs) == len(sd.x1_test) and sum(got.test_controls) == len(sd.xc_test)
            assert got.n_train_x1 == len(distinct_rows(sd.x1_train)), (drug, sp)   # the VAE's x1 profiles
            repeats += got.n_train_x1 < got.n_train
            assert got.n_val_x1 == len(distinct_rows(sd.x1_val)), (drug, sp)   # the VAE validates on them
            assert len(got.test_pairs) == len(sp.test_cell_lines)
    assert repeats > 0   # some splits pair a control with several replicates


@pytest.mark.parametrize("model", ["pertvae", "vae"])
def test_steps_per_epoch_is_what_fit_runs(cube, model):
    from harness.tasks import drug_data, drug_splits, split_data
    from pertvae_core.config import FitConfig
    from pertvae_core.train import fit

    cfg = small(cube, batch_pairs=16, batch_singletons=24)
    dd = drug_data(str(cube), DRUGS[0], cfg)
    sp = drug_splits(dd, cfg)[0]
    shape = cost.split_shapes(cost.drug_shapes(generate("demo", 0), DRUGS[:1])[DRUGS[0]], cfg)[(0, 0)]
    steps: list[int] = []
    fc = FitConfig(**dict(cfg.fit_kwargs(), latent=2, hidden=(8, 8), context=4, iaf_hidden=8, max_epochs=1,
                          device="cpu"))
    fit([split_data(dd, sp)], fc, [0], pairs=model == "pertvae", on_step=lambda t, m: steps.append(t))
    assert len(steps) == cost.steps_per_epoch(model, shape, cfg) > 1


def test_estimate_counts_the_grid_and_adds_up(cube, monkeypatch):
    cfg = small(cube, latents_vae=(2, 5, 10))
    est = cost.estimate(cfg, cube, list(DRUGS))
    assert list(est.tasks) == build_grid(cfg, list(DRUGS), splits_per_task=cfg.resolved_splits_per_task())
    assert est.fits() == {"pertvae": 6, "vae": 9, "pca": 12, "baselines": 6}   # vae, pca: pooled
    assert {t.drug for t in est.tasks if t.model in ("vae", "pca")} == {POOLED}
    assert {(c.model, c.latent) for c in est.calibrations} == {("pertvae", 10), ("vae", 2), ("vae", 10),
                                                               ("pca", 20), ("baselines", 10)}
    assert (est.slots, est.threads, est.device) == (2, 1, "cpu")
    keys = [k for t in est.tasks for k in t.fit_keys()]
    assert set(est.fit_cost) == set(keys)
    for k in keys:
        own, shared, fixed, n = est.fit_cost[k]
        assert fixed > 0 and (own + shared > 0) == (k.model in ("pertvae", "vae"))
        e = est.epochs.get(k.model, 0)
        e_max = e + (150 - e) * (1 - 1 / n) if e else 0   # the slowest of the task's n splits
        assert est.fit_seconds(k) == pytest.approx(e * own + e_max * shared + fixed)
        assert est.fit_seconds(k, epochs={k.model: 150}) == pytest.approx(150 * (own + shared) + fixed)
    # the demo preset's schedule: each trained contender's epochs measured there
    demo = {m: REGISTRY[m].measured_epochs.get("demo", 0) for m in est.epochs}
    assert est.epochs == {"pertvae": round(demo["pertvae"]), "vae": round(demo["vae"]), "pca": 0,
                          "baselines": 0}
    assert {len(t.splits) for t in est.tasks} == {3}   # the demo's 10 splits per task, of 3 in all
    # a fit of latent 5 costs between its calibrated neighbours (linear in the latent size, each of its terms
    # interpolated on its own: where the neighbours' times nearly tie, 1e-3 of round-off; CI once saw 3e-4)
    lo, mid, hi = (est.fit_seconds(FitKey("vae", POOLED, lat, 0, 0)) for lat in (2, 5, 10))
    assert min(lo, hi) * (1 - 1e-3) <= mid <= max(lo, hi) * (1 + 1e-3)
    assert est.per_fit("pertvae", 10) > est.per_fit("baselines", 10) > 0
    # a worker's first fit at each (model, latent) costs more once: counted per slot that runs the shape
    assert set(est.first_fit) == {(t.model, lat) for t in est.tasks for lat in t.latents}
    assert all(v >= 0 for v in est.first_fit.values())
    tasks_of = {k: sum(k[0] == t.model and k[1] in t.latents for t in est.tasks) for k in est.first_fit}
    paid = sum(v * min(2, tasks_of[k]) for k, v in est.first_fit.items())   # 2 slots
    assert est.first_fit_seconds == pytest.approx(paid)
    total = sum(est.task_seconds(t) for t in est.tasks) + est.first_fit_seconds
    assert est.total_seconds == pytest.approx(total)
    assert total / 2 <= est.wall_seconds <= total
    assert est.cpu_hours == pytest.approx(total / 3600)
    # the arithmetic floor: every trained fit's steps, at the assumed epochs; below the estimate
    assert set(est.fit_flops) == {k for k in keys if k.model in ("pertvae", "vae")}
    shapes = cost.drug_shapes(generate("demo", 0), DRUGS)
    pv = next(c for c in est.calibrations if c.model == "pertvae")
    assert pv.flops_step > 0 and pv.flops_val_pair > 0
    for k, f in est.fit_flops.items():
        if k.model == "pertvae":   # calibrated at its one latent size: an epoch's steps and validation
            sp = cost.split_shapes(shapes[k.drug], cfg)[(k.repeat, k.fold)]
            assert est.val_flops[k] == pytest.approx(sp.n_val * pv.flops_val_pair)
            assert f == pytest.approx(cost.steps_per_epoch(k.model, sp, cfg) * pv.flops_step
                                      + est.val_flops[k])
        assert est.floor_fit_seconds(k) == pytest.approx(est.epochs[k.model] * f / est.peak)
    assert 0 < est.floor_val_flops < est.floor_flops
    assert est.peak > 1e8
    assert 0 < est.floor_seconds < est.total_seconds and est.floor_wall_seconds < est.wall_seconds
    text = cost.render(cfg, est, "cube x")
    assert f"grid: {len(est.tasks)} tasks, 33 fits (pertvae 6, vae 9, pca 12, baselines 6)" in text
    assert f"arithmetic floor: {cost.hours(est.floor_cpu_hours)} CPU-hours" in text
    assert "the matrix products alone of the training steps and of the validations (" in text
    assert est.precision == "fp32" and "; fp32 matrix products" in text   # the demo's: no bf16 way named
    assert "matrix products (" not in text
    bf16 = cost.render(cfg, dataclasses.replace(est, precision="bf16"), "cube x")
    assert f"; bf16 matrix products ({layers.bf16_way(est.device)})" in bf16
    # whether bf16 products can beat the float32 floor: as this CPU's instructions say
    for native, said in ((True, "; bf16 products (--precision bf16) can beat it"),
                         (False, "; bf16 products cannot beat it here (this CPU has no bfloat16 matrix "
                                 "instructions)")):
        monkeypatch.setattr(precision, "native_bf16", lambda d, native=native: native)
        assert said in cost.render(cfg, est, "cube x")
        as_bf16 = cost.render(dataclasses.replace(cfg, precision="bf16"), est, "cube x")
        emulated = "\n  note: this machine's CPU has no bfloat16 matrix instructions, so bf16 products are"
        assert (emulated in as_bf16) != native
    monkeypatch.setattr(precision, "native_bf16", lambda d: True)
    assert "; bf16 products can beat it" in cost.render(cfg, dataclasses.replace(est, precision="bf16"), "x")
    ratio = est.total_seconds / est.steps_floor_seconds
    assert f"x the floor ({ratio:.2f} x the training steps' alone)" in text
    assert est.steps_floor_seconds < est.floor_seconds
    assert (f"pertvae after {round(demo['pertvae'])} of 150 epochs (as measured on the demo preset's "
            f"synthetic cube)") in text
    assert "on 2 local worker(s), 1 thread each" in text
    # the memory rate measured beside the peak, one thread's, printed under the floor
    assert est.calibration.stream > 1e8
    assert (f"  memory: {est.calibration.stream / 1e9:.1f} GB/s per thread (a pass over 64 MiB, read and "
            f"written); beyond its products a step moves its weights, gradients and Adam state through "
            f"memory") in text
    # each calibrated step against its floor; split into its products (each on its own, at one split's
    # shapes) and the rest where it trains one split a step (the paper preset on a CPU)
    assert ("\n  a training step (as timed alone) against its floor (its matrix products at the peak rate):\n"
            in text)
    for c in (c for c in est.calibrations if c.model in ("pertvae", "vae")):
        step, floor = c.step / est.corun.get(c.model, 1.0), c.splits * c.flops_step / est.peak
        alone = c.step_one / est.corun.get(c.model, 1.0)
        assert 0 < c.products_step < alone and c.flops_step / est.peak <= c.products_step * 1.001  # peak
        assert (f"\n    {c.model} latent {c.latent}: {step * 1e3:.1f} ms a step of {c.splits} split(s), "
                f"{step / floor:.2f} x its floor ({floor * 1e3:.1f} ms)\n") in text   # the demo's: 10 splits
        one = dataclasses.replace(c, splits=1, step=c.step_one)
        text1 = cost.render(cfg, dataclasses.replace(est, calibrations=(one,)), "x")
        f1 = c.flops_step / est.peak
        assert (f"\n    {c.model} latent {c.latent}: {alone * 1e3:.1f} ms a step of 1 split(s), "
                f"{alone / f1:.2f} x its floor ({f1 * 1e3:.1f} ms); "
                f"its products, each timed on its own at its shape, {c.products_step * 1e3:.1f} ms "
                f"({c.products_step / f1:.2f} x the floor), the rest of the step "
                f"{(alone - c.products_step) * 1e3:.1f} ms\n") in text1
        assert "\n  the rest of a step, which the floor does not count: elementwise work" in text1
    assert "the rest of a step" not in text   # no row split: the demo trains 10 splits a step
    assert text.index("arithmetic floor: ") < text.index("  a training step (") < text.index("  memory: ")
    in_bf16 = cost.render(cfg, dataclasses.replace(est, precision="bf16"), "x")   # fp32 products: not said
    assert "  a training step (" in in_bf16 and "its products, each timed" not in in_bf16
    assert text.index("arithmetic floor: ") < text.index("  memory: ")
    nomem = dataclasses.replace(est, calibration=dataclasses.replace(est.calibration, stream=0.0))
    assert "memory:" not in cost.render(cfg, nomem, "cube x")   # a GPU's: not measured
    # 2 local workers on this machine: each trained model's times scaled by its steps' factor side by side
    if usable_cpus() >= 2:
        assert est.corun_others == 1 and set(est.corun) == {"pertvae", "vae"}
        assert "  side by side: a step took pertvae " in text
        pv = next(c for c in est.calibrations if c.model == "pertvae")   # times counted side by side ...
        alone = pv.step * 1000 / est.corun["pertvae"]   # ... printed as timed alone
        assert f"pertvae latent {pv.latent}: {alone:.1f} ms/step of {pv.splits} split(s)" in text


def test_wall_time_puts_each_task_on_the_first_free_slot():
    tasks = tuple(Task("pca", f"d{i}", 2, ((0, 0),)) for i in range(4))
    seconds = (3.0, 1.0, 1.0, 1.0)
    fit_cost = {t.fit_keys()[0]: (0.0, 0.0, s, 1) for t, s in zip(tasks, seconds, strict=True)}

    def est(slots):
        return cost.Estimate(tasks, fit_cost, {}, 10, slots, 1, "cpu", "", (), 0.0, 0.0)

    assert est(1).wall_seconds == 6.0
    assert est(2).wall_seconds == 3.0    # 3 | 1 + 1 + 1
    assert est(3).wall_seconds == 3.0
    assert est(2).cpu_hours == pytest.approx(6.0 / 3600)
    # 4 local workers on 2 cores: as fast as 2, not as 4 (the CPU time is the same)
    four = dataclasses.replace(est(4), cores=2)
    assert est(4).wall_seconds == 3.0 and four.wall_seconds == 6.0 and four.cpu_hours == est(2).cpu_hours
    assert dataclasses.replace(est(2), cores=2).wall_seconds == 3.0


def test_hours_keep_three_significant_figures():
    got = [cost.hours(h) for h in (27.42, 0.0712, 1.0, 0.004, 250.4, 4.34e-05, 0.0)]
    assert got == ["27.4", "0.0712", "1.00", "0.00400", "250", "0.0000434", "0"]


def test_render_says_what_the_wall_time_assumes_and_what_slurm_nodes_do_not_measure():
    tasks = (Task("pca", "d0", 2, ((0, 0),)),)
    fit_cost = {tasks[0].fit_keys()[0]: (0.0, 0.0, 5.0, 1)}
    local = cost.Estimate(tasks, fit_cost, {}, 10, 2, 1, "cpu", "2 local worker(s), 1 thread each", (), 3.0,
                          0.5, cores=2)
    text = cost.render(make_config("demo", models=("pca",)), local, "cube x")
    assert "on 2 local worker(s), 1 thread each, each with a CPU to itself;" in text
    assert "calibrated in 3.0 s (wall)" in text and "not counted: starting the cluster" in text
    assert "\ngrid: 1 task, " in text and "of which first fits" not in text   # none measured
    assert "the CPU time of the scheduler, the command and the workers' nannies" in text
    slurm = make_config("demo", models=("pca",), cluster="slurm", jobs=2)
    text = cost.render(slurm, dataclasses.replace(local, cores=0, where="2 Slurm job(s)"), "cube x")
    assert "with a CPU to itself" not in text and "nannies" not in text   # no local workers' cores


def test_render_says_when_a_slurm_task_outlives_a_worker():
    """A task longer than a Slurm worker lives (walltime less a margin) is stopped after a whole lifetime,
    its fits failed (harness.cluster.ClusterHandle.watch): the dry run says so before any job is queued. A
    demo task of 10 splits at 2000 epochs, estimated at 2.5 min, was not flagged with --walltime 00:02:00
    (a lifetime of 54-66 s); the run then started it again on 5 jobs in 6.5 min."""
    task = Task("pertvae", "d0", 10, tuple((r, k) for r in range(2) for k in range(5)))
    fit_cost = {k: (0.0, 0.0, 15.0, 1) for k in task.fit_keys()}
    est = cost.Estimate((task,), fit_cost, {}, 10, 1, 1, "cpu", "1 Slurm job(s)", (), 3.0, 0.5)

    def said(**kw) -> str:
        text = cost.render(make_config("demo", models=("pertvae",), **kw), est, "cube x")
        return "\n".join(x for x in text.splitlines() if "a Slurm worker may live" in x)

    assert said(cluster="slurm", walltime="00:02:00") == (
        "  note: the longest task (pertvae d0 latent 10, 10 fit(s)) takes an estimated 2.5 min, longer than "
        "a Slurm worker may live (54-66 s: --walltime 00:02:00 less a margin); the run stops such a task "
        "after a worker's whole lifetime, its fits failed: use a longer --walltime or fewer "
        "--splits-per-task")
    assert said(cluster="slurm", walltime="00:10:00") == ""   # 525-555 s
    assert said(cluster="local") == ""
    compiling = dataclasses.replace(est, first_fit={("pertvae", 10): 400.0})   # paid on each new worker
    text = cost.render(make_config("demo", models=("pertvae",), cluster="slurm", walltime="00:10:00"),
                       compiling, "x")
    assert "takes an estimated 9.2 min, longer than a Slurm worker may live (525-555 s" in text

def test_render_says_the_run_s_own_plug_ins_are_not_counted():
    """A --method plug-in runs in every baselines fit, in a process of its own; the calibration times the
    built-in baselines alone, and the dry run did not say so: a demo grid's baselines rows gave 0.02 s a fit
    where the fits with a trivial plug-in took 0.12 s (fit_cpu_seconds)."""
    tasks = (Task("baselines", "d0", 10, ((0, 0),)),)
    est = cost.Estimate(tasks, {tasks[0].fit_keys()[0]: (0.0, 0.0, 0.02, 1)}, {}, 10, 1, 1, "cpu",
                        "in-process, 1 thread", (), 1.0, 0.5)
    plain = make_config("demo", models=("baselines",), cluster="none")
    assert "plug-in" not in cost.render(plain, est, "cube x")
    cfg = dataclasses.replace(plain, method=("a.m:A", "b.m:B"))
    assert ("; nor the run's own plug-ins (2 in each baselines fit, each fitted in a process of its own): "
            "their rows' s/fit are the built-in methods' alone") in cost.render(cfg, est, "cube x")


def test_the_synthetic_cube_a_dry_run_names_is_the_one_the_preset_uses(tmp_path):
    cfg = make_config("drvae-demo", out=str(tmp_path / "out"))
    assert cost._source(cfg) == (None, "synthetic 'demo' cube, seed 0 (shapes generated in memory)")


def test_floor_adds_the_fits_epochs_at_the_peak_rate():
    tasks = (Task("pertvae", "d0", 10, ((0, 0), (0, 1))), Task("pca", "d0", 2, ((0, 0),)))
    keys = [k for t in tasks for k in t.fit_keys()]
    fit_cost = dict.fromkeys(keys, (1.0, 0.0, 0.0, 2))
    flops = {keys[0]: 4e9, keys[1]: 2e9}    # FLOP per epoch; PCA has none
    est = cost.Estimate(tasks, fit_cost, {"pertvae": 10, "pca": 0}, 20, 2, 2, "cpu", "", (), 0.0, 0.0,
                        fit_flops=flops, val_flops={keys[0]: 1e9, keys[1]: 5e8}, peak=1e9)
    assert [est.floor_fit_seconds(k) for k in keys] == [40.0, 20.0, 0.0]
    assert est.floor_flops == 6e10 and est.floor_seconds == 60.0
    assert est.floor_val_flops == 1.5e10   # of which the validations
    assert est.steps_floor_seconds == pytest.approx(45.0)
    assert est.floor_cpu_hours == pytest.approx(2 * 60.0 / 3600)   # 2 threads per slot
    assert est.floor_wall_seconds == 60.0    # the PCA task (no floor) on the other slot
    assert [cost.flop_count(n) for n in (8.12e11, 3.971e12, 5.08e15)] == ["812 GFLOP", "3.97 TFLOP",
                                                                         "5.08 PFLOP"]


@pytest.mark.parametrize("stop_on", ["mse", "nll"])
@pytest.mark.parametrize("model", ["pertvae", "vae"])
def test_validation_flops_are_the_layers_forward_products(model, stop_on):
    """One validation's counted FLOPs equal its layers' forward products: the encoder once over the
    validation rows (PertVAE: the pairs' x1; the VAE: both profiles of each pair), then per draw the IAF, the
    drug effect (PertVAE) and the decoder, whose head gives only the mean when stopping on the mean's
    squared error."""
    from pertvae_core.config import FitConfig
    from pertvae_core.model import PertVAE

    cfg = make_config("demo", hidden=(16, 8), context=4, iaf_hidden=8, iaf_steps=2, val_samples=3,
                      stop_on=stop_on)
    sp = cost.SplitShape(n_train=20, n_val=7, n_test=2, n_single=30, test_pairs=(2,), test_controls=(1,),
                         n_val_x1=3)   # 7 validation pairs of 3 controls
    got, products = calibrate.validation_flops(model, 3, sp, 50, cfg)
    pairs = model == "pertvae"
    net = PertVAE(50, FitConfig(**dict(cfg.fit_kwargs(), latent=3)), [torch.Generator()], pairs=pairs)
    rows = 7 if pairs else 3 + 7   # the VAE: each measured profile once (pertvae_core.data)

    def fwd(*layers, n_out=None):
        return sum(2 * rows * m.n_in * (n_out or m.n_out) for m in layers)

    iaf = [m for step in net.iaf.steps for m in (step.inp, step.out)]
    assert len(iaf) == 4
    head = fwd(net.dec_head, n_out=50 if stop_on == "mse" else None)
    per_draw = fwd(*iaf) + fwd(net.dec1, net.dec2) + head + (2 * rows * 3 * 6 if pairs else 0)
    assert got == fwd(net.enc1, net.enc2, net.enc_head) + 3 * per_draw
    assert ((1, rows, 50), (1, 50, net.enc1.n_out)) in products
    assert calibrate.validation_flops(model, 3, cost.replace(sp, n_val=0, n_val_x1=0), 50, cfg)[0] == 0


@pytest.mark.parametrize("model", ["pertvae", "vae"])
def test_step_flops_are_the_layers_products(model):
    """One step's counted FLOPs equal the matrix products of its layers, forward and backward: a weight-
    normalized layer of n_in x n_out on B rows costs 2 B n_in n_out forward, as much for dL/dv and (when
    its input needs a gradient: all but the first layer, whose input is data) for dL/dx; the drug effect
    (Eq. 5, L -> 2L) runs on the pairs' z1 only."""
    from pertvae_core.config import FitConfig
    from pertvae_core.layers import WNLinear
    from pertvae_core.model import PertVAE

    cfg = make_config("demo", batch_pairs=6, batch_singletons=4, hidden=(16, 8), context=4, iaf_hidden=8)
    sp = cost.SplitShape(n_train=20, n_val=3, n_test=2, n_single=30, test_pairs=(2,), test_controls=(1,))
    got, products = calibrate.step_flops(model, 3, sp, 50, cfg)
    pairs = model == "pertvae"
    net = PertVAE(50, FitConfig(**dict(cfg.fit_kwargs(), latent=3)), [torch.Generator()], pairs=pairs)
    rows = 2 * 6 + 4 if pairs else 6 + 4
    want = sum(rows * m.n_in * m.n_out * (4 if m is net.enc1 else 6)
               for m in net.modules() if isinstance(m, WNLinear))
    if pairs:
        want += 6 * 6 * 3 * (2 * 3)
    assert got == want
    # the products it records (for the GEMM peak at the step's shapes): each layer's forward among them
    for m in net.modules():
        if isinstance(m, WNLinear):
            assert ((1, rows, m.n_in), (1, m.n_in, m.n_out)) in products
    # one entry per product computed: together they are every counted FLOP (the step's products, in float32)
    assert sum(calibrate.product_flops(sh) for sh in products) == got


def test_expected_epochs_and_worker_slots():
    paper = make_config("paper")
    measured = {m: REGISTRY[m].measured_epochs["paper"] for m in ("pertvae", "vae")}
    assert (cost.expected_epochs(paper, "pertvae"), cost.expected_epochs(paper, "vae")) == (
        round(measured["pertvae"]), round(measured["vae"]))
    assert cost.expected_epochs(paper, "pca") == 0
    # another schedule than the preset's: a fraction of max_epochs
    for changed in (make_config("paper", max_epochs=100), make_config("paper", patience=10),
                    make_config("paper", stop_on="nll")):
        assert (cost.expected_epochs(changed, "pertvae"), cost.expected_epochs(changed, "vae")) == (
            round(0.5 * changed.max_epochs), round(0.75 * changed.max_epochs))
        assert cost.epoch_basis(changed, "vae") == "assumed: 0.75 x max_epochs"
    assert cost.expected_epochs(make_config("demo", max_epochs=10, patience=20), "pertvae") == 10
    assert cost.expected_epochs(make_config("demo", max_epochs=100, patience=5, min_epochs=80), "vae") == 80
    assert cost.worker_slots(make_config("demo", workers=3, device="cpu"))[:3] == (3, 1, "cpu")
    assert cost.worker_slots(make_config("demo", cluster="slurm", jobs=8, device="cpu"))[:3] == (8, 1, "cpu")
    # a Slurm GPU job's one worker runs a task at a time per thread (--cores-per-job, default 1), every task
    # on the job's first GPU: 2 GPUs a job trained 3 tasks at a time, not 6 (dask-jobqueue: --nthreads 1
    # --resources GPU=2)
    gpus = make_config("demo", cluster="slurm", jobs=3, gpus_per_job=2)
    assert cost.worker_slots(gpus) == (3, 1, "cuda", "3 Slurm job(s) x 2 GPU(s), 1 task(s) at a time, all on "
                                                     "the job's first GPU")
    assert cost.local_cores(gpus, "cuda") == 0
    assert cost.worker_slots(make_config("demo", cluster="slurm", jobs=3, gpus_per_job=1)
                             ) == (3, 1, "cuda", "3 Slurm job(s) x 1 GPU(s)")
    two = make_config("demo", cluster="slurm", jobs=3, gpus_per_job=2, cores_per_job=4)
    assert cost.worker_slots(two)[:3] == (6, 1, "cuda") and cost.local_cores(two, "cuda") == 3
    assert cost.worker_slots(two)[3].endswith("2 task(s) at a time, all on the job's first GPU (wall time as "
                                              "for 3 GPU(s))")
    # in-process, the run trains with one torch thread (harness.run), whatever torch's default
    assert cost.worker_slots(make_config("demo", cluster="none", device="cpu"))[:3] == (1, 1, "cpu")
    many = cost.worker_slots(make_config("demo", workers=usable_cpus() + 2, device="cpu"))
    cores = usable_cpus()
    assert many[3].endswith(f", sharing {cores} CPU(s) (wall time as for {cores} worker(s))")


def _dry(cfg, capsys, tries: int = 3) -> int:
    """cost.dry_run, taken again when it refuses a calibration that a busy machine disturbed (its documented
    exit 4): what is tested here is the estimate's text, not the machine's quiet."""
    for _ in range(tries):
        code = cost.dry_run(cfg)
        if code != cost.DISTURBED_EXIT:
            return code
        capsys.readouterr()
    return code


def test_dry_run_prints_the_grid_and_writes_nothing(cube, tmp_path, capsys):
    out = tmp_path / "out"
    cfg = make_config("demo", data=str(cube), drugs=DRUGS[:1], n_repeats=1, n_folds=3, out=str(out),
                      models=("pertvae", "baselines"), dry_run=True)
    assert _dry(cfg, capsys) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"dry run: preset demo; cube {cube}; 1 drug(s); 1 x 3 CV = 3 splits")
    assert "grid: 2 tasks, 6 fits (pertvae 3, baselines 3)" in text
    assert "CPU-hours; wall time" in text and "nothing was run or written" in text
    assert not out.exists()
    bad = make_config("demo", data=str(cube), drugs=("selumetinb",), out=str(out))
    assert cost.dry_run(bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --drugs: selumetinb not in cube") and err.count("\n") == 1
    assert not out.exists()


def test_dry_run_refuses_what_the_run_refuses_before_calibrating(cube, tmp_path, capsys):
    """An --out that is a file and a --method that does not load: the run exits 2 on them before any work,
    so the dry run does too, rather than estimate and say "drop --dry-run to run the grid"."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    for kw, start in ((dict(out=str(afile)), f"error: --out {afile}: is a file"),
                      (dict(out=str(tmp_path / "o"), method=("no_such_module_43:M",)),
                       "error: --method no_such_module_43:M: ")):
        cfg = make_config("demo", data=str(cube), drugs=DRUGS[:1], n_repeats=1, n_folds=3,
                          models=("baselines",), dry_run=True, **kw)
        assert cost.dry_run(cfg) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(start) and err.count("\n") == 1, err
        assert "calibrat" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flag", ["--method", "--response-method"])
def test_the_run_refuses_a_plugin_that_does_not_load_before_making_its_cube(tmp_path, capsys, flag):
    """A run without --data generated the preset's synthetic cube into OUT (25 s on a loaded machine; a
    real cube was fingerprinted) before it found that --method or --response-method does not load; the
    dry run refused first. Both now refuse it before any work, as resolve_methods and the docs say."""
    from harness.run import main

    out = tmp_path / "o"
    preset = ["--preset", "drvae-demo"] if flag == "--response-method" else []
    assert main(preset + ["--out", str(out), flag, "no_such_module_43:M", "--cluster", "none"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag} no_such_module_43:M: ") and err.count("\n") == 1, err
    assert not (out / "data.zarr").exists() and not (out / "data.json").exists()


def test_dry_run_refuses_a_response_model_on_a_cube_without_responses(tmp_path, capsys):
    """The run exits 2 before any work when a drug-response model's cube has no 'response'; the dry run
    estimated it ('grid: 1 task, 10 fits (drvae 10)') and said to drop --dry-run."""
    bare = write_cube(generate("demo", 0).drop_vars("response"), tmp_path / "bare.zarr")
    cfg = make_config("demo", data=str(bare), drugs=DRUGS[:1], n_repeats=1, n_folds=3, models=("drvae",),
                      out=str(tmp_path / "o"), dry_run=True)
    assert cost.dry_run(cfg) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "the cube has no drug response" in err, err
    assert "calibrat" not in err


def test_dry_run_takes_the_epochs_of_the_runs_done_fits(cube, tmp_path, capsys):
    from harness.grid import store_drugs
    from harness.store import ResultStore

    out = tmp_path / "out"

    def cfg(**kw):
        return make_config("demo", data=str(cube), drugs=DRUGS[:1], n_repeats=1, n_folds=3, out=str(out),
                           models=("pertvae", "baselines"), dry_run=True, **kw)

    st = ResultStore.open(out, cfg(), "fp", drugs=store_drugs(cfg(), list(DRUGS[:1])))
    st.write([{"model": "pertvae", "drug": DRUGS[0], "latent": 10, "repeat": 0, "fold": k, "status": "done",
               "epochs": e} for k, e in ((0, 30), (1, 41))])
    assert cost.stored_epochs(cfg()) == {"pertvae": (35.5, 2)}
    assert _dry(cfg(), capsys) == 0
    assert f"pertvae after 35.5 of 150 epochs (mean of 2 done fit(s) in {out})" in capsys.readouterr().out
    # a store of another config does not count; the run refuses to mix them (exit 2), and so does the dry run:
    # it estimated the grid ('pertvae after 50 of 100 epochs', 'drop --dry-run to run the grid')
    assert cost.stored_epochs(cfg(max_epochs=100)) == {}
    assert cost.dry_run(cfg(max_epochs=100)) == 2
    text, err = capsys.readouterr()
    assert text == "" and err.count("\n") == 1 and "calibrat" not in err
    assert err.startswith(f"error: {out / 'results.zarr'} holds results of a different config; refusing to "
                          f"mix them. Differences: max_epochs: 150 (stored) vs 100 (now)"), err


def test_the_dry_run_names_figure_2_s_scope_only_with_a_figure_2_model(cube, tmp_path, capsys):
    """'Figure 2 scope pooled' headed the dry run of a grid without the VAE or PCA (drvae-demo, or
    --models pertvae baselines), whose run draws no Figure 2."""
    def first_line(models: tuple[str, ...]) -> str:
        cfg = make_config("demo", data=str(cube), drugs=DRUGS[:1], n_repeats=1, n_folds=3,
                          out=str(tmp_path / "o"), models=models, latents_pca=(2,), dry_run=True)
        assert _dry(cfg, capsys) == 0
        return capsys.readouterr().out.splitlines()[0]

    assert "Figure 2" not in first_line(("baselines",))
    assert first_line(("pca",)).endswith("3 splits; Figure 2 scope pooled")


def test_a_pooled_grid_s_dry_run_counts_its_drugs(cube, tmp_path, capsys):
    """Figure 2's pooled PCA alone on two drugs was '0 drug(s)': the count took the tasks' drugs, and a
    pooled task's is '(pooled)', though it fits those drugs' pairs."""
    cfg = make_config("demo", data=str(cube), drugs=DRUGS[:2], n_repeats=1, n_folds=3,
                      out=str(tmp_path / "o"), models=("pca",), latents_pca=(2,), dry_run=True)
    assert _dry(cfg, capsys) == 0
    assert f"; cube {cube}; 2 drug(s); 1 x 3 CV" in capsys.readouterr().out.splitlines()[0]


def test_a_generated_cube_s_store_given_data_says_to_leave_data_unset(cube, tmp_path, capsys):
    """A demo run's OUT resumed with --data (its own OUT/data.zarr, say) is another config; the way on
    given was 'Use another --out, or delete OUT to start over', where leaving --data unset resumes it."""
    from harness.grid import store_drugs
    from harness.store import ResultStore

    out = tmp_path / "out"

    def cfg(**kw):
        return make_config("demo", drugs=DRUGS[:1], n_repeats=1, n_folds=3, out=str(out), models=("pca",),
                           latents_pca=(2,), dry_run=True, **kw)

    ResultStore.open(out, cfg(), "fp", drugs=store_drugs(cfg(), list(DRUGS[:1])))
    assert cost.dry_run(cfg(data=str(cube))) == 2
    err = capsys.readouterr().err
    assert ("data_source: 'synthetic:demo' (stored) vs 'file' (now) (its fits are on the synthetic cube its "
            "run generated for the demo preset: to resume them, leave --data unset)") in err, err
    # the same store resumed with another preset's generated cube: the preset is the way on
    other = make_config("drvae-demo", drugs=DRUGS[:1], n_repeats=1, n_folds=3, out=str(out), models=("pca",),
                        latents_pca=(2,), dry_run=True)
    assert cost.dry_run(other) == 2
    err = capsys.readouterr().err
    assert ("(its fits are on the synthetic cube its run generated for the demo preset: to resume them, give "
            "--preset demo)") in err, err


def test_a_dry_run_refuses_a_store_the_run_refuses(cube, tmp_path, capsys):
    """A results.zarr that is a file, or whose metadata cannot be read, stops the run at once (exit 2,
    harness.store.StoreDamagedError); the dry run estimated the whole grid over it and exited 0."""
    from harness.grid import store_drugs
    from harness.store import ResultStore

    out = tmp_path / "out"
    cfg = make_config("demo", data=str(cube), drugs=DRUGS[:1], n_repeats=1, n_folds=3, out=str(out),
                      models=("pertvae", "baselines"), dry_run=True)
    ResultStore.open(out, cfg, "fp", drugs=store_drugs(cfg, list(DRUGS[:1])))
    (out / "results.zarr" / "zarr.json").write_text("{garbled")
    assert cost.dry_run(cfg) == 2
    text, err = capsys.readouterr()
    assert text == "" and err.count("\n") == 1 and "calibrat" not in err
    assert err.startswith(f"error: {out / 'results.zarr'} cannot be read (JSONDecodeError"), err
    shutil.rmtree(out / "results.zarr")
    (out / "results.zarr").write_text("not a store")
    assert cost.dry_run(cfg) == 2
    text, err = capsys.readouterr()
    assert text == "" and err.startswith(f"error: {out / 'results.zarr'} is not a directory"), err


def test_a_resumed_dry_run_estimates_the_fits_left_as_the_run_runs_them(cube, tmp_path, capsys):
    """The run keeps an --out's done fits and runs the rest (harness.grid.remaining); the dry run estimated
    the whole grid: 120 fits and 15 s on a demo --out whose 120 fits were all done, where the run
    trained none."""
    from harness.grid import remaining, store_drugs
    from harness.store import ResultStore

    out = tmp_path / "out"
    cfg = make_config("demo", data=str(cube), drugs=DRUGS[:1], n_repeats=1, n_folds=3, out=str(out),
                      models=("pertvae", "baselines"), dry_run=True)
    st = ResultStore.open(out, cfg, "fp", drugs=store_drugs(cfg, list(DRUGS[:1])))
    st.write([{"model": "pertvae", "drug": DRUGS[0], "latent": 10, "repeat": 0, "fold": k, "status": "done",
               "epochs": 30} for k in (0, 1)])
    st.write([{"model": "baselines", "drug": DRUGS[0], "latent": 10, "repeat": 0, "fold": 2,
               "status": "failed"}])   # retried by the run: still to run
    est = cost.estimate(cfg, cube, list(DRUGS[:1]), done=cost.stored_done(cfg))
    left = remaining(build_grid(cfg, list(DRUGS[:1])), st.done_keys())
    assert list(est.tasks) == left and est.fits() == {"pertvae": 1, "baselines": 3} and est.done_fits == 2
    assert _dry(cfg, capsys) == 0
    assert (f"grid: 2 tasks, 4 fits (pertvae 1, baselines 3) to run; 2 more already done in "
            f"{out / 'results.zarr'}") in capsys.readouterr().out
    # every fit done: the run trains none, so the dry run neither calibrates nor estimates
    st.write([{"model": m, "drug": DRUGS[0], "latent": 10, "repeat": 0, "fold": k, "status": "done",
               "epochs": 30}
              for m, k in (("pertvae", 2), ("baselines", 0), ("baselines", 1), ("baselines", 2))])
    assert cost.dry_run(cfg) == 0
    text, err = capsys.readouterr()
    assert (f"all 6 fits of this grid are already done in {out / 'results.zarr'}, so the run would train none"
            in text) and "estimate" not in text and "calibrat" not in err


def test_a_dry_run_given_the_drugs_in_another_spelling_finds_the_runs_done_fits(cube, tmp_path, capsys):
    """--drugs SELUMETINIB is the cube's 'selumetinib': the run stores (and resumes) under the cube's
    spelling; the dry run kept the given one, so its config's key was another and it missed the store's done
    fits (and their epochs): the whole grid estimated, at the preset's epochs."""
    from harness.grid import store_drugs
    from harness.store import ResultStore

    out = tmp_path / "out"

    def cfg(drug):
        return make_config("demo", data=str(cube), drugs=(drug,), n_repeats=1, n_folds=3, out=str(out),
                           models=("pertvae", "baselines"), dry_run=True)

    st = ResultStore.open(out, cfg(DRUGS[0]), "fp", drugs=store_drugs(cfg(DRUGS[0]), [DRUGS[0]]))
    st.write([{"model": "pertvae", "drug": DRUGS[0], "latent": 10, "repeat": 0, "fold": k, "status": "done",
               "epochs": 30} for k in (0, 1)])
    assert _dry(cfg(DRUGS[0].upper()), capsys) == 0
    text = capsys.readouterr().out
    assert "grid: 2 tasks, 4 fits (pertvae 1, baselines 3) to run; 2 more already done" in text
    assert f"pertvae after 30 of 150 epochs (mean of 2 done fit(s) in {out})" in text


def test_cost_cli_bad_data_is_one_error_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "harness.cost", "--data", str(tmp_path / "none.zarr"), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr.splitlines() == [f"error: --data {tmp_path / 'none.zarr'}: no such cube (build one with "
                                     f"pertvae-bench build, or leave --data unset to use the embedded "
                                     f"synthetic cube)"]
    assert not (tmp_path / "out").exists()


def test_a_batched_step_splits_into_shared_and_per_split_parts():
    c = cost.Calibration("pertvae", 10, 4, step=0.10, validation=0.05, setup=0.0, evaluation=0.0,
                         step_one=0.04, validation_one=0.02)
    a, b, va, vb = c.shared_and_per_split()
    assert (a + 4 * b, a + b) == pytest.approx((0.10, 0.04))
    assert (va + 4 * vb, va + vb) == pytest.approx((0.05, 0.02))
    one = cost.Calibration("vae", 2, 1, step=0.03, validation=0.01, setup=0.0, evaluation=0.0)
    assert one.shared_and_per_split() == (0.0, 0.03, 0.0, 0.01)


def test_with_compile_the_estimate_counts_each_workers_compiling_once(cube, monkeypatch, tmp_path):
    """--compile: the calibration's first fit at a shape holds torch.compile's compiling (inductor's disk
    cache empty, as on a new machine); the estimate pays it once per worker and shape, not per fit."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    kw = {"models": ("pertvae",), "precision": "fp32", "splits_per_task": 1}
    eager, compiled = (cost.estimate(small(cube, compile=c, **kw), cube, list(DRUGS)) for c in (False, True))
    key = ("pertvae", 10)
    assert compiled.first_fit[key] > max(1.0, 3 * eager.first_fit[key])   # compiling takes seconds
    assert compiled.first_fit_seconds == pytest.approx(compiled.first_fit[key] * 2)   # 2 workers, 1 shape
    assert "torch.compile's compiling" in cost.render(small(cube, compile=True, **kw), compiled, "c")
    fit = next(iter(compiled.fit_cost))
    assert compiled.fit_cost[fit][2] < compiled.first_fit[key]   # not in every fit's fixed cost


def test_calibration_compiles_as_the_workers_do():
    # a CPU worker compiles on its one core (its compiler's CPU time counted); a GPU worker with the host's
    # cores shared among the GPUs
    import torch._inductor.config as ind

    from harness.cluster import gpu_compile_threads

    cfg = make_config("demo", compile=True)
    with cost._compiling_in_process(cfg, "cpu"):
        assert ind.compile_threads == 1
    with cost._compiling_in_process(cfg, "cuda"):
        assert ind.compile_threads == gpu_compile_threads(torch.cuda.device_count()) >= 1
    assert gpu_compile_threads(1) == usable_cpus() and gpu_compile_threads(64) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests a machine without a GPU")
@pytest.mark.parametrize("kw", [dict(cluster="slurm", jobs=2, gpus_per_job=1), dict(device="cuda")])
def test_a_gpu_dry_run_on_a_machine_without_one_is_one_error_line(kw, tmp_path, capsys):
    cfg = make_config("demo", out=str(tmp_path / "out"), dry_run=True, **kw)
    assert cost.dry_run(cfg) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "this machine has none to time their steps on" in err
    assert err.startswith("error: --gpus-per-job 1: " if "gpus_per_job" in kw else "error: --device cuda: ")
    assert ("give --gpus-per-job 0 to" if "gpus_per_job" in kw else "give --device cpu to") in err


def test_a_file_given_as_the_cube_says_what_to_give(tmp_path):
    from datasets.cube import CubeError, open_cube

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(CubeError, match="cannot open as a zarr v3 cube .*; give a cube directory written by "
                                        "pertvae-bench build or synth$"):
        open_cube(afile)


def test_with_compile_a_worker_pays_a_compile_per_batch_size_and_is_warned_past_dynamos_cap():
    """On a GPU a task batches a drug's 50 splits and compaction passes through the ladder's batch sizes,
    each a graph: the paper grid's 8 model shapes make 56 graphs, under dynamo's 64; each is one of the
    calibration's two compiles (its 50 splits, its first split alone)."""
    cfg = make_config("paper", compile=True, device="cpu")
    tasks = build_grid(cfg, ["olaparib", "selumetinib"], splits_per_task=50)
    graphs = cost.compiled_graphs(tasks)
    assert graphs == {("pertvae", 100): 7} | {("vae", lat): 7 for lat in cfg.latents_for("vae")}
    cal = {k: cost.Calibration(k[0], k[1], 50 if k in graphs else 1, step=0.1, validation=0.0, setup=0.0,
                               evaluation=0.0, first_fit=10.0)
           for k in ((m, lat) for m in cfg.models for lat in cfg.latents_for(m))}
    first = cost.first_fits(cfg, tasks, cal)
    assert {first[k] for k in graphs} == {35.0} and first[("pca", 2)] == 10.0
    assert set(cost.first_fits(dataclasses.replace(cfg, compile=False), tasks, cal).values()) == {10.0}
    assert cost.graphs_warning(cfg, tasks) is None
    assert cost.graphs_warning(cfg, build_grid(cfg, ["olaparib"], splits_per_task=1)) is None   # 8 graphs
    more = make_config("paper", compile=True, device="cpu", latents_vae=tuple(range(2, 12)))
    warning = cost.graphs_warning(more, build_grid(more, ["olaparib"], splits_per_task=50))
    assert warning is not None and "up to 77 torch.compile graphs" in warning and "the 64 dynamo" in warning
    assert cost.graphs_warning(dataclasses.replace(more, compile=False), tasks) is None


def test_dr_vae_which_never_compiles_counts_no_torch_compile_graphs():
    """Dr.VAE trains eagerly whatever --compile says (harness.contenders.drvae): the drvae preset with
    --compile counted 7 graphs per Dr.VAE shape, and its first fits cost 7/2 of the calibration's."""
    cfg = make_config("drvae", compile=True, device="cpu")
    tasks = build_grid(cfg, ["olaparib", "selumetinib"], splits_per_task=50)
    assert cost.compiled_graphs(tasks) == {("response_pertvae", 50): 7}
    models = ("drvae", "drvae_continuous", "response_pertvae")
    cal = {(m, 50): cost.Calibration(m, 50, 50, step=0.1, validation=0.0, setup=0.0, evaluation=0.0,
                                     first_fit=10.0) for m in models}
    assert cost.first_fits(cfg, tasks, cal) == {("drvae", 50): 10.0, ("drvae_continuous", 50): 10.0,
                                                ("response_pertvae", 50): 35.0}


def test_dr_vae_is_calibrated_eagerly_in_fp32_as_it_trains(monkeypatch):
    """Dr.VAE's fits train eagerly in fp32 whatever --compile and --precision say: timed compiled, a
    drvae-demo dry run with --compile charged 32 s of torch.compile's compiling to fits that never
    compile (and 0.12 s a fit for its compiled steps against 0.17 eager)."""
    cfg = make_config("drvae-demo", compile=True, precision="bf16", device="cpu")
    sp = calibrate.SplitShape(n_train=20, n_val=4, n_test=4, n_single=10, test_pairs=(4,), test_controls=(2,))
    point = calibrate.Point("drvae", 8, (sp, sp), (1, 1))
    fc = calibrate.point_fit_config(point, cfg)
    assert (fc.compile, fc.precision, fc.latent) == (False, "fp32", 8)
    fc = calibrate.point_fit_config(dataclasses.replace(point, model="response_pertvae"), cfg)
    assert (fc.compile, fc.precision) == (True, "bf16")   # a PertVAE's fits follow both


@pytest.mark.parametrize("model", ["drvae", "drvae_continuous"])
def test_dr_vae_is_calibrated_by_its_own_fits(monkeypatch, model):
    """Dr.VAE was timed by PertVAE's short fits of the same shapes ("the classifier and z3 networks add a
    little"): 7.8-8.0 ms a step of drvae-demo's 10 splits where its own steps took 14.7 ms (load 9.5), and
    its drvae-demo estimate was 0.41x its fits' CPU time. Its calibration now runs fit_drvae, each head
    its own."""
    import pertvae_core.drvae_train as drvae_train
    import pertvae_core.train as train

    fits = []
    real = drvae_train.fit_drvae

    def spy(splits, dc, seeds, max_steps=None, on_step=None):
        fits.append((len(splits), dc.head, dc.latent, max_steps))
        return real(splits, dc, seeds, max_steps, on_step)

    monkeypatch.setattr(drvae_train, "fit_drvae", spy)
    monkeypatch.setattr(train, "fit", None)   # PertVAE's fit is not called
    cfg = make_config("drvae-demo", device="cpu")
    sp = calibrate.SplitShape(n_train=20, n_val=4, n_test=4, n_single=10, test_pairs=(4,), test_controls=(2,))
    c = calibrate.calibrate_fit(calibrate.Point(model, 8, (sp, sp), (1, 1)), 10, cfg,
                                calibrate.make_clock("cpu", 1))
    head = "binary" if model == "drvae" else "continuous"
    n = calibrate.WARMUP_STEPS + calibrate.MIN_STEPS + 1
    assert fits == [(1, head, 8, n), (2, head, 8, n)]   # the first split alone, then both
    assert c.step > 0 and c.step_one > 0 and c.evaluation > 0


def test_with_compile_a_grid_that_compiles_nothing_calls_its_first_fits_set_up():
    """A Dr.VAE grid under --compile compiles no graph: its first fits' extra time is set-up, not
    "torch.compile's compiling: 0 graphs"."""
    task = Task("drvae", "d0", 8, ((0, 0),))
    est = cost.Estimate((task,), {task.fit_keys()[0]: (0.0, 0.0, 1.0, 1)}, {}, 10, 1, 1, "cpu",
                        "in-process, 1 thread", (), 1.0, 0.5, first_fit={("drvae", 8): 2.0})
    text = cost.render(make_config("drvae-demo", models=("drvae",), cluster="none", compile=True), est, "x")
    assert "  of which first fits at each model shape (set-up, once per worker): 2 s of worker time" in text
    assert "compiling" not in text


def _simulated_split_epochs(stops: list[int], compiled: bool) -> int:
    """Split-epochs computed epoch by epoch, repacking after each as pertvae_core.train does."""
    from pertvae_core.packing import repack_size

    size, total = len(stops), 0
    for t in range(max(stops)):
        total += size
        size = repack_size(size, sum(e > t + 1 for e in stops), compiled)
    return total


@pytest.mark.parametrize("n", [2, 5, 10, 50])
def test_a_compiled_task_counts_the_split_epochs_of_the_ladders_frozen_splits(n):
    """With --compile compaction keeps stopped splits in the batch until the running ones fit the next rung
    (pertvae_core.packing.repack_size); the estimate counted each split's own epochs, as eager compaction
    computes: 10 splits stopping evenly at 4-76 of 80 epochs compute 464 split-epochs, not 400."""
    rng = np.random.default_rng(n)
    for _ in range(20):
        stops = [int(e) for e in rng.integers(1, 80, n)]
        for compiled in (False, True):
            assert cost.packed_epochs(stops, compiled) == _simulated_split_epochs(stops, compiled)
    task = Task("pertvae", "d0", 10, tuple((0, k) for k in range(n)))
    key = task.fit_keys()[0]
    est = cost.Estimate((task,), {k: (1.0, 0.0, 0.0, n) for k in task.fit_keys()}, {"pertvae": 40}, 80, 1, 1,
                        "cpu", "", (), 0.0, 0.0)
    e_max = 40 + 40 * (1 - 1 / n)
    stops = [e_max - (e_max - max(1.0, 2 * 40 - e_max)) * i / (n - 1) for i in range(n)]   # at least 1
    assert est.fit_seconds(key) == 40.0   # eager: each split its own epochs
    compiled = dataclasses.replace(est, compiled=frozenset({"pertvae"}))
    assert compiled.fit_seconds(key) == pytest.approx(40.0 * cost.packed_epochs(stops, True) / sum(stops))
    assert compiled.fit_seconds(key) > 40.0 if n > 2 else compiled.fit_seconds(key) == 40.0
    if n == 10:
        assert _simulated_split_epochs([4, 12, 20, 28, 36, 44, 52, 60, 68, 76], True) == 464
        assert compiled.fit_seconds(key) == pytest.approx(40.0 * 464 / 400)


def test_dr_vae_s_floor_counts_its_own_products():
    """The floor of a Dr.VAE step counted PertVAE's products (the stand-in it was timed by): 19.0 MFLOP a
    drvae-demo step, as response_pertvae's, against 23.9 of its own (classifier, z3 networks)."""
    cfg = make_config("drvae-demo", device="cpu")
    sp = calibrate.SplitShape(n_train=20, n_val=6, n_test=4, n_single=30, test_pairs=(4,), test_controls=(2,))
    step, val = ({m: f(m, 8, sp, 50, cfg)[0] for m in ("drvae", "drvae_continuous", "response_pertvae")}
                 for f in (calibrate.step_flops, calibrate.validation_flops))
    assert step["drvae"] == step["drvae_continuous"] > 1.1 * step["response_pertvae"]
    assert val["drvae"] > val["response_pertvae"] > 0


def test_the_estimate_line_says_dr_vae_trains_in_fp32_and_eagerly():
    """A Dr.VAE-only dry run with --precision bf16 --compile said 'bf16 matrix products (oneDNN's ...);
    torch.compile', though its fits compute fp32 products eagerly; beside a model that follows both, it now
    names Dr.VAE's."""
    task = Task("drvae", "d0", 8, ((0, 0),))
    est = cost.Estimate((task,), {task.fit_keys()[0]: (0.0, 0.0, 1.0, 1)}, {}, 10, 1, 1, "cpu",
                        "in-process, 1 thread", (), 1.0, 0.5, precision="bf16")

    def said(models: tuple[str, ...], compiled: frozenset[str]) -> str:
        cfg = make_config("drvae-demo", models=models, cluster="none", compile=True, precision="bf16")
        text = cost.render(cfg, dataclasses.replace(est, compiled=compiled), "x")
        return next(ln for ln in text.splitlines() if ln.startswith("estimate: ")).split("thread; ")[1]

    assert said(("drvae",), frozenset()) == "fp32 matrix products"
    way = cost._bf16_way("cpu", True)
    assert said(("drvae", "response_pertvae"), frozenset({"response_pertvae"})) == (
        f"bf16 matrix products ({way}), drvae's in fp32; torch.compile (drvae eagerly)")
