"""QAT pooling and flatten modules, exact on the fixed-point grid.

- :class:`QMaxPool1d`, :class:`QMaxPool2d`: the largest value of each window (no padding);
  values stay on their grid, so this is exact as it is.
- :class:`QAvgPool1d`, :class:`QAvgPool2d`: with ``fmt`` the pool is its own layer, a
  power-of-two window whose sum is requantized half up onto the grid of ``fmt`` (the input
  format); without ``fmt`` it folds into the dense or conv layer directly after it (a
  :class:`QFlatten` may come between): it outputs the exact average, and that layer,
  built with ``input_divisor`` equal to the window, quantizes ``W / window`` and multiplies
  the average back to the window sum (:mod:`torch_bridge.weighted`).
- :class:`QFlatten`: ``nn.Flatten`` of a sample (channel-major, as torch does); the export
  reorders the next dense layer's weight columns to the stream order, so it costs nothing.
"""

import math

import torch
from torch import nn

from .infer import windows_int
from .quant import check_format, requantize_grid

__all__ = ["QMaxPool1d", "QMaxPool2d", "QAvgPool1d", "QAvgPool2d", "QFlatten", "pool_geometry"]


def pool_geometry(kernel_size, stride, axes):
    """``(kernel, stride)`` as tuples of ``axes`` positive integers (stride default: kernel)."""
    def as_tuple(value, what):
        value = (value,) * axes if isinstance(value, int) else tuple(value)
        if len(value) != axes or not all(isinstance(v, int) and not isinstance(v, bool)
                                         and v >= 1 for v in value):
            raise ValueError(f"{what} must be a positive integer or a tuple of {axes}, not "
                             f"{value!r}")
        return value
    kernel = as_tuple(kernel_size, "Kernel size")
    return kernel, kernel if stride is None else as_tuple(stride, "Stride")


class _Pool(nn.Module):
    SPATIAL = 1

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size, self.stride = pool_geometry(kernel_size, stride, self.SPATIAL)

    @property
    def window(self):
        """Positions per window."""
        return math.prod(self.kernel_size)

    def _windows(self, x):
        if x.dim() != self.SPATIAL + 2:
            axes = "L" if self.SPATIAL == 1 else "H, W"
            raise ValueError(f"{type(self).__name__} expects inputs of shape (batch, C, {axes}), "
                             f"not {tuple(x.shape)}")
        return windows_int(x.to(torch.float64), self.kernel_size, self.stride)

    def _window_axes(self):
        return tuple(range(-self.SPATIAL, 0))

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class QMaxPool1d(_Pool):
    """Max pooling on fixed-point values (no padding), exact.

    Parameters
    ----------
    kernel_size : int or tuple of int
    stride : int or tuple of int, optional
        Default: the kernel size.
    """

    def forward(self, x):
        return self._windows(x).amax(dim=self._window_axes())


class QMaxPool2d(QMaxPool1d):
    """Max pooling over 2-D windows; see :class:`QMaxPool1d`."""

    SPATIAL = 2


class QAvgPool1d(_Pool):
    """Average pooling on fixed-point values: its own layer, or folded into the next.

    Parameters
    ----------
    kernel_size : int or tuple of int
    stride : int or tuple of int, optional
        Default: the kernel size. No padding.
    fmt : QFormat or (width, frac), optional
        The input format, for a pool that is its own layer (the window must be a power of two):
        ``y = floor(sum * 2**-m + 1/2)`` on that grid, ``m = log2(window)``. Without it the
        pool folds into the dense or conv layer directly after it, which must have
        ``input_divisor`` equal to the window.
    """

    def __init__(self, kernel_size, stride=None, *, fmt=None):
        super().__init__(kernel_size, stride)
        self.fmt = None if fmt is None else check_format(fmt, "Average pool format")
        if self.fmt is not None and self.window & (self.window - 1):
            raise ValueError(f"An average pool of its own needs a power-of-two window, not "
                             f"{self.window} positions; without fmt it folds into the next "
                             f"dense or conv layer")

    @property
    def folds(self):
        """Whether the pool folds into the next layer (it has no ``fmt``)."""
        return self.fmt is None

    def forward(self, x):
        sums = self._windows(x).sum(dim=self._window_axes())
        if self.folds:
            return sums / self.window
        shift = self.window.bit_length() - 1
        scaled = sums * 2.0 ** (self.fmt.frac - shift)
        return requantize_grid(scaled, self.fmt) * 2.0 ** -self.fmt.frac

    def extra_repr(self):
        return super().extra_repr() + ("" if self.folds else f", fmt={self.fmt}")


class QAvgPool2d(QAvgPool1d):
    """Average pooling over 2-D windows; see :class:`QAvgPool1d`."""

    SPATIAL = 2


class QFlatten(nn.Flatten):
    """``nn.Flatten`` of each sample (``start_dim=1``); the export permutes the next dense
    layer's columns to the stream order."""

    def __init__(self):
        super().__init__(1, -1)
