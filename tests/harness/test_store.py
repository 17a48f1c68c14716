"""ResultStore: exact layout read by xr.open_zarr, region writes, resume bookkeeping, refusal."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
import xarray as xr

from harness.config import make_config, science_key
from harness.grid import POOLED, FitKey, store_drugs
from harness.results import paper_metric
from harness.store import FLOAT_VARS, PAPER_VARS, STR_VARS, ResultStore, StoreMismatchError, config_mismatch
from pertvae_core.evaluation import METRICS
from pertvae_core.methods import METHODS


@pytest.fixture
def cfg():
    return make_config("demo", models=["pertvae", "pca"], latents_pertvae=[4], latents_pca=[2, 4],
                       n_repeats=2, n_folds=3, figure2_scope="per-drug")


def _open(tmp_path, cfg, fp="cube-fp"):
    return ResultStore.open(tmp_path / "out", cfg, fp, drugs=["dA", "dB"], n_cell_lines={"dA": 10, "dB": 12},
                            n_train_test={"dA": [8.0, 2.0], "dB": [9.6, 2.4]})


def _row(model, drug, latent, repeat, fold, **kw):
    row = dict(model=model, drug=drug, latent=latent, repeat=repeat, fold=fold, status="done", reason="",
               worker="tcp://w1", slurm_job_id="")
    row.update(kw)
    return row


def test_layout_matches_the_contract(tmp_path, cfg):
    _open(tmp_path, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # reading must be quiet (consolidated metadata, stable dtypes)
        ds = xr.open_zarr(tmp_path / "out" / "results.zarr")
    # the methods: the benchmark's, then PCA's reconstruction (Figure 2's, in the store only); the metrics:
    # the benchmark's, then the paper's rho_rec (rho_rec_pert is a reconstruction's rho_pred_pert)
    assert dict(ds.sizes) == {"model": 2, "drug": 2, "latent": 2, "split": 6, "method": len(METHODS) + 1,
                              "metric": len(METRICS) + 1, "cell_line": 0, "gene_metric": 6, "gene": 0}
    assert tuple(ds.method.values) == (*METHODS, "pca") and tuple(ds.metric.values) == (*METRICS, "rho_rec")
    assert ds.score.dims == ("model", "drug", "latent", "split", "method", "metric")
    assert np.isnan(ds.score.values).all() and ds.score.encoding["chunks"] == (1, 1, 1, 6, 8, 9)
    assert not set(PAPER_VARS) & set(ds.data_vars) and ds.attrs["store_layout"] == 3
    assert list(ds.model.values) == ["pertvae", "pca"]
    assert list(ds.drug.values) == ["dA", "dB"]
    assert list(ds.latent.values) == [2, 4] and ds.latent.dtype.kind == "i"
    assert list(ds.split.values) == list(range(6))
    assert list(ds.repeat.values) == [0, 0, 0, 1, 1, 1]
    assert list(ds.fold.values) == [0, 1, 2, 0, 1, 2]
    for v in FLOAT_VARS:
        assert ds[v].dims == ("model", "drug", "latent", "split")
        assert ds[v].dtype == np.float64
        assert np.isnan(ds[v].values).all()
    for v in STR_VARS:
        assert ds[v].dims == ("model", "drug", "latent", "split")
        assert (ds[v].values == "").all()
    assert ds.planned.dims == ("model", "drug", "latent")
    assert ds.planned.values.tolist() == [[[False, True]] * 2, [[True, True]] * 2]
    assert json.loads(ds.attrs["config"])["science"] == science_key(cfg)
    assert json.loads(ds.attrs["n_cell_lines"]) == {"dA": 10, "dB": 12}
    assert json.loads(ds.attrs["n_train_test"])["dB"] == [9.6, 2.4]
    assert ds.attrs["fingerprint"].startswith("cube-fp+")
    versions = json.loads(ds.attrs["versions"])
    assert "torch" in versions
    assert versions["bf16 products on this CPU, if a run asks for them"] in (
        "operands cast to bfloat16; products under 3 MFLOP a model in float32",
        "operands cast to bfloat16, emulated (no bfloat16 instructions); products under 3 MFLOP a model in "
        "float32",
        "oneDNN's bfloat16 arithmetic on float32 operands (AMX), or operands cast to bfloat16 in "
        "torch.compile'd training steps; products under 3 MFLOP a model in float32 in both")
    assert ds.status.encoding["chunks"] == (1, 1, 1, 6)


def test_pooled_scope_plans_figure2_on_the_pooled_drug_alone(tmp_path, cfg):
    pooled = dataclasses.replace(cfg, figure2_scope="pooled")
    st = ResultStore.open(tmp_path / "out", pooled, "cube-fp", drugs=store_drugs(pooled, ["dA", "dB"]))
    ds = xr.open_zarr(st.path)
    assert list(ds.drug.values) == ["dA", "dB", POOLED]
    # pertvae at latent 4 on the two drugs; pca at latents 2 and 4 on POOLED alone
    assert ds.planned.values.tolist() == [[[False, True], [False, True], [False, False]],
                                          [[False, False], [False, False], [True, True]]]
    assert st.counts()["planned"] == (2 + 2) * 6
    with pytest.raises(StoreMismatchError, match="figure2_scope"):
        _open(tmp_path, cfg)


def test_scores_land_in_their_method_and_metric(tmp_path, cfg):
    st = _open(tmp_path, cfg)
    scores = {"pertvae": {"delta_pearson": 0.4, "mse_z": 0.9}, "pertvae_rec": {"delta_pearson": 0.1}}
    st.write([_row("pertvae", "dB", 4, 1, 0, rho_pred_pert=0.5, scores=scores)])
    ds = xr.open_zarr(tmp_path / "out" / "results.zarr").load()
    cell = ds.score.sel({"model": "pertvae", "drug": "dB", "latent": 4, "split": 3})
    assert cell.sel({"method": "pertvae", "metric": "delta_pearson"}).item() == 0.4
    assert cell.sel({"method": "pertvae", "metric": "mse_z"}).item() == 0.9
    assert cell.sel({"method": "pertvae_rec", "metric": "delta_pearson"}).item() == 0.1
    assert cell.sel({"method": "pertvae", "metric": "rho_pred_pert"}).item() == 0.5   # the paper's, too
    assert int(np.isfinite(ds.score.values).sum()) == 4
    with pytest.raises(ValueError, match="unknown method"):
        st.write([_row("pertvae", "dB", 4, 1, 1, scores={"mystery": {"delta_pearson": 1.0}})])


def test_write_touches_only_its_cells(tmp_path, cfg):
    st = _open(tmp_path, cfg)
    c0 = st.counts()
    assert c0 == {"planned": 2 * 6 * 3, "done": 0, "failed": 0, "failed_in_methods": 0, "not_run": 36,
                  "missing": 36}
    st.write([_row("pertvae", "dA", 4, 1, 2, rho_rec_pert=0.25, rho_pred_pert=0.5, epochs=7, fit_seconds=1.5),
              _row("pertvae", "dA", 4, 0, 0, status="failed", reason="loss diverged (nan)")])
    st.write([_row("pca", "dB", 2, r, k, rho_rec=0.1 * (r * 3 + k)) for r in range(2) for k in range(3)])
    ds = xr.open_zarr(st.path).load()
    cell = ds.sel(model="pertvae", drug="dA", latent=4)
    assert cell.status.values.tolist() == ["failed", "", "", "", "", "done"]
    assert cell.reason.values[0] == "loss diverged (nan)"
    pred = paper_metric(ds, "pertvae", "rho_pred_pert").sel(drug="dA", latent=4).values
    rec = cell.score.sel({"method": "pertvae_rec", "metric": "rho_pred_pert"}).values   # rho_rec_pert
    assert pred[5] == 0.5 and rec[5] == 0.25 and cell.epochs.values[5] == 7
    assert np.isnan(pred[:5]).all() and np.isnan(rec[:5]).all()
    pca = ds.score.sel({"model": "pca", "drug": "dB", "latent": 2, "method": "pca", "metric": "rho_rec"})
    np.testing.assert_allclose(pca.values, 0.1 * np.arange(6))
    np.testing.assert_array_equal(paper_metric(ds, "pca", "rho_rec").sel(drug="dB", latent=2), pca.values)
    # nothing else was touched
    others = ds.status.values.copy()
    others[0, 0, 1, :] = ""
    others[1, 1, 0, :] = ""
    assert (others == "").all()
    assert st.counts() == {"planned": 36, "done": 7, "failed": 1, "failed_in_methods": 0, "not_run": 28,
                           "missing": 29}
    assert FitKey("pertvae", "dA", 4, 1, 2) in st.done_keys()
    assert FitKey("pertvae", "dA", 4, 0, 0) not in st.done_keys()   # failed fits are retried on rerun
    df = st.to_dataframe()
    assert len(df) == 36 and (df.status == "done").sum() == 7


def test_reopen_same_config_keeps_results(tmp_path, cfg):
    st = _open(tmp_path, cfg)
    st.write([_row("pca", "dA", 4, 0, 1, rho_rec=0.9)])
    again = _open(tmp_path, dataclasses.replace(cfg, workers=5, cluster="none"))  # execution-only change
    assert again.done_keys() == {FitKey("pca", "dA", 4, 0, 1)}


def test_refuses_other_config_or_data(tmp_path, cfg):
    _open(tmp_path, cfg)
    with pytest.raises(StoreMismatchError, match=r"different config.*lr"):
        _open(tmp_path, dataclasses.replace(cfg, lr=0.5))
    with pytest.raises(StoreMismatchError, match="different dataset"):
        _open(tmp_path, cfg, fp="another-cube")


def test_bad_rows_are_rejected(tmp_path, cfg):
    st = _open(tmp_path, cfg)
    with pytest.raises(KeyError, match="not in"):
        st.write([_row("vae", "dA", 4, 0, 0)])
    with pytest.raises(ValueError, match="status"):
        st.write([_row("pca", "dA", 4, 0, 0, status="")])


def test_per_cell_line_and_per_gene_scores_land_in_their_cells(tmp_path, cfg):
    from pertvae_core.evaluation import GENE_METRICS, Scores

    st = ResultStore.open(tmp_path / "out", cfg, "fp", drugs=["dA", "dB"], cell_lines=["c1", "c2", "c3"],
                          genes=["g1", "g2"])
    det = Scores(summary={}, cell_lines=("c3", "c1"),
                 per_cell={"delta_pearson": np.array([0.3, 0.1]), "mse_z": np.array([2.0, 1.0])},
                 per_gene={"n_cells": np.array([2.0, 2.0]), "sum_predicted": np.array([0.5, -0.2]),
                           "sum_observed": np.array([1.0, -1.0]), "sum_predicted2": np.array([0.3, 0.1]),
                           "sum_observed2": np.array([1.0, 1.0]), "sum_cross": np.array([0.9, np.nan])})
    st.write([_row("pertvae", "dB", 4, 0, 2, scores={"pertvae": {"delta_pearson": 0.2}},
                   detail={"pertvae": det})])
    ds = xr.open_zarr(st.path)
    assert ds.cell_score.dims[-3:] == ("method", "metric", "cell_line")
    assert list(ds.gene_metric.values) == list(GENE_METRICS) and list(ds.gene.values) == ["g1", "g2"]
    cell = ds.cell_score.sel({"model": "pertvae", "drug": "dB", "latent": 4, "split": 2, "method": "pertvae"})
    np.testing.assert_array_equal(cell.sel(metric="delta_pearson").values, [0.1, np.nan, 0.3])
    np.testing.assert_array_equal(cell.sel(metric="mse_z").values, [1.0, np.nan, 2.0])
    gene = ds.gene_score.sel({"model": "pertvae", "drug": "dB", "latent": 4, "split": 2, "method": "pertvae"})
    np.testing.assert_array_equal(gene.sel(gene_metric="sum_predicted").values, [0.5, -0.2])
    np.testing.assert_array_equal(gene.sel(gene_metric="sum_cross").values, [0.9, np.nan])
    assert int(np.isfinite(ds.cell_score.values).sum()) == 4
    # a damaged per-gene chunk is found and its cell recomputed
    chunk = next(p for p in (st.path / "gene_score").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"garbage")
    rep = ResultStore(st.path).repair()
    assert rep.cells == {("pertvae", "dB", 4): ["gene_score: unreadable chunk"]} and rep.n_fits == 1
    assert not ResultStore(st.path).done_keys()
    with pytest.raises(ValueError, match="cell line"):
        bad = Scores(summary={}, cell_lines=("zz",), per_cell={"mse_z": np.array([1.0])},
                     per_gene=det.per_gene)
        st.write([_row("pertvae", "dA", 4, 0, 0, detail={"pertvae": bad})])


def test_a_store_holds_only_its_runs_methods_and_resumes_an_older_one(tmp_path, cfg):
    """A run's store carries the methods of its models (a pertvae + pca run: PertVAE's two); a store
    written before, with every built-in perturbation method, resumes with its fits; other methods do not."""
    from harness.contenders import paper_methods
    from harness.prepare import resolve_methods
    from harness.store import StoreDamagedError
    from pertvae_core.methods import PERTVAE_METHODS

    assert resolve_methods(cfg) == list(PERTVAE_METHODS)
    old = _open(tmp_path, cfg)   # methods=METHODS: the earlier layout
    assert old.methods == [*METHODS, *(m for m in paper_methods(cfg.models) if m not in METHODS)]
    old.write([_row("pca", "dA", 4, 0, 1, rho_rec=0.9)])
    again = ResultStore.resume(tmp_path / "out", cfg, "cube-fp", drugs=["dA", "dB"], genes=[],
                               methods=resolve_methods(cfg))
    assert again is not None and again.done_keys() == {FitKey("pca", "dA", 4, 0, 1)}
    with pytest.raises(StoreDamagedError, match="do not match"):
        ResultStore.resume(tmp_path / "out", cfg, "cube-fp", drugs=["dA", "dB"], genes=[],
                           methods=[*PERTVAE_METHODS, "mine"])


def test_a_renamed_plugin_is_a_mismatch_naming_it_not_a_damaged_store(tmp_path, cfg):
    """The same --method spec whose class changed its `name` since the store was written: the store is sound
    (not "cannot be trusted ... move it aside"), the run refuses naming the old and the new name."""
    from pertvae_core.methods import PERTVAE_METHODS

    kw = dict(drugs=["dA", "dB"], genes=[])
    ResultStore.open(tmp_path / "out", cfg, "cube-fp", methods=[*PERTVAE_METHODS, "shrunk_shift"], **kw)
    with pytest.raises(StoreMismatchError, match=r"own method\(s\) \['shrunk_shift'\].*now named "
                                                 r"\['renamed'\]") as e:
        ResultStore.resume(tmp_path / "out", cfg, "cube-fp", methods=[*PERTVAE_METHODS, "renamed"], **kw)
    assert "damaged" not in str(e.value) and "cannot be trusted" not in str(e.value)
    again = ResultStore.resume(tmp_path / "out", cfg, "cube-fp", methods=[*PERTVAE_METHODS, "shrunk_shift"],
                               **kw)
    assert again is not None


def test_a_worker_writes_its_fits_detail_and_the_driver_the_rest(tmp_path, cfg):
    """write_detail_at (a worker: harness.run.run_and_store) writes the per-fit chunks and strips the rows
    of their detail; the driver's write of those rows keeps them, writes the small values and the status.
    A fit whose status the driver never wrote is not done, whatever chunks it has; a row the store cannot
    take comes back whole, for the driver to write (and reject) as before."""
    from harness.store import DETAIL_STORED, write_detail_at
    from pertvae_core.evaluation import GENE_METRICS, Scores

    st = ResultStore.open(tmp_path / "out", cfg, "fp", drugs=["dA", "dB"], cell_lines=["c1", "c2"],
                          genes=["g1", "g2"])
    det = Scores(summary={}, cell_lines=("c2",), per_cell={"mse_z": np.array([2.0])},
                 per_gene={k: np.array([1.0, 2.0]) for k in GENE_METRICS})
    rows = [_row("pertvae", "dA", 4, 0, f, scores={"pertvae": {"mse_z": 2.0}}, detail={"pertvae": det},
                 fit_seconds=1.0) for f in (0, 1)]
    sent = write_detail_at(st.path, rows)
    assert all(r[DETAIL_STORED] and "detail" not in r for r in sent) and "detail" in rows[0]
    assert not ResultStore(st.path).done_keys()   # chunks on disk, no status: not done
    st.write(sent[:1])
    st.flush()
    ds = xr.open_zarr(st.path)
    at = {"model": "pertvae", "drug": "dA", "latent": 4, "method": "pertvae"}
    np.testing.assert_array_equal(ds.cell_score.sel({**at, "metric": "mse_z"}).values[:2], [[np.nan, 2]] * 2)
    gene = ds.gene_score.sel({**at, "gene_metric": "sum_cross"})
    np.testing.assert_array_equal(gene.values[:2], [[1, 2]] * 2)
    assert ds.score.sel({**at, "metric": "mse_z"}).values[0] == 2.0
    assert ResultStore(st.path).done_keys() == {FitKey("pertvae", "dA", 4, 0, 0)}
    assert not ResultStore(st.path).find_damage().cells
    bad = [_row("pertvae", "dA", 4, 1, 0, detail={"pertvae": dataclasses.replace(det, cell_lines=("zz",))})]
    back = write_detail_at(st.path, bad)
    assert DETAIL_STORED not in back[0] and "detail" in back[0]
    with pytest.raises(ValueError, match="cell line"):
        st.write(back)
    assert write_detail_at(tmp_path / "nowhere", rows)[0]["detail"]["pertvae"] is det   # the driver writes


def test_a_cell_reset_by_repair_is_not_written_back_from_what_the_writer_kept(tmp_path, cfg):
    """The writer keeps each small chunk it wrote (read once); a repair that resets a damaged cell drops
    them, so the next write to that cell starts from the reset chunk, not from the fits it had before."""
    st = ResultStore.open(tmp_path / "out", cfg, "fp", drugs=["dA", "dB"], cell_lines=["c1"], genes=["g1"])
    st.write([_row("pca", "dA", 2, 0, 0, fit_seconds=1.0)])
    chunk = next(p for p in (st.path / "test_loss").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"garbage")
    assert st.repair().n_fits == 1
    st.write([_row("pca", "dA", 2, 0, 1, fit_seconds=1.0)])
    assert ResultStore(st.path).done_keys() == {FitKey("pca", "dA", 2, 0, 1)}
    assert not ResultStore(st.path).find_damage().cells


def test_a_lost_status_chunk_is_damage_not_fits_never_run(tmp_path, cfg, capsys):
    """A cell whose status chunk (or the whole ``status`` directory, with its metadata) is gone while its
    values are there. Before: its done fits read as never run and were rerun unsaid, after a metadata repair
    that said '(no fit lost)'; after: the cell is damaged ('status: chunk missing'), its timed fits counted as
    lost, and the metadata line makes no such claim."""
    import shutil

    from harness.run import _repair

    st = ResultStore.open(tmp_path / "out", cfg, "fp", drugs=["dA", "dB"], cell_lines=["c1"], genes=["g1"])
    st.write([_row("pca", "dA", 2, 0, f, fit_seconds=1.0) for f in range(3)]
             + [_row("pertvae", "dB", 4, 0, 0, fit_seconds=2.0)])
    chunk = st.path / "status" / st._group["status"].metadata.encode_chunk_key((1, 0, 0, 0))
    assert chunk.is_file()
    chunk.unlink()
    rep = ResultStore(st.path).repair()
    assert rep.cells == {("pca", "dA", 2): ["status: chunk missing"]} and rep.n_fits == 3
    assert ResultStore(st.path).done_keys() == {FitKey("pertvae", "dB", 4, 0, 0)}
    assert not ResultStore(st.path).find_damage().cells

    shutil.rmtree(st.path / "status")
    rep = _repair(ResultStore(st.path))
    said = capsys.readouterr().out
    assert rep.metadata == {"status": "missing"} and rep.n_fits == 1, said
    assert "no fit lost" not in said and "1 done fit(s) lost" in said, said
    assert "status: chunk missing" in said, said
    assert not ResultStore(st.path).done_keys() and not ResultStore(st.path).find_damage().cells


def test_a_config_mismatch_gives_the_flags_that_resume(tmp_path):
    """A paper store made when its preset's default was max_epochs 200 (now 400), resumed by the same
    command, was refused with 'max_epochs: 200 (stored) vs 400 (now)' alone: the user typed no max_epochs.
    The error now gives the flags that resume it; none where no flag can (another scoring version)."""
    old = make_config("paper", max_epochs=200, latents_vae=(2, 5), drugs=("dA",), precision="fp32")
    _open(tmp_path, old)
    now = make_config("paper", precision="fp32")
    with pytest.raises(StoreMismatchError, match=r"To resume it, give --drugs dA --latents-vae 2 5 "
                                                 r"--max-epochs 200\. Use another --out"):
        _open(tmp_path, now)
    other_scoring = str(config_mismatch(tmp_path, {**science_key(old), "scoring": "1"}, old))
    assert "To resume" not in other_scoring and "scores fits otherwise" in other_scoring
    assert "scores fits otherwise" not in str(config_mismatch(tmp_path, science_key(old), now))
    resumed = make_config("paper", max_epochs=200, latents_vae=(2, 5), drugs=("dA",), precision="fp32")
    assert _open(tmp_path, resumed).done_keys() == set()
