"""Fit settings for PertVAE and the plain VAE (paper Section 4: architecture, Adam, early stopping)."""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass

__all__ = ["FitConfig", "STANDARDIZE", "PRECISIONS"]

STANDARDIZE = ("per_source", "pooled")
PRECISIONS = ("auto", "fp32", "bf16")   # FitConfig.precision (pertvae_core.precision)


@dataclass(frozen=True)
class FitConfig:
    """Settings of one (batched) fit. Defaults are the paper's sizes (Section 4, Table 1 at latent 100).

    ``free_bits`` is a budget in nats per latent dimension (Kingma et al. 2016) for KL(z1) of pairs and of
    singletons; the conditional KL of z2 (Eq. 11) is exempt (see :mod:`pertvae_core.elbo`). ``l2_drug``
    multiplies ||W||^2 + ||b||^2 of the drug effect (Eq. 5). ``mc_samples`` is the number of (z1, z2) samples
    averaged for the predicted means at evaluation. ``stop_on`` is the validation loss for early stopping
    (:mod:`pertvae_core.train`): "mse" (half the squared error of the predicted mean, i.e. -log p(x2|z2) with
    unit variance) or "nll" (-log p(x2|z2) with the decoder's sigma); ``val_samples`` fixed draws are
    averaged for it. ``standardize`` chooses the per-gene statistics: "per_source" (L1000 pairs, validation
    and test data with those of x1_train + x2_train; the singletons of another platform with their own) or
    "pooled" (one set from all training profiles). ``device`` "cuda" falls back to the CPU when CUDA is
    unavailable. ``precision`` is that of the matrix products (:mod:`pertvae_core.precision`): "fp32", "bf16"
    (bfloat16 operands, float32 weights, Adam state and elementwise work) or "auto" (bf16 where the device has
    native bfloat16 products); the default is fp32, so that a fit's numbers do not depend on the hardware
    (the harness resolves its own default, auto, once per run and records it).
    """

    latent: int = 100
    hidden: tuple[int, int] = (500, 300)
    context: int = 200
    iaf_steps: int = 2
    iaf_hidden: int = 300
    lr: float = 1e-3
    batch_pairs: int = 64
    batch_singletons: int = 64
    max_epochs: int = 200
    patience: int = 20
    min_epochs: int = 0
    free_bits: float = 0.0
    l2_drug: float = 1e-3
    mc_samples: int = 10
    device: str = "cpu"
    compile: bool = False
    precision: str = "fp32"
    stop_on: str = "mse"
    val_samples: int = 3
    standardize: str = "per_source"

    def __post_init__(self) -> None:
        def bad(field: str, why: str) -> ValueError:
            return ValueError(f"FitConfig.{field} = {getattr(self, field)!r}: {why}")

        for f in ("latent", "context", "iaf_hidden", "batch_pairs", "max_epochs", "patience", "mc_samples",
                  "val_samples"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(f, "must be a positive int")
        for f in ("iaf_steps", "batch_singletons", "min_epochs"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad(f, "must be a non-negative int")
        h = tuple(self.hidden)
        if len(h) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in h):
            raise bad("hidden", "must be two positive ints (first and second hidden layer of the encoder)")
        object.__setattr__(self, "hidden", h)
        if self.min_epochs > self.max_epochs:
            raise bad("min_epochs", f"must be <= max_epochs ({self.max_epochs})")
        for f, low in (("lr", "> 0"), ("free_bits", ">= 0"), ("l2_drug", ">= 0")):
            v = getattr(self, f)  # inf passed "> 0" and failed as a non-finite loss in the first epochs
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) \
                    or not (v > 0 if low == "> 0" else v >= 0):
                raise bad(f, f"must be a finite number {low}")
            object.__setattr__(self, f, float(v))  # a numpy float would not load with weights_only
        if not isinstance(self.compile, bool):
            raise bad("compile", "must be True or False")
        if not isinstance(self.device, str) or not re.fullmatch(r"cpu|mps|cuda(:\d+)?", self.device):
            raise bad("device", "must be 'cpu', 'cuda', 'cuda:N' or 'mps'")
        if self.stop_on not in ("mse", "nll"):
            raise bad("stop_on", "must be 'mse' or 'nll'")
        if self.precision not in PRECISIONS:
            raise bad("precision", f"must be one of {', '.join(PRECISIONS)}")
        if self.standardize not in STANDARDIZE:
            raise bad("standardize", f"must be one of {', '.join(STANDARDIZE)}")
