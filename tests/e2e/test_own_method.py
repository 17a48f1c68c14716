"""A user's own method (defined in the test suite, loaded by import path) in a real grid on a LocalCluster,
with --save-predictions: same splits, seeds, scores, store, resume and report as the built-in methods."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from harness.run import main
from harness.tasks import drug_data, drug_splits, split_data
from pertvae_core.evaluation import score_method
from tests.e2e import load, tiny_args, tiny_cube
from tests.pertvae_core.my_method import KnnShift

pytestmark = pytest.mark.timeout(300)

SPEC = "tests.pertvae_core.my_method:KnnShift"
ARGS = ("--models", "baselines", "--method", SPEC, "--save-predictions")


def test_own_method_runs_in_the_grid_and_predictions_are_saved(tmp_path_factory, tmp_path, capsys):
    cube = tiny_cube(tmp_path_factory)
    out = tmp_path / "run"
    assert main(tiny_args(cube, out, *ARGS, workers=2)) == 0
    ds = load(out)
    assert "knn_shift" in list(ds.method.values)
    sc = ds.score.sel({"model": "baselines", "method": "knn_shift", "drug": ["drugA", "drugB"]})
    assert np.isfinite(sc.sel(metric="delta_pearson").values).all()
    # the same number as the method scored directly on the same split
    from harness.config import parse_args

    cfg = parse_args(tiny_args(cube, out, *ARGS))
    dd = drug_data(str(cube), "drugA", cfg)
    sp = split_data(dd, drug_splits(dd, cfg)[3])
    want = score_method(sp, KnnShift().fit(sp).predict)["delta_pearson"]
    got = ds.score.sel({"model": "baselines", "method": "knn_shift", "drug": "drugA", "latent": 3, "split": 3,
                        "metric": "delta_pearson"}).item()
    assert got == pytest.approx(want, rel=1e-12)
    scores = pd.read_csv(out / "scores.csv")
    mine = scores[(scores["method"] == "knn_shift") & (scores["metric"] == "delta_pearson")]
    assert len(mine) == 2 * 6 and np.isfinite(mine["value"]).all()
    # predictions: one file per (method, drug); one row per test pair of every split
    f = out / "predictions" / "knn_shift" / "drugA.h5ad"
    a = ad.read_h5ad(f)
    n_pairs = len(dd.x1)
    assert a.n_obs == n_pairs * 2   # each pair is tested once per repeat (2 repeats)
    assert list(a.var_names) == [str(g) for g in ds.gene.values]
    assert set(a.obs["split"].astype(int)) == set(range(6)) and set(a.obs["kind"]) == {"prediction"}
    rows = a.obs["split"].astype(int) == 3
    np.testing.assert_allclose(a.X[rows.to_numpy()], KnnShift().fit(sp).predict(sp.x1_test), rtol=1e-6)
    assert (out / "predictions" / "identity" / "drugB.h5ad").exists()
    # resume: nothing recomputed, the predictions stay
    before = f.stat().st_mtime_ns
    assert main(tiny_args(cube, out, *ARGS, workers=2)) == 0
    assert "0 to run" in capsys.readouterr().out and f.stat().st_mtime_ns == before


def test_bad_or_clashing_method_is_one_error(tmp_path_factory, tmp_path, capsys):
    cube = tiny_cube(tmp_path_factory)
    for spec, words in (("tests.pertvae_core.my_method:Nope", "Nope"), ("no_such_pkg.mod:X", "no_such_pkg"),
                        ("tests.pertvae_core.my_method:NoPredict", "predict")):
        out = tmp_path / spec.replace(":", "_")
        assert main(tiny_args(cube, out, "--models", "baselines", "--method", spec)) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --method") and words in err, err
        assert not (out / "results.zarr").exists()
    assert main(tiny_args(cube, tmp_path / "x", "--models", "pertvae", "--method", SPEC)) == 2
    assert "add baselines to --models" in capsys.readouterr().err
