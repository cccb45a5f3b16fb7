"""The scale-and-shift engine: a per-channel multiply-add with one multiplier per lane.

:class:`ScaleShift` elaborates a :class:`~amaranth_nn.scale_plan.ScalePlan`: every width, ROM
word and timing figure comes from the plan, the multipliers and ROMs from a
:class:`~amaranth_nn.targets.Target`, and the output queue from :mod:`amaranth_nn.plumbing`.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring

from .block import PlannedBlock
from .plan import MEMORY_STAGES
from .plumbing import delay
from .scale_plan import ScalePlan
from .targets import resolve_target

__all__ = ["ScaleShift"]


class ScaleShift(PlannedBlock):
    """One scale-and-shift layer of a spec: ``y = act(requantize(a_c * x + b_c))`` per element.

    Bit-exact with :func:`amaranth_nn.golden.run`. Each lane has one multiplier; the scales,
    and the biases with the rounding constant ``2**(s-1)`` added, sit in two small ROMs of one
    word per beat of a position, read at the beat's number within its position. The input beat
    waits in registers for its scale word; operands and products are registered (the
    multiplier's registers, so that it maps to a DSP block), then the sum with the bias, then
    one clamp to the layer's output range, as in :class:`~amaranth_nn.dense.DenseLayer`;
    :attr:`ScalePlan.stages <amaranth_nn.scale_plan.ScalePlan.stages>` is the register chain.
    The pipeline runs free and takes one beat per cycle while its output queue has a credit
    (:class:`~amaranth_nn.plumbing.CreditQueue`).

    Parameters
    ----------
    plan : ScalePlan
        ``ScalePlan(spec, index, lanes=...)``.
    arch : str or Target
        Which primitives to build: one of :data:`~amaranth_nn.targets.ARCHES` or a
        :class:`~amaranth_nn.targets.Target`. The pipeline and its timing are the same for all.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(signed(Wx), lanes)))``
        Input samples, ``ceil(C/lanes)`` beats per position; lane ``k`` of beat ``b`` of a
        position is channel ``b*lanes + k``; lanes past ``C`` are ignored.
    o : ``Out(stream.Signature(data.ArrayLayout(signed(Wy), lanes)))``
        Output samples in the same order; lanes past ``C`` are zero.

    Raises
    ------
    TypeError
        If ``plan`` is not a ScalePlan or ``arch`` is neither a name nor a Target.
    ValueError
        If ``arch`` is an unknown name.
    """

    PLAN = ScalePlan

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        target = resolve_target(self._arch, platform)
        lanes, groups, stages = plan.lanes, plan.beats_per_position, plan.stages
        x_shape, w_shape = plan.x_shape, plan.w_shape

        # Take a beat whenever the output queue has a credit for its result.
        m.submodules.queue = queue = target.queue(self.o.payload.shape(), plan.fifo_depth)
        wiring.connect(m, queue.o, wiring.flipped(self.o))
        go = Signal()
        m.d.comb += [self.i.ready.eq(queue.ok), go.eq(self.i.valid & queue.ok),
                     queue.take.eq(go)]
        beat = Signal(range(groups))
        beat_last = Signal(init=groups == 1)
        if groups > 1:
            with m.If(go):
                m.d.sync += [beat.eq(Mux(beat_last, 0, beat + 1)),
                             beat_last.eq(beat == groups - 2)]

        # The beat's operand bits wait for its scale word; the bias word is read later, with
        # the beat number of two cycles before, so that it arrives with the product.
        x = Cat(Value.cast(self.i.payload[k])[:x_shape.width] for k in range(lanes))
        x_read = delay(m, x, MEMORY_STAGES, "x")
        a_read = target.read_rom(m, plan.scale_rom, beat)
        bias_stage = stages["products"] - MEMORY_STAGES
        b_read = target.read_rom(m, plan.bias_rom, delay(m, beat, bias_stage, "beat"))
        valid = delay(m, go, stages["clamp"], "valid")
        last = delay(m, beat_last, stages["clamp"], "last")

        products = target.multiply(
            m, plan, [_lane(x_read, k, x_shape) for k in range(lanes)],
            [[_lane(a_read, k, w_shape) for k in range(lanes)]])[0]
        acc_width = plan.acc_width
        outputs = []
        padded_from = plan.channels - (groups - 1) * lanes
        for k in range(lanes):
            acc = Signal(signed(acc_width), name=f"acc_{k}")
            m.d.sync += acc.eq(products[k] + b_read[k * acc_width:(k + 1) * acc_width].as_signed())
            y = _clamp(m, plan, acc, k)
            outputs.append(Mux(last, 0, y) if k >= padded_from else y)
        m.d.comb += [queue.w.valid.eq(valid), queue.w.payload.eq(Cat(outputs))]
        return m


def _lane(word, k, shape):
    """Lane ``k`` of a packed word, as a value of ``shape``."""
    lane = word[k * shape.width:(k + 1) * shape.width]
    return lane.as_signed() if shape.signed else lane


def _clamp(m, plan, acc, k):
    """``acc`` requantized (an arithmetic shift: the bias holds the rounding constant),
    saturated and activated: one clamp to the output range, compared in a register stage."""
    out_lo, out_hi = plan.output_range
    scaled_lo, scaled_hi = plan.scaled_range
    shift, width = plan.shift, plan.out_width
    scaled = acc >> shift if shift > 0 else acc << -shift
    low = Signal(signed(width), name=f"low_{k}")
    over = Signal(name=f"over_{k}")
    under = Signal(name=f"under_{k}")
    m.d.sync += low.eq(scaled)  # truncates or sign-extends
    if scaled_hi > out_hi:
        m.d.sync += over.eq(scaled > out_hi)
    if scaled_lo < out_lo:
        m.d.sync += under.eq(scaled < out_lo)
    y = Signal(signed(width), name=f"y_{k}")
    m.d.comb += y.eq(Mux(over, Const(out_hi, signed(width)),
                         Mux(under, Const(out_lo, signed(width)), low)))
    return y
