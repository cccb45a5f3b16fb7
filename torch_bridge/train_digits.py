"""Train a fixed-point MLP on scikit-learn's 8x8 digits and export it as a network spec.

Command line::

    python -m torch_bridge.train_digits --bits 8 --out amaranth_nn/models/digits.json

1. Split the 1797 digits into a training set and a held-out test set (stratified, 25 %,
   seeded). Pixels (0..16) are divided by 16, so inputs lie in [0, 1]; the input format
   ``Q(8, 6)`` holds every pixel exactly (``q = 4 * pixel``).
2. Pretrain a float MLP, ``Linear -> BatchNorm1d -> ReLU`` hidden layers and a ``Linear``
   output layer, with Adam and a cosine schedule (``--epochs``).
3. Choose the formats from the pretrained model and the training set
   (:func:`torch_bridge.convert.calibrate`; activation formats up to the 99.9th percentile,
   99th below 6 bits; inputs ``Q(input_bits, F)``), give every bias two bits of headroom, and
   fine-tune the QAT twin (:func:`~torch_bridge.convert.qat_from_float`: ``QLinearBn1d``
   layers training on their folded, quantized parameters) for ``--qat-epochs``. For the last
   quarter of them the batch-norm statistics are frozen, so training runs exactly the model
   that is exported.
4. The *float twin* is the pretrained model fine-tuned in float with the same epochs,
   schedule and batches, so the two differ only in quantization. Its test accuracy is
   ``float_accuracy``.
5. Export the spec and evaluate the integer model (the golden model) on the test set; check
   that the QAT eval forward and torch int64 inference equal it exactly.

Next to the spec ``STEM.json`` it writes ``STEM.report.json`` (``float_accuracy``,
``integer_accuracy``, ``ptq_integer_accuracy``, the settings, and the ``environment``: the
versions of Python, torch, numpy and scikit-learn, torch's thread count and the CPU) and
``STEM_test.npz`` (``x``: held-out inputs as integers of the input format; ``y``: labels).

Reproducibility: the seeds are fixed and training runs on one thread, so a rerun on the same
machine with the same library versions writes the same files. Another CPU (its float kernels),
thread count, or torch, numpy or scikit-learn version can give other weights and accuracies
(a fresh install on another CPU gave 96.44 % where the shipped model has 96.89 %); compare the
``environment`` of the two reports to see why.
"""

import copy
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from tqdm import tqdm

from amaranth_nn import cli, golden

from . import infer
from .convert import calibrate, ptq, qat_from_float
from .export import describe
from .modules import QLinearBn1d
from .qat_spec import SaturationWarning, to_spec

__all__ = ["load_data", "float_mlp", "train", "run_training", "environment", "output_paths",
           "write_outputs", "main"]


def load_data(test_size=0.25, seed=0):
    """Digits as float32 ``(x_train, x_test, y_train, y_test)``, pixels scaled to [0, 1]."""
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    return train_test_split(x, data.target.astype(np.int64), test_size=test_size,
                            random_state=seed, stratify=data.target)


def float_mlp(sizes):
    """``Linear -> BatchNorm1d -> ReLU`` per hidden layer, then a ``Linear`` output layer."""
    modules = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        modules.append(nn.Linear(n_in, n_out))
        if index < len(sizes) - 2:
            modules += [nn.BatchNorm1d(n_out), nn.ReLU()]
    return nn.Sequential(*modules)


def train(model, x, y, *, epochs, lr, seed, batch_size=64, weight_decay=1e-4, desc="train",
          freeze_bn_at=None, progress=True):
    """Adam with a cosine learning-rate schedule; returns the final mean loss.

    ``freeze_bn_at``: epoch from which every ``QLinearBn1d`` uses its running statistics.
    """
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
    loss_fn = nn.CrossEntropyLoss()
    loss = float("nan")
    bar = tqdm(range(epochs), desc=desc, unit="epoch", disable=not progress, leave=True)
    for epoch in bar:
        if freeze_bn_at is not None and epoch == freeze_bn_at:
            for module in model.modules():
                if isinstance(module, QLinearBn1d):
                    module.freeze_bn()
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), batch_size):
            index = order[start:start + batch_size]
            if len(index) < 2:
                continue
            optimizer.zero_grad()
            batch_loss = loss_fn(model(x[index]), y[index])
            batch_loss.backward()
            optimizer.step()
            schedule.step()
            total += float(batch_loss.detach()) * len(index)
        loss = total / len(x)
        bar.set_postfix(loss=f"{loss:.4f}")
    model.eval()
    return loss


def accuracy(logits, y):
    """Fraction of rows of ``logits`` whose argmax is the label in ``y``."""
    return float((np.asarray(logits).argmax(axis=1) == np.asarray(y)).mean())


def environment():
    """What a training run's results depend on besides its settings and seeds.

    Returns
    -------
    dict
        ``python``, ``torch``, ``numpy`` and ``scikit-learn`` versions, ``torch_threads``, and
        the ``cpu`` (``platform.processor()``, or the machine type where that is empty),
        ``machine`` and ``platform``.
    """
    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "machine": platform.machine(),
            "platform": platform.platform()}


def default_percentile(bits):
    """Calibration percentile of the QAT activation formats: 99.9, or 99 below 6 bits."""
    return 99.9 if bits >= 6 else 99.0


def run_training(bits=8, *, input_bits=8, hidden=(32, 16), epochs=60, qat_epochs=100,
                 seed=0, lr=1e-2, qat_lr=2e-3, test_size=0.25, bias_headroom=2,
                 percentile=None, name=None, progress=True):
    """Train the float and QAT twins and export the spec; returns ``(spec, report, test)``.

    ``test`` is ``(x_int, y)``: the held-out inputs as integers of the input format, and
    their labels. ``percentile`` defaults to :func:`default_percentile`.
    """
    if percentile is None:
        percentile = default_percentile(bits)
    torch.manual_seed(seed)
    x_train, x_test, y_train, y_test = load_data(test_size, seed)
    sizes = [x_train.shape[1], *hidden, 10]
    started = time.monotonic()

    pretrained = float_mlp(sizes)
    train(pretrained, x_train, y_train, epochs=epochs, lr=lr, seed=seed, desc="float",
          progress=progress)
    # The float twin gets the same fine-tuning as the QAT model (epochs, schedule, batches),
    # so that the two differ only in quantization.
    model = copy.deepcopy(pretrained)
    train(model, x_train, y_train, epochs=qat_epochs, lr=qat_lr, seed=seed + 1,
          desc="float fine-tune", progress=progress)
    with torch.no_grad():
        float_acc = accuracy(model(torch.as_tensor(x_test)).numpy(), y_test)

    formats = calibrate(pretrained, x_train, bits=bits, input_bits=input_bits,
                        percentile=percentile)
    formats["bias_widths"] = [min(62, w + bias_headroom) for w in formats["bias_widths"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturationWarning)  # reported below, not here
        ptq_spec = ptq(model, x_train, bits=bits, input_bits=input_bits)
    ptq_acc = accuracy(golden.run(ptq_spec, ptq_spec.quantize_input(x_test)), y_test)

    qat = qat_from_float(pretrained, formats)
    train(qat, x_train, y_train, epochs=qat_epochs, lr=qat_lr, seed=seed + 1, desc="QAT",
          freeze_bn_at=qat_epochs - qat_epochs // 4, progress=progress)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SaturationWarning)
        spec = to_spec(qat, name=name or f"digits{bits}")
    saturation = [str(w.message) for w in caught if issubclass(w.category, SaturationWarning)]
    x_int = spec.quantize_input(x_test)
    out = golden.run(spec, x_int)
    int_acc = accuracy(out, y_test)
    with torch.no_grad():
        qat_out = qat(torch.as_tensor(x_test)).numpy()
    qat_exact = bool(np.array_equal(qat_out, spec.dequantize_output(out)))
    torch_exact = bool(np.array_equal(infer.run(spec, x_int).numpy(), out))

    report = {
        "dataset": "sklearn.datasets.load_digits (8x8, 10 classes)",
        "bits": bits, "input_bits": input_bits, "sizes": sizes, "seed": seed,
        "epochs": epochs, "qat_epochs": qat_epochs, "lr": lr, "qat_lr": qat_lr,
        "percentile": percentile, "bias_headroom_bits": bias_headroom,
        "train_samples": len(x_train), "test_samples": len(x_test),
        "float_accuracy": float_acc, "integer_accuracy": int_acc,
        "ptq_integer_accuracy": ptq_acc,
        "accuracy_drop_points": round(100 * (float_acc - int_acc), 4),
        "qat_eval_equals_integer": qat_exact, "torch_int64_equals_golden": torch_exact,
        "saturation_warnings": saturation,
        "input_format": spec.input_format.to_dict(),
        "layers": [{"name": l.name, "shape": [l.out_features, l.in_features],
                    "weight_format": l.weight_format.to_dict(),
                    "bias_format": l.bias_format.to_dict(),
                    "output_format": l.output_format.to_dict(),
                    "activation": l.activation.kind,
                    "accumulator_bits": l.accumulator_width(*spec.input_range_of(i))}
                   for i, l in enumerate(spec.layers)],
        "torch_version": torch.__version__,
        "environment": environment(),
        "train_seconds": round(time.monotonic() - started, 2),
    }
    summary = {key: report[key] for key in ("dataset", "bits", "seed", "float_accuracy",
                                            "integer_accuracy", "test_samples")}
    spec = type(spec)(spec.input_format, spec.layers, name=spec.name,
                      metadata={**spec.metadata, "training": summary})
    return spec, report, (x_int, np.asarray(y_test, dtype=np.int64))


def output_paths(out):
    """The spec ``out`` and the ``STEM.report.json`` and ``STEM_test.npz`` next to it."""
    out = Path(out)
    return out, out.with_name(out.stem + ".report.json"), out.with_name(out.stem + "_test.npz")


def write_outputs(spec, report, test, out):
    """Write the spec, ``STEM.report.json`` and ``STEM_test.npz``; returns their paths."""
    out, report_path, test_path = output_paths(out)
    spec.save(out)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    with open(test_path, "wb") as file:
        np.savez_compressed(file, x=test[0].astype(np.int64), y=test[1])
    return out, report_path, test_path


def _main(argv):
    parser = cli.make_parser(
        "torch_bridge.train_digits",
        epilog="A rerun on the same machine with the same library versions writes the same "
               "files; another CPU, thread count or torch/numpy/scikit-learn version can give "
               "other weights. The report records them.")
    parser.add_argument("--bits", type=int, required=True, action=cli.int_range(2, 16),
                        help="width of the weight and activation formats (2..16)")
    parser.add_argument("--out", required=True, metavar="SPEC",
                        help="spec file to write; STEM.report.json and STEM_test.npz go "
                             "next to it (the directory must exist)")
    parser.add_argument("--input-bits", type=int, default=8, action=cli.int_range(2, 16),
                        help="width of the input format (2..16; default 8: holds every pixel)")
    parser.add_argument("--hidden", default=(32, 16), metavar="N,N",
                        action=cli.option_check(lambda text, option: tuple(
                            cli.parse_int_list(text, option))),
                        help="hidden layer sizes (default 32,16)")
    parser.add_argument("--epochs", type=int, default=60, action=cli.int_range(1),
                        help="float training epochs (default 60)")
    parser.add_argument("--qat-epochs", type=int, default=100, action=cli.int_range(1),
                        help="QAT fine-tuning epochs; the float twin gets the same "
                             "fine-tuning (default 100)")
    parser.add_argument("--percentile", type=float, default=None, metavar="P",
                        action=cli.real_range(50, 100, lo_open=True),
                        help="activation formats hold the training activations up to the P-th "
                             "percentile, in (50, 100] (default 99.9, or 99 below 6 bits)")
    parser.add_argument("--seed", type=int, default=0, action=cli.int_range(0, 2**32 - 1),
                        help="seed of the split, the initialization and the batches (default 0)")
    args = parser.parse_args(argv)
    for path in output_paths(args.out):   # before the training, not after it
        cli.output_file(path, "--out")
    torch.set_num_threads(1)
    spec, report, test = run_training(args.bits, input_bits=args.input_bits,
                                      hidden=args.hidden, epochs=args.epochs,
                                      qat_epochs=args.qat_epochs, seed=args.seed,
                                      percentile=args.percentile, name=Path(args.out).stem)
    with cli.writing(args.out, "--out"):
        paths = write_outputs(spec, report, test, args.out)
    print(describe(spec))
    for message in report["saturation_warnings"]:
        print(f"warning: {message}")
    print(f"float accuracy:    {100 * report['float_accuracy']:.2f} % "
          f"({report['test_samples']} held-out digits)")
    print(f"integer accuracy:  {100 * report['integer_accuracy']:.2f} % "
          f"(QAT, {args.bits}-bit; float - integer = {report['accuracy_drop_points']:+.2f} "
          f"points)")
    print(f"PTQ accuracy:      {100 * report['ptq_integer_accuracy']:.2f} % "
          f"(float model quantized without retraining)")
    print(f"QAT eval forward == integer model: {report['qat_eval_equals_integer']}; "
          f"torch int64 == golden: {report['torch_int64_equals_golden']}")
    print("wrote " + ", ".join(str(p) for p in paths))
    if not (report["qat_eval_equals_integer"] and report["torch_int64_equals_golden"]):
        raise cli.CommandError("the exported integer model differs from the QAT eval forward "
                               "or from torch int64 inference (see the report); please "
                               "report this as a bug", status=cli.FAILED)
    return 0


def main(argv=None):
    """The ``python -m torch_bridge.train_digits`` command line; returns the exit status."""
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
