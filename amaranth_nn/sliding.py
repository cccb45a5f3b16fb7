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

from amaranth.hdl import Array, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .plan import BLOCK_ROM_BITS
from .plumbing import CreditQueue, delay
from .unused import rejecting
from .window_plan import WindowPlan

__all__ = ["SlidingWindow"]

#: Cycles from issuing a window beat to its last bank read, less one: the writer may overwrite
#: what the reader's base has passed only after that.
READ_LAG = 2


def _counter(m, value, limit, step, name):
    """``(wrap, next)``: a counter of ``value`` from 0 to ``limit - 1`` that steps when ``step``;
    ``wrap`` is whether it steps past its last value."""
    wrap = Signal(name=f"{name}_wrap")
    m.d.comb += wrap.eq(step & (value == limit - 1))
    nxt = Signal.like(value, name=f"{name}_next")
    m.d.comb += nxt.eq(Mux(step, Mux(wrap, 0, value + 1), value))
    m.d.sync += value.eq(nxt)
    return wrap, nxt


class SlidingWindow(wiring.Component):
    """Sliding windows over a stream of positions, one output beat per cycle.

    See :class:`~amaranth_nn.window_plan.WindowPlan` for the beats in and out and the window
    orders, and the module docs for the structure.

    Parameters
    ----------
    plan : WindowPlan

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
        If ``plan`` is not a WindowPlan.
    """

    def __init__(self, plan):
        with rejecting(self):
            if not isinstance(plan, WindowPlan):
                raise TypeError(f"Plan must be a WindowPlan, not {plan!r}")
        self._plan = plan
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(plan.shape, plan.in_lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(plan.shape, plan.out_lanes))),
        })

    @property
    def plan(self):
        return self._plan

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
        lead = Signal(signed(span.bit_length() + 1), init=plan.first_address)
        ahead_max = cap // plan.sample_stride + 3
        ahead = Signal(range(-1, ahead_max + 1))
        attrs = ({"ram_style": "distributed"}
                 if plan.bank_depth * width < BLOCK_ROM_BITS else None)
        mems = [Memory(shape=unsigned(width), depth=plan.bank_depth, init=[], attrs=attrs)
                for _ in range(banks)]
        for n, mem in enumerate(mems):
            m.submodules[f"bank{n}"] = mem

        # Writer: count beats, positions and rows; each beat is registered, then written.
        w_ready = Signal(init=1)
        take = Signal()
        m.d.comb += [self.i.ready.eq(w_ready), take.eq(self.i.valid & w_ready)]
        in_beat = Signal(range(bpp))
        ix = Signal(range(wid))
        iy = Signal(range(height))
        w_addr = Signal(range(cap), init=plan.first_address % cap)
        pos_done, _ = _counter(m, in_beat, bpp, take, "in_beat")
        row_done, _ = _counter(m, ix, wid, pos_done, "ix")
        sample_done, _ = _counter(m, iy, height, row_done, "iy")
        p_step, r_step, s_step = plan.position_steps()
        w_advance = Signal(range(max(p_step, r_step, s_step) + 1))
        m.d.comb += w_advance.eq(Mux(pos_done, Mux(row_done, Mux(sample_done, s_step, r_step),
                                                   p_step), 0))
        m.d.sync += w_addr.eq(w_addr + w_advance)

        w1_valid = Signal()
        w1_addr = Signal(range(cap))
        w1_beat = Signal(range(bpp))
        w1_pos = Signal()
        w1_sample = Signal()
        w1_data = Signal(data.ArrayLayout(unsigned(width), li))
        m.d.sync += [
            w1_valid.eq(take),
            w1_addr.eq(w_addr + in_beat * li),
            w1_beat.eq(in_beat),
            w1_pos.eq(pos_done),
            w1_sample.eq(sample_done),
            w1_data.eq(self.i.payload),
        ]
        w_rot = w1_addr[:lg] if lg else Const(0, 1)
        w_row = w1_addr[lg:] if lg else w1_addr
        for n, mem in enumerate(mems):
            port = mem.write_port()
            lane = Signal(range(banks), name=f"w_lane{n}")
            m.d.comb += lane.eq((n - w_rot)[:lg] if lg else 0)
            lanes = [w1_data[k] for k in range(li)] + [Const(0, width)] * (banks - li)
            channel = w1_beat * li + lane
            m.d.comb += [
                port.addr.eq(Mux(Const(n, lg + 1) < w_rot, w_row + 1, w_row)),
                port.data.eq(Array(lanes)[lane]),
                port.en.eq(w1_valid & (lane < li) & (channel < channels)),
            ]

        # Positions written in the writer's sample, and its samples ahead of the reader's (-1
        # when the reader has finished a sample whose last positions no window needs).
        wpos = Signal(range(plan.positions_in + 1))
        with m.If(w1_valid & w1_pos):
            m.d.sync += wpos.eq(Mux(w1_sample, 0, wpos + 1))

        # Reader: one window beat per cycle while its data is in and the queue has room.
        m.submodules.queue = queue = CreditQueue(self.o.payload.shape(), plan.fifo_depth)
        wiring.connect(m, queue.o, wiring.flipped(self.o))
        beat = Signal(range(bpw))
        ox = Signal(range(ow))
        oy = Signal(range(oh))
        base = Signal(range(cap))
        rows_in = Signal(kh, init=plan.row_valid(0))
        cols_in = Signal(kw, init=plan.col_valid(0))
        go = Signal()
        beat_first = Signal(init=1)
        avail = Signal()
        m.d.comb += [
            go.eq(queue.ok & (~beat_first | avail)),
            queue.take.eq(go),
        ]
        window_done, _ = _counter(m, beat, bpw, go, "beat")
        if bpw > 1:
            with m.If(go):
                m.d.sync += beat_first.eq(window_done)
        out_row_done, ox_next = _counter(m, ox, ow, window_done, "ox")
        out_done, oy_next = _counter(m, oy, oh, out_row_done, "oy")
        x_step, y_step, t_step = plan.steps()
        r_advance = Signal(range(max(x_step, y_step, t_step) + 1))
        m.d.comb += r_advance.eq(Mux(window_done, Mux(out_row_done,
                                                      Mux(out_done, t_step, y_step), x_step), 0))
        m.d.sync += [
            base.eq(base + r_advance),
            rows_in.eq(Array(Const(plan.row_valid(y), kh) for y in range(oh))[oy_next]),
            cols_in.eq(Array(Const(plan.col_valid(x), kw) for x in range(ow))[ox_next]),
        ]

        # The line buffer's room: the writer's next position against the reader's base. The
        # reader's steps count READ_LAG cycles late, when its reads have been made. The
        # comparison for every pair of steps is made on the register, and the writer is assumed
        # to take a beat whenever it is ready (a safe overestimate of its step), so that the
        # selection follows registers only.
        def fits(write, read):
            return lead <= cap - channels - write + read

        w_pos = w_ready & (in_beat == bpp - 1)
        w_row = w_pos & (ix == wid - 1)
        w_sample = w_row & (iy == height - 1)
        r_window, r_row, r_sample = (delay(m, flag, READ_LAG, name) for flag, name in
                                     ((window_done, "read_window"), (out_row_done, "read_row"),
                                      (out_done, "read_sample")))
        r_late = Mux(r_window, Mux(r_row, Mux(r_sample, t_step, y_step), x_step), 0)

        def room(read):
            return Mux(w_pos, Mux(w_row, Mux(w_sample, fits(s_step, read), fits(r_step, read)),
                                  fits(p_step, read)), fits(0, read))
        m.d.sync += [
            lead.eq(lead + w_advance - r_late),
            w_ready.eq(Mux(r_window, Mux(r_row, Mux(r_sample, room(t_step), room(y_step)),
                                         room(x_step)), room(0))),
            ahead.eq(ahead + (w1_valid & w1_pos & w1_sample) - out_done),
        ]

        # Whether the current window's positions are in, a register (one cycle behind the
        # writer): from the last position the current window needs, that of the next window
        # and the raster position of the one after, all registers, stepped at a window's end.
        count = oh * ow
        need_shape = Shape.cast(range(plan.positions_in))

        def window_at(n):
            oy_n, ox_n = divmod(n % count, ow)
            return oy_n, ox_n

        need = Signal(need_shape, init=plan.needed(*window_at(0)))
        need_next = Signal(need_shape, init=plan.needed(*window_at(1)))
        last = Signal(init=count == 1)
        last_next = Signal(init=window_at(1) == (oh - 1, ow - 1))
        ox2 = Signal(range(ow), init=window_at(2)[1])
        oy2 = Signal(range(oh), init=window_at(2)[0])
        with m.If(window_done):
            m.d.sync += [
                need.eq(need_next),
                need_next.eq(Array(Const(plan.needed_row(y), need_shape) for y in range(oh))[oy2]
                             + Array(Const(plan.needed_col(x), need_shape)
                                     for x in range(ow))[ox2]),
                last.eq(last_next),
                last_next.eq((ox2 == ow - 1) & (oy2 == oh - 1)),
                ox2.eq(Mux(ox2 == ow - 1, 0, ox2 + 1)),
            ]
            with m.If(ox2 == ow - 1):
                m.d.sync += oy2.eq(Mux(oy2 == oh - 1, 0, oy2 + 1))
        ok_now = (ahead > 0) | ((ahead == 0) & (wpos > need))
        ok_next = Mux(last, (ahead > 1) | ((ahead == 1) & (wpos > need_next)),
                      (ahead > 0) | ((ahead == 0) & (wpos > need_next)))
        m.d.sync += avail.eq(Mux(window_done, ok_next, ok_now))

        # Stage 1: each lane's offset and mask, from the beat's table, and the window's base.
        offsets = [[plan.offset(b, j) for j in range(lo)] for b in range(bpw)]
        off1 = [Signal(range(max(map(max, offsets)) + 1), name=f"off1_{j}") for j in range(lo)]
        base1 = Signal.like(base)
        mask0 = [Signal(name=f"mask0_{j}") for j in range(lo)]
        valid0 = Signal()
        m.d.sync += [valid0.eq(go), base1.eq(base)]
        with m.Switch(beat):
            for b in range(bpw):
                with m.Case(b):
                    for j in range(lo):
                        m.d.sync += off1[j].eq(offsets[b][j])
                        element = plan.element(b, j)
                        if element is None:
                            m.d.sync += mask0[j].eq(0)
                        else:
                            ky, kx, _ = element
                            m.d.sync += mask0[j].eq(rows_in[ky] & cols_in[kx])

        # Stage 2: each lane's address.
        addr1 = [Signal(range(cap), name=f"addr1_{j}") for j in range(lo)]
        mask1 = [Signal(name=f"mask1_{j}") for j in range(lo)]
        valid1 = Signal()
        m.d.sync += valid1.eq(valid0)
        m.d.sync += [a.eq(base1 + o) for a, o in zip(addr1, off1, strict=True)]
        m.d.sync += [a.eq(b) for a, b in zip(mask1, mask0, strict=True)]

        # Stage 3: each bank's row, from the lane that falls in it.
        rot1 = addr1[0][:lg] if lg else Const(0, 1)
        rows1 = [a[lg:] if lg else a for a in addr1]
        rows1 += [rows1[0]] * (banks - lo)
        rows2 = [Signal.like(rows1[0], name=f"row2_{n}") for n in range(banks)]
        for n in range(banks):
            m.d.sync += rows2[n].eq(Array(rows1)[(n - rot1)[:lg]] if lg else rows1[0])
        rot2 = Signal.like(rot1)
        mask2 = [Signal(name=f"mask2_{j}") for j in range(lo)]
        valid2 = Signal()
        m.d.sync += [rot2.eq(rot1), valid2.eq(valid1)]
        m.d.sync += [a.eq(b) for a, b in zip(mask2, mask1, strict=True)]

        # Stages 4 and 5: the banks' words, read between registers (LUT RAM for small banks),
        # then registered again (block RAM takes the first register as its synchronous read,
        # and its slow clock-to-output then meets only a flip-flop).
        reads = []
        for n, mem in enumerate(mems):
            port = mem.read_port(domain="comb")
            m.d.comb += port.addr.eq(rows2[n])
            word = delay(m, port.data, 2, f"read{n}")
            reads.append(word)
        rot3 = delay(m, rot2, 2, "rot3")
        valid3 = delay(m, valid2, 2, "valid3")
        mask3 = [delay(m, mask2[j], 2, f"mask3_{j}") for j in range(lo)]

        # Stage 6: the banks' words rotated into lanes, masked, into the queue.
        out4 = Signal(data.ArrayLayout(unsigned(width), lo))
        valid4 = Signal()
        m.d.sync += valid4.eq(valid3)
        for j in range(lo):
            word = Array(reads)[(rot3 + j)[:lg]] if lg else reads[0]
            m.d.sync += out4[j].eq(Mux(mask3[j], word, 0))
        m.d.comb += [queue.w.valid.eq(valid4), queue.w.payload.eq(out4)]
        return m
