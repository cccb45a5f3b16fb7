# amaranth: UnusedElaboratable=no
"""UART receiver and transmitter: bit-level simulation against the 8N1 line format."""

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from amaranth_nn.link import uart_receive_byte, uart_send_bits
from boards.uart import UARTReceiver, UARTTransmitter

PERIOD = 1e-6


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_receiver_bytes_framing_error_and_glitch(divisor):
    dut = UARTReceiver(divisor)
    bit = divisor * PERIOD
    sent = [0x00, 0xFF, 0xA5, 0x3C, 0x81]
    got, errors = [], []

    async def drive(ctx):
        ctx.set(dut.rx, 1)
        await ctx.delay(PERIOD / 2 + 3 * bit)
        for byte in sent[:2]:
            await uart_send_bits(ctx, dut.rx, byte, bit)
        # A glitch shorter than half a bit is not a start bit.
        ctx.set(dut.rx, 0)
        await ctx.delay(PERIOD)
        ctx.set(dut.rx, 1)
        await ctx.delay(2 * bit)
        await uart_send_bits(ctx, dut.rx, 0x55, bit, stop=0)   # framing error
        await ctx.delay(2 * bit)
        for byte in sent[2:]:
            await uart_send_bits(ctx, dut.rx, byte, bit)

    async def collect(ctx):
        ctx.set(dut.o.ready, 1)
        while True:
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            if ctx.get(dut.error):
                errors.append(len(got))

    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    sim.add_testbench(drive)
    sim.add_testbench(collect, background=True)
    sim.run()
    sim.run_until((len(sent) + 8) * 10 * bit)
    assert got == sent
    assert errors == [2]


@pytest.mark.parametrize("divisor", [4, 9])
def test_transmitter_frames(divisor):
    dut = UARTTransmitter(divisor)
    bit = divisor * PERIOD
    sent = [0x12, 0xA5, 0x00, 0xFF]
    got = []

    async def feed(ctx):
        for byte in sent:
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def watch(ctx):
        while len(got) < len(sent):
            await ctx.negedge(dut.tx)
            byte, stop = await uart_receive_byte(ctx, dut.tx, bit, PERIOD / 4)
            assert stop == 1
            got.append(byte)

    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    sim.add_testbench(feed, background=True)
    sim.add_testbench(watch)
    sim.run()
    assert got == sent


def test_loopback_back_to_back():
    """Transmitter into receiver: every byte value, sent without gaps."""
    divisor = 5
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor)
    m.submodules.rx = rx = UARTReceiver(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    sent = list(range(256))
    got = []

    async def feed(ctx):
        for byte in sent:
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)

    async def collect(ctx):
        ctx.set(rx.o.ready, 1)
        while len(got) < len(sent):
            await ctx.tick()
            if ctx.get(rx.o.valid):
                got.append(ctx.get(rx.o.payload))
            assert not ctx.get(rx.error)

    sim = Simulator(m)
    sim.add_clock(PERIOD)
    sim.add_testbench(feed, background=True)
    sim.add_testbench(collect)
    sim.run()
    assert got == sent


def test_receiver_overrun_when_not_ready():
    divisor = 4
    dut = UARTReceiver(divisor)
    bit = divisor * PERIOD
    overruns = []

    async def drive(ctx):
        ctx.set(dut.rx, 1)
        await ctx.delay(PERIOD / 2 + bit)
        for byte in (1, 2):
            await uart_send_bits(ctx, dut.rx, byte, bit)
        await ctx.delay(2 * bit)

    async def watch(ctx):
        while True:
            await ctx.tick()
            if ctx.get(dut.overrun):
                overruns.append(ctx.get(dut.o.payload))

    sim = Simulator(dut)
    sim.add_clock(PERIOD)
    sim.add_testbench(drive)
    sim.add_testbench(watch, background=True)
    sim.run()
    assert overruns == [1]  # the first byte is held, the second dropped


@pytest.mark.parametrize("cls", [UARTReceiver, UARTTransmitter])
def test_divisor_errors(cls):
    with pytest.raises(ValueError, match=r"^Divisor must be at least 4 clocks per bit, not 3$"):
        cls(3)
    with pytest.raises(TypeError, match=r"^Divisor must be an integer, not 4\.0$"):
        cls(4.0)
    assert cls(4).divisor == 4
