"""The width converter: regroups a vector's elements from one number of lanes per beat to
another, between a layer whose ``pe`` differs from the next layer's ``simd``."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring

from .block import PlanComponent
from .plan import ConverterPlan
from .plumbing import CreditQueue, PingPong

__all__ = ["WidthConverter"]


class WidthConverter(PlanComponent):
    """Regroups vectors of ``length`` elements from ``in_lanes`` to ``out_lanes`` per beat.

    Elaborates a :class:`~amaranth_nn.plan.ConverterPlan`, which holds the timing: a vector is
    ``ceil(length/in_lanes)`` input beats and ``ceil(length/out_lanes)`` output beats; lane
    ``k`` of beat ``b`` is element ``b*lanes + k``, input lanes past ``length`` are ignored and
    output lanes past it are zero. The vector is held in a double buffer of registers, and
    output beat ``k`` is issued as soon as the input beats holding its elements have arrived,
    selected through three pipeline registers, and queued in a small credit-counted output
    queue (the same free-running scheme as :class:`~amaranth_nn.dense.DenseLayer`).

    Parameters
    ----------
    plan : ConverterPlan
        ``ConverterPlan(width, in_lanes, out_lanes, length)``.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(signed(width), in_lanes)))``
    o : ``Out(stream.Signature(data.ArrayLayout(signed(width), out_lanes)))``

    Raises
    ------
    TypeError
        If ``plan`` is not a ConverterPlan.
    """

    PLAN = ConverterPlan

    @staticmethod
    def stream_shapes(plan):
        return signed(plan.width), signed(plan.width)

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        a, b, length, width = plan.in_lanes, plan.out_lanes, plan.length, plan.width
        m.submodules.buffer = buf = PingPong(plan.in_beats, self.i.payload.shape())
        wiring.connect(m, wiring.flipped(self.i), buf.w)
        banks = [[Signal(width, name=f"bank{n}_{e}") for e in range(length)] for n in range(2)]
        for j in range(plan.in_beats):
            for n in range(2):
                with m.If(buf.w_en & (buf.w_beat == j) & (buf.w_bank == n)):
                    for c in range(a):
                        if j * a + c < length:
                            m.d.sync += banks[n][j * a + c].eq(Value.cast(buf.w.payload[c]))

        # Reader: a sequencer issues one output beat per cycle when its elements have arrived
        # and the output queue has room; the beat is selected from registered (bank, beat)
        # numbers in the next cycle, without any enable, and written into the queue.
        m.submodules.queue = queue = CreditQueue(self.o.payload.shape(), plan.fifo_depth)
        wiring.connect(m, queue.o, wiring.flipped(self.o))
        r_beat = Signal(range(plan.out_beats))
        needed = Array(Const(plan.needed_beat(k), range(plan.in_beats))
                       for k in range(plan.out_beats))
        go = Signal()
        r_last = r_beat == plan.out_beats - 1
        m.d.comb += [
            go.eq(buf.written(needed[r_beat]) & queue.ok),
            queue.take.eq(go),
            buf.r_done.eq(go & r_last),
        ]
        with m.If(go):
            m.d.sync += r_beat.eq(Mux(r_last, 0, r_beat + 1))
        # The CONVERTER_STAGES registers. 1: (bank, beat). 2: the beat's lanes of both banks.
        # 3: the bank's lanes. The banks are read in stage 2, before the writer can reuse a bank
        # that the reader has just finished.
        valid_1, beat_1, bank_1 = Signal(), Signal.like(r_beat), Signal()
        valid_2, bank_2 = Signal(), Signal()
        valid_3, data_3 = Signal(), Signal(b * width)
        m.d.sync += [valid_1.eq(go), beat_1.eq(r_beat), bank_1.eq(buf.r_bank),
                     valid_2.eq(valid_1), bank_2.eq(bank_1), valid_3.eq(valid_2)]
        per_bank = []
        for n in range(2):
            lanes = Signal(b * width, name=f"lanes{n}")
            choices = [Array(banks[n][k * b + c] if k * b + c < length else Const(0, width)
                             for k in range(plan.out_beats)) for c in range(b)]
            m.d.sync += lanes.eq(Cat(choice[beat_1] for choice in choices))
            per_bank.append(lanes)
        m.d.sync += data_3.eq(Mux(bank_2, per_bank[1], per_bank[0]))
        m.d.comb += [queue.w.valid.eq(valid_3), queue.w.payload.eq(data_3)]
        return m
