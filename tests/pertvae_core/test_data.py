"""SplitData checks its arrays on construction, with the same per-field checks the baselines apply to a
duck-typed split (pertvae_core.data.checked_fields)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pertvae_core.data import FIELDS, SplitData, checked_fields


def _arrays(genes: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    rows = {"x1_train": 6, "x2_train": 6, "x1_val": 2, "x2_val": 2, "x1_test": 3, "x2_test": 3, "xs_train": 4}
    return {f: rng.normal(size=(n, genes)) for f, n in rows.items()}


def test_a_valid_split_holds_float32_arrays() -> None:
    split = SplitData(**_arrays())
    assert all(getattr(split, f).dtype == np.float32 for f in FIELDS)
    out, genes = checked_fields(split, np.float64)
    assert genes == 5 and set(out) == set(FIELDS) and out["x1_train"].dtype == np.float64
    np.testing.assert_allclose(out["x1_train"], split.x1_train)


@pytest.mark.parametrize(("change", "message"), [
    ({"x1_val": np.zeros(5)}, r"SplitData.x1_val must be 2-D \[rows, genes\], got shape \(5,\)"),
    ({"xs_train": np.zeros((4, 4))}, r"SplitData.xs_train has 4 genes, expected 5 \(as x1_train\)"),
    ({"x2_test": np.full((3, 5), np.inf)}, "SplitData.x2_test contains NaN or inf"),
    ({"x2_train": np.zeros((5, 5))}, "x1_train has 6 rows but x2_train has 5: pairs must align"),
    ({"x1_test": np.zeros((0, 5)), "x2_test": np.zeros((0, 5))}, "SplitData.x1_test has no rows"),
])
def test_a_bad_split_is_refused_naming_the_field(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SplitData(**{**_arrays(), **change})


def test_a_split_without_a_field_is_refused_by_name() -> None:
    class Partial:
        pass

    part = Partial()
    for f, a in _arrays().items():
        if f != "x2_val":
            setattr(part, f, a)
    with pytest.raises(ValueError, match="SplitData lacks field 'x2_val'"):
        checked_fields(part, np.float32)


@pytest.mark.parametrize(("change", "message"), [
    ({"xs_train": np.array([["a"] * 5])},
     r"SplitData.xs_train: expected real numbers \[rows, genes\] \(could not convert string to float"),
    ({"xu_train": np.array([["a"] * 5])}, "SplitData.xu_train: expected real numbers"),
    ({"test_cell_line": np.array(["a", "b", "c"]), "xc_test": np.array([["a"] * 5]),
      "xc_test_cell_line": np.array(["a"])}, "SplitData.xc_test: expected real numbers"),
    ({"x1_train": np.ones((6, 5)) + 1j}, "SplitData.x1_train: expected real numbers .*complex numbers"),
    ({"x2_val": np.full((2, 5), 1e39)},
     r"SplitData.x2_val: 10 value\(s\) beyond float32's range \(e.g. 1e\+39\)"),
])
def test_api51_a_field_that_is_not_real_numbers_is_refused_by_name(change: dict, message: str) -> None:
    """Text in xs_train, xu_train or xc_test raised numpy's 'could not convert string to float' naming no
    field; a complex x1_train was cast with its imaginary part dropped (a ComplexWarning only) and the split
    accepted; float64 values beyond float32's range became inf and were called 'contains NaN or inf'."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # and no numpy warning on the way
        with pytest.raises(ValueError, match=message):
            SplitData(**{**_arrays(), **change})
