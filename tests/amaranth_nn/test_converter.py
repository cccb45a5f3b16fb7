"""WidthConverter on the Amaranth simulator: every element in its place, the plan's timing."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nn_helpers import sizes

from amaranth_nn.converter import WidthConverter
from amaranth_nn.lanes import pack_beats, unpack_beats
from amaranth_nn.plan import ConverterPlan
from amaranth_nn.simulate import run_streams


@settings(max_examples=25, deadline=None)
@given(length=sizes(), data=st.data())
def test_width_converter(length, data):
    a = data.draw(st.integers(1, length), label="in_lanes")
    b = data.draw(st.integers(1, length), label="out_lanes")
    width = data.draw(st.integers(2, 16), label="width")
    stalls = data.draw(st.sampled_from([(0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.3, 0.3)]),
                       label="stalls")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    x = rng.integers(-(1 << (width - 1)), 1 << (width - 1), size=(4, length))
    plan = ConverterPlan(width, a, b, length)
    dut = WidthConverter(plan)
    run = run_streams(dut, pack_beats(x, a, width), 4 * plan.out_beats, stalls=stalls, seed=seed)
    out, pad = unpack_beats(run.outputs, b, width, length)
    assert (out == x).all()
    assert (pad == 0).all()
    if stalls == (0.0, 0.0):
        arrivals = run.in_cycles[:plan.in_beats]
        assert run.out_cycles[:plan.out_beats] == plan.output_times(arrivals)


@pytest.mark.parametrize("length, a, b, group_beats, groups", [
    (8, 1, 1, 8, 1),     # one stage up to 8 output beats
    (9, 1, 1, 4, 3),     # past it, groups of 2**ceil(bits/2) beats, the last one short
    (17, 17, 2, 4, 3),   # 9 beats of 2 lanes, the last beat's second lane past the end
    (32, 2, 1, 8, 4),
    (40, 4, 1, 8, 5),    # a group count that is no power of two
])
def test_select_in_groups_with_stalls(length, a, b, group_beats, groups):
    """A converter of many output beats selects a beat within groups, then the group and the
    bank: every element in its place, at the plan's cycles."""
    plan = ConverterPlan(7, a, b, length)
    assert (plan.group_beats, plan.select_groups) == (group_beats, groups)
    assert plan.select_bits == (2 * groups + 1) * b * 7
    rng = np.random.default_rng(length)
    x = rng.integers(-64, 64, size=(5, length))
    for stalls in ((0.0, 0.0), (0.4, 0.4)):
        run = run_streams(WidthConverter(plan), pack_beats(x, a, 7), 5 * plan.out_beats,
                          stalls=stalls, seed=length)
        out, pad = unpack_beats(run.outputs, b, 7, length)
        assert (out == x).all() and (pad == 0).all()
    run = run_streams(WidthConverter(plan), pack_beats(x[:1], a, 7), plan.out_beats)
    assert run.out_cycles == plan.output_times(run.in_cycles)


def test_errors():
    with pytest.raises(TypeError, match=r"^Plan must be a ConverterPlan, not 3$"):
        WidthConverter(3)
