"""PertVAE as a notebook estimator: ``PertVAE(**settings).fit(x1, x2).predict(x1)``.

This is the package-level ``pertvae_core.PertVAE``; the batched ``nn.Module`` it trains is
:class:`pertvae_core.model.PertVAE`. One fit is :func:`pertvae_core.train.fit` on one split; predictions are
:func:`pertvae_core.api.predict`'s Monte Carlo means.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
import os
import pickle
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from pertvae_core import model as _model
from pertvae_core.api import predict as _predict
from pertvae_core.api import writable as _writable
from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData, real_array
from pertvae_core.isolation import exception_text
from pertvae_core.train import FitState, Standardizer, fit, resolve_device, seed_streams

__all__ = ["PertVAE", "FORMAT", "NotFitted"]

FORMAT = "pertvae-estimator/1"  # the "format" entry of a saved file
SETTINGS = tuple(f.name for f in dataclasses.fields(FitConfig))
_STD = ("mean", "scale", "single_mean", "single_scale")


class NotFitted(NotFittedError, RuntimeError):
    """predict, reconstruct, embed or save before fit: scikit-learn's NotFittedError (what
    ``sklearn.utils.validation.check_is_fitted`` raises and its tools catch), and a RuntimeError as it
    was before."""


def _check_settings(settings: dict[str, Any]) -> None:
    for name in settings:
        if name not in SETTINGS:
            close = difflib.get_close_matches(name, SETTINGS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid settings: {', '.join(SETTINGS)}"
            raise ValueError(f"PertVAE: unknown setting {name!r}; {hint}")


def _is_anndata(x: Any) -> bool:
    return all(hasattr(x, a) for a in ("X", "obs", "var", "obs_names", "var_names"))


class _Ticker:
    """fit's ``on_step``: a progress line on ``stream`` at most every ``every`` seconds, and a closing one."""

    def __init__(self, stream: Any, every: float = 5.0) -> None:
        self.stream, self.every, self.start = stream, every, time.perf_counter()
        self.last = self.start

    def __call__(self, step: int, model: Any) -> None:
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            print(f"PertVAE.fit: {step + 1:,} steps, {now - self.start:.0f} s", file=self.stream, flush=True)

    def done(self, epochs: int, best: int, seconds: float) -> None:
        print(f"PertVAE.fit: done after {epochs} epochs (best {best}) in {seconds:.1f} s", file=self.stream,
              flush=True)


def _table(x: Any, what: str) -> tuple[np.ndarray, pd.Index | None, list[str] | None]:
    """(float32 values [rows, genes], row labels or None, gene names or None) of an array, a scipy sparse
    matrix (densified, as AnnData's sparse X is: numpy read one as a 0-d object and said 'setting an array
    element with a sequence'), a DataFrame or an AnnData; checked 2-D, numeric and finite."""
    index = genes = None
    if isinstance(x, pd.DataFrame):
        bad = [str(c) for c, t in x.dtypes.items() if not pd.api.types.is_numeric_dtype(t)]
        if bad:
            raise ValueError(f"{what}: column(s) {bad[:5]} are not numeric; genes go in the columns, labels "
                             "(cell line, ...) in the index")
        index, genes, values = x.index, [str(c) for c in x.columns], x.to_numpy()
    elif _is_anndata(x):
        values = x.X.toarray() if hasattr(x.X, "toarray") else x.X
        index, genes = pd.Index(x.obs_names), [str(g) for g in x.var_names]
    else:
        values = x.toarray() if hasattr(x, "toarray") else x
    values = real_array(values, np.float32, what)
    if values.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D table [samples, genes], got shape {values.shape}")
    bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad_rows.size:
        where = [str(index[i]) for i in bad_rows[:5]] if index is not None else bad_rows[:5].tolist()
        raise ValueError(f"{what}: NaN or inf in {bad_rows.size} row(s), e.g. {where}")
    if genes is not None and len(set(genes)) != len(genes):
        dup = sorted({g for g in genes if genes.count(g) > 1})
        raise ValueError(f"{what}: gene(s) {dup[:5]} appear more than once")
    return values, index, genes


def _align(values: np.ndarray, genes: list[str] | None, want: list[str] | None, n_genes: int,
           what: str) -> np.ndarray:
    """Columns of ``values`` in the order of the genes ``want`` (by name when both are labelled, else by
    count); extra labelled genes are dropped."""
    if genes is not None and want is not None:
        pos = {g: i for i, g in enumerate(genes)}
        missing = [g for g in want if g not in pos]
        if missing:
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise ValueError(f"{what} lacks {len(missing)} of the model's {len(want)} genes: "
                             f"{', '.join(missing[:10])}{more}")
        return values[:, [pos[g] for g in want]]
    if values.shape[1] != n_genes:
        raise ValueError(f"{what} has {values.shape[1]} genes (columns), the model has {n_genes}")
    return values


def _warn_by_position(message: str) -> None:
    """A labelled table whose genes cannot be matched by name (the reference has none) is taken by position;
    say so, as scikit-learn does for feature names: genes in another order would be silently misaligned."""
    user = 1   # the first frame outside this module and the decorators it uses (torch.no_grad)
    while str(sys._getframe(user).f_globals.get("__name__")).partition(".")[0] in ("pertvae_core", "torch"):
        user += 1
    warnings.warn(f"{message}: its genes are taken by position; give labelled tables (DataFrames or "
                  "AnnData) to both to match genes by name", UserWarning, stacklevel=user + 1)


def _check_fit_input(n_pairs: int, n_genes: int, n_val1: int, n_val2: int) -> None:
    """What SplitData refuses, in fit's own argument names: SplitData names its fields (x1_train, x1_val),
    which a caller of ``fit(x1, x2, validation=...)`` never wrote."""
    if n_genes < 2:
        raise ValueError(f"PertVAE.fit: x1 has {n_genes} gene(s) (columns); PertVAE needs at least 2")
    if n_pairs == 0:
        raise ValueError("PertVAE.fit: x1 and x2 have no rows; give at least one (x1, x2) pair")
    if n_val1 != n_val2:
        raise ValueError(f"PertVAE.fit: validation x1 has {n_val1} rows but validation x2 has {n_val2}: "
                         "pairs align row by row")


def _row_labels(x: Any) -> list[str] | None:
    if isinstance(x, pd.DataFrame):
        return [str(i) for i in x.index]
    return [str(i) for i in x.obs_names] if _is_anndata(x) else None


def _check_row_order(x1: Any, x2: Any, what1: str, what2: str) -> None:
    """Pairs align by position, not by label (pandas would align by label): two labelled tables with the
    same row labels in another order would silently train on pairs of different cell lines, so refuse."""
    i1, i2 = _row_labels(x1), _row_labels(x2)
    if i1 is None or i2 is None or i1 == i2 or sorted(i1) != sorted(i2):
        return  # unlabelled, in order, or labelled by sample (no shared labels to misorder)
    row = next(r for r, (a, b) in enumerate(zip(i1, i2, strict=True)) if a != b)
    raise ValueError(f"PertVAE.fit: {what1} and {what2} have the same row labels in another order "
                     f"(row {row}: {i1[row]!r} vs {i2[row]!r}); pairs align by position, not by label: give "
                     f"{what2}'s rows in {what1}'s order")


def _own_labels(like: Any, genes: Sequence[str] | None) -> Sequence[Any] | None:
    """The gene names ``genes`` (str) as the DataFrame ``like`` spells its columns: genes are matched as
    str, but a DataFrame with int Entrez ids as columns must get int columns back, or ``x2_hat - x2``
    aligns no column and is NaN throughout."""
    if genes is None or not isinstance(like, pd.DataFrame):
        return genes
    own = {str(c): c for c in like.columns}
    return [own.get(g, g) for g in genes]


class PertVAE(BaseEstimator):
    """PertVAE as an estimator: predicts a drug's post-treatment profile x2 from the control profile x1.

    ``PertVAE(**settings)``: settings are :class:`pertvae_core.config.FitConfig`'s fields (the paper's sizes
    by default); :meth:`get_params` / :meth:`set_params` follow scikit-learn's conventions, so
    ``sklearn.base.clone`` works. Inputs are numpy arrays, pandas DataFrames or AnnData objects [samples,
    genes] in the raw gene space; labelled inputs give labelled outputs: a DataFrame gives a DataFrame (the
    input's index, the model's genes), an AnnData gives an AnnData (the input's obs, the model's genes as var
    with the input's var columns).
    Predictions are Monte Carlo means over ``mc_samples`` draws from the fit seed's evaluation stream, so
    the same rows give the same numbers, also after :meth:`save` / :meth:`load`.

    Also a :class:`pertvae_core.methods.Method`: ``fit(split)`` trains on a SplitData's training pairs,
    singletons and validation pairs. (Not the batched ``nn.Module`` :class:`pertvae_core.model.PertVAE`.)
    """

    def __init__(self, **settings: Any) -> None:
        _check_settings(settings)
        try:  # every setting checked now, not when fit() reaches it (lr=inf was a non-finite loss later)
            self.config = FitConfig(**settings)
        except ValueError as e:
            raise ValueError(f"PertVAE: {e}") from None

    @property
    def settings(self) -> dict[str, Any]:
        """All settings (FitConfig's fields) as a dict."""
        return dataclasses.asdict(self.config)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The settings as scikit-learn's ``get_params`` gives them (no nested estimators: ``deep`` is
        accepted and ignored)."""
        return {f.name: getattr(self.config, f.name) for f in dataclasses.fields(FitConfig)}

    def set_params(self, **params: Any) -> PertVAE:
        """Change settings (checked as at construction); a fitted model keeps its weights, and predicts,
        embeds and saves with the settings it was fitted with (``config_``), until the next :meth:`fit`.
        Returns self."""
        _check_settings(params)
        try:
            self.config = FitConfig(**{**self.get_params(), **params})
        except ValueError as e:
            raise ValueError(f"PertVAE: {e}") from None
        return self

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted (or loaded): what ``sklearn.utils.validation.check_is_fitted`` asks."""
        return hasattr(self, "state_")

    def __repr__(self) -> str:
        default = FitConfig()
        changed = [f"{k}={v!r}" for k, v in self.settings.items() if getattr(default, k) != v]
        return f"PertVAE({', '.join(changed)})"

    # --- fitting --------------------------------------------------------------------------------------------
    def fit(self, x1: Any, x2: Any = None, singletons: Any = None,
            validation: tuple[Any, Any] | None = None, seed: int = 0, verbose: bool = True) -> PertVAE:
        """Train on pairs (x1 [n, G] controls, x2 [n, G] post-treatment, row by row), optional unpaired
        profiles ``singletons`` [n_s, G] and validation pairs ``validation=(x1_val, x2_val)`` (early stopping;
        without them ``max_epochs`` are trained). Labelled inputs are matched to x1's genes by name. ``x1``
        may instead be a :class:`SplitData` (then nothing else but ``seed``). ``verbose``: a progress line on
        stderr every few seconds and one when done. A fit that reaches ``max_epochs`` while its validation
        loss is still improving warns (``sklearn.exceptions.ConvergenceWarning``). Returns self.
        """
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"PertVAE.fit: seed must be an int, got {seed!r}")
        if not 0 <= seed < 2**128:   # seed_streams takes it modulo 2**128: seed=-1 was the fit of 2**128 - 1
            raise ValueError(f"PertVAE.fit: seed must be an int in [0, 2**128), got {seed!r}")
        if isinstance(x1, SplitData):
            if x2 is not None or singletons is not None or validation is not None:
                raise ValueError("PertVAE.fit(split): x2, singletons and validation come from the SplitData")
            split, genes = _writable(x1), None
        else:
            if x2 is None:
                raise ValueError("PertVAE.fit: x2 (the post-treatment profiles paired with x1) is missing")
            a1, _, genes = _table(x1, "x1")
            G = a1.shape[1]

            def arr(x: Any, what: str) -> np.ndarray:
                a, _, g = _table(x, what)
                if g is not None and genes is None:
                    _warn_by_position(f"PertVAE.fit: {what} has gene names (columns) but x1 has none")
                return _align(a, g, genes, G, what)

            a2 = arr(x2, "x2")
            if a2.shape[0] != a1.shape[0]:
                raise ValueError(f"x1 has {a1.shape[0]} rows but x2 has {a2.shape[0]}: pairs align row by "
                                 "row")
            _check_row_order(x1, x2, "x1", "x2")
            xs = arr(singletons, "singletons") if singletons is not None else np.zeros((0, G), np.float32)
            if validation is None:
                v1 = v2 = np.zeros((0, G), np.float32)
            elif isinstance(validation, tuple | list) and len(validation) == 2:
                v1, v2 = arr(validation[0], "validation x1"), arr(validation[1], "validation x2")
                _check_row_order(*validation, "validation x1", "validation x2")
            else:
                raise ValueError("PertVAE.fit: validation must be a (x1_val, x2_val) pair")
            _check_fit_input(a1.shape[0], G, v1.shape[0], v2.shape[0])
            # fit() never reads test rows; SplitData requires some, so the first training pair stands in
            split = SplitData(a1, a2, v1, v2, a1[:1], a2[:1], xs)
        ticker = _Ticker(sys.stderr) if verbose else None
        state = fit([split], self.config, [seed], pairs=True, on_step=ticker)
        if state.status[0] != "done":
            raise FloatingPointError(f"PertVAE.fit: {state.reason[0]}")
        self._fitted(state, genes, seed, self.config)
        if ticker is not None:
            ticker.done(self.epochs_, self.best_epoch_, state.fit_seconds)
        self._warn_unconverged(split.x1_val.shape[0] > 0)
        return self

    def _warn_unconverged(self, validated: bool) -> None:
        """ConvergenceWarning when the fit ran out of epochs while the validation loss still improved."""
        cfg = self.config_
        if validated and self.epochs_ >= cfg.max_epochs and self.best_epoch_ > self.epochs_ - cfg.patience:
            from sklearn.exceptions import ConvergenceWarning

            warnings.warn(f"PertVAE.fit stopped at max_epochs={cfg.max_epochs} with the validation loss "
                          f"still improving (best epoch {self.best_epoch_}); raise max_epochs for a "
                          "converged fit", ConvergenceWarning, stacklevel=3)

    def _fitted(self, state: FitState, genes: list[str] | None, seed: int, config: FitConfig) -> None:
        """Keep the fit and the settings it was made with: ``set_params`` changes only the next fit's
        settings (scikit-learn's convention), so predict/embed/save must not read ``config`` (a latent size
        changed after fit broke embed, and save wrote weights that its settings did not fit)."""
        self.state_, self.genes_, self.seed_, self.config_ = state, genes, int(seed), config
        self.n_genes_ = int(state.std.mean.shape[-1])
        self.epochs_, self.best_epoch_ = state.epochs[0], state.best_epoch[0]
        self.history_ = list(state.history[0]) if state.history else []
        self.fit_seconds_ = state.fit_seconds

    # --- prediction -----------------------------------------------------------------------------------------
    def _input(self, x1: Any) -> tuple[np.ndarray, pd.Index | None, list[str] | None]:
        if not hasattr(self, "state_"):
            raise NotFitted("PertVAE is not fitted: call fit(x1, x2) or PertVAE.load(path) first")
        a, index, genes = _table(x1, "x1")
        if genes is not None and self.genes_ is None:
            _warn_by_position("x1 has gene names (columns) but PertVAE was fitted without them")
        return _align(a, genes, self.genes_, self.n_genes_, "x1"), index, genes

    def _state(self) -> FitState:
        """The fitted state with a fresh copy of the fit seed's generators (draws start over each call)."""
        return dataclasses.replace(self.state_, gens=[seed_streams(self.seed_)])

    def _out(self, values: np.ndarray, like: Any, index: pd.Index | None,
             columns: Sequence[str] | None) -> Any:
        """``values`` shaped like the input ``like``: an array, a DataFrame, or an AnnData with like's obs."""
        if index is None:
            return values
        if _is_anndata(like):
            import anndata as ad

            var = pd.DataFrame(index=pd.Index([str(c) for c in columns]))
            shared = like.var.reindex(var.index) if var.index.isin(like.var_names).all() else None
            return ad.AnnData(X=values.astype(np.float32), obs=like.obs.copy(),
                              var=shared if shared is not None else var)
        return pd.DataFrame(values, index=index, columns=list(columns))

    def _means(self, x1: Any, key: str) -> Any:
        a, index, genes = self._input(x1)
        values = _predict(self._state(), [a], self.config_.mc_samples)[key][0]
        return self._out(values, x1, index, _own_labels(x1, self.genes_ or genes))

    def predict(self, x1: Any) -> Any:
        """Predicted mean of x2 for each row of x1 (z1 ~ q(z1|x1), z2 ~ p(z2|z1), mean of p(x2|z2))."""
        return self._means(x1, "pred")

    def reconstruct(self, x1: Any) -> Any:
        """Reconstruction mean of x1 (z1 ~ q(z1|x1), mean of p(x1|z1)): the no-drug comparator."""
        return self._means(x1, "rec")

    @torch.no_grad()
    def embed(self, x1: Any) -> Any:
        """z1 [rows, latent]: the posterior mean E_q(z1|x1)[z1] (Monte Carlo, the draws :meth:`predict` uses);
        labelled input gives columns (AnnData: var) z1_0, z1_1, ..."""
        a, index, _ = self._input(x1)
        state = self._state()
        net, L, mc = state.model, self.config_.latent, self.config_.mc_samples
        net.eval()
        n = a.shape[0]
        X1, _ = state.std.forward([a])
        eps = torch.randn((mc, n, L), generator=state.gens[0]["eval"]).to(state.device)
        z1 = torch.zeros(n, L, device=state.device)
        for k in range(mc):
            z1 += net.encode(X1[:, :n], eps[None, k])[0][0]
        values = (z1 / mc).cpu().numpy().astype(np.float64)
        return self._out(values, x1, index, [f"z1_{i}" for i in range(L)])

    # --- persistence ----------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model (weights, settings, standardizer, genes, seed) to one file; returns its
        path. Written to a temporary file first, so an interrupted save leaves any old file intact."""
        if not hasattr(self, "state_"):
            raise NotFitted("PertVAE is not fitted: nothing to save")
        st = self.state_
        payload = {
            "format": FORMAT, "settings": dataclasses.asdict(self.config_), "seed": self.seed_,
            "genes": self.genes_, "n_genes": self.n_genes_, "epochs": self.epochs_,
            "best_epoch": self.best_epoch_, "history": self.history_, "fit_seconds": self.fit_seconds_,
            "model": {k: v.detach().cpu() for k, v in st.model.state_dict().items()},
            "standardizer": {k: getattr(st.std, k).detach().cpu() for k in _STD},
        }
        path = Path(path)
        if not path.parent.is_dir():  # torch says so with a RuntimeError
            raise FileNotFoundError(f"{path}: directory {path.parent} does not exist; create it first")
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            torch.save(payload, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> PertVAE:
        """A fitted estimator from :meth:`save`'s file (on its settings' device, or the CPU without CUDA).

        A missing file raises FileNotFoundError; any other file that is not a complete saved estimator whose
        weights fit its settings (another format, a missing entry, another gene count or latent size than its
        settings say) raises ValueError naming the file and what is wrong.
        """
        try:
            p = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as e:  # torch raises several types for a file it cannot read
            raise ValueError(f"{path}: not a saved PertVAE estimator (torch.load cannot read it: "
                             f"{_load_failure(e)}); give a file PertVAE.save wrote") from None
        found = p.get("format") if isinstance(p, dict) else type(p).__name__
        if isinstance(found, str) and found != FORMAT and found.startswith(FORMAT.split("/")[0] + "/"):
            raise ValueError(f"{path}: saved by another version of pertvae-bench (format {found!r}; this "
                             f"one reads {FORMAT!r}): load it with the version that saved it, or fit and "
                             f"save the model again")
        if found != FORMAT:
            raise ValueError(f"{path}: not a saved PertVAE estimator (format {found!r}, expected {FORMAT!r})")
        _check_payload(p, path)
        try:
            est = cls(**p["settings"])
        except ValueError as e:
            raise ValueError(f"{path}: the saved settings are invalid ({e})") from None
        dev = resolve_device(est.config.device)
        gens = seed_streams(p["seed"])
        net = _model.PertVAE(p["n_genes"], est.config, [gens["init"]], pairs=True)
        _check_weights(net, p, path)
        net.load_state_dict(p["model"])
        std = Standardizer(**{k: p["standardizer"][k].to(dev) for k in _STD})
        state = FitState(model=net.to(dev), std=std, gens=[gens], epochs=[p["epochs"]],
                         best_epoch=[p["best_epoch"]], status=["done"], reason=[""],
                         fit_seconds=p["fit_seconds"], device=dev, history=[list(p["history"])])
        est._fitted(state, p["genes"], p["seed"], est.config)
        return est


def _load_failure(e: Exception) -> str:
    """torch.load's failure in one line: an UnpicklingError's message (several lines) advises loading with
    weights_only=False, which would run whatever code the file holds: never advice to pass on."""
    if isinstance(e, pickle.UnpicklingError):
        return f"{type(e).__name__}: not a file torch.save wrote, or a damaged one"
    return exception_text(e).splitlines()[0][:200]


# what save() writes besides "format": entry -> the types it may have
_PAYLOAD: dict[str, tuple[type, ...]] = {
    "settings": (dict,), "seed": (int,), "genes": (list, type(None)), "n_genes": (int,), "epochs": (int,),
    "best_epoch": (int,), "history": (list,), "fit_seconds": (int, float), "model": (dict,),
    "standardizer": (dict,)}


def _check_payload(p: dict, path: str | os.PathLike) -> None:
    """Every entry :meth:`PertVAE.save` writes, of its type, with genes and standardizer of ``n_genes``."""
    missing = [k for k in _PAYLOAD if k not in p]
    if missing:
        raise ValueError(f"{path}: saved PertVAE estimator lacks {', '.join(missing)} (damaged, or written "
                         f"by other code); fit and save the model again")
    for k, types in _PAYLOAD.items():
        if isinstance(p[k], bool) or not isinstance(p[k], types):
            raise ValueError(f"{path}: entry {k!r} is a {type(p[k]).__name__}, expected "
                             f"{' or '.join(t.__name__ for t in types)} (damaged file?)")
    g = p["n_genes"]
    if p["genes"] is not None and len(p["genes"]) != g:
        raise ValueError(f"{path}: {len(p['genes'])} gene names for n_genes = {g} (damaged file?)")
    std = p["standardizer"]
    for k in _STD:
        t = std.get(k)
        if not isinstance(t, torch.Tensor) or t.ndim == 0 or t.shape[-1] != g:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{path}: standardizer {k!r} is {shape}, expected a tensor over n_genes = {g} "
                             f"genes (damaged file?)")


def _check_weights(net: torch.nn.Module, p: dict, path: str | os.PathLike) -> None:
    """The saved weights have exactly the names and shapes the network of the saved settings has."""
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    have = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in p["model"].items()}
    problems = [f"{k} missing" for k in want if k not in have]
    problems += [f"unexpected {k}" for k in have if k not in want]
    problems += [f"{k} has shape {have[k]}, expected {want[k]}" for k in want
                 if k in have and have[k] != want[k]]
    if problems:
        cfg = p["settings"]
        raise ValueError(f"{path}: its weights do not fit its settings (n_genes {p['n_genes']}, latent "
                         f"{cfg.get('latent')}, hidden {cfg.get('hidden')}): {'; '.join(problems[:3])}"
                         f"{f' and {len(problems) - 3} more' if len(problems) > 3 else ''} (damaged or "
                         f"edited file?)")
