"""The framed byte protocol between a host and a board: constants and host-side codec.

This module is the one place that defines the wire format. The gateware
(:mod:`boards.harness`) takes its constants from here, and the host client
(:mod:`amaranth_nn.host`) encodes and decodes frames with the functions here.

Frame layout (both directions)::

    SYNC  TYPE  TAG  LEN_LO  LEN_HI  PAYLOAD[LEN]  CRC_HI  CRC_LO

- ``SYNC`` is :data:`SYNC` (``0xA5``); no frame type equals it, so a receiver that sees ``SYNC``
  where it expects a type treats it as a new start of frame.
- ``TYPE`` is a request type (:data:`INFER`, :data:`STATUS`, :data:`INFO`) or a reply type
  (the request type with bit 7 set, or :data:`NAK`).
- ``TAG`` is chosen by the host and echoed in the reply, so that replies are matched to requests
  even after an error.
- ``LEN`` is the payload length in bytes, little-endian. The board accepts only the exact length
  its network needs, so a corrupted length is caught before the payload is read.
- ``CRC`` is CRC-16/CCITT-FALSE (polynomial ``0x1021``, initial value ``0xFFFF``, no
  reflection, no final XOR) over ``TYPE`` to the end of the payload, sent big-endian.

Payloads:

- :data:`INFER` request: the input vector, ``spec.input_size`` elements of
  :func:`element_bytes` ``(input width)`` bytes each, two's complement, little-endian.
- :data:`RESULT` reply: the output vector in the same encoding (output width), then the argmax
  class as 2 bytes, little-endian (the first maximum, like :func:`numpy.argmax`).
- :data:`STATUS` request: empty; :data:`STATUS_REPLY`: the :data:`COUNTERS`, 2 bytes each,
  little-endian, saturating at 65535.
- :data:`INFO` request: empty; :data:`INFO_REPLY`: see :data:`INFO_FIELDS`.
- :data:`NAK` reply: 1 byte, one of the :data:`ERRORS` codes. A NAK carries the tag of the frame
  it rejects (0 when the tag was not received).
"""

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from amaranth_nn.spec import as_input_array

__all__ = [
    "SYNC", "INFER", "STATUS", "INFO", "RESULT", "STATUS_REPLY", "INFO_REPLY", "NAK",
    "REQUEST_TYPES", "REPLY_TYPES", "ERRORS", "ERROR_NAMES", "COUNTERS", "INFO_FIELDS",
    "STATUS_PAYLOAD", "INFO_PAYLOAD", "HEADER_SIZE", "CRC_SIZE", "OVERHEAD", "BITS_PER_BYTE",
    "CRC_INIT", "CRC_POLY",
    "crc16", "crc16_update", "element_bytes", "encode_elements", "decode_elements",
    "spec_fingerprint", "Frame", "FrameDecoder", "encode_frame", "Protocol",
]

SYNC = 0xA5

# Request types.
INFER = 0x01
STATUS = 0x02
INFO = 0x03
# Reply types.
RESULT = INFER | 0x80
STATUS_REPLY = STATUS | 0x80
INFO_REPLY = INFO | 0x80
NAK = 0xFF

REQUEST_TYPES = (INFER, STATUS, INFO)
REPLY_TYPES = (RESULT, STATUS_REPLY, INFO_REPLY, NAK)

#: NAK codes, by name.
ERRORS = {
    "crc": 1,        # the CRC did not match
    "header": 2,     # wrong length for the frame type
    "framing": 3,    # a UART stop bit was low inside a frame
    "timeout": 4,    # the line went idle inside a frame
    "overrun": 5,    # an inference request arrived while the board could not take it
}
ERROR_NAMES = {code: name for name, code in ERRORS.items()}

#: The board's error and traffic counters, in the order of the STATUS reply.
COUNTERS = ("frames_ok", "crc_errors", "header_errors", "framing_errors", "timeouts",
            "overruns", "garbage_bytes")

#: The INFO reply: (name, size in bytes), little-endian unsigned.
INFO_FIELDS = (("input_size", 2), ("output_size", 2), ("input_width", 1),
               ("output_width", 1), ("ii", 4), ("latency", 4), ("fingerprint", 4))

#: Payload lengths of the STATUS and INFO replies, in bytes.
STATUS_PAYLOAD = 2 * len(COUNTERS)
INFO_PAYLOAD = sum(size for _, size in INFO_FIELDS)

HEADER_SIZE = 5     # SYNC TYPE TAG LEN_LO LEN_HI
CRC_SIZE = 2
OVERHEAD = HEADER_SIZE + CRC_SIZE
BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit

CRC_POLY = 0x1021
CRC_INIT = 0xFFFF


def crc16_update(crc, byte):
    """One byte of CRC-16/CCITT-FALSE; returns the new 16-bit CRC."""
    crc ^= byte << 8
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else (crc << 1)
    return crc & 0xFFFF


def crc16(data, crc=CRC_INIT):
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``)."""
    for byte in bytes(data):
        crc = crc16_update(crc, byte)
    return crc


def element_bytes(width):
    """Bytes per element of a ``width``-bit integer on the wire: ``ceil(width / 8)``."""
    return (width + 7) // 8


def encode_elements(values, width):
    """Encode signed integers of ``width`` bits as little-endian two's complement bytes."""
    size = element_bytes(width)
    out = bytearray()
    for value in values:
        value = int(value)
        if not -(1 << (width - 1)) <= value < (1 << (width - 1)):
            raise ValueError(f"Value {value} does not fit in a signed {width}-bit element")
        out += (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    return bytes(out)


def decode_elements(data, width, count):
    """Decode ``count`` little-endian two's complement elements of ``width`` bits."""
    size = element_bytes(width)
    if len(data) != size * count:
        raise ValueError(f"Expected {size * count} bytes for {count} elements of {width} bits, "
                         f"got {len(data)}")
    return np.array([int.from_bytes(data[i * size:(i + 1) * size], "little", signed=True)
                     for i in range(count)], dtype=np.int64)


def spec_fingerprint(spec):
    """A 32-bit fingerprint of the integer network (formats, weights, biases, activations).

    The name and metadata do not enter it. The board reports it in its INFO reply, so that the
    host can tell that the board runs the model it checks against.
    """
    data = spec.to_dict()
    body = {"input_format": data["input_format"], "layers": data["layers"]}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


@dataclass(frozen=True)
class Frame:
    """A decoded frame: ``type``, ``tag`` and ``payload`` (bytes)."""

    type: int
    tag: int
    payload: bytes


def encode_frame(type, tag, payload=b""):
    """Encode one frame; returns bytes.

    Raises
    ------
    ValueError
        If ``type`` or ``tag`` is not a byte, or the payload is longer than 65535 bytes.
    """
    if not (0 <= type <= 255) or type == SYNC:
        raise ValueError(f"Frame type must be a byte other than {SYNC:#04x}, not {type!r}")
    if not 0 <= tag <= 255:
        raise ValueError(f"Frame tag must be a byte, not {tag!r}")
    payload = bytes(payload)
    if len(payload) > 0xFFFF:
        raise ValueError(f"Frame payload must be at most 65535 bytes, not {len(payload)}")
    body = bytes([type, tag]) + len(payload).to_bytes(2, "little") + payload
    return bytes([SYNC]) + body + crc16(body).to_bytes(2, "big")


class FrameDecoder:
    """Host-side streaming frame parser with resynchronization.

    Feed it bytes with :meth:`feed`; it returns the complete, CRC-checked frames. Bytes outside
    frames and frames with a bad CRC or an unknown type are dropped and counted.

    Parameters
    ----------
    max_payload : int
        Longest payload accepted; a longer length field is treated as corruption.

    Members
    -------
    garbage_bytes : int
        Bytes dropped while hunting for ``SYNC``.
    bad_frames : int
        Frames dropped for a bad CRC, type or length.
    """

    def __init__(self, max_payload=4096):
        self._max_payload = max_payload
        self._buffer = bytearray()
        self.garbage_bytes = 0
        self.bad_frames = 0

    def needed(self):
        """How many more bytes the frame being received needs (at least 1)."""
        buf = self._buffer
        if len(buf) < HEADER_SIZE or buf[0] != SYNC:
            return max(1, HEADER_SIZE - len(buf)) if buf[:1] == bytes([SYNC]) else 1
        length = int.from_bytes(buf[3:5], "little")
        return max(1, HEADER_SIZE + min(length, self._max_payload) + CRC_SIZE - len(buf))

    def reset(self):
        """Drop any partial frame."""
        self.garbage_bytes += len(self._buffer)
        self._buffer.clear()

    def feed(self, data):
        """Add received bytes; returns the list of complete :class:`Frame` s."""
        self._buffer += data
        frames = []
        buf = self._buffer
        while buf:
            if buf[0] != SYNC:
                index = buf.find(SYNC)
                dropped = len(buf) if index < 0 else index
                self.garbage_bytes += dropped
                del buf[:dropped]
                continue
            if len(buf) < HEADER_SIZE:
                break
            type = buf[1]
            length = int.from_bytes(buf[3:5], "little")
            if type not in REPLY_TYPES + REQUEST_TYPES or length > self._max_payload:
                self.bad_frames += 1
                del buf[:1]
                continue
            if len(buf) < HEADER_SIZE + length + CRC_SIZE:
                break
            end = HEADER_SIZE + length
            if crc16(buf[1:end]) != int.from_bytes(buf[end:end + CRC_SIZE], "big"):
                self.bad_frames += 1
                del buf[:1]
                continue
            frames.append(Frame(type, buf[2], bytes(buf[HEADER_SIZE:end])))
            del buf[:end + CRC_SIZE]
        return frames


class Protocol:
    """The frame sizes and payload codecs for one network.

    Parameters
    ----------
    spec : NetworkSpec
        The network the board runs.

    Members
    -------
    spec : NetworkSpec
    input_width, output_width : int
        Bits per input and output element (the spec's input and output formats).
    input_bytes, output_bytes : int
        Bytes per input and output element.
    infer_payload, result_payload : int
        Payload lengths of an INFER request and its RESULT reply.
    request_size, reply_size : int
        Whole INFER and RESULT frames, in bytes.
    fingerprint : int
        :func:`spec_fingerprint` of the spec.

    Raises
    ------
    ValueError
        If an input or output vector does not fit in one frame's payload.
    """

    def __init__(self, spec):
        self.spec = spec
        self.input_width = spec.input_format.width
        self.output_width = spec.output_format.width
        self.input_bytes = element_bytes(self.input_width)
        self.output_bytes = element_bytes(self.output_width)
        self.infer_payload = spec.input_size * self.input_bytes
        self.result_payload = spec.output_size * self.output_bytes + 2
        if self.infer_payload > 0xFFFF or self.result_payload > 0xFFFF:
            raise ValueError(f"The network's vectors are too large for the protocol: "
                             f"{self.infer_payload} input bytes, {self.result_payload} output "
                             f"bytes, at most 65535")
        self.request_size = OVERHEAD + self.infer_payload
        self.reply_size = OVERHEAD + self.result_payload
        self.fingerprint = spec_fingerprint(spec)

    def payload_length(self, type):
        """The exact payload length of a request ``type`` (what the board accepts)."""
        return {INFER: self.infer_payload, STATUS: 0, INFO: 0}[type]

    def reply_payload_length(self, type):
        """The payload length of a reply ``type``."""
        return {RESULT: self.result_payload, STATUS_REPLY: STATUS_PAYLOAD,
                INFO_REPLY: INFO_PAYLOAD, NAK: 1}[type]

    def encode_infer(self, x, tag):
        """Encode one INFER request for the integer input vector ``x``.

        Raises
        ------
        ValueError
            If ``x`` is not one integer vector of the spec's input size and format.
        """
        x, single = as_input_array(self.spec, x)
        if not single:
            raise ValueError(f"Encode one input vector of shape ({self.spec.input_size},) "
                             f"per frame, not a batch of shape {x.shape}")
        return encode_frame(INFER, tag, encode_elements(x[0], self.input_width))

    def decode_result(self, payload):
        """Decode a RESULT payload; returns ``(outputs, argmax)``.

        Raises
        ------
        ValueError
            If the payload has the wrong length.
        """
        if len(payload) != self.result_payload:
            raise ValueError(f"A RESULT payload must be {self.result_payload} bytes, not "
                             f"{len(payload)}")
        outputs = decode_elements(payload[:-2], self.output_width, self.spec.output_size)
        return outputs, int.from_bytes(payload[-2:], "little")

    @staticmethod
    def decode_status(payload):
        """Decode a STATUS_REPLY payload into a dict of :data:`COUNTERS`."""
        if len(payload) != STATUS_PAYLOAD:
            raise ValueError(f"A STATUS reply payload must be {STATUS_PAYLOAD} bytes, not "
                             f"{len(payload)}")
        return {name: int.from_bytes(payload[2 * i:2 * i + 2], "little")
                for i, name in enumerate(COUNTERS)}

    @staticmethod
    def decode_info(payload):
        """Decode an INFO_REPLY payload into a dict of :data:`INFO_FIELDS`."""
        if len(payload) != INFO_PAYLOAD:
            raise ValueError(f"An INFO reply payload must be {INFO_PAYLOAD} bytes, not "
                             f"{len(payload)}")
        info, offset = {}, 0
        for name, size in INFO_FIELDS:
            info[name] = int.from_bytes(payload[offset:offset + size], "little")
            offset += size
        return info

    def info_bytes(self, ii, latency):
        """The INFO reply payload the board sends for this network (used by the gateware)."""
        values = {"input_size": self.spec.input_size, "output_size": self.spec.output_size,
                  "input_width": self.input_width, "output_width": self.output_width,
                  "ii": ii, "latency": latency, "fingerprint": self.fingerprint}
        return b"".join(min(values[name], (1 << (8 * size)) - 1).to_bytes(size, "little")
                        for name, size in INFO_FIELDS)

    def uart_inferences_per_second(self, baud):
        """Inferences/s over a UART at ``baud`` (8N1), host waiting for each reply."""
        return baud / (BITS_PER_BYTE * (self.request_size + self.reply_size))
