"""The golden model against a plain Python-int reference of the numeric contract."""

import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amaranth_nn import Activation, Layer, NetworkSpec, QFormat, golden, signed_width
from amaranth_nn.spec import AvgPool, Conv, Flatten, MaxPool, ScaleShift


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
    return spec, random_inputs(rng, spec, draw(st.integers(1, 6)))


def random_inputs(rng, spec, batch):
    """Random inputs of ``spec``, with the extremes made likely: they are where saturation and
    overflow live."""
    fmt = spec.input_format
    x = rng.integers(fmt.min, fmt.max, (batch, spec.input_size), endpoint=True)
    x[rng.random(x.shape) < 0.3] = fmt.min
    x[rng.random(x.shape) < 0.3] = fmt.max
    return x


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


# Conv, pooling, scale-and-shift and flatten against a plain Python-int reference.

def requantize_int(acc, shift, fmt):
    q = (acc + (1 << (shift - 1))) >> shift if shift > 0 else acc << -shift
    return min(max(q, fmt.min), fmt.max)


def activate(act, q):
    if act.kind == "relu":
        return max(q, 0)
    if act.kind == "hardtanh":
        return min(max(q, act.lo), act.hi)
    return q


def grid(values, shape):
    """A stream (flat list) as nested lists of ``shape`` (positions..., channels)."""
    if len(shape) == 1:
        return list(values)
    step = len(values) // shape[0]
    return [grid(values[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def positions(spatial):
    return list(itertools.product(*(range(n) for n in spatial)))


def at(x, position, channel):
    """x[position][channel], or 0 in the padding."""
    for index in position:
        if not 0 <= index < len(x):
            return 0
        x = x[index]
    return x[channel]


def reference_layer(spec, index, x):
    """One layer on one sample (a flat list in stream order), written from docs/numerics.md."""
    layer = spec.layers[index]
    kind, fmt = layer.kind, spec.output_format_of(index)
    if kind == "flatten":
        return x
    if kind == "dense":
        return reference(NetworkSpec(spec.input_format_of(index), [layer]), x)
    if kind == "scale_shift":
        c = layer.channels
        return [activate(layer.activation, requantize_int(
            v * int(layer.scale[i % c]) + int(layer.bias[i % c]), layer.shift, fmt))
            for i, v in enumerate(x)]
    shape, spatial = layer.input_shape, layer.input_shape[:-1]
    x = grid(x, shape)
    out = []
    for o in positions(layer.spatial_out):
        start = [oi * s - p for oi, s, p in zip(o, layer.stride, layer.padding, strict=True)]
        window = [[at(x, [b + k for b, k in zip(start, kk, strict=True)], c)
                   for c in range(shape[-1])] for kk in positions(layer.kernel)]
        if kind == "maxpool":
            out += [max(w[c] for w in window) for c in range(shape[-1])]
        elif kind == "avgpool":
            out += [requantize_int(sum(w[c] for w in window), layer.shift, fmt)
                    for c in range(shape[-1])]
        else:
            for co in range(layer.out_channels):
                weights = layer.weights[co].reshape(-1, shape[-1]).tolist()
                acc = sum(xv * wv for xs, ws in zip(window, weights, strict=True)
                          for xv, wv in zip(xs, ws, strict=True)) + int(layer.bias[co])
                out.append(activate(layer.activation, requantize_int(acc, layer.shift, fmt)))
    assert len(spatial) in (1, 2)
    return out


def random_activation(draw, rng, fmt):
    kind = draw(st.sampled_from(Activation.KINDS))
    if kind == "hardtanh":
        lo, hi = sorted(int(v) for v in rng.integers(fmt.min, fmt.max, 2, endpoint=True))
        return Activation.hardtanh(lo, hi)
    return Activation(kind)


@st.composite
def windowed_specs(draw, max_width=24):
    """A conv (1-D or 2-D, random kernel, stride, padding), then a max or average pool when it
    fits, a scale-and-shift, a flatten and a dense layer; random formats, every activation."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    axes = draw(st.integers(1, 2))
    spatial = tuple(draw(st.integers(1, 7)) for _ in range(axes))
    channels = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(axes))
    padding = tuple(draw(st.integers(0, k - 1)) for k in kernel)
    kernel = tuple(min(k, n + 2 * p) for k, n, p in zip(kernel, spatial, padding, strict=True))
    padding = tuple(min(p, k - 1) for p, k in zip(padding, kernel, strict=True))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(axes))
    fmt = x_fmt = QFormat(draw(st.integers(2, max_width)), draw(st.integers(-4, 30)))

    def formats(in_fmt):
        w_fmt = QFormat(draw(st.integers(2, max_width)), draw(st.integers(-4, 30)))
        b_fmt = QFormat(draw(st.integers(2, 62)), in_fmt.frac + w_fmt.frac)
        y_fmt = QFormat(draw(st.integers(2, max_width)), draw(st.integers(-4, 30)))
        return w_fmt, b_fmt, y_fmt

    w_fmt, b_fmt, fmt = formats(fmt)
    c_out = draw(st.integers(1, 3))
    weights = rng.integers(w_fmt.min, w_fmt.max, (c_out, *kernel, channels), endpoint=True)
    bias = rng.integers(b_fmt.min, b_fmt.max, c_out, endpoint=True)
    layers = [Conv("conv", (*spatial, channels), weights, bias, w_fmt, b_fmt, fmt,
                   random_activation(draw, rng, fmt), stride=stride, padding=padding)]
    shape = layers[-1].output_shape
    pool = tuple(draw(st.sampled_from([1, 2, 4])) for _ in range(axes))
    if all(k <= n for k, n in zip(pool, shape[:-1], strict=True)):
        kind = draw(st.sampled_from([MaxPool, AvgPool]))
        pool_stride = tuple(draw(st.integers(1, 3)) for _ in range(axes))
        layers.append(kind("pool", shape, pool, pool_stride))
        shape = layers[-1].output_shape
    s_fmt, b_fmt, y_fmt = formats(fmt)
    layers.append(ScaleShift("scale", shape, rng.integers(s_fmt.min, s_fmt.max, shape[-1],
                                                          endpoint=True),
                             rng.integers(b_fmt.min, b_fmt.max, shape[-1], endpoint=True),
                             s_fmt, b_fmt, y_fmt, random_activation(draw, rng, y_fmt)))
    layers.append(Flatten("flatten", shape))
    w_fmt, b_fmt, out_fmt = formats(y_fmt)
    size = layers[-1].output_size
    layers.append(Layer("dense", rng.integers(w_fmt.min, w_fmt.max, (2, size), endpoint=True),
                        rng.integers(b_fmt.min, b_fmt.max, 2, endpoint=True), w_fmt, b_fmt,
                        out_fmt, random_activation(draw, rng, out_fmt)))
    spec = NetworkSpec(x_fmt, layers)
    return spec, random_inputs(rng, spec, draw(st.integers(1, 4)))


@settings(max_examples=200, deadline=None)
@given(windowed_specs())
def test_conv_pool_scale_shift_flatten_equal_python_reference(case):
    spec, x = case
    outputs = golden.run_layers(spec, x)
    for sample, row in enumerate(x):
        h = [int(v) for v in row]
        for index in range(len(spec.layers)):
            h = reference_layer(spec, index, h)
            assert outputs[index].dtype == np.int64
            assert outputs[index][sample].tolist() == h, spec.layers[index].kind


def test_wide_conv_runs_with_python_ints():
    # 40-bit inputs and weights: products near 2**78, beyond int64; the golden model falls back
    # to Python ints and stays exact.
    fmt = QFormat(40, 0)
    conv = Conv("wide", (3, 1), [[[fmt.max], [fmt.min]]], [0], fmt, QFormat(40, 0),
                QFormat(40, 38), padding=1)
    spec = NetworkSpec(fmt, [conv])
    assert signed_width(*spec.accumulator_range_of(0)) > 62
    x = np.array([[fmt.max, fmt.min, fmt.max]])
    assert golden.run(spec, x).tolist() == [reference_layer(spec, 0, x[0].tolist())]


def test_pooling_examples():
    spec = NetworkSpec(QFormat(8, 0), [MaxPool("max", (4, 2), 2), AvgPool("avg", (2, 2), 2)])
    x = [[1, -8, 5, -3, -7, 2, -6, 4]]     # positions (1, -8), (5, -3), (-7, 2), (-6, 4)
    maxed, averaged = golden.run_layers(spec, x)
    assert maxed.tolist() == [[5, -3, -6, 4]]
    assert averaged.tolist() == [[0, 1]]   # (5 - 6 + 1) >> 1 = 0, (-3 + 4 + 1) >> 1 = 1
