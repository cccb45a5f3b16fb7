"""The error of an invalid spec, and the checks of single fields that every layer kind shares.

Every problem in a spec raises one :class:`SpecError` that names where it is (the spec or a
layer) and the field. The checks here are the one place each message is written; the layer
kinds (:mod:`amaranth_nn.layers`) and the network (:mod:`amaranth_nn.spec`) call them.
"""

import numpy as np

from .fixedpoint import Activation, QFormat

__all__ = ["SpecError", "is_int", "shape_text", "integer_array", "check_range", "positive_ints",
           "format_from_dict", "activation_from_dict", "check_fields", "check_format_fields",
           "check_activation_bounds"]


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


def is_int(value):
    """Whether ``value`` is an integer (a Python or numpy int, never a bool)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def shape_text(shape):
    return " x ".join(str(n) for n in shape)


def integer_array(where, name, values, shape):
    """``values`` as an integer array of ``shape``, or a SpecError naming ``name``."""
    try:
        array = np.asarray(values)
    except ValueError:  # ragged nested lists
        raise SpecError(where, name, f"expected a {shape_text(shape)} array of integers, "
                                     f"got rows of different lengths") from None
    if array.shape != shape:
        raise SpecError(where, name, f"expected shape {shape}, got {array.shape}")
    if isinstance(values, list):  # JSON: numpy would silently read true/false as 1/0
        kinds = {type(v).__name__ for v in _leaves(values) if not is_int(v)}
        if kinds:
            raise SpecError(where, name, f"expected integers, got {', '.join(sorted(kinds))} "
                                         f"values")
    if array.size and not (np.issubdtype(array.dtype, np.integer) or (
            array.dtype == object and all(is_int(v) for v in array.flat))):
        raise SpecError(where, name, f"expected integers, got {array.dtype} values")
    return array


def _leaves(values):
    for value in values:
        if isinstance(value, list):
            yield from _leaves(value)
        else:
            yield value


def check_range(where, name, array, fmt):
    """Raise a SpecError at the first value of ``array`` outside ``fmt``'s range."""
    bad = [(index, int(v)) for index, v in np.ndenumerate(array)
           if not fmt.min <= int(v) <= fmt.max]
    if bad:
        index, value = bad[0]
        index = index[0] if len(index) == 1 else index
        raise SpecError(where, name, f"value {value} at index {index} is outside {fmt}, "
                                     f"range [{fmt.min}, {fmt.max}] ({len(bad)} of "
                                     f"{array.size} values out of range)")


def positive_ints(where, name, value, length=None, *, minimum=1):
    """``value`` (an int, or a list or tuple of them) as a tuple of integers >= ``minimum``.

    A single int stands for ``length`` equal values (one per spatial dimension).

    Raises
    ------
    SpecError
        ``"must be a list of 2 positive integers, not [3]"`` and the like.
    """
    what = "positive integers" if minimum == 1 else f"integers of at least {minimum}"
    if is_int(value) and length is not None:
        value = (value,) * length
    if (not isinstance(value, (list, tuple)) or not value
            or not all(is_int(v) and v >= minimum for v in value)
            or (length is not None and len(value) != length)):
        count = "" if length is None else f"{length} "
        shown = list(value) if isinstance(value, tuple) else value
        raise SpecError(where, name, f"must be a list of {count}{what}, not {shown!r}")
    return tuple(int(v) for v in value)


def format_from_dict(where, name, data):
    if not isinstance(data, dict) or set(data) != {"width", "frac"}:
        raise SpecError(where, name, f"expected {{\"width\": W, \"frac\": F}}, got {data!r}")
    try:
        return QFormat(data["width"], data["frac"])
    except ValueError as error:
        raise SpecError(where, name, str(error)) from None


def activation_from_dict(where, data):
    if not isinstance(data, dict) or "kind" not in data:
        raise SpecError(where, "activation", f"expected {{\"kind\": ...}}, got {data!r}")
    try:
        return Activation(**data)
    except (TypeError, ValueError) as error:
        raise SpecError(where, "activation", str(error)) from None


def check_fields(where, data, required, optional=()):
    """Check that the dict ``data`` has every ``required`` key and no key outside both lists.

    Returns
    -------
    str
        ``where`` with the layer's name added when it has a valid one:
        ``"layer 1 ('dense1')"``.
    """
    if not isinstance(data, dict):
        raise SpecError(where, None, f"expected an object, got {type(data).__name__}")
    for key in required:
        if key not in data:
            raise SpecError(where, key, "missing")
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise SpecError(where, unknown[0], "unknown field")
    name = data.get("name")
    return f"{where} ({name!r})" if isinstance(name, str) and name else where


def check_format_fields(where, layer, names):
    """Check that the attributes ``names`` of ``layer`` are QFormats and its name is valid."""
    if not isinstance(layer.name, str) or not layer.name:
        raise SpecError(f"layer {layer.name!r}", "name", "must be a non-empty string")
    for name in names:
        if not isinstance(getattr(layer, name), QFormat):
            raise SpecError(where, name, f"must be a QFormat, not {getattr(layer, name)!r}")
    if not isinstance(layer.activation, Activation):
        raise SpecError(where, "activation", f"must be an Activation, not {layer.activation!r}")


def check_activation_bounds(where, activation, fmt):
    """A hardtanh's bounds must be integers of the output format ``fmt``."""
    if activation.kind == "hardtanh":
        lo, hi = activation.lo, activation.hi
        if not (fmt.min <= lo <= fmt.max and fmt.min <= hi <= fmt.max):
            raise SpecError(where, "activation", f"hardtanh bounds [{lo}, {hi}] must lie in "
                                                 f"the output format {fmt}")
