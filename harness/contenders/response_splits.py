"""A drug's response splits (pertvae_core.response_data.ResponseSplit) from the cube, for the response models.

Per (repeat, fold), grouped by cell line so that no cell line is in two of train / validation / test:
- the drug's paired cell lines are split exactly as the perturbation benchmark splits them
  (harness.shapes.run_splits), so they are spread across the folds and a fit sees the same pair folds as
  PertVAE's;
- the labelled singleton-only cell lines (a baseline profile and a response, no pair) are dealt into folds
  of their own by datasets.splits.make_splits under the key ``<drug>/response`` (seeded from the run's
  base seed, the drug and the repeat, so a split never depends on scheduling); Dr.VAE's authors stratify
  these by response, we group them at random;
- training: the pairs of training cell lines (with their cell line's response, NaN = unlabelled) and every
  singleton of a cell line in neither validation nor test (labelled or not: the model is semi-supervised);
- validation and test: the labelled singletons of their cell lines (response predicted from the untreated
  profile alone, as in Dr.VAE); the validation cell lines' pairs too, where a PertVAE fitted for the
  classifiers' features stops early (harness.contenders.response_pertvae). Labels come from the default
  run's rule (``response_label``, ``response_label_value``; waterfall by default), computed on each split's
  training cell lines only.
A split that cannot be built (too few labelled cell lines, one class in training, no test singleton) is its
reason (a str) in place of the split, and its fit is marked failed with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.shapes import run_splits

if TYPE_CHECKING:
    from harness.config import RunConfig
    from pertvae_core.data import SplitData
    from pertvae_core.response_data import ResponseSplit
    from pertvae_core.response_labels import LabelRule

__all__ = ["RESPONSE_METRICS", "CONTINUOUS_METRICS", "PENALTY_WORDS", "response_splits", "response_test_sets",
           "label_rule", "failed_row", "run_valid", "calibration_split"]

# The binary head's metrics and their chance levels (pertvae_core.response_metrics.binary_metrics).
RESPONSE_METRICS = ("auroc", "auroc_chance", "aupr", "aupr_chance")
# The continuous head's (pertvae_core.response_metrics.continuous_metrics): RMSE's chance is the RMSE of
# predicting the training cell lines' mean response.
CONTINUOUS_METRICS = ("pearson", "pearson_chance", "spearman", "spearman_chance", "rmse", "rmse_chance")
# The method legends' words on a classifier's penalty (pertvae_core.response_baselines._Classifier._pick):
# validation AUROC needs both classes, so a split whose validation cell lines are one class keeps C = 1.
PENALTY_WORDS = (", its penalty C chosen by AUROC on the validation cell lines (C = 1 on a split whose "
                 "validation cell lines are all of one class)")


def label_rule(cfg: RunConfig) -> LabelRule:
    """The run's response label rule (pertvae_core.response_labels.LabelRule; ValueError on a bad one)."""
    from pertvae_core.response_labels import LabelRule

    value = cfg.response_label_value
    return LabelRule(cfg.response_label, None if value is None else float(value))


def _fold_sets(cells: Sequence[str], drug: str, cfg: RunConfig) -> dict[tuple[int, int], Any]:
    """(repeat, fold) -> datasets.splits.Split of ``cells`` (empty when there are too few to split)."""
    from datasets.splits import make_splits

    cells = sorted(set(cells))
    if len(cells) < cfg.n_folds + 2:
        return {}
    return {(s.repeat, s.fold): s for s in make_splits(cells, drug, cfg.n_repeats, cfg.n_folds,
                                                        cfg.val_fraction, cfg.base_seed)}


def response_splits(dd: Any, cube: Any, split_keys: Sequence[tuple[int, int]], cfg: RunConfig,
                    head: str = "binary") -> list[ResponseSplit | str]:
    """The ResponseSplit of each (repeat, fold) of ``split_keys`` for ``dd``'s drug (module docstring), for
    the models of ``head``: the continuous head's splits need no two label classes in training."""
    from datasets.response import drug_response

    resp = drug_response(cube, dd.drug)
    pcl = np.asarray(dd.pair_cell_line).astype(str)
    scl = np.asarray(dd.singleton_cell_line).astype(str)
    r_pairs, r_sing = resp.lookup(pcl), resp.lookup(scl)
    if np.isnan(r_pairs).all() and np.isnan(r_sing).all():   # a drug left without one (--response-partial)
        return [f"drug {dd.drug!r}: the cube has no response for it (built with --response-partial): nothing "
                f"to train on or score" for _ in split_keys]
    return [_one_split(dd, pcl, scl, r_pairs, r_sing, train, val, test, label_rule(cfg), head == "binary")
            for train, val, test in _cell_sets(dd.drug, pcl, scl, r_sing, split_keys, cfg)]


def _cell_sets(drug: str, pcl: np.ndarray, scl: np.ndarray, r_sing: np.ndarray,
               split_keys: Sequence[tuple[int, int]], cfg: RunConfig) -> list[tuple[set, set, set]]:
    """(training pair cell lines, validation, test cell lines) of each (repeat, fold) of ``split_keys``
    (module docstring)."""
    paired = sorted(set(pcl))
    pair_sets = {(s.repeat, s.fold): s for s in run_splits(paired, drug, cfg)}
    other_sets = _fold_sets(sorted(set(scl[~np.isnan(r_sing)]) - set(paired)), f"{drug}/response", cfg)
    out = []
    for key in split_keys:
        parts = [pair_sets[key]] + ([other_sets[key]] if key in other_sets else [])
        out.append((set(pair_sets[key].train_cell_lines), {c for s in parts for c in s.val_cell_lines},
                    {c for s in parts for c in s.test_cell_lines}))
    return out


def response_test_sets(dd: Any, cube: Any, cfg: RunConfig) -> tuple[list[list[int]], list[float]] | None:
    """What the corrected t of the drug's response report takes (pertvae_core.stats): [repeat][fold] -> the
    split's test set (its labelled test cell lines, numbered as harness.run.test_set_labels numbers the
    perturbation splits': a repeat that tests the same cell lines again adds no test set), and [n_train,
    n_test], its labelled training and test cell lines averaged over the splits that have a test cell line
    to score (validation excluded, as the perturbation benchmark counts them; [0, 0] where none has). None
    for a drug without a response."""
    from datasets.response import drug_response

    resp = drug_response(cube, dd.drug)
    pcl = np.asarray(dd.pair_cell_line).astype(str)
    scl = np.asarray(dd.singleton_cell_line).astype(str)
    r_pairs, r_sing = resp.lookup(pcl), resp.lookup(scl)
    if np.isnan(r_pairs).all() and np.isnan(r_sing).all():
        return None
    keys = [(r, f) for r in range(cfg.n_repeats) for f in range(cfg.n_folds)]
    labelled = set(pcl[~np.isnan(r_pairs)]) | set(scl[~np.isnan(r_sing)])
    seen: dict[tuple[str, ...], int] = {}
    labels: list[list[int]] = [[] for _ in range(cfg.n_repeats)]
    n_train, n_test = [], []
    sets = _cell_sets(dd.drug, pcl, scl, r_sing, keys, cfg)
    for (r, _), (train, val, test) in zip(keys, sets, strict=True):
        scored = tuple(sorted(test & set(scl[~np.isnan(r_sing)])))
        labels[r].append(seen.setdefault(scored, len(seen)))
        trained = (train | set(scl) - val - test) & labelled
        if scored:   # a split without a scored cell line fails: no test, no score
            n_train.append(len(trained))
            n_test.append(len(scored))
    return labels, [float(np.mean(n_train)), float(np.mean(n_test))] if n_test else [0.0, 0.0]


def _one_split(dd: Any, pcl: np.ndarray, scl: np.ndarray, r_pairs: np.ndarray, r_sing: np.ndarray,
               train: set[str], val: set[str], test: set[str], rule: LabelRule, binary: bool = True
               ) -> ResponseSplit | str:
    from pertvae_core.response_data import ResponseSplit

    x1, x2, xs = (np.asarray(a, dtype=np.float32) for a in (dd.x1, dd.x2, dd.xs))
    tp = np.isin(pcl, sorted(train))
    ts = ~np.isin(scl, sorted(val | test))
    labelled = ~np.isnan(r_sing)
    vs = np.isin(scl, sorted(val)) & labelled
    es = np.isin(scl, sorted(test)) & labelled
    vp = np.isin(pcl, sorted(val))
    if not es.any():   # ResponseSplit would say "x_test has no rows": say which rows the test set takes
        return (f"drug {dd.drug!r}: no response split: none of the split's {len(test)} test cell "
                f"line{'s' if len(test) != 1 else ''} has a baseline profile (the cube's 'baseline' "
                "condition) with a response, and the response models are scored on those")
    try:
        return ResponseSplit(x1[tp], x2[tp], r_pairs[tp], xs[ts], r_sing[ts], xs[vs], r_sing[vs], xs[es],
                             r_sing[es], rule=rule, cl_pairs=pcl[tp], cl_train=scl[ts], cl_val=scl[vs],
                             cl_test=scl[es], x1_val_pairs=x1[vp], x2_val_pairs=x2[vp], binary=binary)
    except ValueError as e:
        return f"drug {dd.drug!r}: no response split: {e}"


def failed_row(reason: str) -> dict:
    """The result of a fit whose split could not be built."""
    return {"scores": {}, "status": "failed", "reason": reason, "fit_seconds": 0.0}


def run_valid(data: Sequence[Any], fit: Any) -> list[dict]:
    """``fit(splits, positions)`` on the buildable splits of ``data`` (rows for them, in order); a failed row
    for each split that is its reason (a str)."""
    ok = [i for i, sp in enumerate(data) if not isinstance(sp, str)]
    rows: list[dict] = [failed_row(sp) if isinstance(sp, str) else {} for sp in data]
    if ok:
        for i, r in zip(ok, fit([data[i] for i in ok], ok), strict=True):
            rows[i] = r
    return rows


def calibration_split(sp: SplitData, seed: int = 0) -> ResponseSplit:
    """A ResponseSplit shaped like the perturbation split ``sp`` (its training pairs and singletons, its test
    pairs' x1 as validation and test singletons) with random responses: what the cost model times."""
    from pertvae_core.response_data import ResponseSplit

    rng = np.random.default_rng(seed)

    def resp(n: int) -> np.ndarray:
        r = rng.normal(size=max(n, 2))[:n]
        if n >= 2:
            r[:2] = (-1.0, 1.0)    # both classes, whatever the draw
        return r

    xs = sp.xs_train if len(sp.xs_train) else sp.x1_train
    x_test = sp.x1_test if len(sp.x1_test) else sp.x1_train
    return ResponseSplit(sp.x1_train, sp.x2_train, resp(len(sp.x1_train)), xs, resp(len(xs)), sp.x1_val,
                         resp(len(sp.x1_val)), x_test, resp(len(x_test)))
