"""PertVAE behind the Method interface (fit on a split, predict x2 for x1), batched or alone."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from pertvae_core import PertVAE
from pertvae_core.api import PertVAEMethod, evaluate_methods, fit_pertvae_methods
from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData
from pertvae_core.methods import (
    ENTRY_POINT_GROUP,
    METHODS,
    PERTVAE_METHODS,
    Method,
    MethodLoadError,
    load_method,
    registered_methods,
)
from tests.pertvae_core.my_method import KnnShift

MY = "tests.pertvae_core.my_method"

CFG = FitConfig(latent=3, hidden=(16, 8), context=8, iaf_steps=1, iaf_hidden=8, batch_pairs=8,
                batch_singletons=8, max_epochs=4, patience=2, mc_samples=3)


def _split(seed: int, genes: int = 12) -> SplitData:
    rng = np.random.default_rng(seed)

    def rows(n: int) -> np.ndarray:
        return (rng.normal(size=(n, genes)) + 3).astype(np.float32)

    return SplitData(rows(20), rows(20), rows(6), rows(6), rows(8), rows(8), rows(10),
                     test_cell_line=np.repeat(["a", "b", "c", "d"], 2))


def test_method_names_and_models() -> None:
    assert METHODS[0] == "pertvae" and METHODS[:2] == PERTVAE_METHODS
    assert {PertVAEMethod(CFG).name, PertVAEMethod(CFG, reconstruction=True).name} == set(PERTVAE_METHODS)
    assert isinstance(PertVAEMethod(CFG), Method)


def test_pertvae_method_predicts_and_batched_equals_separate() -> None:
    splits = [_split(0), _split(1)]
    batched = fit_pertvae_methods(splits, CFG, seeds=[10, 11])
    alone = PertVAEMethod(CFG, seed=11).fit(splits[1])
    x1 = splits[1].x1_test
    got, want = batched[1].predict(x1), alone.predict(x1)
    assert got.shape == x1.shape and got.dtype == np.float64 and np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    rec = fit_pertvae_methods(splits[:1], CFG, seeds=[10], reconstruction=True)[0]
    assert rec.name == "pertvae_rec" and not np.allclose(rec.predict(x1), batched[0].predict(x1))


def test_evaluate_methods_scores_pertvae_like_any_method() -> None:
    sp = _split(2)
    rows = evaluate_methods([sp], {"pertvae": lambda: PertVAEMethod(CFG, seed=3)})
    assert rows[0]["status"] == "done"
    assert np.isfinite(rows[0]["scores"]["pertvae"]["mse_z"])


def _install(root: Path, dist: str, entries: dict[str, str]) -> None:
    """What installing a package with these entry points leaves on sys.path: a .dist-info folder."""
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")


def test_load_method_by_import_path_fits_and_scores_like_a_baseline() -> None:
    make = load_method(f"{MY}:KnnShift")
    assert make.name == "knn_shift" and make.spec == f"{MY}:KnnShift" and make.accepts == ("seed",)
    m = make(latent=8, seed=5)
    assert isinstance(m, KnnShift) and isinstance(m, Method) and m.seed == 5 and m.k == 3
    sp = _split(4)
    want = KnnShift().fit(sp).predict(sp.x1_test)
    np.testing.assert_array_equal(make().fit(sp).predict(sp.x1_test), want)
    rows = evaluate_methods([sp], {make.name: make})
    assert rows[0]["status"] == "done" and np.isfinite(rows[0]["scores"]["knn_shift"]["delta_pearson"])


def test_load_method_function_factory_and_the_estimator() -> None:
    make = load_method(f"{MY}:make_knn")
    assert make.name == "make_knn" and make.accepts == ("latent",)
    assert make(latent=6, seed=1).k == 3
    est = load_method("pertvae_core:PertVAE")
    assert est.name == "PertVAE" and est.accepts == () and isinstance(est(latent=4), PertVAE)


def test_load_method_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install(tmp_path, "mymethods", {"knn": f"{MY}:KnnShift", "knn_fn": f"{MY}:make_knn"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registered_methods()["knn"] == f"{MY}:KnnShift"
    make = load_method("knn")
    assert make.name == "knn_shift" and isinstance(make(), KnnShift)  # the class's own name wins
    assert load_method("knn_fn").name == "knn_fn"                     # else the entry point's name
    with pytest.raises(MethodLoadError, match="'kn': .*did you mean 'knn'"):
        load_method("kn")
    _install(tmp_path / "other", "othermethods", {"knn": f"{MY}:make_knn"})
    monkeypatch.syspath_prepend(str(tmp_path / "other"))
    twice = "'knn': registered more than once .*KnnShift by mymethods, .*make_knn by othermethods"
    with pytest.raises(MethodLoadError, match=twice):
        load_method("knn")


@pytest.mark.parametrize(("spec", "message"), [
    ("no_such_pkg_xyz.mod:Cls", r"'no_such_pkg_xyz.mod:Cls': no module named 'no_such_pkg_xyz'"),
    (f"{MY}:KnnShfit", r"has no attribute 'KnnShfit'; did you mean 'KnnShift'"),
    (f"{MY}:NoPredict", r"NoPredict lacks predict\(\)"),
    (f"{MY}:ANSWER", r"int object is neither a class nor a function"),
    (f"{MY}:", r"expected 'package.module:ClassName'"),
    (f"{MY}.KnnShift", r"an import path needs a colon: tests.pertvae_core.my_method:KnnShift"),
    ("", r"expected 'package.module:ClassName' or a registered name"),
])
def test_load_method_errors_name_the_spec(spec: str, message: str) -> None:
    with pytest.raises(MethodLoadError, match=message):
        load_method(spec)


def test_a_files_path_is_told_how_to_name_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A method is one file, so its path is what a user gives first: that got "no module named
    'my/knn'", or, without a class, the advice "an import path needs a colon: /x/my/knn:py", which is no
    import path either. Now: the folder for PYTHONPATH and the import path."""
    (tmp_path / "my").mkdir()
    (tmp_path / "my" / "knn.py").write_text("class KNN:\n    def fit(self, s): return self\n")
    monkeypatch.chdir(tmp_path)
    fix = f"give its import path instead: put {tmp_path / 'my'} on PYTHONPATH and name it knn:"
    for spec, cls in ((f"{tmp_path}/my/knn.py", "ClassName"), ("my/knn.py:KNN", "KNN")):
        with pytest.raises(MethodLoadError) as e:
            load_method(spec)
        assert str(e.value) == f"method {spec!r}: a file's path; {fix}{cls}"
    monkeypatch.chdir(tmp_path / "my")
    with pytest.raises(MethodLoadError, match=r"'knn.py:KNN': a file's path; .* name it knn:KNN$"):
        load_method("knn.py:KNN")


def test_load_method_errors_at_import_and_construction(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "needs_dep_xyz.py").write_text("import missing_dependency_xyz\n")
    (tmp_path / "raises_xyz.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        with pytest.raises(MethodLoadError, match="'needs_dep_xyz' failed: .*'missing_dependency_xyz'"):
            load_method("needs_dep_xyz:M")
        with pytest.raises(MethodLoadError, match="importing 'raises_xyz' failed: RuntimeError: boom"):
            load_method("raises_xyz:M")
    finally:
        for mod in ("needs_dep_xyz", "raises_xyz"):
            sys.modules.pop(mod, None)
    make = load_method(f"{MY}:not_a_method")  # a function: checked on what it returns
    with pytest.raises(MethodLoadError, match="not_a_method.*object lacks fit\\(\\) and predict\\(\\)"):
        make()
