"""The plans of a pooling layer: its reducer alone, and the reducer behind a sliding window.

:class:`ReducerPlan` holds, for one ``maxpool`` or ``avgpool`` layer at one lane count, what
:class:`~amaranth_nn.pool.PoolReducer` is built from: the window beats it takes (in kernel
order), the width of its partial results, its register chain and the timing derived from it.
:class:`PoolPlan` is the whole layer, :class:`~amaranth_nn.pool.Pool`: a
:class:`~amaranth_nn.window_plan.WindowPlan` in kernel order, then the reducer.
"""

from functools import cached_property

from amaranth.hdl import signed

from .block_plan import LanesPlan
from .fixedpoint import signed_width
from .lanes import ceil_div
from .plan import FIFO_LATENCY
from .window_plan import WindowPlan

__all__ = ["POOL_KINDS", "REDUCER_STAGES", "RAM_MIN_GROUPS", "RAM_MIN_BITS", "ReducerPlan",
           "PoolPlan"]

#: The layer kinds a pooling plan takes.
POOL_KINDS = ("maxpool", "avgpool")

#: Registers of the reducer: the input beat, the beat again (with a max's comparison, or the
#: partial it meets read from the RAM), then the newest partial result (the output beat on its
#: way into the output FIFO).
REDUCER_STAGES = 3

#: The fewest beats per position, ``G``, and the fewest bits, ``G * lanes * partial_width``,
#: of the partial results that the reducer keeps in a RAM rather than a shift register: the
#: sizes that yosys puts into block RAM on iCE40 (smaller, it builds the RAM from flip-flops
#: and a read multiplexer, dearer than the shift register). The next beat of a group, ``G``
#: cycles later at the earliest, must be read after the previous one's partial is written
#: back (from stage 3): ``G >= 4``.
RAM_MIN_GROUPS = 9
RAM_MIN_BITS = 73


class ReducerPlan(LanesPlan):
    """The reducer of one pooling layer at ``lanes`` lanes: windows in, pooled positions out.

    Its input is every output position's window in kernel order, ``K*G`` beats of ``lanes``
    lanes (``K`` kernel positions, ``G = ceil(C/lanes)``): beat ``b`` is kernel position
    ``b // G``, and lane ``j`` is channel ``(b % G)*lanes + j`` (zero past ``C``). Its output is
    each position's ``G`` beats in the stream format. A max pool keeps the largest integer of
    each channel; an average pool the sum plus the rounding constant, and outputs it shifted
    right by ``m = log2(K)``, ``floor((sum + 2**(m-1)) / 2**m)``, as
    :func:`amaranth_nn.golden.run` does.

    Parameters
    ----------
    spec : NetworkSpec
    index : int
        Which layer of ``spec`` (a ``maxpool`` or ``avgpool`` layer).
    lanes : int
        Channels per beat, 1 to the layer's channels.

    Raises
    ------
    TypeError
        If ``spec`` is not a NetworkSpec, or ``index`` or ``lanes`` is not an integer.
    ValueError
        If ``index`` or ``lanes`` is out of range, or the layer is not a pooling layer (the
        message names the layer).
    """

    KINDS = POOL_KINDS

    @property
    def window(self):
        """Kernel positions per window, ``K``."""
        return self._layer.window

    @property
    def positions_out(self):
        return self._layer.positions_out

    @property
    def beats_per_position(self):
        """``G = ceil(C/lanes)``: beats per kernel position and per output position, and the
        partial results the reducer keeps."""
        return ceil_div(self.channels, self._lanes)

    @property
    def beats_per_window(self):
        """``K * G``."""
        return self.window * self.beats_per_position

    @property
    def in_beats(self):
        """Window beats per sample, ``positions_out * K * G``."""
        return self.positions_out * self.beats_per_window

    @property
    def out_beats(self):
        """Output beats per sample, ``positions_out * G``."""
        return self.positions_out * self.beats_per_position

    @property
    def ii(self):
        """Cycles per sample in steady state: one window beat per cycle."""
        return self.in_beats

    @property
    def multipliers(self):
        return 0

    @property
    def roms(self):
        return ()

    @property
    def width(self):
        """Bits per element, in and out (a pool keeps its input format)."""
        return self._spec.input_format_of(self._index).width

    in_width = out_width = width

    @property
    def shift(self):
        """The average's shift ``m = log2(K)``; 0 for a max pool."""
        return self._layer.shift if self.kind == "avgpool" else 0

    @property
    def rounding(self):
        """What a window's sum starts from, ``2**(m-1)`` (0 for ``m = 0`` and a max pool)."""
        return self._layer.rounding if self.kind == "avgpool" else 0

    @cached_property
    def partial_width(self):
        """Bits of a partial result: the input width for a max pool, and for an average pool
        the width of every window sum plus the rounding constant."""
        if self.kind == "maxpool":
            return self.width
        lo, hi = self._spec.accumulator_range_of(self._index)
        return signed_width(lo + self.rounding, hi + self.rounding)

    @property
    def partials_in_ram(self):
        """Whether the ``G`` partial results are a RAM of ``G`` words (from
        :data:`RAM_MIN_GROUPS` words and :data:`RAM_MIN_BITS` bits) rather than a shift
        register."""
        groups = self.beats_per_position
        return (groups >= RAM_MIN_GROUPS
                and groups * self._lanes * self.partial_width >= RAM_MIN_BITS)

    @property
    def ram_shape(self):
        """``(depth, width)`` of the partials' RAM, ``(G, lanes * partial_width)``; None when
        they are a shift register."""
        if not self.partials_in_ram:
            return None
        return self.beats_per_position, self._lanes * self.partial_width

    @property
    def register_bits(self):
        """Flip-flops: the input beat and either the ``G`` partial results (a shift register
        without reset, which Xilinx tools can put into LUT shift registers) or the partial
        read from the RAM and the newest one."""
        partials = 2 if self.partials_in_ram else self.beats_per_position
        return self._lanes * (self.width + partials * self.partial_width)

    @property
    def pipeline_depth(self):
        """Cycles from a window's last beat of a group to that output beat's transfer (sink
        ready): :data:`REDUCER_STAGES` plus the output FIFO, 5."""
        return REDUCER_STAGES + FIFO_LATENCY

    @property
    def fifo_depth(self):
        """Output FIFO entries for one output beat per cycle: the credit loop
        (:class:`~amaranth_nn.plumbing.CreditQueue`)."""
        return REDUCER_STAGES + FIFO_LATENCY + 2

    def output_times(self, arrivals):
        """Transfer cycles of an isolated sample's output beats (sink always ready).

        Parameters
        ----------
        arrivals : sequence of int
            Transfer cycles of the sample's :attr:`in_beats` window beats.

        Returns
        -------
        list of int
            Output beat ``g`` of position ``p``: the transfer of window ``p``'s beat
            ``(K-1)*G + g`` plus :attr:`pipeline_depth`.
        """
        groups, per_window = self.beats_per_position, self.beats_per_window
        last = per_window - groups
        return [arrivals[p * per_window + last + g] + self.pipeline_depth
                for p in range(self.positions_out) for g in range(groups)]

    def __repr__(self):
        return (f"ReducerPlan(layer {self._index} {self._layer.name!r}, {self.kind}, "
                f"lanes {self._lanes}, ii {self.ii})")


class PoolPlan(LanesPlan):
    """One pooling layer at ``lanes`` lanes: a sliding-window generator in kernel order
    (:attr:`window`, a :class:`~amaranth_nn.window_plan.WindowPlan`) followed by the reducer
    (:attr:`reducer`, a :class:`ReducerPlan`).

    A sample streams in as its positions, ``ceil(C/lanes)`` beats each, and out as its pooled
    positions in the same format. In steady state the generator supplies one window beat per
    cycle, so a sample takes ``ii = max(positions_out * K * G, positions_in * G)`` cycles (the
    second only when the stride skips inputs).

    Parameters
    ----------
    spec : NetworkSpec
    index : int
        Which layer of ``spec`` (a ``maxpool`` or ``avgpool`` layer).
    lanes : int
        Channels per beat, in and out, 1 to the layer's channels.

    Raises
    ------
    TypeError, ValueError
        As :class:`ReducerPlan`.
    """

    KINDS = POOL_KINDS

    def __init__(self, spec, index, *, lanes):
        super().__init__(spec, index, lanes=lanes)
        self._reducer = ReducerPlan(spec, index, lanes=lanes)
        layer = self._layer
        self._window = WindowPlan(signed(self._reducer.width), layer.spatial_in,
                                  layer.output_channels, layer.kernel, layer.stride,
                                  layer.padding, lanes, lanes, order="kernel")

    @property
    def window(self):
        """The :class:`~amaranth_nn.window_plan.WindowPlan` of the generator."""
        return self._window

    @property
    def reducer(self):
        """The :class:`ReducerPlan`."""
        return self._reducer

    @property
    def in_width(self):
        return self._reducer.width

    @property
    def out_width(self):
        return self._reducer.width

    @property
    def in_beats(self):
        """Input beats per sample, ``positions_in * G``."""
        return self._window.in_beats

    @property
    def out_beats(self):
        """Output beats per sample, ``positions_out * G``."""
        return self._reducer.out_beats

    @property
    def ii(self):
        """Cycles per sample in steady state: the generator's, one beat per cycle on its busier
        side (the reducer takes one window beat per cycle)."""
        return max(self._window.ii, self._reducer.ii)

    @property
    def multipliers(self):
        return 0

    @property
    def roms(self):
        return ()

    @property
    def register_bits(self):
        """Flip-flops of the generator's output queue and of the reducer."""
        return self._window.register_bits + self._reducer.register_bits

    def output_times(self, arrivals):
        """Transfer cycles of an isolated sample's output beats (sink always ready): the
        generator's window beats, then the reducer's outputs
        (:meth:`WindowPlan.output_times <amaranth_nn.window_plan.WindowPlan.output_times>`,
        :meth:`ReducerPlan.output_times`)."""
        return self._reducer.output_times(self._window.output_times(arrivals))

    def __repr__(self):
        return (f"PoolPlan(layer {self.index} {self.layer.name!r}, {self.kind}, lanes "
                f"{self.lanes}, ii {self.ii})")
