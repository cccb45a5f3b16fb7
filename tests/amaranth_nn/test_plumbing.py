"""The stream plumbing on its own: the double buffer's registered flags, the credit queue's FIFO."""

import numpy as np
import pytest
from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.sim import Simulator

from amaranth_nn.plumbing import CreditQueue, PingPong, delay


@pytest.mark.parametrize("beats,groups,p_write,p_read", [
    (1, 1, 0.6, 0.7), (1, 3, 0.6, 0.7), (3, 1, 0.6, 0.7), (4, 2, 0.6, 0.7), (8, 3, 0.6, 0.7),
    (5, 1, 0.3, 0.9), (7, 2, 0.9, 0.3), (80, 1, 0.6, 0.7), (80, 2, 0.9, 0.9)])
def test_registered_arrival_flag_equals_written(beats, groups, p_write, p_read):
    # An in-order reader issues on PingPong.r_arrived, a register; it must equal written(beat)
    # in every cycle, under random writer and reader stalls.
    m = Module()
    m.submodules.buf = buf = PingPong(beats, unsigned(4), in_order=True)
    allow = Signal()
    beat, group = Signal(range(beats)), Signal(range(groups))
    last, done = Signal(init=beats == 1), Signal(init=groups == 1)
    go = Signal()
    m.d.comb += [
        go.eq(buf.r_arrived & allow),
        buf.r_go.eq(go),
        buf.r_last.eq(last),
        buf.r_final.eq(done),
    ]
    beat_next = Mux(go, Mux(last, 0, beat + 1), beat)
    group_next = Mux(go & last, Mux(done, 0, group + 1), group)
    m.d.sync += [beat.eq(beat_next), group.eq(group_next),
                 last.eq(beat_next == beats - 1), done.eq(group_next == groups - 1)]
    written = Signal()
    m.d.comb += written.eq(buf.written(beat))
    rng = np.random.default_rng(beats * 10 + groups + int(100 * p_write))
    cycles = max(400, 6 * beats * groups)
    counts = {"issued": 0, "mismatch": 0, "written": 0}

    async def testbench(ctx):
        for _ in range(cycles):
            ctx.set(buf.w.valid, int(rng.random() < p_write))
            ctx.set(allow, int(rng.random() < p_read))
            if ctx.get(buf.r_arrived) != ctx.get(written):
                counts["mismatch"] += 1
            counts["issued"] += ctx.get(go)
            counts["written"] += ctx.get(buf.w_en)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert counts["mismatch"] == 0
    assert counts["issued"] > cycles // (6 * groups)  # the reader made progress
    assert counts["written"] > cycles // (6 * groups)  # and so did the writer


@pytest.mark.parametrize("depth,lag,p_take,p_ready", [
    (2, 1, 0.9, 0.5), (3, 1, 0.7, 0.7), (5, 3, 0.9, 0.9), (10, 6, 0.8, 0.4), (10, 6, 1.0, 1.0),
    (4, 2, 0.5, 0.95)])
def test_credit_queue_behaves_as_a_buffered_fifo(depth, lag, p_take, p_ready):
    # The queue's own FIFO keeps SyncFIFOBuffered's timing (FIFO_LATENCY): the same writes and
    # sink give the same output in every cycle as a SyncFIFOBuffered with room to spare; the
    # credits keep the entries within the depth.
    m = Module()
    m.submodules.queue = queue = CreditQueue(unsigned(8), depth)
    m.submodules.ref = ref = SyncFIFOBuffered(width=8, depth=depth + 2)
    allow, ready, count = Signal(), Signal(), Signal(8)
    take = Signal()
    m.d.comb += [take.eq(allow & queue.ok), queue.take.eq(take)]
    with m.If(take):
        m.d.sync += count.eq(count + 1)
    valid = delay(m, take, lag, "valid")
    payload = delay(m, count, lag, "payload")
    m.d.comb += [
        queue.w.valid.eq(valid), queue.w.payload.eq(payload), queue.o.ready.eq(ready),
        ref.w_en.eq(valid), ref.w_data.eq(payload), ref.r_en.eq(ready),
    ]
    rng = np.random.default_rng(depth * 100 + lag)
    counts = {"mismatch": 0, "overflow": 0, "out": 0}

    async def testbench(ctx):
        for _ in range(600):
            ctx.set(allow, int(rng.random() < p_take))
            ctx.set(ready, int(rng.random() < p_ready))
            if ctx.get(ref.level) > depth or (ctx.get(queue.w.valid) and not ctx.get(ref.w_rdy)):
                counts["overflow"] += 1
            o_valid = ctx.get(queue.o.valid)
            if o_valid != ctx.get(ref.r_rdy) or (o_valid and ctx.get(queue.o.payload)
                                                 != ctx.get(ref.r_data)):
                counts["mismatch"] += 1
            counts["out"] += o_valid and ctx.get(ready)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert counts == {"mismatch": 0, "overflow": 0, "out": counts["out"]}
    assert counts["out"] > 100
