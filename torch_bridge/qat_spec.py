"""A QAT model to a :class:`~amaranth_nn.spec.NetworkSpec`: :func:`to_spec`.

A QAT model is an ``nn.Sequential`` (nested ones are flattened) that starts with
:class:`~torch_bridge.activations.QuantInput` (with the input ``shape`` when the model has
convolutions), followed by the modules of :mod:`torch_bridge.modules`, one spec layer each:
dense and conv layers (plain, with a BatchNorm after or before), the scale-and-shift layer,
pooling and flatten. A layer that requantizes may be followed by one activation (``QReLU`` or
``nn.ReLU``, ``QHardtanh``). ``nn.Dropout`` and identities are ignored; ``nn.MaxPool1d/2d``
(no padding) and ``nn.Flatten`` are accepted as they are exact. Every layer's
``input_format`` must be the format of what enters it.

On the way the export changes layouts (:mod:`torch_bridge.layout`): conv weights to
``(out, *kernel, in)``; after a flatten, the next dense layer's weight columns (and a
scale-and-shift layer's scales) from torch's channel-major order to the stream's position-major
order; an average pool without ``fmt`` disappears into the layer after it, whose weights are
spread over the pool's windows. The integers come from the modules' own code
(:meth:`~torch_bridge.weighted.QWeighted.integer_parameters`), so the spec holds exactly what
the eval forward computes with.
"""

import warnings

import numpy as np
import torch
from torch import nn

from amaranth_nn.fixedpoint import Activation, QFormat, signed_width
from amaranth_nn.spec import AvgPool, Conv, Flatten, Layer, MaxPool, NetworkSpec, ScaleShift
from amaranth_nn.spec_fields import SpecError
from amaranth_nn.windows import output_spatial

from .activations import QHardtanh, QIdentity, QReLU, QuantInput
from .batchnorm import QBatchNorm1d, TrainsBatchNorm
from .fold import check_bn_statistics, check_parameters
from .layout import (
    conv_weights,
    pool_into_conv,
    pool_into_dense,
    pooled_shape,
    stream_permutation,
    stream_shape,
)
from .pooling import QAvgPool1d, QMaxPool1d
from .quant import count_saturated
from .weighted import QLinear, QWeighted

__all__ = ["SaturationWarning", "flatten", "module_names", "to_spec", "SUPPORTED_QAT"]

SUPPORTED_QAT = ("QuantInput, QLinear, QLinearBn1d, QBnLinear, QConv1d, QConv1dBn, QBnConv1d, "
                 "QConv2d, QConv2dBn, QBnConv2d, QBatchNorm1d, QBatchNorm2d, QMaxPool1d, "
                 "QMaxPool2d, QAvgPool1d, QAvgPool2d, QFlatten, QReLU, QHardtanh, QIdentity, "
                 "ReLU, MaxPool1d, MaxPool2d, Flatten, Identity and Dropout")

#: What a float module becomes in a QAT model.
_QAT_COUNTERPARTS = {
    nn.Linear: "QLinear, QLinearBn1d or QBnLinear",
    nn.Conv1d: "QConv1d, QConv1dBn or QBnConv1d",
    nn.Conv2d: "QConv2d, QConv2dBn or QBnConv2d",
    nn.BatchNorm1d: "QLinearBn1d or QConv1dBn (after the weights), QBnLinear or QBnConv1d "
                    "(before them) or QBatchNorm1d (alone), which fold it while training",
    nn.BatchNorm2d: "QConv2dBn (after the weights), QBnConv2d (before them) or QBatchNorm2d "
                    "(alone), which fold it while training",
    nn.Hardtanh: "QHardtanh",
    nn.AvgPool1d: "QAvgPool1d", nn.AvgPool2d: "QAvgPool2d",
    nn.AdaptiveAvgPool1d: "QAvgPool1d", nn.AdaptiveAvgPool2d: "QAvgPool2d",
}


def flatten(model):
    """The leaf modules of a (nested) ``nn.Sequential``, in order."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"Model must be an nn.Sequential, not {type(model).__name__}")
    modules = []
    for module in model:
        if isinstance(module, nn.Sequential):
            modules.extend(flatten(module))
        else:
            modules.append(module)
    return modules


def module_names(model):
    """Each module of ``model`` with its name in the model (``"3"``, ``"features.0"``), the
    prefix of its ``state_dict`` keys."""
    return {module: name for name, module in model.named_modules()}


class SaturationWarning(UserWarning):
    """Folded weights or biases do not fit their format and were saturated."""


def _is_max_pool(module):
    if isinstance(module, QMaxPool1d):
        return True
    return (isinstance(module, (nn.MaxPool1d, nn.MaxPool2d)) and not module.ceil_mode
            and not any(np.atleast_1d(module.padding))
            and all(d == 1 for d in np.atleast_1d(module.dilation)))


def _is_flatten(module):
    return isinstance(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1


class _Export:
    """The walk of :func:`to_spec` over a QAT model's modules, one spec layer at a time.

    Members
    -------
    fmt : QFormat
        Format of what flows out of the last module.
    shape : tuple of int or None
        Torch shape of a sample there (None until a first dense layer gives it).
    pending : tuple or None
        ``(where, pool, shape before the pool)`` of an average pool that folds into the next
        layer.
    permutation : numpy.ndarray or None
        After a flatten, the torch index of each stream index of the vector.
    """

    def __init__(self, model):
        self.names = module_names(model)
        modules = [(i, m) for i, m in enumerate(flatten(model))
                   if not isinstance(m, (nn.Dropout, nn.Identity, QIdentity))]
        if not modules or not isinstance(modules[0][1], QuantInput):
            first = (f"module {modules[0][0]} ({type(modules[0][1]).__name__})" if modules
                     else "the model")
            raise ValueError(f"{first}: a QAT model must start with QuantInput (the input "
                             f"format)")
        self.modules = modules[1:]
        self.input_format = self.fmt = modules[0][1].fmt
        self.shape = modules[0][1].shape
        self.pending, self.permutation = None, None
        self.layers, self.notes, self.counts = [], [], {}
        self.activation_slot = None

    def run(self):
        for index, module in self.modules:
            where = f"module {index} ({type(module).__name__})"
            if isinstance(module, (QReLU, nn.ReLU, QHardtanh)):
                self._activation(where, module)
                continue
            self.activation_slot = None
            if isinstance(module, QuantInput):
                raise ValueError(f"{where}: only the first module may be a QuantInput")
            if isinstance(module, QWeighted):
                self._weighted(where, module)
            elif _is_max_pool(module):
                self._pool(where, module, MaxPool)
            elif isinstance(module, QAvgPool1d):
                self._avg_pool(where, module)
            elif _is_flatten(module):
                self._flatten(where)
            elif type(module) in _QAT_COUNTERPARTS:
                raise ValueError(f"{where} is a float module; a QAT model needs "
                                 f"{_QAT_COUNTERPARTS[type(module)]} (or convert a float model "
                                 f"with torch_bridge.convert.ptq)")
            else:
                raise ValueError(f"{where} is not supported; a QAT model may hold only "
                                 f"{SUPPORTED_QAT}")
        if self.pending is not None:
            raise ValueError(f"{self.pending[0]}: an average pool without fmt folds into the "
                             f"dense or conv layer after it, and none follows")
        if not self.layers:
            raise ValueError("Model has no layer to export")
        return self.layers

    # Layers.

    def _add(self, kind, cls, activation_slot=False, **fields):
        number = self.counts.get(kind, 0)
        self.counts[kind] = number + 1
        self.layers.append([cls, {"name": f"{kind}{number}", **fields}])
        if activation_slot:
            self.activation_slot = len(self.layers) - 1

    def _known_shape(self, where):
        if self.shape is None:
            raise ValueError(f"{where}: the input shape is unknown; give it to QuantInput "
                             f"(shape=(C, L) or (C, H, W))")
        return self.shape

    def _activation(self, where, module):
        if self.activation_slot is None:
            raise ValueError(f"{where}: an activation must follow a dense, conv or "
                             f"scale-and-shift layer, and only one per layer")
        if isinstance(module, QHardtanh):
            if module.fmt != self.fmt:
                raise ValueError(f"{where}: format is {module.fmt}, but the layer before it "
                                 f"outputs {self.fmt}")
            activation = Activation.hardtanh(module.lo, module.hi)
        else:
            activation = Activation.relu()
        self.layers[self.activation_slot][1]["activation"] = activation
        self.activation_slot = None

    def _check_format(self, where, module):
        if module.input_format != self.fmt:
            raise ValueError(f"{where}: input_format is {module.input_format}, but its input is "
                             f"in {self.fmt}")

    def _weighted(self, where, module):
        if isinstance(module, TrainsBatchNorm):
            check_bn_statistics(module.bn, where)
        check_parameters(module, where, self.names[module])
        if isinstance(module, QBatchNorm1d):
            return self._scale_shift(where, module)
        self._check_input_shape(where, module)
        self._check_format(where, module)
        divisor = 1 if self.pending is None else self.pending[1].window
        if module.input_divisor != divisor:
            source = "no average pool" if self.pending is None else \
                f"an average pool over {divisor} positions ({self.pending[0]})"
            raise ValueError(f"{where}: its input comes from {source}, so it needs "
                             f"input_divisor={divisor}, not {module.input_divisor}")
        weight, bias = self._integers(where, module)
        w_fmt = module.weight_format
        if isinstance(module, QLinear):
            weight = self._dense_columns(weight)
            self._add("dense", Layer, True, weights=weight)
            self.shape, self.permutation = (module.out_features,), None
        else:
            stride = module.stride
            if self.pending is not None:
                _, pool, _ = self.pending
                if any(module.padding):
                    raise ValueError(f"{where}: an average pool folds only into a conv without "
                                     f"padding; give the pool an fmt (a power-of-two window) "
                                     f"to keep it as its own layer")
                weight = pool_into_conv(weight, pool.kernel_size, pool.stride)
                stride = tuple(s * p for s, p in zip(stride, pool.stride, strict=True))
            spec_shape = stream_shape(self._spec_input_shape())
            self._add("conv", Conv, True, input_shape=spec_shape,
                      weights=conv_weights(torch.from_numpy(weight)).numpy(), stride=stride,
                      padding=module.padding)
            self.shape = (module.out_channels, *self._conv_output(where, module))
        # Folding a pool over overlapping windows sums weights: widen the format to hold them.
        lo, hi = int(min(weight.min(), 0)), int(max(weight.max(), 0))
        if signed_width(lo, hi) > w_fmt.width:
            w_fmt = QFormat(signed_width(lo, hi), w_fmt.frac)
        self.layers[-1][1].update(bias=bias, weight_format=w_fmt,
                                  bias_format=module.bias_format,
                                  output_format=module.output_format)
        self.fmt, self.pending = module.output_format, None

    def _check_input_shape(self, where, module):
        if isinstance(module, QLinear):
            if self.shape is None:
                self.shape = (module.in_features,)
            if len(self.shape) != 1:
                raise ValueError(f"{where}: its input has shape {self.shape}; a Linear takes a "
                                 f"vector: put a QFlatten before it")
            if self.shape[0] != module.in_features:
                raise ValueError(f"{where}: in_features is {module.in_features}, but the "
                                 f"previous layer has {self.shape[0]} outputs")
            return
        shape = self._known_shape(where)
        if len(shape) != module.SPATIAL + 1 or shape[0] != module.in_channels:
            axes = "(C, L)" if module.SPATIAL == 1 else "(C, H, W)"
            raise ValueError(f"{where}: it takes inputs of shape {axes} with C = "
                             f"{module.in_channels}, but its input has shape {shape}")

    def _conv_output(self, where, module):
        """Output positions of a conv on the torch side (the spec layer checks its own)."""
        kernel = module.kernel_size
        out = output_spatial(self.shape[1:], kernel, module.stride, module.padding)
        if min(out) < 1:
            raise ValueError(f"{where}: the kernel {kernel} with padding {module.padding} does "
                             f"not fit its input of shape {self.shape}")
        return out

    def _spec_input_shape(self):
        """Torch shape of what the spec layer sees: before a pool that folds into it."""
        return self.shape if self.pending is None else self.pending[2]

    def _dense_columns(self, weight):
        if self.pending is not None:
            _, pool, shape = self.pending
            weight = pool_into_dense(weight, shape, pool.kernel_size, pool.stride)
        if self.permutation is not None:
            weight = weight[:, self.permutation]
        return weight

    def _integers(self, where, module):
        number = len(self.layers)
        kind = "scale_shift" if isinstance(module, QBatchNorm1d) else (
            "dense" if isinstance(module, QLinear) else "conv")
        with torch.no_grad():
            weight, bias = module.folded()
            _warn_saturation(f"layer {number} ('{kind}{self.counts.get(kind, 0)}')", weight,
                             bias, module)
            try:
                return tuple(t.numpy() for t in module.integer_parameters())
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None

    def _scale_shift(self, where, module):
        if self.shape is None and module.BN is nn.BatchNorm1d:
            self.shape = (module.num_features,)
        shape = self._known_shape(where)
        self._check_format(where, module)
        if self.pending is not None:
            raise ValueError(f"{self.pending[0]}: an average pool without fmt folds into the "
                             f"dense or conv layer after it, not into {where}")
        dims = (1, 2) if module.BN is nn.BatchNorm1d else (3,)
        if len(shape) not in dims or shape[0] != module.num_features:
            raise ValueError(f"{where}: num_features is {module.num_features}, but its input has "
                             f"shape {shape}")
        scale, bias = self._integers(where, module)
        scale = scale.reshape(-1)
        if self.permutation is not None:
            scale, bias = scale[self.permutation], bias[self.permutation]
        self._add("scale_shift", ScaleShift, True, input_shape=stream_shape(shape), scale=scale,
                  bias=bias, scale_format=module.scale_format, bias_format=module.bias_format,
                  output_format=module.output_format)
        self.fmt = module.output_format
        note = getattr(module, "export_note", None)
        if note:
            self.notes.append(f"layer {len(self.layers) - 1} "
                              f"('{self.layers[-1][1]['name']}'): {note}")

    def _pool_input(self, where, module):
        shape = self._known_shape(where)
        axes = module.SPATIAL if hasattr(module, "SPATIAL") else (
            1 if isinstance(module, nn.MaxPool1d) else 2)
        if len(shape) != axes + 1:
            expected = "(C, L)" if axes == 1 else "(C, H, W)"
            raise ValueError(f"{where}: it pools inputs of shape {expected}, but its input has "
                             f"shape {shape}")
        if self.pending is not None:
            raise ValueError(f"{self.pending[0]}: an average pool without fmt folds into the "
                             f"dense or conv layer after it, not into {where}")
        return shape

    def _pool(self, where, module, cls):
        shape = self._pool_input(where, module)
        axes = len(shape) - 1
        kernel, stride = _geometry(module, axes)
        self._add(cls.kind, cls, input_shape=stream_shape(shape), kernel=kernel, stride=stride)
        self.shape = pooled_shape(shape, kernel, stride)

    def _avg_pool(self, where, module):
        if not module.folds:
            if module.fmt != self.fmt:
                raise ValueError(f"{where}: fmt is {module.fmt}, but its input is in {self.fmt}")
            return self._pool(where, module, AvgPool)
        shape = self._pool_input(where, module)
        self.pending = (where, module, shape)
        self.shape = pooled_shape(shape, module.kernel_size, module.stride)

    def _flatten(self, where):
        shape = self._known_shape(where)
        if len(shape) == 1:
            return                      # a vector stays a vector
        spec_shape = self._spec_input_shape()
        self._add("flatten", Flatten, input_shape=stream_shape(spec_shape))
        self.permutation = stream_permutation(spec_shape)
        self.shape = (int(np.prod(shape)),)


def _geometry(module, axes):
    """``(kernel, stride)`` tuples of a pooling module."""
    def as_tuple(value):
        return (value,) * axes if isinstance(value, int) else tuple(value)
    kernel = as_tuple(module.kernel_size)
    return kernel, as_tuple(module.stride if module.stride is not None else kernel)


def to_spec(model, *, name="network", metadata=None):
    """Export a QAT model (see the module docstring) to a :class:`NetworkSpec`.

    Layers are named by kind and number: ``conv0``, ``maxpool0``, ``flatten0``, ``dense0``,
    ``dense1``, ...

    Parameters
    ----------
    model : nn.Sequential
    name : str
    metadata : dict, optional
        Stored in the spec, with ``"producer": "torch_bridge"`` added, and ``"notes"``: what
        the export decided that a user should know (a BatchNorm kept as its own layer).

    Returns
    -------
    NetworkSpec

    Raises
    ------
    ValueError
        For an unsupported module, a misplaced activation or pool, mismatched shapes or
        formats, BatchNorm statistics that are not finite, or parameters that are not finite
        (naming the module and the parameter's ``state_dict`` key).

    Warns
    -----
    SaturationWarning
        One per layer whose folded weights or biases saturate, with the counts.
    """
    walk = _Export(model)
    layers = []
    for cls, fields in walk.run():
        if cls in (Layer, Conv, ScaleShift):
            fields.setdefault("activation", Activation.identity())
        try:
            layers.append(cls(**fields))
        except SpecError as error:
            raise ValueError(str(error)) from None
    metadata = {"producer": "torch_bridge", **(metadata or {})}
    if walk.notes:
        metadata["notes"] = walk.notes
    return NetworkSpec(walk.input_format, layers, name=name, metadata=metadata)


def _warn_saturation(where, weight, bias, module):
    parts = []
    scales = isinstance(module, QBatchNorm1d)
    for what, values, fmt in (("scales" if scales else "weights", weight, module.weight_format),
                              ("biases", bias, module.bias_format)):
        if not bool(torch.isfinite(values).all()):
            continue  # reported as an error by the quantizer
        count = count_saturated(values, fmt)
        if count:
            parts.append(f"{count} of {values.numel()} {what} saturated in {fmt} (range "
                         f"[{fmt.min * fmt.lsb:g}, {fmt.max * fmt.lsb:g}], folded values in "
                         f"[{float(values.min()):.6g}, {float(values.max()):.6g}])")
    if parts:
        warnings.warn(f"{where}: " + "; ".join(parts), SaturationWarning, stacklevel=5)
