"""A larger MLP through a whole board build: resources, Fmax and build time.

The MLP has random weights (Q(7, 6), uniform, seed 1; ``tests/specs.py``'s ``mlp_spec``, with
its Q(8, 4) activations and ReLU), since only its size matters here; the build is
:func:`amaranth_nn.build.build` with the board harness, as ``python -m amaranth_nn.build``
runs it. By default the 256 -> 128 -> 64 -> 10 MLP at target II 1024 on the ULX3S: its
weight ROMs of 32 kbit and more are ECP5 block RAM (``targets.ECP5_BLOCK_ROM_BITS``).

Usage::

    python bench/bench_large_mlp.py [--sizes 256,128,64,10] [--target-ii 1024]
                                    [--board ulx3s] [--out DIR]

Figures, never assertions. Several minutes (yosys and nextpnr).
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from specs import mlp_spec  # noqa: E402

from amaranth_nn.build import build, format_report  # noqa: E402
from amaranth_nn.progress import Progress  # noqa: E402
from boards import BOARDS  # noqa: E402


def _sizes(text):
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of layer sizes") \
            from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least two positive sizes")
    return sizes


def _positive(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=[256, 128, 64, 10],
                        metavar="N0,N1,...", help="layer sizes (default 256,128,64,10)")
    parser.add_argument("--target-ii", type=_positive, default=1024, metavar="CYCLES",
                        help="target II (default 1024)")
    parser.add_argument("--board", default="ulx3s", choices=sorted(BOARDS),
                        help="board (default ulx3s)")
    parser.add_argument("--out", metavar="DIR", help="build directory (default: a temporary one)")
    args = parser.parse_args(argv)
    spec = mlp_spec(args.sizes, seed=1, name="mlp" + "-".join(map(str, args.sizes)))
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out) if args.out else Path(scratch) / args.board
        try:
            report = build(args.board, spec, target_ii=args.target_ii, out=out,
                           progress=Progress(sys.stderr))
        except ValueError as error:
            parser.error(str(error))
        print(format_report(report))


if __name__ == "__main__":
    main()
