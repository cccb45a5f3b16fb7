"""The sliding-window generator: a stream of positions in, every output position's window out.

:class:`SlidingWindow` elaborates a :class:`~amaranth_nn.window_plan.WindowPlan`. Input elements
go into a circular line buffer in a padded linear layout (element ``(iy, ix, c)`` at
``(iy + py)*R + (ix + px)*C + c``, modulo the capacity), split over ``banks`` memories by the
address modulo the banks; the plan's row stride makes the lanes of every beat, in or out, fall
in distinct banks, so that one beat is written and one read per cycle. Padding cells are never
written: a lane outside the input reads zero (a mask from the window's position).

Flow control is by counters: a window is issued when its last input position has been written,
and the writer waits when its next position would overwrite the oldest element the current
window can still need (everything from the window's base on). The reader runs free behind a
credit-counted output queue (:class:`~amaranth_nn.plumbing.CreditQueue`): only the queue sees
the sink's ``ready``.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring

from .block import PlannedBlock
from .plumbing import delay
from .targets import RAM_READ_STAGES, resolve_target
from .window_plan import WindowPlan

__all__ = ["SlidingWindow", "offset_binary", "signed_operands"]

#: Cycles the writer's room counts the reader's steps late, on top of the one cycle of its
#: registered step: a window's last bank reads are made three cycles after its issue, and the
#: writer may overwrite what the reader's base has passed only after them.
READ_LAG = 1


def offset_binary(value, width):
    """The bits of a signed ``value`` (sign-extended to ``width``) with the top one inverted,
    which compare as unsigned numbers as the signed values do: a comparison of these is one
    carry chain, where a signed one also takes the carry into the top bit out of the chain (on
    ECP5 a split of the chain and a detour through the routing)."""
    value = Value.cast(value)
    if len(value) < width:
        value = Cat(value, value[-1].replicate(width - len(value)))
    return Cat(value[:width - 1], ~value[width - 1])


def signed_operands(a, b, width):
    """``(x, y)``: two unsigned values whose comparison is that of the signed ``a`` and ``b``
    (sign-extended to ``width``): the offset-binary values of both (top bits inverted), whose
    subtraction's top column ``~a_t + b_t`` is also that of the top bits swapped, with no
    inverter before the carry chain (on ECP5 a LUT and a routing hop)."""
    a, b = offset_binary(a, width), offset_binary(b, width)
    return Cat(a[:width - 1], ~b[width - 1]), Cat(b[:width - 1], ~a[width - 1])


def _counter(m, limit, step, name, start=0, penult=False):
    """A counter from 0 to ``limit - 1`` (from ``start`` after reset) that steps when ``step``,
    with its ``last`` flag in a register; returns ``(value, last, wrap, penult)``, ``wrap``
    being whether it steps past its last value in this cycle and, if asked for with
    ``penult``, ``penult`` whether the value is the one before the last, a register too
    (``last`` then steps from it; else None)."""
    value = Signal(range(limit), name=name, init=start)
    last = Signal(name=f"{name}_last", init=start == limit - 1)
    wrap = Signal(name=f"{name}_wrap")
    m.d.comb += wrap.eq(step & last)
    before_last = value == limit - 2
    if penult:
        before_last = Signal(name=f"{name}_penult", init=start == limit - 2)
        with m.If(step):
            m.d.sync += before_last.eq(Mux(last, limit == 2, value == limit - 3))
    with m.If(step):
        m.d.sync += [value.eq(Mux(last, 0, value + 1)),
                     last.eq(Mux(last, limit == 1, before_last))]
    return value, last, wrap, before_last if penult else None


def _rotated(items, rot, index):
    """``items[index(r) % len(items)]`` for ``r = rot``: a select by ``rot`` itself among the
    items in rotated order (no adder before the select)."""
    if len(items) == 1:
        return items[0]
    return Array(items[index(r) % len(items)] for r in range(len(items)))[rot]


class SlidingWindow(PlannedBlock):
    """Sliding windows over a stream of positions, one output beat per cycle.

    See :class:`~amaranth_nn.window_plan.WindowPlan` for the beats in and out and the window
    orders, and the module docs for the structure.

    Parameters
    ----------
    plan : WindowPlan
    arch : str or Target
        Which RAM the line buffer's banks are (:meth:`~amaranth_nn.targets.Target.ram`).

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(shape, in_lanes)))``
        Each sample's positions, raster order, ``ceil(C/in_lanes)`` beats each; lanes past
        ``C`` are ignored.
    o : ``Out(stream.Signature(data.ArrayLayout(shape, out_lanes)))``
        Each output position's window, :attr:`WindowPlan.beats_per_window` beats.

    Raises
    ------
    TypeError
        If ``plan`` is not a WindowPlan or ``arch`` is neither a name nor a Target.
    ValueError
        If ``arch`` is an unknown name.
    """

    PLAN = WindowPlan

    @staticmethod
    def stream_shapes(plan):
        return plan.shape, plan.shape

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        banks, cap, width = plan.banks, plan.capacity, plan.shape.width
        lg = (banks - 1).bit_length()
        channels, li, lo = plan.channels, plan.in_lanes, plan.out_lanes
        (height, wid), (oh, ow) = plan.grid, plan.grid_out
        bpp, bpw = plan.beats_per_position, plan.beats_per_window
        kh, kw = plan.kernel2
        span = 4 * (cap + plan.sample_stride)
        target = resolve_target(self._arch, platform)
        rams = [target.ram(m, width, plan.bank_depth, f"bank{n}") for n in range(banks)]

        # Writer: count beats, positions and rows; each beat is registered, then written.
        w_ready = Signal(init=1)
        take = Signal()
        m.d.comb += [self.i.ready.eq(w_ready), take.eq(self.i.valid & w_ready)]
        # The row and sample counters' penultimate flags serve the writer's room (below).
        penult = target.precomputed_flags
        in_beat, _, pos_done, _ = _counter(m, bpp, take, "in_beat")
        _, ix_last, row_done, ix_penult = _counter(m, wid, pos_done, "ix", penult=penult)
        _, iy_last, _, iy_penult = _counter(m, height, row_done, "iy", penult=penult)
        w_addr = Signal(range(cap), init=plan.first_address % cap)
        p_step, r_step, s_step = plan.position_steps()
        w_step = Signal(range(max(p_step, r_step, s_step) + 1))
        m.d.comb += w_step.eq(Mux(ix_last, Mux(iy_last, s_step, r_step), p_step))
        with m.If(pos_done):
            m.d.sync += w_addr.eq(w_addr + w_step)

        # The write stage's registers: each bank's enable and whether it takes the beat's next
        # row, the beat's first row and the next one, so that a bank's write address is one
        # select of flip-flops and its enable a flip-flop.
        w1_pos = Signal()
        w1_data = Signal(data.ArrayLayout(unsigned(width), li))
        addr0 = Signal(range(cap))
        m.d.comb += addr0.eq(w_addr + in_beat * li)
        w1_rot = Signal(max(lg, 1))
        w1_row = Signal(range(plan.bank_depth))
        w1_row1 = Signal.like(w1_row)
        w1_en = [Signal(name=f"w1_en{n}") for n in range(banks)]
        w1_next = [Signal(name=f"w1_next{n}") for n in range(banks)]
        m.d.sync += [
            w1_rot.eq(addr0[:lg] if lg else 0),
            w1_row.eq(addr0[lg:]),
            w1_row1.eq(addr0[lg:] + 1),
            w1_pos.eq(pos_done),
            w1_data.eq(self.i.payload),
        ]
        for n, ram in enumerate(rams):
            # Lane ``lane`` of the beat goes to bank n; it is one of the beat's channels.
            lane = (n - addr0[:lg])[:lg] if lg else Const(0, 1)
            m.d.sync += [
                w1_en[n].eq(take & (lane < li) & (in_beat * li + lane < channels)),
                w1_next[n].eq(Const(n, lg + 1) < addr0[:lg] if lg else 0),
            ]
            lanes = [w1_data[k] for k in range(li)] + [Const(0, width)] * (banks - li)
            m.d.comb += [
                ram.w_addr.eq(Mux(w1_next[n], w1_row1, w1_row)),
                ram.w_data.eq(_rotated(lanes, w1_rot, lambda r, n=n: n - r)),
                ram.w_en.eq(w1_en[n]),
            ]

        # Reader: one window beat per cycle while its data is in and the queue has room.
        m.submodules.queue = queue = target.queue(self.o.payload.shape(), plan.fifo_depth)
        wiring.connect(m, queue.o, wiring.flipped(self.o))
        # The current window is described by registers (its table entries, whether it is the
        # last of its row and of its sample, its base and the step to the next base); the
        # next window's coordinates are registers too, so that its table entries come from
        # flip-flops when the reader moves to it.
        go = Signal()
        beat, _, window_done, _ = _counter(m, bpw, go, "beat")
        nx_ox, nx_ox_last, nx_row, _ = _counter(m, ow, window_done, "nx_ox", start=1 % ow)
        nx_oy, nx_oy_last, _, _ = _counter(m, oh, nx_row, "nx_oy", start=(ow == 1) % oh)
        ox_last = Signal(init=ow == 1)
        oy_last = Signal(init=oh == 1)
        x_step, y_step, t_step = plan.steps()
        step = Signal(range(max(x_step, y_step, t_step) + 1),
                      init=(t_step if oh == 1 else y_step) if ow == 1 else x_step)
        base = Signal(range(cap))
        rows_in = Signal(kh, init=plan.row_valid(0))
        cols_in = Signal(kw, init=plan.col_valid(0))
        # Whether the current window's data is in: the sign of a register, ``lead = written -
        # needed - 1``, both counted in positions over all samples (``written``: the positions
        # written; ``needed``: the current window's last needed position). Each cycle adds the
        # writer's position (``w1_pos``) and, when the window is done, the step back to the
        # next window's last needed position (``lead_back``, a register: minus a column's
        # step, or at the end of a row the row's, at the end of a sample plus a sample). The
        # flag is a flip-flop and its update one carry chain of registers (``w1_pos`` is the
        # carry into an extra low bit) and a select by ``window_done``.
        positions = plan.positions_in
        col_back = [plan.needed_col(x) - plan.needed_col(x + 1) for x in range(ow - 1)] + [0]
        row_end = plan.needed_col(ow - 1) - plan.needed_col(0)
        row_back = [plan.needed_row(y) - plan.needed_row(y + 1) + row_end for y in range(oh - 1)]
        row_back.append(plan.needed_row(oh - 1) - plan.needed_row(0) + row_end - positions)
        backs = col_back + row_back
        lead_back = Signal(range(min(backs), max(backs) + 1),
                           init=row_back[0] if ow == 1 else col_back[0])
        # The writer is at most cap // sample_stride + 3 samples ahead of the reader.
        samples_ahead = cap // plan.sample_stride + 3
        lead = Signal(range(-2 * positions - 1, (samples_ahead + 2) * positions),
                      init=-plan.needed(0, 0) - 1)
        avail = Signal()
        m.d.comb += [avail.eq(~lead[-1]), go.eq(avail & queue.ok), queue.take.eq(go)]
        with m.If(window_done):
            m.d.sync += lead_back.eq(Mux(
                nx_ox_last,
                Array(Const(v, lead_back.shape()) for v in row_back)[nx_oy],
                Array(Const(v, lead_back.shape()) for v in col_back)[nx_ox]))
        back = Cat(lead_back, lead_back[-1].replicate(len(lead) - len(lead_back)))
        moved = (Cat(w1_pos, lead) + Cat(w1_pos, back))[1:]
        m.d.sync += lead.eq(Mux(window_done, moved, lead + w1_pos))
        with m.If(window_done):
            m.d.sync += [
                base.eq(base + step),
                step.eq(Mux(nx_ox_last, Mux(nx_oy_last, t_step, y_step), x_step)),
                ox_last.eq(nx_ox_last),
                oy_last.eq(nx_oy_last),
                rows_in.eq(Array(Const(plan.row_valid(y), kh) for y in range(oh))[nx_oy]),
                cols_in.eq(Array(Const(plan.col_valid(x), kw) for x in range(ow))[nx_ox]),
            ]

        # The line buffer's room: the writer's next position against the reader's base, as the
        # slack ``cap - channels - (position - base)``. The steps of the previous cycle are
        # applied from registers (the reader's READ_LAG cycles later still, when the reads of
        # its window are made, which only holds the writer back). The writer's ready, a
        # register, takes a step of this cycle into account: ``slack - delta >= step``.
        read_step = delay(m, Mux(window_done, step, 0), READ_LAG, "read_step")
        delta_shape = signed(max(w_step.shape().width, step.shape().width) + 2)

        # The writer's step of this cycle less the reader's late one, in a register.
        delta = Signal(delta_shape, name="delta")
        m.d.sync += delta.eq(Mux(pos_done, w_step, 0) - read_step)
        slack = Signal(signed(span.bit_length() + 2), init=cap - channels - plan.first_address)

        def fits(steps, value=slack):
            """``value >= steps``, both signed, as one unsigned comparison."""
            x, y = signed_operands(value, steps, max(len(value), len(steps)))
            return x >= y
        m.d.sync += slack.eq(slack - delta)
        if target.precomputed_flags:
            # The registered steps plus the writer's step in the next cycle, should it finish
            # a position then, so that no adder precedes the comparison and one select by
            # ``pos_done`` follows it. The steps of this cycle and the next are constants,
            # summed here and selected by the flags (the next cycle's row and sample flags
            # from ``last`` and ``penult``), so that one subtraction makes the register.
            def step_of(ix_at_end, iy_at_end):
                return (s_step if iy_at_end else r_step) if ix_at_end else p_step

            def both(this, *flags):
                """This cycle's step plus the next one's, by ``(ix_last, iy_last)`` next."""
                return this + step_of(*flags)

            at_row_end = Mux(iy_last, both(s_step, wid == 1, height == 1),
                             Mux(iy_penult, both(r_step, wid == 1, True),
                                 both(r_step, wid == 1, False)))
            in_row = Mux(ix_penult, Mux(iy_last, both(p_step, True, True),
                                        both(p_step, True, False)),
                         both(p_step, False, False))
            delta_step = Signal(delta_shape, name="delta_step")
            # Without a finished position, the next step is this one's, w_step.
            m.d.sync += delta_step.eq(Mux(pos_done, Mux(ix_last, at_row_end, in_row), w_step)
                                      - read_step)
            m.d.sync += w_ready.eq(Mux(pos_done, fits(delta_step), fits(delta)))
        else:
            # The same flag from the next slack: a subtraction, then one comparison.
            slack_next = Signal.like(slack)
            moving = Signal(delta_shape)
            m.d.comb += [slack_next.eq(slack - delta), moving.eq(Mux(pos_done, w_step, 0))]
            m.d.sync += w_ready.eq(fits(moving, slack_next))

        # Stage 1: each lane's offset and mask, from the beat's table, and the window's base.
        offsets = [[plan.offset(b, j) for j in range(lo)] for b in range(bpw)]
        off1 = [Signal(range(max(map(max, offsets)) + 1), name=f"off1_{j}") for j in range(lo)]
        base1 = Signal.like(base)
        mask1 = [Signal(name=f"mask1_{j}") for j in range(lo)]
        valid1 = Signal()
        m.d.sync += [valid1.eq(go), base1.eq(base)]
        with m.Switch(beat):
            for b in range(bpw):
                with m.Case(b):
                    for j in range(lo):
                        m.d.sync += off1[j].eq(offsets[b][j])
                        element = plan.element(b, j)
                        if element is None:
                            m.d.sync += mask1[j].eq(0)
                        else:
                            ky, kx, _ = element
                            m.d.sync += mask1[j].eq(rows_in[ky] & cols_in[kx])

        # Stage 2: each lane's address.
        addr2 = [Signal(range(cap), name=f"addr2_{j}") for j in range(lo)]
        m.d.sync += [a.eq(base1 + o) for a, o in zip(addr2, off1, strict=True)]
        valid2 = delay(m, valid1, 1, "valid2")
        mask2 = [delay(m, mask1[j], 1, f"mask2_{j}") for j in range(lo)]

        # Stage 3: each bank's row, from the lane that falls in it.
        rot2 = addr2[0][:lg] if lg else Const(0, 1)
        rows2 = [a[lg:] if lg else a for a in addr2]
        rows2 += [rows2[0]] * (banks - lo)
        rows3 = [Signal.like(rows2[0], name=f"row3_{n}") for n in range(banks)]
        m.d.sync += [row.eq(_rotated(rows2, rot2, lambda r, n=n: n - r))
                     for n, row in enumerate(rows3)]

        # Stages 4 and 5: the banks' words, read and registered (the target's RAM read).
        m.d.comb += [ram.r_addr.eq(row) for ram, row in zip(rams, rows3, strict=True)]
        reads = [ram.r_data for ram in rams]
        rot5 = delay(m, rot2, 1 + RAM_READ_STAGES, "rot5")
        valid5 = delay(m, valid2, 1 + RAM_READ_STAGES, "valid5")
        mask5 = [delay(m, mask2[j], 1 + RAM_READ_STAGES, f"mask5_{j}") for j in range(lo)]

        # Stage 6: the banks' words rotated into lanes, masked, into the queue.
        out6 = Signal(data.ArrayLayout(unsigned(width), lo))
        valid6 = Signal()
        m.d.sync += valid6.eq(valid5)
        for j in range(lo):
            word = _rotated(reads, rot5, lambda r, j=j: r + j)
            m.d.sync += out6[j].eq(Mux(mask5[j], word, 0))
        m.d.comb += [queue.w.valid.eq(valid6), queue.w.payload.eq(out6)]
        return m
