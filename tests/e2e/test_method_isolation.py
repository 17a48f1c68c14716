"""Bad plug-in methods in a real grid (issue 19): on a LocalCluster, one run with a well-behaved plug-in and
one with the same plug-in and six bad ones (an in-place edit, NaN predictions, a GPU out-of-memory error,
sys.exit, a hang, state kept across splits). Every method of the first run has, value for value, the same
scores in the second; each bad one fails alone with its reason in the store, failures.csv, benchmark.md and
the summary; the run exits 3 (some fits failed) and never hangs. In-process (--cluster none), sys.exit and
os._exit in a plug-in end only its own process."""

from __future__ import annotations

import csv
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

from harness.run import main
from tests.e2e import PYTHON, ROOT, load, tiny_args, tiny_cube

pytestmark = pytest.mark.timeout(600)

BAD = "tests.pertvae_core.bad_methods"
GOOD = "tests.pertvae_core.my_method:KnnShift"
# plug-in -> words of its reason
FAILING = {
    "in_place": "read-only (in predict(): the method changed its input in place",
    "nan_predict": "non-finite value(s)",
    "gpu_oom": "RuntimeError: CUDA out of memory",
    "exits": "predict() called sys.exit(3)",
    "sleeps": "timed out after 3 s",
}
SMALL = ("--models", "baselines", "--drugs", "drugA", "--n-repeats", "1", "--n-folds", "2")
DETAIL = ("score", "cell_score", "gene_score")


def _grid(cube, out, *methods: str) -> list[str]:
    return tiny_args(cube, out, *SMALL, "--fit-timeout", "3", "--method", *methods, workers=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cube = tiny_cube(tmp_path_factory)
    root = tmp_path_factory.mktemp("isolation")
    good, bad = root / "good", root / "bad"
    assert main(_grid(cube, good, GOOD)) == 0
    t0 = time.monotonic()
    bad_specs = [f"{BAD}:{c}" for c in ("InPlace", "NanPredict", "GpuOom", "Exits", "Sleeps", "Stateful")]
    rc = main(_grid(cube, bad, GOOD, *bad_specs))
    return good, bad, rc, time.monotonic() - t0


def test_bad_plugins_change_no_other_methods_scores(runs):
    good, bad, rc, seconds = runs
    assert rc == 3  # the grid finished, some fits failed
    assert seconds < 400  # two 3 s hangs, each stopped: the run does not wait for them
    a, b = load(good), load(bad)
    methods = [str(m) for m in a.method.values]
    assert methods == [str(m) for m in b.method.values][: len(methods)]
    for v in DETAIL:  # the good run's methods are the bad run's first ones
        np.testing.assert_array_equal(a[v].values, b[v].isel(method=slice(len(methods))).values, err_msg=v)
    sa = pd.read_csv(good / "scores.csv").drop(columns="partial")
    sb = pd.read_csv(bad / "scores.csv").drop(columns="partial")
    keep = sb[sb["method"].isin(methods)].reset_index(drop=True)
    pd.testing.assert_frame_equal(sa, keep)
    # state kept across splits does not leak: in its own process per fit, it is the identity
    st = b.score.sel(model="baselines", drug="drugA")
    stateful, identity = st.sel({"method": "stateful"}).values, st.sel({"method": "identity"}).values
    np.testing.assert_array_equal(stateful, identity)


def test_each_bad_plugin_fails_alone_with_its_reason_everywhere(runs):
    _, bad, _, _ = runs
    ds = load(bad)
    cell = ds.sel(model="baselines", drug="drugA", latent=3)
    assert (cell.status.values == "failed").all()
    ms = cell.method_status.to_pandas()   # [split, method]
    why = cell.method_reason.to_pandas()
    for m in ("identity", "train_mean", "mean_shift", "pca_latent_linear", "ridge_delta", "knn_shift",
              "stateful"):
        assert (ms[m] == "done").all() and (why[m] == "").all()
    for m, words in FAILING.items():
        assert (ms[m] == "failed").all() and all(words in r for r in why[m]), (m, list(why[m]))
        assert np.isnan(cell.score.sel({"method": m}).values).all()
    rows = list(csv.DictReader((bad / "failures.csv").open()))
    assert {r["method"] for r in rows} == set(FAILING) and len(rows) == 2 * len(FAILING)
    assert all(FAILING[r["method"]] in r["reason"] for r in rows)
    assert any("bad_methods.py" in r["traceback"] for r in rows if r["method"] == "gpu_oom")
    bench = (bad / "benchmark.md").read_text()
    summary = (bad / "summary.txt").read_text()
    for m, words in FAILING.items():
        line = next(x for x in bench.splitlines() if x.startswith(f"- {m}: "))
        assert "2 of 2 fits failed (drugA latent 3)" in line and words in line
        assert f"- {m}: 2 of 2 fits failed" in summary
    # the well-behaved methods are in the tables
    scores = pd.read_csv(bad / "scores.csv")
    assert set(scores["method"]) == {"identity", "train_mean", "mean_shift", "pca_latent_linear",
                                     "ridge_delta", "knn_shift", "stateful"}


def test_in_process_exit_and_crash_end_only_the_plugin(tmp_path_factory, tmp_path):
    """--cluster none: sys.exit(3) and os._exit(7) inside a plug-in; the driver writes its tables."""
    cube = tiny_cube(tmp_path_factory)
    out = tmp_path / "run"
    args = [*tiny_args(cube, out, *SMALL, "--method", f"{BAD}:Exits", f"{BAD}:HardExit",
                       cluster="none")]
    p = subprocess.run([PYTHON, "-m", "harness.run", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    assert "exits: predict() called sys.exit(3)" in p.stderr
    assert "hard_exit: its process exited with status 7" in p.stderr
    scores = pd.read_csv(out / "scores.csv")
    assert {"identity", "mean_shift", "ridge_delta"} <= set(scores["method"])
    assert (out / "benchmark.md").exists() and (out / "failures.csv").exists()


def test_the_run_line_says_the_failed_fits_failed_only_in_their_plugins(runs):
    # every fit of the bad run is "failed" (a plug-in failed in it) while every built-in in it scored
    from harness.info import describe_run

    _, bad, _, _ = runs
    first = describe_run(bad).splitlines()[0]
    assert first == (f"run {bad}: 0 of 2 fits done, 2 failed (all in some methods only: their other methods "
                     f"are scored), 0 not run (PARTIAL)")
