"""The pooling engine: a sliding window in kernel order, then a reducer.

:class:`PoolReducer` elaborates a :class:`~amaranth_nn.pool_plan.ReducerPlan`: it takes every
output position's window, kernel position after kernel position, and keeps one partial result
per beat of a position (the max, or the sum for an average). :class:`Pool` elaborates a
:class:`~amaranth_nn.pool_plan.PoolPlan`: the :class:`~amaranth_nn.sliding.SlidingWindow`
that makes those windows from a stream of positions, then the reducer.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring

from .block import PlannedBlock
from .plumbing import delay
from .pool_plan import PoolPlan, ReducerPlan
from .sliding import SlidingWindow, signed_operands
from .targets import RAM_READ_STAGES, resolve_target

__all__ = ["PoolReducer", "Pool"]


def _greater(a, b, width):
    """``a > b`` of signed values, one unsigned comparison (:func:`signed_operands
    <amaranth_nn.sliding.signed_operands>`)."""
    x, y = signed_operands(a, b, width)
    return x > y


class PoolReducer(PlannedBlock):
    """Max or average pooling of windows that arrive in kernel order.

    A window is ``K*G`` beats (``G = ceil(C/lanes)``): beat ``b`` holds kernel position
    ``b // G``, lanes channels ``(b % G)*lanes + j``. The ``G`` partial results sit in a RAM
    of ``G`` words (from :data:`~amaranth_nn.pool_plan.RAM_MIN_GROUPS` words and
    :data:`~amaranth_nn.pool_plan.RAM_MIN_BITS` bits), read as a beat comes in and written back
    after it, or else in a shift register of ``G`` words whose head is always the partial of
    the beat that comes next: a beat of the first kernel position starts its partial (the
    average's with the rounding constant), every other one combines with it (the larger, or the
    sum), and on the last kernel position the new partial is the output beat (the average's
    shifted right by ``log2(K)``; it cannot leave the input range, so nothing saturates). The
    input beat is registered first; the output beat goes into a credit-counted queue, which the
    input waits for only on the last kernel position.

    Parameters
    ----------
    plan : ReducerPlan
        ``ReducerPlan(spec, index, lanes=...)``.
    arch : str or Target
        Which RAM the partial results are in (see
        :meth:`~amaranth_nn.targets.Target.ram`).

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(signed(W), lanes)))``
        Window beats in kernel order; lanes past ``C`` are ignored.
    o : ``Out(stream.Signature(data.ArrayLayout(signed(W), lanes)))``
        Each output position as ``G`` beats; lanes past ``C`` are zero.

    Raises
    ------
    TypeError
        If ``plan`` is not a ReducerPlan or ``arch`` is neither a name nor a Target.
    ValueError
        If ``arch`` is an unknown name.
    """

    PLAN = ReducerPlan

    @staticmethod
    def stream_shapes(plan):
        return signed(plan.width), signed(plan.width)

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        lanes, groups, kernel = plan.lanes, plan.beats_per_position, plan.window
        width, shift = plan.width, plan.shift

        # Where the next beat sits in its window: its group and kernel position, as flags.
        target = resolve_target(self._arch, platform)
        m.submodules.queue = queue = target.queue(self.o.payload.shape(), plan.fifo_depth)
        wiring.connect(m, queue.o, wiring.flipped(self.o))
        group_last = Signal(init=groups == 1)
        k_first = Signal(init=1)
        k_last = Signal(init=kernel == 1)
        ready, go = Signal(), Signal()
        m.d.comb += [
            ready.eq(~k_last | queue.ok),
            self.i.ready.eq(ready),
            go.eq(self.i.valid & ready),
            queue.take.eq(go & k_last),
        ]
        group = Signal(range(groups))
        position = Signal(range(kernel))
        with m.If(go):
            if groups > 1:
                m.d.sync += [group.eq(Mux(group_last, 0, group + 1)),
                             group_last.eq(group == groups - 2)]
            with m.If(group_last):
                if kernel > 1:
                    m.d.sync += [position.eq(Mux(k_last, 0, position + 1)),
                                 k_first.eq(k_last),
                                 k_last.eq(position == kernel - 2)]

        # Stage 1: the beat and its flags. Stage 2: the beat again, the partial it meets (or,
        # in the shift register, for a max, whether it is to be taken). Stage 3: the new
        # partial, which is the output.
        x = [Signal(signed(width), name=f"x_{j}") for j in range(lanes)]
        x2 = [Signal(signed(width), name=f"x2_{j}") for j in range(lanes)]
        valid, first, emit, last = (delay(m, flag, 1, name) for flag, name in
                                    ((go, "valid"), (k_first, "first"), (k_last, "emit"),
                                     (group_last, "last")))
        valid2, first2, emit2, last2 = (delay(m, flag, 1, name) for flag, name in
                                         ((valid, "valid2"), (first, "first2"), (emit, "emit2"),
                                          (last, "last2")))
        with m.If(go):
            m.d.sync += [x[j].eq(self.i.payload[j]) for j in range(lanes)]
        m.d.sync += [a.eq(b) for a, b in zip(x2, x, strict=True)]
        if plan.partials_in_ram:
            newest = self._ram_partials(m, target, plan, group, x2, valid2, first2)
        else:
            newest = self._chain_partials(m, plan, x, x2, valid, valid2, first, first2)
        padded_from = plan.channels - (groups - 1) * lanes
        out_last = delay(m, last2, 1, "out_last")
        outputs = []
        for j in range(lanes):
            y = newest[j] >> shift if shift else newest[j]
            outputs.append(Mux(out_last, 0, y[:width]) if j >= padded_from else y[:width])
        m.d.comb += [
            queue.w.valid.eq(delay(m, valid2 & emit2, 1, "out_valid")),
            queue.w.payload.eq(Cat(outputs)),
        ]
        return m

    @staticmethod
    def _combine(plan, x2, partial, first2, take=None):
        """A beat's new partial from the beat and the partial it meets, one mux level (a max
        takes the beat when it starts the window or is larger; a sum adds the beat to the
        partial or to the rounding)."""
        if plan.kind == "avgpool":
            return x2 + Mux(first2, plan.rounding, partial)
        if take is None:
            bits = max(plan.width, plan.partial_width)
            take = first2 | _greater(x2, partial, bits)
        return Mux(take, x2, partial)

    def _chain_partials(self, m, plan, x, x2, valid, valid2, first, first2):
        """The ``G`` partials in a shift register whose head is always the partial of the beat
        that comes next (too few for a RAM, :attr:`ReducerPlan.partials_in_ram
        <amaranth_nn.pool_plan.ReducerPlan.partials_in_ram>`); returns the newest, per lane."""
        lanes, groups = plan.lanes, plan.beats_per_position
        chain = [[Signal(signed(plan.partial_width), name=f"partial_{n}_{j}", reset_less=True)
                  for j in range(lanes)] for n in range(groups)]
        bits = max(plan.width, plan.partial_width)  # of a max's comparisons
        take = [None] * lanes
        if plan.kind == "maxpool" and groups > 1:
            # The beat in stage 1 meets in stage 3 the chain's head after this cycle's shift:
            # ``meets``, a register computed from the next state (the head and the partial
            # after it, after the shift of the beat in stage 2, selected by whether a beat
            # follows it), so that the comparison, in a stage of its own, is of flip-flops.
            take = [Signal(name=f"take_{j}") for j in range(lanes)]
            for j in range(lanes):
                meets = Signal(signed(plan.partial_width), name=f"meets_{j}", reset_less=True)
                after = chain[2][j] if groups > 2 else self._combine(plan, x2[j], chain[0][j],
                                                                     first2, take[j])
                m.d.sync += [
                    meets.eq(Mux(valid, Mux(valid2, after, chain[1][j]),
                                 Mux(valid2, chain[1][j], chain[0][j]))),
                    take[j].eq(first | _greater(x[j], meets, bits)),
                ]
        with m.If(valid2):
            for j in range(lanes):
                m.d.sync += chain[-1][j].eq(self._combine(plan, x2[j], chain[0][j], first2,
                                                          take[j]))
                for n in range(groups - 1):
                    m.d.sync += chain[n][j].eq(chain[n + 1][j])
        return chain[-1]

    def _ram_partials(self, m, target, plan, group, x2, valid2, first2):
        """The ``G`` partials in a RAM of ``G`` words of all lanes
        (:meth:`~amaranth_nn.targets.Target.ram`): read at the beat's group as the beat comes
        in, so that the partial arrives with the beat in stage 2, and written back from the
        newest partial's register in stage 3 (no RAM write port behind the comparison). The
        next beat of a group comes ``G`` >= :data:`~amaranth_nn.pool_plan.RAM_MIN_GROUPS`
        cycles later, after that write (``G >= 4`` would do). Returns the new partials in stage
        3, per lane."""
        lanes, partial_width = plan.lanes, plan.partial_width
        ram = target.ram(m, lanes * partial_width, plan.beats_per_position, "partials")
        newest = [Signal(signed(partial_width), name=f"partial_{j}") for j in range(lanes)]
        for j in range(lanes):
            partial = ram.r_data[j * partial_width:(j + 1) * partial_width].as_signed()
            m.d.sync += newest[j].eq(self._combine(plan, x2[j], partial, first2))
        m.d.comb += [
            ram.r_addr.eq(group),
            ram.w_addr.eq(delay(m, group, RAM_READ_STAGES + 1, "w_group")),
            ram.w_data.eq(Cat(newest)),
            ram.w_en.eq(delay(m, valid2, 1, "w_en")),
        ]
        return newest


class Pool(PlannedBlock):
    """One max or average pooling layer of a spec: a sliding window in kernel order, then the
    reducer.

    Bit-exact with :func:`amaranth_nn.golden.run`. The
    :class:`~amaranth_nn.sliding.SlidingWindow` of :attr:`PoolPlan.window
    <amaranth_nn.pool_plan.PoolPlan.window>` emits every output position's window, kernel
    position by kernel position, and the :class:`PoolReducer` of :attr:`PoolPlan.reducer
    <amaranth_nn.pool_plan.PoolPlan.reducer>` reduces it.

    Parameters
    ----------
    plan : PoolPlan
        ``PoolPlan(spec, index, lanes=...)``.
    arch : str or Target
        Which RAM the window generator's line buffer is (see
        :class:`~amaranth_nn.sliding.SlidingWindow`).

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(signed(W), lanes)))``
        Each sample's positions in raster order, ``ceil(C/lanes)`` beats each; lanes past
        ``C`` are ignored.
    o : ``Out(stream.Signature(data.ArrayLayout(signed(W), lanes)))``
        The pooled positions in the same format; lanes past ``C`` are zero.

    Raises
    ------
    TypeError
        If ``plan`` is not a PoolPlan or ``arch`` is neither a name nor a Target.
    ValueError
        If ``arch`` is an unknown name.
    """

    PLAN = PoolPlan

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = window = SlidingWindow(self._plan.window, arch=self._arch)
        m.submodules.reducer = reducer = PoolReducer(self._plan.reducer, arch=self._arch)
        wiring.connect(m, wiring.flipped(self.i), window.i)
        wiring.connect(m, window.o, reducer.i)
        wiring.connect(m, reducer.o, wiring.flipped(self.o))
        return m
