"""The layer kinds of a network spec, each a frozen value that checks its own fields.

=============== ================ ========================================================
kind            class            computes (``docs/numerics.md``)
=============== ================ ========================================================
``dense``       :class:`Layer`   ``y = act(requantize(W @ x + b))``
``conv``        :class:`Conv`    the dense contract per output position, over its window
``maxpool``     :class:`MaxPool` the largest integer of each window, per channel
``avgpool``     :class:`AvgPool` the window sum, requantized by ``log2(window)`` (a
                                 power-of-two window), into the input format
``flatten``     :class:`Flatten` nothing: the stream passes through as one vector
``scale_shift`` :class:`ScaleShift` ``y = act(requantize(a_c * x + b_c))`` per channel
=============== ================ ========================================================

Shapes are in stream order (:mod:`amaranth_nn.windows`): ``(N,)`` is a vector, ``(L, C)`` a
1-D sequence of ``L`` positions of ``C`` channels, ``(H, W, C)`` a 2-D grid; the flattened
(row-major) index of a shape is its index in the stream. A layer knows its input shape and
computes its output shape; :class:`~amaranth_nn.spec.NetworkSpec` checks that they chain, and
gives each layer its input format and range.
"""

from dataclasses import dataclass, field
from math import prod

import numpy as np

from .fixedpoint import Activation, QFormat, rounding_constant, signed_width
from .spec_fields import (
    SpecError,
    activation_from_dict,
    check_activation_bounds,
    check_fields,
    check_format_fields,
    check_range,
    format_from_dict,
    integer_array,
    is_int,
    positive_ints,
)
from .windows import output_spatial

__all__ = ["SpecLayer", "Layer", "Dense", "Conv", "MaxPool", "AvgPool", "Flatten",
           "ScaleShift", "KINDS", "layer_from_dict", "shape_text"]


def shape_text(shape):
    """``"20x8"`` for the shape ``(20, 8)``."""
    return "x".join(str(n) for n in shape)


class SpecLayer:
    """What every layer kind has.

    Members
    -------
    kind : str
        ``"dense"``, ``"conv"``, ``"maxpool"``, ``"avgpool"``, ``"flatten"`` or
        ``"scale_shift"``.
    name : str
    input_shape, output_shape : tuple of int
        In stream order.
    """

    kind = None

    @property
    def input_size(self):
        """Integers per input vector, the product of :attr:`input_shape`."""
        return prod(self.input_shape)

    @property
    def output_size(self):
        """Integers per output vector, the product of :attr:`output_shape`."""
        return prod(self.output_shape)

    @property
    def requantizes(self):
        """Whether the layer multiplies and requantizes (dense, conv, scale_shift)."""
        return False

    def output_format_for(self, input_format):
        """Format of the outputs for inputs of ``input_format`` (the same, unless it
        requantizes)."""
        return input_format

    def output_range_for(self, input_range):
        """Inclusive ``(lo, hi)`` of the outputs for inputs in ``input_range``."""
        return input_range

    def to_dict(self):
        return {"kind": self.kind, "name": self.name, "input_shape": list(self.input_shape),
                **self._fields_to_dict()}

    def _fields_to_dict(self):
        return {}

    def _where(self):
        return f"layer {self.name!r}"


def _freeze(layer, **arrays):
    """Store int64, read-only copies of integer arrays on a frozen dataclass."""
    for name, array in arrays.items():
        array = np.asarray(array).astype(np.int64)
        array.flags.writeable = False
        object.__setattr__(layer, name, array)


def _stream_shape(where, value, *, spatial=False):
    """An input shape: positive integers; with ``spatial``, (L, C) or (H, W, C)."""
    shape = positive_ints(where, "input_shape", value)
    if spatial and len(shape) not in (2, 3):
        raise SpecError(where, "input_shape", f"must be (L, C) or (H, W, C) (positions and "
                                              f"channels), not {list(shape)}")
    return shape


def _matrix_range(matrix, bias, x_lo, x_hi):
    """Exact bounds of ``matrix @ x + bias`` over all ``x`` in ``[x_lo, x_hi]`` (Python ints)."""
    w = matrix.astype(object)
    at_lo, at_hi = w * int(x_lo), w * int(x_hi)
    bias = bias.astype(object)
    hi = np.maximum(at_lo, at_hi).sum(axis=1) + bias
    lo = np.minimum(at_lo, at_hi).sum(axis=1) + bias
    return int(lo.min()), int(hi.max())


class _Requantizing(SpecLayer):
    """A layer that multiplies by integers of ``multiplier_format``, adds a bias at the
    accumulator scale and requantizes to ``output_format``, then activates."""

    #: The attribute holding the format of the multipliers (weights or scales).
    MULTIPLIER = "weight_format"

    @property
    def requantizes(self):
        return True

    @property
    def multiplier_format(self):
        return getattr(self, self.MULTIPLIER)

    @property
    def input_frac(self):
        """Fractional bits of the layer's input, implied by the bias scale."""
        return self.bias_format.frac - self.multiplier_format.frac

    @property
    def shift(self):
        """Requantization shift ``s = Fx + Fw - Fy``."""
        return self.bias_format.frac - self.output_format.frac

    @property
    def rounding(self):
        """The rounding constant requantization adds, ``2**(shift-1)`` (0 when ``shift <= 0``)."""
        return rounding_constant(self.shift)

    @property
    def output_range(self):
        """Inclusive ``(lo, hi)`` of the layer's outputs, after the activation."""
        return self.activation.output_range(self.output_format)

    def output_format_for(self, input_format):
        return self.output_format

    def output_range_for(self, input_range):
        return self.output_range

    def accumulator_range(self, x_lo, x_hi):
        """Exact bounds of the accumulator over all inputs in ``[x_lo, x_hi]``.

        Computed from the actual integers with Python ints, so an accumulator sized from it
        can never overflow.

        Returns
        -------
        (int, int)
            The smallest and largest accumulator value of any output.
        """
        return _matrix_range(self.multiplier_matrix, self.bias, x_lo, x_hi)

    def accumulator_width(self, x_lo, x_hi):
        """Signed width of the accumulator for inputs in ``[x_lo, x_hi]``."""
        return signed_width(*self.accumulator_range(x_lo, x_hi))

    def _check_numbers(self, where, multipliers, multiplier_shape):
        """Check the multipliers and bias against their shapes and formats; store them."""
        name = "scale" if self.MULTIPLIER == "scale_format" else "weights"
        multipliers = integer_array(where, name, multipliers, multiplier_shape)
        bias = integer_array(where, "bias", self.bias, (multiplier_shape[0],))
        check_range(where, name, multipliers, self.multiplier_format)
        check_range(where, "bias", bias, self.bias_format)
        check_activation_bounds(where, self.activation, self.output_format)
        _freeze(self, **{name: multipliers, "bias": bias})

    def _format_fields(self):
        return {self.MULTIPLIER: getattr(self, self.MULTIPLIER).to_dict(),
                "bias_format": self.bias_format.to_dict(),
                "output_format": self.output_format.to_dict(),
                "activation": self.activation.to_dict()}

    @staticmethod
    def _formats_from_dict(where, data, multiplier="weight_format"):
        formats = {key: format_from_dict(where, key, data[key])
                   for key in (multiplier, "bias_format", "output_format")}
        return formats, activation_from_dict(where, data["activation"])


_FORMAT_FIELDS = ("weight_format", "bias_format", "output_format", "activation")


@dataclass(frozen=True, eq=False)
class Layer(_Requantizing):
    """One fixed-point dense layer: ``y = act(requantize(W @ x + b))``.

    Its input is a vector; after a conv or pooling layer, a :class:`Flatten` comes first, and
    column ``i`` of the weights multiplies element ``i`` of the stream (position-major).

    Parameters
    ----------
    name : str
        Unique name within the network; errors name it.
    weights : array_like of int, shape (out_features, in_features)
        Weight integers of ``weight_format``.
    bias : array_like of int, shape (out_features,)
        Bias integers of ``bias_format``, at the accumulator scale ``2**-(Fx+Fw)``.
    weight_format, bias_format, output_format : QFormat
        ``bias_format.frac`` must equal the input's ``frac`` plus ``weight_format.frac``.
    activation : Activation
        Applied to the requantized output.

    Raises
    ------
    SpecError
        Naming the layer and field, for any shape, type or range problem.
    """

    name: str
    weights: np.ndarray
    bias: np.ndarray
    weight_format: QFormat
    bias_format: QFormat
    output_format: QFormat
    activation: Activation = field(default_factory=Activation.identity)

    kind = "dense"

    def __post_init__(self):
        where = self._where()
        check_format_fields(where, self, ("weight_format", "bias_format", "output_format"))
        try:
            shape = np.shape(self.weights)
        except ValueError:  # ragged nested lists
            shape = None
        if shape is None or len(shape) != 2:
            raise SpecError(where, "weights", "expected a 2-D array of integers "
                                              "(out_features x in_features)")
        if shape[0] < 1 or shape[1] < 1:
            raise SpecError(where, "weights", f"expected at least one row and one column, "
                                              f"got shape {shape}")
        self._check_numbers(where, self.weights, shape)

    @property
    def in_features(self):
        return self.weights.shape[1]

    @property
    def out_features(self):
        return self.weights.shape[0]

    @property
    def input_shape(self):
        return (self.in_features,)

    @property
    def output_shape(self):
        return (self.out_features,)

    @property
    def multiplier_matrix(self):
        """The weights, ``(out_features, in_features)``."""
        return self.weights

    def _fields_to_dict(self):
        return {"out_features": self.out_features, **self._format_fields(),
                "weights": self.weights.tolist(), "bias": self.bias.tolist()}

    @classmethod
    def from_dict(cls, data, where="layer"):
        """Build a layer from :meth:`to_dict` output, or from a layer of a version 1 file
        (without ``kind``, see :meth:`from_v1_dict`); errors are located at ``where``."""
        if isinstance(data, dict) and "kind" not in data:
            return cls.from_v1_dict(data, where)
        where = check_fields(where, data, ("kind", "name", "input_shape", "out_features",
                                           *_FORMAT_FIELDS, "weights", "bias"))
        (n_in,) = _vector_shape(where, data["input_shape"])
        return cls._build(where, data, n_in)

    @classmethod
    def from_v1_dict(cls, data, where="layer"):
        """Build a layer from a dense layer of a version 1 spec (``in_features`` for the
        input)."""
        where = check_fields(where, data, ("name", "in_features", "out_features",
                                           *_FORMAT_FIELDS, "weights", "bias"))
        return cls._build(where, data, _count(where, "in_features", data["in_features"]))

    @classmethod
    def _build(cls, where, data, n_in):
        n_out = _count(where, "out_features", data["out_features"])
        formats, activation = cls._formats_from_dict(where, data)
        weights = integer_array(where, "weights", data["weights"], (n_out, n_in))
        bias = integer_array(where, "bias", data["bias"], (n_out,))
        try:
            return cls(data["name"], weights, bias, activation=activation, **formats)
        except SpecError as error:
            raise error.at(where) from None


#: The dense layer under the name of its kind.
Dense = Layer


def _count(where, name, value):
    if not is_int(value) or value < 1:
        raise SpecError(where, name, f"must be a positive integer, not {value!r}")
    return int(value)


def _vector_shape(where, value):
    shape = _stream_shape(where, value)
    if len(shape) != 1:
        raise SpecError(where, "input_shape", f"must be [N]: a dense layer takes a vector, not "
                                              f"{list(shape)}")
    return shape


class _Windowed(SpecLayer):
    """A layer that slides a window over the positions: conv and pooling."""

    @property
    def spatial_in(self):
        """Input positions along each axis: ``(L,)`` or ``(H, W)``."""
        return self.input_shape[:-1]

    @property
    def spatial_out(self):
        """Output positions along each axis."""
        return output_spatial(self.spatial_in, self.kernel, self.stride, self.padding)

    @property
    def positions_out(self):
        """Output positions, the product of :attr:`spatial_out`."""
        return prod(self.spatial_out)

    @property
    def window(self):
        """Positions per window, the product of the kernel."""
        return prod(self.kernel)

    @property
    def output_shape(self):
        return (*self.spatial_out, self.output_channels)

    def _check_window(self, where, kernel, stride, padding):
        """Check stride and padding against the kernel and the input; returns them as tuples."""
        axes = len(self.spatial_in)
        stride = positive_ints(where, "stride", stride, axes)
        padding = positive_ints(where, "padding", padding, axes, minimum=0)
        if any(p >= k for p, k in zip(padding, kernel, strict=True)):
            raise SpecError(where, "padding", f"must be smaller than the kernel in every axis, "
                                              f"not {list(padding)} for the kernel "
                                              f"{list(kernel)}")
        if any(n + 2 * p < k for n, k, p in zip(self.spatial_in, kernel, padding, strict=True)):
            raise SpecError(where, "kernel", f"{list(kernel)} does not fit the input positions "
                                             f"{list(self.spatial_in)} with padding "
                                             f"{list(padding)}")
        return stride, padding

    def _window_fields(self):
        return {"kernel": list(self.kernel), "stride": list(self.stride)}


@dataclass(frozen=True, eq=False)
class Conv(_Windowed, _Requantizing):
    """A fixed-point convolution, 1-D or 2-D: the dense contract per output position.

    Output position ``o`` computes ``acc_c = sum_k W[c, k] x_window(o)[k] + b_c`` over its
    window in window order (:mod:`amaranth_nn.windows`; zero padding is the integer 0), then
    ``y = act(requantize(acc))``. The outputs stream position by position, each position's
    ``out_channels`` together.

    Parameters
    ----------
    name : str
    input_shape : tuple of int
        ``(L, C_in)`` or ``(H, W, C_in)``.
    weights : array_like of int, shape (out_channels, *kernel, C_in)
        ``weights[c, ky, kx, i]`` multiplies channel ``i`` at kernel position ``(ky, kx)``.
        Reshaped to ``(out_channels, K * C_in)`` (:attr:`weight_matrix`) its columns are in
        window order.
    bias : array_like of int, shape (out_channels,)
    weight_format, bias_format, output_format, activation
        As for :class:`Layer`.
    stride, padding : int or tuple of int
        Per axis (an int for all); the padding is zeros on both sides, smaller than the kernel.
    groups : int
        Must be 1: grouped and depthwise convolutions are not supported yet.

    Raises
    ------
    SpecError
        Naming the layer and field.
    """

    name: str
    input_shape: tuple
    weights: np.ndarray
    bias: np.ndarray
    weight_format: QFormat
    bias_format: QFormat
    output_format: QFormat
    activation: Activation = field(default_factory=Activation.identity)
    stride: tuple = 1
    padding: tuple = 0
    groups: int = 1

    kind = "conv"

    def __post_init__(self):
        where = self._where()
        check_format_fields(where, self, ("weight_format", "bias_format", "output_format"))
        shape = _stream_shape(where, self.input_shape, spatial=True)
        object.__setattr__(self, "input_shape", shape)
        if not is_int(self.groups) or self.groups != 1:
            raise SpecError(where, "groups", f"must be 1, not {self.groups!r}: grouped and "
                                             f"depthwise convolutions are not supported yet")
        try:
            weight_shape = np.shape(self.weights)
        except ValueError:  # ragged nested lists
            weight_shape = None
        if (weight_shape is None or len(weight_shape) != len(shape) + 1
                or weight_shape[-1] != shape[-1] or 0 in weight_shape):
            axes = "kernel_length" if len(shape) == 2 else "kernel_height, kernel_width"
            raise SpecError(where, "weights", f"expected an array of integers of shape "
                                              f"(out_channels, {axes}, {shape[-1]}): the last "
                                              f"axis is the input's {shape[-1]} channels, got "
                                              f"shape {weight_shape}")
        stride, padding = self._check_window(where, weight_shape[1:-1], self.stride,
                                             self.padding)
        object.__setattr__(self, "stride", stride)
        object.__setattr__(self, "padding", padding)
        self._check_numbers(where, self.weights, weight_shape)

    @property
    def kernel(self):
        """Kernel positions along each axis: ``(k,)`` or ``(kh, kw)``."""
        return self.weights.shape[1:-1]

    @property
    def in_channels(self):
        return self.input_shape[-1]

    @property
    def out_channels(self):
        return self.weights.shape[0]

    @property
    def output_channels(self):
        return self.out_channels

    @property
    def window_size(self):
        """Integers per window, ``K * C_in``: the columns of :attr:`weight_matrix`."""
        return self.window * self.in_channels

    @property
    def weight_matrix(self):
        """The weights as ``(out_channels, K * C_in)``, columns in window order."""
        return self.weights.reshape(self.out_channels, -1)

    @property
    def multiplier_matrix(self):
        return self.weight_matrix

    def accumulator_range(self, x_lo, x_hi):
        """Exact bounds of the accumulator over all inputs in ``[x_lo, x_hi]``, and over the
        padding zeros when the layer pads (the range then includes 0)."""
        if any(self.padding):
            x_lo, x_hi = min(x_lo, 0), max(x_hi, 0)
        return super().accumulator_range(x_lo, x_hi)

    def _fields_to_dict(self):
        return {"out_channels": self.out_channels, **self._window_fields(),
                "padding": list(self.padding), "groups": self.groups, **self._format_fields(),
                "weights": self.weights.tolist(), "bias": self.bias.tolist()}

    @classmethod
    def from_dict(cls, data, where="layer"):
        """Build a layer from :meth:`to_dict` output; errors are located at ``where``."""
        where = check_fields(where, data, ("kind", "name", "input_shape", "out_channels",
                                           "kernel", "stride", "padding", "groups",
                                           *_FORMAT_FIELDS, "weights", "bias"))
        shape = _stream_shape(where, data["input_shape"], spatial=True)
        n_out = _count(where, "out_channels", data["out_channels"])
        kernel = positive_ints(where, "kernel", data["kernel"], len(shape) - 1)
        formats, activation = cls._formats_from_dict(where, data)
        weights = integer_array(where, "weights", data["weights"], (n_out, *kernel, shape[-1]))
        bias = integer_array(where, "bias", data["bias"], (n_out,))
        if not is_int(data["groups"]):
            raise SpecError(where, "groups", f"must be 1, not {data['groups']!r}")
        try:
            return cls(data["name"], shape, weights, bias, activation=activation,
                       stride=data["stride"], padding=data["padding"], groups=data["groups"],
                       **formats)
        except SpecError as error:
            raise error.at(where) from None


class _Pool(_Windowed):
    """Max or average pooling: per channel, over windows without padding."""

    padding = property(lambda self: (0,) * len(self.spatial_in))

    def __post_init__(self):
        where = self._where()
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(where, "name", "must be a non-empty string")
        shape = _stream_shape(where, self.input_shape, spatial=True)
        object.__setattr__(self, "input_shape", shape)
        kernel = positive_ints(where, "kernel", self.kernel, len(shape) - 1)
        object.__setattr__(self, "kernel", kernel)
        stride, _ = self._check_window(where, kernel,
                                       kernel if self.stride is None else self.stride, 0)
        object.__setattr__(self, "stride", stride)

    @property
    def output_channels(self):
        return self.input_shape[-1]

    def _fields_to_dict(self):
        return self._window_fields()

    @classmethod
    def from_dict(cls, data, where="layer"):
        """Build a layer from :meth:`to_dict` output; errors are located at ``where``."""
        where = check_fields(where, data, ("kind", "name", "input_shape", "kernel", "stride"))
        try:
            return cls(data["name"], data["input_shape"], data["kernel"], data["stride"])
        except SpecError as error:
            raise error.at(where) from None


@dataclass(frozen=True, eq=False)
class MaxPool(_Pool):
    """Max pooling, 1-D or 2-D: per channel, the largest integer of each window.

    Parameters
    ----------
    name : str
    input_shape : tuple of int
        ``(L, C)`` or ``(H, W, C)``.
    kernel : int or tuple of int
    stride : int or tuple of int, optional
        Default: the kernel (windows side by side). No padding.
    """

    name: str
    input_shape: tuple
    kernel: tuple
    stride: tuple = None

    kind = "maxpool"


@dataclass(frozen=True, eq=False)
class AvgPool(_Pool):
    """Average pooling that stays a layer: a power-of-two window, as a sum and a shift.

    ``y = floor((sum + 2**(m-1)) / 2**m)`` with ``m = log2(window)`` (the requantize of the
    numeric contract, rounding half up), in the input format: an average never leaves the
    range of what it averages. An average pool directly before a dense or conv layer is not a
    layer at all: the export folds it into that layer's weights.

    Parameters
    ----------
    name, input_shape, kernel, stride
        As for :class:`MaxPool`; the window (the product of the kernel) is a power of two.
    """

    name: str
    input_shape: tuple
    kernel: tuple
    stride: tuple = None

    kind = "avgpool"

    def __post_init__(self):
        super().__post_init__()
        if self.window & (self.window - 1):
            raise SpecError(self._where(), "kernel",
                            f"{list(self.kernel)} has a window of {self.window} positions, not "
                            f"a power of two; an average pool that is its own layer sums and "
                            f"shifts (only one before a dense or conv layer folds into it)")

    @property
    def shift(self):
        """The requantize shift, ``log2(window)``."""
        return self.window.bit_length() - 1

    @property
    def rounding(self):
        return rounding_constant(self.shift)

    def accumulator_range(self, x_lo, x_hi):
        """Bounds of a window sum for inputs in ``[x_lo, x_hi]``."""
        return self.window * int(x_lo), self.window * int(x_hi)


@dataclass(frozen=True, eq=False)
class Flatten(SpecLayer):
    """The shape becomes one vector; the stream passes through unchanged (it costs nothing).

    A stream is already position-major, so the vector is ``(H, W, C)`` in row-major order:
    element ``(y*W + x)*C + c``. The export permutes the next dense layer's weight columns from
    torch's channel-major flattening to this order.

    Parameters
    ----------
    name : str
    input_shape : tuple of int
    """

    name: str
    input_shape: tuple

    kind = "flatten"

    def __post_init__(self):
        where = self._where()
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(where, "name", "must be a non-empty string")
        object.__setattr__(self, "input_shape", _stream_shape(where, self.input_shape))

    @property
    def output_shape(self):
        return (self.input_size,)

    @classmethod
    def from_dict(cls, data, where="layer"):
        """Build a layer from :meth:`to_dict` output; errors are located at ``where``."""
        where = check_fields(where, data, ("kind", "name", "input_shape"))
        try:
            return cls(data["name"], data["input_shape"])
        except SpecError as error:
            raise error.at(where) from None


@dataclass(frozen=True, eq=False)
class ScaleShift(_Requantizing):
    """Per-channel scale and shift (a BatchNorm that folds into no neighbour).

    ``y = act(requantize(a_c * x + b_c))`` for every element of channel ``c`` (the last axis of
    the shape; a vector's channels are its elements), with ``b_c`` at the accumulator scale
    ``2**-(Fx+Fa)``, ``s = Fx + Fa - Fy``.

    Parameters
    ----------
    name : str
    input_shape : tuple of int
    scale : array_like of int, shape (channels,)
        Integers of ``scale_format``.
    bias : array_like of int, shape (channels,)
        Integers of ``bias_format``, whose ``frac`` is the input's plus ``scale_format.frac``.
    scale_format, bias_format, output_format : QFormat
    activation : Activation
    """

    name: str
    input_shape: tuple
    scale: np.ndarray
    bias: np.ndarray
    scale_format: QFormat
    bias_format: QFormat
    output_format: QFormat
    activation: Activation = field(default_factory=Activation.identity)

    kind = "scale_shift"
    MULTIPLIER = "scale_format"

    def __post_init__(self):
        where = self._where()
        check_format_fields(where, self, ("scale_format", "bias_format", "output_format"))
        shape = _stream_shape(where, self.input_shape)
        object.__setattr__(self, "input_shape", shape)
        self._check_numbers(where, self.scale, (shape[-1],))

    @property
    def channels(self):
        return self.input_shape[-1]

    @property
    def output_shape(self):
        return self.input_shape

    @property
    def multiplier_matrix(self):
        """The scales as a ``(channels, 1)`` matrix."""
        return self.scale.reshape(-1, 1)

    def _fields_to_dict(self):
        return {**self._format_fields(), "scale": self.scale.tolist(),
                "bias": self.bias.tolist()}

    @classmethod
    def from_dict(cls, data, where="layer"):
        """Build a layer from :meth:`to_dict` output; errors are located at ``where``."""
        where = check_fields(where, data, ("kind", "name", "input_shape", "scale_format",
                                           "bias_format", "output_format", "activation",
                                           "scale", "bias"))
        shape = _stream_shape(where, data["input_shape"])
        formats, activation = cls._formats_from_dict(where, data, "scale_format")
        scale = integer_array(where, "scale", data["scale"], (shape[-1],))
        bias = integer_array(where, "bias", data["bias"], (shape[-1],))
        try:
            return cls(data["name"], shape, scale, bias, activation=activation, **formats)
        except SpecError as error:
            raise error.at(where) from None


#: Every layer kind of a version 2 spec, by the name in its ``kind`` field.
KINDS = {cls.kind: cls for cls in (Layer, Conv, MaxPool, AvgPool, Flatten, ScaleShift)}


def layer_from_dict(data, where, version):
    """A layer of a version ``version`` spec from its JSON object; errors located at ``where``.

    Version 1 holds dense layers only (with ``in_features``); version 2 names each layer's
    ``kind``.
    """
    if version == 1:
        return Layer.from_v1_dict(data, where)
    if not isinstance(data, dict):
        raise SpecError(where, None, f"expected an object, got {type(data).__name__}")
    if "kind" not in data:
        raise SpecError(where, "kind", "missing")
    if data["kind"] not in KINDS:
        raise SpecError(where, "kind", f"must be one of {', '.join(KINDS)}, not "
                                       f"{data['kind']!r}")
    return KINDS[data["kind"]].from_dict(data, where)
