"""The host client against an ideal board written in Python (no simulator): every single fault
in a reply, and NAKs that only happen to carry the pending tag."""

from collections import deque

import numpy as np
import pytest
from board_helpers import tiny_spec

from amaranth_nn import golden
from amaranth_nn.host import BoardClient, BoardError
from amaranth_nn.link import (
    FRAME_START_NOISE,
    ByteLink,
    Fault,
    FaultyLink,
    RandomFaults,
    single_faults,
)
from boards import protocol as proto

SPEC = tiny_spec()
X = np.array([[5, -7, 100, -128], [1, 2, 3, 4]])
EXPECTED = golden.run(SPEC, X)


class IdealBoard(ByteLink):
    """A board that answers every intact request, one byte time per byte on both wires.

    ``before(frame)`` may return bytes that the board sends ahead of its answer to ``frame``,
    and ``hold(frame)`` True keeps the answer back until the next request comes in, and sends
    it then, ahead of that request's answer.
    """

    byte_time = 1e-4

    def __init__(self, spec, before=None, hold=None):
        self.protocol = proto.Protocol(spec)
        self.spec = spec
        self._requests = proto.FrameDecoder(lengths=self.protocol.request_lengths)
        self._before = before
        self._hold = hold
        self._held = []
        self._now = 0.0
        self._wire = deque()  # (time the byte has arrived, byte)
        self.answered = []

    @property
    def time(self):
        return self._now

    def _answer(self, frame):
        p = self.protocol
        if frame.type == proto.INFER:
            x = proto.decode_elements(frame.payload, p.input_width, self.spec.input_size)
            y = golden.run(self.spec, x[None])[0]
            payload = (proto.encode_elements(y, p.output_width)
                       + int(np.argmax(y)).to_bytes(2, "little"))
        elif frame.type == proto.INFO:
            payload = p.info_bytes(ii=1, latency=1)
        else:
            payload = bytes(proto.STATUS_PAYLOAD)
        return proto.encode_frame(frame.type | 0x80, frame.tag, payload)

    def send(self, data, after):
        free = max(self._wire[-1][0] if self._wire else 0.0, after)
        self._wire.extend((free + (i + 1) * self.byte_time, b) for i, b in enumerate(data))

    def write(self, data):
        arrived = self._now + len(data) * self.byte_time
        for frame in self._requests.feed(data):
            self.answered.append(frame.tag)
            reply = (self._before(frame) if self._before else b"") + self._answer(frame)
            while self._held:
                self.send(self._held.pop(0), arrived)
            if self._hold and self._hold(frame):
                self._held.append(reply)
            else:
                self.send(reply, arrived)

    def read(self, size, timeout):
        deadline = self._now + timeout
        out = bytearray()
        while len(out) < size and self._wire and self._wire[0][0] <= deadline:
            when, byte = self._wire.popleft()
            self._now = max(self._now, when)
            out.append(byte)
        if len(out) < size:
            self._now = max(self._now, deadline)
        return bytes(out)

    def reply_timeout(self, request_size, reply_size):
        return 2 * (request_size + reply_size) * self.byte_time


def _once(fault):
    """A fault function that applies ``fault(data)`` to the first unit only."""
    return lambda index, data: fault(data) if index == 0 else data


def test_every_single_reply_fault_costs_at_most_one_attempt():
    """A flipped bit anywhere in a RESULT, a dropped byte, a truncation, noise that looks like
    a frame start anywhere (``00 a5 81`` too): the answer equals the golden model's after at
    most one extra attempt, and the next request needs none."""
    reply = IdealBoard(SPEC)._answer(proto.Frame(proto.INFER, 1, bytes(4)))
    extra = {}
    for fault in single_faults(reply):
        board = IdealBoard(SPEC)
        client = BoardClient(FaultyLink(board, reply=_once(fault.apply)), SPEC, retries=1)
        for i in range(2):
            outputs, cls = client.infer(X[i])
            assert outputs.tolist() == EXPECTED[i].tolist(), fault
            assert cls == int(np.argmax(EXPECTED[i])), fault
            if i == 0:
                extra[fault] = client.retried
        assert client.retried == extra[fault] <= 1, fault
    assert len(extra) == 11 * 8 + 11 + 10 + 12 * len(FRAME_START_NOISE)
    # Noise in front of the reply costs nothing at all; anything in it costs one attempt.
    assert all(count == 0 for fault, count in extra.items()
               if fault.kind == "noise" and fault.position == 0)
    assert all(count == 1 for fault, count in extra.items() if fault.kind == "flip")


def test_corrupted_reply_is_resent_before_the_timeout():
    """A reply whose header arrived with the pending tag but a bad CRC makes the client resend
    at once instead of waiting out the reply timeout."""
    board = IdealBoard(SPEC)
    flip_payload = _once(Fault(0, "flip", 6, 0).apply)
    client = BoardClient(FaultyLink(board, reply=flip_payload), SPEC, retries=1)
    client.infer(X[0])
    assert (client.retried, client.corrupted, client.timeouts) == (1, 1, 0)
    # Two exchanges and the flush, nothing waited out.
    assert board.time <= (2 * 22 + client.protocol.flush_size) * board.byte_time + 1e-9


def test_nak_with_the_pending_tag_but_not_caused_by_the_request():
    """The board sends a NAK carrying the pending tag (as noise or a swallowed frame can make it
    do) and then the real answer: the answer is taken, even with no retries left."""
    for retries in (0, 2):
        board = IdealBoard(SPEC, before=lambda frame: proto.encode_frame(
            proto.NAK, frame.tag, bytes([proto.ERRORS["crc"]])) if frame.tag == 1 else b"")
        client = BoardClient(board, SPEC, retries=retries)
        outputs, _ = client.infer(X[0])
        assert outputs.tolist() == EXPECTED[0].tolist()
        assert client.naks == {"crc": 1} and client.retried == min(retries, 1)


def test_nak_code_the_request_cannot_draw_is_ignored():
    """An overrun NAK for an INFO request (the board never overruns one) is stale."""
    board = IdealBoard(SPEC, before=lambda frame: proto.encode_frame(
        proto.NAK, frame.tag, bytes([proto.ERRORS["overrun"]])))
    client = BoardClient(board, SPEC, retries=0)
    assert client.info()["input_size"] == 4
    assert client.naks == {} and client.stale == 1 and client.retried == 0


def test_answer_to_an_earlier_attempt_is_accepted():
    """The first attempt's answer comes late, after a resend: it answers the same request, and
    the resend's answer is skipped as stale by the next request."""
    board = IdealBoard(SPEC, hold=lambda frame: frame.tag == 1)
    client = BoardClient(board, SPEC, retries=1)
    outputs, _ = client.infer(X[1])
    assert outputs.tolist() == EXPECTED[1].tolist()
    assert client.retried == 1 and client.timeouts == 1 and client.stale == 0
    outputs, _ = client.infer(X[0])
    assert outputs.tolist() == EXPECTED[0].tolist()
    assert client.retried == 1 and client.stale == 1


def test_tags_skip_accidental_values_and_wrap():
    board = IdealBoard(SPEC)
    client = BoardClient(board, SPEC, retries=0)
    for _ in range(260):
        client.status()
    assert board.answered[:250] == list(proto.REQUEST_TAGS)
    assert board.answered[250:] == list(proto.REQUEST_TAGS[:10])


def test_board_that_naks_everything_fails_after_the_retries():
    board = IdealBoard(SPEC, before=lambda frame: proto.encode_frame(
        proto.NAK, frame.tag, bytes([proto.ERRORS["header"]])))
    board._answer = lambda frame: b""
    client = BoardClient(board, SPEC, retries=2)
    with pytest.raises(BoardError, match=r"^No reply from the board after 3 attempts \(NAKs "
                                         r"\{'header': 3\}, 0 timeouts\)"):
        client.infer(X[0])


def test_random_faults_log_and_arguments():
    faults = RandomFaults(1.0, seed=3)
    data = bytes(range(20))
    hits = [faults(i, data) for i in range(50)]
    assert len(faults.log) == 50 and {f.kind for f in faults.log} == {
        "flip", "insert", "noise", "drop", "truncate"}
    for fault, hit in zip(faults.log, hits, strict=True):
        assert isinstance(fault, Fault) and hit != data
        if fault.kind == "flip":
            assert hit[fault.position] == data[fault.position] ^ (1 << fault.detail)
        elif fault.kind in ("insert", "noise"):
            assert hit == data[:fault.position] + fault.detail + data[fault.position:]
        elif fault.kind == "drop":
            assert hit == data[:fault.position] + data[fault.position + 1:]
        else:
            assert hit == data[:fault.position] and len(hit) >= 1
    assert RandomFaults(0.0)(0, data) == data
    with pytest.raises(ValueError, match=r"^Fault rate must be a probability from 0 to 1, "
                                         r"not 1\.5$"):
        RandomFaults(1.5)
    with pytest.raises(TypeError, match=r"^Fault rate must be a number, not '0\.1'$"):
        RandomFaults("0.1")
    with pytest.raises(ValueError, match=r"^Fault kinds must be some of flip, insert, noise, "
                                         r"drop, truncate, not \('bend',\)$"):
        RandomFaults(0.1, kinds=["bend"])


def test_faulty_link_cuts_replies_into_frames():
    """Bytes between reply frames pass unchanged; each frame is one unit of the reply side."""
    board = IdealBoard(SPEC)
    seen = []
    link = FaultyLink(board, reply=lambda index, data: seen.append((index, data)) or data)
    frame = proto.encode_frame(proto.STATUS, 1)
    board.send(b"\x00\x11", 0.0)
    link.write(frame)
    link.write(frame)
    got = link.read(100, 1.0)
    status = proto.encode_frame(proto.STATUS_REPLY, 1, bytes(proto.STATUS_PAYLOAD))
    assert got == b"\x00\x11" + status + status
    assert seen == [(0, status), (1, status)] and link.replies == 2 and link.writes == 2
