# amaranth: UnusedElaboratable=no
"""Full-system simulation: bytes into the UART RX pin bit by bit, through the harness and the
real network, out of the TX pin; every answer is compared with the golden model (``==``)."""

import numpy as np
import pytest
from specs import mlp_spec, stream_spec

from amaranth_nn import Activation, Layer, NetworkSpec, QFormat, golden
from amaranth_nn.host import BoardClient, check_samples
from amaranth_nn.link import SimulatedLink
from amaranth_nn.models import default_spec, default_test_set
from boards import protocol as proto
from boards.harness import Harness


def _small_spec(seed=5, sizes=(6, 5, 3), in_width=12, out_width=10):
    return mlp_spec(sizes, seed=seed, input_format=QFormat(in_width, 6),
                    last_format=QFormat(out_width, 4), biases=5000)


def _exchange(link, data, count, timeout_bytes=200):
    """Send raw bytes; return the first ``count`` frames that come back (or fewer)."""
    link.write(data)
    decoder = proto.FrameDecoder()
    frames = []
    deadline = link.time + timeout_bytes * link.byte_time + link.harness.timeout * link.period
    while len(frames) < count and link.time < deadline:
        frames += decoder.feed(link.read(decoder.needed(), deadline - link.time))
    return frames


def _result(p, frame, tag):
    assert frame.type == proto.RESULT and frame.tag == tag
    return p.decode_result(frame.payload)


def test_default_model_with_corruption_and_garbage():
    """The embedded digits model at its default folding: good samples, a corrupted frame,
    garbage bytes, then good samples again; the counters and LEDs tell what happened."""
    spec = default_spec()
    x, labels = default_test_set()
    link = SimulatedLink(spec, divisor=4, heartbeat=500, stretch=100)
    p = proto.Protocol(spec)
    expected = golden.run(spec, x[:4])

    client = BoardClient(link, spec)
    info = client.check_model()
    assert info["ii"] == link.harness.network.ii
    assert info["latency"] == link.harness.network.latency

    # Two good samples.
    for i in range(2):
        (frame,) = _exchange(link, p.encode_infer(x[i], 10 + i), 1)
        outputs, cls = _result(p, frame, 10 + i)
        assert outputs.tolist() == expected[i].tolist()
        assert cls == int(np.argmax(expected[i]))

    # A corrupted frame: one payload bit flipped. The board NAKs it (CRC) and runs nothing.
    bad = bytearray(p.encode_infer(x[2], 40))
    bad[20] ^= 0x10
    frames = _exchange(link, bytes(bad), 2, timeout_bytes=400)
    assert frames == [proto.Frame(proto.NAK, 40, bytes([proto.ERRORS["crc"]]))]

    # Garbage (with a stray SYNC followed by a non-type byte, and one right before the frame),
    # then a good frame.
    garbage = b"\x00\xff\x13\xa5\x77\x42\xa5"
    (frame,) = _exchange(link, garbage + p.encode_infer(x[2], 41), 1)
    outputs, cls = _result(p, frame, 41)
    assert outputs.tolist() == expected[2].tolist()

    # And one more good sample through the client, checked against golden.
    summary = check_samples(client, x[3:4], labels[3:4], progress=False)
    assert summary["exact"] == 1 and summary["argmax_ok"] == 1 and summary["mismatches"] == []

    counters = client.status()
    assert counters == {"frames_ok": 6, "crc_errors": 1, "header_errors": 1,
                        "framing_errors": 0, "timeouts": 0, "overruns": 0,
                        "garbage_bytes": 5}
    assert link.framing_errors == 0
    assert link.led_edges["error"] >= 1
    assert link.led_edges["activity"] >= 1
    assert link.led_edges["busy"] >= 1
    assert link.led_edges["heartbeat"] >= 2


def test_small_network_wide_elements_and_every_error():
    """12-bit inputs (2 bytes each), 10-bit outputs, simd 2 and pe 2 at the ends, and every
    kind of error: truncated frame, framing error, wrong length, stray SYNC."""
    spec = _small_spec()
    link = SimulatedLink(spec, folding=((3, 2), (2, 5)), divisor=5)
    p = proto.Protocol(spec)
    assert (p.input_bytes, p.output_bytes) == (2, 2)
    rng = np.random.default_rng(0)
    x = rng.integers(spec.input_format.min, spec.input_format.max + 1, (6, spec.input_size))
    x[0] = spec.input_format.min
    x[1] = spec.input_format.max
    expected = golden.run(spec, x)

    def check(i, tag, frames):
        (frame,) = frames
        outputs, cls = _result(p, frame, tag)
        assert outputs.tolist() == expected[i].tolist()
        assert cls == int(np.argmax(expected[i]))

    check(0, 1, _exchange(link, p.encode_infer(x[0], 1), 1))

    # Truncated frame: the board times out, NAKs it, and takes the next frame.
    frame = p.encode_infer(x[1], 2)
    assert _exchange(link, frame[:9], 1) == [
        proto.Frame(proto.NAK, 2, bytes([proto.ERRORS["timeout"]]))]
    check(1, 3, _exchange(link, p.encode_infer(x[1], 3), 1))

    # A framing error inside a frame: NAKed at once; the rest of the frame is garbage.
    frame = p.encode_infer(x[2], 4)
    link.write(frame[:7])
    link.write_framing_error(frame[7])
    frames = _exchange(link, frame[8:], 1)
    assert frames == [proto.Frame(proto.NAK, 4, bytes([proto.ERRORS["framing"]]))]
    check(2, 5, _exchange(link, p.encode_infer(x[2], 5), 1))

    # Wrong length for the type: NAKed after the header.
    assert _exchange(link, proto.encode_frame(proto.INFER, 6, b"\x00" * 4), 1) == [
        proto.Frame(proto.NAK, 6, bytes([proto.ERRORS["header"]]))]
    # A STATUS request with a payload is a header error too; a good one answers.
    assert _exchange(link, proto.encode_frame(proto.STATUS, 7, b"\x00"), 1) == [
        proto.Frame(proto.NAK, 7, bytes([proto.ERRORS["header"]]))]

    # Back-to-back requests without waiting (the host may pipeline): all answered in order.
    data = b"".join(p.encode_infer(x[i], 20 + i) for i in (3, 4, 5))
    frames = _exchange(link, data, 3, timeout_bytes=600)
    for frame, i in zip(frames, (3, 4, 5), strict=True):
        check(i, 20 + i, [frame])

    (frame,) = _exchange(link, proto.encode_frame(proto.STATUS, 8), 1)
    assert frame.type == proto.STATUS_REPLY and frame.tag == 8
    counters = p.decode_status(frame.payload)
    assert counters["frames_ok"] == 7
    # The bytes right after a low stop bit can be misread until the line idles: at least one.
    assert counters["timeouts"] == 1 and counters["framing_errors"] >= 1
    assert counters["header_errors"] == 2 and counters["crc_errors"] == 0
    assert counters["overruns"] == 0
    # The rest of the frame after the framing error was hunted through as garbage.
    assert counters["garbage_bytes"] > 0


def test_argmax_first_maximum_wins_on_one_byte_elements():
    """One-byte outputs, three to a beat, so the collector finishes an element every other
    cycle: ties (rows repeated, outputs saturated at both ends, every output the least value)
    go to the first maximum, and a maximum in the last element is found, like numpy.argmax."""
    one = np.ones(8, int)
    weights = np.array([15 * one, -16 * one, 15 * one, [15] * 4 + [-16] * 4,
                        [-16] * 4 + [15] * 4, [0] * 7 + [15]])
    spec = NetworkSpec(QFormat(8, 6), [Layer("fc", weights, np.full(6, -4500), QFormat(5, 3),
                                             QFormat(20, 9), QFormat(8, 4),
                                             Activation.identity())])
    x = np.array([[0] * 8, [127] * 8, [-128] * 8, [127] * 4 + [-128] * 4,
                  [-128] * 4 + [127] * 4, [0] * 7 + [127], [0, 0, 60, -60, 0, -60, 0, 60],
                  [127, -60, 0, 0, 60, 0, -128, 127], [-30] * 8])
    expected = golden.run(spec, x)
    assert (expected[0] == -128).all() and (expected[1] == [127, -128, 127, -128, -128, -81]).all()
    assert np.argmax(expected, axis=1).tolist() == [0, 0, 1, 3, 4, 0, 5, 5, 1]
    link = SimulatedLink(spec, folding=((3, 2),), divisor=4)
    client = BoardClient(link, spec)
    for row, want in zip(x, expected, strict=True):
        outputs, cls = client.infer(row)
        assert outputs.tolist() == want.tolist()
        assert cls == int(np.argmax(want))


def test_client_retries_after_corruption():
    """The client resends after a NAK; a NAK'd request never yields a wrong answer."""
    spec = _small_spec(seed=9, sizes=(4, 3), in_width=8, out_width=8)
    link = SimulatedLink(spec, divisor=4)
    client = BoardClient(link, spec)
    p = client.protocol
    x = np.array([[1, -2, 3, -4], [127, -128, 0, 5]])

    # Corrupt the next frame on its way: flip a payload bit once.
    original = link.write
    state = {"corrupt": True}

    def corrupting_write(data):
        data = bytearray(data)
        if state["corrupt"] and data[1] == proto.INFER:
            data[6] ^= 0x01
            state["corrupt"] = False
        original(bytes(data))

    link.write = corrupting_write
    summary = check_samples(client, x, progress=False)
    assert summary["exact"] == 2 and summary["mismatches"] == []
    assert summary["retried"] == 1 and summary["naks"] == {"crc": 1}
    assert p.request_size == 4 + proto.OVERHEAD


def test_harness_argument_errors():
    spec = _small_spec()
    with pytest.raises(ValueError, match=r"^Divisor must be at least 4 clocks per bit, not 2$"):
        Harness(spec, divisor=2)
    with pytest.raises(ValueError, match=r"^Timeout must be a positive integer, not 0$"):
        Harness(spec, divisor=4, timeout=0)
    with pytest.raises(TypeError, match=r"^Stretch must be an integer, not 1\.5$"):
        Harness(spec, divisor=4, stretch=1.5)


def test_overrun_when_requests_outpace_replies():
    """Requests much shorter than their replies, sent back to back: every RESULT is correct,
    every request that did not run is counted as an overrun and NAKed (while the queue of
    control replies has room), and the link works normally afterwards."""
    spec = _small_spec(seed=4, sizes=(3, 40), in_width=8, out_width=8)
    link = SimulatedLink(spec, folding=((1, 1),), divisor=4)
    p = proto.Protocol(spec)
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (10, 3))
    expected = golden.run(spec, x)
    data = b"".join(p.encode_infer(x[i], 100 + i) for i in range(len(x)))
    frames = _exchange(link, data, len(x), timeout_bytes=60 * len(x))
    tags = [frame.tag for frame in frames]
    assert len(frames) == len(x)  # here the queue of control replies never overflows
    assert len(set(tags)) == len(tags) and set(tags) <= {100 + i for i in range(len(x))}
    results = naks = 0
    for frame in frames:
        i = frame.tag - 100
        if frame.type == proto.NAK:
            assert frame.payload == bytes([proto.ERRORS["overrun"]])
            naks += 1
        else:
            outputs, cls = _result(p, frame, frame.tag)
            assert outputs.tolist() == expected[i].tolist()
            assert cls == int(np.argmax(expected[i]))
            results += 1
    assert naks >= 1 and results >= 4
    (frame,) = _exchange(link, proto.encode_frame(proto.STATUS, 1), 1, timeout_bytes=100)
    counters = p.decode_status(frame.payload)
    assert counters["overruns"] == len(x) - results >= naks
    assert counters["frames_ok"] == results + 1
    (frame,) = _exchange(link, p.encode_infer(x[0], 7), 1)
    assert _result(p, frame, 7)[0].tolist() == expected[0].tolist()


@pytest.mark.parametrize("layers, shape, folding", [
    # A first convolution takes C_in = 2 lanes, one position per beat, not its simd (9).
    ([("conv", 3, (3, 3), (1, 1), (1, 1)), ("maxpool", (2, 2)), ("flatten",), ("dense", 3)],
     (4, 4, 2), [(2, 9), (1, 1), None, (2, 4)]),
    # A first scale-and-shift at 2 lanes of 4 channels, a 1-D conv, and a dense layer last.
    ([("scale_shift",), ("conv", 2, (3,), (1,), (0,)), ("flatten",), ("dense", 5)],
     (3, 4), [2, (2, 4), None, (3, 1)]),
])
def test_conv_networks_feed_their_input_lanes(layers, shape, folding):
    """The harness writes an INFER's flat vector into the network's input beats for any input
    lanes (a conv network's): every RESULT equals the golden model."""
    rng = np.random.default_rng(3)
    spec = stream_spec(rng, shape, layers)
    link = SimulatedLink(spec, folding=folding, divisor=4)
    plan = link.harness.network.plan
    assert plan.in_lanes != plan.folding[0][1] or plan.in_lanes < spec.input_size
    x = rng.integers(spec.input_format.min, spec.input_format.max + 1, (3, spec.input_size))
    client = BoardClient(link, spec)
    assert client.check_model()["ii"] == plan.ii
    summary = check_samples(client, x, progress=False)
    assert summary["exact"] == 3 and summary["mismatches"] == []
