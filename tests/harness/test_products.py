"""Each fit records how its worker computed its matrix products (the store's ``products``,
harness.tasks.products_of), an older store gets the variable on resume, and the report counts the done fits
of each way (harness.products: table1.md, benchmark.md, run.json, the fits table)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import xarray as xr

from harness.config import make_config
from harness.contenders import contender
from harness.info import describe_run
from harness.products import BF16_WORDS, LEAD, UNRECORDED, emulated_bf16_note, products_counts, products_line
from harness.report import fit_counts, fits_table, table1, table1_markdown
from harness.results import load_results
from harness.store import ResultStore
from harness.tasks import products_of
from pertvae_core import layers, train

CAST = "bf16: operands cast to bfloat16; products under 3 MFLOP a model in float32"
AMX = ("bf16: oneDNN's bfloat16 arithmetic on float32 operands (AMX; products under 3 MFLOP a model in "
       "float32)")


@pytest.fixture
def cfg():
    return make_config("demo", models=["pertvae", "pca"], latents_pertvae=[4], latents_pca=[2, 4],
                       n_repeats=2, n_folds=3, figure2_scope="per-drug", precision="bf16")


def _open(out, cfg) -> ResultStore:
    return ResultStore.open(out, cfg, "fp", drugs=["dA", "dB"], cell_lines=["c1"], genes=["g1"])


def _resume(out, cfg) -> ResultStore | None:
    return ResultStore.resume(out, cfg, "fp", drugs=["dA", "dB"], genes=["g1"])


def _row(drug, repeat, fold, products, model="pertvae", latent=4):
    return dict(model=model, drug=drug, latent=latent, repeat=repeat, fold=fold, status="done", reason="",
                worker="w", slurm_job_id="", fit_seconds=1.0, products=products)


def _without(path, *names: str) -> None:
    """Make a store one written before it had the variables ``names``: no such arrays, nor their entries in
    the consolidated metadata."""
    meta = json.loads((path / "zarr.json").read_text())
    for name in names:
        shutil.rmtree(path / name)
        del meta["consolidated_metadata"]["metadata"][name]
    (path / "zarr.json").write_text(json.dumps(meta))


def test_a_worker_records_how_it_computes_each_models_products(cfg, monkeypatch):
    monkeypatch.setattr(layers, "native_bf16", lambda device: True)   # emulated: test_precision.py
    for math, way in ((False, CAST), (True, AMX)):
        monkeypatch.setattr(layers, "CPU_BF16_MATH", math)
        assert products_of(cfg, contender("pertvae")) == way
        assert products_of(dataclasses.replace(cfg, precision="fp32"), contender("vae")) == "fp32"
        assert products_of(cfg, contender("pca")) == ""   # trains no model: no products to record
        assert products_of(cfg, contender("baselines")) == ""


def test_compiled_fits_record_their_steps_cast_operands_on_amx_too(cfg, monkeypatch):
    """Under torch.compile the training steps cast their operands on AMX too (layers.CPU_BF16_MATH), while
    validation and evaluation, eager, keep oneDNN's bfloat16 arithmetic: a compiled fit's record says both;
    without a C++ compiler the steps run eagerly, and the record says the math alone."""
    monkeypatch.setattr(layers, "native_bf16", lambda device: True)
    monkeypatch.setattr(layers, "CPU_BF16_MATH", True)
    compiled = dataclasses.replace(cfg, compile=True)
    monkeypatch.setattr(train, "no_cpp_compiler", lambda: "")
    assert products_of(compiled, contender("pertvae")) == (
        "bf16: operands cast to bfloat16 in the compiled training steps, oneDNN's bfloat16 arithmetic on "
        "float32 operands in validation and evaluation (AMX; products under 3 MFLOP a model in float32 in "
        "both)")
    assert products_of(cfg, contender("pertvae")) == AMX
    # a fit whose steps dynamo ran eagerly (past its graphs, train.COMPILED_SHAPES) used the math: its row
    # says so (pertvae_core.train.FitState.steps_compiled)
    assert products_of(compiled, contender("pertvae"), {"steps_compiled": False}) == AMX
    monkeypatch.setattr(train, "no_cpp_compiler", lambda: "no g++")
    assert products_of(compiled, contender("pertvae")) == AMX
    monkeypatch.setattr(layers, "CPU_BF16_MATH", False)
    assert products_of(compiled, contender("pertvae")) == CAST


def test_fits_keep_their_products_and_an_older_store_gets_the_variable_on_resume(tmp_path, cfg):
    out = tmp_path / "out"
    st = _open(out, cfg)
    st.write([_row("dA", 0, 1, CAST)])
    ds = xr.open_zarr(st.path).load()
    assert ds.products.dims == ("model", "drug", "latent", "split")
    assert ds.products.sel(model="pertvae", drug="dA", latent=4, split=1).item() == CAST
    assert (ds.products.values == CAST).sum() == 1
    _without(st.path, "products")
    old = ResultStore(st.path)
    assert old.fit_text_vars == () and old.done_keys() and not old.repair().cells
    again = _resume(out, cfg)
    assert again is not None and again.fit_text_vars == ("products",) and len(again.done_keys()) == 1
    assert not again.repair().cells   # the added variable has every chunk, as a write leaves it
    again.write([_row("dB", 1, 2, AMX)])
    ds = xr.open_zarr(st.path).load()
    assert ds.products.sel(model="pertvae", drug="dA", latent=4, split=1).item() == ""   # before: unknown
    assert ds.products.sel(model="pertvae", drug="dB", latent=4, split=5).item() == AMX
    assert len(_open(out, cfg).done_keys()) == 2   # open (not resume) adds nothing twice
    ds = load_results(out)   # the earlier fit is counted, at the run's precision, as not recorded
    assert products_counts(ds) == {AMX: 1, UNRECORDED: 1}
    assert products_line(ds) == (f"{LEAD}: {AMX} in 1 fit; bf16, the way not recorded, in 1 fit from before "
                                 f"fits recorded it. {BF16_WORDS}.")


@pytest.mark.parametrize("added", [("products",), ("method_status", "method_reason")])
def test_adding_variables_to_an_older_store_keeps_its_attributes(tmp_path, cfg, added):
    """The variables an older store lacks are appended on resume; the append once wrote the (attribute-less)
    appended dataset's attrs as the group's: the store lost its config and fingerprints and refused every
    later run ("holds results for a different dataset")."""
    out = tmp_path / "out"
    st = _open(out, cfg)
    st.write([_row("dA", 0, 1, CAST)])
    attrs = dict(st.attrs)
    _without(st.path, *added)
    again = _resume(out, cfg)
    assert again is not None and set(added) <= set(again.vars) and again.attrs == attrs
    assert ResultStore(st.path).attrs == attrs and xr.open_zarr(st.path).attrs == attrs
    assert _resume(out, cfg).done_keys() == _open(out, cfg).done_keys() == {again.done_keys().pop()}


def test_the_report_counts_the_done_fits_of_each_way(tmp_path, cfg):
    out = tmp_path / "out"
    st = _open(out, cfg)
    assert products_line(load_results(out)) == ""   # no fit done
    st.write([_row("dA", 1, 1, "", model="pca", latent=2)])
    assert products_line(load_results(out)) == ""   # no trained model's fit done
    st.write([_row("dA", 0, 0, CAST), _row("dA", 0, 1, CAST), _row("dB", 0, 0, AMX),
              _row("dB", 0, 1, AMX) | {"status": "failed"}, _row("dB", 1, 0, CAST)])
    ds = load_results(out)
    assert products_counts(ds) == {CAST: 3, AMX: 1}   # done fits only, most first
    line = products_line(ds)
    assert line == f"{LEAD}: {CAST} in 3 fits; {AMX} in 1 fit. {BF16_WORDS}."
    assert table1_markdown(table1(ds), fit_counts(ds), line).rstrip().endswith("\n\n" + line)
    about = describe_run(out)   # pertvae-bench info
    assert "; precision bf16;" in about and f"\n{line}\n" in about
    fits = fits_table(ds)
    got = fits.set_index(["model", "drug", "latent", "split"])["products"]
    assert got[("pertvae", "dB", 4, 0)] == AMX and got[("pca", "dA", 2, 4)] == ""
    assert got[("pertvae", "dA", 4, 2)] == ""   # not run


def test_an_older_store_says_the_precision_alone_and_that_it_does_not_record_the_way(tmp_path, cfg):
    out = tmp_path / "out"
    st = _open(out, cfg)
    st.write([_row("dA", 1, 1, "", model="pca", latent=2)])
    _without(out / "results.zarr", "products")
    assert products_line(load_results(out)) == ""   # no trained model's fit done: nothing to say
    _open(out, cfg).write([_row("dA", 0, 0, CAST)])   # open() adds the variable; take it away again
    _without(out / "results.zarr", "products")
    assert products_counts(load_results(out)) == {UNRECORDED: 1}
    line = products_line(load_results(out))
    assert line.startswith("Matrix products of the trained models: bf16 (") and "does not record" in line
    assert np.all(fits_table(load_results(out))["products"] == "")


def test_a_bf16_run_on_a_cpu_without_bf16_instructions_is_warned(cfg, monkeypatch):
    """bf16 products on a CPU without bfloat16 instructions are emulated (9-11x fp32's step): the note says
    so for a local or in-process CPU run that trains; not where the products are native, fp32, a GPU run,
    a Slurm run (its nodes are not this CPU) or a grid that trains nothing."""
    from pertvae_core import precision

    monkeypatch.setattr(precision, "native_bf16", lambda d: False)
    note = emulated_bf16_note(cfg)
    assert note.startswith("this machine's CPU has no bfloat16 matrix instructions, so bf16 products are "
                           "emulated here") and "--precision fp32" in note
    assert emulated_bf16_note(dataclasses.replace(cfg, cluster="none")) == note
    for quiet in (dataclasses.replace(cfg, precision="fp32"), dataclasses.replace(cfg, cluster="slurm"),
                  dataclasses.replace(cfg, device="cuda"), dataclasses.replace(cfg, models=["pca"])):
        assert emulated_bf16_note(quiet) == ""
    monkeypatch.setattr(precision, "native_bf16", lambda d: d == "cpu")
    assert emulated_bf16_note(cfg) == ""


def test_info_says_the_machines_bf16_way_is_what_a_run_would_get_if_it_asked(tmp_path, cfg):
    """run.json's and the store's versions record how the CPU computes bf16 products in an fp32 run too;
    `pertvae-bench info` says "if asked for", and reads the entry's older name."""
    out = tmp_path / "out"
    _open(out, dataclasses.replace(cfg, precision="fp32")).write([_row("dA", 0, 0, "fp32")])
    assert "bf16 products on the CPU that started the run, if asked for: " in describe_run(out)
    meta = json.loads((out / "results.zarr" / "zarr.json").read_text())
    versions = json.loads(meta["attributes"]["versions"])
    versions["bf16 products on this CPU"] = versions.pop("bf16 products on this CPU, if a run asks for them")
    meta["attributes"]["versions"] = json.dumps(versions)
    (out / "results.zarr" / "zarr.json").write_text(json.dumps(meta))
    assert "bf16 products on this CPU" in json.loads(load_results(out).attrs["versions"])   # a run before
    about = describe_run(out)
    assert "bf16 products on the CPU that started the run, if asked for: " in about
    assert "bf16 products on this CPU" not in about


def test_dr_vae_fits_record_the_fp32_they_compute_in(cfg, monkeypatch):
    """Dr.VAE takes no --precision (pertvae_core.drvae builds its PertVAE core at fp32): a drvae-demo run with
    --precision bf16 on an AMX CPU stored and reported 'bf16: oneDNN's bfloat16 arithmetic ... in 5 fits' for
    Dr.VAE fits whose scores equal the fp32 run's to the bit (this review). They now record fp32; the
    response PertVAE's, which does take it, keeps bf16."""
    monkeypatch.setattr(layers, "native_bf16", lambda device: True)
    monkeypatch.setattr(layers, "CPU_BF16_MATH", True)
    for name in ("drvae", "drvae_continuous"):
        assert products_of(cfg, contender(name)) == "fp32"
    assert products_of(cfg, contender("response_pertvae")) == AMX


def test_response_pertvae_rows_say_whether_their_steps_ran_compiled():
    """response_pertvae's rows carry their fit's steps_compiled as fit_evaluate_*'s do, so that its products
    record says what ran (dynamo past its graphs runs a step eagerly), not what the config asked."""
    from harness.contenders.response_pertvae import _fit_score
    from tests.pertvae_core.response_sim import simulate

    run = make_config("drvae-demo", hidden=[16, 8], context=4, iaf_hidden=8, batch_pairs=8, max_epochs=3,
                      patience=2, compile=False)
    [row] = _fit_score([simulate("effect", seed=0).split], [5], 3, run)
    assert row["status"] == "done" and row["steps_compiled"] is False
