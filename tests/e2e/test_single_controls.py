"""Cell lines with a single control replicate (review edge54): the change metrics need two or more (the
model's input and a separate reference), so such a test cell line has no delta_pearson. A run where every
cell line had one control said "No scores in this run." beside a Table 1 of scores; a drug with one such
cell line had fewer splits ("fewer on selumetinib (4)") and no word why. Real runs (in-process) on a small
synthetic cube whose controls are edited."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.report import load
from harness.run import main

DRUG = "selumetinib"


def _cube(path: Path, controls: int | None, singles: int = 1) -> str:
    """A small demo cube; every cell line has ``controls`` control replicates (None: the drug's first
    ``singles`` cell lines have one, every other cell line at least two) and DRUG 5 cell lines."""
    from datasets.cube import write_cube
    from datasets.synthetic import generate

    ds = generate("demo", 0, n_genes=30, pool_size=12, max_cells=5, min_cells=5, n_baseline=12)
    e = ds["expression"].values
    ctrl = list(ds["condition"].values).index("control")
    drug = list(ds["condition"].values).index(DRUG)
    measured = ~np.isnan(e).any(-1)   # [cell, condition, replicate]
    fill = np.nan_to_num(e[:, ctrl, :1]) + np.random.default_rng(1).normal(0, 0.25, e[:, ctrl].shape)
    e[:, ctrl] = np.where(measured[:, ctrl, :, None], e[:, ctrl], fill)   # every replicate measured
    first = np.flatnonzero(measured[:, drug].any(-1) & measured[:, ctrl].any(-1))[:singles]
    for i in range(e.shape[0]):
        if controls is not None or i in first:
            e[i, ctrl, (controls or 1):] = np.nan
    ds["expression"].values[:] = e
    write_cube(ds, path)
    return str(path)


def _run(tmp_path: Path, controls: int | None, singles: int = 1) -> Path:
    out = tmp_path / "out"
    cube = _cube(tmp_path / "cube.zarr", controls, singles)
    args = ["--data", cube, "--out", str(out), "--cluster", "none", "--drugs", DRUG, "--models", "pertvae",
            "baselines", "--latents-pertvae", "2", "--latents-baselines", "2", "--n-repeats", "1",
            "--n-folds", "5", "--hidden", "8", "8", "--context", "4", "--iaf-steps", "1", "--iaf-hidden", "4",
            "--max-epochs", "3", "--patience", "2", "--mc-samples", "1", "--no-progress"]
    assert main(args) == 0
    return out


def test_a_run_with_one_control_everywhere_says_why_it_has_no_delta_pearson(tmp_path: Path) -> None:
    out = _run(tmp_path, controls=1)
    scores = load(out).scores
    assert not scores.empty and "delta_pearson" not in set(scores["metric"])
    assert (out / "table1.md").exists()
    for text in ((out / "summary.txt").read_text(), (out / "benchmark.md").read_text()):
        assert "No scores in this run" not in text
        assert ("No delta_pearson in this run: in every split each test cell line has a single usable "
                "control replicate") in text
        assert "are in table1.md and scores.csv; add control replicates to score the change." in text


def test_splits_whose_test_cell_line_has_one_control_are_named_with_the_reason(tmp_path: Path) -> None:
    out = _run(tmp_path, controls=None)
    scores = load(out).scores
    split = scores[["repeat", "fold"]].apply(tuple, axis=1)
    primary = set(split[scores["metric"] == "delta_pearson"])
    assert len(set(split)) == 5 and len(primary) == 4   # 5 cell lines, one per fold; one has one control
    text = (out / "benchmark.md").read_text()
    assert ("Splits without delta_pearson or any other change metric: selumetinib 1 of 5; in those splits "
            "each test cell line has a single usable control replicate") in text
    comp = pd.read_csv(out / "comparisons.csv")
    assert (comp.loc[(comp["metric"] == "delta_pearson") & (comp["kind"] == "versus"), "n_splits"] == 4).all()


def test_a_comparison_over_one_split_prints_no_nan_interval(tmp_path: Path) -> None:
    """Four of the five cell lines with one control: delta_pearson on one split. The best method's row read
    "-0.056 [+nan, +nan], behind on 1 of 1 splits"; one split gives no interval, and it says so."""
    out = _run(tmp_path, controls=None, singles=4)
    text = (out / "benchmark.md").read_text()
    assert "selumetinib 4 of 5" in text and "[no interval: 1 split], behind on 1 of 1 splits" in text
    assert "nan" not in text.lower().replace("a nan gene", "")
    from harness import figures
    from harness.results import load_results

    res = load(out)
    fig = figures.plot_drugs(load_results(out), res.scores, res.comparisons, partial=False)
    assert fig.axes[0].get_title() == f"{DRUG} (1 split)"   # drugs.png said "(1 splits)"
