"""A method cannot change the benchmark (issue 19): each method fits on its own read-only copy of the split,
inside its own failure boundary, and its predictions are checked; whatever one method does wrong fails it
alone and leaves every other method's scores exactly as without it."""

from __future__ import annotations

import numpy as np
import pytest

from pertvae_core.api import evaluate_methods
from pertvae_core.baselines import BASELINES
from pertvae_core.data import FIELDS, TEST_EXTRAS, TEST_FIELDS
from pertvae_core.isolation import MethodFailed, check_prediction, fit_predict, readonly_split
from tests.pertvae_core import bad_methods as bad
from tests.pertvae_core.test_evaluation import _cell_split

BUILT_IN = {name: (lambda f=f: f(3)) for name, f in BASELINES.items()}

# method -> words its reason must contain
FAILS = {
    bad.InPlace: ("ValueError", "read-only", "in predict()", "changed its input in place", "x1.copy()"),
    bad.EditsSplit: ("ValueError", "read-only", "in fit()"),
    bad.NanPredict: ("non-finite", "NaN"),
    bad.Diverged: ("beyond float32's range", "1e+308"),
    bad.GpuOom: ("RuntimeError: CUDA out of memory", "in fit()"),
    bad.KeyErr: ("KeyError: 'missing'", "in fit()"),
    bad.FitNone: ("fit() returned None", "return self"),
    bad.Exits: ("predict() called sys.exit(3)",),
    bad.WrongRows: ("returned shape", "one row per row of x1"),
    bad.Strings: ("dtype <U",),
    bad.Complex: ("dtype complex128",),
    bad.FitReturnsDict: ("fit() returned a dict, which has no predict()", "return self"),
    bad.BadInit: ("ImportError: No module named 'fancy_dependency' (in __init__())",),
}


def _details(row: dict) -> dict:
    """{method: (summary, per-cell arrays, per-gene arrays)} of an evaluate_methods row."""
    return {m: (d.summary, {k: v.tolist() for k, v in d.per_cell.items()},
                {k: v.tolist() for k, v in d.per_gene.items()}) for m, d in row["detail"].items()}


@pytest.fixture(scope="module")
def split():
    return _cell_split(seed=3)


@pytest.fixture(scope="module")
def reference(split):
    """The built-in baselines on the split, alone."""
    row = evaluate_methods([split], BUILT_IN)[0]
    assert row["status"] == "done" and set(row["method_status"].values()) == {"done"}
    return _details(row)


@pytest.mark.parametrize("cls", list(FAILS), ids=lambda c: c.name)
def test_a_bad_method_fails_alone_and_changes_no_other_score(cls, split, reference):
    before = {f: np.array(getattr(split, f)) for f in FIELDS}
    # the bad method first, so that the built-in ones run after whatever it did
    row = evaluate_methods([split], {cls.name: cls, **BUILT_IN})[0]
    assert row["method_status"] == {cls.name: "failed", **dict.fromkeys(BUILT_IN, "done")}
    reason = row["method_reason"][cls.name]
    for words in FAILS[cls]:
        assert words in reason, reason
    assert row["status"] == "failed" and row["reason"] == f"{cls.name}: {reason}"
    assert cls.name not in row["scores"] and cls.name not in row["detail"]
    assert _details(row) == reference  # value for value, per cell line and per gene too
    for f in FIELDS:  # the caller's split is untouched
        np.testing.assert_array_equal(getattr(split, f), before[f])
    assert split.x1_test.flags.writeable


def test_a_method_that_raises_gets_its_traceback(split):
    row = evaluate_methods([split], {"gpu_oom": bad.GpuOom})[0]
    assert "bad_methods.py" in row["method_traceback"]["gpu_oom"]
    assert "raise RuntimeError" in row["method_traceback"]["gpu_oom"]


@pytest.mark.parametrize("cls, twin", [(bad.ReturnsList, "mean_shift"), (bad.ReturnsInput, "identity"),
                                       (bad.Stateful, "identity"), (bad.ReusesBuffer, "mean_shift"),
                                       (bad.HasFitPredict, "mean_shift")],
                         ids=["list", "input_itself", "stateful", "reuses_buffer", "has_fit_predict"])
def test_legitimate_oddities_are_scored_like_their_twin(cls, twin, split, reference, monkeypatch):
    monkeypatch.setattr(bad.Stateful, "fits", 0)  # its first fit in this process predicts x1
    row = evaluate_methods([split], {cls.name: cls})[0]
    assert row["method_status"] == {cls.name: "done"}
    got = _details(row)[cls.name]
    assert got == reference[twin]


def test_global_numpy_settings_of_a_method_are_restored(split):
    before = np.geterr()
    row = evaluate_methods([split], {"sets_globals": bad.SetsGlobals})[0]
    assert row["method_status"] == {"sets_globals": "done"} and np.geterr() == before


def test_readonly_split_is_a_private_read_only_copy(split):
    mine = readonly_split(split)
    for f in (*FIELDS, "xu_train"):
        a = getattr(mine, f)
        assert not a.flags.writeable and not np.shares_memory(a, getattr(split, f))
        if f in TEST_FIELDS:   # hidden: the answers a method is scored against, and the test inputs
            assert a.shape == getattr(split, f).shape and np.isnan(a).all()
        else:
            np.testing.assert_array_equal(a, getattr(split, f))
    assert split.xc_test is not None and all(getattr(mine, f) is None for f in TEST_EXTRAS)
    with pytest.raises(ValueError, match="read-only"):
        mine.x1_train[0, 0] = 1.0


class _Oracle:
    """Predicts the test answers it finds in its split (a plug-in that cheats)."""

    def fit(self, split):
        self.x1t, self.x2t = np.asarray(split.x1_test), np.asarray(split.x2_test)
        return self

    def predict(self, x1):
        hit = [np.flatnonzero((self.x1t == r).all(1)) for r in x1]
        return np.stack([self.x2t[h].mean(0) if len(h) else r for h, r in zip(hit, x1, strict=True)])


class _NoChange:
    def fit(self, split):
        return self

    def predict(self, x1):
        return np.array(x1)


def test_a_method_cannot_fit_on_the_test_answers(split):
    row = evaluate_methods([split], {"oracle": _Oracle, "no_change": _NoChange})[0]
    assert row["method_status"] == {"oracle": "done", "no_change": "done"}
    # it found nothing: it predicted x1, as 'no change' does
    np.testing.assert_equal(row["scores"]["oracle"], row["scores"]["no_change"])


def test_fit_predict_returns_new_arrays(split):
    preds = fit_predict(bad.ReturnsInput, split, [split.x1_test])
    assert preds[0] is not split.x1_test and preds[0].dtype == np.float64 and preds[0].flags.writeable
    np.testing.assert_array_equal(preds[0], split.x1_test)


@pytest.mark.parametrize("out, words", [
    (None, "returned None"), ([[1.0, 2.0], [3.0]], "not an array of numbers"),
    (np.ones((2, 2), bool), "dtype bool"), (np.ones((2, 3)), "shape (2, 3)"),
    (np.array([[1.0, np.inf], [0.0, 0.0]]), "1 non-finite value(s)"),
])
def test_check_prediction_refuses(out, words):
    with pytest.raises(MethodFailed) as e:
        check_prediction(out, np.zeros((2, 2)))
    assert words in str(e.value)


def test_check_prediction_accepts_integers_and_lists():
    got = check_prediction([[1, 2], [3, 4]], np.zeros((2, 2)))
    assert got.dtype == np.float64 and got.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_an_exception_derived_from_baseexception_fails_the_method(split):
    with pytest.raises(MethodFailed, match=r"^Boom: custom BaseException \(in fit\(\)\)$"):
        fit_predict(bad.RaisesBase, split, [split.x1_test])


def test_a_keyboardinterrupt_in_the_runs_own_process_is_the_users_ctrl_c(split):
    with pytest.raises(KeyboardInterrupt):
        fit_predict(bad.RaisesKeyboardInterrupt, split, [split.x1_test])


def test_an_exception_without_a_message_is_named_alone():
    from pertvae_core.isolation import describe, exception_text

    assert exception_text(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert exception_text(ValueError("bad x")) == "ValueError: bad x"
    assert describe(RuntimeError(), "fit") == "RuntimeError (in fit())"


class _StandardizesWithTest:
    """Gene means over every x1 the split holds, the test pairs' included: NaN, as they are hidden."""

    def fit(self, split):
        self.mu = np.vstack([split.x1_train, split.x1_test]).mean(0)
        return self

    def predict(self, x1):
        return np.asarray(x1) - self.mu + self.mu


def test_a_nan_prediction_says_the_test_pairs_are_nan_in_fit(split):
    """Its reason was 'predict() returned N non-finite value(s) (NaN or inf) of N' alone: the author of a
    fit that standardized over x1_train and x1_test together was not told why."""
    with pytest.raises(MethodFailed) as e:
        fit_predict(_StandardizesWithTest, split, [split.x1_test])
    n = split.x1_test.size
    assert str(e.value) == (f"predict() returned {n} non-finite value(s) (NaN or inf) of {n}; in fit() "
                            "data.x1_test and data.x2_test are NaN (the test cell lines are hidden): does "
                            "the fit use them, or diverge?")
