"""Pooling on the Amaranth simulator: the reducer alone (fed windows in kernel order from
software), and the whole layer (sliding window, then reducer), bit-exact against the golden
model, with the timing of their plans."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nn_helpers import layer_inputs, pack_positions, run_samples
from specs import pool_spec, random_inputs, random_spec

from amaranth_nn import QFormat, golden
from amaranth_nn.lanes import unpack_beats
from amaranth_nn.models import MODELS
from amaranth_nn.pool import Pool, PoolReducer
from amaranth_nn.pool_plan import RAM_MIN_BITS, RAM_MIN_GROUPS, PoolPlan, ReducerPlan
from amaranth_nn.simulate import run_streams
from amaranth_nn.spec import NetworkSpec
from amaranth_nn.windows import windows

STALLS = [(0.0, 0.0), (0.3, 0.0), (0.0, 0.3), (0.4, 0.4)]


def window_beats(layer, x, lanes, width, junk=None):
    """The windows of every sample of ``x`` (the layer's inputs), in kernel order: each kernel
    position as ``ceil(C/lanes)`` beats (:func:`nn_helpers.pack_positions`)."""
    channels = layer.input_shape[-1]
    win = windows(np.asarray(x), layer.spatial_in, channels, layer.kernel, layer.stride,
                  layer.padding)
    return pack_positions(win.reshape(-1, channels), lanes, width, junk)


def check_reducer(spec, lanes, x, *, index=None, stalls=(0.0, 0.0), seed=0, arch="auto"):
    """Run ``x`` (network inputs) through pooling layer ``index`` (default: the last) as a
    reducer fed from software; assert bit-exactness and zero padding lanes."""
    index = len(spec.layers) - 1 if index is None else index
    plan = ReducerPlan(spec, index, lanes=lanes)
    dut = PoolReducer(plan, arch=arch)
    words = window_beats(plan.layer, layer_inputs(spec, index, x), lanes, plan.width,
                         np.random.default_rng(seed))
    assert len(words) == len(x) * plan.in_beats
    run = run_streams(dut, words, len(x) * plan.out_beats, stalls=stalls, seed=seed)
    out, pad = unpack_beats(run.outputs, lanes, plan.width, plan.channels)
    expected = golden.run_layers(spec, x)[index]
    out = out.reshape(expected.shape)
    assert (out == expected).all(), (out, expected)
    assert (pad == 0).all()
    return plan, run


@st.composite
def pools(draw):
    """``(kind, shape, kernel, stride)`` of a 1-D or 2-D pool, an average pool's window a power
    of two."""
    kind = draw(st.sampled_from(["maxpool", "avgpool"]), label="kind")
    spatial = [draw(st.integers(1, 6), label="positions")
               for _ in range(draw(st.integers(1, 2), label="axes"))]
    if kind == "avgpool":
        kernel = [draw(st.sampled_from([k for k in (1, 2, 4) if k <= n]), label="kernel")
                  for n in spatial]
    else:
        kernel = [draw(st.integers(1, n), label="kernel") for n in spatial]
    stride = [draw(st.integers(1, 3), label="stride") for _ in spatial]
    channels = draw(st.integers(1, 9), label="channels")
    return kind, (*spatial, channels), kernel, stride


@settings(max_examples=50, deadline=None)
@given(pool=pools(), data=st.data())
def test_reducer_bit_exact(pool, data):
    kind, shape, kernel, stride = pool
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    width = data.draw(st.integers(2, 16), label="width")
    spec = pool_spec(kind, shape, kernel, stride, input_format=QFormat(width, 3),
                     relu_before=data.draw(st.booleans(), label="relu"), rng=rng)
    lanes = data.draw(st.integers(1, shape[-1]), label="lanes")
    x = random_inputs(rng, spec, data.draw(st.integers(1, 3), label="batch"))
    check_reducer(spec, lanes, x, stalls=data.draw(st.sampled_from(STALLS), label="stalls"),
                  seed=seed)


@pytest.mark.parametrize("kind", ["maxpool", "avgpool"])
@pytest.mark.parametrize("lanes", [1, 2, 3, 5])
def test_reducer_lanes_not_dividing_channels(kind, lanes):
    rng = np.random.default_rng(lanes)
    spec = pool_spec(kind, (4, 6, 5), (2, 2), (2, 1), input_format=QFormat(6, 2))
    check_reducer(spec, lanes, random_inputs(rng, spec, 2), stalls=(0.2, 0.2), seed=lanes)


def test_average_rounds_half_up_at_the_extremes():
    fmt = QFormat(5, 0)
    spec = pool_spec("avgpool", (4, 2), (4,), input_format=fmt)
    # Channel 0's window sums: -64, 60, -2 (a tie below zero rounds up: -0.5 -> 0) and -6
    # (-1.5 -> -1); channel 1's -64, 60, -1 (-0.25 -> 0) and 0.
    x = np.array([[fmt.min] * 8, [fmt.max] * 8, [-1, 0, 0, 1, -1, 0, 0, -2],
                  [-3, 0, -1, 0, -1, 0, -1, 0]])
    check_reducer(spec, 1, x)
    assert golden.run(spec, x).tolist() == [[-16, -16], [15, 15], [0, 0], [-1, 0]]


@pytest.mark.parametrize("kind, shape, kernel, stride, lanes",
                         [("maxpool", (12, 4), (3,), (2,), 3),
                          ("avgpool", (4, 4, 3), (2, 2), (2, 2), 2),
                          ("maxpool", (5, 3), (1,), (1,), 3),
                          ("avgpool", (6, 2), (1,), (2,), 1)])
def test_reducer_steady_state_ii_and_output_times(kind, shape, kernel, stride, lanes):
    rng = np.random.default_rng(lanes)
    spec = pool_spec(kind, shape, kernel, stride)
    plan, run = check_reducer(spec, lanes, random_inputs(rng, spec, 5))
    groups = -(-shape[-1] // lanes)
    assert plan.ii == plan.positions_out * np.prod(kernel) * groups
    starts = np.array(run.in_cycles[::plan.in_beats])
    assert (np.diff(starts) == plan.ii).all()  # one window beat per cycle, never waiting
    assert (np.diff(run.in_cycles) == 1).all()
    assert run.out_cycles[:plan.out_beats] == plan.output_times(run.in_cycles[:plan.in_beats])


@pytest.mark.parametrize("seed", [1, 2])
def test_reducer_output_times_with_source_stalls(seed):
    rng = np.random.default_rng(seed)
    spec = pool_spec("avgpool", (8, 5), (2,), (2,))
    plan, run = check_reducer(spec, 2, random_inputs(rng, spec, 1), stalls=(0.5, 0.0),
                              seed=seed)
    assert np.diff(run.in_cycles).max() > 1  # the source did stall
    assert run.out_cycles == plan.output_times(run.in_cycles)


def model_pools(name):
    """``(spec, index)`` of every pooling layer of an embedded model."""
    spec = NetworkSpec.load(MODELS[name].file(MODELS[name].spec_file))
    return spec, [i for i, layer in enumerate(spec.layers) if layer.kind == "maxpool"]


@pytest.mark.parametrize("name, lanes", [("mnist1d", 16), ("mnist1d", 5), ("digits-conv", 8),
                                         ("digits-conv", 3)])
def test_reducer_model_pools(name, lanes):
    """The models' pools as single layers, on inputs of the model's test set."""
    spec, indices = model_pools(name)
    assert len(indices) == {"mnist1d": 3, "digits-conv": 2}[name]
    test = np.load(MODELS[name].file(MODELS[name].test_file))
    x = test["x"][:2]
    for index in indices:
        lanes_here = min(lanes, spec.layers[index].output_channels)
        check_reducer(spec, lanes_here, x, index=index)


def test_reducer_plan():
    spec = pool_spec("avgpool", (6, 4, 7), (2, 4), (2, 1), input_format=QFormat(8, 1))
    plan = ReducerPlan(spec, 0, lanes=3)
    assert (plan.in_lanes, plan.out_lanes, plan.index, plan.kind) == (3, 3, 0, "avgpool")
    assert (plan.window, plan.beats_per_position, plan.positions_out) == (8, 3, 3)
    assert (plan.in_beats, plan.out_beats, plan.ii) == (72, 9, 72)
    assert (plan.shift, plan.rounding) == (3, 4)
    assert plan.partial_width == 11  # 8 * [-128, 127] + 4 = [-1020, 1020]
    assert (plan.multipliers, plan.roms) == (0, ())
    max_plan = ReducerPlan(pool_spec("maxpool", (6, 7), (3,)), 0, lanes=7)
    assert (max_plan.shift, max_plan.rounding, max_plan.partial_width) == (0, 0, 8)


def test_errors():
    spec = pool_spec("maxpool", (4, 4, 3), (2, 2))
    with pytest.raises(TypeError, match=r"^Spec must be a NetworkSpec, not None$"):
        ReducerPlan(None, 0, lanes=1)
    with pytest.raises(TypeError, match=r"^Layer index must be an integer, not 0.0$"):
        ReducerPlan(spec, 0.0, lanes=1)
    with pytest.raises(ValueError, match=r"^Layer index must be from 0 to 0, not 1$"):
        ReducerPlan(spec, 1, lanes=1)
    with pytest.raises(ValueError, match=r"^Lanes must be from 1 to 3 \(the channels of layer 0 "
                                         r"\('pool0'\)\), not 4$"):
        ReducerPlan(spec, 0, lanes=4)
    with pytest.raises(TypeError, match=r"^Lanes must be an integer, not True$"):
        ReducerPlan(spec, 0, lanes=True)
    with pytest.raises(ValueError, match=r"^Layer 0 \('dense0'\) is a dense layer, not a "
                                         r"maxpool or avgpool layer$"):
        ReducerPlan(random_spec(np.random.default_rng(0), [3, 2]), 0, lanes=1)
    with pytest.raises(TypeError, match=r"^Plan must be a ReducerPlan, not 'x'$"):
        PoolReducer("x")
    with pytest.raises(ValueError, match=r"^Arch must be one of "):
        PoolReducer(ReducerPlan(spec, 0, lanes=1), arch="x")


def check_pool(spec, lanes, x, *, index=None, stalls=(0.0, 0.0), seed=0):
    """Run ``x`` (network inputs) through pooling layer ``index`` (default: the last), sliding
    window and reducer; assert bit-exactness and zero padding lanes."""
    index = len(spec.layers) - 1 if index is None else index
    dut = Pool(PoolPlan(spec, index, lanes=lanes))
    channels = spec.layers[index].output_channels
    out, pad, run = run_samples(dut, layer_inputs(spec, index, x), channels=channels,
                                out_channels=channels, stalls=stalls, seed=seed)
    expected = golden.run_layers(spec, x)[index]
    assert out.shape == expected.shape
    assert (out == expected).all(), (out, expected)
    assert (pad == 0).all()
    return dut.plan, run


@settings(max_examples=60, deadline=None)
@given(pool=pools(), data=st.data())
def test_pool_bit_exact(pool, data):
    kind, shape, kernel, stride = pool
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    width = data.draw(st.integers(2, 16), label="width")
    spec = pool_spec(kind, shape, kernel, stride, input_format=QFormat(width, 3),
                     relu_before=data.draw(st.booleans(), label="relu"), rng=rng)
    lanes = data.draw(st.integers(1, shape[-1]), label="lanes")
    x = random_inputs(rng, spec, data.draw(st.integers(1, 3), label="batch"))
    check_pool(spec, lanes, x, stalls=data.draw(st.sampled_from(STALLS), label="stalls"),
               seed=seed)


@pytest.mark.parametrize("kind, shape, kernel, stride, lanes",
                         [("maxpool", (12, 4), (3,), (2,), 3),
                          ("avgpool", (4, 4, 3), (2, 2), (2, 2), 2),
                          ("maxpool", (5, 6, 2), (3, 2), (1, 2), 2),
                          ("maxpool", (9, 3), (2,), (4,), 1),
                          ("avgpool", (6, 2), (1,), (2,), 1)])
def test_pool_steady_state_ii_and_output_times(kind, shape, kernel, stride, lanes):
    rng = np.random.default_rng(lanes)
    spec = pool_spec(kind, shape, kernel, stride)
    plan, run = check_pool(spec, lanes, random_inputs(rng, spec, 5))
    layer = spec.layers[0]
    groups = -(-shape[-1] // lanes)
    assert plan.ii == max(layer.positions_out * layer.window, np.prod(shape[:-1])) * groups
    starts = np.array(run.out_cycles[::plan.out_beats])
    assert (np.diff(starts) == plan.ii).all()
    assert run.out_cycles[:plan.out_beats] == plan.output_times(run.in_cycles[:plan.in_beats])


@pytest.mark.parametrize("seed", [1, 2])
def test_pool_output_times_with_source_stalls(seed):
    rng = np.random.default_rng(seed)
    spec = pool_spec("maxpool", (5, 4, 3), (2, 2), (1, 1))
    plan, run = check_pool(spec, 2, random_inputs(rng, spec, 1), stalls=(0.5, 0.0), seed=seed)
    assert np.diff(run.in_cycles).max() > 1  # the source did stall
    assert run.out_cycles == plan.output_times(run.in_cycles)


@pytest.mark.parametrize("name, lanes", [("mnist1d", 16), ("mnist1d", 3), ("digits-conv", 8),
                                         ("digits-conv", 5)])
def test_pool_model_pools(name, lanes):
    """The models' pools as single layers, sliding window and reducer, on the test set."""
    spec, indices = model_pools(name)
    x = np.load(MODELS[name].file(MODELS[name].test_file))["x"][:2]
    for index in indices:
        check_pool(spec, min(lanes, spec.layers[index].output_channels), x, index=index,
                   stalls=(0.2, 0.2), seed=index)


def test_pool_plan():
    spec = pool_spec("maxpool", (6, 4, 7), (2, 3), (2, 1), input_format=QFormat(6, 1))
    plan = PoolPlan(spec, 0, lanes=3)
    assert (plan.index, plan.in_lanes, plan.out_lanes, plan.kind) == (0, 3, 3, "maxpool")
    assert (plan.in_width, plan.out_width) == (6, 6)
    assert (plan.in_beats, plan.out_beats) == (24 * 3, 6 * 3)
    assert plan.ii == 6 * 6 * 3 == plan.reducer.ii
    assert plan.window.order == "kernel"
    assert (plan.window.in_lanes, plan.window.out_lanes) == (3, 3)
    assert plan.window.out_beats == plan.reducer.in_beats
    assert (plan.multipliers, plan.roms) == (0, ())
    assert plan.register_bits == plan.window.register_bits + plan.reducer.register_bits
    # A stride past the kernel skips inputs: the input side is the busier one.
    sparse = PoolPlan(pool_spec("maxpool", (9, 2), (2,), (4,)), 0, lanes=1)
    assert sparse.ii == sparse.in_beats == 18


def test_pool_errors():
    with pytest.raises(TypeError, match=r"^Plan must be a PoolPlan, not 'x'$"):
        Pool("x")
    spec = pool_spec("avgpool", (4, 3), (2,))
    with pytest.raises(TypeError, match=r"^Plan must be a PoolPlan, not ReducerPlan"):
        Pool(ReducerPlan(spec, 0, lanes=1))
    with pytest.raises(ValueError, match=r"^Lanes must be from 1 to 3 \(the channels of layer 0 "
                                         r"\('pool0'\)\), not 4$"):
        PoolPlan(spec, 0, lanes=4)


def test_average_of_62_bit_integers():
    fmt = QFormat(62, 0)
    spec = pool_spec("avgpool", (4, 4, 3), (4, 4), input_format=fmt)
    rng = np.random.default_rng(4)
    x = np.concatenate([random_inputs(rng, spec, 2), [[fmt.min] * 48, [fmt.max] * 48]])
    plan, _ = check_reducer(spec, 2, x)
    assert plan.partial_width == 66
    check_pool(spec, 3, x, stalls=(0.2, 0.2))


@pytest.mark.parametrize("kind", ["maxpool", "avgpool"])
@pytest.mark.parametrize("channels", [RAM_MIN_GROUPS - 1, RAM_MIN_GROUPS, RAM_MIN_GROUPS + 3])
def test_reducer_partials_in_ram_or_shift_register(kind, channels):
    """One lane: ``G = C`` partials, in a RAM from RAM_MIN_GROUPS words and RAM_MIN_BITS bits
    (9 8-bit maxima stay a shift register, 9 sums do not), with stalls on both sides and at
    full rate."""
    rng = np.random.default_rng(channels)
    spec = pool_spec(kind, (6, channels), (2,), (1,))
    plan = ReducerPlan(spec, 0, lanes=1)
    in_ram = channels >= RAM_MIN_GROUPS and channels * plan.partial_width >= RAM_MIN_BITS
    assert plan.partials_in_ram == in_ram
    assert in_ram == (channels > RAM_MIN_GROUPS or (kind == "avgpool"
                                                    and channels == RAM_MIN_GROUPS))
    assert plan.ram_shape == ((channels, plan.partial_width) if in_ram else None)
    check_reducer(spec, 1, random_inputs(rng, spec, 3), stalls=(0.3, 0.3), seed=channels)
    _, run = check_reducer(spec, 1, random_inputs(rng, spec, 3), arch="ecp5")  # LUT RAM
    assert run.out_cycles[:plan.out_beats] == plan.output_times(run.in_cycles[:plan.in_beats])
