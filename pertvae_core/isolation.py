"""What a method receives and must give back, so that no method can change the benchmark.

A method (built-in or a user's plug-in) is fitted on a private, read-only copy of the split
(:func:`readonly_split`: every array copied and marked ``writeable=False``, so an in-place edit such as
``x1 -= x1.mean(0)`` raises instead of changing the data every other method is scored on; the test cell
lines' arrays NaN, so it cannot fit on the answers) and predicts from read-only inputs. Whatever it does
wrong fails that method alone (:class:`MethodFailed`, whose message is the reason stored for its fit):
any exception, ``sys.exit``, a fit that does not return a method, and a prediction that is not a
real-valued array of the input's shape or has NaN/inf or values beyond float32's range
(:func:`check_prediction`).
Predictions are copied, never scored as the method's own object.

Light on purpose (numpy and pertvae_core.data only): harness/sandbox.py runs the same code in a fresh
process for each plug-in fit.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pertvae_core.data import TEST_EXTRAS, TEST_FIELDS, SplitData

__all__ = ["MethodFailed", "readonly_split", "frozen", "check_numbers", "check_prediction", "fitted_method",
           "fit_predict", "describe", "exception_text", "methods_failure"]

FLOAT32_MAX = float(np.finfo(np.float32).max)   # a prediction or score beyond it fails its method
# Said with a prediction's NaN: a fit that takes a statistic over every profile, x1_test included, learns NaN
NAN_HINT = ("; in fit() data.x1_test and data.x2_test are NaN (the test cell lines are hidden): does the fit "
            "use them, or diverge?")
READ_ONLY = ("assignment destination is read-only", "output array is read-only", "is read-only")
# In a process of the method's own (harness.sandbox, set there), which no terminal's Ctrl-C reaches, a
# KeyboardInterrupt is the method's own raise, a failure like any other
OWN_PROCESS = False


def methods_failure(e: BaseException) -> bool:
    """Whether ``e``, raised inside a method, fails that method: anything (SystemExit and exceptions that
    derive from BaseException included) but a KeyboardInterrupt in the run's own process (the user's
    Ctrl-C)."""
    return OWN_PROCESS or not isinstance(e, KeyboardInterrupt)


class MethodFailed(Exception):
    """A method's fit or predict failed; ``str(e)`` is the reason recorded for its fit, ``traceback`` the
    method's own traceback (empty when the method did not raise)."""

    def __init__(self, reason: str, tb: str = "") -> None:
        super().__init__(reason)
        self.traceback = tb


def frozen(a: np.ndarray) -> np.ndarray:
    """A read-only copy of ``a``."""
    out = np.array(a, copy=True)
    out.flags.writeable = False
    return out


def readonly_split(split: SplitData) -> SplitData:
    """A private copy of ``split`` with every array read-only and the test cell lines hidden: the test pairs
    (:data:`pertvae_core.data.TEST_FIELDS`) NaN of the same shapes, their labels and controls None
    (``TEST_EXTRAS``), so a method cannot fit on the answers it is scored against, nor on the test inputs
    (it gets those to predict from). SplitData is frozen, so no field can be replaced either; the copy is
    built without re-validating."""
    new = object.__new__(SplitData)
    for f in dataclasses.fields(SplitData):
        v = getattr(split, f.name)
        if f.name in TEST_FIELDS:
            v = np.full(np.shape(v), np.nan, dtype=np.float32)
        elif f.name in TEST_EXTRAS:
            v = None
        object.__setattr__(new, f.name, frozen(v) if isinstance(v, np.ndarray) else v)
    return new


def exception_text(e: BaseException) -> str:
    """'Name: message', or the name alone where the message is empty (a bare KeyboardInterrupt)."""
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def describe(e: BaseException, phase: str) -> str:
    """The reason for a method that raised ``e`` during ``phase`` ("__init__", "fit" or "predict")."""
    if isinstance(e, SystemExit):
        return (f"{phase}() called sys.exit({e.code!r}); a method must return or raise, not end the "
                f"process")
    hint = ""
    if isinstance(e, ValueError) and any(s in str(e) for s in READ_ONLY):
        hint = (": the method changed its input in place; its inputs are read-only so that no method can "
                "change the data the others are scored on: copy first, e.g. x1 = x1.copy()")
    return f"{exception_text(e)} (in {phase}(){hint})"[:2000]


def check_numbers(out: Any, call: str, need: str, shape: tuple[int, ...], shape_need: str,
                  kinds: str = "fiu", nan_hint: str = "") -> np.ndarray:
    """``out`` (what a method's ``call()`` returned) as a new float64 array, or MethodFailed saying what is
    wrong: None or not an array (``need``: what it must return), dtype kind not in ``kinds``, a shape other
    than ``shape`` (``shape_need``: what the shape must be), NaN/inf in it, or values beyond float32's
    range (:data:`FLOAT32_MAX`)."""
    if out is None:
        raise MethodFailed(f"{call}() returned None; it must return {need}")
    try:
        a = np.asarray(out)
    except Exception as e:  # a ragged list, a CUDA tensor...
        raise MethodFailed(f"{call}() returned a {type(out).__name__} that is not an array of numbers "
                           f"({type(e).__name__}: {e}); return a numpy array") from None
    if a.dtype.kind not in kinds:
        raise MethodFailed(f"{call}() returned values of dtype {a.dtype} ({type(out).__name__}); it must "
                           f"return real numbers (a float numpy array)")
    if a.shape != shape:
        raise MethodFailed(f"{call}() returned shape {a.shape}; {shape_need}")
    a = np.array(a, dtype=np.float64, copy=True)
    bad = int((~np.isfinite(a)).sum())
    if bad:
        raise MethodFailed(f"{call}() returned {bad} non-finite value(s) (NaN or inf) of {a.size}{nan_hint}")
    huge = np.abs(a) > FLOAT32_MAX  # finite, but its squares overflow the metrics to NaN (scored "done")
    if huge.any():
        raise MethodFailed(f"{call}() returned {int(huge.sum())} value(s) beyond float32's range (largest "
                           f"{np.abs(a).max():.3g}; the data are float32): a diverged fit? Such values "
                           f"cannot be scored or saved")
    return a


def check_prediction(out: Any, x1: np.ndarray) -> np.ndarray:
    """``out`` (a method's ``predict(x1)``) as a new float64 array of x1's shape (:func:`check_numbers`)."""
    return check_numbers(out, "predict", "x2_hat, one row per row of x1", np.shape(x1),
                         f"x1 has shape {np.shape(x1)}: x2_hat needs one row per row of x1 and one column "
                         f"per gene", nan_hint=NAN_HINT)


def fitted_method(method: Any, split: Any, calls: Sequence[str] = ("predict",)) -> Any:
    """``method.fit(split)``, checked to be a fitted method with each of ``calls`` (MethodFailed if not):
    a user's fit that forgets ``return self`` fails with that advice, here and for response methods."""
    fitted = method.fit(split)
    if fitted is None:
        raise MethodFailed("fit() returned None; it must return the fitted method (end it with return self)")
    for call in calls:
        if not callable(getattr(fitted, call, None)):
            raise MethodFailed(f"fit() returned a {type(fitted).__name__}, which has no {call}(); it must "
                               f"return the fitted method (end it with return self)")
    return fitted


def fit_predict(make: Callable[[], Any], split: SplitData, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """A new method from ``make()``, fitted on a private read-only copy of ``split``, and its checked
    predictions at each of ``inputs`` (in order, each a read-only copy); MethodFailed with the reason
    whatever goes wrong (:func:`methods_failure`). numpy's error settings are restored afterwards."""
    mine = readonly_split(split)
    phase = "__init__"
    try:
        with np.errstate():
            method = make()
            phase = "fit"
            fitted = fitted_method(method, mine)
            phase = "predict"
            # each checked (copied) as soon as it is returned: a method that returns a view of a buffer it
            # refills on its next predict is scored on what each predict returned
            return [check_prediction(fitted.predict(frozen(x)), x) for x in inputs]
    except MethodFailed:
        raise
    except BaseException as e:
        if not methods_failure(e):
            raise
        raise MethodFailed(describe(e, phase), traceback.format_exc()) from None
