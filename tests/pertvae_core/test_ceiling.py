"""pertvae_core.ceiling against an oracle that knows the true change, scored directly with scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pertvae_core.ceiling import change_ceiling, combine
from pertvae_core.data import SplitData


def _study(seed: int, genes: int = 300, strength: float = 1.0, n_test: int = 12
           ) -> tuple[SplitData, dict[str, np.ndarray]]:
    """Cell lines with true untreated profiles mu1 and true changes delta (gene-specific scales and noise
    levels); 2-5 controls and 1-4 treated replicates per test cell line. Returns the split and each test
    cell line's true change."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 1.5, genes)
    noise = scale * rng.uniform(0.3, 1.0, genes)

    def cell() -> tuple[np.ndarray, np.ndarray]:
        size = strength * rng.uniform(0.2, 1.0)
        return rng.normal(size=genes) * scale, size * rng.normal(size=genes) * scale

    def reps(mu: np.ndarray, n: int) -> np.ndarray:
        return (mu + noise * rng.normal(size=(n, genes))).astype(np.float32)

    x1, x2 = [], []
    for _ in range(20):
        mu, d = cell()
        c, p = reps(mu, 2), reps(mu + d, 3)
        x1 += [c[k % 2] for k in range(3)]
        x2 += list(p)
    t1, t2, lab, xc, xcl, truth = [], [], [], [], [], {}
    for i in range(n_test):
        mu, d = cell()
        c, p = reps(mu, int(rng.integers(2, 6))), reps(mu + d, int(rng.integers(1, 5)))
        t1 += [c[k % len(c)] for k in range(len(p))]
        t2 += list(p)
        lab += [f"c{i}"] * len(p)
        xc += list(c)
        xcl += [f"c{i}"] * len(c)
        truth[f"c{i}"] = d
    empty = np.zeros((0, genes), np.float32)
    split = SplitData(np.array(x1), np.array(x2), empty, empty, np.array(t1), np.array(t2), empty,
                      test_cell_line=np.array(lab), xc_test=np.array(xc), xc_test_cell_line=np.array(xcl))
    return split, truth


def _oracle_score(split: SplitData, truth: dict[str, np.ndarray]) -> float:
    """delta_pearson of a predictor of the true change, computed directly: per test cell line with >= 2
    controls, Pearson(true change, mean treated - mean of the reference controls) in the training z space
    (z only rescales each gene: the true change is its raw change over the gene's sd)."""
    x = np.concatenate([np.unique(split.x1_train, axis=0), split.x2_train]).astype(float)
    sd = x.std(0)
    out = []
    for c, delta in truth.items():
        ctrl = split.xc_test[split.xc_test_cell_line == c].astype(float)
        post = np.unique(split.x2_test[split.test_cell_line == c], axis=0).astype(float)
        if len(ctrl) < 2:
            continue
        ref = ctrl[math.ceil(len(ctrl) / 2):]
        out.append(stats.pearsonr(delta / sd, (post.mean(0) - ref.mean(0)) / sd).statistic)
    return float(np.mean(out))


@pytest.mark.parametrize("strength", [0.3, 1.0, 3.0])
def test_the_oracle_scores_within_the_ceilings_uncertainty_and_not_above(strength: float) -> None:
    gaps, ses = [], []
    for seed in range(15):
        split, truth = _study(seed, strength=strength)
        c = change_ceiling(split)
        assert c.reason == "" and c.n_cells == 12
        gaps.append(_oracle_score(split, truth) - c.value)
        ses.append(c.se)
    gaps, ses = np.asarray(gaps), np.asarray(ses)
    assert (np.abs(gaps) < 3 * ses).all(), (gaps / ses).round(2)           # each draw within its uncertainty
    assert gaps.mean() < 2 * math.sqrt(np.mean(ses**2) / len(gaps)), gaps.mean()   # not above on average


def test_the_old_split_half_agreement_was_no_ceiling() -> None:
    """What the old 'ceiling' did: two half-replicate changes agree less than the oracle scores."""
    split, truth = _study(3, strength=1.0)
    halves = []
    for c in truth:
        ctrl = split.xc_test[split.xc_test_cell_line == c].astype(float)
        post = np.unique(split.x2_test[split.test_cell_line == c], axis=0).astype(float)
        if len(ctrl) >= 2 and len(post) >= 2:
            halves.append(stats.pearsonr(post[0::2].mean(0) - ctrl[0::2].mean(0),
                                         post[1::2].mean(0) - ctrl[1::2].mean(0)).statistic)
    assert np.mean(halves) < _oracle_score(split, truth) <= change_ceiling(split).value + 3 * change_ceiling(
        split).se


def test_a_null_drug_has_a_low_ceiling_and_no_signal() -> None:
    split, _ = _study(0, strength=0.0)
    c = change_ceiling(split)
    both = combine([c, change_ceiling(_study(1, strength=0.0)[0])], n_folds=2)
    assert c.value < 0.25 and abs(both["signal_z"]) < 3
    strong = combine([change_ceiling(_study(s, strength=1.0)[0]) for s in range(2)], n_folds=2)
    assert strong["signal_z"] > 10 and strong["n_splits"] == 2


def test_no_ceiling_without_replicates_to_measure_noise() -> None:
    split, _ = _study(0)
    own = split.xc_test_cell_line == split.test_cell_line[0]
    one = SplitData(split.x1_train, split.x2_train, split.x1_val, split.x2_val, split.x1_test[:1],
                    split.x2_test[:1], split.xs_train, test_cell_line=split.test_cell_line[:1],
                    xc_test=split.xc_test[own], xc_test_cell_line=split.xc_test_cell_line[own])
    c = change_ceiling(one)
    assert math.isnan(c.value) and ">= 2 post-treatment replicates" in c.reason
    assert "no splits" not in combine([c], n_folds=5)["reason"]
