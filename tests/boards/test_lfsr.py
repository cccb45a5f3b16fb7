"""The LFSR counters of the board harness: primitive polynomials, jumps, the gateware step."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from boards.lfsr import POLYNOMIALS, lfsr_next, lfsr_width, state_after


def _prime_factors(n):
    factors, p = set(), 2
    while p * p <= n:
        while n % p == 0:
            factors.add(p)
            n //= p
        p += 1 if p == 2 else 2
    if n > 1:
        factors.add(n)
    return factors


@pytest.mark.parametrize("width", sorted(POLYNOMIALS))
def test_polynomials_are_primitive(width):
    """x has order 2**width - 1 modulo each polynomial: the LFSR runs through every nonzero
    state."""
    order = (1 << width) - 1
    assert POLYNOMIALS[width] >> width == 1
    assert state_after(width, order) == 1
    assert all(state_after(width, order // q) != 1 for q in _prime_factors(order))


def test_state_after_jumps_like_stepping():
    for width in (2, 5, 17):
        state = 1
        for steps in range(300):
            assert state_after(width, steps) == state
            state <<= 1
            if state >> width:
                state ^= POLYNOMIALS[width]


def test_lfsr_width():
    assert [lfsr_width(steps) for steps in (0, 2, 3, 40, 1_200_000)] == [2, 2, 3, 6, 21]
    with pytest.raises(ValueError, match=r"^2000000000000 steps need an LFSR wider than 40 "):
        lfsr_width(2 * 10**12)


def test_gateware_step_matches_state_after():
    m = Module()
    state = Signal(7, init=1)
    m.d.sync += state.eq(lfsr_next(state))
    sim = Simulator(m)
    sim.add_clock(1e-6)
    seen = []

    async def bench(ctx):
        for _ in range(200):
            seen.append(ctx.get(state))
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    assert seen == [state_after(7, k) for k in range(200)]
    assert len(set(seen[:127])) == 127
