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
    selected through three pipeline registers (past a few beats in two steps, within groups of
    beats and then among them: :attr:`ConverterPlan.group_beats
    <amaranth_nn.plan.ConverterPlan.group_beats>`), and queued in a small credit-counted
    output queue (the same free-running scheme as :class:`~amaranth_nn.dense.DenseLayer`).

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
        # The input beat that output beat r_beat needs, and the one the beat after it needs,
        # are registers (the table is read two beats ahead), so that the issue condition is
        # the arrival comparison alone.
        beats_out = plan.out_beats
        r_beat = Signal(range(beats_out))
        need = Signal(range(plan.in_beats), init=plan.needed_beat(0))
        need_after = Signal(range(plan.in_beats), init=plan.needed_beat(1 % beats_out))
        two_ahead = Array(Const(plan.needed_beat((k + 2) % beats_out), range(plan.in_beats))
                          for k in range(beats_out))
        go = Signal()
        r_last = r_beat == beats_out - 1
        m.d.comb += [
            go.eq(buf.written(need) & queue.ok),
            queue.take.eq(go),
            buf.r_done.eq(go & r_last),
        ]
        with m.If(go):
            m.d.sync += [r_beat.eq(Mux(r_last, 0, r_beat + 1)),
                         need.eq(need_after), need_after.eq(two_ahead[r_beat])]
        # The CONVERTER_STAGES registers. 1: (bank, beat). 2: the beat's lanes of both banks,
        # within each group of beats (the beat's low bits). 3: the bank's and the group's
        # lanes. The banks are read in stage 2, before the writer can reuse a bank that the
        # reader has just finished.
        group_beats, groups = plan.group_beats, plan.select_groups
        low_bits = (group_beats - 1).bit_length()
        valid_1, beat_1, bank_1 = Signal(), Signal.like(r_beat), Signal()
        valid_2, part_2 = Signal(), Signal(range(2 * groups))  # part_2: bank * groups + group
        valid_3, data_3 = Signal(), Signal(b * width)
        m.d.sync += [valid_1.eq(go), beat_1.eq(r_beat), bank_1.eq(buf.r_bank),
                     valid_2.eq(valid_1), valid_3.eq(valid_2),
                     part_2.eq(Mux(bank_1, groups, 0) + beat_1[low_bits:])]
        parts = []
        for n in range(2):
            for g in range(groups):
                lanes = Signal(b * width, name=f"lanes{n}_{g}")
                choices = [Array(self._element(banks[n], (g * group_beats + k) * b + c)
                                 for k in range(group_beats)) for c in range(b)]
                m.d.sync += lanes.eq(Cat(choice[beat_1[:low_bits]] for choice in choices))
                parts.append(lanes)
        m.d.sync += data_3.eq(Array(parts)[part_2])
        m.d.comb += [queue.w.valid.eq(valid_3), queue.w.payload.eq(data_3)]
        return m

    def _element(self, bank, index):
        """Element ``index`` of a bank, zero past the vector's end."""
        return bank[index] if index < self._plan.length else Const(0, self._plan.width)
