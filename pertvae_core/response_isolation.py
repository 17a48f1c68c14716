"""What a user's response method (``--response-method``) receives and must give back.

The response twin of :mod:`pertvae_core.isolation`: the method is fitted on a private, read-only copy of
the split whose test responses are hidden (:func:`hidden_test`: ``r_test`` and ``y_test`` NaN, so a method
cannot score itself by reading its answers; the test profiles ``x_test`` are what it predicts from), and
asked for one score per test row for each head it has: ``predict_proba(x_test)`` (binary head: higher =
more likely sensitive; AUROC and AUPR use only the order) and ``predict(x_test)`` (continuous head, the
response's units). Whatever it does wrong fails that method alone (:class:`MethodFailed`): any exception,
``sys.exit``, a fit that does not return a method, a missing head, and scores that are not real numbers,
not one per test row, or NaN/inf (:func:`check_scores`).

Light on purpose (numpy and pertvae_core's data classes only): harness/sandbox.py runs it in a fresh
process for each fit.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pertvae_core.isolation import (
    MethodFailed,
    check_numbers,
    describe,
    fitted_method,
    frozen,
    methods_failure,
)
from pertvae_core.response_data import ResponseSplit

__all__ = ["HEAD_CALLS", "hidden_test", "method_heads", "check_scores", "fit_predict_response"]

# head -> the method that gives its scores
HEAD_CALLS = {"binary": "predict_proba", "continuous": "predict"}
_HIDDEN = ("r_test", "y_test")


def hidden_test(split: ResponseSplit) -> ResponseSplit:
    """A private copy of ``split`` with every array read-only and the test rows' responses and labels NaN
    (built without re-validating: the labels' threshold is the training cell lines' own, kept as it is)."""
    new = object.__new__(ResponseSplit)
    for f in dataclasses.fields(ResponseSplit):
        v = getattr(split, f.name)
        if f.name in _HIDDEN:
            v = np.full(np.shape(v), np.nan)
        object.__setattr__(new, f.name, frozen(v) if isinstance(v, np.ndarray) else v)
    return new


def method_heads(obj: Any) -> tuple[str, ...]:
    """The heads of a response method (a class or an instance): its ``heads`` attribute, else those whose
    call it has (``predict_proba``: binary, ``predict``: continuous). ValueError when there is none or a
    head is unknown."""
    given = getattr(obj, "heads", None)
    if given is None:
        heads = tuple(h for h, call in HEAD_CALLS.items() if callable(getattr(obj, call, None)))
    elif isinstance(given, str):
        heads = (given,)
    else:
        heads = tuple(given)
    unknown = [h for h in heads if h not in HEAD_CALLS]
    if not heads or unknown:
        raise ValueError(f"heads {heads!r}: a response method has a binary head (predict_proba(x1)) and/or a "
                         f"continuous head (predict(x1)); give heads = ('binary',) and/or ('continuous',)")
    return tuple(dict.fromkeys(heads))


def check_scores(out: Any, x1: np.ndarray, call: str) -> np.ndarray:
    """``out`` (a method's ``call(x1)``) as a new float64 vector, one score per row of x1
    (pertvae_core.isolation.check_numbers; booleans count as numbers)."""
    return check_numbers(out, call, "one score per row of x1", (len(x1),),
                         f"{len(x1)} rows of x1 need one score per row, shape ({len(x1)},)", kinds="fiub")


def fit_predict_response(make: Callable[[], Any], split: ResponseSplit, heads: Sequence[str]
                         ) -> dict[str, np.ndarray]:
    """A new method from ``make()``, fitted on :func:`hidden_test` of ``split``, and its checked scores of
    the test rows for each of ``heads`` (head -> [n_test]); MethodFailed with the reason whatever goes
    wrong (pertvae_core.isolation.methods_failure). numpy's error settings are restored afterwards."""
    mine = hidden_test(split)
    phase = "__init__"
    try:
        with np.errstate():
            method = make()
            phase = "fit"
            fitted = fitted_method(method, mine, [HEAD_CALLS[h] for h in heads])
            outs = {}
            for h in heads:
                phase = HEAD_CALLS[h]
                # checked (copied) as soon as it is returned: heads that return one buffer they refill
                outs[h] = check_scores(getattr(fitted, phase)(frozen(mine.x_test)), mine.x_test, phase)
            return outs
    except MethodFailed:
        raise
    except BaseException as e:
        if not methods_failure(e):
            raise
        raise MethodFailed(describe(e, phase), traceback.format_exc()) from None
