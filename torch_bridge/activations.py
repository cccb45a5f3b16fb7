"""The QAT modules without weights: the input quantizer and the integer activations.

Each acts on values of a fixed-point grid and keeps them on it, exactly: :class:`QuantInput`
rounds the network input half to even and saturates it; :class:`QReLU`, :class:`QHardtanh`
and :class:`QIdentity` act on a layer's requantized outputs (``docs/numerics.md``).
"""

import torch
from torch import nn

from .quant import check_format, fake_quantize

__all__ = ["QuantInput", "QReLU", "QIdentity", "QHardtanh"]


class QuantInput(nn.Module):
    """Quantize real inputs to ``fmt``: round half to even, saturate (clipped STE).

    Parameters
    ----------
    fmt : QFormat or (width, frac)
        The network's input format.
    shape : tuple of int, optional
        The shape of one input sample in torch layout, ``(C, L)`` or ``(C, H, W)`` (or
        ``(N,)``). A model with convolutions needs it for its export; when given, the forward
        checks it.

    Raises
    ------
    ValueError
        In the forward, if an input is NaN or infinite or not of ``shape``.
    """

    def __init__(self, fmt, shape=None):
        super().__init__()
        self.fmt = check_format(fmt, "Input format")
        if shape is not None:
            shape = tuple(shape)
            if not shape or not all(isinstance(n, int) and n >= 1 for n in shape):
                raise ValueError(f"Input shape must be a tuple of positive integers, not "
                                 f"{shape!r}")
        self.shape = shape

    def forward(self, x):
        if self.shape is not None and tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"QuantInput expects inputs of shape (batch, "
                             f"{', '.join(map(str, self.shape))}), not {tuple(x.shape)}")
        return fake_quantize(x, self.fmt, "input")

    def extra_repr(self):
        return f"fmt={self.fmt}" + ("" if self.shape is None else f", shape={self.shape}")


class QReLU(nn.Module):
    """ReLU on fixed-point values: ``max(0, y)``, exact on the grid."""

    def forward(self, x):
        return torch.relu(x)


class QIdentity(nn.Module):
    """Identity activation (marks a layer without activation)."""

    def forward(self, x):
        return x


class QHardtanh(nn.Module):
    """HardTanh on fixed-point values: ``clamp(y, lo, hi)`` with bounds on the grid.

    Parameters
    ----------
    min_val, max_val : float
        Real bounds, rounded (half to even) and saturated to ``fmt``.
    fmt : QFormat or (width, frac)
        The output format of the layer before this activation.

    Members
    -------
    lo, hi : int
        The integer bounds of the spec's ``Activation.hardtanh``.
    """

    def __init__(self, min_val=-1.0, max_val=1.0, *, fmt):
        super().__init__()
        self.fmt = check_format(fmt, "Hardtanh format")
        lo, hi = (int(v) for v in self.fmt.quantize([min_val, max_val]))
        if lo > hi:
            raise ValueError(f"Hardtanh bounds must have min_val <= max_val, not "
                             f"[{min_val}, {max_val}]")
        self.lo, self.hi = lo, hi

    def forward(self, x):
        return torch.clamp(x.to(torch.float64), self.lo * self.fmt.lsb, self.hi * self.fmt.lsb)

    def extra_repr(self):
        return f"lo={self.lo}, hi={self.hi}, fmt={self.fmt}"
