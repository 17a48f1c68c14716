"""pertvae_core: PertVAE (Rampasek et al.) in torch, batched over cross-validation splits, and its baselines.

``from pertvae_core import PertVAE`` is the notebook estimator (:mod:`pertvae_core.estimator`), imported on
first use so that ``pertvae_core.config`` and friends stay light; the batched ``nn.Module`` it trains is
:class:`pertvae_core.model.PertVAE`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PertVAE"]


def __getattr__(name: str) -> Any:
    if name == "PertVAE":
        from pertvae_core.estimator import PertVAE

        return PertVAE
    raise AttributeError(f"module 'pertvae_core' has no attribute {name!r}")
