"""Early stopping of S batched fits: each split's own record (best loss, best epoch, patience counter,
status) and the best states of all splits, kept beside the model's stacked parameters.

The rules (paper Section 4; :mod:`pertvae_core.train`): at the end of each of its epochs a split is
validated; a lower validation loss at or after ``min_epochs`` is a new best (epochs before are a burn-in,
never selected); ``patience`` epochs without one (and at least ``min_epochs``) stop it, ``max_epochs`` finish
it, a non-finite training or validation loss fails it, and so does, when it stops or finishes, a best
validation loss over :data:`DIVERGED_RATIO` times its untrained state's (``init_val``, validated with the
same fixed noise before training): a fit that diverged to large but finite values (lr 10 on the demo
preset: mse_z ~1e18) was scored. Scale-free, with a wide margin: ordinary fits can end just above their
untrained loss (2 of a tiny grid's 24 6-epoch fits: 1.007x, 1.025x); diverged ones far above it (lr 10:
6e12x to 3e20x; lr 1: 2.5x to 4e6x, where the 2 of 8 under 10x pass; tests/pertvae_core's random splits).
A split without validation rows keeps its latest state as its best and trains ``max_epochs``. A stopped,
finished or failed split is *frozen*: it takes no further part, and its best state is what
:meth:`EarlyStopping.restore` puts back.

Best states follow the packed layout of the training loop (:mod:`pertvae_core.packing`): position j of each
best-state tensor belongs to split ``act[j]``; a split dropped from the computation leaves its best state
in :attr:`EarlyStopping.dropped`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from pertvae_core.config import FitConfig
from pertvae_core.model import PertVAE
from pertvae_core.packing import unpack

__all__ = ["SplitStopping", "EarlyStopping", "DIVERGED", "DIVERGED_RATIO", "diverged", "worse_than_untrained"]

DIVERGED = "the fit diverged"   # in every such reason: harness.run tells these from failures a rerun may fix
DIVERGED_RATIO = 10.0   # a best validation loss over this multiple of the untrained one: diverged (docstring)


def diverged(what: str, epoch: int) -> str:
    """The reason of a split failed by a non-finite ``what`` ("training" | "validation") loss. Fits are
    seeded, so the same settings diverge again: the reason names what to change, not a rerun."""
    return (f"non-finite {what} loss in epoch {epoch}: {DIVERGED}; try a smaller learning rate (lr), "
            "the same settings diverge again")


def worse_than_untrained(best: float, init: float, epoch: int) -> str:
    """The reason of a split whose best validation loss ``best`` (at ``epoch``) is over
    :data:`DIVERGED_RATIO` times the untrained state's ``init``: training made it far worse."""
    return (f"best validation loss {best:.3g} (epoch {epoch}) is over {DIVERGED_RATIO:g} times the untrained "
            f"model's {init:.3g}: {DIVERGED}; try a smaller learning rate (lr), the same settings diverge "
            "again")


@dataclass
class SplitStopping:
    """One split's early-stopping record; :meth:`update` at the end of each of its epochs."""

    n_val: int            # validation rows: 0 means no early stopping (the last state is the best)
    patience: int
    min_epochs: int
    max_epochs: int
    init_val: float = np.inf   # the untrained state's validation loss (inf, or <= 0: no such check)
    epochs: int = 0
    best_epoch: int = 0
    since_best: int = 0   # epochs since the best one (the patience counter)
    best_val: float = np.inf
    frozen: bool = False
    status: str = "done"
    reason: str = ""
    history: list[float] = field(default_factory=list)  # validation loss per epoch

    def update(self, train_loss: float, val_loss: float) -> bool:
        """Record an epoch ending with these losses (training: summed over the epoch's steps); returns
        whether it is the new best (its state is to be kept). May freeze the split."""
        self.epochs += 1
        self.history.append(float(val_loss))
        if not np.isfinite(train_loss) or (self.n_val and not np.isfinite(val_loss)):
            what = "training" if not np.isfinite(train_loss) else "validation"
            self.status, self.reason = "failed", diverged(what, self.epochs)
            self.frozen = True
            return False
        improved = self.n_val == 0 or (val_loss < self.best_val and self.epochs >= self.min_epochs)
        if improved:
            self.best_val = float(val_loss) if self.n_val else np.inf
            self.since_best, self.best_epoch = 0, self.epochs
        else:
            self.since_best += 1
        if (self.since_best >= self.patience and self.epochs >= self.min_epochs) \
                or self.epochs >= self.max_epochs:
            self.frozen = True
            if self.n_val and 0 < self.init_val < np.inf and self.best_val > DIVERGED_RATIO * self.init_val:
                self.status = "failed"
                self.reason = worse_than_untrained(self.best_val, self.init_val, self.best_epoch)
        return improved


class EarlyStopping:
    """The S splits' records and their best states (packed like the model's parameters)."""

    def __init__(self, n_val: Sequence[int], params: Sequence[torch.Tensor], cfg: FitConfig,
                 init_val: Sequence[float] | None = None) -> None:
        init = [np.inf] * len(n_val) if init_val is None else init_val
        self.splits = [SplitStopping(int(n), cfg.patience, cfg.min_epochs, cfg.max_epochs, float(v))
                       for n, v in zip(n_val, init, strict=True)]
        self.best = [p.detach().clone() for p in params]
        self.dropped: dict[int, list[torch.Tensor]] = {}

    def frozen(self, act: np.ndarray) -> np.ndarray:
        """Whether each split of ``act`` (split ids) is frozen."""
        return np.array([self.splits[s].frozen for s in act], dtype=bool)

    @property
    def all_frozen(self) -> bool:
        return all(sp.frozen for sp in self.splits)

    @torch.no_grad()
    def update(self, act: np.ndarray, due: np.ndarray, val: np.ndarray, train_loss: np.ndarray,
               params: Sequence[torch.Tensor]) -> None:
        """The packed splits ``act[due]`` ended an epoch with losses ``val``/``train_loss`` (per packed
        position): update their records and keep the states that improved."""
        improved = np.zeros(len(act), dtype=bool)
        for j in np.flatnonzero(due):
            improved[j] = self.splits[act[j]].update(train_loss[j], val[j])
        if improved.any():
            imp = torch.as_tensor(improved, device=self.best[0].device)[:, None, None]
            for p, b in zip(params, self.best, strict=True):
                b.copy_(torch.where(imp, p, b))

    @torch.no_grad()
    def hold_(self, params: Sequence[torch.Tensor], frozen_t: torch.Tensor) -> None:
        """Reset the frozen packed positions (``frozen_t`` [S_packed, 1, 1]) of ``params`` to their best."""
        for p, b in zip(params, self.best, strict=True):
            p.copy_(torch.where(frozen_t, b, p))

    def drop_(self, act: np.ndarray, frz: np.ndarray, keep: torch.Tensor) -> None:
        """Compaction: set aside the best states of packed positions ``frz``; keep those of ``keep``."""
        for j in np.flatnonzero(frz):
            self.dropped[int(act[j])] = [b[j].clone() for b in self.best]
        self.best = [b.index_select(0, keep) for b in self.best]

    @torch.no_grad()
    def restore(self, model: PertVAE, act: np.ndarray, current: Sequence[torch.Tensor] | None = None) -> None:
        """Put every split's best state (or, for the packed splits ``act``, ``current``) into ``model``,
        all splits in their original order."""
        packed = self.best if current is None else current
        model.set_stacked_(unpack(packed, act, self.dropped, len(self.splits)))
