"""Byte links between the host client and a board: a serial port, or the simulated board.

The host client (:mod:`amaranth_nn.host`) talks to a :class:`ByteLink`; :class:`SerialLink`
is a real UART through pyserial, and :class:`SimulatedLink` is the full-system Amaranth
simulation of the board harness (:class:`boards.harness.Harness` around the network): its bytes
go into the simulated UART RX pin bit by bit and come back from the TX pin.
"""

import time
from collections import deque

__all__ = ["ByteLink", "SerialLink", "SimulatedLink", "uart_send_bits", "uart_receive_byte"]


class ByteLink:
    """An abstract bidirectional byte link.

    Members
    -------
    byte_time : float
        Seconds per byte on the wire (10 bit times for 8N1).
    time : float
        The link's clock in seconds, which :meth:`read` timeouts are measured in: wall time
        (:func:`time.monotonic`), or simulated time for a :class:`SimulatedLink`.
    """

    byte_time = 0.0

    @property
    def time(self):
        return time.monotonic()

    def write(self, data):
        """Send ``data`` (bytes)."""
        raise NotImplementedError

    def read(self, size, timeout):
        """Receive up to ``size`` bytes, waiting at most ``timeout`` seconds of link time.

        Returns fewer bytes (possibly none) on a timeout.
        """
        raise NotImplementedError

    def reply_timeout(self, request_size, reply_size):
        """How long to wait for a reply to a request of ``request_size`` bytes (seconds)."""
        return 2 * (request_size + reply_size) * self.byte_time

    def close(self):
        """Release the link."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class SerialLink(ByteLink):
    """A serial port through pyserial (8N1, no flow control).

    Parameters
    ----------
    port : str
        Device name, e.g. ``/dev/ttyUSB1`` or ``COM3``.
    baud : int
        Baud rate; it must match the board's (the build report states it).

    Raises
    ------
    ImportError
        If pyserial is not installed.
    OSError
        If the port cannot be opened (``serial.SerialException``, an ``OSError``).
    """

    def __init__(self, port, baud=115200):
        try:
            import serial
        except ImportError:
            raise ImportError("SerialLink needs pyserial: pip install pyserial") from None
        self._serial = serial.Serial(port, baudrate=baud, timeout=0)
        self._serial.reset_input_buffer()
        self.byte_time = 10 / baud

    def write(self, data):
        self._serial.write(bytes(data))
        self._serial.flush()

    def read(self, size, timeout):
        self._serial.timeout = timeout
        return bytes(self._serial.read(size))

    def reply_timeout(self, request_size, reply_size):
        # USB-serial adapters add milliseconds of latency; the board abandons a partial frame
        # after its own timeout (100 ms in a board build).
        return 0.5 + super().reply_timeout(request_size, reply_size)

    def close(self):
        self._serial.close()


async def uart_send_bits(ctx, pin, byte, bit_time, *, stop=1):
    """Drive one 8N1 character onto ``pin`` in a simulation (``stop=0`` makes a framing error)."""
    for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [stop]:
        ctx.set(pin, bit)
        await ctx.delay(bit_time)
    ctx.set(pin, 1)


async def uart_receive_byte(ctx, pin, bit_time, offset):
    """Receive one 8N1 character from ``pin`` after its falling edge has been seen.

    Samples the middle of each bit (``offset`` seconds are added to keep clear of clock edges).
    Returns ``(byte, stop_bit)``.
    """
    await ctx.delay(bit_time / 2 + offset)
    if ctx.get(pin):
        return None, 1  # a glitch, not a start bit
    value = 0
    for i in range(8):
        await ctx.delay(bit_time)
        value |= ctx.get(pin) << i
    await ctx.delay(bit_time)
    return value, ctx.get(pin)


class SimulatedLink(ByteLink):
    """The full-system simulation of a board as a byte link.

    Builds :class:`boards.harness.Harness` for ``spec`` and runs it in the Amaranth simulator,
    driving the UART RX pin bit by bit and decoding the TX pin. The simulation advances only
    inside :meth:`read` (and :meth:`idle`), and all times are simulated time: a clock of
    ``clk_freq`` and ``divisor`` cycles per bit (small, so that a sample takes seconds).

    Parameters
    ----------
    spec : NetworkSpec
    folding, target_ii
        Passed to the network (see :class:`amaranth_nn.network.Network`).
    divisor : int
        Clock cycles per bit (at least 4).
    clk_freq : float
        Simulated clock frequency in Hz (only scales the simulated time).
    timeout, heartbeat, stretch : int, optional
        Passed to the harness (cycles; see :class:`boards.harness.Harness`).
    vcd : str, optional
        Write a waveform to this file.

    Raises
    ------
    TypeError, ValueError
        For a bad divisor, timeout, heartbeat or stretch, and from the network for a bad
        folding.

    Members
    -------
    harness : boards.harness.Harness
    framing_errors : int
        Characters from the board's TX with a low stop bit (there should be none).
    led_edges : dict
        Rising edges seen so far on each status output (``heartbeat``, ``busy``, ``error``,
        ``activity``).
    """

    def __init__(self, spec, *, folding=None, target_ii=None, divisor=8, clk_freq=1e6,
                 timeout=None, heartbeat=None, stretch=None, vcd=None):
        from amaranth.sim import Simulator

        from boards.harness import STATUS_SIGNALS, Harness
        from boards.uart import check_divisor

        check_divisor(divisor)  # before the Harness exists, so that none is left unused
        self.harness = Harness(spec, folding=folding, target_ii=target_ii, divisor=divisor,
                               timeout=timeout, heartbeat=heartbeat, stretch=stretch)
        self.period = 1 / clk_freq
        self.bit_time = divisor * self.period
        self.byte_time = 10 * self.bit_time
        self.framing_errors = 0
        self._to_board = deque()
        self._from_board = deque()
        self._now = 0.0
        self._sim = Simulator(self.harness)
        self._sim.add_clock(self.period)
        self._sim.add_testbench(self._drive_rx, background=True)
        self._sim.add_testbench(self._watch_tx, background=True)
        self._sim.add_testbench(self._watch_leds, background=True)
        self.led_edges = {name: 0 for name in STATUS_SIGNALS}
        self._vcd = None
        if vcd is not None:
            self._vcd = self._sim.write_vcd(vcd)
            self._vcd.__enter__()

    async def _drive_rx(self, ctx):
        rx = self.harness.rx
        ctx.set(rx, 1)
        await ctx.delay(self.period / 2)  # change the pin between clock edges
        while True:
            if self._to_board:
                byte, stop = self._to_board.popleft()
                await uart_send_bits(ctx, rx, byte, self.bit_time, stop=stop)
            else:
                await ctx.delay(self.bit_time)

    async def _watch_tx(self, ctx):
        tx = self.harness.tx
        while True:
            await ctx.negedge(tx)
            byte, stop = await uart_receive_byte(ctx, tx, self.bit_time, self.period / 4)
            if byte is None:
                continue
            if stop:
                self._from_board.append(byte)
            else:
                self.framing_errors += 1

    async def _watch_leds(self, ctx):
        from boards.harness import STATUS_SIGNALS

        signals = [getattr(self.harness, name) for name in STATUS_SIGNALS]
        previous = [0] * len(signals)
        async for values in ctx.changed(*signals):
            for index, value in enumerate(values):
                if value and not previous[index]:
                    self.led_edges[STATUS_SIGNALS[index]] += 1
            previous = list(values)

    @property
    def time(self):
        """Simulated time in seconds."""
        return self._now

    def write(self, data):
        self._to_board.extend((byte, 1) for byte in bytes(data))

    def write_framing_error(self, byte):
        """Send one character with a low stop bit (a framing error at the board)."""
        self._to_board.append((byte, 0))

    def _advance(self, duration):
        self._now += duration
        self._sim.run_until(self._now)

    def idle(self, duration):
        """Run the simulation for ``duration`` seconds of simulated time."""
        self._advance(duration)

    def read(self, size, timeout):
        deadline = self._now + timeout
        step = 4 * self.byte_time
        while len(self._from_board) < size and self._now < deadline:
            self._advance(min(step, deadline - self._now))
        count = min(size, len(self._from_board))
        return bytes(self._from_board.popleft() for _ in range(count))

    def reply_timeout(self, request_size, reply_size):
        network = self.harness.network
        cycles = (2 * (request_size + reply_size) * 10 * self.harness.divisor
                  + self.harness.timeout + 2 * (network.latency + network.ii) + 100)
        return cycles * self.period

    def close(self):
        if self._vcd is not None:
            self._vcd.__exit__(None, None, None)
            self._vcd = None
