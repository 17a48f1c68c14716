"""spearman_rows / rho_mean against scipy.stats.spearmanr, row by row."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import spearmanr

from pertvae_core.metrics import rho_mean, spearman_rows


def _scipy_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x, y in zip(a, b, strict=True):
            out.append(spearmanr(x, y).statistic)
    return np.asarray(out, dtype=float)


def test_matches_scipy_random_rows() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 97))
    b = a + rng.normal(size=a.shape)
    np.testing.assert_allclose(spearman_rows(a, b), _scipy_rows(a, b), rtol=0, atol=1e-12)


def test_matches_scipy_with_heavy_ties_and_constant_rows() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, size=(30, 25)).astype(float)
    b = rng.integers(0, 3, size=(30, 25)).astype(float)
    a[3] = 7.0  # constant row in a
    b[5] = -1.0  # constant row in b
    got = spearman_rows(a, b)
    want = _scipy_rows(a, b)
    assert np.isnan(got[3]) and np.isnan(got[5])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, equal_nan=True)


def test_known_values_and_torch_input() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[10.0, 20.0, 30.0, 40.0], [4.0, 3.0, 2.0, 1.0]])
    np.testing.assert_allclose(spearman_rows(a, b), [1.0, -1.0])
    # float32 numpy input, 3-D batch: leading axes are kept
    x = np.random.default_rng(2).normal(size=(2, 3, 11)).astype(np.float32)
    assert spearman_rows(x, x[..., ::-1]).shape == (2, 3)
    np.testing.assert_allclose(spearman_rows(x, x), np.ones((2, 3)))


def test_nan_propagates_to_its_row_only() -> None:
    a = np.arange(12, dtype=float).reshape(2, 6)
    b = a.copy()
    b[0, 2] = np.nan
    rho = spearman_rows(a, b)
    assert np.isnan(rho[0]) and rho[1] == pytest.approx(1.0)


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        spearman_rows(np.zeros((2, 5)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="at least 2 genes"):
        spearman_rows(np.zeros((3, 1)), np.zeros((3, 1)))


def test_rho_mean_is_mean_of_rows_ignoring_undefined_rows() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(8, 20))
    b = rng.normal(size=(8, 20))
    assert rho_mean(a, b) == pytest.approx(float(np.mean(_scipy_rows(a, b))))
    b[0] = 1.0
    assert rho_mean(a, b) == pytest.approx(float(np.mean(_scipy_rows(a[1:], b[1:]))))
    assert np.isnan(rho_mean(np.ones((2, 5)), np.ones((2, 5))))


_vals = st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0]) | st.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), rows=st.integers(1, 5), genes=st.integers(2, 30))
def test_property_matches_scipy(data: st.DataObject, rows: int, genes: int) -> None:
    a = data.draw(arrays(np.float64, (rows, genes), elements=_vals))
    b = data.draw(arrays(np.float64, (rows, genes), elements=_vals))
    got = spearman_rows(a, b)
    want = _scipy_rows(a, b)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, equal_nan=True)
    assert np.all(np.isnan(got) | (np.abs(got) <= 1.0))
