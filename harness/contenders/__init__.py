"""The registry of grid models (contenders): name -> :class:`~harness.contenders.base.Contender`.

The built-in ones are PertVAE, the VAE, PCA and the baselines (one module each here; :data:`BUILT_IN`, the
default grid), and the drug-response models Dr.VAE and its baselines (on x1, PCA(x1) and PertVAE's latents;
:data:`RESPONSE_MODELS`). A user's
own model is a Contender subclass registered with :func:`register` (in-process, e.g. a script or a test,
before the run starts) or through the entry point group ``pertvae_bench.contenders`` of its package
(``[project.entry-points."pertvae_bench.contenders"]`` ``mymodel = "pkg.module:MyContender"``), loaded
when this module is imported, as ``--method`` plug-ins are found (pertvae_core.methods). A registered model
gets ``--models NAME`` and ``--latents-NAME``; its tasks, seeds, store slots, cost estimate and report rows
follow from its attributes.

Imports flow one way: harness.config, grid, cost, tasks and the report import this package; it imports
pertvae_core and, of the harness, only harness.task_data and harness.shapes (a task's data and a split's
rows, which import neither the config nor this package).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence

from harness.contenders.base import Contender, fit_config
from harness.contenders.baselines import Baselines
from harness.contenders.drvae import DrVAE, DrVAEContinuous
from harness.contenders.pca import PCA
from harness.contenders.pertvae import PertVAE
from harness.contenders.response_baselines import ResponseBaselines, ResponseRegression
from harness.contenders.response_pertvae import ResponsePertVAE
from harness.contenders.vae import VAE
from pertvae_core.isolation import exception_text
from pertvae_core.methods import import_object

__all__ = ["Contender", "ContenderError", "ENTRY_POINT_GROUP", "REGISTRY", "BUILT_IN", "LOAD_ERRORS",
           "RESPONSE_MODELS", "register", "contender", "model_methods", "built_in_methods", "figure2_models",
           "reference_model", "user_method_host", "fit_config", "run_metrics", "paper_methods"]

ENTRY_POINT_GROUP = "pertvae_bench.contenders"
REGISTRY: dict[str, Contender] = {}
# Entry point name -> why it could not be loaded (reported when a run names it; harness.config).
LOAD_ERRORS: dict[str, str] = {}


class ContenderError(ValueError):
    """A contender that cannot be registered; the message names it and what to change."""


def register(contender: Contender | type[Contender]) -> Contender | type[Contender]:
    """Add ``contender`` (an instance or a Contender subclass) to :data:`REGISTRY` and return it unchanged
    (so it also works as a class decorator). Registering the same class again is a no-op."""
    obj = contender() if isinstance(contender, type) else contender
    if not isinstance(obj, Contender):
        raise ContenderError(f"contender {contender!r}: not a harness.contenders.base.Contender")
    name = obj.name
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ContenderError(f"contender {type(obj).__name__}: name {name!r} must be a lowercase identifier "
                             "(it becomes --models NAME and --latents-NAME)")
    old = REGISTRY.get(name)
    if old is not None:
        if type(old) is type(obj):
            return contender
        raise ContenderError(f"contender {name!r}: already registered by {type(old).__module__}."
                             f"{type(old).__name__}")
    taken = {m: c.name for c in REGISTRY.values() for m in c.stored_methods}
    clash = sorted(m for m in obj.stored_methods if m in taken)
    if clash:
        raise ContenderError(f"contender {name!r}: method(s) {clash} already scored by contender(s) "
                             f"{sorted({taken[m] for m in clash})}; give its methods distinct names")
    if obj.hosts_user_methods and user_method_host() is not None:
        raise ContenderError(f"contender {name!r}: --method plug-ins already run in "
                             f"{user_method_host().name!r}'s tasks")
    if not obj.default_latents or any(int(x) < 1 for x in obj.default_latents):
        raise ContenderError(f"contender {name!r}: default_latents must be positive sizes")
    REGISTRY[name] = obj
    return contender


def contender(name: str) -> Contender:
    """The registered contender ``name``; ContenderError naming the known ones otherwise."""
    if name not in REGISTRY:
        why = f" ({LOAD_ERRORS[name]})" if name in LOAD_ERRORS else ""
        raise ContenderError(f"unknown model {name!r}{why}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def user_method_host() -> Contender | None:
    """The contender whose tasks run the run's own ``--method`` plug-ins."""
    return next((c for c in REGISTRY.values() if c.hosts_user_methods), None)


def reference_model() -> str | None:
    """The model whose fits hold Table 1 (its methods include pertvae_core.methods.REFERENCE)."""
    return next((c.name for c in REGISTRY.values() if c.table1), None)


def figure2_models() -> list[Contender]:
    """Figure 2's reconstruction models, in registry order."""
    return [c for c in REGISTRY.values() if c.figure2]


def built_in_methods() -> tuple[str, ...]:
    """Every method the registered contenders score (the benchmark's and the store-only ones of
    ``paper_scores``), in registry (= report) order."""
    return tuple(m for c in REGISTRY.values() for m in c.stored_methods)


def model_methods(methods: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Model -> the methods it may produce, for a store whose scores have ``methods``: a name no contender
    scores is the run's own ``--method`` or ``--response-method``, which run in :func:`user_method_host`'s
    tasks and in those of the contenders with a ``response_head``. A store's scores tell which: a plug-in
    has scores only where it ran (the perturbation metrics, or its head's)."""
    known = set(built_in_methods())
    own = tuple(m for m in methods if m not in known)
    host = user_method_host()
    return {c.name: c.methods + (own if c is host or c.response_head else ()) for c in REGISTRY.values()}


def run_metrics(models: Sequence[str]) -> tuple[str, ...]:
    """The store's ``metric`` coordinate for a run of ``models``: the ordered union of their metrics, then
    of the metrics their ``paper_scores`` add (a run of the perturbation models has
    pertvae_core.evaluation.METRICS and RHO_REC; added last, so that a store of the layout before can be
    converted by appending them: harness.store)."""
    own = [m for name in models for m in contender(name).metrics]
    paper = [k for name in models for _, k in contender(name).paper_scores.values()]
    return tuple(dict.fromkeys([*own, *paper]))


def paper_methods(models: Sequence[str]) -> tuple[str, ...]:
    """The store-only methods of ``models``' ``paper_scores`` (Figure 2's reconstructions), in model
    order: the store's ``method`` coordinate ends with them (harness.prepare.resolve_methods)."""
    return tuple(dict.fromkeys(m for name in models for m in contender(name).stored_methods
                               if m not in contender(name).methods))


def _load_entry_points() -> None:
    """Register every contender of the entry point group; one that fails is kept in LOAD_ERRORS. Whatever
    its import or constructor does (any exception, sys.exit) is its failure: an installed package must not
    break every command of the harness, those that do not name it included."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {ep.value!r} of {ENTRY_POINT_GROUP!r}"
        try:
            obj = import_object(ep.name, ep.value, kind="contender")
            register(obj)
        except (ValueError, TypeError) as e:
            LOAD_ERRORS[ep.name] = f"{where}: {e}"
        except SystemExit as e:
            LOAD_ERRORS[ep.name] = f"{where}: loading it called sys.exit({e.code!r})"
        except Exception as e:  # noqa: BLE001 - e.g. its constructor's own error
            LOAD_ERRORS[ep.name] = f"{where}: loading it failed: {exception_text(e)}"


for _c in (PertVAE, VAE, PCA, Baselines):
    register(_c)
# The default grid (the perturbation study); the drug-response models are built in too but run when asked
# for (--models, the drvae presets), so a run without them keeps its grid and store coordinates.
BUILT_IN: tuple[str, ...] = tuple(REGISTRY)
for _c in (DrVAE, ResponseBaselines, ResponsePertVAE, DrVAEContinuous, ResponseRegression):
    register(_c)
RESPONSE_MODELS: tuple[str, ...] = tuple(m for m in REGISTRY if m not in BUILT_IN)
_load_entry_points()
