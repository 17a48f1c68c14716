"""One cross-validation split's arrays, as pertvae_core receives them (raw, unstandardized)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SplitData", "FIELDS"]

FIELDS = ("x1_train", "x2_train", "x1_val", "x2_val", "x1_test", "x2_test", "xs_train")


@dataclass(frozen=True)
class SplitData:
    """Raw float32 arrays [rows, genes]: training/validation/test pairs (x1 pre-, x2 post-treatment) and
    unpaired training singletons ``xs_train`` (may have 0 rows). Validation pairs may have 0 rows (then no
    early stopping). Validated on construction: 2-D, equal gene counts, finite, pairs aligned row by row."""

    x1_train: np.ndarray
    x2_train: np.ndarray
    x1_val: np.ndarray
    x2_val: np.ndarray
    x1_test: np.ndarray
    x2_test: np.ndarray
    xs_train: np.ndarray

    def __post_init__(self) -> None:
        genes = None
        for f in FIELDS:
            a = np.asarray(getattr(self, f), dtype=np.float32)
            if a.ndim != 2:
                raise ValueError(f"SplitData.{f} must be 2-D [rows, genes], got shape {a.shape}")
            if genes is None:
                genes = a.shape[1]
            elif a.shape[1] != genes:
                raise ValueError(f"SplitData.{f} has {a.shape[1]} genes, expected {genes} (as x1_train)")
            if not np.isfinite(a).all():
                raise ValueError(f"SplitData.{f} contains NaN or inf")
            object.__setattr__(self, f, a)
        if genes is not None and genes < 2:
            raise ValueError(f"SplitData needs at least 2 genes, got {genes}")
        for a, b in (("x1_train", "x2_train"), ("x1_val", "x2_val"), ("x1_test", "x2_test")):
            if getattr(self, a).shape[0] != getattr(self, b).shape[0]:
                raise ValueError(f"SplitData.{a} has {getattr(self, a).shape[0]} rows but {b} has "
                                 f"{getattr(self, b).shape[0]}: pairs must align row by row")
        for f in ("x1_train", "x1_test"):
            if getattr(self, f).shape[0] == 0:
                raise ValueError(f"SplitData.{f} has no rows")

    @property
    def genes(self) -> int:
        return int(self.x1_train.shape[1])
