"""Random specs and stream helpers for the gateware tests (test code, not package code)."""

import numpy as np
from hypothesis import strategies as st

from amaranth_nn import Activation, Layer, NetworkSpec, QFormat, golden
from amaranth_nn.lanes import pack_beats, unpack_beats
from amaranth_nn.simulate import run_streams

PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def random_layer(rng, name, n, m, in_format, *, w_width=None, out_width=None, shift=None,
                 activation=None, w_frac=None):
    """A random dense layer with ``n`` inputs and ``m`` outputs after ``in_format``."""
    w_width = w_width or int(rng.integers(2, 17))
    w_frac = int(rng.integers(-2, w_width + 6)) if w_frac is None else w_frac
    out_width = out_width or int(rng.integers(2, 17))
    wf = QFormat(w_width, w_frac)
    typical = in_format.width + w_width + max(0, (n.bit_length() - 1) // 2) - 1
    if shift is None:
        shift = int(rng.integers(-2, max(0, typical - out_width) + 3))
    bias_frac = in_format.frac + w_frac
    bias_width = min(62, in_format.width + w_width + int(rng.integers(0, 6)))
    bf = QFormat(bias_width, bias_frac)
    of = QFormat(out_width, bias_frac - shift)
    if activation is None:
        kind = rng.choice(["identity", "relu", "hardtanh"])
        if kind == "hardtanh":
            lo, hi = sorted(int(v) for v in rng.integers(of.min, of.max + 1, size=2))
            activation = Activation.hardtanh(lo, hi)
        else:
            activation = Activation(str(kind))
    weights = rng.integers(wf.min, wf.max + 1, size=(m, n))
    # Some sparse and some extreme weights.
    weights[rng.random((m, n)) < 0.1] = 0
    weights[rng.random((m, n)) < 0.05] = wf.min
    bias_scale = 1 << max(0, min(bias_width - 1, shift + out_width - 1))
    bias = rng.integers(-bias_scale, bias_scale, size=m)
    bias = np.clip(bias, bf.min, bf.max)
    return Layer(name, weights, bias, wf, bf, of, activation)


def single_layer_spec(weights, bias, *, x_fmt, w_fmt, b_width, y_fmt, activation):
    """A one-layer spec with the given integer weights and biases."""
    layer = Layer("dense0", np.array(weights), np.array(bias), w_fmt,
                  QFormat(b_width, x_fmt.frac + w_fmt.frac), y_fmt, activation)
    return NetworkSpec(x_fmt, [layer])


def random_spec(rng, sizes, *, in_width=None, **layer_kwargs):
    """A random spec with layer sizes ``sizes`` (``[N, M1, M2, ...]``)."""
    in_width = in_width or int(rng.integers(2, 17))
    fmt = QFormat(in_width, int(rng.integers(-2, in_width + 4)))
    input_format, layers = fmt, []
    for index, (n, m) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layer = random_layer(rng, f"dense{index}", n, m, fmt, **layer_kwargs)
        layers.append(layer)
        fmt = layer.output_format
    return NetworkSpec(input_format, layers, name="random")


def random_inputs(rng, spec, batch):
    """Random input integers with the extremes of the format mixed in."""
    fmt = spec.input_format
    x = rng.integers(fmt.min, fmt.max + 1, size=(batch, spec.input_size))
    x[rng.random(x.shape) < 0.1] = fmt.max
    x[rng.random(x.shape) < 0.1] = fmt.min
    return x


@st.composite
def sizes(draw, small=12):
    """A layer size from 1 to 40, mostly small, primes included."""
    return draw(st.one_of(st.integers(1, small), st.sampled_from(PRIMES),
                          st.integers(1, 40)))


def run_layer(layer_component, x, *, stalls=(0.0, 0.0), seed=0):
    """Run vectors ``x`` (the layer's inputs) through a DenseLayer; returns
    (outputs, padding lanes, StreamRun)."""
    plan = layer_component.plan
    words = pack_beats(x, plan.simd, plan.in_width)
    run = run_streams(layer_component, words, len(x) * plan.out_beats, stalls=stalls, seed=seed)
    out, pad = unpack_beats(run.outputs, plan.pe, plan.out_width, plan.out_features)
    return out, pad, run


def layer_inputs(spec, index, x):
    """The integers that enter layer ``index`` when the network runs on ``x``."""
    if index == 0:
        return np.asarray(x)
    return golden.run_layers(spec, x)[index - 1]
