"""The board harness: UART, framed protocol, the network, argmax, status LEDs, error counters.

:class:`Harness` is the platform-independent core (its members are the serial pins and the
status signals, so the whole system runs in the Amaranth simulator); :class:`BoardTop` wraps it
for an amaranth-boards platform: it requests the UART the amaranth-boards way,
``platform.request("uart", 0, dir="-")`` with :class:`amaranth.lib.io.Buffer`, and drives the
board's LEDs. The ``sync`` clock domain is the board's default clock, created by the platform
(with the board's reset button where it has one, and a synchronized power-on reset).

The wire format is in :mod:`boards.protocol`.
"""

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, signed
from amaranth.lib import data, io, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from amaranth_nn.network import Network
from amaranth_nn.sliding import offset_binary
from amaranth_nn.unused import rejecting

from . import protocol as proto
from .lfsr import POLYNOMIALS, lfsr_next, lfsr_width, state_after
from .uart import UARTReceiver, UARTTransmitter, check_divisor

__all__ = ["Harness", "BoardTop", "crc16_next", "check_harness_arguments", "STATUS_SIGNALS"]

#: Status outputs of :class:`Harness` that a board can show on its LEDs.
STATUS_SIGNALS = ("heartbeat", "busy", "error", "activity")


def _crc16_equations():
    """For each bit of the next CRC: the CRC bits and data bits it is the XOR of."""
    # Symbolic run of protocol.crc16_update over GF(2): a bit is a set of variables.
    crc = [frozenset({("c", i)}) for i in range(16)]
    for i in range(8):
        crc[8 + i] = crc[8 + i] ^ {("d", i)}
    for _ in range(8):
        msb = crc[15]
        crc = [frozenset()] + crc[:15]
        for i in range(16):
            if (proto.CRC_POLY >> i) & 1:
                crc[i] = crc[i] ^ msb
    return [sorted(bit) for bit in crc]


_CRC16_EQUATIONS = _crc16_equations()


def crc16_next(crc, byte):
    """CRC-16/CCITT-FALSE of one more byte, as a combinational Amaranth expression.

    Mirrors :func:`boards.protocol.crc16_update`; each bit is a flat XOR of CRC and data bits.
    """
    sources = {"c": crc, "d": byte}
    return Cat(Cat(sources[kind][index] for kind, index in bit).xor()
               for bit in _CRC16_EQUATIONS)


def _reply_codes():
    """``{code: reply type}``: 0 for a RESULT, each NAK error code, then STATUS and INFO."""
    codes = {0: proto.RESULT}
    codes.update({code: proto.NAK for code in proto.ERRORS.values()})
    first = max(codes) + 1
    codes.update({first: proto.STATUS_REPLY, first + 1: proto.INFO_REPLY})
    return codes


#: Bits of a reply code (:func:`_reply_codes`), the transmitter's and the control queue's.
_CODE_BITS = max(_reply_codes()).bit_length()


def led_timing(heartbeat, stretch):
    """The status outputs' timers: ``(tick_width, heartbeat_ticks, stretch_ticks)``.

    One free-running LFSR prescaler (:mod:`boards.lfsr`) of ``tick_width`` bits ticks them
    every ``2**tick_width - 1`` cycles, the longest such period at most a quarter of the
    shorter of ``heartbeat`` and ``stretch`` (every cycle, width 0, when there is none). The
    heartbeat toggles every ``heartbeat_ticks`` ticks, ``heartbeat`` rounded to whole ticks
    (within an eighth of it); a stretched output stays on for ``stretch_ticks`` ticks after its
    event: exactly ``stretch`` cycles when a tick is one cycle, otherwise at least ``stretch``
    cycles and at most half as long again.
    """
    quarter = min(heartbeat, stretch) // 4
    width = max((w for w in POLYNOMIALS if (1 << w) - 1 <= quarter), default=0)
    tick = (1 << width) - 1 if width else 1
    heartbeat_ticks = max(1, (heartbeat + tick // 2) // tick)
    stretch_ticks = stretch if tick == 1 else -(-stretch // tick) + 1
    return width, heartbeat_ticks, stretch_ticks


def _check_positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value}")
    return value


def check_harness_arguments(divisor, timeout=None, heartbeat=None, stretch=None):
    """Check the cycle counts of a :class:`Harness` and fill in the defaults.

    A separate function, so that a caller can check them before it creates a harness (an
    Elaboratable whose constructor raised would be reported as unused).

    Returns
    -------
    tuple of int
        ``(divisor, timeout, heartbeat, stretch)``.

    Raises
    ------
    TypeError, ValueError
        For a bad divisor, timeout (not an integer, or shorter than one character), heartbeat
        or stretch.
    """
    divisor = check_divisor(divisor)
    byte_time = proto.BITS_PER_BYTE * divisor
    timeout = _check_positive("Timeout", 30 * byte_time if timeout is None else timeout)
    if timeout < byte_time:
        # Shorter than the gap between two back-to-back characters: every frame times out.
        raise ValueError(f"Timeout must be at least one character, {byte_time} cycles "
                         f"(10 bit times at divisor {divisor}), not {timeout}")
    heartbeat = _check_positive("Heartbeat", 1 << 22 if heartbeat is None else heartbeat)
    stretch = _check_positive("Stretch", 40 * byte_time if stretch is None else stretch)
    return divisor, timeout, heartbeat, stretch


class Harness(wiring.Component):
    """The network behind a UART with the framed protocol of :mod:`boards.protocol`.

    The receiver hunts for ``SYNC``, checks the frame type and its exact payload length, writes an
    INFER payload into an input buffer (a :class:`~amaranth.lib.memory.Memory` of
    ``network.plan.in_lanes`` lanes per row: the flat vector in the network's input beats, so
    ``C_in`` lanes, one position per beat, for a first convolution) and checks the CRC; only a
    frame with a good CRC is streamed into the network. The output elements are collected
    into a reply memory (with the counters and the INFO payload), the argmax is kept as they
    go by (first maximum wins) and the RESULT reply is sent. Every error is
    counted (see :data:`boards.protocol.COUNTERS`) and answered with a NAK where the frame's
    tag is known; the receiver then hunts for the next ``SYNC``. A frame whose line goes idle
    for ``timeout`` cycles is abandoned, so a truncated frame never hangs the link. NAK,
    STATUS and INFO replies wait in a 4-entry queue behind the RESULTs (one that finds the
    queue full is dropped); up to 4 inferences may be in flight, and an INFER beyond that, or
    one arriving while the input buffer is still being fed, is NAKed as an overrun.

    Parameters
    ----------
    spec : NetworkSpec
        The network.
    folding : sequence, optional
        One entry per layer (:mod:`amaranth_nn.folding`: ``(pe, simd)`` for a dense or conv
        layer, the lanes of a pooling or scale-and-shift layer, ``None`` for a flatten),
        passed to :class:`amaranth_nn.network.Network`.
    target_ii : int, optional
        Target initiation interval, passed to :class:`amaranth_nn.network.Network`.
    lut_multipliers : collection of int, optional
        The layers whose multipliers are built from logic, passed to
        :class:`amaranth_nn.network.Network`.
    running_accumulators : bool, optional
        Accumulators that never restart, passed to :class:`amaranth_nn.network.Network`.
    divisor : int
        UART clock cycles per bit (at least 4).
    timeout : int, optional
        Cycles without a byte after which a partial frame is abandoned: at least one character
        (``10 * divisor``), since that is the gap between two back-to-back bytes of a frame.
        Default: 30 byte times.
    heartbeat : int, optional
        Cycles per half period of the heartbeat output, rounded to the ticks of the status
        outputs' prescaler (:func:`led_timing`). Default: ``2**22``.
    stretch : int, optional
        Cycles that the busy, error and activity outputs stay on at least after an event, so
        that they are visible on an LED (at most half as long again, :func:`led_timing`).
        Default: 40 byte times.
    arch : str or Target
        The network's target, passed to :class:`amaranth_nn.network.Network` (default
        ``"auto"``: the platform's).

    Members
    -------
    rx : In(1)
        UART receive line (idle high).
    tx : Out(1)
        UART transmit line (idle high).
    heartbeat : Out(1)
        Blinks while the clock runs.
    busy : Out(1)
        An inference or a reply is in progress (stretched).
    error : Out(1)
        A frame was rejected (stretched).
    activity : Out(1)
        A good frame was received (stretched).
    last_class : Out(16)
        The argmax class of the last RESULT sent.

    Raises
    ------
    TypeError, ValueError
        For a bad divisor, timeout (not an integer, or shorter than one character), heartbeat
        or stretch, and from the network for a bad folding.
    """

    def __init__(self, spec, *, folding=None, target_ii=None, lut_multipliers=(),
                 running_accumulators=False, divisor, timeout=None, heartbeat=None,
                 stretch=None, arch="auto"):
        with rejecting(self):
            self._divisor, self._timeout, self._heartbeat, self._stretch = \
                check_harness_arguments(divisor, timeout, heartbeat, stretch)
            self._protocol = proto.Protocol(spec)
            self._network = Network(spec, folding, target_ii=target_ii,  # last: it can't be unused
                                    lut_multipliers=lut_multipliers,
                                    running_accumulators=running_accumulators, arch=arch)
        self._spec = spec
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "heartbeat": Out(1),
            "busy": Out(1),
            "error": Out(1),
            "activity": Out(1),
            "last_class": Out(8 * proto.ARGMAX_BYTES),
        })

    @property
    def spec(self):
        return self._spec

    @property
    def network(self):
        return self._network

    @property
    def protocol(self):
        return self._protocol

    @property
    def divisor(self):
        return self._divisor

    @property
    def timeout(self):
        return self._timeout

    def elaborate(self, platform):
        m = Module()
        spec, net, p = self._spec, self._network, self._protocol

        m.submodules.network = net
        m.submodules.uart_rx = urx = UARTReceiver(self._divisor)
        m.submodules.uart_tx = utx = UARTTransmitter(self._divisor)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), urx.o.ready.eq(1)]
        # The receiver acts on each byte one cycle after the UART delivers it, with the byte's
        # comparisons registered (`got`, `byte` and the flags below), which keeps the comparisons
        # off the paths into the counters, the queues and the input buffer.
        arrived = urx.o.valid
        got = Signal()
        byte = Signal(8)
        m.d.sync += [got.eq(arrived), byte.eq(urx.o.payload)]

        in_width = p.input_width
        in_bytes, out_bytes = p.input_bytes, p.output_bytes
        n_out = spec.output_size
        # The network's lanes per beat: a dense first layer's simd, a first convolution's
        # C_in (one position per beat); the last block's pe or lanes.
        simd = net.plan.in_lanes
        pe = net.plan.out_lanes
        in_beats, out_beats = net.in_beats, net.out_beats

        # The reply memory: the 16-bit saturating counters (words 0 to 6, in the order of
        # `proto.COUNTERS`), then the RESULT payload and the INFO payload (its initial
        # contents, never written), a byte a word. At most one counted event
        # happens in a cycle (a received byte, a framing error and a timeout exclude each
        # other, and each byte raises at most one event), and events on one counter are a
        # character or more apart. An event is registered; in the next cycle its counter's
        # address goes into the read address register (which otherwise follows the
        # transmitter's address a cycle behind); in the cycle after that the counter is read;
        # in the next the read port holds it (so the transmitter, which reads the STATUS, RESULT
        # and INFO payloads from it, waits), and the counter plus one and whether it is below
        # 65535 are registered; in the next cycle they are written back (the collector does not
        # write). The memory's word never goes straight into its own write port, nor logic
        # into its read address. After a reset the counters are cleared, one a cycle.
        events = {name: Signal(name=f"ev_{name}") for name in proto.COUNTERS}
        n_counters = len(proto.COUNTERS)
        info_base = n_counters + p.result_payload
        info = p.info_bytes(net.ii, net.latency)
        m.submodules.replies = replies = Memory(
            shape=16, depth=info_base + len(info), init=[0] * info_base + list(info))
        reply_wr = replies.write_port()
        # Every write goes through registers, a cycle late: the writers' arbitration and
        # multiplexers are off the paths into the memory.
        reply_write = {"addr": Signal.like(reply_wr.addr), "data": Signal(16), "en": Signal()}
        m.d.sync += [getattr(reply_wr, name).eq(value) for name, value in reply_write.items()]
        reply_rd = replies.read_port(domain="sync")
        clearing = Signal(range(n_counters))
        clearing_active = Signal(init=1)  # after a reset
        seen = Signal(n_counters)  # the events, registered: the counter's word is being read
        seen_any = Signal()  # seen.any(), a register of its own (see rx_event below)
        seen_index = Signal(range(n_counters))
        read_addr = Signal.like(reply_rd.addr)
        reading = Signal()  # read_addr is the counter's
        read_index = Signal(range(n_counters))
        pending = Signal()  # the read port holds the counter
        pending_index = Signal(range(n_counters))
        writing = Signal()  # the counter is being written
        writing_index = Signal(range(n_counters))
        incremented = Signal(16)
        below_max = Signal()  # the counter is below 65535: it is written
        memory_busy = Signal(init=1)  # the counters own the memory's write port this cycle
        # (a register: writing or clearing_active in this cycle, from their next values)
        m.d.sync += memory_busy.eq(pending | clearing_active & (clearing != n_counters - 1))
        m.d.sync += [seen.eq(Cat(events.values())), reading.eq(seen_any),
                     read_index.eq(seen_index), pending.eq(reading),
                     pending_index.eq(read_index), writing.eq(pending),
                     writing_index.eq(pending_index),
                     incremented.eq(reply_rd.data + 1), below_max.eq(reply_rd.data != 0xFFFF)]
        # seen is one-hot or zero: each bit of its index is an OR of its bits.
        m.d.comb += seen_index.eq(Cat(
            Cat(seen[index] for index in range(n_counters) if index >> bit & 1).any()
            for bit in range(len(seen_index))))
        with m.If(clearing_active):
            m.d.comb += [reply_write["addr"].eq(clearing), reply_write["data"].eq(0),
                         reply_write["en"].eq(1)]
            m.d.sync += clearing.eq(clearing + 1)
            with m.If(clearing == n_counters - 1):
                m.d.sync += [clearing.eq(0), clearing_active.eq(0)]
        with m.Elif(writing):
            m.d.comb += [reply_write["addr"].eq(writing_index),
                         reply_write["data"].eq(incremented), reply_write["en"].eq(below_max)]
        any_error = Signal()
        m.d.comb += any_error.eq(Cat(events[name] for name in
                                     ("crc_errors", "header_errors", "framing_errors",
                                      "timeouts", "overruns")).any())

        # Tags of the inferences in flight, in order.
        m.submodules.tags = tags = SyncFIFO(width=8, depth=4)

        # ---- Input buffer and feeder --------------------------------------------------------
        m.submodules.inbuf = inbuf = Memory(
            shape=data.ArrayLayout(signed(in_width), simd), depth=in_beats, init=[])
        wr = inbuf.write_port(granularity=1)
        rd = inbuf.read_port(domain="sync")

        feeding = Signal()
        feed_beat = Signal(range(in_beats + 1))
        feed_valid = Signal()
        stall = feed_valid & ~net.i.ready
        m.d.comb += [rd.addr.eq(feed_beat), rd.en.eq(~stall),
                     net.i.valid.eq(feed_valid), net.i.payload.eq(rd.data)]
        with m.If(~stall):
            with m.If(feeding & (feed_beat < in_beats)):
                m.d.sync += [feed_valid.eq(1), feed_beat.eq(feed_beat + 1)]
            with m.Else():
                m.d.sync += feed_valid.eq(0)
                with m.If(feeding & (feed_beat == in_beats)):
                    m.d.sync += [feeding.eq(0), feed_beat.eq(0)]

        # ---- Output collector and argmax ----------------------------------------------------
        # The collector writes the output elements into the reply memory a byte at a time
        # (holding the network's next output beat until the last byte is written), then the argmax
        # class, which it keeps as the elements go by, a cycle behind (a strictly greater element
        # replaces the best: the first maximum wins).
        o_addr = Signal(range(info_base), init=n_counters)  # the reply memory word written next
        o_byte = Signal(range(out_bytes))
        o_lane = Signal(range(pe))
        o_index = Signal(range(out_beats * pe))
        # Flags of o_index, computed as it steps (off the paths into the memory's write port).
        last_index = out_beats * pe - 1
        o_last = Signal(init=last_index == 0)  # o_index is the last lane of the last beat
        o_pad = Signal()  # o_index is past the last element (the last beat's padding lanes)
        # The network's output beat is taken into a register first, off the paths from the
        # memory's arbitration into the network.
        held_beat = Signal(net.o.payload.shape())
        beat_full = Signal()
        m.d.comb += net.o.ready.eq(~beat_full)
        with m.If(net.o.valid & ~beat_full):
            m.d.sync += [held_beat.eq(net.o.payload), beat_full.eq(1)]
        value = held_beat[o_lane] if pe > 1 else held_beat[0]
        extended = Signal(signed(8 * out_bytes))
        m.d.comb += extended.eq(value)
        # The argmax runs behind the collector: each element collected is held with its index
        # (the candidate); in the next cycle it is compared with the best, into a register (one
        # carry chain between registers); in the cycle after that the best takes it if it was
        # greater. Both are held in offset binary, so that the comparison is one unsigned carry
        # chain. The collector finishes an element at most every other cycle, so a candidate
        # stays put until the best has taken it (replies go out at 10 bit times a byte, so this
        # costs nothing). The best starts at 0 with index 0 (the first element replaces it
        # unless it is the least value, and then the first element is the argmax anyway).
        best = Signal(len(value))
        best_index = Signal(range(max(n_out, 2)))
        candidate = Signal(len(value))
        candidate_index = Signal.like(best_index)
        comparing = Signal()  # the candidate is compared with the best in this cycle
        greater = Signal()  # the candidate is greater than the best: the best takes it
        m.d.sync += [comparing.eq(0), greater.eq(comparing & (best - candidate)[len(value)])]
        with m.If(greater):
            m.d.sync += [best.eq(candidate), best_index.eq(candidate_index)]
        arg_byte = Signal(range(proto.ARGMAX_BYTES))
        element_done = o_byte == out_bytes - 1
        beat_done = element_done & (o_lane == pe - 1)
        result_full = Signal()  # the collector's third state, FULL: the RESULT is being sent
        result_done = Signal()  # the RESULT reply's last byte was taken

        def write_result(byte):
            m.d.comb += [reply_write["addr"].eq(o_addr), reply_write["data"].eq(byte),
                         reply_write["en"].eq(1)]
            m.d.sync += o_addr.eq(o_addr + 1)

        # The collector's state, one-hot: COLLECT, ARGMAX (the argmax class is written),
        # result_full (FULL: the RESULT is being sent).
        c_collect = Signal(init=1)
        c_argmax = Signal()
        take = Signal()  # COLLECT: a byte of the held beat is handled
        m.d.comb += take.eq(c_collect & beat_full & ~memory_busy & ~comparing)
        with m.If(take):
            with m.If(~o_pad):  # the last beat's lanes past the end are padding
                write_result(extended.word_select(o_byte, 8))
                with m.If(element_done):
                    m.d.sync += [candidate.eq(offset_binary(value, len(value))),
                                 candidate_index.eq(o_index),
                                 comparing.eq(1)]
            with m.If(beat_done):
                m.d.sync += beat_full.eq(0)
            with m.If(element_done):
                m.d.sync += [o_byte.eq(0), o_index.eq(o_index + 1),
                             o_lane.eq(Mux(o_lane == pe - 1, 0, o_lane + 1)),
                             o_last.eq(o_index == last_index - 1),
                             o_pad.eq(o_index >= n_out - 1)]
                with m.If(o_last):
                    m.d.sync += [o_index.eq(0), o_last.eq(last_index == 0), o_pad.eq(0),
                                 c_collect.eq(0), c_argmax.eq(1)]
            with m.Else():
                m.d.sync += o_byte.eq(o_byte + 1)
        with m.If(c_argmax & ~memory_busy & ~comparing & ~greater):  # the best is final
            argmax_bytes = Cat(best_index, Const(0, 8 * proto.ARGMAX_BYTES))
            write_result(argmax_bytes.word_select(arg_byte, 8))
            m.d.sync += arg_byte.eq(arg_byte + 1)
            with m.If(arg_byte == proto.ARGMAX_BYTES - 1):
                m.d.sync += [o_addr.eq(n_counters), arg_byte.eq(0), c_argmax.eq(0),
                             result_full.eq(1)]
        with m.If(result_done):
            m.d.sync += [self.last_class.eq(best_index), best.eq(0), best_index.eq(0),
                         c_collect.eq(1), result_full.eq(0)]

        # ---- Reply transmitter --------------------------------------------------------------
        # A reply is named by a code: 0 a RESULT, a NAK's error code, or one past them for the
        # STATUS and INFO replies. Control replies (NAK, STATUS, INFO) wait in a small queue as
        # code and tag.
        codes = _reply_codes()
        code_of = {type_: code for code, type_ in codes.items() if type_ != proto.NAK}
        m.submodules.ctl = ctl = SyncFIFO(width=8 + _CODE_BITS, depth=4)
        ctl_tag, ctl_code = ctl.r_data[:8], ctl.r_data[8:]

        tx_code = Signal(_CODE_BITS)
        tx_tag = Signal(8)
        tx_crc = Signal(16)
        # A sent byte enters the CRC a cycle later, from a register (off the payload's paths);
        # the CRC is sent characters later.
        crc_byte = Signal(8)
        crc_step = Signal()
        tx_pos = Signal(range(max(proto.HEADER_SIZE, *p.reply_lengths.values())))
        # The byte offered to the UART is a register, computed from the state a cycle earlier
        # (the payload byte from the reply memory's word): a character is 10 bit times, so it
        # has long settled when the UART takes the next byte. In IDLE it is SYNC, the first
        # byte of every reply.
        tx_byte = Signal(8, init=proto.SYNC)
        tx_type = Signal(8)
        tx_len = Signal(16)
        at_last = Signal()  # the payload byte at tx_pos is the last one
        tx_last = Signal()  # at_last, registered: tx_pos stands for a character or more
        m.d.sync += tx_last.eq(at_last)
        tx_active = Signal()
        m.d.comb += [utx.i.payload.eq(tx_byte)]

        # The reply memory word of a STATUS, RESULT or INFO payload byte: a register, set with
        # the reply's code and stepped with tx_pos (a STATUS counter is two bytes).
        tx_addr = Signal.like(reply_rd.addr)
        tx_status = Signal()  # the reply is a STATUS
        tx_nak = Signal()  # the reply is a NAK: its payload is its code
        with m.Switch(tx_code):
            for code, type_ in codes.items():
                with m.Case(code):
                    length = p.reply_payload_length(type_)
                    m.d.comb += [tx_type.eq(type_), tx_len.eq(length),
                                 at_last.eq(tx_pos == length - 1),
                                 tx_status.eq(type_ == proto.STATUS_REPLY),
                                 tx_nak.eq(type_ == proto.NAK)]
        m.d.sync += read_addr.eq(Mux(seen_any, seen_index, tx_addr))
        m.d.comb += reply_rd.addr.eq(read_addr)
        sent = utx.i.valid & utx.i.ready
        m.d.sync += crc_step.eq(0)
        with m.If(crc_step):
            m.d.sync += tx_crc.eq(crc16_next(tx_crc, crc_byte))
        # The transmitter's state, one-hot (a register a state), so that its decisions are a
        # LUT or two: IDLE, HEADER, PAYLOAD, CRC_HI, CRC_LO.
        tx_idle = Signal(init=1)
        tx_header = Signal()
        tx_payload = Signal()
        tx_crc_hi = Signal()
        tx_crc_lo = Signal()
        tx_result = Signal()  # the reply is a RESULT
        m.d.comb += [tx_active.eq(~tx_idle),
                     utx.i.valid.eq(~tx_idle & ~(tx_payload & pending)),
                     result_done.eq(tx_crc_lo & utx.i.ready & tx_result),
                     tags.r_en.eq(result_done)]
        with m.If(tx_idle):
            with m.If(result_full):
                m.d.sync += [tx_code.eq(code_of[proto.RESULT]), tx_tag.eq(tags.r_data),
                             tx_result.eq(1),
                             tx_idle.eq(0), tx_header.eq(1)]
            with m.Elif(ctl.r_rdy):
                m.d.comb += ctl.r_en.eq(1)
                m.d.sync += [tx_code.eq(ctl_code), tx_tag.eq(ctl_tag),
                             tx_result.eq(0), tx_idle.eq(0), tx_header.eq(1)]
            m.d.sync += [tx_pos.eq(0), tx_crc.eq(proto.CRC_INIT)]
        # The byte of the state when it is not a payload word's (SYNC in IDLE, the header byte
        # at tx_pos, a NAK's code, the CRC), a register of its own; and whether the payload
        # byte is the high or low byte of the word read, registered flags. tx_byte follows them
        # a cycle later (but not while the word read is the counter's): two cycles behind the
        # state, which stands for a character.
        header_value = Signal(8)
        other_byte = Signal(8, init=proto.SYNC)
        use_word = Signal()
        use_high = Signal()
        with m.Switch(tx_pos):
            for index, value in enumerate([Const(proto.SYNC, 8), tx_type, tx_tag,
                                           tx_len[:8], tx_len[8:]]):
                with m.Case(index):
                    m.d.comb += header_value.eq(value)
        m.d.sync += [other_byte.eq(Mux(tx_header, header_value, Mux(
                         tx_payload, tx_code, Mux(tx_crc_hi, tx_crc[8:], Mux(
                             tx_crc_lo, tx_crc[:8], proto.SYNC))))),
                     use_word.eq(tx_payload & ~tx_nak),
                     use_high.eq(tx_status & tx_pos[0])]
        with m.If(~(tx_payload & pending)):  # when pending, the word read is the counter
            m.d.sync += tx_byte.eq(Mux(use_word, Mux(use_high, reply_rd.data[8:],
                                                     reply_rd.data[:8]), other_byte))
        with m.If(tx_header):
            m.d.sync += [tx_addr.eq(Mux(tx_result, n_counters,
                                        Mux(tx_code == code_of[proto.INFO_REPLY], info_base, 0)))]
            with m.If(sent):
                with m.If(tx_pos != 0):
                    m.d.sync += [crc_byte.eq(tx_byte), crc_step.eq(1)]
                with m.If(tx_pos == proto.HEADER_SIZE - 1):
                    m.d.sync += [tx_pos.eq(0), tx_header.eq(0), tx_payload.eq(1)]
                with m.Else():
                    m.d.sync += tx_pos.eq(tx_pos + 1)
        # The payload's next word, a register a cycle behind tx_addr and tx_pos (which stand
        # for a character): the adder is off the paths from the handshake into tx_addr.
        next_addr = Signal.like(tx_addr)
        m.d.sync += next_addr.eq(tx_addr + (~tx_status | tx_pos[0]))
        with m.If(tx_payload):
            with m.If(sent):
                m.d.sync += [crc_byte.eq(tx_byte), crc_step.eq(1), tx_pos.eq(tx_pos + 1),
                             tx_addr.eq(next_addr)]
                with m.If(tx_last):
                    m.d.sync += [tx_payload.eq(0), tx_crc_hi.eq(1)]
        with m.If(tx_crc_hi):
            with m.If(sent):
                m.d.sync += [tx_crc_hi.eq(0), tx_crc_lo.eq(1)]
        with m.If(tx_crc_lo):
            with m.If(sent):
                m.d.sync += [tx_crc_lo.eq(0), tx_idle.eq(1)]

        # ---- Frame receiver -----------------------------------------------------------------
        rx_kind = Signal(len(proto.REQUEST_TYPES))  # one-hot: the frame's request type
        rx_tag = Signal(8)
        rx_len_lo = Signal(8)
        rx_count = Signal(range(max(1, *p.request_lengths.values())))
        rx_crc = Signal(16)
        rx_crc_hi_ok = Signal()  # CRC_HI matched
        # Flags of `byte`, registered with it.
        is_sync = Signal()
        type_flags = Signal(len(proto.REQUEST_TYPES))  # one-hot: the byte's request type
        length_ok = Signal()  # LEN_LO and this byte are the exact length of the frame's type
        crc_hi_match = Signal()
        crc_lo_match = Signal()
        drop = Signal()
        # Cycles since the last byte of a partial frame, counted by an LFSR up to the timeout.
        idle_width = lfsr_width(self._timeout)
        idle = Signal(idle_width, init=1)
        idle_done = Signal()  # idle is at the state `timeout` steps on (registered compare)
        # The compare is made a step ahead, in two registered halves: idle is at the state
        # before that, and stepped.
        near_end = state_after(idle_width, self._timeout - 2)
        half = idle_width // 2
        near_lo = Signal()
        near_hi = Signal()
        element = Signal(8 * in_bytes)
        elem_byte = Signal(range(in_bytes))
        lane = Signal(range(simd))
        beat = Signal(range(in_beats))
        full_element = Cat(element[8:], byte) if in_bytes > 1 else byte

        # A control reply that finds the queue full is dropped; the host times out. Every
        # reply enters the queue a cycle after it is decided, from registers (`held`), as does
        # an accepted INFER's tag: a reply decided on a received byte, a NAK for a framing
        # error (decided on the UART's error registered) and a NAK for a timeout (the two
        # NAKs exclude each other and a received byte). So the queue's write enable is a
        # register, off the paths from the receiver's decisions into the queue's storage.
        queued = Signal()
        queued_code = Signal(_CODE_BITS)
        held = Signal()
        held_entry = Signal(8 + _CODE_BITS)
        accepted = Signal()  # an INFER is accepted: its tag enters the tag queue
        # (The tag is rx_tag's, which a reply leaves unchanged.)
        nak_timeout = Signal()
        m.d.sync += [held.eq(queued | nak_timeout),
                     held_entry.eq(Cat(rx_tag, Mux(nak_timeout, proto.ERRORS["timeout"],
                                                   queued_code))),
                     tags.w_en.eq(accepted)]
        m.d.comb += [ctl.w_en.eq(held), ctl.w_data.eq(held_entry)]

        def reply(code):
            m.d.comb += [queued.eq(1), queued_code.eq(code)]

        def nak(name):
            reply(proto.ERRORS[name])

        expected = Signal(16)
        # The payload byte being received is the last one: a register, set as rx_count steps.
        last_byte = Signal()
        one_left = Signal()  # the next payload byte is the last one
        for index, type_ in enumerate(proto.REQUEST_TYPES):
            with m.If(rx_kind[index]):
                length = p.payload_length(type_)
                m.d.comb += [expected.eq(length), one_left.eq(rx_count == length - 2)]

        for k in range(simd):
            m.d.comb += wr.data[k].eq(full_element[:in_width])
        m.d.comb += wr.addr.eq(beat)

        # The receiver's state, one-hot (a register a state), so that its decisions are a LUT
        # or two. A byte and an abort never come in the same cycle (an abort is a framing error
        # or a timeout, and each excludes a byte delivered in the cycle before).
        rx_state = {name: Signal(name=f"rx_{name.lower()}", init=name == "HUNT")
                    for name in ("HUNT", "TYPE", "TAG", "LEN_LO", "LEN_HI", "PAYLOAD",
                                 "CRC_HI", "CRC_LO")}

        def goto(state, next_state):
            m.d.sync += [rx_state[state].eq(0), rx_state[next_state].eq(1)]

        hunting = rx_state["HUNT"]
        abort = Signal()
        with m.If(rx_state["HUNT"]):
            with m.If(got):
                with m.If(is_sync):
                    m.d.sync += rx_tag.eq(0)
                    goto("HUNT", "TYPE")
                with m.Else():
                    m.d.comb += events["garbage_bytes"].eq(1)
        with m.If(rx_state["TYPE"]):
            with m.If(got):
                m.d.sync += rx_kind.eq(type_flags)
                with m.If(is_sync):
                    m.d.comb += events["garbage_bytes"].eq(1)  # the earlier SYNC was stray
                with m.Elif(type_flags.any()):
                    goto("TYPE", "TAG")
                with m.Else():
                    m.d.comb += events["header_errors"].eq(1)
                    goto("TYPE", "HUNT")
            with m.If(abort):
                goto("TYPE", "HUNT")
        with m.If(rx_state["TAG"]):
            with m.If(got):
                m.d.sync += rx_tag.eq(byte)
                goto("TAG", "LEN_LO")
            with m.If(abort):
                goto("TAG", "HUNT")
        with m.If(rx_state["LEN_LO"]):
            with m.If(got):
                m.d.sync += rx_len_lo.eq(byte)
                goto("LEN_LO", "LEN_HI")
            with m.If(abort):
                goto("LEN_LO", "HUNT")
        with m.If(rx_state["LEN_HI"]):
            with m.If(got):
                m.d.sync += [rx_count.eq(0),
                             elem_byte.eq(0), lane.eq(0), beat.eq(0),
                             drop.eq(feeding | ~tags.w_rdy), last_byte.eq(expected == 1)]
                with m.If(~length_ok):
                    m.d.comb += events["header_errors"].eq(1)
                    nak("header")
                    goto("LEN_HI", "HUNT")
                with m.Elif(expected == 0):
                    goto("LEN_HI", "CRC_HI")
                with m.Else():
                    goto("LEN_HI", "PAYLOAD")
            with m.If(abort):
                goto("LEN_HI", "HUNT")
        with m.If(rx_state["PAYLOAD"]):
            with m.If(got):
                m.d.sync += [rx_count.eq(rx_count + 1),
                             last_byte.eq(one_left)]
                with m.If(elem_byte == in_bytes - 1):
                    m.d.sync += elem_byte.eq(0)
                    m.d.comb += wr.en.eq(Mux(drop, 0, Const(1, simd) << lane))
                    with m.If(lane == simd - 1):
                        m.d.sync += [lane.eq(0), beat.eq(beat + 1)]
                    with m.Else():
                        m.d.sync += lane.eq(lane + 1)
                with m.Else():
                    m.d.sync += [elem_byte.eq(elem_byte + 1), element.eq(full_element)]
                with m.If(last_byte):
                    goto("PAYLOAD", "CRC_HI")
            with m.If(abort):
                goto("PAYLOAD", "HUNT")
        with m.If(rx_state["CRC_HI"]):
            with m.If(got):
                m.d.sync += rx_crc_hi_ok.eq(crc_hi_match)
                goto("CRC_HI", "CRC_LO")
            with m.If(abort):
                goto("CRC_HI", "HUNT")
        with m.If(rx_state["CRC_LO"]):
            with m.If(got):
                goto("CRC_LO", "HUNT")
                with m.If(~rx_crc_hi_ok | ~crc_lo_match):
                    m.d.comb += events["crc_errors"].eq(1)
                    nak("crc")
                with m.Elif(rx_kind[proto.REQUEST_TYPES.index(proto.INFER)]):
                    with m.If(drop):
                        m.d.comb += events["overruns"].eq(1)
                        nak("overrun")
                    with m.Else():
                        m.d.comb += [events["frames_ok"].eq(1), accepted.eq(1)]
                        m.d.sync += feeding.eq(1)
                with m.Else():
                    m.d.comb += events["frames_ok"].eq(1)
                    for index, type_ in enumerate(proto.REQUEST_TYPES):
                        if type_ != proto.INFER:
                            with m.If(rx_kind[index]):
                                reply(code_of[proto.reply_type(type_)])
            with m.If(abort):
                goto("CRC_LO", "HUNT")
        # The request CRC, in one place: a SYNC in HUNT or TYPE starts it, and every byte from
        # TYPE to the payload's last enters it.
        with m.If(got & ~rx_state["CRC_HI"] & ~rx_state["CRC_LO"] & (~hunting | is_sync)):
            m.d.sync += rx_crc.eq(Mux(is_sync & (hunting | rx_state["TYPE"]), proto.CRC_INIT,
                                      crc16_next(rx_crc, byte)))
        # Abandon a partial frame on a framing error or when the line goes idle.
        m.d.sync += [is_sync.eq(urx.o.payload == proto.SYNC),
                     type_flags.eq(Cat(urx.o.payload == t for t in proto.REQUEST_TYPES)),
                     length_ok.eq(Cat(rx_len_lo, urx.o.payload) == expected),
                     crc_hi_match.eq(urx.o.payload == rx_crc[8:]),
                     crc_lo_match.eq(urx.o.payload == rx_crc[:8])]
        # The timeout counts from the UART's delivery of the last byte, as it always has.
        # idle_done is only ever set outside HUNT (and cleared on an abort), so it implies
        # ~hunting.
        timed_out = idle_done & ~arrived
        framing = Signal()  # the UART's framing error, registered
        m.d.sync += framing.eq(urx.error)
        m.d.comb += [abort.eq(framing | timed_out),  # (only acted on outside HUNT)
                     nak_timeout.eq(timed_out & ~framing),  # a framing error wins
                     events["timeouts"].eq(nak_timeout)]
        # The framing error's NAK, decided on `framing` like a reply decided on a received byte
        # (and entering the queue a cycle later, registered): no byte arrives in between, and a
        # timeout in the cycle of the UART's error wins (the receiver is then hunting).
        with m.If(framing & ~hunting):
            nak("framing")
        m.d.comb += [events["framing_errors"].eq(framing), tags.w_data.eq(rx_tag)]
        # seen_any, the OR of the events registered, from the few conditions that raise them.
        rx_event = Signal()
        m.d.comb += rx_event.eq(got & (
            (rx_state["HUNT"] & ~is_sync)
            | (rx_state["TYPE"] & (is_sync | ~type_flags.any()))
            | (rx_state["LEN_HI"] & ~length_ok)
            | rx_state["CRC_LO"]))
        m.d.sync += seen_any.eq(rx_event | framing | timed_out)
        stepping = ~hunting & ~arrived & ~idle_done
        m.d.sync += [near_lo.eq(stepping & (idle[:half] == near_end & ((1 << half) - 1))),
                     near_hi.eq(stepping & (idle[half:] == near_end >> half))]
        with m.If(hunting | arrived):
            m.d.sync += [idle.eq(1), idle_done.eq(0)]
        with m.Elif(~idle_done):
            m.d.sync += [idle.eq(lfsr_next(idle)), idle_done.eq(near_lo & near_hi)]
        with m.If(abort):
            m.d.sync += idle_done.eq(0)

        # ---- Status outputs -----------------------------------------------------------------
        # One free-running LFSR prescaler ticks the heartbeat and the three stretch timers
        # (see led_timing).
        tick_width, beat_ticks, stretch_ticks = led_timing(self._heartbeat, self._stretch)
        # The tick is a register, set as the prescaler steps into the state 1 (from the state
        # one period of 2**tick_width - 1 steps, minus one, after it); both start there.
        tick = Signal(init=1)
        if tick_width:
            prescaler = Signal(tick_width, init=1)
            m.d.sync += [prescaler.eq(lfsr_next(prescaler)),
                         tick.eq(prescaler == state_after(tick_width, (1 << tick_width) - 2))]
        else:
            m.d.comb += tick.eq(1)

        beat_timer = Signal(range(beat_ticks))
        with m.If(tick):
            with m.If(beat_timer == beat_ticks - 1):
                m.d.sync += [beat_timer.eq(0), self.heartbeat.eq(~self.heartbeat)]
            with m.Else():
                m.d.sync += beat_timer.eq(beat_timer + 1)

        busy_now = feeding | tags.r_rdy | tx_active
        for output, event in ((self.busy, busy_now), (self.error, any_error),
                              (self.activity, events["frames_ok"])):
            timer = Signal(range(stretch_ticks + 1), name=f"{output.name}_timer")
            seen = Signal(name=f"{output.name}_event")  # registered: off the event's paths
            m.d.sync += seen.eq(event)
            event = seen
            with m.If(event):
                m.d.sync += timer.eq(stretch_ticks)
            with m.Elif(tick & (timer != 0)):
                m.d.sync += timer.eq(timer - 1)
            # Registered, like the heartbeat, so that all four change on a clock edge together.
            m.d.sync += output.eq(event | (timer != 0))
        return m


class BoardTop(Elaboratable):
    """A :class:`Harness` on an amaranth-boards platform.

    Parameters
    ----------
    harness : Harness
    leds : sequence of (int, tuple of str)
        For each board LED used: the ``led`` resource number and the :data:`STATUS_SIGNALS`
        (or ``"class0"``, ``"class1"``, ... for a bit of the last class) that light it (OR).

    Raises
    ------
    ValueError
        For an unknown status signal name.
    """

    def __init__(self, harness, leds=()):
        with rejecting(self):
            leds = tuple((int(index), tuple(names)) for index, names in leds)
            for index, names in leds:
                for name in names:
                    if name not in STATUS_SIGNALS and not (
                            name.startswith("class") and name[5:].isdigit()):
                        raise ValueError(f"LED {index}: unknown status signal {name!r}; "
                                         f"expected one of {', '.join(STATUS_SIGNALS)} or classN")
        self._harness = harness
        self._leds = leds

    @property
    def harness(self):
        return self._harness

    def elaborate(self, platform):
        m = Module()
        harness = self._harness
        m.submodules.harness = harness

        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx_buffer = rx_buffer = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buffer = tx_buffer = io.Buffer("o", uart.tx)
        m.d.comb += [harness.rx.eq(rx_buffer.i), tx_buffer.o.eq(harness.tx)]

        for index, names in self._leds:
            led = platform.request("led", index, dir="-")
            buffer = io.Buffer("o", led)
            m.submodules[f"led{index}_buffer"] = buffer
            bits = [harness.last_class[int(name[5:])] if name.startswith("class")
                    else getattr(harness, name) for name in names]
            m.d.comb += buffer.o.eq(Cat(bits).any())
        return m
