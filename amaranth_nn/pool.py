"""The pooling engine: a sliding window in kernel order, then a reducer.

:class:`PoolReducer` elaborates a :class:`~amaranth_nn.pool_plan.ReducerPlan`: it takes every
output position's window, kernel position after kernel position, and keeps one partial result
per beat of a position (the max, or the sum for an average). :class:`Pool` elaborates a
:class:`~amaranth_nn.pool_plan.PoolPlan`: the :class:`~amaranth_nn.sliding.SlidingWindow`
that makes those windows from a stream of positions, then the reducer.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring

from .block import PlanComponent, PlannedBlock
from .plumbing import CreditQueue, delay
from .pool_plan import PoolPlan, ReducerPlan
from .sliding import SlidingWindow, offset_binary

__all__ = ["PoolReducer", "Pool"]


class PoolReducer(PlanComponent):
    """Max or average pooling of windows that arrive in kernel order.

    A window is ``K*G`` beats (``G = ceil(C/lanes)``): beat ``b`` holds kernel position
    ``b // G``, lanes channels ``(b % G)*lanes + j``. The ``G`` partial results sit in a shift
    register of ``G`` words, so that the head is always the partial of the beat that comes
    next: a beat of the first kernel position starts its partial (the average's with the
    rounding constant), every other one combines with it (the larger, or the sum), and on the
    last kernel position the new partial is the output beat (the average's shifted right by
    ``log2(K)``; it cannot leave the input range, so nothing saturates). The input beat is
    registered first; the output beat goes into a credit-counted queue, which the input waits
    for only on the last kernel position.

    Parameters
    ----------
    plan : ReducerPlan
        ``ReducerPlan(spec, index, lanes=...)``.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(signed(W), lanes)))``
        Window beats in kernel order; lanes past ``C`` are ignored.
    o : ``Out(stream.Signature(data.ArrayLayout(signed(W), lanes)))``
        Each output position as ``G`` beats; lanes past ``C`` are zero.

    Raises
    ------
    TypeError
        If ``plan`` is not a ReducerPlan.
    """

    PLAN = ReducerPlan

    @staticmethod
    def stream_shapes(plan):
        return signed(plan.width), signed(plan.width)

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        lanes, groups, kernel = plan.lanes, plan.beats_per_position, plan.window
        width, partial_width, shift = plan.width, plan.partial_width, plan.shift

        # Where the next beat sits in its window: its group and kernel position, as flags.
        m.submodules.queue = queue = CreditQueue(self.o.payload.shape(), plan.fifo_depth)
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

        # Stage 1: the beat and its flags. Stage 2: the beat again and, for a max, whether it
        # is to be taken. Stage 3: the partials; the newest is the output.
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
        chain = [[Signal(signed(partial_width), name=f"partial_{n}_{j}", reset_less=True)
                  for j in range(lanes)] for n in range(groups)]
        bits = max(width, partial_width)  # of a max's comparisons
        if plan.kind == "maxpool" and groups > 1:
            # The partial a beat meets in stage 3 is known in stage 2: chain[1] if the chain
            # shifts in this cycle, else chain[0]; the comparison gets a cycle of its own.
            take = [Signal(name=f"take_{j}") for j in range(lanes)]
            for j in range(lanes):
                meets = Mux(valid2, chain[1][j], chain[0][j])
                m.d.sync += take[j].eq(first | (offset_binary(x[j], bits)
                                                > offset_binary(meets, bits)))
        elif plan.kind == "maxpool":
            take = [first2 | (offset_binary(x2[j], bits)
                                  > offset_binary(chain[0][j], bits)) for j in range(lanes)]
        with m.If(valid2):
            for j in range(lanes):
                # One mux level before the register: a max takes the beat when it starts the
                # window or is larger; a sum adds the beat to the partial or to the rounding.
                head = chain[0][j]
                if plan.kind == "maxpool":
                    new = Mux(take[j], x2[j], head)
                else:
                    new = x2[j] + Mux(first2, plan.rounding, head)
                m.d.sync += chain[-1][j].eq(new)
                for n in range(groups - 1):
                    m.d.sync += chain[n][j].eq(chain[n + 1][j])
        padded_from = plan.channels - (groups - 1) * lanes
        out_last = delay(m, last2, 1, "out_last")
        outputs = []
        for j in range(lanes):
            y = chain[-1][j] >> shift if shift else chain[-1][j]
            outputs.append(Mux(out_last, 0, y[:width]) if j >= padded_from else y[:width])
        m.d.comb += [
            queue.w.valid.eq(delay(m, valid2 & emit2, 1, "out_valid")),
            queue.w.payload.eq(Cat(outputs)),
        ]
        return m


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
        m.submodules.reducer = reducer = PoolReducer(self._plan.reducer)
        wiring.connect(m, wiring.flipped(self.i), window.i)
        wiring.connect(m, window.o, reducer.i)
        wiring.connect(m, reducer.o, wiring.flipped(self.o))
        return m
