"""ResponseSplit: validation on construction, one response per training cell line, the training sets."""

from __future__ import annotations

import numpy as np
import pytest

from pertvae_core.response_data import ResponseSplit
from pertvae_core.response_labels import LabelRule


def _args(n_pairs: int = 6, n_single: int = 8, g: int = 4) -> dict:
    rng = np.random.default_rng(0)

    def x(n: int) -> np.ndarray:
        return rng.normal(size=(n, g)).astype(np.float32)

    return {"x1_pairs": x(n_pairs), "x2_pairs": x(n_pairs), "r_pairs": np.linspace(0, 1, n_pairs),
            "xs_train": x(n_single), "r_train": np.linspace(0.5, 2, n_single), "x_val": x(3),
            "r_val": np.array([0.1, 1.5, 0.2]), "x_test": x(4), "r_test": np.array([0.0, 2.0, 0.3, 1.0]),
            "rule": LabelRule("quantile", 0.5)}


@pytest.mark.parametrize(("change", "match"), [
    ({"x2_pairs": np.zeros((5, 4), np.float32)}, "pairs must align"),
    ({"xs_train": np.zeros((8, 3), np.float32)}, "xs_train has 3 genes"),
    ({"x_test": np.zeros((0, 4), np.float32)}, "x_test has no rows"),
    ({"x_val": np.full((3, 4), np.nan, np.float32)}, "x_val contains NaN"),
    ({"r_train": np.ones(7)}, "r_train has shape"),
    ({"r_test": np.array([0.0, np.nan, 0.3, 1.0])}, "must be labelled"),
    ({"r_pairs": np.full(6, np.inf)}, "r_pairs contains inf"),
    ({"r_pairs": np.full(6, np.nan), "r_train": np.full(8, np.nan)}, "at least 3"),
    ({"rule": LabelRule("fixed", 100.0)}, "every labelled training cell line is resistant"),
    ({"rule": "waterfall"}, "must be a LabelRule"),
])
def test_bad_input_is_named(change: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ResponseSplit(**{**_args(), **change})


def test_cell_lines_must_not_cross_folds() -> None:
    a = _args()
    cl = {"cl_pairs": np.array(list("aabbcc")), "cl_train": np.array(list("defghijk")),
          "cl_val": np.array(["x", "y", "z"]), "cl_test": np.array(["p", "q", "r", "a"])}
    pairs_r = np.repeat([0.0, 0.5, 1.0], 2)
    with pytest.raises(ValueError, match=r"\['a'\] are in both the training rows and cl_test"):
        ResponseSplit(**{**a, **cl, "r_pairs": pairs_r})
    ok = ResponseSplit(**{**a, **cl, "r_pairs": pairs_r, "cl_test": np.array(list("pqrs"))})
    # replicate pairs of one cell line count once: 3 pair cell lines + 8 singletons
    assert ok.train_responses().size == 11
    with pytest.raises(ValueError, match="cell line 'a' has two training responses"):
        ResponseSplit(**{**a, **cl, "cl_test": np.array(list("pqrs"))})  # r_pairs differ within 'a'


def test_supervised_rows_and_untreated_profiles() -> None:
    a = _args()
    x1 = np.repeat(a["x1_pairs"][:3], 2, axis=0)  # each control paired with two treated replicates
    r = np.repeat([0.0, np.nan, 1.0], 2)
    sp = ResponseSplit(**{**a, "x1_pairs": x1, "r_pairs": r})
    x, y, rr = sp.supervised_train()
    np.testing.assert_array_equal(x[:2], x1[[0, 4]])  # labelled controls once each, then the singletons
    np.testing.assert_array_equal(x[2:], a["xs_train"])
    np.testing.assert_array_equal(rr, np.r_[0.0, 1.0, a["r_train"]])
    np.testing.assert_array_equal(y, (rr >= sp.threshold).astype(float))
    assert sp.untreated_train().shape == (3 + 8, 4)
    assert sp.y_pairs.dtype == np.float64 and np.isnan(sp.y_pairs[2:4]).all()


def test_a_continuous_head_split_needs_no_two_label_classes() -> None:
    """The continuous head's target is the response: one label class in training is no error for it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4)).astype(np.float32)
    r = np.linspace(0.0, 1.0, 12)
    args = (x[:4], x[:4] + 1, r[:4], x[4:8], r[4:8], x[8:10], r[8:10], x[10:], r[10:])
    rule = LabelRule("fixed", 5.0)
    with pytest.raises(ValueError, match="a classifier needs both classes"):
        ResponseSplit(*args, rule=rule)
    sp = ResponseSplit(*args, rule=rule, binary=False)
    assert sp.threshold == 5.0 and (sp.supervised_train()[1] == 0).all()
    np.testing.assert_array_equal(sp.supervised_train()[2], np.r_[r[:4], r[4:8]])
