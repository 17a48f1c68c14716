"""What a grid model (a *contender*) is to the harness: the one shape every model of the grid has.

A contender is a named way of fitting and scoring one task's splits. The harness never names one: the grid,
the workers (harness.tasks), the cost model (harness.cost), the config and the report ask a contender for
its facts and its work. Adding a model is one module with one subclass of :class:`Contender` and one
:func:`harness.contenders.register` line (or an entry point, see harness.contenders).

This module imports of the harness only what sits below it (harness.task_data and harness.shapes: the
config, grid and cost model import it), so its hooks take the run's config (harness.config.RunConfig) and a
split's shape (harness.shapes.SplitShape) as values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from harness.task_data import perturbation_data
from pertvae_core.evaluation import METRICS

if TYPE_CHECKING:
    from harness.config import RunConfig
    from harness.shapes import SplitShape
    from pertvae_core.config import FitConfig
    from pertvae_core.data import SplitData

__all__ = ["Contender", "fit_config"]


def fit_config(cfg: RunConfig, latent: int) -> FitConfig:
    """pertvae_core FitConfig for the run ``cfg`` at ``latent``."""
    from pertvae_core.config import FitConfig

    return FitConfig(latent=int(latent), **cfg.fit_kwargs())


class Contender:
    """One grid model. Subclasses set the class attributes and implement :meth:`run`.

    - ``name``: the model's name in the config (``--models``), the store's ``model`` coordinate and the seeds.
    - ``cheap``: closed form (no training): one task takes all of a drug's splits, and the cost model times
      one evaluation (:meth:`calibration_run`) instead of optimizer steps.
    - ``figure2``: one of Figure 2's reconstruction models (with ``figure2_scope = "pooled"`` it runs on the
      pooled pseudo-drug, harness.grid.POOLED); ``figure2_label`` and ``figure2_color`` draw it there.
    - ``table1``: its fits hold the paper's Table 1 (rho_rec_pert vs rho_pred_pert of the same fits).
    - ``methods``: the methods it scores (``score[method, metric]``), in report order: the benchmark's.
    - ``paper_scores``: the paper's per-fit values its :meth:`run` rows give (``rho_rec_pert``,
      ``rho_pred_pert``, ``rho_rec``: pertvae_core.api's keys) -> the (method, metric) of ``score`` that
      holds each. A reconstruction of x1 taken as the prediction of x2 is a method of its own (PertVAE's
      ``pertvae_rec``, Figure 2's ``vae`` and ``pca``), so rho_rec_pert is that method's rho_pred_pert and
      rho_rec its :data:`pertvae_core.evaluation.RHO_REC`. A method named here but not in ``methods`` is in
      the store only (Figure 2's), not in the benchmark.
    - ``metrics``: the metrics its scores have (the store's ``metric`` coordinate is the ordered union over
      the run's contenders); default the perturbation metrics (pertvae_core.evaluation.METRICS).
    - ``hosts_user_methods``: the run's own ``--method`` plug-ins run in its tasks (one contender does).
    - ``response_head``: the head ("binary" / "continuous") whose ``--response-method`` plug-ins run in its
      tasks, scored on that head's metrics ("": none).
    - ``default_latents``: its latent sizes when neither the preset nor the config gives them.
    - ``fit_pairs``: a model trained on pairs (True) or single profiles (False), which the cost model
      calibrates with short fits (:meth:`calibration_fit`); None when it is not.
    - ``takes_precision``: its trained models' matrix products follow ``--precision``; False where they are
      always fp32 (Dr.VAE's), so that each fit records the products it computed (harness.tasks.products_of).
    - ``compiles``: its trained models' steps follow ``--compile`` (torch.compile graphs the cost model
      counts: harness.cost.compiled_graphs); False where they always train eagerly (Dr.VAE's).
    - ``epoch_fraction`` and ``measured_epochs`` (preset -> mean epochs at that preset's schedule): the cost
      model's prior for the epochs to early stopping of a trained model (harness.cost); 0 = not trained.
    - ``legend``: one line saying what it is, for ``--help`` and the report.
    - ``method_legends``: method -> what it predicts, in plain words (benchmark.md's legend); a method
      without a line is described by ``legend``.
    """

    name: ClassVar[str] = ""
    cheap: ClassVar[bool] = False
    figure2: ClassVar[bool] = False
    figure2_label: ClassVar[str] = ""
    figure2_color: ClassVar[str] = ""
    table1: ClassVar[bool] = False
    methods: ClassVar[tuple[str, ...]] = ()
    paper_scores: ClassVar[Mapping[str, tuple[str, str]]] = {}
    metrics: ClassVar[tuple[str, ...]] = METRICS
    hosts_user_methods: ClassVar[bool] = False
    response_head: ClassVar[str] = ""
    default_latents: ClassVar[tuple[int, ...]] = (10,)
    fit_pairs: ClassVar[bool | None] = None
    takes_precision: ClassVar[bool] = True
    compiles: ClassVar[bool] = True
    epoch_fraction: ClassVar[float] = 0.0
    measured_epochs: ClassVar[Mapping[str, float]] = {}
    legend: ClassVar[str] = ""
    method_legends: ClassVar[Mapping[str, str]] = {}

    @property
    def trained(self) -> bool:
        """Whether its fits train for epochs (the cost model assumes epochs to early stopping for them)."""
        return self.epoch_fraction > 0

    @property
    def stored_methods(self) -> tuple[str, ...]:
        """Its methods in the store's ``method`` coordinate: ``methods``, then those only ``paper_scores``
        names (kept for the paper's figures, not benchmarked)."""
        extra = (m for m, _ in self.paper_scores.values() if m not in self.methods)
        return tuple(dict.fromkeys((*self.methods, *extra)))

    @property
    def timed_by_fit(self) -> bool:
        """Whether the cost model times it by short pertvae_core.train.fit runs (per step, per epoch); any
        other contender is timed by one :meth:`calibration_run` per fit."""
        return not self.cheap and self.fit_pairs is not None

    def run(self, data: Sequence[SplitData], latent: int, seeds: Sequence[int], cfg: RunConfig
            ) -> list[dict]:
        """Fit and evaluate ``data`` (a task's splits) at ``latent``, split s with ``seeds[s]``; one result
        dict per split (pertvae_core.api's keys: ``status``, ``reason``, its values, ``scores`` ...)."""
        raise NotImplementedError(f"contender {self.name!r} does not implement run()")

    def run_latents(self, data: Sequence[SplitData], latents: Sequence[int],
                    seeds: Mapping[int, Sequence[int]], cfg: RunConfig) -> dict[int, list[dict]]:
        """:meth:`run` at each of ``latents`` (a task of several latent sizes, harness.grid.build_grid):
        latent -> one result dict per split of ``data``, split s with ``seeds[latent][s]``. A contender
        whose fits at different latent sizes share work (PCA: one decomposition per split) overrides it."""
        return {int(lat): self.run(data, int(lat), seeds[lat], cfg) for lat in latents}

    def task_data(self, dd: Any, cube_path: str, split_keys: Sequence[tuple[int, int]], cfg: RunConfig
                  ) -> list:
        """What :meth:`run` gets for a task: one item per (repeat, fold) of ``split_keys`` of the drug's
        data ``dd`` (datasets.pairs.DrugData) in the cube at ``cube_path``. Default: the perturbation
        splits (pertvae_core SplitData, harness.task_data.perturbation_data)."""
        return perturbation_data(dd, split_keys, cfg)

    def steps_per_epoch(self, sp: SplitShape, cfg: RunConfig) -> int:
        """Optimizer steps of one epoch of a split shaped like ``sp`` (0: not trained)."""
        return 0

    def calibration_fit(self, data: Sequence[SplitData], fc: FitConfig, cfg: RunConfig, max_steps: int,
                        on_step: Callable[[int, Any], None]) -> Callable[[], Any]:
        """A short fit the cost model times (harness.calibrate): ``data`` (random splits) as one batched
        model at ``fc`` (harness.calibrate.point_fit_config), ``max_steps`` steps, ``on_step`` after each;
        returns the fitted model's evaluation, to be timed. Default: pertvae_core.train.fit on pairs or
        single profiles (``fit_pairs``), evaluated as pertvae_core.api.predict (test pairs, test cells)."""
        from pertvae_core.api import predict
        from pertvae_core.evaluation import TestCells
        from pertvae_core.train import fit

        pairs = bool(self.fit_pairs)
        state = fit(data, fc, list(range(len(data))), pairs=pairs, max_steps=max_steps, on_step=on_step)

        def evaluate() -> None:
            predict(state, [sp.x1_test for sp in data], fc.mc_samples,
                    targets=[sp.x2_test if pairs else sp.x1_test for sp in data])
            if pairs:
                predict(state, [TestCells.from_split(sp).x1 for sp in data], fc.mc_samples)

        return evaluate

    def calibration_run(self, data: Sequence[SplitData], latent: int, cfg: RunConfig) -> Any:
        """What the cost model times for a cheap contender: one evaluation of ``data``."""
        return self.run(data, latent, [0] * len(data), cfg)

    def calibration_run_latents(self, data: Sequence[SplitData], latents: Sequence[int], cfg: RunConfig
                                ) -> Any:
        """What the cost model times for a cheap contender's task, which holds all its latent sizes
        (harness.grid.build_grid): :meth:`calibration_run` at each. A contender whose latent sizes share
        work (PCA: one decomposition per split) times them together, as its task runs them."""
        return [self.calibration_run(data, int(lat), cfg) for lat in latents]

    def user_methods(self, cfg: RunConfig) -> int:
        """How many of the run's own ``--method`` (or ``--response-method``) plug-ins each of its fits runs,
        each in its own process (at most: a response method runs only where its head is hosted)."""
        return (len(cfg.method) if self.hosts_user_methods else 0) + \
            (len(cfg.response_method) if self.response_head else 0)

    def __repr__(self) -> str:
        return f"<contender {self.name}>"

