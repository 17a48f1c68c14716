"""A user's plug-ins are imported in a child process, never in the run's own (harness.plugin_import): what a
module does when imported (torch's default dtype, the working directory, sys.exit, os._exit, a hang) changes
no other model's scores and cannot end or hang the run, and an import that fails where the fits run fails
that plug-in's fits alone."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from harness import plugin_import, sandbox
from harness.config import make_config
from harness.contenders.baselines import method_factories
from harness.plugin_import import METHOD, Plugin, probe, remember
from harness.prepare import RunError, resolve_methods
from harness.run import main
from pertvae_core.api import evaluate_methods
from tests.e2e import load, tiny_args, tiny_cube
from tests.pertvae_core.test_evaluation import _cell_split

MODS = "tests.harness.plugin_mods"


def test_a_modules_import_leaves_this_process_as_it_was():
    dtype, cwd = torch.get_default_dtype(), os.getcwd()
    cfg = make_config("demo", method=(f"{MODS}.side_effects:Shift",))
    assert resolve_methods(cfg)[-1] == "side_effects"
    assert torch.get_default_dtype() == dtype and os.getcwd() == cwd
    got = plugin_import.plugin(METHOD, f"{MODS}.side_effects:Shift")
    assert got.target == f"{MODS}.side_effects:Shift" and got.accepts == ("seed",)
    assert got.kwargs(latent=3, seed=7) == {"seed": 7}


def test_a_name_of_the_plugins_own_str_type_does_not_import_it_here():
    """A `name` that is a str of the plug-in's own type (a StrEnum member) comes back from the child as a
    plain str: unpickling it would import the plug-in's module in this process (its torch default dtype
    and all), and the store would name the method 'Names.MINE'."""
    import sys

    dtype = torch.get_default_dtype()
    (got,) = probe([(METHOD, f"{MODS}.enum_name:Mine")])
    assert type(got.name) is str and got.name == "enum_named"
    assert f"{MODS}.enum_name" not in sys.modules and torch.get_default_dtype() == dtype


@pytest.mark.parametrize("mod, why", [
    ("exits:E", "importing it called sys.exit(5)"),
    ("dies:D", "its process exited with status 3 while importing it (os._exit, or a crash?)"),
])
def test_an_import_that_ends_its_process_is_one_error(mod, why):
    cfg = make_config("demo", method=(f"{MODS}.{mod}",))
    with pytest.raises(RunError) as e:
        resolve_methods(cfg)
    assert str(e.value) == f"--method {MODS}.{mod}: method '{MODS}.{mod}': {why}"


def test_an_import_that_hangs_is_stopped_and_the_wait_is_said(monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "STARTUP_SECONDS", 3.0)
    monkeypatch.setattr(plugin_import, "NOTICE_SECONDS", 1.0)
    (got,) = probe([(METHOD, f"{MODS}.hangs:H")])
    assert got == f"method '{MODS}.hangs:H': importing it did not finish in 3 s (does importing it hang?)"
    assert capsys.readouterr().err == (f"importing {MODS}.hangs:H: still importing after 1 s; waiting up to "
                                       f"3 s in all\n")


def test_an_import_that_ends_or_hangs_its_process_is_said_of_that_plugin_alone(monkeypatch):
    """Several plug-ins are imported in one child: the one whose import ends or hangs it is named, not the
    first of the run's (which used to get the other's reason, and the run's error named it). The limit
    counts the child's start and the good plug-in's import too: 5 s timed the good one out at load 19."""
    monkeypatch.setattr(sandbox, "STARTUP_SECONDS", 30.0)
    monkeypatch.setattr(plugin_import, "NOTICE_SECONDS", 60.0)
    good = f"{MODS}.side_effects:Shift"
    got = probe([(METHOD, good), (METHOD, f"{MODS}.dies:D"), (METHOD, f"{MODS}.hangs:H"), (METHOD, good)])
    assert isinstance(got[0], Plugin) and got[0].name == "side_effects" and got[3] == got[0]
    assert got[1] == (f"method '{MODS}.dies:D': its process exited with status 3 while importing it "
                      "(os._exit, or a crash?)")
    assert got[2] == f"method '{MODS}.hangs:H': importing it did not finish in 30 s (does importing it hang?)"
    with pytest.raises(RunError, match=r"^--method tests.harness.plugin_mods.dies:D: "):
        resolve_methods(make_config("demo", method=(good, f"{MODS}.dies:D")))


def test_an_import_that_fails_where_the_fits_run_fails_that_plugin_alone():
    # loaded where the run started, not on a worker's node (a package installed on the login node only)
    remember([Plugin(METHOD, "elsewhere:Gone", "gone", "no_such_module_anywhere:Gone", ())])
    cfg = make_config("demo", method=("elsewhere:Gone",))
    row = evaluate_methods([_cell_split()], method_factories(cfg, latent=3, seed=1))[0]
    assert row["method_status"].pop("gone") == "failed"
    why = row["method_reason"]["gone"]
    assert "importing no_such_module_anywhere:Gone failed: ModuleNotFoundError" in why
    assert set(row["method_status"].values()) == {"done"}   # every built-in baseline scored


def test_a_plugin_seeded_the_usual_way_takes_the_fits_seed():
    """The grid's seeds have 63 bits (harness.grid.fit_seed); a plug-in gets one below 2**32, which
    np.random.seed, RandomState and scikit-learn's random_state take (else every fit of such a method
    failed: 'Seed must be between 0 and 2**32 - 1'). The same fit seed gives the same plug-in seed."""
    from harness.grid import FitKey, fit_seed

    seed = fit_seed(0, FitKey("baselines", "drugA", 3, 0, 1))
    assert seed >= 2**32
    cfg = make_config("demo", method=(f"{MODS}.seeded:Seeded",))
    rows = [evaluate_methods([_cell_split()], method_factories(cfg, latent=3, seed=seed))[0]
            for _ in range(2)]
    assert rows[0]["method_status"]["seeded"] == "done", rows[0]["method_reason"]["seeded"]
    assert rows[0]["scores"]["seeded"] == rows[1]["scores"]["seeded"]
    assert plugin_import.plugin(METHOD, f"{MODS}.seeded:Seeded").kwargs(3, seed) == {"seed": seed % 2**32}


def test_no_worker_imports_a_plugin_and_its_import_changes_no_score(tmp_path_factory, tmp_path, monkeypatch):
    cube = tiny_cube(tmp_path_factory)
    log = tmp_path / "imports.txt"
    monkeypatch.setenv("PERTVAE_TEST_IMPORT_LOG", str(log))
    one = ("--models", "baselines", "pertvae", "--drugs", "drugA", "--n-repeats", "1")
    assert main(tiny_args(cube, tmp_path / "clean", *one, workers=1)) == 0
    assert main(tiny_args(cube, tmp_path / "mine", *one, "--method", f"{MODS}.side_effects:Shift",
                          workers=1)) == 0
    imported_by = {Path(line).name for line in log.read_text().split()}
    assert imported_by == {"plugin_import.py", "sandbox.py"}   # the probe and each fit's own process
    clean, mine = load(tmp_path / "clean"), load(tmp_path / "mine")
    for model in ("pertvae", "baselines"):
        a = clean.score.sel(model=model).dropna("method", how="all")
        np.testing.assert_array_equal(a.values, mine.score.sel({"model": model, "method": a.method}).values)


@pytest.mark.parametrize("cls", ["DotDot", "Slash", "Pipe"])
def test_a_name_that_would_name_a_file_or_column_wrongly_is_refused(cls):
    # '..' wrote its predictions outside predictions/, 'my/m' shared 'my_m''s file, '|' split the tables
    spec = f"{MODS}:{cls}"
    with pytest.raises(RunError, match=r"is not a plain name .*give the class a `name` attribute"):
        resolve_methods(make_config("demo", method=(spec,)))
    assert resolve_methods(make_config("demo", method=(f"{MODS}:Named",)))[-1] == "ok"


def test_a_name_of_a_table_column_is_refused():
    with pytest.raises(RunError, match=r"its name 'Drug' is a column of the report's tables; .* 'my_drug'"):
        resolve_methods(make_config("demo", method=(f"{MODS}:Drug",)))


def test_a_module_that_prints_in_a_loop_as_it_is_imported_is_capped(capfd):
    """The import probe's output went to the run's stderr uncapped (5 MB from one import here), as a fit's
    did (harness.capped_output)."""
    from harness.capped_output import KEEP

    capfd.readouterr()
    (got,) = probe([(METHOD, f"{MODS}.floods:Shift")])
    assert isinstance(got, Plugin) and got.name == "floods_on_import"
    err = capfd.readouterr().err
    dropped = len("IMPORT-FLOOD-START\n") + 50_000 * 100 + len("IMPORT-FLOOD-END\n") - 2 * KEEP
    assert f"[harness: {dropped} bytes of {MODS}.floods:Shift's stderr dropped here" in err
    assert err.startswith("IMPORT-FLOOD-START\n") and err.endswith("IMPORT-FLOOD-END\n")
    assert len(err) < 2 * KEEP + 200
