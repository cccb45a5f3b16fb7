"""A float ``nn.Sequential`` read into stages: the layers of its QAT twin and of its spec.

A float model is an ``nn.Sequential`` (nested ones are flattened) of the modules in
:data:`SUPPORTED_FLOAT`. ``nn.Dropout`` and ``nn.Identity`` are ignored anywhere (both are the
identity in eval mode). Anything else is an error that names the module, its position among the
flattened modules and what is supported.

Stages (:class:`Stage`), in order:

- ``weighted``: a ``Linear``, ``Conv1d`` or ``Conv2d``, with the BatchNorm directly after it
  (folded back), or the BatchNorm directly before it (folded forward), and the activation after
  them (``ReLU``, ``ReLU6``, ``Hardtanh``);
- ``scale_shift``: a BatchNorm that folds into no neighbour, and its activation;
- ``maxpool``, ``avgpool`` (``AvgPool`` or ``AdaptiveAvgPool(1)``; it *folds* into a dense or
  conv layer directly after it, a ``Flatten`` between allowed), ``flatten``.

Where a BatchNorm goes (:mod:`torch_bridge.fold` has the formulas):

1. directly after a Linear or conv (nothing between): folded into it;
2. otherwise, directly before one (a ``Flatten`` between allowed for a Linear), with nothing
   between it and that layer: folded forward into it; unless that layer is a zero-padded conv
   (it pads after the BatchNorm, so the fold would not be exact at the borders) or has a
   BatchNorm after it too: then rule 3, with a note in the stage (the export summary says it);
3. otherwise: its own scale-and-shift layer.
"""

from dataclasses import dataclass
from math import prod

import torch
from torch import nn

from amaranth_nn.windows import output_spatial

from .fold import (
    bn_affine,
    bn_scale_shift,
    check_bn_statistics,
    check_parameters,
    fold_bn_before,
    fold_modules,
    weighted_parameters,
)
from .qat_spec import flatten, module_names

__all__ = ["SUPPORTED_FLOAT", "Stage", "parse_float", "input_pattern"]

SUPPORTED_FLOAT = ("Linear, Conv1d, Conv2d, BatchNorm1d, BatchNorm2d, MaxPool1d, MaxPool2d, "
                   "AvgPool1d, AvgPool2d, AdaptiveAvgPool1d(1), AdaptiveAvgPool2d(1), Flatten, "
                   "ReLU, ReLU6, Hardtanh, Dropout, Identity")

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardtanh)
_MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d)
_AVG_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)

#: Spatial axes of what a module takes (None: a vector, or any).
_AXES = {nn.Conv1d: 1, nn.Conv2d: 2, nn.BatchNorm2d: 2, nn.MaxPool1d: 1, nn.MaxPool2d: 2,
         nn.AvgPool1d: 1, nn.AvgPool2d: 2, nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2}

_NOTE_PADDED = ("a BatchNorm before a zero-padded conv stays its own scale-and-shift layer (the "
                "conv pads after the BatchNorm, so folding it forward would not be exact at the "
                "borders)")
_NOTE_TWO_BNS = ("a BatchNorm before a layer that has a BatchNorm after it stays its own "
                 "scale-and-shift layer")


@dataclass
class Stage:
    """One layer of a float model's QAT twin (and of its spec).

    Members
    -------
    kind : str
        ``"weighted"``, ``"scale_shift"``, ``"maxpool"``, ``"avgpool"`` or ``"flatten"``.
    module : nn.Module
        The Linear or conv, the BatchNorm of a scale-and-shift layer, the pool, the Flatten.
    index, end : int
        Positions of its first and last module among the flattened modules.
    input_shape, output_shape : tuple of int
        Of a sample, in torch layout.
    bn_before, bn_after : nn.BatchNorm1d or nn.BatchNorm2d or None
        The BatchNorms a weighted stage folds.
    activation : nn.Module or None
    divisor : int
        The window of an average pool that folds into this weighted stage.
    kernel, stride : tuple of int or None
        Of a pool.
    folds : bool
        Whether an average pool folds into the next stage.
    note : str or None
        What the export summary should say about this stage.
    """

    kind: str
    module: nn.Module
    index: int
    end: int
    input_shape: tuple
    output_shape: tuple
    bn_before: nn.Module = None
    bn_after: nn.Module = None
    activation: nn.Module = None
    divisor: int = 1
    kernel: tuple = None
    stride: tuple = None
    folds: bool = False
    note: str = None

    @property
    def where(self):
        return f"module {self.index} ({type(self.module).__name__})"

    @property
    def quantized(self):
        """Whether the stage requantizes (it has formats to choose)."""
        return self.kind in ("weighted", "scale_shift")

    def folded(self):
        """``(W', b')`` in float64 of a weighted stage (its BatchNorm folded, divided by the
        divisor), or ``(a, b)`` of a scale-and-shift stage."""
        if self.kind == "scale_shift":
            bn = self.module
            with torch.no_grad():
                return bn_scale_shift(bn.running_mean, bn.running_var, *bn_affine(bn), bn.eps)
        if self.bn_after is not None:
            weight, bias = fold_modules(self.module, self.bn_after, self.where)
        elif self.bn_before is not None:
            bn, weight = self.bn_before, self.module.weight
            with torch.no_grad():
                weight, bias = fold_bn_before(
                    weight.reshape(weight.shape[0], bn.num_features, -1), self.module.bias,
                    bn.running_mean, bn.running_var, *bn_affine(bn), bn.eps)
            weight = weight.reshape(self.module.weight.shape)
        else:
            with torch.no_grad():
                weight, bias = weighted_parameters(self.module)
        return weight / self.divisor, bias


def _check_module(where, module):
    """Reject modules (and settings of supported modules) that have no spec layer."""
    supported = (_WEIGHTED + _BATCH_NORMS + _ACTIVATIONS + _MAX_POOLS + _AVG_POOLS
                 + (nn.Flatten,))
    if not isinstance(module, supported):
        raise ValueError(f"{where} is not supported; a float model may hold only "
                         f"{SUPPORTED_FLOAT}")
    problem = None
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        if module.groups != 1:
            problem = f"groups={module.groups} (only groups=1 is supported yet)"
        elif any(d != 1 for d in module.dilation):
            problem = f"dilation={module.dilation} (only 1 is supported)"
        elif module.padding_mode != "zeros":
            problem = f"padding_mode={module.padding_mode!r} (only 'zeros' is supported)"
        elif isinstance(module.padding, str):
            problem = f"padding={module.padding!r} (give the padding as numbers)"
    elif isinstance(module, _MAX_POOLS + (nn.AvgPool1d, nn.AvgPool2d)):
        padding = module.padding if isinstance(module.padding, tuple) else (module.padding,)
        if any(padding):
            problem = f"padding={module.padding} (pooling without padding only)"
        elif module.ceil_mode:
            problem = "ceil_mode=True (pooling with floor only)"
        elif isinstance(module, _MAX_POOLS) and any(
                d != 1 for d in (module.dilation if isinstance(module.dilation, tuple)
                                 else (module.dilation,))):
            problem = f"dilation={module.dilation} (only 1 is supported)"
        elif isinstance(module, (nn.AvgPool1d, nn.AvgPool2d)) and (
                getattr(module, "divisor_override", None) is not None):
            problem = "divisor_override (the divisor is the window)"
    elif isinstance(module, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        size = module.output_size if isinstance(module.output_size, tuple) else (
            module.output_size,)
        if any(n != 1 for n in size):
            problem = f"output_size={module.output_size} (only a global average pool, 1)"
    elif isinstance(module, nn.Flatten) and (module.start_dim, module.end_dim) != (1, -1):
        problem = (f"start_dim={module.start_dim}, end_dim={module.end_dim} (only the flatten "
                   f"of each sample, 1 and -1)")
    if problem is not None:
        raise ValueError(f"{where}: {problem} is not supported")


def _pool_geometry(module, shape):
    axes = len(shape) - 1
    if isinstance(module, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        return tuple(shape[1:]), tuple(shape[1:])

    def as_tuple(value):
        return (value,) * axes if isinstance(value, int) else tuple(value)
    kernel = as_tuple(module.kernel_size)
    return kernel, as_tuple(module.stride if module.stride is not None else kernel)


def _output_shape(where, module, shape, previous):
    """Torch sample shape after ``module``, checked against its input ``shape``."""
    kind = type(module).__name__
    if isinstance(module, nn.Linear):
        if len(shape) != 1:
            raise ValueError(f"{where}: its input has shape {shape}; a Linear takes a vector: "
                             f"put a Flatten before it")
        if shape[0] != module.in_features:
            raise ValueError(f"{where}: in_features is {module.in_features}, but the previous "
                             f"layer has {shape[0]} outputs")
        return (module.out_features,)
    axes = _AXES.get(type(module))
    if isinstance(module, nn.BatchNorm1d):
        axes = None if len(shape) == 1 else 1
    if axes is not None and len(shape) != axes + 1:
        expected = "(C, L)" if axes == 1 else "(C, H, W)"
        raise ValueError(f"{where}: it takes inputs of shape {expected}, but its input has "
                         f"shape {shape}")
    if isinstance(module, _BATCH_NORMS):
        if module.num_features != shape[0]:
            source = (f"the {type(previous).__name__} before it has {shape[0]} outputs"
                      if isinstance(previous, _WEIGHTED) else f"its input has {shape[0]} "
                                                              f"channels")
            raise ValueError(f"{where}: {kind} has {module.num_features} features, but "
                             f"{source}")
        return shape
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        if module.in_channels != shape[0]:
            raise ValueError(f"{where}: in_channels is {module.in_channels}, but its input has "
                             f"{shape[0]} channels")
        spatial = output_spatial(shape[1:], module.kernel_size, module.stride, module.padding)
    elif isinstance(module, _MAX_POOLS + _AVG_POOLS):
        kernel, stride = _pool_geometry(module, shape)
        spatial = output_spatial(shape[1:], kernel, stride, (0,) * len(kernel))
    elif isinstance(module, nn.Flatten):
        return (prod(shape),)
    else:
        return shape
    if min(spatial) < 1:
        raise ValueError(f"{where}: its window does not fit its input of shape {shape}")
    out_channels = module.out_channels if isinstance(module, (nn.Conv1d, nn.Conv2d)) else \
        shape[0]
    return (out_channels, *spatial)


def input_pattern(model):
    """The input shape a float model needs, for messages: ``(6,)``, ``(1, "L")``,
    ``(3, "H", "W")``, or None when the first weighted layer does not say."""
    for _, module in _items(model):
        if isinstance(module, nn.Linear):
            return (module.in_features,)
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            return (module.in_channels, *(("L",) if isinstance(module, nn.Conv1d)
                                          else ("H", "W")))
        if isinstance(module, nn.Flatten):
            return None
    return None


def _items(model):
    return [(i, m) for i, m in enumerate(flatten(model))
            if not isinstance(m, (nn.Dropout, nn.Identity))]


def parse_float(model, input_shape=None):
    """Split a float ``nn.Sequential`` into :class:`Stage` objects.

    Parameters
    ----------
    model : nn.Sequential
    input_shape : tuple of int, optional
        A sample's shape in torch layout. Needed unless the model starts with a Linear (or a
        BatchNorm1d of a vector).

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Sequential``.
    ValueError
        For an unsupported module or setting, an activation that follows no weighted layer or
        BatchNorm or another activation, mismatched shapes, an unknown input shape, an average
        pool that can neither fold nor stay a layer, a model without layers, or parameters or
        BatchNorm statistics that are not finite.
    """
    names = module_names(model)
    items = _items(model)
    shape = None if input_shape is None else tuple(input_shape)
    shapes, previous = [], None
    for index, module in items:
        where = f"module {index} ({type(module).__name__})"
        _check_module(where, module)
        if isinstance(module, _WEIGHTED):
            check_parameters(module, where, names[module])
        if shape is None:
            if isinstance(module, nn.Linear):
                shape = (module.in_features,)
            elif isinstance(module, nn.BatchNorm1d):
                shape = (module.num_features,)
            elif not isinstance(module, _ACTIVATIONS):
                raise ValueError(f"{where}: the input shape is unknown; pass calibration data "
                                 f"(or input_shape) of the shape the model takes")
        out = shape if isinstance(module, _ACTIVATIONS) or shape is None else \
            _output_shape(where, module, shape, previous)
        if isinstance(module, _BATCH_NORMS):
            check_bn_statistics(module, where)
        shapes.append((shape, out))
        shape, previous = out, module
    stages = _group(items, shapes)
    if not stages:
        raise ValueError("Model has no layer to export (only Dropout and Identity)")
    return stages


def _group(items, shapes):
    """The stages of the checked modules ``items`` with their ``(input, output)`` shapes."""
    stages, count, i = [], len(items), 0

    def kind_at(j):
        return items[j][1] if j < count else None

    while i < count:
        index, module = items[i]
        where = f"module {index} ({type(module).__name__})"
        shape_in, shape_out = shapes[i]
        if isinstance(module, _WEIGHTED):
            stage = Stage("weighted", module, index, index, shape_in, shape_out)
            if stages and stages[-1].kind == "avgpool" and stages[-1].folds:
                stage.divisor = prod(stages[-1].kernel)
            elif (len(stages) > 1 and stages[-1].kind == "flatten"
                  and stages[-2].kind == "avgpool" and stages[-2].folds):
                stage.divisor = prod(stages[-2].kernel)
            if isinstance(kind_at(i + 1), _BATCH_NORMS):
                i += 1
                stage.bn_after, stage.end = items[i][1], items[i][0]
            i = _take_activation(items, i, stage)
            stages.append(stage)
        elif isinstance(module, _BATCH_NORMS):
            target = _forward_target(items, i)
            note = None
            if target is not None:
                layer = items[target][1]
                if isinstance(layer, (nn.Conv1d, nn.Conv2d)) and any(layer.padding):
                    target, note = None, _NOTE_PADDED
                elif isinstance(kind_at(target + 1), _BATCH_NORMS):
                    target, note = None, _NOTE_TWO_BNS
            if target is not None:
                if target == i + 2:    # a Flatten between
                    stages.append(Stage("flatten", items[i + 1][1], items[i + 1][0],
                                        items[i + 1][0], *shapes[i + 1]))
                stage = Stage("weighted", items[target][1], items[target][0], items[target][0],
                              *shapes[target], bn_before=module)
                i = _take_activation(items, target, stage)
                stages.append(stage)
            else:
                stage = Stage("scale_shift", module, index, index, shape_in, shape_out,
                              note=note)
                i = _take_activation(items, i, stage)
                stages.append(stage)
        elif isinstance(module, _ACTIVATIONS):
            raise ValueError(f"{where}: an activation must follow a Linear or conv (or its "
                             f"BatchNorm), or a BatchNorm, and only one per layer; one after a "
                             f"max pool goes before it (they commute)")
        elif isinstance(module, nn.Flatten):
            if len(shape_in) > 1:
                stages.append(Stage("flatten", module, index, index, shape_in, shape_out))
        else:
            kind = "maxpool" if isinstance(module, _MAX_POOLS) else "avgpool"
            kernel, stride = _pool_geometry(module, shape_in)
            stage = Stage(kind, module, index, index, shape_in, shape_out, kernel=kernel,
                          stride=stride)
            if kind == "avgpool":
                _place_avg_pool(where, items, i, stage)
            stages.append(stage)
        i += 1
    return stages


def _take_activation(items, i, stage):
    """Give ``stage`` the activation after position ``i``, if any; returns the last position
    of the stage."""
    if i + 1 < len(items) and isinstance(items[i + 1][1], _ACTIVATIONS):
        i += 1
        stage.activation, stage.end = items[i][1], items[i][0]
    return i


def _forward_target(items, i):
    """Position of the weighted layer that the module at ``i`` directly precedes (a Flatten
    between allowed for a Linear), or None."""
    after = [m for _, m in items[i + 1:i + 3]]
    if after and isinstance(after[0], _WEIGHTED):
        return i + 1
    if (len(after) == 2 and isinstance(after[0], nn.Flatten)
            and isinstance(after[1], nn.Linear)):
        return i + 2
    return None


def _place_avg_pool(where, items, i, stage):
    """Decide whether an average pool folds into the next layer or stays a layer."""
    target = _forward_target(items, i)
    if target is not None and not (isinstance(items[target][1], (nn.Conv1d, nn.Conv2d))
                                   and any(items[target][1].padding)):
        stage.folds = True
        return
    window = prod(stage.kernel)
    if window & (window - 1):
        raise ValueError(f"{where}: an average pool over {window} positions folds only into a "
                         f"Linear or unpadded conv directly after it (a Flatten between "
                         f"allowed); elsewhere its window must be a power of two")
