"""Integer inference of a :class:`~amaranth_nn.spec.NetworkSpec` in torch (int64).

It computes what :func:`amaranth_nn.golden.run` computes, bit for bit: per layer
``acc = x @ W.T + b`` exactly, ``y = clamp(floor((acc + 2**(s-1)) / 2**s))`` (an exact left
shift when ``s <= 0``), then the activation. Every accumulator must fit in 62 bits (checked
from the spec's exact accumulator bounds before any work); wider networks need the golden
model, which falls back to Python integers.
"""

import numpy as np
import torch

from amaranth_nn.fixedpoint import INT64_SAFE_BITS, rounding_constant, signed_width
from amaranth_nn.spec import as_input_array

__all__ = ["requantize_int", "activate_int", "run_layer", "run_layers", "run"]


def requantize_int(acc, shift, fmt):
    """``clamp(floor((acc + 2**(shift-1)) / 2**shift), fmt.min, fmt.max)`` on int64 tensors.

    A ``shift`` of zero or less is an exact left shift by ``-shift`` after saturating, so it
    never overflows.
    """
    if shift > 0:
        return torch.clamp((acc + rounding_constant(shift)) >> shift, fmt.min, fmt.max)
    left = -shift
    hi = fmt.max >> left
    lo = -((-fmt.min) >> left)
    kept = torch.clamp(acc, lo, hi) << min(left, 63)
    return torch.where(acc > hi, fmt.max, torch.where(acc < lo, fmt.min, kept))


def activate_int(activation, y):
    """Apply an :class:`~amaranth_nn.fixedpoint.Activation` to int64 tensors."""
    if activation.kind == "relu":
        return torch.clamp(y, min=0)
    if activation.kind == "hardtanh":
        return torch.clamp(y, activation.lo, activation.hi)
    return y


def _check_width(spec, index):
    layer = spec.layers[index]
    lo, hi = spec.accumulator_range_of(index)
    rounding = layer.rounding
    width = signed_width(lo - rounding, hi + rounding)
    if width > INT64_SAFE_BITS:
        raise ValueError(f"Layer {index} ({layer.name!r}) needs a {width}-bit accumulator; "
                         f"torch int64 inference supports up to {INT64_SAFE_BITS} bits (use "
                         f"amaranth_nn.golden.run, which falls back to Python integers)")


def run_layer(spec, index, x):
    """Outputs (after the activation) of layer ``index`` for an int64 batch ``x``.

    Raises
    ------
    ValueError
        If the layer's accumulator needs more than 62 bits.
    """
    _check_width(spec, index)
    return _run_layer(spec, index, x)


def _run_layer(spec, index, x):
    layer = spec.layers[index]
    weights = torch.from_numpy(np.array(layer.weights, dtype=np.int64))
    bias = torch.from_numpy(np.array(layer.bias, dtype=np.int64))
    acc = x @ weights.T + bias
    return activate_int(layer.activation, requantize_int(acc, layer.shift,
                                                         layer.output_format))


def run_layers(spec, x):
    """Run ``spec`` on integer inputs in torch; returns every layer's int64 outputs.

    Parameters
    ----------
    spec : NetworkSpec
    x : torch.Tensor or array_like of int, shape (batch, input_size) or (input_size,)
        Integers of ``spec.input_format``.

    Returns
    -------
    list of torch.Tensor of int64

    Raises
    ------
    ValueError
        If ``x`` is not integer, has the wrong size or leaves the input format's range, or a
        layer's accumulator needs more than 62 bits.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    batch, single = as_input_array(spec, x)
    for index in range(len(spec.layers)):
        _check_width(spec, index)
    h = torch.from_numpy(np.array(batch, dtype=np.int64))
    outputs = []
    for index in range(len(spec.layers)):
        h = _run_layer(spec, index, h)
        outputs.append(h[0] if single else h)
    return outputs


def run(spec, x):
    """Run ``spec`` on integer inputs in torch; returns the last layer's int64 outputs.

    See :func:`run_layers`.
    """
    return run_layers(spec, x)[-1]
