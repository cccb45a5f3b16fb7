"""Multipliers built from logic (amaranth_nn.lut_multiplier): every product exact, the same
timing as the DSP blocks', no DSP block in synthesis, and the layers a build moves to logic when
a device's DSP blocks run out (amaranth_nn.estimate.spill_to_logic)."""

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Signal, signed, unsigned
from amaranth.sim import Simulator
from specs import random_inputs, random_spec
from test_network import check_network, every_kind_specs, random_folding

from amaranth_nn import synth
from amaranth_nn.devices import DEVICES
from amaranth_nn.estimate import check_fit, dsp_blocks, estimate, spill_to_logic
from amaranth_nn.folding import plan_network
from amaranth_nn.lut_multiplier import lut_products
from amaranth_nn.models import default_spec
from amaranth_nn.network import Network
from amaranth_nn.network_plan import NetworkPlan
from amaranth_nn.simulate import simulate
from amaranth_nn.targets import ECP5Target

ICE40 = DEVICES["ice40up5k"]


class _Products(Elaboratable):
    def __init__(self, x_shape, w_shape):
        self.x, self.w = Signal(x_shape), Signal(w_shape)
        width = x_shape.width + w_shape.width + 1
        self.plan = SimpleNamespace(x_shape=x_shape, w_shape=w_shape, product_width=width)
        self.product = Signal(signed(width))

    def elaborate(self, platform):
        m = Module()
        [[product]] = lut_products(m, self.plan, [self.x], [[self.w]])
        m.d.comb += self.product.eq(product)
        return m


def _values(shape):
    if shape.signed:
        return range(-(1 << (shape.width - 1)), 1 << (shape.width - 1))
    return range(1 << shape.width)


@pytest.mark.parametrize("x_shape, w_shape", [
    (signed(4), signed(3)), (unsigned(4), signed(5)), (signed(5), unsigned(3)),
    (unsigned(3), unsigned(4)), (signed(1), signed(6)), (signed(6), signed(6)),
])
def test_every_product_two_cycles_later(x_shape, w_shape):
    dut = _Products(x_shape, w_shape)
    pairs = list(itertools.product(_values(x_shape), _values(w_shape)))
    seen = []

    async def testbench(ctx):
        for n in range(len(pairs) + 1):
            if n < len(pairs):
                ctx.set(dut.x, pairs[n][0])
                ctx.set(dut.w, pairs[n][1])
            await ctx.tick()
            if n >= 1:
                seen.append(ctx.get(dut.product))  # registered at the second clock edge

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == [x * w for x, w in pairs]


def _multiplier_layers(spec):
    return [index for index, layer in enumerate(spec.layers)
            if layer.kind in ("dense", "conv", "scale_shift")]


@pytest.mark.parametrize("seed", range(3))
def test_network_of_every_kind_in_logic_bit_exact_with_the_same_timing(seed):
    rng = np.random.default_rng(100 + seed)
    spec = every_kind_specs(rng)[seed]
    folding = random_folding(rng, spec)
    luts = _multiplier_layers(spec)
    result = check_network(spec, random_inputs(rng, spec, 4), stalls=(0.3, 0.3),
                           network=Network(spec, folding, lut_multipliers=luts))
    net = result.network
    assert net.plan.lut_multipliers == tuple(luts)
    assert all(block.lut_multipliers for block in net.plan.layers
               if block.index in luts)
    steady = simulate(spec, random_inputs(rng, spec, 4), progress=False,
                      network=Network(spec, folding, lut_multipliers=luts))
    assert steady.exact
    assert (steady.ii, steady.latency) == (net.ii, net.latency)  # the DSP design's formulas


def test_ecp5_target_with_layers_in_logic():
    rng = np.random.default_rng(7)
    spec = random_spec(rng, [13, 11, 7, 3])
    folding = [(5, 2), (2, 4), (3, 7)]
    net = Network(spec, folding, arch=ECP5Target(model_multipliers=True), lut_multipliers=[1])
    result = simulate(spec, random_inputs(rng, spec, 5), network=net, progress=False,
                      stalls=(0.2, 0.2))
    assert result.exact


@pytest.mark.parametrize("layers, error, message", [
    ([5], ValueError, "Lut_multipliers names layer 5, but the network has layers 0 to 2"),
    ([1.0], TypeError, "Lut_multipliers must hold layer indices (integers), not 1.0"),
    (3, TypeError, "Lut_multipliers must be a collection of layer indices, not 3"),
])
def test_bad_layer_lists(layers, error, message):
    spec = default_spec()
    with pytest.raises(error) as info:
        Network(spec, lut_multipliers=layers)
    assert str(info.value) == message


def test_a_layer_without_multipliers_is_named():
    rng = np.random.default_rng(3)
    spec = every_kind_specs(rng)[2]  # maxpool, scale_shift, flatten, dense
    with pytest.raises(ValueError) as info:
        NetworkPlan(spec, random_folding(rng, spec), lut_multipliers=[0])
    assert str(info.value) == (f"Lut_multipliers names layer 0 ({spec.layers[0].name!r}), a "
                               f"maxpool layer, which has no multipliers")


def test_spill_moves_the_cheapest_layers_that_free_enough_dsps():
    """The default model at target II 256 on the iCE40UP5K: 8 + 2 + 1 multipliers for 8
    SB_MAC16. Layers 1 and 2 (3 multipliers) free enough; layer 0 alone would too but costs
    more logic."""
    spec = default_spec()
    plan = plan_network(spec, target_ii=256)
    assert [dsp_blocks(block, ICE40) for block in plan.layers] == [8, 2, 1]
    spilled = spill_to_logic(plan, ICE40)
    assert spilled.lut_multipliers == (1, 2)
    assert spilled.folding == plan.folding
    assert [dsp_blocks(block, ICE40) for block in spilled.layers] == [8, 0, 0]
    assert check_fit(spilled, ICE40).fits
    # More logic than DSPs: the estimate grows by the LUT multipliers.
    assert estimate(spilled, ICE40).lut > estimate(plan, ICE40).lut
    # A plan whose DSPs fit, or one that no spill makes fit, is returned as it is.
    fitting = plan_network(spec, target_ii=512)
    assert spill_to_logic(fitting, ICE40) is fitting
    hopeless = plan_network(spec, target_ii=16)
    assert spill_to_logic(hopeless, ICE40) is hopeless
    # Only the small part builds multipliers from logic: the others take a more folded design.
    over = plan_network(spec, target_ii=16)
    assert not check_fit(over, DEVICES["xc7a35t"]).fits
    assert spill_to_logic(over, DEVICES["xc7a35t"]) is over


@pytest.mark.slow
@pytest.mark.parametrize("family, dsp", [("ice40", "DSP"), ("xc7", "DSP")])
def test_layers_in_logic_take_no_dsp_block(family, dsp):
    """yosys maps the products of a layer in logic to LUTs and carry chains only: the DSP
    blocks left are those of the other layers."""
    spec = default_spec()
    net = Network(spec, target_ii=256, lut_multipliers=(1, 2))
    modules = synth.module_resources(net, family=family, progress=False)
    assert modules["top.layer0"][dsp] == 8
    assert modules["top.layer1"][dsp] == modules["top.layer2"][dsp] == 0
    assert modules["top.layer1"]["LUT"] > modules["top.layer2"]["LUT"] > 0
