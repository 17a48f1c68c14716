"""The task grid as plain data: model x drug x latent x block of CV splits, each fit with a fixed seed.

A fit's seed derives from (base_seed, model, drug, latent, repeat, fold) by SHA-256, never from the order of
execution, so the same config gives the same numbers on 1 worker or many, and in any task layout up to float
round-off (a block of S splits is one batched model; PertVAE's fits in a block differ from lone ones by ~1e-9
after an epoch).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.config import RunConfig
from harness.contenders import contender
from harness.shapes import POOLED  # the pooled pseudo-drug, defined beside the rows it pools


@dataclass(frozen=True)
class FitKey:
    """One fit: a cell of results[model, drug, latent, split]."""

    model: str
    drug: str
    latent: int
    repeat: int
    fold: int


@dataclass(frozen=True)
class Task:
    """One unit of work: a (model, drug, latent) and a block of (repeat, fold) splits fitted together.

    ``more_latents``: further latent sizes fitted on the same splits in the same task (a cheap contender's,
    see :func:`build_grid`): PCA's decomposition of a split then serves every latent size, where one task
    per latent would decompose each split once per latent on whichever worker it lands.
    """

    model: str
    drug: str
    latent: int
    splits: tuple[tuple[int, int], ...]
    more_latents: tuple[int, ...] = ()

    @property
    def latents(self) -> tuple[int, ...]:
        """Every latent size of the task, ``latent`` first."""
        return (self.latent, *self.more_latents)

    @property
    def n_fits(self) -> int:
        """Fits of the task: each latent size on each split."""
        return len(self.latents) * len(self.splits)

    def fit_keys(self) -> list[FitKey]:
        """The fits of this task, latent-major, then in split order."""
        return [FitKey(self.model, self.drug, lat, r, k) for lat in self.latents for r, k in self.splits]

    @property
    def key(self) -> str:
        """A readable, unique Dask key, e.g. ``pertvae-drugA-L10-r0f0-r0f1``. In a drug name, characters
        other than letters, digits, '.' and '_' become '_' and a short hash of the name is appended, so
        ``SN-38`` and ``SN_38`` get different keys."""
        blocks = "-".join(f"r{r}f{k}" for r, k in self.splits)
        if len(self.splits) > 4:
            blocks = f"r{self.splits[0][0]}f{self.splits[0][1]}..r{self.splits[-1][0]}f{self.splits[-1][1]}"
        drug = "".join(c if c.isalnum() or c in "._" else "_" for c in self.drug)
        if drug != self.drug:
            drug += "_" + hashlib.sha256(self.drug.encode()).hexdigest()[:6]
        return f"{self.model}-{drug}-L{self.latent_label}-{blocks}"

    @property
    def latent_label(self) -> str:
        """The latent sizes as keys and logs show them: ``10``, or ``2+5+10`` for several."""
        return "+".join(str(lat) for lat in self.latents)


def fit_seed(base_seed: int, key: FitKey) -> int:
    """A 63-bit seed from SHA-256 of (base_seed, model, drug, latent, repeat, fold)."""
    text = f"{int(base_seed)}/{key.model}/{key.drug}/{int(key.latent)}/{int(key.repeat)}/{int(key.fold)}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def all_splits(cfg: RunConfig) -> list[tuple[int, int]]:
    """Every (repeat, fold) in repeat-major order (split index = repeat * n_folds + fold)."""
    return [(r, k) for r in range(cfg.n_repeats) for k in range(cfg.n_folds)]


def _blocks(splits: Sequence[tuple[int, int]], size: int) -> Iterable[tuple[tuple[int, int], ...]]:
    for i in range(0, len(splits), size):
        yield tuple(splits[i:i + size])


def pooled(cfg: RunConfig, model: str) -> bool:
    """Whether ``model`` runs once on the POOLED pseudo-drug rather than per drug."""
    return cfg.figure2_scope == "pooled" and contender(model).figure2


def model_drugs(cfg: RunConfig, model: str, drug_names: Sequence[str]) -> list[str]:
    """The drugs (store coordinate values) ``model`` runs on: [POOLED] or the run's drugs."""
    return [POOLED] if pooled(cfg, model) else list(drug_names)


def split_drugs(cfg: RunConfig, drug_names: Sequence[str]) -> list[str]:
    """The store drugs some model is fitted on, so the ones the run splits (a Figure 2 run in the pooled
    scope fits on POOLED alone: its drugs' own splits are never used, and a drug too small for them must
    not stop it)."""
    fitted = {d for m in cfg.models for d in model_drugs(cfg, m, drug_names)}
    return [d for d in store_drugs(cfg, drug_names) if d in fitted]


def store_drugs(cfg: RunConfig, drug_names: Sequence[str]) -> list[str]:
    """The store's drug coordinate: the run's drugs, then POOLED when a model runs pooled."""
    return list(drug_names) + ([POOLED] if any(pooled(cfg, m) for m in cfg.models) else [])


def build_grid(cfg: RunConfig, drug_names: Sequence[str], splits_per_task: int | None = None) -> list[Task]:
    """All tasks of the run, model-major (in ``cfg.models``' order), then drug, latent and split block.

    ``splits_per_task`` defaults to ``cfg.resolved_splits_per_task()``; a cheap contender (closed form: PCA,
    the baselines) always takes a drug's splits and all its latent sizes in one task, so that a split's
    decomposition is computed once for every latent size (pertvae_core.baselines.principal_axes). Figure 2's
    models run on POOLED alone in the pooled scope.
    """
    size = splits_per_task if splits_per_task is not None else cfg.resolved_splits_per_task()
    if size < 1:
        raise ValueError(f"splits_per_task must be >= 1, got {size}")
    splits = all_splits(cfg)
    tasks: list[Task] = []
    for model in cfg.models:
        latents = [int(lat) for lat in cfg.latents_for(model)]
        if contender(model).cheap:
            tasks += [Task(model, drug, latents[0], tuple(splits), tuple(latents[1:]))
                      for drug in model_drugs(cfg, model, drug_names)]
            continue
        for drug in model_drugs(cfg, model, drug_names):
            for latent in latents:
                for b in _blocks(splits, size):
                    tasks.append(Task(model, drug, latent, b))
    return tasks


def remaining(tasks: Sequence[Task], done: set[FitKey]) -> list[Task]:
    """Tasks with their done fits removed (tasks left with no fits are dropped). The latent sizes of a
    task that have the same splits left stay in one task."""
    out: list[Task] = []
    for t in tasks:
        by_left: dict[tuple[tuple[int, int], ...], list[int]] = {}
        for lat in t.latents:
            left = tuple(s for s in t.splits if FitKey(t.model, t.drug, lat, *s) not in done)
            if left:
                by_left.setdefault(left, []).append(lat)
        out += [Task(t.model, t.drug, lats[0], left, tuple(lats[1:])) for left, lats in by_left.items()]
    return out
