"""The host client: send samples to a board, check every answer against the golden model.

Usage::

    python -m amaranth_nn.host --port /dev/ttyUSB1                 # a board, default model
    python -m amaranth_nn.host --port sim --count 5                # the full-system simulation
    python -m amaranth_nn.host --port /dev/ttyUSB1 --inputs x.npy --model my.json

The client talks to a :class:`~amaranth_nn.link.ByteLink`: a :class:`~amaranth_nn.link.SerialLink`
for a board, or a :class:`~amaranth_nn.link.SimulatedLink` (``--port sim``) that runs the board
harness and the network in the Amaranth simulator, bit by bit on the UART pins.
"""

import argparse
import sys
import time

import numpy as np

from . import golden
from .spec import NetworkSpec, as_input_array

__all__ = ["BoardClient", "BoardError", "check_samples", "main"]


class BoardError(RuntimeError):
    """The board did not answer, or answered for a different model."""


class BoardClient:
    """Requests to a board over a byte link, with retries.

    Every request carries a tag; a reply is accepted only with the request's tag and the
    expected type, so stale replies after an error are skipped. A NAK or a timeout makes the
    client send the request again, up to ``retries`` times.

    Parameters
    ----------
    link : ByteLink
    spec : NetworkSpec
        The model the board is expected to run.
    retries : int
        Extra attempts per request after a NAK or a timeout.

    Members
    -------
    naks : dict
        NAKs received, by error name.
    timeouts : int
        Requests that got no reply in time.
    retried : int
        Requests sent again.
    stale : int
        Replies skipped because their tag or type was not the awaited one.

    Raises
    ------
    ValueError
        If ``retries`` is negative.
    """

    def __init__(self, link, spec, *, retries=3):
        from boards import protocol

        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"Retries must be a non-negative integer, not {retries!r}")
        self._p = protocol
        self.link = link
        self.spec = spec
        self.protocol = protocol.Protocol(spec)
        self.decoder = protocol.FrameDecoder()
        self.retries = retries
        self.naks = {}
        self.timeouts = 0
        self.retried = 0
        self.stale = 0
        self._tag = 0

    def _next_tag(self):
        self._tag = (self._tag + 1) & 0xFF
        return self._tag

    def _receive(self, tag, reply_type, timeout):
        """Wait for the reply with ``tag``; returns its Frame, or None on a NAK or a timeout."""
        link = self.link
        waited = 0.0
        while True:
            start = link.time
            data = link.read(self.decoder.needed(), timeout - waited)
            waited += link.time - start
            if not data:  # an empty read waited for the whole remaining time
                self.timeouts += 1
                return None
            for frame in self.decoder.feed(data):
                if frame.tag != tag:
                    self.stale += 1
                elif frame.type == reply_type:
                    return frame
                elif frame.type == self._p.NAK:
                    name = self._p.ERROR_NAMES.get(frame.payload[0] if frame.payload else 0,
                                                   "unknown")
                    self.naks[name] = self.naks.get(name, 0) + 1
                    return None
                else:
                    self.stale += 1
            if waited >= timeout:
                self.timeouts += 1
                return None

    def request(self, frame_of_tag, reply_type, request_size, reply_size):
        """Send a request (``frame_of_tag(tag)`` -> bytes) until its reply arrives.

        Raises
        ------
        BoardError
            After ``retries`` failed attempts.
        """
        timeout = self.link.reply_timeout(request_size, reply_size)
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
            tag = self._next_tag()
            self.link.write(frame_of_tag(tag))
            frame = self._receive(tag, reply_type, timeout)
            if frame is not None:
                return frame
        raise BoardError(f"No reply from the board after {self.retries + 1} attempts "
                         f"(NAKs {self.naks or 'none'}, {self.timeouts} timeouts); check the "
                         f"port, the baud rate and that the board runs this model")

    def infer(self, x):
        """Run one input vector (integers of the input format); returns ``(outputs, argmax)``."""
        p = self.protocol
        frame = self.request(lambda tag: p.encode_infer(x, tag), self._p.RESULT,
                             p.request_size, p.reply_size)
        return p.decode_result(frame.payload)

    def _simple(self, request_type, reply_type):
        p = self.protocol
        size = p.reply_payload_length(reply_type) + self._p.OVERHEAD
        return self.request(lambda tag: self._p.encode_frame(request_type, tag), reply_type,
                            self._p.OVERHEAD, size).payload

    def status(self):
        """The board's counters (:data:`boards.protocol.COUNTERS`) as a dict."""
        return self.protocol.decode_status(self._simple(self._p.STATUS, self._p.STATUS_REPLY))

    def info(self):
        """The board's INFO reply as a dict."""
        return self.protocol.decode_info(self._simple(self._p.INFO, self._p.INFO_REPLY))

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
        ``retried``, ``timeouts``, ``naks``.

    Raises
    ------
    ValueError
        If ``x`` does not hold integer input vectors of the spec, or ``labels`` is not one
        integer per sample.
    BoardError
        If the board stops answering.
    """
    from tqdm import tqdm

    x, _ = as_input_array(client.spec, x)
    if labels is not None:
        labels = _check_labels(labels, len(x))
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
               "retried": client.retried, "timeouts": client.timeouts, "naks": dict(client.naks)}
    if labels is not None:
        summary["accuracy"] = correct / max(1, len(x))
    return summary


def _check_labels(labels, samples, where="Labels"):
    labels = np.asarray(labels)
    if labels.shape != (samples,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{where} must be {samples} integers, one per sample, not an array of "
                         f"shape {labels.shape} and type {labels.dtype}")
    return labels


def _load_inputs(path):
    """Inputs (and labels if the file has them) from .npy (x) or .npz (x, optional y)."""
    try:
        loaded = np.load(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read inputs from '{path}': {error}") from None
    if isinstance(loaded, np.ndarray):
        return loaded, None
    with loaded:
        if "x" not in loaded:
            raise ValueError(f"Input file '{path}' has no array 'x' (it has "
                             f"{', '.join(loaded.files) or 'nothing'})")
        return loaded["x"], (loaded["y"] if "y" in loaded else None)


def main(argv=None):
    from .folding import add_folding_arguments, folding_from_args

    parser = argparse.ArgumentParser(
        prog="python -m amaranth_nn.host",
        description="Send input vectors to a board (or to the full-system simulation) and "
                    "check every answer against the golden model.")
    parser.add_argument("--port", required=True,
                        help="serial port of the board, or 'sim' for the simulated board")
    parser.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    parser.add_argument("--model", metavar="SPEC",
                        help="network spec JSON (default: the embedded digits model)")
    parser.add_argument("--inputs", metavar="X.npy",
                        help="integer inputs, .npy (x) or .npz (x, optional labels y); default: "
                             "the default model's test set")
    parser.add_argument("--count", type=int, help="send only the first COUNT samples "
                        "(default: all; 10 with --port sim)")
    parser.add_argument("--retries", type=int, default=3,
                        help="resend a request this many times after a NAK or a timeout "
                             "(default 3)")
    sim = parser.add_argument_group("simulation (--port sim)")
    add_folding_arguments(sim)
    sim.add_argument("--divisor", type=int, default=8,
                     help="simulated UART clocks per bit (default 8)")
    args = parser.parse_args(argv)

    from .models import default_spec, default_test_set
    try:
        for option, value, least in (("--baud", args.baud, 1), ("--retries", args.retries, 0)):
            if value < least:
                raise ValueError(f"{option} must be {'a positive' if least else 'a non-negative'}"
                                 f" integer, not {value}")
        spec = default_spec() if args.model is None else NetworkSpec.load(args.model)
        if args.inputs is not None:
            x, labels = _load_inputs(args.inputs)
        elif args.model is None:
            x, labels = default_test_set()
        else:
            raise ValueError("--inputs is required with --model (the test set belongs to the "
                             "default model)")
        x, _ = as_input_array(spec, x)
        if labels is not None:
            labels = _check_labels(labels, len(x), f"Labels 'y' in '{args.inputs}'"
                                   if args.inputs else "Labels of the default test set")
        count = args.count if args.count is not None else (10 if args.port == "sim" else None)
        if count is not None:
            if count < 1:
                raise ValueError(f"--count must be a positive integer, not {count}")
            x = x[:count]
            labels = None if labels is None else labels[:count]
        folding, target_ii = folding_from_args(args, spec)
        if args.port == "sim":
            from .link import SimulatedLink
            print(f"Building the full-system simulation ({spec!r}, {args.divisor} clocks per "
                  f"bit)")
            link = SimulatedLink(spec, folding=folding, target_ii=target_ii,
                                 divisor=args.divisor)
        else:
            from .link import SerialLink
            link = SerialLink(args.port, args.baud)
    except (ValueError, TypeError, OSError) as error:
        parser.exit(2, f"error: {error}\n")

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
            parser.exit(1, f"error: {error}\n")
    print(format_summary(summary, counters))
    return 0 if summary["exact"] == summary["samples"] else 1


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
                 f"NAKs {summary['naks'] or 'none'})")
    if summary["mismatches"]:
        lines.append(f"MISMATCHES at      {summary['mismatches'][:20]}")
    if counters is not None:
        lines.append("board counters     " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
