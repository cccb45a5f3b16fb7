# amaranth: UnusedElaboratable=no
"""DenseLayer and WidthConverter on the Amaranth simulator, bit-exact against the golden model.

(The first line: components built only to check their properties or errors are never used.)
"""

import numpy as np
import pytest
from amaranth import Module, Mux, Signal, signed
from amaranth.back import verilog
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st
from nn_helpers import layer_inputs, random_inputs, random_layer, random_spec, run_layer, sizes

from amaranth_nn import Activation, Layer, NetworkSpec, QFormat, golden
from amaranth_nn.dense import DenseLayer, WidthConverter, _PingPong
from amaranth_nn.simulate import pack_beats, run_streams, unpack_beats


def check_layer(spec, index, pe, simd, x, *, stalls=(0.0, 0.0), seed=0):
    """Run ``x`` (network inputs) through layer ``index`` alone; assert bit-exactness."""
    dut = DenseLayer(spec, index, pe=pe, simd=simd)
    inputs = layer_inputs(spec, index, x)
    out, pad, run = run_layer(dut, spec, index, inputs, stalls=stalls, seed=seed)
    expected = golden.run_layers(spec, x)[index]
    assert out.shape == expected.shape
    assert (out == expected).all(), (out, expected)
    assert (pad == 0).all()
    return dut, run


@settings(max_examples=40, deadline=None)
@given(n=sizes(), m=sizes(), data=st.data())
def test_random_layer_bit_exact(n, m, data):
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    depth = data.draw(st.integers(1, 2), label="layers")
    sizes_ = [n, m] if depth == 1 else [n, data.draw(sizes(), label="hidden"), m]
    spec = random_spec(rng, sizes_)
    index = len(spec.layers) - 1  # the second layer sees what the first activation makes
    layer = spec.layers[index]
    pe = data.draw(st.integers(1, layer.out_features), label="pe")
    simd = data.draw(st.integers(1, layer.in_features), label="simd")
    stalls = data.draw(st.sampled_from([(0.0, 0.0), (0.3, 0.0), (0.0, 0.3), (0.4, 0.4)]),
                       label="stalls")
    x = random_inputs(rng, spec, data.draw(st.integers(1, 4), label="batch"))
    check_layer(spec, index, pe, simd, x, stalls=stalls, seed=seed)


def single_layer_spec(weights, bias, *, x_fmt, w_fmt, b_width, y_fmt, activation):
    layer = Layer("dense0", np.array(weights), np.array(bias), w_fmt,
                  QFormat(b_width, x_fmt.frac + w_fmt.frac), y_fmt, activation)
    return NetworkSpec(x_fmt, [layer])


def test_one_by_one():
    spec = single_layer_spec([[3]], [5], x_fmt=QFormat(4, 1), w_fmt=QFormat(3, 1), b_width=8,
                             y_fmt=QFormat(4, 1), activation=Activation.identity())
    x = np.arange(-8, 8).reshape(-1, 1)
    check_layer(spec, 0, 1, 1, x)


@pytest.mark.parametrize("pe, simd", [(1, 1), (13, 1), (1, 7), (13, 7), (5, 3), (2, 6)])
def test_prime_sizes(pe, simd):
    rng = np.random.default_rng(7)
    spec = random_spec(rng, [7, 13])
    check_layer(spec, 0, pe, simd, random_inputs(rng, spec, 5), stalls=(0.2, 0.2))


@pytest.mark.parametrize("shift", [-3, 0, 1])
def test_small_and_negative_shift_saturates_both_sides(shift):
    rng = np.random.default_rng(shift + 10)
    spec = random_spec(rng, [9, 6], in_width=6, w_width=6, out_width=4, shift=shift,
                       activation=Activation.identity())
    x = random_inputs(rng, spec, 12)
    y = golden.run(spec, x)
    fmt = spec.output_format
    assert (y == fmt.max).any() and (y == fmt.min).any()  # the case saturates both ways
    check_layer(spec, 0, 3, 4, x)


@pytest.mark.parametrize("activation", [Activation.relu(), Activation.hardtanh(-5, 9),
                                        Activation.hardtanh(3, 3)])
def test_activations_clamp(activation):
    rng = np.random.default_rng(3)
    spec = random_spec(rng, [11, 5], out_width=6, activation=activation)
    # hardtanh with lo > 0 also checks that padded lanes come out as zero, not as lo.
    check_layer(spec, 0, 3, 4, random_inputs(rng, spec, 6))


def test_sixteen_bit_wide_accumulator():
    rng = np.random.default_rng(16)
    spec = random_spec(rng, [40, 7], in_width=16, w_width=16, out_width=16)
    dut, _ = check_layer(spec, 0, 7, 40, random_inputs(rng, spec, 4))
    assert dut.accumulator_width > 32
    # Extreme inputs and weights: the largest accumulators.
    fmt = spec.input_format
    x = np.array([[fmt.min] * 40, [fmt.max] * 40, [fmt.min, fmt.max] * 20])
    check_layer(spec, 0, 2, 9, x)


def test_relu_input_is_unsigned_operand():
    rng = np.random.default_rng(5)
    spec = random_spec(rng, [6, 8, 4], activation=Activation.relu())
    dut = DenseLayer(spec, 1, pe=2, simd=3)
    assert not dut._x_shape.signed
    assert dut._x_shape.width == spec.layers[0].output_format.width - 1
    check_layer(spec, 1, 2, 3, random_inputs(rng, spec, 5))


@pytest.mark.parametrize("pe, simd", [(1, 1), (3, 4), (5, 8), (2, 1), (5, 1), (1, 8)])
def test_steady_state_ii_and_latency(pe, simd):
    rng = np.random.default_rng(pe * 10 + simd)
    spec = random_spec(rng, [8, 5])
    dut, run = check_layer(spec, 0, pe, simd, random_inputs(rng, spec, 8))
    starts = np.array(run.out_cycles[::dut.out_beats])
    assert (np.diff(starts) == dut.ii).all()
    assert dut.ii == -(-5 // pe) * -(-8 // simd)
    # Latency of the first vector: II + pipeline depth when the source is always valid.
    assert run.out_cycles[dut.out_beats - 1] - run.in_cycles[0] == dut.ii + dut.pipeline_depth
    assert dut.output_times(range(dut.in_beats))[-1] == dut.ii + dut.pipeline_depth


def test_errors():
    rng = np.random.default_rng(0)
    spec = random_spec(rng, [5, 4])
    with pytest.raises(TypeError, match=r"^Spec must be a NetworkSpec, not 'x'$"):
        DenseLayer("x", 0, pe=1, simd=1)
    with pytest.raises(TypeError, match=r"^Layer index must be a non-negative integer, not -1$"):
        DenseLayer(spec, -1, pe=1, simd=1)
    with pytest.raises(ValueError, match=r"^Layer index must be less than 1 \(the number of "
                                         r"layers\), not 1$"):
        DenseLayer(spec, 1, pe=1, simd=1)
    with pytest.raises(TypeError, match=r"^Pe must be a positive integer, not 0$"):
        DenseLayer(spec, 0, pe=0, simd=1)
    with pytest.raises(TypeError, match=r"^Simd must be a positive integer, not 2.0$"):
        DenseLayer(spec, 0, pe=1, simd=2.0)
    with pytest.raises(ValueError, match=r"^Pe must be at most 4 \(the out_features of layer 0 "
                                         r"\('dense0'\)\), not 5$"):
        DenseLayer(spec, 0, pe=5, simd=1)
    with pytest.raises(ValueError, match=r"^Simd must be at most 5 \(the in_features of layer 0 "
                                         r"\('dense0'\)\), not 6$"):
        DenseLayer(spec, 0, pe=1, simd=6)
    with pytest.raises(ValueError, match=r"^Arch must be one of 'auto', 'generic', 'ecp5', "
                                         r"not 'xc7'$"):
        DenseLayer(spec, 0, pe=1, simd=1, arch="xc7")


def test_ecp5_arch_instantiates_registered_multipliers():
    rng = np.random.default_rng(1)
    spec = random_spec(rng, [6, 5], in_width=8, w_width=8)
    text = verilog.convert(DenseLayer(spec, 0, pe=2, simd=3, arch="ecp5"), name="dense")
    assert text.count("MULT18X18D ") == 6
    assert text.count('.REG_INPUTA_CLK("CLK0")') == 6
    assert text.count('.REG_OUTPUT_CLK("CLK0")') == 6
    generic = verilog.convert(DenseLayer(spec, 0, pe=2, simd=3), name="dense")
    assert "MULT18X18D" not in generic


def test_weight_rom_layout():
    spec = single_layer_spec([[1, 2, 3], [4, 5, 6], [7, -8, 9]], [0, 0, 0],
                             x_fmt=QFormat(8, 0), w_fmt=QFormat(5, 0), b_width=16,
                             y_fmt=QFormat(8, 0), activation=Activation.identity())
    dut = DenseLayer(spec, 0, pe=2, simd=2)
    width = dut._w_shape.width
    assert width == 5
    # PE 1, group 0 (row 1) beats 0 and 1, then group 1 (row 3: past the matrix) zeros.
    assert dut.weight_words(1) == [4 | 5 << width, 6, 0, 0]
    # PE 0: rows 0 and 2; -8 in two's complement.
    assert dut.weight_words(0) == [1 | 2 << width, 3, 7 | (-8 & 31) << width, 9]


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
    dut = WidthConverter(signed(width), a, b, length)
    run = run_streams(dut, pack_beats(x, a, width), 4 * dut.out_beats, stalls=stalls, seed=seed)
    out, pad = unpack_beats(run.outputs, b, width, length)
    assert (out == x).all()
    assert (pad == 0).all()
    if stalls == (0.0, 0.0):
        arrivals = run.in_cycles[:dut.in_beats]
        expected = dut.output_times(arrivals)
        assert run.out_cycles[:dut.out_beats] == expected


def test_width_converter_errors():
    with pytest.raises(TypeError, match=r"^Length must be a positive integer, not 0$"):
        WidthConverter(signed(8), 1, 1, 0)
    with pytest.raises(ValueError, match=r"^In lanes must be at most 4 \(the vector length\), "
                                         r"not 5$"):
        WidthConverter(signed(8), 5, 1, 4)
    with pytest.raises(TypeError, match=r"^Out lanes must be a positive integer, not None$"):
        WidthConverter(signed(8), 1, None, 4)


def test_random_layer_helper_formats():
    # The generator really produces F > W formats and every activation kind.
    rng = np.random.default_rng(0)
    layers = [random_layer(rng, "l", 4, 3, QFormat(8, 4)) for _ in range(60)]
    assert any(layer.weight_format.frac > layer.weight_format.width for layer in layers)
    assert {layer.activation.kind for layer in layers} == {"identity", "relu", "hardtanh"}
    assert any(layer.shift <= 0 for layer in layers)


@pytest.mark.parametrize("beats,groups", [(1, 1), (1, 3), (3, 1), (4, 2), (8, 3)])
def test_registered_arrival_flag_equals_written(beats, groups):
    # The sequencer issues on _PingPong.ahead(), a register; it must equal written(beat) in
    # every cycle, under random writer and reader stalls.
    m = Module()
    buf = _PingPong(beats)
    buf.elaborate(m)
    valid, allow = Signal(), Signal()
    beat, group = Signal(range(beats)), Signal(range(groups))
    last, done = Signal(init=beats == 1), Signal(init=groups == 1)
    go = Signal()
    arrived = buf.ahead(m, go, last, done)
    m.d.comb += [
        buf.w_en.eq(valid & buf.w_ready),
        go.eq(arrived & allow),
        buf.r_done.eq(go & last & done),
    ]
    beat_next = Mux(go, Mux(last, 0, beat + 1), beat)
    group_next = Mux(go & last, Mux(done, 0, group + 1), group)
    m.d.sync += [beat.eq(beat_next), group.eq(group_next),
                 last.eq(beat_next == beats - 1), done.eq(group_next == groups - 1)]
    written = buf.written(beat)
    rng = np.random.default_rng(beats * 10 + groups)
    counts = {"issued": 0, "mismatch": 0}

    async def testbench(ctx):
        for _ in range(400):
            ctx.set(valid, int(rng.random() < 0.6))
            ctx.set(allow, int(rng.random() < 0.7))
            if ctx.get(arrived) != ctx.get(written):
                counts["mismatch"] += 1
            counts["issued"] += ctx.get(go)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert counts["mismatch"] == 0
    assert counts["issued"] > 400 // (3 * groups)  # the reader made progress
