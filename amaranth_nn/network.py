"""A whole network as one stream component: the blocks of its layers chained, width converters
between."""

from amaranth import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .conv import ConvLayer
from .converter import WidthConverter
from .dense import DenseLayer
from .folding import plan_network
from .network_plan import check_hardware
from .pool import Pool
from .scale_shift import ScaleShift
from .targets import check_arch
from .unused import rejecting

__all__ = ["COMPONENTS", "Network"]


def _dense(plan, arch):
    return DenseLayer(plan, arch=arch)


def _conv(plan, arch):
    return ConvLayer(plan, arch=arch)


def _pool(plan, arch):
    return Pool(plan, arch=arch)


def _scale_shift(plan, arch):
    return ScaleShift(plan, arch=arch)


#: The component of every block kind: ``kind -> build(plan, arch)``.
COMPONENTS = {
    "dense": _dense,
    "conv": _conv,
    "maxpool": _pool,
    "avgpool": _pool,
    "scale_shift": _scale_shift,
}


class Network(wiring.Component):
    """The hardware of a :class:`~amaranth_nn.spec.NetworkSpec`, bit-exact with the golden model.

    Every layer but a flatten is a block, built by its kind (:data:`COMPONENTS`: a dense layer
    is a :class:`~amaranth_nn.dense.DenseLayer` with its own ``(pe, simd)``) from its plan. The
    blocks are chained stream to stream; where a block's out lanes differ from the next block's
    in lanes a :class:`~amaranth_nn.converter.WidthConverter` regroups the elements of each
    position. The :attr:`plan` holds every block's and converter's facts (widths, ROM words,
    timing). All blocks run at once, on consecutive samples, so the network takes :attr:`ii`
    (the largest block II) cycles per sample in steady state.

    Use it inside your own design like any component::

        m.submodules.net = net = Network(spec)
        wiring.connect(m, source, net.i)   # source: an Out(net.input_signature) interface
        wiring.connect(m, net.o, sink)     # sink: an In(net.output_signature) interface

    (the README has a complete example.)

    Parameters
    ----------
    spec : NetworkSpec
        The network.
    folding : sequence, optional
        One entry per layer (:mod:`amaranth_nn.folding`): ``(pe, simd)`` for a dense layer,
        ``1 <= pe <= out_features`` and ``1 <= simd <= in_features``.
    target_ii : int, optional
        Instead of ``folding``: the largest acceptable II, from which the folding is chosen by
        :func:`~amaranth_nn.folding.choose_folding` (the fewest multipliers, a width converter
        counting as one). With neither,
        :func:`~amaranth_nn.folding.default_folding` (target II 64 for a network of vectors).
    arch : str or Target
        Which FPGA primitives to build, one of :data:`~amaranth_nn.targets.ARCHES` or a
        :class:`~amaranth_nn.targets.Target`: ``"auto"`` (the default) builds registered
        ``MULT18X18D`` blocks and LUT ROMs when elaborated for an ECP5 platform, and portable
        ``x * w`` between registers otherwise (which yosys maps to DSP48E1 and SB_MAC16);
        ``"generic"`` and ``"ecp5"`` force one or the other.
    lut_multipliers : collection of int
        The layers (indices into ``spec.layers``) whose multipliers are built from logic
        instead of DSP blocks, with the same timing (:mod:`amaranth_nn.lut_multiplier`); a
        board build chooses them when the device's DSP blocks run out.
    running_accumulators : bool
        Dense layers whose accumulators never restart, a group's sum taken as a difference
        one cycle later (:attr:`DensePlan.running_accumulators
        <amaranth_nn.plan.DensePlan.running_accumulators>`; not conv layers, see
        :class:`~amaranth_nn.network_plan.NetworkPlan`): a shorter accumulator loop, for one
        more cycle of latency per dense layer and two registers per PE; a board build sets it
        where the device says so (the ECP5).

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(signed(spec.input_format.width), L_in)))``
        Input samples as flat vectors of ``spec.input_size`` integers (stream order),
        :attr:`in_beats` beats each: lane ``k`` of beat ``b`` is element ``b*L_in + k``; lanes
        past the end are ignored. ``L_in`` is ``plan.in_lanes``: the first layer's ``simd``, or
        the input channels of a first convolution.
    o : ``Out(stream.Signature(data.ArrayLayout(signed(spec.output_format.width), L_out)))``
        Output samples as flat vectors, :attr:`out_beats` beats each, in the same order; lanes
        past the end are zero. ``L_out`` is ``plan.out_lanes``, the last layer's ``pe`` (or
        lanes).

    Raises
    ------
    TypeError
        If ``spec`` is not a NetworkSpec, ``folding`` is not a sequence of pairs, a ``pe``,
        ``simd`` or ``target_ii`` is not an integer, or ``arch`` is of the wrong type.
    ValueError
        If both ``folding`` and ``target_ii`` are given, ``folding`` has the wrong length, a
        ``pe`` or ``simd`` is outside ``1`` to its layer's size (the message names the layer),
        ``target_ii`` is less than 1, or ``arch`` is an unknown name.
    NoHardwareYet
        For a layer whose kind has no component yet.
    """

    def __init__(self, spec, folding=None, *, target_ii=None, arch="auto", lut_multipliers=(),
                 running_accumulators=False):
        with rejecting(self):
            check_hardware(spec, COMPONENTS)
            self._plan = plan_network(spec, folding, target_ii=target_ii,
                                      lut_multipliers=lut_multipliers,
                                      running_accumulators=running_accumulators)
            self._arch = check_arch(arch)
        self._input_signature = stream.Signature(data.ArrayLayout(
            signed(spec.input_format.width), self._plan.in_lanes))
        self._output_signature = stream.Signature(data.ArrayLayout(
            signed(spec.output_format.width), self._plan.out_lanes))
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
        return self._plan.spec

    @property
    def plan(self):
        """The :class:`~amaranth_nn.network_plan.NetworkPlan`: every block's and converter's
        plan."""
        return self._plan

    @property
    def arch(self):
        return self._arch

    @property
    def folding(self):
        """The checked folding, a pair per layer (:attr:`NetworkPlan.folding
        <amaranth_nn.network_plan.NetworkPlan.folding>`)."""
        return self._plan.folding

    @property
    def ii(self):
        """Cycles per sample in steady state: the largest block II (for a dense network,
        ``max(ceil(M/pe) * ceil(N/simd))``)."""
        return self._plan.ii

    @property
    def in_beats(self):
        """Input beats per sample (for a dense network, ``ceil(input_size / simd0)``)."""
        return self._plan.in_beats

    @property
    def out_beats(self):
        """Output beats per sample (for a dense network, ``ceil(output_size / pe_last)``)."""
        return self._plan.out_beats

    @property
    def multipliers(self):
        """Total multipliers (the sum of ``pe * simd`` for a dense network)."""
        return self._plan.multipliers

    @property
    def latency(self):
        """Cycles from the first input beat of a sample entering an idle network to its last
        output beat; see :attr:`NetworkPlan.latency
        <amaranth_nn.network_plan.NetworkPlan.latency>`."""
        return self._plan.latency

    def output_times(self, arrivals=None):
        """Transfer cycles of an isolated sample's output beats; see
        :meth:`NetworkPlan.output_times <amaranth_nn.network_plan.NetworkPlan.output_times>`."""
        return self._plan.output_times(arrivals)

    def elaborate(self, platform):
        m = Module()
        previous = wiring.flipped(self.i)
        converters = self._plan.converters + (None,)
        for plan, converter in zip(self._plan.layers, converters, strict=True):
            kind = self.spec.layers[plan.index].kind
            block = m.submodules[f"layer{plan.index}"] = COMPONENTS[kind](plan, self._arch)
            wiring.connect(m, previous, block.i)
            previous = block.o
            if converter is not None:
                block = m.submodules[f"convert{plan.index}"] = WidthConverter(converter)
                wiring.connect(m, previous, block.i)
                previous = block.o
        wiring.connect(m, previous, wiring.flipped(self.o))
        return m
