"""The golden model against a plain Python-int reference of the numeric contract."""

import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amaranth_nn import Activation, Layer, NetworkSpec, QFormat, golden


def reference(spec, sample):
    """One sample through ``spec``, in plain Python ints, written straight from docs/numerics.md."""
    x = [int(v) for v in sample]
    for layer in spec.layers:
        fmt, act, s = layer.output_format, layer.activation, layer.shift
        y = []
        for row, bias in zip(layer.weights.tolist(), layer.bias.tolist(), strict=True):
            acc = sum(xi * wi for xi, wi in zip(x, row, strict=True)) + bias
            q = (acc + (1 << (s - 1))) >> s if s > 0 else acc << -s
            q = min(max(q, fmt.min), fmt.max)
            if act.kind == "relu":
                q = max(q, 0)
            elif act.kind == "hardtanh":
                q = min(max(q, act.lo), act.hi)
            y.append(q)
        x = y
    return x


@st.composite
def specs(draw, max_width=32, max_size=12):
    """Random networks: widths 2..max_width, frac -4..40 (so F > W happens), every activation."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sizes = draw(st.lists(st.integers(1, max_size), min_size=2, max_size=4))
    fmt_in = QFormat(draw(st.integers(2, max_width)), draw(st.integers(-4, 40)))
    layers, fmt = [], fmt_in
    for index, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        w_fmt = QFormat(draw(st.integers(2, max_width)), draw(st.integers(-4, 40)))
        b_fmt = QFormat(draw(st.integers(2, 62)), fmt.frac + w_fmt.frac)
        y_fmt = QFormat(draw(st.integers(2, max_width)), draw(st.integers(-4, 40)))
        kind = draw(st.sampled_from(Activation.KINDS))
        if kind == "hardtanh":
            lo, hi = sorted(int(v) for v in rng.integers(y_fmt.min, y_fmt.max, 2, endpoint=True))
            activation = Activation.hardtanh(lo, hi)
        else:
            activation = Activation(kind)
        weights = rng.integers(w_fmt.min, w_fmt.max, (n_out, n_in), endpoint=True)
        bias = rng.integers(b_fmt.min, b_fmt.max, n_out, endpoint=True)
        layers.append(Layer(f"dense{index}", weights, bias, w_fmt, b_fmt, y_fmt, activation))
        fmt = y_fmt
    spec = NetworkSpec(fmt_in, layers)
    batch = draw(st.integers(1, 6))
    x = rng.integers(fmt_in.min, fmt_in.max, (batch, spec.input_size), endpoint=True)
    # Make the extremes likely: they are where saturation and overflow live.
    x[rng.random(x.shape) < 0.3] = fmt_in.min
    x[rng.random(x.shape) < 0.3] = fmt_in.max
    return spec, x


@settings(max_examples=300, deadline=None)
@given(specs())
def test_golden_equals_python_reference(case):
    spec, x = case
    expected = [reference(spec, sample) for sample in x]
    outputs = golden.run(spec, x)
    assert outputs.dtype == np.int64
    assert outputs.tolist() == expected


@settings(max_examples=50, deadline=None)
@given(specs(max_width=16))
def test_single_vector_and_layers(case):
    spec, x = case
    per_layer = golden.run_layers(spec, x)
    assert len(per_layer) == len(spec.layers)
    for index, layer in enumerate(spec.layers):
        lo, hi = layer.output_range
        assert per_layer[index].shape == (len(x), layer.out_features)
        assert per_layer[index].min() >= lo and per_layer[index].max() <= hi
    assert golden.run(spec, x[0]).tolist() == per_layer[-1][0].tolist()


def wide_spec(x_fmt, w_fmt, n_in, shift_to):
    b_fmt = QFormat(62, x_fmt.frac + w_fmt.frac)
    layer = Layer("wide", np.full((2, n_in), w_fmt.min), [b_fmt.max, b_fmt.min], w_fmt, b_fmt,
                  QFormat(32, b_fmt.frac - shift_to))
    return NetworkSpec(x_fmt, [layer])


def test_accumulator_beyond_int64():
    # 8 products of (-2**31)**2 = 2**62 each, plus a bias near 2**61: 66 bits, Python ints.
    spec = wide_spec(QFormat(32, 0), QFormat(32, 0), 8, shift_to=34)
    assert spec.layers[0].accumulator_width(*spec.input_range_of(0)) == 67
    x = np.array([[spec.input_format.min] * 8, [spec.input_format.max] * 8])
    assert golden.run(spec, x).tolist() == [reference(spec, sample) for sample in x]
    assert golden.run(spec, x)[0].tolist() == [(1 << 31) - 1, (1 << 31) - (1 << 27)]


def test_extremes_saturate_both_sides():
    fmt = QFormat(8, 0)
    layer = Layer("sat", [[127, 127], [-128, -128]], [0, 0], fmt, QFormat(16, 0), fmt)
    spec = NetworkSpec(fmt, [layer])
    assert golden.run(spec, [127, 127]).tolist() == [127, -128]
    assert golden.run(spec, [-128, -128]).tolist() == [-128, 127]
    assert golden.run(spec, [0, 0]).tolist() == [0, 0]


def test_requantize_tie_rounds_half_up():
    # acc = x * 1 with shift 1: x = 1 -> 0.5 -> 1; x = -1 -> -0.5 -> 0; x = 3 -> 2; x = -3 -> -1
    layer = Layer("half", [[1]], [0], QFormat(8, 1), QFormat(16, 1), QFormat(8, 0))
    spec = NetworkSpec(QFormat(8, 0), [layer])
    assert golden.run(spec, [[1], [-1], [3], [-3]]).tolist() == [[1], [0], [2], [-1]]


def test_input_errors():
    layer = Layer("l", [[1, 1]], [0], QFormat(8, 0), QFormat(16, 4), QFormat(8, 0))
    spec = NetworkSpec(QFormat(8, 4), [layer])
    with pytest.raises(ValueError, match=re.escape(
            "Inputs must be integers of the input format Q(8, 4), not float64; use "
            "spec.quantize_input() for real values")):
        golden.run(spec, [0.5, 1.0])
    with pytest.raises(ValueError, match=re.escape(
            "Inputs must have shape (batch, 2) or (2,), not (3,)")):
        golden.run(spec, [1, 2, 3])
    with pytest.raises(ValueError, match=re.escape(
            "Input 128 at index (1, 0) is outside the input format Q(8, 4), range [-128, 127]")):
        golden.run(spec, [[0, 0], [128, 0]])
