"""Integer inference of a :class:`~amaranth_nn.spec.NetworkSpec` in torch (int64).

It computes what :func:`amaranth_nn.golden.run` computes, bit for bit, for every layer kind:
dense and conv layers ``acc = W x + b`` exactly (conv per output position, over windows with
zero padding), scale-and-shift ``acc = a_c x + b_c``, then
``y = clamp(floor((acc + 2**(s-1)) / 2**s))`` (an exact left shift when ``s <= 0``) and the
activation; max pooling compares integers, average pooling requantizes the window sums,
flatten passes the stream on. Vectors are streams (``docs/numerics.md``); inside a layer the
samples are in torch layout, ``(batch, C, *S)``. Every accumulator must fit in 62 bits (checked
from the spec's exact accumulator bounds before any work); wider networks need the golden
model, which falls back to Python integers.
"""

import numpy as np
import torch
import torch.nn.functional as F

from amaranth_nn.fixedpoint import INT64_SAFE_BITS, rounding_constant, signed_width
from amaranth_nn.spec import as_input_array

from .layout import from_stream, to_stream

__all__ = ["requantize_int", "activate_int", "windows_int", "conv_int", "run_layer",
           "run_layers", "run"]


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


def windows_int(x, kernel, stride, padding=None):
    """Every window of ``x`` (torch layout, any dtype): ``(batch, C, *out, *kernel)``.

    ``padding`` (default none) is zeros on both sides of every spatial axis.
    """
    if padding is not None and any(padding):
        x = F.pad(x, [p for pad in reversed(padding) for p in (pad, pad)])
    for axis, (k, s) in enumerate(zip(kernel, stride, strict=True)):
        x = x.unfold(2 + axis, k, s)
    return x


def conv_int(x, weight, stride, padding):
    """An exact int64 convolution: ``x`` ``(batch, C, *S)``, ``weight`` ``(out, C, *k)``;
    returns ``(batch, out, *S_out)`` without bias."""
    axes = weight.dim() - 2
    win = windows_int(x, tuple(weight.shape[2:]), stride, padding)
    # (batch, C, *out, *k) -> (batch, *out, C, *k) -> (batch, *out, C*k)
    win = win.movedim(1, 1 + axes)
    out_shape = win.shape[1:1 + axes]
    acc = win.reshape(win.shape[0], *out_shape, -1) @ weight.reshape(weight.shape[0], -1).T
    return acc.movedim(-1, 1)


def _check_width(spec, index):
    layer = spec.layers[index]
    if not hasattr(layer, "accumulator_range"):
        return
    lo, hi = spec.accumulator_range_of(index)
    rounding = layer.rounding
    width = signed_width(lo - rounding, hi + rounding)
    if width > INT64_SAFE_BITS:
        raise ValueError(f"Layer {index} ({layer.name!r}) needs a {width}-bit accumulator; "
                         f"torch int64 inference supports up to {INT64_SAFE_BITS} bits (use "
                         f"amaranth_nn.golden.run, which falls back to Python integers)")


def _tensor(values):
    return torch.from_numpy(np.array(values, dtype=np.int64))


def _torch_shape(layer):
    """The torch sample shape ``(C, *S)`` of a layer's input."""
    shape = layer.input_shape
    return shape if len(shape) == 1 else (shape[-1], *shape[:-1])


def run_layer(spec, index, x):
    """Outputs (after the activation) of layer ``index`` for an int64 batch ``x`` of streams.

    Raises
    ------
    ValueError
        If the layer's accumulator needs more than 62 bits.
    """
    _check_width(spec, index)
    return _run_layer(spec, index, x)


def _run_layer(spec, index, x):
    layer = spec.layers[index]
    if layer.kind == "flatten":
        return x
    if layer.kind == "dense":
        acc = x @ _tensor(layer.weights).T + _tensor(layer.bias)
        return activate_int(layer.activation, requantize_int(acc, layer.shift,
                                                             layer.output_format))
    grid = from_stream(x, _torch_shape(layer))
    if layer.kind == "scale_shift":
        axes = [1] * (grid.dim() - 2)
        acc = grid * _tensor(layer.scale).reshape(-1, *axes) + _tensor(layer.bias).reshape(
            -1, *axes)
        y = activate_int(layer.activation, requantize_int(acc, layer.shift, layer.output_format))
    elif layer.kind == "conv":
        weight = _tensor(layer.weights).movedim(-1, 1)   # (out, *k, in) -> (out, in, *k)
        acc = conv_int(grid, weight, layer.stride, layer.padding)
        acc = acc + _tensor(layer.bias).reshape(-1, *[1] * (acc.dim() - 2))
        y = activate_int(layer.activation, requantize_int(acc, layer.shift, layer.output_format))
    else:
        win = windows_int(grid, layer.kernel, layer.stride)
        window_axes = tuple(range(-len(layer.kernel), 0))
        if layer.kind == "maxpool":
            y = win.amax(dim=window_axes)
        else:
            y = requantize_int(win.sum(dim=window_axes), layer.shift,
                               spec.output_format_of(index))
    return to_stream(y)


def run_layers(spec, x):
    """Run ``spec`` on integer inputs in torch; returns every layer's int64 outputs.

    Parameters
    ----------
    spec : NetworkSpec
    x : torch.Tensor or array_like of int, shape (batch, input_size) or (input_size,)
        Integers of ``spec.input_format``, each vector in stream order.

    Returns
    -------
    list of torch.Tensor of int64
        Each layer's outputs, ``(batch, output_size)`` in stream order.

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
    h = _tensor(batch)
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
