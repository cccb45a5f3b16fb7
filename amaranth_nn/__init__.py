"""amaranth-nn: fixed-point neural networks as bit-exact, pipelined Amaranth HDL.

The numeric core (:mod:`.fixedpoint`, :mod:`.spec`, :mod:`.golden`) needs only numpy. The
hardware is described by plans (:mod:`.ii`, :mod:`.plan`, :mod:`.network_plan`,
:mod:`.folding`) and built by the engines (:mod:`.dense`, :mod:`.converter`, :mod:`.network`)
from target primitives (:mod:`.targets`) and stream plumbing (:mod:`.plumbing`), with Amaranth
only; nothing in this package imports torch.
"""

from . import golden
from ._version import __version__
from .converter import WidthConverter
from .dense import DenseLayer
from .fixedpoint import Activation, QFormat, quantize, requantize, signed_width
from .folding import DEFAULT_TARGET_II, choose_folding, default_folding, plan_network
from .network import Network
from .network_plan import NetworkPlan
from .plan import ConverterPlan, DensePlan
from .spec import Layer, NetworkSpec, SpecError

__all__ = [
    "__version__",
    "Activation", "QFormat", "quantize", "requantize", "signed_width",
    "Layer", "NetworkSpec", "SpecError", "golden",
    "DensePlan", "ConverterPlan", "NetworkPlan", "plan_network",
    "DenseLayer", "WidthConverter", "Network", "choose_folding", "default_folding",
    "DEFAULT_TARGET_II",
]
