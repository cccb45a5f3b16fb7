"""amaranth-nn: fixed-point neural networks as bit-exact, pipelined Amaranth HDL.

The numeric core (:mod:`.fixedpoint`, :mod:`.spec`, :mod:`.golden`) needs only numpy, and the
gateware (:mod:`.dense`, :mod:`.network`, :mod:`.folding`) only Amaranth; nothing in this
package imports torch.
"""

from . import golden
from ._version import __version__
from .dense import DenseLayer, WidthConverter
from .fixedpoint import Activation, QFormat, quantize, requantize, signed_width
from .folding import DEFAULT_TARGET_II, choose_folding, default_folding
from .network import Network
from .spec import Layer, NetworkSpec, SpecError

__all__ = [
    "__version__",
    "Activation", "QFormat", "quantize", "requantize", "signed_width",
    "Layer", "NetworkSpec", "SpecError", "golden",
    "DenseLayer", "WidthConverter", "Network", "choose_folding", "default_folding",
    "DEFAULT_TARGET_II",
]
