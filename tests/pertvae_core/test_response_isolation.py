"""What a user's response method gets (pertvae_core.response_isolation): a read-only split with the test
responses hidden; what it must give back: one finite score per test row per head, else MethodFailed with
the reason. Loading by import path or entry point (pertvae_core.response_methods.load_response_method)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.sandbox import IsolatedResponseMethod
from pertvae_core.isolation import MethodFailed
from pertvae_core.methods import MethodLoadError
from pertvae_core.response_isolation import fit_predict_response, hidden_test, method_heads
from pertvae_core.response_methods import load_response_method
from tests.pertvae_core.response_plugins import Centroid
from tests.pertvae_core.response_sim import simulate


@pytest.fixture(scope="module")
def split():
    return simulate("untreated", seed=1).split


def test_the_test_answers_are_hidden_and_the_split_is_read_only(split) -> None:
    mine = hidden_test(split)
    assert np.isnan(mine.r_test).all() and np.isnan(mine.y_test).all()
    assert np.isfinite(split.r_test).all()                     # the caller's split keeps them
    np.testing.assert_array_equal(mine.x_test, split.x_test)
    np.testing.assert_array_equal(mine.supervised_train()[1], split.supervised_train()[1])
    assert mine.threshold == split.threshold
    with pytest.raises(ValueError, match="read-only"):
        mine.xs_train[0, 0] = 1.0


class _Edits(Centroid):
    heads = ("binary",)

    def fit(self, split):
        split.x_val[:] = 0.0
        return self


class _NoHead:
    def fit(self, split):
        return self


class _ReturnsNone(Centroid):
    def fit(self, split):
        return None


class _Unfitted(Centroid):
    def fit(self, split):
        return self     # predict_proba then reads a missing w_


@pytest.mark.parametrize("make, heads, words", [
    (_Edits, ("binary",), "the method changed its input in place"),
    (_NoHead, ("binary",), "has no predict_proba()"),
    (_ReturnsNone, ("continuous",), "fit() returned None"),
    (_Unfitted, ("binary",), "AttributeError: '_Unfitted' object has no attribute 'w_' (in predict_proba())"),
])
def test_a_bad_method_fails_with_its_reason(split, make, heads, words) -> None:
    with pytest.raises(MethodFailed) as e:
        fit_predict_response(make, split, heads)
    assert words in str(e.value)


def test_scores_are_the_methods_own(split) -> None:
    got = fit_predict_response(Centroid, split, ("binary", "continuous"))
    m = Centroid().fit(split)
    np.testing.assert_array_equal(got["binary"], m.predict_proba(split.x_test))
    np.testing.assert_array_equal(got["continuous"], m.predict(split.x_test))


def test_each_heads_scores_are_copied_when_given(split) -> None:
    """A method whose heads return one buffer they refill: each head's scores are what it returned."""
    from tests.pertvae_core.response_plugins import SharesBuffer

    got = fit_predict_response(SharesBuffer, split, ("binary", "continuous"))
    m = Centroid().fit(split)
    np.testing.assert_array_equal(got["binary"], m.predict_proba(split.x_test))
    np.testing.assert_array_equal(got["continuous"], m.predict(split.x_test))


def test_heads_come_from_the_attribute_or_the_calls() -> None:
    assert method_heads(Centroid) == ("binary", "continuous")
    with pytest.raises(ValueError, match="a response method has a binary head"):
        method_heads(_NoHead)
    assert method_heads(_OnlyPredict) == ("continuous",) and method_heads(_Unfitted()) == Centroid.heads


class _OnlyPredict:
    def predict(self, x1):
        return x1[:, 0]


def test_a_response_method_by_its_entry_point(split, tmp_path: Path, monkeypatch) -> None:
    info = tmp_path / "plug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pertvae_bench.response_methods]\n"
                                           "my_centroid = tests.pertvae_core.response_plugins:Centroid\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    f = load_response_method("my_centroid")
    assert (f.name, f.heads, f.accepts) == ("centroid", ("binary", "continuous"), ("seed",))
    with pytest.raises(MethodLoadError, match="did you mean 'my_centroid'"):
        load_response_method("my_centroi")
    # its fits run in their own process, scored as in this one
    got = IsolatedResponseMethod.of(f, 120.0, latent=3, seed=1).fit_predict(split, ("binary",))
    np.testing.assert_array_equal(got["binary"], Centroid().fit(split).predict_proba(split.x_test))


def test_the_job_file_holds_no_test_answers(split) -> None:
    """A response method that reads its sandbox process's job file (sys.argv[1]) finds the test labels
    hidden there too, so it scores the test rows by its own fit."""
    from pertvae_core.response_methods import load_response_method as load
    from tests.pertvae_core.response_plugins import ReadsJobFile

    f = load("tests.pertvae_core.response_plugins:ReadsJobFile")
    got = IsolatedResponseMethod.of(f, 120.0, latent=3, seed=1).fit_predict(split, ("binary",))
    np.testing.assert_array_equal(got["binary"], Centroid().fit(split).predict_proba(split.x_test))
    assert not np.array_equal(got["binary"], split.y_test)
    assert ReadsJobFile.name == "reads_job_file"
