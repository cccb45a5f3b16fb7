"""Training of the embedded models: float pretraining, QAT, export and the report.

:func:`run_training` does, for a dataset of :data:`~torch_bridge.datasets.DATASETS`:

1. Load the data (:mod:`torch_bridge.datasets`) and pretrain the float model with Adam and a
   cosine schedule (``epochs``).
2. Choose the formats from the pretrained model and the training set
   (:func:`torch_bridge.calibrate.calibrate`; activation formats up to the 99.9th percentile,
   99th below 6 bits; inputs ``Q(input_bits, F)``), give every bias two bits of headroom, and
   fine-tune the QAT twin (:func:`~torch_bridge.convert.qat_from_float`: layers training on
   their folded, quantized parameters) for ``qat_epochs``. For the last quarter of them the
   batch-norm statistics are frozen, so training runs exactly the model that is exported.
3. The *float twin* is the pretrained model fine-tuned in float with the same epochs, schedule
   and batches, so the two differ only in quantization. Its test accuracy is
   ``float_accuracy``; ``ptq_integer_accuracy`` is the integer accuracy of the float twin
   quantized without retraining (:func:`~torch_bridge.convert.ptq`).
4. Export the spec and evaluate the integer model (the golden model) on the test set; check
   that the QAT eval forward and torch int64 inference equal it exactly.

Reproducibility: the seeds are fixed, so a rerun on the same machine with the same library
versions and thread count writes the same files. Another CPU (its float kernels), thread count,
or torch, numpy or scikit-learn version can give other weights and accuracies; the report's
``environment`` records all of these.
"""

import copy
import importlib.metadata
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from torch import nn
from tqdm import tqdm

from amaranth_nn import golden

from . import infer
from .batchnorm import TrainsBatchNorm
from .calibrate import calibrate
from .convert import ptq, qat_from_float
from .datasets import DATASETS
from .layout import to_stream
from .qat_spec import SaturationWarning, to_spec

__all__ = ["train", "accuracy", "environment", "default_percentile", "run_training",
           "layer_report", "output_paths", "write_outputs"]


def train(model, x, y, *, epochs, lr, seed, batch_size=64, weight_decay=1e-4, desc="train",
          freeze_bn_at=None, progress=True):
    """Adam with a cosine learning-rate schedule; returns the final mean loss.

    ``freeze_bn_at``: epoch from which every module that trains a BatchNorm
    (:class:`~torch_bridge.batchnorm.TrainsBatchNorm`) uses its running statistics.
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
                if isinstance(module, TrainsBatchNorm):
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


def environment(packages=()):
    """What a training run's results depend on besides its settings and seeds.

    Parameters
    ----------
    packages : sequence of str
        Further packages whose versions count (``"mnist1d"``).

    Returns
    -------
    dict
        ``python``, ``torch``, ``numpy`` and ``scikit-learn`` versions (and those of
        ``packages``), ``torch_threads``, and the ``cpu`` (``platform.processor()``, or the
        machine type where that is empty), ``machine`` and ``platform``.
    """
    found = {"python": platform.python_version(), "torch": torch.__version__,
             "numpy": np.__version__, "scikit-learn": sklearn.__version__}
    for package in packages:
        found[package] = _version(package)
    return {**found, "torch_threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "machine": platform.machine(),
            "platform": platform.platform()}


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def default_percentile(bits):
    """Calibration percentile of the QAT activation formats: 99.9, or 99 below 6 bits."""
    return 99.9 if bits >= 6 else 99.0


def layer_report(spec):
    """Per layer of ``spec``: name, kind, shapes, formats, activation, accumulator bits."""
    layers = []
    for index, layer in enumerate(spec.layers):
        entry = {"name": layer.name, "kind": layer.kind,
                 "input_shape": list(layer.input_shape),
                 "output_shape": list(layer.output_shape)}
        if layer.kind == "dense":
            entry["shape"] = [layer.out_features, layer.in_features]
        if layer.requantizes:
            entry.update({layer.MULTIPLIER: layer.multiplier_format.to_dict(),
                          "bias_format": layer.bias_format.to_dict(),
                          "output_format": layer.output_format.to_dict(),
                          "activation": layer.activation.kind,
                          "accumulator_bits": layer.accumulator_width(
                              *spec.input_range_of(index))})
        layers.append(entry)
    return layers


def run_training(dataset="digits", bits=8, *, input_bits=8, widths=None, epochs=None,
                 qat_epochs=None, seed=0, lr=None, qat_lr=None, batch_size=None,
                 test_size=0.25, bias_headroom=2, percentile=None, name=None, progress=True):
    """Train the float and QAT twins and export the spec; returns ``(spec, report, test)``.

    ``test`` is ``(x_int, y)``: the held-out inputs as integers of the input format (each
    sample in stream order), and their labels. Settings left at None take the dataset's
    defaults (:data:`~torch_bridge.datasets.DATASETS`: MNIST-1D fine-tunes at 5e-3 below 6
    bits, 2e-3 otherwise); ``percentile`` defaults to :func:`default_percentile`.
    """
    data = DATASETS[dataset]
    settings = dict(data.settings)
    low_bits_lr = settings.pop("qat_lr_below_6_bits", None)
    if bits < 6 and low_bits_lr is not None:
        settings["qat_lr"] = low_bits_lr
    for key, value in (("epochs", epochs), ("qat_epochs", qat_epochs), ("lr", lr),
                       ("qat_lr", qat_lr), ("batch_size", batch_size)):
        if value is not None:
            settings[key] = value
    widths = data.widths if widths is None else tuple(widths)
    if percentile is None:
        percentile = default_percentile(bits)
    started = time.monotonic()
    x_train, x_test, y_train, y_test = data.load(test_size, seed)
    loaded = time.monotonic()
    torch.manual_seed(seed)
    fit = dict(seed=seed, batch_size=settings["batch_size"], progress=progress)

    pretrained = data.float_model(widths)
    train(pretrained, x_train, y_train, epochs=settings["epochs"], lr=settings["lr"],
          desc="float", **fit)
    # The float twin gets the same fine-tuning as the QAT model (epochs, schedule, batches),
    # so that the two differ only in quantization.
    model = copy.deepcopy(pretrained)
    fine_tune = dict(epochs=settings["qat_epochs"], lr=settings["qat_lr"],
                     **{**fit, "seed": seed + 1})
    train(model, x_train, y_train, desc="float fine-tune", **fine_tune)
    with torch.no_grad():
        float_acc = accuracy(model(torch.as_tensor(x_test)).numpy(), y_test)

    formats = calibrate(pretrained, x_train, bits=bits, input_bits=input_bits,
                        percentile=percentile)
    formats["bias_widths"] = [min(62, w + bias_headroom) for w in formats["bias_widths"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturationWarning)  # reported below, not here
        ptq_spec = ptq(model, x_train, bits=bits, input_bits=input_bits)
    ptq_acc = accuracy(golden.run(ptq_spec, ptq_spec.quantize_input(to_stream(x_test).numpy())),
                       y_test)

    qat = qat_from_float(pretrained, formats)
    qat_epochs = settings["qat_epochs"]
    train(qat, x_train, y_train, desc="QAT", freeze_bn_at=qat_epochs - qat_epochs // 4,
          **fine_tune)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SaturationWarning)
        spec = to_spec(qat, name=name or f"{dataset}{bits}")
    saturation = [str(w.message) for w in caught if issubclass(w.category, SaturationWarning)]
    x_int = spec.quantize_input(to_stream(x_test).numpy())
    out = golden.run(spec, x_int)
    int_acc = accuracy(out, y_test)
    with torch.no_grad():
        qat_out = qat(torch.as_tensor(x_test)).numpy()
    qat_exact = bool(np.array_equal(qat_out, spec.dequantize_output(out)))
    torch_exact = bool(np.array_equal(infer.run(spec, x_int).numpy(), out))

    report = {
        "dataset": data.description, "model": dataset,
        "bits": bits, "input_bits": input_bits, data.widths_option.lstrip("-"): list(widths),
        "seed": seed, **settings, "percentile": percentile,
        "bias_headroom_bits": bias_headroom,
        "train_samples": len(x_train), "test_samples": len(x_test),
        "float_accuracy": float_acc, "integer_accuracy": int_acc,
        "ptq_integer_accuracy": ptq_acc,
        "accuracy_drop_points": round(100 * (float_acc - int_acc), 4),
        "qat_eval_equals_integer": qat_exact, "torch_int64_equals_golden": torch_exact,
        "saturation_warnings": saturation, "notes": spec.metadata.get("notes", []),
        "input_format": spec.input_format.to_dict(),
        "input_shape": list(spec.input_shape),
        "layers": layer_report(spec),
        "multiplies_per_inference": _multiplies(spec),
        "torch_version": torch.__version__,
        "environment": environment(data.environment),
        "data_seconds": round(loaded - started, 2),
        "train_seconds": round(time.monotonic() - loaded, 2),
    }
    if dataset == "digits":
        report["sizes"] = [64, *widths, 10]
    summary = {key: report[key] for key in ("dataset", "bits", "seed", "float_accuracy",
                                            "integer_accuracy", "test_samples")}
    spec = type(spec)(spec.input_format, spec.layers, name=spec.name,
                      metadata={**spec.metadata, "training": summary})
    return spec, report, (x_int, np.asarray(y_test, dtype=np.int64))


def _multiplies(spec):
    """Integer multiplications per inference, layer by layer (positions x weights)."""
    counts = []
    for layer in spec.layers:
        if layer.kind == "dense":
            counts.append(layer.weights.size)
        elif layer.kind == "conv":
            counts.append(layer.positions_out * layer.weights.size)
        elif layer.kind == "scale_shift":
            counts.append(layer.input_size)
    return counts


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
