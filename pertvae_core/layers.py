"""Linear layers batched over S independent models (a leading model dimension on every tensor).

Inputs are [S, B, in], weights [S, in, out]; one ``torch.bmm`` computes all S models at once, so S
cross-validation fits of one drug train as one batched model. Parameters of model s are initialized from
its own ``torch.Generator`` (``gens[s]``), so a batched fit equals S separate fits with the same seeds.

- :class:`WNLinear`: weight normalization (Salimans & Kingma 2016; paper Section 4 "Architecture"),
  W[:, j] = g_j v[:, j] / ||v[:, j]||. The per-column scale is applied to the bmm output (cheaper than
  scaling the [in, out] weight when B < in), and a hand-written backward (:class:`_WNLinearFn`) touches the
  weight only twice (the norm, and one addcmul_ into the grad-weight) instead of autograd's ~8 passes.
  With ``low_precision`` its products take bfloat16 operands (FitConfig.precision "bf16",
  :mod:`pertvae_core.precision`); parameters, gradients and everything elementwise stay float32.
- :class:`MaskedWNLinear`: the same with a fixed 0/1 connectivity mask (MADE, Germain et al. 2015), used by
  the IAF (:mod:`pertvae_core.flows`).
- :class:`BatchedLinear`: plain affine map, initialized to zero (the drug effect W, b of Eq. 5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from pertvae_core.precision import cpu_has_amx_bf16, native_bf16

__all__ = ["WNLinear", "MaskedWNLinear", "BatchedLinear", "elu", "halves", "bf16_way", "products_way"]

elu = nn.functional.elu
NORM_MIN = 1e-6  # floor on ||v||: a MADE output unit with no allowed inputs has v = 0 and outputs its bias
LOW = torch.bfloat16  # the operands' type of the products with ``low_precision`` (pertvae_core.precision)


def halves(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two halves of t's last dimension (e.g. a head's mean and log-sigma), by ``torch.split``: its
    backward is one concatenation of the halves' gradients, where two slices' backward fill a zero tensor
    each and add them (3 passes more over the head's output; the same values; 0.3-0.6 ms of a paper-sized
    step, benchmarks/test_step_overhead.py)."""
    n = t.shape[-1] // 2
    return tuple(torch.split(t, [n, n], dim=-1))  # type: ignore[return-value]


def _normal(gens: Sequence[torch.Generator], shape: tuple[int, ...], std: float) -> torch.Tensor:
    """[S, *shape] with slice s drawn from gens[s] (CPU generators)."""
    return torch.stack([torch.randn(shape, generator=g) * std for g in gens])


_MKLDNN_MATMUL = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
# oneDNN's float32 products with bfloat16 arithmetic (torch >= 2.7; bf16_math_bmm) where it has them: on AMX,
# in eager products only. Without AMX (an AVX512-BF16 CPU such as AMD's Zen 4) oneDNN keeps its float32
# kernel under the bf16 setting: float32 results at 1.1-1.3x MKL's float32 rate, where cast operands run its
# bfloat16 kernel at 2.1-2.4x, and a paper-sized bf16 step took 1.35-1.58x the time of casts (eager and
# compiled; test_step_overhead.py). Under torch.compile casts win on AMX too: inductor fuses them into the
# elementwise work beside the products, and oneDNN's kernel on bfloat16 operands runs the step's large
# products ~1.5-2x faster than its bfloat16 arithmetic on float32 ones (which converts both operands inside
# each call); a compiled paper-sized step took 0.93-0.96x the math's time (the VAE; PertVAE 0.93-1.0),
# alternating in one process on a Xeon with AMX (test_bf16_math_against_casts, load 1-7).
BF16_MATH_AVAILABLE = hasattr(_MKLDNN_MATMUL, "fp32_precision")
CPU_BF16_MATH = BF16_MATH_AVAILABLE and cpu_has_amx_bf16()


CAST = "operands cast to bfloat16"
# Where the device has no bfloat16 instructions (an AVX2 CPU): same numbers, ~9-11x fp32's time a step
EMULATED = "emulated (no bfloat16 instructions)"


def bf16_way(device: str = "cpu", compiled: bool | None = False) -> str:
    """How bf16 products are computed on ``device`` here, in words for a record or a dry run: the numbers
    differ slightly between the ways (casts round the outputs to bfloat16 too; on a CPU a layer of small
    products keeps float32: :func:`_small`). ``compiled``: whether the training steps run under torch.compile
    (they then cast on AMX too: :data:`CPU_BF16_MATH`); None: either, as the machine's entry in a run's
    versions says."""
    cpu = torch.device(device).type == "cpu"
    small = f"products under {SMALL_PRODUCT_FLOPS / 1e6:g} MFLOP a model in float32"
    if not (cpu and CPU_BF16_MATH):
        way = CAST if native_bf16(device) else f"{CAST}, {EMULATED}"
        return f"{way}; {small}" if cpu else way
    math = "oneDNN's bfloat16 arithmetic on float32 operands"
    if compiled is None:
        return f"{math} (AMX), or {CAST} in torch.compile'd training steps; {small} in both"
    if compiled:
        return (f"{CAST} in the compiled training steps, {math} in validation and evaluation (AMX; {small} "
                f"in both)")
    return f"{math} (AMX; {small})"


def products_way(precision: str, device: str = "cpu", compiled: bool | None = False) -> str:
    """How a fit of ``precision`` ("fp32" | "bf16", FitConfig.precision resolved) computes its matrix
    products on ``device`` here, its training steps compiled or not (None: some), for its record: "fp32", or
    "bf16: " and :func:`bf16_way`."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision: must be fp32 or bf16 (resolved), got {precision!r}")
    return "fp32" if precision == "fp32" else f"bf16: {bf16_way(device, compiled)}"


# Products of fewer FLOPs (2 M N K per model) than this stay float32 under bf16 math: oneDNN's bfloat16
# kernel costs ~40 us a call at a latent's sizes ([128, 300] x [300, d], d <= 48), where float32 takes 5-30;
# it pays from d ~ 64 on one model and d ~ 32 on ten (a VAE at latent 2-20 has 6-8 such products a step).
SMALL_PRODUCT_FLOPS = 3e6


def bf16_math_bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.bmm`` of float32 tensors computed by oneDNN with bfloat16 operands and float32 accumulation
    and output (torch's global setting, set around this product only and restored), or in float32 for a
    product below :data:`SMALL_PRODUCT_FLOPS`."""
    if 2 * a.shape[1] * a.shape[2] * b.shape[2] < SMALL_PRODUCT_FLOPS:
        return torch.bmm(a, b)
    before = _MKLDNN_MATMUL.fp32_precision
    _MKLDNN_MATMUL.fp32_precision = "bf16"
    try:
        return torch.bmm(a, b)
    finally:
        _MKLDNN_MATMUL.fp32_precision = before


def _product_like(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The output of a batched product of a and b, for torch.compile's tracing of our operators."""
    return a.new_empty((a.shape[0], a.shape[1], b.shape[2]))


# pertvae::bmm, torch.bmm as one operator that torch.compile calls as it is, for a product of cast operands
# whose operand's layout matters: dL/dv's, with (gy s)^T made contiguous (:func:`_weight_product`), and the
# first layer's y = x v^T (its input needs no gradient, so the cast weight feeds only that product). Inductor
# lays a transposed operand with no other use out with a zero stride on a batch of one model ([1, 978, 500],
# strides (0, 1, 978)), and torch's bfloat16 bmm copies it to a contiguous tensor first (0.3 ms a
# paper-sized step; float32's does not); an operator of its own gets its operands with the strides they have
# eagerly. A compiled bf16 step of the VAE at latent 2: 0.974-0.989x the time with the copies, PertVAE
# 0.986-0.994x (alternating in one process, load 0.8-0.9).
# Defined through torch.library.Library: ~4 us a call, where torch.library.custom_op's wrapper took ~12 us.
_LIB = torch.library.Library("pertvae", "FRAGMENT")
_LIB.define("bmm(Tensor a, Tensor b) -> Tensor")
_LIB.impl("bmm", torch.bmm, "CPU")
torch.library.register_fake("pertvae::bmm", _product_like, lib=_LIB)


def _product(ctx, alone: bool = False) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The matrix product of a :class:`_WNLinearFn` call: :func:`bf16_math_bmm` with bf16 math (eager only);
    with cast operands on the CPU under ``torch.compile``, pertvae::bmm for a product ``alone`` in using its
    transposed operand (an operator of our own costs eager dispatch ~20 us more per product); else
    ``torch.bmm``."""
    if ctx.math:
        return bf16_math_bmm
    if alone and ctx.cast and ctx.cpu and torch.compiler.is_compiling():
        return torch.ops.pertvae.bmm.default
    return torch.bmm


def _small(x: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether a layer's products (2 B in out FLOPs a model each) fall below :data:`SMALL_PRODUCT_FLOPS`: on
    the CPU they then take float32 operands under bf16 too. Cast to bfloat16 they cost oneDNN's ~20-40 us a
    call (float32: 4-8 us); a compiled bf16 step of the VAE took 0.975x the time with its 9 such products
    (of 27) in float32 at latent 2 and 0.99x at latent 10 (none at 50; alternating in one process, load
    2.1-2.6). Eager products with bf16 math keep them in float32 one by one (:func:`bf16_math_bmm`)."""
    return 2 * x.shape[1] * x.shape[2] * v.shape[1] < SMALL_PRODUCT_FLOPS


# dL/dv's (gy s)^T laid out contiguous in compiled CPU steps (:func:`_weight_product`): a setting so that
# benchmarks/test_step_overhead.py can time a step without it, alternating in one process
CONTIGUOUS_WEIGHT_GRAD = True


def _weight_product(ctx, gys: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """dL/dv's product (gy s)^T x (the [S, out, in] gradient of v). With cast operands on the CPU under
    torch.compile, (gy s)^T is laid out contiguous (inductor writes it beside gy s, in the kernel that casts
    it) and multiplied by pertvae::bmm, which keeps that layout: with oneDNN's bfloat16 product of the
    transposed view a compiled paper-sized step took ~1.04-1.05x the time (the VAE at latent 2, PertVAE;
    measured in two stages, each alternating two steps in one process, load 2-2.5; with :func:`_small`
    too: the VAE 0.934, 0.955 and 0.976x at latents 2, 20 and 200, PertVAE 0.96x). Eagerly the copy would be
    a pass of its own."""
    if ctx.contiguous_gv:
        return torch.ops.pertvae.bmm.default(gys.transpose(1, 2).contiguous(), x)
    return _product(ctx, alone=not ctx.needs_input_grad[0])(gys.transpose(1, 2), x)


class _WNLinearFn(torch.autograd.Function):
    """y = (x @ v^T) * s + b, s = g / ||v|| (row norms of v [S, out, in], a contiguous reduction).

    With ``low`` the three matrix products (y, dL/dx, dL/dv) take bfloat16 operands and accumulate in float32;
    the norms, scales, bias, the correction term of dL/dv and every gradient are float32
    (pertvae_core.precision). Eagerly on a CPU with AMX (:data:`CPU_BF16_MATH`) oneDNN rounds the float32
    operands to bfloat16 inside the product and writes float32 (:func:`bf16_math_bmm`; a product below
    :data:`SMALL_PRODUCT_FLOPS` stays float32): no cast of the weights and activations to bfloat16 and back,
    each a pass over them (0.90-0.97x the eager step time of casting, benchmarks/test_step_overhead.py), and
    the outputs keep float32's precision. Elsewhere (under torch.compile, a CPU without AMX, a GPU, an older
    torch) the operands are cast to bfloat16 and the bfloat16 outputs widened to float32 (one pass; mixed-type
    elementwise operations measured ~1.5x slower than a widening pass and the same operation in float32);
    under torch.compile the casts fuse into the elementwise work beside them. On a CPU a layer whose products
    fall below :data:`SMALL_PRODUCT_FLOPS` keeps float32 operands (:func:`_small`).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, v: torch.Tensor, g: torch.Tensor, b: torch.Tensor,
                low: bool = False) -> torch.Tensor:
        inv = torch.linalg.vector_norm(v, dim=2).clamp_min(NORM_MIN).reciprocal().unsqueeze(1)  # [S, 1, out]
        scale = g * inv
        ctx.cpu = x.device.type == "cpu"
        ctx.math = low and CPU_BF16_MATH and ctx.cpu and not torch.compiler.is_compiling()
        ctx.cast = low and not ctx.math and not (ctx.cpu and _small(x, v))
        ctx.contiguous_gv = CONTIGUOUS_WEIGHT_GRAD and ctx.cast and ctx.cpu and torch.compiler.is_compiling()
        xm, vm = (x.to(LOW), v.to(LOW)) if ctx.cast else (x, v)   # the products' operands
        u = _product(ctx, alone=not x.requires_grad)(xm, vm.transpose(1, 2)).to(v.dtype)
        ctx.save_for_backward(xm, vm, v, u, scale, inv)
        return torch.addcmul(b, u, scale)

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        xm, vm, v, u, scale, inv = ctx.saved_tensors
        gys = gy * scale
        gysm = gys.to(LOW) if ctx.cast else gys
        dscale = (gy * u).sum(dim=1, keepdim=True)  # dL/ds [S, 1, out]
        gx = gv = None
        bmm = _product(ctx)
        if ctx.needs_input_grad[0]:
            gx = bmm(gysm, vm).to(v.dtype)
        if ctx.needs_input_grad[1]:  # dL/dv = (gy s)^T x - v * dL/ds * s / ||v||^2
            c = (dscale * scale * inv.square()).transpose(1, 2)  # [S, out, 1]
            gv = _weight_product(ctx, gysm, xm)
            gv = gv.to(v.dtype).addcmul_(v, c, value=-1.0)
        gg = dscale * inv if ctx.needs_input_grad[2] else None
        gb = gy.sum(dim=1, keepdim=True) if ctx.needs_input_grad[3] else None
        return gx, gv, gg, gb, None


class WNLinear(nn.Module):
    """Weight-normalized affine map for S models: y = x @ W + b with W = (g / ||v||) v^T.

    The direction v is stored as [S, out, in] (so the norms reduce over contiguous memory); v ~ N(0, 0.05^2)
    per model from its generator, g = ``init_scale`` (column norm of W, so each output unit starts with
    variance ~ init_scale^2 * Var(x)), b = ``bias_init``.
    """

    def __init__(self, gens: Sequence[torch.Generator], n_in: int, n_out: int, init_scale: float = 1.0,
                 bias_init: float | torch.Tensor = 0.0) -> None:
        super().__init__()
        s = len(gens)
        self.n_in, self.n_out = n_in, n_out
        self.v = nn.Parameter(_normal(gens, (n_out, n_in), 0.05))
        self.g = nn.Parameter(torch.full((s, 1, n_out), float(init_scale)))
        b = torch.zeros(s, 1, n_out) + torch.as_tensor(bias_init, dtype=torch.float32)
        self.b = nn.Parameter(b)
        self.low_precision = False   # bfloat16 operands in the products (pertvae_core.precision)

    def weight_dir(self) -> torch.Tensor:
        return self.v

    def forward(self, x: torch.Tensor, outputs: slice | None = None) -> torch.Tensor:
        """y [S, B, out]; ``outputs``: only these output units (each computed as in the whole layer)."""
        v, g, b = self.weight_dir(), self.g, self.b
        if outputs is not None:
            v, g, b = v[:, outputs], g[..., outputs], b[..., outputs]
        return _WNLinearFn.apply(x, v, g, b, self.low_precision)

    def weight(self) -> torch.Tensor:
        """The effective weight W [S, in, out] (for tests and inspection)."""
        v = self.weight_dir()
        inv = v.norm(dim=2, keepdim=True).clamp_min(NORM_MIN).reciprocal()
        return (v * self.g.transpose(1, 2) * inv).transpose(1, 2)


class MaskedWNLinear(WNLinear):
    """:class:`WNLinear` with a fixed connectivity mask M [in, out] (MADE): W = g * (v * M) / ||v * M||."""

    def __init__(self, gens: Sequence[torch.Generator], mask: torch.Tensor, init_scale: float = 1.0,
                 bias_init: float | torch.Tensor = 0.0) -> None:
        n_in, n_out = mask.shape
        super().__init__(gens, n_in, n_out, init_scale, bias_init)
        self.register_buffer("mask_t", mask.to(torch.float32).T.contiguous())  # [out, in] like v

    def weight_dir(self) -> torch.Tensor:
        return self.v * self.mask_t


class BatchedLinear(nn.Module):
    """Plain affine map y = x @ W + b for S models, W and b initialized to zero (identity drug effect)."""

    def __init__(self, n_models: int, n_in: int, n_out: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(n_models, n_in, n_out))
        self.b = nn.Parameter(torch.zeros(n_models, 1, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.b, x, self.w)
