"""The tiny network of the link tests (test code, not package code); bench/bench_link.py
measures the same one."""

import numpy as np

from amaranth_nn import Activation, Layer, NetworkSpec, QFormat


def tiny_spec():
    """4 -> 3 -> 2 with one byte per element: 11-byte INFER requests and RESULT replies."""
    rng = np.random.default_rng(9)
    layers = [Layer("fc0", rng.integers(-64, 64, (3, 4)), rng.integers(-500, 500, 3),
                    QFormat(7, 6), QFormat(32, 12), QFormat(8, 4), Activation.relu()),
              Layer("fc1", rng.integers(-64, 64, (2, 3)), rng.integers(-500, 500, 2),
                    QFormat(7, 6), QFormat(32, 10), QFormat(8, 4), Activation.identity())]
    return NetworkSpec(QFormat(8, 6), layers)


def wide_spec():
    """8 -> 2, one byte per input: an INFER payload that can hold a whole STATUS frame."""
    return NetworkSpec(QFormat(8, 6), [Layer("fc", np.ones((2, 8), dtype=int), np.zeros(2, int),
                                             QFormat(7, 6), QFormat(32, 12), QFormat(8, 4),
                                             Activation.identity())])
