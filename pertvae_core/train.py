"""Fit S splits at once as one batched model: Adam, minibatches, early stopping per split, best-state restore.

Design (paper Section 2 "Fitting", Section 4):
- Inputs are standardized per gene with statistics of each split's own training profiles, each measured
  profile once (:func:`pertvae_core.data.measured_profiles`: the distinct controls of x1_train, x2_train
  and the unpaired training controls xu_train); genes constant in training get scale 1, and a gene
  near-constant in training (sd > 0 under :data:`pertvae_core.data.NEAR_CONSTANT` times the median gene's)
  is refused (:func:`pertvae_core.data.check_spread`).
  ``cfg.standardize="per_source"`` (the default): L1000 profiles (pairs, xu_train, validation and test)
  with those L1000 statistics, the unpaired singletons xs_train (another platform: GDSC/CCLE arrays) with
  those of xs_train alone, so a platform offset does not shift the L1000 data; "pooled": one set of
  statistics from the L1000 profiles and xs_train together. PertVAE's singletons are xs_train followed by
  xu_train (L1000 controls no training pair uses), each standardized by its own source's statistics.
- Data sit on the device as padded tensors [S, N_max, G]; minibatches are gathered by index (no DataLoader).
  Each split draws its own minibatches from its own training set: an index stream of concatenated random
  permutations of its own length (every example once per pass, batches always full).
- An epoch of split s is one pass over its training data: max(ceil(n_P / batch_pairs), ceil(n_S /
  batch_singletons)) steps for PertVAE (n_P pairs, n_S singletons; the smaller set is cycled), ceil(n / batch)
  for the VAE (n profiles: singletons, distinct controls x1 and x2; batch = batch_pairs + batch_singletons).
  At the end of each of its epochs, split s is validated (fixed noise) and may improve its best state, stop
  (``patience`` epochs without improvement and at least ``min_epochs``) or finish (``max_epochs``).
  Epochs before ``min_epochs`` are a burn-in: never selected as best and never stopped in. A split
  that stopped, finished or failed is frozen: its best state is kept aside and, by compaction, it is dropped
  from the computation at that epoch boundary: the parameters, Adam moments, best states, data and noise
  tensors of the splits still training are repacked along the model dimension, so later steps compute only
  them (with ``torch.compile`` only to a ladder of batch sizes, :data:`pertvae_core.packing.RUNGS`, so that
  few get compiled: the few stopped splits a rung keeps stay frozen and masked). Until dropped (or with
  ``compact=False``) a frozen split's loss is masked out of the backward pass and after every optimizer step
  its parameters are reset to its best state. The result holds all S splits in their original order.
- Validation loss: PertVAE, the perturbation-prediction loss -log p(x2|z2) with z1 ~ q(z1|x1), z2 ~ p(z2|z1)
  (Eq. 3, 7; mean over validation pairs); VAE, the reconstruction loss -log p(x|z) of the validation profiles
  (distinct x1, and x2: :func:`pertvae_core.data.measured_profiles`). Each split draws ``cfg.val_samples``
  fixed noise draws once from its own "val" generator. With ``cfg.stop_on="mse"`` (the default) the loss is
  half the squared error of the predicted mean averaged over those draws (as the test's Monte Carlo mean;
  standardized genes), i.e. -log p(x2|z2) with unit variance: with the decoder's own sigma ("nll", averaged
  over the draws) the loss is dominated by the decoder's overconfident variance off the training manifold and
  on small data selected nearly untrained states (the initial epochs), though the predictions kept improving.
  Without validation rows a split trains ``max_epochs`` and keeps its final state.
- Randomness: every split's seed gives independent streams (numpy SeedSequence) for initialization,
  minibatch indices, training noise, validation noise and evaluation noise, each a CPU ``torch.Generator``.
  Nothing depends on the other splits of the batch, so S batched fits equal S separate fits to float
  tolerance.
- A non-finite training or validation loss marks that split "failed" (with the reason) and freezes it; the
  other splits go on (all layers are per split, so NaN cannot cross between them). So does, when the split
  stops or finishes, a best validation loss far above that of its untrained state (validated once before
  training, with the same fixed noise: no random draw is taken, so other fits' numbers are unchanged): a
  diverged fit with finite losses (:mod:`pertvae_core.early_stopping`).
- No host synchronization inside a step (the only syncs are at epoch boundaries); fused Adam (foreach as a
  fallback); ``cfg.compile`` wraps the loss in ``torch.compile`` (one graph, reused by the process's later
  fits of the same shapes; eager where no C++ compiler is found); ``cfg.precision`` "bf16" gives the
  weight-normalized layers' products bfloat16 operands (:mod:`pertvae_core.precision`).
- Memory: a step allocates and frees tens of MB of activations. With glibc's default settings much of it is
  returned to the system at each free and page-faulted back on the next allocation (~1,000-3,500 page faults
  per paper-sized step, 10-20% of a bfloat16 step on the CPU), so :func:`fit` first raises glibc's mmap and
  trim thresholds once per process (:func:`reuse_freed_memory`): freed memory stays in the heap for the next
  step. Speed only: the numbers are unchanged.

Layout: this module holds the loop (:func:`fit`, the steps and epoch ends) and what it shares with the other
trainers (seeds, optimizer, train step, :class:`Standardizer`); the data of each model and the minibatch
schedule are :mod:`pertvae_core.fit_data`, each split's early-stopping record and the best states
:mod:`pertvae_core.early_stopping`, compaction :mod:`pertvae_core.packing`.
"""

from __future__ import annotations

import ctypes
import functools
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from pertvae_core.adam import adam_step_
from pertvae_core.config import STANDARDIZE, FitConfig
from pertvae_core.data import SplitData, check_spread, measured_profiles
from pertvae_core.early_stopping import EarlyStopping
from pertvae_core.elbo import (
    batch_terms,
    prediction_mean,
    prediction_nll,
    reconstruction_mean,
    reconstruction_nll,
    training_loss,
)
from pertvae_core.fit_data import FitData, Minibatches, prepare_data
from pertvae_core.model import PertVAE
from pertvae_core.packing import repack_ as _repack_
from pertvae_core.packing import repack_size as _repack_size
from pertvae_core.precision import resolve_precision

__all__ = ["FitState", "fit", "resolve_device", "seed_streams", "make_optimizer", "make_train_step",
           "Standardizer", "reuse_freed_memory"]

STREAMS = ("init", "index", "noise", "val", "eval")


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, falling back to the CPU (with a warning) when CUDA is asked for but absent."""
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(f"FitConfig.device={name!r} but CUDA is unavailable: using the CPU", stacklevel=3)
        return torch.device("cpu")
    return dev


MMAP_THRESHOLD = 64 << 20    # allocations below this come from the heap, not fresh mmap'ed pages
TRIM_THRESHOLD = 512 << 20   # free memory kept at the heap's top before it is returned to the system


@functools.lru_cache(maxsize=1)
def reuse_freed_memory() -> bool:
    """Keep freed memory for reuse within this process (glibc ``mallopt``; module docstring). Once per
    process; False where the C library is not glibc or refuses."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3   # <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(
        libc.mallopt(m_trim_threshold, TRIM_THRESHOLD))


def seed_streams(seed: int) -> dict[str, torch.Generator]:
    """Independent CPU generators (init, index, noise, val, eval) derived from one fit seed."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an int, got {seed!r}")
    states = np.random.SeedSequence(int(seed) % (2**128)).generate_state(len(STREAMS), dtype=np.uint64)
    return {k: torch.Generator().manual_seed(int(v) & (2**63 - 1))
            for k, v in zip(STREAMS, states, strict=True)}


def make_optimizer(params: Sequence[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """Adam, fused where this torch/device supports it, else foreach."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


COMPILED_SHAPES = 64   # graphs dynamo keeps per step function (torch: 8); the paper grid: 56 (packing)


def no_cpp_compiler() -> str:
    """Why torch.compile cannot compile for the CPU here (inductor finds no working C++ compiler), or ''."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception as e:   # noqa: BLE001 - any failure to find one means the same: train eagerly
        return f"{type(e).__name__}: {e}"
    return ""


def _compiled(loss_fn: Callable[..., torch.Tensor], mode: str | None, device: torch.device
              ) -> Callable[..., torch.Tensor]:
    """``torch.compile`` of a step's loss, or the loss itself (with a warning) on a CPU without a C++
    compiler, where compiling would fail every fit. One worker fits many models and shapes (every latent
    size of the VAE and PertVAE, each batch size compaction leaves): dynamo keeps a graph per shape, reused
    by later fits of that shape in the process (~0.05 s instead of recompiling), so its cap on graphs per
    function is raised: past it, dynamo silently runs eager."""
    why = no_cpp_compiler() if device.type == "cpu" else ""
    if why:
        warnings.warn(f"compile: torch.compile needs a C++ compiler on the CPU ({why}); training eagerly "
                      "(install g++ or clang, or pass --no-compile)", stacklevel=3)
        return loss_fn
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, COMPILED_SHAPES)
    return torch.compile(loss_fn, dynamic=False, mode=mode)


def make_train_step(model: PertVAE, cfg: FitConfig, w_pairs: torch.Tensor, w_single: torch.Tensor,
                    compile_mode: str | None = None
                    ) -> tuple[Callable[..., torch.Tensor], torch.optim.Optimizer]:
    """One optimizer step for all S models: ``step(x1, x2, xs, eps, active) -> per-model loss [S]``.

    Forward (``torch.compile``d with ``compile_mode`` when ``cfg.compile``, e.g. "reduce-overhead" for CUDA
    graphs), backward of the sum of the active models' losses (inactive ones are masked with ``torch.where``,
    so NaN there cannot reach the others), Adam step, gradients set to None. No host synchronization.
    Returns the step function and its optimizer.
    """
    reuse_freed_memory()
    opt = make_optimizer(model.parameters(), cfg.lr)
    fb, l2 = float(cfg.free_bits), float(cfg.l2_drug)
    zero = torch.zeros((), device=w_pairs.device)
    eager = [0]   # steps whose loss ran outside torch.compile (every one without it; dynamo past its graphs)

    def loss_fn(x1: torch.Tensor, x2: torch.Tensor, xs: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling():   # a constant to dynamo: its graph counts nothing
            eager[0] += 1
        terms = batch_terms(model, x1, x2, xs, eps)
        return training_loss(model, terms, w_pairs, w_single, fb, l2)

    step_loss = _compiled(loss_fn, compile_mode, w_pairs.device) if cfg.compile else loss_fn

    def step(x1: torch.Tensor, x2: torch.Tensor, xs: torch.Tensor, eps: torch.Tensor,
             active: torch.Tensor) -> torch.Tensor:
        loss_s = step_loss(x1, x2, xs, eps)
        torch.where(active, loss_s, zero).sum().backward()
        adam_step_(opt)
        return loss_s.detach()

    step.eager_steps = lambda: eager[0]   # type: ignore[attr-defined]
    return step, opt


@dataclass
class Standardizer:
    """Per-split, per-gene training mean and scale [S, 1, G] (float32, on the device).

    ``mean``/``scale`` standardize the L1000 pairs (training, validation, test) and map predictions back;
    ``single_mean``/``single_scale`` standardize the singletons xs_train (equal to ``mean``/``scale`` when
    pooled, or for a split without singletons).
    """

    mean: torch.Tensor
    scale: torch.Tensor
    single_mean: torch.Tensor
    single_scale: torch.Tensor

    @classmethod
    def from_splits(cls, splits: Sequence[SplitData], device: torch.device,
                    rule: str = "per_source") -> Standardizer:
        """Each split's training statistics by ``rule``: "per_source" | "pooled" (module docstring)."""
        if rule not in STANDARDIZE:
            raise ValueError(f"standardize: must be one of {', '.join(STANDARDIZE)}, got {rule!r}")

        def stats(x: np.ndarray, s: int, what: str) -> tuple[np.ndarray, np.ndarray]:
            x = x.astype(np.float64)
            sd = x.std(axis=0)
            check_spread(sd, f"splits[{s}]: the training {what}")
            return x.mean(axis=0), np.where(sd > 0, sd, 1.0)

        pair, single = [], []
        for s, sp in enumerate(splits):
            l1000 = measured_profiles(sp.x1_train, sp.x2_train, sp.xu_train)  # each profile once
            if rule == "pooled":
                pair.append(stats(np.concatenate([l1000, sp.xs_train], axis=0), s, "profiles"))
                single.append(pair[-1])
            else:
                pair.append(stats(l1000, s, "L1000 profiles (x1, x2 and unpaired controls)"))
                single.append(stats(sp.xs_train, s, "singletons") if len(sp.xs_train) else pair[-1])

        def t(rows: list[tuple[np.ndarray, np.ndarray]], k: int) -> torch.Tensor:
            v = np.stack([r[k] for r in rows])[:, None, :]
            return torch.tensor(v, dtype=torch.float32, device=device)

        return cls(t(pair, 0), t(pair, 1), t(single, 0), t(single, 1))

    def _pad(self, rows: Sequence[torch.Tensor], min_rows: int) -> tuple[torch.Tensor, list[int]]:
        """Zero-pad standardized per-split rows into [S, N_max, G]; returns the tensor and row counts."""
        n = [int(r.shape[0]) for r in rows]
        out = torch.zeros(len(rows), max(max(n), min_rows), self.mean.shape[-1], device=self.mean.device)
        for s, r in enumerate(rows):
            out[s, : n[s]] = r
        return out, n

    def _rows(self, s: int, a: np.ndarray, single: bool = False) -> torch.Tensor:
        x = torch.as_tensor(a, dtype=torch.float32).to(self.mean.device)
        if single:
            return (x - self.single_mean[s, 0]) / self.single_scale[s, 0]
        return (x - self.mean[s, 0]) / self.scale[s, 0]

    def forward(self, arrays: Sequence[np.ndarray], min_rows: int = 1) -> tuple[torch.Tensor, list[int]]:
        """Standardize L1000 arrays (one per split), zero-padded into [S, N_max, G]; and the row counts."""
        return self._pad([self._rows(s, a) for s, a in enumerate(arrays)], min_rows)

    def forward_singletons(self, arrays: Sequence[np.ndarray], pairs: Sequence[np.ndarray] | None = None,
                           min_rows: int = 1) -> tuple[torch.Tensor, list[int]]:
        """Like :meth:`forward` for the singletons xs_train, with their statistics; rows of ``pairs`` (L1000
        profiles, standardized as such) follow each split's singletons (the plain VAE's training set)."""
        rows = []
        for s, a in enumerate(arrays):
            r = self._rows(s, a, single=True)
            rows.append(torch.cat([r, self._rows(s, pairs[s])]) if pairs is not None else r)
        return self._pad(rows, min_rows)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Back to the original (L1000) gene space; x [S, ..., G]."""
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        return x * self.scale.reshape(shape) + self.mean.reshape(shape)


@dataclass
class FitState:
    """A trained batched model (best states restored) and what happened to each split."""

    model: PertVAE
    std: Standardizer
    gens: list[dict[str, torch.Generator]]
    epochs: list[int]
    best_epoch: list[int]
    status: list[str]
    reason: list[str]
    fit_seconds: float
    device: torch.device
    history: list[list[float]] = field(default_factory=list)  # validation loss per epoch per split
    precision: str = "fp32"   # of the matrix products, as resolved for the device (pertvae_core.precision)
    # whether the training steps ran under torch.compile: all (True), none (False) or some (None); dynamo
    # runs a step eagerly past its graphs (COMPILED_SHAPES), where bf16 products differ (layers.bf16_way)
    steps_compiled: bool | None = False


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [S, N, G], idx [S, B] -> [S, B, G]: rows idx[s] of x[s].

    One ``index_select`` of whole rows of x seen as [S * N, G] (offsets s * N), not ``torch.gather`` with
    the index expanded over genes: the same values, copied a row at a time instead of an element at a time
    (up to 4x less CPU time, more with S splits batched; benchmarks/test_step_overhead.py).
    """
    S, N, G = x.shape
    flat = (idx + torch.arange(S, device=idx.device)[:, None] * N).reshape(-1)
    return x.reshape(S * N, G).index_select(0, flat).view(S, -1, G)


def _masked_mean(v: torch.Tensor, n: Sequence[int]) -> torch.Tensor:
    """Mean over the first n[s] entries of each row of v [S, N] (NaN where n[s] = 0)."""
    mask = torch.arange(v.shape[1], device=v.device)[None, :] < torch.tensor(n, device=v.device)[:, None]
    cnt = mask.sum(1)
    tot = torch.where(mask, v, torch.zeros((), device=v.device)).sum(1)
    return torch.where(cnt > 0, tot / cnt.clamp_min(1), torch.full_like(tot, float("nan")))


@torch.no_grad()
def _validation_loss(model: PertVAE, data: FitData, cfg: FitConfig, n_val: Sequence[int]) -> np.ndarray:
    """Per packed split: MSE of the mean prediction over the fixed draws, or the mean NLL over them."""
    pairs, v1, v2, K = data.pairs, data.x1_val, data.x2_val, cfg.val_samples
    eps1, eps2 = data.eps1_val, data.eps2_val
    nll = torch.zeros(v1.shape[:2], device=v1.device)
    total = torch.zeros_like(v1)   # of the draws' means (divided once, not each draw: one pass less each)
    head = model.encoder_head(v1)   # the same for every draw: computed once
    for k in range(K):
        if cfg.stop_on == "mse":   # the mean prediction alone: the decoder's sigma is not needed
            total += (prediction_mean(model, v1, eps1[:, k], eps2[:, k], head) if pairs
                      else reconstruction_mean(model, v1, eps1[:, k], head))
        else:
            nll_k, _ = (prediction_nll(model, v1, v2, eps1[:, k], eps2[:, k], head) if pairs
                        else reconstruction_nll(model, v1, eps1[:, k], head=head))
            nll += nll_k / K
    if cfg.stop_on == "mse":
        nll = 0.5 * (total / K - (v2 if pairs else v1)).square().sum(-1)
    return _masked_mean(nll, n_val).cpu().numpy()


def _batch(data: FitData, ip: torch.Tensor, is_: torch.Tensor, eps: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A step's (x1, x2, xs, eps) of the packed splits from their indices and noise."""
    if data.bp:
        x1, x2 = _gather(data.x1, ip), _gather(data.x2, ip)
    else:   # no pairs: empty, and of fixed strides (a slice of xs has N-dependent ones: torch.compile
        x1 = x2 = data.xs.new_empty((data.xs.shape[0], 0, data.xs.shape[2]))   # would recompile per split)
    xs = _gather(data.xs, is_[:, :data.bs_used])
    eps = eps[:, : 2 * data.bp + data.bs_used] if data.bs_used < data.bs else eps
    return x1, x2, xs, eps


class _Loop:
    """The training loop of one batched fit: steps, epoch ends (validation, early stopping, the next
    epoch's minibatches) and compaction. ``act[j]`` is the split at packed position j
    (:mod:`pertvae_core.packing`)."""

    def __init__(self, model: PertVAE, cfg: FitConfig, data: FitData, batches: Minibatches,
                 compact: bool, diverged_check: bool = True) -> None:
        self.model, self.cfg, self.data, self.batches, self.compact = model, cfg, data, batches, compact
        self.train_step, self.opt = make_train_step(model, cfg, data.w_pairs, data.w_single)
        self.params = list(model.parameters())
        # the untrained state's validation (its fixed noise: no draw taken), the bar a fit must beat; not
        # for a fit of max_steps, which keeps its final state, not its best (the cost model's calibration
        # and FLOP count: one validation in a fit's 30-400 is left out of them)
        init_val = _validation_loss(model, data, cfg, data.n_val) if diverged_check else None
        self.stop = EarlyStopping(data.n_val, self.params, cfg, init_val)
        S, dev = len(data.n_val), data.xs.device
        self.act = np.arange(S)
        self.frz = np.zeros(S, dtype=bool)      # frozen, per packed position (changes at epoch ends only)
        self.active_t = torch.ones(S, dtype=torch.bool, device=dev)
        self.frozen_t = torch.zeros(S, 1, 1, dtype=torch.bool, device=dev)
        self.acc = torch.zeros(S, device=dev)   # training loss summed over the current epoch

    def run(self, max_steps: int | None, on_step: Callable[[int, PertVAE], None] | None) -> int:
        """Step until every split is frozen (or ``max_steps``); frozen splits keep their best state. Returns
        the number of steps."""
        t = 0
        while not self.stop.all_frozen:
            if max_steps is not None and t >= max_steps:
                break
            loss_s = self.train_step(*_batch(self.data, *self.batches.take(self.act, t)), self.active_t)
            if on_step is not None:
                on_step(t, self.model)
            self.acc += loss_s
            if self.frz.any():
                self.stop.hold_(self.params, self.frozen_t)
            t += 1
            due = ~self.frz & self.batches.epoch_ends(self.act, t)
            if due.any():
                self._end_epoch(due, t)
        return t

    def _end_epoch(self, due: np.ndarray, t: int) -> None:
        """The packed splits ``due`` ended an epoch at step t."""
        act = self.act
        val = _validation_loss(self.model, self.data, self.cfg, [self.data.n_val[s] for s in act])
        self.stop.update(act, due, val, self.acc.cpu().numpy(), self.params)
        self.acc = torch.where(torch.as_tensor(due, device=self.acc.device), torch.zeros_like(self.acc),
                               self.acc)
        frz = self.stop.frozen(act)
        for j in np.flatnonzero(due & ~frz):
            self.batches.refill(act[j], t)
        size = _repack_size(len(act), int((~frz).sum()), self.cfg.compile) if self.compact else len(act)
        if size < len(act):
            self._drop(frz, size)
            frz = self.stop.frozen(self.act)
        self.frz = frz
        self.frozen_t = torch.as_tensor(frz, device=self.acc.device)[:, None, None]
        self.active_t = ~self.frozen_t[:, 0, 0]

    def _drop(self, frz: np.ndarray, size: int) -> None:
        """Compaction to ``size`` packed splits: the running ones and the first frozen ones stay (frozen
        and masked, :func:`pertvae_core.packing.repack_size`), the other frozen splits leave the
        computation (best states set aside)."""
        stay = ~frz
        stay[np.flatnonzero(frz)[: size - int(stay.sum())]] = True
        gone = ~stay
        keep_np = np.flatnonzero(stay)
        keep = torch.as_tensor(keep_np, device=self.acc.device)
        self.stop.drop_(self.act, gone, keep)
        for s in self.act[gone]:
            self.batches.drop(s)
        _repack_(self.model, self.opt, keep, [self.data.w_pairs, self.data.w_single])
        self.data.select_(keep)
        self.acc = self.acc.index_select(0, keep)
        self.act = self.act[keep_np]

    def restore(self, final: bool) -> None:
        """Every split's best state into the model (the running splits' ``final`` state instead)."""
        self.stop.restore(self.model, self.act, [p.detach() for p in self.params] if final else None)


def _check_splits(splits: Sequence[SplitData], seeds: Sequence[int]) -> tuple[list[SplitData], int]:
    """The splits as a list and their number of genes; ValueError naming what is wrong."""
    splits = list(splits)
    if not splits:
        raise ValueError("fit: no splits given")
    if len(seeds) != len(splits):
        raise ValueError(f"fit: {len(seeds)} seeds for {len(splits)} splits")
    genes = {sp.genes for sp in splits}
    if len(genes) != 1:
        raise ValueError(f"fit: splits of one batched fit must have the same genes, got {sorted(genes)}")
    return splits, genes.pop()


def fit(splits: Sequence[SplitData], cfg: FitConfig, seeds: Sequence[int], pairs: bool = True,
        max_steps: int | None = None, on_step: Callable[[int, PertVAE], None] | None = None,
        compact: bool = True) -> FitState:
    """Train one batched PertVAE (``pairs``) or plain VAE over ``splits`` (one model per split).

    The plain VAE trains on single profiles only: xs_train and the measured profiles of the training pairs
    (:func:`pertvae_core.data.measured_profiles`) as singletons, with minibatches of batch_pairs +
    batch_singletons profiles; it is validated on those of the validation pairs. ``max_steps`` caps the number
    of optimizer steps (benchmarks; the final state is then kept, not the best). ``on_step(step, model)`` runs
    after each optimizer step (diagnostics, fault injection); the model then holds the splits still computing,
    in their original order. ``compact`` (default) drops stopped and failed splits from the computation
    (module docstring); ``compact=False`` keeps them, frozen and masked, to the end (for comparison). See the
    module docstring for the schedule, early stopping and seeding.
    """
    splits, G = _check_splits(splits, seeds)
    reuse_freed_memory()
    t0 = time.perf_counter()
    dev = resolve_device(cfg.device)
    gens = [seed_streams(int(sd)) for sd in seeds]
    precision = resolve_precision(cfg.precision, dev)
    model = PertVAE(G, cfg, [g["init"] for g in gens], pairs=pairs, precision=precision).to(dev)
    std = Standardizer.from_splits(splits, dev, cfg.standardize)
    data = prepare_data(splits, std, cfg, gens, pairs, dev)
    loop = _Loop(model, cfg, data, Minibatches(data, gens, cfg.latent, dev), compact,
                 diverged_check=max_steps is None)
    steps = loop.run(max_steps, on_step)
    loop.restore(final=max_steps is not None)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    rec = loop.stop.splits
    return FitState(model=model, std=std, gens=gens, epochs=[r.epochs for r in rec],
                    best_epoch=[r.best_epoch for r in rec], status=[r.status for r in rec],
                    reason=[r.reason for r in rec], fit_seconds=time.perf_counter() - t0, device=dev,
                    history=[r.history for r in rec], precision=precision,
                    steps_compiled=_steps_compiled(steps, loop.train_step.eager_steps()))


def _steps_compiled(steps: int, eager: int) -> bool | None:
    """FitState.steps_compiled of a fit of ``steps`` training steps, ``eager`` of them run eagerly."""
    return None if 0 < eager < steps else eager == 0 < steps
