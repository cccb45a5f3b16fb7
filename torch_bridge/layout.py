"""Torch's tensor layout against the spec's stream order, and the export's weight layouts.

Torch holds a sample as ``(C, L)`` or ``(C, H, W)``, channel-major, and ``nn.Flatten`` flattens
it so. A stream (:mod:`amaranth_nn.windows`) carries positions one after another, each
position's channels together: ``(L, C)`` or ``(H, W, C)``, flattened row-major. This module
converts between the two:

- inputs and outputs: :func:`to_stream`, :func:`from_stream`, :func:`stream_shape`;
- a conv's weights ``(out, in, *kernel)`` to the spec's ``(out, *kernel, in)``:
  :func:`conv_weights`;
- flatten: the next dense layer's weight columns from torch's order to the stream's,
  :func:`stream_permutation` (a permutation of the columns, so that the flatten costs nothing
  in hardware);
- an average pool folded into the next layer: :func:`pool_into_dense` and
  :func:`pool_into_conv` expand that layer's (integer) weights over the pool's windows.
"""

from math import prod

import numpy as np
import torch

from amaranth_nn.windows import output_spatial

__all__ = ["stream_shape", "to_stream", "from_stream", "conv_weights", "stream_permutation",
           "pool_into_dense", "pool_into_conv", "pooled_shape"]


def stream_shape(shape):
    """The stream-order shape of a torch sample shape: ``(C, *S)`` -> ``(*S, C)``."""
    shape = tuple(shape)
    return shape if len(shape) == 1 else (*shape[1:], shape[0])


def to_stream(x):
    """A batch in torch layout ``(batch, C, *S)`` as streams ``(batch, prod(S) * C)``."""
    x = torch.as_tensor(x) if not isinstance(x, np.ndarray) else torch.from_numpy(x)
    if x.dim() > 2:
        x = x.movedim(1, -1)
    return x.reshape(x.shape[0], -1)


def from_stream(x, shape):
    """Streams ``(batch, size)`` as a batch in torch layout, each sample of ``shape``
    (``(C, *S)``)."""
    x = torch.as_tensor(x) if not isinstance(x, np.ndarray) else torch.from_numpy(x)
    if len(shape) == 1:
        return x.reshape(x.shape[0], *shape)
    return x.reshape(x.shape[0], *stream_shape(shape)).movedim(-1, 1)


def conv_weights(weight):
    """A conv's weights ``(out, in, *kernel)`` as the spec holds them, ``(out, *kernel, in)``."""
    return weight.movedim(1, -1)


def stream_permutation(shape):
    """The torch index of each stream index of a sample of ``shape`` (``(C, *S)``).

    ``columns[:, stream_permutation(shape)]`` reorders a dense layer's weight columns from
    torch's flattening to the stream's: stream element ``s*C + c`` is torch element
    ``c*prod(S) + s``.
    """
    return np.arange(prod(shape)).reshape(shape).transpose(
        *range(1, len(shape)), 0).reshape(-1)


def pooled_shape(shape, kernel, stride):
    """Torch sample shape ``(C, *S)`` after a pool of ``kernel`` and ``stride`` (no padding)."""
    return (shape[0], *output_spatial(shape[1:], kernel, stride, (0,) * len(kernel)))


def _spread(weights, spatial, kernel, stride):
    """Per window position: add ``weights[..., *p]`` (over the pooled positions ``p``, the last
    axes) to every input position of window ``p``; returns ``weights`` over ``spatial``."""
    lead = weights.shape[:-len(spatial)]
    out = np.zeros((*lead, *spatial), dtype=weights.dtype)
    for pooled in np.ndindex(*weights.shape[-len(spatial):]):
        for offset in np.ndindex(*kernel):
            at = tuple(p * s + o for p, s, o in zip(pooled, stride, offset, strict=True))
            out[(..., *at)] += weights[(..., *pooled)]
    return out


def pool_into_dense(weights, shape, kernel, stride):
    """A dense layer after ``pool -> flatten`` as one dense layer on the unpooled input.

    Parameters
    ----------
    weights : numpy.ndarray of int, shape (out, C * prod(P))
        Integer weights over the pooled, flattened input in torch order (already divided by the
        window at quantization: they multiply window sums).
    shape : tuple of int
        Torch sample shape ``(C, *S)`` before the pool.
    kernel, stride : tuple of int

    Returns
    -------
    numpy.ndarray of int, shape (out, C * prod(S))
        Over the unpooled input, in torch order: each input position gets the sum of the
        weights of every window that holds it (exact in integers).
    """
    pooled = pooled_shape(shape, kernel, stride)
    grid = weights.reshape(weights.shape[0], *pooled)
    return _spread(grid, shape[1:], kernel, stride).reshape(weights.shape[0], -1)


def pool_into_conv(weights, kernel, stride):
    """A conv (no padding) after a pool as one conv on the unpooled input.

    Parameters
    ----------
    weights : numpy.ndarray of int, shape (out, in, *k)
        Integer weights that multiply window sums.
    kernel, stride : tuple of int
        The pool's.

    Returns
    -------
    numpy.ndarray of int, shape (out, in, *k')
        With ``k' = (k - 1) * pool_stride + pool_kernel``; the conv's stride becomes
        ``conv_stride * pool_stride``. Conv output ``o`` reads pooled positions ``o*t + j``,
        which are input positions ``(o*t + j)*s + r``: kernel index ``j*s + r``.
    """
    k = weights.shape[2:]
    spatial = tuple((n - 1) * s + w for n, s, w in zip(k, stride, kernel, strict=True))
    return _spread(weights, spatial, kernel, stride)
