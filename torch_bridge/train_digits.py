"""Train the digits MLP (the default embedded model): ``python -m torch_bridge.train --dataset
digits`` under its own name.

Command line::

    python -m torch_bridge.train_digits --bits 8 --out amaranth_nn/models/digits.json

The same options and files as :mod:`torch_bridge.train` (without ``--dataset``); the training
is :func:`torch_bridge.training.run_training` on the ``digits`` dataset (scikit-learn's 8x8
digits, pixels / 16, a stratified 25 % test split; ``Q(8, 6)`` holds every pixel exactly,
``q = 4 * pixel``). The functions of the training are importable from here as they always were.
"""

import sys

from amaranth_nn import cli

from .datasets import float_mlp
from .datasets import load_digits_split as load_data
from .train import add_training_arguments, train_from_args
from .training import (
    accuracy,
    default_percentile,
    environment,
    output_paths,
    train,
    write_outputs,
)
from .training import run_training as _run_training

__all__ = ["load_data", "float_mlp", "train", "accuracy", "default_percentile", "run_training",
           "environment", "output_paths", "write_outputs", "main"]


def run_training(bits=8, *, input_bits=8, hidden=(32, 16), epochs=60, qat_epochs=100, seed=0,
                 lr=1e-2, qat_lr=2e-3, test_size=0.25, bias_headroom=2, percentile=None,
                 name=None, progress=True):
    """Train the digits MLP and export it; returns ``(spec, report, test)``.

    See :func:`torch_bridge.training.run_training`; ``hidden`` are the hidden layer sizes.
    """
    return _run_training("digits", bits, input_bits=input_bits, widths=hidden, epochs=epochs,
                         qat_epochs=qat_epochs, seed=seed, lr=lr, qat_lr=qat_lr,
                         test_size=test_size, bias_headroom=bias_headroom,
                         percentile=percentile, name=name, progress=progress)


def _main(argv):
    parser = cli.make_parser(
        "torch_bridge.train_digits",
        epilog="A rerun on the same machine with the same library versions writes the same "
               "files; another CPU, thread count or torch/numpy/scikit-learn version can give "
               "other weights. The report records them.")
    add_training_arguments(parser, "digits")
    return train_from_args(parser.parse_args(argv), "digits")


def main(argv=None):
    """The ``python -m torch_bridge.train_digits`` command line; returns the exit status."""
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
