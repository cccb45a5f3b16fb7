"""The host client: send samples to a board, check every answer against the golden model.

Usage::

    python -m amaranth_nn.host --port /dev/ttyUSB1                 # a board, default model
    python -m amaranth_nn.host --port sim --count 5                # the full-system simulation
    python -m amaranth_nn.host --port sim --count 450 --backend verilator   # compiled, fast
    python -m amaranth_nn.host --port sim --model mnist1d --count 1000 --backend verilator
    python -m amaranth_nn.host --port /dev/ttyUSB1 --inputs x.npz --model my.json
    python -m amaranth_nn.host --port sim --fault-rate 0.2 --fault-seed 1 --retries 8

The exit status is 0 when every answer equals the golden model, 1 when one does not or the
board stops answering, and 2 for bad input (see :mod:`amaranth_nn.cli`).

Any model runs: an INFER frame carries a sample as its flat vector of ``spec.input_size``
integers (a conv model's sequence or image in stream order), whatever its layer kinds.

The client talks to a :class:`~amaranth_nn.link.ByteLink`: a :class:`~amaranth_nn.link.SerialLink`
for a board, or a :class:`~amaranth_nn.link.SimulatedLink` (``--port sim``) that runs the board
harness and the network in a simulator, bit by bit on the UART pins (``--backend``: Verilator
when it is usable, else Amaranth's Python simulator);
``--fault-rate`` wraps either in a :class:`~amaranth_nn.link.FaultyLink`.
"""

import sys
import time

import numpy as np
from tqdm import tqdm

from boards import protocol as proto
from boards.uart import MIN_DIVISOR

from . import cli, golden
from .folding import add_folding_arguments, folding_from_args
from .link import FaultyLink, SerialLink, SimulatedLink
from .progress import Progress
from .spec import as_input_array
from .toolchain import ToolError

__all__ = ["BoardClient", "BoardError", "check_samples", "main"]


class BoardError(RuntimeError):
    """The board did not answer, or answered for a different model."""


class BoardClient:
    """Requests to a board over a byte link, with retries that recover from faults.

    Every attempt carries a new tag from :data:`boards.protocol.REQUEST_TAGS`. Replies are
    decoded with this network's exact reply lengths (:meth:`Protocol.reply_decoder`), by a
    decoder reset at every attempt, so a corrupted length costs nothing beyond the reply it
    corrupted. An attempt fails on a NAK with its tag and a code the request can draw
    (:meth:`Protocol.nak_codes`), on a frame start with its tag that arrived corrupted, or when
    no answer came within the link's reply timeout. The client then sends
    :attr:`Protocol.flush_size` flush bytes, which end any partial frame that a fault left in
    the board's receiver, and the request again with a new tag, up to ``retries`` times.

    A NAK carries whatever byte sat in its frame's tag position, so one that only happens to
    carry the pending tag cannot be told from a real one. Every attempt of a request carries the
    same request, so the client accepts an answer to any of them: such a NAK costs one resend,
    never the answer, and it does not end the last attempt's wait either.

    Parameters
    ----------
    link : ByteLink
    spec : NetworkSpec
        The model the board is expected to run.
    retries : int
        Extra attempts per request after a failed one.

    Members
    -------
    naks : dict
        NAKs that failed an attempt, by error name.
    timeouts : int
        Attempts that got no answer and no NAK in time.
    corrupted : int
        Attempts whose reply arrived corrupted (a rejected frame start with their tag).
    retried : int
        Requests sent again.
    stale : int
        Frames skipped: answers to earlier requests, NAKs for earlier attempts, and NAKs with a
        code the request cannot draw.

    Raises
    ------
    TypeError
        If ``retries`` is not an integer.
    ValueError
        If ``retries`` is negative.
    """

    def __init__(self, link, spec, *, retries=3):
        if not isinstance(retries, int) or isinstance(retries, bool):
            raise TypeError(f"Retries must be a non-negative integer, not {retries!r}")
        if retries < 0:
            raise ValueError(f"Retries must be a non-negative integer, not {retries}")
        self.link = link
        self.spec = spec
        self.protocol = proto.Protocol(spec)
        self.decoder = self.protocol.reply_decoder()
        self.retries = retries
        self.naks = {}
        self.timeouts = 0
        self.corrupted = 0
        self.retried = 0
        self.stale = 0
        self._tag_index = -1

    def _next_tag(self):
        self._tag_index = (self._tag_index + 1) % len(proto.REQUEST_TAGS)
        return proto.REQUEST_TAGS[self._tag_index]

    def _await(self, tags, reply_type, codes, deadline, last):
        """Wait for the answer to any attempt in ``tags``; returns its Frame, or None when the
        pending attempt (``tags[-1]``) failed (unless it is the ``last``) or time ran out."""
        link, decoder, tag = self.link, self.decoder, tags[-1]
        failed = False
        while True:
            data = link.read(decoder.needed(), max(0.0, deadline - link.time))
            for frame in decoder.feed(data):
                if frame.tag in tags and frame.type == reply_type:
                    return frame
                if frame.tag == tag and frame.type == proto.NAK and frame.payload[0] in codes:
                    name = proto.ERROR_NAMES[frame.payload[0]]
                    self.naks[name] = self.naks.get(name, 0) + 1
                    failed = True
                else:
                    self.stale += 1
            if any(rejected_tag == tag for _, _, rejected_tag in decoder.rejected):
                self.corrupted += 1
                failed = True
            decoder.rejected.clear()
            if failed and not last:
                return None
            if not data or link.time >= deadline:
                if not failed:
                    self.timeouts += 1
                return None

    def request(self, frame_of_tag, reply_type):
        """Send a request (``frame_of_tag(tag)`` -> bytes) until an answer arrives.

        Raises
        ------
        BoardError
            After ``retries`` failed attempts.
        """
        p, link = self.protocol, self.link
        tags = []
        for attempt in range(self.retries + 1):
            tags.append(self._next_tag())
            data = frame_of_tag(tags[-1])
            codes = p.nak_codes(data[1])
            if attempt:
                self.retried += 1
                data = bytes([proto.FLUSH_BYTE]) * p.flush_size + data
            self.decoder.reset()
            link.write(data)
            deadline = link.time + link.reply_timeout(
                len(data), proto.OVERHEAD + p.reply_payload_length(reply_type))
            frame = self._await(tags, reply_type, codes, deadline, attempt == self.retries)
            if frame is not None:
                return frame
        raise BoardError(f"No reply from the board after {self.retries + 1} attempts "
                         f"(NAKs {self.naks or 'none'}, {self.timeouts} timeouts); check the "
                         f"port, the baud rate and that the board runs this model")

    def infer(self, x):
        """Run one input vector (integers of the input format); returns ``(outputs, argmax)``."""
        p = self.protocol
        frame = self.request(lambda tag: p.encode_infer(x, tag), proto.RESULT)
        return p.decode_result(frame.payload)

    def _simple(self, request_type, reply_type):
        return self.request(lambda tag: proto.encode_frame(request_type, tag), reply_type).payload

    def status(self):
        """The board's counters (:data:`boards.protocol.COUNTERS`) as a dict."""
        return self.protocol.decode_status(self._simple(proto.STATUS, proto.STATUS_REPLY))

    def info(self):
        """The board's INFO reply as a dict."""
        return self.protocol.decode_info(self._simple(proto.INFO, proto.INFO_REPLY))

    def check_model(self):
        """Compare the board's INFO with the spec; returns the info.

        Raises
        ------
        BoardError
            If the board runs a different model.
        """
        info = self.info()
        p = self.protocol
        expected = {"input_size": self.spec.input_size, "output_size": self.spec.output_size,
                    "input_width": p.input_width, "output_width": p.output_width,
                    "fingerprint": p.fingerprint}
        wrong = [f"{name} {info[name]:#x} (expected {value:#x})" if name == "fingerprint"
                 else f"{name} {info[name]} (expected {value})"
                 for name, value in expected.items() if info[name] != value]
        if wrong:
            raise BoardError("The board runs a different model: " + ", ".join(wrong))
        return info


def check_samples(client, x, labels=None, *, progress=True):
    """Send every row of ``x`` and compare each answer with the golden model.

    Parameters
    ----------
    client : BoardClient
    x : array_like of int, shape (samples, input_size)
    labels : array_like of int, optional
        True classes, for the accuracy.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``samples``, ``exact`` (output vectors equal to golden), ``argmax_ok`` (argmax equal to
        golden's), ``mismatches`` (indices), ``accuracy`` (if labels), ``seconds``,
        ``retried``, ``timeouts``, ``corrupted`` (replies that arrived corrupted), ``naks``.

    Raises
    ------
    ValueError
        If ``x`` does not hold integer input vectors of the spec (at least one), or ``labels``
        is not one integer per sample.
    BoardError
        If the board stops answering.
    """
    x, _ = as_input_array(client.spec, x)
    if not len(x):
        raise ValueError("Inputs must hold at least one sample, not 0")
    if labels is not None:
        labels = cli.check_labels(labels, len(x))
    expected = golden.run(client.spec, x)
    exact = argmax_ok = correct = 0
    mismatches = []
    start = time.monotonic()
    for index in tqdm(range(len(x)), desc="samples", unit="sample", disable=not progress):
        outputs, cls = client.infer(x[index])
        same = bool(np.array_equal(outputs, expected[index]))
        exact += same
        argmax_ok += cls == int(np.argmax(expected[index]))
        if not same or cls != int(np.argmax(expected[index])):
            mismatches.append(index)
        if labels is not None:
            correct += cls == int(labels[index])
    summary = {"samples": len(x), "exact": exact, "argmax_ok": argmax_ok,
               "mismatches": mismatches, "seconds": time.monotonic() - start,
               "retried": client.retried, "timeouts": client.timeouts,
               "corrupted": client.corrupted, "naks": dict(client.naks)}
    if labels is not None:
        summary["accuracy"] = correct / max(1, len(x))
    return summary


def _open_serial(port, baud):
    try:
        return SerialLink(port, baud)
    except ImportError as error:
        raise cli.CommandError(f"--port '{port}': {error}", status=cli.FAILED) from None
    except OSError as error:
        # pyserial wraps the operating system's error in its own, with the port in the text.
        cause = error.__context__ if isinstance(error.__context__, OSError) else error
        raise cli.CommandError(f"--port '{port}' cannot be opened: "
                               f"{cause.strerror or cause}") from None


def _main(argv):
    parser = cli.make_parser("amaranth_nn.host")
    parser.add_argument("--port", required=True,
                        help="serial port of the board, or 'sim' for the simulated board")
    parser.add_argument("--baud", type=int, default=115200, action=cli.int_range(1),
                        help="baud rate (default 115200)")
    cli.add_model_argument(parser)
    parser.add_argument("--inputs", metavar="X.npy|X.npz",
                        help="integer inputs, .npy (x) or .npz (x, optional labels y); default "
                             "with an embedded model: its test set")
    parser.add_argument("--count", type=int, action=cli.int_range(1),
                        help="send only the first COUNT samples (default: all; 10 with "
                             "--port sim)")
    parser.add_argument("--retries", type=int, default=3, action=cli.int_range(0),
                        help="resend a request this many times after a NAK or a timeout "
                             "(default 3)")
    sim = parser.add_argument_group("simulation (--port sim)")
    add_folding_arguments(sim)
    sim.add_argument("--divisor", type=int, default=8, action=cli.int_range(MIN_DIVISOR),
                     help=f"simulated UART clocks per bit (default 8, at least {MIN_DIVISOR})")
    cli.add_backend_argument(sim)
    faults = parser.add_argument_group("fault injection (any port)")
    faults.add_argument("--fault-rate", type=float, metavar="P", action=cli.real_range(0, 1),
                        help="hit each request and each reply with one random fault (a flipped "
                             "bit, inserted, dropped or frame-start-like bytes, a truncation) "
                             "with probability P, 0 to 1; every answer is still checked "
                             "against the golden model (raise --retries for large P)")
    faults.add_argument("--fault-seed", type=int, metavar="N", action=cli.int_range(0),
                        help="seed of the fault mix (default 0; needs --fault-rate)")
    args = parser.parse_args(argv)

    if args.fault_seed is not None and args.fault_rate is None:
        raise cli.CommandError("--fault-seed needs --fault-rate")
    spec, model = cli.load_model(args.model)
    x, labels = cli.load_inputs(args.inputs, spec, model=model)
    count = args.count if args.count is not None else (10 if args.port == "sim" else None)
    if count is not None:
        x = x[:count]
        labels = None if labels is None else labels[:count]
    folding, target_ii = folding_from_args(args, spec)
    if args.port == "sim":
        backend, notice = cli.choose_backend(args.backend)
        if notice:
            print(f"notice: {notice}", file=sys.stderr)
        print(f"Building the full-system simulation ({spec!r}, {args.divisor} clocks per bit, "
              f"backend {backend})")
        link = SimulatedLink(spec, folding=folding, target_ii=target_ii, divisor=args.divisor,
                             backend=backend, progress=Progress())
        print(f"Simulation: {cli.describe_backend(link.backend, link.build)}")
    else:
        link = _open_serial(args.port, args.baud)
    if args.fault_rate is not None:
        link = FaultyLink.random(link, args.fault_rate, args.fault_seed or 0)

    with link:
        client = BoardClient(link, spec, retries=args.retries)
        try:
            info = client.check_model()
            print(f"Board: {info['input_size']} inputs x {info['input_width']} bits -> "
                  f"{info['output_size']} outputs x {info['output_width']} bits, II "
                  f"{info['ii']} cycles, latency {info['latency']} cycles, model "
                  f"{info['fingerprint']:#010x}")
            summary = check_samples(client, x, labels)
            counters = client.status()
        except (BoardError, OSError) as error:
            raise cli.CommandError(f"--port '{args.port}': {error}", status=cli.FAILED) \
                from None
    print(format_summary(summary, counters))
    if isinstance(link, FaultyLink):
        print(link.describe())
    return 0 if summary["exact"] == summary["samples"] else cli.FAILED


def main(argv=None):
    """The ``python -m amaranth_nn.host`` command line; returns the exit status."""
    return cli.run(_main, argv, failures=(ToolError,))


def format_summary(summary, counters=None):
    """A readable summary of :func:`check_samples` (and the board's counters)."""
    lines = [f"samples            {summary['samples']}",
             f"exact vs golden    {summary['exact']}/{summary['samples']}",
             f"argmax vs golden   {summary['argmax_ok']}/{summary['samples']}"]
    if "accuracy" in summary:
        lines.append(f"accuracy (labels)  {summary['accuracy']:.4f}")
    lines.append(f"time               {summary['seconds']:.2f} s "
                 f"({summary['samples'] / max(summary['seconds'], 1e-9):.1f} samples/s)")
    lines.append(f"retries            {summary['retried']} (timeouts {summary['timeouts']}, "
                 f"corrupted replies {summary.get('corrupted', 0)}, "
                 f"NAKs {summary['naks'] or 'none'})")
    if summary["mismatches"]:
        lines.append(f"MISMATCHES at      {summary['mismatches'][:20]}")
    if counters is not None:
        lines.append("board counters     " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
