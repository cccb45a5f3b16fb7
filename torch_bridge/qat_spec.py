"""A QAT model to a :class:`~amaranth_nn.spec.NetworkSpec`: :func:`to_spec`.

A QAT model is an ``nn.Sequential`` (nested ones are flattened) that starts with
:class:`~torch_bridge.modules.QuantInput`, followed by dense layers (``QLinear`` or
``QLinearBn1d``), each optionally followed by one activation (``QReLU`` or ``nn.ReLU``,
``QHardtanh``, ``QIdentity`` or ``nn.Identity``). ``nn.Dropout`` is ignored. Every dense
layer's ``input_format`` must be the format of what enters it. The exported integers are
computed by the modules' own code (:meth:`~torch_bridge.modules.QLinear.integer_parameters`),
so the spec holds exactly what the eval forward computes with.
"""

import warnings

import torch
from torch import nn

from amaranth_nn.fixedpoint import Activation
from amaranth_nn.spec import Layer, NetworkSpec

from .fold import check_bn_statistics, check_parameters
from .modules import QHardtanh, QIdentity, QLinearBn1d, QReLU, QuantInput, _QDense
from .quant import count_saturated

__all__ = ["SaturationWarning", "flatten", "module_names", "to_spec"]


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


def _parse_qat(model):
    """``(input_format, [(dense, activation, index)])`` of a QAT model, validated."""
    modules = [(i, m) for i, m in enumerate(flatten(model)) if not isinstance(m, nn.Dropout)]
    if not modules or not isinstance(modules[0][1], QuantInput):
        first = f"module {modules[0][0]} ({type(modules[0][1]).__name__})" if modules else \
            "the model"
        raise ValueError(f"{first}: a QAT model must start with QuantInput (the input "
                         f"format)")
    fmt = modules[0][1].fmt
    layers, size = [], None
    for index, module in modules[1:]:
        name = f"module {index} ({type(module).__name__})"
        if isinstance(module, _QDense):
            if size is not None and module.in_features != size:
                raise ValueError(f"{name}: in_features is {module.in_features}, but the "
                                 f"previous layer has {size} outputs")
            if module.input_format != fmt:
                raise ValueError(f"{name}: input_format is {module.input_format}, but its "
                                 f"input is in {fmt}")
            layers.append([module, None, index])
            fmt, size = module.output_format, module.out_features
        elif isinstance(module, (QReLU, nn.ReLU, QHardtanh, QIdentity, nn.Identity)):
            if not layers or layers[-1][1] is not None:
                raise ValueError(f"{name}: an activation must follow a dense layer, and only "
                                 f"one per layer")
            if isinstance(module, QHardtanh) and module.fmt != fmt:
                raise ValueError(f"{name}: format is {module.fmt}, but the layer before it "
                                 f"outputs {fmt}")
            layers[-1][1] = _activation(module)
        elif isinstance(module, nn.BatchNorm1d):
            raise ValueError(f"{name}: BatchNorm1d must directly follow a Linear; in a QAT "
                             f"model use QLinearBn1d, which folds it while training")
        elif isinstance(module, (nn.Linear, nn.Hardtanh)):
            raise ValueError(f"{name} is a float module; a QAT model needs QLinear, "
                             f"QLinearBn1d or QHardtanh (or convert a float model with "
                             f"torch_bridge.convert.ptq)")
        else:
            raise ValueError(f"{name} is not supported; a QAT model may hold only QuantInput, "
                             f"QLinear, QLinearBn1d, QReLU, QHardtanh, QIdentity, ReLU, "
                             f"Identity and Dropout")
    if not layers:
        raise ValueError("Model has no dense layer")
    return modules[0][1].fmt, [tuple(layer) for layer in layers]


def _activation(module):
    if isinstance(module, (QReLU, nn.ReLU)):
        return Activation.relu()
    if isinstance(module, QHardtanh):
        return Activation.hardtanh(module.lo, module.hi)
    return Activation.identity()


def to_spec(model, *, name="network", metadata=None):
    """Export a QAT model (see the module docstring) to a :class:`NetworkSpec`.

    Layers are named ``dense0``, ``dense1``, ... in order.

    Parameters
    ----------
    model : nn.Sequential
    name : str
    metadata : dict, optional
        Stored in the spec, with ``"producer": "torch_bridge"`` added.

    Returns
    -------
    NetworkSpec

    Raises
    ------
    ValueError
        For an unsupported module, a misplaced BatchNorm1d or activation, mismatched sizes or
        formats, BatchNorm statistics that are not finite, or parameters that are not finite
        (naming the module and the parameter's ``state_dict`` key).

    Warns
    -----
    SaturationWarning
        One per layer whose folded weights or biases saturate, with the counts.
    """
    input_format, parsed = _parse_qat(model)
    names = module_names(model)
    layers = []
    for number, (dense, activation, index) in enumerate(parsed):
        where = f"module {index} ({type(dense).__name__})"
        if isinstance(dense, QLinearBn1d):
            check_bn_statistics(dense.bn, where)
        check_parameters(dense, where, names[dense])
        with torch.no_grad():
            weight, bias = dense.folded()
            _warn_saturation(f"layer {number} ('dense{number}')", weight, bias, dense)
            try:
                w_int, b_int = (t.numpy() for t in dense.integer_parameters())
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None
        layers.append(Layer(f"dense{number}", w_int, b_int, dense.weight_format,
                            dense.bias_format, dense.output_format,
                            activation or Activation.identity()))
    metadata = {"producer": "torch_bridge", **(metadata or {})}
    return NetworkSpec(input_format, layers, name=name, metadata=metadata)


def _warn_saturation(where, weight, bias, dense):
    parts = []
    for what, values, fmt in (("weights", weight, dense.weight_format),
                              ("biases", bias, dense.bias_format)):
        if not bool(torch.isfinite(values).all()):
            continue  # reported as an error by the quantizer
        count = count_saturated(values, fmt)
        if count:
            parts.append(f"{count} of {values.numel()} {what} saturated in {fmt} (range "
                         f"[{fmt.min * fmt.lsb:g}, {fmt.max * fmt.lsb:g}], folded values in "
                         f"[{float(values.min()):.6g}, {float(values.max()):.6g}])")
    if parts:
        warnings.warn(f"{where}: " + "; ".join(parts), SaturationWarning, stacklevel=4)
