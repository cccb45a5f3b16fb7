"""amaranth-nn: fixed-point neural networks as bit-exact, pipelined Amaranth HDL.

The numeric core (:mod:`.fixedpoint`, :mod:`.spec`, :mod:`.golden`) needs only numpy; nothing
in this package imports torch.
"""

from . import golden
from .fixedpoint import Activation, QFormat, quantize, requantize, signed_width
from .spec import Layer, NetworkSpec, SpecError

__all__ = [
    "Activation", "QFormat", "quantize", "requantize", "signed_width",
    "Layer", "NetworkSpec", "SpecError", "golden",
]
