"""What harness/tasks.py calls: one call fits and evaluates one batched model over ``len(splits)`` splits.

Every result dict (one per split, in order) has ``status`` ("done" | "failed") and ``reason`` ("" when done)
and the float keys that apply:
- ``fit_evaluate_pertvae``: rho_rec_pert = mean over test pairs of Spearman(E_q(z1|x1)[mean of p(x1|z1)], x2);
  rho_pred_pert = the same with the predicted mean E_q(z1|x1)p(z2|z1)[mean of p(x2|z2)] (Section 4.2);
  rho_rec = Spearman(reconstruction mean of x1, x1) per distinct control of the test cell lines, averaged
  per cell line (:func:`pertvae_core.evaluation.reconstruction_rho`); each expectation is a Monte Carlo
  average over ``cfg.mc_samples`` draws. Correlations are computed in the original gene space (predictions are
  un-standardized). test_loss = mean over test pairs and draws of -log p(x2|z2), z2 ~ p(z2|z1), z1 ~ q(z1|x1)
  (nats per pair, in the standardized gene space). epochs = epochs trained, best_epoch = restored epoch,
  fit_seconds = the batched fit's wall time divided by the number of splits. steps_compiled = whether its
  training steps ran under torch.compile (:class:`pertvae_core.train.FitState`; the record of its products).
  ``scores`` = {"pertvae": {metric: value}, "pertvae_rec": {...}}: PertVAE's predicted mean and its
  reconstruction of x1, each scored as a prediction of x2 by :func:`pertvae_core.evaluation.score`;
  ``detail`` = {method: :class:`pertvae_core.evaluation.Scores`} (per test cell line and per gene); with
  ``keep_predictions``, ``predictions`` = {method: x2_hat [n_test, G] at the split's x1_test}.
- ``fit_evaluate_vae``: the same encoder/decoder trained on single profiles (Section 4.1): rho_rec,
  rho_rec_pert; test_loss = -log p(x1|z1) of the test x1.
- ``evaluate_pca``: :func:`pertvae_core.baselines.pca_reconstruction_rho` (the profiles standardized as
  the VAE's: ``standardize``); ``evaluate_pca_latents`` the same at several latent sizes from one
  decomposition per split.
- ``evaluate_baselines`` / ``evaluate_methods``: ``scores`` {method: {metric: value}}, ``detail`` and
  (optionally) ``predictions`` of the perturbation baselines (or any :class:`pertvae_core.methods.Method`),
  scored like PertVAE; each method in its own failure boundary, with ``method_status`` and
  ``method_reason`` per method (a failed method fails the split's row but no other method).
A failed split (a non-finite loss, or a best validation loss far above the untrained state's: a diverged fit,
:mod:`pertvae_core.early_stopping`) has NaN values and its reason; the others are unaffected.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pertvae_core.config import FitConfig
from pertvae_core.data import FIELDS, SplitData, check_scorable
from pertvae_core.elbo import normal_log_prob
from pertvae_core.evaluation import TestCells, control_rows, reconstruction_rho, score_detail
from pertvae_core.isolation import MethodFailed, check_prediction, fit_predict
from pertvae_core.metrics import rho_mean
from pertvae_core.train import FitState, fit

__all__ = ["fit_evaluate_pertvae", "fit_evaluate_vae", "evaluate_pca", "evaluate_pca_latents",
           "evaluate_baselines", "predict", "PertVAEMethod", "fit_pertvae_methods", "evaluate_methods"]

NAN = float("nan")


_NO_SEEDS = object()   # _check's default: the call takes no seeds


def _check(splits: Sequence[SplitData], seeds: Any = _NO_SEEDS, cfg: Any = None, scored: bool = False
           ) -> list[SplitData]:
    """The splits as a list, each a SplitData, with one seed each and a FitConfig where the call takes them:
    one split not in a list, seeds=None or a dict of settings failed deep inside with a TypeError ('SplitData
    object is not iterable', "'NoneType' has no len()") or an AttributeError ("'dict' object has no
    attribute 'device'")."""
    if isinstance(splits, SplitData):
        raise ValueError("splits must be a list of SplitData, got one SplitData: give [split]")
    if cfg is not None and not isinstance(cfg, FitConfig):
        raise ValueError(f"cfg must be a pertvae_core.config.FitConfig, got {type(cfg).__name__}"
                         + (": give FitConfig(**settings)" if isinstance(cfg, Mapping) else ""))
    splits = list(splits)
    if not splits:
        raise ValueError("no splits given")
    if seeds is not _NO_SEEDS and (seeds is None or isinstance(seeds, str | int)):
        raise ValueError(f"seeds must be a list of ints, one per split, got {seeds!r}")
    if seeds is _NO_SEEDS:
        seeds = None
    for i, sp in enumerate(splits):
        if not isinstance(sp, SplitData):
            raise ValueError(f"splits[{i}] must be a pertvae_core.data.SplitData, got {type(sp).__name__}")
    if seeds is not None and len(seeds) != len(splits):
        raise ValueError(f"{len(seeds)} seeds for {len(splits)} splits")
    for i, sp in enumerate(splits if scored else ()):   # before any fit: a hidden test set scores NaN
        check_scorable(sp, f"splits[{i}]")
    return splits


@torch.no_grad()
def predict(state: FitState, x1: Sequence[np.ndarray], mc_samples: int,
            targets: Sequence[np.ndarray] | None = None, only: int | None = None
            ) -> dict[str, list[np.ndarray]]:
    """Monte Carlo means in the original gene space for each split's rows ``x1[s]`` (per split [n_s, G]).

    Keys: ``rec`` (reconstruction mean of x1) and, for PertVAE, ``pred`` (predicted mean of x2: z1 ~ q(z1|x1),
    z2 ~ p(z2|z1) (Eq. 5), mean of p(x2|z2)); with ``targets`` also ``nll`` (per row -log p(target|z)
    averaged over draws, standardized space). Draws come from each split's own evaluation generator, so a
    split's numbers do not depend on the others; ``only=s`` predicts split s alone (other entries ignored).
    """
    model, std, dev = state.model, state.std, state.device
    model.eval()
    S = len(state.gens)
    if len(x1) != S:
        raise ValueError(f"predict: {len(x1)} arrays for {S} splits")
    G = model_genes(state)
    use = [s == only or only is None for s in range(S)]
    x1 = [a if u else np.zeros((0, G), np.float32) for a, u in zip(x1, use, strict=True)]
    X1, n = std.forward(x1)
    L, nmax = model.latent, X1.shape[1]
    gens = [g["eval"] for g in state.gens]

    def noise() -> torch.Tensor:
        out = torch.zeros(S, mc_samples, nmax, L)
        for s in range(S):
            if use[s] and n[s]:
                out[s, :, : n[s]] = torch.randn((mc_samples, n[s], L), generator=gens[s])
        return out.to(dev)

    eps1 = noise()
    eps2 = noise() if model.pairs else None
    if targets is not None:
        T, _ = std.forward([t if u else np.zeros((0, G), np.float32)
                            for t, u in zip(targets, use, strict=True)])
    rec = torch.zeros_like(X1)
    pred = torch.zeros_like(X1)
    nll = torch.zeros(X1.shape[:2], device=dev)
    head = model.encoder_head(X1)   # deterministic: once for every draw
    for k in range(mc_samples):
        z1 = model.sample(X1, eps1[:, k], head)
        mean1, ls1 = model.decode(z1)
        rec += mean1
        if model.pairs:
            m2, ls2 = model.drug_effect(z1)
            mean2, ls = model.decode(torch.addcmul(m2, torch.exp(ls2), eps2[:, k]))
            pred += mean2
        else:
            mean2, ls = mean1, ls1
        if targets is not None:
            nll -= normal_log_prob(T, mean2, ls).sum(-1)
    out = {"rec": std.inverse(rec / mc_samples)}
    if targets is not None:
        out["nll"] = nll / mc_samples
    if model.pairs:
        out["pred"] = std.inverse(pred / mc_samples)
    return {k: [v[s, : n[s]].cpu().numpy().astype(np.float64) for s in range(S)] for k, v in out.items()}


def model_genes(state: FitState) -> int:
    """Number of genes of a fitted state."""
    return int(state.std.mean.shape[-1])


def writable(split: SplitData) -> SplitData:
    """``split`` with writable copies of its arrays: torch shares a numpy array's memory and warns about a
    read-only one (pertvae_core.isolation hands every method read-only arrays)."""
    return dataclasses.replace(split, **{f: np.array(getattr(split, f)) for f in (*FIELDS, "xu_train")})


class PertVAEMethod:
    """PertVAE (or its reconstruction, ``reconstruction=True``) as a :class:`pertvae_core.methods.Method`.

    ``PertVAEMethod(cfg, seed).fit(split)`` trains one model; :func:`fit_pertvae_methods` trains S splits as
    one batched model and returns one fitted method per split. ``predict(x1)`` is the Monte Carlo predicted
    mean of x2 (``cfg.mc_samples`` draws from the split's evaluation generator).
    """

    def __init__(self, cfg: FitConfig, seed: int = 0, reconstruction: bool = False) -> None:
        self.cfg, self.seed, self.reconstruction = cfg, seed, reconstruction
        self.name = "pertvae_rec" if reconstruction else "pertvae"

    def fit(self, split: SplitData) -> PertVAEMethod:
        self.state_, self.index_ = fit(_check([writable(split)]), self.cfg, [self.seed], pairs=True), 0
        self._check_done()
        return self

    def _check_done(self) -> None:
        """FloatingPointError with the reason where this split's fit failed (as pertvae_core.PertVAE.fit):
        its restored state predicts finite values but is no fit (the untrained state where it failed in
        epoch 1), and evaluate_methods scored it as done."""
        if self.state_.status[self.index_] != "done":
            raise FloatingPointError(f"PertVAE: {self.state_.reason[self.index_]}")

    def predict(self, x1: np.ndarray) -> np.ndarray:
        self._check_done()
        S = len(self.state_.gens)
        arrays = [np.array(x1, np.float32) if s == self.index_ else None for s in range(S)]
        out = predict(self.state_, arrays, self.cfg.mc_samples, only=self.index_)
        return out["rec" if self.reconstruction else "pred"][self.index_]


def fit_pertvae_methods(splits: Sequence[SplitData], cfg: FitConfig, seeds: Sequence[int],
                        reconstruction: bool = False) -> list[PertVAEMethod]:
    """Fit PertVAE on S splits as one batched model; one fitted :class:`PertVAEMethod` per split."""
    splits = _check(splits, seeds, cfg)
    state = fit(splits, cfg, seeds, pairs=True)
    out = []
    for s, seed in enumerate(seeds):
        m = PertVAEMethod(cfg, seed, reconstruction)
        m.state_, m.index_ = state, s
        out.append(m)
    return out


def _evaluate(state: FitState, splits: list[SplitData], cfg: FitConfig, keep_predictions: bool = False
              ) -> list[dict]:
    pr = predict(state, [sp.x1_test for sp in splits], cfg.mc_samples,
                 targets=[sp.x2_test if state.model.pairs else sp.x1_test for sp in splits])
    cells = [TestCells.from_split(sp) for sp in splits] if state.model.pairs else []
    pc = predict(state, [c.x1 for c in cells], cfg.mc_samples) if state.model.pairs else {}
    controls = [control_rows(sp) for sp in splits]
    rec_c = predict(state, [c for c, _ in controls], cfg.mc_samples)["rec"]
    per_fit = state.fit_seconds / len(splits)
    rows = []
    for s, sp in enumerate(splits):
        row = {"epochs": float(state.epochs[s]), "best_epoch": float(state.best_epoch[s]),
               "fit_seconds": per_fit, "status": state.status[s], "reason": state.reason[s],
               "steps_compiled": state.steps_compiled}
        keys = ("rho_rec", "rho_rec_pert", "test_loss") + (("rho_pred_pert",) if state.model.pairs else ())
        test_loss = float(np.mean(pr["nll"][s]))
        if state.status[s] == "done" and not np.isfinite(test_loss):
            row.update(status="failed", reason=_overflow_reason(state, s, sp))
        if row["status"] != "done":
            row.update(dict.fromkeys(keys, NAN))
        else:
            rec = pr["rec"][s]
            row.update(rho_rec=reconstruction_rho(*controls[s], rec_c[s]),
                       rho_rec_pert=rho_mean(rec, sp.x2_test), test_loss=test_loss)
            if state.model.pairs:
                row["rho_pred_pert"] = rho_mean(pr["pred"][s], sp.x2_test)
                row["detail"] = {
                    "pertvae": score_detail(sp, pr["pred"][s], pc["pred"][s], cells[s]),
                    "pertvae_rec": score_detail(sp, rec, pc["rec"][s], cells[s]),
                }
                row["scores"] = {m: d.summary for m, d in row["detail"].items()}
                if keep_predictions:
                    row["predictions"] = {"pertvae": pr["pred"][s], "pertvae_rec": rec}
        rows.append(row)
    return rows


def _overflow_reason(state: FitState, s: int, split: SplitData) -> str:
    """Why split s's test loss overflowed, in words to act on: a trained model overflows on inputs far outside
    its training range, in standardized units: the test value farthest from the training mean names its gene
    (column) and that gene's training standard deviation (a gene near-constant in training)."""
    x = np.concatenate([split.x1_test, split.x2_test]) if state.model.pairs else split.x1_test
    mean, scale = (t[s, 0].cpu().numpy().astype(np.float64) for t in (state.std.mean, state.std.scale))
    z = np.abs(x - mean) / scale
    g = int(np.argmax(z.max(axis=0)))
    return (f"non-finite test loss (it overflows float32): test values lie up to {z[:, g].max():.3g} "
            f"training standard deviations from the training mean (gene column {g}, training sd "
            f"{scale[g]:.3g}), far outside what the model trained on; leave out genes (near-)constant in "
            "the training profiles, or check the test profiles' scale")


def fit_evaluate_pertvae(splits: Sequence[SplitData], cfg: FitConfig, seeds: Sequence[int],
                         keep_predictions: bool = False) -> list[dict]:
    """Fit PertVAE on each split (one batched model) and evaluate on its test pairs (module docstring)."""
    splits = _check(splits, seeds, cfg, scored=True)
    return _evaluate(fit(splits, cfg, seeds, pairs=True), splits, cfg, keep_predictions)


def fit_evaluate_vae(splits: Sequence[SplitData], cfg: FitConfig, seeds: Sequence[int]) -> list[dict]:
    """Fit the plain VAE on each split's single profiles and evaluate reconstruction of the test x1."""
    splits = _check(splits, seeds, cfg, scored=True)
    return _evaluate(fit(splits, cfg, seeds, pairs=False), splits, cfg)


def evaluate_pca(splits: Sequence[SplitData], latent: int, standardize: str = "per_source") -> list[dict]:
    """PCA reconstruction at ``latent`` components (Figure 2): rho_rec, rho_rec_pert per split; the
    training profiles standardized by ``standardize``, as the VAE's (FitConfig.standardize)."""
    return evaluate_pca_latents(splits, [latent], standardize)[int(latent)]


def evaluate_pca_latents(splits: Sequence[SplitData], latents: Sequence[int], standardize: str = "per_source"
                         ) -> dict[int, list[dict]]:
    """:func:`evaluate_pca` at each of ``latents`` (latent -> one row per split), one decomposition per
    split for all of them (pertvae_core.baselines.pca_reconstruction_rhos); a row's ``fit_seconds`` is its
    split's time shared equally by the latent sizes."""
    from pertvae_core.baselines import pca_reconstruction_rhos

    if not len(latents):   # each split's time was divided by the number of latent sizes: ZeroDivisionError
        raise ValueError("evaluate_pca_latents: no latent sizes given")
    out: dict[int, list[dict]] = {int(lat): [] for lat in latents}
    for sp in _check(splits, scored=True):
        t0 = time.perf_counter()
        per_latent = pca_reconstruction_rhos(sp, latents, standardize)
        share = (time.perf_counter() - t0) / len(per_latent)
        for lat, res in per_latent.items():
            out[lat].append({**res, "fit_seconds": share, "status": "done", "reason": ""})
    return out


def _run_method(make: Any, split: SplitData, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Predictions of the method ``make`` makes at ``inputs`` (:func:`pertvae_core.isolation.fit_predict`),
    or those of a factory that runs its method elsewhere (``make.fit_predict(split, inputs)``: harness's
    plug-ins in their own process), checked alike; MethodFailed with the reason otherwise. A method class
    given as its own factory is never such a factory, whatever it defines: its own ``fit_predict`` (as
    scikit-learn's clusterers have) was called unbound, with the whole split, outside the failure boundary."""
    elsewhere = None if isinstance(make, type) else getattr(make, "fit_predict", None)
    if not callable(elsewhere):
        return fit_predict(make, split, inputs)
    outs = elsewhere(split, inputs)
    return [check_prediction(o, x) for o, x in zip(outs, inputs, strict=True)]


def evaluate_methods(splits: Sequence[SplitData], factories: Mapping[str, Callable[[], Any]],
                     keep_predictions: bool = False) -> list[dict]:
    """Fit and score every method of ``factories`` (name -> a new unfitted method) on each split.

    Each method runs inside its own failure boundary on its own read-only copy of the split
    (:mod:`pertvae_core.isolation`), so whatever one method does (an exception, sys.exit, an in-place edit,
    a NaN or misshapen prediction) fails that method alone and changes no other method's scores.
    One row per split: ``scores`` {method: {metric: value}} of the methods that succeeded
    (:func:`pertvae_core.evaluation.score_detail`), ``detail``, ``fit_seconds`` (all methods),
    ``method_status`` {method: "done" | "failed"}, ``method_reason`` {method: reason ("" when done)},
    ``method_traceback`` {method: the failed method's traceback}; ``status`` is "failed" when any method
    failed, with ``reason`` "method: reason; ...".
    """
    rows = []
    for sp in _check(splits, scored=True):
        t0 = time.perf_counter()
        cells = TestCells.from_split(sp)
        detail, predictions, status, reasons, tracebacks = {}, {}, {}, {}, {}
        for name, make in factories.items():
            try:
                # the order of score_method_detail: test pairs first, then the evaluation inputs
                pred_pairs, pred_cells = _run_method(make, sp, (sp.x1_test, cells.x1))
                detail[name] = score_detail(sp, pred_pairs, pred_cells, cells)
            except MethodFailed as e:
                status[name], reasons[name], tracebacks[name] = "failed", str(e), e.traceback
                continue
            status[name], reasons[name] = "done", ""
            if keep_predictions:
                predictions[name] = pred_pairs
        failed = {n: r for n, r in reasons.items() if r}
        row = {"scores": {m: d.summary for m, d in detail.items()}, "detail": detail,
               "fit_seconds": time.perf_counter() - t0, "status": "failed" if failed else "done",
               "reason": "; ".join(f"{n}: {r}" for n, r in failed.items()), "method_status": status,
               "method_reason": reasons, "method_traceback": tracebacks}
        if keep_predictions:
            row["predictions"] = predictions
        rows.append(row)
    return rows


def evaluate_baselines(splits: Sequence[SplitData], latent: int, keep_predictions: bool = False
                       ) -> list[dict]:
    """The perturbation baselines (:data:`pertvae_core.baselines.BASELINES`) at ``latent``, per split."""
    from pertvae_core.baselines import BASELINES

    return evaluate_methods(splits, {name: (lambda f=f: f(latent)) for name, f in BASELINES.items()},
                            keep_predictions)
