"""Link recovery figures: the host decoder, the client over the simulated board, the receiver.

    python bench/bench_link.py            # everything, about 11 minutes on this machine
    python bench/bench_link.py --quick    # every third single fault, 2 seeds: 3.5 minutes

It prints the worst cases that docs/boards.md quotes, for a 4 -> 3 -> 2 network with one byte
per element (11-byte requests and RESULT replies) at UART divisor 4:

1. the host decoder under every single fault of a reply (``amaranth_nn.link.single_faults``):
   how many bytes after its last byte an intact frame behind the fault comes out (0 means at
   its last byte), and intact frames lost;
2. the client (``BoardClient``) over the full-system simulation with one fault, every single
   fault of a request and of a reply: extra attempts, and the cycles from the request to the
   answer, against a clean exchange and the reply timeout;
3. the board's receiver: the cycles from the end of a truncated frame to its NAK, the flush
   bytes that end every partial frame, framing errors counted for one bad character followed
   at once by others, and what garbage ending in a frame start does to the next frame;
4. seeded random fault mixes on both directions (``FaultyLink.random``).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from amaranth.sim import Simulator

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "boards")]

from board_helpers import tiny_spec, wide_spec  # noqa: E402

from amaranth_nn import golden  # noqa: E402
from amaranth_nn.host import BoardClient, BoardError  # noqa: E402
from amaranth_nn.link import FaultyLink, SimulatedLink, single_faults, uart_send_bits  # noqa: E402
from boards import protocol as proto  # noqa: E402
from boards.harness import Harness  # noqa: E402

PERIOD = 1e-6
DIVISOR = 4


# ---- 1. The host decoder --------------------------------------------------------------------

def decoder_figures(p, step):
    reply = proto.encode_frame(proto.RESULT, 7, bytes(range(p.result_payload)))
    behind = [proto.encode_frame(proto.NAK, 8, b"\x01"),
              proto.encode_frame(proto.RESULT, 9, bytes(p.result_payload)),
              proto.encode_frame(proto.INFO_REPLY, 10, bytes(proto.INFO_PAYLOAD))]
    faults = single_faults(reply)[::step]
    late = lost = 0
    for fault in faults:
        data = fault.apply(reply)
        stream = data + b"".join(behind)
        intact = ([reply] if reply in data else []) + behind
        ends, at = [], 0
        for frame in intact:
            at = stream.index(frame, at) + len(frame)
            ends.append(at - 1)
        decoder = p.reply_decoder()
        out = {}
        for index in range(len(stream)):
            for frame in decoder.feed(stream[index:index + 1]):
                out[proto.encode_frame(frame.type, frame.tag, frame.payload)] = index
        for frame, end in zip(intact, ends, strict=True):
            if frame in out:
                late = max(late, out[frame] - end)
            else:
                lost += 1
    print(f"1. host decoder, {len(faults)} single faults of a {len(reply)}-byte reply, then 3 "
          f"intact frames: an intact frame comes out at most {late} bytes after its last "
          f"byte; intact frames lost: {lost}")


# ---- 2. The client, one fault ---------------------------------------------------------------

def client_figures(spec, step):
    p = proto.Protocol(spec)
    link = SimulatedLink(spec, divisor=DIVISOR)
    state = {"fault": None, "direction": None}

    def hook(direction):
        def apply(index, data):
            fault = state["fault"]
            if fault is None or state["direction"] != direction:
                return data
            state["fault"] = None
            return fault.apply(data)
        return apply

    faulty = FaultyLink(link, request=hook("request"), reply=hook("reply"))
    client = BoardClient(faulty, spec, retries=3)
    x = np.array([5, -7, 100, -128])
    expected = golden.run(spec, x[None])[0].tolist()

    def exchange():
        before, start = client.retried, link.time
        outputs, _ = client.infer(x)
        assert outputs.tolist() == expected
        return client.retried - before, round((link.time - start) / PERIOD)

    _, clean = exchange()
    timeout = round(link.reply_timeout(p.request_size, p.reply_size) / PERIOD)
    retry_timeout = round(link.reply_timeout(p.flush_size + p.request_size, p.reply_size)
                          / PERIOD)
    request = p.encode_infer(x, 1)
    reply = proto.encode_frame(proto.RESULT, 1, bytes(p.result_payload))
    for direction, unit in (("request", request), ("reply", reply)):
        worst, cycles, count, kinds = 0, 0, 0, {}
        for fault in single_faults(unit)[::step]:
            state.update(fault=fault, direction=direction)
            extra, used = exchange()
            # A fault behind a request can leave the receiver in a frame: the next request pays.
            extra_next, used_next = exchange()
            state["fault"] = None
            worst = max(worst, extra + extra_next)
            cycles = max(cycles, used + used_next - clean)
            kinds[fault.kind] = max(kinds.get(fault.kind, 0), extra + extra_next)
            count += 1
        print(f"2. client, {count} single faults of a {len(unit)}-byte {direction}: at most "
              f"{worst} extra attempt(s) (by kind: {kinds}); recovery took at most {cycles} "
              f"cycles more than a clean exchange ({clean} cycles; reply timeout {timeout}, "
              f"{retry_timeout} for a resend)")


# ---- 3. The receiver ------------------------------------------------------------------------

def nak_delay(spec, timeout, divisor=DIVISOR):
    """Cycles from the end of a truncated frame's last stop bit to its NAK's start bit."""
    harness = Harness(spec, divisor=divisor, timeout=timeout)
    bit = divisor * PERIOD
    truncated = proto.Protocol(spec).encode_infer(np.zeros(spec.input_size, dtype=int), 5)[:6]
    lead = PERIOD / 2 + 10 * bit
    end = lead + len(truncated) * 10 * bit
    edges = []

    async def drive(ctx):
        ctx.set(harness.rx, 1)
        await ctx.delay(lead)
        for byte in truncated:
            await uart_send_bits(ctx, harness.rx, byte, bit)

    async def watch(ctx):  # the first falling edge of TX, to a quarter cycle
        steps = 0
        while ctx.get(harness.tx):
            await ctx.delay(PERIOD / 4)
            steps += 1
        edges.append(steps * PERIOD / 4)

    sim = Simulator(harness)
    sim.add_clock(PERIOD)
    sim.add_testbench(drive)
    sim.add_testbench(watch)
    sim.run()
    return (edges[0] - end) / PERIOD


def answered(link, chars, tag):
    """Send ``chars`` ((byte, stop bit) or ("gap", seconds)) and then a STATUS request with
    ``tag``; returns the frames back, and whether the STATUS was answered. Idles afterwards
    until any partial frame has timed out."""
    for byte, stop in chars:
        if byte == "gap":
            link.idle(stop)
        elif stop:
            link.write(bytes([byte]))
        else:
            link.write_framing_error(byte)
    link.write(proto.encode_frame(proto.STATUS, tag))
    decoder = proto.FrameDecoder()
    frames = []
    deadline = link.time + 120 * link.byte_time
    while link.time < deadline and not any(f.tag == tag for f in frames):
        frames += decoder.feed(link.read(decoder.needed(), deadline - link.time))
    link.idle((link.harness.timeout + 20 * 10 * link.harness.divisor) * link.period)
    return frames, any(f.type == proto.STATUS_REPLY and f.tag == tag for f in frames)


def receiver_figures(spec, trials):
    p = proto.Protocol(spec)
    for divisor, timeout in ((4, 40), (4, 80), (4, 1200), (7, 70), (16, 160), (16, 4800)):
        delay = nak_delay(spec, timeout, divisor)
        print(f"3a. divisor {divisor}, timeout {timeout} cycles: the NAK (timeout) starts "
              f"{delay:.2f} cycles after the truncated frame's last stop bit ends "
              f"({delay - timeout:+.2f} cycles)")
    link = SimulatedLink(spec, divisor=DIVISOR, timeout=500)
    requests = [p.encode_infer(np.zeros(spec.input_size, dtype=int), 5),
                proto.encode_frame(proto.STATUS, 5), proto.encode_frame(proto.INFO, 5)]
    short = []
    cases = 0
    for request in requests:
        for cut in range(1, len(request)):
            prefix = [(b, 1) for b in request[:cut]]
            zeros = [(proto.FLUSH_BYTE, 1)] * p.flush_size
            assert answered(link, prefix + zeros, 9)[1], request[:cut].hex()
            if not answered(link, prefix + zeros[1:], 9)[1]:
                short.append(request[:cut].hex(" "))
            cases += 1
    print(f"3b. flush: {p.flush_size} zero bytes (Protocol.flush_size) end every one of {cases} "
          f"partial requests (every prefix of INFER, STATUS, INFO) with the partial-frame "
          f"timeout far away (500 cycles); one fewer does not end: {short}")
    rng = np.random.default_rng(1)
    counts = []
    for _ in range(trials):
        chars = [(int(rng.integers(0, 256)), 0)] + [(int(b), 1) for b in rng.integers(0, 256, 6)]
        before = BoardClient(link, spec, retries=0).status()["framing_errors"]
        assert answered(link, chars + [("gap", link.byte_time)], 9)[1]
        counts.append(BoardClient(link, spec, retries=0).status()["framing_errors"] - before)
    print(f"3c. one character with a low stop bit followed at once by 6 random characters: "
          f"{min(counts)}-{max(counts)} framing errors counted over {trials} trials; after a "
          f"gap of one character the next frame was answered in every trial")
    for type_ in proto.REQUEST_TYPES:
        frames, ok = answered(link, [(proto.SYNC, 1), (type_, 1)], 9)
        print(f"3d. garbage 'a5 {type_:02x}' then a STATUS request with tag 9: answered {ok}; "
              f"replies {[(hex(f.type), f.tag, f.payload.hex()) for f in frames]}")
    # e. A frame inside the payload of a frame rejected at its header runs.
    wide = wide_spec()
    inner = b"\x00" + proto.encode_frame(proto.STATUS, 77)
    infer = bytearray(proto.Protocol(wide).encode_infer(np.frombuffer(inner, np.int8), 6))
    infer[3] += 1  # LEN_LO: a length the board does not take
    frames, _ = answered(SimulatedLink(wide, divisor=DIVISOR), [(b, 1) for b in infer], 9)
    print(f"3e. an INFER whose length is wrong and whose payload holds a STATUS frame with tag "
          f"77: replies {[(hex(f.type), f.tag) for f in frames]}")


# ---- 4. Random mixes ------------------------------------------------------------------------

def mix_figures(spec, seeds, requests, rate, retries):
    for seed in seeds:
        link = SimulatedLink(spec, divisor=DIVISOR)
        faulty = FaultyLink.random(link, rate, seed)
        client = BoardClient(faulty, spec, retries=retries)
        rng = np.random.default_rng(seed)
        x = rng.integers(-128, 128, (requests, 4))
        expected = golden.run(spec, x)
        wrong = failed = 0
        attempts = []
        for i in range(requests):
            before = client.retried
            try:
                outputs, _ = client.infer(x[i])
                wrong += outputs.tolist() != expected[i].tolist()
            except BoardError:
                failed += 1
            attempts.append(client.retried - before + 1)
        faults = len(faulty.request.log) + len(faulty.reply.log)
        print(f"4. seed {seed}, rate {rate}: {requests} requests, {faults} faults, "
              f"{sum(attempts) - requests} extra attempts (most for one request: "
              f"{max(attempts) - 1}), {wrong} wrong, {failed} failed after {retries} retries, "
              f"{link.time / PERIOD:.0f} cycles")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases")
    args = parser.parse_args()
    spec = tiny_spec()
    step = 3 if args.quick else 1
    start = time.monotonic()
    decoder_figures(proto.Protocol(spec), 1)
    client_figures(spec, step)
    receiver_figures(spec, 5 if args.quick else 20)
    mix_figures(spec, (1, 2) if args.quick else (1, 2, 3, 4, 5), 40, 0.2, 6)
    print(f"({time.monotonic() - start:.0f} s)")


if __name__ == "__main__":
    main()
