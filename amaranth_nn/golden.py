"""The golden model: exact integer inference of a :class:`~amaranth_nn.spec.NetworkSpec`.

This is the numeric contract (``docs/numerics.md``) in executable form. Torch integer
inference and the RTL are tested for equality with it, bit for bit.

Every vector is a stream (:mod:`amaranth_nn.windows`): a batch is ``(batch, size)`` with each
row in stream order. Per layer kind:

- dense: ``acc = W @ x + b`` exactly, ``y = sat(floor((acc + 2**(s-1)) / 2**s))`` with
  ``s = Fx + Fw - Fy`` (an exact left shift when ``s <= 0``), then the activation;
- conv: the same per output position, over its window (zeros in the padding);
- scale_shift: the same with one multiplier per channel;
- maxpool: the largest integer of each window; avgpool: the window sum, requantized by
  ``log2(window)``; flatten: the identity.

An accumulator is computed in ``int64`` when its exact bounds (from the integers and the input
range, plus the rounding constant) fit in 62 bits, and with Python ints otherwise. Everything is
vectorized over the batch and the positions.
"""

import numpy as np

from .fixedpoint import INT64_SAFE_BITS, python_ints, requantize, signed_width
from .spec import as_input_array
from .windows import windows

__all__ = ["accumulate", "run_layer", "run", "run_layers"]


def _exact(spec, index, *arrays):
    """``arrays`` as int64, or as Python ints where layer ``index``'s accumulator (plus its
    rounding constant) could leave 62 bits."""
    lo, hi = spec.accumulator_range_of(index)
    rounding = spec.layers[index].rounding
    if signed_width(lo - rounding, hi + rounding) <= INT64_SAFE_BITS:
        return [np.asarray(a).astype(np.int64) for a in arrays]
    return [python_ints(a) for a in arrays]


def _windows_of(layer, x):
    return windows(x, layer.spatial_in, layer.input_shape[-1], layer.kernel, layer.stride,
                   layer.padding)


def accumulate(spec, index, x):
    """Exact accumulators of layer ``index`` for a 2-D batch ``x``, in stream order.

    For a dense layer ``x @ W.T + b``; for a conv layer the same for every window; for a
    scale-and-shift layer ``a_c * x + b_c``; for an average pool the window sums.
    """
    layer = spec.layers[index]
    if layer.kind == "dense":
        x, weights, bias = _exact(spec, index, x, layer.weights, layer.bias)
        return x @ weights.T + bias
    if layer.kind == "conv":
        x, weights, bias = _exact(spec, index, x, layer.weight_matrix, layer.bias)
        win = _windows_of(layer, x).reshape(len(x), layer.positions_out, layer.window_size)
        return (win @ weights.T + bias).reshape(len(x), -1)
    if layer.kind == "scale_shift":
        x, scale, bias = _exact(spec, index, x, layer.scale, layer.bias)
        return (x.reshape(len(x), -1, layer.channels) * scale + bias).reshape(len(x), -1)
    if layer.kind == "avgpool":
        (x,) = _exact(spec, index, x)
        return _windows_of(layer, x).sum(axis=2).reshape(len(x), -1)
    raise ValueError(f"Layer {index} ({layer.name!r}) is a {layer.kind} layer, which has no "
                     f"accumulator")


def run_layer(spec, index, x):
    """Outputs of layer ``index`` (after its activation) for a 2-D integer batch ``x``."""
    layer = spec.layers[index]
    if layer.kind == "flatten":
        return np.asarray(x).astype(np.int64)
    if layer.kind == "maxpool":
        return _windows_of(layer, x).max(axis=2).reshape(len(x), -1).astype(np.int64)
    y = requantize(accumulate(spec, index, x), layer.shift, spec.output_format_of(index))
    if layer.kind == "avgpool":
        return y
    return layer.activation.apply(y).astype(np.int64)


def run_layers(spec, x):
    """Run ``spec`` on integer inputs; returns the outputs of every layer, in order.

    Parameters
    ----------
    spec : NetworkSpec
    x : array_like of int, shape (batch, input_size) or (input_size,)
        Integers of ``spec.input_format``, each vector in stream order.

    Returns
    -------
    list of numpy.ndarray of int64
        One array per layer, shaped like ``x`` with the layer's ``output_size`` columns (in
        stream order).

    Raises
    ------
    ValueError
        If ``x`` is not integer, has the wrong size or leaves the input format's range.
    """
    x, single = as_input_array(spec, x)
    outputs = []
    for index in range(len(spec.layers)):
        x = run_layer(spec, index, x)
        outputs.append(x[0] if single else x)
    return outputs


def run(spec, x):
    """Run ``spec`` on integer inputs; returns the last layer's output integers.

    See :func:`run_layers` for the parameters.
    """
    return run_layers(spec, x)[-1]
