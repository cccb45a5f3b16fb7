"""Which target an ``arch`` means (amaranth_nn.targets), and the iCE40 target's networks."""

import numpy as np
import pytest
from specs import random_inputs

from amaranth_nn.models import default_spec
from amaranth_nn.network import Network
from amaranth_nn.simulate import simulate
from amaranth_nn.targets import ECP5Target, GenericTarget, ICE40Target, resolve_target
from boards import get_board


@pytest.mark.parametrize("board, target", [
    ("icebreaker", ICE40Target), ("ulx3s", ECP5Target), ("arty_a7", GenericTarget),
])
def test_auto_picks_the_target_of_the_platform_family(board, target):
    assert type(resolve_target("auto", get_board(board).platform())) is target


@pytest.mark.parametrize("arch, target", [
    ("generic", GenericTarget), ("ecp5", ECP5Target), ("ice40", ICE40Target),
])
def test_a_name_picks_its_target_on_any_platform(arch, target):
    assert type(resolve_target(arch, get_board("arty_a7").platform())) is target
    assert type(resolve_target(arch)) is target


def test_ice40_target_network_bit_exact_with_the_generic_timing():
    """The iCE40 target's one-stage LUT ROM (the held bias word) is logic and a register,
    where the generic one is a register and logic: the same cycles."""
    spec = default_spec()
    x = random_inputs(np.random.default_rng(3), spec, 4)
    generic = simulate(spec, x, network=Network(spec, target_ii=256), progress=False)
    ice40 = simulate(spec, x, network=Network(spec, target_ii=256, arch="ice40",
                                              lut_multipliers=(1, 2)),
                     progress=False, stalls=(0.3, 0.3))
    assert generic.exact and ice40.exact
    steady = simulate(spec, x, network=Network(spec, target_ii=256, arch="ice40"),
                      progress=False)
    assert (steady.ii, steady.latency) == (generic.ii, generic.latency)
