"""The wire format: CRC, element encoding, frames, the host-side decoder; and the gateware CRC."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st
from specs import mlp_spec

from amaranth_nn import NetworkSpec, QFormat
from amaranth_nn.estimate import HARNESS_REPLY_WORDS
from amaranth_nn.folding import plan_network
from amaranth_nn.link import FRAME_START_NOISE, single_faults
from amaranth_nn.models import MODELS
from boards import protocol as proto
from boards.harness import crc16_next


def _spec(in_width=8, out_width=8, n_in=5, n_out=3):
    return mlp_spec([n_in, n_out], seed=3, input_format=QFormat(in_width, 2),
                    weight_format=QFormat(5, 3), bias_width=24,
                    output_format=QFormat(out_width, 2), weights=8, biases=100)


def test_crc16_check_value():
    assert proto.crc16(b"123456789") == 0x29B1
    assert proto.crc16(b"") == 0xFFFF


def test_gateware_crc_matches_host():
    crc, byte = Signal(16), Signal(8)
    out = Signal(16)
    m = Module()
    m.d.comb += out.eq(crc16_next(crc, byte))
    rng = np.random.default_rng(0)
    cases = [(0xFFFF, 0x00), (0x0000, 0xFF), (0x1234, 0xA5)] + [
        (int(a), int(b))
        for a, b in zip(rng.integers(0, 1 << 16, 60), rng.integers(0, 256, 60), strict=True)]

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == proto.crc16_update(c, b), (c, b)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("width", [2, 8, 9, 16, 20])
def test_elements_round_trip(width):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    values = [lo, hi, 0, -1, 1, lo + 1]
    data = proto.encode_elements(values, width)
    assert len(data) == len(values) * proto.element_bytes(width)
    assert proto.decode_elements(data, width, len(values)).tolist() == values


def test_element_out_of_range():
    with pytest.raises(ValueError, match=r"^Value 128 does not fit in a signed 8-bit element$"):
        proto.encode_elements([128], 8)


def test_frame_layout():
    frame = proto.encode_frame(proto.INFER, 7, b"\x01\x02")
    assert frame[:5] == bytes([0xA5, 0x01, 7, 2, 0])
    assert frame[5:7] == b"\x01\x02"
    assert int.from_bytes(frame[7:], "big") == proto.crc16(frame[1:7])
    with pytest.raises(ValueError, match=r"^Frame type must be a byte other than 0xa5, not 165$"):
        proto.encode_frame(0xA5, 0)
    with pytest.raises(ValueError, match=r"^Frame tag must be a byte, not 256$"):
        proto.encode_frame(proto.INFO, 256)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(proto.REPLY_TYPES), st.integers(0, 255),
                          st.binary(max_size=20)), max_size=4),
       st.binary(max_size=10), st.integers(0, 10_000))
def test_decoder_resynchronizes(frames, garbage, seed):
    """Garbage and one corrupted frame in front of good frames: the good frames come out."""
    rng = np.random.default_rng(seed)
    bad = bytearray(proto.encode_frame(proto.RESULT, 1, b"\x10\x20\x30"))
    bad[int(rng.integers(1, len(bad)))] ^= 1 << int(rng.integers(0, 8))
    good = [proto.Frame(t, tag, payload) for t, tag, payload in frames]
    stream = bytes(garbage) + bytes(bad) + b"".join(
        proto.encode_frame(f.type, f.tag, f.payload) for f in good)
    decoder = proto.FrameDecoder()
    out = []
    for i in range(0, len(stream), 3):  # in pieces, as a serial port delivers them
        out += decoder.feed(stream[i:i + 3])
    # Even a length that grew hides no good frame behind it, and no false frame comes out.
    assert out == good
    assert decoder.needed() >= 1


def test_protocol_sizes_and_codecs():
    spec = _spec(in_width=12, out_width=9)
    p = proto.Protocol(spec)
    assert (p.input_bytes, p.output_bytes) == (2, 2)
    assert p.infer_payload == 10 and p.result_payload == 3 * 2 + 2
    assert p.request_size == 17 and p.reply_size == 15
    assert p.uart_inferences_per_second(115200) == pytest.approx(115200 / 10 / 32)
    frame = p.encode_infer(np.array([-2048, 2047, 0, 5, -5]), 9)
    assert proto.FrameDecoder().feed(frame) == [
        proto.Frame(proto.INFER, 9, proto.encode_elements([-2048, 2047, 0, 5, -5], 12))]
    outputs, cls = p.decode_result(proto.encode_elements([-256, 255, 3], 9) + b"\x01\x00")
    assert outputs.tolist() == [-256, 255, 3] and cls == 1
    info = p.decode_info(p.info_bytes(ii=15, latency=40))
    assert info == {"input_size": 5, "output_size": 3, "input_width": 12, "output_width": 9,
                    "ii": 15, "latency": 40, "fingerprint": proto.spec_fingerprint(spec)}
    with pytest.raises(ValueError, match=r"^A RESULT payload must be 8 bytes, not 3$"):
        p.decode_result(b"\x00\x00\x00")
    with pytest.raises(ValueError, match=r"^Encode one input vector of shape \(5,\) per frame"):
        p.encode_infer(np.zeros((2, 5), dtype=np.int64), 0)
    with pytest.raises(ValueError, match=r"outside the input format"):
        p.encode_infer(np.array([4096, 0, 0, 0, 0]), 0)


@pytest.mark.parametrize("name, size", [("mnist1d", 40), ("digits-conv", 64)])
def test_conv_model_samples_are_flat_vectors(name, size):
    """INFER carries a MNIST-1D sequence or an 8x8 image as its flat vector in stream order;
    INFO tells the same sizes, and the network's II and latency."""
    spec = MODELS[name].spec()
    x, _ = MODELS[name].test_set()
    p = proto.Protocol(spec)
    assert spec.input_size == size and p.infer_payload == size and p.result_payload == 12
    (frame,) = proto.FrameDecoder().feed(p.encode_infer(x[0], 7))
    assert (frame.type, frame.tag) == (proto.INFER, 7)
    assert proto.decode_elements(frame.payload, 8, size).tolist() == x[0].tolist()
    with pytest.raises(ValueError, match=rf"^Encode one input vector of shape \({size},\)"):
        p.encode_infer(x[:2], 0)
    with pytest.raises(ValueError, match=rf"^Inputs must have shape \(batch, {size}\)"):
        p.encode_infer(x[0, :-1], 0)
    plan = plan_network(spec)
    info = p.decode_info(p.info_bytes(plan.ii, plan.latency))
    assert (info["input_size"], info["output_size"], info["ii"], info["latency"]) == \
        (size, 10, plan.ii, plan.latency)


def test_fingerprint_ignores_name_only():
    a = _spec()
    b = NetworkSpec(a.input_format, a.layers, name="other", metadata={"x": 1})
    assert proto.spec_fingerprint(a) == proto.spec_fingerprint(b)
    assert proto.spec_fingerprint(a) != proto.spec_fingerprint(_spec(out_width=9))


def test_crc16_table_equals_bitwise():
    rng = np.random.default_rng(4)
    for size in (0, 1, 7, 64):
        data = bytes(rng.integers(0, 256, size, dtype=np.uint8))
        crc = proto.CRC_INIT
        for byte in data:
            crc = proto.crc16_update(crc, byte)
        assert proto.crc16(data) == crc


# Replies of a network with 2 one-byte outputs: RESULT payload 4 bytes, as in issue 13.
LENGTHS = {proto.RESULT: 4, proto.STATUS_REPLY: proto.STATUS_PAYLOAD,
           proto.INFO_REPLY: proto.INFO_PAYLOAD, proto.NAK: 1}


def _result(tag):
    return proto.encode_frame(proto.RESULT, tag, bytes([tag, 2, 0, 0]))


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["any-length", "exact-lengths"])
def test_issue_example_recovers_at_the_next_frame(lengths):
    """Issue 13: one flipped bit in the high length byte (4 -> 260) used to hold the decoder
    for 23 frames; now the very next frame comes out of the feed that completes it."""
    bad = bytearray(proto.encode_frame(proto.RESULT, 0, b"\x11\x22\x00\x00"))
    bad[4] ^= 1
    decoder = proto.FrameDecoder(lengths=lengths)
    assert decoder.feed(bytes(bad)) == []
    # Never asks for more than a whole next frame (the old decoder asked for 256).
    assert decoder.needed() <= len(_result(1))
    out = [decoder.feed(_result(i)) for i in range(1, 30)]
    assert out == [[proto.Frame(proto.RESULT, i, bytes([i, 2, 0, 0]))] for i in range(1, 30)]
    assert decoder.bad_frames == 1
    if lengths is not None:  # a length that does not fit its type is a header error at once
        assert decoder.header_errors == 1 and list(decoder.rejected) == [("header", 0x81, 0)]


def _feed_bytewise(decoder, stream, ends):
    """Feed one byte at a time; returns ``{index of last byte: frames returned}``; checks that
    needed() never asks past the end of the next intact frame (the ends in ``ends``)."""
    out = {}
    for index, byte in enumerate(stream):
        later = [end for end in ends if end >= index]
        if later:
            assert decoder.needed() <= later[0] - index + 1, (index, stream.hex())
        frames = decoder.feed(bytes([byte]))
        if frames:
            out[index] = frames
    return out


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["any-length", "exact-lengths"])
def test_every_single_fault_costs_only_the_frame_it_hits(lengths):
    """A reply hit by one fault (a bit flip anywhere, a dropped byte, a truncation, noise that
    looks like a frame start such as ``00 a5 81``, anywhere) is lost at most; the intact frames
    behind it each come out of the very feed that brings their last byte, and nothing else."""
    hit = _result(7)
    behind = [proto.encode_frame(proto.NAK, 8, b"\x01"), _result(9),
              proto.encode_frame(proto.INFO_REPLY, 10, bytes(range(proto.INFO_PAYLOAD)))]
    faults = single_faults(hit)
    for fault in faults:
        data = fault.apply(hit)
        stream = data + b"".join(behind)
        # Noise in front of the frame or behind it leaves it whole; so does noise that ends
        # with the frame's own first bytes (``00 a5 81`` right after its ``a5 81``).
        frames = ([hit] if hit in data else []) + behind
        ends = []
        for frame in frames:
            ends.append(stream.index(frame, ends[-1] + 1 if ends else 0) + len(frame) - 1)
        decoder = proto.FrameDecoder(lengths=lengths)
        out = _feed_bytewise(decoder, stream, ends)
        expected = {end: [proto.FrameDecoder().feed(frame)[0]] for end, frame in
                    zip(ends, frames, strict=True)}
        assert out == expected, fault
    assert len(faults) == 11 * 8 + 11 + 10 + 12 * len(FRAME_START_NOISE)


def test_noise_00_a5_81_before_and_inside_a_reply():
    """The issue's noise ``00 a5 81``: in front of a reply it costs nothing; inside a reply
    only that reply is lost (it used to be taken as a header of length 362), unless the noise
    happens to rebuild it: right after the frame's own ``a5 81`` it does."""
    frame, nxt = _result(5), _result(6)
    good = proto.Frame(proto.RESULT, 5, bytes([5, 2, 0, 0]))
    decoder = proto.FrameDecoder(lengths=LENGTHS)
    assert decoder.feed(b"\x00\xa5\x81" + frame) == [good]
    for position in range(1, len(frame)):
        decoder = proto.FrameDecoder(lengths=LENGTHS)
        out = decoder.feed(frame[:position] + b"\x00\xa5\x81" + frame[position:])
        assert out == ([good] if position == 2 else []), position
        assert decoder.feed(nxt) == [proto.Frame(proto.RESULT, 6, bytes([6, 2, 0, 0]))]


def test_decoder_needed_and_reset():
    decoder = proto.FrameDecoder(lengths=LENGTHS)
    assert decoder.needed() == proto.OVERHEAD + 1  # the smallest reply, a NAK
    decoder.feed(_result(3)[:6])
    assert decoder.needed() == 5 and decoder.buffered == 6
    decoder.reset()
    assert decoder.buffered == 0 and decoder.garbage_bytes == 6
    assert decoder.feed(_result(3)) != []


def test_decoder_argument_errors():
    with pytest.raises(ValueError, match=r"^Maximum payload must be 0 to 65535 bytes, not -1$"):
        proto.FrameDecoder(-1)
    with pytest.raises(TypeError, match=r"^Maximum payload must be an integer, not 1\.5$"):
        proto.FrameDecoder(1.5)
    with pytest.raises(ValueError, match=r"^Frame types must be bytes other than 0xa5, not 165$"):
        proto.FrameDecoder(lengths={proto.SYNC: 1})
    with pytest.raises(ValueError, match=r"^Payload length of type 0x81 must be 0 to 65535 "
                                         r"bytes, not 70000$"):
        proto.FrameDecoder(lengths={proto.RESULT: 70000})
    with pytest.raises(ValueError, match=r"^Lengths must name at least one frame type$"):
        proto.FrameDecoder(lengths={})


def test_request_tags_avoid_accidental_tags():
    tags = set(proto.REQUEST_TAGS)
    assert len(tags) == len(proto.REQUEST_TAGS) == 250
    assert not tags & {0, proto.SYNC, *proto.REPLY_TYPES}


def test_protocol_lengths_flush_and_nak_codes():
    p = proto.Protocol(_spec(in_width=12, out_width=9))
    assert p.request_lengths == {proto.INFER: 10, proto.STATUS: 0, proto.INFO: 0}
    assert p.reply_lengths == {proto.RESULT: 8, proto.STATUS_REPLY: 14, proto.INFO_REPLY: 18,
                               proto.NAK: 1}
    assert p.flush_size == 13  # infer_payload + 3
    assert proto.Protocol(_spec(n_in=1)).flush_size == 5  # a false STATUS frame at TAG
    assert p.nak_codes(proto.INFER) == set(proto.ERRORS.values())
    assert p.nak_codes(proto.STATUS) == p.nak_codes(proto.INFO) == {1, 2, 3, 4}
    decoder = p.reply_decoder()
    assert decoder.feed(proto.encode_frame(proto.RESULT, 1, bytes(8))) != []
    assert decoder.feed(proto.encode_frame(proto.RESULT, 1, bytes(7))) == []
    assert decoder.header_errors == 1


def test_estimate_knows_the_reply_memory():
    """The resource estimate's count of the harness's reply memory words besides the RESULT
    payload: the counters and the INFO payload."""
    assert HARNESS_REPLY_WORDS == len(proto.COUNTERS) + proto.INFO_PAYLOAD
