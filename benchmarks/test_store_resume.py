"""A no-op resume of a finished paper grid: where its seconds go (the goal: < 10 s in all; the report is
kept when the store is unchanged since it was rendered, harness.report_stamp).

A paper-sized store (benchmarks/test_store_throughput.py: 2,600 done fits of synthetic rows) is finished
once; then the steps harness.run takes when it resumes a finished grid are timed one by one, by CPU time
and wall time: ``open`` (ResultStore.open: metadata, fingerprint and coordinates checked), ``repair``
(the damage check), ``bookkeeping`` (counts, the remaining tasks, failures.csv's table), ``report_read``
(harness.report.open_results: the store read and its damage check), ``report`` (render_report, tables and
figures; its own computing is not the store's) and ``cube_fingerprint`` (datasets.cube on the paper
synthetic cube written to disk). ``store_s`` sums the store's steps (open, repair, bookkeeping,
report_read). ``PERTVAE_BENCH_STORE_DIR=DIR`` keeps (or reuses) the finished store in DIR/out. With
--benchmark-disable (the test suite) both tests run the paper grid with one repeat of its 5-fold CV (a fifth
of its fits): the same code paths, checked, in a fifth of the time; the figures come from --benchmark-only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks._data import load_average
from benchmarks.test_store_throughput import (
    open_paper_store,
    paper_config,
    paper_inputs,
    paper_tasks,
    write_grid,
)


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return round(time.process_time() - c0, 3), round(time.perf_counter() - w0, 3)


def _repeats(request: pytest.FixtureRequest) -> int | None:
    """The paper grid's repeats here: all of them (None) when benchmarking, else one (module docstring)."""
    return 1 if request.config.getoption("benchmark_disable") else None


def finished_store(base: Path, n_repeats: int | None = None) -> Path:
    """DIR/out holding a finished paper grid (written once)."""
    out = base / "out"
    if not (out / "results.zarr").is_dir():
        store = open_paper_store(out, n_repeats=n_repeats)
        write_grid(store, paper_tasks(n_repeats=n_repeats))
        store.close()
    return out


def resume_steps(out: Path, n_repeats: int | None = None) -> dict[str, tuple[float, float]]:
    """(CPU s, wall s) of each step of a no-op resume of the store in ``out`` (module docstring)."""
    from harness.grid import build_grid, remaining
    from harness.report import open_results
    from harness.store import ResultStore

    cfg = paper_config(n_repeats)
    names = paper_inputs()[0]
    got: dict[str, object] = {}
    steps: dict[str, tuple[float, float]] = {}
    steps["open"] = _timed(lambda: got.update(store=open_paper_store(out, n_repeats=n_repeats)))
    store: ResultStore = got["store"]  # type: ignore[assignment]
    steps["repair"] = _timed(lambda: got.update(repair=store.repair()))
    assert not got["repair"].cells and not got["repair"].metadata   # type: ignore[attr-defined]

    def bookkeeping() -> None:
        counts = store.counts()
        left = remaining(build_grid(cfg, names, splits_per_task=1), store.done_keys())
        assert counts["missing"] == 0 and not left
        store.to_dataframe()
        store.method_failures()

    steps["bookkeeping"] = _timed(bookkeeping)
    steps["report_read"] = _timed(lambda: open_results(out))
    return steps


def cube_fingerprint_seconds(base: Path) -> tuple[float, float]:
    """(CPU s, wall s) of datasets.cube.cube_fingerprint on the paper synthetic cube, written to disk."""
    from benchmarks._data import _cube
    from datasets.cube import cube_fingerprint, open_cube, write_cube

    path = base / "cube.zarr"
    if not path.is_dir():
        write_cube(_cube("paper"), path)
    return _timed(lambda: cube_fingerprint(open_cube(path, check=False)))


def test_noop_resume_of_a_finished_paper_grid(benchmark, request, tmp_path) -> None:
    from harness.report import render_report

    base = Path(os.environ.get("PERTVAE_BENCH_STORE_DIR") or tmp_path)
    repeats = _repeats(request)
    out = finished_store(base, repeats)
    load0 = load_average()

    def run() -> dict:
        steps = resume_steps(out, repeats)
        steps["report"] = _timed(lambda: render_report(out, with_figures=False))
        steps["cube_fingerprint"] = cube_fingerprint_seconds(base)
        return steps

    steps = benchmark.pedantic(run, rounds=1, iterations=1)
    store_keys = ("open", "repair", "bookkeeping", "report_read")
    info: dict[str, object] = {f"{k}_s": v[0] for k, v in steps.items()}
    info.update({f"{k}_wall_s": v[1] for k, v in steps.items()})
    info["store_s"] = round(sum(steps[k][0] for k in store_keys), 3)
    info["store_wall_s"] = round(sum(steps[k][1] for k in store_keys), 3)
    info["total_s"] = round(sum(v[0] for v in steps.values()), 3)
    info.update(load_average_before=load0, load_average=load_average(),
                headline=["store_s", "store_wall_s", "total_s", *(f"{k}_s" for k in steps), "load_average"])
    benchmark.extra_info.update(info)
    print(info)


def _run_args(cube: Path, out: Path, n_repeats: int | None) -> list[str]:
    return ["--preset", "paper", "--data", str(cube), "--out", str(out), "--cluster", "none",
            "--precision", "fp32", "--device", "cpu", *(["--n-repeats", str(n_repeats)] if n_repeats else [])]


def test_noop_resume_command(benchmark, request, tmp_path, monkeypatch) -> None:
    """The whole ``python -m harness.run`` resuming a finished paper grid (its own process): wall and CPU
    seconds. The grid is finished first by harness.run itself in this process, its tasks answered by
    synthetic rows (benchmarks/test_store_throughput.py) instead of fits. ``resume_*``: the report kept
    (harness.report_stamp: the store unchanged since its report); ``rerender_*``: the same resume with the
    stamp removed first, so the report is rendered again (as every resume did before the stamp)."""
    import resource
    import subprocess
    import sys

    import harness.run as run_mod
    from benchmarks.test_store_throughput import task_rows
    from harness.report_stamp import STAMP

    base = Path(os.environ.get("PERTVAE_BENCH_STORE_DIR") or tmp_path)
    cube_fingerprint_seconds(base)   # writes the paper cube
    out = base / "run"
    args = _run_args(base / "cube.zarr", out, _repeats(request))
    if not (out / "run.json").is_file():
        templates = paper_inputs()[3]
        monkeypatch.setattr(run_mod, "run_task", lambda task, cube, cfg: task_rows(task, templates))
        assert run_mod.main([*args, "--no-progress"]) == 0
    load0 = load_average()

    def resume(kind: str = "resume") -> dict:
        if kind == "rerender":
            (out / STAMP).unlink(missing_ok=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "harness.run", *args],
                           capture_output=True, text=True, check=False)
        wall = time.perf_counter() - w0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert p.returncode == 0 and "0 to run" in p.stdout, p.stdout + p.stderr
        assert ("the store is unchanged" in p.stdout) == (kind == "resume"), p.stdout
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return {f"{kind}_cpu_s": round(cpu, 3), f"{kind}_wall_s": round(wall, 3)}

    info = resume("rerender")   # renders and stamps the report
    info.update(benchmark.pedantic(resume, rounds=1, iterations=1))
    info.update(load_average_before=load0, load_average=load_average(),
                headline=["resume_cpu_s", "resume_wall_s", "rerender_cpu_s", "load_average"])
    benchmark.extra_info.update(info)
    print(info)
