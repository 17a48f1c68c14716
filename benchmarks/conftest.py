"""Shared by the benchmarks: the ``gpu`` marker, pytest-benchmark's timer, and, at the end of the run, each
benchmark's headline figures (extra_info entries such as gemm_fraction, speedups, ratios, savings, rates)
printed in the terminal.

pytest-benchmark's own statistics time by this process's CPU time (``--benchmark-timer time.process_time``
unless another timer is given): wall-clock time lies on a shared machine (benchmarks/_data.py).

A benchmark may name its headline entries in ``extra_info["headline"]`` (a list of keys); otherwise the
numeric entries whose names contain one of ``HEADLINE_WORDS`` are shown, or failing those its timings (names
ending in ``_s``).
"""

from __future__ import annotations

import numbers

import pytest
import torch

HEADLINE_WORDS = ("fraction", "speedup", "ratio", "saved", "per_s", "per_epoch", "efficiency", "epochs",
                  "_over_")
_RESULTS = pytest.StashKey[list]()


CPU_TIMER = "time.process_time"


def pytest_configure(config: pytest.Config) -> None:
    from pytest_benchmark.timers import default_timer
    from pytest_benchmark.utils import NameWrapper

    if getattr(config.option, "benchmark_timer", None) == str(NameWrapper(default_timer)):
        config.option.benchmark_timer = CPU_TIMER
    config.addinivalue_line(
        "markers", "gpu: GPU benchmarks (make bench-gpu); without CUDA they skip, unless "
        "PERTVAE_BENCH_GPU_ON_CPU=1 or --benchmark-disable runs them on the CPU at tiny sizes")
    config.stash[_RESULTS] = []


@pytest.fixture(autouse=True)
def record_benchmark_extra_info(request: pytest.FixtureRequest):
    """Keep each benchmark fixture's extra_info for the terminal summary."""
    bm = request.getfixturevalue("benchmark") if "benchmark" in request.fixturenames else None
    yield
    if bm is not None and bm.extra_info:
        request.config.stash[_RESULTS].append((request.node.nodeid, dict(bm.extra_info)))


def headline(extra_info: dict) -> dict:
    """The headline entries of one benchmark's extra_info (module docstring)."""
    keys = extra_info.get("headline")
    if keys is None:
        num = [k for k, v in extra_info.items() if isinstance(v, numbers.Real) and not isinstance(v, bool)]
        keys = [k for k in num if any(w in k for w in HEADLINE_WORDS)] or [k for k in num if k.endswith("_s")]
    return {k: extra_info[k] for k in keys if k in extra_info}


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    results = config.stash.get(_RESULTS, [])
    rows = [(nid, headline(info)) for nid, info in results]
    rows = [(nid, h) for nid, h in rows if h]
    if not rows:
        return
    terminalreporter.write_sep("-", "benchmark headline figures (all: extra_info, --benchmark-json)")
    for nid, h in rows:
        terminalreporter.write_line(f"{nid.split('::', 1)[-1]} [{nid.split('::', 1)[0]}]")
        terminalreporter.write_line("    " + ", ".join(f"{k}={_fmt(v)}" for k, v in h.items()))


@pytest.fixture
def one_thread():
    """Torch at one thread for a benchmark (a worker's setting), restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
