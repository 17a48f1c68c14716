"""Workers side by side: how much slower a training step runs while this machine's other local workers train.

Local one-thread workers on separate cores still share the memory bus and the last-level cache, and a
training step at the paper's sizes is mostly memory traffic (README): on the development machine a
compiled bf16 VAE step took 1.05-1.10x its CPU time alone while a second process ran the same steps, and
the dry run's factors were 1.04-1.15x.
The calibration (harness.calibrate) times every step alone, so for a local cluster of n > 1 workers the cost
model (harness.cost) scales each trained model's step, validation, setup and evaluation time by the factor
measured here (:func:`corun_factors`): each trained calibration point is timed again, the median of
``CAL_ROUNDS`` fits by this process's CPU time, while n - 1 helper processes (one per other worker, up to the
cores) fit the same point without pause. A factor below 1 is noise and counts as 1.
"""

from __future__ import annotations

import multiprocessing
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from harness.calibrate import CAL_ROUNDS, Calibration, Point, calibrate_fit, make_clock
from harness.config import RunConfig

READY_TIMEOUT_S = 600   # a helper's first fit of a point (torch.compile compiling cold) may take minutes
SCALED = ("step", "validation", "setup", "evaluation", "step_one", "validation_one")


def _helper(points: Sequence[Point], genes: int, cfg: RunConfig, threads: int, conn: Any) -> None:
    """A busy worker: fits the point whose index arrives on ``conn`` over and over (saying "ready" after the
    first fit) until the next index arrives; None ends it."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    if cfg.fit_kwargs()["compile"]:
        import torch._inductor.config

        torch._inductor.config.compile_threads = 1
    clock = make_clock("cpu", threads)
    with threadpool_limits(limits=threads):
        i = conn.recv()
        while i is not None:
            try:
                calibrate_fit(points[i], genes, cfg, clock)
            except Exception:   # noqa: BLE001 - the parent reads EOF and counts no factor; no traceback
                return
            conn.send("ready")
            while not conn.poll():
                calibrate_fit(points[i], genes, cfg, clock)
            i = conn.recv()


def _side_by_side(points: Sequence[Point], genes: int, cfg: RunConfig, threads: int, pipes: Sequence[Any]
                  ) -> list[float]:
    """Each trained point's median step time while the helpers behind ``pipes`` fit it too."""
    clock = make_clock("cpu", threads)
    steps = []
    for i, p in enumerate(points):
        for conn in pipes:
            conn.send(i)
        for conn in pipes:
            if not conn.poll(READY_TIMEOUT_S):
                raise TimeoutError(f"a helper did not fit {p.model} latent {p.latent}")
            conn.recv()
        steps.append(statistics.median(calibrate_fit(p, genes, cfg, clock).step for _ in range(CAL_ROUNDS)))
    return steps


def corun_factors(points: Sequence[Point], solo: Sequence[Calibration], genes: int, cfg: RunConfig,
                  threads: int, others: int) -> dict[str, float]:
    """Per trained model: its step time with ``others`` helper processes fitting the same points beside this
    one, over its time alone (``solo``: the calibration of each point), the mean over its points, at least 1
    (module docstring). {} when ``others`` is 0 or a helper fails (the estimate then says so)."""
    trained = [(p, c) for p, c in zip(points, solo, strict=True) if p.lens and c.step > 0]
    if others < 1 or not trained:
        return {}
    ctx = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    try:
        for _ in range(others):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_helper, args=([p for p, _ in trained], genes, cfg, threads, theirs),
                               daemon=True)
            proc.start()
            theirs.close()   # the helper's end lives in the helper alone: if it dies, ours reads EOF at once
            pipes.append(mine)
            procs.append(proc)
        steps = _side_by_side([p for p, _ in trained], genes, cfg, threads, pipes)
    except (OSError, EOFError, TimeoutError):
        return {}
    finally:
        _stop(pipes, procs)
    ratios: dict[str, list[float]] = {}
    for (p, c), s in zip(trained, steps, strict=True):
        ratios.setdefault(p.model, []).append(s / c.step)
    return {m: max(1.0, statistics.mean(r)) for m, r in ratios.items()}


def _stop(pipes: Sequence[Any], procs: Sequence[Any]) -> None:
    """End the helpers: None to each that still listens, then terminate any left after a few seconds."""
    for conn in pipes:
        try:
            conn.send(None)
        except OSError:
            pass
    for proc in procs:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.terminate()
            proc.join()


def scaled(cal: Calibration, factors: Mapping[str, float]) -> Calibration:
    """``cal`` with its times (:data:`SCALED`) multiplied by its model's factor (1 when it has none)."""
    from dataclasses import replace

    f = factors.get(cal.model, 1.0)
    return replace(cal, **{k: getattr(cal, k) * f for k in SCALED}) if f != 1.0 else cal
