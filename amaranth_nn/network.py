# amaranth: UnusedElaboratable=no
"""A whole network as one stream component: dense layers chained, width converters between."""

# The first line keeps amaranth from warning about the layers and converters built here: they
# are built in Network.__init__ (so that their properties and errors are available at once) and
# elaborated by Network.elaborate, and whether the Network is used is its creator's business.

from amaranth import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .dense import DenseLayer, WidthConverter
from .folding import check_folding, choose_folding, default_folding
from .spec import NetworkSpec

__all__ = ["Network"]


class Network(wiring.Component):
    """The hardware of a :class:`~amaranth_nn.spec.NetworkSpec`, bit-exact with the golden model.

    Every layer is a :class:`~amaranth_nn.dense.DenseLayer` with its own ``(pe, simd)``. The
    layers are chained stream to stream; where a layer's ``pe`` differs from the next layer's
    ``simd`` a :class:`~amaranth_nn.dense.WidthConverter` regroups the elements. All layers run
    at once, on consecutive vectors, so the network takes :attr:`ii` (the largest layer II)
    cycles per vector in steady state.

    Use it inside your own design like any component::

        m.submodules.net = net = Network(spec)
        wiring.connect(m, source, net.i)   # source: an Out(net.input_signature) interface
        wiring.connect(m, net.o, sink)     # sink: an In(net.output_signature) interface

    (the README has a complete example.)

    Parameters
    ----------
    spec : NetworkSpec
        The network.
    folding : sequence of (int, int), optional
        ``(pe, simd)`` per layer, ``1 <= pe <= out_features`` and ``1 <= simd <= in_features``.
    target_ii : int, optional
        Instead of ``folding``: the largest acceptable II, from which the folding is chosen by
        :func:`~amaranth_nn.folding.choose_folding` (the fewest multipliers, a width converter
        counting as one). With neither,
        :func:`~amaranth_nn.folding.default_folding` (target II 64).
    arch : str
        Which FPGA primitives to build, one of :data:`~amaranth_nn.dense.ARCHES`: ``"auto"``
        (the default) builds registered ``MULT18X18D`` blocks and LUT ROMs when elaborated for
        an ECP5 platform, and portable ``x * w`` between registers otherwise (which yosys maps
        to DSP48E1 and SB_MAC16); ``"generic"`` and ``"ecp5"`` force one or the other.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(signed(spec.input_format.width), simd0)))``
        Input vectors of ``spec.input_size`` integers, :attr:`in_beats` beats each: lane ``k``
        of beat ``b`` is element ``b*simd0 + k``; lanes past the end are ignored.
    o : ``Out(stream.Signature(data.ArrayLayout(signed(spec.output_format.width), pe_last)))``
        Output vectors, :attr:`out_beats` beats each, in the same order; lanes past the end
        are zero.

    Raises
    ------
    TypeError
        If ``spec`` is not a NetworkSpec, ``folding`` is not a sequence of pairs, or a ``pe``,
        ``simd`` or ``target_ii`` is not a positive integer.
    ValueError
        If both ``folding`` and ``target_ii`` are given, ``folding`` has the wrong length, or a
        ``pe`` or ``simd`` exceeds its layer's size (the message names the layer).
    """

    def __init__(self, spec, folding=None, *, target_ii=None, arch="auto"):
        if not isinstance(spec, NetworkSpec):
            raise TypeError(f"Spec must be a NetworkSpec, not {spec!r}")
        if folding is not None and target_ii is not None:
            raise ValueError("Pass either a folding or a target II, not both")
        if folding is not None:
            folding = check_folding(spec, folding)
        elif target_ii is not None:
            folding = choose_folding(spec, target_ii)
        else:
            folding = default_folding(spec)
        self._spec = spec
        self._folding = folding
        self._layers = tuple(DenseLayer(spec, index, pe=pe, simd=simd, arch=arch)
                             for index, (pe, simd) in enumerate(folding))
        self._converters = []
        for index in range(len(self._layers) - 1):
            pe, simd = folding[index][0], folding[index + 1][1]
            if pe == simd:
                self._converters.append(None)
            else:
                shape = signed(spec.layers[index].output_format.width)
                self._converters.append(WidthConverter(
                    shape, pe, simd, spec.layers[index].out_features))
        self._converters = tuple(self._converters)
        self._input_signature = stream.Signature(data.ArrayLayout(
            signed(spec.input_format.width), folding[0][1]))
        self._output_signature = stream.Signature(data.ArrayLayout(
            signed(spec.output_format.width), folding[-1][0]))
        super().__init__({
            "i": In(self._input_signature),
            "o": Out(self._output_signature),
        })

    @property
    def input_signature(self):
        """The ``stream.Signature`` of :attr:`i` (as a source sees it): use
        ``Out(net.input_signature)`` for a port that feeds the network, ``In(...)`` for one
        that forwards into it."""
        return self._input_signature

    @property
    def output_signature(self):
        """The ``stream.Signature`` of :attr:`o` (as the network drives it)."""
        return self._output_signature

    @property
    def spec(self):
        return self._spec

    @property
    def folding(self):
        """``(pe, simd)`` of every layer, as a tuple of pairs."""
        return self._folding

    @property
    def layers(self):
        """The :class:`~amaranth_nn.dense.DenseLayer` of every layer."""
        return self._layers

    @property
    def converters(self):
        """The :class:`~amaranth_nn.dense.WidthConverter` after each layer but the last, or
        ``None`` where the layer's ``pe`` equals the next layer's ``simd``."""
        return self._converters

    @property
    def ii(self):
        """Cycles per vector in steady state: the largest layer II,
        ``max(ceil(M/pe) * ceil(N/simd))``."""
        return max(layer.ii for layer in self._layers)

    @property
    def in_beats(self):
        """Input beats per vector, ``ceil(input_size / simd0)``."""
        return self._layers[0].in_beats

    @property
    def out_beats(self):
        """Output beats per vector, ``ceil(output_size / pe_last)``."""
        return self._layers[-1].out_beats

    @property
    def multipliers(self):
        """Total multipliers, the sum of ``pe * simd``."""
        return sum(layer.multipliers for layer in self._layers)

    def output_times(self, arrivals=None):
        """Transfer cycles of an isolated vector's output beats, by the latency recurrence.

        Parameters
        ----------
        arrivals : sequence of int, optional
            Transfer cycles of the vector's input beats; by default ``0, 1, 2, ...`` (source
            valid on every cycle).
        """
        times = list(range(self.in_beats)) if arrivals is None else list(arrivals)
        for index, layer in enumerate(self._layers):
            times = layer.output_times(times)
            if index < len(self._converters) and self._converters[index] is not None:
                times = self._converters[index].output_times(times)
        return times

    @property
    def latency(self):
        """Cycles from the transfer of a vector's first input beat to that of its last output
        beat, for a vector entering an idle network with the sink always ready and the source
        valid on every cycle.

        Exact, by this recurrence over the blocks (:meth:`output_times` evaluates it):

        - input beat ``j`` is transferred at cycle ``a_j = j``;
        - a dense layer with ``B = ceil(N/simd)`` input beats issues the last beat of its first
          output group at ``s = max_j(a_j + B - j)`` and transfers output beat ``g`` at
          ``e_g = s + g*B + D``, where ``D = 9 + ceil(log2(simd))`` is its
          :attr:`~amaranth_nn.dense.DenseLayer.pipeline_depth`;
        - a width converter transfers output beat ``k`` at
          ``o_k = max(o_(k-1) + 1, a_(j(k)) + 6)``, where ``j(k)`` is the input beat holding
          the beat's last element;
        - the latency is the cycle of the last output beat.

        Without width converters this is
        ``latency = (B_0 - 1) + sum_l (II_l - B_l + D_l + 1)``; for a single layer,
        ``II + D``.
        """
        return self.output_times()[-1]

    def elaborate(self, platform):
        m = Module()
        previous = None
        for index, layer in enumerate(self._layers):
            m.submodules[f"layer{index}"] = layer
            if previous is None:
                wiring.connect(m, wiring.flipped(self.i), layer.i)
            else:
                wiring.connect(m, previous, layer.i)
            previous = layer.o
            if index < len(self._converters) and self._converters[index] is not None:
                converter = self._converters[index]
                m.submodules[f"convert{index}"] = converter
                wiring.connect(m, previous, converter.i)
                previous = converter.o
        wiring.connect(m, previous, wiring.flipped(self.o))
        return m
