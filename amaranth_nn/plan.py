"""Layer plans: everything the hardware derives from a spec and a folding, in plain Python.

A plan is the configuration of a block, separate from the gateware that implements it (as
hls4ml keeps a layer's configuration apart from its kernel). :class:`DensePlan` holds, for one
dense layer at one ``(pe, simd)``: the operand, product and accumulator shapes, the ROM words in
the hardware's layout, the pipeline's register chain and every timing figure derived from it
(``ii``, ``pipeline_depth``, :meth:`DensePlan.output_times`, the output FIFO depth), and the
multiplier count. :class:`ConverterPlan` does the same for a width converter;
:class:`~amaranth_nn.network_plan.NetworkPlan` joins the plans of a whole network.

The engines (:class:`~amaranth_nn.dense.DenseLayer`,
:class:`~amaranth_nn.converter.WidthConverter`, :class:`~amaranth_nn.network.Network`)
elaborate plans; folding, export, the resource estimate and the tests read them. Nothing here
builds hardware.
"""

from dataclasses import dataclass
from functools import cached_property

from amaranth.hdl import signed, unsigned

from .fixedpoint import signed_width
from .ii import dense_ii
from .lanes import ceil_div, pack_lanes
from .spec import check_spec

__all__ = ["MEMORY_STAGES", "FIFO_LATENCY", "CONVERTER_STAGES", "BLOCK_ROM_BITS", "HELD_BIAS_WORDS",
           "dense_ii", "check_count", "check_flag", "ROM_KINDS", "Rom", "LayerPlan",
           "RequantizingPlan", "DensePlan", "ConverterPlan"]

#: Registers from a memory address to its data in a register: an address register or the
#: synchronous read, the memory, and two data registers (block RAM can absorb one as its output
#: register, and placement can put the other next to the DSP).
MEMORY_STAGES = 3

#: Read latency of the output FIFO of every block (:class:`~amaranth_nn.plumbing.CreditQueue`'s,
#: an output register and a memory): an entry written at cycle ``t`` can be transferred at
#: cycle ``t + 2``.
FIFO_LATENCY = 2

#: Pipeline registers of the width converter's read side: the (bank, beat) numbers, the beat's
#: lanes of both banks (of each group of beats, :attr:`ConverterPlan.select_groups`), and the
#: bank's (and group's) lanes.
CONVERTER_STAGES = 3

#: Output beats up to which a width converter selects a beat in one stage; past it the select
#: is split over two (:attr:`ConverterPlan.select_groups`).
CONVERTER_ONE_STAGE_BEATS = 8

#: Bias ROMs of at most this many words, in a dense layer whose groups last long enough, are
#: read behind a single register (:attr:`DensePlan.bias_held`).
HELD_BIAS_WORDS = 16

#: ROMs of at least this many bits ask the synthesis tool for block RAM; smaller ones are left
#: to it, and it puts them into LUTs.
BLOCK_ROM_BITS = 2048


def check_count(name, value, limit, what):
    """Check a ``pe``/``simd``-style argument: an integer from 1 to ``limit``; returns it.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If it is less than 1 or more than ``limit`` (``what`` says what the limit is).
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not 1 <= value <= limit:
        raise ValueError(f"{name} must be from 1 to {limit} ({what}), not {value}")
    return value


def check_flag(name, value):
    """``value``, which must be a bool (``name`` starts the TypeError's message)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {value!r}")
    return value


def _weighted_layer(spec, index):
    """Layer ``index`` of ``spec``, checked to be a dense or conv layer (one that the dense
    engine computes).

    Raises
    ------
    TypeError
        If ``spec`` is not a NetworkSpec or ``index`` not an integer.
    ValueError
        If ``index`` is out of range, or the layer is of another kind (naming it).
    """
    check_spec(spec)
    if not isinstance(index, int) or isinstance(index, bool):
        raise TypeError(f"Layer index must be an integer, not {index!r}")
    if not 0 <= index < len(spec.layers):
        raise ValueError(f"Layer index must be from 0 to {len(spec.layers) - 1}, not {index}")
    layer = spec.layers[index]
    if layer.kind not in ("dense", "conv"):
        raise ValueError(f"Layer {index} ({layer.name!r}) is a {layer.kind} layer; the dense "
                         f"engine computes a dense or conv layer")
    return layer


def _operand_shape(lo, hi):
    """Smallest shape holding every integer in ``[lo, hi]``: unsigned when ``lo >= 0``."""
    if lo >= 0:
        return unsigned(max(1, int(hi).bit_length()))
    return signed(signed_width(lo, hi))


#: The kinds of :class:`Rom`: ``kind -> (name in the hardware, file name)``, with ``{L}`` the
#: layer and ``{P}`` the PE.
ROM_KINDS = {
    "weights": ("weights{P}", "layer{L}_weights_pe{P}.hex"),
    "bias": ("biases", "layer{L}_bias.hex"),
    "scale": ("scale", "layer{L}_scale.hex"),
}


@dataclass(frozen=True)
class Rom:
    """One read-only memory of a layer, with its words in the hardware's layout.

    Members
    -------
    layer : int
        Index of the layer.
    kind : str
        One of :data:`ROM_KINDS`: ``"weights"`` (one per PE of a dense or conv layer),
        ``"bias"``, or ``"scale"`` (a scale-and-shift layer's per-channel scales).
    pe : int or None
        The PE of a weight ROM.
    lanes, lane_width : int
        Each word packs ``lanes`` integers of ``lane_width`` bits (see :mod:`amaranth_nn.lanes`).
    signed : bool
        Whether the lanes are two's complement.
    words : tuple of int
        Every word as a non-negative integer, word 0 first.
    layout : str
        Which integer sits in lane ``k`` of word ``w``, for people.
    scope : tuple of str
        The submodules between the layer's block and the memory: ``()`` for a dense or
        scale-and-shift layer, ``("dense",)`` for a conv layer (its dense engine).
    """

    layer: int
    kind: str
    pe: object
    lanes: int
    lane_width: int
    signed: bool
    words: tuple
    layout: str
    scope: tuple = ()

    def __post_init__(self):
        if self.kind not in ROM_KINDS:
            raise ValueError(f"Rom kind must be one of {', '.join(ROM_KINDS)}, not "
                             f"{self.kind!r}")

    @property
    def name(self):
        """Name of the memory inside its block: ``weights{P}``, ``biases`` or ``scale``."""
        return ROM_KINDS[self.kind][0].format(P=self.pe)

    @property
    def path(self):
        """Hierarchy path in a :class:`~amaranth_nn.network.Network`: ``("layer0",
        "weights3")``, ``("layer0", "dense", "weights3")`` in a conv layer."""
        return (f"layer{self.layer}", *self.scope, self.name)

    @property
    def file_name(self):
        """``layer{L}_weights_pe{P}.hex``, ``layer{L}_bias.hex`` or ``layer{L}_scale.hex``."""
        return ROM_KINDS[self.kind][1].format(L=self.layer, P=self.pe)

    @property
    def width(self):
        return self.lanes * self.lane_width

    @property
    def depth(self):
        return len(self.words)

    @property
    def bits(self):
        return self.width * self.depth

    @property
    def block_ram(self):
        """Whether the ROM asks for block RAM (at least :data:`BLOCK_ROM_BITS` bits)."""
        return self.bits >= BLOCK_ROM_BITS


class LayerPlan:
    """The plan of a block of one layer of a spec: its accessors. A subclass sets ``_spec``,
    ``_index`` and ``_layer``."""

    @property
    def spec(self):
        return self._spec

    @property
    def index(self):
        return self._index

    @property
    def layer(self):
        """The layer of the spec."""
        return self._layer


class RequantizingPlan(LayerPlan):
    """The numbers of a layer that requantizes (dense, conv, scale-and-shift), and their shapes,
    from the actual contents: one place for the rules every such engine is built by.

    A subclass sets ``_spec``, ``_index``, ``_layer`` and ``_lut_multipliers``; the multiplier
    operand is the layer's ``multiplier_matrix`` (weights, or the scales of a scale-and-shift
    layer).
    """

    @property
    def lut_multipliers(self):
        """Whether the multipliers are built from logic (:mod:`amaranth_nn.lut_multiplier`)
        instead of the target's DSP blocks."""
        return self._lut_multipliers

    @property
    def in_width(self):
        """Bits per element of the input stream (the previous format's width)."""
        return self._spec.input_format_of(self._index).width

    @property
    def out_width(self):
        """Bits per element of the output stream."""
        return self._layer.output_format.width

    @property
    def input_range(self):
        """Inclusive ``(lo, hi)`` of the integers that can enter the layer."""
        return self._spec.input_range_of(self._index)

    @cached_property
    def x_shape(self):
        """Shape of the input operand: unsigned after a ReLU, as narrow as the range allows."""
        return _operand_shape(*self.input_range)

    @cached_property
    def _multiplier_bounds(self):
        w = self._layer.multiplier_matrix
        return min(int(w.min()), 0), max(int(w.max()), 0)

    @cached_property
    def w_shape(self):
        """Shape of the multiplier operand, from the actual integers (unsigned if none is
        negative)."""
        return _operand_shape(*self._multiplier_bounds)

    @property
    def rounding(self):
        """The rounding constant added to the stored bias, ``2**(s-1)`` (0 when ``s <= 0``)."""
        return self._layer.rounding

    @property
    def shift(self):
        """Requantization shift ``s = Fx + Fw - Fy``."""
        return self._layer.shift

    @cached_property
    def accumulator_range(self):
        """Exact bounds of the accumulator, rounding constant included."""
        lo, hi = self._spec.accumulator_range_of(self._index)
        return lo + self.rounding, hi + self.rounding

    @cached_property
    def acc_width(self):
        """Accumulator width: it holds every value of :attr:`accumulator_range`."""
        return signed_width(*self.accumulator_range)

    @cached_property
    def product_width(self):
        """Width of one product ``x * w`` (at most the accumulator width: sums wrap harmlessly
        modulo it)."""
        lo, hi = self.input_range
        products = [v * int(x) for v in self._multiplier_bounds for x in (lo, hi)]
        return min(signed_width(min(products), max(products)), self.acc_width)

    @property
    def scaled_range(self):
        """Range of the accumulator after the requantization shift, before saturation."""
        lo, hi = self.accumulator_range
        if self.shift > 0:
            return lo >> self.shift, hi >> self.shift
        return lo << -self.shift, hi << -self.shift

    @property
    def output_range(self):
        """Inclusive ``(lo, hi)`` of the outputs: the output format clamped by the activation."""
        return self._layer.output_range


class DensePlan(RequantizingPlan):
    """Everything the hardware of one dense layer at one folding is built from.

    The layer computes ``y = act(requantize(W @ x + b))`` with ``pe`` output neurons in
    parallel, each taking ``simd`` inputs per cycle: an input vector of ``N`` elements is
    ``B = ceil(N/simd)`` beats, the ``M`` outputs are ``G = ceil(M/pe)`` groups (output beats),
    and a vector takes ``ii = G * B`` cycles.

    A conv layer is the same engine on its :attr:`~amaranth_nn.layers.Conv.weight_matrix`:
    ``N = K*C_in`` (a window, in window order), ``M = C_out``, and :attr:`vectors` (its output
    positions) vectors per sample; :class:`~amaranth_nn.conv_plan.ConvPlan` puts the window
    generator before it.

    Parameters
    ----------
    spec : NetworkSpec
        The network.
    index : int
        Which layer of ``spec``: a dense or conv layer.
    pe : int
        Output neurons in parallel, 1 to ``out_features``.
    simd : int
        Inputs per neuron per cycle, 1 to ``in_features``.
    lut_multipliers : bool
        Build the multipliers from logic instead of DSP blocks (same timing).
    running_accumulators : bool
        Accumulators that never restart, each group's sum taken as a difference a cycle
        later (:attr:`running_accumulators`; one cycle more per output beat's latency).

    Raises
    ------
    TypeError
        If ``spec`` is not a NetworkSpec, ``index``, ``pe`` or ``simd`` is not an integer, or
        ``lut_multipliers`` or ``running_accumulators`` is not a bool.
    ValueError
        If ``index``, ``pe`` or ``simd`` is out of range, or the layer is neither dense nor conv
        (the message names the layer).
    """

    def __init__(self, spec, index, *, pe, simd, lut_multipliers=False,
                 running_accumulators=False):
        layer = _weighted_layer(spec, index)
        where = f"layer {index} ({layer.name!r})"
        matrix = layer.multiplier_matrix
        check_count("Pe", pe, matrix.shape[0], f"the out_features of {where}")
        check_count("Simd", simd, matrix.shape[1], f"the in_features of {where}")
        self._spec, self._index, self._layer, self._matrix = spec, index, layer, matrix
        self._pe, self._simd = pe, simd
        self._lut_multipliers = check_flag("Lut_multipliers", lut_multipliers)
        self._running = check_flag("Running_accumulators", running_accumulators)

    @property
    def pe(self):
        return self._pe

    @property
    def simd(self):
        return self._simd

    @property
    def matrix(self):
        """The weights as ``(out_features, in_features)``: a conv layer's columns in window
        order."""
        return self._matrix

    @property
    def in_features(self):
        """``N``: the input vector's length (``K*C_in`` for a conv layer)."""
        return self._matrix.shape[1]

    @property
    def out_features(self):
        """``M``: the outputs per vector (``C_out`` for a conv layer)."""
        return self._matrix.shape[0]

    @property
    def vectors(self):
        """Vectors per sample: 1, or a conv layer's output positions."""
        return self._layer.positions_out if self._layer.kind == "conv" else 1

    @property
    def in_beats(self):
        """Input beats per vector, ``B = ceil(N/simd)``."""
        return ceil_div(self.in_features, self._simd)

    @property
    def out_beats(self):
        """Output beats (groups of ``pe`` neurons) per vector, ``G = ceil(M/pe)``."""
        return ceil_div(self.out_features, self._pe)

    @property
    def ii(self):
        """Cycles per vector in steady state, ``ceil(M/pe) * ceil(N/simd)``."""
        return dense_ii(self.in_features, self.out_features, self._pe, self._simd)

    @property
    def multipliers(self):
        """``pe * simd``."""
        return self._pe * self._simd

    @property
    def in_lanes(self):
        """Elements per input beat, ``simd``."""
        return self._simd

    @property
    def out_lanes(self):
        """Elements per output beat, ``pe``."""
        return self._pe

    # The register chain and the timing derived from it.

    @property
    def running_accumulators(self):
        """Whether each accumulator adds every tree output and never restarts, a group's sum
        being its value after the group's last beat less its value before the first, plus the
        bias: no select before the adder, so that the accumulator loop is the carry chain
        alone (the ECP5's choice, :attr:`amaranth_nn.devices.Device.running_accumulators`),
        for a ``sum`` stage of two subtractors and two registers per PE. Otherwise each group
        starts from the bias through a select, which xc7 packs into the adder's LUTs."""
        return self._running

    @property
    def tree_levels(self):
        """Register levels of the ``simd``-input adder tree, ``ceil(log2(simd))``."""
        return (self._simd - 1).bit_length()

    @property
    def stages(self):
        """The register chain: for each stage, the cycle after issuing a weight word at which
        that word's data is in the stage's register.

        ``memory`` (weight and input words), ``operands`` (the DSP input registers),
        ``products`` (the DSP output registers), ``tree`` (the adder tree's output; equal to
        ``products`` when ``simd`` is 1), ``accumulator``, ``sum`` (the group's sum, bias
        included: a register of its own with :attr:`running_accumulators`, else the
        accumulator), and ``clamp`` (requantized, saturated and activated, on its way into the
        output FIFO).
        """
        chain = (("memory", MEMORY_STAGES), ("operands", 1), ("products", 1),
                 ("tree", self.tree_levels), ("accumulator", 1), ("sum", int(self._running)),
                 ("clamp", 1))
        offsets, cycle = {}, 0
        for name, registers in chain:
            cycle += registers
            offsets[name] = cycle
        return offsets

    @property
    def pipeline_depth(self):
        """Cycles from issuing a group's last weight word to its output beat's transfer:
        the register chain of :attr:`stages` plus the output FIFO, ``9 + ceil(log2(simd))``,
        one more with :attr:`running_accumulators`."""
        return self.stages["clamp"] + FIFO_LATENCY

    @property
    def bias_held(self):
        """Whether the bias word is read behind a single register, as constants selected by
        the group number of the cycle before (in place of the bias ROM's
        :data:`MEMORY_STAGES` registers and a group number delayed to meet them).

        A group's word is then in that register from 2 cycles after its first issue until 2
        cycles after the next group's first issue, at least ``in_beats`` cycles later, so it
        meets the group's first beat at the accumulator (``stages["tree"]`` cycles after the
        issue) when ``in_beats >= stages["tree"] - 1``. Only for a bias ROM of at most
        :data:`HELD_BIAS_WORDS` words (one LUT level per bit on a 4-input-LUT device).
        """
        return (self.out_beats <= HELD_BIAS_WORDS and not self.bias_rom.block_ram
                and self.in_beats >= self.stages["tree"] - 1)

    @property
    def fifo_depth(self):
        """Output FIFO entries that let the sequencer issue without ever waiting.

        A credit taken when a group starts returns ``B - 1 + stages["clamp"] + FIFO_LATENCY +
        2`` cycles later (the pop and the credit register), and a group starts every ``B``
        cycles.
        """
        beats = self.in_beats
        return max(2, ceil_div(beats + self.stages["clamp"] + FIFO_LATENCY + 1, beats))

    def output_times(self, arrivals):
        """Transfer cycles of the output beats of isolated vectors (sink always ready).

        Parameters
        ----------
        arrivals : sequence of int
            Transfer cycles of the input beats of one or more consecutive vectors
            (:attr:`in_beats` each).

        Returns
        -------
        list of int
            Input beat ``j`` of a vector issues (for its first group) at
            ``i_j = max(i_(j-1) + 1, arrivals[j] + 1)``, the later groups follow back to back,
            and output beat ``g`` is transferred at its group's last issue plus
            :attr:`pipeline_depth`. For one vector, ``s + g*B + pipeline_depth`` with
            ``s = max_j(arrivals[j] + B - j)``.
        """
        beats, times, issue = self.in_beats, [], None
        for start in range(0, len(arrivals), beats):
            for a in arrivals[start:start + beats]:
                issue = a + 1 if issue is None else max(issue + 1, a + 1)
            for g in range(self.out_beats):
                times.append(issue + g * beats + self.pipeline_depth)
            issue += (self.out_beats - 1) * beats
        return times

    # ROM contents.

    @property
    def weight_rom_shape(self):
        """``(depth, width)`` of each PE's weight ROM: ``ii`` words of ``simd`` weights."""
        return self.ii, self._simd * self.w_shape.width

    @property
    def input_buffer_shape(self):
        """``(depth, width)`` of the input double buffer: two banks of ``in_beats`` words
        (rounded up to a power of two) of ``simd`` input operands."""
        return 2 << (self.in_beats - 1).bit_length(), self._simd * self.x_shape.width

    @property
    def bias_rom_shape(self):
        """``(depth, width)`` of the bias ROM: one word of ``pe`` biases per group."""
        return self.out_beats, self._pe * self.acc_width

    @cached_property
    def weight_roms(self):
        """One :class:`Rom` per PE: word ``g*B + b`` of PE ``p`` holds
        ``W[g*pe + p, b*simd + k]`` in lane ``k`` (zero where the indices pass the matrix), in
        the weight operand's width."""
        w, pe, simd, beats = self._matrix, self._pe, self._simd, self.in_beats
        width = self.w_shape.width
        roms = []
        for p in range(pe):
            words = []
            for g in range(self.out_beats):
                row = g * pe + p
                for b in range(beats):
                    lanes = w[row, b * simd:(b + 1) * simd] if row < w.shape[0] else ()
                    words.append(pack_lanes(lanes, width))
            signedness = "signed" if self.w_shape.signed else "unsigned"
            roms.append(Rom(self._index, "weights", p, simd, width, self.w_shape.signed,
                            tuple(words), f"word g*{beats} + b, lane k = W[g*{pe} + {p}, "
                                          f"b*{simd} + k]; {signedness}; zero past the matrix"))
        return tuple(roms)

    @cached_property
    def bias_rom(self):
        """The bias :class:`Rom`: word ``g`` holds ``bias[g*pe + p] + rounding`` in lane ``p``,
        in the accumulator width (zero past the last neuron)."""
        bias, pe, rounding = self._layer.bias, self._pe, self.rounding
        words = tuple(pack_lanes([int(v) + rounding for v in bias[g * pe:(g + 1) * pe]],
                                 self.acc_width)
                      for g in range(self.out_beats))
        return Rom(self._index, "bias", None, pe, self.acc_width, True, words,
                   f"word g, lane p = bias[g*{pe} + p] + {rounding}; signed; zero past the "
                   f"last neuron")

    @property
    def roms(self):
        """The weight ROMs, then the bias ROM."""
        return self.weight_roms + (self.bias_rom,)

    def __repr__(self):
        return (f"DensePlan(layer {self._index} {self._layer.name!r}, {self.in_features} -> "
                f"{self.out_features}, pe {self._pe}, simd {self._simd}, ii {self.ii}"
                f"{', LUT multipliers' if self._lut_multipliers else ''}"
                f"{', running accumulators' if self._running else ''})")


class ConverterPlan:
    """A width converter: vectors of ``length`` elements from ``in_lanes`` to ``out_lanes`` per
    beat.

    Lane ``k`` of beat ``b`` is element ``b*lanes + k``; input lanes past ``length`` are
    ignored and output lanes past it are zero. Output beat ``k`` is issued as soon as the input
    beat holding its last element has arrived, so for an isolated vector whose input beats are
    transferred at cycles ``a_j`` (sink ready) it is transferred at
    ``o_k = max(o_(k-1) + 1, a_(j(k)) + delay)``.

    Parameters
    ----------
    width : int
        Bits per element (signed).
    in_lanes, out_lanes : int
        Elements per input and output beat, 1 to ``length``.
    length : int
        Elements per vector.

    Raises
    ------
    TypeError
        If an argument is not an integer.
    ValueError
        If one is out of range.
    """

    def __init__(self, width, in_lanes, out_lanes, length):
        for name, value in (("Width", width), ("Length", length)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value}")
        check_count("In lanes", in_lanes, length, "the vector length")
        check_count("Out lanes", out_lanes, length, "the vector length")
        self.width, self.in_lanes, self.out_lanes, self.length = width, in_lanes, out_lanes, length

    @property
    def in_beats(self):
        return ceil_div(self.length, self.in_lanes)

    @property
    def out_beats(self):
        return ceil_div(self.length, self.out_lanes)

    @property
    def delay(self):
        """Cycles from the transfer of the input beat that completes an output beat to the
        transfer of that output beat (sink ready): one to see the write,
        :data:`CONVERTER_STAGES`, and the output FIFO's latency (6)."""
        return 1 + CONVERTER_STAGES + FIFO_LATENCY

    @property
    def fifo_depth(self):
        """Output FIFO entries: the credit loop of the read side (see :attr:`delay`)."""
        return CONVERTER_STAGES + FIFO_LATENCY + 2

    @property
    def register_bits(self):
        """Flip-flops of the two banks that hold a vector each."""
        return 2 * self.length * self.width

    @property
    def group_beats(self):
        """Output beats per group of the select's second stage: all of them up to
        :data:`CONVERTER_ONE_STAGE_BEATS`, else ``2**ceil(log2(out_beats) / 2)``, so that
        neither stage selects among many more than ``sqrt(2 * out_beats)`` values (a 32-beat
        select in one stage was 4 LUT levels, the slowest path of a network on ECP5)."""
        if self.out_beats <= CONVERTER_ONE_STAGE_BEATS:
            return self.out_beats
        return 1 << -(-(self.out_beats - 1).bit_length() // 2)

    @property
    def select_groups(self):
        """Groups of :attr:`group_beats` that the second stage selects a beat within, for
        each bank; the third selects the group and the bank."""
        return ceil_div(self.out_beats, self.group_beats)

    @property
    def select_bits(self):
        """Flip-flops of the select's second and third stages."""
        return (2 * self.select_groups + 1) * self.out_lanes * self.width

    def needed_beat(self, k):
        """Input beat holding the last element of output beat ``k``."""
        return (min((k + 1) * self.out_lanes, self.length) - 1) // self.in_lanes

    def output_times(self, arrivals):
        """Transfer cycles of an isolated vector's output beats, given the input beats'."""
        times = []
        for k in range(self.out_beats):
            t = arrivals[self.needed_beat(k)] + self.delay
            times.append(t if not times else max(t, times[-1] + 1))
        return times

    def __repr__(self):
        return (f"ConverterPlan({self.length} x {self.width} bits, {self.in_lanes} -> "
                f"{self.out_lanes} lanes)")
