"""``python -m harness.run``: run the benchmark grid on a Dask cluster, stream results into the store, report.

    python -m harness.run                                   # demo preset, synthetic cube, LocalCluster
    python -m harness.run --preset paper --data cube.zarr --cluster slurm --jobs 20 --gpus-per-job 1
    python -m harness.run --help                            # every setting

Rerunning the same command resumes: fits already "done" in OUT/results.zarr are not recomputed, failed ones
are retried; a different config or dataset in the same OUT is refused (exit 2).
Exit status: 0 = grid finished (failed fits, if any, are recorded with their reason), 1 = report failed,
2 = bad input (config, data, store mismatch), 130 = interrupted (rerun to resume).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import ConfigError, RunConfig, execution_settings, parse_args, science_key
from harness.grid import Task, build_grid, remaining
from harness.store import ResultStore, StoreMismatchError, versions
from harness.tasks import _drug, drug_splits, failed_rows, paired_cell_lines, run_task


class RunError(ValueError):
    """Bad input found while preparing the run (message says what to do)."""


def _say(msg: str) -> None:
    print(msg, flush=True)


def prepare_cube(cfg: RunConfig, out: Path) -> Path:
    """The cube path: ``cfg.data``, or the preset's synthetic cube generated once into OUT/data.zarr."""
    if cfg.data:
        p = Path(cfg.data)
        if not p.exists():
            raise RunError(f"--data {p}: no such cube (build one with python -m datasets.build, or leave "
                           f"--data unset to use the embedded synthetic cube)")
        return p
    from datasets.cube import write_cube
    from datasets.synthetic import generate

    path = out / "data.zarr"
    marker = out / "data.json"
    want = {"generator": "datasets.synthetic.generate", "preset": cfg.preset, "seed": cfg.data_seed}
    if path.exists():
        have = json.loads(marker.read_text()) if marker.exists() else None
        if have is not None and have != want:
            raise RunError(f"{path} was generated with {have}, this run asks for {want}; use another --out "
                           f"or delete {path}")
        return path
    _say(f"generating the synthetic '{cfg.preset}' cube (seed {cfg.data_seed}) into {path}")
    out.mkdir(parents=True, exist_ok=True)
    write_cube(generate(preset=cfg.preset, seed=cfg.data_seed), path)
    marker.write_text(json.dumps(want))
    return path


def select_drugs(cfg: RunConfig, available: Sequence[str], cube_path: Path) -> list[str]:
    """``cfg.drugs`` checked against the cube (in the given order), or all of the cube's drugs."""
    if cfg.drugs is None:
        return list(available)
    unknown = [d for d in cfg.drugs if d not in available]
    if unknown:
        raise RunError(f"--drugs: {', '.join(unknown)} not in cube {cube_path} "
                       f"(it has: {', '.join(available)})")
    return list(cfg.drugs)


def drug_meta(cfg: RunConfig, cube_path: Path, drug_names: Sequence[str]) -> tuple[dict, dict, dict, dict]:
    """Per drug: paired cell lines; [n_train, n_test] cell lines averaged over the splits; the noise ceiling
    (pertvae_core.evaluation.noise_ceiling, from all of the drug's replicates); the pairing rule.

    n_train counts the cell lines actually trained on (validation cell lines excluded): the corrected
    resampled t-test (Nadeau & Bengio) takes the sizes of the data a model is fitted on and tested on.
    """
    from pertvae_core.evaluation import noise_ceiling

    n_cell: dict[str, int] = {}
    n_tt: dict[str, list[float]] = {}
    ceiling: dict[str, dict] = {}
    pairing: dict[str, str] = {}
    for d in drug_names:
        dd = _drug(str(cube_path), d)
        n = len(paired_cell_lines(dd))
        try:
            splits = drug_splits(dd, cfg)
        except ValueError as e:
            raise RunError(f"drug {d!r} in {cube_path}: {e} (drop it with --drugs or lower --n-folds)") from e
        n_cell[d] = n
        n_test = sum(len(s.test_cell_lines) for s in splits) / len(splits)
        n_train = sum(len(s.train_cell_lines) for s in splits) / len(splits)
        n_tt[d] = [float(n_train), float(n_test)]
        x2_cell = np.asarray(dd.pair_cell_line).astype(str)
        value, n_used, why = noise_ceiling(dd.xc, _distinct_post(dd), dd.control_cell_line,
                                           x2_cell[_first_rows(dd.x2)])
        ceiling[d] = {"ceiling_delta_pearson": value, "n_cell_lines": n_used, "reason": why}
        pairing[d] = str(dd.pairing)
    return n_cell, n_tt, ceiling, pairing


def _first_rows(x: np.ndarray) -> np.ndarray:
    """Indices of the distinct rows of ``x`` (first occurrences, in order)."""
    _, first = np.unique(np.asarray(x), axis=0, return_index=True)
    return np.sort(first)


def _distinct_post(dd: Any) -> np.ndarray:
    """The drug's post-treatment replicates (each once, though a pairing rule may use one twice)."""
    return np.asarray(dd.x2)[_first_rows(dd.x2)]


def _ground_truth(cube: Any, drug_names: Sequence[str]) -> dict:
    """The synthetic cube's ground truth {drug: {...}} for the run's drugs ({} for real data)."""
    raw = cube.attrs.get("ground_truth")
    try:
        truth = json.loads(raw) if isinstance(raw, str) else {}
    except json.JSONDecodeError:
        return {}
    return {d: truth[d] for d in drug_names if isinstance(truth, dict) and d in truth}


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text[:2000]


class _Progress:
    """tqdm bar over fits: done / total, failed count, ETA."""

    def __init__(self, total: int, initial: int, enabled: bool):
        from tqdm import tqdm

        self.failed = 0
        self.bar = tqdm(total=total, initial=initial, unit="fit", disable=not enabled, dynamic_ncols=True,
                        desc="fits", smoothing=0.1)

    def update(self, rows: list[dict]) -> None:
        nf = sum(r["status"] == "failed" for r in rows)
        self.failed += nf
        self.bar.set_postfix(failed=self.failed, refresh=False)
        self.bar.update(len(rows))

    def close(self) -> None:
        self.bar.close()


def _run_in_process(tasks: Sequence[Task], cube_path: Path, cfg: RunConfig, store: ResultStore,
                    prog: _Progress) -> None:
    for t in tasks:
        try:
            rows = run_task(t, str(cube_path), cfg)
        except Exception as e:  # a task that raises fails its fits; the grid goes on
            rows = failed_rows(t, _reason(e))
        store.write(rows)
        prog.update(rows)


def _run_on_cluster(tasks: Sequence[Task], cube_path: Path, cfg: RunConfig, store: ResultStore,
                    prog: _Progress, handle: Any) -> None:
    from distributed import as_completed

    client = handle.client
    token = datetime.now(UTC).strftime("%H%M%S%f")
    futures = {}
    for t in tasks:
        fut = client.submit(run_task, t, str(cube_path), cfg, resources=handle.resources,
                            retries=cfg.retries, pure=False, key=f"{t.key}-{token}")
        futures[fut] = t
    for fut in as_completed(list(futures)):
        t = futures.pop(fut)
        try:
            rows = fut.result()
        except Exception as e:  # raised in the task after all retries, KilledWorker, cancelled
            rows = failed_rows(t, _reason(e))
        store.write(rows)
        prog.update(rows)
        fut.release()


def _dashboard_hint(cfg: RunConfig, link: str | None) -> None:
    if not link:
        return
    _say(f"Dask dashboard: {link}")
    if cfg.cluster == "slurm":
        from urllib.parse import urlparse

        u = urlparse(link)
        port = u.port or 8787
        _say(f"  from your machine: ssh -N -L {port}:{u.hostname}:{port} <login-node>, then open "
             f"http://localhost:{port}{u.path}")


def run(cfg: RunConfig) -> int:
    """Run the grid for ``cfg``; see the module docstring for exit codes."""
    out = cfg.out_dir
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    try:
        from datasets.cube import CubeError, cube_fingerprint, drugs, open_cube
    except ImportError as e:  # pragma: no cover - package layout problem
        _say(f"error: cannot import datasets: {e}")
        return 2
    try:
        cube_path = prepare_cube(cfg, out)
        cube = open_cube(cube_path)
        drug_names = select_drugs(cfg, drugs(cube), cube_path)
        n_cell, n_tt, ceiling, pairing = drug_meta(cfg, cube_path, drug_names)
        store = ResultStore.open(out, cfg, cube_fingerprint(cube), drugs=drug_names, n_cell_lines=n_cell,
                                 n_train_test=n_tt,
                                 extra_attrs={"ceiling": ceiling, "pairing": pairing,
                                              "ground_truth": _ground_truth(cube, drug_names)})
    except (RunError, StoreMismatchError, ConfigError, CubeError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2

    spt = cfg.resolved_splits_per_task()
    full = build_grid(cfg, drug_names, splits_per_task=spt)
    before = store.counts()
    tasks = remaining(full, store.done_keys())
    n_fits = sum(len(t.splits) for t in tasks)
    _say(f"{out}: {before['planned']} fits planned, {before['done']} already done, {n_fits} to run in "
         f"{len(tasks)} tasks ({spt} split(s) per task) on cluster '{cfg.cluster}'")

    interrupted = False
    if tasks:
        cluster_error: type[Exception] = RunError
        prog = _Progress(total=before["planned"], initial=before["done"], enabled=cfg.progress)
        try:
            if cfg.cluster == "none":
                _run_in_process(tasks, cube_path, cfg, store, prog)
            else:
                import harness.cluster as cluster_mod

                cluster_error = getattr(cluster_mod, "ClusterError", RunError)
                with cluster_mod.open_cluster(cfg) as handle:
                    _dashboard_hint(cfg, handle.dashboard_link)
                    report_ctx: Any = contextlib.nullcontext()
                    if cfg.performance_report:
                        from distributed import performance_report

                        Path(cfg.performance_report).parent.mkdir(parents=True, exist_ok=True)
                        report_ctx = performance_report(filename=str(cfg.performance_report))
                    with report_ctx:
                        _run_on_cluster(tasks, cube_path, cfg, store, prog, handle)
        except KeyboardInterrupt:
            interrupted = True
        except cluster_error as e:
            prog.close()
            print(f"error: {e}", file=sys.stderr, flush=True)
            return 2
        finally:
            prog.close()
    counts = store.counts()
    seconds = time.perf_counter() - t0
    run_info = {
        "config": {"science": science_key(cfg), "execution": execution_settings(cfg)},
        "cube": str(cube_path),
        "fingerprint": store.attrs.get("fingerprint"),
        "versions": versions(),
        "timings": {"started": started.isoformat(), "finished": datetime.now(UTC).isoformat(),
                    "seconds": round(seconds, 3), "fits_run": n_fits, "tasks_run": len(tasks)},
        "counts": counts,
        "interrupted": interrupted,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "run.json").write_text(json.dumps(run_info, indent=2, sort_keys=True))
    if interrupted:
        _say(f"interrupted: {counts['done']} of {counts['planned']} fits are saved in {store.path}; "
             f"run the same command again to resume")
        return 130
    _say(f"done: {counts['done']} fits done, {counts['failed']} failed, {counts['missing']} missing "
         f"({seconds:.1f} s)")
    if counts["failed"]:
        _say("failed fits keep their reason in results.zarr (status/reason); rerun to retry them")
    try:
        from harness.report import render_report

        render_report(out)
    except Exception as e:
        print(f"error: the report failed: {_reason(e)} (results are safe in {store.path}; "
              f"retry with python -m harness.report {out})", file=sys.stderr, flush=True)
        return 1
    for name in ("table1.md", "benchmark.md"):
        if (out / name).exists():
            _say((out / name).read_text())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: parse flags (see --help) and run."""
    try:
        cfg = parse_args(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
