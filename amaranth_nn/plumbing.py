"""Stream plumbing of the free-running engines: register chains, the double buffer's control,
and the credit-counted output queue.

Every engine of :mod:`amaranth_nn` has the same outline: upstream beats go into a two-bank
buffer (:class:`PingPong`), a sequencer issues work when the data it needs has arrived and the
output queue has a slot for the result (:class:`CreditQueue`), and the work travels through a
pipeline that never stalls (:func:`delay` builds its register chains). Backpressure never
reaches the datapath: only the queue sees the sink's ``ready``.
"""

from amaranth.hdl import Cat, Module, Mux, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["delay", "PingPong", "CreditQueue"]


def delay(m, value, cycles, name, init=0):
    """``value`` through ``cycles`` registers of ``m`` (the first one with reset value
    ``init``)."""
    for n in range(cycles):
        stage = Signal(len(value), name=f"{name}_{n}", init=init if n == 0 else 0)
        m.d.sync += stage.eq(value)
        value = stage
    return value


class PingPong(wiring.Component):
    """Control of a two-bank vector buffer: a writer fills one bank while a reader uses the
    other.

    A vector is ``beats`` beats. The writer's stream :attr:`w` is ready while a bank is free;
    each transfer (:attr:`w_en`) goes to beat :attr:`w_beat` of bank :attr:`w_bank` of the
    owner's storage (:attr:`w_addr`: ``Cat(w_beat, w_bank)``, for a memory of
    ``2 << ceil(log2(beats))`` words). The reader works on
    bank :attr:`r_bank`. The reader may start on a vector before all of it is in: beat ``b``
    of its vector has arrived when :meth:`written` says so. Every flag is a register computed
    from the next state, so that the logic between flip-flops stays shallow.

    With ``in_order=True`` the reader issues its vector's beats in order, one per ``r_go``,
    possibly in several passes over the vector: it tells where it is with ``r_last`` (it is at
    beat ``beats - 1``) and ``r_final`` (this is its last pass), both registers of its own, and
    reads :attr:`r_arrived`, a register equal to ``written(beat)`` at its current beat, so that
    its issue condition is one LUT of flip-flops. The vector is done after the last beat of the
    final pass. Otherwise the owner drives :attr:`r_done` itself.

    Parameters
    ----------
    beats : int
        Beats per vector.
    shape : shape-like
        Payload of the writer's stream.
    in_order : bool
        Track the arrival for an in-order reader (see above).

    Members
    -------
    w : ``In(stream.Signature(shape))``
        The writer's stream.
    w_en, w_bank : ``Out(1)``
    w_beat : ``Out(range(beats))``
    r_bank : ``Out(1)``
    used1, used2 : ``Out(1)``
        One, or two, vectors started by the writer and not finished by the reader.
    differ : ``Out(1)``
        ``w_bank != r_bank``.
    r_done : ``In(1)``
        Without ``in_order``: the reader finishes its vector in this cycle.
    r_go, r_last, r_final : ``In(1)``; r_arrived : ``Out(1)``
        With ``in_order``, as described above.
    """

    def __init__(self, beats, shape, *, in_order=False):
        self._beats = beats
        self._in_order = in_order
        members = {
            "w": In(stream.Signature(shape)),
            "w_en": Out(1),
            "w_beat": Out(range(beats)),
            "w_bank": Out(1),
            "r_bank": Out(1),
            "used1": Out(1),
            "used2": Out(1),
            "differ": Out(1),
        }
        if in_order:
            members.update(r_go=In(1), r_last=In(1), r_final=In(1), r_arrived=Out(1))
        else:
            members["r_done"] = In(1)
        super().__init__(members)
        # Whether w_beat is 0, and w_beat + 1: registers of their own.
        self._w_zero = Signal(name="w_zero", init=1)
        self._w_next = Signal(range(beats + 1), name="w_next", init=1)

    @property
    def beats(self):
        return self._beats

    @property
    def w_addr(self):
        """Storage address of the beat being written: ``Cat(w_beat, w_bank)``."""
        return Cat(self.w_beat, self.w_bank)

    def r_addr(self, beat):
        """Storage address of ``beat`` of the reader's vector."""
        return Cat(beat, self.r_bank)

    def written(self, beat):
        """Whether ``beat`` (a value, or an int) of the reader's vector has been written."""
        if isinstance(beat, int) and beat == 0:
            beat_in = ~self._w_zero
        else:
            beat_in = self.w_beat > beat
        return self.used2 | (self.used1 & (self.differ | beat_in))

    def elaborate(self, platform):
        m = Module()
        done = Signal()
        if self._in_order:
            m.d.comb += done.eq(self.r_go & self.r_last & self.r_final)
            m.d.comb += self.r_arrived.eq(self._arrival(m))
        else:
            m.d.comb += done.eq(self.r_done)
        w_ready = Signal(init=1)
        m.d.comb += [self.w.ready.eq(w_ready), self.w_en.eq(self.w.valid & w_ready)]
        # Whether w_beat is its last value, and 0: registers, so that no comparison of the
        # counter precedes the flags below.
        w_last, w_zero = Signal(name="w_last", init=self._beats == 1), self._w_zero
        wrap = self.w_en & w_last
        start = self.w_en & w_zero
        more = start & ~done
        fewer = ~start & done
        used0 = ~self.used1 & ~self.used2
        used2_next = Signal()
        m.d.comb += used2_next.eq(Mux(more, ~used0, Mux(fewer, 0, self.used2)))
        with m.If(self.w_en):
            m.d.sync += [
                self.w_beat.eq(Mux(w_last, 0, self.w_beat + 1)),
                w_last.eq(Mux(w_last, self._beats == 1, self.w_beat == self._beats - 2)),
                w_zero.eq(w_last),
                self._w_next.eq(Mux(w_last, 1, self._w_next + 1)),
            ]
        # The writer's ready is a register too, so that the upstream block sees a flip-flop:
        # a bank is free, or the next beat is not the first of a vector.
        m.d.sync += [
            self.w_bank.eq(self.w_bank ^ wrap),
            self.r_bank.eq(self.r_bank ^ done),
            self.differ.eq(self.differ ^ wrap ^ done),
            self.used1.eq(Mux(more, used0, Mux(fewer, self.used2, self.used1))),
            self.used2.eq(used2_next),
            w_ready.eq(Mux(self.w_en, ~w_last, ~w_zero) | ~used2_next),
        ]
        return m

    def _arrival(self, m):
        """``written(beat)`` at the in-order reader's beat, as the OR of two flip-flops.

        ``ahead`` counts the beats of the reader's vector written at or after its beat (so
        ``written(beat)`` is ``ahead != 0``): the beats of a vector are written in order and the
        reader never passes the writer, so a write into the reader's vector adds one, a step
        takes one, a new pass over the same vector makes it ``beats``, and a new vector takes
        the count of its beats written so far. The flag is ``t | x``: ``x`` holds whether the
        previous cycle wrote into the reader's vector and ``t`` whether ``ahead`` was nonzero
        without that write, so that ``w_en``, which comes from the upstream block, only feeds
        ``x``. Its cost does not grow with ``beats``: a counter of ``ceil(log2(beats + 1))``
        bits and two flip-flops (issue 12: the thermometer of ``written(beat + k)`` it replaces
        took two flip-flops and a mux per beat).
        """
        beats, go, last, final = self._beats, self.r_go, self.r_last, self.r_final
        ahead = Signal(range(beats + 1), name="ahead", init=0)
        t = Signal(name="arrived_t")
        x = Signal(name="arrived_w")
        # A write goes into the reader's vector when the writer is on the reader's bank (with
        # two vectors buffered and the writer there, it is blocked); when the reader finishes
        # its vector, into the next one.
        full = self.used2 & ~self.differ
        into = self.w_en & ~self.differ
        # Without this cycle's write: stay, step down, new pass, or the next vector (when the
        # reader finishes this one, the writer is on the next vector with w_beat beats written,
        # or finished it, or has not started it and w_beat is 0); then this cycle's write. The
        # sums are of flip-flops only (``w_beat + 1`` is a register), and the flags (``go``
        # last) only select among them.
        sums = {}
        for name, value in [("dec", ahead - 1), ("inc", ahead + 1)]:
            sums[name] = Signal.like(ahead, name=f"ahead_{name}")
            m.d.comb += sums[name].eq(value)
        wrote_go = Mux(last, self.w_en & final, into)
        ahead_go = Mux(last, Mux(final & ~full, Mux(self.w_en, self._w_next, self.w_beat), beats),
                       Mux(into, ahead, sums["dec"]))
        m.d.sync += [
            ahead.eq(Mux(go, ahead_go, Mux(into, sums["inc"], ahead))),
            t.eq(Mux(go, Mux(last, ~final | full | ~self._w_zero, ahead != 1), t | x)),
            x.eq(Mux(go, wrote_go, into)),
        ]
        return t | x


class CreditQueue(wiring.Component):
    """An output FIFO that a free-running pipeline writes into without ever overflowing.

    The pipeline reserves a slot (``take``) when it starts the work for one output beat, and
    only while ``ok`` says a slot is free; the result arrives some cycles later on :attr:`w`,
    which is always ready. The sink's ``ready`` drives only the FIFO; the credit of a popped
    beat returns a cycle later, from a register. For full throughput, ``depth`` must cover the
    credit loop: from ``take`` to the write, plus the FIFO's latency
    (:data:`~amaranth_nn.plan.FIFO_LATENCY`), plus 2 cycles (pop, credit).

    Parameters
    ----------
    shape : shape-like
        Payload of the streams.
    depth : int
        FIFO entries.
    attrs : dict, optional
        Attributes of the FIFO's memory (of ``depth - 1`` words; the target's choice of RAM,
        :meth:`~amaranth_nn.targets.Target.queue`).

    Members
    -------
    take : ``In(1)``
        Reserve a slot in this cycle.
    ok : ``Out(1)``
        A slot is free (a register).
    w : ``In(stream.Signature(shape, always_ready=True))``
        The pipeline's results.
    o : ``Out(stream.Signature(shape))``
        To the sink.
    """

    def __init__(self, shape, depth, *, attrs=None):
        self._shape, self._depth, self._attrs = shape, depth, attrs
        super().__init__({
            "take": In(1),
            "ok": Out(1, init=1),
            "w": In(stream.Signature(shape, always_ready=True)),
            "o": Out(stream.Signature(shape)),
        })

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        width, depth = Shape.cast(self._shape).width, self._depth
        # The FIFO: an output register (o's payload and valid) fed from a memory of depth - 1
        # entries, as amaranth's SyncFIFOBuffered (a write reaches o two cycles later), without
        # its full flag (the credits keep the writes within the depth) and with the memory's
        # nonempty flag in a register computed from the next state, so that the refill of the
        # output register is one LUT of flip-flops and the sink's ready.
        inner = max(1, depth - 1)
        storage = m.submodules.storage = Memory(shape=width, depth=inner, init=[],
                                                attrs=self._attrs)
        w_port = storage.write_port()
        r_port = storage.read_port(domain="sync")
        produce = Signal(range(inner))
        consume = Signal(range(inner))
        level = Signal(range(inner + 1))
        nonempty = Signal()
        o_valid = Signal()
        refill = Signal()
        write = self.w.valid
        m.d.comb += [
            refill.eq(nonempty & (~o_valid | self.o.ready)),
            w_port.addr.eq(produce),
            w_port.data.eq(self.w.payload),
            w_port.en.eq(write),
            r_port.addr.eq(consume),
            r_port.en.eq(refill),
            self.o.valid.eq(o_valid),
            self.o.payload.eq(r_port.data),
        ]
        with m.If(write):
            m.d.sync += produce.eq(Mux(produce == inner - 1, 0, produce + 1))
        with m.If(refill):
            m.d.sync += consume.eq(Mux(consume == inner - 1, 0, consume + 1))
        m.d.sync += [
            level.eq(level + write - refill),
            # Nonempty next: a write, or more than the one entry a refill takes.
            nonempty.eq(write | (nonempty & ~(refill & (level < 2)))),
        ]
        with m.If(refill):
            m.d.sync += o_valid.eq(1)
        with m.Elif(self.o.ready):
            m.d.sync += o_valid.eq(0)

        # The credits: ok is ``credit != 0``; the next one is computed from ok, the returned
        # credit and whether the one credit left is taken, so that ``take`` (the owner's issue)
        # meets no adder before it.
        credit = Signal(range(depth + 1), init=depth)
        pop = Signal()
        m.d.sync += [
            pop.eq(o_valid & self.o.ready),
            credit.eq(credit - self.take + pop),
            self.ok.eq((self.ok | pop) & ~(self.take & ~pop & (credit == 1))),
        ]
        return m
