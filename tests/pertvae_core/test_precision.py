"""Matrix-product precision (pertvae_core.precision): which products take bfloat16 operands, that weights,
gradients and Adam state stay float32, that bf16 computes what fp32 does to bfloat16 rounding, and how "auto"
resolves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pertvae_core import layers
from pertvae_core import precision as prec
from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData
from pertvae_core.layers import MaskedWNLinear, WNLinear, _WNLinearFn
from pertvae_core.model import PertVAE
from pertvae_core.train import fit, make_train_step

CFG = FitConfig(latent=4, hidden=(48, 24), context=6, iaf_hidden=16, batch_pairs=8, batch_singletons=6,
                max_epochs=3, patience=2)
GENES = 40


def bf16_products_as(mode: str) -> bool:
    """For a test of the bf16 products done as ``mode``: "math" (oneDNN's bfloat16 arithmetic on float32
    operands, pertvae_core.layers.bf16_math; skipped where this CPU or torch lacks it) or "casts"."""
    if mode == "math" and not layers.CPU_BF16_MATH:
        pytest.skip("no oneDNN bfloat16 arithmetic for float32 products on this CPU or torch")
    return mode == "math"


@pytest.fixture
def all_products_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every product of these tiny models in bf16 under oneDNN's bf16 math, as a paper-sized model's are:
    each is below layers.SMALL_PRODUCT_FLOPS, which would keep it float32."""
    monkeypatch.setattr(layers, "SMALL_PRODUCT_FLOPS", 0)


@pytest.fixture(params=["math", "casts"])
def bf16_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
              all_products_bf16: None) -> str:
    monkeypatch.setattr(layers, "CPU_BF16_MATH", bf16_products_as(request.param))
    return request.param


def _operand_dtype(t: torch.Tensor) -> torch.dtype:
    """A product operand's type as the product computes it: float32 under bf16_math is bfloat16."""
    math = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    bf16 = t.dtype == torch.float32 and getattr(math, "fp32_precision", "none") == "bf16"
    return torch.bfloat16 if bf16 else t.dtype


class Products(TorchDispatchMode):
    """Records (op, operand dtypes as computed) of every matrix product."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, torch.dtype, torch.dtype]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        op = func.overloadpacket
        aten = torch.ops.aten
        if op in (aten.bmm, aten.mm):
            self.seen.append((str(op), _operand_dtype(args[0]), _operand_dtype(args[1])))
        elif op in (aten.baddbmm, aten.addmm):
            self.seen.append((str(op), _operand_dtype(args[1]), _operand_dtype(args[2])))
        return func(*args, **(kwargs or {}))


def model_cfg(precision: str) -> FitConfig:
    return FitConfig(**{**CFG.__dict__, "precision": precision})


def _step(precision: str):
    """A PertVAE, its optimizer and one train step of it on fixed random data."""
    cfg = model_cfg(precision)
    model = PertVAE(GENES, cfg, [torch.Generator().manual_seed(0)])
    g = torch.Generator().manual_seed(1)
    x1, x2, xs = (torch.randn(1, b, GENES, generator=g) for b in (8, 8, 6))
    eps = torch.randn(1, 22, CFG.latent, generator=g)
    w = torch.tensor([0.5])
    step, opt = make_train_step(model, cfg, w, 1 - w)
    return model, opt, lambda: step(x1, x2, xs, eps, torch.ones(1, dtype=torch.bool))


def test_bf16_products_take_bfloat16_operands_and_everything_else_stays_float32(bf16_mode: str) -> None:
    model, opt, run = _step("bf16")
    assert model.precision == "bf16"
    assert all(m.low_precision for m in model.modules() if isinstance(m, WNLinear))
    assert any(isinstance(m, MaskedWNLinear) for m in model.modules())   # the IAF's MADE layers among them
    with Products() as mode:
        loss = run()
    assert torch.isfinite(loss).all() and loss.dtype == torch.float32
    low = [s for s in mode.seen if s[1] == s[2] == torch.bfloat16]
    wn = sum(isinstance(m, WNLinear) for m in model.modules())
    # every weight-normalized layer: forward, dL/dv, and dL/dx except the first layer's (its input is data)
    assert len(low) == 3 * wn - 1 and {s[0] for s in low} == {"aten.bmm"}
    # the drug effect (Eq. 5) stays float32: its forward and its two gradients
    f32 = (torch.float32, torch.float32)
    assert sorted(s for s in mode.seen if s not in low) == [("aten.baddbmm", *f32), ("aten.bmm", *f32),
                                                            ("aten.bmm", *f32)]
    for p in model.parameters():
        assert p.dtype == torch.float32
        for v in opt.state[p].values():
            assert not torch.is_floating_point(v) or v.dtype == torch.float32
    _, _, run32 = _step("fp32")
    with Products() as mode32:
        run32()
    assert {(a, b) for _, a, b in mode32.seen} == {(torch.float32, torch.float32)}


def test_bf16_layer_is_fp32_to_bfloat16_rounding_forward_and_backward(bf16_mode: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 32, 300, generator=g)
    v = torch.randn(2, 200, 300, generator=g) * 0.05
    gs, b = torch.rand(2, 1, 200, generator=g) + 0.5, torch.randn(2, 1, 200, generator=g)
    gy = torch.randn(2, 32, 200, generator=g)
    outs = {}
    for low in (False, True):
        args = [t.clone().requires_grad_() for t in (x, v, gs, b)]
        y = _WNLinearFn.apply(*args, low)
        y.backward(gy)
        outs[low] = [y.detach()] + [a.grad for a in args]
    for name, a, ref in zip(("y", "dx", "dv", "dg", "db"), outs[True], outs[False], strict=True):
        assert a.dtype == torch.float32, name
        err = (a - ref).norm() / ref.norm()
        assert err < 1e-2, (name, float(err))   # bfloat16 operands: 8 bits of mantissa
        if name != "db":   # the bias gradient has no product in it: exactly fp32's
            assert err > 1e-6, (name, float(err))   # the products did run in bfloat16
    torch.testing.assert_close(outs[True][4], outs[False][4])


def _splits() -> list[SplitData]:
    rng = np.random.default_rng(0)
    base = rng.normal(size=GENES)

    def f(n: int) -> np.ndarray:
        return (base + rng.normal(size=(n, GENES))).astype(np.float32)

    x1 = f(24)
    return [SplitData(x1, x1 + 0.5, f(6), f(6), f(5), f(5), f(12))]


def test_bf16_math_is_set_around_the_products_only(all_products_bf16: None) -> None:
    bf16_products_as("math")
    matmul = torch.backends.mkldnn.matmul
    before = matmul.fp32_precision
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 8, 16, generator=g), torch.randn(1, 16, 4, generator=g)
    with Products() as mode:
        layers.bf16_math_bmm(a, b)
    assert mode.seen == [("aten.bmm", torch.bfloat16, torch.bfloat16)]
    assert matmul.fp32_precision == before
    _, _, run = _step("bf16")
    run()
    assert matmul.fp32_precision == before   # a bf16 step leaves torch's setting as it found it


@pytest.mark.parametrize("latent", [2, 16, 64])
def test_a_latent_sized_product_stays_float32_under_bf16_math(latent: int) -> None:
    """oneDNN's bf16 kernel costs ~40 us a call at a small latent's sizes, float32 5-30 us: a product below
    layers.SMALL_PRODUCT_FLOPS (2 M N K per model) is torch.bmm's float32 exactly, a larger one bf16."""
    bf16_products_as("math")
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 128, 300, generator=g), torch.randn(2, 300, latent, generator=g)
    small = 2 * 128 * 300 * latent < layers.SMALL_PRODUCT_FLOPS
    assert small == (latent < 64)
    with Products() as mode:
        got = layers.bf16_math_bmm(a, b)
    want = torch.bmm(a, b)
    if small:
        assert mode.seen == [("aten.bmm", torch.float32, torch.float32)]
        assert torch.equal(got, want)
    else:
        assert mode.seen == [("aten.bmm", torch.bfloat16, torch.bfloat16)]
        err = float((got - want).norm() / want.norm())
        assert 1e-6 < err < 1e-2   # bfloat16 operands: 8 bits of mantissa


def test_a_bf16_fit_trains_like_fp32_and_says_so(all_products_bf16: None) -> None:
    data = _splits()
    a = fit(data, model_cfg("fp32"), [7])
    b = fit(data, model_cfg("bf16"), [7])
    assert (a.precision, b.precision) == ("fp32", "bf16") and b.model.precision == "bf16"
    assert b.status == ["done"]
    np.testing.assert_allclose(b.history[0], a.history[0], rtol=0.02)
    assert b.history[0] != a.history[0]


def test_auto_resolves_to_bf16_only_with_native_bfloat16(monkeypatch: pytest.MonkeyPatch) -> None:
    assert prec.resolve_precision("fp32", "cpu") == "fp32" and prec.resolve_precision("bf16", "cpu") == "bf16"
    for native, want in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(prec, "cpu_has_native_bf16", lambda native=native: native)
        assert prec.resolve_precision("auto", "cpu") == want
        assert PertVAE(GENES, model_cfg("auto"), [torch.Generator()]).precision == want
    assert prec.resolve_precision("auto", "mps") == "fp32"
    if not torch.cuda.is_available():
        assert prec.resolve_precision("auto", "cuda") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        prec.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match=r"FitConfig.precision = 'fp16': must be one of auto, fp32, bf16"):
        FitConfig(precision="fp16")
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16'"):
        PertVAE(GENES, CFG, [torch.Generator()]).set_precision("auto")


def test_cpu_flags_name_the_bfloat16_instructions() -> None:
    x86 = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 avx512_vnni\n"
    assert prec.cpuinfo_has_bf16(x86)
    assert prec.cpuinfo_has_bf16("flags : fpu amx_tile amx_bf16\n")
    assert prec.cpuinfo_has_bf16("Features\t: fp asimd bf16 i8mm\n")   # ARMv8.6
    assert not prec.cpuinfo_has_bf16("flags : fpu avx2 avx512f avx512bw\n")   # AVX-512 without BF16
    assert not prec.cpuinfo_has_bf16("model name : bf16 lookalike\n")
    # oneDNN's bf16 arithmetic on float32 operands (layers.CPU_BF16_MATH) only where AMX is
    assert not prec.cpuinfo_has_bf16(x86, prec.CPU_AMX_FLAGS)
    assert prec.cpuinfo_has_bf16("flags : fpu avx512_bf16 amx_tile amx_bf16\n", prec.CPU_AMX_FLAGS)


def test_this_cpus_bf16_products_round_to_bfloat16(all_products_bf16: None) -> None:
    """Whichever way this CPU takes bf16 products (oneDNN's bf16 math on AMX, else casts), they round to
    bfloat16: without AMX oneDNN's bf16 setting computed float32 (relative error 4e-7), and a fit said
    "bf16" of float32 products."""
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(1, 64, 300, generator=g), torch.randn(1, 200, 300, generator=g)
    gs, b = torch.ones(1, 1, 200), torch.zeros(1, 1, 200)
    want, got = (_WNLinearFn.apply(x, v, gs, b, low) for low in (False, True))
    err = float((got - want).norm() / want.norm())
    assert 1e-4 < err < 1e-2, err


def test_the_way_of_bf16_products_is_named_for_records(monkeypatch: pytest.MonkeyPatch) -> None:
    amx = "oneDNN's bfloat16 arithmetic on float32 operands (AMX; products under 3 MFLOP a model in float32)"
    monkeypatch.setattr(layers, "native_bf16", lambda device: True)
    cast = "operands cast to bfloat16; products under 3 MFLOP a model in float32"   # on the CPU
    for math, want in ((True, amx), (False, cast)):
        monkeypatch.setattr(layers, "CPU_BF16_MATH", math)
        assert layers.bf16_way("cpu") == want
        assert layers.bf16_way("cuda") == "operands cast to bfloat16"
        assert layers.products_way("bf16", "cpu") == f"bf16: {want}"
        assert layers.products_way("bf16", "cuda") == "bf16: operands cast to bfloat16"
        assert layers.products_way("fp32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="resolved"):
        layers.products_way("auto")


def test_emulated_bf16_products_say_so_in_their_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU (or GPU) without bfloat16 instructions runs bf16 products emulated, ~9-11x fp32's time: a
    fit's record and run.json say so, not merely "cast"."""
    monkeypatch.setattr(layers, "CPU_BF16_MATH", False)
    monkeypatch.setattr(layers, "native_bf16", lambda device: False)
    emulated = "operands cast to bfloat16, emulated (no bfloat16 instructions)"
    small = "; products under 3 MFLOP a model in float32"   # on the CPU (layers._small)
    assert layers.bf16_way("cpu") == emulated + small and layers.bf16_way("cuda") == emulated
    assert layers.products_way("bf16", "cpu") == f"bf16: {emulated}{small}"
    monkeypatch.setattr(layers, "native_bf16", prec.native_bf16)   # this machine's CPU, as it is
    assert ("emulated" in layers.bf16_way("cpu")) == (not prec.cpu_has_native_bf16())
