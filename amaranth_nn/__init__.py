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

from .dense import DenseLayer, WidthConverter  # noqa: E402
from .folding import DEFAULT_TARGET_II, choose_folding, default_folding  # noqa: E402
from .network import Network  # noqa: E402

__all__ += ["DenseLayer", "WidthConverter", "Network", "choose_folding", "default_folding",
            "DEFAULT_TARGET_II"]
