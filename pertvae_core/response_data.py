"""One drug's response split as pertvae_core receives it: profiles, continuous responses and derived labels.

Per split (cell lines grouped into folds by the caller, so no cell line is in two of train/validation/test):
- training pairs (x1_pairs, x2_pairs) of the drug, with the pair's cell-line response ``r_pairs`` (NaN =
  unlabelled: a cell line with a perturbation experiment but no viability screen);
- training singletons ``xs_train`` (untreated profiles) with ``r_train`` (NaN = unlabelled);
- validation and test labelled singletons (``x_val``, ``r_val``; ``x_test``, ``r_test``): response is
  predicted from the untreated profile alone, as in Dr.VAE;
- optional validation pairs (``x1_val_pairs``, ``x2_val_pairs``; default none) of the validation cell lines:
  what a perturbation model fitted on the split (PertVAE's features, pertvae_core.response_features) stops
  early on; Dr.VAE stops on the validation labels and does not read them.
Responses are continuous, higher = more sensitive (:mod:`pertvae_core.response_labels`). On construction the
binary labels ``y_*`` (1 = sensitive, NaN = unlabelled) are derived by ``rule`` with a threshold computed from
the training cell lines' responses only, one value per cell line when ``cl_pairs`` / ``cl_train`` name them
(replicate pairs of a cell line then count once; without names each labelled row counts). A split for the
binary head (``binary``, the default) needs both classes among its labelled training rows; one for the
continuous head (``binary=False``: the response itself is the target) keeps its labels and does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pertvae_core.data import distinct_rows
from pertvae_core.response_labels import LabelRule, binarize, rule_threshold

__all__ = ["ResponseSplit", "X_FIELDS", "VAL_PAIR_FIELDS"]

X_FIELDS = ("x1_pairs", "x2_pairs", "xs_train", "x_val", "x_test")
VAL_PAIR_FIELDS = ("x1_val_pairs", "x2_val_pairs")
_R_OF = {"x1_pairs": "r_pairs", "xs_train": "r_train", "x_val": "r_val", "x_test": "r_test"}
_CL_OF = {"x1_pairs": "cl_pairs", "xs_train": "cl_train", "x_val": "cl_val", "x_test": "cl_test"}


@dataclass(frozen=True)
class ResponseSplit:
    """Raw arrays of one split (module docstring); validated on construction, labels derived by ``rule``.

    Derived (not arguments): ``threshold``, ``y_pairs``, ``y_train``, ``y_val``, ``y_test`` (float64, 1 =
    sensitive, 0 = resistant, NaN = unlabelled).
    """

    x1_pairs: np.ndarray
    x2_pairs: np.ndarray
    r_pairs: np.ndarray
    xs_train: np.ndarray
    r_train: np.ndarray
    x_val: np.ndarray
    r_val: np.ndarray
    x_test: np.ndarray
    r_test: np.ndarray
    rule: LabelRule = field(default_factory=LabelRule)
    cl_pairs: np.ndarray | None = None
    cl_train: np.ndarray | None = None
    cl_val: np.ndarray | None = None
    cl_test: np.ndarray | None = None
    x1_val_pairs: np.ndarray | None = None
    x2_val_pairs: np.ndarray | None = None
    binary: bool = True
    threshold: float = field(init=False)
    y_pairs: np.ndarray = field(init=False)
    y_train: np.ndarray = field(init=False)
    y_val: np.ndarray = field(init=False)
    y_test: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self._check_profiles()
        self._check_responses()
        self._check_cell_lines()
        if not isinstance(self.rule, LabelRule):
            raise ValueError(f"ResponseSplit.rule must be a LabelRule, got {type(self.rule).__name__}")
        t = rule_threshold(self.rule, self.train_responses())
        object.__setattr__(self, "threshold", t)
        for part in ("pairs", "train", "val", "test"):
            object.__setattr__(self, f"y_{part}", binarize(getattr(self, f"r_{part}"), t))
        y = self.supervised_train()[1]
        if y.size == 0:
            raise ValueError("ResponseSplit: no labelled training rows (r_pairs and r_train are all NaN)")
        if self.binary and y.min() == y.max():
            cls = "sensitive" if y[0] else "resistant"
            raise ValueError(f"ResponseSplit: every labelled training cell line is {cls} at threshold {t:g} "
                             f"({self.rule.kind} rule); a classifier needs both classes")

    def _check_profiles(self) -> None:
        genes = None
        for f in X_FIELDS + VAL_PAIR_FIELDS:
            if getattr(self, f) is None:      # no validation pairs: 0 rows of x1_pairs' genes
                object.__setattr__(self, f, np.zeros((0, self.x1_pairs.shape[-1]), np.float32))
            a = np.asarray(getattr(self, f), dtype=np.float32)
            if a.ndim != 2:
                raise ValueError(f"ResponseSplit.{f} must be 2-D [rows, genes], got shape {a.shape}")
            genes = a.shape[1] if genes is None else genes
            if a.shape[1] != genes:
                raise ValueError(f"ResponseSplit.{f} has {a.shape[1]} genes, expected {genes} (as x1_pairs)")
            if not np.isfinite(a).all():
                raise ValueError(f"ResponseSplit.{f} contains NaN or inf")
            object.__setattr__(self, f, a)
        if genes < 2:
            raise ValueError(f"ResponseSplit needs at least 2 genes, got {genes}")
        for a, b in (("x1_pairs", "x2_pairs"), VAL_PAIR_FIELDS):
            if getattr(self, a).shape[0] != getattr(self, b).shape[0]:
                raise ValueError(f"ResponseSplit.{a} has {getattr(self, a).shape[0]} rows but {b} has "
                                 f"{getattr(self, b).shape[0]}: pairs must align row by row")
        if self.x_test.shape[0] == 0:
            raise ValueError("ResponseSplit.x_test has no rows")

    def _check_responses(self) -> None:
        for xf, rf in _R_OF.items():
            r = np.asarray(getattr(self, rf), dtype=np.float64)
            n = getattr(self, xf).shape[0]
            if r.shape != (n,):
                raise ValueError(f"ResponseSplit.{rf} has shape {r.shape}, expected ({n},): one per row "
                                 f"of {xf}")
            if np.isinf(r).any():
                raise ValueError(f"ResponseSplit.{rf} contains inf")
            if rf in ("r_val", "r_test") and np.isnan(r).any():
                raise ValueError(f"ResponseSplit.{rf} contains NaN: validation and test rows must be "
                                 "labelled")
            object.__setattr__(self, rf, r)

    def _check_cell_lines(self) -> None:
        for xf, cf in _CL_OF.items():
            c = getattr(self, cf)
            if c is None:
                continue
            c = np.asarray(c).astype(str)
            if c.shape != (getattr(self, xf).shape[0],):
                raise ValueError(f"ResponseSplit.{cf} has shape {c.shape}, expected "
                                 f"({getattr(self, xf).shape[0]},): one cell line per row of {xf}")
            object.__setattr__(self, cf, c)
        sets = {k: set(getattr(self, k)) if getattr(self, k) is not None else set()
                for k in ("cl_pairs", "cl_train", "cl_val", "cl_test")}
        train = sets["cl_pairs"] | sets["cl_train"]
        for a, b in ((train, "cl_val"), (train, "cl_test"), (sets["cl_val"], "cl_test")):
            both = sorted(str(c) for c in a & sets[b])
            if both:
                where = "training" if a is train else "validation"
                raise ValueError(f"ResponseSplit: cell line(s) {both[:5]} are in both the {where} rows and "
                                 f"{b}; folds must be grouped by cell line")

    def train_responses(self) -> np.ndarray:
        """The labelled training responses the label rule sees: one per named cell line (pairs and singletons
        together), one per row where cell lines are not named. Conflicting values of one cell line raise."""
        by_cl: dict[str, float] = {}
        rows: list[float] = []
        for r, c in ((self.r_pairs, self.cl_pairs), (self.r_train, self.cl_train)):
            for i in np.flatnonzero(~np.isnan(r)):
                if c is None:
                    rows.append(float(r[i]))
                elif by_cl.setdefault(c[i], float(r[i])) != float(r[i]):
                    raise ValueError(f"ResponseSplit: cell line {str(c[i])!r} has two training responses "
                                     f"({by_cl[c[i]]:g} and {float(r[i]):g}); give one response per "
                                     "cell line")
        return np.asarray(list(by_cl.values()) + rows, dtype=np.float64)

    def train_mean(self) -> float:
        """The drug's mean training response, one value per training cell line (:meth:`train_responses`):
        the naive continuous prediction (pertvae_core.response_baselines.DrugMean) and RMSE's chance."""
        return float(self.train_responses().mean())

    @property
    def genes(self) -> int:
        return int(self.x1_pairs.shape[1])

    def supervised_train(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, r) of the labelled training rows, what supervised baselines fit on: the labelled pairs'
        untreated profiles, each (x1, response) once (replicate pairs share their control), then the labelled
        singletons."""
        lab = ~np.isnan(self.r_pairs)
        xr = distinct_rows(np.column_stack([self.x1_pairs[lab].astype(np.float64), self.r_pairs[lab]]))
        ls = ~np.isnan(self.r_train)
        x = np.concatenate([xr[:, :-1].astype(np.float32), self.xs_train[ls]])
        r = np.concatenate([xr[:, -1], self.r_train[ls]])
        return x, binarize(r, self.threshold), r

    def untreated_train(self) -> np.ndarray:
        """Every training untreated profile once (distinct pair controls, then singletons), labelled or not:
        what unsupervised feature maps (PCA) fit on."""
        return np.concatenate([distinct_rows(self.x1_pairs), self.xs_train])
