"""pertvae_core.ceiling against an oracle that knows the true change, scored directly with scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pertvae_core.ceiling import change_ceiling, combine
from pertvae_core.data import SplitData

Cell = tuple[str, np.ndarray, np.ndarray, np.ndarray]   # name, controls, treated replicates, true change


def _data(seed: int, genes: int, strength: float, n_test: int, factors: int, single: float = 0.0
          ) -> tuple[np.ndarray, np.ndarray, list[Cell]]:
    """Cell lines with true untreated profiles mu1 and true changes delta (gene-specific scales and noise
    levels): training pairs (x1, x2) and test cell lines with 2-5 controls and 1-4 treated replicates.
    ``factors`` > 0 adds replicate noise shared by genes (each replicate's ``factors`` random factor scores
    through fixed loadings, like latent jitter through a decoder), so genes are not independent; ``single``,
    the share of test cell lines with a single treated replicate."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.5, 1.5, genes)
    noise = scale * rng.uniform(0.3, 1.0, genes)
    loadings = 0.25 * scale[:, None] * rng.normal(size=(genes, factors)) if factors else None

    def cell() -> tuple[np.ndarray, np.ndarray]:
        size = strength * rng.uniform(0.2, 1.0)
        return rng.normal(size=genes) * scale, size * rng.normal(size=genes) * scale

    def reps(mu: np.ndarray, n: int) -> np.ndarray:
        shared = rng.normal(size=(n, factors)) @ loadings.T if factors else 0.0
        return (mu + noise * rng.normal(size=(n, genes)) + shared).astype(np.float32)

    x1, x2 = [], []
    for _ in range(20):
        mu, d = cell()
        c, p = reps(mu, 2), reps(mu + d, 3)
        x1 += [c[k % 2] for k in range(3)]
        x2 += list(p)
    tests = []
    for i in range(n_test):
        mu, d = cell()
        n2 = 1 if single and rng.random() < single else int(rng.integers(1, 5))
        tests.append((f"c{i}", reps(mu, int(rng.integers(2, 6))), reps(mu + d, n2), d))
    return np.array(x1), np.array(x2), tests


def _split(x1: np.ndarray, x2: np.ndarray, tests: list[Cell]) -> SplitData:
    """The split with training pairs (x1, x2) and test cell lines ``tests`` (each treated replicate paired
    with one of its controls)."""
    t1 = [c[k % len(c)] for _, c, p, _ in tests for k in range(len(p))]
    lab = [name for name, _, p, _ in tests for _ in p]
    xcl = [name for name, c, _, _ in tests for _ in c]
    empty = np.zeros((0, x1.shape[1]), np.float32)
    return SplitData(x1, x2, empty, empty, np.array(t1), np.concatenate([p for _, _, p, _ in tests]), empty,
                     test_cell_line=np.array(lab), xc_test=np.concatenate([c for _, c, _, _ in tests]),
                     xc_test_cell_line=np.array(xcl))


def _study(seed: int, genes: int = 300, strength: float = 1.0, n_test: int = 12, factors: int = 0
           ) -> tuple[SplitData, dict[str, np.ndarray]]:
    """One split of :func:`_data`'s cell lines; and each test cell line's true change."""
    x1, x2, tests = _data(seed, genes, strength, n_test, factors)
    return _split(x1, x2, tests), {name: d for name, _, _, d in tests}


def _drug(seed: int, strength: float, factors: int = 0, n_cells: int = 9, folds: int = 3, repeats: int = 2
          ) -> list[SplitData]:
    """A drug's splits as the harness makes them: ``repeats`` random partitions of its ``n_cells`` test cell
    lines into ``folds`` folds (few per split), so each cell line is tested once per repeat."""
    x1, x2, tests = _data(seed, 300, strength, n_cells, factors)
    rng = np.random.default_rng([seed, 1])
    order = [rng.permutation(n_cells) for _ in range(repeats)]
    return [_split(x1, x2, [tests[i] for i in fold]) for o in order for fold in np.array_split(o, folds)]


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
    both = combine([c, change_ceiling(_study(1, strength=0.0)[0])])
    assert c.value < 0.25 and abs(both["signal_z"]) < 3
    strong = combine([change_ceiling(_study(s, strength=1.0)[0]) for s in range(2)])
    assert strong["signal_z"] > 10 and strong["n_splits"] == 2


def test_no_ceiling_without_replicates_to_measure_noise() -> None:
    split, _ = _study(0)
    own = split.xc_test_cell_line == split.test_cell_line[0]
    one = SplitData(split.x1_train, split.x2_train, split.x1_val, split.x2_val, split.x1_test[:1],
                    split.x2_test[:1], split.xs_train, test_cell_line=split.test_cell_line[:1],
                    xc_test=split.xc_test[own], xc_test_cell_line=split.xc_test_cell_line[own])
    c = change_ceiling(one)
    assert math.isnan(c.value) and ">= 2 post-treatment replicates" in c.reason
    assert "no splits" not in combine([c])["reason"]


def _null_ceilings(factors: int, seeds: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split ceilings, their standard errors and reliability z of a drug that changes nothing."""
    out = [change_ceiling(_study(seed, strength=0.0, factors=factors)[0]) for seed in range(seeds)]
    z = [combine([c])["signal_z"] for c in out]
    return np.array([c.value for c in out]), np.array([c.se for c in out]), np.array(z)


@pytest.mark.parametrize("factors", [0, 3])
def test_a_drug_that_changes_nothing_has_a_ceiling_centred_at_zero(factors: int) -> None:
    """Known answer: with no true change a perfect predictor scores 0 on average, so must the ceiling (a
    cell line's root clipped at 0 before averaging sat near +0.13 here, +0.16 with shared noise), its 95%
    interval covers 0 in most splits, and the reliability z is about N(0, 1), also when genes share noise."""
    values, ses, z = _null_ceilings(factors)
    assert abs(values.mean()) < max(0.03, 2.5 * values.std() / math.sqrt(len(values))), values.mean()
    assert np.mean(np.abs(values) <= 1.96 * ses) >= 0.9, np.mean(np.abs(values) <= 1.96 * ses)
    assert abs(z.mean()) < 0.6 and 0.6 < z.std() < 1.5, (z.mean(), z.std())


@pytest.mark.parametrize(("strength", "factors"), [(0.3, 0), (1.0, 0), (0.5, 3), (1.0, 3), (3.0, 3)])
def test_the_ceiling_is_centred_at_the_oracles_score(strength: float, factors: int) -> None:
    """With a real change the ceiling matches, on average over draws, what a predictor of the true change
    scores (Pearson against the measured change, computed directly), and each draw is within 3 of its
    standard errors, also when genes share noise."""
    gaps, ses = [], []
    for seed in range(20):
        split, truth = _study(seed, strength=strength, factors=factors)
        c = change_ceiling(split)
        gaps.append(_oracle_score(split, truth) - c.value)
        ses.append(c.se)
    gaps, ses = np.asarray(gaps), np.asarray(ses)
    assert abs(gaps.mean()) < 0.02 + 2 * gaps.std() / math.sqrt(len(gaps)), gaps.mean()
    assert (np.abs(gaps) < 3 * ses).all(), (gaps / ses).round(2)


def _drug_oracle(seed: int, strength: float, factors: int, splits: list[SplitData]) -> float:
    """The oracle's delta_pearson averaged over the drug's splits, as the benchmark averages a method's."""
    truth = {name: d for name, _, _, d in _data(seed, 300, strength, 9, factors)[2]}
    return float(np.mean([_oracle_score(s, {c: truth[c] for c in dict.fromkeys(s.test_cell_line)})
                          for s in splits]))


@pytest.mark.parametrize(("strength", "factors"), [(0.0, 0), (0.0, 3), (1.0, 0), (1.0, 3)])
def test_a_drugs_ceiling_over_splits_of_few_cell_lines_is_centred_at_the_oracles_score(
        strength: float, factors: int) -> None:
    """Three cell lines per split (as in the demo): pooled over the drug's splits, the ceiling sits at the
    oracle's mean score (0 without a change, where the clipped per-cell roots sat near +0.14, and +0.17 with
    shared noise), its 95% interval covers it for most drugs, and the reliability z is about N(0, 1)
    without a change."""
    gaps, ses, z = [], [], []
    for seed in range(40):
        splits = _drug(seed, strength, factors)
        both = combine([change_ceiling(s) for s in splits])
        gaps.append(both["value"] - (_drug_oracle(seed, strength, factors, splits) if strength else 0.0))
        ses.append(both["se"])
        z.append(both["signal_z"])
    gaps, ses, z = np.asarray(gaps), np.asarray(ses), np.asarray(z)
    assert abs(gaps.mean()) < max(0.03, 3 * gaps.std() / math.sqrt(len(gaps))), gaps.mean()
    assert np.mean(np.abs(gaps) <= 1.96 * ses) >= 0.85, np.mean(np.abs(gaps) <= 1.96 * ses)
    if not strength:
        assert abs(z.mean()) < 0.6 and 0.6 < z.std() < 1.5, (z.mean(), z.std())


def test_a_repeat_on_the_same_cell_lines_adds_no_information() -> None:
    """A cell line tested again in another repeat has the same replicates: the drug's ceiling and its error
    are those of one repeat."""
    c = change_ceiling(_study(2, strength=0.5)[0])
    once, twice = combine([c]), combine([c, c])
    assert twice["value"] == pytest.approx(once["value"]) == pytest.approx(c.value)
    assert twice["se"] == pytest.approx(once["se"]) == pytest.approx(c.se)
    assert twice["signal_z"] == pytest.approx(once["signal_z"]) and twice["per_split"] == [c.value, c.value]


def _single_replicate_drug(seed: int, strength: float) -> tuple[list[SplitData], dict[str, np.ndarray]]:
    """Five cell lines, one a split (5 folds): the first three with two controls and a single
    post-treatment replicate (no split of theirs can measure the post-treatment noise), the others with
    three of each; gene scales and noise as :func:`_data`'s."""
    x1, x2, _ = _data(seed, 300, strength, 0, 0)
    rng = np.random.default_rng([seed, 2])
    scale = rng.uniform(0.5, 1.5, 300)
    noise = scale * rng.uniform(0.3, 1.0, 300)
    tests = []
    for i in range(5):
        mu, d = rng.normal(size=300) * scale, strength * rng.uniform(0.2, 1.0) * rng.normal(size=300) * scale
        n_c, n2 = (2, 1) if i < 3 else (3, 3)
        tests.append((f"c{i}", (mu + noise * rng.normal(size=(n_c, 300))).astype(np.float32),
                      (mu + d + noise * rng.normal(size=(n2, 300))).astype(np.float32), d))
    return [_split(x1, x2, [t]) for t in tests], {n: d for n, _, _, d in tests}


@pytest.mark.parametrize("strength", [1.0, 3.0])
def test_splits_whose_cell_lines_have_one_treated_replicate_borrow_the_drugs_noise(strength: float) -> None:
    """Known answer: a split whose only cell line has one post-treatment replicate has no ceiling alone, but
    the drug's ceiling takes it with the other splits' post-treatment noise, so that it is over the same
    splits as a method's mean and sits at the oracle's mean over all of them (within 1.96 se for 11 and 12
    of the 12 drugs). It was the mean over the two well-measured splits alone (n_splits 2), above the
    oracle's mean over all five by 0.028 and 0.014 on average, within 1.96 se for 7 and 6 of 12 drugs."""
    gaps, ses = [], []
    for seed in range(12):
        splits, truth = _single_replicate_drug(seed, strength)
        per = [change_ceiling(s) for s in splits]
        assert [math.isnan(c.value) for c in per] == [True, True, True, False, False]
        both = combine(per)
        assert both["n_splits"] == 5 and np.isfinite(both["per_split"]).all(), both
        oracle = np.mean([_oracle_score(s, {c: truth[c] for c in dict.fromkeys(s.test_cell_line)})
                          for s in splits])
        gaps.append(oracle - both["value"])
        ses.append(both["se"])
    gaps, ses = np.asarray(gaps), np.asarray(ses)
    assert np.mean(np.abs(gaps) <= 1.96 * ses) >= 0.8, (gaps / ses).round(2)
    assert abs(gaps.mean()) < 2.5 * gaps.std() / math.sqrt(len(gaps)), gaps.mean()


def test_the_pooled_treated_noise_is_one_error_for_the_cell_lines_that_share_it() -> None:
    """Known answer: a drug that changes nothing, one split of 20 cell lines, 80% of them with a single
    treated replicate (their N2 pooled from the others). The reliability z = R / se is about N(0, 1):
    the pooled N2's error is the same for every cell line using it, so it does not average out over them.
    Counted as independent per cell line, se was too small: z's sd 1.47, |z| > 1.96 for 15% of the drugs
    (6% with the shared error)."""
    z = []
    for seed in range(150):
        x1, x2, tests = _data(seed, 300, 0.0, 20, 0, single=0.8)
        c = change_ceiling(_split(x1, x2, tests))
        if np.isfinite(c.reliability_se):
            z.append(c.reliability / c.reliability_se)
    z = np.asarray(z)
    assert len(z) > 140 and abs(z.mean()) < 0.3, (len(z), z.mean())
    assert 0.8 < z.std() < 1.2 and np.mean(np.abs(z) > 1.96) < 0.1, (z.std(), np.mean(np.abs(z) > 1.96))
