"""Train an embedded model with QAT and write its spec, report and test set.

Command line::

    python -m torch_bridge.train --dataset digits|digits-conv|mnist1d --bits B --out SPEC

What it does is :func:`torch_bridge.training.run_training`; the datasets and models are those
of :mod:`torch_bridge.datasets`. Next to the spec ``STEM.json`` it writes ``STEM.report.json``
(``float_accuracy``, ``integer_accuracy``, ``ptq_integer_accuracy``, the settings, the layers,
the training time and the ``environment``: the versions of Python, torch, numpy and
scikit-learn (and mnist1d), torch's thread count and the CPU) and ``STEM_test.npz`` (``x``:
held-out inputs as integers of the input format, each sample flattened in stream order; ``y``:
labels). Every output path is checked before any training.
"""

import sys
from pathlib import Path

import torch

from amaranth_nn import cli

from .datasets import DATASETS
from .export import describe
from .training import output_paths, run_training, write_outputs

__all__ = ["add_training_arguments", "train_from_args", "main"]

_EPILOG = ("A rerun on the same machine with the same library versions and --threads writes the "
           "same files; another CPU, thread count or torch/numpy/scikit-learn version can give "
           "other weights. The report records them.")


def _widths(text, option):
    return tuple(cli.parse_int_list(text, option))


def add_training_arguments(parser, dataset=None):
    """Add the training options; without ``dataset``, ``--dataset`` too (defaults in help are
    then those of ``digits``)."""
    if dataset is None:
        parser.add_argument("--dataset", required=True, choices=list(DATASETS),
                            help="what to train: " + "; ".join(
                                f"{name}: {data.description}" for name, data in
                                DATASETS.items()))
    data = DATASETS[dataset or "digits"]
    parser.add_argument("--bits", type=int, required=True, action=cli.int_range(2, 16),
                        help="width of the weight and activation formats (2..16)")
    parser.add_argument("--out", required=True, metavar="SPEC",
                        help="spec file to write; STEM.report.json and STEM_test.npz go "
                             "next to it (the directory must exist)")
    parser.add_argument("--input-bits", type=int, default=8, action=cli.int_range(2, 16),
                        help="width of the input format (2..16; default 8)")
    widths = cli.option_check(_widths)
    if dataset in (None, "digits"):
        parser.add_argument("--hidden", metavar="N,N", action=widths,
                            help="hidden layer sizes of the digits MLP (default 32,16)")
    if dataset != "digits":
        parser.add_argument("--channels", metavar="N,N", action=widths,
                            help="channels of the conv blocks (default 8,16 for digits-conv, "
                                 "16,16,16 for mnist1d)")
    parser.add_argument("--epochs", type=int, action=cli.int_range(1),
                        help=f"float training epochs (default {data.settings['epochs']})")
    parser.add_argument("--qat-epochs", type=int, action=cli.int_range(1),
                        help=f"QAT fine-tuning epochs; the float twin gets the same "
                             f"fine-tuning (default {data.settings['qat_epochs']})")
    parser.add_argument("--percentile", type=float, default=None, metavar="P",
                        action=cli.real_range(50, 100, lo_open=True),
                        help="activation formats hold the training activations up to the P-th "
                             "percentile, in (50, 100] (default 99.9, or 99 below 6 bits)")
    parser.add_argument("--seed", type=int, default=0, action=cli.int_range(0, 2**32 - 1),
                        help="seed of the split, the initialization and the batches (default 0)")
    parser.add_argument("--threads", type=int, default=1, action=cli.int_range(1, 256),
                        help="torch threads (default 1: the same files on every rerun)")


def train_from_args(args, dataset):
    """Train ``dataset`` as the parsed ``args`` say, write the files and print the summary;
    returns the exit status."""
    widths = getattr(args, "hidden", None)
    channels = getattr(args, "channels", None)
    if dataset == "digits" and channels is not None:
        raise cli.CommandError("--channels applies to the conv datasets (digits-conv, mnist1d); "
                               "the digits MLP takes --hidden")
    if dataset != "digits" and widths is not None:
        raise cli.CommandError(f"--hidden applies to --dataset digits only; {dataset} takes "
                               f"--channels")
    widths = widths if widths is not None else channels
    if dataset == "mnist1d" and widths is not None and not 1 <= len(widths) <= 3:
        raise cli.CommandError(f"--channels takes 1 to 3 values for mnist1d (one per conv "
                               f"block), not {len(widths)}")
    if dataset == "digits-conv" and widths is not None and not 1 <= len(widths) <= 2:
        raise cli.CommandError(f"--channels takes 1 or 2 values for digits-conv (one per conv "
                               f"block), not {len(widths)}")
    for path in output_paths(args.out):   # before the training, not after it
        cli.output_file(path, "--out")
    torch.set_num_threads(args.threads)
    spec, report, test = run_training(dataset, args.bits, input_bits=args.input_bits,
                                      widths=widths, epochs=args.epochs,
                                      qat_epochs=args.qat_epochs, seed=args.seed,
                                      percentile=args.percentile, name=Path(args.out).stem)
    with cli.writing(args.out, "--out"):
        paths = write_outputs(spec, report, test, args.out)
    print(describe(spec))
    for message in report["saturation_warnings"]:
        print(f"warning: {message}")
    print(f"float accuracy:    {100 * report['float_accuracy']:.2f} % "
          f"({report['test_samples']} held-out samples)")
    print(f"integer accuracy:  {100 * report['integer_accuracy']:.2f} % "
          f"(QAT, {args.bits}-bit; float - integer = {report['accuracy_drop_points']:+.2f} "
          f"points)")
    print(f"PTQ accuracy:      {100 * report['ptq_integer_accuracy']:.2f} % "
          f"(float model quantized without retraining)")
    print(f"QAT eval forward == integer model: {report['qat_eval_equals_integer']}; "
          f"torch int64 == golden: {report['torch_int64_equals_golden']}")
    print(f"training time:     {report['train_seconds']:.1f} s on {args.threads} thread"
          f"{'s' if args.threads > 1 else ''} (data {report['data_seconds']:.1f} s)")
    print("wrote " + ", ".join(str(p) for p in paths))
    if not (report["qat_eval_equals_integer"] and report["torch_int64_equals_golden"]):
        raise cli.CommandError("the exported integer model differs from the QAT eval forward "
                               "or from torch int64 inference (see the report); please "
                               "report this as a bug", status=cli.FAILED)
    return 0


def _main(argv):
    parser = cli.make_parser("torch_bridge.train", epilog=_EPILOG)
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    return train_from_args(args, args.dataset)


def main(argv=None):
    """The ``python -m torch_bridge.train`` command line; returns the exit status."""
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
