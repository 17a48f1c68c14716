"""Fit settings for PertVAE and the plain VAE (paper Section 4: architecture, Adam, early stopping).

:class:`FitConfig`'s fields are the one declaration of the fit settings: each field's metadata holds its
``help`` text and its ``check`` (the valid values), which FitConfig applies on construction and the harness
reads to make its flags, TOML keys and parse-time checks (harness.config), so the two cannot disagree.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["FitConfig", "FitSettingError", "STANDARDIZE", "PRECISIONS", "fit_settings"]

STANDARDIZE = ("per_source", "pooled")
PRECISIONS = ("auto", "fp32", "bf16")   # FitConfig.precision (pertvae_core.precision)


class FitSettingError(ValueError):
    """A fit setting outside its valid values; ``setting``, ``value`` and ``why`` name it."""

    def __init__(self, setting: str, value: Any, why: str) -> None:
        super().__init__(f"FitConfig.{setting} = {value!r}: {why}")
        self.setting, self.value, self.why = setting, value, why


def _is_int(v: Any) -> bool:
    """An int of any integer type (numpy's too: scikit-learn's GridSearchCV hands ``np.arange``'s values to
    ``set_params``), not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)   # np.bool_ is not Integral


@dataclass(frozen=True)
class Count:
    """An int >= ``low``."""

    low: int

    def __call__(self, v: Any) -> int:
        if not _is_int(v) or v < self.low:
            raise ValueError("must be a positive int" if self.low == 1 else "must be a non-negative int")
        return v if type(v) is int else int(v)   # a numpy int would not load with weights_only

    def bad_example(self) -> str:
        return str(self.low - 1)


@dataclass(frozen=True)
class Real:
    """A finite number > 0 (``strict``) or >= 0, kept as a float (a numpy float would not load with
    weights_only); inf passed "> 0" once and failed as a non-finite loss in the first epochs."""

    strict: bool

    def __call__(self, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) \
                or not (v > 0 if self.strict else v >= 0):
            raise ValueError(f"must be a finite number {'> 0' if self.strict else '>= 0'}")
        return float(v)

    def bad_example(self) -> str:
        return "0" if self.strict else "-1"


@dataclass(frozen=True)
class OneOf:
    """One of ``choices``."""

    choices: tuple[str, ...]

    def __call__(self, v: Any) -> str:
        if v not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}")
        return v

    def bad_example(self) -> str:
        return "bogus"


@dataclass(frozen=True)
class Flag:
    """True or False."""

    def __call__(self, v: Any) -> bool:
        if not isinstance(v, bool):
            raise ValueError("must be True or False")
        return v

    def bad_example(self) -> str:
        return "maybe"


@dataclass(frozen=True)
class Layers:
    """Two positive hidden layer sizes, in order, kept as a tuple of ints (a set or dict has no order that
    says which is the first layer: {500, 300} was (300, 500) or (500, 300) as hashing had it)."""

    def __call__(self, v: Any) -> tuple[int, ...]:
        try:
            h = () if isinstance(v, set | frozenset | dict) else tuple(v)
        except TypeError:
            h = ()
        if len(h) != 2 or not all(_is_int(x) and x >= 1 for x in h):
            raise ValueError("must be two positive ints in order, a tuple or list (first and second hidden "
                             "layer of the encoder)")
        return v if type(v) is tuple and all(type(x) is int for x in v) else tuple(int(x) for x in h)

    def bad_example(self) -> str:
        return "0,5"


@dataclass(frozen=True)
class Device:
    """A torch device name."""

    def __call__(self, v: Any) -> str:
        if not isinstance(v, str) or not re.fullmatch(r"cpu|mps|cuda(:\d+)?", v):
            raise ValueError("must be 'cpu', 'cuda', 'cuda:N' or 'mps'")
        return v

    def bad_example(self) -> str:
        return "gpu"


def _s(default: Any, check: Any, help: str) -> Any:
    """A fit setting: its default, its ``check`` (returns the value kept, or raises ValueError saying why)
    and its help text (the harness's ``--help``)."""
    return field(default=default, metadata={"check": check, "help": help})


@dataclass(frozen=True)
class FitConfig:
    """Settings of one (batched) fit. Defaults are the paper's sizes (Section 4, Table 1 at latent 100).

    ``free_bits`` is a budget in nats per latent dimension (Kingma et al. 2016) for KL(z1) of pairs and of
    singletons; the conditional KL of z2 (Eq. 11) is exempt (see :mod:`pertvae_core.elbo`). ``stop_on`` is
    the validation loss for early stopping (:mod:`pertvae_core.train`); ``val_samples`` fixed draws are
    averaged for it. ``device`` "cuda" falls back to the CPU when CUDA is unavailable. ``precision`` is that
    of the matrix products (:mod:`pertvae_core.precision`); the default is fp32, so that a fit's numbers do
    not depend on the hardware (the harness resolves its own default, auto, once per run and records it).
    """

    latent: int = _s(100, Count(1), "latent size of z1 and z2 (the harness: per model, --latents-MODEL)")
    hidden: tuple[int, int] = _s((500, 300), Layers(), "encoder/decoder hidden layer sizes (two)")
    context: int = _s(200, Count(1), "IAF context size")
    iaf_steps: int = _s(2, Count(0), "IAF steps")
    iaf_hidden: int = _s(300, Count(1), "IAF hidden size")
    lr: float = _s(1e-3, Real(strict=True), "Adam learning rate")
    batch_pairs: int = _s(64, Count(1), "pairs per minibatch")
    batch_singletons: int = _s(64, Count(0), "singletons per minibatch (0: none)")
    max_epochs: int = _s(200, Count(1), "maximum epochs")
    patience: int = _s(20, Count(1), "early-stopping patience (epochs without improvement)")
    min_epochs: int = _s(0, Count(0), "minimum epochs before early stopping (<= max_epochs)")
    free_bits: float = _s(0.0, Real(strict=False), "free bits: KL budget in nats per latent dimension "
                          "on KL(z1) of pairs and singletons (Kingma et al. 2016); the drug effect's "
                          "KL(z2|z1) is exempt")
    l2_drug: float = _s(1e-3, Real(strict=False), "L2 penalty on the drug transform W, b (Eq. 5)")
    mc_samples: int = _s(10, Count(1), "Monte Carlo samples for predicted means at evaluation")
    stop_on: str = _s("mse", OneOf(("mse", "nll")), "early-stopping loss on the validation pairs: mse "
                      "(squared error of the mean prediction) | nll (-log p(x2|z2) with the decoder's sigma)")
    val_samples: int = _s(3, Count(1), "fixed Monte Carlo draws averaged for the validation loss")
    standardize: str = _s("per_source", OneOf(STANDARDIZE), "per-gene standardization: per_source (L1000 "
                          "pairs and singletons each with their own training statistics) | pooled (one set "
                          "from all)")
    device: str = _s("cpu", Device(), "torch device: cpu | cuda | cuda:N | mps")
    compile: bool = _s(False, Flag(), "torch.compile the model")
    precision: str = _s("fp32", OneOf(PRECISIONS), "matrix products of the networks' layers: fp32 | bf16 "
                        "(bfloat16 operands, float32 weights, Adam state and elementwise work; on a CPU a "
                        "product too small to gain stays float32) | auto (bf16 where the device has native "
                        "bfloat16 products)")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            try:
                object.__setattr__(self, f.name, f.metadata["check"](value))
            except ValueError as e:
                raise FitSettingError(f.name, value, str(e)) from None
        if self.min_epochs > self.max_epochs:
            raise FitSettingError("min_epochs", self.min_epochs, f"must be <= max_epochs ({self.max_epochs})")


def fit_settings() -> tuple[Any, ...]:
    """FitConfig's fields (dataclasses.Field): name, type, default, metadata ``check`` and ``help``."""
    return fields(FitConfig)
