"""The convolution layer: the window generator feeding the dense engine.

:class:`ConvLayer` elaborates a :class:`~amaranth_nn.conv_plan.ConvPlan`: a
:class:`~amaranth_nn.sliding.SlidingWindow` turns the stream of input positions into windows
in window order, and a :class:`~amaranth_nn.dense.DenseLayer` on the layer's weight matrix
computes each window as one vector, so that the outputs stream position by position.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring

from .block import PlannedBlock
from .conv_plan import ConvPlan
from .dense import DenseLayer
from .sliding import SlidingWindow

__all__ = ["ConvLayer"]


class ConvLayer(PlannedBlock):
    """One fixed-point conv layer of a spec, 1-D or 2-D, bit-exact with
    :func:`amaranth_nn.golden.run`.

    Parameters
    ----------
    plan : ConvPlan
        The layer and its folding: ``ConvPlan(spec, index, pe=..., simd=..., in_lanes=...)``.
    arch : str or Target
        Which primitives the dense engine builds (see
        :class:`~amaranth_nn.dense.DenseLayer`), and the window generator's RAM.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(signed(Wx), in_lanes)))``
        Each sample's positions in raster order, ``ceil(C_in/in_lanes)`` beats each; lane
        ``k`` of beat ``b`` is channel ``b*in_lanes + k``; lanes past ``C_in`` are ignored.
    o : ``Out(stream.Signature(data.ArrayLayout(signed(Wy), pe)))``
        The output positions in raster order, ``ceil(C_out/pe)`` beats each; lanes past
        ``C_out`` are zero.

    Raises
    ------
    TypeError
        If ``plan`` is not a ConvPlan or ``arch`` is neither a name nor a Target.
    ValueError
        If ``arch`` is an unknown name.
    """

    PLAN = ConvPlan

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = window = SlidingWindow(self._plan.window, arch=self._arch)
        m.submodules.dense = dense = DenseLayer(self._plan.dense, arch=self._arch)
        wiring.connect(m, wiring.flipped(self.i), window.i)
        wiring.connect(m, window.o, dense.i)
        wiring.connect(m, dense.o, wiring.flipped(self.o))
        return m
