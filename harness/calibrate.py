"""Timing on this machine for the cost model (harness.cost, ``run --dry-run``), by CPU time.

Wall-clock time lies on a shared machine: with ~3 runnable tasks per core every wall-clock figure is ~3x too
slow. So every time here is this process's CPU time (``time.process_time``; divided by the torch threads of a
worker when it has several), which counts only the time the process ran; on a GPU, the wall time after a
device synchronization (the kernels' time is not the host's).

- **Calibration points**: per model, a short :func:`pertvae_core.train.fit` (``max_steps``) on random data
  shaped like a typical drug's first splits (:func:`calibrate_fit`: seconds per step, per validation, setup,
  evaluation), or one evaluation of PCA or the baselines (:func:`calibrate_eval`).
- **Alternating repetitions** (:func:`calibrate`): every point and the GEMM peak are measured in
  ``CAL_ROUNDS`` rounds, round after round (so a burst of load hits one round of every point, not every round
  of one), and each point keeps the median of its rounds. A first round is a warm-up and is not kept: a
  process's first fit at new shapes was up to 1.5x slower than the next ones (the heap grows, kernels are set
  up per product shape), a cost a worker pays once, not per fit. When a point's step time varies between its
  rounds by more than ``MAX_SPREAD`` the calibration takes another round (up to ``MAX_ROUNDS``, judged on the
  last ``CAL_ROUNDS``); if it still varies, it is **disturbed** and the dry run prints no estimate. When the
  run trains a model, only the trained points are judged: an evaluation of PCA or the baselines costs
  seconds a fit against the hours a grid trains (0.6% of the paper grid's estimate), so its spread cannot
  move the estimate by more than that share (a 1.36x spread of the baselines' 0.26 s evaluation alone
  refused a paper-grid estimate).
- **A process's first fit at new shapes**: the warm-up round's time of each point beyond its kept rounds'
  median (``Calibration.first_fit``), with (on the CPU) the CPU time of waited-for child processes. With
  ``--compile`` that is torch.compile's compiling (its C++ compiler runs as such a child: the calibration
  compiles on one thread, ``compile_threads=1``, as a CPU worker does; on a GPU, in wall time, with a GPU
  worker's compile threads); a worker pays it once per shape, with ``--compile`` per graph (the point's
  S splits and its first split alone; compaction's batch sizes: harness.cost.first_fits).
- **The GEMM peak** (:func:`gemm_rates`): the best float32 matrix-product rate this machine reaches, over a
  large square product and every product of a training step and of a validation at the run's own shapes
  (recorded by :func:`step_flops` and :func:`validation_flops`), best of several repetitions in every round.
  Each shape's own best rate is kept too: a step's products at their own rates (:func:`products_seconds`)
  say how far its small products fall below the peak, and the rest of its time is other work.
- **The memory rate** (:func:`stream_rate`, CPU only): bytes per second of one thread's in-place pass over
  a ``STREAM_MB`` buffer (a paper-sized step's weights, gradients and Adam state fill 30-40 MiB), the median
  of the rounds. Beyond its products a step is memory traffic and the floor is arithmetic, so on a shared host
  (other machines' work on the same memory and caches) the steps' times vary between days more than the GEMM
  peak, on cached operands, does (here steps ~1.6x slower one day than another, the peak at 167-197 GFLOP/s
  against 200-233). Within one session a VAE step's time followed this rate (correlation -0.55 over 664
  samples) and a random-access gather's time (+0.62), not the peak's (-0.17). Whether it tracks the
  differences between days is not known (on the slow day calibrations measured 27-34 GB/s; the earlier day's
  was not measured), so the dry run prints it as context beside the load average, not as a correction.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.config import RunConfig
from harness.contenders import contender
from harness.shapes import SplitShape

if TYPE_CHECKING:
    from pertvae_core.config import FitConfig

PEAK_SIZE = {"cpu": 1024, "cuda": 4096}   # n of the n x n x n float32 product timed by gemm_rates
PEAK_REPEATS = 3      # repetitions of each product per round (the best counts)
STREAM_MB = 64        # MiB, the buffer of stream_rate: of the order of a paper-sized step's working set
WARMUP_STEPS = 2      # first step intervals left out of the step time (allocation, dispatch caches)
MIN_STEPS = 10        # step intervals timed at least
MAX_STEPS = 300       # calibration cap: an epoch longer than this has its validation left uncounted
CAL_ROUNDS = 3        # alternating repetitions of every calibration point; each keeps their median
MAX_ROUNDS = 6        # at most this many rounds (after the warm-up round) while the last CAL_ROUNDS disagree
MAX_SPREAD = 1.3      # slowest / fastest of a point's step time over the kept rounds: above it, disturbed
MIN_JUDGED_S = 0.005  # points shorter than this (CPU seconds per step or evaluation) are not judged

Clock = Callable[[], float]
Shape = tuple[tuple[int, ...], tuple[int, ...]]   # the operand shapes of a matrix product
Products = tuple[Shape, ...]   # one entry per matrix product (a shape repeats as often as it is computed)


@dataclass(frozen=True)
class Calibration:
    """Measured seconds of one model at one latent size, for a batch of ``splits`` splits.

    ``step``, ``validation`` and ``setup`` are for the whole batched model, ``step_one`` and
    ``validation_one`` for a single split; ``evaluation`` for the batch's evaluation (PCA, baselines: one
    split's evaluation, the rest 0). ``flops_step``: floating-point operations of one training step of one
    split; ``flops_val_pair``: of one validation of one split, per validation pair (linear in the pairs; 0
    for PCA and the baselines); ``products_step``: seconds of one split's step's matrix products, each timed
    on its own at its shape's best rate (:func:`products_seconds`; 0 when not measured): the part of
    ``step_one`` that is matrix products, were they as fast inside the step."""

    model: str
    latent: int
    splits: int
    step: float
    validation: float
    setup: float
    evaluation: float
    step_one: float = 0.0
    validation_one: float = 0.0
    flops_step: float = 0.0
    flops_val_pair: float = 0.0
    first_fit: float = 0.0   # what a process's first fit at these shapes costs more (see calibrate)
    products_step: float = 0.0

    def shared_and_per_split(self) -> tuple[float, float, float, float]:
        """(a, b, v_a, v_b): step = a + b x splits, validation = v_a + v_b x splits (harness.cost)."""
        if self.splits <= 1:
            return 0.0, self.step, 0.0, self.validation
        b = max(0.0, (self.step - self.step_one) / (self.splits - 1))
        vb = max(0.0, (self.validation - self.validation_one) / (self.splits - 1))
        return (max(0.0, self.step - b * self.splits), b, max(0.0, self.validation - vb * self.splits), vb)


@dataclass(frozen=True)
class Point:
    """One thing to calibrate: ``model`` at ``latent`` on random splits shaped like ``shapes`` (fitted as one
    batched model), ``lens`` optimizer steps per epoch each."""

    model: str
    latent: int
    shapes: tuple[SplitShape, ...]
    lens: tuple[int, ...] = ()


@dataclass(frozen=True)
class CalibrationRun:
    """The outcome of :func:`calibrate`: one median Calibration per point, the GEMM peak and how steady the
    rounds were; ``stream``: one thread's memory rate in bytes/s (:func:`stream_rate`; 0 on a GPU).
    ``spread``: the largest slowest/fastest ratio of a judged point's step time over the last CAL_ROUNDS
    rounds (``worst``: that point); where no point is judged (all shorter than MIN_JUDGED_S), the largest of
    any point's, and ``judged`` is False; ``disturbed``: a judged spread above MAX_SPREAD after
    MAX_ROUNDS. ``cpu_share``: the CPU time of this process and of its waited-for children (torch.compile's
    C++ compiler) / wall time over the calibration (1.0 per thread when it had the CPU to itself);
    ``load``: the 1-minute load average before and after the timing rounds. ``rates``: the best float32
    rate (FLOP/s) of each product shape timed (:func:`gemm_rates`) over the rounds; ``peak`` is the best of
    them, at ``peak_at``."""

    calibrations: tuple[Calibration, ...]
    peak: float
    peak_at: str
    rounds: int
    spread: float
    worst: str
    disturbed: bool
    cpu_share: float
    load: tuple[float, float]
    seconds: float
    stream: float = 0.0
    rates: Mapping[Shape, float] = field(default_factory=dict)
    judged: bool = True


def load_average() -> float:
    """The 1-minute load average (0.0 where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def on_gpu(device: str) -> bool:
    """Whether the torch device name ``device`` ("cpu", "cuda", "cuda:1") is a CUDA GPU."""
    return device.split(":")[0] == "cuda"


def make_clock(device: str, threads: int) -> Clock:
    """Seconds for the calibration (module docstring): this process's CPU time per torch thread on the CPU;
    on a GPU, wall time after synchronizing it."""
    if on_gpu(device):
        import torch

        def gpu_clock() -> float:
            torch.cuda.synchronize()
            return time.perf_counter()

        return gpu_clock
    n = max(1, int(threads))
    return lambda: time.process_time() / n


def random_split(sp: SplitShape, genes: int, rng: np.random.Generator) -> Any:
    """A pertvae_core SplitData of random profiles with the rows of ``sp`` (x1_train and x1_val cycling
    over their distinct controls, ``n_train_x1`` and ``n_val_x1``)."""
    from pertvae_core.data import SplitData

    def r(n: int) -> np.ndarray:
        return rng.standard_normal((n, genes), dtype=np.float32)

    def x1(n: int, distinct: int) -> np.ndarray:   # n pairs' controls, cycling over ``distinct`` profiles
        return r(max(1, distinct))[np.arange(n) % max(1, distinct)]

    names = [f"cell{i}" for i in range(len(sp.test_pairs))]
    return SplitData(x1_train=x1(sp.n_train, sp.distinct_x1), x2_train=r(sp.n_train),
                     x1_val=x1(sp.n_val, sp.distinct_x1_val), x2_val=r(sp.n_val),
                     x1_test=r(sp.n_test), x2_test=r(sp.n_test), xs_train=r(sp.n_single),
                     xu_train=r(sp.n_unused), test_cell_line=np.repeat(names, sp.test_pairs).astype(str),
                     xc_test=r(sum(sp.test_controls)),
                     xc_test_cell_line=np.repeat(names, sp.test_controls).astype(str))


# ---------------------------------------------------------------------------------------------------
# one measurement


def _time_fit(model: str, data: list, lens: Sequence[int], fc: Any, cfg: RunConfig, clock: Clock
              ) -> tuple[float, float, float, Callable[[], Any]]:
    """(seconds per step, per validation, setup, evaluation) of a short fit of ``data`` as one batched
    model (its contender's :meth:`~harness.contenders.base.Contender.calibration_fit`)."""
    n = min(MAX_STEPS, max(min(lens) + 2, WARMUP_STEPS + MIN_STEPS + 1))
    stamps: list[float] = []
    t0 = clock()
    evaluate = contender(model).calibration_fit(data, fc, cfg, n, lambda step, _model: stamps.append(clock()))
    d = np.diff(stamps)
    # interval i ends with step i + 2 and holds the validation after step i + 1 when an epoch ended there
    with_val = np.array([any((i + 1) % k == 0 for k in lens) for i in range(len(d))], dtype=bool)
    plain = d[WARMUP_STEPS:][~with_val[WARMUP_STEPS:]]
    step = float(np.median(plain if plain.size else d)) if d.size else stamps[0] - t0
    validation = float(max(0.0, np.median(d[with_val]) - step)) if with_val.any() else 0.0
    return step, validation, max(0.0, stamps[0] - t0 - step), evaluate


def point_fit_config(p: Point, cfg: RunConfig) -> FitConfig:
    """The FitConfig a calibration point is timed with: the run's, with ``--compile`` and ``--precision``
    only where ``p.model``'s fits follow them (``Contender.compiles``, ``takes_precision``). Dr.VAE's train
    eagerly in fp32: timed compiled, its estimate had 32 s of compiling for a drvae-demo fit that never
    compiles."""
    from pertvae_core.config import FitConfig

    c = contender(p.model)
    kw = cfg.fit_kwargs()
    return FitConfig(**dict(kw, latent=int(p.latent), compile=kw["compile"] and c.compiles,
                            precision=kw["precision"] if c.takes_precision else "fp32"))


def calibrate_fit(p: Point, genes: int, cfg: RunConfig, clock: Clock) -> Calibration:
    """Time a short fit of ``p.model`` (its contender's calibration_fit) on random data shaped like
    ``p.shapes`` (one split each, fitted as one batched model; with several, also the first alone), then
    its evaluation."""
    rng = np.random.default_rng(0)
    data = [random_split(sp, genes, rng) for sp in p.shapes]
    fc = point_fit_config(p, cfg)
    step_one, validation_one = (_time_fit(p.model, data[:1], p.lens[:1], fc, cfg, clock)[:2]
                                if len(data) > 1 else (0.0, 0.0))
    step, validation, setup, evaluate = _time_fit(p.model, data, p.lens, fc, cfg, clock)
    if len(data) == 1:
        step_one, validation_one = step, validation
    t1 = clock()
    evaluate()
    return Calibration(p.model, int(p.latent), len(data), step, validation, setup, clock() - t1, step_one,
                       validation_one)


def calibrate_eval(p: Point, genes: int, cfg: RunConfig, clock: Clock) -> Calibration:
    """Time the evaluation of a cheap contender (PCA, the baselines: its ``calibration_run_latents``) at all
    of its latent sizes, as one of its tasks runs them, on a random split shaped like ``p.shapes[0]``; the
    ``evaluation`` is one latent size's share. PCA's decomposition serves all 7 of the paper's latent sizes:
    timed at one and charged at each, it counted 7 decompositions a split where the run computes one."""
    data = [random_split(p.shapes[0], genes, np.random.default_rng(0))]
    latents = cfg.latents_for(p.model)
    t0 = clock()
    contender(p.model).calibration_run_latents(data, latents, cfg)
    return Calibration(p.model, int(p.latent), 1, 0.0, 0.0, 0.0, (clock() - t0) / len(latents))


def warm_up(genes: int, cfg: RunConfig) -> None:
    """Two steps of a tiny PertVAE and VAE fit: the process's one-time costs (torch's lazy initialization),
    which a worker pays once, not per fit, stay out of the calibration."""
    from pertvae_core.config import FitConfig
    from pertvae_core.train import fit

    sp = SplitShape(n_train=8, n_val=4, n_test=4, n_single=8, test_pairs=(4,), test_controls=(2,))
    data = [random_split(sp, genes, np.random.default_rng(0))]
    fc = FitConfig(**dict(cfg.fit_kwargs(), latent=2, hidden=(8, 8), context=4, iaf_hidden=8, batch_pairs=4,
                          batch_singletons=4, compile=False))   # compiling is per shape: the points' own
    for pairs in (True, False):
        fit(data, fc, [0], pairs=pairs, max_steps=2)


# ---------------------------------------------------------------------------------------------------
# the step's arithmetic and this machine's matrix-product rate


def _counted_fit(model: str, latent: int, sp: SplitShape, genes: int, cfg: RunConfig, max_steps: int
                 ) -> tuple[float, Products]:
    """Floating-point operations of the first ``max_steps`` steps (and the epoch ends among them) of a fit
    of one split shaped like ``sp`` (its contender's calibration_fit, as timed), counted by
    ``torch.utils.flop_counter`` (matrix products, forward and backward) on the CPU in float32; and the
    operand shapes of each of its matrix products, in order of shape."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    from pertvae_core.config import FitConfig

    aten = torch.ops.aten
    shapes: list[Shape] = []

    class Recorded(TorchDispatchMode):
        """Records the operand shapes of each matrix product (bmm, mm; baddbmm, addmm)."""

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            op = func.overloadpacket
            if op in (aten.bmm, aten.mm, aten.baddbmm, aten.addmm):
                k = 0 if op in (aten.bmm, aten.mm) else 1
                shapes.append((tuple(args[k].shape), tuple(args[k + 1].shape)))
            return func(*args, **(kwargs or {}))

    data = [random_split(sp, genes, np.random.default_rng(0))]
    fc = FitConfig(**dict(cfg.fit_kwargs(), latent=int(latent), device="cpu", compile=False,
                          precision="fp32"))
    with FlopCounterMode(display=False) as counter, Recorded():
        contender(model).calibration_fit(data, fc, cfg, max_steps, lambda step, _model: None)
    return float(counter.get_total_flops()), tuple(sorted(shapes))


def step_flops(model: str, latent: int, sp: SplitShape, genes: int, cfg: RunConfig
               ) -> tuple[float, Products]:
    """Floating-point operations of one training step of one split shaped like ``sp`` (matrix products,
    forward and backward, as :func:`_counted_fit` counts them), without validation rows (so no validation
    is counted); and the operand shapes of its matrix products."""
    return _counted_fit(model, latent, replace(sp, n_val=0), genes, cfg, 1)


def validation_flops(model: str, latent: int, sp: SplitShape, genes: int, cfg: RunConfig
                     ) -> tuple[float, Products]:
    """Floating-point operations of one validation (an epoch's end: ``val_samples`` draws over the
    validation rows) of a split shaped like ``sp``, and the operand shapes of its matrix products: an epoch
    of a split with twice ``sp``'s validation pairs (and distinct controls) and a few training rows, less
    the same with ``sp``'s. (Not less one without validation pairs: such a split still validates a padding
    row.)"""
    if sp.n_val == 0:
        return 0.0, ()
    tiny = replace(sp, n_train=2, n_train_x1=-1, n_single=2, n_unused=0)
    steps = max(1, contender(model).steps_per_epoch(tiny, cfg))
    once, products = _counted_fit(model, latent, tiny, genes, cfg, steps)
    twice = _counted_fit(model, latent, replace(tiny, n_val=2 * sp.n_val, n_val_x1=2 * sp.distinct_x1_val),
                         genes, cfg, steps)[0]
    return twice - once, products


def product_flops(shape: Shape) -> float:
    """Floating-point operations of a matrix product of operands shaped ``shape`` (a batch of them: [S, m,
    k] x [S, k, n])."""
    sa, sb = shape
    return 2.0 * math.prod(sa) * sb[-1]


def gemm_rates(device: str, products: Iterable[Shape] = (), clock: Clock | None = None,
               repeats: int = PEAK_REPEATS) -> dict[Shape, float]:
    """This machine's float32 matrix-product rate in FLOP/s with the current torch threads at each distinct
    shape of an n x n x n product (n = PEAK_SIZE[device type]) and of ``products`` (as :func:`step_flops`
    records them), each the best of ``repeats`` timed by ``clock`` (default: CPU time per thread,
    :func:`make_clock`) on operands just used (warm in the caches)."""
    import torch

    kind = torch.device(device).type
    clock = clock or make_clock(device, torch.get_num_threads())
    n = PEAK_SIZE.get(kind, PEAK_SIZE["cpu"])
    rates: dict[Shape, float] = {}
    for sa, sb in dict.fromkeys([((n, n), (n, n)), *products]):
        a, b = torch.randn(sa, device=device), torch.randn(sb, device=device)
        mm = torch.bmm if a.dim() == 3 else torch.mm
        mm(a, b)
        t = math.inf
        for _ in range(repeats):
            t0 = clock()
            mm(a, b)
            t = min(t, clock() - t0)
        rates[(sa, sb)] = product_flops((sa, sb)) / t if 0 < t < math.inf else 0.0
    return rates


def best_rate(rates: Mapping[Shape, float]) -> tuple[float, str]:
    """The best of ``rates`` (:func:`gemm_rates`) and its product, as ``m x k x n``."""
    if not rates:
        return 0.0, ""
    (sa, sb), rate = max(rates.items(), key=lambda kv: kv[1])
    return rate, f"{sa[-2]}x{sa[-1]}x{sb[-1]}"


def products_seconds(products: Products, rates: Mapping[Shape, float]) -> float:
    """Seconds of ``products`` (one entry per product, as :func:`step_flops` records them), each at its own
    shape's rate (:func:`gemm_rates`): what they cost on their own, without the work around them; 0.0 when
    a shape's rate was not measured."""
    if any(rates.get(sh, 0.0) <= 0 for sh in products):
        return 0.0
    return sum(product_flops(sh) / rates[sh] for sh in products)


def stream_rate(device: str, clock: Clock = time.thread_time, mb: int = STREAM_MB,
                repeats: int = PEAK_REPEATS) -> float:
    """Bytes per second of one thread's in-place ``add_`` over an ``mb`` MiB float32 buffer (each element
    read and written once), the best of ``repeats`` timed by ``clock`` (default: this thread's CPU time; a
    pass split over several threads measured too noisily by CPU time: 33-129 GB/s on 2 threads here, 17-27 on
    one); 0.0 on a GPU, whose memory a step does not wait on the same way (module docstring)."""
    import torch

    if torch.device(device).type != "cpu":
        return 0.0
    buf = torch.zeros(mb << 18)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        buf.add_(1.0)   # the pages are touched before any pass is timed
        t = math.inf
        for _ in range(repeats):
            t0 = clock()
            buf.add_(1.0)
            t = min(t, clock() - t0)
    finally:
        torch.set_num_threads(before)
    return 2.0 * buf.numel() * buf.element_size() / t if 0 < t < math.inf else 0.0


# ---------------------------------------------------------------------------------------------------
# alternating rounds


def _median(cals: Sequence[Calibration]) -> Calibration:
    """Field-wise median of one point's calibrations."""
    num = {f.name: statistics.median(getattr(c, f.name) for c in cals) for f in fields(Calibration)
           if f.name not in ("model", "latent", "splits")}
    return replace(cals[0], **num)


def _times(cals: Sequence[Calibration]) -> list[float]:
    """The calibrations' step times (the evaluation's for PCA and the baselines)."""
    return [c.step or c.evaluation for c in cals]


def _spread(cals: Sequence[Calibration]) -> float:
    """Slowest / fastest of the calibrations' step time (the evaluation's for PCA and the baselines)."""
    steps = _times(cals)
    return max(steps) / min(steps) if min(steps) > 0 else 1.0


def _judged(points: Sequence[Point]) -> list[bool]:
    """Which points' spread can make a calibration disturbed: the trained ones when there are any (module
    docstring), else all."""
    trained = [bool(p.lens) for p in points]
    return trained if any(trained) else [True] * len(points)


def _judgeable(cals: Sequence[Calibration]) -> bool:
    """Whether a point is long enough to judge: a few milliseconds of CPU vary with the scheduler and the
    caches by more than 1.3x on a quiet machine, and such a point weighs little in any estimate. The
    threshold is no higher: the paper preset's steps take 8-15 ms on a Xeon with AMX (at 20 ms none was
    judged, so no paper-grid calibration there could be disturbed), and held 1.04-1.22x at load 2-8."""
    return statistics.median(_times(cals)) >= MIN_JUDGED_S


def _worst(kept: Sequence[Sequence[Calibration]], judged: Sequence[bool]) -> tuple[int, float, bool]:
    """(point, spread, judged): of the points ``judged`` names (:func:`_judged`), the one whose step time
    varies most over ``kept`` rounds among those long enough to judge; where none is, the one that varies
    most, with ``judged`` False."""
    per_point = [[r[i] for r in kept] for i in range(len(judged))]
    spreads = [_spread(c) for c in per_point] or [1.0]
    judge = [j and _judgeable(c) for j, c in zip(judged, per_point, strict=True)]
    pool = judge if any(judge) else list(judged)
    i = int(np.argmax([s if j else 0.0 for s, j in zip(spreads, pool, strict=True)])) if per_point else 0
    return i, spreads[i], any(judge)


def calibrate(points: Sequence[Point], genes: int, cfg: RunConfig, device: str, threads: int,
              products: Iterable[Shape] = (),
              progress: Callable[[str], None] | None = None) -> CalibrationRun:
    """Measure every point and the GEMM peak in alternating rounds after a warm-up round (module
    docstring); ``progress`` gets a line per round (a calibration takes minutes)."""
    say = progress or (lambda _line: None)
    clock = make_clock(device, threads)
    gpu = on_gpu(device)
    products = tuple(products)

    def spent() -> float:   # the clock and, on the CPU, waited-for children (a C++ compiler) per torch thread
        if gpu:  # wall time already holds the compilers' time
            return clock()
        return clock() + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime / max(1, threads)

    def cpu_time() -> float:   # this process's and its waited-for children's, for the share of a core it had
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    def one_round() -> list[Calibration]:
        out = []
        for p in points:
            t0 = spent()
            c = calibrate_fit(p, genes, cfg, clock) if p.lens else calibrate_eval(p, genes, cfg, clock)
            out.append(replace(c, first_fit=spent() - t0))   # the point's whole time, for now
        return out

    judged = _judged(points)
    load0, w0, c0 = load_average(), time.perf_counter(), cpu_time()
    say(f"calibrating {len(points)} point(s) on {device}: a warm-up round, then {CAL_ROUNDS} to {MAX_ROUNDS} "
        f"rounds")
    first = one_round()   # the warm-up round, not kept: a process's first fit at these shapes
    say(f"calibration: warm-up round done after {time.perf_counter() - w0:.0f} s (wall)")
    rounds: list[list[Calibration]] = []
    rates: dict[Shape, float] = {}
    streams = []
    while True:
        rounds.append(one_round())
        for sh, rate in gemm_rates(device, products, clock).items():   # each shape's best over the rounds
            rates[sh] = max(rate, rates.get(sh, 0.0))
        streams.append(stream_rate(device))
        kept = rounds[-CAL_ROUNDS:]
        worst, spread, judging = _worst(kept, judged)
        note = "" if judging else f"; not judged: under {MIN_JUDGED_S * 1e3:.0f} ms"
        say(f"calibration round {len(rounds)}: step spread {spread:.2f}x "
            f"({points[worst].model if points else '-'}{note}), {time.perf_counter() - w0:.0f} s (wall)")
        if len(rounds) >= MAX_ROUNDS or (len(rounds) >= CAL_ROUNDS and (spread <= MAX_SPREAD or not judging)):
            break
    wall, cpu = time.perf_counter() - w0, cpu_time() - c0
    medians = [_median([r[i] for r in kept]) for i in range(len(points))]
    peak, peak_at = best_rate(rates)
    return CalibrationRun(
        calibrations=tuple(replace(m, first_fit=max(0.0, f.first_fit - m.first_fit))
                           for m, f in zip(medians, first, strict=True)), peak=peak,
        peak_at=peak_at, rounds=len(rounds), spread=spread,
        worst=f"{points[worst].model} latent {points[worst].latent}" if points else "",
        disturbed=judging and spread > MAX_SPREAD, judged=judging,
        cpu_share=cpu / wall / max(1, threads) if wall > 0 else 1.0,
        load=(load0, load_average()), seconds=wall, stream=statistics.median(streams), rates=rates)
