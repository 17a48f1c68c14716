"""A user's own response method (``--response-method``, issue 22) runs like the built-in response baselines:
same splits and seeds, scored on its heads' metrics exactly as scikit-learn scores its predictions, compared
with Dr.VAE and named in response.md. Each fit runs in its own process with the test responses hidden, so a
method that raises, returns NaN or the wrong shape, hangs, or reads the test answers fails only its own
rows, with the reason, and every other method's scores are those of a run without it. Bad specs are one
``error:`` line and exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from harness.config import parse_args, science_key
from harness.contenders import model_methods
from harness.contenders.response_splits import response_splits
from harness.response_report import OWN_FEATURES
from harness.run import main
from harness.tasks import cube_of, drug_data
from tests.e2e import load
from tests.harness.test_drvae_run import write_response_cube
from tests.pertvae_core import response_plugins as rp

pytestmark = pytest.mark.timeout(600)

DRUG = "olaparib"   # response driven by the untreated state
PLUG = "tests.pertvae_core.response_plugins:"
BAD = {"raises": "RuntimeError: the user's bug (in fit())",
       "nan_scores": "non-finite value(s) (NaN or inf) of",
       "two_columns": "predict_proba() returned shape (",
       "hangs": "timed out after 2 s",
       "reads_answers": "non-finite value(s)"}       # the test labels it read are hidden: NaN


@pytest.fixture(scope="module")
def cube(tmp_path_factory) -> Path:
    return write_response_cube(Path(tmp_path_factory.mktemp("plugin")) / "cube.zarr", {DRUG: "baseline"})


def _args(cube: Path, out: Path, models: tuple[str, ...] = ("response_baselines",)) -> list[str]:
    return ["--data", str(cube), "--out", str(out), "--cluster", "none", "--no-progress",
            "--models", *models, "--drugs", DRUG, "--n-repeats", "1", "--n-folds", "5",
            *[f for m in models for f in (f"--latents-{m.replace('_', '-')}", "4")],
            "--hidden", "16", "8", "--context", "8", "--iaf-steps", "1", "--iaf-hidden", "8",
            "--max-epochs", "8", "--patience", "3", "--mc-samples", "2", "--batch-pairs", "16",
            "--batch-singletons", "32", "--lr", "3e-3", "--fit-timeout", "2"]


MODELS = ("drvae", "response_baselines", "drvae_continuous", "response_regression")


@pytest.fixture(scope="module")
def runs(cube, tmp_path_factory):
    """A run with the honest plug-in (both heads), its factory function and every bad one; and the same
    run's response baselines without any plug-in."""
    root = Path(tmp_path_factory.mktemp("plugin_runs"))
    specs = [PLUG + "Centroid", PLUG + "centroid_binary"] + [PLUG + c for c in
                                                               ("Raises", "NanScores", "TwoColumns", "Hangs",
                                                                "ReadsAnswers")]
    status = main(_args(cube, root / "with", MODELS) + ["--response-method", *specs])
    assert main(_args(cube, root / "without", ("response_baselines", "response_regression"))) == 0
    return status, root / "with", load(root / "with"), load(root / "without")


def test_the_plugin_is_scored_as_sklearn_scores_its_predictions(runs, cube):
    status, out, ds, _ = runs
    assert status == 3   # some fits failed: the bad plug-ins'
    cfg = parse_args(_args(cube, out, MODELS))
    dd = drug_data(str(cube), DRUG, cfg)
    for split in range(5):
        sp = response_splits(dd, cube_of(str(cube)), [(0, split)], cfg)[0]
        p = rp.Centroid().fit(sp).predict_proba(sp.x_test)
        got = ds.score.sel({"model": "response_baselines", "method": "centroid", "drug": DRUG, "latent": 4,
                            "split": split})
        assert got.sel(metric="auroc").item() == pytest.approx(roc_auc_score(sp.y_test, p), abs=1e-12)
        cont = ds.score.sel({"model": "response_regression", "method": "centroid", "drug": DRUG, "latent": 4,
                             "split": split})
        r = rp.Centroid().fit(sp).predict(sp.x_test)
        assert cont.sel(metric="pearson").item() == pytest.approx(np.corrcoef(sp.r_test, r)[0, 1], abs=1e-9)
        # the factory function: binary only, the same numbers
        fn = ds.score.sel({"model": "response_baselines", "method": "centroid_binary", "drug": DRUG,
                           "latent": 4, "split": split, "metric": "auroc"}).item()
        assert fn == got.sel(metric="auroc").item()
    none = ds.score.sel({"model": "response_regression", "method": "centroid_binary"}).values
    assert np.isnan(none).all()    # a binary method is not run in the continuous head's tasks


def test_a_misbehaving_plugin_fails_only_its_own_rows(runs):
    _, out, ds, without = runs
    own = ds.method_status.sel(model="response_baselines", drug=DRUG, latent=4)
    why = ds.method_reason.sel(model="response_baselines", drug=DRUG, latent=4)
    for name, words in BAD.items():
        assert (own.sel({"method": name}).values == "failed").all(), name
        reasons = [str(w) for w in why.sel({"method": name}).values]
        assert all(words in r for r in reasons), (name, reasons)
        assert np.isnan(ds.score.sel({"model": "response_baselines", "method": name}).values).all()
    for name in ("centroid", "centroid_binary", "logreg_x1", "prior"):
        assert (own.sel({"method": name}).values == "done").all(), name
    # every built-in method's scores are those of a run without the plug-ins
    for model in ("response_baselines", "response_regression"):
        a = without.score.sel(model=model, drug=DRUG, latent=4)
        b = ds.score.sel({"model": model, "drug": DRUG, "latent": 4, "method": a["method"].values})
        np.testing.assert_array_equal(a.values, b.values)
    failures = pd.read_csv(out / "failures.csv")
    assert set(BAD) <= set(failures["method"].dropna())


def test_the_report_names_it_and_compares_it_with_dr_vae(runs):
    _, out, _, _ = runs
    table = pd.read_csv(out / "response.csv")
    mine = table[table["method"] == "centroid"].set_index("metric")
    assert {"auroc", "aupr", "pearson", "spearman", "rmse"} <= set(mine.index)
    assert (mine["features"] == OWN_FEATURES).all()
    for metric in ("auroc", "pearson"):      # Dr.VAE's binary head, then its continuous head
        assert mine.loc[metric, "verdict"] in ("beats", "loses to", "not distinguishable from")
        assert np.isfinite(mine.loc[metric, "diff_vs_drvae"])
    assert not table["method"].isin(list(BAD)).any()     # failed on every split: no row
    md = (out / "response.md").read_text()
    assert f"| centroid | {OWN_FEATURES} |" in md


def test_plugins_are_owned_by_their_hosts_only_where_they_have_scores():
    owned = model_methods(["logreg_x1", "centroid"])
    assert "centroid" in owned["response_baselines"] and "centroid" in owned["response_regression"]
    assert "centroid" not in owned["drvae"]


def test_the_plugin_is_science_and_a_run_without_it_keeps_its_key(cube, tmp_path):
    base = parse_args(_args(cube, tmp_path / "o"))
    assert "response_method" not in science_key(base)
    mine = parse_args(_args(cube, tmp_path / "o") + ["--response-method", PLUG + "Centroid"])
    assert science_key(mine)["response_method"] == [PLUG + "Centroid"]


@pytest.mark.parametrize("flags, why", [
    (["--response-method", "nosuch.module:Method"],
     "--response-method nosuch.module:Method: response method 'nosuch.module:Method': no module named "
     "'nosuch' (is its package installed, or its folder on PYTHONPATH?)"),
    (["--response-method", PLUG + "NOT_A_METHOD"],
     f"--response-method {PLUG}NOT_A_METHOD: response method '{PLUG}NOT_A_METHOD': int object is neither a "
     "class nor a function returning a response method"),
    (["--response-method", PLUG + "Centroidd"],
     f"--response-method {PLUG}Centroidd: response method '{PLUG}Centroidd': "
     "'tests.pertvae_core.response_plugins' has no attribute 'Centroidd'; did you mean 'Centroid'?"),
    (["--response-method", "centroid"],
     "--response-method centroid: response method 'centroid': not 'package.module:ClassName' nor a name in "
     "the entry point group 'pertvae_bench.response_methods'; no response methods are registered"),
    (["--response-method", "pertvae_core.response_baselines:TrainingPrior"],
     "--response-method pertvae_core.response_baselines:TrainingPrior: its name 'prior' is already taken by "
     "a built-in method; give the class a distinct `name` attribute"),
    (["--response-method", PLUG + "CentroidContinuous"],
     f"--response-method {PLUG}CentroidContinuous: its continuous head is scored in the tasks of "
     "response_regression; add response_regression to --models"),
    (["--models", "drvae", "--response-method", PLUG + "Centroid"],
     "field 'response_method' = ('tests.pertvae_core.response_plugins:Centroid',) (--response-method): your "
     "own response methods run in the tasks of response_baselines (binary head) or response_regression "
     "(continuous head); add the model of its head to --models"),
    (["--response-method", PLUG + "Centroid", PLUG + "Centroid"],
     "field 'response_method' = ('tests.pertvae_core.response_plugins:Centroid', "
     "'tests.pertvae_core.response_plugins:Centroid') (--response-method): duplicate response method"),
])
def test_a_bad_response_method_is_one_error_line_exit_2(cube, tmp_path, capsys, flags, why):
    assert main(_args(cube, tmp_path / "out") + flags) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"error: {why}"]


def test_on_a_local_cluster_a_hang_fails_only_its_plugin(cube, tmp_path):
    """The plug-ins' processes start from Dask worker processes (a real LocalCluster, 2 workers): the
    honest one is scored, the hanging one stopped by --fit-timeout, and the run ends (exit 3)."""
    args = _args(cube, tmp_path / "out")
    args[args.index("--cluster") + 1] = "local"
    status = main(args + ["--workers", "2", "--response-method", PLUG + "Centroid", PLUG + "Hangs"])
    assert status == 3
    ds = load(tmp_path / "out")
    own = ds.method_status.sel(model="response_baselines", drug=DRUG, latent=4)
    assert (own.sel({"method": "centroid"}).values == "done").all()
    assert (own.sel({"method": "hangs"}).values == "failed").all()
    assert np.isfinite(ds.score.sel({"model": "response_baselines", "method": "centroid", "metric": "auroc"})
                       .values).all()
