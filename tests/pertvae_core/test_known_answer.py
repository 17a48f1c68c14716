"""Known-answer tests (issue 2): a real latent-linear drug effect is detected, a null drug is not.

Minimal generator: cell states z ~ N(0, I_d) (d = 3) go through a fixed random nonlinear decoder to 60
genes; x1 = dec(z) + noise, x2 = dec(A z + shift) + noise (the latent linear map of Eq. 5), 3 replicates per
cell line, 40 cell lines, unpaired singletons from the same decoder. Ten random cell-line-grouped splits
are trained as one batched model (S = 10).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.stats import mannwhitneyu, wilcoxon

from pertvae_core import api
from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData
from pertvae_core.stats import paired_comparison

CFG = FitConfig(latent=4, hidden=(48, 24), context=16, iaf_hidden=32, batch_pairs=32, batch_singletons=32,
                lr=3e-3, max_epochs=250, patience=30, min_epochs=100, mc_samples=5)


def make_drug(seed: int, strength: float, n_cells: int = 40, reps: int = 3, genes: int = 60, d: int = 3,
              n_single: int = 40, noise: float = 0.3):
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(d, 32))
    w2 = rng.normal(size=(32, genes)) / np.sqrt(32)

    def dec(z: np.ndarray) -> np.ndarray:
        return 2.0 * np.tanh(z @ w1) @ w2

    a = np.eye(d) + strength * rng.normal(size=(d, d)) / np.sqrt(d)
    shift = strength * rng.normal(size=d)
    z = rng.normal(size=(n_cells, d))
    x1 = np.repeat(dec(z), reps, 0) + noise * rng.normal(size=(n_cells * reps, genes))
    x2 = np.repeat(dec(z @ a.T + shift), reps, 0) + noise * rng.normal(size=(n_cells * reps, genes))
    xs = dec(rng.normal(size=(n_single, d))) + noise * rng.normal(size=(n_single, genes))
    cell = np.repeat(np.arange(n_cells), reps)
    return x1.astype(np.float32), x2.astype(np.float32), cell, xs.astype(np.float32)


def make_splits(x1, x2, cell, xs, n_splits: int = 10, seed: int = 1000) -> list[SplitData]:
    rng = np.random.default_rng(seed)
    lines = np.unique(cell)
    out = []
    for _ in range(n_splits):
        p = rng.permutation(lines)
        k = len(lines) // 5
        te, va, tr = p[:k], p[k:2 * k], p[2 * k:]
        t = np.isin(cell, te)
        out.append(SplitData(x1[np.isin(cell, tr)], x2[np.isin(cell, tr)], x1[np.isin(cell, va)],
                             x2[np.isin(cell, va)], x1[t], x2[t], xs, test_cell_line=cell[t].astype(str)))
    return out


@functools.lru_cache(maxsize=2)
def _fits(strength: float) -> tuple[list[dict], list[dict]]:
    """PertVAE and the baselines on the same 10 splits (a cell line's 3 controls: 2 inputs, 1 reference)."""
    splits = make_splits(*make_drug(0, strength))
    return api.fit_evaluate_pertvae(splits, CFG, list(range(10))), api.evaluate_baselines(splits, CFG.latent)


def _scores(rows: list[dict], method: str, metric: str) -> np.ndarray:
    return np.array([r["scores"][method][metric] for r in rows])


def _rhos(strength: float) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    rows = _fits(strength)[0]
    assert all(r["status"] == "done" for r in rows)
    return (np.array([r["rho_pred_pert"] for r in rows]), np.array([r["rho_rec_pert"] for r in rows]), rows)


def test_effective_drug_is_detected() -> None:
    pred, rec, rows = _rhos(1.5)
    assert mannwhitneyu(pred, rec, alternative="greater").pvalue < 0.01
    assert wilcoxon(pred, rec, alternative="greater").pvalue < 0.01
    assert np.mean([r["rho_rec"] for r in rows]) > 0.8  # reconstruction itself is good


def test_null_drug_is_not_significant() -> None:
    pred, rec, _ = _rhos(0.0)
    assert mannwhitneyu(pred, rec, alternative="greater").pvalue > 0.05
    assert np.isfinite(pred).all() and np.isfinite(rec).all()


def test_effective_drug_change_beats_identity_and_train_mean() -> None:
    rows, base = _fits(1.5)
    ours = _scores(rows, "pertvae", "delta_pearson")
    assert ours.mean() > 0.5
    for method in ("identity", "train_mean"):
        other = _scores(base, method, "delta_pearson")
        res = paired_comparison(ours, other, n_train=24, n_test=8)
        assert res["mean_diff"] > 0 and res["p_wilcoxon"] < 0.01, (method, res)
        assert res["p_corrected_t"] < 0.05, (method, res)


def test_null_drug_change_scores_are_zero_for_every_method() -> None:
    rows, base = _fits(0.0)
    for metric in ("delta_pearson", "delta_pearson_centered"):
        for method in ("pertvae", "pertvae_rec"):
            assert abs(_scores(rows, method, metric).mean()) < 0.05, (method, metric)
        for method in base[0]["scores"]:
            assert abs(_scores(base, method, metric).mean()) < 0.05, (method, metric)
