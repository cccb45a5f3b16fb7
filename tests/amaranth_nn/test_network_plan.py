"""The network plan: folding entries of every layer kind checked before anything is built, the
flat-stream rule, the block arithmetic (amaranth_nn.ii), converters and the dense network's
figures."""

import numpy as np
import pytest
from specs import random_spec, stream_spec

from amaranth_nn.folding import default_folding, plan_network
from amaranth_nn.ii import block_ii, block_multipliers, conv_ii, pool_ii, scale_shift_ii
from amaranth_nn.models import MODEL_DIR
from amaranth_nn.network_plan import (
    NetworkPlan,
    NoHardwareYet,
    block_in_lanes,
    check_folding,
    check_hardware,
    flat_lanes_fit,
)
from amaranth_nn.spec import NetworkSpec


def small_conv_spec():
    """conv (6, 2) -> (6, 3), maxpool -> (3, 3), conv -> (3, 2), flatten -> 6, dense -> 3."""
    return stream_spec(np.random.default_rng(0), (6, 2), [
        ("conv", 3, (3,), (1,), (1,)), ("maxpool", (2,)), ("conv", 2, (3,), (1,), (1,)),
        ("flatten",), ("dense", 3)])


def test_network_plan():
    spec = random_spec(np.random.default_rng(3), [13, 11, 7, 3])
    plan = NetworkPlan(spec, [(5, 2), (2, 5), (3, 7)])
    assert plan.folding == ((5, 2), (2, 5), (3, 7))
    assert plan.converters[0] is None
    converter = plan.converters[1]
    assert (converter.in_lanes, converter.out_lanes, converter.length) == (2, 7, 7)
    assert converter.width == spec.layers[1].output_format.width
    assert plan.converter_positions == (0, 1)
    assert plan.ii == max(layer.ii for layer in plan.layers) == 3 * 7
    assert plan.multipliers == 10 + 10 + 21
    assert (plan.in_lanes, plan.out_lanes, plan.in_beats, plan.out_beats) == (2, 3, 7, 1)
    assert plan.lanes == ((2, 5), (5, 2), (7, 3))
    assert len(plan.roms) == sum(pe + 1 for pe, _ in plan.folding)
    assert list(plan.blocks()) == [plan.layers[0], plan.layers[1], converter, plan.layers[2]]
    assert [layer.index for layer in plan.layers] == [0, 1, 2]
    assert plan.latency == plan.output_times()[-1]
    assert plan.check_ii()


def test_flatten_then_dense_network_plan():
    """A flatten of a vector passes through: no block, its entry the lanes it passes."""
    spec = stream_spec(np.random.default_rng(1), (4, 3), [("flatten",), ("dense", 5),
                                                          ("dense", 2)])
    plan = NetworkPlan(spec, [None, (2, 4), (1, 2)])
    assert plan.folding == ((4, 4), (2, 4), (1, 2))
    assert [layer.index for layer in plan.layers] == [1, 2]
    assert plan.converters == (None,)
    assert (plan.in_lanes, plan.in_beats, plan.ii) == (4, 3, 9)
    assert NetworkPlan(spec, plan.folding).folding == plan.folding


def test_layers_without_hardware_are_refused_before_anything_is_built():
    spec = small_conv_spec()
    message = (r"^layer 0 \('conv0'\): a conv layer has no hardware yet \(only dense layers "
               r"do\); the golden model, amaranth_nn.golden, runs this network$")
    with pytest.raises(NoHardwareYet, match=message):
        check_hardware(spec, ["dense"])
    assert issubclass(NoHardwareYet, ValueError)
    assert check_hardware(random_spec(np.random.default_rng(0), [3, 2]), ["dense"]) is not None
    flat = stream_spec(np.random.default_rng(0), (2, 2), [("flatten",)])
    with pytest.raises(NoHardwareYet, match=r"^the network: it has flatten layers only, no "
                                            r"hardware$"):
        check_hardware(flat)


def test_folding_entries_are_normalized_to_pairs():
    spec = stream_spec(np.random.default_rng(2), (8, 6), [
        ("scale_shift",), ("maxpool", (2,)), ("conv", 4, (3,), (1,), (0,)), ("avgpool", (2,)),
        ("flatten",), ("dense", 3)])
    folding = check_folding(spec, [3, [3], (2, 6), (2, 2), None, (1, 2)])
    assert folding == ((3, 3), (3, 3), (2, 6), (2, 2), (2, 2), (1, 2))
    assert check_folding(spec, folding) == folding
    assert check_folding(spec, [(3, 3), 3, [2, 6], 2, [2, 2], [1, 2]]) == folding


@pytest.mark.parametrize("folding, error, message", [
    (3, TypeError, r"^Folding must be a sequence of \(pe, simd\) pairs, not 3$"),
    ([(1, 1)] * 4, ValueError, r"^Folding must have one \(pe, simd\) pair per layer \(5\), "
                               r"not 4$"),
    ([5, 1, (1, 1), None, (1, 1)], TypeError,
     r"^Folding of layer 0 \('conv0'\) must be a \(pe, simd\) pair, not 5$"),
    ([(4, 1), 1, (1, 1), None, (1, 1)], ValueError,
     r"^Pe must be from 1 to 3 \(the out_channels of layer 0 \('conv0'\)\), not 4$"),
    ([(1, 7), 1, (1, 1), None, (1, 1)], ValueError,
     r"^Simd must be from 1 to 6 \(the window size K\*C_in of layer 0 \('conv0'\)\), not 7$"),
    ([(1, 1.0), 1, (1, 1), None, (1, 1)], TypeError, r"^Simd must be an integer, not 1.0$"),
    ([(1, 1), (1, 2), (1, 1), None, (1, 1)], ValueError,
     r"^Folding of layer 1 \('maxpool1'\) must be its lanes, an integer or a \(lanes, lanes\) "
     r"pair of equal values, not \(1, 2\): a maxpool layer has as many lanes out as in$"),
    ([(1, 1), (1, 1, 1), (1, 1), None, (1, 1)], TypeError,
     r"^Folding of layer 1 \('maxpool1'\) must be its lanes, an integer or a \(lanes, lanes\) "
     r"pair, not \(1, 1, 1\)$"),
    ([(1, 1), "2", (1, 1), None, (1, 1)], TypeError, r"^Lanes must be an integer, not '2'$"),
    ([(1, 1), 4, (1, 1), None, (1, 1)], ValueError,
     r"^Lanes must be from 1 to 3 \(the channels of layer 1 \('maxpool1'\)\), not 4$"),
    ([(1, 1), 0, (1, 1), None, (1, 1)], ValueError,
     r"^Lanes must be from 1 to 3 \(the channels of layer 1 \('maxpool1'\)\), not 0$"),
    ([(1, 1), 1, (1, 1), (2, 2), (1, 1)], ValueError,
     r"^Folding of layer 3 \('flatten3'\) must be None or \(1, 1\): a flatten passes its "
     r"stream through at its 1 lanes, not \(2, 2\)$"),
    ([(1, 1), 1, (1, 1), 1, (1, 1)], ValueError,
     r"^Folding of layer 3 \('flatten3'\) must be None or \(1, 1\)"),
    ([(1, 1), 1, (1, 9), None, (4, 1)], ValueError,
     r"^Pe must be from 1 to 3 \(the out_features of layer 4 \('dense4'\)\), not 4$"),
])
def test_folding_errors_name_the_layer(folding, error, message):
    spec = small_conv_spec()
    with pytest.raises(error, match=message):
        check_folding(spec, folding)


def test_flattened_stream_lanes_must_divide_the_channels():
    spec = stream_spec(np.random.default_rng(3), (4, 6), [
        ("conv", 6, (3,), (1,), (1,)), ("flatten",), ("dense", 2)])
    with pytest.raises(ValueError, match=(
            r"^layer 1 \('flatten1'\) takes the stream of layer 0 \('conv0'\) as a flat vector, "
            r"but its 4 lanes per beat do not divide the 6 channels of each of its 4 "
            r"positions: give layer 0 \('conv0'\) a pe dividing 6 \(1, 2, 3, 6\)$")):
        check_folding(spec, [(4, 1), None, (1, 1)])
    assert check_folding(spec, [(3, 1), None, (1, 1)])[1] == (3, 3)
    # One position: any lanes (the flat vector is the position, padded at the end).
    single = stream_spec(np.random.default_rng(3), (1, 6), [
        ("conv", 6, (1,), (1,), (0,)), ("flatten",), ("dense", 2)])
    assert check_folding(single, [(4, 1), None, (1, 4)])[1] == (4, 4)


def test_network_input_and_output_are_flat_vectors():
    spec = stream_spec(np.random.default_rng(4), (4, 6), [("maxpool", (2,)),
                                                          ("scale_shift",)])
    with pytest.raises(ValueError, match=(
            r"^The network's input is flat vectors, but the 4 lanes per beat of layer 0 "
            r"\('maxpool0'\) do not divide the 6 channels of each of its 4 positions: give it "
            r"lanes dividing 6 \(1, 2, 3, 6\)$")):
        check_folding(spec, [4, 2])
    with pytest.raises(ValueError, match=(
            r"^The network's output takes the stream of layer 1 \('scale_shift1'\) as a flat "
            r"vector, but its 4 lanes per beat do not divide the 6 channels of each of its 2 "
            r"positions: give layer 1 \('scale_shift1'\) lanes dividing 6 \(1, 2, 3, 6\)$")):
        check_folding(spec, [2, 4])
    assert check_folding(spec, [2, 3]) == ((2, 2), (3, 3))


def test_stream_rules():
    spec = small_conv_spec()
    conv0, pool, conv1, _, dense = spec.layers
    # A convolution takes whatever arrives; its first input is a whole position per beat.
    assert block_in_lanes(conv0, (3, 2), None) == 2
    assert block_in_lanes(conv1, (1, 9), 3) == 3
    assert block_in_lanes(pool, (3, 3), 1) == 3
    assert block_in_lanes(dense, (1, 4), 2) == 4
    assert flat_lanes_fit((3, 6), 3) and not flat_lanes_fit((3, 6), 4)
    assert flat_lanes_fit((1, 6), 4) and flat_lanes_fit((7,), 4)


def test_block_arithmetic_of_every_kind():
    spec = stream_spec(np.random.default_rng(5), (8, 8, 3), [
        ("conv", 5, (3, 3), (1, 1), (1, 1)), ("maxpool", (2, 2)), ("scale_shift",),
        ("avgpool", (2, 2)), ("conv", 4, (2, 2), (2, 2), (0, 0)), ("flatten",), ("dense", 3)])
    conv0, pool, scale, avg, conv1, _, dense = spec.layers
    # 64 positions, 5 channels in beats of 2, window 27 in beats of 4.
    assert conv_ii(conv0, 2, 4) == 64 * 3 * 7
    assert block_ii(conv0, (2, 4), 3) == 64 * 3 * 7
    assert block_ii(conv0, (5, 27), 3) == 64  # fully parallel: one beat per position
    assert block_ii(conv0, (5, 27), 1) == 64 * 3  # input beats bound it
    assert pool_ii(pool, 2) == 16 * 4 * 3 == block_ii(pool, (2, 2), 2)
    assert block_ii(pool, (5, 5), 5) == 64  # its 64 input beats
    assert scale_shift_ii(scale, 2) == 16 * 3 == block_ii(scale, (2, 2), 2)
    assert pool_ii(avg, 5) == 4 * 4
    assert conv1.positions_out == 1 and conv_ii(conv1, 4, 20) == 1
    assert block_ii(dense, (3, 4), 4) == 1
    assert [block_multipliers(layer, entry) for layer, entry in (
        (conv0, (2, 4)), (pool, (2, 2)), (scale, (3, 3)), (avg, (5, 5)), (dense, (3, 4)))] \
        == [8, 0, 3, 0, 12]


def test_shipped_conv_models_check_their_folding():
    spec = NetworkSpec.load(MODEL_DIR / "mnist1d.json")
    folding = check_folding(spec, [(1, 5), 1, (8, 5), 8, (2, 6), 2, None, (1, 2)])
    assert folding == ((1, 5), (1, 1), (8, 5), (8, 8), (2, 6), (2, 2), (2, 2), (1, 2))


@pytest.mark.parametrize("name, ii, latency, in_beats, out_beats", [
    ("mnist1d", 640, 1397, 40, 10),
    ("digits-conv", 1024, 2237, 64, 10),
])
def test_default_plans_of_the_shipped_conv_models(name, ii, latency, in_beats, out_beats):
    """Measured equal in simulation by tests/amaranth_nn/test_cli.py."""
    spec = NetworkSpec.load(MODEL_DIR / f"{name}.json")
    plan = plan_network(spec)
    assert plan.folding == default_folding(spec)
    assert plan.check_ii()
    assert (plan.ii, plan.latency, plan.in_beats, plan.out_beats) == (ii, latency, in_beats,
                                                                      out_beats)
    assert plan.in_lanes == 1  # one input position (one channel) per beat
    assert plan.converters == (None,) * (len(plan.layers) - 1)
    assert plan.multipliers == sum(pe * simd for layer, (pe, simd) in zip(
        spec.layers, plan.folding, strict=True) if layer.kind in ("conv", "dense"))


@pytest.mark.parametrize("name, target, folding, multipliers, latency", [
    ("mnist1d", 320, "2x5, 2, 8x10, 8, 1x24, 1, -, 3x1", 117, 847),
    ("mnist1d", 640, "1x5, 1, 8x5, 8, 2x6, 2, -, 1x2", 59, 1397),
    ("mnist1d", 1280, "3x1, 3, 4x5, 4, 1x6, 1, -, 1x1", 30, 2605),
    ("digits-conv", 512, "1x9, 1, 2x18, 2, -, 1x2", 47, 1199),
    ("digits-conv", 1024, "1x5, 1, 1x18, 1, -, 1x1", 24, 2237),
    ("digits-conv", 4096, "2x1, 2, 1x5, 1, -, 1x1", 8, 5592),
])
def test_conv_model_table_of_docs_gateware(name, target, folding, multipliers, latency):
    spec = NetworkSpec.load(MODEL_DIR / f"{name}.json")
    plan = plan_network(spec, target_ii=target)
    text = ", ".join("-" if layer.kind == "flatten" else f"{pe}x{simd}"
                     if layer.kind in ("conv", "dense") else str(pe)
                     for layer, (pe, simd) in zip(spec.layers, plan.folding, strict=True))
    assert (text, plan.multipliers, plan.latency) == (folding, multipliers, latency)
    assert plan.ii <= target and plan.converters == (None,) * (len(plan.layers) - 1)
