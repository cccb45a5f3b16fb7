"""Post-training quantization of a float ``nn.Sequential`` into a fixed-point network.

A float model (:mod:`torch_bridge.float_model`: Linear and conv layers, BatchNorms in any
placement, pooling, flatten and the activations) becomes its QAT twin
(:func:`qat_from_float`): every stage one QAT module of :mod:`torch_bridge.modules`, with the
parameters and running statistics copied, and formats from
:func:`~torch_bridge.calibrate.calibrate`.
:func:`ptq` exports that twin, so a float model and a QAT model go through one export path.
"""

import copy

from torch import nn

from .activations import QHardtanh, QIdentity, QReLU, QuantInput
from .batchnorm import (
    QBatchNorm1d,
    QBatchNorm2d,
    QBnConv1d,
    QBnConv2d,
    QBnLinear,
    QConv1dBn,
    QConv2dBn,
    QLinearBn1d,
)
from .calibrate import calibrate, calibration_tensor, frac_for_range
from .float_model import SUPPORTED_FLOAT, parse_float
from .pooling import QAvgPool1d, QAvgPool2d, QFlatten, QMaxPool1d, QMaxPool2d
from .qat_spec import flatten, to_spec
from .weighted import QConv1d, QConv2d, QLinear, QWeighted

__all__ = ["SUPPORTED_FLOAT", "parse_float", "frac_for_range", "calibration_tensor",
           "calibrate", "qat_from_float", "ptq", "flatten", "is_qat_model"]

#: The QAT module of a weighted layer: (plain, BatchNorm after, BatchNorm before).
_WEIGHTED = {nn.Linear: (QLinear, QLinearBn1d, QBnLinear),
             nn.Conv1d: (QConv1d, QConv1dBn, QBnConv1d),
             nn.Conv2d: (QConv2d, QConv2dBn, QBnConv2d)}


def is_qat_model(model):
    """Whether a (nested) ``nn.Sequential`` holds torch_bridge QAT modules."""
    qat = (QuantInput, QWeighted, QReLU, QHardtanh, QIdentity, QMaxPool1d, QAvgPool1d, QFlatten)
    return any(isinstance(m, qat) for m in flatten(model))


def _weighted_module(stage, formats):
    core, bn_after, bn_before = stage.module, stage.bn_after, stage.bn_before
    plain, after, before = _WEIGHTED[type(core)]
    bias = core.bias is not None
    geometry = () if isinstance(core, nn.Linear) else (core.kernel_size, core.stride)
    sizes = ((core.in_features, core.out_features) if isinstance(core, nn.Linear)
             else (core.in_channels, core.out_channels))
    if bn_before is not None:
        extra = {"channels": bn_before.num_features} if isinstance(core, nn.Linear) else {}
        module = before(*sizes, *geometry, bias=bias, eps=bn_before.eps,
                        momentum=bn_before.momentum, **extra, **formats)
    else:
        padding = () if isinstance(core, nn.Linear) else (core.padding,)
        cls, bn = (after, {"eps": bn_after.eps, "momentum": bn_after.momentum}) \
            if bn_after is not None else (plain, {})
        module = cls(*sizes, *geometry, *padding, bias=bias, input_divisor=stage.divisor,
                     **bn, **formats)
    module.core.load_state_dict(core.state_dict())
    if bn_after is not None or bn_before is not None:
        module.bn = copy.deepcopy(bn_after if bn_after is not None else bn_before)
    return module


def _activation_module(activation, fmt):
    if isinstance(activation, nn.ReLU):
        return QReLU()
    if isinstance(activation, nn.ReLU6):
        return QHardtanh(0.0, 6.0, fmt=fmt)
    if isinstance(activation, nn.Hardtanh):
        return QHardtanh(activation.min_val, activation.max_val, fmt=fmt)
    return QIdentity()


def qat_from_float(model, formats):
    """The QAT twin of a float model, with its parameters and running statistics copied.

    Parameters
    ----------
    model : nn.Sequential
        A float model (see :func:`~torch_bridge.float_model.parse_float`).
    formats : dict
        As returned by :func:`~torch_bridge.calibrate.calibrate`.

    Returns
    -------
    nn.Sequential
        ``QuantInput``, then one module per stage: a weighted layer and its activation
        (``QReLU``, ``QHardtanh`` or ``QIdentity``), a ``QBatchNorm1d``/``2d`` and its
        activation, ``QMaxPool``, ``QAvgPool`` (without ``fmt`` where it folds into the next
        layer), ``QFlatten``; in eval mode, float32 parameters. A BatchNorm kept as its own
        layer carries the reason as ``export_note``, which :func:`~torch_bridge.qat_spec.to_spec`
        puts in the spec's notes.
    """
    fmt = formats["input_format"]
    modules = [QuantInput(fmt, shape=formats["input_shape"])]
    number = 0
    for stage in parse_float(model, formats["input_shape"]):
        if stage.quantized:
            out = formats["output_formats"][number]
            kwargs = dict(input_format=fmt, output_format=out,
                          bias_width=formats["bias_widths"][number])
            if stage.kind == "weighted":
                modules.append(_weighted_module(
                    stage, dict(weight_format=formats["weight_formats"][number], **kwargs)))
            else:
                bn = stage.module
                cls = QBatchNorm1d if isinstance(bn, nn.BatchNorm1d) else QBatchNorm2d
                module = cls(bn.num_features, scale_format=formats["weight_formats"][number],
                             eps=bn.eps, momentum=bn.momentum, **kwargs)
                module.bn = copy.deepcopy(bn)
                module.export_note = stage.note
                modules.append(module)
            modules.append(_activation_module(stage.activation, out))
            fmt, number = out, number + 1
        elif stage.kind == "flatten":
            modules.append(QFlatten())
        else:
            spatial = len(stage.kernel)
            if stage.kind == "maxpool":
                cls = QMaxPool1d if spatial == 1 else QMaxPool2d
                modules.append(cls(stage.kernel, stage.stride))
            else:
                cls = QAvgPool1d if spatial == 1 else QAvgPool2d
                modules.append(cls(stage.kernel, stage.stride,
                                   fmt=None if stage.folds else fmt))
    return nn.Sequential(*modules).eval()


def ptq(model, calibration=None, *, name="network", metadata=None, **format_options):
    """Post-training quantization of a float model into a :class:`NetworkSpec`.

    Parameters
    ----------
    model : nn.Sequential
        A float model (see :func:`~torch_bridge.float_model.parse_float`).
    calibration : array_like of float, optional
        See :func:`~torch_bridge.calibrate.calibrate`.
    name : str
    metadata : dict, optional
    **format_options
        ``bits``, ``input_bits``, ``input_format``, ``weight_format``, ``output_format``,
        ``bias_width``, ``percentile``, ``input_shape``: see
        :func:`~torch_bridge.calibrate.calibrate`.

    Returns
    -------
    NetworkSpec

    Warns
    -----
    SaturationWarning
        Per layer, if folded weights or biases saturate in the given formats.
    """
    formats = calibrate(model, calibration, **format_options)
    return to_spec(qat_from_float(model, formats), name=name, metadata=metadata)
