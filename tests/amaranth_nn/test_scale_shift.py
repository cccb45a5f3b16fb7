"""ScaleShift on the Amaranth simulator, bit-exact against the golden model, with the timing of
its plan."""

import numpy as np
import pytest
from amaranth.back import verilog
from hypothesis import given, settings
from hypothesis import strategies as st
from nn_helpers import layer_inputs, run_samples
from specs import random_inputs, random_spec, scale_shift_spec

from amaranth_nn import Activation, golden
from amaranth_nn.lanes import unpack_lanes
from amaranth_nn.scale_plan import ScalePlan
from amaranth_nn.scale_shift import ScaleShift
from amaranth_nn.targets import ECP5Target

STALLS = [(0.0, 0.0), (0.3, 0.0), (0.0, 0.3), (0.4, 0.4)]


def check_layer(spec, lanes, x, *, stalls=(0.0, 0.0), seed=0, arch="auto"):
    """Run ``x`` (network inputs) through the last layer alone; assert bit-exactness and zero
    padding lanes."""
    index = len(spec.layers) - 1
    dut = ScaleShift(ScalePlan(spec, index, lanes=lanes), arch=arch)
    channels = spec.layers[index].channels
    out, pad, run = run_samples(dut, layer_inputs(spec, index, x), channels=channels,
                                out_channels=channels, stalls=stalls, seed=seed)
    expected = golden.run_layers(spec, x)[index]
    assert out.shape == expected.shape
    assert (out == expected).all(), (out, expected)
    assert (pad == 0).all()
    return dut, run


@st.composite
def shapes(draw):
    """A vector, a 1-D or a 2-D shape of up to 40 elements."""
    axes = draw(st.integers(0, 2), label="axes")
    spatial = [draw(st.integers(1, 4), label="positions") for _ in range(axes)]
    return (*spatial, draw(st.integers(1, 11), label="channels"))


@settings(max_examples=50, deadline=None)
@given(shape=shapes(), data=st.data())
def test_random_layer_bit_exact(shape, data):
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    spec = scale_shift_spec(rng, shape, relu_before=data.draw(st.booleans(), label="relu"))
    lanes = data.draw(st.integers(1, shape[-1]), label="lanes")
    x = random_inputs(rng, spec, data.draw(st.integers(1, 3), label="batch"))
    check_layer(spec, lanes, x, stalls=data.draw(st.sampled_from(STALLS), label="stalls"),
                seed=seed)


@pytest.mark.parametrize("lanes", [1, 3, 4, 7])
def test_lanes_not_dividing_channels(lanes):
    rng = np.random.default_rng(lanes)
    spec = scale_shift_spec(rng, (3, 7))
    check_layer(spec, lanes, random_inputs(rng, spec, 3), stalls=(0.2, 0.2), seed=lanes)


@pytest.mark.parametrize("shift", [-3, 0, 1, 5])
def test_shifts_saturate_both_sides(shift):
    rng = np.random.default_rng(shift + 20)
    spec = scale_shift_spec(rng, (4, 6), in_width=6, a_width=6, out_width=4, shift=shift,
                            activation=Activation.identity())
    x = random_inputs(rng, spec, 12)
    y = golden.run(spec, x)
    fmt = spec.output_format
    assert (y == fmt.max).any() and (y == fmt.min).any()  # the case saturates both ways
    check_layer(spec, 4, x)


@pytest.mark.parametrize("activation", [Activation.relu(), Activation.hardtanh(-5, 9),
                                        Activation.hardtanh(3, 3)])
def test_activations_clamp(activation):
    rng = np.random.default_rng(3)
    spec = scale_shift_spec(rng, (2, 5), out_width=6, activation=activation)
    # hardtanh with lo > 0 also checks that padded lanes come out as zero, not as lo.
    check_layer(spec, 3, random_inputs(rng, spec, 4))


def test_relu_input_is_unsigned_operand():
    rng = np.random.default_rng(5)
    spec = scale_shift_spec(rng, (3, 4), relu_before=True)
    plan = ScalePlan(spec, 1, lanes=3)
    assert not plan.x_shape.signed
    assert plan.x_shape.width == spec.layers[0].output_format.width - 1
    check_layer(spec, 3, random_inputs(rng, spec, 4))


def test_sixteen_bit_wide_accumulator():
    rng = np.random.default_rng(16)
    spec = scale_shift_spec(rng, (9,), in_width=16, a_width=16, out_width=16)
    fmt = spec.input_format
    x = np.concatenate([random_inputs(rng, spec, 3), [[fmt.min] * 9, [fmt.max] * 9]])
    dut, _ = check_layer(spec, 4, x)
    assert dut.plan.acc_width >= 32


@pytest.mark.parametrize("shape, lanes", [((5,), 5), ((5,), 2), ((3, 4), 1), ((2, 2, 6), 4)])
def test_steady_state_ii_and_output_times(shape, lanes):
    rng = np.random.default_rng(lanes)
    spec = scale_shift_spec(rng, shape)
    dut, run = check_layer(spec, lanes, random_inputs(rng, spec, 6))
    plan = dut.plan
    assert plan.ii == plan.in_beats == np.prod(shape[:-1], dtype=int) * -(-shape[-1] // lanes)
    starts = np.array(run.out_cycles[::plan.out_beats])
    assert (np.diff(starts) == plan.ii).all()
    # The first sample's whole schedule.
    assert run.out_cycles[:plan.out_beats] == plan.output_times(run.in_cycles[:plan.in_beats])


@pytest.mark.parametrize("seed", [1, 2])
def test_output_times_with_source_stalls(seed):
    rng = np.random.default_rng(seed)
    spec = scale_shift_spec(rng, (6, 5))
    dut, run = check_layer(spec, 2, random_inputs(rng, spec, 1), stalls=(0.5, 0.0), seed=seed)
    assert np.diff(run.in_cycles).max() > 1  # the source did stall
    assert run.out_cycles == dut.plan.output_times(run.in_cycles)


def test_roms():
    rng = np.random.default_rng(8)
    spec = scale_shift_spec(rng, (2, 5), relu_before=True)
    plan = ScalePlan(spec, 1, lanes=2)
    layer = spec.layers[1]
    scale_rom, bias_rom = plan.roms
    assert (scale_rom.depth, bias_rom.depth) == (3, 3)
    assert (scale_rom.lanes, bias_rom.lanes) == (2, 2)
    assert (scale_rom.kind, scale_rom.name, scale_rom.path) == ("scale", "scale",
                                                                ("layer1", "scale"))
    assert scale_rom.file_name == "layer1_scale.hex"
    assert bias_rom.file_name == "layer1_bias.hex"
    scales = [v for word in scale_rom.words
              for v in unpack_lanes(word, 2, scale_rom.lane_width, signed=scale_rom.signed)]
    biases = [v for word in bias_rom.words for v in unpack_lanes(word, 2, plan.acc_width)]
    assert scales == [*layer.scale.tolist(), 0]
    assert biases == [*(layer.bias + plan.rounding).tolist(), 0]
    assert plan.multipliers == 2
    assert (plan.in_lanes, plan.out_lanes, plan.index) == (2, 2, 1)


def test_errors():
    rng = np.random.default_rng(0)
    spec = scale_shift_spec(rng, (3, 4), relu_before=True)
    with pytest.raises(TypeError, match=r"^Spec must be a NetworkSpec, not 'x'$"):
        ScalePlan("x", 0, lanes=1)
    with pytest.raises(TypeError, match=r"^Layer index must be an integer, not '0'$"):
        ScalePlan(spec, "0", lanes=1)
    with pytest.raises(ValueError, match=r"^Layer index must be from 0 to 1, not 2$"):
        ScalePlan(spec, 2, lanes=1)
    with pytest.raises(TypeError, match=r"^Lanes must be an integer, not 2.0$"):
        ScalePlan(spec, 1, lanes=2.0)
    with pytest.raises(ValueError, match=r"^Lanes must be from 1 to 4 \(the channels of layer 1 "
                                         r"\('scale0'\)\), not 5$"):
        ScalePlan(spec, 1, lanes=5)
    with pytest.raises(ValueError, match=r"^Lanes must be from 1 to 4 \(the channels of layer 0 "
                                         r"\('relu0'\)\), not 0$"):
        ScalePlan(spec, 0, lanes=0)
    with pytest.raises(ValueError, match=r"^Layer 0 \('dense0'\) is a dense layer, not a "
                                         r"scale_shift layer$"):
        ScalePlan(random_spec(rng, [3, 2]), 0, lanes=1)
    plan = ScalePlan(spec, 1, lanes=2)
    with pytest.raises(TypeError, match=r"^Plan must be a ScalePlan, not 'x'$"):
        ScaleShift("x")
    with pytest.raises(ValueError, match=r"^Arch must be one of 'auto', 'generic', 'ecp5', "
                                         r"'ice40', not 'xc7'$"):
        ScaleShift(plan, arch="xc7")


def test_ecp5_arch_instantiates_registered_multipliers():
    rng = np.random.default_rng(1)
    spec = scale_shift_spec(rng, (2, 5), in_width=8, a_width=8)
    plan = ScalePlan(spec, 0, lanes=3)
    text = verilog.convert(ScaleShift(plan, arch="ecp5"), name="scale")
    assert text.count("MULT18X18D ") == 3
    assert text.count('.REG_OUTPUT_CLK("CLK0")') == 3
    assert "MULT18X18D" not in verilog.convert(ScaleShift(plan), name="scale")


@pytest.mark.parametrize("shape, lanes, relu", [((3, 7), 3, False), ((2, 4), 4, True)])
def test_ecp5_architecture_with_modelled_multipliers(shape, lanes, relu):
    # The ECP5 target's LUT ROMs, operand sign extension and product slicing in the simulator,
    # with a behavioural model of the registered multiplier: the same timing as the generic one.
    rng = np.random.default_rng(lanes)
    spec = scale_shift_spec(rng, shape, in_width=9, a_width=10, relu_before=relu)
    dut, run = check_layer(spec, lanes, random_inputs(rng, spec, 3),
                           arch=ECP5Target(model_multipliers=True))
    assert run.out_cycles[:dut.plan.out_beats] == dut.plan.output_times(
        run.in_cycles[:dut.plan.in_beats])
    _, stalled = check_layer(spec, lanes, random_inputs(rng, spec, 3), stalls=(0.3, 0.3),
                             arch=ECP5Target(model_multipliers=True))
    assert len(stalled.outputs) == 3 * dut.plan.out_beats


def test_accumulator_wider_than_64_bits():
    rng = np.random.default_rng(62)
    spec = scale_shift_spec(rng, (2, 3), in_width=40, a_width=32, out_width=48)
    fmt = spec.input_format
    x = np.concatenate([random_inputs(rng, spec, 2), [[fmt.min] * 6, [fmt.max] * 6]])
    dut, _ = check_layer(spec, 2, x)
    assert dut.plan.acc_width > 64
