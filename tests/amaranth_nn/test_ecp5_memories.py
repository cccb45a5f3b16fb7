"""ECP5 memories: weight ROMs of ECP5_BLOCK_ROM_BITS and more in block RAM (bit-exact in
simulation, DP16KD in yosys, counted exactly by the estimate), and which RAMs yosys puts
into block RAM."""

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from specs import mlp_spec, random_inputs

from amaranth_nn import synth
from amaranth_nn.devices import DEVICES
from amaranth_nn.estimate import estimate
from amaranth_nn.network import Network
from amaranth_nn.plan import Rom
from amaranth_nn.simulate import simulate
from amaranth_nn.targets import ECP5_BLOCK_ROM_BITS, ECP5_ROM_SPLIT_BITS, ECP5Target

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


@pytest.mark.parametrize("depth, stages", [(400, 3), (400, 2), (400, 4), (200, 3), (128, 3),
                                           (64, 3), (16, 3), (400, 1), (1024, 3), (1500, 3)])
def test_lut_rom_reads_each_word_after_its_stages(depth, stages):
    """A LUT ROM, with the first data register inside its multiplexer tree past
    ``ECP5_ROM_SPLIT_BITS + 1`` address bits (past 9, after all but the top 3): every word
    ``stages`` cycles after its address."""
    rng = np.random.default_rng(depth + stages)
    words = tuple(int(w) for w in rng.integers(0, 1 << 12, depth))
    rom = Rom(layer=0, kind="weights", pe=0, lanes=1, lane_width=12, signed=False,
              words=words, layout="")
    m = Module()
    addr = Signal(range(depth))
    data = ECP5Target().read_rom(m, rom, addr, copy=1, stages=stages)
    split = depth > 2 << ECP5_ROM_SPLIT_BITS and stages > 2
    assert (f"{rom.name}_part0" in rtlil.convert(m, ports=[addr, data])) == split
    addrs = [int(a) for a in rng.integers(0, depth, 60)]
    seen = []

    async def bench(ctx):
        for a in addrs + [0] * stages:
            ctx.set(addr, a)
            await ctx.delay(1e-9)
            seen.append(ctx.get(data))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen[stages:stages + len(addrs)] == [words[a] for a in addrs]


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
