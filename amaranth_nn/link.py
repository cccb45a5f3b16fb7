"""Byte links between the host client and a board: a serial port, or the simulated board.

The host client (:mod:`amaranth_nn.host`) talks to a :class:`ByteLink`; :class:`SerialLink`
is a real UART through pyserial, and :class:`SimulatedLink` is the full-system simulation of the
board harness (:class:`boards.harness.Harness` around the network), in Amaranth's Python
simulator or compiled by Verilator: its bytes go into the simulated UART RX pin bit by bit and
come back from the TX pin. :class:`FaultyLink` wraps either and injects faults into both
directions (:class:`RandomFaults` for a seeded mix).
"""

import math
import random
import subprocess
import time
from collections import deque
from dataclasses import dataclass

from amaranth.sim import Simulator

from boards import protocol as proto
from boards.harness import STATUS_SIGNALS, Harness, check_harness_arguments

from . import verilated

__all__ = ["ByteLink", "SerialLink", "SimulatedLink", "FaultyLink", "RandomFaults", "Fault",
           "FAULT_KINDS", "FRAME_START_NOISE", "single_faults", "uart_send_bits",
           "uart_receive_byte"]


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


class _PysimBoard:
    """The harness in Amaranth's Python simulator, its pins driven by testbenches."""

    steps = True  # the link advances it in steps while it waits for bytes

    def __init__(self, link, vcd):
        self.link = link
        self._to_board = deque()
        self._ran = 0.0
        self._sim = Simulator(link.harness)
        self._sim.add_clock(link.period)
        self._sim.add_testbench(self._drive_rx, background=True)
        self._sim.add_testbench(self._watch_tx, background=True)
        self._sim.add_testbench(self._watch_leds, background=True)
        self._vcd = None
        if vcd is not None:
            self._vcd = self._sim.write_vcd(vcd)
            self._vcd.__enter__()

    async def _drive_rx(self, ctx):
        link = self.link
        rx = link.harness.rx
        ctx.set(rx, 1)
        await ctx.delay(link.period / 2)  # change the pin between clock edges
        while True:
            if self._to_board:
                byte, stop = self._to_board.popleft()
                await uart_send_bits(ctx, rx, byte, link.bit_time, stop=stop)
            else:
                await ctx.delay(link.bit_time)

    async def _watch_tx(self, ctx):
        link = self.link
        tx = link.harness.tx
        while True:
            await ctx.negedge(tx)
            byte, stop = await uart_receive_byte(ctx, tx, link.bit_time, link.period / 4)
            if byte is None:
                continue
            if stop:
                link._from_board.append(byte)
            else:
                link.framing_errors += 1

    async def _watch_leds(self, ctx):
        link = self.link
        signals = [getattr(link.harness, name) for name in STATUS_SIGNALS]
        previous = [0] * len(signals)
        async for values in ctx.changed(*signals):
            for index, value in enumerate(values):
                if value and not previous[index]:
                    link.led_edges[STATUS_SIGNALS[index]] += 1
            previous = list(values)

    def send(self, data, stop):
        self._to_board.extend((byte, stop) for byte in data)

    def run(self, until, want):
        # run_until() stops at the first event at or after its deadline, up to half a clock
        # period late, and must not be given an earlier deadline next: so it only runs once a
        # whole period has accumulated (the board lags the link's clock by less than that).
        if until >= self._ran + self.link.period:
            self._sim.run_until(until)
            self._ran = until
        return until

    def close(self):
        if self._vcd is not None:
            self._vcd.__exit__(None, None, None)
            self._vcd = None


class _VerilatedBoard:
    """The harness compiled by Verilator, its pins driven by a C++ testbench
    (``amaranth_nn/cxx/uart.cpp``) that runs as a child process, one command per line."""

    steps = False  # it stops by itself once the bytes asked for have come

    def __init__(self, link, vcd, progress):
        self.link = link
        self.build = verilated.build(link.harness, "uart",
                                     {"DIVISOR": link.harness.divisor}, name="the board harness",
                                     trace=verilated.waveform_kind(vcd, "verilator"),
                                     progress=progress)
        argv = [str(self.build.executable)] + ([] if vcd is None else [str(vcd)])
        self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True)
        self._cycle = 0

    def _command(self, text):
        try:
            self._process.stdin.write(text + "\n")
        except BrokenPipeError:
            raise verilated.VerilatorError(f"the Verilator simulation of the board harness "
                                           f"({self.build.executable}) has ended") from None

    def send(self, data, stop):
        data = bytes(data)
        if data:
            self._command(("w " if stop else "e ") + data.hex())

    def run(self, until, want):
        link = self.link
        cycle = math.floor(until / link.period + 1e-9)
        if cycle <= self._cycle:
            return until
        self._command(f"r {cycle} {want or 0}")
        self._process.stdin.flush()
        reply = self._process.stdout.readline().split()
        if len(reply) != 7:
            raise verilated.VerilatorError(f"the Verilator simulation of the board harness "
                                           f"({self.build.executable}) ended with exit status "
                                           f"{self._process.poll()}")
        self._cycle = int(reply[0])
        link.framing_errors = int(reply[1])
        for name, count in zip(STATUS_SIGNALS, reply[2:6], strict=True):
            link.led_edges[name] = int(count)
        if reply[6] != "-":
            link._from_board.extend(bytes.fromhex(reply[6]))
        return until if self._cycle >= cycle else self._cycle * link.period

    def close(self):
        if self._process.poll() is None:
            try:
                self._command("q")
                self._process.stdin.close()
            except (BrokenPipeError, verilated.VerilatorError):
                pass
            self._process.wait()
        self._process.stdout.close()


class SimulatedLink(ByteLink):
    """The full-system simulation of a board as a byte link.

    Builds :class:`boards.harness.Harness` for ``spec`` and simulates it, driving the UART RX pin
    bit by bit and decoding the TX pin, in Amaranth's Python simulator (``backend="pysim"``) or
    compiled by Verilator (``backend="verilator"``, a C++ testbench in a child process, about a
    thousand times faster; see :mod:`amaranth_nn.verilated`). The simulation advances only
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
        Write a waveform to this file (with Verilator, FST for a ``.fst`` name).
    backend : str
        ``"pysim"``, ``"verilator"`` or ``"auto"`` (see
        :func:`amaranth_nn.verilated.choose_backend`).
    progress : Progress, optional
        Where the stage lines of a Verilator compilation (and the notice of ``"auto"``) go.

    Raises
    ------
    TypeError, ValueError
        For a bad divisor, timeout, heartbeat or stretch, an unknown backend, an FST waveform
        with the Python simulator, and from the network for a bad folding.
    amaranth_nn.verilated.VerilatorError
        For ``backend="verilator"`` without Verilator or a C++ compiler, or a failed build.

    Members
    -------
    harness : boards.harness.Harness
    backend : str
        ``"pysim"`` or ``"verilator"``: what runs.
    build : amaranth_nn.verilated.Build or None
        The Verilator build.
    framing_errors : int
        Characters from the board's TX with a low stop bit (there should be none).
    led_edges : dict
        Rising edges seen so far on each status output (``heartbeat``, ``busy``, ``error``,
        ``activity``).
    """

    def __init__(self, spec, *, folding=None, target_ii=None, divisor=8, clk_freq=1e6,
                 timeout=None, heartbeat=None, stretch=None, vcd=None, backend="pysim",
                 progress=None):
        # Before the Harness exists, so that none is left unused.
        check_harness_arguments(divisor, timeout, heartbeat, stretch)
        self.backend, notice = verilated.choose_backend(backend)
        verilated.waveform_kind(vcd, self.backend)
        if notice and progress is not None:
            progress.say(notice)
        self.harness = Harness(spec, folding=folding, target_ii=target_ii, divisor=divisor,
                               timeout=timeout, heartbeat=heartbeat, stretch=stretch)
        self.period = 1 / clk_freq
        self.bit_time = divisor * self.period
        self.byte_time = 10 * self.bit_time
        self.framing_errors = 0
        self.led_edges = {name: 0 for name in STATUS_SIGNALS}
        self._from_board = deque()
        self._now = 0.0
        if self.backend == "verilator":
            self._board = _VerilatedBoard(self, vcd, progress)
            self.build = self._board.build
        else:
            self._board = _PysimBoard(self, vcd)
            self.build = None

    @property
    def time(self):
        """Simulated time in seconds."""
        return self._now

    def write(self, data):
        self._board.send(bytes(data), 1)

    def write_framing_error(self, byte):
        """Send one character with a low stop bit (a framing error at the board)."""
        self._board.send(bytes([byte]), 0)

    def idle(self, duration):
        """Run the simulation for ``duration`` seconds of simulated time."""
        self._now += duration
        self._board.run(self._now, None)

    def read(self, size, timeout):
        deadline = self._now + timeout
        step = 4 * self.byte_time if self._board.steps else timeout
        while len(self._from_board) < size and self._now < deadline:
            target = self._now + min(step, deadline - self._now)
            self._now = max(self._now, self._board.run(target, size - len(self._from_board)))
        count = min(size, len(self._from_board))
        return bytes(self._from_board.popleft() for _ in range(count))

    def reply_timeout(self, request_size, reply_size):
        network = self.harness.network
        cycles = (2 * (request_size + reply_size) * 10 * self.harness.divisor
                  + self.harness.timeout + 2 * (network.latency + network.ii) + 100)
        return cycles * self.period

    def close(self):
        self._board.close()


#: The kinds of fault that :class:`RandomFaults` injects.
FAULT_KINDS = ("flip", "insert", "noise", "drop", "truncate")

#: Noise that looks like a frame start: the ``00 A5 81`` of issue 13, a lone SYNC, and a SYNC
#: followed by each request and reply type.
FRAME_START_NOISE = (b"\x00\xa5\x81", bytes([proto.SYNC])) + tuple(
    bytes([proto.SYNC, type_]) for type_ in proto.REQUEST_TYPES + proto.REPLY_TYPES)


@dataclass(frozen=True)
class Fault:
    """One fault in a unit of bytes (a write, or a reply frame).

    Members
    -------
    index : int
        Which unit of its direction is hit, counted from 0.
    kind : str
        One of :data:`FAULT_KINDS`: ``flip`` (one bit), ``insert`` (random bytes), ``noise``
        (bytes that look like a frame start), ``drop`` (one byte), ``truncate`` (the rest of
        the unit).
    position : int
        The byte offset in the unit.
    detail : int or bytes
        The bit flipped, the bytes inserted, or the bytes lost.
    """

    index: int
    kind: str
    position: int
    detail: object

    def apply(self, data):
        """The unit ``data`` with this fault; returns bytes."""
        data = bytes(data)
        position = self.position
        if self.kind == "flip":
            return data[:position] + bytes([data[position] ^ 1 << self.detail]) \
                + data[position + 1:]
        if self.kind in ("insert", "noise"):
            return data[:position] + self.detail + data[position:]
        return data[:position] + data[position + len(self.detail):]


def single_faults(data, index=0):
    """Every single fault of one unit ``data``, as a list of :class:`Fault`.

    Each bit flipped, each byte dropped, each truncation that keeps at least one byte, and
    each :data:`FRAME_START_NOISE` inserted at each position (in front and behind included).
    """
    data = bytes(data)
    faults = []
    for position in range(len(data)):
        faults += [Fault(index, "flip", position, bit) for bit in range(8)]
        faults.append(Fault(index, "drop", position, data[position:position + 1]))
        if position:
            faults.append(Fault(index, "truncate", position, data[position:]))
    faults += [Fault(index, "noise", position, noise) for position in range(len(data) + 1)
               for noise in FRAME_START_NOISE]
    return faults


class RandomFaults:
    """A seeded random fault mix for one direction of a :class:`FaultyLink`.

    Called with ``(index, data)`` for each unit of bytes, it returns the unit with one random
    fault (of a kind drawn evenly from ``kinds``) with probability ``rate``, else unchanged.
    Noise is a :data:`FRAME_START_NOISE` pattern followed by up to 3 random bytes.

    Parameters
    ----------
    rate : float
        Probability that a unit is hit, 0 to 1.
    seed : int or str
        Seed of the mix (the same seed gives the same faults for the same traffic).
    kinds : sequence of str
        A non-empty subset of :data:`FAULT_KINDS`.

    Members
    -------
    log : list of Fault
        The faults injected so far.

    Raises
    ------
    TypeError, ValueError
        For a rate that is not a number from 0 to 1, or an unknown kind.
    """

    def __init__(self, rate, seed=0, kinds=FAULT_KINDS):
        if not isinstance(rate, (int, float)) or isinstance(rate, bool):
            raise TypeError(f"Fault rate must be a number, not {rate!r}")
        if not 0 <= rate <= 1:
            raise ValueError(f"Fault rate must be a probability from 0 to 1, not {rate}")
        kinds = tuple(kinds)
        unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
        if unknown or not kinds:
            raise ValueError(f"Fault kinds must be some of {', '.join(FAULT_KINDS)}, not "
                             f"{kinds!r}")
        self._rate = rate
        self._kinds = kinds
        self._rng = random.Random(seed)
        self.log = []

    def _fault(self, index, data):
        rng = self._rng
        kind = rng.choice(self._kinds)
        if kind == "flip":
            return Fault(index, kind, rng.randrange(len(data)), rng.randrange(8))
        if kind in ("insert", "noise"):
            extra = bytes(rng.randrange(256) for _ in range(rng.randint(kind == "insert", 3)))
            return Fault(index, kind, rng.randrange(len(data) + 1),
                         rng.choice(FRAME_START_NOISE) + extra if kind == "noise" else extra)
        if kind == "drop" or len(data) == 1:
            position = rng.randrange(len(data))
            return Fault(index, "drop", position, data[position:position + 1])
        position = rng.randrange(1, len(data))
        return Fault(index, kind, position, data[position:])

    def __call__(self, index, data):
        if not data or self._rng.random() >= self._rate:
            return data
        fault = self._fault(index, bytes(data))
        self.log.append(fault)
        return fault.apply(data)


class FaultyLink(ByteLink):
    """Another :class:`ByteLink` with faults injected into both directions.

    For tests and demonstrations of the link's recovery. Each ``write`` is one unit of the
    request direction. The reply direction is cut into frames as they arrive (bytes between
    frames pass unchanged, and each frame reaches :meth:`read` once it is complete), and each
    frame is one unit.

    Parameters
    ----------
    link : ByteLink
        The link to wrap (its clock, byte time and reply timeout are this link's).
    request, reply : callable, optional
        ``f(index, data) -> bytes``: what becomes of the ``index``-th unit of that direction,
        such as a :class:`RandomFaults`. None leaves the direction alone.

    Members
    -------
    link : ByteLink
    request, reply : callable or None
    writes, replies : int
        Units seen so far in each direction.
    """

    def __init__(self, link, *, request=None, reply=None):
        self.link = link
        self.request = request
        self.reply = reply
        self.writes = 0
        self.replies = 0
        self._frames = proto.FrameDecoder()  # cuts the reply direction into frames
        self._pending = bytearray()          # bytes of a frame that has not completed yet
        self._out = bytearray()              # bytes ready for read()

    @classmethod
    def random(cls, link, rate, seed=0):
        """Both directions hit by :class:`RandomFaults` of ``rate``, seeded from ``seed``."""
        return cls(link, request=RandomFaults(rate, f"{seed}:request"),
                   reply=RandomFaults(rate, f"{seed}:reply"))

    @property
    def byte_time(self):
        return self.link.byte_time

    @property
    def time(self):
        return self.link.time

    def write(self, data):
        data = bytes(data)
        if self.request is not None:
            data = self.request(self.writes, data)
        self.writes += 1
        self.link.write(data)

    def _take(self, data):
        pending = self._pending
        for byte in data:
            pending.append(byte)
            frames = self._frames.feed(bytes([byte]))
            # The decoder's buffer is the end of what it was fed: the rest is between frames.
            junk = len(pending) - (proto.OVERHEAD + len(frames[0].payload) if len(frames) == 1
                                   else self._frames.buffered)
            self._out += pending[:junk]
            del pending[:junk]
            if frames and pending:
                self._out += (bytes(pending) if self.reply is None
                              else self.reply(self.replies, bytes(pending)))
                self.replies += 1
                pending.clear()

    def read(self, size, timeout):
        deadline = self.link.time + timeout
        while len(self._out) < size:
            wanted = self._frames.needed()
            data = self.link.read(wanted, max(0.0, deadline - self.link.time))
            self._take(data)
            if len(data) < wanted or self.link.time >= deadline:
                break
        data = bytes(self._out[:size])
        del self._out[:size]
        return data

    def reply_timeout(self, request_size, reply_size):
        return self.link.reply_timeout(request_size, reply_size)

    def close(self):
        self.link.close()

    def describe(self):
        """One line on the faults injected, where the directions are :class:`RandomFaults`."""
        parts = []
        for name, faults, units in (("requests", self.request, self.writes),
                                    ("replies", self.reply, self.replies)):
            if isinstance(faults, RandomFaults):
                kinds = {}
                for fault in faults.log:
                    kinds[fault.kind] = kinds.get(fault.kind, 0) + 1
                parts.append(f"{len(faults.log)} of {units} {name} ("
                             + (", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
                                or "none") + ")")
        return "faults injected    " + "; ".join(parts)
