"""ConvLayer on the Amaranth simulator: bit-exact against the golden model, with the timing of
its plan."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from hypothesis import given, settings
from hypothesis import strategies as st
from nn_helpers import layer_inputs
from specs import random_conv_spec, random_inputs, random_spec

from amaranth_nn import Activation, golden
from amaranth_nn.conv import ConvLayer
from amaranth_nn.conv_plan import ConvPlan
from amaranth_nn.dense import DenseLayer
from amaranth_nn.lanes import pack_beats, unpack_beats
from amaranth_nn.models import MODELS
from amaranth_nn.simulate import run_streams
from amaranth_nn.sliding import SlidingWindow
from amaranth_nn.targets import ECP5Target


def check_conv(spec, index, x, *, pe, simd, in_lanes, stalls=(0.0, 0.0), seed=0,
               arch="auto", running=False):
    """Run network inputs ``x`` through conv layer ``index`` alone; assert bit-exactness with
    the golden model; returns ``(layer, run)``."""
    plan = ConvPlan(spec, index, pe=pe, simd=simd, in_lanes=in_lanes,
                    running_accumulators=running)
    layer = plan.layer
    inputs = layer_inputs(spec, index, x)
    words = pack_beats(inputs.reshape(-1, layer.in_channels), in_lanes, plan.in_width)
    assert len(words) == len(x) * plan.in_beats
    dut = ConvLayer(plan, arch=arch)
    run = run_streams(dut, words, len(x) * plan.out_beats, stalls=stalls, seed=seed)
    out, pad = unpack_beats(run.outputs, pe, plan.out_width, layer.out_channels)
    expected = golden.run_layers(spec, x)[index]
    assert (out.reshape(len(x), -1) == expected).all()
    assert (pad == 0).all()
    return dut, run


@st.composite
def conv_shapes(draw):
    """``(input_shape, (out_channels, kernel, stride, padding))`` of a small 1-D or 2-D conv."""
    axes = draw(st.integers(1, 2), label="axes")
    kernel = tuple(draw(st.integers(1, 3), label="kernel") for _ in range(axes))
    padding = tuple(draw(st.integers(0, k - 1), label="padding") for k in kernel)
    spatial = tuple(draw(st.integers(max(1, k - 2 * p), 6 if axes == 1 else 4), label="size")
                    for k, p in zip(kernel, padding, strict=True))
    stride = tuple(draw(st.integers(1, 2), label="stride") for _ in range(axes))
    channels = draw(st.integers(1, 4), label="channels")
    out = draw(st.integers(1, 4), label="out_channels")
    return (*spatial, channels), (out, kernel, stride, padding)


@settings(max_examples=12, deadline=None)
@given(shape=conv_shapes(), data=st.data())
def test_random_conv_bit_exact(shape, data):
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    input_shape, conv = shape
    spec = random_conv_spec(rng, input_shape, [conv])
    layer = spec.layers[0]
    pe = data.draw(st.integers(1, layer.out_channels), label="pe")
    simd = data.draw(st.integers(1, layer.window_size), label="simd")
    in_lanes = data.draw(st.integers(1, layer.in_channels), label="in_lanes")
    stalls = data.draw(st.sampled_from([(0.0, 0.0), (0.3, 0.0), (0.0, 0.3), (0.4, 0.4)]),
                       label="stalls")
    x = random_inputs(rng, spec, data.draw(st.integers(1, 3), label="batch"))
    running = data.draw(st.booleans(), label="running accumulators")
    dut, run = check_conv(spec, 0, x, pe=pe, simd=simd, in_lanes=in_lanes, stalls=stalls,
                          seed=seed, running=running)
    if len(x) == 1 and stalls[1] == 0:  # an isolated sample, sink always ready
        t0 = run.in_cycles[0]
        assert dut.plan.output_times([t - t0 for t in run.in_cycles]) == \
            [t - t0 for t in run.out_cycles]


@pytest.mark.parametrize("pe, simd, in_lanes", [(2, 3, 2), (3, 5, 1), (1, 18, 3)])
def test_second_layer_after_relu_with_stalls(pe, simd, in_lanes):
    """The second conv sees the first one's ReLU outputs (an unsigned operand) and pads them
    with zeros."""
    rng = np.random.default_rng(pe * 100 + simd)
    spec = random_conv_spec(rng, (5, 4, 2), [(3, (2, 2), (1, 1), (1, 0)),
                                             (4, (3, 2), (1, 2), (1, 1))],
                            activation=Activation.relu())
    plan = ConvPlan(spec, 1, pe=pe, simd=simd, in_lanes=in_lanes)
    assert not plan.dense.x_shape.signed
    check_conv(spec, 1, random_inputs(rng, spec, 3), pe=pe, simd=simd, in_lanes=in_lanes,
               stalls=(0.3, 0.3), seed=pe)


@pytest.mark.parametrize("input_shape, conv, pe, simd, in_lanes", [
    ((12, 2), (3, (3,), (1,), (1,)), 3, 6, 2),         # one group, one beat per window
    ((12, 2), (5, (3,), (1,), (1,)), 2, 4, 1),         # 3 groups of 2 beats
    ((9, 3), (2, (2,), (3,), (1,)), 2, 6, 1),          # input-bound: ii = in_beats
    ((5, 5, 1), (4, (3, 3), (1, 1), (1, 1)), 4, 9, 1),  # 2-D, a window per cycle
    ((4, 4, 3), (5, (2, 2), (2, 2), (0, 0)), 2, 5, 2),  # 2-D, lanes that divide nothing
])
@pytest.mark.parametrize("running", [False, True])
def test_steady_state_ii_and_output_times(input_shape, conv, pe, simd, in_lanes, running):
    rng = np.random.default_rng(simd)
    spec = random_conv_spec(rng, input_shape, [conv])
    dut, run = check_conv(spec, 0, random_inputs(rng, spec, 5), pe=pe, simd=simd,
                          in_lanes=in_lanes, running=running)
    plan = dut.plan
    starts = np.array(run.out_cycles[::plan.out_beats])
    assert (np.diff(starts) == plan.ii).all(), (np.diff(starts), plan.ii)
    layer = plan.layer
    engine = layer.positions_out * -(-layer.out_channels // pe) * -(-layer.window_size // simd)
    assert plan.ii == max(engine, plan.in_beats)
    # An isolated sample, from a source valid on every cycle and from one that stalls: every
    # output beat at the cycle the plan says.
    for stalls in ((0.0, 0.0), (0.5, 0.0)):
        _, run = check_conv(spec, 0, random_inputs(rng, spec, 1), pe=pe, simd=simd,
                            in_lanes=in_lanes, stalls=stalls, seed=pe, running=running)
        t0 = run.in_cycles[0]
        assert plan.output_times([t - t0 for t in run.in_cycles]) == \
            [t - t0 for t in run.out_cycles]


@pytest.mark.parametrize("model, index, pe, simd, in_lanes", [
    ("mnist1d", 0, 4, 5, 1),
    ("mnist1d", 2, 4, 8, 16),
    ("mnist1d", 4, 8, 16, 4),
    ("digits-conv", 0, 8, 9, 1),
    ("digits-conv", 2, 16, 24, 8),
])
def test_embedded_model_conv_layers(model, index, pe, simd, in_lanes):
    """Every conv layer of the embedded conv models, on a few test samples, with its own input
    range (after a ReLU and a max pool, an unsigned operand)."""
    spec = MODELS[model].spec()
    x, _ = MODELS[model].test_set()
    check_conv(spec, index, x[:2], pe=pe, simd=simd, in_lanes=in_lanes, stalls=(0.2, 0.2))


def test_ecp5_architecture_with_modelled_multipliers():
    """The ECP5 form of the engine (LUT ROMs, registered 18x18 multipliers) behind the window
    generator, bit-exact."""
    spec = MODELS["digits-conv"].spec()
    x, _ = MODELS["digits-conv"].test_set()
    dut, _ = check_conv(spec, 0, x[:2], pe=4, simd=5, in_lanes=1, stalls=(0.2, 0.2),
                        arch=ECP5Target(model_multipliers=True), running=True)
    assert isinstance(dut.arch, ECP5Target)


def test_plan_figures_and_engine_instances():
    spec = MODELS["mnist1d"].spec()
    plan = ConvPlan(spec, 2, pe=4, simd=8, in_lanes=16)
    assert (plan.in_lanes, plan.out_lanes, plan.in_beats, plan.out_beats) == (16, 4, 20, 80)
    assert plan.ii == plan.engine_ii == 20 * 4 * 10
    assert plan.multipliers == 32
    assert [rom.words for rom in plan.roms] == [rom.words for rom in plan.dense.roms]
    assert len(plan.roms) == 5
    assert [rom.path for rom in plan.roms] == [("layer2", "dense", f"weights{p}")
                                               for p in range(4)] + [("layer2", "dense", "biases")]
    assert plan.dense.in_features == 80 and plan.dense.vectors == 20
    assert plan.window.out_lanes == 8 and plan.window.order == "window"
    # The generator and the existing dense engine, on this plan's parts.
    layer = ConvLayer(plan)
    m = layer.elaborate(None)
    assert isinstance(m.submodules.window, SlidingWindow)
    assert m.submodules.window.plan is plan.window
    assert type(m.submodules.dense) is DenseLayer
    assert m.submodules.dense.plan is plan.dense
    Fragment.get(m, None)  # the parts, and the layer, are then used
    Fragment.get(layer, None)


def test_errors():
    rng = np.random.default_rng(0)
    spec = random_conv_spec(rng, (6, 3), [(4, (3,), (1,), (1,))])
    with pytest.raises(TypeError, match=r"^Plan must be a ConvPlan, not 'x'$"):
        ConvLayer("x")
    plan = ConvPlan(spec, 0, pe=1, simd=1, in_lanes=1)
    with pytest.raises(ValueError, match=r"^Arch must be one of 'auto', 'generic', 'ecp5', "
                                         r"'ice40', not 'xc7'$"):
        ConvLayer(plan, arch="xc7")
    with pytest.raises(ValueError, match=r"^Pe must be from 1 to 4 \(the out_features of layer "
                                         r"0 \('conv0'\)\), not 5$"):
        ConvPlan(spec, 0, pe=5, simd=1, in_lanes=1)
    with pytest.raises(ValueError, match=r"^Simd must be from 1 to 9 \(the in_features of "
                                         r"layer 0 \('conv0'\)\), not 10$"):
        ConvPlan(spec, 0, pe=1, simd=10, in_lanes=1)
    with pytest.raises(ValueError, match=r"^In lanes must be from 1 to 3 \(the input channels "
                                         r"of layer 0 \('conv0'\)\), not 4$"):
        ConvPlan(spec, 0, pe=1, simd=1, in_lanes=4)
    with pytest.raises(TypeError, match=r"^In lanes must be an integer, not 1.5$"):
        ConvPlan(spec, 0, pe=1, simd=1, in_lanes=1.5)
    with pytest.raises(TypeError, match=r"^Pe must be an integer, not '2'$"):
        ConvPlan(spec, 0, pe="2", simd=1, in_lanes=1)
    dense_spec = random_spec(rng, [4, 3])
    with pytest.raises(ValueError, match=r"^Layer 0 \('dense0'\) is a dense layer, not a conv "
                                         r"layer$"):
        ConvPlan(dense_spec, 0, pe=1, simd=1, in_lanes=1)
    with pytest.raises(TypeError, match=r"^Spec must be a NetworkSpec, not 'spec'$"):
        ConvPlan("spec", 0, pe=1, simd=1, in_lanes=1)
