"""What harness/tasks.py calls: one call fits and evaluates one batched model over ``len(splits)`` splits.

Every result dict (one per split, in order) has ``status`` ("done" | "failed") and ``reason`` ("" when done)
and the float keys that apply:
- ``fit_evaluate_pertvae``: rho_rec_pert = mean over test pairs of Spearman(E_q(z1|x1)[mean of p(x1|z1)], x2);
  rho_pred_pert = the same with the predicted mean E_q(z1|x1)p(z2|z1)[mean of p(x2|z2)] (Section 4.2);
  rho_rec = Spearman(reconstruction mean of x1, x1); each expectation is a Monte Carlo average over
  ``cfg.mc_samples`` draws. Correlations are computed in the original gene space (predictions are
  un-standardized). test_loss = mean over test pairs and draws of -log p(x2|z2), z2 ~ p(z2|z1), z1 ~ q(z1|x1)
  (nats per pair, in the standardized gene space). epochs = epochs trained, best_epoch = restored epoch,
  fit_seconds = the batched fit's wall time divided by the number of splits.
- ``fit_evaluate_vae``: the same encoder/decoder trained on single profiles (Section 4.1): rho_rec,
  rho_rec_pert; test_loss = -log p(x1|z1) of the test x1.
- ``evaluate_pca`` / ``evaluate_baselines``: :mod:`pertvae_core.baselines`.
A failed split (non-finite loss) has NaN values and its reason; the others are unaffected.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData
from pertvae_core.elbo import normal_log_prob
from pertvae_core.metrics import rho_mean
from pertvae_core.train import FitState, _noise, fit

__all__ = ["fit_evaluate_pertvae", "fit_evaluate_vae", "evaluate_pca", "evaluate_baselines", "predict"]

NAN = float("nan")


def _check(splits: Sequence[SplitData], seeds: Sequence[int] | None = None) -> list[SplitData]:
    splits = list(splits)
    if not splits:
        raise ValueError("no splits given")
    for i, sp in enumerate(splits):
        if not isinstance(sp, SplitData):
            raise ValueError(f"splits[{i}] must be a pertvae_core.data.SplitData, got {type(sp).__name__}")
    if seeds is not None and len(seeds) != len(splits):
        raise ValueError(f"{len(seeds)} seeds for {len(splits)} splits")
    return splits


@torch.no_grad()
def predict(state: FitState, splits: Sequence[SplitData], mc_samples: int) -> dict[str, list[np.ndarray]]:
    """Monte Carlo means in the original gene space for each split's test x1 (per split [n_test, G]).

    Keys: ``rec`` (reconstruction mean of x1), ``nll`` (per-pair -log p(target|z) averaged over draws) and,
    for PertVAE, ``pred`` (predicted mean of x2). Draws come from each split's own evaluation generator.
    """
    model, std, dev = state.model, state.std, state.device
    model.eval()
    X1, n = std.forward([sp.x1_test for sp in splits])
    X2, _ = std.forward([sp.x2_test for sp in splits])
    target = X2 if model.pairs else X1
    L, nmax = model.latent, X1.shape[1]
    eval_gens = [g["eval"] for g in state.gens]
    eps1 = _noise(eval_gens, lambda s: (mc_samples, n[s]), nmax, L, dev)   # [S, mc, N, L]
    eps2 = _noise(eval_gens, lambda s: (mc_samples, n[s]), nmax, L, dev) if model.pairs else None
    rec = torch.zeros_like(X1)
    pred = torch.zeros_like(X1)
    nll = torch.zeros(X1.shape[:2], device=dev)
    for k in range(mc_samples):
        z1, _ = model.encode(X1, eps1[:, k])
        mean1, ls1 = model.decode(z1)
        rec += mean1
        if model.pairs:
            m2, ls2 = model.drug_effect(z1)
            mean2, ls = model.decode(torch.addcmul(m2, torch.exp(ls2), eps2[:, k]))
            pred += mean2
        else:
            mean2, ls = mean1, ls1
        nll -= normal_log_prob(target, mean2, ls).sum(-1)
    out = {"rec": std.inverse(rec / mc_samples), "nll": nll / mc_samples}
    if model.pairs:
        out["pred"] = std.inverse(pred / mc_samples)
    return {k: [v[s, : n[s]].cpu().numpy() for s in range(len(splits))] for k, v in out.items()}


def _evaluate(state: FitState, splits: list[SplitData], cfg: FitConfig) -> list[dict]:
    pr = predict(state, splits, cfg.mc_samples)
    per_fit = state.fit_seconds / len(splits)
    rows = []
    for s, sp in enumerate(splits):
        row = {"epochs": float(state.epochs[s]), "best_epoch": float(state.best_epoch[s]),
               "fit_seconds": per_fit, "status": state.status[s], "reason": state.reason[s]}
        keys = ("rho_rec", "rho_rec_pert", "test_loss") + (("rho_pred_pert",) if state.model.pairs else ())
        if state.status[s] != "done":
            row.update(dict.fromkeys(keys, NAN))
        else:
            rec = pr["rec"][s]
            row.update(rho_rec=rho_mean(rec, sp.x1_test), rho_rec_pert=rho_mean(rec, sp.x2_test),
                       test_loss=float(np.mean(pr["nll"][s])))
            if state.model.pairs:
                row["rho_pred_pert"] = rho_mean(pr["pred"][s], sp.x2_test)
            if not all(np.isfinite(row[k]) for k in ("test_loss",)):
                row.update(status="failed", reason="non-finite test loss")
        rows.append(row)
    return rows


def fit_evaluate_pertvae(splits: Sequence[SplitData], cfg: FitConfig, seeds: Sequence[int]) -> list[dict]:
    """Fit PertVAE on each split (one batched model) and evaluate on its test pairs (module docstring)."""
    splits = _check(splits, seeds)
    return _evaluate(fit(splits, cfg, seeds, pairs=True), splits, cfg)


def fit_evaluate_vae(splits: Sequence[SplitData], cfg: FitConfig, seeds: Sequence[int]) -> list[dict]:
    """Fit the plain VAE on each split's single profiles and evaluate reconstruction of the test x1."""
    splits = _check(splits, seeds)
    return _evaluate(fit(splits, cfg, seeds, pairs=False), splits, cfg)


def _baseline_rows(splits: Sequence[SplitData], latent: int, fn_name: str) -> list[dict]:
    from pertvae_core import baselines

    fn = getattr(baselines, fn_name)
    rows = []
    for sp in _check(splits):
        t0 = time.perf_counter()
        row = dict(fn(sp, latent))
        row.update(fit_seconds=time.perf_counter() - t0, status="done", reason="")
        rows.append(row)
    return rows


def evaluate_pca(splits: Sequence[SplitData], latent: int) -> list[dict]:
    """PCA reconstruction at ``latent`` components (Figure 2): rho_rec, rho_rec_pert per split."""
    return _baseline_rows(splits, latent, "pca_reconstruction_rho")


def evaluate_baselines(splits: Sequence[SplitData], latent: int) -> list[dict]:
    """Identity, mean-shift and PCA latent-linear perturbation baselines per split."""
    return _baseline_rows(splits, latent, "perturbation_baselines")
