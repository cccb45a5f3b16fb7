"""Layer plans: validation, ROM layouts, the register chain and the timing derived from it.

The engines are built from these facts, and the simulation tests (test_dense, test_network)
check that the hardware keeps them: bit-exact outputs, and cycles equal to the plan's.
"""

import numpy as np
import pytest
from specs import random_spec, single_layer_spec

from amaranth_nn import Activation, Layer, NetworkSpec, QFormat
from amaranth_nn.lanes import pack_lanes, unpack_lanes
from amaranth_nn.plan import (
    FIFO_LATENCY,
    MEMORY_STAGES,
    ConverterPlan,
    DensePlan,
    Rom,
    dense_ii,
)
from amaranth_nn.spec import Flatten, MaxPool


def test_errors():
    spec = random_spec(np.random.default_rng(0), [5, 4])
    with pytest.raises(TypeError, match=r"^Spec must be a NetworkSpec, not 'x'$"):
        DensePlan("x", 0, pe=1, simd=1)
    with pytest.raises(TypeError, match=r"^Layer index must be an integer, not '0'$"):
        DensePlan(spec, "0", pe=1, simd=1)
    with pytest.raises(ValueError, match=r"^Layer index must be from 0 to 0, not 1$"):
        DensePlan(spec, 1, pe=1, simd=1)
    with pytest.raises(ValueError, match=r"^Layer index must be from 0 to 0, not -1$"):
        DensePlan(spec, -1, pe=1, simd=1)
    with pytest.raises(ValueError, match=r"^Pe must be from 1 to 4 \(the out_features of layer "
                                         r"0 \('dense0'\)\), not 0$"):
        DensePlan(spec, 0, pe=0, simd=1)
    with pytest.raises(TypeError, match=r"^Simd must be an integer, not 2.0$"):
        DensePlan(spec, 0, pe=1, simd=2.0)
    with pytest.raises(TypeError, match=r"^Pe must be an integer, not True$"):
        DensePlan(spec, 0, pe=True, simd=1)
    with pytest.raises(ValueError, match=r"^Pe must be from 1 to 4 \(the out_features of layer "
                                         r"0 \('dense0'\)\), not 5$"):
        DensePlan(spec, 0, pe=5, simd=1)
    with pytest.raises(ValueError, match=r"^Simd must be from 1 to 5 \(the in_features of layer "
                                         r"0 \('dense0'\)\), not 6$"):
        DensePlan(spec, 0, pe=1, simd=6)


def test_converter_errors():
    with pytest.raises(ValueError, match=r"^Length must be a positive integer, not 0$"):
        ConverterPlan(8, 1, 1, 0)
    with pytest.raises(TypeError, match=r"^Width must be an integer, not 8.0$"):
        ConverterPlan(8.0, 1, 1, 4)
    with pytest.raises(ValueError, match=r"^In lanes must be from 1 to 4 \(the vector length\), "
                                         r"not 5$"):
        ConverterPlan(8, 5, 1, 4)
    with pytest.raises(TypeError, match=r"^Out lanes must be an integer, not None$"):
        ConverterPlan(8, 1, None, 4)


def test_weight_and_bias_rom_layout():
    spec = single_layer_spec([[1, 2, 3], [4, 5, 6], [7, -8, 9]], [10, -20, 30],
                             x_fmt=QFormat(8, 0), w_fmt=QFormat(5, 0), b_width=16,
                             y_fmt=QFormat(8, -2), activation=Activation.identity())
    plan = DensePlan(spec, 0, pe=2, simd=2)
    assert plan.w_shape.width == 5 and plan.w_shape.signed
    assert plan.rounding == 2  # shift 2: bias + 2**(2-1)
    pe0, pe1 = plan.weight_roms
    # PE 1, group 0 (row 1) beats 0 and 1, then group 1 (row 3: past the matrix) zeros.
    assert pe1.words == (4 | 5 << 5, 6, 0, 0)
    # PE 0: rows 0 and 2; -8 in two's complement.
    assert pe0.words == (1 | 2 << 5, 3, 7 | (-8 & 31) << 5, 9)
    assert [unpack_lanes(word, 2, 5) for word in pe0.words] == [[1, 2], [3, 0], [7, -8], [9, 0]]
    assert (pe0.lanes, pe0.lane_width, pe0.depth, pe0.width) == (2, 5, 4, 10)
    assert (pe0.path, pe0.file_name) == (("layer0", "weights0"), "layer0_weights_pe0.hex")
    bias = plan.bias_rom
    width = plan.acc_width
    assert [unpack_lanes(word, 2, width) for word in bias.words] == [[12, -18], [32, 0]]
    assert bias.words[1] == pack_lanes([32], width)
    assert (bias.file_name, bias.lanes, bias.lane_width) == ("layer0_bias.hex", 2, width)
    assert plan.roms == (pe0, pe1, bias)


def test_rom_names_paths_and_files_by_kind():
    def rom(kind, pe=None, scope=()):
        return Rom(3, kind, pe, 2, 4, True, (0, 1), "layout", scope)

    assert (rom("weights", 5).name, rom("weights", 5).path, rom("weights", 5).file_name) == \
        ("weights5", ("layer3", "weights5"), "layer3_weights_pe5.hex")
    assert rom("weights", 0, ("dense",)).path == ("layer3", "dense", "weights0")
    assert (rom("bias").name, rom("bias", scope=("dense",)).path, rom("bias").file_name) == \
        ("biases", ("layer3", "dense", "biases"), "layer3_bias.hex")
    assert (rom("scale").name, rom("scale").path, rom("scale").file_name) == \
        ("scale", ("layer3", "scale"), "layer3_scale.hex")
    with pytest.raises(ValueError, match=r"^Rom kind must be one of weights, bias, scale, not "
                                         r"'shift'$"):
        rom("shift")


def test_unsigned_weights_and_inputs_after_relu():
    spec = single_layer_spec([[1, 2], [3, 0]], [0, 0], x_fmt=QFormat(8, 0), w_fmt=QFormat(8, 0),
                             b_width=20, y_fmt=QFormat(8, 0), activation=Activation.relu())
    plan = DensePlan(spec, 0, pe=1, simd=2)
    assert not plan.w_shape.signed and plan.w_shape.width == 2
    assert not plan.weight_roms[0].signed
    assert plan.x_shape.signed and plan.x_shape.width == 8


@pytest.mark.parametrize("running", [False, True])
@pytest.mark.parametrize("simd", [1, 2, 3, 4, 5, 8, 9, 16, 17])
def test_register_chain_and_timing(simd, running):
    spec = random_spec(np.random.default_rng(simd), [17, 5])
    plan = DensePlan(spec, 0, pe=2, simd=simd, running_accumulators=running)
    levels = (simd - 1).bit_length()
    assert plan.tree_levels == levels
    assert plan.running_accumulators is running
    assert plan.stages == {"memory": MEMORY_STAGES, "operands": 4, "products": 5,
                           "tree": 5 + levels, "accumulator": 6 + levels,
                           "sum": 6 + running + levels, "clamp": 7 + running + levels}
    assert plan.pipeline_depth == 9 + running + levels == plan.stages["clamp"] + FIFO_LATENCY
    assert plan.ii == dense_ii(17, 5, 2, simd) == 3 * -(-17 // simd)
    assert plan.multipliers == 2 * simd
    # The output FIFO covers the credit loop: a group starts every B cycles.
    loop = plan.in_beats - 1 + plan.stages["clamp"] + FIFO_LATENCY + 2
    assert plan.fifo_depth * plan.in_beats >= loop
    times = plan.output_times([0] * plan.in_beats)
    assert times == [plan.in_beats + g * plan.in_beats + plan.pipeline_depth for g in range(3)]


def test_converter_timing():
    plan = ConverterPlan(6, 3, 2, 7)
    assert (plan.in_beats, plan.out_beats) == (3, 4)
    assert [plan.needed_beat(k) for k in range(4)] == [0, 1, 1, 2]
    assert plan.delay == 6
    assert plan.output_times([0, 5, 6]) == [6, 11, 12, 13]
    assert plan.register_bits == 2 * 7 * 6


def test_dense_plan_takes_a_dense_or_conv_layer_of_any_spec():
    fmt = QFormat(8, 4)
    dense = Layer("dense0", np.ones((3, 4), int), [0, 0, 0], QFormat(8, 6), QFormat(16, 10), fmt)
    spec = NetworkSpec(fmt, [MaxPool("pool0", (4, 2), 2), Flatten("flat0", (2, 2)), dense])
    assert DensePlan(spec, 2, pe=1, simd=1).ii == 3 * 4
    with pytest.raises(ValueError, match=r"^Layer 0 \('pool0'\) is a maxpool layer; the dense "
                                         r"engine computes a dense or conv layer$"):
        DensePlan(spec, 0, pe=1, simd=1)
