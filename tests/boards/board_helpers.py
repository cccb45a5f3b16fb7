"""The tiny network of the link tests (test code, not package code); bench/bench_link.py
measures the same one."""

import numpy as np
from specs import mlp_spec

from amaranth_nn import Activation, Layer, NetworkSpec, QFormat


def tiny_spec():
    """4 -> 3 -> 2 with one byte per element: 11-byte INFER requests and RESULT replies."""
    return mlp_spec([4, 3, 2], seed=9, input_format=QFormat(8, 6))


def wide_spec():
    """8 -> 2, one byte per input: an INFER payload that can hold a whole STATUS frame."""
    return NetworkSpec(QFormat(8, 6), [Layer("fc", np.ones((2, 8), dtype=int), np.zeros(2, int),
                                             QFormat(7, 6), QFormat(32, 12), QFormat(8, 4),
                                             Activation.identity())])
