"""The matrix-product precision of a fit (``FitConfig.precision``): fp32, or bf16 operands.

"bf16": the weight-normalized layers (encoder, decoder and its head, the IAF's MADE layers) cast the operands
of their matrix products, forward and backward, to bfloat16; everything else stays float32: the master
weights and Adam's moments, the weight norms and scales, the bias, every elementwise operation and reduction,
the drug effect (Eq. 5) and the loss. The products accumulate in float32 inside the kernel (oneDNN on the
CPU, cuBLAS on a GPU). On a CPU with AMX (amx_bf16) and torch >= 2.7, eager products (validation,
evaluation, and training without torch.compile) let oneDNN round the float32 operands to bfloat16 inside the
product and write float32 (pertvae_core.layers.bf16_math_bmm): no cast passes, and the outputs keep float32's
precision; there a product of fewer than 3 MFLOP per model (one with a small latent size's dimension) stays
float32, where oneDNN's bfloat16 kernel is slower (layers.SMALL_PRODUCT_FLOPS). Compiled training steps cast
there too (faster under torch.compile: layers.CPU_BF16_MATH). Elsewhere, a CPU with AVX512-BF16 but no AMX
included, the operands are cast to bfloat16 and the bfloat16
output is widened back to float32 (torch's CPU backend has no bfloat16 product with a float32 output):
without AMX oneDNN ignores the bf16 setting and runs its float32 kernel (ONEDNN_VERBOSE:
brg_matmul:avx512_core on an AMD EPYC; float32's error, 4e-7, where casts give bf16's 3e-3), and a step took
1.4x the time of casts (layers.CPU_BF16_MATH). On a CPU with native bfloat16 a training step takes
0.5-0.86x the float32 time, the more when the host's memory is busy (the memory-bound work is the same in
both; benchmarks/test_precision.py, benchmarks/test_step_overhead.py).

"auto" is bf16 where the hardware computes bfloat16 products natively (a CPU with avx512_bf16 or amx_bf16, an
ARM CPU with bf16, a GPU that torch says supports bfloat16), else fp32. Elsewhere bf16 still runs, emulated
and slower, with the same numbers.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from pertvae_core.config import PRECISIONS

__all__ = ["PRECISIONS", "resolve_precision", "cpu_has_native_bf16", "cpu_has_amx_bf16", "cpuinfo_has_bf16",
           "native_bf16"]

CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})   # x86 AVX512-BF16 / AMX, ARMv8.6 BF16
CPU_AMX_FLAGS = frozenset({"amx_bf16"})


def cpuinfo_has_bf16(cpuinfo: str, flags: frozenset[str] = CPU_BF16_FLAGS) -> bool:
    """Whether a /proc/cpuinfo text lists one of ``flags`` (by default a bfloat16 matrix instruction set;
    ``flags`` on x86, ``Features`` on ARM)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features") and flags & set(value.split()):
            return True
    return False


def _cpuinfo_lists(flags: frozenset[str]) -> bool:
    try:
        return cpuinfo_has_bf16(Path("/proc/cpuinfo").read_text(), flags)
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (/proc/cpuinfo; False where it is unreadable)."""
    return _cpuinfo_lists(CPU_BF16_FLAGS)


@functools.lru_cache(maxsize=1)
def cpu_has_amx_bf16() -> bool:
    """Whether this CPU has AMX's bfloat16 tiles, where oneDNN computes float32 products in bfloat16
    (module docstring; False where /proc/cpuinfo is unreadable)."""
    return _cpuinfo_lists(CPU_AMX_FLAGS)


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 matrix products natively (module docstring)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))
    if dev.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """"fp32" or "bf16" for ``precision`` ("auto", "fp32" or "bf16") on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"
