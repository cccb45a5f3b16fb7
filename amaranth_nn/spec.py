"""The network spec: the integer network, as one versioned, self-describing JSON file.

A spec holds the input format and the layers in order (:mod:`amaranth_nn.layers`: dense, conv,
max and average pooling, flatten, scale-and-shift), each with its input shape. It is what
``torch_bridge`` writes and what the golden model, the gateware and the build read.

Every way of making a spec (the constructors, :meth:`NetworkSpec.from_dict`,
:meth:`NetworkSpec.load`) runs the same validation, and every problem raises a
:class:`SpecError` that names the layer and the field. Version 1 files (dense layers only)
load as they always did; :meth:`NetworkSpec.save` writes version 2.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from .fixedpoint import QFormat, int_array
from .layers import (
    KINDS,
    AvgPool,
    Conv,
    Dense,
    Flatten,
    Layer,
    MaxPool,
    ScaleShift,
    SpecLayer,
    layer_from_dict,
    shape_text,
)
from .spec_fields import SpecError, format_from_dict, is_int

__all__ = ["SpecError", "Layer", "Dense", "Conv", "MaxPool", "AvgPool", "Flatten", "ScaleShift",
           "SpecLayer", "NetworkSpec", "SPEC_FORMAT", "SPEC_VERSION", "SPEC_VERSIONS",
           "check_spec"]

SPEC_FORMAT = "amaranth-nn-spec"
#: The version :meth:`NetworkSpec.save` writes.
SPEC_VERSION = 2
#: The versions :meth:`NetworkSpec.load` reads.
SPEC_VERSIONS = (1, 2)


class NetworkSpec:
    """A fixed-point network: the input format and the layers in order.

    Parameters
    ----------
    input_format : QFormat
        Format of the network's input integers.
    layers : list of SpecLayer
        At least one layer (:class:`Layer` for dense, :class:`Conv`, :class:`MaxPool`,
        :class:`AvgPool`, :class:`Flatten`, :class:`ScaleShift`). Each layer's
        ``input_shape`` equals the previous layer's ``output_shape``, and the ``bias_format``
        of a layer that requantizes has the ``frac`` of its input plus that of its weights (or
        scales). The first layer's input shape is the network's.
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
        fmt, span, shape, names = input_format, (input_format.min, input_format.max), None, set()
        formats, ranges = [fmt], [span]
        for index, layer in enumerate(layers):
            if not isinstance(layer, SpecLayer):
                raise SpecError(f"layer {index}", None, f"must be a layer ({', '.join(KINDS)}), "
                                                        f"not {layer!r}")
            where = f"layer {index} ({layer.name!r})"
            if layer.name in names:
                raise SpecError(where, "name", "is used by an earlier layer")
            names.add(layer.name)
            if shape is not None and layer.input_shape != shape:
                raise _shape_error(where, layer, shape)
            if layer.requantizes and layer.input_frac != fmt.frac:
                what = "scale" if layer.kind == "scale_shift" else "weight"
                frac = layer.multiplier_format.frac
                raise SpecError(where, "bias_format",
                                f"frac must be input frac {fmt.frac} + {what} frac {frac} = "
                                f"{fmt.frac + frac}, not {layer.bias_format.frac}")
            fmt, span = layer.output_format_for(fmt), layer.output_range_for(span)
            shape = layer.output_shape
            formats.append(fmt)
            ranges.append(span)
        self._input_format = input_format
        self._layers = tuple(layers)
        self._formats, self._ranges = tuple(formats), tuple(ranges)
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
    def input_shape(self):
        """Shape of an input vector, in stream order (the first layer's input shape)."""
        return self._layers[0].input_shape

    @property
    def output_shape(self):
        return self._layers[-1].output_shape

    @property
    def input_size(self):
        return self._layers[0].input_size

    @property
    def output_size(self):
        return self._layers[-1].output_size

    @property
    def output_format(self):
        return self._formats[-1]

    @property
    def kinds(self):
        """The kind of every layer, in order."""
        return tuple(layer.kind for layer in self._layers)

    def input_format_of(self, index):
        """Format of the integers that enter layer ``index``."""
        return self._formats[index]

    def output_format_of(self, index):
        """Format of the integers that layer ``index`` outputs (its input format, for a layer
        that does not requantize)."""
        return self._formats[index + 1]

    def input_range_of(self, index):
        """Inclusive ``(lo, hi)`` of the integers that can enter layer ``index``.

        The first layer sees the whole input format; a later layer sees what the layers before
        it can produce (``[0, max]`` after a ReLU, also through pooling and flatten).
        """
        return self._ranges[index]

    def output_range_of(self, index):
        """Inclusive ``(lo, hi)`` of the integers that layer ``index`` outputs."""
        return self._ranges[index + 1]

    def accumulator_range_of(self, index):
        """Exact accumulator bounds of layer ``index`` (a dense, conv or scale-and-shift layer,
        or the window sums of an average pool); see :meth:`Layer.accumulator_range`.

        Raises
        ------
        ValueError
            For a max pool or a flatten, which accumulate nothing.
        """
        layer = self._layers[index]
        if not hasattr(layer, "accumulator_range"):
            raise ValueError(f"Layer {index} ({layer.name!r}) is a {layer.kind} layer, which has "
                             f"no accumulator")
        if index not in self._accumulator_ranges:
            self._accumulator_ranges[index] = layer.accumulator_range(*self.input_range_of(index))
        return self._accumulator_ranges[index]

    def quantize_input(self, values):
        """Real input values to integers of the input format (round half to even, saturate)."""
        return self._input_format.quantize(values)

    def dequantize_output(self, q):
        """Output integers to the real values they stand for."""
        return self.output_format.to_real(q)

    def to_dict(self):
        """The spec as a JSON object of the current version (:data:`SPEC_VERSION`)."""
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
        """Build and validate a spec from :meth:`to_dict` output (any version of
        :data:`SPEC_VERSIONS`)."""
        if not isinstance(data, dict):
            raise SpecError("spec", None, f"expected a JSON object, got {type(data).__name__}")
        if data.get("format") != SPEC_FORMAT:
            raise SpecError("spec", "format", f"expected {SPEC_FORMAT!r}, got "
                                              f"{data.get('format')!r}; not a network spec")
        version = data.get("version")
        if not is_int(version) or version not in SPEC_VERSIONS:
            raise SpecError("spec", "version", f"expected 1 or 2, got {version!r}; this "
                                               f"amaranth-nn reads versions 1 and 2")
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
        input_format = format_from_dict("spec", "input_format", data["input_format"])
        if not isinstance(data["layers"], list) or not data["layers"]:
            raise SpecError("spec", "layers", "must be a non-empty list of layers")
        metadata = data.get("metadata", {})
        if not isinstance(metadata, dict):
            raise SpecError("spec", "metadata", f"must be an object, not {metadata!r}")
        layers = [layer_from_dict(layer, f"layer {index}", version)
                  for index, layer in enumerate(data["layers"])]
        return cls(input_format, layers, name=data.get("name", "network"), metadata=metadata)

    def save(self, path):
        """Write the spec as JSON (version :data:`SPEC_VERSION`) to ``path``; returns the
        path."""
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
        shapes = [self.input_shape] + [layer.output_shape for layer in self._layers]
        text = " -> ".join(shape_text(shape) for shape in shapes)
        return f"NetworkSpec({self._name!r}, {text}, input {self._input_format})"


def _shape_error(where, layer, shape):
    """The error of a layer whose input shape is not the previous layer's output shape."""
    if layer.kind == "dense" and len(shape) == 1:
        return SpecError(where, "in_features", f"is {layer.in_features}, but the previous layer "
                                               f"has {shape[0]} outputs")
    message = (f"is {list(layer.input_shape)}, but the previous layer outputs {list(shape)}")
    if layer.kind == "dense":
        message += "; a dense layer takes a vector (put a flatten layer before it)"
    return SpecError(where, "input_shape", message)


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
            x.dtype == object and not all(is_int(v) for v in x.flat)):
        raise ValueError(f"Inputs must be integers of the input format {spec.input_format}, "
                         f"not {x.dtype}; use spec.quantize_input() for real values")
    single = x.ndim == 1
    batch = x[None, :] if single else x
    if batch.ndim != 2 or batch.shape[1] != spec.input_size:
        flattened = "" if len(spec.input_shape) == 1 else (
            f" (each sample its {shape_text(spec.input_shape)} input flattened in stream "
            f"order)")
        raise ValueError(f"Inputs must have shape (batch, {spec.input_size}) or "
                         f"({spec.input_size},){flattened}, not {x.shape}")
    fmt = spec.input_format
    bad = np.argwhere((batch < fmt.min) | (batch > fmt.max))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        raise ValueError(f"Input {int(batch[index])} at index {index} is outside the input "
                         f"format {fmt}, range [{fmt.min}, {fmt.max}]")
    return int_array(batch, fmt.min, fmt.max), single
