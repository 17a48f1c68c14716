"""Why a drug has splits without the change metrics: the words benchmark.md and the summary give.

A split's change metrics (delta_pearson and the rest, pertvae_core.evaluation) score only test cell lines
with two or more usable control replicates, part as the model's input and the rest as the reference of the
measured change; a split whose test cell lines have one control each has scores of the whole profile
(rho_pred_pert, mse_z) and none of the change. Real L1000 cell lines with a single vehicle control are
common, and without these words a drug's fewer splits, or a run with no delta_pearson at all, read as
failed or missing fits.
"""

from __future__ import annotations

import pandas as pd

from pertvae_core.evaluation import PRIMARY
from pertvae_core.methods import REFERENCE

__all__ = ["SINGLE_CONTROL", "unscored_splits", "unscored_line", "no_change_scores"]

SINGLE_CONTROL = ("each test cell line has a single usable control replicate (a profile with a NaN gene "
                  "is not used), and the change metrics need two or more: part as the model's input, the "
                  "rest as the reference of the measured change")


def unscored_splits(scores: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """drug -> (its splits with scores but no PRIMARY score, its splits with scores), any method or latent
    (a drug's splits are the same at every latent size); only drugs with such splits."""
    out = {}
    for drug, sub in scores.groupby("drug", sort=False):
        split = sub[["repeat", "fold"]].apply(tuple, axis=1)
        scored, primary = set(split), set(split[sub["metric"] == PRIMARY])
        if len(scored) > len(primary):
            out[str(drug)] = (len(scored - primary), len(scored))
    return out


def unscored_line(scores: pd.DataFrame) -> str:
    """benchmark.md's line naming the drugs with splits without the change metrics, and why ('' if none, or
    if no split has them: the headline, :func:`no_change_scores`, says so)."""
    missing = unscored_splits(scores)
    if not missing or not (scores["metric"] == PRIMARY).any():
        return ""
    return (f"Splits without {PRIMARY} or any other change metric: "
            + ", ".join(f"{d} {k} of {n}" for d, (k, n) in missing.items())
            + f"; in those splits {SINGLE_CONTROL}. Add control replicates of those cell lines, or run more "
            "repeats (--n-repeats) for more scored splits (new test sets only where a drug has more cell "
            "lines than folds: otherwise every repeat holds out the same cell lines again).")


def no_change_scores(scores: pd.DataFrame) -> str:
    """The headline of a run with scores but no PRIMARY score at all."""
    where = "table1.md and scores.csv" if (scores["method"] == REFERENCE).any() else "scores.csv"
    return (f"No {PRIMARY} in this run: in every split {SINGLE_CONTROL}. The scores of the whole profile "
            f"(rho_pred_pert, rho_pred_pert_z, mse_z) are in {where}; add control replicates to score the "
            "change.")
