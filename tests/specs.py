"""The one spec factory of the tests (test code, not package code).

- :func:`random_spec`: random formats, weights, biases and activations (formats with ``F > W``,
  negative shifts, saturation on both sides), for the bit-exactness tests;
- :func:`mlp_spec`: an MLP of chosen sizes and formats, ReLU on every layer but the last, for
  the tests that need a known shape (the protocol's byte counts, a board build);
- :func:`random_conv_spec`: conv layers (1-D or 2-D) of chosen shapes with random formats,
  weights and activations, as :func:`random_spec` draws them, for the conv hardware tests (the
  torch_bridge tests' ``random_conv_spec`` draws a network of every layer kind);
- :func:`single_layer_spec`: one layer of given integers;
- :func:`random_inputs`: input vectors with the format's extremes mixed in;
- :func:`stream_spec`: a chain of any layer kinds (conv, pooling, flatten, ...) of given shapes.
"""

import numpy as np

from amaranth_nn import Activation, Layer, NetworkSpec, QFormat
from amaranth_nn.spec import AvgPool, Conv, Flatten, MaxPool, ScaleShift


def _random_formats(rng, n, in_format, *, w_width=None, out_width=None, shift=None,
                    activation=None, w_frac=None):
    """Random weight, bias and output formats and an activation for a fan-in of ``n``."""
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
    return wf, bf, of, activation, shift


def _random_numbers(rng, shape, wf, bf, shift, out_width):
    """Random weights of ``shape`` (some zero, some the format's minimum) and biases."""
    weights = rng.integers(wf.min, wf.max + 1, size=shape)
    # Some sparse and some extreme weights.
    weights[rng.random(shape) < 0.1] = 0
    weights[rng.random(shape) < 0.05] = wf.min
    bias_scale = 1 << max(0, min(bf.width - 1, shift + out_width - 1))
    bias = rng.integers(-bias_scale, bias_scale, size=shape[0])
    return weights, np.clip(bias, bf.min, bf.max)


def random_layer(rng, name, n, m, in_format, **kwargs):
    """A random dense layer with ``n`` inputs and ``m`` outputs after ``in_format`` (keywords:
    ``w_width``, ``out_width``, ``shift``, ``activation``, ``w_frac``)."""
    wf, bf, of, activation, shift = _random_formats(rng, n, in_format, **kwargs)
    weights, bias = _random_numbers(rng, (m, n), wf, bf, shift, of.width)
    return Layer(name, weights, bias, wf, bf, of, activation)


def random_conv_layer(rng, name, input_shape, out_channels, kernel, stride, padding, in_format,
                      **kwargs):
    """A random conv layer (1-D or 2-D by ``input_shape``) after ``in_format``; the keywords
    of :func:`random_layer`."""
    fan_in = int(np.prod(kernel)) * input_shape[-1]
    wf, bf, of, activation, shift = _random_formats(rng, fan_in, in_format, **kwargs)
    weights, bias = _random_numbers(rng, (out_channels, *kernel, input_shape[-1]), wf, bf,
                                    shift, of.width)
    return Conv(name, input_shape, weights, bias, wf, bf, of, activation, stride=stride,
                padding=padding)


def random_conv_spec(rng, input_shape, convs, *, in_width=None, **layer_kwargs):
    """A random spec of conv layers: ``convs`` holds ``(out_channels, kernel, stride,
    padding)`` per layer (tuples, one entry per axis of ``input_shape[:-1]``)."""
    in_width = in_width or int(rng.integers(2, 13))
    fmt = QFormat(in_width, int(rng.integers(-2, in_width + 4)))
    input_format, layers, shape = fmt, [], tuple(input_shape)
    for index, (out_channels, kernel, stride, padding) in enumerate(convs):
        layer = random_conv_layer(rng, f"conv{index}", shape, out_channels, kernel, stride,
                                  padding, fmt, **layer_kwargs)
        layers.append(layer)
        fmt, shape = layer.output_format, layer.output_shape
    return NetworkSpec(input_format, layers, name="random_conv")


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


def mlp_spec(sizes, *, seed=0, input_format=None, weight_format=None, bias_width=32,
             output_format=None, last_format=None, weights=64, biases=500, name="mlp"):
    """An MLP ``sizes[0] -> sizes[1] -> ...``: weights of ``weight_format`` (default Q(7, 6))
    uniform in ``[-weights, weights)`` and biases in ``[-biases, biases)``, the input in
    ``input_format`` and every layer's output in ``output_format`` (both default Q(8, 4); the
    last layer's in ``last_format`` if given), ReLU on every layer but the last (identity)."""
    input_format = input_format or QFormat(8, 4)
    weight_format = weight_format or QFormat(7, 6)
    output_format = output_format or QFormat(8, 4)
    rng = np.random.default_rng(seed)
    fmt, layers = input_format, []
    for index, (n, m) in enumerate(zip(sizes, sizes[1:], strict=False)):
        last = index == len(sizes) - 2
        out = (last_format or output_format) if last else output_format
        layers.append(Layer(f"fc{index}", rng.integers(-weights, weights, (m, n)),
                            rng.integers(-biases, biases, m), weight_format,
                            QFormat(bias_width, fmt.frac + weight_format.frac), out,
                            Activation.identity() if last else Activation.relu()))
        fmt = out
    return NetworkSpec(input_format, layers, name=name)


def random_activation(rng, fmt):
    """Identity, ReLU or a HardTanh of random bounds inside ``fmt``."""
    kind = str(rng.choice(["identity", "relu", "hardtanh"]))
    if kind == "hardtanh":
        lo, hi = sorted(int(v) for v in rng.integers(fmt.min, fmt.max + 1, size=2))
        return Activation.hardtanh(lo, hi)
    return Activation(kind)


def random_scale_shift(rng, name, shape, in_format, *, a_width=None, **kwargs):
    """A random scale-and-shift layer over ``shape`` after ``in_format``, its formats and numbers
    drawn as :func:`random_layer` draws a dense layer's (keywords: ``a_width``, the scale width,
    and ``out_width``, ``shift``, ``activation``)."""
    af, bf, of, activation, shift = _random_formats(rng, 1, in_format, w_width=a_width, **kwargs)
    scale, bias = _random_numbers(rng, (shape[-1],), af, bf, shift, of.width)
    return ScaleShift(name, tuple(shape), scale, bias, af, bf, of, activation)


def scale_shift_spec(rng, shape, *, in_width=None, relu_before=False, **layer_kwargs):
    """A random spec whose last layer is a scale-and-shift over ``shape``; with
    ``relu_before``, a first scale-and-shift with a ReLU feeds it (an unsigned input)."""
    in_width = in_width or int(rng.integers(2, 17))
    fmt = QFormat(in_width, int(rng.integers(-2, in_width + 4)))
    layers = []
    if relu_before:
        layers.append(random_scale_shift(rng, "relu0", shape, fmt, activation=Activation.relu()))
    layers.append(random_scale_shift(rng, "scale0", shape,
                                     layers[-1].output_format if layers else fmt,
                                     **layer_kwargs))
    return NetworkSpec(fmt, layers, name="scale_shift")


def pool_spec(kind, shape, kernel, stride=None, *, input_format=None, relu_before=False,
              rng=None):
    """A spec whose last layer is a ``"maxpool"`` or ``"avgpool"`` over ``shape``; with
    ``relu_before`` (and an ``rng``), a random scale-and-shift with a ReLU feeds it."""
    fmt = input_format or QFormat(8, 4)
    layers = []
    if relu_before:
        layers.append(random_scale_shift(rng, "relu0", shape, fmt, activation=Activation.relu()))
    pool = MaxPool if kind == "maxpool" else AvgPool
    layers.append(pool("pool0", tuple(shape), tuple(kernel),
                       None if stride is None else tuple(stride)))
    return NetworkSpec(fmt, layers, name=kind)


def stream_spec(rng, input_shape, layers, *, name="stream"):
    """A spec of any layer kinds with random small integers, for the folding and stream tests.

    ``layers`` are tuples: ``("conv", out_channels, kernel, stride, padding)``,
    ``("maxpool", kernel)``, ``("avgpool", kernel)`` (kernels as tuples, one per axis),
    ``("scale_shift",)``, ``("flatten",)``, ``("dense", out_features)``. Every format is
    ``Q(8, 4)``, weights and scales ``Q(4, 2)``, biases ``Q(20, 6)``, with a ReLU.
    """
    fmt, w_fmt, b_fmt = QFormat(8, 4), QFormat(4, 2), QFormat(20, 6)
    shape, result = tuple(input_shape), []
    for index, (kind, *args) in enumerate(layers):
        layer_name = f"{kind}{index}"
        if kind == "conv":
            out_channels, kernel, stride, padding = args
            weights = rng.integers(w_fmt.min, w_fmt.max + 1,
                                   size=(out_channels, *kernel, shape[-1]))
            bias = rng.integers(-50, 50, size=out_channels)
            layer = Conv(layer_name, shape, weights, bias, w_fmt, b_fmt, fmt, Activation.relu(),
                         stride=stride, padding=padding)
        elif kind in ("maxpool", "avgpool"):
            layer = (MaxPool if kind == "maxpool" else AvgPool)(layer_name, shape, args[0])
        elif kind == "scale_shift":
            scale = rng.integers(w_fmt.min, w_fmt.max + 1, size=shape[-1])
            bias = rng.integers(-50, 50, size=shape[-1])
            layer = ScaleShift(layer_name, shape, scale, bias, w_fmt, b_fmt, fmt,
                               Activation.relu())
        elif kind == "flatten":
            layer = Flatten(layer_name, shape)
        else:
            weights = rng.integers(w_fmt.min, w_fmt.max + 1, size=(args[0], shape[0]))
            layer = Layer(layer_name, weights, rng.integers(-50, 50, size=args[0]), w_fmt,
                          b_fmt, fmt, Activation.relu())
        result.append(layer)
        shape = layer.output_shape
    return NetworkSpec(fmt, result, name=name)
