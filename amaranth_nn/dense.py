"""The dense engine: one layer of a spec as a pipelined matrix-vector unit.

:class:`DenseLayer` elaborates a :class:`~amaranth_nn.plan.DensePlan`: every width, ROM word
and timing figure comes from the plan, the multipliers and memories from a
:class:`~amaranth_nn.targets.Target`, and the double buffer and output queue from
:mod:`amaranth_nn.plumbing`.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from .block import PlannedBlock
from .plan import MEMORY_STAGES, DensePlan
from .plumbing import PingPong, delay
from .targets import resolve_target

__all__ = ["DenseLayer"]


class DenseLayer(PlannedBlock):
    """One fixed-point dense layer of a spec, as a pipelined matrix-vector unit.

    Computes ``y = act(requantize(W @ x + b))`` bit-exactly as :func:`amaranth_nn.golden.run`
    does. ``pe`` output neurons are computed in parallel, each taking ``simd`` inputs per cycle,
    so a vector takes ``ii = ceil(M/pe) * ceil(N/simd)`` cycles, with no bubbles in steady state
    (the next vector loads into the other half of a double buffer while this one computes).

    Weights sit in one ROM per PE (``simd`` weights per word, one word per cycle); biases, with
    the rounding constant ``2**(s-1)`` added, in a second ROM, so that requantization is an
    arithmetic shift (``s <= 0`` is an exact left shift). Saturation and the activation are one
    clamp to the layer's output range. Operands, products and accumulators are registered (so
    that the multipliers map to DSP blocks), and the ``simd``-input adder tree has a register
    per level; :attr:`DensePlan.stages <amaranth_nn.plan.DensePlan.stages>` is the register
    chain. Every width comes from the plan (partial sums wrap harmlessly modulo the accumulator
    width; the final value always fits). With :attr:`DensePlan.running_accumulators
    <amaranth_nn.plan.DensePlan.running_accumulators>` the accumulators never restart and
    each group's sum is a difference taken a cycle later.

    The pipeline runs free: a sequencer issues one ``(group, beat)`` per cycle when the beat has
    arrived and, at the start of a group, a slot of the output queue is free (credit counting);
    control tokens travel with the data, and the sink's ``ready`` drives only the queue.

    Parameters
    ----------
    plan : DensePlan
        The layer and its folding: ``DensePlan(spec, index, pe=..., simd=...)``.
    arch : str or Target
        Which primitives to build: one of :data:`~amaranth_nn.targets.ARCHES` or a
        :class:`~amaranth_nn.targets.Target`. The pipeline and its timing are the same for all.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(signed(Wx), simd)))``
        Input vectors, ``ceil(N/simd)`` beats each; lane ``k`` of beat ``b`` is element
        ``b*simd + k``; lanes past ``N`` on the last beat are ignored.
    o : ``Out(stream.Signature(data.ArrayLayout(signed(Wy), pe)))``
        Output vectors, ``ceil(M/pe)`` beats each, in the same order; lanes past ``M`` are zero.

    Raises
    ------
    TypeError
        If ``plan`` is not a DensePlan or ``arch`` is neither a name nor a Target.
    ValueError
        If ``arch`` is an unknown name.
    """

    PLAN = DensePlan

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        target = resolve_target(self._arch, platform)
        pe, simd, beats, groups = plan.pe, plan.simd, plan.in_beats, plan.out_beats
        x_shape, out_width = plan.x_shape, plan.out_width
        stages = plan.stages

        # Input double buffer: one simd-lane word per beat, the operand bits only.
        m.submodules.buffer = buf = PingPong(beats, self.i.payload.shape(), in_order=True)
        wiring.connect(m, wiring.flipped(self.i), buf.w)
        depth, width = plan.input_buffer_shape
        x_mem = m.submodules.x_buffer = Memory(shape=unsigned(width), depth=depth, init=[])
        x_write = x_mem.write_port()
        m.d.comb += [
            x_write.addr.eq(buf.w_addr),
            x_write.en.eq(buf.w_en),
            x_write.data.eq(Cat(Value.cast(buf.w.payload[k])[:x_shape.width]
                                for k in range(simd))),
        ]

        # Sequencer: one (group, beat) per cycle, when the beat has arrived and, at the start of
        # a group, the output queue has a free slot reserved for the group's result. Its flags
        # are registers, computed from the next state.
        m.submodules.queue = queue = target.queue(self.o.payload.shape(), plan.fifo_depth)
        wiring.connect(m, queue.o, wiring.flipped(self.o))
        beat = Signal(range(beats))
        group = Signal(range(groups))
        beat_first = Signal(init=1)
        beat_last = Signal(init=beats == 1)
        group_last = Signal(init=groups == 1)
        go = Signal()
        m.d.comb += [
            buf.r_last.eq(beat_last),
            buf.r_final.eq(group_last),
            buf.r_go.eq(go),
            go.eq(buf.r_arrived & (~beat_first | queue.ok)),
            queue.take.eq(go & beat_first),
        ]
        beat_next = Signal.like(beat)
        group_next = Signal.like(group)
        m.d.comb += [
            beat_next.eq(Mux(go, Mux(beat_last, 0, beat + 1), beat)),
            group_next.eq(Mux(go & beat_last, Mux(group_last, 0, group + 1), group)),
        ]
        m.d.sync += [
            beat.eq(beat_next),
            group.eq(group_next),
            beat_first.eq(beat_next == 0),
            beat_last.eq(beat_next == beats - 1),
            group_last.eq(group_next == groups - 1),
        ]
        # The weight word g*B + b: the beat and group numbers side by side when B is a power of
        # two, else a counter of its own.
        if beats & (beats - 1) == 0:
            w_addr = Cat(beat, group)
        else:
            w_addr = Signal(range(beats * groups))
            with m.If(go):
                m.d.sync += w_addr.eq(Mux(w_addr == beats * groups - 1, 0, w_addr + 1))

        x_read = target.read_ram(m, x_mem, buf.r_addr(beat), "x_data")
        w_reads = [target.read_rom(m, rom, w_addr, copy=p)
                   for p, rom in enumerate(plan.weight_roms)]

        # Control tokens travel with the data through the free-running pipeline: token k is
        # the flag k cycles later. The tokens at stages["tree"] meet the adder tree
        # output and update the accumulators; those of a group's last issue go on to write the
        # result into the queue.
        acc_stage = stages["tree"]
        valid = self._tokens(m, go, acc_stage, "valid")
        result = self._tokens(m, go & beat_last, stages["clamp"], "result")
        last_group = self._tokens(m, group_last, stages["clamp"], "last_group")

        # Operand and product registers (the multiplier's), then one register per tree level.
        x_data = [self._lane(x_read, k, x_shape) for k in range(simd)]
        w_data = [[self._lane(w_read, k, plan.w_shape) for k in range(simd)]
                  for w_read in w_reads]
        products = target.multiply(m, plan, x_data, w_data)
        sums = [self._adder_tree(m, row, p, target.registered_products)
                for p, row in enumerate(products)]

        # Bias word, present with the tree output for the first beat of each group; each
        # group's sum a cycle after its last beat.
        per_pe = target.bias_per_pe and not plan.running_accumulators
        b_read = self._bias(m, target, group, early=int(per_pe))
        totals = self._sums_of_groups(m, sums, b_read, beat_first, valid[acc_stage],
                                      result[acc_stage], per_pe)

        # Requantize, saturate and activate: one clamp of the shifted sum to the output range,
        # compared in one stage and selected on the way into the queue.
        out_lo, out_hi = plan.output_range
        scaled_lo, scaled_hi = plan.scaled_range
        shift = plan.shift
        lanes = []
        padded_from = plan.out_features - (groups - 1) * pe
        for p, total in enumerate(totals):
            scaled = total >> shift if shift > 0 else total << -shift
            low = Signal(signed(out_width), name=f"low_{p}")
            over = Signal(name=f"over_{p}")
            under = Signal(name=f"under_{p}")
            m.d.sync += low.eq(scaled)  # truncates or sign-extends
            if scaled_hi > out_hi:
                m.d.sync += over.eq(scaled > out_hi)
            if scaled_lo < out_lo:
                m.d.sync += under.eq(scaled < out_lo)
            clamped = Mux(over, Const(out_hi, signed(out_width)),
                          Mux(under, Const(out_lo, signed(out_width)), low))
            if p >= padded_from:
                clamped = Mux(last_group[-1], 0, clamped)
            y = Signal(out_width, name=f"y_{p}")
            m.d.comb += y.eq(clamped)
            lanes.append(y)

        m.d.comb += [
            queue.w.valid.eq(result[-1]),
            queue.w.payload.eq(Cat(lanes)),
        ]
        return m

    def _bias(self, m, target, group, early=0):
        """The bias word of ``group``'s issue, as it meets the group's first beat at the
        accumulator (``early`` cycles before that): from the bias ROM, read by the target in
        one stage at the group number of the cycle before, when :attr:`DensePlan.bias_held
        <amaranth_nn.plan.DensePlan.bias_held>` (a word stays long enough that one more
        register after it is still in time: ``early`` is not needed), else read by the target
        with the group number of the issue ``MEMORY_STAGES + early`` cycles before that."""
        plan, rom = self._plan, self._plan.bias_rom
        if not plan.bias_held:
            lead = plan.stages["tree"] - MEMORY_STAGES - early
            return target.read_rom(m, rom, delay(m, group, lead, "group"))
        return target.read_rom(m, rom, delay(m, group, 1, "bias_addr"), stages=1)

    def _sums_of_groups(self, m, sums, b_read, beat_first, valid, result, per_pe=False):
        """Each PE's sum of a group, its bias included, in a register from ``stages["sum"]``
        cycles after the group's last issue: the accumulator itself, which starts each group
        from the bias, or with :attr:`DensePlan.running_accumulators
        <amaranth_nn.plan.DensePlan.running_accumulators>` the difference of an accumulator
        that adds every valid tree output and never restarts. That one's ``base`` takes its
        value less the bias at a group's first beat, and the difference is exact modulo the
        accumulator's width, in which the sum always fits. With ``per_pe``, the bias word
        comes a cycle early, and each PE takes its bias through a register of its own.
        """
        acc_width = self._plan.acc_width
        totals = []
        for p, tree_sum in enumerate(sums):
            acc = Signal(signed(acc_width), name=f"acc_{p}")
            bias = b_read[p * acc_width:(p + 1) * acc_width].as_signed()
            if per_pe:
                bias = delay(m, bias, 1, f"bias_{p}").as_signed()
            first_p = self._first(m, beat_first, valid, result, p)
            if not self._plan.running_accumulators:
                with m.If(valid):
                    m.d.sync += acc.eq(Mux(first_p, bias, acc) + tree_sum)
                totals.append(acc)
                continue
            base = Signal(signed(acc_width), name=f"base_{p}")
            total = Signal(signed(acc_width), name=f"total_{p}")
            with m.If(valid):
                m.d.sync += acc.eq(acc + tree_sum)
                with m.If(first_p):
                    m.d.sync += base.eq(acc - bias)
            m.d.sync += total.eq(acc - base)
            totals.append(total)
        return totals

    def _first(self, m, beat_first, valid, result, p):
        """Whether PE ``p``'s accumulator starts from the bias: the `first` token at the
        accumulator (``valid`` and ``result`` are the tokens there).

        With one PE, a flag: set by a group's last beat, cleared by any other. With more, each
        PE has its own copy of the token's register chain (the flag would fan out to every
        accumulator): the copies' reset values are the bits of p, so that yosys does not merge
        them; they are only used with a valid token, so those values do not matter.
        """
        if self._plan.pe == 1:
            first = Signal(init=1, name="first")
            with m.If(valid):
                m.d.sync += first.eq(result)
            return first
        first = beat_first
        for k in range(self._plan.stages["tree"]):
            first = delay(m, first, 1, f"first{p}_{k + 1}", init=(p >> k) & 1)
        return first

    @staticmethod
    def _tokens(m, flag, stages, name):
        """``flag`` and its copies 1 to ``stages`` cycles later."""
        tokens = [flag] + [Signal(name=f"{name}_{k}") for k in range(1, stages + 1)]
        for k in range(1, stages + 1):
            m.d.sync += tokens[k].eq(tokens[k - 1])
        return tokens

    @staticmethod
    def _lane(word, k, shape):
        """Lane ``k`` of a packed memory word, as a value of ``shape``."""
        lane = word[k * shape.width:(k + 1) * shape.width]
        return lane.as_signed() if shape.signed else lane

    def _adder_tree(self, m, level, p, registered_products=False):
        """The sum of ``level``, in :attr:`DensePlan.tree_levels
        <amaranth_nn.plan.DensePlan.tree_levels>` registers: pairs at each level or, with
        ``registered_products`` when the levels leave room for it (``simd`` of 3, 5 or 6, ...:
        at most ``3 * 2**(levels - 2)``), the products registered again in the fabric first and
        then one level of sums of up to three (a multiplier block's output then goes to a
        register, not into a carry chain)."""
        levels, depth, cover = self._plan.tree_levels, 0, 1
        if registered_products and 2 < len(level) <= 3 << (levels - 2):
            again = [Signal.like(value, name=f"prod_{p}_{k}_r") for k, value in enumerate(level)]
            m.d.sync += [reg.eq(value) for reg, value in zip(again, level, strict=True)]
            level = again
            groups = 1 << (levels - 2)
            bounds = [len(level) * g // groups for g in range(groups + 1)]
            parts = [level[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
            cover = max(len(part) for part in parts)
            level = self._sums(m, parts, p, 2, cover)
            depth = 2
        while len(level) > 1:
            depth, cover = depth + 1, cover * 2
            level = self._sums(m, [level[n:n + 2] for n in range(0, len(level), 2)], p, depth,
                               cover)
        return level[0]

    def _sums(self, m, groups, p, depth, cover):
        """A register of each group's sum, at tree level ``depth``; each sums at most ``cover``
        products, and is as wide as that many need, up to the accumulator's width."""
        width = min(self._plan.product_width + (cover - 1).bit_length(), self._plan.acc_width)
        nodes = []
        for n, group in enumerate(groups):
            node = Signal(signed(width), name=f"sum_{p}_{depth}_{n}")
            m.d.sync += node.eq(sum(group[1:], group[0]))
            nodes.append(node)
        return nodes
