"""A drug in 2 or 3 cell lines (review edge54): real L1000 drugs often are. The run refuses it with one
error line whose advice works: "lower --n-folds" sent a drug of 2 cell lines to a fold count that does not
exist (n_folds >= 2 leaves it no cell line to validate), and one of 3 at --n-folds 2 to a lower one, where
only 3 folds split it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.run import main

DRUG = "selumetinib"


def _cube(path: Path, n_cells: int) -> str:
    """A small demo cube with DRUG measured in ``n_cells`` cell lines."""
    from datasets.cube import write_cube
    from datasets.synthetic import generate

    ds = generate("demo", 0, n_genes=20, pool_size=12, max_cells=6, min_cells=6, n_baseline=12)
    e = ds["expression"].values
    k = list(ds["condition"].values).index(DRUG)
    e[np.flatnonzero(~np.isnan(e[:, k]).all(axis=(1, 2)))[n_cells:], k] = np.nan
    ds["expression"].values[:] = e
    write_cube(ds, path)
    return str(path)


@pytest.mark.parametrize(("n_cells", "folds", "advice"), [
    (2, 5, "(drop it with --drugs: cross-validation grouped by cell line needs 3 or more cell lines with "
           "pairs, one to test and two to train and validate, whatever --n-folds)"),
    (2, 2, "(drop it with --drugs: cross-validation grouped by cell line needs 3 or more"),
    (3, 5, "(drop it with --drugs or set --n-folds to 3)"),
    (3, 2, "(drop it with --drugs or set --n-folds to 3)"),
])
def test_the_advice_for_a_drug_of_few_cell_lines_works(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                         n_cells: int, folds: int, advice: str) -> None:
    cube = _cube(tmp_path / "cube.zarr", n_cells)
    args = ["--data", cube, "--out", str(tmp_path / "out"), "--cluster", "none", "--drugs", DRUG,
            "vorinostat", "--models", "baselines", "--latents-baselines", "2", "--n-folds", str(folds),
            "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: drug {DRUG!r} in {cube}: {n_cells} cell line") and advice in err
    assert err.count("\n") == 1 and "vorinostat" not in err
    if n_cells == 3:   # the advice holds: the drug is split at 3 folds
        args[args.index("--n-folds") + 1] = "3"
        assert main([*args, "--dry-run"]) in (0, 4)


def test_a_figure2_run_pools_a_drug_too_small_to_split_alone(tmp_path: Path) -> None:
    """Figure 2's models in the pooled scope fit on every drug's pairs together, split by cell line over
    them all; a drug's own splits are never used there, yet a drug in 2 cell lines stopped the run (and the
    dry run), so Figure 2 could only be drawn without its pairs."""
    from harness.report import load

    cube = _cube(tmp_path / "cube.zarr", 2)
    args = ["--data", cube, "--out", str(tmp_path / "out"), "--cluster", "none", "--drugs", DRUG,
            "vorinostat", "--models", "pca", "--latents-pca", "2", "--no-progress"]
    assert main([*args, "--dry-run"]) in (0, 4)
    assert main(args) == 0
    assert load(tmp_path / "out").fits.query("status == 'done'")["drug"].unique().tolist() == ["(pooled)"]


def test_repeats_of_a_drug_in_as_many_cell_lines_as_folds_count_as_its_test_sets(tmp_path: Path) -> None:
    """5 cell lines at 5 folds: each repeat tests each cell line alone, so the demo's 2 x 5 splits are 5 test
    sets. The store records them and comparisons.csv tests on them (n_test_sets), where every split counted
    as a test set of its own (the corrected t's degrees of freedom: 9, not 4)."""
    import json

    import xarray as xr

    from harness.report import load

    cube = _cube(tmp_path / "cube.zarr", 5)
    out = tmp_path / "out"
    assert main(["--data", cube, "--out", str(out), "--cluster", "none", "--drugs", DRUG, "--models",
                 "pertvae", "baselines", "--latents-pertvae", "2", "--latents-baselines", "2",
                 "--no-progress"]) == 0
    with xr.open_zarr(out / "results.zarr") as ds:
        labels = json.loads(ds.attrs["test_sets"])[DRUG]
    assert len(labels) == 2 and sorted(labels[0]) == sorted(labels[1]) == [0, 1, 2, 3, 4]
    comp = load(out).comparisons
    comp = comp[comp["kind"] == "versus"]
    assert not comp.empty and (comp["n_test_sets"] <= 5).all()
    assert (comp["n_splits"] > comp["n_test_sets"]).all()


def test_the_report_says_how_many_distinct_test_sets_the_splits_are(tmp_path: Path) -> None:
    """The demo's 2 x 5 splits of a drug in 5 cell lines are 5 test sets: Table 1 said '10 splits (each
    holds out a different set of cell lines)' and the verdict '(8 splits)', and no WARNING said that the
    p-values rest on 5 (or 4: a cell line with one control has no change score)."""
    cube = _cube(tmp_path / "cube.zarr", 5)
    out = tmp_path / "out"
    assert main(["--data", cube, "--out", str(out), "--cluster", "none", "--drugs", DRUG, "--models",
                 "pertvae", "baselines", "--latents-pertvae", "2", "--latents-baselines", "2",
                 "--no-progress"]) == 0
    table1 = (out / "table1.md").read_text()
    assert table1.startswith("WARNING: p-values rest on fewer than 10 distinct test sets for selumetinib "
                             "(10 splits, 5 distinct test sets)")
    assert "each holds out a different set" not in table1
    assert f"{DRUG} at latent 2: 10 splits, 5 distinct test sets." in table1
    bench = (out / "benchmark.md").read_text()
    row = next(line for line in bench.splitlines() if line.startswith(f"| {DRUG} | yes |"))
    n, g = map(int, re.search(r"\((\d+) splits, (\d+) distinct test sets\)\. \|$", row).groups())
    assert g in (4, 5) and n == 2 * g
    assert f"With {n} splits ({g} distinct test sets) the paired Wilcoxon" in bench


def test_a_drug_trained_on_one_cell_line_is_warned_of(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """3 cell lines at 3 folds (the advice above): every split tests one, validates one and trains on the
    third, so its model, standardization and baselines come from one cell line's replicates, and the 2 x 3
    splits are 3 test sets. The dry run and the run said nothing of either; then a resume did not."""
    cube = _cube(tmp_path / "cube.zarr", 3)
    args = ["--data", cube, "--out", str(tmp_path / "out"), "--cluster", "none", "--drugs", DRUG, "--models",
            "baselines", "--latents-baselines", "2", "--n-folds", "3", "--no-progress"]
    one = f"warning: drug {DRUG!r}: 6 of 6 splits train on a single cell line (3 cell lines"
    sets = (f"note: drug {DRUG!r}: its 6 splits are 3 distinct test sets (3 cell lines: every repeat holds "
            "out the same cell lines again); its p-values count each test set once, so they rest on 3, and "
            "more repeats add none")
    assert main([*args, "--dry-run"]) in (0, 4)
    err = capsys.readouterr().err
    assert one in err and sets in err
    for _ in ("new", "resumed"):
        assert main(args) == 0
        out = capsys.readouterr().out
        assert out.count(one) == out.count(sets) == 1, out
        assert out.index(sets) < out.index("fits planned")


def test_unscored_line_does_not_promise_new_test_sets_from_repeats():
    """Splits without change scores: 'run more repeats for more scored splits' is true to the letter for a
    drug in as many cell lines as folds, but its repeats hold out the same single-control cell line again,
    so they add no scored test set (the few-cell-lines review): the advice says where repeats help."""
    from harness.change_splits import unscored_line

    rows = [("d", 10, r, f, "pertvae", m, 0.5) for r in range(2) for f in range(5)
            for m in (["rho_pred_pert"] + (["delta_pearson"] if f else []))]
    scores = pd.DataFrame(rows, columns=["drug", "latent", "repeat", "fold", "method", "metric", "value"])
    line = unscored_line(scores)
    assert line.startswith("Splits without delta_pearson or any other change metric: d 2 of 10;")
    assert "new test sets only where a drug has more cell lines than folds" in line
