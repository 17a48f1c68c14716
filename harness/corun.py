"""Workers side by side: how much slower a training step runs while this machine's other local workers train.

Local one-thread workers on separate cores still share the memory bus and the last-level cache, which a
training step's products and its passes over the weights, gradients and Adam state both use (README).
The calibration (harness.calibrate) times every step alone, so for a local cluster of n > 1 workers the cost
model (harness.cost) scales each trained model's step, validation, setup and evaluation time by the factor
measured here (:func:`corun_factors`): n - 1 helper processes (one per other worker, up to the cores) fit
each trained calibration point without pause, and this process fits it in ``CORUN_ROUNDS`` **paired
rounds**, each one fit with the helpers stopped (SIGSTOP: alone) and one with them running, in alternating
order, timed by this process's CPU time. A round's two fits are a second or two apart, so a change in the
machine's speed between rounds (other tenants of a shared host) cancels out of its ratio. A model's factor is
the median of its points' ratios; below 1 it is noise and counts as 1.

On the development VM (2 vCPUs under KVM) the interference itself comes in bursts: single rounds of a
PertVAE fit measured 0.97-1.40x within one minute, on separate vCPUs, with no other thread of the process
running, and dry runs' PertVAE factors were 1.02-1.07x in most runs and 1.45-1.47x in two (paired or not),
so the factor, and the estimate with it, can differ by that much between two dry runs there.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import statistics
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psutil

from harness.calibrate import Calibration, Point, calibrate_fit, make_clock
from harness.config import RunConfig

CORUN_ROUNDS = 5        # paired rounds per trained point: the median resists a burst of one or two
STOP_TIMEOUT_S = 10     # a stopped helper shows as stopped within milliseconds; this only bounds a hang
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


def _settled(pid: int, stopped: bool) -> None:
    """Return once process ``pid`` is stopped (or no longer): a signal is delivered after ``os.kill``
    returns, and a helper still running would be timed as alone. TimeoutError after STOP_TIMEOUT_S,
    ProcessLookupError if it is gone."""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    try:
        while (psutil.Process(pid).status() == psutil.STATUS_STOPPED) != stopped:
            if time.monotonic() > deadline:
                raise TimeoutError(f"helper process {pid} did not {'stop' if stopped else 'continue'}")
            time.sleep(0.001)
    except psutil.NoSuchProcess:
        raise ProcessLookupError(pid) from None


@contextlib.contextmanager
def _stopped(procs: Sequence[Any]) -> Iterator[None]:
    """The helper processes stopped (SIGSTOP: they use no CPU, and resume mid-fit) for the block."""
    try:
        for proc in procs:
            os.kill(proc.pid, signal.SIGSTOP)
            _settled(proc.pid, stopped=True)
        yield
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                _settled(proc.pid, stopped=False)


def _paired_ratios(p: Point, genes: int, cfg: RunConfig, clock: Any, procs: Sequence[Any]) -> list[float]:
    """Up to ``CORUN_ROUNDS`` ratios of ``p``'s step time beside the running helpers over alone (helpers
    stopped), each from one fit of each, alone first in even rounds and second in odd ones (module
    docstring)."""
    ratios = []
    for r in range(CORUN_ROUNDS):
        times = {}
        for alone in ((True, False) if r % 2 == 0 else (False, True)):
            with _stopped(procs) if alone else contextlib.nullcontext():
                times[alone] = calibrate_fit(p, genes, cfg, clock).step
        if times[True] > 0:   # a fit too short for the clock to see has no ratio
            ratios.append(times[False] / times[True])
    return ratios


def _side_by_side(points: Sequence[Point], genes: int, cfg: RunConfig, threads: int, pipes: Sequence[Any],
                  procs: Sequence[Any]) -> list[list[float]]:
    """Each point's paired ratios (:func:`_paired_ratios`) while the helpers behind ``pipes`` fit it too."""
    clock = make_clock("cpu", threads)
    ratios = []
    for i, p in enumerate(points):
        for conn in pipes:
            conn.send(i)
        for conn in pipes:
            if not conn.poll(READY_TIMEOUT_S):
                raise TimeoutError(f"a helper did not fit {p.model} latent {p.latent}")
            conn.recv()
        ratios.append(_paired_ratios(p, genes, cfg, clock, procs))
    return ratios


def corun_factors(points: Sequence[Point], genes: int, cfg: RunConfig, threads: int, others: int
                  ) -> dict[str, float]:
    """Per trained model: how much slower its step runs with ``others`` helper processes fitting the same
    points beside this one than alone, the median of its points' paired ratios, at least 1 (module
    docstring). {} when ``others`` is 0, a helper fails or this OS cannot stop a process (the estimate then
    says so)."""
    trained = [p for p in points if p.lens]
    if others < 1 or not trained or not hasattr(signal, "SIGSTOP"):
        return {}
    ctx = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    try:
        for _ in range(others):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_helper, args=(trained, genes, cfg, threads, theirs), daemon=True)
            proc.start()
            theirs.close()   # the helper's end lives in the helper alone: if it dies, ours reads EOF at once
            pipes.append(mine)
            procs.append(proc)
        ratios = _side_by_side(trained, genes, cfg, threads, pipes, procs)
    except (OSError, EOFError, TimeoutError):
        return {}
    finally:
        _stop(pipes, procs)
    pooled: dict[str, list[float]] = {}
    for p, r in zip(trained, ratios, strict=True):
        pooled.setdefault(p.model, []).extend(r)
    return {m: max(1.0, statistics.median(r)) for m, r in pooled.items() if r}


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
