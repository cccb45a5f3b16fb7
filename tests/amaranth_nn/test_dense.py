"""DenseLayer on the Amaranth simulator, bit-exact against the golden model, with the timing of
its plan."""

import numpy as np
import pytest
from amaranth.back import verilog
from hypothesis import given, settings
from hypothesis import strategies as st
from nn_helpers import layer_inputs, run_layer, sizes
from specs import random_inputs, random_spec, single_layer_spec

from amaranth_nn import Activation, QFormat, golden
from amaranth_nn.dense import DenseLayer
from amaranth_nn.plan import DensePlan


def check_layer(spec, index, pe, simd, x, *, stalls=(0.0, 0.0), seed=0, running=False):
    """Run ``x`` (network inputs) through layer ``index`` alone; assert bit-exactness."""
    dut = DenseLayer(DensePlan(spec, index, pe=pe, simd=simd, running_accumulators=running))
    inputs = layer_inputs(spec, index, x)
    out, pad, run = run_layer(dut, inputs, stalls=stalls, seed=seed)
    expected = golden.run_layers(spec, x)[index]
    assert out.shape == expected.shape
    assert (out == expected).all(), (out, expected)
    assert (pad == 0).all()
    return dut, run


@settings(max_examples=40, deadline=None)
@given(n=sizes(), m=sizes(), data=st.data())
def test_random_layer_bit_exact(n, m, data):
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    depth = data.draw(st.integers(1, 2), label="layers")
    sizes_ = [n, m] if depth == 1 else [n, data.draw(sizes(), label="hidden"), m]
    spec = random_spec(rng, sizes_)
    index = len(spec.layers) - 1  # the second layer sees what the first activation makes
    layer = spec.layers[index]
    pe = data.draw(st.integers(1, layer.out_features), label="pe")
    simd = data.draw(st.integers(1, layer.in_features), label="simd")
    stalls = data.draw(st.sampled_from([(0.0, 0.0), (0.3, 0.0), (0.0, 0.3), (0.4, 0.4)]),
                       label="stalls")
    x = random_inputs(rng, spec, data.draw(st.integers(1, 4), label="batch"))
    running = data.draw(st.booleans(), label="running accumulators")
    check_layer(spec, index, pe, simd, x, stalls=stalls, seed=seed, running=running)


def test_one_by_one():
    spec = single_layer_spec([[3]], [5], x_fmt=QFormat(4, 1), w_fmt=QFormat(3, 1), b_width=8,
                             y_fmt=QFormat(4, 1), activation=Activation.identity())
    x = np.arange(-8, 8).reshape(-1, 1)
    check_layer(spec, 0, 1, 1, x)


@pytest.mark.parametrize("running", [False, True])
@pytest.mark.parametrize("pe, simd", [(1, 1), (13, 1), (1, 7), (13, 7), (5, 3), (2, 6)])
def test_prime_sizes(pe, simd, running):
    rng = np.random.default_rng(7)
    spec = random_spec(rng, [7, 13])
    check_layer(spec, 0, pe, simd, random_inputs(rng, spec, 5), stalls=(0.2, 0.2),
                running=running)


@pytest.mark.parametrize("n, simd, held", [(4, 1, True), (3, 1, False), (10, 2, True),
                                            (8, 2, False), (17, 17, False)])
def test_bias_held_behind_one_register_at_the_edge(n, simd, held):
    # The bias word read behind one register must still meet each group's first beat when a
    # group lasts only stages["tree"] - 1 cycles, under stalls on both sides.
    rng = np.random.default_rng(n * 10 + simd)
    spec = random_spec(rng, [n, 11])
    plan = DensePlan(spec, 0, pe=1, simd=simd)
    assert plan.bias_held == held
    for stalls in [(0.0, 0.0), (0.3, 0.3), (0.0, 0.5)]:
        check_layer(spec, 0, 1, simd, random_inputs(rng, spec, 3), stalls=stalls)


@pytest.mark.parametrize("running", [False, True])
@pytest.mark.parametrize("shift", [-3, 0, 1])
def test_small_and_negative_shift_saturates_both_sides(shift, running):
    rng = np.random.default_rng(shift + 10)
    spec = random_spec(rng, [9, 6], in_width=6, w_width=6, out_width=4, shift=shift,
                       activation=Activation.identity())
    x = random_inputs(rng, spec, 12)
    y = golden.run(spec, x)
    fmt = spec.output_format
    assert (y == fmt.max).any() and (y == fmt.min).any()  # the case saturates both ways
    check_layer(spec, 0, 3, 4, x, running=running)


@pytest.mark.parametrize("activation", [Activation.relu(), Activation.hardtanh(-5, 9),
                                        Activation.hardtanh(3, 3)])
def test_activations_clamp(activation):
    rng = np.random.default_rng(3)
    spec = random_spec(rng, [11, 5], out_width=6, activation=activation)
    # hardtanh with lo > 0 also checks that padded lanes come out as zero, not as lo.
    check_layer(spec, 0, 3, 4, random_inputs(rng, spec, 6))


def test_sixteen_bit_wide_accumulator():
    rng = np.random.default_rng(16)
    spec = random_spec(rng, [40, 7], in_width=16, w_width=16, out_width=16)
    dut, _ = check_layer(spec, 0, 7, 40, random_inputs(rng, spec, 4))
    assert dut.plan.acc_width > 32
    # Extreme inputs and weights: the largest accumulators.
    fmt = spec.input_format
    x = np.array([[fmt.min] * 40, [fmt.max] * 40, [fmt.min, fmt.max] * 20])
    check_layer(spec, 0, 2, 9, x)


def test_running_accumulators_wrap_and_stay_exact():
    # An accumulator that never restarts wraps around its width many times; each group's sum,
    # a difference modulo that width, stays exact.
    rng = np.random.default_rng(17)
    spec = random_spec(rng, [40, 7])
    layer, fmt = spec.layers[0], spec.input_format
    x = np.where(layer.weights.sum(axis=0) > 0, fmt.max, fmt.min)
    x = np.tile(x, (12, 1))
    dut, _ = check_layer(spec, 0, 1, 1, x, stalls=(0.2, 0.2), running=True)
    running = np.cumsum((x.astype(object) @ layer.weights.T.astype(object)
                         + layer.bias.astype(object)).ravel())
    assert max(abs(v) for v in running) > 4 * 2**dut.plan.acc_width  # it wraps


def test_relu_input_is_unsigned_operand():
    rng = np.random.default_rng(5)
    spec = random_spec(rng, [6, 8, 4], activation=Activation.relu())
    plan = DensePlan(spec, 1, pe=2, simd=3)
    assert not plan.x_shape.signed
    assert plan.x_shape.width == spec.layers[0].output_format.width - 1
    check_layer(spec, 1, 2, 3, random_inputs(rng, spec, 5))


@pytest.mark.parametrize("running", [False, True])
@pytest.mark.parametrize("pe, simd", [(1, 1), (3, 4), (5, 8), (2, 1), (5, 1), (1, 8)])
def test_steady_state_ii_and_latency(pe, simd, running):
    rng = np.random.default_rng(pe * 10 + simd)
    spec = random_spec(rng, [8, 5])
    dut, run = check_layer(spec, 0, pe, simd, random_inputs(rng, spec, 8), running=running)
    plan = dut.plan
    starts = np.array(run.out_cycles[::plan.out_beats])
    assert (np.diff(starts) == plan.ii).all()
    assert plan.ii == -(-5 // pe) * -(-8 // simd)
    # Latency of the first vector: II + pipeline depth when the source is always valid.
    assert run.out_cycles[plan.out_beats - 1] - run.in_cycles[0] == plan.ii + plan.pipeline_depth
    assert plan.output_times(range(plan.in_beats))[-1] == plan.ii + plan.pipeline_depth
    # The whole schedule of the first vector, every output beat.
    first = [t - run.in_cycles[0] for t in run.out_cycles[:plan.out_beats]]
    assert first == plan.output_times(range(plan.in_beats))


def test_errors():
    plan = DensePlan(random_spec(np.random.default_rng(0), [5, 4]), 0, pe=1, simd=1)
    with pytest.raises(TypeError, match=r"^Plan must be a DensePlan, not 'x'$"):
        DenseLayer("x")
    with pytest.raises(ValueError, match=r"^Arch must be one of 'auto', 'generic', 'ecp5', "
                                         r"'ice40', not 'xc7'$"):
        DenseLayer(plan, arch="xc7")
    with pytest.raises(TypeError, match=r"^Arch must be one of 'auto', 'generic', 'ecp5', "
                                        r"'ice40' or a Target, not 3$"):
        DenseLayer(plan, arch=3)


def test_ecp5_arch_instantiates_registered_multipliers():
    rng = np.random.default_rng(1)
    spec = random_spec(rng, [6, 5], in_width=8, w_width=8)
    plan = DensePlan(spec, 0, pe=2, simd=3)
    text = verilog.convert(DenseLayer(plan, arch="ecp5"), name="dense")
    assert text.count("MULT18X18D ") == 6
    assert text.count('.REG_INPUTA_CLK("CLK0")') == 6
    assert text.count('.REG_OUTPUT_CLK("CLK0")') == 6
    generic = verilog.convert(DenseLayer(plan), name="dense")
    assert "MULT18X18D" not in generic
