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


def test_errors():
    with pytest.raises(TypeError, match=r"^Plan must be a ConverterPlan, not 3$"):
        WidthConverter(3)
