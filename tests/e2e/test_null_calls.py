"""No structural false calls: on drugs that change nothing, the report calls no comparison on the metrics
of the change beyond the nominal rate, and methods that ignore the cell line sit at chance.

A real run (in-process) of PertVAE and every baseline on six null drugs of the demo's synthetic cube (known
truth: no effect), 2 x 5 cross-validation. Every (drug, method) comparison of PertVAE on every change metric
is a test of a true null hypothesis; Benjamini-Hochberg over each family then keeps the chance of any call
in a family at or below 5%. The old de_sign_top50 (a prediction of no change scored 0 instead of its chance
0.5) called PertVAE better than identity on every null drug.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.report import load
from harness.run import main
from pertvae_core.evaluation import ABLATED, CHANGE_METRICS

NULL_DRUGS = ("olaparib", "navitoclax", "tipifarnib", "GDC-0941", "gefitinib", "NU-7441")


@pytest.fixture(scope="module")
def null_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from datasets.cube import write_cube
    from datasets.synthetic import generate

    root = tmp_path_factory.mktemp("null")
    cube = generate(preset="demo", seed=0)
    truth = __import__("json").loads(cube.attrs["ground_truth"])
    assert all(not truth[d]["effective"] for d in NULL_DRUGS)  # the known answer: no effect
    write_cube(cube, root / "cube.zarr")
    out = root / "out"
    args = ["--data", str(root / "cube.zarr"), "--out", str(out), "--cluster", "none", "--drugs", *NULL_DRUGS,
            "--models", "pertvae", "baselines", "--latents-pertvae", "4", "--latents-baselines", "4",
            "--n-repeats", "2", "--n-folds", "5", "--splits-per-task", "10", "--hidden", "16", "8",
            "--context", "8", "--iaf-steps", "1", "--iaf-hidden", "8", "--max-epochs", "12",
            "--patience", "4", "--mc-samples", "2", "--no-progress"]
    assert main(args) == 0
    return out


def test_no_change_metric_calls_on_null_drugs(null_run: Path) -> None:
    res = load(null_run)
    comp = res.comparisons
    metrics = [m for m in CHANGE_METRICS if m not in ABLATED.values()]
    vs = comp[(comp["kind"] == "versus") & comp["metric"].isin(metrics)]
    assert set(vs["drug"]) == set(NULL_DRUGS) and len(vs) == len(NULL_DRUGS) * 6 * len(metrics)
    called = vs[(vs["q_bh"] < 0.05) | (vs["q_bh_worse"] < 0.05)]
    # under the null, BH keeps P(any call in a family) <= 0.05: at most one stray call in the 4 families
    assert len(called) <= 1, called[["drug", "metric", "method", "q_bh", "q_bh_worse"]]
    # and none is structural: the same (metric, method) is never called on more than one null drug
    assert (called.groupby(["metric", "method"]).size() <= 1).all()


def test_methods_that_ignore_the_cell_line_sit_at_chance(null_run: Path) -> None:
    res = load(null_run)
    s = res.scores
    ms = s[s["method"] == "mean_shift"].pivot_table(index=["drug", "repeat", "fold"], columns="metric",
                                                     values="value")
    # one predicted change for every cell line: retrieval is 0.5 and the ablation changes nothing (a split
    # whose test fold has a single cell line with two or more controls has no retrieval: nothing to rank)
    assert ms["retrieval"].notna().mean() > 0.9
    np.testing.assert_allclose(ms["retrieval"].dropna(), 0.5, atol=1e-12)
    np.testing.assert_allclose(ms["delta_pearson_ablated"], ms["delta_pearson"], atol=1e-9)
    ident = s[s["method"] == "identity"].pivot_table(index=["drug", "repeat", "fold"], columns="metric",
                                                     values="value")
    chance = {"delta_pearson": 0.0, "de_sign_top50": 0.5, "retrieval": 0.5, "delta_pearson_ablated": 0.0}
    for metric, value in chance.items():
        np.testing.assert_array_equal(ident[metric].dropna(), value)
    gain = res.comparisons.query("kind == 'cell_gain' and method == 'mean_shift (ablated)'")
    assert len(gain) == len(NULL_DRUGS) and np.allclose(gain["mean_diff"], 0.0, atol=1e-9)
    assert (gain["q_bh"] >= 0.05).all()
