"""Quantization-aware training modules whose eval forward is the integer model, exactly.

Build a network as an ``nn.Sequential``::

    QuantInput(Q(8, 6)),
    QLinearBn1d(64, 32, input_format=Q(8, 6), weight_format=Q(8, 6), output_format=Q(8, 4)),
    QReLU(),
    QLinear(32, 10, input_format=Q(8, 4), weight_format=Q(8, 6), output_format=Q(8, 3)),

Each dense module mirrors one spec layer (``docs/numerics.md``): its input is on the grid of
``input_format``; the (folded) weight is rounded to ``weight_format``; the (folded) bias to the
accumulator scale ``2**-(Fx+Fw)`` in ``bias_format``; the accumulator is exact; the output is
``clamp(floor(acc * 2**-s + 1/2))`` in ``output_format``. Activations then act on those grid
values. Rounding uses the straight-through estimator of :mod:`torch_bridge.quant`.

Outputs are float64 tensors holding ``q * 2**-F`` exactly.

Exactness of the float forward
------------------------------
In float64 every integer below ``2**53`` is exact, and products and sums of grid values are
grid values. So the forward is exact when ``(A + 2**(s-1)) * 2**max(-s, 0) < 2**53``, where
``A = max_j sum_i |w_ji| * max|x| + max|b|`` bounds the accumulator in integer units (``max|x|``
from the input format). For 8-bit inputs and weights that holds up to about ``2**38`` inputs
per neuron. In eval mode, a layer beyond the bound computes its accumulator in int64 instead
(exact to 62 bits; wider raises ValueError), so the eval forward is exact in every case. In
training mode the float64 forward is used regardless: gradients need it, and an error of one
unit in a 53-bit accumulator does not matter to training.
"""

import torch
from torch import nn

from amaranth_nn.fixedpoint import INT64_SAFE_BITS, QFormat, rounding_constant

from .fold import fold_linear_bn, linear_parameters
from .infer import requantize_int
from .quant import FLOAT64_EXACT_BITS, check_format, fake_quantize, requantize_grid, to_grid

__all__ = ["QuantInput", "QLinear", "QLinearBn1d", "QReLU", "QHardtanh", "QIdentity",
           "default_bias_width"]


def default_bias_width(input_format, weight_format):
    """Bias width used when none is given: input width + weight width + 8, at most 62."""
    return min(62, input_format.width + weight_format.width + 8)


class QuantInput(nn.Module):
    """Quantize real inputs to ``fmt``: round half to even, saturate (clipped STE).

    Parameters
    ----------
    fmt : QFormat or (width, frac)
        The network's input format.

    Raises
    ------
    ValueError
        In the forward, if an input is NaN or infinite.
    """

    def __init__(self, fmt):
        super().__init__()
        self.fmt = check_format(fmt, "Input format")

    def forward(self, x):
        return fake_quantize(x, self.fmt, "input")

    def extra_repr(self):
        return f"fmt={self.fmt}"


class _QDense(nn.Module):
    """A dense layer of the numeric contract; subclasses say how to get ``(W', b')``."""

    def __init__(self, in_features, out_features, bias, input_format, weight_format,
                 output_format, bias_width):
        super().__init__()
        for name, value in (("In features", in_features), ("Out features", out_features)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be a positive integer, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value}")
        self.input_format = check_format(input_format, "Input format")
        self.weight_format = check_format(weight_format, "Weight format")
        self.output_format = check_format(output_format, "Output format")
        if bias_width is None:
            bias_width = default_bias_width(self.input_format, self.weight_format)
        self.bias_format = QFormat(bias_width, self.input_format.frac + self.weight_format.frac)
        self.linear = nn.Linear(in_features, out_features, bias=bias)

    @property
    def in_features(self):
        return self.linear.in_features

    @property
    def out_features(self):
        return self.linear.out_features

    @property
    def shift(self):
        """Requantization shift ``s = Fx + Fw - Fy``."""
        return self.bias_format.frac - self.output_format.frac

    def folded(self):
        """``(W', b')`` in float64 as the eval forward and the export use them."""
        raise NotImplementedError

    def _forward_parameters(self, x):
        return self.folded()

    def integer_parameters(self):
        """The exported integers: ``(weights, bias)`` as int64 tensors.

        They are computed by the same code as the forward, so the spec holds exactly what
        the eval forward uses.
        """
        with torch.no_grad():
            weight, bias = self.folded()
            return tuple(t.to(torch.int64) for t in self._grids(weight, bias))

    def _grids(self, weight, bias):
        name = type(self).__name__
        return (to_grid(weight, self.weight_format, f"weights of {name}"),
                to_grid(bias, self.bias_format, f"bias of {name}"))

    def _bound(self, w_grid, b_grid):
        """``A + 2**(s-1)``: bound of the accumulator plus rounding constant (integer units)."""
        x_max = max(-self.input_format.min, self.input_format.max)
        return (int(w_grid.detach().abs().sum(dim=1).max()) * x_max
                + int(b_grid.detach().abs().max()) + rounding_constant(self.shift))

    def forward(self, x):
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"{type(self).__name__} expects inputs of shape (batch, "
                             f"{self.in_features}), not {tuple(x.shape)}")
        weight, bias = self._forward_parameters(x)
        w_grid, b_grid = self._grids(weight, bias)
        x = x.to(torch.float64)
        fx, fy = self.input_format.frac, self.output_format.frac
        if not self.training:
            bound = self._bound(w_grid, b_grid)
            if bound << max(-self.shift, 0) >= 1 << FLOAT64_EXACT_BITS:
                return self._forward_int64(x, w_grid, b_grid, bound)
        acc = (x * 2.0 ** fx) @ w_grid.T + b_grid
        return requantize_grid(acc * 2.0 ** -self.shift, self.output_format) * 2.0 ** -fy

    def _forward_int64(self, x, w_grid, b_grid, bound):
        if bound >= 1 << (INT64_SAFE_BITS - 1):
            raise ValueError(f"{type(self).__name__}: the accumulator needs more than "
                             f"{INT64_SAFE_BITS} bits; narrow the formats")
        with torch.no_grad():
            x_int = torch.round(x * 2.0 ** self.input_format.frac).to(torch.int64)
            acc = x_int @ w_grid.to(torch.int64).T + b_grid.to(torch.int64)
            y = requantize_int(acc, self.shift, self.output_format)
        return y.to(torch.float64) * 2.0 ** -self.output_format.frac

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"input_format={self.input_format}, weight_format={self.weight_format}, "
                f"bias_format={self.bias_format}, output_format={self.output_format}")


class QLinear(_QDense):
    """Fixed-point linear layer: ``requantize(round(x) @ round(W).T + round(b))``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
        Whether the layer has a bias.
    input_format : QFormat or (width, frac)
        Format of the layer's inputs (the previous layer's output format).
    weight_format : QFormat or (width, frac)
    output_format : QFormat or (width, frac)
        Format the accumulator is requantized to.
    bias_width : int or None
        Width of the bias format; its frac is ``Fx + Fw``. Default
        :func:`default_bias_width`.

    Members
    -------
    linear : nn.Linear
        The float parameters.
    input_format, weight_format, bias_format, output_format : QFormat
    """

    def __init__(self, in_features, out_features, bias=True, *, input_format, weight_format,
                 output_format, bias_width=None):
        super().__init__(in_features, out_features, bias, input_format, weight_format,
                         output_format, bias_width)

    def folded(self):
        return linear_parameters(self.linear)


class QLinearBn1d(_QDense):
    """Fused fixed-point ``Linear -> BatchNorm1d`` that trains on its folded parameters.

    Every forward folds ``W' = gamma * W / sqrt(var + eps)`` and
    ``b' = gamma * (b - mu) / sqrt(var + eps) + beta`` (float64, :func:`fold_linear_bn`) and
    fake-quantizes *those*, so the trained layer is the deployed layer. In training mode
    ``mu`` and ``var`` are the batch statistics of ``x @ W.T + b`` (biased variance, as
    ``BatchNorm1d`` normalizes with), gradients flow through them, and the running statistics
    are updated as ``BatchNorm1d`` does (unbiased variance, ``momentum``). In eval mode, and in
    training once :meth:`freeze_bn` was called, the running statistics are used (Jacob et al.
    2018, section 3.2; ``torch.ao.nn.intrinsic.qat.LinearBn1d``, QKeras ``QDenseBatchnorm``).

    Parameters
    ----------
    in_features, out_features, bias, input_format, weight_format, output_format, bias_width
        As for :class:`QLinear`.
    eps : float
    momentum : float or None
        As for ``BatchNorm1d``; ``None`` is a cumulative average.

    Members
    -------
    linear : nn.Linear
    bn : nn.BatchNorm1d
        Holds ``gamma``, ``beta`` and the running statistics; its own forward is never run.
    bn_frozen : bool
        Whether training uses (and no longer updates) the running statistics.
    """

    def __init__(self, in_features, out_features, bias=True, *, input_format, weight_format,
                 output_format, bias_width=None, eps=1e-5, momentum=0.1):
        super().__init__(in_features, out_features, bias, input_format, weight_format,
                         output_format, bias_width)
        self.bn = nn.BatchNorm1d(out_features, eps=eps, momentum=momentum)
        self.bn_frozen = False

    def freeze_bn(self, frozen=True):
        """Use the running statistics in training too (and stop updating them)."""
        self.bn_frozen = bool(frozen)
        return self

    def _fold(self, mean, var):
        bn = self.bn
        return fold_linear_bn(self.linear.weight, self.linear.bias, mean, var,
                              bn.weight if bn.affine else None,
                              bn.bias if bn.affine else None, bn.eps)

    def folded(self):
        return self._fold(self.bn.running_mean, self.bn.running_var)

    def _forward_parameters(self, x):
        if not self.training or self.bn_frozen:
            return self.folded()
        if x.shape[0] < 2:
            raise ValueError(f"QLinearBn1d needs more than 1 sample per batch in training "
                             f"(batch statistics), got {x.shape[0]}")
        x = x.to(torch.float64)
        y = x @ self.linear.weight.to(torch.float64).T
        if self.linear.bias is not None:
            y = y + self.linear.bias.to(torch.float64)
        mean, var = y.mean(dim=0), y.var(dim=0, unbiased=False)
        self._update_running_stats(mean.detach(), var.detach(), x.shape[0])
        return self._fold(mean, var)

    def _update_running_stats(self, mean, var, n):
        bn = self.bn
        with torch.no_grad():
            bn.num_batches_tracked += 1
            factor = (1.0 / float(bn.num_batches_tracked) if bn.momentum is None
                      else bn.momentum)
            unbiased = var * n / (n - 1)
            bn.running_mean.mul_(1 - factor).add_(mean.to(bn.running_mean.dtype), alpha=factor)
            bn.running_var.mul_(1 - factor).add_(unbiased.to(bn.running_var.dtype),
                                                 alpha=factor)

    def extra_repr(self):
        return super().extra_repr() + f", bn_frozen={self.bn_frozen}"


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
