"""SlidingWindow on the Amaranth simulator: its beats equal ``windows.windows()`` bit for bit,
with the timing of its plan."""

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import signed
from hypothesis import given, settings
from hypothesis import strategies as st

from amaranth_nn.lanes import pack_beats
from amaranth_nn.simulate import run_streams
from amaranth_nn.sliding import SlidingWindow
from amaranth_nn.targets import ECP5Target
from amaranth_nn.window_plan import WindowPlan
from amaranth_nn.windows import windows


def window_beats(plan, x):
    """The beats ``plan``'s generator must emit for samples ``x``, from the software windows."""
    win = windows(x, plan.spatial, plan.channels, plan.kernel, plan.stride, plan.padding)
    batch, positions, kernel, channels = win.shape
    if plan.order == "window":
        return pack_beats(win.reshape(batch * positions, kernel * channels), plan.out_lanes,
                          plan.shape.width)
    return pack_beats(win.reshape(batch * positions * kernel, channels), plan.out_lanes,
                      plan.shape.width)


def run_windows(plan, batch, *, stalls=(0.0, 0.0), seed=0, arch="auto"):
    """Run ``batch`` random samples through the generator; assert its beats; returns the run."""
    rng = np.random.default_rng(seed)
    width = plan.shape.width
    x = rng.integers(-(1 << (width - 1)), 1 << (width - 1),
                     size=(batch, plan.positions_in * plan.channels))
    words = pack_beats(x.reshape(-1, plan.channels), plan.in_lanes, width)
    expected = window_beats(plan, x)
    assert len(expected) == batch * plan.out_beats
    run = run_streams(SlidingWindow(plan, arch=arch), words, len(expected), stalls=stalls,
                      seed=seed)
    assert run.outputs == expected
    return run


@st.composite
def window_plans(draw, max_size=6):
    """A WindowPlan of random shape, kernel, stride, padding, lanes and order."""
    axes = draw(st.integers(1, 2), label="axes")
    kernel = tuple(draw(st.integers(1, 4), label="kernel") for _ in range(axes))
    padding = tuple(draw(st.integers(0, k - 1), label="padding") for k in kernel)
    spatial = tuple(draw(st.integers(max(1, k - 2 * p), max_size), label="size")
                    for k, p in zip(kernel, padding, strict=True))
    stride = tuple(draw(st.integers(1, 3), label="stride") for _ in range(axes))
    channels = draw(st.integers(1, 5), label="channels")
    order = draw(st.sampled_from(["window", "kernel"]), label="order")
    limit = channels * int(np.prod(kernel)) if order == "window" else channels
    in_lanes = draw(st.integers(1, channels), label="in_lanes")
    out_lanes = draw(st.integers(1, limit), label="out_lanes")
    width = draw(st.integers(2, 9), label="width")
    return WindowPlan(signed(width), spatial, channels, kernel, stride, padding, in_lanes,
                      out_lanes, order)


@settings(max_examples=30, deadline=None)
@given(plan=window_plans(), batch=st.integers(1, 3), seed=st.integers(0, 2**16),
       stalls=st.sampled_from([(0.0, 0.0), (0.3, 0.0), (0.0, 0.3), (0.4, 0.4)]))
def test_random_windows_bit_exact(plan, batch, seed, stalls):
    run = run_windows(plan, batch, stalls=stalls, seed=seed)
    if batch == 1 and stalls[1] == 0:  # an isolated sample, sink always ready
        t0 = run.in_cycles[0]
        assert plan.output_times([t - t0 for t in run.in_cycles]) == \
            [t - t0 for t in run.out_cycles]


@settings(max_examples=25, deadline=None)
@given(plan=window_plans(), seed=st.integers(0, 2**16))
def test_ice40_windows_take_the_same_cycles(plan, seed):
    """The iCE40 target's generator (the writer's room from the next slack instead of
    precomputed flags, the output queue's memory in block RAM from 64 bits): the same beats
    at the same cycles as the generic one's, with stalls on both sides."""
    generic = run_windows(plan, 2, stalls=(0.3, 0.3), seed=seed)
    ice40 = run_windows(plan, 2, stalls=(0.3, 0.3), seed=seed, arch="ice40")
    assert (ice40.in_cycles, ice40.out_cycles) == (generic.in_cycles, generic.out_cycles)


@pytest.mark.parametrize("args", [
    ((6, 1), 2, (3, 1), 1, (1, 0), 2, 2, "window"),
    ((8, 1), 1, (3, 1), 1, (1, 0), 1, 1, "window"),
    ((7, 2), 1, (3, 2), (2, 1), (1, 0), 1, 6, "window"),
])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ice40_windows_take_the_same_cycles_on_narrow_inputs(args, seed):
    """As above, on 2-D inputs one or two positions wide, a position a beat: the writer's next
    step then depends on whether its next position ends a row or a sample, which the
    precomputed room takes from the counters' last and penultimate flags."""
    plan = WindowPlan(signed(5), *args)
    for stalls in ((0.3, 0.3), (0.0, 0.7)):  # the second keeps the line buffer full
        generic = run_windows(plan, 4, stalls=stalls, seed=seed)
        ice40 = run_windows(plan, 4, stalls=stalls, seed=seed, arch="ice40")
        assert (ice40.in_cycles, ice40.out_cycles) == (generic.in_cycles, generic.out_cycles)


@settings(max_examples=40, deadline=None)
@given(plan=window_plans())
def test_random_steady_state_ii(plan):
    """The line buffer's capacity is tight: on random shapes, samples back to back from a source
    valid on every cycle still come out every :attr:`WindowPlan.ii` cycles once the first has
    (which can take a cycle more: the start, not the steady state)."""
    run = run_windows(plan, 5)
    starts = np.array(run.out_cycles[::plan.out_beats])
    assert (np.diff(starts)[1:] == plan.ii).all(), (np.diff(starts), plan.ii)


@pytest.mark.parametrize("args", [
    ((40,), 1, 5, 1, 2, 1, 5, "window"),             # mnist1d conv0, simd 5
    ((20,), 16, 5, 1, 2, 16, 80, "window"),          # mnist1d conv1, the whole window a beat
    ((10,), 16, 3, 1, 1, 4, 7, "window"),            # lanes that divide neither C nor K*C
    ((8, 8), 1, 3, 1, 1, 1, 9, "window"),            # digits-conv conv0
    ((4, 4), 8, 3, 1, 1, 8, 8, "window"),            # digits-conv conv1
    ((9,), 4, 2, 3, 1, 4, 1, "window"),              # stride past the kernel: input-bound
    ((6, 6), 4, 2, 2, 0, 4, 4, "kernel"),            # a 2x2 pool
    ((7, 5), 3, (3, 2), (2, 1), 1, 2, 2, "kernel"),  # an uneven pool, 2 beats per position
])
def test_steady_state_ii_and_output_times(args):
    plan = WindowPlan(signed(6), *args)
    run = run_windows(plan, 5)
    starts = np.array(run.out_cycles[::plan.out_beats])
    assert (np.diff(starts) == plan.ii).all(), (np.diff(starts), plan.ii)
    assert plan.ii == max(plan.in_beats, plan.out_beats)
    # An isolated sample, from a source valid on every cycle and from one that stalls: every
    # output beat at the cycle the plan says.
    for stalls in ((0.0, 0.0), (0.5, 0.0)):
        run = run_windows(plan, 1, stalls=stalls, seed=3)
        t0 = run.in_cycles[0]
        assert plan.output_times([t - t0 for t in run.in_cycles]) == \
            [t - t0 for t in run.out_cycles]


def test_line_buffer_is_banked_memory():
    plan = WindowPlan(signed(8), (20,), 16, 5, 1, 2, 16, 80)
    assert plan.banks == 128
    assert plan.capacity % plan.banks == 0
    assert plan.row_stride % plan.banks == (5 * 16) % plan.banks
    assert plan.line_buffer_shape == (plan.capacity // 128, 8)
    assert plan.memory_bits == plan.capacity * 8
    plan = WindowPlan(signed(8), (8, 8), 1, 3, 1, 1, 1, 9)
    assert (plan.banks, plan.row_stride) == (16, 19)


def test_ecp5_line_buffer():
    """On ECP5, banks of block RAM size are DP16KD blocks with their output register, smaller
    ones LUT RAM; the modelled target simulates bit for bit at the same II and latency."""
    big = WindowPlan(signed(8), (8, 8), 32, 2, 2, 0, 1, 1, "kernel")
    assert big.bank_depth * 8 >= 2048
    text = rtlil.convert(SlidingWindow(big, arch="ecp5"))
    assert "DP16KD" in text and '"OUTREG"' in text
    small = WindowPlan(signed(8), (10,), 2, 3, 1, 1, 2, 6)
    assert small.bank_depth * 8 < 2048
    text = rtlil.convert(SlidingWindow(small, arch="ecp5"))
    assert "DP16KD" not in text and '"distributed"' in text
    assert '"distributed"' not in rtlil.convert(SlidingWindow(small, arch="generic"))
    # A bank of more than 32 words is read in 16-word pieces, each into a register.
    deep = WindowPlan(signed(8), (20,), 8, 2, 2, 0, 1, 1, "kernel")
    assert (deep.banks, deep.bank_depth) == (1, 64)
    text = rtlil.convert(SlidingWindow(deep, arch="ecp5"))
    assert "bank0_piece3" in text and "bank0_piece4" not in text
    assert "bank0_piece" not in rtlil.convert(SlidingWindow(small, arch="ecp5"))
    for plan in (big, small, deep):
        run = run_windows(plan, 1, arch=ECP5Target(model_multipliers=True))
        t0 = run.in_cycles[0]
        assert plan.output_times([t - t0 for t in run.in_cycles]) == \
            [t - t0 for t in run.out_cycles]


def test_errors():
    s = signed(4)
    with pytest.raises(TypeError, match=r"^Plan must be a WindowPlan, not 3$"):
        SlidingWindow(3)
    with pytest.raises(TypeError, match=r"^Spatial must be \(L,\) or \(H, W\), not 5$"):
        WindowPlan(s, 5, 1, 3, 1, 0, 1, 1)
    with pytest.raises(ValueError, match=r"^Padding must be smaller than the kernel, not \[3\] "
                                         r"for the kernel \[3\]$"):
        WindowPlan(s, (5,), 1, 3, 1, 3, 1, 1)
    with pytest.raises(ValueError, match=r"^Kernel \[4\] does not fit the input \[2\] with "
                                         r"padding \[0\]$"):
        WindowPlan(s, (2,), 1, 4, 1, 0, 1, 1)
    with pytest.raises(ValueError, match=r"^In lanes must be from 1 to 3 \(the channels\), "
                                         r"not 4$"):
        WindowPlan(s, (5,), 3, 2, 1, 0, 4, 1)
    with pytest.raises(ValueError, match=r"^Out lanes must be from 1 to 6 \(the window's "
                                         r"elements\), not 7$"):
        WindowPlan(s, (5,), 3, 2, 1, 0, 1, 7)
    with pytest.raises(ValueError, match=r"^Out lanes must be from 1 to 3 \(the channels\), "
                                         r"not 4$"):
        WindowPlan(s, (5,), 3, 2, 1, 0, 1, 4, "kernel")
    with pytest.raises(ValueError, match=r"^Order must be 'window' or 'kernel', not 'x'$"):
        WindowPlan(s, (5,), 3, 2, 1, 0, 1, 1, "x")
    with pytest.raises(TypeError, match=r"^Stride must be an integer or a tuple of 2, not "
                                        r"\(1,\)$"):
        WindowPlan(s, (5, 5), 3, 2, (1,), 0, 1, 1)
