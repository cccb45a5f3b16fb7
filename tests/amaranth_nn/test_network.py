"""Network on the Amaranth simulator: bit-exact, II = largest layer II, latency = formula."""

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nn_helpers import draw_network, sizes
from specs import random_inputs, random_spec, stream_spec

from amaranth_nn import golden
from amaranth_nn.folding import (
    DEFAULT_TARGET_II,
    check_folding,
    choose_folding,
    default_folding,
    plan_network,
)
from amaranth_nn.ii import dense_ii
from amaranth_nn.lanes import ceil_div, pack_beats, unpack_beats
from amaranth_nn.models import default_spec, default_test_set
from amaranth_nn.network import Network
from amaranth_nn.simulate import run_streams, simulate
from amaranth_nn.targets import ECP5Target

DOCS = Path(__file__).parents[2] / "README.md"


def check_network(spec, x, folding=None, *, stalls=(0.0, 0.0), seed=0, **kwargs):
    result = simulate(spec, x, folding, stalls=stalls, seed=seed, progress=False, **kwargs)
    assert result.outputs.shape == (len(x), spec.output_size)
    assert (result.outputs == golden.run(spec, x)).all()
    assert result.mismatches == []
    return result


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_random_network_bit_exact(data):
    spec, folding, rng, seed = draw_network(data, sizes(small=10))
    stalls = data.draw(st.sampled_from([(0.0, 0.0), (0.3, 0.0), (0.0, 0.3), (0.4, 0.4)]),
                       label="stalls")
    x = random_inputs(rng, spec, data.draw(st.integers(1, 4), label="batch"))
    result = check_network(spec, x, folding, stalls=stalls, seed=seed)
    if stalls == (0.0, 0.0):
        assert result.latency == result.network.latency


@pytest.mark.parametrize("shape, folding", [
    ([13, 11, 7, 3], [(5, 2), (2, 4), (3, 7)]),     # converters, last layer II 1
    ([13, 11, 7, 3], [(11, 13), (7, 11), (3, 7)]),  # fully parallel: II 1
    ([13, 11, 7, 3], [(1, 1), (1, 1), (1, 1)]),     # fully folded
    ([8, 12, 6], [(3, 8), (2, 3)]),                 # pe == next simd: no converter
    ([8, 12, 6], [(4, 2), (6, 3)]),                 # second layer is the bottleneck
    ([5, 9, 2], [(2, 5), (1, 9)]),                  # converter with more output lanes
])
def test_steady_state_ii_and_latency(shape, folding):
    rng = np.random.default_rng(sum(shape))
    spec = random_spec(rng, shape)
    result = check_network(spec, random_inputs(rng, spec, 10), folding)
    net = result.network
    assert net.ii == max(ceil_div(layer.out_features, pe) * ceil_div(layer.in_features, simd)
                         for layer, (pe, simd) in zip(spec.layers, folding, strict=True))
    starts = result.out_cycles[:, 0]
    assert (np.diff(starts)[2:] == net.ii).all()
    assert result.ii == net.ii
    assert result.latency == net.latency
    # The whole schedule of the first vector, not only its last beat.
    assert list(result.out_cycles[0] - result.in_cycles[0, 0]) == net.output_times()


def test_latency_formula_single_layer():
    rng = np.random.default_rng(1)
    spec = random_spec(rng, [10, 7])
    for pe, simd in [(1, 1), (3, 4), (7, 10)]:
        plan = plan_network(spec, [(pe, simd)])
        layer = plan.layers[0]
        assert layer.pipeline_depth == 9 + (simd - 1).bit_length()
        assert plan.latency == plan.ii + layer.pipeline_depth


@pytest.mark.parametrize("shape, folding", [
    ([13, 11, 7, 3], [(1, 1), (1, 1), (1, 1)]),
    ([8, 12, 6], [(3, 8), (2, 3)]),
    ([9, 4, 5, 2], [(2, 3), (5, 2), (2, 5)]),
])
def test_latency_closed_form_without_converters(shape, folding):
    rng = np.random.default_rng(len(shape))
    spec = random_spec(rng, shape)
    plan = plan_network(spec, folding)
    assert plan.converters == (None,) * (len(shape) - 2)
    closed = plan.layers[0].in_beats - 1 + sum(
        layer.ii - layer.in_beats + layer.pipeline_depth + 1 for layer in plan.layers)
    assert plan.latency == closed
    assert check_network(spec, random_inputs(rng, spec, 3), folding).latency == closed


def test_default_model_folding_and_figures():
    spec = default_spec()
    plan = plan_network(spec)
    assert plan.folding == default_folding(spec) == choose_folding(spec, DEFAULT_TARGET_II)
    assert plan.folding == ((4, 8), (2, 4), (2, 2))
    assert plan.ii == 64
    assert plan.multipliers == 44
    assert plan.converters == (None, None)
    assert plan.in_beats == 8 and plan.out_beats == 5
    assert plan.latency == 187


def test_default_model_test_images():
    spec = default_spec()
    x, labels = default_test_set()
    result = check_network(spec, x[:300])
    net = result.network
    assert net.folding == ((4, 8), (2, 4), (2, 2))
    assert (net.ii, net.latency, net.multipliers) == (64, 187, 44)
    assert (net.in_beats, net.out_beats) == (8, 5)
    assert result.ii == 64
    assert result.latency == 187
    accuracy = np.mean(np.argmax(result.outputs, axis=1) == labels[:300])
    assert accuracy > 0.9


@pytest.mark.parametrize("running", [False, True])
@pytest.mark.parametrize("shape, folding", [
    ([13, 11, 7, 3], [(5, 2), (2, 4), (3, 7)]),
    ([6, 5], [(1, 1)]),
    ([16, 16, 4], [(16, 16), (4, 16)]),
    ([40, 9], [(1, 1)]),
    ([24, 5], [(2, 1)]),
    ([128, 3], [(1, 8)]),
    ([13, 11, 7, 3], [(5, 5), (2, 3), (3, 6)]),
])
def test_ecp5_architecture_with_modelled_multipliers(shape, folding, running):
    # Everything of the ECP5 target but the MULT18X18D instance itself (LUT ROMs, address and
    # data registers, operand sign extension, product slicing) runs in the simulator, with a
    # behavioural model of the registered multiplier in place of the instance. 40 -> 9 at
    # simd 1 reads a 360-word weight ROM and a 128-word input buffer in registered pieces (24
    # -> 5, a 64-word buffer, in four); 128 -> 3 at simd 8 has an input buffer of 2048 bits or
    # more, left to yosys' block RAM; simd 5, 3 and 6 register the products again before sums
    # of up to three.
    arch = ECP5Target(model_multipliers=True)
    rng = np.random.default_rng(len(shape) + sum(shape))
    spec = random_spec(rng, shape)
    net = Network(spec, folding, arch=arch, running_accumulators=running)
    result = simulate(spec, random_inputs(rng, spec, 6), network=net, progress=False,
                      stalls=(0.2, 0.2))
    assert result.exact
    assert result.outputs.shape == (6, shape[-1])
    steady = simulate(spec, random_inputs(rng, spec, 4), network=Network(
        spec, folding, arch=arch, running_accumulators=running), progress=False)
    assert steady.latency == net.latency  # the same pipeline as the generic architecture
    assert net.latency == plan_network(spec, folding).latency + running * len(spec.layers)


def brute_force_cost(spec, target_ii):
    """Smallest total multipliers plus converters, over every folding (small specs only)."""
    options = []
    for layer in spec.layers:
        options.append([(pe, simd) for pe in range(1, layer.out_features + 1)
                        for simd in range(1, layer.in_features + 1)
                        if dense_ii(layer.in_features, layer.out_features, pe, simd)
                        <= target_ii])
    return options


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(sizes(small=12), min_size=2, max_size=4), target=st.integers(1, 200))
def test_choose_folding_meets_target_with_fewest_multipliers(shape, target):
    spec = random_spec(np.random.default_rng(0), shape)
    folding = choose_folding(spec, target)
    previous = None
    for layer, (pe, simd), options in zip(spec.layers, folding,
                                          brute_force_cost(spec, target), strict=True):
        assert 1 <= pe <= layer.out_features and 1 <= simd <= layer.in_features
        assert dense_ii(layer.in_features, layer.out_features, pe, simd) <= target
        # Cheapest for its layer, a width converter counting as one multiplier.
        cost = [p * s + (previous is not None and s != previous) for p, s in options]
        assert pe * simd + (previous is not None and simd != previous) == min(cost)
        previous = pe
    # Never more than one multiplier per layer above the unconstrained minimum.
    for (pe, simd), options in zip(folding, brute_force_cost(spec, target), strict=True):
        assert pe * simd <= min(p * s for p, s in options) + 1


def test_target_ii_and_folding_arguments():
    spec = random_spec(np.random.default_rng(2), [12, 8, 3])
    plan = plan_network(spec, target_ii=16)
    assert plan.folding == choose_folding(spec, 16)
    assert plan.ii <= 16
    assert plan_network(spec, [[2, 3], (1, 8)]).folding == ((2, 3), (1, 8))
    with pytest.raises(ValueError, match=r"^Pass either a folding or a target II, not both$"):
        Network(spec, [(1, 1), (1, 1)], target_ii=4)
    with pytest.raises(ValueError, match=r"^Target II must be a positive integer, not 0$"):
        Network(spec, target_ii=0)
    with pytest.raises(TypeError, match=r"^Target II must be an integer, not 2.5$"):
        Network(spec, target_ii=2.5)
    with pytest.raises(ValueError, match=r"^Folding must have one \(pe, simd\) pair per layer "
                                         r"\(2\), not 1$"):
        Network(spec, [(1, 1)])
    with pytest.raises(TypeError, match=r"^Folding of layer 1 \('dense1'\) must be a \(pe, "
                                        r"simd\) pair, not 5$"):
        Network(spec, [(1, 1), 5])
    with pytest.raises(TypeError, match=r"^Folding must be a sequence of \(pe, simd\) pairs, "
                                        r"not 3$"):
        check_folding(spec, 3)
    with pytest.raises(ValueError, match=r"^Simd must be from 1 to 8 \(the in_features of layer "
                                         r"1 \('dense1'\)\), not 9$"):
        Network(spec, [(1, 1), (1, 9)])
    with pytest.raises(TypeError, match=r"^Spec must be a NetworkSpec, not None$"):
        Network(None)
    with pytest.raises(TypeError, match=r"^Spec must be a NetworkSpec, not None$"):
        choose_folding(None, 4)


def test_no_vector_lost_duplicated_or_reordered_under_heavy_stalls():
    rng = np.random.default_rng(9)
    spec = random_spec(rng, [6, 5, 4])
    # Distinct vectors: any loss, duplication or reordering changes the output sequence.
    x = random_inputs(rng, spec, 12)
    net = Network(spec, [(2, 3), (4, 2)])
    words = pack_beats(x, 3, spec.input_format.width)
    run = run_streams(net, words, 12 * net.out_beats, stalls=(0.6, 0.6), longest_stall=7,
                      seed=3)
    out, _ = unpack_beats(run.outputs, 4, spec.output_format.width, 4)
    assert (out == golden.run(spec, x)).all()


def docs_example():
    """The embedding example of README.md, exactly as written there."""
    text = DOCS.read_text()
    blocks = re.findall(r"<!-- example: embed -->\n```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "README.md must hold exactly one embedding example"
    return blocks[0]


def test_docs_embedding_example():
    namespace = {"__name__": "docs_example"}
    exec(compile(docs_example(), str(DOCS), "exec"), namespace)
    design = namespace["design"]
    spec = default_spec()
    x, _ = default_test_set()
    x = x[:6]
    net = design.net
    words = pack_beats(x, net.plan.in_lanes, spec.input_format.width)
    run = run_streams(design, words, len(x) * net.out_beats, source=design.pixels,
                      sink=design.scores, stalls=(0.2, 0.2))
    out, _ = unpack_beats(run.outputs, net.plan.out_lanes, spec.output_format.width,
                          spec.output_size)
    assert (out == golden.run(spec, x)).all()


def test_every_pe_simd_pair_of_a_tiny_layer():
    # Exhaustive over a 3 -> 4 layer: every (pe, simd), simulated together in one network
    # per pe would not cover converters; instead one network per pair, two vectors each.
    rng = np.random.default_rng(4)
    spec = random_spec(rng, [3, 4])
    x = random_inputs(rng, spec, 2)
    for pe, simd in itertools.product(range(1, 5), range(1, 4)):
        check_network(spec, x, [(pe, simd)])


@pytest.mark.parametrize("folding", [
    None,                                # the default: no converter
    [(1, 1), (2, 3), None, (3, 2)],      # conv -> conv at other lanes, no converter
    [(3, 6), (1, 2), None, (3, 6)],      # converter after the flatten, 1 -> 6 lanes
    [(2, 4), (2, 9), None, (1, 1)],      # converter after the flatten, 2 -> 1 lanes
])
def test_conv_network_bit_exact_with_planned_ii_and_latency(folding):
    rng = np.random.default_rng(11)
    spec = stream_spec(rng, (6, 2), [("conv", 3, (3,), (1,), (1,)),
                                     ("conv", 2, (3,), (1,), (1,)), ("flatten",), ("dense", 3)])
    result = check_network(spec, random_inputs(rng, spec, 6), folding)
    net = result.network
    assert net.plan.check_ii()
    assert (result.ii, result.latency) == (net.ii, net.latency)
    assert list(result.out_cycles[0] - result.in_cycles[0, 0]) == net.output_times()


def every_kind_specs(rng):
    """Networks of every layer kind, 1-D and 2-D, with converters wherever lanes differ."""
    return [
        stream_spec(rng, (8, 6), [("scale_shift",), ("maxpool", (2,)),
                                  ("conv", 4, (3,), (1,), (0,)), ("avgpool", (2,)), ("flatten",),
                                  ("dense", 3)]),
        stream_spec(rng, (4, 4, 3), [("conv", 5, (3, 3), (1, 1), (1, 1)), ("scale_shift",),
                                     ("maxpool", (2, 2)), ("conv", 4, (2, 2), (1, 1), (0, 0)),
                                     ("flatten",), ("dense", 3)]),
        stream_spec(rng, (9, 5), [("maxpool", (3,)), ("scale_shift",), ("flatten",),
                                  ("dense", 4)]),
    ]


def random_folding(rng, spec):
    """A random folding of ``spec`` that keeps the stream rules."""
    while True:
        folding = []
        for layer in spec.layers:
            if layer.kind == "dense":
                folding.append((int(rng.integers(1, layer.out_features + 1)),
                                int(rng.integers(1, layer.in_features + 1))))
            elif layer.kind == "conv":
                folding.append((int(rng.integers(1, layer.out_channels + 1)),
                                int(rng.integers(1, layer.window_size + 1))))
            elif layer.kind == "flatten":
                folding.append(None)
            else:
                folding.append(int(rng.integers(1, layer.input_shape[-1] + 1)))
        try:
            return check_folding(spec, folding)
        except ValueError:
            continue


@pytest.mark.parametrize("seed", range(9))
def test_network_of_every_kind_with_planned_ii_latency_and_output_times(seed):
    rng = np.random.default_rng(seed)
    spec = every_kind_specs(rng)[seed % 3]
    folding = random_folding(rng, spec)
    running = seed % 2 == 1  # half of them with running accumulators
    result = check_network(spec, random_inputs(rng, spec, 4), network=Network(
        spec, folding, running_accumulators=running))
    net = result.network
    assert net.plan.running_accumulators is running
    for block in net.plan.layers:  # the dense layers' accumulators run, conv engines restart
        kind = spec.layers[block.index].kind
        if kind in ("dense", "conv"):
            assert block.running_accumulators is (running and kind == "dense")
    assert net.plan.check_ii()
    assert (result.ii, result.latency) == (net.ii, net.latency)
    assert list(result.out_cycles[0] - result.in_cycles[0, 0]) == net.output_times()


def test_converter_of_many_positions_that_holds_its_writer_back():
    """6 lanes to 1 on each of 8 positions: the converter reads 6 beats per position written in
    one, so its writer waits for a free bank; the output times are those of the plan."""
    rng = np.random.default_rng(5)
    spec = every_kind_specs(rng)[0]
    folding = [6, 1, (4, 12), 4, None, (3, 4)]
    result = check_network(spec, random_inputs(rng, spec, 4), folding)
    net = result.network
    assert net.plan.converters[0].in_lanes == 6 and net.plan.converters[0].out_lanes == 1
    assert net.plan.converter_positions[0] == 8
    assert (result.ii, result.latency) == (net.ii, net.latency)
    assert list(result.out_cycles[0] - result.in_cycles[0, 0]) == net.output_times()
