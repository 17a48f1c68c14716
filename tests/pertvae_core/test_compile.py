"""``FitConfig.compile`` (torch.compile of the training loss): the whole loss is one graph with bf16 products
(no split around the fused log-likelihood), its products take bfloat16 operands forward and backward (cast,
on AMX too, where eager products use oneDNN's bfloat16 arithmetic: layers.CPU_BF16_MATH), and a compiled fit
trains as the eager one does (float round-off apart)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd

from pertvae_core import layers, train
from pertvae_core.config import FitConfig
from pertvae_core.data import SplitData
from pertvae_core.elbo import batch_terms, training_loss
from pertvae_core.model import PertVAE
from pertvae_core.train import fit, make_train_step, no_cpp_compiler

CFG = FitConfig(latent=4, hidden=(24, 16), context=6, iaf_hidden=12, iaf_steps=2, batch_pairs=8,
                batch_singletons=6, max_epochs=4, patience=3, precision="bf16")
GENES = 30
ALONE_BMM = torch.ops.pertvae.bmm.default


@pytest.fixture(params=["math", "casts"])
def bf16_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The eager bf16 products as oneDNN's bf16 math on float32 operands (a CPU with AMX; what the graph
    holds does not depend on the CPU, so it runs wherever torch has the setting) or as casts (every other
    CPU)."""
    if request.param == "math" and not layers.BF16_MATH_AVAILABLE:
        pytest.skip("this torch has no oneDNN bfloat16 arithmetic for float32 products")
    monkeypatch.setattr(layers, "CPU_BF16_MATH", request.param == "math")
    # the test model's layers are all small: at the default every product would stay float32 (layers._small)
    monkeypatch.setattr(layers, "SMALL_PRODUCT_FLOPS", 0.0)
    return request.param


def _loss(pairs: bool):
    """A step's loss for 2 batched models on fixed random data, as make_train_step builds it; and its
    inputs."""
    model = PertVAE(GENES, CFG, [torch.Generator().manual_seed(s) for s in (1, 2)], pairs=pairs)
    g = torch.Generator().manual_seed(0)
    bp = 5 if pairs else 0
    x1, x2, xs = (torch.randn(2, b, GENES, generator=g) for b in (bp, bp, 6))
    eps = torch.randn(2, 2 * bp + 6, CFG.latent, generator=g)
    w = torch.full((2,), 0.5)

    def loss(x1, x2, xs, eps):
        return training_loss(model, batch_terms(model, x1, x2, xs, eps), w, 1 - w, 0.0, 0.01).sum()

    return loss, (x1, x2, xs, eps), model


def _graphs(fn, args) -> tuple[int, list[torch.fx.GraphModule], list[torch.fx.GraphModule]]:
    """Graphs dynamo made of ``fn`` (each split adds one) and the forward and backward graphs of each,
    compiled by AOTAutograd alone (no inductor, no C++ compiler)."""
    fw, bw = [], []

    def keep(out: list):
        def compiler(gm: torch.fx.GraphModule, _inputs):
            out.append(gm)
            return make_boxed_func(gm.forward)
        return compiler

    torch._dynamo.reset()
    compiled = torch.compile(fn, backend=aot_autograd(fw_compiler=keep(fw), bw_compiler=keep(bw)),
                             dynamic=False)
    compiled(*args).backward()
    torch._dynamo.reset()
    return len(fw), fw, bw


def _count(graphs: list[torch.fx.GraphModule], target, dtype: torch.dtype | None = None) -> int:
    """Calls of ``target`` (of a first operand of ``dtype``, if given) in ``graphs``."""
    def first(n: torch.fx.Node) -> torch.dtype | None:
        val = n.args[0].meta.get("val") if isinstance(n.args[0], torch.fx.Node) else None
        return getattr(val, "dtype", None)

    return sum(1 for gm in graphs for n in gm.graph.nodes if n.op == "call_function" and n.target == target
               and (dtype is None or first(n) == dtype))


@pytest.mark.parametrize("pairs", [True, False], ids=["pertvae", "vae"])
def test_a_compiled_bf16_loss_is_one_graph_with_bf16_products_forward_and_backward(pairs: bool,
                                                                                  bf16_path: str) -> None:
    loss, args, model = _loss(pairs)
    n_graphs, fw, bw = _graphs(loss, args)
    layers_wn = [m for m in model.modules() if isinstance(m, layers.WNLinear)]
    aten = torch.ops.aten
    bf16 = [(aten.bmm.default, torch.bfloat16), (ALONE_BMM, torch.bfloat16)]   # cast operands either way

    def low(graphs: list[torch.fx.GraphModule]) -> int:
        return sum(_count(graphs, *op) for op in bf16)

    assert n_graphs == 1   # a graph break makes one more
    assert low(fw) == len(layers_wn)              # y = x v^T per layer
    assert low(bw) == 2 * len(layers_wn) - 1      # dL/dx and dL/dv; no dL/dx of the input layer
    # by pertvae::bmm: the input layer's y = x v^T (its cast weight has no other use) and every dL/dv, whose
    # (gy s)^T is laid out contiguous (layers._weight_product)
    assert (_count(fw, ALONE_BMM), _count(bw, ALONE_BMM)) == (1, len(layers_wn))
    f32 = torch.float32
    plain = _count(fw + bw, aten.bmm.default, f32) + _count(fw + bw, aten.baddbmm.default, f32)
    # float32 products left: the drug effect (Eq. 5) and its two gradients, PertVAE only
    assert plain == (3 if pairs else 0)


def test_a_layer_of_small_products_keeps_float32_under_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU a layer whose products fall below layers.SMALL_PRODUCT_FLOPS (2 B in out FLOPs a model)
    takes float32 operands (layers._small): at the default all of the test model's; between, only its two
    largest (input 30 x 24 and output 24 x 60, of 16 rows: 2 x 16 x 720 FLOPs and more)."""
    aten, bf16, f32 = torch.ops.aten, torch.bfloat16, torch.float32
    monkeypatch.setattr(layers, "CPU_BF16_MATH", False)
    for threshold, low_fw, low_bw in ((layers.SMALL_PRODUCT_FLOPS, 0, 0), (2 * 16 * 700, 2, 3)):
        monkeypatch.setattr(layers, "SMALL_PRODUCT_FLOPS", threshold)
        loss, args, model = _loss(True)
        _, fw, bw = _graphs(loss, args)
        n_wn = sum(isinstance(m, layers.WNLinear) for m in model.modules())
        low = [_count(g, aten.bmm.default, bf16) + _count(g, ALONE_BMM, bf16) for g in (fw, bw)]
        assert low == [low_fw, low_bw], threshold
        # every other product of the layers in float32 (3 more: the drug effect and its gradients)
        assert _count(fw + bw, aten.bmm.default, f32) + _count(fw + bw, aten.baddbmm.default, f32) == (
            3 * n_wn - 1 - low_fw - low_bw + 3)


def test_an_fp32_compiled_loss_is_one_graph_of_float32_products() -> None:
    loss, args, model = _loss(True)
    model.set_precision("fp32")
    n_graphs, fw, bw = _graphs(loss, args)
    bf16 = torch.bfloat16
    aten = torch.ops.aten
    assert n_graphs == 1 and _count(fw + bw, aten.bmm.default, bf16) + _count(fw + bw, ALONE_BMM, bf16) == 0


def test_a_compiled_bf16_step_copies_no_operand_of_its_products(bf16_path: str) -> None:
    """Inductor's real compile of a step of one model (the CPU's batch of one): no product's operand is
    copied to a contiguous tensor first (torch's bfloat16 bmm does that with an operand laid out with a zero
    batch stride, as inductor lays out the input layer's; pertvae::bmm)."""
    cfg = dataclasses.replace(CFG, compile=True)
    model = PertVAE(GENES, cfg, [torch.Generator().manual_seed(1)], pairs=False)
    g = torch.Generator().manual_seed(0)
    x1 = x2 = torch.empty(1, 0, GENES)
    xs, eps = torch.randn(1, 6, GENES, generator=g), torch.randn(1, 6, CFG.latent, generator=g)
    w = torch.zeros(1)
    torch._dynamo.reset()
    step, _ = make_train_step(model, cfg, w, 1 - w)
    active = torch.ones(1, dtype=torch.bool)
    for _ in range(2):
        step(x1, x2, xs, eps, active)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step(x1, x2, xs, eps, active)
    torch._dynamo.reset()
    names = [e.name for e in prof.events()]
    assert "aten::bmm" in names and "aten::clone" not in names and "aten::contiguous" not in names


def _split(rng: np.random.Generator) -> SplitData:
    def a(n: int) -> np.ndarray:
        return rng.normal(size=(n, GENES)).astype(np.float32)

    x1 = a(24)
    return SplitData(x1_train=x1, x2_train=x1 + 0.5, xs_train=a(16), x1_val=a(6), x2_val=a(6) + 0.5,
                     x1_test=a(4), x2_test=a(4))


def test_a_compiled_bf16_fit_trains_as_the_eager_one_and_reproducibly(bf16_path: str) -> None:
    """Inductor's real compile (C++): the same epochs and validation losses to float round-off; a second
    fit with the same seed (the process's compiled graph reused, as a worker's later fits) equals the
    first exactly."""
    data = [_split(np.random.default_rng(0))]
    eager = fit(data, CFG, [7])
    torch._dynamo.reset()
    compiled, again = (fit(data, dataclasses.replace(CFG, compile=True), [7]) for _ in range(2))
    torch._dynamo.reset()
    assert compiled.precision == eager.precision == "bf16"
    assert compiled.epochs == eager.epochs and compiled.status == eager.status
    np.testing.assert_allclose(compiled.history[0], eager.history[0], rtol=2e-3)
    assert again.history == compiled.history and again.epochs == compiled.epochs


def test_without_a_cpp_compiler_a_compiled_fit_trains_eagerly_and_says_so() -> None:
    import torch._inductor.config as inductor

    # inductor's own patch: pytest's monkeypatch deletes the setting on undo, and every later compile in
    # the process then trained eagerly ("torch._inductor.config.cpp.cxx does not exist")
    before = no_cpp_compiler()
    data = [_split(np.random.default_rng(0))]
    with inductor.patch({"cpp.cxx": ("/nonexistent/g++",)}), \
            pytest.warns(UserWarning, match="needs a C.. compiler.*training eagerly"):
        st = fit(data, dataclasses.replace(CFG, compile=True, max_epochs=2), [7])
    assert st.status == ["done"] and st.epochs == [2]
    assert no_cpp_compiler() == before   # this machine's compiler is back for the tests after this one


def test_a_fit_records_whether_its_steps_ran_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the graphs dynamo keeps (train.COMPILED_SHAPES) a compiled step silently runs eagerly (oneDNN's
    bf16 math on AMX, not casts): a fit's ``steps_compiled`` says what ran, for its products' record."""
    data = [_split(np.random.default_rng(0))]
    cfg = dataclasses.replace(CFG, compile=True, max_epochs=1)
    torch._dynamo.reset()
    monkeypatch.setattr(train, "COMPILED_SHAPES", 1)
    # dynamo's own patch: pytest's monkeypatch deletes a torch config setting on undo, and every later use
    # of it in the process failed ("torch._dynamo.config.recompile_limit does not exist")
    with torch._dynamo.config.patch(recompile_limit=1):
        first = fit(data, cfg, [7])
        past = fit(data, dataclasses.replace(cfg, latent=CFG.latent + 1), [7])   # a second shape: eager
    torch._dynamo.reset()
    eager = fit(data, dataclasses.replace(cfg, compile=False), [7])
    assert (first.steps_compiled, past.steps_compiled, eager.steps_compiled) == (True, False, False)
    assert torch._dynamo.config.recompile_limit >= 1   # the setting is still there for later tests
