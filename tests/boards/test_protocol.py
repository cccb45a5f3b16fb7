"""The wire format: CRC, element encoding, frames, the host-side decoder; and the gateware CRC."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from amaranth_nn import Activation, Layer, NetworkSpec, QFormat
from boards import protocol as proto
from boards.harness import crc16_next


def _spec(in_width=8, out_width=8, n_in=5, n_out=3):
    rng = np.random.default_rng(3)
    layer = Layer("fc", rng.integers(-8, 8, (n_out, n_in)), rng.integers(-100, 100, n_out),
                  QFormat(5, 3), QFormat(24, 3 + 2), QFormat(out_width, 2), Activation.identity())
    return NetworkSpec(QFormat(in_width, 2), [layer])


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
    # A corrupted frame may hide a good one only if its length field grew; never a false frame.
    assert all(frame in good for frame in out)
    assert out == good[len(good) - len(out):]
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


def test_fingerprint_ignores_name_only():
    a = _spec()
    b = NetworkSpec(a.input_format, a.layers, name="other", metadata={"x": 1})
    assert proto.spec_fingerprint(a) == proto.spec_fingerprint(b)
    assert proto.spec_fingerprint(a) != proto.spec_fingerprint(_spec(out_width=9))
