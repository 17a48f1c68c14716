"""One cross-validation split's arrays, as pertvae_core receives them (raw, unstandardized)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SplitData", "FIELDS", "TEST_FIELDS", "TEST_EXTRAS", "checked_fields", "distinct_rows",
           "measured_profiles", "real_array", "check_scorable", "check_spread", "NEAR_CONSTANT"]

FIELDS = ("x1_train", "x2_train", "x1_val", "x2_val", "x1_test", "x2_test", "xs_train")
TEST_FIELDS = ("x1_test", "x2_test")   # hidden (NaN) in the copy a method is fitted on
TEST_EXTRAS = ("test_cell_line", "xc_test", "xc_test_cell_line")   # None in that copy
NEAR_CONSTANT = 1e-5   # a training sd (> 0) under this multiple of the median gene's: refused (check_spread)


def real_array(value: Any, dtype: type, what: str) -> np.ndarray:
    """``value`` as a ``dtype`` array of real numbers, or ValueError naming ``what``: numpy's own errors for
    text or ragged rows name no field ('could not convert string to float'); a complex array was cast with
    its imaginary part dropped (only a ComplexWarning); finite values beyond ``dtype``'s range became inf
    and were then called 'NaN or inf'."""
    try:
        raw = np.asarray(value)
        if raw.dtype.kind == "c":
            raise ValueError("complex numbers are not expression values")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # overflow in cast: said below, by name
            out = np.asarray(raw, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: expected real numbers [rows, genes] ({str(e).splitlines()[0][:200]})"
                         ) from None
    if raw.dtype.kind == "f" and out.dtype.itemsize < raw.dtype.itemsize and not np.isfinite(out).all():
        big = raw[np.isinf(out) & np.isfinite(raw)]
        if big.size:
            raise ValueError(f"{what}: {big.size} value(s) beyond {np.dtype(dtype).name}'s range "
                             f"(e.g. {big.flat[0]:.3g}); expression is on a log scale")
    return out


def checked_fields(split: object, dtype: type, names: Sequence[str] = FIELDS
                   ) -> tuple[dict[str, np.ndarray], int]:
    """``split``'s fields ``names`` (default :data:`FIELDS`) as ``dtype`` arrays and their number of genes
    (x1_train's columns), each checked: present, 2-D [rows, genes], the same genes as the first, finite;
    ValueError naming the field. A test array that is NaN throughout is hidden, not bad (the copy a method
    is fitted on, pertvae_core.isolation). One check for :class:`SplitData` and for the duck-typed splits
    the baselines accept."""
    out: dict[str, np.ndarray] = {}
    for f in names:
        if not hasattr(split, f):
            raise ValueError(f"SplitData lacks field {f!r}")
        a = real_array(getattr(split, f), dtype, f"SplitData.{f}")
        if a.ndim != 2:
            raise ValueError(f"SplitData.{f} must be 2-D [rows, genes], got shape {a.shape}")
        genes = out["x1_train"].shape[1] if out else a.shape[1]
        if a.shape[1] != genes:
            raise ValueError(f"SplitData.{f} has {a.shape[1]} genes, expected {genes} (as x1_train)")
        if not np.isfinite(a).all() and not (f in TEST_FIELDS and np.isnan(a).all()):
            raise ValueError(f"SplitData.{f} contains NaN or inf")
        out[f] = a
    return out, out["x1_train"].shape[1]


def check_scorable(split: SplitData, what: str = "score") -> None:
    """ValueError unless ``split``'s test pairs are measured: SplitData accepts test arrays NaN throughout
    (the copy a method is fitted on, pertvae_core.isolation), so a split whose test profiles were all
    missing was scored as NaN in every metric, without a word; and unless no gene is near-constant in its
    training L1000 profiles, by which the z-space metrics standardize every method's prediction
    (:func:`check_spread`)."""
    for f in TEST_FIELDS:
        if np.isnan(getattr(split, f)).all():
            raise ValueError(f"{what}: SplitData.{f} is NaN throughout, as in the copy whose test pairs are "
                             "hidden from a method; scoring needs the measured test pairs")
    x = measured_profiles(split.x1_train, split.x2_train, split.xu_train).astype(np.float64)
    check_spread(x.std(axis=0), f"{what}: the training L1000 profiles (x1, x2 and unpaired controls)")


def check_spread(sd: np.ndarray, where: str) -> None:
    """Refuse a gene whose training sd (> 0) is under NEAR_CONSTANT times the median gene's: standardized by
    it, a test value a hair off its training mean lies thousands of sds out and spoils every gene's
    prediction (PertVAE, sd 1e-12 and test values' 1e-6: test loss 6e10, predictions up to 1e3) and the
    z-space scores of every method (sd 1e-9: the baselines' mse_z 3e4-8e4 against 1.3-2.8), scored as
    done. A floor would not help: the test values' own spread may be ordinary. Scale-free (the data's
    units are the caller's); an exactly constant gene keeps scale 1."""
    med = float(np.median(sd))
    bad = np.flatnonzero((sd > 0) & (sd < NEAR_CONSTANT * med))
    if len(bad):
        g, more = int(bad[0]), f" (and {len(bad) - 1} other columns)" if len(bad) > 1 else ""
        raise ValueError(f"{where}: gene column {g}{more} is near-constant: standard deviation {sd[g]:.3g}, "
                         f"under {NEAR_CONSTANT:g} times the median gene's {med:.3g}; standardized by it, "
                         "test values a little off its training mean would lie far outside what the model "
                         "trains on and spoil every gene's prediction and score. Leave that gene out of "
                         "every profile (or, if it is constant, make it exactly constant)")


@dataclass(frozen=True)
class SplitData:
    """Raw float32 arrays [rows, genes]: training/validation/test pairs (x1 pre-, x2 post-treatment) and
    unpaired training singletons ``xs_train`` (may have 0 rows). Validation pairs may have 0 rows (then no
    early stopping). Validated on construction: 2-D, equal gene counts, finite, pairs aligned row by row.

    ``xu_train`` (optional, default 0 rows): unpaired L1000 profiles of the training cell lines, the
    measured controls that no training pair uses. They train the embedding like the singletons but are
    L1000 profiles, so they are standardized, and counted in the training L1000 statistics, as such.

    Optional, for scoring per test cell line (:mod:`pertvae_core.evaluation`): ``test_cell_line`` [n_test]
    labels each test pair; ``xc_test`` [n_c, G] holds every control replicate of the test cell lines, with
    ``xc_test_cell_line`` [n_c]. Without labels every test pair counts as its own cell line; without
    ``xc_test`` a cell line's controls are the distinct x1 rows of its pairs."""

    x1_train: np.ndarray
    x2_train: np.ndarray
    x1_val: np.ndarray
    x2_val: np.ndarray
    x1_test: np.ndarray
    x2_test: np.ndarray
    xs_train: np.ndarray
    test_cell_line: np.ndarray | None = None
    xc_test: np.ndarray | None = None
    xc_test_cell_line: np.ndarray | None = None
    xu_train: np.ndarray | None = None

    def __post_init__(self) -> None:
        arrays, genes = checked_fields(self, np.float32)
        for f, a in arrays.items():
            object.__setattr__(self, f, a)
        if genes < 2:
            raise ValueError(f"SplitData needs at least 2 genes, got {genes}")
        self._check_unpaired()
        for a, b in (("x1_train", "x2_train"), ("x1_val", "x2_val"), ("x1_test", "x2_test")):
            if getattr(self, a).shape[0] != getattr(self, b).shape[0]:
                raise ValueError(f"SplitData.{a} has {getattr(self, a).shape[0]} rows but {b} has "
                                 f"{getattr(self, b).shape[0]}: pairs must align row by row")
        for f in ("x1_train", "x1_test"):
            if getattr(self, f).shape[0] == 0:
                raise ValueError(f"SplitData.{f} has no rows")
        self._check_test_labels()

    def _check_unpaired(self) -> None:
        xu = np.zeros((0, self.genes), np.float32) if self.xu_train is None else real_array(
            self.xu_train, np.float32, "SplitData.xu_train")
        if xu.ndim != 2 or xu.shape[1] != self.genes:
            raise ValueError(f"SplitData.xu_train must be [rows, {self.genes}], got shape {xu.shape}")
        if not np.isfinite(xu).all():
            raise ValueError("SplitData.xu_train contains NaN or inf")
        object.__setattr__(self, "xu_train", xu)

    def _check_test_labels(self) -> None:
        if self.test_cell_line is not None:
            lab = np.asarray(self.test_cell_line).astype(str)
            if lab.shape != (self.x1_test.shape[0],):
                raise ValueError(f"SplitData.test_cell_line has shape {lab.shape}, expected "
                                 f"({self.x1_test.shape[0]},): one label per test pair")
            object.__setattr__(self, "test_cell_line", lab)
        if (self.xc_test is None) != (self.xc_test_cell_line is None):
            raise ValueError("SplitData.xc_test and xc_test_cell_line go together: give both or neither")
        if self.xc_test is None:
            return
        if self.test_cell_line is None:
            raise ValueError("SplitData.xc_test needs test_cell_line (which cell line each test pair is)")
        xc = real_array(self.xc_test, np.float32, "SplitData.xc_test")
        lab = np.asarray(self.xc_test_cell_line).astype(str)
        if xc.ndim != 2 or xc.shape[1] != self.genes or lab.shape != (xc.shape[0],):
            raise ValueError(f"SplitData.xc_test must be [rows, {self.genes}] with one xc_test_cell_line per "
                             f"row, got {xc.shape} and {lab.shape}")
        if not np.isfinite(xc).all():
            raise ValueError("SplitData.xc_test contains NaN or inf")
        lacking = sorted(set(self.test_cell_line) - set(lab))
        if lacking:
            raise ValueError(f"SplitData.xc_test has no control for test cell line(s) {lacking[:5]}")
        object.__setattr__(self, "xc_test", xc)
        object.__setattr__(self, "xc_test_cell_line", lab)

    @property
    def genes(self) -> int:
        return int(self.x1_train.shape[1])


def distinct_rows(x: np.ndarray) -> np.ndarray:
    """The rows of ``x`` [n, G] without repeats, in order of first occurrence (a control profile paired with
    several post-treatment replicates is one measured profile)."""
    if len(x) < 2:
        return x
    _, first = np.unique(x, axis=0, return_index=True)
    return x[np.sort(first)]


def measured_profiles(x1: np.ndarray, x2: np.ndarray, xu: np.ndarray | None = None) -> np.ndarray:
    """The single L1000 profiles of pairs (x1, x2), each measured profile once: the distinct controls of x1
    (a control paired with several post-treatment replicates, or in Figure 2's pooled scope with several
    drugs, is one profile, not one per pair), then x2, then the unpaired controls ``xu`` (if given). What the
    plain VAE and Figure 2's PCA train on, with the singletons, and what the training L1000 statistics are
    computed from."""
    parts = [distinct_rows(x1), x2] + ([xu] if xu is not None and len(xu) else [])
    return np.concatenate(parts)
