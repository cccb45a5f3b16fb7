"""The golden model: exact integer inference of a :class:`~amaranth_nn.spec.NetworkSpec`.

This is the numeric contract (``docs/numerics.md``) in executable form. Torch integer
inference and the RTL are tested for equality with it, bit for bit.

Per layer: ``acc = W @ x + b`` exactly, ``y = sat(floor((acc + 2**(s-1)) / 2**s))`` with
``s = Fx + Fw - Fy`` (an exact left shift when ``s <= 0``), then the activation. The
accumulator is computed in ``int64`` when its exact bounds (from the weights and the input
range, plus the rounding constant) fit in 62 bits, and with Python ints otherwise.
"""

import numpy as np

from .fixedpoint import INT64_SAFE_BITS, python_ints, requantize, signed_width
from .spec import as_input_array

__all__ = ["accumulate", "run_layer", "run", "run_layers"]


def accumulate(spec, index, x):
    """Exact accumulators ``x @ W.T + b`` of layer ``index`` for a batch ``x``."""
    layer = spec.layers[index]
    lo, hi = spec.accumulator_range_of(index)
    rounding = layer.rounding
    if signed_width(lo - rounding, hi + rounding) <= INT64_SAFE_BITS:
        return x.astype(np.int64) @ layer.weights.T + layer.bias
    return python_ints(x) @ python_ints(layer.weights).T + python_ints(layer.bias)


def run_layer(spec, index, x):
    """Outputs of layer ``index`` (after its activation) for a 2-D integer batch ``x``."""
    layer = spec.layers[index]
    y = requantize(accumulate(spec, index, x), layer.shift, layer.output_format)
    return layer.activation.apply(y).astype(np.int64)


def run_layers(spec, x):
    """Run ``spec`` on integer inputs; returns the outputs of every layer, in order.

    Parameters
    ----------
    spec : NetworkSpec
    x : array_like of int, shape (batch, input_size) or (input_size,)
        Integers of ``spec.input_format``.

    Returns
    -------
    list of numpy.ndarray of int64
        One array per layer, shaped like ``x`` with the layer's ``out_features`` columns.

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
