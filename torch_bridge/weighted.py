"""QAT layers with weights whose eval forward is the integer model, exactly: the base of every
dense and conv module, and the plain :class:`QLinear`, :class:`QConv1d` and :class:`QConv2d`.

Each mirrors one spec layer (``docs/numerics.md``): its input is on the grid of
``input_format``; the (folded) weight is rounded to ``weight_format``; the (folded) bias to the
accumulator scale ``2**-(Fx+Fw)`` in ``bias_format``; the accumulator (``x @ W.T + b``, or the
convolution with zero padding plus ``b``) is exact; the output is
``clamp(floor(acc * 2**-s + 1/2))`` in ``output_format``. Rounding uses the straight-through
estimator of :mod:`torch_bridge.quant`. Outputs are float64 tensors holding ``q * 2**-F``
exactly, in torch's layout.

Exactness of the float forward
------------------------------
In float64 every integer below ``2**53`` is exact, and products and sums of grid values are
grid values (in any order of summation, so also inside a convolution). So the forward is exact
when ``(A + 2**(s-1)) * 2**max(-s, 0) < 2**53``, where ``A = max_j sum_i |w_ji| * max|x| +
max|b|`` bounds the accumulator in integer units (``max|x|`` from the input format). For 8-bit
inputs and weights that holds up to about ``2**38`` inputs per output. In eval mode, a layer
beyond the bound computes its accumulator in int64 instead (exact to 62 bits; wider raises
ValueError), so the eval forward is exact in every case. In training mode the float64 forward
is used regardless: gradients need it, and an error of one unit in a 53-bit accumulator does not
matter to training.

An average pool folded into this layer
--------------------------------------
With ``input_divisor=k`` the layer's input is the average of windows of ``k`` values of the
input grid (a :class:`~torch_bridge.pooling.QAvgPool1d` without ``fmt``). The layer multiplies
it back to the window sum (``round(x * k * 2**Fx)``, exact while the sums stay below ``2**51``
units) and quantizes ``W / k``: the integers of the one layer the export makes of the pool and
this layer.
"""

import torch
import torch.nn.functional as F
from torch import nn

from amaranth_nn.fixedpoint import INT64_SAFE_BITS, QFormat, rounding_constant

from .fold import weighted_parameters
from .infer import conv_int, requantize_int
from .quant import FLOAT64_EXACT_BITS, check_format, requantize_grid, round_ste, to_grid

__all__ = ["QWeighted", "QLinear", "QConv1d", "QConv2d", "default_bias_width",
           "check_positive", "per_channel"]


def default_bias_width(input_format, weight_format):
    """Bias width used when none is given: input width + weight width + 8, at most 62."""
    return min(62, input_format.width + weight_format.width + 8)


def check_positive(value, what):
    """``value`` if it is a positive integer; TypeError or ValueError otherwise."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be a positive integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value}")
    return value


def per_channel(values, like):
    """A vector over the channels (axis 1 of ``like``), shaped to combine with ``like``."""
    return values.reshape(-1, *[1] * (like.dim() - 2))


class QWeighted(nn.Module):
    """A layer of the numeric contract with weights; subclasses say how to get ``(W', b')``.

    Members
    -------
    input_format, weight_format, bias_format, output_format : QFormat
    input_divisor : int
        The window of an average pool folded into this layer (1: none).
    """

    #: Spatial axes of the input: 0 for a Linear, 1 or 2 for a conv.
    SPATIAL = 0

    def __init__(self, input_format, weight_format, output_format, bias_width, input_divisor):
        super().__init__()
        self.input_format = check_format(input_format, "Input format")
        self.weight_format = check_format(weight_format, "Weight format")
        self.output_format = check_format(output_format, "Output format")
        if bias_width is None:
            bias_width = default_bias_width(self.input_format, self.weight_format)
        self.bias_format = QFormat(bias_width, self.input_format.frac + self.weight_format.frac)
        self.input_divisor = check_positive(input_divisor, "Input divisor")

    @property
    def core(self):
        """The float ``nn.Linear`` or ``nn.ConvNd`` holding the parameters."""
        raise NotImplementedError

    @property
    def shift(self):
        """Requantization shift ``s = Fx + Fw - Fy``."""
        return self.bias_format.frac - self.output_format.frac

    def _fold(self, x):
        """``(W', b')`` in float64 before the divisor: with the batch statistics of ``x`` in
        training (modules with a BatchNorm), or running statistics when ``x`` is None."""
        return weighted_parameters(self.core)

    def folded(self):
        """``(W', b')`` in float64 as the eval forward and the export use them (the weights
        divided by :attr:`input_divisor`)."""
        return self._divided(*self._fold(None))

    def _divided(self, weight, bias):
        return (weight, bias) if self.input_divisor == 1 else (weight / self.input_divisor, bias)

    def integer_parameters(self):
        """The exported integers: ``(weights, bias)`` as int64 tensors, in torch's layout.

        They are computed by the same code as the forward, so the spec holds exactly what
        the eval forward uses.
        """
        with torch.no_grad():
            return tuple(t.to(torch.int64) for t in self._grids(*self.folded()))

    def _grids(self, weight, bias):
        name = type(self).__name__
        return (to_grid(weight, self.weight_format, f"weights of {name}"),
                to_grid(bias, self.bias_format, f"bias of {name}"))

    def _bound(self, w_grid, b_grid):
        """``A + 2**(s-1)``: bound of the accumulator plus rounding constant (integer units)."""
        x_max = max(-self.input_format.min, self.input_format.max) * self.input_divisor
        return (int(w_grid.detach().abs().flatten(1).sum(dim=1).max()) * x_max
                + int(b_grid.detach().abs().max()) + rounding_constant(self.shift))

    def _units(self, x):
        """The input in integer units (window sums, with a divisor)."""
        if self.input_divisor == 1:
            return x * 2.0 ** self.input_format.frac
        return round_ste(x * (self.input_divisor * 2.0 ** self.input_format.frac))

    def _expected_shape(self):
        """The input shape of a sample, for people: ``(in_features,)``, ``(C, "L")``."""
        raise NotImplementedError

    def _check_input(self, x):
        expected = self._expected_shape()
        if x.dim() != len(expected) + 1 or x.shape[1] != expected[0]:
            raise ValueError(f"{type(self).__name__} expects inputs of shape (batch, "
                             f"{', '.join(map(str, expected))}), not {tuple(x.shape)}")

    def forward(self, x):
        self._check_input(x)
        x = x.to(torch.float64)
        weight, bias = self._divided(*self._fold(x if self.training else None))
        w_grid, b_grid = self._grids(weight, bias)
        if not self.training:
            bound = self._bound(w_grid, b_grid)
            if bound << max(-self.shift, 0) >= 1 << FLOAT64_EXACT_BITS:
                return self._forward_int64(x, w_grid, b_grid, bound)
        acc = self._op(self._units(x), w_grid)
        acc = acc + per_channel(b_grid, acc)
        fy = self.output_format.frac
        return requantize_grid(acc * 2.0 ** -self.shift, self.output_format) * 2.0 ** -fy

    def _forward_int64(self, x, w_grid, b_grid, bound):
        if bound >= 1 << (INT64_SAFE_BITS - 1):
            raise ValueError(f"{type(self).__name__}: the accumulator needs more than "
                             f"{INT64_SAFE_BITS} bits; narrow the formats")
        with torch.no_grad():
            x_int = torch.round(self._units(x)).to(torch.int64)
            acc = self._op_int(x_int, w_grid.to(torch.int64))
            acc = acc + per_channel(b_grid.to(torch.int64), acc)
            y = requantize_int(acc, self.shift, self.output_format)
        return y.to(torch.float64) * 2.0 ** -self.output_format.frac

    def extra_repr(self):
        divisor = f", input_divisor={self.input_divisor}" if self.input_divisor != 1 else ""
        return (f"input_format={self.input_format}, weight_format={self.weight_format}, "
                f"bias_format={self.bias_format}, output_format={self.output_format}{divisor}")


class QLinear(QWeighted):
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
    input_divisor : int
        The window of an average pool folded into this layer (see the module documentation).

    Members
    -------
    linear : nn.Linear
        The float parameters.
    input_format, weight_format, bias_format, output_format : QFormat
    """

    def __init__(self, in_features, out_features, bias=True, *, input_format, weight_format,
                 output_format, bias_width=None, input_divisor=1):
        check_positive(in_features, "In features")
        check_positive(out_features, "Out features")
        super().__init__(input_format, weight_format, output_format, bias_width, input_divisor)
        self.linear = nn.Linear(in_features, out_features, bias=bias)

    @property
    def core(self):
        return self.linear

    @property
    def in_features(self):
        return self.linear.in_features

    @property
    def out_features(self):
        return self.linear.out_features

    def _expected_shape(self):
        return (self.in_features,)

    def _op(self, x, weight):
        return x @ weight.T

    _op_int = _op

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                + super().extra_repr())


class _QConv(QWeighted):
    """A fixed-point convolution with zero padding (``groups=1``, no dilation)."""

    CONV = None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 *, input_format, weight_format, output_format, bias_width=None,
                 input_divisor=1):
        check_positive(in_channels, "In channels")
        check_positive(out_channels, "Out channels")
        if isinstance(padding, str):
            raise ValueError(f"Padding must be an integer or a tuple of integers (zeros on both "
                             f"sides), not {padding!r}")
        super().__init__(input_format, weight_format, output_format, bias_width, input_divisor)
        self.conv = self.CONV(in_channels, out_channels, kernel_size, stride=stride,
                              padding=padding, bias=bias)

    @property
    def core(self):
        return self.conv

    @property
    def in_channels(self):
        return self.conv.in_channels

    @property
    def out_channels(self):
        return self.conv.out_channels

    @property
    def kernel_size(self):
        return self.conv.kernel_size

    @property
    def stride(self):
        return self.conv.stride

    @property
    def padding(self):
        return self.conv.padding

    def _expected_shape(self):
        return (self.in_channels, *(("L",) if self.SPATIAL == 1 else ("H", "W")))

    def _op(self, x, weight):
        conv = F.conv1d if self.SPATIAL == 1 else F.conv2d
        return conv(x, weight, stride=self.stride, padding=self.padding)

    def _op_int(self, x, weight):
        return conv_int(x, weight, self.stride, self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, " + super().extra_repr())


class QConv1d(_QConv):
    """Fixed-point ``Conv1d``: the dense contract per output position (zero padding).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding : int or tuple of int
        As for ``nn.Conv1d``; the padding is zeros on both sides (``padding_mode="zeros"``).
    bias : bool
    input_format, weight_format, output_format, bias_width, input_divisor
        As for :class:`QLinear`.

    Members
    -------
    conv : nn.Conv1d
        The float parameters.
    """

    SPATIAL = 1
    CONV = nn.Conv1d


class QConv2d(_QConv):
    """Fixed-point ``Conv2d``; see :class:`QConv1d`.

    Members
    -------
    conv : nn.Conv2d
    """

    SPATIAL = 2
    CONV = nn.Conv2d
