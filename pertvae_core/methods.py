"""The one shape every perturbation-prediction method has, and the methods the benchmark scores.

A method is fitted on one split's training data (its validation pairs may select settings; it never sees
the test cell lines) and then predicts x2 for any x1:

    method.fit(split: SplitData) -> method
    method.predict(x1: np.ndarray [n, G]) -> x2_hat [n, G]      (raw gene space, as the data)

:func:`pertvae_core.evaluation.score_method` scores any such method with the same metrics on the same test
cell lines. PertVAE keeps its batched fit over S splits behind this interface
(:func:`pertvae_core.api.fit_pertvae_methods`); ``pertvae_rec`` is PertVAE's reconstruction of x1 used as a
prediction of x2 (the paper's comparator).

A user's own method is loaded by :func:`load_method` from an import path ``"pkg.module:ClassName"`` or from
a name registered under the entry point group ``pertvae_bench.methods`` (``[project.entry-points.
"pertvae_bench.methods"]`` in its package's pyproject.toml). Optional hooks: a ``name`` attribute (the
method's name in results; else the entry point's name or the class's name), and constructor keywords
``latent`` and/or ``seed``, passed when the constructor names them.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pertvae_core.baselines import BASELINES
from pertvae_core.data import SplitData

__all__ = ["Method", "METHODS", "REFERENCE", "PERTVAE_METHODS", "ENTRY_POINT_GROUP", "MethodLoadError",
           "MethodFactory", "import_object", "load_method", "registered_methods", "resolve_spec"]

ENTRY_POINT_GROUP = "pertvae_bench.methods"


@runtime_checkable
class Method(Protocol):
    """Fit on a split's training data, predict x2 for test x1."""

    def fit(self, split: SplitData) -> Method: ...

    def predict(self, x1: np.ndarray) -> np.ndarray: ...


# PertVAE's prediction: the method every other is compared with (harness.benchmark).
REFERENCE = "pertvae"
# PertVAE's two methods: its prediction and its reconstruction of x1 (pertvae_core.api.PertVAEMethod).
PERTVAE_METHODS: tuple[str, ...] = (REFERENCE, "pertvae_rec")
# Every built-in method, in report order: PertVAE's, then the perturbation baselines. Which grid model
# scores which is the harness's business (harness.contenders).
METHODS: tuple[str, ...] = PERTVAE_METHODS + tuple(BASELINES)


class MethodLoadError(ValueError):
    """A method spec that does not resolve to a method; the message names the spec."""


class MethodFactory:
    """Makes new unfitted instances of a loaded method: ``factory(latent=..., seed=...)``.

    ``name``: the method's name in results; ``spec``: what was loaded. ``latent`` and ``seed`` reach the
    constructor only where it names them as parameters.
    """

    def __init__(self, target: Callable[..., Any], name: str, spec: str) -> None:
        self.target, self.name, self.spec = target, name, spec
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            params = {}
        self.accepts = tuple(k for k in ("latent", "seed") if k in params)

    def __call__(self, latent: int | None = None, seed: int | None = None) -> Method:
        given = {"latent": latent, "seed": seed}
        kwargs = {k: given[k] for k in self.accepts if given[k] is not None}
        obj = self.target(**kwargs)
        _check_method(obj, self.spec)
        return obj

    def __repr__(self) -> str:
        return f"MethodFactory({self.spec!r}, name={self.name!r})"


def _check_method(obj: Any, spec: str) -> None:
    lacking = [f"{m}()" for m in ("fit", "predict") if not callable(getattr(obj, m, None))]
    if lacking:
        what = obj.__name__ if inspect.isclass(obj) else type(obj).__name__
        raise MethodLoadError(f"method {spec!r}: {what} lacks {' and '.join(lacking)}; a method needs "
                              "fit(split) -> self and predict(x1) -> x2_hat")


def registered_methods() -> dict[str, str]:
    """Entry point name -> its import path, for every method registered under ``pertvae_bench.methods``."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def import_object(spec: str, path: str, kind: str = "method") -> Any:
    """The object at ``path`` (``"package.module:Attr.sub"``) for the ``kind`` named ``spec``;
    MethodLoadError (a ValueError naming ``kind`` and ``spec``) when the module or attribute is missing or
    the import fails."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise MethodLoadError(f"{kind} {spec!r}: expected 'package.module:ClassName'")
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise MethodLoadError(f"{kind} {spec!r}: no module named {e.name!r} (is its package installed, "
                                  "or its folder on PYTHONPATH?)") from None
        raise MethodLoadError(f"{kind} {spec!r}: importing {module_name!r} failed: {e}") from None
    except Exception as e:
        raise MethodLoadError(f"{kind} {spec!r}: importing {module_name!r} failed: "
                              f"{type(e).__name__}: {e}") from None
    where = module_name
    for part in attr.split("."):
        if not hasattr(obj, part):
            close = difflib.get_close_matches(part, [n for n in dir(obj) if not n.startswith("_")], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise MethodLoadError(f"{kind} {spec!r}: {where!r} has no attribute {part!r}{hint}")
        obj, where = getattr(obj, part), f"{where}.{part}"
    return obj


def load_method(spec: str) -> MethodFactory:
    """The factory of a method given as ``"package.module:ClassName"`` (a class, or a function returning
    a method) or as a name registered under the entry point group ``pertvae_bench.methods``.

    Raises :class:`MethodLoadError` (a ValueError naming the spec) when the module or attribute is missing,
    the import fails, or the object is not a method (no ``fit``/``predict``).
    """
    obj, name, spec = resolve_spec(spec, ENTRY_POINT_GROUP, "method")
    if inspect.isclass(obj):
        _check_method(obj, spec)
    return MethodFactory(obj, name, spec)


def resolve_spec(spec: str, group: str, kind: str) -> tuple[Any, str, str]:
    """(object, its name in results, the stripped spec) of a plug-in ``kind`` ("method", "response
    method") given as ``"package.module:Attr"`` or as a name of the entry point ``group``. The name: the
    object's ``name`` attribute, else the entry point's name, else the class's or function's name.
    MethodLoadError naming the spec when it does not resolve or is neither a class nor a function."""
    if not isinstance(spec, str) or not spec.strip():
        raise MethodLoadError(f"{kind} {spec!r}: expected 'package.module:ClassName' or a registered name")
    spec = spec.strip()
    _refuse_file_path(spec, kind)
    if ":" in spec:
        obj, name = import_object(spec, spec, kind), None
    else:
        obj, name = import_object(spec, _entry_point(spec, group, kind), kind), spec
    if not callable(obj):
        raise MethodLoadError(f"{kind} {spec!r}: {type(obj).__name__} object is neither a class nor a "
                              f"function returning a {kind}")
    own = getattr(obj, "name", None)
    own = own if isinstance(own, str) and own else None
    return obj, own or name or getattr(obj, "__name__", spec), spec


def _refuse_file_path(spec: str, kind: str) -> None:
    """MethodLoadError saying how to name a method kept in a file, for a spec that is a file's path
    (``my/knn.py``, ``knn.py:KNN``): one file is how a user writes a method, and its path is what comes to
    mind, but the workers import it by module name (else: "no module named 'my/knn'", or the advice "an
    import path needs a colon: my/knn:py")."""
    path, _, attr = spec.partition(":")
    file = Path(path)
    if "/" not in path and not (path.endswith(".py") and file.is_file()):   # a module 'pkg.py' may exist
        return
    raise MethodLoadError(f"{kind} {spec!r}: a file's path; give its import path instead: put "
                          f"{file.resolve().parent} on PYTHONPATH and name it "
                          f"{file.name.removesuffix('.py')}:{attr or 'ClassName'}")


def _entry_point(spec: str, group: str, kind: str) -> str:
    """The import path registered as ``spec`` in the entry point ``group``; MethodLoadError with the
    closest registered name (or the colon an import path needs) otherwise."""
    eps = {(ep.value, ep.dist.name if ep.dist else "?")
           for ep in importlib.metadata.entry_points(group=group) if ep.name == spec}
    if not eps:
        known = sorted(ep.name for ep in importlib.metadata.entry_points(group=group))
        close = difflib.get_close_matches(spec, known, n=1)
        if close:
            hint = f"did you mean {close[0]!r}?"
        elif "." in spec:
            mod, _, cls = spec.rpartition(".")
            hint = f"an import path needs a colon: {mod}:{cls}"
        else:
            hint = f"registered: {', '.join(known)}" if known else f"no {kind}s are registered"
        raise MethodLoadError(f"{kind} {spec!r}: not 'package.module:ClassName' nor a name in the entry "
                              f"point group {group!r}; {hint}")
    if len(eps) > 1:
        raise MethodLoadError(f"{kind} {spec!r}: registered more than once in {group!r} "
                              f"({', '.join(f'{v} by {d}' for v, d in sorted(eps))}); uninstall one")
    return eps.pop()[0]
