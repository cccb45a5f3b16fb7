"""ECP5 memories: weight ROMs of ECP5_BLOCK_ROM_BITS and more in block RAM (bit-exact in
simulation, DP16KD in yosys, counted exactly by the estimate), and which RAMs yosys puts
into block RAM."""

import numpy as np
import pytest
from specs import mlp_spec, random_inputs

from amaranth_nn import synth
from amaranth_nn.devices import DEVICES
from amaranth_nn.estimate import estimate
from amaranth_nn.network import Network
from amaranth_nn.simulate import simulate
from amaranth_nn.targets import ECP5_BLOCK_ROM_BITS, ECP5Target

ECP5 = DEVICES["lfe5u-85f"]

#: 256 -> 32 at pe 4, simd 8: four weight ROMs of 256 words x 56 bits = 14336 bits each, under
#: the line; at pe 1, simd 8: one ROM of 1024 words x 56 bits = 57344 bits, over it.
SIZES = [256, 32]


def test_a_large_rom_is_block_ram_and_bit_exact():
    spec = mlp_spec(SIZES, seed=4)
    net = Network(spec, [(1, 8)], arch=ECP5Target(model_multipliers=True))
    [weights] = [rom for rom in net.plan.roms if rom.kind == "weights"]
    assert weights.bits >= ECP5_BLOCK_ROM_BITS
    result = simulate(spec, random_inputs(np.random.default_rng(4), spec, 3), network=net,
                      progress=False, stalls=(0.2, 0.2))
    assert result.exact
    # 1024 x 56: four DP16KD of 1024 x 18; the input buffer, 64 x 64, two more.
    assert estimate(net.plan, ECP5).bram == 6


@pytest.mark.slow
@pytest.mark.parametrize("folding, block_rams", [([(1, 8)], 6), ([(4, 8)], 2)])
def test_rom_block_rams_as_estimated(folding, block_rams):
    """yosys ``synth_ecp5`` of the ECP5 target: the large ROM takes the four DP16KD the
    estimate counts, the smaller ones none (LUT logic); the input buffer (64 x 64 bits, two
    banks of 32 beats of 8 elements) takes two either way."""
    spec = mlp_spec(SIZES, seed=4)
    net = Network(spec, folding, arch="ecp5")
    modules = synth.module_resources(net, family="ecp5", progress=False)
    assert sum(counts["BRAM"] for counts in modules.values()) == block_rams
    assert estimate(net.plan, ECP5).bram == block_rams
