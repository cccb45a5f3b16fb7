"""The network spec: the integer network, as one versioned, self-describing JSON file.

A spec holds the input format and the dense layers in order. Each layer has integer weights
(``out_features x in_features``), an integer bias at the accumulator scale
``2**-(Fx+Fw)``, its weight, bias and output formats, and its activation. The spec is what
``torch_bridge`` writes and what the golden model, the gateware and the build read.

Every way of making a spec (the constructors, :meth:`NetworkSpec.from_dict`,
:meth:`NetworkSpec.load`) runs the same validation, and every problem raises a
:class:`SpecError` that names the layer and the field.
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .fixedpoint import Activation, QFormat, int_array, rounding_constant, signed_width

__all__ = ["SpecError", "Layer", "NetworkSpec", "SPEC_FORMAT", "SPEC_VERSION", "check_spec"]

SPEC_FORMAT = "amaranth-nn-spec"
SPEC_VERSION = 1


class SpecError(ValueError):
    """A network spec is invalid.

    Members
    -------
    where : str
        The part of the spec, e.g. ``"layer 1 ('dense1')"``.
    field : str or None
        The field within it, e.g. ``"weights"``.
    message : str
        What is wrong.
    """

    def __init__(self, where, field, message):
        self.where, self.field, self.message = where, field, message
        text = f"{where}, field '{field}': {message}" if field else f"{where}: {message}"
        super().__init__(text)

    def at(self, where):
        """The same error, located at ``where`` instead."""
        return SpecError(where, self.field, self.message)


def _integer_matrix(where, name, values, shape):
    """``values`` as an integer array of ``shape``, or a SpecError naming ``name``."""
    try:
        array = np.asarray(values)
    except ValueError:  # ragged nested lists
        raise SpecError(where, name, f"expected a {_shape_text(shape)} array of integers, "
                                     f"got rows of different lengths") from None
    if array.shape != shape:
        raise SpecError(where, name, f"expected shape {shape}, got {array.shape}")
    if isinstance(values, list):  # JSON: numpy would silently read true/false as 1/0
        items = values if len(shape) == 1 else [v for row in values for v in row]
        kinds = {type(v).__name__ for v in items if not _is_int(v)}
        if kinds:
            raise SpecError(where, name, f"expected integers, got {', '.join(sorted(kinds))} "
                                         f"values")
    if array.size and not (np.issubdtype(array.dtype, np.integer) or (
            array.dtype == object and all(_is_int(v) for v in array.flat))):
        raise SpecError(where, name, f"expected integers, got {array.dtype} values")
    return array


def _shape_text(shape):
    return " x ".join(str(n) for n in shape)


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_range(where, name, array, fmt):
    """Raise a SpecError at the first value of ``array`` outside ``fmt``'s range."""
    bad = [(index, int(v)) for index, v in np.ndenumerate(array)
           if not fmt.min <= int(v) <= fmt.max]
    if bad:
        index, value = bad[0]
        index = index[0] if len(index) == 1 else index
        raise SpecError(where, name, f"value {value} at index {index} is outside {fmt}, "
                                     f"range [{fmt.min}, {fmt.max}] ({len(bad)} of "
                                     f"{array.size} values out of range)")


@dataclass(frozen=True, eq=False)
class Layer:
    """One fixed-point dense layer: ``y = act(requantize(W @ x + b))``.

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

    def __post_init__(self):
        where = f"layer {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise SpecError(f"layer {self.name!r}", "name", "must be a non-empty string")
        for name in ("weight_format", "bias_format", "output_format"):
            if not isinstance(getattr(self, name), QFormat):
                raise SpecError(where, name, f"must be a QFormat, not "
                                             f"{getattr(self, name)!r}")
        if not isinstance(self.activation, Activation):
            raise SpecError(where, "activation", f"must be an Activation, not "
                                                 f"{self.activation!r}")
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
        weights = _integer_matrix(where, "weights", self.weights, shape)
        bias = _integer_matrix(where, "bias", self.bias, (shape[0],))
        _check_range(where, "weights", weights, self.weight_format)
        _check_range(where, "bias", bias, self.bias_format)
        if self.activation.kind == "hardtanh":
            lo, hi = self.activation.lo, self.activation.hi
            fmt = self.output_format
            if not (fmt.min <= lo <= fmt.max and fmt.min <= hi <= fmt.max):
                raise SpecError(where, "activation", f"hardtanh bounds [{lo}, {hi}] must lie "
                                                     f"in the output format {fmt}")
        weights = weights.astype(np.int64)
        bias = bias.astype(np.int64)
        weights.flags.writeable = False
        bias.flags.writeable = False
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "bias", bias)

    @property
    def in_features(self):
        return self.weights.shape[1]

    @property
    def out_features(self):
        return self.weights.shape[0]

    @property
    def input_frac(self):
        """Fractional bits of the layer's input, implied by the bias scale."""
        return self.bias_format.frac - self.weight_format.frac

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

    def accumulator_range(self, x_lo, x_hi):
        """Exact bounds of ``W @ x + b`` over all inputs in ``[x_lo, x_hi]``.

        Computed from the actual weights and biases with Python ints, so the accumulator
        sized from it can never overflow.

        Returns
        -------
        (int, int)
            The smallest and largest accumulator value of any neuron.
        """
        w = self.weights.astype(object)
        at_lo, at_hi = w * int(x_lo), w * int(x_hi)
        bias = self.bias.astype(object)
        hi = np.maximum(at_lo, at_hi).sum(axis=1) + bias
        lo = np.minimum(at_lo, at_hi).sum(axis=1) + bias
        return int(lo.min()), int(hi.max())

    def accumulator_width(self, x_lo, x_hi):
        """Signed width of the accumulator for inputs in ``[x_lo, x_hi]``."""
        return signed_width(*self.accumulator_range(x_lo, x_hi))

    def to_dict(self):
        return {
            "name": self.name,
            "in_features": self.in_features,
            "out_features": self.out_features,
            "weight_format": self.weight_format.to_dict(),
            "bias_format": self.bias_format.to_dict(),
            "output_format": self.output_format.to_dict(),
            "activation": self.activation.to_dict(),
            "weights": self.weights.tolist(),
            "bias": self.bias.tolist(),
        }

    @classmethod
    def from_dict(cls, data, where="layer"):
        """Build a layer from :meth:`to_dict` output; errors are located at ``where``."""
        if not isinstance(data, dict):
            raise SpecError(where, None, f"expected an object, got {type(data).__name__}")
        required = ("name", "in_features", "out_features", "weight_format", "bias_format",
                    "output_format", "activation", "weights", "bias")
        for key in required:
            if key not in data:
                raise SpecError(where, key, "missing")
        unknown = sorted(set(data) - set(required))
        if unknown:
            raise SpecError(where, unknown[0], "unknown field")
        name = data["name"]
        if isinstance(name, str) and name:
            where = f"{where} ({name!r})"
        shape = []
        for key in ("out_features", "in_features"):
            value = data[key]
            if not _is_int(value) or value < 1:
                raise SpecError(where, key, f"must be a positive integer, not {value!r}")
            shape.append(value)
        formats = {key: _format_from_dict(where, key, data[key])
                   for key in ("weight_format", "bias_format", "output_format")}
        activation = _activation_from_dict(where, data["activation"])
        weights = _integer_matrix(where, "weights", data["weights"], tuple(shape))
        bias = _integer_matrix(where, "bias", data["bias"], (shape[0],))
        try:
            return cls(name, weights, bias, activation=activation, **formats)
        except SpecError as error:
            raise error.at(where) from None


def _format_from_dict(where, name, data):
    if not isinstance(data, dict) or set(data) != {"width", "frac"}:
        raise SpecError(where, name, f"expected {{\"width\": W, \"frac\": F}}, got {data!r}")
    try:
        return QFormat(data["width"], data["frac"])
    except ValueError as error:
        raise SpecError(where, name, str(error)) from None


def _activation_from_dict(where, data):
    if not isinstance(data, dict) or "kind" not in data:
        raise SpecError(where, "activation", f"expected {{\"kind\": ...}}, got {data!r}")
    try:
        return Activation(**data)
    except (TypeError, ValueError) as error:
        raise SpecError(where, "activation", str(error)) from None


class NetworkSpec:
    """A fixed-point network: the input format and the dense layers in order.

    Parameters
    ----------
    input_format : QFormat
        Format of the network's input integers.
    layers : list of Layer
        At least one layer. Each layer's ``in_features`` equals the previous layer's
        ``out_features``, and its ``bias_format.frac`` equals its input's ``frac`` plus its
        ``weight_format.frac``.
    name : str
        Name of the network.
    metadata : dict
        Free-form JSON-serializable information (training report, provenance).

    Raises
    ------
    SpecError
        Naming the layer and field of the first problem found.
    """

    def __init__(self, input_format, layers, *, name="network", metadata=None):
        if not isinstance(input_format, QFormat):
            raise SpecError("spec", "input_format", f"must be a QFormat, not {input_format!r}")
        layers = list(layers)
        if not layers:
            raise SpecError("spec", "layers", "must hold at least one layer")
        fmt, size, names = input_format, None, set()
        for index, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise SpecError(f"layer {index}", None, f"must be a Layer, not {layer!r}")
            where = f"layer {index} ({layer.name!r})"
            if layer.name in names:
                raise SpecError(where, "name", "is used by an earlier layer")
            names.add(layer.name)
            if size is not None and layer.in_features != size:
                raise SpecError(where, "in_features", f"is {layer.in_features}, but the "
                                                      f"previous layer has {size} outputs")
            if layer.input_frac != fmt.frac:
                raise SpecError(where, "bias_format",
                                f"frac must be input frac {fmt.frac} + weight frac "
                                f"{layer.weight_format.frac} = "
                                f"{fmt.frac + layer.weight_format.frac}, not "
                                f"{layer.bias_format.frac}")
            fmt, size = layer.output_format, layer.out_features
        self._input_format = input_format
        self._layers = tuple(layers)
        self._name = str(name)
        self._metadata = dict(metadata or {})
        self._accumulator_ranges = {}

    @property
    def input_format(self):
        return self._input_format

    @property
    def layers(self):
        return self._layers

    @property
    def name(self):
        return self._name

    @property
    def metadata(self):
        return self._metadata

    @property
    def input_size(self):
        return self._layers[0].in_features

    @property
    def output_size(self):
        return self._layers[-1].out_features

    @property
    def output_format(self):
        return self._layers[-1].output_format

    def input_format_of(self, index):
        """Format of the integers that enter layer ``index``."""
        return self._input_format if index == 0 else self._layers[index - 1].output_format

    def input_range_of(self, index):
        """Inclusive ``(lo, hi)`` of the integers that can enter layer ``index``.

        The first layer sees the whole input format; a later layer sees what the previous
        activation can produce (``[0, max]`` after a ReLU).
        """
        if index == 0:
            return self._input_format.min, self._input_format.max
        return self._layers[index - 1].output_range

    def accumulator_range_of(self, index):
        """Exact accumulator bounds of layer ``index``; see :meth:`Layer.accumulator_range`."""
        if index not in self._accumulator_ranges:
            layer = self._layers[index]
            self._accumulator_ranges[index] = layer.accumulator_range(*self.input_range_of(index))
        return self._accumulator_ranges[index]

    def quantize_input(self, values):
        """Real input values to integers of the input format (round half to even, saturate)."""
        return self._input_format.quantize(values)

    def dequantize_output(self, q):
        """Output integers to the real values they stand for."""
        return self.output_format.to_real(q)

    def to_dict(self):
        body = {
            "format": SPEC_FORMAT,
            "version": SPEC_VERSION,
            "name": self._name,
            "input_format": self._input_format.to_dict(),
            "layers": [layer.to_dict() for layer in self._layers],
            "metadata": self._metadata,
        }
        body["checksum"] = _checksum(body)
        return body

    @classmethod
    def from_dict(cls, data):
        """Build and validate a spec from :meth:`to_dict` output."""
        if not isinstance(data, dict):
            raise SpecError("spec", None, f"expected a JSON object, got {type(data).__name__}")
        if data.get("format") != SPEC_FORMAT:
            raise SpecError("spec", "format", f"expected {SPEC_FORMAT!r}, got "
                                              f"{data.get('format')!r}; not a network spec")
        if data.get("version") != SPEC_VERSION:
            raise SpecError("spec", "version", f"expected {SPEC_VERSION}, got "
                                               f"{data.get('version')!r}; this amaranth-nn "
                                               f"reads version {SPEC_VERSION} only")
        if "checksum" in data and data["checksum"] != _checksum(data):
            raise SpecError("spec", "checksum", "does not match the contents; the file is "
                                                "corrupted or was edited (delete the "
                                                "'checksum' field to accept an edit)")
        known = {"format", "version", "name", "input_format", "layers", "metadata", "checksum"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError("spec", unknown[0], "unknown field")
        for key in ("input_format", "layers"):
            if key not in data:
                raise SpecError("spec", key, "missing")
        input_format = _format_from_dict("spec", "input_format", data["input_format"])
        if not isinstance(data["layers"], list) or not data["layers"]:
            raise SpecError("spec", "layers", "must be a non-empty list of layers")
        metadata = data.get("metadata", {})
        if not isinstance(metadata, dict):
            raise SpecError("spec", "metadata", f"must be an object, not {metadata!r}")
        layers = [Layer.from_dict(layer, f"layer {index}")
                  for index, layer in enumerate(data["layers"])]
        return cls(input_format, layers, name=data.get("name", "network"), metadata=metadata)

    def save(self, path):
        """Write the spec as JSON to ``path``; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), separators=(",", ":")) + "\n")
        return path

    @classmethod
    def load(cls, path):
        """Read and validate a spec file.

        Raises
        ------
        SpecError
            If the file is missing, a directory, not UTF-8 text, not JSON, of another format or
            version, corrupted, or invalid in any layer or field.
        """
        path = Path(path)
        where = f"spec file '{path}'"
        if path.is_dir():
            raise SpecError(where, None, "is a directory, not a JSON file")
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as error:
            raise SpecError(where, None, f"cannot be read: {error.strerror}") from None
        except UnicodeDecodeError as error:
            raise SpecError(where, None, f"is not a JSON text file (byte "
                                         f"{error.object[error.start]:#04x} at offset "
                                         f"{error.start} is not UTF-8)") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise SpecError(where, None, f"is not valid JSON (truncated or corrupted?): "
                                         f"{error.msg} at line {error.lineno} column "
                                         f"{error.colno}") from None
        try:
            return cls.from_dict(data)
        except SpecError as error:
            raise error.at(f"{where}, {error.where}") from None

    def __repr__(self):
        shape = " -> ".join([str(self.input_size)] + [str(l.out_features) for l in self._layers])
        return f"NetworkSpec({self._name!r}, {shape}, input {self._input_format})"


def check_spec(spec):
    """``spec`` if it is a :class:`NetworkSpec`; a TypeError otherwise."""
    if not isinstance(spec, NetworkSpec):
        raise TypeError(f"Spec must be a NetworkSpec, not {spec!r}")
    return spec


def _checksum(data):
    """SHA-256 of the canonical JSON of ``data`` without its checksum field."""
    body = {key: value for key, value in data.items() if key != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def as_input_array(spec, x):
    """Validate integer inputs for ``spec``; returns them as a 2-D array and whether x was 1-D.

    Raises
    ------
    ValueError
        If ``x`` is not integer, has the wrong size, or leaves the input format's range.
    """
    x = np.asarray(x)
    if x.dtype != object and not np.issubdtype(x.dtype, np.integer) or (
            x.dtype == object and not all(_is_int(v) for v in x.flat)):
        raise ValueError(f"Inputs must be integers of the input format {spec.input_format}, "
                         f"not {x.dtype}; use spec.quantize_input() for real values")
    single = x.ndim == 1
    batch = x[None, :] if single else x
    if batch.ndim != 2 or batch.shape[1] != spec.input_size:
        raise ValueError(f"Inputs must have shape (batch, {spec.input_size}) or "
                         f"({spec.input_size},), not {x.shape}")
    fmt = spec.input_format
    bad = np.argwhere((batch < fmt.min) | (batch > fmt.max))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        raise ValueError(f"Input {int(batch[index])} at index {index} is outside the input "
                         f"format {fmt}, range [{fmt.min}, {fmt.max}]")
    return int_array(batch, fmt.min, fmt.max), single
