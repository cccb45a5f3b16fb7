"""Lane packing: how integers sit side by side in one word of a stream beat or a ROM.

The one rule, used by stream beats, weight and bias ROM words, the simulator driver and the
exported ROM images: lane ``k`` of a word holds its integer at bits ``[k*width, (k+1)*width)``,
lane 0 in the low bits, as two's complement modulo ``2**width`` (or plain binary for unsigned
lanes). A vector of ``length`` elements is ``ceil(length/lanes)`` words; element ``b*lanes + k``
is lane ``k`` of word ``b``, and lanes past the end are zero.
"""

import numpy as np

__all__ = ["ceil_div", "pack_lanes", "unpack_lanes", "pack_beats", "unpack_beats"]


def ceil_div(a, b):
    """``ceil(a / b)`` for positive integers."""
    return -(-a // b)


def pack_lanes(values, width):
    """One word holding ``values`` in lanes of ``width`` bits (lane 0 in the low bits).

    Negative values are stored in two's complement, modulo ``2**width``.
    """
    mask = (1 << width) - 1
    word = 0
    for k, value in enumerate(values):
        word |= (int(value) & mask) << (k * width)
    return word


def unpack_lanes(word, lanes, width, *, signed=True):
    """The ``lanes`` integers of ``word``, lane 0 first; two's complement when ``signed``."""
    mask = (1 << width) - 1
    values = []
    for k in range(lanes):
        value = (word >> (k * width)) & mask
        if signed and value >> (width - 1):
            value -= 1 << width
        values.append(value)
    return values


def pack_beats(x, lanes, width):
    """Pack vectors of integers into stream beats.

    Parameters
    ----------
    x : array_like of int, shape (batch, length)
    lanes, width : int
        Lanes per beat and bits per lane.

    Returns
    -------
    list of int
        ``batch * ceil(length/lanes)`` beats, vector by vector; lanes past the end are zero.
    """
    x = np.asarray(x)
    batch, length = x.shape
    beats = ceil_div(length, lanes)
    padded = np.zeros((batch, beats * lanes), dtype=object)
    padded[:, :length] = x.astype(object)
    return [pack_lanes(row, width) for row in padded.reshape(batch * beats, lanes).tolist()]


def unpack_beats(words, lanes, width, length):
    """Inverse of :func:`pack_beats`: beats to an int64 array of shape (batch, length).

    Returns
    -------
    values : numpy.ndarray of int64, shape (batch, length)
    padding : numpy.ndarray of int64, shape (batch, beats*lanes - length)
        The lanes past the end of each vector (zero for a network's output).
    """
    beats = ceil_div(length, lanes)
    flat = np.array([value for word in words for value in unpack_lanes(word, lanes, width)],
                    dtype=np.int64).reshape(-1, beats * lanes)
    return flat[:, :length], flat[:, length:]
