"""Library noise goes to OUT/run.log, not the terminal (issue 10 #18): a real ``python -m harness.run`` on a
2-worker LocalCluster whose workers print and warn as they start, emit a Python warning, a
``distributed.sizeof`` warning and a failing fit (injected by a worker preload) prints only progress,
results and the harness's own messages; run.log has them all, timestamped, with the failed fit's
traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.e2e import PYTHON, ROOT, tiny_args, tiny_cube

pytestmark = pytest.mark.timeout(300)

# Worker preload (distributed.worker.preload): every PCA evaluation warns through Python's warnings and
# distributed's sizeof logger, then raises.
PRELOAD = '''
import logging, sys, warnings
import pertvae_core.api as api

# as the worker process starts, before any plugin runs
print("worker startup noise on stderr", file=sys.stderr, flush=True)
warnings.warn("worker startup warning", UserWarning)


def evaluate_pca(data, latent, standardize="per_source"):
    warnings.warn("injected library warning", UserWarning)
    logging.getLogger("distributed.sizeof").warning("Sizeof calculation failed (injected)")
    raise RuntimeError("injected fault in evaluate_pca")


api.evaluate_pca = api.evaluate_pca_latents = evaluate_pca
'''

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", re.M)


def test_library_noise_and_fit_tracebacks_go_to_run_log(tmp_path_factory, tmp_path):
    cube = tiny_cube(tmp_path_factory)
    preload = tmp_path / "fault_preload.py"
    preload.write_text(PRELOAD)
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1", DASK_DISTRIBUTED__WORKER__PRELOAD=json.dumps([str(preload)]))
    args = tiny_args(cube, out, "--models", "pca", "baselines", "--latents-pca", "2", "--n-repeats", "1",
                     "--retries", "0", workers=2)
    r = subprocess.run([PYTHON, "-m", "harness.run", *args], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=280)
    assert r.returncode == 3, r.stdout + r.stderr   # some fits failed (documented exit code)
    terminal = r.stdout + r.stderr
    for noise in ("Traceback", "injected library warning", "Sizeof", "UserWarning", "distributed.",
                  "tornado", "WARNING", "worker startup"):
        assert noise not in terminal, (noise, terminal)
    assert "fit(s) failed" in r.stderr and "injected fault in evaluate_pca" in r.stderr   # our summary
    assert "done:" in r.stdout

    log = (out / "run.log").read_text()
    assert STAMP.match(log), log[:300]
    for line in ("worker startup noise on stderr", "worker startup warning",
                 "injected library warning", "Sizeof calculation failed (injected)",
                 "RuntimeError: injected fault in evaluate_pca", "Traceback (most recent call last)"):
        assert line in log, (line, log)
    # each record is timestamped: the warnings' and the failed task's lines among them
    stamped = [x for x in log.splitlines() if STAMP.match(x)]
    assert any("injected library warning" in x for x in stamped)
    assert any("task pca-" in x and "failed" in x for x in stamped), log
