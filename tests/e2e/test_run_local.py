"""End to end on a real LocalCluster: complete store, report files, 1 vs 2 workers, rerun, refusal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.config import parse_args
from harness.contenders import contender, paper_methods
from harness.grid import POOLED
from harness.run import main
from tests.e2e import assert_same_numbers, load, planned, reference, tiny_args, tiny_cube

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    return tiny_cube(tmp_path_factory)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, cube):
    out = tmp_path_factory.mktemp("two") / "run"
    perf = out.parent / "perf.html"
    rc = main(tiny_args(cube, out, "--performance-report", str(perf), workers=2))
    return rc, out, perf


def test_two_workers_complete_store_and_report(two_workers, cube, capsys):
    rc, out, perf = two_workers
    assert rc == 0
    ds = load(out)
    mask = planned(ds).values
    # 2 drugs x 6 splits x (pertvae@3, baselines@3) + Figure 2 pooled: 6 splits x (vae@2, vae@3, pca@2, pca@3)
    assert list(ds.drug.values) == ["drugA", "drugB", POOLED]
    assert mask.sum() == 2 * 6 * 2 + 6 * 4
    assert (ds.status.values[mask] == "done").all()
    assert (ds.status.values[~mask] == "").all()
    pv = ds.sel(model="pertvae", latent=3, drug=["drugA", "drugB"])
    assert np.isfinite(pv.rho_pred_pert.values).all() and np.isfinite(pv.rho_rec_pert.values).all()
    assert np.isfinite(ds.sel(model="vae", drug=POOLED).rho_rec.values).all()
    assert np.isfinite(ds.sel(model="pca", drug=POOLED).rho_rec.values).all()
    # the pooled PCA is the direct computation on both drugs' pairs, split by cell line
    from harness.tasks import drug_data, drug_splits, split_data
    from pertvae_core.api import evaluate_pca

    cfg = parse_args(tiny_args(cube, out))
    dd = drug_data(str(cube), POOLED, cfg)
    assert len(dd.x1) == sum(len(drug_data(str(cube), d, cfg).x1) for d in ("drugA", "drugB"))
    sp = drug_splits(dd, cfg)[4]
    want = evaluate_pca([split_data(dd, sp)], 2)[0]["rho_rec"]
    assert ds.rho_rec.sel(model="pca", drug=POOLED, latent=2, split=4).item() == want
    assert "pooled" in json.loads(ds.attrs["config"])["science"]["figure2_scope"]
    bl = ds.sel(model="baselines", latent=3, drug=["drugA", "drugB"])
    for method in ("identity", "train_mean", "mean_shift", "pca_latent_linear", "ridge_delta"):
        sc = bl.score.sel({"method": method})
        assert np.isfinite(sc.sel(metric=["rho_pred_pert", "rho_pred_pert_z", "mse_z"]).values).all(), method
    assert np.isfinite(pv.score.sel({"method": ["pertvae", "pertvae_rec"], "metric": "mse_z"}).values).all()
    workers = set(ds.worker.values[mask])
    assert all(w.startswith("tcp://") for w in workers)
    for name in ("table1.csv", "table1.md", "table1.tex", "run.json", "scores.csv", "comparisons.csv",
                 "benchmark.md", "drugs.png"):
        assert (out / name).exists(), name
    info = json.loads((out / "run.json").read_text())
    assert info["counts"]["done"] == 48 and info["counts"]["failed"] == 0
    # each fit's worker recorded how it computed its products: fp32 (the demo's), none for PCA and baselines
    trained = np.isin(ds.model.values, ["pertvae", "vae"])[:, None, None, None] & mask
    assert (ds.products.values[trained] == "fp32").all() and (ds.products.values[mask & ~trained] == "").all()
    line = "Matrix products of the trained models, as each fit's worker computed them: fp32 in 24 fits."
    assert line in (out / "table1.md").read_text() and line in (out / "benchmark.md").read_text()
    assert info["report"]["products"] == {"fp32": 24}
    assert perf.exists() and perf.stat().st_size > 0
    html = perf.read_text()
    assert "cdn.bokeh.org" not in html and "Bokeh" in html  # BokehJS inline: the report opens offline
    n_tt = json.loads(ds.attrs["n_train_test"])
    assert n_tt["drugA"] == [6.0, 4.0]   # 12 paired cell lines, 3 folds: 4 test, 2 validation, 6 trained on
    assert set(json.loads(ds.attrs["ceiling"])) == {"drugA", "drugB"}
    # genes.csv names each gene by the cube's id and symbol
    from datasets.cube import open_cube
    from harness.report import load as load_tables

    c = open_cube(cube)
    symbol = dict(zip(map(str, c["gene"].values), map(str, c["gene_symbol"].values), strict=True))
    genes = load_tables(out).genes
    assert len(genes) and (genes["gene_symbol"] == genes["gene"].map(symbol)).all()


def test_one_worker_gives_identical_numbers(two_workers, tmp_path_factory, cube):
    rc, out, _ = two_workers
    assert rc == 0
    assert_same_numbers(reference(tmp_path_factory.getbasetemp(), cube), load(out))


def test_rerun_recomputes_nothing(two_workers, cube, capsys):
    rc, out, _ = two_workers
    before = load(out)
    assert main(tiny_args(cube, out, workers=2)) == 0
    text = capsys.readouterr().out
    assert "0 to run" in text
    after = load(out)
    np.testing.assert_array_equal(before.fit_seconds.values, after.fit_seconds.values)
    assert (before.worker.values == after.worker.values).all()


def test_refuses_a_different_config_or_cube(two_workers, cube, tmp_path, capsys):
    rc, out, _ = two_workers
    assert main(tiny_args(cube, out, "--lr", "0.05")) == 2
    err = capsys.readouterr().err
    assert "different config" in err and "lr" in err
    from tests.e2e import make_tiny_cube

    other = make_tiny_cube(tmp_path / "other.zarr", seed=1)
    assert main(tiny_args(other, out)) == 2
    assert "different dataset" in capsys.readouterr().err


def test_bad_input_is_a_clear_error(cube, tmp_path, capsys):
    assert main(tiny_args(cube, tmp_path / "o", "--drugs", "drugA", "nosuchdrug")) == 2
    assert "nosuchdrug" in capsys.readouterr().err
    assert main(tiny_args(tmp_path / "missing.zarr", tmp_path / "o")) == 2
    assert "missing.zarr" in capsys.readouterr().err
    assert main(["--n-folds", "1"]) == 2
    assert "n_folds" in capsys.readouterr().err
    assert main(tiny_args(cube, tmp_path / "o2", "--n-folds", "13")) == 2
    assert "drugA" in capsys.readouterr().err


def test_in_process_cluster_none_matches(tmp_path_factory, cube, tmp_path):
    out = tmp_path / "none"
    assert main(tiny_args(cube, out, "--models", "pca", "baselines", cluster="none")) == 0
    ref = reference(tmp_path_factory.getbasetemp(), cube)
    ds = load(out)
    own = (*contender("baselines").methods, *paper_methods(["pca", "baselines"]))   # its models' alone
    assert tuple(str(x) for x in ds["method"].values) == own
    ref = ref.sel({"method": [str(x) for x in ds["method"].values]})   # a dict: sel's method= is its fill
    for m in ("pca", "baselines"):
        for v in ("rho_rec", "score"):
            # the same methods (the store has Figure 2's store-only methods of its own run's models)
            want = ref[v].sel(model=m).sel({"method": ds.method.values} if v == "score" else {})
            np.testing.assert_array_equal(ds[v].sel(model=m).values, want.values)


@pytest.mark.slow
def test_demo_preset_reduced_finds_the_effective_drugs(tmp_path):
    """The demo preset on 3 of its drugs (2 with a real effect, 1 without): Table 1 separates them."""
    import pandas as pd

    from datasets.synthetic import generate

    truth = json.loads(generate(preset="demo", seed=0).attrs["ground_truth"])
    effective = sorted((d for d, t in truth.items() if t["effective"]), key=lambda d: -truth[d]["strength"])
    null = [d for d, t in truth.items() if not t["effective"]]
    assert effective and null, truth
    drugs = [*effective[:2], null[0]]
    out = tmp_path / "demo"
    assert main(["--preset", "demo", "--out", str(out), "--drugs", *drugs, "--no-progress",
                 "--dashboard-address", ":0"]) == 0
    table = pd.read_csv(out / "table1.csv")
    pv = table.dropna(subset=["rho_pred_pert"])
    p = dict(zip(pv.drug, pv.p_mannwhitney, strict=True))
    for d in effective[:2]:
        assert p[d] < 0.05, (d, p)
    assert p[null[0]] >= 0.05, p
    comp = pd.read_csv(out / "comparisons.csv").query("metric == 'delta_pearson' and method == 'identity'")
    q = dict(zip(comp.drug, comp.q_bh, strict=True))
    for d in effective[:2]:
        assert q[d] < 0.05, (d, q)  # PertVAE predicts the change
    assert q[null[0]] >= 0.05, q
    assert "Ground truth (synthetic cube)" in (out / "benchmark.md").read_text()


def test_drugs_accept_case_punctuation_and_synonyms(cube, tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(tiny_args(cube, out, "--models", "baselines", "--drugs", "DRUG-a", cluster="none")) == 0
    said = capsys.readouterr().out
    assert "--drugs: 'DRUG-a' is the cube's 'drugA' (name, ignoring case and punctuation)" in said
    ds = load(out)
    assert list(ds.drug.values) == ["drugA"]
    assert json.loads(ds.attrs["config"])["science"]["drugs"] == ["drugA"]   # resumes under either spelling
    assert main(tiny_args(cube, out, "--models", "baselines", "--drugs", "drugA", cluster="none")) == 0
    assert "0 to run" in capsys.readouterr().out
