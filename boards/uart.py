"""UART receiver and transmitter (8N1) with a clocks-per-bit parameter."""

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from amaranth_nn.unused import rejecting

__all__ = ["UARTReceiver", "UARTTransmitter", "check_divisor"]

MIN_DIVISOR = 4


def check_divisor(divisor):
    """Check a clocks-per-bit value; returns it.

    Raises
    ------
    TypeError
        If ``divisor`` is not an integer.
    ValueError
        If ``divisor`` is less than 4.
    """
    if not isinstance(divisor, int) or isinstance(divisor, bool):
        raise TypeError(f"Divisor must be an integer, not {divisor!r}")
    if divisor < MIN_DIVISOR:
        raise ValueError(f"Divisor must be at least {MIN_DIVISOR} clocks per bit, not {divisor}")
    return divisor


class UARTReceiver(wiring.Component):
    """UART receiver, 8 data bits, no parity, 1 stop bit, LSB first.

    The line is synchronized with two flip-flops. A start bit is confirmed in its middle (a
    shorter low pulse is ignored as a glitch); data bits and the stop bit are sampled in their
    middles. A low stop bit is a framing error: the byte is dropped, :attr:`error` pulses, and
    the receiver waits for the line to return high before looking for the next start bit.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (at least 4).

    Members
    -------
    rx : In(1)
        The serial line (idle high).
    o : Out(stream.Signature(unsigned(8)))
        Received bytes. A byte that completes while the previous one is still not taken is
        dropped, and :attr:`overrun` pulses.
    error : Out(1)
        One-cycle pulse on a framing error.
    overrun : Out(1)
        One-cycle pulse when a byte is dropped for lack of ``o.ready``.
    """

    def __init__(self, divisor):
        with rejecting(self):
            self._divisor = check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(unsigned(8))),
            "error": Out(1),
            "overrun": Out(1),
        })

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor

        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(divisor))
        done = Signal()  # timer is 0: a registered compare, off the paths it starts
        shreg = Signal(8)
        bits = Signal(range(8))

        def load(value):  # at least 1: the divisor is at least 4
            m.d.sync += [timer.eq(value), done.eq(0)]

        def count():
            m.d.sync += [timer.eq(timer - 1), done.eq(timer == 1)]

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # The state, one-hot (a register a state), and whether the bit being received is the
        # last data bit (a register, set as ``bits`` steps): the decisions are a LUT or two.
        state = {name: Signal(name=f"state_{name.lower()}", init=name == "IDLE")
                 for name in ("IDLE", "START", "DATA", "STOP", "BREAK")}
        last_bit = Signal()

        def goto(name, next_name):
            m.d.sync += [state[name].eq(0), state[next_name].eq(1)]

        with m.If(state["IDLE"]):
            with m.If(~rx):
                load(divisor // 2 - 1)
                goto("IDLE", "START")
        with m.If(state["START"]):
            with m.If(~done):
                count()
            with m.Elif(rx):
                goto("START", "IDLE")  # a glitch, not a start bit
            with m.Else():
                load(divisor - 1)
                m.d.sync += [bits.eq(0), last_bit.eq(0)]
                goto("START", "DATA")
        with m.If(state["DATA"]):
            with m.If(~done):
                count()
            with m.Else():
                load(divisor - 1)
                m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), bits.eq(bits + 1),
                             last_bit.eq(bits == 6)]
                with m.If(last_bit):
                    goto("DATA", "STOP")
        with m.If(state["STOP"]):
            with m.If(~done):
                count()
            with m.Elif(rx):
                with m.If(self.o.valid & ~self.o.ready):
                    m.d.comb += self.overrun.eq(1)
                with m.Else():
                    m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                goto("STOP", "IDLE")
            with m.Else():
                m.d.comb += self.error.eq(1)
                goto("STOP", "BREAK")
        with m.If(state["BREAK"]):
            with m.If(rx):
                goto("BREAK", "IDLE")
        return m


class UARTTransmitter(wiring.Component):
    """UART transmitter, 8 data bits, no parity, 1 stop bit, LSB first.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (at least 4).

    Members
    -------
    i : In(stream.Signature(unsigned(8)))
        Bytes to send; a byte is taken when the transmitter is idle.
    tx : Out(1)
        The serial line (idle high).
    busy : Out(1)
        High while a byte is being sent.
    """

    def __init__(self, divisor):
        with rejecting(self):
            self._divisor = check_divisor(divisor)
        super().__init__({
            "i": In(stream.Signature(unsigned(8))),
            "tx": Out(1, init=1),
            "busy": Out(1),
        })

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor

        timer = Signal(range(divisor))
        done = Signal()  # timer is 0: a registered compare, like the receiver's
        shreg = Signal(10, init=0x3FF)  # stop bit, 8 data bits, start bit (LSB first)
        count = Signal(range(11))
        idle = Signal(init=1)  # count is 0: a register, set as the last bit ends

        m.d.comb += [self.tx.eq(shreg[0]), self.busy.eq(~idle), self.i.ready.eq(idle)]
        with m.If(idle):
            with m.If(self.i.valid):
                m.d.sync += [shreg.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                             count.eq(10), timer.eq(divisor - 1), done.eq(0), idle.eq(0)]
        with m.Elif(~done):
            m.d.sync += [timer.eq(timer - 1), done.eq(timer == 1)]
        with m.Else():
            m.d.sync += [shreg.eq(Cat(shreg[1:], Const(1, 1))), count.eq(count - 1),
                         timer.eq(divisor - 1), done.eq(0)]
            with m.If(count == 1):
                m.d.sync += idle.eq(1)
        return m
