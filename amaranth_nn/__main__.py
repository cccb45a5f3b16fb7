"""``python -m amaranth_nn``: the command lines of amaranth-nn, one line each."""

import sys

from .cli import COMMANDS, make_parser, run, version

__all__ = ["main"]


def _main(argv):
    parser = make_parser("amaranth_nn", "List the command lines of amaranth-nn (each takes "
                                        "--help and --version).")
    parser.parse_args(argv)
    print(f"amaranth-nn {version()}; commands:")
    width = max(len(command) for command in COMMANDS)
    for command, does in COMMANDS.items():
        print(f"  python -m {command:<{width}}  {does}")
    return 0


def main(argv=None):
    """The ``python -m amaranth_nn`` command line; returns the exit status."""
    return run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
