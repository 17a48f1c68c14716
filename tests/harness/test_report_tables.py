"""harness.report's tidy tables (load, cell_lines.csv, genes.csv), legends, few-splits warnings, drugs.png."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from harness import benchmark as bench
from harness.report import ReportError, load, render_report
from tests.harness.test_report import DRUGS, LATENTS, METHODS, METRICS, MODELS, make_store

CELL_LINES = ["A549", "MCF7", "PC3", "HT29", "VCAP", "HA1E"]
GENES = [str(g) for g in (5290, 7157, 1956, 3845, 4193, 672, 675, 2064)]
GENE_METRICS = ("n_cells", "sum_predicted", "sum_observed", "sum_predicted2", "sum_observed2", "sum_cross")
MODEL_OF = {m: ("pertvae" if m.startswith("pertvae") else "baselines") for m in METHODS}


def _tested(split: int) -> list[int]:
    """The cell lines split (repeat r, fold f) tests: those with (c + r) % 5 == f, so every repeat tests
    each cell line once (fold (r % 5) holds two)."""
    r, f = divmod(split, 5)
    return [c for c in range(len(CELL_LINES)) if (c + r) % 5 == f]


def make_detail_store(out: Path, seed: int = 1) -> tuple[xr.Dataset, np.ndarray, np.ndarray]:
    """test_report's store plus cell_score and gene_score in harness/store.py's layout, and the per-cell
    changes behind gene_score: d_hat, d_obs [model, drug, latent, split, method, cell, gene] (NaN where the
    cell line is not tested).

    Every method of every model gets values (the report must keep only each model's own methods); identity
    predicts no change; pertvae on "strong" split 0 failed (its values must not count) and de_sign_top50 is
    undefined for HA1E.
    """
    ds = make_store(out)
    rng = np.random.default_rng(seed)
    n_split = ds.sizes["split"]
    shape = (len(MODELS), len(DRUGS), len(LATENTS), n_split, len(METHODS))
    tested = np.zeros((n_split, len(CELL_LINES)), bool)
    for s in range(n_split):
        tested[s, _tested(s)] = True
    cell = rng.normal(size=(*shape, len(METRICS), len(CELL_LINES)))
    cell = np.where(tested[:, None, None, :], cell, np.nan)
    cell[..., METRICS.index("de_sign_top50"), CELL_LINES.index("HA1E")] = np.nan
    d_obs = rng.normal(size=(*shape, len(CELL_LINES), len(GENES)))
    d_hat = 0.5 * d_obs + rng.normal(size=d_obs.shape)
    d_hat[..., METHODS.index("identity"), :, :] = 0.0
    mask = tested[:, None, :, None]
    d_obs, d_hat = np.where(mask, d_obs, np.nan), np.where(mask, d_hat, np.nan)
    n = np.broadcast_to(tested.sum(1)[:, None, None].astype(float), (*shape[3:], len(GENES)))
    gene = np.stack([np.broadcast_to(n, shape + (len(GENES),)), np.nansum(d_hat, -2), np.nansum(d_obs, -2),
                     np.nansum(d_hat**2, -2), np.nansum(d_obs**2, -2), np.nansum(d_hat * d_obs, -2)], axis=-2)
    status = ds["status"].values.copy()
    status[MODELS.index("pertvae"), DRUGS.index("strong"), LATENTS.index(100), 0] = "failed"
    dims = ("model", "drug", "latent", "split", "method")
    ds = ds.assign(status=(ds["status"].dims, status),
                   cell_score=((*dims, "metric", "cell_line"), cell),
                   gene_score=((*dims, "gene_metric", "gene"), gene))
    ds = ds.assign_coords(cell_line=np.array(CELL_LINES, dtype=object), gene=np.array(GENES, dtype=object),
                          gene_metric=np.array(GENE_METRICS, dtype=object))
    ds.to_zarr(str(out / "results.zarr"), zarr_format=3, mode="w", consolidated=False)
    return ds, d_hat, d_obs


def _done(ds: xr.Dataset, var: str, drug: str, method: str) -> xr.DataArray:
    """``var`` of ``method`` on ``drug`` at latent 100 over the done splits only."""
    sel = ds.sel(model=MODEL_OF[method], drug=drug, latent=100)
    return sel[var].sel({"method": method}).where(sel["status"] == "done")


def test_cell_lines_and_genes_match_direct_computation(tmp_path: Path) -> None:
    from scipy import stats

    ds, d_hat, d_obs = make_detail_store(tmp_path)
    render_report(tmp_path)
    info = json.loads((tmp_path / "run.json").read_text())
    assert {"cell_lines.csv", "genes.csv"} <= set(info["report"]["files"])
    assert not list(tmp_path.glob(".*.tmp-*"))  # written atomically, nothing left behind

    cells = pd.read_csv(tmp_path / "cell_lines.csv")
    assert list(cells.columns) == [*bench.CELL_LINE_COLUMNS, "partial"]
    assert set(cells["method"]) == set(METHODS) and set(cells["latent"]) == {100}  # no vae/pca methods
    # every (drug, method, metric, cell line) tested in a done split, HA1E's undefined metric left out
    n_rows = len(DRUGS) * len(METHODS) * (len(METRICS) * len(CELL_LINES) - 1)
    assert len(cells) == n_rows
    assert not ((cells["cell_line"] == "HA1E") & (cells["metric"] == "de_sign_top50")).any()
    bounds = {"delta_pearson": (-1, 1), "mse_z": (0, np.inf), "rho_pred_pert": (-1, 1)}   # what each can be
    for drug, method, metric, line in (("strong", "pertvae", "delta_pearson", "A549"),
                                       ("strong", "ridge_delta", "mse_z", "MCF7"),
                                       ("weak", "identity", "rho_pred_pert", "HA1E")):
        want = _done(ds, "cell_score", drug, method).sel(metric=metric, cell_line=line).values
        per_repeat = want[np.isfinite(want)]  # each repeat tests each cell line once
        row = cells.query("drug == @drug and method == @method and metric == @metric and cell_line == @line")
        assert row["mean"].item() == pytest.approx(per_repeat.mean(), rel=1e-5)
        assert row["n_repeats"].item() == per_repeat.size
        if per_repeat.size > 1:
            lo, hi = stats.t.interval(0.95, per_repeat.size - 1, per_repeat.mean(), stats.sem(per_repeat))
            lo, hi = max(lo, bounds[metric][0]), min(hi, bounds[metric][1])   # clipped to the metric's range
            assert (row["ci_low"].item(), row["ci_high"].item()) == pytest.approx((lo, hi), rel=1e-5)
        else:
            assert np.isnan(row["ci_low"].item()) and np.isnan(row["ci_high"].item())
    corr = cells[cells["metric"].str.startswith(("delta_pearson", "rho_"))]
    assert corr["ci_low"].min() >= -1 and corr["ci_high"].max() <= 1 and (corr["ci_high"] == 1).any()
    # A549 (cell 0) is tested in split 0 (repeat 0) and 9 (repeat 1); split 0 failed for pertvae
    a549 = cells.query("drug == 'strong' and metric == 'mse_z' and cell_line == 'A549'").set_index("method")
    assert a549.loc["pertvae", "n_repeats"] == 1 and a549.loc["identity", "n_repeats"] == 2
    assert np.isnan(a549.loc["pertvae", "ci_low"])

    genes = pd.read_csv(tmp_path / "genes.csv", dtype={"gene": str})
    assert list(genes.columns) == [*bench.GENE_COLUMNS, "partial"]
    assert len(genes) == len(DRUGS) * len(METHODS) * len(GENES)
    for drug, method in (("inert", "mean_shift"), ("weak", "pertvae")):
        sub = genes.query("drug == @drug and method == @method").set_index("gene").loc[GENES]
        idx = (MODELS.index(MODEL_OF[method]), DRUGS.index(drug), LATENTS.index(100))
        hat, obs = d_hat[idx][:, METHODS.index(method)], d_obs[idx][:, METHODS.index(method)]
        per_rep = {k: [] for k in ("obs", "pred", "r")}
        for r in range(2):  # pool the repeat's folds: every cell line once
            h = np.nanmean(hat[r * 5:(r + 1) * 5], axis=0)   # [cell, gene]: each cell in one fold only
            o = np.nanmean(obs[r * 5:(r + 1) * 5], axis=0)
            per_rep["obs"].append(o.mean(0))
            per_rep["pred"].append(h.mean(0))
            # the correlation within splits: each split's means removed (one cell: nothing left)
            fold = np.array([next(s for s in range(5) if c in _tested(r * 5 + s)) for c in range(6)])
            hc, oc = h.copy(), o.copy()
            for f in np.unique(fold):
                hc[fold == f] -= h[fold == f].mean(0)
                oc[fold == f] -= o[fold == f].mean(0)
            per_rep["r"].append((hc * oc).sum(0) / np.sqrt((hc**2).sum(0) * (oc**2).sum(0)))
        mean = {k: np.mean(v, axis=0) for k, v in per_rep.items()}
        np.testing.assert_allclose(sub["observed_change"], mean["obs"], rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(sub["predicted_change"], mean["pred"], rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(sub["gene_pearson"], mean["r"], rtol=1e-5, atol=1e-9)
        # 6 cell lines in 5 splits leave 1 pair within splits: Fisher's n - 3 - (5 - 1) < 1, no interval
        assert sub["pearson_ci_low"].isna().all() and sub["pearson_ci_high"].isna().all()
        np.testing.assert_array_equal(sub["sign_agreement"], np.sign(mean["obs"]) == np.sign(mean["pred"]))
        assert (sub["n_cell_lines"] == 6).all() and (sub["n_repeats"] == 2).all()
    ident = genes[genes["method"] == "identity"]
    assert (ident["sign_agreement"] == 0.5).all() and ident["gene_pearson"].isna().all()   # chance


def test_load_reads_the_store_without_csv_files(tmp_path: Path) -> None:
    make_detail_store(tmp_path)
    res = load(tmp_path)
    assert not list(tmp_path.glob("*.csv"))  # nothing rendered: load reads results.zarr
    assert res.counts["planned"] == 240 and res.counts["failed"] == 1 and res.partial
    assert list(res.table1["drug"]) == DRUGS and res.table1.set_index("drug").loc["strong", "n_splits"] == 9
    assert set(res.scores.columns) == set(bench.SCORE_COLUMNS) and len(res.scores) > 0
    assert set(res.comparisons.query("kind == 'versus'")["method"]) == set(METHODS) - {"pertvae"}
    assert list(res.cell_lines.columns) == list(bench.CELL_LINE_COLUMNS) and len(res.cell_lines) > 0
    assert list(res.genes.columns) == list(bench.GENE_COLUMNS) and set(res.genes["gene"]) == set(GENES)

    text = repr(res)   # a few lines, not the tables in full
    assert text.startswith("Results: 239 of 240 fits done, 1 failed (PARTIAL)")
    assert len(text.splitlines()) == 9   # the counts, then one line per table
    assert "  .genes: " in text and "rows [drug, latent, method, gene, gene_symbol" in text
    fits = res.fits
    assert len(fits) == 240 and set(fits["status"]) == {"done", "failed"}
    assert set(fits.columns) >= {"model", "drug", "latent", "split", "status", "epochs", "best_epoch",
                                 "fit_seconds"}
    failed = fits[fits["status"] == "failed"].iloc[0]
    assert tuple(failed[["model", "drug", "latent", "split"]]) == ("pertvae", "strong", 100, 0)
    assert fits["best_epoch"].isna().all()  # this store predates best_epoch: a column of NaN
    assert set(fits.query("model == 'vae'")["latent"]) == {2, 10, 100}

    render_report(tmp_path)  # load gives the same tables as the files
    on_disk = pd.read_csv(tmp_path / "cell_lines.csv").drop(columns="partial")
    pd.testing.assert_frame_equal(on_disk, res.cell_lines, check_dtype=False, rtol=1e-5)
    t1 = pd.read_csv(tmp_path / "table1.csv")
    pd.testing.assert_frame_equal(t1, res.table1, check_dtype=False, rtol=1e-5)


def test_load_without_a_store_names_out(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=f"{tmp_path}: no results.zarr"):
        load(tmp_path)


def test_older_store_without_detail_scores(tmp_path: Path) -> None:
    make_store(tmp_path)
    res = load(tmp_path)
    assert res.cell_lines.empty and list(res.cell_lines.columns) == list(bench.CELL_LINE_COLUMNS)
    assert res.genes.empty and list(res.genes.columns) == list(bench.GENE_COLUMNS)
    render_report(tmp_path)
    assert not (tmp_path / "cell_lines.csv").exists() and not (tmp_path / "genes.csv").exists()
    files = json.loads((tmp_path / "run.json").read_text())["report"]["files"]
    assert "scores.csv" in files and "genes.csv" not in files and "cell_lines.csv" not in files


def test_legends_caption_and_few_splits_warning(tmp_path: Path) -> None:
    ds = make_store(tmp_path)
    st = ds["status"].values.copy()
    li = LATENTS.index(100)
    st[MODELS.index("pertvae"), DRUGS.index("strong"), li, :7] = ""  # Table 1's strong: 3 splits
    st[MODELS.index("baselines"), DRUGS.index("weak"), li, 4:] = "failed"  # weak's comparisons: 4 splits
    ds["status"].values[:] = st
    ds[["status"]].to_zarr(str(tmp_path / "results.zarr"), mode="r+", consolidated=False)
    render_report(tmp_path)

    t1 = (tmp_path / "table1.md").read_text()
    lines = t1.splitlines()
    assert lines[0].startswith("PARTIAL:")
    warn = [x for x in lines if x.startswith("WARNING:")]
    assert warn == ["WARNING: p-values rest on fewer than 10 splits for strong (3 splits); too few for a "
                    "reliable test: run more repeats (--n-repeats) or folds (--n-folds)."]
    header = next(x for x in lines if x.startswith("| drug |"))
    for col in header.strip("| ").split(" | "):  # every column explained
        assert any(x.startswith(f"- {col}: ") for x in lines), col
    names = header.strip("| ").split(" | ")
    rows = [x.strip("| ").split(" | ") for x in lines if x.startswith("| ") and not x.startswith("| drug |")]
    for row in rows:   # one number format for p and q, the one the legend states
        for name, cell in zip(names, row, strict=True):
            if name.startswith(("p_", "q_")):
                assert re.fullmatch(r"-|[01]\.\d{3}|[1-9]\.\d{2}e-\d{2}", cell), (name, cell)
                assert cell == "-" or float(cell) >= 1e-3 or "e-" in cell, (name, cell)
    assert "below 0.001 in scientific notation" in t1

    bm = (tmp_path / "benchmark.md").read_text()
    warn = [x for x in bm.splitlines() if x.startswith("WARNING:")]
    assert len(warn) == 1 and "strong (3 splits)" in warn[0] and "weak (4-10 splits)" in warn[0]
    assert "inert" not in warn[0]
    assert "cannot go below p = 1/2^3 = 0.125" in warn[0]
    assert "not distinguishable' here means too few" in warn[0]
    power = [x for x in bm.splitlines() if x.startswith("Power")]   # inert's 10 splits: what they can call
    assert power and power[0].startswith("Power (the drugs with 10 splits or more): with 10 splits the ")
    for method in METHODS:
        assert f"\n- {method}: " in bm
    assert "\n- ceiling: " in bm and "\n- verdict: " in bm and "\n- delta_pearson: " in bm
    assert "\n- best: " in bm and "\n- cell-specificity gain: " in bm and "\n- chance levels: " in bm

    tex = (tmp_path / "table1.tex").read_text()
    assert r"\caption{" in tex and r"\begin{table}" in tex and tex.rstrip().endswith(r"\end{table}")
    assert "n\\_failed" not in tex and "n\\_missing" not in tex and "Partial: " in tex
    header = next(x for x in tex.splitlines() if x.startswith("drug & "))
    assert header.count("&") == 14  # 15 columns: Table 1's without n_failed, n_missing
    assert {"n_failed", "n_missing"} <= set(pd.read_csv(tmp_path / "table1.csv").columns)
    assert "| n_failed | n_missing |" in t1


def test_full_runs_have_no_warning(tmp_path: Path) -> None:
    make_store(tmp_path)
    render_report(tmp_path)
    for name in ("table1.md", "benchmark.md"):
        assert "WARNING" not in (tmp_path / name).read_text()


def _scores_of(n_drugs: int, seed: int = 0) -> tuple[xr.Dataset, pd.DataFrame]:
    """A bare store (drug coordinate, ceiling attrs) and tidy primary scores of ``n_drugs`` drugs, every
    other one without a measured change; 10 splits each."""
    rng = np.random.default_rng(seed)
    drugs = [f"drug-{i:02d}" for i in range(n_drugs)]
    ceiling = {d: {"ceiling_delta_pearson": 0.9, "se": 0.01, "signal_z": 20.0 if i % 2 == 0 else 0.5}
               for i, d in enumerate(drugs)}
    ds = xr.Dataset(coords={"drug": np.array(drugs, dtype=object)},
                    attrs={"ceiling": json.dumps(ceiling), "n_train_test": json.dumps({})})
    rows = [{"drug": d, "latent": 10, "repeat": s // 5, "fold": s % 5, "method": m, "metric": "delta_pearson",
             "value": (0.5 if i % 2 == 0 and m != "identity" else 0.0) + 0.05 * rng.normal()}
            for i, d in enumerate(drugs) for m in METHODS for s in range(10)]
    return ds, pd.DataFrame(rows)


@pytest.mark.parametrize("n_drugs", [1, 4, 19])
def test_drugs_figure_reads_without_the_code(n_drugs: int) -> None:
    """drugs.png at 1, 4 and 19 drugs: plain words, one legend below the panels, no two boxes overlapping;
    the drugs without a measured change share the compact last panel."""
    import matplotlib.pyplot as plt

    from harness import figures

    ds, scores = _scores_of(n_drugs)
    comp = bench.comparisons(scores, dict.fromkeys(ds["drug"].values.tolist(), [30.0, 8.0]))
    fig = figures.plot_drugs(ds, scores, comp, partial=False)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        assert len(fig.legends) == 1
        legend = fig.legends[0]
        labels = [t.get_text() for t in legend.get_texts()]
        assert labels[:len(METHODS)] == [figures.LABELS[m] for m in METHODS]
        assert any(x.startswith("noise ceiling") for x in labels) and any("worse" in x for x in labels)
        box = legend.get_window_extent(renderer)
        assert box.y0 >= 0 and box.x0 >= 0 and box.x1 <= fig.bbox.width
        titles = [ax.get_title() for ax in fig.axes]
        assert titles[0] == "drug-00 (10 splits)"
        boxes = [ax.get_tightbbox(renderer) for ax in fig.axes] + [fig._suptitle.get_window_extent(renderer)]
        for i, ax in enumerate(fig.axes):
            assert ax.get_legend() is None and not boxes[i].overlaps(box), ax.get_title()
            for j in range(i + 1, len(boxes)):
                assert not boxes[i].overlaps(boxes[j]), (titles[i], j)
        n_null = n_drugs // 2
        assert len(fig.axes) == n_drugs - n_null + (1 if n_null else 0)
        if n_null:
            assert "without a measured change" in titles[-1]
            null_ticks = [t.get_text() for t in fig.axes[-1].get_xticklabels()]
            assert null_ticks == [f"drug-{i:02d}" for i in range(1, n_drugs, 2)]
            lo, hi = fig.axes[-1].get_ylim()   # chance-level scatter is not zoomed into looking like effects
            assert lo <= -figures.NULL_SPAN and hi >= figures.NULL_SPAN
        assert fig.bbox.width < 2000 and fig.bbox.height < 3000   # still a figure one can read on a screen
    finally:
        plt.close(fig)


def test_drugs_figure_marks_losses_like_wins(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from harness import figures

    ds = make_store(tmp_path)
    scores = bench.scores_table(ds)
    comp = bench.comparisons(scores, json.loads(ds.attrs["n_train_test"]))
    fig = figures.plot_drugs(ds, scores, comp, partial=False)
    try:
        strong = fig.axes[0]
        worse = [line for line in strong.get_lines() if line.get_marker() == "v"]
        better = [line for line in strong.get_lines() if line.get_marker() == "^"]
        assert len(worse) == 1 and len(better) == 3   # loses to ridge_delta; beats rec, identity, train_mean
        assert worse[0].get_color() == "tab:red" and better[0].get_color() == "tab:green"
    finally:
        plt.close(fig)


def test_forest_figure_has_a_panel_per_method(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from harness import figures

    ds = make_store(tmp_path)
    scores = bench.scores_table(ds)
    comp = bench.comparisons(scores, json.loads(ds.attrs["n_train_test"]))
    fig = figures.plot_forest(ds, comp, partial=False)
    try:
        titles = [ax.get_title() for ax in fig.axes]
        assert titles == [f"PertVAE minus\n{figures.LABELS[m]}" for m in METHODS if m != "pertvae"]
        ridge = fig.axes[titles.index("PertVAE minus\nridge on change")]
        colors = {tuple(c.get_color()) if not isinstance(c.get_color(), str) else c.get_color()
                  for c in ridge.get_lines()}
        assert "tab:red" in colors   # PertVAE significantly worse than ridge_delta on "strong"
        spans = {ax.get_xlim() for ax in fig.axes}
        assert len(spans) == 1          # one scale for every panel, so that the panels compare
        lo, hi = spans.pop()
        real = comp[(comp["kind"] == "versus") & (comp["metric"] == "delta_pearson")
                    & comp["drug"].isin(["strong", "weak"])]
        assert lo < real["ci_low"].min() and hi > real["ci_high"].max() and lo < 0 < hi
    finally:
        plt.close(fig)


def test_forest_cuts_a_drug_without_change_not_the_others(tmp_path: Path) -> None:
    """A drug without a measured change, on few cell lines, can have an interval wide enough to squeeze
    every other into a line: forest.png's scale follows the drugs with a change and cuts that one."""
    import matplotlib.pyplot as plt

    from harness import figures

    ds = make_store(tmp_path)
    scores = bench.scores_table(ds)
    comp = bench.comparisons(scores, json.loads(ds.attrs["n_train_test"]))
    inert = comp["drug"] == "inert"
    comp.loc[inert, "ci_low"], comp.loc[inert, "ci_high"] = -1.8, 1.8
    ds.attrs["ceiling"] = json.dumps({**json.loads(ds.attrs["ceiling"]), "inert": {"signal_z": 0.1}})
    fig = figures.plot_forest(ds, comp, partial=False)
    try:
        lo, hi = fig.axes[0].get_xlim()
        assert -1.8 < lo and hi < 1.8
        assert "cut at the axis" in fig._supxlabel.get_text()
        assert "inert (no measured change)" in [t.get_text() for t in fig.axes[0].get_yticklabels()]
    finally:
        plt.close(fig)


def test_real_result_store_round_trip(tmp_path: Path) -> None:
    """harness.store.ResultStore writes the per-cell-line and per-gene scores; load and the csv files agree
    with the numbers written (done fits only, the pooled pseudo-drug left out, a user's own method in)."""
    from harness.config import make_config
    from harness.grid import POOLED, store_drugs
    from harness.store import ResultStore
    from pertvae_core.evaluation import Scores
    from pertvae_core.methods import METHODS as BUILT_IN

    cfg = make_config("demo", models=["pertvae", "pca", "baselines"], latents_pertvae=[4], latents_pca=[2, 4],
                      latents_baselines=[4], n_repeats=2, n_folds=3, figure2_scope="pooled")
    lines, genes = ["c1", "c2", "c3", "c4"], ["g1", "g2", "g3"]
    st = ResultStore.open(tmp_path, cfg, "fp", drugs=store_drugs(cfg, ["dA", "dB"]),
                          n_train_test={"dA": [3.0, 1.0], "dB": [3.0, 1.0]}, cell_lines=lines, genes=genes,
                          methods=(*BUILT_IN, "mine"), gene_symbols=["TP53", "MYC", "EGFR"])
    rng = np.random.default_rng(3)
    want_cell: dict[tuple[str, str, str], list[float]] = {}
    want_gene: dict[tuple[str, str], list[np.ndarray]] = {}
    rows = []
    own = {"pertvae": ("pertvae", "pertvae_rec"), "baselines": ("identity", "ridge_delta", "mine")}
    for model, methods in own.items():
        for drug in ("dA", "dB"):
            for split in range(6):
                test = (lines[split % 4], lines[(split + 1) % 4])
                detail, scores = {}, {}
                for m in methods:
                    dp = rng.normal(size=2)
                    stats_ = [np.full(3, 2.0), *rng.normal(size=(5, 3))]
                    per_gene = dict(zip(GENE_METRICS, stats_, strict=True))
                    detail[m] = Scores(summary={}, cell_lines=test, per_cell={"delta_pearson": dp},
                                       per_gene=per_gene)
                    scores[m] = {"delta_pearson": float(dp.mean())}
                    if (model, drug, split) != ("pertvae", "dA", 5):
                        for c, v in zip(test, dp, strict=True):
                            want_cell.setdefault((drug, m, c), []).append(float(v))
                        want_gene.setdefault((drug, m), []).append(np.stack(list(per_gene.values())))
                status = "failed" if (model, drug, split) == ("pertvae", "dA", 5) else "done"
                rows.append({"model": model, "drug": drug, "latent": 4, "repeat": split // 3,
                             "fold": split % 3, "status": status, "scores": scores, "detail": detail,
                             "best_epoch": 3.0, "fit_seconds": 1.0})
    rows += [{"model": "pca", "drug": POOLED, "latent": x, "repeat": s // 3, "fold": s % 3, "status": "done",
              "rho_rec": 0.5, "fit_seconds": 0.1} for x in (2, 4) for s in range(6)]
    st.write(rows)

    res = load(tmp_path)
    assert res.counts["failed"] == 1 and len(res.fits) == 2 * 2 * 6 + 2 * 6
    assert set(res.fits.query("model != 'pca'")["best_epoch"]) == {3.0}
    assert POOLED not in set(res.cell_lines["drug"]) | set(res.genes["drug"]) | set(res.scores["drug"])
    cells = res.cell_lines.set_index(["drug", "method", "cell_line"]).sort_index()
    assert set(res.cell_lines["metric"]) == {"delta_pearson"} and len(cells) == len(want_cell)
    # c2 is tested in splits 0, 1 (repeat 0) and 4, 5 (repeat 1); PertVAE's split 5 failed
    c2 = want_cell[("dA", "identity", "c2")]
    assert cells.loc[("dA", "identity", "c2"), "mean"] == pytest.approx(np.mean([np.mean(c2[:2]),
                                                                                np.mean(c2[2:])]))
    assert cells.loc[("dA", "identity", "c2"), "n_repeats"] == 2
    assert cells.loc[("dA", "pertvae", "c2"), "n_repeats"] == 2   # split 4 still tests it in repeat 1
    gene_rows = res.genes.set_index(["drug", "method", "gene"]).sort_index()
    for (drug, m), blocks in want_gene.items():
        sums = np.sum(blocks[:3], axis=0) if (drug, m) != ("dA", "pertvae") else None  # repeat 0's folds
        sub = gene_rows.loc[(drug, m)].loc[genes]
        assert list(sub["gene_symbol"]) == ["TP53", "MYC", "EGFR"]
        if sums is not None:
            n, sp, so = sums[0], sums[1], sums[2]
            first = np.asarray(sub["observed_change"])
            later = np.sum(blocks[3:], axis=0)
            np.testing.assert_allclose(first, (so / n + later[2] / later[0]) / 2)
            np.testing.assert_allclose(sub["predicted_change"], (sp / n + later[1] / later[0]) / 2)

    render_report(tmp_path)
    on_disk = pd.read_csv(tmp_path / "genes.csv", dtype={"gene": str})
    assert len(on_disk) == len(res.genes) == 2 * 5 * 3
    assert (on_disk["partial"] == on_disk["method"].isin(res.partial_methods)).all()
    assert on_disk["partial"].any()
    assert dict(zip(on_disk["gene"], on_disk["gene_symbol"], strict=True)) == {"g1": "TP53", "g2": "MYC",
                                                                              "g3": "EGFR"}
    assert len(pd.read_csv(tmp_path / "cell_lines.csv")) == len(want_cell)
    assert set(pd.read_csv(tmp_path / "scores.csv")["method"]) == {m for ms in own.values() for m in ms}
    bm = (tmp_path / "benchmark.md").read_text()
    assert "| mine |" in bm and "\n- mine: your own method, added to this run with --method." in bm


def test_docs_report_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/report.md's code block runs on a store with per-cell-line and per-gene scores."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "report.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert blocks
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    make_detail_store(tmp_path / "runs" / "demo")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for block in blocks:
        exec(compile(block, "docs/report.md", "exec"), ns)
    assert len(ns["best_lines"]) == 10 and set(ns["agreement"].index) == set(DRUGS)


def test_table1_names_score_columns_with_fewer_splits(tmp_path: Path) -> None:
    """PertVAE's delta_pearson has no value on 2 of weak's splits (e.g. too few held-out cell lines) while
    its rho_* have all: the row's n_splits is not delta_pearson's, and table1.md says so."""
    ds = make_store(tmp_path)
    score = ds["score"].values.copy()
    cell = (MODELS.index("pertvae"), DRUGS.index("weak"), LATENTS.index(100))
    score[(*cell, slice(0, 2), METHODS.index("pertvae"), METRICS.index("delta_pearson"))] = np.nan
    ds["score"].values[:] = score
    ds[["score"]].to_zarr(str(tmp_path / "results.zarr"), mode="r+", consolidated=False)
    render_report(tmp_path, with_figures=False)
    t1 = (tmp_path / "table1.md").read_text()
    n = ds.sizes["split"]
    assert f"Fewer splits than n_splits behind: delta_pearson on weak at latent 100 ({n - 2})." in t1, t1
    row = pd.read_csv(tmp_path / "table1.csv").set_index("drug").loc["weak"]
    assert row["n_splits"] == n
    want = score[(*cell, slice(2, None), METHODS.index("pertvae"), METRICS.index("delta_pearson"))].mean()
    assert row["delta_pearson"] == pytest.approx(want, rel=1e-5)   # table1.csv keeps 6 digits


def test_drugs_figure_is_at_the_headlines_latent() -> None:
    """Baselines run at a smaller latent size than PertVAE as well: drugs.png shows PertVAE's first latent
    size, the headline's, not the smallest of any method."""
    import matplotlib.pyplot as plt

    from harness import figures, verdicts

    ds, scores = _scores_of(2)
    small = scores[scores["method"] != "pertvae"].assign(latent=2)
    scores = pd.concat([scores, small], ignore_index=True)
    comp = bench.comparisons(scores, dict.fromkeys(ds["drug"].values.tolist(), [30.0, 8.0]))
    assert verdicts.primary_latents(scores) == [10]
    fig = figures.plot_drugs(ds, scores, comp, partial=False)
    try:
        assert fig._suptitle.get_text().endswith("(latent size 10)")
        assert any("PertVAE better" in t.get_text() for t in fig.legends[0].get_texts())
    finally:
        plt.close(fig)


def test_headline_counts_losses_over_the_drugs_with_scores() -> None:
    """A partial run whose third drug has no score yet: the loss count is 'of the 2 drugs with scores (of
    the run's 3)', not 'of all 2 drugs'."""
    from harness import verdicts

    ds, scores = _scores_of(3)
    ds = ds.assign_coords(model=np.array(["pertvae", "baselines"], dtype=object))
    partial = scores[scores["drug"] != "drug-02"]
    comp = bench.comparisons(partial, dict.fromkeys(ds["drug"].values.tolist(), [30.0, 8.0]))
    text = " ".join(verdicts.headline(ds, partial, comp))
    assert "of the 2 drugs with scores (of the run's 3)" in text and "of all" not in text
    comp = bench.comparisons(scores, dict.fromkeys(ds["drug"].values.tolist(), [30.0, 8.0]))
    assert "of all 3 drugs" in " ".join(verdicts.headline(ds, scores, comp))


def test_a_method_scored_on_fewer_splits_is_not_named_best() -> None:
    """A plug-in that failed on 6 of 10 splits, its mean over the other 4 the highest: the best is named
    among the methods scored on every split, and the table marks its '(4 of 10 splits)'."""
    from harness import verdicts

    ds, scores = _scores_of(1)
    ds = ds.assign_coords(model=np.array(["pertvae", "baselines"], dtype=object))
    mine = scores[(scores["method"] == "pertvae") & (scores["repeat"] == 0) & (scores["fold"] < 4)]
    scores = pd.concat([scores, mine.assign(method="myplug", value=0.99)], ignore_index=True)
    comp = bench.comparisons(scores, dict.fromkeys(ds["drug"].values.tolist(), [30.0, 8.0]))
    full = scores[scores["method"] != "myplug"].groupby("method")["value"].mean()
    best, _ = verdicts.best_line(scores, comp, "drug-00", 10)
    assert best == full.idxmax() != "myplug"
    head = " ".join(verdicts.headline(ds, scores, comp))
    assert f"{best} on 1 (drug-00)" in head and "myplug on" not in head
    table = "\n".join(verdicts._primary_table(ds, scores, comp, 10, [*METHODS, "myplug"]))
    assert "0.990 (4 of 10 splits)" in table
