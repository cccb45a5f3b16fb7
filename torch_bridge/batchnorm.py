"""QAT modules that train with a BatchNorm folded the way the export folds it.

Every forward folds the BatchNorm (:mod:`torch_bridge.fold`, float64) and fake-quantizes the
*folded* parameters, so the trained layer is the deployed layer:

- BN **after** the weights: :class:`QLinearBn1d`, :class:`QConv1dBn`, :class:`QConv2dBn`
  (``W' = s W``, ``b' = s (b - mu) + beta``);
- BN **before** the weights: :class:`QBnLinear`, :class:`QBnConv1d`, :class:`QBnConv2d`
  (``W' = W diag(s)``, ``b' = b + W t``; a conv without padding only);
- BN **alone**: :class:`QBatchNorm1d`, :class:`QBatchNorm2d`, the scale-and-shift layer
  ``y = requantize(a_c x + b_c)``.

In training, ``mu`` and ``var`` are the batch statistics of what the BatchNorm normalizes (the
layer's output after, its input before, biased variance as ``BatchNorm`` normalizes with;
gradients flow through them) and the running statistics are updated exactly as ``BatchNorm``
does (unbiased variance, ``momentum``; ``None`` is a cumulative average). In eval, and in
training after :meth:`~TrainsBatchNorm.freeze_bn`, the running statistics are used. This is the
scheme of Jacob et al. 2018 (section 3.2), ``torch.ao.nn.intrinsic.qat.ConvBn1d`` and QKeras'
``QConv2DBatchnorm``. The ``bn`` member (an ``nn.BatchNorm1d`` or ``2d``) holds ``gamma``,
``beta`` and the statistics; its own forward is never run. A batch of one sample in training
is an error (no batch variance).
"""

import torch
from torch import nn

from .fold import bn_affine, bn_scale_shift, fold_bn_after, fold_bn_before, weighted_parameters
from .quant import check_format
from .weighted import QConv1d, QConv2d, QLinear, QWeighted, check_positive, per_channel

__all__ = ["TrainsBatchNorm", "QLinearBn1d", "QConv1dBn", "QConv2dBn", "QBnLinear", "QBnConv1d",
           "QBnConv2d", "QBatchNorm1d", "QBatchNorm2d"]

#: The BatchNorm of each number of spatial axes.
_BATCH_NORMS = {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


class TrainsBatchNorm:
    """A module with a BatchNorm whose statistics it computes itself (a mixin).

    Members
    -------
    bn : nn.BatchNorm1d or nn.BatchNorm2d
    bn_frozen : bool
        Whether training uses (and no longer updates) the running statistics.
    """

    def _init_bn(self, bn_class, features, eps, momentum):
        self.bn = bn_class(features, eps=eps, momentum=momentum)
        self.bn_frozen = False

    def freeze_bn(self, frozen=True):
        """Use the running statistics in training too (and stop updating them)."""
        self.bn_frozen = bool(frozen)
        return self

    def _statistics(self, values):
        """``(mean, var)`` per channel: of ``values`` (a callable giving the ``(batch, C, ...)``
        tensor the BatchNorm normalizes) in training, updating the running statistics; the
        running statistics in eval, when frozen, or when ``values`` is None."""
        bn = self.bn
        if values is None or not self.training or self.bn_frozen:
            return bn.running_mean, bn.running_var
        values = values()
        if values.shape[0] < 2:
            raise ValueError(f"{type(self).__name__} needs more than 1 sample per batch in "
                             f"training (batch statistics), got {values.shape[0]}")
        axes = [0, *range(2, values.dim())]
        mean, var = values.mean(dim=axes), values.var(dim=axes, unbiased=False)
        count = values.numel() // values.shape[1]
        with torch.no_grad():
            bn.num_batches_tracked += 1
            factor = (1.0 / float(bn.num_batches_tracked) if bn.momentum is None
                      else bn.momentum)
            unbiased = var.detach() * count / (count - 1)
            bn.running_mean.mul_(1 - factor).add_(mean.detach().to(bn.running_mean.dtype),
                                                  alpha=factor)
            bn.running_var.mul_(1 - factor).add_(unbiased.to(bn.running_var.dtype),
                                                 alpha=factor)
        return mean, var

    def _bn_extra_repr(self):
        return f", bn_frozen={self.bn_frozen}"


class _BnAfter(TrainsBatchNorm):
    """Fold a BatchNorm over the output channels into the weights before it."""

    def _fold(self, x):
        weight, bias = weighted_parameters(self.core)

        def outputs():
            y = self._op(x, weight)
            return y + per_channel(bias, y)

        mean, var = self._statistics(None if x is None else outputs)
        # The parameters again (not ``weight``): their gradients through the statistics and
        # through the fold are then added in float32, as they always were.
        return fold_bn_after(self.core.weight, self.core.bias, mean, var, *bn_affine(self.bn),
                             self.bn.eps, conv=self.SPATIAL > 0)

    def extra_repr(self):
        return super().extra_repr() + self._bn_extra_repr()


class QLinearBn1d(_BnAfter, QLinear):
    """Fused fixed-point ``Linear -> BatchNorm1d`` that trains on its folded parameters.

    Parameters
    ----------
    in_features, out_features, bias, input_format, weight_format, output_format, bias_width
        As for :class:`~torch_bridge.weighted.QLinear`.
    eps : float
    momentum : float or None
        As for ``BatchNorm1d``; ``None`` is a cumulative average.

    Members
    -------
    linear : nn.Linear
    bn : nn.BatchNorm1d
        Holds ``gamma``, ``beta`` and the running statistics; its own forward is never run.
    bn_frozen : bool
    """

    def __init__(self, in_features, out_features, bias=True, *, input_format, weight_format,
                 output_format, bias_width=None, input_divisor=1, eps=1e-5, momentum=0.1):
        super().__init__(in_features, out_features, bias, input_format=input_format,
                         weight_format=weight_format, output_format=output_format,
                         bias_width=bias_width, input_divisor=input_divisor)
        self._init_bn(nn.BatchNorm1d, out_features, eps, momentum)


class _ConvBnAfter(_BnAfter):
    """The constructor of a conv followed by a BatchNorm."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 *, input_format, weight_format, output_format, bias_width=None,
                 input_divisor=1, eps=1e-5, momentum=0.1):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias,
                         input_format=input_format, weight_format=weight_format,
                         output_format=output_format, bias_width=bias_width,
                         input_divisor=input_divisor)
        self._init_bn(_BATCH_NORMS[self.SPATIAL], out_channels, eps, momentum)


class QConv1dBn(_ConvBnAfter, QConv1d):
    """Fused fixed-point ``Conv1d -> BatchNorm1d`` that trains on its folded parameters.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, bias
        As for :class:`~torch_bridge.weighted.QConv1d`.
    input_format, weight_format, output_format, bias_width, input_divisor, eps, momentum
        As for :class:`QLinearBn1d`.

    Members
    -------
    conv : nn.Conv1d
    bn : nn.BatchNorm1d
    """


class QConv2dBn(_ConvBnAfter, QConv2d):
    """Fused fixed-point ``Conv2d -> BatchNorm2d``; see :class:`QConv1dBn`.

    Members
    -------
    conv : nn.Conv2d
    bn : nn.BatchNorm2d
    """


class _BnBefore(TrainsBatchNorm):
    """Fold a BatchNorm over the input channels into the weights after it."""

    def _fold(self, x):
        channels = self.bn.num_features
        mean, var = self._statistics(None if x is None else
                                     lambda: x.reshape(x.shape[0], channels, -1))
        weight = self.core.weight
        folded, bias = fold_bn_before(weight.reshape(weight.shape[0], channels, -1),
                                      self.core.bias, mean, var, *bn_affine(self.bn),
                                      self.bn.eps)
        return folded.reshape(weight.shape), bias

    def extra_repr(self):
        return super().extra_repr() + self._bn_extra_repr()


class QBnLinear(_BnBefore, QLinear):
    """Fused fixed-point ``BatchNorm1d -> Linear`` that trains on its folded parameters.

    Parameters
    ----------
    in_features, out_features, bias, input_format, weight_format, output_format, bias_width
        As for :class:`~torch_bridge.weighted.QLinear`; ``input_format`` is the format of what
        enters the BatchNorm.
    channels : int, optional
        The BatchNorm's features (default ``in_features``). For ``BatchNorm1d(C) -> Flatten ->
        Linear(C * L, ...)`` (a model puts this module after the flatten) it is ``C``: input
        ``c * L + l`` belongs to channel ``c``.
    eps, momentum
        As for ``BatchNorm1d``.

    Members
    -------
    linear : nn.Linear
    bn : nn.BatchNorm1d
    """

    def __init__(self, in_features, out_features, bias=True, *, input_format, weight_format,
                 output_format, bias_width=None, channels=None, eps=1e-5, momentum=0.1):
        super().__init__(in_features, out_features, bias, input_format=input_format,
                         weight_format=weight_format, output_format=output_format,
                         bias_width=bias_width)
        channels = in_features if channels is None else check_positive(channels, "Channels")
        if in_features % channels:
            raise ValueError(f"In features ({in_features}) must be a multiple of the channels "
                             f"of the BatchNorm ({channels})")
        self._init_bn(nn.BatchNorm1d, channels, eps, momentum)


class _ConvBnBefore(_BnBefore):
    """The constructor of a conv (without padding) after a BatchNorm."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, bias=True, *,
                 input_format, weight_format, output_format, bias_width=None, eps=1e-5,
                 momentum=0.1):
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, bias,
                         input_format=input_format, weight_format=weight_format,
                         output_format=output_format, bias_width=bias_width)
        self._init_bn(_BATCH_NORMS[self.SPATIAL], in_channels, eps, momentum)


class QBnConv1d(_ConvBnBefore, QConv1d):
    """Fused fixed-point ``BatchNorm1d -> Conv1d`` (no padding) that trains on its folded
    parameters.

    A zero-padded convolution pads after the BatchNorm, so no fold is exact at its borders: use
    :class:`QBatchNorm1d` then :class:`~torch_bridge.weighted.QConv1d` there.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, bias
        As for :class:`~torch_bridge.weighted.QConv1d` (no ``padding``).
    input_format, weight_format, output_format, bias_width, eps, momentum
        As for :class:`QBnLinear`.

    Members
    -------
    conv : nn.Conv1d
    bn : nn.BatchNorm1d
    """


class QBnConv2d(_ConvBnBefore, QConv2d):
    """Fused fixed-point ``BatchNorm2d -> Conv2d`` (no padding); see :class:`QBnConv1d`."""


class QBatchNorm1d(TrainsBatchNorm, QWeighted):
    """A BatchNorm that folds into no neighbour: the scale-and-shift layer, trained as a BN.

    ``y = requantize(a_c * x + b_c)`` with ``a = gamma / sqrt(var + eps)`` rounded to
    ``scale_format`` and ``b = beta - mu * a`` to the accumulator scale ``2**-(Fx+Fa)``.

    Parameters
    ----------
    num_features : int
    input_format : QFormat or (width, frac)
    scale_format : QFormat or (width, frac)
    output_format : QFormat or (width, frac)
    bias_width : int or None
        Default ``input width + scale width + 8`` (at most 62).
    eps, momentum
        As for ``BatchNorm1d``.

    Members
    -------
    bn : nn.BatchNorm1d
    scale_format, bias_format, output_format : QFormat
    """

    BN = nn.BatchNorm1d

    def __init__(self, num_features, *, input_format, scale_format, output_format,
                 bias_width=None, eps=1e-5, momentum=0.1):
        check_positive(num_features, "Num features")
        super().__init__(input_format, check_format(scale_format, "Scale format"),
                         output_format, bias_width, 1)
        self._init_bn(self.BN, num_features, eps, momentum)

    @property
    def scale_format(self):
        return self.weight_format

    @property
    def core(self):
        return self.bn

    @property
    def num_features(self):
        return self.bn.num_features

    def _check_input(self, x):
        dims = (2, 3) if self.BN is nn.BatchNorm1d else (4,)
        if x.dim() not in dims or x.shape[1] != self.num_features:
            shapes = {2: "(batch, C)", 3: "(batch, C, L)", 4: "(batch, C, H, W)"}
            expected = " or ".join(shapes[d] for d in dims).replace("C", str(self.num_features))
            raise ValueError(f"{type(self).__name__} expects inputs of shape {expected}, not "
                             f"{tuple(x.shape)}")

    def _fold(self, x):
        mean, var = self._statistics(None if x is None else lambda: x)
        scale, shift = bn_scale_shift(mean, var, *bn_affine(self.bn), self.bn.eps)
        return scale.reshape(-1, 1), shift

    def _op(self, x, scale):
        return x * per_channel(scale, x)

    _op_int = _op

    def extra_repr(self):
        return (f"{self.num_features}, input_format={self.input_format}, scale_format="
                f"{self.scale_format}, bias_format={self.bias_format}, output_format="
                f"{self.output_format}" + self._bn_extra_repr())


class QBatchNorm2d(QBatchNorm1d):
    """The scale-and-shift layer of a ``BatchNorm2d``; see :class:`QBatchNorm1d`."""

    BN = nn.BatchNorm2d

