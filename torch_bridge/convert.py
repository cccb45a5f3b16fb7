"""Post-training quantization of a float ``nn.Sequential`` into a fixed-point network.

A float model is an ``nn.Sequential`` (nested ones are flattened) of ``nn.Linear``, optionally
followed by ``nn.BatchNorm1d``, optionally followed by one activation: ``nn.ReLU``,
``nn.Hardtanh`` or ``nn.Identity``. ``nn.Dropout`` is accepted anywhere and ignored (it is the
identity in eval mode). Anything else is an error that names the module.

:func:`qat_from_float` turns it into the equivalent QAT model (:mod:`torch_bridge.modules`),
copying parameters and running statistics; :func:`ptq` exports that to a spec. So a float
model and a QAT model go through one export path.

Format rule (when a format is not given)
----------------------------------------
For a width ``W`` and real values spanning ``[lo, hi]``, the format is ``Q(W, F)`` with the
largest ``F`` at which no value saturates: ``round_half_even(lo * 2**F) >= -2**(W-1)`` and
``round_half_even(hi * 2**F) <= 2**(W-1) - 1``. All-zero values get ``F = W - 1``.

- input format: the calibration inputs;
- weight format of each layer: its folded weights ``W'`` (no calibration needed);
- output format of each layer: the float model's outputs of that layer *after its activation*
  on the calibration inputs (after a ReLU only ``[0, max]`` matters: saturating a negative
  value before the ReLU changes nothing). With ``percentile=P`` below 100 the range is the
  ``100-P``-th to ``P``-th percentile instead of min to max, so rare outliers saturate and the
  common values get finer steps (useful at 4 bits, and in QAT, which learns around it);
- bias width: the smallest width that holds every folded bias at the accumulator scale
  ``2**-(Fx+Fw)`` (at least 2).
"""

import copy
import math

import numpy as np
import torch
from torch import nn

from amaranth_nn.fixedpoint import MAX_WIDTH, QFormat, signed_width

from .fold import check_bn_statistics, check_parameters, fold_modules, linear_parameters
from .modules import QHardtanh, QIdentity, QLinear, QLinearBn1d, QReLU, QuantInput, _QDense
from .qat_spec import flatten, module_names, to_spec
from .quant import check_finite, check_format

__all__ = ["FloatLayer", "parse_float", "frac_for_range", "calibration_tensor", "calibrate",
           "qat_from_float", "ptq", "flatten", "is_qat_model"]

SUPPORTED_FLOAT = "Linear, BatchNorm1d, ReLU, Hardtanh, Identity, Dropout"


def is_qat_model(model):
    """Whether a (nested) ``nn.Sequential`` holds torch_bridge QAT modules."""
    return any(isinstance(m, (QuantInput, _QDense, QReLU, QHardtanh, QIdentity))
               for m in flatten(model))


class FloatLayer:
    """One dense layer of a float model: a Linear, an optional BatchNorm1d, an activation.

    Members
    -------
    linear : nn.Linear
    bn : nn.BatchNorm1d or None
    activation : nn.Module or None
        ``nn.ReLU``, ``nn.Hardtanh``, ``nn.Identity`` or ``None``.
    index : int
        Position of the Linear among the flattened modules.
    """

    def __init__(self, linear, index):
        self.linear, self.index, self.bn, self.activation = linear, index, None, None

    def folded(self):
        """``(W', b')`` in float64 (folded with the running statistics if there is a BN)."""
        where = f"module {self.index} (Linear)"
        if self.bn is not None:
            return fold_modules(self.linear, self.bn, where)
        with torch.no_grad():
            return linear_parameters(self.linear)


def parse_float(model):
    """Split a float ``nn.Sequential`` into :class:`FloatLayer` objects.

    Raises
    ------
    TypeError
        If ``model`` is not an ``nn.Sequential``.
    ValueError
        For an unsupported module, a BatchNorm1d that does not directly follow a Linear, an
        activation that follows no Linear or another activation, mismatched sizes, a model
        without Linear layers, or parameters or BatchNorm statistics that are not finite.
    """
    layers, size = [], None
    names = module_names(model)
    for index, module in enumerate(flatten(model)):
        name = f"module {index} ({type(module).__name__})"
        if isinstance(module, nn.Dropout):
            continue
        if isinstance(module, nn.Linear):
            if size is not None and module.in_features != size:
                raise ValueError(f"{name}: in_features is {module.in_features}, but the "
                                 f"previous layer has {size} outputs")
            check_parameters(module, name, names[module])
            layers.append(FloatLayer(module, index))
            size = module.out_features
        elif isinstance(module, nn.BatchNorm1d):
            if not layers or layers[-1].bn is not None or layers[-1].activation is not None:
                raise ValueError(f"{name}: BatchNorm1d must directly follow a Linear layer "
                                 f"(it is folded into it)")
            if module.num_features != size:
                raise ValueError(f"{name}: BatchNorm1d has {module.num_features} features, "
                                 f"but the Linear before it has {size} outputs")
            check_bn_statistics(module, name)
            layers[-1].bn = module
        elif isinstance(module, (nn.ReLU, nn.Hardtanh, nn.Identity)):
            if not layers or layers[-1].activation is not None:
                raise ValueError(f"{name}: an activation must follow a Linear (or its "
                                 f"BatchNorm1d), and only one per layer")
            layers[-1].activation = module
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            raise ValueError(f"{name} is not supported; only BatchNorm1d folds into a Linear")
        else:
            raise ValueError(f"{name} is not supported; a float model may hold only "
                             f"{SUPPORTED_FLOAT}")
    if not layers:
        raise ValueError("Model has no Linear layer")
    return layers


def frac_for_range(lo, hi, width):
    """Largest ``F`` such that ``Q(width, F)`` holds ``[lo, hi]`` without saturating.

    See the module docstring for the rule.
    """
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"Cannot choose a format for the range [{lo}, {hi}]: not finite")
    magnitude = max(abs(lo), abs(hi))
    if magnitude == 0:
        return width - 1
    frac = width - 1 - math.frexp(magnitude)[1] + 2   # one above any frac that can fit
    lo_q, hi_q = -(1 << (width - 1)), (1 << (width - 1)) - 1
    # Python's round() is round half to even, as the quantizer; scaling by 2**F is exact.
    while not (round(lo * 2.0 ** frac) >= lo_q and round(hi * 2.0 ** frac) <= hi_q):
        frac -= 1
    return frac


def _check_width_argument(value, what):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an integer from 2 to {MAX_WIDTH}, not {value!r}")
    if not 2 <= value <= MAX_WIDTH:
        raise ValueError(f"{what} must be an integer from 2 to {MAX_WIDTH}, not {value}")
    return value


def calibration_tensor(calibration, size):
    """Calibration inputs as a float64 tensor of shape (batch, size).

    Raises
    ------
    ValueError
        If they are not real numbers, have another shape or no row, or are not finite.
    """
    if isinstance(calibration, torch.Tensor):
        calibration = calibration.detach().cpu().numpy()
    try:
        array = np.asarray(calibration)
    except ValueError as error:
        raise ValueError(f"Calibration data must be a (batch, {size}) array: {error}") from None
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer)
                                   or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"Calibration data must hold real numbers, not {array.dtype}")
    x = torch.from_numpy(array.astype(np.float64))
    if x.dim() != 2 or x.shape[1] != size:
        raise ValueError(f"Calibration data must have shape (batch, {size}), not "
                         f"{tuple(x.shape)}")
    if x.shape[0] < 1:
        raise ValueError("Calibration data holds no samples")
    check_finite(x, "calibration data")
    return x


def _format_list(value, count, what):
    if value is None:
        return [None] * count
    if isinstance(value, (list, tuple)) and value and not isinstance(value[0], int):
        if len(value) != count:
            raise ValueError(f"{what} lists {len(value)} formats, but the model has {count} "
                             f"layers")
        return [check_format(v, what) for v in value]
    return [check_format(value, what)] * count


def calibrate(model, calibration=None, *, bits=8, input_bits=None, input_format=None,
              weight_format=None, output_format=None, bias_width=None, percentile=100.0):
    """Choose every format of a float model; given formats are kept.

    Parameters
    ----------
    model : nn.Sequential
        A float model (see :func:`parse_float`).
    calibration : array_like of float, shape (batch, in_features), optional
        Inputs the formats must hold. Needed unless ``input_format`` and ``output_format``
        are given.
    bits : int
        Width of the weight and output formats that are chosen.
    input_bits : int or None
        Width of a chosen input format (default ``bits``).
    input_format : QFormat or (width, frac), optional
    weight_format, output_format : QFormat, (width, frac) or a list of them, optional
        One format for every layer, or one per layer.
    bias_width : int or list of int, optional
    percentile : float
        Output formats hold the layer outputs from the ``100 - percentile`` to the
        ``percentile`` percentile (default 100: minimum to maximum); larger values saturate.

    Returns
    -------
    dict
        ``input_format`` and per-layer lists ``weight_formats``, ``output_formats`` and
        ``bias_widths``.

    Raises
    ------
    TypeError
        If a width is not an integer or ``percentile`` is not a number.
    ValueError
        If a width is not from 2 to 62, ``percentile`` is not in (50, 100], a format must be
        calibrated and no calibration data was given, the calibration data is not numeric,
        has the wrong shape or is not finite, or a chosen bias needs more than 62 bits; and
        everything :func:`parse_float` raises.
    """
    layers = parse_float(model)
    if not isinstance(percentile, (int, float)) or isinstance(percentile, bool):
        raise TypeError(f"Percentile must be a number in (50, 100], not {percentile!r}")
    if not 50 < percentile <= 100:
        raise ValueError(f"Percentile must be in (50, 100], not {percentile}")
    _check_width_argument(bits, "Bits")
    if input_bits is not None:
        _check_width_argument(input_bits, "Input bits")
    count = len(layers)
    weight_formats = _format_list(weight_format, count, "Weight format")
    output_formats = _format_list(output_format, count, "Output format")
    if isinstance(bias_width, (list, tuple)):
        if len(bias_width) != count:
            raise ValueError(f"Bias width lists {len(bias_width)} widths, but the model has "
                             f"{count} layers")
        bias_widths = list(bias_width)
    else:
        bias_widths = [bias_width] * count
    for index, width in enumerate(bias_widths):
        if width is not None:
            _check_width_argument(width, f"Bias width of layer {index}")
    if input_format is not None:
        input_format = check_format(input_format, "Input format")
    need = input_format is None or any(f is None for f in output_formats)
    if need and calibration is None:
        raise ValueError("Input and output formats need calibration data: pass calibration "
                         "inputs (--calibration X.npy) or give every format")
    if calibration is not None:
        x = calibration_tensor(calibration, layers[0].linear.in_features)
        if input_format is None:
            input_format = QFormat(input_bits or bits, frac_for_range(
                float(x.min()), float(x.max()), input_bits or bits))
    folded = [layer.folded() for layer in layers]
    for index, (weight, _) in enumerate(folded):
        if weight_formats[index] is None:
            weight_formats[index] = QFormat(bits, frac_for_range(
                float(weight.min()), float(weight.max()), bits))
    if any(f is None for f in output_formats):
        h = x
        for index, (layer, (weight, bias)) in enumerate(zip(layers, folded, strict=True)):
            h = h @ weight.T + bias
            h = _float_activation(layer.activation, h)
            if output_formats[index] is None:
                lo, hi = _range(h, percentile)
                output_formats[index] = QFormat(bits, frac_for_range(lo, hi, bits))
    fx = input_format
    for index, (_, bias) in enumerate(folded):
        if bias_widths[index] is None:
            frac = fx.frac + weight_formats[index].frac
            q = torch.round(bias * 2.0 ** frac)
            width = max(2, _signed_width(int(q.min()), int(q.max())))
            if width > MAX_WIDTH:
                raise ValueError(f"module {layers[index].index} (Linear): its bias needs {width} "
                                 f"bits at the accumulator scale 2**-{frac} (input frac "
                                 f"{fx.frac} + weight frac {weight_formats[index].frac}), more "
                                 f"than {MAX_WIDTH}; choose fewer bits or narrower formats")
            bias_widths[index] = width
        fx = output_formats[index]
    return {"input_format": input_format, "weight_formats": weight_formats,
            "output_formats": output_formats, "bias_widths": bias_widths}


def _range(values, percentile):
    if percentile >= 100:
        return float(values.min()), float(values.max())
    q = torch.tensor([1 - percentile / 100, percentile / 100], dtype=torch.float64)
    lo, hi = torch.quantile(values.flatten(), q)
    return float(lo), float(hi)


def _signed_width(lo, hi):
    return signed_width(min(lo, 0), max(hi, 0))


def _float_activation(module, h):
    if isinstance(module, nn.ReLU):
        return torch.relu(h)
    if isinstance(module, nn.Hardtanh):
        return torch.clamp(h, module.min_val, module.max_val)
    return h


def qat_from_float(model, formats):
    """The QAT twin of a float model, with its parameters and running statistics copied.

    Parameters
    ----------
    model : nn.Sequential
        A float model (see :func:`parse_float`).
    formats : dict
        As returned by :func:`calibrate`.

    Returns
    -------
    nn.Sequential
        ``QuantInput``, then per layer ``QLinear`` or ``QLinearBn1d`` and its activation
        (``QReLU``, ``QHardtanh`` or ``QIdentity``), in eval mode, float32 parameters.
    """
    layers = parse_float(model)
    fmt = formats["input_format"]
    modules = [QuantInput(fmt)]
    for index, layer in enumerate(layers):
        linear = layer.linear
        kwargs = dict(input_format=fmt, weight_format=formats["weight_formats"][index],
                      output_format=formats["output_formats"][index],
                      bias_width=formats["bias_widths"][index])
        has_bias = linear.bias is not None
        if layer.bn is not None:
            dense = QLinearBn1d(linear.in_features, linear.out_features, has_bias,
                                eps=layer.bn.eps, momentum=layer.bn.momentum, **kwargs)
            dense.bn = copy.deepcopy(layer.bn)
        else:
            dense = QLinear(linear.in_features, linear.out_features, has_bias, **kwargs)
        dense.linear.load_state_dict(linear.state_dict())
        modules.append(dense)
        fmt = formats["output_formats"][index]
        if isinstance(layer.activation, nn.ReLU):
            modules.append(QReLU())
        elif isinstance(layer.activation, nn.Hardtanh):
            modules.append(QHardtanh(layer.activation.min_val, layer.activation.max_val,
                                     fmt=fmt))
        else:
            modules.append(QIdentity())
    return nn.Sequential(*modules).eval()


def ptq(model, calibration=None, *, name="network", metadata=None, **format_options):
    """Post-training quantization of a float model into a :class:`NetworkSpec`.

    Parameters
    ----------
    model : nn.Sequential
        A float model (see :func:`parse_float`).
    calibration : array_like of float, optional
        See :func:`calibrate`.
    name : str
    metadata : dict, optional
    **format_options
        ``bits``, ``input_bits``, ``input_format``, ``weight_format``, ``output_format``,
        ``bias_width``: see :func:`calibrate`.

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
