"""Sliding windows over streams of positions: the shape arithmetic and the window order.

A stream carries positions one after another (position-major, row by row in 2-D), each
position's channels together: the vector of an ``(H, W, C)`` shape is its row-major flattening,
element ``(y*W + x)*C + c``. A window of a kernel ``(kh, kw)`` is read in the same order:
element ``(ky*kw + kx)*C + c`` of the window of output position ``(oy, ox)`` is input
``(oy*sy + ky - py, ox*sx + kx - px, c)``, and the zero integer where that lies in the padding.
This is the order of a convolution's weight columns (``docs/numerics.md``).
"""

from math import prod

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["output_length", "output_spatial", "windows"]


def output_length(size, kernel, stride=1, padding=0):
    """Output positions along one axis: ``floor((size + 2*padding - kernel) / stride) + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


def output_spatial(spatial, kernel, stride, padding):
    """Output positions along every axis, as a tuple."""
    return tuple(output_length(n, k, s, p)
                 for n, k, s, p in zip(spatial, kernel, stride, padding, strict=True))


def windows(x, spatial, channels, kernel, stride, padding):
    """Every window of a batch of streams, in window order.

    Parameters
    ----------
    x : numpy.ndarray, shape (batch, prod(spatial) * channels)
        Streams in stream order (int64, or object holding Python ints).
    spatial : tuple of int
        Positions along each axis: ``(L,)`` or ``(H, W)``.
    channels : int
    kernel, stride, padding : tuple of int
        One per axis; the padding is zeros on both sides.

    Returns
    -------
    numpy.ndarray, shape (batch, positions_out, prod(kernel), channels)
        Window ``p`` of output position ``p`` (row-major over the output positions), its
        kernel positions row-major, each with its channels.
    """
    batch, axes = x.shape[0], len(spatial)
    grid = x.reshape(batch, *spatial, channels)
    if any(padding):
        # np.zeros of dtype object holds Python ints (np.pad would pad with numpy int64s).
        padded = np.zeros((batch, *(n + 2 * p for n, p in zip(spatial, padding, strict=True)),
                           channels), dtype=grid.dtype)
        padded[(slice(None), *(slice(p, p + n) for n, p in zip(spatial, padding, strict=True)))] \
            = grid
        grid = padded
    view = sliding_window_view(grid, kernel, axis=tuple(range(1, axes + 1)))
    view = view[(slice(None), *(slice(None, None, s) for s in stride))]
    # (batch, *out, channels, *kernel) -> (batch, *out, *kernel, channels)
    view = view.transpose(0, *range(1, axes + 1), *range(axes + 2, 2 * axes + 2), axes + 1)
    positions = prod(view.shape[1:axes + 1])
    return view.reshape(batch, positions, prod(kernel), channels)
