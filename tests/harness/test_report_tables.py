"""harness.report's tidy tables (load, cell_lines.csv, genes.csv), legends, few-splits warnings, drugs.png."""

from __future__ import annotations

import json
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
GENE_METRICS = ("observed_change", "predicted_change", "gene_pearson")
MODEL_OF = {m: ("pertvae" if m.startswith("pertvae") else "baselines") for m in METHODS}


def make_detail_store(out: Path, seed: int = 1) -> xr.Dataset:
    """test_report's store plus cell_score and gene_score in harness/store.py's layout.

    Split s tests cell lines s % 6 and (s + 1) % 6; every method of every model gets values (the report
    must keep only each model's own methods); identity predicts no change; pertvae on "strong" split 0 failed
    (its values must not count) and de_sign_top50 is undefined for HA1E.
    """
    ds = make_store(out)
    rng = np.random.default_rng(seed)
    n_split = ds.sizes["split"]
    shape = (len(MODELS), len(DRUGS), len(LATENTS), n_split, len(METHODS))
    cell = rng.normal(size=(*shape, len(METRICS), len(CELL_LINES)))
    tested = np.zeros((n_split, len(CELL_LINES)), bool)
    for s in range(n_split):
        tested[s, [s % 6, (s + 1) % 6]] = True
    cell = np.where(tested[:, None, None, :], cell, np.nan)
    cell[..., METRICS.index("de_sign_top50"), CELL_LINES.index("HA1E")] = np.nan
    gene = rng.normal(size=(*shape, len(GENE_METRICS), len(GENES)))
    ident = METHODS.index("identity")
    gene[..., ident, 1, :] = 0.0
    gene[..., ident, 2, :] = np.nan
    status = ds["status"].values.copy()
    status[MODELS.index("pertvae"), DRUGS.index("strong"), LATENTS.index(100), 0] = "failed"
    dims = ("model", "drug", "latent", "split", "method")
    ds = ds.assign(status=(ds["status"].dims, status),
                   cell_score=((*dims, "metric", "cell_line"), cell),
                   gene_score=((*dims, "gene_metric", "gene"), gene))
    ds = ds.assign_coords(cell_line=np.array(CELL_LINES, dtype=object), gene=np.array(GENES, dtype=object),
                          gene_metric=np.array(GENE_METRICS, dtype=object))
    ds.to_zarr(str(out / "results.zarr"), zarr_format=3, mode="w", consolidated=False)
    return ds


def _done(ds: xr.Dataset, var: str, drug: str, method: str) -> xr.DataArray:
    """``var`` of ``method`` on ``drug`` at latent 100 over the done splits only."""
    sel = ds.sel(model=MODEL_OF[method], drug=drug, latent=100)
    return sel[var].sel({"method": method}).where(sel["status"] == "done")


def test_cell_lines_and_genes_match_direct_computation(tmp_path: Path) -> None:
    ds = make_detail_store(tmp_path)
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
    for drug, method, metric, line in (("strong", "pertvae", "delta_pearson", "A549"),
                                       ("strong", "ridge_delta", "mse_z", "MCF7"),
                                       ("weak", "identity", "rho_pred_pert", "HA1E")):
        want = _done(ds, "cell_score", drug, method).sel(metric=metric, cell_line=line)
        row = cells.query("drug == @drug and method == @method and metric == @metric and cell_line == @line")
        assert row["mean"].item() == pytest.approx(float(want.mean(skipna=True)), rel=1e-5)
        assert row["n_splits"].item() == int(want.notnull().sum())
    # A549 is tested in splits 0, 5 and 9 (s % 6 == 0 or (s + 1) % 6 == 0); split 0 failed for pertvae
    a549 = cells.query("drug == 'strong' and metric == 'mse_z' and cell_line == 'A549'").set_index("method")
    assert a549.loc["pertvae", "n_splits"] == 2 and a549.loc["identity", "n_splits"] == 3

    genes = pd.read_csv(tmp_path / "genes.csv", dtype={"gene": str})
    assert list(genes.columns) == [*bench.GENE_COLUMNS, "partial"]
    assert len(genes) == len(DRUGS) * len(METHODS) * len(GENES)
    for drug, method in (("strong", "pertvae"), ("inert", "mean_shift"), ("weak", "identity")):
        sub = genes.query("drug == @drug and method == @method").set_index("gene").loc[GENES]
        vals = _done(ds, "gene_score", drug, method)
        obs = vals.sel(gene_metric="observed_change").mean("split", skipna=True).values
        pred = vals.sel(gene_metric="predicted_change").mean("split", skipna=True).values
        np.testing.assert_allclose(sub["observed_change"], obs, rtol=1e-5)
        np.testing.assert_allclose(sub["predicted_change"], pred, rtol=1e-5, atol=1e-12)
        rho = vals.sel(gene_metric="gene_pearson").mean("split", skipna=True).values
        np.testing.assert_allclose(sub["gene_pearson"], rho, rtol=1e-5)
        np.testing.assert_array_equal(sub["sign_agreement"], (np.sign(obs) == np.sign(pred)) & (pred != 0))
        assert (sub["n_splits"] == (9 if (drug, method) == ("strong", "pertvae") else 10)).all()
    ident = genes[genes["method"] == "identity"]
    assert not ident["sign_agreement"].any() and ident["gene_pearson"].isna().all()


def test_load_reads_the_store_without_csv_files(tmp_path: Path) -> None:
    make_detail_store(tmp_path)
    res = load(tmp_path)
    assert not list(tmp_path.glob("*.csv"))  # nothing rendered: load reads results.zarr
    assert res.counts["planned"] == 240 and res.counts["failed"] == 1 and res.partial
    assert list(res.table1["drug"]) == DRUGS and res.table1.set_index("drug").loc["strong", "n_splits"] == 9
    assert set(res.scores.columns) == set(bench.SCORE_COLUMNS) and len(res.scores) > 0
    assert set(res.comparisons["method"]) == set(METHODS) - {"pertvae"}
    assert list(res.cell_lines.columns) == list(bench.CELL_LINE_COLUMNS) and len(res.cell_lines) > 0
    assert list(res.genes.columns) == list(bench.GENE_COLUMNS) and set(res.genes["gene"]) == set(GENES)

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
    assert warn == ["WARNING: p-values rest on fewer than 5 splits for strong (3 splits); too few for a "
                    "reliable test: run more repeats (--n-repeats) or folds (--n-folds)."]
    header = next(x for x in lines if x.startswith("| drug |"))
    for col in header.strip("| ").split(" | "):  # every column explained
        assert any(x.startswith(f"- {col}: ") for x in lines), col

    bm = (tmp_path / "benchmark.md").read_text()
    warn = [x for x in bm.splitlines() if x.startswith("WARNING:")]
    assert len(warn) == 1 and "strong (3 splits)" in warn[0] and "weak (4 splits)" in warn[0]
    assert "inert" not in warn[0]
    for method in METHODS:
        assert f"\n- {method}: " in bm
    assert "\n- ceiling: " in bm and "\n- verdict: " in bm and "\n- delta_pearson: " in bm

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


def test_drugs_legend_is_below_the_panels(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    ds = make_store(tmp_path)
    scores = bench.scores_table(ds)
    comp = bench.comparisons(scores, json.loads(ds.attrs["n_train_test"]))
    fig = bench.plot_drugs(ds, scores, comp, partial=False)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        assert len(fig.legends) == 1
        legend = fig.legends[0]
        labels = [t.get_text() for t in legend.get_texts()]
        assert labels[:len(METHODS)] == list(METHODS) and "noise ceiling" in labels
        box = legend.get_window_extent(renderer)
        assert box.y0 >= 0 and box.x0 >= 0 and box.x1 <= fig.bbox.width
        for ax in fig.axes:
            assert ax.get_legend() is None
            if ax.axison:  # the panel with its tick labels stays clear of the legend
                assert not ax.get_tightbbox(renderer).overlaps(box), ax.get_title()
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
                    per_gene = {"observed_change": rng.normal(size=3), "predicted_change": rng.normal(size=3),
                                "gene_pearson": rng.uniform(-1, 1, size=3)}
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
    for key, vals in want_cell.items():
        assert cells.loc[key, "mean"] == pytest.approx(np.mean(vals))
        assert cells.loc[key, "n_splits"] == len(vals)
    # c2 is tested in splits 0, 1, 4 and 5; PertVAE's split 5 failed
    assert cells.loc[("dA", "pertvae", "c2"), "n_splits"] == 3
    assert cells.loc[("dA", "identity", "c2"), "n_splits"] == 4
    gene_rows = res.genes.set_index(["drug", "method", "gene"]).sort_index()
    for (drug, m), blocks in want_gene.items():
        mean = np.mean(blocks, axis=0)  # [gene_metric, gene]
        sub = gene_rows.loc[(drug, m)].loc[genes]
        np.testing.assert_allclose(sub[["observed_change", "predicted_change", "gene_pearson"]].T, mean)
        assert (sub["n_splits"] == len(blocks)).all() and list(sub["gene_symbol"]) == ["TP53", "MYC", "EGFR"]
        np.testing.assert_array_equal(sub["sign_agreement"], np.sign(mean[0]) == np.sign(mean[1]))

    render_report(tmp_path)
    on_disk = pd.read_csv(tmp_path / "genes.csv", dtype={"gene": str})
    assert len(on_disk) == len(res.genes) == 2 * 5 * 3 and on_disk["partial"].all()
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
