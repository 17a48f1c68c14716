"""How a run's matrix products were computed, for the report: the store's per-fit ``products`` (each fit's
worker records its own way, harness.tasks.products_of), counted over the done fits.

bf16 products give slightly different numbers than fp32 ones, and two machines compute them differently (a
CPU with AMX rounds float32 operands inside oneDNN's product; others cast the operands to bfloat16), so a
reader comparing two runs needs to know which ran; run.json's ``versions`` says only how the machine that
started the run computes them. A bf16 run on a CPU without bfloat16 instructions is emulated and far slower
than fp32: the dry run and the run say so before it starts (:func:`emulated_bf16_note`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from harness.config import RunConfig, run_device_kind
from harness.contenders import REGISTRY
from harness.results import as_str, json_attr

LEAD = "Matrix products of the trained models, as each fit's worker computed them"
UNRECORDED = "not recorded"   # products_counts' key of fits written before fits recorded their products
BF16_WORDS = ("bf16 means bfloat16 operands with float32 accumulation and outputs; parameters, gradients, "
              "Adam state and all elementwise work stay float32")


# Measured side by side (benchmarks/test_precision.py, one thread, process CPU time, load 1.0-2.2): on an AMD
# EPYC of Zen 3 (AVX2, no AVX-512) a paper-sized step with bf16 products took 9.0-9.4x fp32's at S = 1 and
# 9.3-11.3x at S = 10, PertVAE and the VAE; with avx512_bf16 (Zen 4) 0.55-0.67x.
EMULATED_BF16 = ("this machine's CPU has no bfloat16 matrix instructions, so bf16 products are emulated "
                 "here: a training step took 9-11x fp32's on such a CPU (an AMD EPYC Zen 3, AVX2); "
                 "--precision fp32 (auto's choice here) runs much faster")


def emulated_bf16_note(cfg: RunConfig) -> str:
    """A warning for a run of bf16 products whose CPU computes them emulated, or "": a local or in-process
    CPU run that trains a model, on this machine (a Slurm job's nodes, or a GPU, are not this CPU)."""
    from pertvae_core.precision import native_bf16  # imports torch: only where a run is about to train

    trains = any(_trained(np.array(list(cfg.models))))
    if cfg.precision != "bf16" or cfg.cluster == "slurm" or not trains or run_device_kind(cfg) != "cpu":
        return ""
    return "" if native_bf16("cpu") else EMULATED_BF16


def _trained(models: np.ndarray) -> np.ndarray:
    """Whether each model trains a network (a contender this process does not know: assumed to)."""
    return np.array([REGISTRY[m].trained if m in REGISTRY else True for m in models], dtype=bool)


def products_counts(ds: xr.Dataset) -> dict[str, int]:
    """Each way the done fits of the trained models computed their matrix products -> its number of fits,
    most fits first (:data:`UNRECORDED`: fits written before stores recorded it: all of an older store's, or
    a resumed one's earlier fits); {} with no such fit done."""
    ds = ds.transpose("model", "drug", "latent", "split", ...)
    status = as_str(ds["status"].values)
    ways = as_str(ds["products"].values) if "products" in ds.data_vars else np.full(status.shape, "")
    ways = ways[(status == "done") & _trained(as_str(ds["model"].values))[:, None, None, None]]
    names, counts = np.unique(np.where(ways == "", UNRECORDED, ways), return_counts=True)
    order = sorted(zip(names.tolist(), counts.tolist(), strict=True), key=lambda t: (-t[1], t[0]))
    return {str(w): int(n) for w, n in order}


def products_line(ds: xr.Dataset) -> str:
    """One sentence for the report: how the trained models' matrix products were computed, per fit as
    recorded, the run's precision for fits written before fits recorded it; "" when no trained model's fit
    is done or the store does not say."""
    counts = products_counts(ds)
    recorded = {w: n for w, n in counts.items() if w != UNRECORDED}
    precision = json_attr(ds, "config").get("science", {}).get("precision")
    note = f" {BF16_WORDS}." if precision == "bf16" or any(w.startswith("bf16") for w in recorded) else ""
    if not recorded:
        if not precision or not counts:
            return ""
        return (f"Matrix products of the trained models: {precision} (this store, written by an earlier "
                f"version, does not record how each fit computed them).{note}")
    ways = [f"{w} in {_fits(n)}" for w, n in recorded.items()]
    if UNRECORDED in counts:   # a resumed older store: its earlier fits ran at the run's precision
        ways.append(f"{precision}, the way not recorded, in {_fits(counts[UNRECORDED])} from before fits "
                    f"recorded it")
    return f"{LEAD}: {'; '.join(ways)}.{note}"


def _fits(n: int) -> str:
    return f"{n} fit{'' if n == 1 else 's'}"
