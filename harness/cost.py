"""The grid of a run and an estimate of its time on this machine, without running it (``run --dry-run``).

    python -m harness.run --preset paper --workers 2 --dry-run    # or: pertvae-bench run ... --dry-run
    python -m harness.cost --preset paper --workers 2             # the same

How the estimate is made:

- **Shapes.** For every drug of the run (and the pooled pseudo-drug of Figure 2, harness.grid.POOLED), the
  rows of each CV split: training, validation and test pairs, training singletons, the test cell lines'
  controls. They come from the cube's measured profiles by datasets.pairs' rule (one pair per measured
  post-treatment replicate of a cell line with a control) and datasets.splits.make_splits; without
  ``--data``, from the preset's synthetic cube generated in memory (nothing is written).
- **Calibration** (harness.calibrate; about a minute at paper sizes, plus about two to time several local
  workers side by side (harness.corun); with the workers' torch threads, device and precision): for
  PertVAE and the VAE at their smallest and largest latent sizes (linear in between),
  :func:`pertvae_core.train.fit` (Dr.VAE: its own, pertvae_core.drvae_train.fit_drvae) runs a few dozen
  optimizer steps (``max_steps``) on random data shaped like the median drug's first S splits (S = splits
  per task), and on the first alone, timing each step: seconds per batched step, per validation and for
  the setup; then the evaluation (:func:`pertvae_core.api.predict`, ``mc_samples`` draws; Dr.VAE's: both
  its methods' predictions) of that state. PCA and the baselines: the
  evaluation of one split at all of their latent sizes (pertvae_core.api.evaluate_pca_latents /
  evaluate_baselines), as their task runs them, each latent size charged its share. Every time is this
  process's CPU time (a busy machine inflates it far less than wall time: only through the caches and
  memory bus it shares, README), each the median of alternating repetitions after a warm-up; when the
  repetitions disagree by more than harness.calibrate.MAX_SPREAD even after recalibrating, the calibration
  is disturbed and the dry run prints no estimate (exit 4).
- **A fit** in a task of n splits: a batched step of S splits costs ``a + b S`` (a: shared, b: per split;
  from the steps of S splits and of 1 split), likewise a validation. Its split trains ``E`` epochs of ``k``
  steps (k from its rows, as pertvae_core.train counts them); the shared part runs while any split of the
  task trains, ``E_max = E + (max_epochs - E)(1 - 1/n)`` epochs (compaction drops stopped splits, not the
  per-step overhead), split n ways. So a fit takes ``E (k b + v_b) + E_max (k a + v_a) / n + (setup +
  evaluation) / S`` seconds. With ``--compile`` compaction repacks only to pertvae_core.packing's rungs, so
  a stopped split stays in the batch (masked, still computed) until the running ones fit the next rung
  down: ``E`` becomes ``E`` times the ladder's split-epochs over eager compaction's
  (:func:`packed_epochs`), the task's stops taken as evenly spread with mean ``E`` and longest ``E_max``
  (10 splits at 40 of 80 epochs: 1.16x). ``E``, the epochs to early stopping per model, comes from, in this
  order: the done fits of the run's own store (``--dry-run`` of a run started before, same config: its mean
  epochs per model); the contender's ``measured_epochs``, measured on a preset's synthetic cube, when the run
  keeps that preset's schedule (max_epochs, patience, min_epochs, stop_on); else its ``epoch_fraction`` of
  ``max_epochs`` (at least ``patience + 1`` and ``min_epochs``). The true count varies with drug and latent
  size, so read the estimate as +-50%.
- **Resuming**: the fits already done in the run's own store (same config) are left out of the tasks, as
  the run leaves them out (harness.grid.remaining); when none is left, nothing is calibrated.
- **A task** takes the sum of its fits; the **wall time** places the tasks in grid order, each on the first
  free worker slot (local workers, Slurm jobs x cores, or GPUs). Each slot also pays, once per model shape
  (model, latent) it runs, what a process's first fit at that shape costs more than later ones (the
  calibration's warm-up round against its kept rounds): with ``--compile``, torch.compile's compiling, of
  a graph per batch size the shape's compaction meets (:func:`compiled_graphs`; 7 at 50 splits a task),
  each reused by the worker's later fits of that shape and size (an upper bound: inductor's disk cache,
  filled by another worker or an earlier run, makes it a few seconds). Not counted: starting the cluster,
  the workers' reads of the cube, the report.
- **Workers side by side** (harness.corun): with n > 1 local CPU workers, each trained model's calibrated
  times are scaled by how much slower its steps ran while n - 1 helper processes trained the same points
  beside the calibration (the workers share the memory bus and cache; 1.02-1.07x at paper sizes here in most
  dry runs, 1.45-1.47x for PertVAE in two: it comes in bursts), measured in rounds that pair a fit beside
  the helpers with one while they are paused.
- **The arithmetic floor**: what no implementation of this grid can beat on this machine at the same
  epochs. ``torch.utils.flop_counter`` counts the floating-point operations of one training step of one
  split (the matrix products, forward and backward) and of one validation (``val_samples`` draws over the
  validation rows, forward; per validation pair), each model's at its smallest and largest latent size,
  linear in between; a fit needs ``E x k`` such steps and ``E`` validations (early stopping validates every
  epoch: for the pooled VAE, whose 800-odd validation pairs give 900-odd distinct profiles, a validation is
  ~10% of an epoch's arithmetic). At this machine's best float32 matrix-product rate
  (harness.calibrate.gemm_rates: the best of a large square product and of every product of a step and of a
  validation at the run's shapes, by CPU time, with the workers' threads, measured in the same calibration)
  that is a lower bound on the fit's seconds in fp32; evaluation, PCA and the baselines are left out of it
  (they only add). bf16 products (``--precision``) run faster than float32's peak where the hardware has
  bfloat16 instructions, so a bf16 run there can come close to or beat this floor; elsewhere they are
  emulated, far slower, and the dry run says so (harness.products.emulated_bf16_note).
- **A step against its floor**: the dry run prints each calibrated step (as timed alone, of the splits a task
  batches) beside its floor and, in float32 with one split a step, beside its own products each timed on its
  own at its shape (harness.calibrate.gemm_rates, products_seconds): how far the step's small products fall
  below the peak, and how much of the step is other work (elementwise work, per-operation overhead, memory
  traffic of the weights, gradients and Adam state, the products' slowdown inside the step), which the floor
  does not count. So it also prints the memory rate measured beside the peak (harness.calibrate.stream_rate):
  on a shared host that work's time varies between days more than the peak does (README).
"""

# ruff: noqa: E402
# (its imports follow the __main__ hand-off below, which must run before them)
from __future__ import annotations

import sys

if __name__ == "__main__":   # before the heavy imports: a Ctrl-C while they load is one line, exit 130
    from harness.entry import run_module

    sys.exit(run_module("harness.cost"))

import contextlib
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.calibrate import (
    CAL_ROUNDS,
    MAX_SPREAD,
    MIN_JUDGED_S,
    STREAM_MB,
    Calibration,
    CalibrationRun,
    Point,
    calibrate,
    on_gpu,
    products_seconds,
    step_flops,
    validation_flops,
    warm_up,
)
from harness.config import ConfigError, RunConfig, make_config, parse_args
from harness.contenders import REGISTRY, contender
from harness.corun import CORUN_ROUNDS, corun_factors, scaled
from harness.cpus import usable_cpus
from harness.grid import POOLED, FitKey, Task, build_grid, model_drugs, pooled, remaining, split_drugs
from harness.plugin_import import known as known_plugins
from harness.plugin_sources import changed, hosts, rerun_words
from harness.prepare import (
    GENERATED_CUBE,
    RunError,
    check_paths,
    check_response,
    generated_spec,
    given_cube,
    resolve_methods,
    select_drugs,
    synthetic_spec,
    unsplittable,
)
from harness.presets import synthetic_preset
from harness.products import emulated_bf16_note
from harness.shapes import (
    DrugShape,
    SplitShape,
    drug_shapes,
    pooled_shape,
    run_splits,
    split_shapes,
    split_warnings,
)
from harness.store import STORE_NAME, ResultStore, config_mismatch, science_hash

DISTURBED_EXIT = 4    # the dry run's exit status when the calibration was disturbed (no estimate printed)


@dataclass(frozen=True)
class Estimate:
    """The grid and its estimated seconds (module docstring).

    ``fit_cost[key] = (own seconds per epoch, shared seconds per epoch, fixed seconds, splits in its task)``
    of one fit; :meth:`fit_seconds` adds them up with the assumed ``epochs[model]`` (0 for PCA and the
    baselines). ``fit_flops[key]``: floating-point operations of one epoch of that fit (its training steps
    and its validation; ``val_flops[key]``: the validation's);
    ``peak``: this machine's best float32 matrix-product rate per worker slot (FLOP/s), for the floor,
    reached at the product ``peak_at``; ``precision``: that of the run's products; ``calibration``: how the
    times were measured (rounds, their spread, the load; harness.calibrate)."""

    tasks: tuple[Task, ...]
    fit_cost: Mapping[FitKey, tuple[float, float, float, int]]
    epochs: Mapping[str, int]
    max_epochs: int
    slots: int
    threads: int
    device: str
    where: str
    calibrations: tuple[Calibration, ...]
    calibration_seconds: float
    load: float   # the 1-minute load average when calibrated
    fit_flops: Mapping[FitKey, float] = field(default_factory=dict)
    peak: float = 0.0
    epoch_basis: Mapping[str, str] = field(default_factory=dict)   # model -> where its epochs come from
    precision: str = "fp32"
    peak_at: str = ""
    calibration: CalibrationRun | None = None
    first_fit: Mapping[tuple[str, int], float] = field(default_factory=dict)   # (model, latent) -> seconds
    val_flops: Mapping[FitKey, float] = field(default_factory=dict)   # of fit_flops, the validation's
    corun: Mapping[str, float] = field(default_factory=dict)   # model -> its times' factor side by side
    split_notes: tuple[str, ...] = ()   # harness.shapes.split_warnings of the run's drugs
    corun_others: int = 0   # other workers training beside each (harness.corun); 0: timed alone
    cores: int = 0   # the CPUs (GPUs) the slots share where fewer than slots (local_cores); 0: one each
    done_fits: int = 0   # fits of the grid already done in the run's store (a resume), not in ``tasks``
    compiled: frozenset[str] = frozenset()   # models whose fits compaction packs by the compile ladder
    drugs: int = 0   # the run's drugs, those only a pooled task fits included (0: counted from ``tasks``)

    @property
    def disturbed(self) -> bool:
        """Whether the calibration's repetitions disagreed (harness.calibrate): its times are not to be
        used."""
        return self.calibration is not None and self.calibration.disturbed

    def fit_seconds(self, key: FitKey, epochs: Mapping[str, float] | None = None) -> float:
        """Estimated seconds of one fit (``epochs`` overrides the assumed epochs per model)."""
        own, shared, fixed, n = self.fit_cost[key]
        e = (epochs or {}).get(key.model, self.epochs.get(key.model, 0))
        e_max = e + (self.max_epochs - e) * (1 - 1 / n) if e else 0.0
        if e and n > 1 and key.model in self.compiled:   # the ladder's frozen splits (module docstring)
            stops = [e_max - (e_max - max(1.0, 2 * e - e_max)) * i / (n - 1) for i in range(n)]
            e *= packed_epochs(stops, True) / sum(stops)
        return e * own + e_max * shared + fixed

    def per_fit(self, model: str, latent: int) -> float:
        """Mean estimated seconds of a fit of ``model`` at ``latent`` (e.g. to weight a progress bar)."""
        s = [self.fit_seconds(k) for k in self.fit_cost if k.model == model and k.latent == latent]
        return sum(s) / len(s) if s else 0.0

    def task_seconds(self, task: Task) -> float:
        """Estimated seconds of a task: the sum of its fits."""
        return sum(self.fit_seconds(k) for k in task.fit_keys())

    def _shapes(self) -> dict[tuple[str, int], int]:
        """Tasks per (model, latent) of the grid."""
        out: dict[tuple[str, int], int] = {}
        for t in self.tasks:
            for lat in t.latents:
                out[(t.model, lat)] = out.get((t.model, lat), 0) + 1
        return out

    @property
    def first_fit_seconds(self) -> float:
        """Worker-slot seconds of the first fits at each shape (torch.compile's compiling with --compile):
        every slot that runs a task of the shape pays it once (an upper bound: a worker can find a shape in
        inductor's disk cache, filled by another worker or an earlier run)."""
        return sum(self.first_fit.get(k, 0.0) * min(self.slots, n) for k, n in self._shapes().items())

    @property
    def total_seconds(self) -> float:
        """Worker-slot seconds of the whole grid."""
        return sum(self.task_seconds(t) for t in self.tasks) + self.first_fit_seconds

    @property
    def cpu_hours(self) -> float:
        """Core-hours (slot seconds x torch threads per slot); GPU-hours with a GPU."""
        return self._hours(self.total_seconds)

    def _hours(self, slot_seconds: float) -> float:
        return slot_seconds * (self.threads if self.device == "cpu" else 1) / 3600

    @property
    def wall_seconds(self) -> float:
        """Tasks in grid order, each on the first free of ``slots`` worker slots, after each slot's first fits
        at every shape (:attr:`first_fit_seconds`, split evenly)."""
        return self._placed(self.task_seconds, self.first_fit_seconds / max(1, self.slots))

    def _placed(self, seconds: Callable[[Task], float], start: float = 0.0) -> float:
        """The last slot's end, tasks in grid order each on the first free slot; slowed by slots / cores
        where more local workers than cores share them."""
        free = [start] * self.slots
        for t in self.tasks:
            i = min(range(self.slots), key=free.__getitem__)
            free[i] += seconds(t)
        shared = self.slots / self.cores if 0 < self.cores < self.slots else 1.0
        return max(free) * shared if free else 0.0

    def floor_fit_seconds(self, key: FitKey) -> float:
        """The fit's training steps and validations at the assumed epochs and this machine's peak rate
        (module docstring)."""
        flops = self.fit_flops.get(key, 0.0)
        return self.epochs.get(key.model, 0) * flops / self.peak if flops and self.peak > 0 else 0.0

    def _floor_task(self, task: Task) -> float:
        return sum(self.floor_fit_seconds(k) for k in task.fit_keys())

    @property
    def floor_flops(self) -> float:
        """Floating-point operations of every fit's training steps and validations at the assumed epochs."""
        return sum(self.epochs.get(k.model, 0) * f for k, f in self.fit_flops.items())

    @property
    def floor_val_flops(self) -> float:
        """Of :attr:`floor_flops`, the validations'."""
        return sum(self.epochs.get(k.model, 0) * f for k, f in self.val_flops.items())

    @property
    def floor_seconds(self) -> float:
        """Worker-slot seconds of the arithmetic floor (like :attr:`total_seconds`)."""
        return sum(self._floor_task(t) for t in self.tasks)

    @property
    def steps_floor_seconds(self) -> float:
        """Of :attr:`floor_seconds`, the training steps' (without the validations)."""
        return self.floor_seconds * (1 - self.floor_val_flops / self.floor_flops) if self.floor_flops else 0.0

    @property
    def floor_cpu_hours(self) -> float:
        """The arithmetic floor in core-hours (GPU-hours with a GPU), like :attr:`cpu_hours`."""
        return self._hours(self.floor_seconds)

    @property
    def floor_wall_seconds(self) -> float:
        """The arithmetic floor's wall time, tasks placed as in :attr:`wall_seconds`."""
        return self._placed(self._floor_task)

    def fits(self) -> dict[str, int]:
        """Fits per model."""
        out: dict[str, int] = {}
        for t in self.tasks:
            out[t.model] = out.get(t.model, 0) + t.n_fits
        return out


def packed_epochs(stops: Sequence[float], compiled: bool) -> float:
    """Split-epochs a task's packed batch computes when its splits stop after ``stops`` epochs: eagerly, each
    split's own; with torch.compile, while r splits run the batch holds the smallest of
    pertvae_core.packing.packed_sizes at least r (pertvae_core.packing.repack_size's rule)."""
    from pertvae_core.packing import packed_sizes  # imports torch: not at harness.cost's import

    sizes = packed_sizes(len(stops))
    down = sorted(stops, reverse=True) + [0.0]
    return sum((down[r - 1] - down[r]) * (min(s for s in sizes if s >= r) if compiled else r)
               for r in range(1, len(stops) + 1))


def steps_per_epoch(model: str, sp: SplitShape, cfg: RunConfig) -> int:
    """Optimizer steps of one epoch of a split, as the contender counts them (0: not trained)."""
    return contender(model).steps_per_epoch(sp, cfg)


def _preset_schedule(cfg: RunConfig, model: str) -> bool:
    """Whether ``cfg`` keeps its preset's early-stopping schedule and ``model`` was measured there (so its
    contender's ``measured_epochs`` applies)."""
    from harness.presets import PRESETS

    p = PRESETS.get(cfg.preset)
    return (cfg.preset in contender(model).measured_epochs and p is not None
            and cfg.max_epochs == p["max_epochs"] and cfg.patience == p["patience"]
            and cfg.min_epochs == p.get("min_epochs", 0) and cfg.stop_on == p.get("stop_on", "mse"))


def expected_epochs(cfg: RunConfig, model: str) -> int:
    """Assumed epochs to early stopping (module docstring): the contender's ``measured_epochs`` at the
    preset's schedule, else its ``epoch_fraction`` of max_epochs; within [patience + 1, max_epochs] and at
    least min_epochs; 0 for a model that is not trained (PCA, the baselines)."""
    c = contender(model)
    if not c.trained:
        return 0
    measured = _preset_schedule(cfg, model)
    guess = c.measured_epochs[cfg.preset] if measured else c.epoch_fraction * cfg.max_epochs
    e = max(round(guess), cfg.patience + 1, cfg.min_epochs)
    return int(min(cfg.max_epochs, e))


def epoch_basis(cfg: RunConfig, model: str) -> str:
    """Where :func:`expected_epochs` comes from, in words."""
    if _preset_schedule(cfg, model):
        return f"as measured on the {cfg.preset} preset's synthetic cube"
    return f"assumed: {contender(model).epoch_fraction:g} x max_epochs"


def _trained(models: Sequence[str]) -> list[str]:
    """The models of ``models`` that train for epochs."""
    return [m for m in models if m in REGISTRY and REGISTRY[m].trained]


def stored_epochs(cfg: RunConfig) -> dict[str, tuple[float, int]]:
    """Model -> (mean epochs, fits) of the done fits in ``cfg``'s OUT/results.zarr when it holds this
    config's results; {} without one (or when it cannot be read: the run itself will say why)."""
    path = cfg.out_dir / STORE_NAME
    if not path.is_dir():
        return {}
    try:
        store = ResultStore(path)
        if store.attrs.get("science_key_hash") != science_hash(cfg):
            return {}
        df = store.to_dataframe()
    except Exception:  # a damaged or foreign store: the run reports it; the estimate falls back
        return {}
    done = df[(df["status"] == "done") & df["model"].isin(_trained(cfg.models)) & df["epochs"].notna()]
    return {str(m): (float(g["epochs"].mean()), len(g)) for m, g in done.groupby("model")}


def stored_done(cfg: RunConfig) -> set[FitKey]:
    """The done fits in ``cfg``'s OUT/results.zarr when it holds this config's results (the run keeps them
    and runs the rest, harness.run); empty without one (or when it cannot be read: the run itself will say
    why)."""
    path = cfg.out_dir / STORE_NAME
    if not path.is_dir():
        return set()
    try:
        store = ResultStore(path)
        if store.attrs.get("science_key_hash") != science_hash(cfg):
            return set()
        rerun = {m for p in changed(cfg.out_dir, known_plugins()) for m in hosts(p, store.models)}
        return {k for k in store.done_keys() if k.model not in rerun}
    except Exception:  # a damaged or foreign store: the run reports it; the estimate is of the whole grid
        return set()


def check_store(cfg: RunConfig) -> None:
    """StoreMismatchError (a ValueError) when ``cfg``'s OUT/results.zarr holds results of another config,
    which the run refuses before any work (harness.store.ResultStore.open), and StoreDamagedError (one too)
    when it is no directory or its metadata cannot be read, which the run refuses as well: the dry run
    estimated the whole grid over it and exited 0."""
    import json

    path = cfg.out_dir / STORE_NAME
    if not (path.exists() or path.is_symlink()):
        return
    attrs = ResultStore(path).attrs
    try:
        stored = attrs.get("science_key_hash")
        stored_cfg = json.loads(attrs.get("config", "{}")).get("science", {})
    except Exception:  # a foreign store's attributes: the run reports it
        return
    if stored is not None and stored != science_hash(cfg):
        raise config_mismatch(path, stored_cfg, cfg)


def _between(lo: Calibration, hi: Calibration, latent: int) -> Calibration:
    """Linear interpolation of two calibrations in the latent size."""
    w = 0.0 if hi.latent == lo.latent else (latent - lo.latent) / (hi.latent - lo.latent)

    def f(name: str) -> float:
        return (1 - w) * getattr(lo, name) + w * getattr(hi, name)

    return Calibration(lo.model, latent, lo.splits, f("step"), f("validation"), f("setup"), f("evaluation"),
                       f("step_one"), f("validation_one"), f("flops_step"), f("flops_val_pair"),
                       f("first_fit"), f("products_step"))


def worker_slots(cfg: RunConfig) -> tuple[int, int, str, str]:
    """(task slots, torch threads per slot, device, description) of the run's workers (harness.cluster)."""
    import torch

    device = cfg.fit_kwargs()["device"]
    if cfg.cluster == "none":   # harness.run trains in-process with one torch thread, as one local worker
        return 1, 1, device, "in-process, 1 thread"
    if cfg.cluster == "slurm":
        if cfg.gpus_per_job > 0:   # a job's one worker runs cores_per_job tasks at a time (its threads),
            # at most one per GPU it advertises, each on torch's "cuda", the job's first GPU (harness.cluster)
            k = min(cfg.cores_per_job, cfg.gpus_per_job)
            used = "" if cfg.gpus_per_job == 1 else (
                f", {k} task(s) at a time, all on the job's first GPU"
                + (f" (wall time as for {cfg.jobs} GPU(s))" if k > 1 else ""))
            return cfg.jobs * k, 1, "cuda", f"{cfg.jobs} Slurm job(s) x {cfg.gpus_per_job} GPU(s){used}"
        return (cfg.jobs * cfg.cores_per_job, 1, device,
                f"{cfg.jobs} Slurm job(s) x {cfg.cores_per_job} core(s), 1 thread each")
    if device == "cuda":
        n = max(1, torch.cuda.device_count())
        return n, 1, device, f"{n} local GPU worker(s)"
    n, cores = cfg.resolved_workers(), local_cores(cfg, device)
    shared = f", sharing {cores} CPU(s) (wall time as for {cores} worker(s))" if n > cores else ""
    return n, 1, device, f"{n} local worker(s), 1 thread each{shared}"


def local_cores(cfg: RunConfig, device: str) -> int:
    """The CPUs a local CPU cluster's workers share (:attr:`Estimate.cores`, harness.cpus); the GPUs that
    Slurm jobs' tasks share where a job runs several at a time on its first GPU (:func:`worker_slots`); 0
    elsewhere."""
    if cfg.cluster == "slurm" and cfg.gpus_per_job > 0 and min(cfg.cores_per_job, cfg.gpus_per_job) > 1:
        return cfg.jobs
    return usable_cpus() if cfg.cluster == "local" and device == "cpu" else 0


# ---------------------------------------------------------------------------------------------------
# the estimate


def _cube(cfg: RunConfig, cube_path: str | Path | None) -> Any:
    from datasets.cube import open_cube
    from datasets.synthetic import generate

    if cube_path is not None:
        return open_cube(cube_path, check=False)
    from harness.presets import synthetic_preset

    return generate(preset=synthetic_preset(cfg.preset), seed=cfg.data_seed)


def run_shapes(cfg: RunConfig, ds: Any, names: Sequence[str]
               ) -> tuple[dict[str, DrugShape], dict[str, dict[tuple[int, int], SplitShape]]]:
    """Each drug's shape (and POOLED's when a model runs pooled) and its splits' shapes; ValueError naming a
    drug that cannot be split."""
    shapes = drug_shapes(ds, names)
    if any(pooled(cfg, m) for m in cfg.models):
        shapes[POOLED] = pooled_shape([shapes[d] for d in names])
    splits: dict[str, dict[tuple[int, int], SplitShape]] = {}
    bad = []
    fitted = split_drugs(cfg, names)
    for d, s in shapes.items():
        if d not in fitted:   # pooled into Figure 2's fits only: never split on its own
            continue
        try:
            splits[d] = split_shapes(s, cfg)
        except ValueError as e:
            bad.append((d, str(e), len(s.pairs)))
    if bad:
        raise ValueError(unsplittable(bad))
    return shapes, splits


def calibration_points(cfg: RunConfig, names: Sequence[str], shapes: Mapping[str, DrugShape],
                       splits: Mapping[str, Mapping[tuple[int, int], SplitShape]], spt: int) -> list[Point]:
    """What to time per model, on the splits of its median drug (by pairs): a contender trained by
    pertvae_core.train.fit on a batch of ``spt`` splits at its smallest and largest latent size, any other
    by one evaluation at its largest (a closed form costs about the same at any)."""
    points: list[Point] = []
    for model in cfg.models:
        drugs_ = sorted(model_drugs(cfg, model, names), key=lambda d: sum(shapes[d].pairs.values()))
        ordered = list(splits[drugs_[len(drugs_) // 2]].values())
        lats = sorted(cfg.latents_for(model))
        if not contender(model).timed_by_fit:
            points.append(Point(model, lats[-1], (ordered[0],)))
        else:
            batch = tuple(ordered[:max(1, min(spt, len(ordered)))])
            points += [Point(model, lat, batch, tuple(steps_per_epoch(model, sp, cfg) for sp in batch))
                       for lat in dict.fromkeys((lats[0], lats[-1]))]
    return points


def _compiling_in_process(cfg: RunConfig, device: str) -> contextlib.AbstractContextManager:
    """With ``--compile`` on the CPU, inductor compiles on this thread, its C++ compiler a waited-for child
    process whose CPU time the calibration counts (a pool of compile workers would hide it). On a GPU the
    calibration's clock is wall time, and it compiles with the threads a GPU worker has
    (harness.cluster.gpu_compile_threads)."""
    if not cfg.fit_kwargs()["compile"]:
        return contextlib.nullcontext()
    import torch._inductor.config

    if on_gpu(device):
        from harness.cluster import gpu_compile_threads

        return torch._inductor.config.patch(compile_threads=gpu_compile_threads(torch.cuda.device_count()))
    return torch._inductor.config.patch(compile_threads=1)


def _measure(points: Sequence[Point], genes: int, cfg: RunConfig, device: str, threads: int, others: int = 0,
             progress: Callable[[str], None] | None = None
             ) -> tuple[list[Calibration], CalibrationRun, dict[str, float]]:
    """Time ``points`` with the workers' torch and BLAS threads (harness.cluster.THREAD_ENV), each trained
    one with its step's and validation's floating-point operations; with ``others`` > 0, each trained
    model's times scaled by how much slower its steps run while that many other workers train beside it
    (harness.corun; its factors are returned)."""
    import torch
    from threadpoolctl import threadpool_limits

    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads), _compiling_in_process(cfg, device):
            counted = {p: (step_flops(p.model, p.latent, p.shapes[0], genes, cfg),
                           validation_flops(p.model, p.latent, p.shapes[0], genes, cfg))
                       for p in points if p.lens}
            if counted:
                warm_up(genes, cfg)
            products = {sh for both in counted.values() for _, shapes in both for sh in shapes}
            run = calibrate(points, genes, cfg, device, threads, sorted(products), progress)
            if others and progress:
                progress(f"timing a worker's steps with {others} other(s) training beside it")
            factors = corun_factors(points, genes, cfg, threads, others)
    finally:
        torch.set_num_threads(old_threads)
    measured = [scaled(replace(c, flops_step=counted[p][0][0],
                               flops_val_pair=counted[p][1][0] / max(1, p.shapes[0].n_val),
                               products_step=products_seconds(counted[p][0][1], run.rates)), factors)
                if p in counted else c for p, c in zip(points, run.calibrations, strict=True)]
    return measured, run, factors


def side_by_side(cfg: RunConfig, slots: int, device: str) -> int:
    """How many other workers train beside each one on this machine (harness.corun): a local CPU cluster's
    workers, up to the cores, less one; 0 elsewhere (Slurm jobs run on other machines, a GPU has its own
    memory)."""
    if cfg.cluster != "local" or device != "cpu":
        return 0
    return max(0, min(slots, usable_cpus()) - 1)


def interpolated(cfg: RunConfig, measured: Sequence[Calibration]) -> dict[tuple[str, int], Calibration]:
    """A calibration per (model, latent) of the run: its model's two measured ones interpolated."""
    cal: dict[tuple[str, int], Calibration] = {}
    for model in cfg.models:
        pts = [c for c in measured if c.model == model]
        for lat in cfg.latents_for(model):
            cal[(model, lat)] = _between(pts[0], pts[-1], lat)
    return cal


def compiled_graphs(tasks: Sequence[Task]) -> dict[tuple[str, int], int]:
    """(model, latent) -> the torch.compile graphs of pertvae_core.train.fit's step at that shape that the
    tasks need: one per batch size their compaction meets (pertvae_core.packing.packed_sizes of each task's
    splits); models trained by that fit under torch.compile only (not Dr.VAE's)."""
    from pertvae_core.packing import packed_sizes  # imports torch: not at harness.cost's import

    sizes: dict[tuple[str, int], set[int]] = {}
    for t in tasks:
        if t.model in REGISTRY and REGISTRY[t.model].trained and REGISTRY[t.model].compiles:
            for lat in t.latents:
                sizes.setdefault((t.model, lat), set()).update(packed_sizes(len(t.splits)))
    return {k: len(v) for k, v in sizes.items()}


def first_fits(cfg: RunConfig, tasks: Sequence[Task], cal: Mapping[tuple[str, int], Calibration]
               ) -> dict[tuple[str, int], float]:
    """(model, latent) -> what a worker's first fits at that shape cost more than later ones. With
    --compile a worker compiles each of the shape's graphs (:func:`compiled_graphs`) once, each at what one
    of the calibration's graphs cost: its first fit compiled one for its S splits and, with S > 1, one for
    the first split alone."""
    if not cfg.fit_kwargs()["compile"]:
        return {k: c.first_fit for k, c in cal.items()}
    graphs = compiled_graphs(tasks)
    return {k: c.first_fit / (2 if c.splits > 1 else 1) * graphs[k] if k in graphs else c.first_fit
            for k, c in cal.items()}


def graphs_warning(cfg: RunConfig, tasks: Sequence[Task]) -> str | None:
    """With --compile, when a worker that met every shape of ``tasks`` would need more graphs of the step
    than dynamo keeps (pertvae_core.train.COMPILED_SHAPES), past which it silently trains eagerly."""
    from pertvae_core.train import COMPILED_SHAPES  # imports torch: not at harness.cost's import

    graphs = compiled_graphs(tasks)
    n = sum(graphs.values())
    if not cfg.fit_kwargs()["compile"] or n <= COMPILED_SHAPES:
        return None
    return (f"--compile: a worker may need up to {n} torch.compile graphs of the training step "
            f"({len(graphs)} model shapes, each at the batch sizes its compaction meets), more than the "
            f"{COMPILED_SHAPES} dynamo keeps: past them it trains eagerly (fewer latent sizes or models per "
            f"run keep under it)")


def fit_costs(cfg: RunConfig, tasks: Sequence[Task], measured: Sequence[Calibration],
              splits: Mapping[str, Mapping[tuple[int, int], SplitShape]]
              ) -> tuple[dict[FitKey, tuple[float, float, float, int]], dict[FitKey, float],
                         dict[FitKey, float]]:
    """Each fit's (own, shared seconds per epoch, fixed seconds, splits in its task), its epoch's
    floating-point operations and of those its validation's (module docstring), from the calibrations
    interpolated in the latent size."""
    cal = interpolated(cfg, measured)
    cost: dict[FitKey, tuple[float, float, float, int]] = {}
    flops: dict[FitKey, float] = {}
    val_flops: dict[FitKey, float] = {}
    for t in tasks:
        n = len(t.splits)
        for k in t.fit_keys():
            c = cal[(k.model, k.latent)]
            a, b, va, vb = c.shared_and_per_split()
            if not contender(t.model).timed_by_fit:
                cost[k] = (0.0, 0.0, c.evaluation, n)
            else:
                sp = splits[k.drug][(k.repeat, k.fold)]
                steps = steps_per_epoch(k.model, sp, cfg)
                cost[k] = (steps * b + vb, (steps * a + va) / n, (c.setup + c.evaluation) / c.splits, n)
                val_flops[k] = sp.n_val * c.flops_val_pair
                flops[k] = steps * c.flops_step + val_flops[k]
    return cost, flops, val_flops


def estimate(cfg: RunConfig, cube_path: str | Path | None, drug_names: Sequence[str] | None = None,
             progress: Callable[[str], None] | None = None, done: Set[FitKey] = frozenset()) -> Estimate:
    """The grid of ``cfg`` on the cube at ``cube_path`` (None: the preset's synthetic cube, in memory) and
    its estimated seconds from a calibration on this machine (module docstring).

    ``drug_names``: the run's drugs (default: all of the cube's). ValueError when a drug cannot be split
    (too few cell lines for the folds). ``progress``: a line per calibration round. ``done``: fits already
    done (a resumed run's, :func:`stored_done`), left out of the tasks as the run leaves them out."""
    from datasets.cube import drugs

    ds = _cube(cfg, cube_path)
    names = list(drug_names) if drug_names is not None else drugs(ds)
    shapes, splits = run_shapes(cfg, ds, names)
    notes = tuple(line for d in splits if d != POOLED
                  for line in split_warnings(d, run_splits(sorted(shapes[d].pairs), d, cfg)))
    slots, threads, device, where = worker_slots(cfg)
    spt = cfg.resolved_splits_per_task(cuda=device == "cuda")
    full = build_grid(cfg, names, splits_per_task=spt)
    tasks = remaining(full, set(done))
    done_fits = sum(t.n_fits for t in full) - sum(t.n_fits for t in tasks)
    if not tasks:   # every fit done: the run trains nothing, so there is nothing to time
        return Estimate((), {}, {m: expected_epochs(cfg, m) for m in cfg.models}, cfg.max_epochs, slots,
                        threads, device, where, (), 0.0, 0.0, done_fits=done_fits, split_notes=notes,
                        drugs=len(names))
    points = calibration_points(cfg, names, shapes, splits, spt)
    t0 = time.perf_counter()
    others = side_by_side(cfg, slots, device) if any(p.lens for p in points) else 0   # nothing to time
    measured, run, factors = _measure(points, next(iter(shapes.values())).genes, cfg, device, threads, others,
                                      progress)
    seconds = time.perf_counter() - t0
    cost, flops, val_flops = fit_costs(cfg, tasks, measured, splits)
    return Estimate(tuple(tasks), cost, {m: expected_epochs(cfg, m) for m in cfg.models}, cfg.max_epochs,
                    slots, threads, device, where, tuple(measured), seconds, max(run.load),
                    fit_flops=flops, val_flops=val_flops, peak=run.peak,
                    epoch_basis={m: epoch_basis(cfg, m) for m in _trained(cfg.models)},
                    drugs=len(names),
                    precision=cfg.fit_kwargs()["precision"], peak_at=run.peak_at, calibration=run,
                    first_fit=first_fits(cfg, tasks, interpolated(cfg, measured)),
                    corun=factors, corun_others=others,
                    cores=local_cores(cfg, device), done_fits=done_fits, split_notes=notes,
                    compiled=frozenset(m for m in cfg.models if cfg.fit_kwargs()["compile"]
                                       and contender(m).compiles))


def paper_estimate(workers: int = 2, precision: str = "auto") -> Estimate:
    """The ``--preset paper`` grid (all 19 drugs, 10 x 5 CV) on the paper-shaped synthetic cube, on
    ``workers`` local CPU workers, with ``precision`` matrix products."""
    return estimate(make_config("paper", workers=workers, cluster="local", device="cpu", precision=precision),
                    None)


# ---------------------------------------------------------------------------------------------------
# output


def duration(seconds: float) -> str:
    """``45 s``, ``12.5 min`` or ``3.4 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def flop_count(n: float) -> str:
    """``812 GFLOP``, ``3.97 TFLOP`` or ``5.08 PFLOP``."""
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1e9:.3g} GFLOP"


def render(cfg: RunConfig, est: Estimate, source: str) -> str:
    """The dry run's text: the grid per (model, latent) (a task of several latent sizes counts in the row
    of each), totals, the estimate and its assumptions."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for t in est.tasks:
        for lat in t.latents:
            r = rows.setdefault((t.model, lat), {"drugs": set(), "fits": 0, "tasks": 0, "seconds": 0.0})
            r["drugs"].add(t.drug)
            r["fits"] += len(t.splits)
            r["tasks"] += 1
            r["seconds"] += sum(est.fit_seconds(k) for k in t.fit_keys() if k.latent == lat)
    n_drugs = est.drugs or len({t.drug for t in est.tasks if t.drug != POOLED})
    n_splits = cfg.n_repeats * cfg.n_folds
    w = max([10, *(len(m) + 1 for m, _ in rows)])   # the model column fits the longest name
    # the scope of a figure the run draws: none without the VAE or PCA (drvae-demo, --models pertvae ...)
    scope = (f"; Figure 2 scope {cfg.figure2_scope}" if any(contender(m).figure2 for m in cfg.models)
             else "")
    lines = [f"dry run: preset {cfg.preset}; {source}; {n_drugs} drug(s); {cfg.n_repeats} x "
             f"{cfg.n_folds} CV = {n_splits} splits{scope}", "",
             f"{'model':<{w}}{'latent':>7}{'drugs':>7}{'fits':>7}{'tasks':>7}{'s/fit':>9}{'total':>11}"]
    for (m, lat), r in rows.items():
        drug_col = "pooled" if r["drugs"] == {POOLED} else str(len(r["drugs"]))
        lines.append(f"{m:<{w}}{lat:>7}{drug_col:>7}{r['fits']:>7}{r['tasks']:>7}"
                     f"{r['seconds'] / r['fits']:>9.2f}{duration(r['seconds']):>11}")
    fits = est.fits()
    clock = "CPU" if est.device == "cpu" else "GPU"
    lines.append(f"(s/fit and total: a worker's {clock} seconds; a task of several latent sizes counts in "
                 f"the tasks of each of its rows)")
    tasks = f"{len(est.tasks)} task{'' if len(est.tasks) == 1 else 's'}"
    lines += ["", f"grid: {tasks}, {sum(fits.values())} fits ("
              + ", ".join(f"{m} {n}" for m, n in fits.items()) + ")"
              + (f" to run; {est.done_fits} more already done in {cfg.out_dir / STORE_NAME}, which the run "
                 f"keeps and this estimate leaves out" if est.done_fits else "")]
    unit = "CPU-hours" if est.device == "cpu" else "GPU-hours"
    lines.append(f"estimate: {hours(est.cpu_hours)} {unit}; wall time {duration(est.wall_seconds)} on "
                 f"{est.where}{_own_core(est)}; {_how_trained(cfg, est)}")
    for note in (emulated_bf16_note(cfg), lifetime_note(cfg, est)):
        if note:
            lines.append(f"  note: {note}")
    if warning := graphs_warning(cfg, est.tasks):
        lines.append(f"  warning: {warning}")
    if est.first_fit_seconds >= 0.5:   # printed in whole seconds
        n = sum(compiled_graphs(est.tasks).values())
        what = (f"torch.compile's compiling: {n} graphs, one per model shape and batch size of compaction, "
                f"each once per worker" if cfg.fit_kwargs()["compile"] and n else "set-up, once per worker")
        lines.append(f"  of which first fits at each model shape ({what}): "
                     f"{duration(est.first_fit_seconds)} of worker time")
    if est.floor_seconds > 0:
        at = f" (at a {est.peak_at} product)" if est.peak_at else ""
        lines.append(f"arithmetic floor: {hours(est.floor_cpu_hours)} {unit}; wall time "
                     f"{duration(est.floor_wall_seconds)}: the matrix products alone of the training steps "
                     f"and of the validations ({flop_count(est.floor_flops - est.floor_val_flops)} and "
                     f"{flop_count(est.floor_val_flops)} at the assumed epochs) at this machine's best "
                     f"float32 matrix-product rate, {est.peak / 1e9:.1f} GFLOP/s per worker{at}; the "
                     f"estimate is {est.total_seconds / est.floor_seconds:.2f} x the floor ("
                     f"{est.total_seconds / est.steps_floor_seconds:.2f} x the training steps' alone)"
                     + _bf16_against_floor(est))
    if est.floor_seconds > 0:
        lines += step_against_floor(est)
    if est.floor_seconds > 0 and est.calibration is not None and est.calibration.stream > 0:
        lines.append("  " + memory_how(est.calibration.stream))
    assumed = [f"{m} after {e:g} of {cfg.max_epochs} epochs ({est.epoch_basis.get(m, 'assumed')})"
               for m, e in est.epochs.items() if m in _trained(cfg.models)]
    if assumed:
        lines.append("  early stopping of " + "; ".join(assumed) + "; the epochs to stop vary with drug and "
                     "latent size (every row assumes its model's mean), so read the total as roughly +-50%")
    alone = {c.model: 1000 / est.corun.get(c.model, 1.0) for c in est.calibrations}   # ms, as timed alone
    steps = ", ".join(f"{c.model} latent {c.latent}: {c.step * alone[c.model]:.1f} ms/step of {c.splits} "
                      f"split(s)" + (f" ({c.step_one * alone[c.model]:.1f} of 1)" if c.splits > 1 else "")
                      for c in est.calibrations if contender(c.model).timed_by_fit)
    lines.append(f"  calibrated in {est.calibration_seconds:.1f} s (wall) on this machine ({est.device}, "
                 f"{est.threads} thread(s) per worker)" + (f": {steps}" if steps else ""))
    lines.append("  " + measured_how(est))
    if est.corun_others:
        lines.append("  " + side_by_side_how(est))
    shared = (", and the CPU time of the scheduler, the command and the workers' nannies, which share the "
              "workers' cores" if cfg.cluster == "local" and est.device == "cpu" else "")
    hosts = {m: contender(m).user_methods(cfg) for m in cfg.models if contender(m).user_methods(cfg)}
    plugins = ("; nor the run's own plug-ins (" + ", ".join(f"{n} in each {m} fit" for m, n in hosts.items())
               + ", each fitted in a process of its own): their rows' s/fit are the built-in methods' alone"
               if hosts else "")
    lines.append(f"  not counted: starting the cluster, the workers' reads of the cube, the report{shared}"
                 + plugins)
    lines.append("nothing was run or written; drop --dry-run to run the grid")
    return "\n".join(lines)


def _how_trained(cfg: RunConfig, est: Estimate) -> str:
    """The run's matrix products and torch.compile, as its trained models follow them: Dr.VAE's fits are
    fp32 and eager whatever --precision and --compile say (Contender.takes_precision, compiles)."""
    trained = _trained(cfg.models)
    fp32 = [m for m in trained if not contender(m).takes_precision]
    eager = [m for m in trained if m not in est.compiled]
    if est.precision == "fp32" or (trained and len(fp32) == len(trained)):
        words = "fp32 matrix products"
    else:
        words = (f"{est.precision} matrix products"
                 + (f" ({_bf16_way(est.device, cfg.fit_kwargs()['compile'])})" if est.precision == "bf16"
                    else "") + (f", {', '.join(fp32)}'s in fp32" if fp32 else ""))
    if not cfg.fit_kwargs()["compile"] or (trained and len(eager) == len(trained)):
        return words
    return words + "; torch.compile" + (f" ({', '.join(eager)} eagerly)" if eager else "")


def lifetime_note(cfg: RunConfig, est: Estimate) -> str | None:
    """On Slurm, what to say when the longest task (its first fits' set-up or compiling included, as on a new
    worker) is estimated to take longer than a worker may live (harness.cluster.worker_lifetime): the run
    stops such a task after a worker's whole lifetime, its fits failed, and this is the time to change
    ``--walltime`` or ``--splits-per-task``. None otherwise."""
    from harness.cluster import worker_lifetime
    from harness.config import walltime_seconds

    if cfg.cluster != "slurm" or not est.tasks:
        return None
    lifetime, stagger = worker_lifetime(walltime_seconds(cfg.walltime))

    def seconds(t: Task) -> float:
        return est.task_seconds(t) + sum(est.first_fit.get((t.model, lat), 0.0) for lat in t.latents)

    t = max(est.tasks, key=seconds)
    if seconds(t) <= lifetime - stagger:
        return None
    return (f"the longest task ({t.model} {t.drug} latent {t.latent_label}, {t.n_fits} fit(s)) takes an "
            f"estimated {duration(seconds(t))}, longer than a Slurm worker may live ({lifetime - stagger}-"
            f"{lifetime + stagger} s: --walltime {cfg.walltime} less a margin); the run stops such a task "
            f"after a worker's whole lifetime, its fits failed: use a longer --walltime or fewer "
            f"--splits-per-task")


def measured_how(est: Estimate) -> str:
    """How the calibration's times were measured, and how steady they were (harness.calibrate)."""
    c = est.calibration
    if c is None:
        return "times: not measured here"
    clock = ("wall time after synchronizing the GPU" if est.device == "cuda" else
             "this process's CPU time" + (" per thread" if est.threads > 1 else "")
             + f" (it had {c.cpu_share:.0%} of a core per thread)")
    judged = "" if c.judged else (f" (not judged: steps under {MIN_JUDGED_S * 1e3:.0f} ms can vary by more "
                                  f"than {MAX_SPREAD:g} x on a quiet machine)")
    return (f"times: {clock}, the median of {min(c.rounds, CAL_ROUNDS)} alternating repetitions ({c.rounds} "
            f"taken); the slowest repetition of {c.worst} took {c.spread:.2f} x the fastest{judged}; "
            f"{_load_text(c)}")


def _load_text(c: CalibrationRun) -> str:
    """The load around the calibration's timing rounds, and the machine."""
    host, usable = os.cpu_count() or 1, usable_cpus()
    mine = f" ({usable} of them usable by this process)" if usable < host else ""
    return (f"load average {c.load[0]:.1f} before the timing rounds, {c.load[1]:.1f} after them, on "
            f"{host} logical CPUs{mine}{cpu_model()}")


def disturbed_how(est: Estimate) -> str:
    """Why a disturbed calibration's estimate is not printed (harness.calibrate)."""
    c = est.calibration
    assert c is not None
    clock = ("wall time after synchronizing the GPU" if on_gpu(est.device) else   # calibrate.make_clock
             f"this process's CPU time, with {c.cpu_share:.0%} of a core per thread")
    return (f"the calibration was disturbed: after {c.rounds} alternating rounds, the slowest of the last "
            f"{CAL_ROUNDS} repetitions of {c.worst} still took {c.spread:.2f} x the fastest (more than the "
            f"{MAX_SPREAD:g} x allowed), by {clock}; {_load_text(c)}; so its estimate would be wrong and "
            f"none is printed")


def hours(h: float) -> str:
    """Hours to 3 significant figures (``27.4``, ``0.0712``, ``250``), never in e-notation: two decimals
    print a small grid's as 0.00."""
    if h <= 0 or not math.isfinite(h):
        return f"{h:g}"
    return f"{h:.{max(0, 2 - math.floor(math.log10(h)))}f}"


def _own_core(est: Estimate) -> str:
    """What a local CPU estimate's wall time assumes (``cores`` is 0 elsewhere)."""
    return ", each with a CPU to itself" if est.slots <= est.cores else ""


def step_against_floor(est: Estimate) -> list[str]:
    """Each calibrated step (as timed alone, of the splits a task trains as one batched model) against its
    floor, its matrix products at the peak rate; in float32 and for one split (the products are timed at
    one split's shapes), split into its products each timed on its own at its shape (how far small products
    fall below the peak) and the rest of the step (what the arithmetic floor does not count)."""
    fp32 = est.precision == "fp32"
    rows, split = [], False
    for c in est.calibrations:
        if not (contender(c.model).timed_by_fit and c.flops_step > 0 and c.step > 0 and est.peak > 0):
            continue
        step, floor = c.step / est.corun.get(c.model, 1.0), c.splits * c.flops_step / est.peak
        row = (f"    {c.model} latent {c.latent}: {step * 1e3:.1f} ms a step of {c.splits} split(s), "
               f"{step / floor:.2f} x its floor ({floor * 1e3:.1f} ms)")
        if fp32 and c.products_step > 0 and c.splits == 1:
            split = True
            row += (f"; its products, each timed on its own at its shape, {c.products_step * 1e3:.1f} ms "
                    f"({c.products_step / floor:.2f} x the floor), the rest of the step "
                    f"{max(0.0, step - c.products_step) * 1e3:.1f} ms")
        rows.append(row)
    if not rows:
        return []
    head = "  a training step (as timed alone) against its floor (its matrix products at the peak rate):"
    tail = ("  the rest of a step, which the floor does not count: elementwise work, per-operation overhead, "
            "the memory traffic of weights, gradients and Adam state, and the products' slowdown inside the "
            "step")
    return [head, *rows] + ([tail] if split else [])


def memory_how(stream: float) -> str:
    """The memory rate the calibration measured (harness.calibrate.stream_rate), as context for the ratio to
    the floor (not a correction of it)."""
    return (f"memory: {stream / 1e9:.1f} GB/s per thread (a pass over {STREAM_MB} MiB, read and written); "
            f"beyond its products a step moves its weights, gradients and Adam state through memory, which "
            f"the arithmetic floor does not count: on a shared host that time, and the estimate's ratio to "
            f"the floor, vary between days more than the floor does")


def side_by_side_how(est: Estimate) -> str:
    """What the workers' sharing of this machine does to the estimate (harness.corun)."""
    n = est.corun_others
    if not est.corun:
        return (f"side by side: not measured (a helper process failed, or this OS cannot pause one); steps "
                f"counted as timed alone, though {n} other worker(s) train beside each")
    each = ", ".join(f"{m} {f:.2f}x" for m, f in est.corun.items())
    return (f"side by side: a step took {each} its time alone (above) while {n} other worker(s) trained the "
            f"same (the workers share the memory bus and cache; per model the median of its points' paired "
            f"rounds, {CORUN_ROUNDS} a point, each a fit with the others paused and one beside them, and at "
            f"least 1x); the estimate counts it")


def _bf16_against_floor(est: Estimate) -> str:
    """Whether bf16 products can beat the float32 floor on the estimate's device here."""
    from pertvae_core.precision import native_bf16

    if not native_bf16(est.device):
        what = "GPU" if on_gpu(est.device) else "CPU"
        return f"; bf16 products cannot beat it here (this {what} has no bfloat16 matrix instructions)"
    how = "" if est.precision == "bf16" else " (--precision bf16)"
    return f"; bf16 products{how} can beat it"


def _bf16_way(device: str, compiled: bool) -> str:
    from pertvae_core.layers import bf16_way  # imports torch, which the dry run has loaded by now
    from pertvae_core.train import no_cpp_compiler

    return bf16_way(device, compiled and (on_gpu(device) or not no_cpp_compiler()))


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """`` of <model name>`` from ``cpuinfo`` ('' where it is missing): the floor scales with the CPU's
    float32 rate, so two dry runs' floors compare only on the same kind of CPU (README)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return ""
    names = [ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")]
    if not names:
        return ""
    return f" of {'an' if names[0][:1].lower() in 'aeiou' else 'a'} {names[0]}"


def _source(cfg: RunConfig) -> tuple[Path | None, str]:
    """The cube the run would use: --data, OUT/data.zarr generated by an earlier run (harness.prepare), or
    None (in memory)."""
    if cfg.data:
        return Path(cfg.data), f"cube {cfg.data}"
    out = cfg.out_dir
    if (out / GENERATED_CUBE).exists() and generated_spec(out) == synthetic_spec(cfg):
        return out / GENERATED_CUBE, f"cube {out / GENERATED_CUBE} (generated by an earlier run)"
    name = synthetic_preset(cfg.preset)
    return None, f"synthetic '{name}' cube, seed {cfg.data_seed} (shapes generated in memory)"


def dry_run(cfg: RunConfig) -> int:
    """Print the grid of ``cfg`` and its estimate (:func:`render`); 0, or 2 with one ``error:`` line on bad
    input (missing cube, unknown drug, a drug too small for the folds), or DISTURBED_EXIT (4) with one
    ``error:`` line when the calibration's repetitions disagreed even after recalibrating
    (harness.calibrate): a wrong estimate is not printed. Starts no cluster, writes nothing."""
    from datasets.cube import CubeError, drugs

    path, source = _source(cfg)
    try:
        check_paths(cfg)   # what the run refuses before any work, the dry run refuses too
        resolve_methods(cfg)
        _gpu_here(cfg)
        if cfg.data:
            given_cube(cfg)
        names = None
        if path is not None:
            from datasets.chunk_files import unrecorded_note
            from datasets.cube import open_cube
            ds = open_cube(path)   # checked as the run checks it: a damaged chunk is its one error line
            if note := unrecorded_note(ds.attrs):
                print(f"note: {path}: {note}", file=sys.stderr, flush=True)
            check_response(cfg, ds, path)
            names = select_drugs(cfg, drugs(ds), path)
        elif cfg.drugs is not None:
            from datasets.synthetic import TABLE1_DRUGS

            names = select_drugs(cfg, list(TABLE1_DRUGS), Path(f"<synthetic {cfg.preset}>"))
        if names is not None and cfg.drugs is not None:   # the cube's spelling, as the run's store has it
            cfg = replace(cfg, drugs=tuple(names))
        check_store(cfg)
        if (cfg.out_dir / STORE_NAME).is_dir():   # the run's note of the fits it reruns, and why
            for p in changed(cfg.out_dir, known_plugins()):
                print(f"note: {rerun_words(p, cfg.models)}", file=sys.stderr, flush=True)
        est = estimate(cfg, path, names, progress=lambda line: print(line, file=sys.stderr, flush=True),
                       done=stored_done(cfg))
    except (RunError, CubeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    for line in est.split_notes:
        print(line, file=sys.stderr, flush=True)
    if not est.tasks:
        print(f"dry run: preset {cfg.preset}; {source}: all {est.done_fits} fits of this grid are already "
              f"done in {cfg.out_dir / STORE_NAME}, so the run would train none\nnothing was run or written",
              flush=True)
        return 0
    if est.disturbed:
        print(f"error: {disturbed_how(est)}; rerun the dry run when the machine is quieter", file=sys.stderr,
              flush=True)
        return DISTURBED_EXIT
    print(render(cfg, with_stored_epochs(cfg, est), source), flush=True)
    return 0


def _gpu_here(cfg: RunConfig) -> None:
    """RunError when the run's workers would train on a GPU and this machine has none: their steps cannot be
    timed here (a Slurm login node, say)."""
    import torch

    device = worker_slots(cfg)[2]
    if on_gpu(device) and not torch.cuda.is_available():
        slurm = cfg.cluster == "slurm"
        flag = f"--gpus-per-job {cfg.gpus_per_job}" if slurm else f"--device {cfg.device}"
        cpu = "--gpus-per-job 0" if slurm else "--device cpu"
        raise RunError(f"{flag}: the workers would train on a GPU, and this machine has none to time their "
                       f"steps on; run the dry run where they will run (e.g. on a GPU node: srun --gpus 1 "
                       f"pertvae-bench run ... --dry-run), or give {cpu} to estimate a CPU run")


def with_stored_epochs(cfg: RunConfig, est: Estimate) -> Estimate:
    """``est`` with the mean epochs of the done fits in the run's store (:func:`stored_epochs`), if any."""
    done = stored_epochs(cfg)
    if not done:
        return est
    return replace(est, epochs={**est.epochs, **{m: round(e, 1) for m, (e, _) in done.items()}},
                   epoch_basis={**est.epoch_basis, **{m: f"mean of {n} done fit(s) in {cfg.out_dir}"
                                                      for m, (_, n) in done.items()}})


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.cost [run flags]``: ``python -m harness.run [run flags] --dry-run``."""
    try:
        cfg = parse_args([*(sys.argv[1:] if argv is None else argv), "--dry-run"])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    return dry_run(cfg)

