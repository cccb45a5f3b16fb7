"""Fixed-point formats and the integer operations of the numeric contract.

Every function here is exact. Arrays of dtype ``int64`` are used where the values provably fit;
where they could not (wide accumulators, long left shifts), the same code runs on numpy arrays
of dtype ``object`` that hold Python ints. :func:`int_array` picks the dtype from the bounds of
the values, so callers never see a silent wrap.
"""

from dataclasses import dataclass

import numpy as np

__all__ = [
    "QFormat", "Activation", "int_array", "python_ints", "signed_width", "quantize", "requantize",
    "rounding_constant", "INT64_SAFE_BITS",
]

#: Largest signed width whose values, and sums of two of them, cannot overflow ``int64``.
INT64_SAFE_BITS = 62

#: Widths a :class:`QFormat` may have. 62 keeps every stored integer inside ``int64``.
MAX_WIDTH = 62


def signed_width(lo, hi):
    """Smallest two's-complement width that holds every integer in ``[lo, hi]``.

    Parameters
    ----------
    lo, hi : int
        Inclusive bounds, ``lo <= hi``.

    Returns
    -------
    int
        A width of at least 1.
    """
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"Range must have lo <= hi, not [{lo}, {hi}]")
    width = 1
    while not (-(1 << (width - 1)) <= lo and hi <= (1 << (width - 1)) - 1):
        width += 1
    return width


def int_array(values, lo, hi):
    """Integer numpy array for values known to lie in ``[lo, hi]``.

    The dtype is ``int64`` when ``signed_width(lo, hi) <= INT64_SAFE_BITS`` and ``object``
    (Python ints) otherwise.
    """
    if signed_width(lo, hi) <= INT64_SAFE_BITS:
        return np.asarray(values).astype(np.int64)
    return python_ints(values)


def python_ints(values):
    """Integer numpy array of dtype ``object`` holding Python ints: exact at any width."""
    return np.vectorize(int, otypes=[object])(np.asarray(values, dtype=object))


@dataclass(frozen=True)
class QFormat:
    """Signed fixed-point format ``Q(width, frac)``.

    A value is stored as a two's-complement integer ``q`` of ``width`` bits and means
    ``q * 2**-frac``. ``frac`` may be negative or larger than ``width``.

    Parameters
    ----------
    width : int
        Number of bits, 2 to 62.
    frac : int
        Number of fractional bits.

    Members
    -------
    min, max : int
        The integer range ``[-2**(width-1), 2**(width-1)-1]``.
    """

    width: int
    frac: int

    def __post_init__(self):
        if (not isinstance(self.width, int) or isinstance(self.width, bool)
                or not 2 <= self.width <= MAX_WIDTH):
            raise ValueError(f"Width must be an integer from 2 to {MAX_WIDTH}, not {self.width!r}")
        if not isinstance(self.frac, int) or isinstance(self.frac, bool):
            raise ValueError(f"Fractional bits must be an integer, not {self.frac!r}")

    def __str__(self):
        return f"Q({self.width}, {self.frac})"

    @property
    def min(self):
        return -(1 << (self.width - 1))

    @property
    def max(self):
        return (1 << (self.width - 1)) - 1

    @property
    def lsb(self):
        """Real value of one integer step, ``2**-frac``."""
        return 2.0 ** -self.frac

    def contains(self, q):
        """Whether every integer in ``q`` lies in the format's range."""
        q = np.asarray(q)
        return bool(np.all((q >= self.min) & (q <= self.max)))

    def quantize(self, values):
        """Real values to integers: round half to even, then saturate. See :func:`quantize`."""
        return quantize(values, self)

    def to_real(self, q):
        """Integers to the real values they stand for, as float64."""
        return np.asarray(q, dtype=np.float64) * self.lsb

    def to_dict(self):
        return {"width": self.width, "frac": self.frac}


def quantize(values, fmt):
    """Real values to integers of ``fmt``: ``clamp(round_half_to_even(v * 2**frac))``.

    Parameters
    ----------
    values : array_like of float
        Real values.
    fmt : QFormat
        Target format.

    Returns
    -------
    numpy.ndarray of int64
        Integers in ``[fmt.min, fmt.max]``, in the shape of ``values``.

    Raises
    ------
    ValueError
        If any value is NaN or infinite; the message names the first such index.
    """
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f" at index {index}" if values.ndim else ""
        raise ValueError(f"Cannot quantize {values[bad][0]}{where} to {fmt}: "
                         f"value is not finite")
    # Scaling by a power of two is exact in float64; np.rint rounds half to even. Clipping to
    # powers of two first keeps the conversion to int64 in range for every width.
    limit = float(1 << (fmt.width - 1))
    scaled = np.clip(np.rint(np.ldexp(values, fmt.frac)), -limit, limit)
    return np.clip(scaled.astype(np.int64), fmt.min, fmt.max)


def rounding_constant(shift):
    """What requantization adds before shifting right by ``shift``: ``2**(shift-1)``, or 0
    when ``shift <= 0`` (an exact left shift needs no rounding)."""
    return 1 << (shift - 1) if shift > 0 else 0


def requantize(acc, shift, fmt):
    """Scale accumulator integers down by ``2**shift``, rounding half up, then saturate.

    ``y = clamp(floor((acc + 2**(shift-1)) / 2**shift), fmt.min, fmt.max)``. A ``shift`` of
    zero or less is an exact left shift by ``-shift``, followed by saturation. Never wraps.

    Parameters
    ----------
    acc : numpy.ndarray of int64 or object
        Accumulator values.
    shift : int
        ``Fx + Fw - Fy``.
    fmt : QFormat
        Output format.

    Returns
    -------
    numpy.ndarray of int64
    """
    acc = np.asarray(acc)
    if acc.dtype != object and acc.size and (
            shift > INT64_SAFE_BITS - 1 or
            max(-int(acc.min()), int(acc.max())) >= 1 << INT64_SAFE_BITS - 1):
        acc = python_ints(acc)
    if shift > 0:
        rounded = acc + _same_kind(acc, rounding_constant(shift))
        scaled = rounded >> _same_kind(acc, shift)
        return np.clip(scaled, fmt.min, fmt.max).astype(np.int64)
    left = -shift
    # Saturate before shifting, so that the shift itself can never overflow.
    hi = fmt.max >> left
    lo = -((-fmt.min) >> left)
    kept = np.clip(acc, lo, hi).astype(np.int64) << np.int64(min(left, 63))
    result = np.where(acc > hi, fmt.max, np.where(acc < lo, fmt.min, kept))
    return result.astype(np.int64)


def _same_kind(array, value):
    """``value`` as a scalar that combines with ``array`` without changing its dtype."""
    return value if array.dtype == object else np.int64(value)


@dataclass(frozen=True)
class Activation:
    """Integer activation applied after requantization.

    Parameters
    ----------
    kind : str
        ``"identity"``, ``"relu"`` (``max(0, y)``) or ``"hardtanh"``
        (``clamp(y, lo, hi)``).
    lo, hi : int or None
        Clamp bounds of ``"hardtanh"``, integers of the layer's output format. ``None`` for the
        other kinds.
    """

    kind: str
    lo: int | None = None
    hi: int | None = None

    KINDS = ("identity", "relu", "hardtanh")

    def __post_init__(self):
        if self.kind not in self.KINDS:
            raise ValueError(f"Activation must be one of {', '.join(self.KINDS)}, "
                             f"not {self.kind!r}")
        if self.kind == "hardtanh":
            for name in ("lo", "hi"):
                value = getattr(self, name)
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError(f"Hardtanh bound '{name}' must be an integer, "
                                     f"not {value!r}")
            if self.lo > self.hi:
                raise ValueError(f"Hardtanh bounds must have lo <= hi, not "
                                 f"[{self.lo}, {self.hi}]")
        elif self.lo is not None or self.hi is not None:
            raise ValueError(f"Activation {self.kind!r} takes no bounds")

    @classmethod
    def identity(cls):
        return cls("identity")

    @classmethod
    def relu(cls):
        return cls("relu")

    @classmethod
    def hardtanh(cls, lo, hi):
        return cls("hardtanh", int(lo), int(hi))

    def apply(self, y):
        """Apply the activation to integers ``y``."""
        y = np.asarray(y)
        if self.kind == "relu":
            return np.maximum(y, 0)
        if self.kind == "hardtanh":
            return np.clip(y, self.lo, self.hi)
        return y

    def output_range(self, fmt):
        """Inclusive ``(lo, hi)`` range of the activation's outputs for inputs in ``fmt``."""
        if self.kind == "relu":
            return 0, fmt.max
        if self.kind == "hardtanh":
            return max(self.lo, fmt.min), min(self.hi, fmt.max)
        return fmt.min, fmt.max

    def to_dict(self):
        if self.kind == "hardtanh":
            return {"kind": self.kind, "lo": self.lo, "hi": self.hi}
        return {"kind": self.kind}
