"""harness.report on real zarr v3 result stores built here from synthetic numbers."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from harness.report import NOT_REDRAWN, ReportError, main, render_report

MODELS = ["pertvae", "vae", "pca", "baselines"]
DRUGS = ["strong", "inert", "weak"]
LATENTS = [2, 10, 100]
N_REPEATS, N_FOLDS = 2, 5
N_TT = {"strong": [40.0, 10.0], "inert": [24.0, 6.0], "weak": [32.0, 8.0]}
FLOATS = ("rho_rec_pert", "rho_pred_pert", "rho_rec", "test_loss", "epochs", "fit_seconds")
METHODS = ("pertvae", "pertvae_rec", "identity", "train_mean", "mean_shift", "pca_latent_linear",
           "ridge_delta")
METRICS = ("rho_pred_pert", "rho_pred_pert_z", "delta_pearson", "delta_pearson_centered", "mse_z",
           "de_sign_top50", "retrieval", "delta_pearson_ablated")
# Mean delta_pearson per (drug, method): PertVAE beats identity/train_mean on "strong", loses to ridge_delta.
DELTA = {"strong": {"pertvae": 0.5, "pertvae_rec": 0.1, "identity": 0.0, "train_mean": 0.2, "mean_shift": 0.5,
                    "pca_latent_linear": 0.5, "ridge_delta": 0.7},
         "inert": dict.fromkeys(METHODS, 0.0), "weak": {**dict.fromkeys(METHODS, 0.05), "identity": 0.0}}
CEILING = {"strong": {"ceiling_delta_pearson": 0.8, "n_cell_lines": 9, "reason": ""},
           "inert": {"ceiling_delta_pearson": 0.01, "n_cell_lines": 5, "reason": ""},
           "weak": {"ceiling_delta_pearson": float("nan"), "n_cell_lines": 0, "reason": "too few replicates"}}
TRUTH = {"strong": {"effective": True, "kind": "latent_linear"},
         "inert": {"effective": False, "kind": "none"},
         "weak": {"effective": True, "kind": "gene_additive"}}
GRID = {"pertvae": [100], "vae": [2, 10, 100], "pca": [2, 10, 100], "baselines": [100]}


def make_store(out: Path, seed: int = 0, with_planned: bool = True) -> xr.Dataset:
    """A results.zarr in harness/store.py's layout; every planned fit done."""
    rng = np.random.default_rng(seed)
    n_split = N_REPEATS * N_FOLDS
    shape = (len(MODELS), len(DRUGS), len(LATENTS), n_split)
    planned = np.array([[x in GRID[m] for x in LATENTS] for m in MODELS])
    data = {v: np.full(shape, np.nan) for v in FLOATS}
    score = np.full((*shape, len(METHODS), len(METRICS)), np.nan)
    status = np.full(shape, "", dtype=object)
    pm = np.broadcast_to(planned[:, None, :, None], shape)
    status[pm] = "done"
    mi = {m: i for i, m in enumerate(MODELS)}
    li = {x: i for i, x in enumerate(LATENTS)}
    effect = {"strong": 0.06, "inert": 0.0, "weak": 0.01}
    for di, d in enumerate(DRUGS):
        rec = 0.55 + 0.02 * rng.normal(size=n_split)
        pred = rec + effect[d] + 0.02 * rng.normal(size=n_split)
        data["rho_rec_pert"][mi["pertvae"], di, li[100]] = rec
        data["rho_pred_pert"][mi["pertvae"], di, li[100]] = pred
        for k, method in enumerate(METHODS):
            model = "pertvae" if method.startswith("pertvae") else "baselines"
            cell = score[mi[model], di, li[100], :, k]
            for j, metric in enumerate(METRICS):
                noise = 0.0 if method == "identity" and "delta" in metric else 0.02 * rng.normal(size=n_split)
                cell[:, j] = DELTA[d][method] + (0.0 if metric == "delta_pearson" else 0.1 * j) + noise
            if method == "pertvae":
                cell[:, 0] = pred
        for m, top in (("vae", 0.9), ("pca", 0.85)):
            for x in GRID[m]:
                data["rho_rec"][mi[m], di, li[x]] = top - 0.3 / x + 0.01 * rng.normal(size=n_split)
    split = np.arange(n_split)
    coords = {"model": np.array(MODELS, dtype=object), "drug": np.array(DRUGS, dtype=object),
              "latent": np.array(LATENTS, dtype=np.int64), "split": split,
              "repeat": ("split", split // N_FOLDS), "fold": ("split", split % N_FOLDS),
              "method": np.array(METHODS, dtype=object), "metric": np.array(METRICS, dtype=object)}
    if with_planned:
        coords["planned"] = (("model", "latent"), planned)
    dims = ("model", "drug", "latent", "split")
    dvars = {v: (dims, a) for v, a in data.items()}
    dvars["status"] = (dims, status)
    dvars["score"] = ((*dims, "method", "metric"), score)
    for v in ("reason", "worker", "slurm_job_id"):
        dvars[v] = (dims, np.full(shape, "", dtype=object))
    ds = xr.Dataset(dvars, coords=coords, attrs={
        "config": json.dumps({"science": {"models": MODELS}}),
        "n_cell_lines": json.dumps({"strong": 50, "inert": 30, "weak": 40}),
        "n_train_test": json.dumps(N_TT),
        "grid": json.dumps(GRID),
        "fingerprint": "test",
        "ceiling": json.dumps(CEILING),
        "ground_truth": json.dumps(TRUTH),
        "pairing": json.dumps({"strong": "plate", "inert": "cyclic", "weak": "plate"}),
    })
    ds.to_zarr(str(out / "results.zarr"), zarr_format=3, mode="w", consolidated=False)
    return ds


def _corrected_t(pred: np.ndarray, rec: np.ndarray, n_train: float, n_test: float) -> float:
    d = pred - rec
    t = d.mean() / math.sqrt((1 / d.size + n_test / n_train) * d.var(ddof=1))
    return float(stats.t.sf(t, d.size - 1))


def test_table1_matches_scipy_and_figures_exist(tmp_path: Path) -> None:
    ds = make_store(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"timings": {"seconds": 1.5}}))
    assert render_report(tmp_path) == tmp_path / "summary.txt"
    md = tmp_path / "table1.md"
    df = pd.read_csv(tmp_path / "table1.csv")
    assert list(df.columns[:13]) == ["drug", "latent", "n_cell_lines", "n_splits", "rho_rec_pert",
                                     "rho_pred_pert", "p_mannwhitney", "p_wilcoxon", "p_corrected_t", "q_bh",
                                     "rho_identity", "rho_meanshift", "rho_pca_latent"]
    assert "n_missing" in df.columns
    assert df["drug"].tolist() == DRUGS and set(df["latent"]) == {100}
    p_mw = []
    for drug in DRUGS:
        row = df.set_index("drug").loc[drug]
        cell = ds.sel(model="pertvae", drug=drug, latent=100)
        rec, pred = cell["rho_rec_pert"].values, cell["rho_pred_pert"].values
        assert row["n_splits"] == 10 and row["n_missing"] == 0
        assert row["rho_rec_pert"] == pytest.approx(rec.mean(), rel=1e-5)
        assert row["rho_pred_pert"] == pytest.approx(pred.mean(), rel=1e-5)
        p = stats.mannwhitneyu(pred, rec, alternative="greater").pvalue
        p_mw.append(p)
        assert row["p_mannwhitney"] == pytest.approx(p, rel=1e-5)
        assert row["p_wilcoxon"] == pytest.approx(stats.wilcoxon(pred, rec, alternative="greater").pvalue,
                                                  rel=1e-5)
        assert row["p_corrected_t"] == pytest.approx(_corrected_t(pred, rec, *N_TT[drug]), rel=1e-5)
        base = ds.sel(model="baselines", drug=drug, latent=100)
        for col, method in (("rho_identity", "identity"), ("rho_meanshift", "mean_shift"),
                            ("rho_pca_latent", "pca_latent_linear")):
            want = base["score"].sel({"method": method, "metric": "rho_pred_pert"}).values.mean()
            assert row[col] == pytest.approx(want, rel=1e-5)
        pv = cell["score"].sel({"method": "pertvae"})
        assert row["delta_pearson"] == pytest.approx(pv.sel(metric="delta_pearson").values.mean(), rel=1e-5)
        want_z = pv.sel(metric="rho_pred_pert_z").values.mean()
        assert row["rho_pred_pert_z"] == pytest.approx(want_z, rel=1e-5)
    cells = [ds.sel(model="pertvae", drug=d, latent=100) for d in DRUGS]
    p_t = [_corrected_t(c["rho_pred_pert"].values, c["rho_rec_pert"].values, *N_TT[d])
           for c, d in zip(cells, DRUGS, strict=True)]
    np.testing.assert_allclose(df["q_bh"], stats.false_discovery_control(p_t, method="bh"), rtol=1e-5)
    q = df.set_index("drug")["q_bh"]
    assert q["strong"] < 0.01 and q["inert"] > 0.05
    assert df.set_index("drug").loc["strong", "n_cell_lines"] == 50

    text = md.read_text()
    assert "PARTIAL" not in text
    assert "| drug | latent |" in text and "| strong | 100 | 50 | 10 |" in text
    tex = (tmp_path / "table1.tex").read_text()
    assert r"\begin{tabular}" in tex and "strong & 100" in tex
    head = next(x for x in tex.splitlines() if x.startswith("drug & "))   # the paper's symbols, no csv names
    assert r"$\rho_{rec,pert}$ & $\rho_{pred,pert}$ & $p$ Mann-Whitney" in head and "_" not in head.replace(
        "_{", "")
    caption = next(x for x in tex.splitlines() if x.startswith(r"\caption{"))
    assert r"($\rho_{rec,pert}$)" in caption and "rho\\_" not in caption
    for name in ("figure2.png", "drugs.png"):
        img = mpimg.imread(tmp_path / name)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    svg = (tmp_path / "figure2.svg").read_text()
    assert "<svg" in svg and "VAE" in svg and "PCA" in svg
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["timings"] == {"seconds": 1.5}  # the runner's content is kept
    assert info["partial"] is False
    assert info["report"]["planned"] == info["report"]["done"] == 3 * 10 * (1 + 3 + 3 + 1)
    assert info["report"]["missing"] == info["report"]["failed"] == 0


def test_partial_store_is_marked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = make_store(tmp_path)
    store = tmp_path / "results.zarr"
    st = ds["status"].values.copy()
    mi, di, li = MODELS.index("pertvae"), DRUGS.index("strong"), LATENTS.index(100)
    st[mi, di, li, [0, 1]] = ""          # not run yet
    st[mi, di, li, 2] = "failed"         # diverged
    st[MODELS.index("vae"), :, 0, :] = ""  # a whole VAE latent size not run
    ds["status"].values[:] = st
    ds[["status"]].to_zarr(str(store), mode="r+", consolidated=False)
    render_report(tmp_path)
    md = tmp_path / "table1.md"
    n_missing = 3 + len(DRUGS) * 10
    want = f"PARTIAL: {n_missing} of 240 fits missing (1 failed, {n_missing - 1} not run)"
    assert capsys.readouterr().out == ""   # the summary's first line; the run prints the summary once
    assert (tmp_path / "summary.txt").read_text().startswith(want)
    text = md.read_text()
    assert text.startswith("PARTIAL:")
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["partial"] is True
    assert info["report"]["missing"] == n_missing and info["report"]["failed"] == 1
    row = pd.read_csv(tmp_path / "table1.csv").set_index("drug").loc["strong"]
    assert row["n_splits"] == 7 and row["n_missing"] == 3 and row["n_failed"] == 1
    cell = ds.sel(model="pertvae", drug="strong", latent=100)
    rec, pred = cell["rho_rec_pert"].values[3:], cell["rho_pred_pert"].values[3:]
    assert row["p_mannwhitney"] == pytest.approx(stats.mannwhitneyu(pred, rec, alternative="greater").pvalue,
                                                 rel=1e-5)
    assert row["rho_pred_pert"] == pytest.approx(pred.mean(), rel=1e-5)
    assert (tmp_path / "table1.tex").read_text().startswith("% PARTIAL:")
    assert (tmp_path / "figure2.png").exists() and (tmp_path / "drugs.png").exists()


def test_planned_from_grid_attr_when_no_planned_coord(tmp_path: Path) -> None:
    make_store(tmp_path, with_planned=False)
    render_report(tmp_path)
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["report"]["planned"] == 240 and info["partial"] is False


def test_store_without_pertvae_still_renders(tmp_path: Path) -> None:
    """A run of Figure 2's models alone gets Figure 2 and no empty Table 1, benchmark or forest plot."""
    ds = make_store(tmp_path)
    sub = ds.sel(model=["vae", "pca"])
    sub.to_zarr(str(tmp_path / "results.zarr"), zarr_format=3, mode="w", consolidated=False)
    summary = render_report(tmp_path).read_text()
    assert (tmp_path / "figure2.png").exists() and "figure2.png" in summary
    for name in ("table1.md", "table1.csv", "table1.tex", "benchmark.md", "drugs.png", "forest.png"):
        assert not (tmp_path / name).exists() and name not in summary, name


@pytest.mark.parametrize(("models", "files", "absent"), [
    (["baselines"], ["benchmark.md", "drugs.png", "scores.csv", "comparisons.csv"],
     ["table1.md", "table1.csv", "table1.tex", "figure2.png", "forest.png"]),
    (["pertvae", "baselines"], ["table1.md", "benchmark.md", "drugs.png", "forest.png"], ["figure2.png"]),
])
def test_a_run_writes_only_what_its_models_give(tmp_path: Path, models: list[str], files: list[str],
                                                absent: list[str]) -> None:
    """A --models baselines run has no PertVAE to put in Table 1 (PertVAE against its own reconstruction)
    and no reconstruction model for Figure 2: neither is written nor listed in the summary, while the
    benchmark of the methods it ran is."""
    ds = make_store(tmp_path)
    ds.sel(model=models).to_zarr(str(tmp_path / "results.zarr"), zarr_format=3, mode="w", consolidated=False)
    summary = render_report(tmp_path).read_text()
    for name in files:
        assert (tmp_path / name).exists(), name
    for name in absent:
        assert not (tmp_path / name).exists() and name not in summary, name
    assert "drugs.png" in summary and summary.startswith("Result:\n")
    listed = json.loads((tmp_path / "run.json").read_text())["report"]["files"]
    assert not set(absent) & set(listed) and set(files) <= set(listed)


def test_cli_prints_table_and_errors_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no results.zarr" in err and str(tmp_path) in err
    with pytest.raises(ReportError, match="no results.zarr"):
        render_report(tmp_path / "nowhere")
    make_store(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "harness.report", str(tmp_path)], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Result:\n") and "benchmark.md" in proc.stdout  # the headline, the files
    assert proc.stdout == (tmp_path / "summary.txt").read_text()
    assert "| drug |" not in proc.stdout  # the wide tables stay in their files


def _score(ds: xr.Dataset, drug: str, method: str, metric: str) -> np.ndarray:
    model = "pertvae" if method.startswith("pertvae") else "baselines"
    return ds["score"].sel({"model": model, "drug": drug, "latent": 100, "method": method,
                            "metric": metric}).values


def test_scores_and_comparisons_match_direct_computation(tmp_path: Path) -> None:
    ds = make_store(tmp_path)
    render_report(tmp_path)
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert list(scores.columns[:7]) == ["drug", "latent", "repeat", "fold", "method", "metric", "value"]
    assert len(scores) == len(DRUGS) * 10 * len(METHODS) * len(METRICS) and not scores["partial"].any()
    one = scores.query("drug == 'weak' and method == 'ridge_delta' and metric == 'mse_z' and repeat == 1 "
                       "and fold == 3")
    assert one["value"].item() == pytest.approx(_score(ds, "weak", "ridge_delta", "mse_z")[8])

    allcomp = pd.read_csv(tmp_path / "comparisons.csv")
    assert list(allcomp.columns[:12]) == ["drug", "latent", "metric", "kind", "reference", "method",
                                          "mean_diff", "ci_low", "ci_high", "p_wilcoxon", "p_corrected_t",
                                          "q_bh"]
    comp = allcomp[allcomp["kind"] == "versus"]
    assert set(comp["method"]) == set(METHODS) - {"pertvae"}
    assert "delta_pearson_ablated" not in set(allcomp["metric"])
    for metric, higher in (("delta_pearson", True), ("mse_z", False)):
        for method in ("ridge_delta", "train_mean"):
            for drug in DRUGS:
                a, b = _score(ds, drug, "pertvae", metric), _score(ds, drug, method, metric)
                n_train, n_test = N_TT[drug]
                d = a - b
                se = math.sqrt((1 / d.size + n_test / n_train) * d.var(ddof=1))
                row = comp.query("drug == @drug and metric == @metric and method == @method").iloc[0]
                assert row["mean_diff"] == pytest.approx(d.mean(), rel=1e-5, abs=1e-9)
                half = stats.t.ppf(0.975, d.size - 1) * se
                assert row["ci_low"] == pytest.approx(d.mean() - half, rel=1e-5, abs=1e-9)
                assert row["ci_high"] == pytest.approx(d.mean() + half, rel=1e-5, abs=1e-9)
                better, worse = (a, b) if higher else (b, a)
                assert row["p_wilcoxon"] == pytest.approx(
                    stats.wilcoxon(better, worse, alternative="greater").pvalue, rel=1e-5)
                t = (better - worse).mean() / se
                assert row["p_corrected_t"] == pytest.approx(stats.t.sf(t, d.size - 1), rel=1e-5)
                assert row["p_corrected_t_worse"] == pytest.approx(stats.t.sf(-t, d.size - 1), rel=1e-5)
                assert row["n_better"] + row["n_worse"] == 10
                assert row["n_better"] == int(((better - worse) > 0).sum())
        # one family per metric: every drug x method x direction, better and worse together
        fam = comp[comp["metric"] == metric]
        q = stats.false_discovery_control(np.concatenate([fam["p_corrected_t"], fam["p_corrected_t_worse"]]),
                                          method="bh")
        np.testing.assert_allclose(fam["q_bh"], q[: len(fam)], rtol=1e-5)
        np.testing.assert_allclose(fam["q_bh_worse"], q[len(fam):], rtol=1e-5)
    gains = allcomp[allcomp["kind"] == "cell_gain"]  # each method against its own ablation
    assert set(gains["metric"]) == {"delta_pearson"} and set(gains["reference"]) == set(METHODS)
    g = gains.query("drug == 'strong' and reference == 'ridge_delta'").iloc[0]
    want = (_score(ds, "strong", "ridge_delta", "delta_pearson")
            - _score(ds, "strong", "ridge_delta", "delta_pearson_ablated")).mean()
    assert g["method"] == "ridge_delta (ablated)" and g["mean_diff"] == pytest.approx(want, rel=1e-5)

    bench = (tmp_path / "benchmark.md").read_text()
    strong = next(line for line in bench.splitlines() if line.startswith("| strong |"))
    assert "| 0.800 |" in strong and strong.count("**") == 2  # the ceiling; one best method, in bold
    assert strong.split("|")[10].strip().startswith("**")  # ridge_delta
    cells = [c.strip() for c in strong.split("|")]
    r = comp.query("drug == 'strong' and metric == 'delta_pearson' and method == 'ridge_delta'").iloc[0]
    assert cells[11] == "ridge_delta"  # the best, and PertVAE's distance to it with its interval
    assert cells[12] == (f"{r['mean_diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}], behind on "
                         f"{r['n_worse']} of 10 splits")
    assert r["mean_diff"] < 0
    assert ("PertVAE beats pertvae_rec, identity and train_mean; loses to ridge_delta; not distinguishable "
            "from mean_shift and pca_latent_linear (10 splits).") in strong
    inert = next(line for line in bench.splitlines() if line.startswith("| inert |"))
    assert "PertVAE not distinguishable from pertvae_rec, identity" in inert and "beats" not in inert
    weak = next(line for line in bench.splitlines() if line.startswith("| weak |"))
    assert "| n/a |" in weak and "Ceiling n/a: weak: too few replicates" in bench
    assert "(datasets.pairs)): strong: plate; inert: cyclic; weak: plate." in bench
    assert "cyclic fallback (the remaining replicates cycle over the cell line's controls" in bench
    gain_rows = [x for x in bench.split("(cell-specificity gain / retrieval)")[1].splitlines()
                 if x.startswith("| strong |")]
    n_ret = int(np.isfinite(_score(ds, "strong", "ridge_delta", "retrieval")).sum())
    assert gain_rows[0].startswith(f"| strong | {int(g['n_splits'])} / {n_ret} | ")
    assert ("Ground truth (synthetic cube): PertVAE predicts the change better than 'no change' (q < 0.05) "
            "for 2 of 2 drugs with a real effect and 0 of 1 null drugs.") in bench
    loss = next(line for line in bench.splitlines() if line.startswith("- strong: "))  # the losses, listed
    want = f"- strong: delta_pearson: ridge_delta {r['mean_diff']:+.3f} [{r['ci_low']:+.3f}, "
    assert loss.startswith(want)
    assert "; mse_z (pertvae_rec, identity, train_mean)" in loss
    assert "no method beats it" not in bench


def test_benchmark_of_a_partial_run_is_marked(tmp_path: Path) -> None:
    ds = make_store(tmp_path)
    st = ds["status"].values.copy()
    st[MODELS.index("baselines"), DRUGS.index("strong"), LATENTS.index(100), :4] = ""
    ds["status"].values[:] = st
    ds[["status"]].to_zarr(str(tmp_path / "results.zarr"), mode="r+", consolidated=False)
    render_report(tmp_path)
    assert (tmp_path / "benchmark.md").read_text().startswith("PARTIAL:")
    # partial per method (review 45b, item 11): the baselines, PertVAE against them; not PertVAE alone
    base = {"identity", "train_mean", "mean_shift", "pca_latent_linear", "ridge_delta"}
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert (scores["partial"] == scores["method"].isin(base)).all() and scores["partial"].any()
    comp = pd.read_csv(tmp_path / "comparisons.csv")
    named = comp["method"].str.removesuffix(" (ablated)").isin(base) | comp["reference"].isin(base)
    assert (comp["partial"] == named).all()
    comp = pd.read_csv(tmp_path / "comparisons.csv")
    assert (comp.query("drug == 'strong' and method == 'identity'")["n_splits"] == 6).all()


def test_a_store_attribute_that_is_not_json_is_one_error_line(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """benchmark.md's ceiling is read through harness.results.json_attr, as Table 1's attributes are: a
    damaged one stops the report with one line naming it, never a report without the ceiling."""
    import zarr

    make_store(tmp_path)
    zarr.open_group(str(tmp_path / "results.zarr"), mode="r+").attrs["ceiling"] = "{not json"
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "'ceiling'" in err and "not valid JSON" in err


def test_a_report_without_figures_still_lists_those_in_out(tmp_path: Path) -> None:
    """`report --no-figures` keeps the figures already in OUT, so its summary still points to them, and to
    none that is not there."""
    make_store(tmp_path)
    render_report(tmp_path, with_figures=False)
    summary = (tmp_path / "summary.txt").read_text()
    assert "drugs.png" not in summary and "figure2.png" not in summary and "table1.md" in summary
    render_report(tmp_path)
    render_report(tmp_path, with_figures=False)
    summary = (tmp_path / "summary.txt").read_text()
    assert all(name in summary for name in ("drugs.png", "forest.png", "figure2.png"))
    kept = [line for line in summary.splitlines() if line.strip().startswith(("drugs.png", "forest.png"))]
    assert kept and all(line.endswith(NOT_REDRAWN) for line in kept)   # perhaps stale: said so
    table = next(line for line in summary.splitlines() if line.strip().startswith("table1.md"))
    assert not table.endswith(NOT_REDRAWN)
