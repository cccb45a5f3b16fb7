"""Formats for a float model from calibration data: :func:`calibrate`.

Format rule (when a format is not given)
----------------------------------------
For a width ``W`` and real values spanning ``[lo, hi]``, the format is ``Q(W, F)`` with the
largest ``F`` at which no value saturates: ``round_half_even(lo * 2**F) >= -2**(W-1)`` and
``round_half_even(hi * 2**F) <= 2**(W-1) - 1``. All-zero values get ``F = W - 1``.

- input format: the calibration inputs;
- weight format of each layer: its folded weights ``W'`` (no calibration needed); the scale
  format of a scale-and-shift layer: its scales ``a``;
- output format of each layer: the float model's outputs of that layer *after its activation*
  on the calibration inputs (after a ReLU only ``[0, max]`` matters: saturating a negative
  value before the ReLU changes nothing). With ``percentile=P`` below 100 the range is the
  ``100-P``-th to ``P``-th percentile instead of min to max, so rare outliers saturate and the
  common values get finer steps (useful at 4 bits, and in QAT, which learns around it);
- bias width: the smallest width that holds every folded bias at the accumulator scale
  ``2**-(Fx+Fw)`` (at least 2).

"Layers" here are the stages that requantize (:mod:`torch_bridge.float_model`): dense and conv
layers and scale-and-shift layers, in order; pooling and flatten keep the format they get.
"""

import copy
import math

import numpy as np
import torch

from amaranth_nn.fixedpoint import MAX_WIDTH, QFormat, signed_width

from .float_model import input_pattern, parse_float
from .qat_spec import flatten
from .quant import check_finite, check_format

__all__ = ["frac_for_range", "calibration_tensor", "calibrate", "float_outputs"]


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


def _format_list(value, count, what):
    if value is None:
        return [None] * count
    if isinstance(value, (list, tuple)) and value and not isinstance(value[0], int):
        if len(value) != count:
            raise ValueError(f"{what} lists {len(value)} formats, but the model has {count} "
                             f"layers")
        return [check_format(v, what) for v in value]
    return [check_format(value, what)] * count


def _range(values, percentile):
    if percentile >= 100:
        return float(values.min()), float(values.max())
    q = torch.tensor([1 - percentile / 100, percentile / 100], dtype=torch.float64)
    lo, hi = torch.quantile(values.flatten(), q)
    return float(lo), float(hi)


def _signed_width(lo, hi):
    return signed_width(min(lo, 0), max(hi, 0))


def calibration_tensor(calibration, pattern):
    """Calibration inputs as a float64 tensor of shape ``(batch, *pattern)``.

    Parameters
    ----------
    calibration : array_like of float
    pattern : int or tuple or None
        The sample shape the model takes: an int or tuple of ints, where a string stands for any
        size (``(1, "L")``); None accepts any shape.

    Raises
    ------
    ValueError
        If they are not real numbers, have another shape or no row, or are not finite.
    """
    if isinstance(calibration, torch.Tensor):
        calibration = calibration.detach().cpu().numpy()
    pattern = (pattern,) if isinstance(pattern, int) else pattern
    try:
        array = np.asarray(calibration)
    except ValueError as error:
        raise ValueError(f"Calibration data must be a (batch, {', '.join(map(str, pattern))}) "
                         f"array: {error}") from None
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer)
                                   or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"Calibration data must hold real numbers, not {array.dtype}")
    x = torch.from_numpy(array.astype(np.float64))
    if pattern is not None and (x.dim() != len(pattern) + 1 or any(
            isinstance(want, int) and got != want
            for got, want in zip(x.shape[1:], pattern, strict=True))):
        raise ValueError(f"Calibration data must have shape (batch, "
                         f"{', '.join(map(str, pattern))}), not {tuple(x.shape)}")
    if x.shape[0] < 1:
        raise ValueError("Calibration data holds no samples")
    check_finite(x, "calibration data")
    return x


def float_outputs(model, x):
    """The float model's output after each of its (flattened) modules, in float64 and eval
    mode, by position."""
    modules = flatten(copy.deepcopy(model).double().eval())
    outputs = {}
    with torch.no_grad():
        for index, module in enumerate(modules):
            x = module(x)
            outputs[index] = x
    return outputs


def calibrate(model, calibration=None, *, bits=8, input_bits=None, input_format=None,
              weight_format=None, output_format=None, bias_width=None, percentile=100.0,
              input_shape=None):
    """Choose every format of a float model; given formats are kept.

    Parameters
    ----------
    model : nn.Sequential
        A float model (see :func:`~torch_bridge.float_model.parse_float`).
    calibration : array_like of float, shape (batch, *sample shape), optional
        Inputs the formats must hold, in torch layout (``(batch, C, L)`` for a Conv1d model).
        Needed unless ``input_format`` and ``output_format`` are given.
    bits : int
        Width of the weight and output formats that are chosen.
    input_bits : int or None
        Width of a chosen input format (default ``bits``).
    input_format : QFormat or (width, frac), optional
    weight_format, output_format : QFormat, (width, frac) or a list of them, optional
        One format for every layer, or one per layer (weight format: the scale format of a
        scale-and-shift layer).
    bias_width : int or list of int, optional
    percentile : float
        Output formats hold the layer outputs from the ``100 - percentile`` to the
        ``percentile`` percentile (default 100: minimum to maximum); larger values saturate.
    input_shape : tuple of int, optional
        A sample's shape in torch layout, when no calibration data gives it (a model that
        starts with a conv).

    Returns
    -------
    dict
        ``input_format``, ``input_shape`` and per-layer lists ``weight_formats``,
        ``output_formats`` and ``bias_widths``.

    Raises
    ------
    TypeError
        If a width is not an integer or ``percentile`` is not a number.
    ValueError
        If a width is not from 2 to 62, ``percentile`` is not in (50, 100], a format must be
        calibrated and no calibration data was given, the calibration data is not numeric,
        has the wrong shape or is not finite, or a chosen bias needs more than 62 bits; and
        everything :func:`~torch_bridge.float_model.parse_float` raises.
    """
    if not isinstance(percentile, (int, float)) or isinstance(percentile, bool):
        raise TypeError(f"Percentile must be a number in (50, 100], not {percentile!r}")
    if not 50 < percentile <= 100:
        raise ValueError(f"Percentile must be in (50, 100], not {percentile}")
    _check_width_argument(bits, "Bits")
    if input_bits is not None:
        _check_width_argument(input_bits, "Input bits")
    x = None
    if calibration is not None:
        x = calibration_tensor(calibration, input_pattern(model))
        input_shape = tuple(x.shape[1:])
    every = parse_float(model, input_shape)
    stages = [stage for stage in every if stage.quantized]
    count = len(stages)
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
    if need and x is None:
        raise ValueError("Input and output formats need calibration data: pass calibration "
                         "inputs (--calibration X.npy) or give every format")
    if input_format is None:
        width = input_bits or bits
        input_format = QFormat(width, frac_for_range(float(x.min()), float(x.max()), width))
    folded = [stage.folded() for stage in stages]
    for index, (weight, _) in enumerate(folded):
        if weight_formats[index] is None:
            weight_formats[index] = QFormat(bits, frac_for_range(
                float(weight.min()), float(weight.max()), bits))
    if any(f is None for f in output_formats):
        outputs = float_outputs(model, x)
        for index, stage in enumerate(stages):
            if output_formats[index] is None:
                lo, hi = _range(outputs[stage.end], percentile)
                output_formats[index] = QFormat(bits, frac_for_range(lo, hi, bits))
    fx = input_format
    for index, (_, bias) in enumerate(folded):
        if bias_widths[index] is None:
            frac = fx.frac + weight_formats[index].frac
            q = torch.round(bias * 2.0 ** frac)
            width = max(2, _signed_width(int(q.min()), int(q.max())))
            if width > MAX_WIDTH:
                raise ValueError(f"{stages[index].where}: its bias needs {width} bits at the "
                                 f"accumulator scale 2**-{frac} (input frac {fx.frac} + weight "
                                 f"frac {weight_formats[index].frac}), more than {MAX_WIDTH}; "
                                 f"choose fewer bits or narrower formats")
            bias_widths[index] = width
        fx = output_formats[index]
    return {"input_format": input_format, "input_shape": every[0].input_shape,
            "weight_formats": weight_formats, "output_formats": output_formats,
            "bias_widths": bias_widths}
