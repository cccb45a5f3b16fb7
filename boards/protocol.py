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
  :func:`element_bytes` ``(input width)`` bytes each, two's complement, little-endian. A
  sample of any shape is its flat vector in stream order (positions in raster order, channels
  fastest): a MNIST-1D sequence is 40 elements, an 8x8 image 64.
- :data:`RESULT` reply: the output vector in the same encoding (output width), then the argmax
  class as 2 bytes, little-endian (the first maximum, like :func:`numpy.argmax`).
- :data:`STATUS` request: empty; :data:`STATUS_REPLY`: the :data:`COUNTERS`, 2 bytes each,
  little-endian, saturating at 65535.
- :data:`INFO` request: empty; :data:`INFO_REPLY`: see :data:`INFO_FIELDS`.
- :data:`NAK` reply: 1 byte, one of the :data:`ERRORS` codes. A NAK carries the byte that sat
  in the tag position of the frame it rejects (0 when that byte was not received). That is not
  always a host's tag: when garbage that ends in a frame start (``A5 01``) swallows the next
  frame, the NAK carries that frame's SYNC, ``0xA5``. So a NAK cannot always be told from the
  answer to a request with the same tag; :data:`REQUEST_TAGS` and the client
  (:class:`amaranth_nn.host.BoardClient`) are built around that.
"""

import hashlib
import json
from collections import deque
from dataclasses import dataclass

import numpy as np

from amaranth_nn.spec import as_input_array

__all__ = [
    "SYNC", "INFER", "STATUS", "INFO", "RESULT", "STATUS_REPLY", "INFO_REPLY", "NAK",
    "REQUEST_TYPES", "REPLY_TYPES", "REQUEST_TAGS", "ERRORS", "ERROR_NAMES", "COUNTERS",
    "INFO_FIELDS", "STATUS_PAYLOAD", "INFO_PAYLOAD", "HEADER_SIZE", "CRC_SIZE", "OVERHEAD",
    "BITS_PER_BYTE", "FLUSH_BYTE", "CRC_INIT", "CRC_POLY", "ARGMAX_BYTES", "reply_type",
    "crc16", "crc16_update", "element_bytes", "encode_elements", "decode_elements",
    "spec_fingerprint", "Frame", "FrameDecoder", "encode_frame", "Protocol",
]

SYNC = 0xA5

# Request types.
INFER = 0x01
STATUS = 0x02
INFO = 0x03
# Reply types.


def reply_type(request_type):
    """The type of the reply to a request: the request type with bit 7 set."""
    return request_type | 0x80


RESULT = reply_type(INFER)
STATUS_REPLY = reply_type(STATUS)
INFO_REPLY = reply_type(INFO)
NAK = 0xFF

REQUEST_TYPES = (INFER, STATUS, INFO)
REPLY_TYPES = (RESULT, STATUS_REPLY, INFO_REPLY, NAK)

#: The tags a host gives its requests, in order. Left out: 0 (the tag of a NAK for a frame
#: whose tag was not received), :data:`SYNC` (the tag of a NAK for a frame swallowed by
#: garbage that ends in a frame start: its SYNC landed in the tag position) and the reply types
#: (what a reply's type byte becomes in the tag position behind a stray SYNC). So none of these
#: accidents ever names a pending request.
REQUEST_TAGS = tuple(tag for tag in range(1, 256) if tag != SYNC and tag not in REPLY_TYPES)

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

#: Bytes of the argmax class at the end of a RESULT payload (little-endian).
ARGMAX_BYTES = 2

HEADER_SIZE = 5     # SYNC TYPE TAG LEN_LO LEN_HI
CRC_SIZE = 2
OVERHEAD = HEADER_SIZE + CRC_SIZE
BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit
#: What a host sends to end any partial frame at the board (see :attr:`Protocol.flush_size`).
FLUSH_BYTE = 0x00

CRC_POLY = 0x1021
CRC_INIT = 0xFFFF


def crc16_update(crc, byte):
    """One byte of CRC-16/CCITT-FALSE; returns the new 16-bit CRC."""
    crc ^= byte << 8
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else (crc << 1)
    return crc & 0xFFFF


_CRC_TABLE = tuple(crc16_update(0, byte) for byte in range(256))


def crc16(data, crc=CRC_INIT):
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``), a byte at a time."""
    for byte in bytes(data):
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
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
    """Host-side streaming frame parser that no corrupted header can hold up.

    Feed it bytes with :meth:`feed`; it returns the complete, CRC-checked frames in order.

    - Bytes before a ``SYNC`` are dropped.
    - A frame start whose type is not accepted, or whose length is not the exact one of its type
      (with ``lengths``) or longer than ``max_payload`` (without), is a header error. So is one
      whose CRC is bad, once it is complete. Either way only its ``SYNC`` byte is dropped, and
      the search goes on at the next ``SYNC``, the next place a frame can start.
    - While the frame start in front is still incomplete, a complete frame with a good CRC that
      starts at a later ``SYNC`` wins, and the bytes before it are dropped. So a header that
      only looks right (noise that looks like a frame start, a length corrupted into another
      one that fits) never holds back a good frame behind it: every intact frame comes out of
      the :meth:`feed` call that brings its last byte, unless bytes that themselves pass as a
      frame (a type, its exact length, a good CRC-16) overlap it.

    Parameters
    ----------
    max_payload : int
        Longest payload accepted when ``lengths`` is not given (any request or reply type).
    lengths : mapping of int to int, optional
        The exact payload length of each frame type accepted, such as
        :attr:`Protocol.reply_lengths`; every other type is a header error.

    Members
    -------
    garbage_bytes : int
        Bytes dropped, between frames or as the start of a rejected frame.
    header_errors, crc_errors : int
        Frame starts dropped for a bad header or a bad CRC.
    abandoned : int
        Incomplete frame starts dropped because a good frame completed behind them.
    bad_frames : int
        The sum of the three above.
    rejected : collections.deque
        ``(reason, type, tag)`` of the last 16 frame starts dropped, reason ``"header"``,
        ``"crc"`` or ``"abandoned"`` (``type`` and ``tag`` are None where not received): a
        client can tell from it that its reply arrived corrupted. Clear it after reading.

    Raises
    ------
    TypeError, ValueError
        For a ``max_payload`` or ``lengths`` that is not a payload length (0 to 65535), or a
        type in ``lengths`` that is not a byte other than ``SYNC``.
    """

    def __init__(self, max_payload=4096, *, lengths=None):
        if lengths is None:
            _check_length("Maximum payload", max_payload)
            self._types = frozenset(REQUEST_TYPES + REPLY_TYPES)
            self._smallest = OVERHEAD
        else:
            lengths = dict(lengths)
            for type_, length in lengths.items():
                if not isinstance(type_, int) or not 0 <= type_ <= 255 or type_ == SYNC:
                    raise ValueError(f"Frame types must be bytes other than {SYNC:#04x}, not "
                                     f"{type_!r}")
                _check_length(f"Payload length of type {type_:#04x}", length)
            if not lengths:
                raise ValueError("Lengths must name at least one frame type")
            self._types = frozenset(lengths)
            self._smallest = OVERHEAD + min(lengths.values())
        self._max_payload = max_payload
        self._lengths = lengths
        self._buffer = bytearray()
        self._seen = 0  # frame starts that end within this many bytes are known not intact
        self.garbage_bytes = 0
        self.header_errors = 0
        self.crc_errors = 0
        self.abandoned = 0
        self.rejected = deque(maxlen=16)

    @property
    def bad_frames(self):
        return self.header_errors + self.crc_errors + self.abandoned

    @property
    def buffered(self):
        """Bytes held for a frame that has not completed yet."""
        return len(self._buffer)

    def _size_at(self, start):
        """Size of the frame starting at the SYNC at ``start``: None for a bad header, 0 while
        the header is incomplete."""
        buf = self._buffer
        have = len(buf) - start
        if have < 2:
            return 0
        if buf[start + 1] not in self._types:
            return None
        if have < HEADER_SIZE:
            return 0
        length = int.from_bytes(buf[start + 3:start + HEADER_SIZE], "little")
        if self._lengths is None:
            bad = length > self._max_payload
        else:
            bad = length != self._lengths[buf[start + 1]]
        return None if bad else OVERHEAD + length

    def _intact(self, start, size):
        buf = self._buffer
        end = start + size - CRC_SIZE
        return crc16(buf[start + 1:end]) == int.from_bytes(buf[end:end + CRC_SIZE], "big")

    def _starts(self, first):
        buf = self._buffer
        start = buf.find(SYNC, first)
        while start >= 0:
            yield start
            start = buf.find(SYNC, start + 1)

    def needed(self):
        """The fewest more bytes after which :meth:`feed` can return a frame (at least 1).

        This is what to read next from a link: never more than the smallest frame, since a new
        frame may start with the next byte.
        """
        fewest = self._smallest
        for start in self._starts(0):
            size = self._size_at(start)
            if size == 0:  # header incomplete: the smallest frame of its type, if known
                known = self._lengths is not None and len(self._buffer) - start >= 2
                size = (OVERHEAD + self._lengths[self._buffer[start + 1]] if known
                        else self._smallest)
            if size is not None and start + size > len(self._buffer):
                fewest = min(fewest, start + size - len(self._buffer))
        return max(1, fewest)

    def reset(self):
        """Drop any partial frame and the record of rejected frame starts."""
        self._drop(len(self._buffer))
        self.rejected.clear()

    def _drop(self, count, garbage=True):
        if garbage:
            self.garbage_bytes += count
        del self._buffer[:count]
        self._seen = max(0, self._seen - count)

    _COUNTER_OF = {"header": "header_errors", "crc": "crc_errors", "abandoned": "abandoned"}

    def _reject(self, reason, count=1):
        buf = self._buffer
        counter = self._COUNTER_OF[reason]
        setattr(self, counter, getattr(self, counter) + 1)
        self.rejected.append((reason, buf[1] if len(buf) > 1 else None,
                              buf[2] if len(buf) > 2 else None))
        self._drop(count)

    def _intact_behind(self):
        """The start of the first intact frame behind the front one, or None."""
        for start in self._starts(1):
            size = self._size_at(start)
            end = start + (size or 0)
            if size and self._seen < end <= len(self._buffer) and self._intact(start, size):
                return start
        return None

    def feed(self, data):
        """Add received bytes; returns the list of complete :class:`Frame` s."""
        buf = self._buffer
        buf += data
        frames = []
        while buf:
            if buf[0] != SYNC:
                index = buf.find(SYNC)
                self._drop(len(buf) if index < 0 else index)
                continue
            size = self._size_at(0)
            if size is None:
                self._reject("header")
            elif size == 0:
                break  # fewer bytes than a header: nothing behind can be complete either
            elif size <= len(buf):
                if self._intact(0, size):
                    frames.append(Frame(buf[1], buf[2], bytes(buf[HEADER_SIZE:size - CRC_SIZE])))
                    self._drop(size, garbage=False)
                else:
                    self._reject("crc")
            else:
                start = self._intact_behind()
                if start is None:
                    break
                self._reject("abandoned", start)
        self._seen = len(buf)
        return frames


def _check_length(name, value):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name} must be 0 to 65535 bytes, not {value}")


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
    request_lengths, reply_lengths : dict
        The exact payload length of each request and reply type, in bytes.
    flush_size : int
        How many :data:`FLUSH_BYTE` bytes end any partial frame at the board's receiver,
        whatever state a fault left it in, so that a frame sent right behind them is received
        whole. The longest case is a false INFER frame whose header stopped right before
        ``LEN_HI``: the first flush byte completes an exact length, then come the payload and
        the CRC, ``infer_payload + 3`` bytes; a false STATUS or INFO frame at ``TAG`` takes 5.
        A host sends them before it resends a request.
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
        self.result_payload = spec.output_size * self.output_bytes + ARGMAX_BYTES
        if self.infer_payload > 0xFFFF or self.result_payload > 0xFFFF:
            raise ValueError(f"The network's vectors are too large for the protocol: "
                             f"{self.infer_payload} input bytes, {self.result_payload} output "
                             f"bytes, at most 65535")
        self.request_size = OVERHEAD + self.infer_payload
        self.reply_size = OVERHEAD + self.result_payload
        self.request_lengths = {INFER: self.infer_payload, STATUS: 0, INFO: 0}
        self.reply_lengths = {RESULT: self.result_payload, STATUS_REPLY: STATUS_PAYLOAD,
                              INFO_REPLY: INFO_PAYLOAD, NAK: 1}
        self.flush_size = max(self.infer_payload, 2) + 3
        self.fingerprint = spec_fingerprint(spec)

    def payload_length(self, type):
        """The exact payload length of a request ``type`` (what the board accepts)."""
        return self.request_lengths[type]

    def reply_payload_length(self, type):
        """The payload length of a reply ``type``."""
        return self.reply_lengths[type]

    def reply_decoder(self):
        """A :class:`FrameDecoder` for the replies of this network: exact lengths per type."""
        return FrameDecoder(lengths=self.reply_lengths)

    @staticmethod
    def nak_codes(type):
        """The NAK codes that a request ``type`` can draw from the board.

        Every code for an INFER; all but ``overrun`` for STATUS and INFO, which the board
        always takes. A NAK with another code was caused by something else.
        """
        return frozenset(code for name, code in ERRORS.items()
                         if type == INFER or name != "overrun")

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
        outputs = decode_elements(payload[:-ARGMAX_BYTES], self.output_width,
                                  self.spec.output_size)
        return outputs, int.from_bytes(payload[-ARGMAX_BYTES:], "little")

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
