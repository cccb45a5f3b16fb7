"""Fake quantization with a straight-through estimator, in float64.

Every function here mirrors one step of the numeric contract (``docs/numerics.md``) on
torch tensors, so that a QAT model computes, in its forward, the integers that the exported
spec holds:

- :func:`to_grid`: ``clamp(round_half_to_even(v * 2**F), min, max)``, the integers of a
  :class:`~amaranth_nn.fixedpoint.QFormat`, returned as float64 tensors holding integers;
- :func:`fake_quantize`: the same integers scaled back to real values (``q * 2**-F``);
- :func:`requantize_grid`: ``clamp(floor(v + 1/2), min, max)`` for ``v = acc * 2**-s``, the
  round-half-up requantization of an accumulator.

Gradients (straight-through estimator)
--------------------------------------
Rounding is treated as the identity in the backward pass: ``d round(v) / dv = 1``. Saturation
is not: where the *rounded* integer lies outside the format's range, it is clamped and the
gradient is zero (the "clipped" STE of Bengio et al. 2013, as QKeras' ``quantized_relu`` and
Brevitas' clamps do). A value that rounds onto a bound keeps gradient 1. Consequences:

- an activation that saturates stops passing gradient to the layers below it for that sample,
  so the loss cannot push it further out of range, and the layers before it are not trained
  on a value the hardware does not compute;
- a (folded) weight or bias that saturates gets no gradient through its own value. It can
  still move back into range through the other parameters that make it up (for a fused
  Linear+BatchNorm1d, ``gamma``, the running variance and the linear weight).

All arithmetic is float64: scaling by ``2**F`` is exact, and every integer below ``2**53`` is
exact, so the grid values equal the integers :func:`amaranth_nn.fixedpoint.quantize`
computes with numpy.
"""

import torch

from amaranth_nn.fixedpoint import QFormat

__all__ = ["check_format", "non_finite", "check_finite", "round_ste", "floor_half_up_ste",
           "to_grid", "fake_quantize", "requantize_grid", "quantize_int", "count_saturated",
           "FLOAT64_EXACT_BITS"]

#: Integers of magnitude below ``2**FLOAT64_EXACT_BITS`` are exact in float64.
FLOAT64_EXACT_BITS = 53


def check_format(fmt, what):
    """Return ``fmt`` if it is a :class:`QFormat`; accept a ``(width, frac)`` pair too.

    Raises
    ------
    TypeError
        If ``fmt`` is neither.
    """
    if isinstance(fmt, QFormat):
        return fmt
    if isinstance(fmt, (tuple, list)) and len(fmt) == 2:
        return QFormat(*fmt)
    raise TypeError(f"{what} must be a QFormat or a (width, frac) pair, not {fmt!r}")


def non_finite(values):
    """The first NaN or infinite entry of a tensor, as ``(value, where)``, or None.

    ``where`` is ``" at index 3"`` or ``" at index (1, 0)"`` (empty for a scalar).
    """
    values = values.detach()
    bad = ~torch.isfinite(values)
    if not bool(bad.any()):
        return None
    index = tuple(int(i) for i in torch.nonzero(bad)[0])
    where = f" at index {index[0] if len(index) == 1 else index}" if index else ""
    return float(values[index]), where


def check_finite(values, what):
    """Raise a ValueError naming ``what`` and the first index if ``values`` is not finite."""
    found = non_finite(values)
    if found is not None:
        value, where = found
        raise ValueError(f"Cannot quantize {what}: value {value}{where} is not finite")


def round_ste(v):
    """Round half to even; the gradient is the identity."""
    return v + (torch.round(v) - v).detach()


def floor_half_up_ste(v):
    """``floor(v + 1/2)`` (round half up); the gradient is the identity."""
    return v + (torch.floor(v + 0.5) - v).detach()


def to_grid(values, fmt, what="values"):
    """Integers of ``fmt`` for real ``values``, as a float64 tensor (round half even, clamp).

    Parameters
    ----------
    values : torch.Tensor
        Real values; converted to float64.
    fmt : QFormat
        Target format.
    what : str
        Named in the error message.

    Raises
    ------
    ValueError
        If any value is NaN or infinite.
    """
    values = values.to(torch.float64)
    check_finite(values.detach(), what)
    return torch.clamp(round_ste(values * 2.0 ** fmt.frac), fmt.min, fmt.max)


def fake_quantize(values, fmt, what="values"):
    """Real ``values`` rounded and saturated to ``fmt``, as float64 reals ``q * 2**-F``."""
    return to_grid(values, fmt, what) * 2.0 ** -fmt.frac


def requantize_grid(scaled, fmt):
    """``clamp(floor(scaled + 1/2), fmt.min, fmt.max)``: requantization of ``acc * 2**-s``.

    ``scaled`` must hold ``acc * 2**-s`` exactly; see :mod:`torch_bridge.modules` for when
    float64 guarantees that.
    """
    return torch.clamp(floor_half_up_ste(scaled), fmt.min, fmt.max)


def quantize_int(values, fmt, what="values"):
    """Integers of ``fmt`` for real ``values``, as an int64 tensor (no gradient)."""
    with torch.no_grad():
        return to_grid(values, fmt, what).to(torch.int64)


def count_saturated(values, fmt):
    """How many of ``values`` fall outside ``fmt`` after rounding (and so saturate)."""
    with torch.no_grad():
        scaled = torch.round(values.to(torch.float64) * 2.0 ** fmt.frac)
        return int(((scaled < fmt.min) | (scaled > fmt.max)).sum())
