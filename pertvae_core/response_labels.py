"""Binary response labels from continuous drug response, by a rule computed on training cell lines only.

Direction: a higher response value means a more sensitive cell line (e.g. CTRPv2/PRISM area above the curve,
activity area). Label 1 ("sensitive") iff response >= threshold; the threshold is a function of the training
cell lines' responses alone, so nothing about validation or test cell lines reaches it (a test of
:class:`pertvae_core.response_data.ResponseSplit` changes every test value and checks the threshold stays).

Rules (:class:`LabelRule`):
- ``waterfall`` (default), the CCLE sensitivity call (Barretina et al., Nature 483:603, 2012, Supplementary
  Methods, "waterfall" approach; as implemented in PharmacoGx ``callingWaterfall`` with no intermediate
  class): sort the responses in decreasing order (the waterfall v_1 >= ... >= v_n, plotted against rank
  i = 1..n). If the curve is near linear, Pearson r(v_i, i) < -``linear_r`` (|r| > 0.95 by default), the
  threshold is the observed response closest to the median. Otherwise it is v_k at the point farthest from the
  straight line through the curve's ends (1, v_1) and (n, v_n) (the knee). The perpendicular distance to that
  line is |vertical residual| * cos(angle), one factor for all points, so the argmax is the same in any units
  of rank and response. Ties go to the first point in waterfall order (the larger value, as R's which.max /
  which.min). PharmacoGx passes the slope and intercept where the coefficients of a*x + b*y + c = 0 belong
  (so its "distance" is |slope * i + intercept * v| / ...); we implement the geometric distance the paper
  describes.
- ``quantile``: threshold = the ``value``-quantile of the training responses (numpy's linear interpolation),
  so about a fraction 1 - value of the training cell lines is sensitive.
- ``fixed``: threshold = ``value`` (units of the response), e.g. a published cut-off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["LabelRule", "RULES", "waterfall_threshold", "rule_threshold", "binarize"]

RULES = ("waterfall", "quantile", "fixed")
MIN_RESPONSES = 3


@dataclass(frozen=True)
class LabelRule:
    """How to binarize one drug's responses in one split: ``kind`` in :data:`RULES`; ``value`` is the quantile
    level in (0, 1) for "quantile" and the threshold for "fixed" (unused by "waterfall"); ``linear_r`` is the
    waterfall's |Pearson r| above which the curve counts as linear (median threshold)."""

    kind: str = "waterfall"
    value: float | None = None
    linear_r: float = 0.95

    def __post_init__(self) -> None:
        if self.kind not in RULES:
            raise ValueError(f"LabelRule.kind = {self.kind!r}: must be one of {', '.join(RULES)}")
        if self.kind == "quantile" and not (self.value is not None and 0.0 < float(self.value) < 1.0):
            raise ValueError(f"LabelRule.value = {self.value!r}: the quantile rule needs a level in (0, 1)")
        if self.kind == "fixed" and not (self.value is not None and math.isfinite(float(self.value))):
            raise ValueError(f"LabelRule.value = {self.value!r}: the fixed rule needs a finite threshold")
        if not (0.0 < self.linear_r <= 1.0):
            raise ValueError(f"LabelRule.linear_r = {self.linear_r!r}: must be in (0, 1]")


def _check_responses(r: np.ndarray, what: str) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64).ravel()
    if not np.isfinite(r).all():
        raise ValueError(f"{what}: training responses must be finite (drop unlabelled rows first)")
    if r.size < MIN_RESPONSES:
        raise ValueError(f"{what}: needs at least {MIN_RESPONSES} training responses, got {r.size}")
    if np.ptp(r) == 0:
        raise ValueError(f"{what}: all {r.size} training responses are equal ({r[0]:g}); no threshold "
                         "splits them")
    return r


def waterfall_threshold(r: np.ndarray, linear_r: float = 0.95) -> tuple[float, str]:
    """The waterfall threshold of responses ``r`` (module docstring) and which branch chose it
    ("median" for a near-linear curve, "knee" otherwise)."""
    v = np.sort(_check_responses(r, "waterfall"))[::-1]
    n = v.size
    i = np.arange(1, n + 1, dtype=np.float64)
    rho = float(np.corrcoef(v, i)[0, 1])
    if -rho > linear_r:
        return float(v[int(np.argmin(np.abs(v - np.median(v))))]), "median"
    slope = (v[-1] - v[0]) / (n - 1)
    resid = np.abs(v - (v[0] + slope * (i - 1)))  # vertical distance; argmax = perpendicular argmax
    return float(v[int(np.argmax(resid))]), "knee"


def rule_threshold(rule: LabelRule, r_train: np.ndarray) -> float:
    """The threshold of ``rule`` from the training responses ``r_train`` (one per training cell line)."""
    if rule.kind == "fixed":
        return float(rule.value)  # type: ignore[arg-type]
    if rule.kind == "quantile":
        return float(np.quantile(_check_responses(r_train, "quantile rule"), float(rule.value)))
    return waterfall_threshold(r_train, rule.linear_r)[0]


def binarize(r: np.ndarray, threshold: float) -> np.ndarray:
    """1.0 where r >= threshold (sensitive), 0.0 below, NaN where r is NaN (unlabelled); float64."""
    r = np.asarray(r, dtype=np.float64)
    return np.where(np.isnan(r), np.nan, (r >= threshold).astype(np.float64))
