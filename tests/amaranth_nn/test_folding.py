"""Folding: arguments checked in one place, before any hardware is built; the cheapest folding
of networks of every layer kind, against every folding of small specs."""

import argparse
import gc
import itertools
from math import prod

import numpy as np
import pytest
from specs import random_spec, stream_spec

from amaranth_nn.cli import CommandError
from amaranth_nn.export import export
from amaranth_nn.folding import (
    DEFAULT_POSITION_II,
    DEFAULT_TARGET_II,
    add_folding_arguments,
    check_folding,
    choose_folding,
    default_folding,
    default_target_ii,
    folding_from_args,
    plan_network,
    smallest_ii,
)
from amaranth_nn.models import MODEL_DIR, default_spec
from amaranth_nn.simulate import simulate
from amaranth_nn.spec import NetworkSpec


def _spec():
    return random_spec(np.random.default_rng(2), [12, 8, 3])


def test_out_of_range_is_value_error_wrong_type_is_type_error():
    spec = _spec()
    with pytest.raises(ValueError, match=r"^Target II must be a positive integer, not 0$"):
        choose_folding(spec, 0)
    with pytest.raises(TypeError, match=r"^Target II must be an integer, not 2\.0$"):
        choose_folding(spec, 2.0)
    with pytest.raises(ValueError, match=r"^Pe must be from 1 to 3 \(the out_features of layer "
                                         r"1 \('dense1'\)\), not 0$"):
        plan_network(spec, [(1, 1), (0, 1)])
    with pytest.raises(TypeError, match=r"^Simd must be an integer, not 2\.0$"):
        plan_network(spec, [(1, 2.0), (1, 1)])
    with pytest.raises(ValueError, match=r"^Pe must be from 1 to 3 \(the out_features of layer "
                                         r"1 \('dense1'\)\), not 4$"):
        plan_network(spec, [(1, 1), (4, 1)])


def test_plan_network_folding():
    spec = _spec()
    assert plan_network(spec).folding == default_folding(spec)
    assert plan_network(spec, target_ii=16).folding == choose_folding(spec, 16)
    assert plan_network(spec, [[2, 3], (1, 8)]).folding == ((2, 3), (1, 8))
    with pytest.raises(ValueError, match=r"^Pass either a folding or a target II, not both$"):
        plan_network(spec, [(1, 1), (1, 1)], target_ii=4)


def test_nothing_built_for_a_bad_folding(tmp_path):
    """A bad folding given to simulate() or export() leaves no half-built component to warn
    (as an error, in this suite) when it is collected, and writes nothing."""
    spec = _spec()
    with pytest.raises(ValueError, match=r"^Simd must be from 1 to 8"):
        simulate(spec, np.zeros((1, 12), dtype=np.int64), [(1, 1), (1, 9)])
    with pytest.raises(ValueError, match=r"^Target II must be a positive integer, not 0$"):
        export(spec, tmp_path / "out", target_ii=0)
    gc.collect()
    assert not (tmp_path / "out").exists()


# Folding of networks that slide windows: the arithmetic written out here independently of
# amaranth_nn.ii, and every folding of small specs tried.

def small_specs():
    """A 1-D chain with a flatten whose lanes must divide 3 channels, and a 2-D chain with a
    scale-and-shift, a strided convolution and an average pool."""
    rng = np.random.default_rng(7)
    one = stream_spec(rng, (6, 2), [
        ("conv", 3, (3,), (1,), (1,)), ("maxpool", (2,)), ("conv", 3, (3,), (1,), (1,)),
        ("flatten",), ("dense", 3)])
    two = stream_spec(rng, (4, 4, 2), [
        ("scale_shift",), ("conv", 3, (2, 2), (2, 2), (0, 0)), ("avgpool", (2, 2)),
        ("flatten",), ("dense", 2)])
    return one, two


def entries(layer):
    """Every folding entry of a layer (None for a flatten)."""
    if layer.kind == "dense":
        return list(itertools.product(range(1, layer.out_features + 1),
                                      range(1, layer.in_features + 1)))
    if layer.kind == "conv":
        return list(itertools.product(range(1, layer.out_channels + 1),
                                      range(1, prod(layer.kernel) * layer.in_channels + 1)))
    if layer.kind == "flatten":
        return [None]
    return [(lanes, lanes) for lanes in range(1, layer.input_shape[-1] + 1)]


def ii_and_cost(spec, folding):
    """``(II, multipliers + converters)`` of a folding, or None if a stream rule fails."""
    def flat(shape, lanes):
        return prod(shape[:-1]) == 1 or shape[-1] % lanes == 0

    ii, cost, upstream, last = 0, 0, None, None
    for index, (layer, entry) in enumerate(zip(spec.layers, folding, strict=True)):
        if layer.kind == "flatten":
            if upstream is not None and not flat(layer.input_shape, upstream):
                return None
            continue
        p_in, c_in = prod(layer.input_shape[:-1]), layer.input_shape[-1]
        p_out = prod(layer.output_shape[:-1])
        pe, simd = entry
        if layer.kind == "conv":
            lanes = c_in if upstream is None else upstream
            compute = p_out * -(-layer.out_channels // pe) * -(-prod(layer.kernel) * c_in // simd)
            multipliers = pe * simd
        else:
            lanes = simd
            if index == 0 and not flat(layer.input_shape, lanes):
                return None
            if layer.kind == "dense":
                compute = -(-layer.out_features // pe) * -(-layer.in_features // simd)
                multipliers = pe * simd
            elif layer.kind == "scale_shift":
                compute, multipliers = p_in * -(-c_in // lanes), lanes
            else:
                compute, multipliers = p_out * prod(layer.kernel) * -(-c_in // lanes), 0
        ii = max(ii, compute, p_in * -(-c_in // lanes))
        cost += multipliers + (upstream is not None and lanes != upstream)
        upstream, last = pe, layer
    if not flat(last.output_shape, upstream):
        return None
    return ii, cost


def test_choose_folding_of_spatial_specs_is_the_cheapest():
    for spec in small_specs():
        costs = {}
        for folding in itertools.product(*(entries(layer) for layer in spec.layers)):
            figures = ii_and_cost(spec, folding)
            if figures is not None:
                costs[folding] = figures
        fastest = min(ii for ii, _ in costs.values())
        assert smallest_ii(spec) == fastest
        for target in sorted({ii for ii, _ in costs.values()} | {fastest + 1, 1000}):
            folding = choose_folding(spec, target)
            assert check_folding(spec, folding) == folding
            ii, cost = ii_and_cost(spec, [None if layer.kind == "flatten" else entry
                                          for layer, entry in zip(spec.layers, folding,
                                                                  strict=True)])
            assert ii <= target
            assert cost == min(c for i, c in costs.values() if i <= target), (target, folding)
        with pytest.raises(ValueError, match=rf"^Target II {fastest - 1} is less than the "
                                             rf"smallest II of this network, {fastest} \(every "
                                             rf"block takes at least one cycle per input "
                                             rf"beat\)$"):
            choose_folding(spec, fastest - 1)


def test_choose_folding_prefers_no_converter_and_lanes_dividing_before_a_flatten():
    one, _ = small_specs()
    # Slow enough for one multiplier everywhere: the pool keeps the convolution's lane, and the
    # convolution before the flatten has lanes dividing its 3 channels.
    assert choose_folding(one, 1000) == ((1, 1), (1, 1), (1, 1), (1, 1), (1, 1))
    folding = choose_folding(one, 12)
    assert folding[1][0] == folding[0][0]
    assert 3 % folding[2][0] == 0 and folding[3] == (folding[2][0],) * 2


def test_default_target_ii():
    assert default_target_ii(_spec()) == DEFAULT_TARGET_II == 64
    one, two = small_specs()
    assert default_target_ii(one) == DEFAULT_POSITION_II * 6 == 96
    assert default_target_ii(two) == DEFAULT_POSITION_II * 16
    assert default_folding(one) == choose_folding(one, 96)


@pytest.mark.parametrize("name, folding, ii, multipliers", [
    ("mnist1d", ((1, 5), (1, 1), (8, 5), (8, 8), (2, 6), (2, 2), (2, 2), (1, 2)), 640, 59),
    ("digits-conv", ((1, 5), (1, 1), (1, 18), (1, 1), (1, 1), (1, 1)), 1024, 24),
])
def test_default_folding_of_the_shipped_conv_models(name, folding, ii, multipliers):
    spec = NetworkSpec.load(MODEL_DIR / f"{name}.json")
    assert default_folding(spec) == folding
    figures = ii_and_cost(spec, [None if layer.kind == "flatten" else entry
                                 for layer, entry in zip(spec.layers, folding, strict=True)])
    assert figures == (ii, multipliers)  # no width converter
    assert default_target_ii(spec) == ii


def test_flatten_on_the_command_line():
    spec = _spec()
    parser = argparse.ArgumentParser()
    add_folding_arguments(parser)
    args = parser.parse_args(["--pe", "2,1", "--simd", "3,8"])
    assert folding_from_args(args, spec) == (((2, 3), (1, 8)), None)
    with pytest.raises(CommandError, match=r"^--pe -,1 --simd 3,8: - is for a flatten layer, in "
                                           r"both lists; layer 0 \('dense0'\) is a dense "
                                           r"layer$"):
        folding_from_args(parser.parse_args(["--pe=-,1", "--simd", "3,8"]), spec)
    with pytest.raises(CommandError, match=r"^--pe 2,1 --simd 3,9: Simd must be from 1 to 8 "):
        folding_from_args(parser.parse_args(["--pe", "2,1", "--simd", "3,9"]), spec)


def test_flatten_entry_on_the_command_line():
    spec = stream_spec(np.random.default_rng(1), (4, 3), [("flatten",), ("dense", 5)])
    parser = argparse.ArgumentParser()
    add_folding_arguments(parser)
    args = parser.parse_args(["--pe=-,2", "--simd=-,4"])
    assert folding_from_args(args, spec) == (((4, 4), (2, 4)), None)
    assert plan_network(spec, folding_from_args(args, spec)[0]).in_lanes == 4


def test_networks_of_vectors_are_folded_layer_by_layer():
    """The documented exception: a cheaper total exists for the digits model at II 64 (43
    multipliers, no converter), but the layers are chosen in order, as they always were."""
    spec = default_spec()
    cheaper = ((8, 4), (1, 8), (3, 1))
    assert ii_and_cost(spec, cheaper) == (64, 43)
    folding = choose_folding(spec, 64)
    assert folding == ((4, 8), (2, 4), (2, 2))
    assert ii_and_cost(spec, folding) == (64, 44)


def test_conv_model_folding_on_the_command_line():
    spec = NetworkSpec.load(MODEL_DIR / "mnist1d.json")
    parser = argparse.ArgumentParser()
    add_folding_arguments(parser)
    args = parser.parse_args(["--pe", "1,1,8,8,2,2,-,1", "--simd", "5,1,5,8,6,2,-,2"])
    assert folding_from_args(args, spec) == (default_folding(spec), None)
    args = parser.parse_args(["--pe", "1,1,8,8,2,3,-,1", "--simd", "5,1,5,8,6,3,-,2"])
    with pytest.raises(CommandError, match=(
            r"^--pe 1,1,8,8,2,3,-,1 --simd 5,1,5,8,6,3,-,2: layer 6 \('flatten0'\) takes the "
            r"stream of layer 5 \('maxpool2'\) as a flat vector, but its 3 lanes per beat do not "
            r"divide the 16 channels of each of its 5 positions: give layer 5 \('maxpool2'\) "
            r"lanes dividing 16 \(1, 2, 4, 8, 16\)$")):
        folding_from_args(args, spec)
    args = parser.parse_args(["--pe", "1,2,8,8,2,2,-,1", "--simd", "5,1,5,8,6,2,-,2"])
    with pytest.raises(CommandError, match=(
            r"^--pe 1,2,8,8,2,2,-,1 --simd 5,1,5,8,6,2,-,2: Folding of layer 1 \('maxpool0'\) "
            r"must be its lanes, an integer or a \(lanes, lanes\) pair of equal values, not "
            r"\(2, 1\): a maxpool layer has as many lanes out as in$")):
        folding_from_args(args, spec)


def test_target_ii_below_the_smallest_ii_on_the_command_line():
    spec = NetworkSpec.load(MODEL_DIR / "mnist1d.json")
    parser = argparse.ArgumentParser()
    add_folding_arguments(parser)
    assert folding_from_args(parser.parse_args(["--target-ii", "40"]), spec) == (None, 40)
    with pytest.raises(CommandError, match=(
            r"^--target-ii 39 is less than the smallest II of this model, 40 cycles \(every "
            r"block takes at least one cycle per input beat\)$")):
        folding_from_args(parser.parse_args(["--target-ii", "39"]), spec)
