"""ResultStore's write path: per-fit chunks of the per-cell-line and per-gene scores (layout 2), stores of
layout 1 (one chunk per cell) opened, written and repaired as before, stores of layout 2 (the paper's
metrics as variables of their own) read as layout 3 and converted on resume, rows written by a background
writer, and the readers harness.report and harness.benchmark use."""

from __future__ import annotations

import os
import shutil
import threading
import time
import warnings

import numpy as np
import pytest
import xarray as xr
import zarr

import harness.store as store_mod
from harness.config import make_config
from harness.results import StoreReadError, json_attr, load_results, paper_metric, planned_mask
from harness.store import DETAIL_VARS, GENE_VAR, LAYOUT, PAPER_VARS, ResultStore
from pertvae_core.evaluation import Scores

CELLS, GENES = ["c1", "c2", "c3"], ["g1", "g2", "g3", "g4"]


@pytest.fixture
def cfg():
    return make_config("demo", models=["pertvae", "pca"], latents_pertvae=[4], latents_pca=[2, 4],
                       n_repeats=2, n_folds=3, figure2_scope="per-drug")


def _open(out, cfg, **kw) -> ResultStore:
    return ResultStore.open(out, cfg, "fp", drugs=["dA", "dB"], cell_lines=CELLS, genes=GENES, **kw)


def _detail(seed: int) -> Scores:
    r = np.random.default_rng(seed)
    return Scores(summary={}, cell_lines=("c3", "c1"), per_cell={"delta_pearson": r.normal(size=2)},
                  per_gene={k: r.normal(size=len(GENES)) for k in ("n_cells", "sum_predicted", "sum_observed",
                                                                   "sum_predicted2", "sum_observed2",
                                                                   "sum_cross")})


def _row(drug, repeat, fold, seed=0, model="pertvae", latent=4):
    return dict(model=model, drug=drug, latent=latent, repeat=repeat, fold=fold, status="done", reason="",
                worker="w", slurm_job_id="", fit_seconds=1.0, rho_rec=0.1 * seed,
                scores={"pertvae": {"delta_pearson": 0.1 * seed}}, detail={"pertvae": _detail(seed)})


def _to_layout1(path) -> None:
    """Rewrite a new, empty store as one written before layout 2: every variable one chunk per cell."""
    ds = xr.open_zarr(path).load()
    del ds.attrs["store_layout"]
    enc = {v: {"chunks": (1, 1, 1, ds.sizes["split"], *ds[v].shape[4:])} for v in ds.data_vars}
    old = path.with_name("old.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # consolidated metadata, as harness.store writes it
        ds.to_zarr(old, zarr_format=3, mode="w", consolidated=True, encoding=enc)
    shutil.rmtree(path)
    os.rename(old, path)


def _gene(path, drug, split) -> np.ndarray:
    ds = xr.open_zarr(path)
    sel = {"model": "pertvae", "drug": drug, "latent": 4, "split": split, "method": "pertvae"}
    return ds[GENE_VAR].sel(sel).values


def test_new_stores_chunk_the_large_scores_per_fit(tmp_path, cfg):
    st = _open(tmp_path / "out", cfg)
    assert st.layout == LAYOUT == 3
    for v in DETAIL_VARS:
        assert st._group[v].chunks[:4] == (1, 1, 1, 1)
    st.write([_row("dB", 1, 2, seed=3)])
    files = [p for p in (st.path / GENE_VAR).rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert len(files) == 1   # the fit's own chunk, not its cell's six splits
    np.testing.assert_array_equal(_gene(st.path, "dB", 5)[1], _detail(3).per_gene["sum_predicted"])


def test_a_layout1_store_is_written_resumed_and_repaired_as_before(tmp_path, cfg):
    out = tmp_path / "out"
    _to_layout1(_open(out, cfg).path)
    st = _open(out, cfg)
    assert st.layout == 1 and st._per_fit == ()
    st.write([_row("dA", 0, 1, seed=1)])
    st.write([_row("dA", 1, 0, seed=2), _row("dB", 0, 0, seed=4)])
    again = _open(out, cfg)
    assert len(again.done_keys()) == 3 and not again.repair().cells
    path = out / "results.zarr"
    np.testing.assert_array_equal(_gene(path, "dA", 1)[5], _detail(1).per_gene["sum_cross"])
    np.testing.assert_array_equal(_gene(path, "dA", 3)[1], _detail(2).per_gene["sum_predicted"])
    chunk = out / "results.zarr" / GENE_VAR / "c" / "0" / "0" / "1" / "0" / "0" / "0" / "0"
    assert chunk.is_file()   # one chunk for the cell's splits, as layout 1 has it
    chunk.write_bytes(b"garbage")
    rep = _open(out, cfg).repair()
    assert rep.cells == {("pertvae", "dA", 4): ["gene_score: unreadable chunk"]} and rep.n_fits == 2


def test_a_missing_or_garbage_per_fit_chunk_resets_its_cell(tmp_path, cfg):
    st = _open(tmp_path / "out", cfg)
    st.write([_row("dA", 0, s, seed=s) for s in range(3)])
    chunks = sorted(p for p in (st.path / "cell_score").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunks[1].unlink()
    gene = sorted(p for p in (st.path / GENE_VAR).rglob("*") if p.is_file() and p.name != "zarr.json")
    gene[2].write_bytes(os.urandom(64))
    rep = ResultStore(st.path).repair()
    assert rep.cells == {("pertvae", "dA", 4): ["cell_score: chunk missing", "gene_score: unreadable chunk"]}
    assert rep.n_fits == 3 and not ResultStore(st.path).done_keys()


def _wait(pred, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.02)
    return pred()


def test_background_writes_reach_the_disk_without_a_call_and_reads_wait_for_them(tmp_path, cfg, monkeypatch):
    st = _open(tmp_path / "out", cfg, background=True)
    st.write([_row("dA", 0, 0)])
    assert _wait(lambda: len(ResultStore(st.path).done_keys()) == 1)   # the writer thread wrote it
    go = threading.Event()
    real_sync = store_mod.sync

    def gated(coro):   # the writer thread waits for ``go`` before it writes
        if threading.current_thread().name == "results.zarr writer":
            go.wait(30)
        return real_sync(coro)

    monkeypatch.setattr(store_mod, "sync", gated)
    st.write([_row("dA", 0, 1)])            # the writer holds it ...
    st.write([_row("dA", 0, 2), _row("dB", 1, 1)])   # ... and keeps these meanwhile
    assert len(ResultStore(st.path).done_keys()) == 1
    go.set()
    assert st.counts()["done"] == 4   # a read writes every kept row first
    assert len(ResultStore(st.path).done_keys()) == 4


def test_a_failed_background_write_is_raised_on_the_driver_and_its_rows_kept(tmp_path, cfg, monkeypatch):
    st = _open(tmp_path / "out", cfg, background=True)
    st.write([_row("dA", 0, 0)])
    st.flush()   # on disk before the disk "fills" (else the writer thread may meet the full disk with it)
    real = ResultStore._write_entries

    async def full(self, entries):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ResultStore, "_write_entries", full)
    st.write([_row("dA", 0, 1)])
    assert _wait(lambda: st._error is not None)
    with pytest.raises(OSError, match="No space"):   # the next write raises it, its own rows not taken
        st.write([_row("dA", 0, 2)])
    monkeypatch.setattr(ResultStore, "_write_entries", real)
    st.flush()   # the row whose background write failed
    assert ResultStore(st.path).done_keys() == st.done_keys() and len(st.done_keys()) == 2


def test_bad_rows_raise_before_anything_is_written(tmp_path, cfg):
    st = _open(tmp_path / "out", cfg, background=True)
    bad = _row("dA", 0, 1)
    bad["detail"] = {"pertvae": Scores(summary={}, cell_lines=("zz",), per_cell={}, per_gene={})}
    with pytest.raises(ValueError, match="cell line"):
        st.write([_row("dA", 0, 0), bad])
    assert st.counts()["done"] == 0


def test_the_readers_report_and_benchmark_use(tmp_path, cfg):
    with pytest.raises(StoreReadError, match="no results.zarr"):
        load_results(tmp_path)
    st = _open(tmp_path / "out", cfg)
    st.write([_row("dB", 0, 2, seed=2), _row("dA", 1, 1, model="pca", latent=2)])
    ds = load_results(tmp_path / "out")
    plain = xr.open_zarr(st.path).load()
    for v in ("status", "score", "method_status"):
        assert ds[v].dims == plain[v].dims
        np.testing.assert_array_equal(ds[v].values, plain[v].values)
    np.testing.assert_array_equal(ds[GENE_VAR].values, plain[GENE_VAR].values)
    assert planned_mask(ds).sum() == st.counts()["planned"]
    assert json_attr(ds, "grid") == {"pertvae": [4], "pca": [2, 4]}
    ds.attrs["grid"] = "{not json"
    with pytest.raises(StoreReadError, match="not valid JSON"):
        json_attr(ds, "grid")


def test_resume_opens_only_a_store_of_the_same_config_and_data(tmp_path, cfg):
    import dataclasses

    from harness.store import StoreDamagedError

    out = tmp_path / "out"
    kw = {"drugs": ["dA", "dB"], "genes": GENES}
    assert ResultStore.resume(out, cfg, "fp", **kw) is None   # nothing yet: harness.run creates it
    _open(out, cfg).write([_row("dA", 0, 0)])
    st = ResultStore.resume(out, cfg, "fp", **kw)
    assert st is not None and st.cell_lines == CELLS and len(st.done_keys()) == 1
    assert ResultStore.resume(out, cfg, "another-cube", **kw) is None
    assert ResultStore.resume(out, dataclasses.replace(cfg, lr=0.5), "fp", **kw) is None
    with pytest.raises(StoreDamagedError, match="coordinates"):
        ResultStore.resume(out, cfg, "fp", drugs=["dA", "dB"], genes=GENES[:2])


def test_the_cube_fingerprint_is_known_until_a_cube_file_changes(tmp_path, cfg):
    from harness.store import known_fingerprint

    cube = tmp_path / "cube.zarr"
    (cube / "expression").mkdir(parents=True)
    (cube / "expression" / "0").write_bytes(b"chunk")
    out = tmp_path / "out"
    assert known_fingerprint(out, cube) is None   # no store yet
    ResultStore.open(out, cfg, "cube-fp", drugs=["dA", "dB"], cube_path=cube)
    assert known_fingerprint(out, cube) == "cube-fp"
    (cube / "expression" / "1").write_bytes(b"another chunk")
    assert known_fingerprint(out, cube) is None   # a file added: the cube is read again


def _to_layout2(path) -> xr.Dataset:
    """Rewrite a store as one written before layout 3: the paper's metrics as variables of their own
    (PAPER_VARS), without PCA's store-only method and the rho_rec metric; returns the store before."""
    new = xr.open_zarr(path).load()
    old = new.drop_sel({"method": ["pca"], "metric": ["rho_rec"]})
    for key in PAPER_VARS:
        old[key] = (("model", "drug", "latent", "split"),
                    np.stack([paper_metric(new, str(m), key).values for m in new.model.values]))
    old.attrs["store_layout"] = 2
    enc = {v: {"chunks": (1, 1, 1, old.sizes["split"], *old[v].shape[4:])} for v in old.data_vars
           if v not in DETAIL_VARS}
    enc.update({v: {"chunks": (1, 1, 1, 1, *old[v].shape[4:])} for v in DETAIL_VARS})
    target = path.with_name("old.zarr")
    with warnings.catch_warnings(), zarr.config.set({"array.write_empty_chunks": True}):  # as a write does
        warnings.simplefilter("ignore", UserWarning)
        old.to_zarr(target, zarr_format=3, mode="w", consolidated=True, encoding=enc)
    shutil.rmtree(path)
    os.rename(target, path)
    return new


def test_a_layout2_store_is_read_as_layout3_and_converted_once_on_resume(tmp_path, cfg, capsys):
    out = tmp_path / "out"
    st = _open(out, cfg)
    pca = _row("dA", 1, 2, model="pca", latent=2)
    pca.update(rho_rec=0.75, rho_rec_pert=0.5, scores={}, detail={})
    st.write([_row("dB", 0, 2, seed=2) | {"rho_pred_pert": 0.3, "rho_rec_pert": 0.2}, pca])
    new = _to_layout2(st.path)
    assert {"rho_rec", "rho_rec_pert", "rho_pred_pert"} <= set(xr.open_zarr(st.path).data_vars)
    read = load_results(out)   # read as layout 3, nothing written
    assert not set(PAPER_VARS) & set(read.data_vars) and "rho_rec" in set(xr.open_zarr(st.path).data_vars)
    for v in ("score", "method_status", "cell_score", "gene_score"):
        np.testing.assert_array_equal(read[v].values, new[v].values, err_msg=v)
    assert read.score.sel({"model": "pca", "drug": "dA", "latent": 2, "split": 5, "method": "pca",
                           "metric": "rho_rec"}).item() == 0.75
    again = ResultStore.resume(out, cfg, "fp", drugs=["dA", "dB"], genes=GENES)
    assert "converting the result store from layout 2" in capsys.readouterr().out
    assert again is not None and again.layout == 3 and len(again.done_keys()) == 2
    disk = xr.open_zarr(st.path).load()
    assert not set(PAPER_VARS) & set(disk.data_vars) and disk.attrs["data_fingerprint"] == "fp"
    for v in ("score", "status", "method_status", "fit_seconds", "cell_score", "gene_score"):
        np.testing.assert_array_equal(disk[v].values, new[v].values, err_msg=v)
    assert not again.repair().cells and not list(tmp_path.glob("out/results.zarr.*"))
    again.write([_row("dA", 0, 0, seed=4)])
    assert len(ResultStore.resume(out, cfg, "fp", drugs=["dA", "dB"], genes=GENES).done_keys()) == 3
    assert "converting" not in capsys.readouterr().out   # once


@pytest.mark.parametrize("killed_after", ["first rename", "second rename"])
def test_a_conversion_killed_between_its_renames_loses_no_store(tmp_path, cfg, killed_after):
    """convert_layout renames the old store aside, the new one into place, then removes the old one: a kill
    after the first rename left no results.zarr (a report found no store, a run started over beside the
    old one); after the second, the old one stayed beside the new for good."""
    out = tmp_path / "out"
    st = _open(out, cfg)
    st.write([_row("dB", 0, 2, seed=2) | {"rho_pred_pert": 0.3, "rho_rec_pert": 0.2}])
    _to_layout2(st.path)
    aside = st.path.with_name(f"{st.path.name}.before-layout-{LAYOUT}")
    if killed_after == "first rename":
        os.rename(st.path, aside)
    else:
        shutil.copytree(st.path, tmp_path / "layout2")
        store_mod.convert_layout(st.path)
        os.rename(tmp_path / "layout2", aside)
    assert load_results(out).score.notnull().any()   # the report reads it
    again = ResultStore.resume(out, cfg, "fp", drugs=["dA", "dB"], genes=GENES)
    assert again is not None and again.layout == 3 and len(again.done_keys()) == 1
    assert not aside.exists() and not list(tmp_path.glob("out/results.zarr.*"))
