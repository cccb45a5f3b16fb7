# amaranth: UnusedElaboratable=no
"""Faults on both directions of the full-system simulation (a 4 -> 3 -> 2 network, UART divisor
4): one fault in every field of a request and of a reply, seeded random mixes, and the board
receiver's recovery rules that docs/boards.md states."""

import gc
import math

import numpy as np
import pytest
from board_helpers import tiny_spec, wide_spec

from amaranth_nn import golden
from amaranth_nn.host import BoardClient, BoardError
from amaranth_nn.link import Fault, FaultyLink, SimulatedLink
from boards import protocol as proto
from boards.harness import Harness

SPEC = tiny_spec()
FIELDS = {"SYNC": 0, "TYPE": 1, "TAG": 2, "LEN_LO": 3, "LEN_HI": 4, "PAYLOAD": 6, "CRC_HI": 9,
          "CRC_LO": 10}
OTHER = {"drop": Fault(0, "drop", 7, b"?"), "truncate": Fault(0, "truncate", 6, b"?" * 5),
         "insert": Fault(0, "insert", 5, b"\x37\xc2"),
         "noise a5 01 inside": Fault(0, "noise", 5, b"\xa5\x01"),
         "noise 00 a5 81 inside": Fault(0, "noise", 8, b"\x00\xa5\x81"),
         "noise a5 03 behind": Fault(0, "noise", 11, b"\xa5\x03")}


class OneShot:
    """A fault function for one direction: applies ``fault`` to the next unit, once."""

    def __init__(self):
        self.fault = None

    def __call__(self, index, data):
        fault, self.fault = self.fault, None
        if fault is None:
            return data
        # Only the length of a drop's or truncation's detail matters here.
        size = 1 if fault.kind == "drop" else len(data) - fault.position
        detail = data[fault.position:fault.position + size] if fault.kind in (
            "drop", "truncate") else fault.detail
        return Fault(index, fault.kind, fault.position, detail).apply(data)


@pytest.mark.parametrize("direction", ["request", "reply"])
def test_one_fault_in_every_field_costs_at_most_one_attempt(direction):
    """A flipped bit in each field, a dropped byte, a truncation, inserted bytes and noise that
    looks like a frame start, in a request or in its reply: the answers stay equal to the
    golden model's, the fault costs at most one extra attempt (of this request or, for noise
    behind a request, of the next one), and recovery takes at most one reply timeout."""
    link = SimulatedLink(SPEC, divisor=4, timeout=400)
    hooks = {"request": OneShot(), "reply": OneShot()}
    client = BoardClient(FaultyLink(link, **hooks), SPEC, retries=2)
    p = client.protocol
    x = np.array([[5, -7, 100, -128], [1, 2, 3, 4]])
    expected = golden.run(SPEC, x).tolist()

    def exchange(i):
        start = link.time
        outputs, cls = client.infer(x[i])
        assert outputs.tolist() == expected[i] and cls == int(np.argmax(expected[i]))
        return (link.time - start) / link.period

    clean = max(exchange(0), exchange(1))
    timeout = link.reply_timeout(p.flush_size + p.request_size, p.reply_size) / link.period
    cases = {name: Fault(0, "flip", position, 4 if name == "SYNC" else 0)
             for name, position in FIELDS.items()} | OTHER
    costs = {}
    for name, fault in cases.items():
        hooks[direction].fault = fault
        before = client.retried
        cycles = exchange(0)
        if direction == "request":  # the fault may have left the receiver inside a frame
            cycles += exchange(1) - clean
        costs[name] = client.retried - before
        assert costs[name] <= 1, name
        assert cycles <= clean + timeout, (name, cycles)
    assert link.framing_errors == 0
    lost = [name for name in cases if "behind" not in name and "inside" not in name]
    assert all(costs[name] == 1 for name in lost), costs


@pytest.mark.parametrize("seed", [1, 2])
def test_random_fault_mix_on_both_directions(seed):
    """Seeded faults on 30% of the requests and of the replies, over INFER, STATUS and INFO:
    every answer equals the golden model's or the request is reported failed, nothing hangs,
    and no fault costs more than one extra attempt (of its request or the next one)."""
    link = SimulatedLink(SPEC, divisor=4, timeout=400)
    faulty = FaultyLink.random(link, 0.3, seed)
    retries = 4
    client = BoardClient(faulty, SPEC, retries=retries)
    p = client.protocol
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (16, 4))
    expected = golden.run(SPEC, x).tolist()
    kinds = ["infer"] * 12 + ["status", "info"] * 2
    rng.shuffle(kinds)
    costs, faults, failed = [], [], 0
    longest = 0.0
    for i, kind in enumerate(kinds):
        before = (client.retried, len(faulty.request.log), len(faulty.reply.log), link.time)
        try:
            if kind == "infer":
                outputs, cls = client.infer(x[i])
                assert outputs.tolist() == expected[i] and cls == int(np.argmax(expected[i]))
            elif kind == "info":
                assert client.info()["fingerprint"] == p.fingerprint
            else:
                assert set(client.status()) == set(proto.COUNTERS)
        except BoardError:
            failed += 1
        costs.append(client.retried - before[0])
        faults.append((len(faulty.request.log) - before[1], len(faulty.reply.log) - before[2]))
        longest = max(longest, link.time - before[3])
    total = sum(request + reply for request, reply in faults)
    assert total >= 6 and min(request for request, _ in faults[1:]) == 0  # a real mix
    assert sum(costs) <= total
    for i, cost in enumerate(costs):
        carried = faults[i - 1][0] if i else 0
        assert cost <= sum(faults[i]) + carried, (i, costs, faults)
    # Never a hang: a request ends within its attempts' reply timeouts.
    bound = (retries + 1) * link.reply_timeout(p.flush_size + p.request_size, p.reply_size)
    assert longest <= bound
    assert failed <= 1


def _answered(link, data, tag):
    """Send raw bytes, then a STATUS request with ``tag``: the frames that come back."""
    link.write(bytes(data) + proto.encode_frame(proto.STATUS, tag))
    decoder = proto.FrameDecoder()
    frames = []
    deadline = link.time + (len(data) + 80) * link.byte_time
    while link.time < deadline and not any(frame.tag == tag for frame in frames):
        frames += decoder.feed(link.read(decoder.needed(), deadline - link.time))
    link.idle((link.harness.timeout + 100) * link.period)  # any partial frame has timed out
    return frames


def test_flush_ends_any_partial_frame():
    """``Protocol.flush_size`` zero bytes end the worst partial frame, a header cut right before
    LEN_HI, so that a frame right behind them is received; one byte fewer does not, and the
    frame behind is swallowed by the partial one (which the line never leaves idle)."""
    link = SimulatedLink(SPEC, divisor=4, timeout=200)
    p = proto.Protocol(SPEC)
    request = p.encode_infer(np.zeros(4, dtype=int), 5)
    assert p.flush_size == 7
    for cut in (1, 2, 4, 7, 10):
        frames = _answered(link, request[:cut] + bytes(p.flush_size), 9)
        assert frames[-1].type == proto.STATUS_REPLY and frames[-1].tag == 9, cut
    frames = _answered(link, request[:4] + bytes(p.flush_size - 1), 9)
    assert frames == [proto.Frame(proto.NAK, 5, bytes([proto.ERRORS["crc"]]))]


def test_garbage_ending_in_a_frame_start_swallows_the_next_frame():
    """``a5 01``, ``a5 02`` or ``a5 03`` ahead of a frame: that frame's SYNC becomes the tag,
    and the NAK (header) carries 165, a tag the client never uses. The client recovers with
    one resend."""
    link = SimulatedLink(SPEC, divisor=4, timeout=200)
    for type_ in proto.REQUEST_TYPES:
        assert _answered(link, [proto.SYNC, type_], 9) == [
            proto.Frame(proto.NAK, proto.SYNC, bytes([proto.ERRORS["header"]]))]
    client = BoardClient(link, SPEC, retries=1)
    link.write(bytes([proto.SYNC, proto.INFO]))
    assert client.info()["fingerprint"] == client.protocol.fingerprint
    assert (client.retried, client.stale, client.naks) == (1, 1, {})


def test_frame_inside_a_rejected_payload_runs():
    """A frame rejected at its header leaves its payload to the SYNC hunt: a frame in it runs."""
    wide = wide_spec()
    inner = b"\x00" + proto.encode_frame(proto.STATUS, 77)
    infer = bytearray(proto.Protocol(wide).encode_infer(np.frombuffer(inner, np.int8), 6))
    infer[3] += 1  # a length the board does not take
    frames = _answered(SimulatedLink(wide, divisor=4), infer, 9)
    assert [(frame.type, frame.tag) for frame in frames] == [
        (proto.NAK, 6), (proto.STATUS_REPLY, 77), (proto.STATUS_REPLY, 9)]


def test_partial_frame_timeout_of_one_character():
    """The shortest timeout the harness takes, one character, still receives back-to-back
    frames; a truncated frame is NAKed ``timeout + 8 - ceil(divisor / 2)`` cycles after its
    last stop bit (bench/bench_link.py measures it to the cycle), here read back whole."""
    divisor, timeout = 4, 40
    link = SimulatedLink(SPEC, divisor=divisor, timeout=timeout)
    client = BoardClient(link, SPEC, retries=0)
    x = np.array([[3, 1, -4, 1], [-5, 9, -2, 6]])
    expected = golden.run(SPEC, x).tolist()
    for i in range(2):
        assert client.infer(x[i])[0].tolist() == expected[i]
    truncated = client.protocol.encode_infer(x[0], 3)[:6]
    link.write(truncated)
    link.idle(len(truncated) * link.byte_time)  # the last stop bit ends within one bit time
    decoder = proto.FrameDecoder()
    frames = []
    # The NAK's 8 characters leave 10 bit times and one cycle apart; a bit time of slack for
    # where the link's last stop bit ended.
    start = link.time
    latest = (timeout + 8 - math.ceil(divisor / 2) + (proto.OVERHEAD + 1) * (10 * divisor + 1)
              + divisor)
    while not frames and link.time < start + latest * link.period:
        frames = decoder.feed(link.read(1, link.period))
    assert frames == [proto.Frame(proto.NAK, 3, bytes([proto.ERRORS["timeout"]]))]
    assert link.time - start >= (timeout + (proto.OVERHEAD + 1) * 10 * divisor) * link.period
    assert client.status()["timeouts"] == 1


def test_timeout_shorter_than_one_character_is_refused():
    with pytest.raises(ValueError, match=r"^Timeout must be at least one character, 40 cycles "
                                         r"\(10 bit times at divisor 4\), not 39$"):
        Harness(SPEC, divisor=4, timeout=39)
    with pytest.raises(ValueError, match=r"^Timeout must be at least one character, 160 cycles "
                                         r"\(10 bit times at divisor 16\), not 100$"):
        SimulatedLink(SPEC, divisor=16, timeout=100)
    gc.collect()  # a harness created before the check would be reported unused here
    with pytest.raises(TypeError, match=r"^Timeout must be an integer, not 40\.0$"):
        Harness(SPEC, divisor=4, timeout=40.0)
