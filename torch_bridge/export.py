"""Export of a QAT or float model to a :class:`~amaranth_nn.spec.NetworkSpec`, and ROM files.

A QAT model is an ``nn.Sequential`` (nested ones are flattened) that starts with
:class:`~torch_bridge.modules.QuantInput`, followed by dense layers (``QLinear`` or
``QLinearBn1d``), each optionally followed by one activation (``QReLU`` or ``nn.ReLU``,
``QHardtanh``, ``QIdentity`` or ``nn.Identity``). ``nn.Dropout`` is ignored. Every dense
layer's ``input_format`` must be the format of what enters it. The exported integers are
computed by the modules' own code (:meth:`~torch_bridge.modules.QLinear.integer_parameters`),
so the spec holds exactly what the eval forward computes with.

A float model is converted first (:func:`torch_bridge.convert.ptq`).

Command line::

    python -m torch_bridge.export MODEL.pt --out SPEC [--calibration X.npy] [format options]

``MODEL.pt`` is a whole module saved with ``torch.save(model, path)`` (loading it unpickles
code: only load files you trust). ROM initializers (``$readmemh`` hex, one value per line,
two's complement, row-major ``weights[out][in]``) go to ``SPEC_STEM_rom/`` next to the spec
unless ``--rom-dir`` or ``--no-rom`` says otherwise.
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from amaranth_nn.fixedpoint import Activation, QFormat, signed_width
from amaranth_nn.hexfile import format_hex
from amaranth_nn.spec import Layer, NetworkSpec

from .convert import flatten, is_qat_model, ptq
from .fold import check_bn_statistics
from .modules import QHardtanh, QIdentity, QLinearBn1d, QReLU, QuantInput, _QDense
from .quant import count_saturated

__all__ = ["SaturationWarning", "to_spec", "export", "write_rom", "main"]


class SaturationWarning(UserWarning):
    """Folded weights or biases do not fit their format and were saturated."""


def _parse_qat(model):
    """``(input_format, [(dense, activation, index)])`` of a QAT model, validated."""
    modules = [(i, m) for i, m in enumerate(flatten(model)) if not isinstance(m, nn.Dropout)]
    if not modules or not isinstance(modules[0][1], QuantInput):
        first = f"module {modules[0][0]} ({type(modules[0][1]).__name__})" if modules else \
            "the model"
        raise ValueError(f"{first}: a QAT model must start with QuantInput (the input "
                         f"format)")
    fmt = modules[0][1].fmt
    layers, size = [], None
    for index, module in modules[1:]:
        name = f"module {index} ({type(module).__name__})"
        if isinstance(module, _QDense):
            if size is not None and module.in_features != size:
                raise ValueError(f"{name}: in_features is {module.in_features}, but the "
                                 f"previous layer has {size} outputs")
            if module.input_format != fmt:
                raise ValueError(f"{name}: input_format is {module.input_format}, but its "
                                 f"input is in {fmt}")
            layers.append([module, None, index])
            fmt, size = module.output_format, module.out_features
        elif isinstance(module, (QReLU, nn.ReLU, QHardtanh, QIdentity, nn.Identity)):
            if not layers or layers[-1][1] is not None:
                raise ValueError(f"{name}: an activation must follow a dense layer, and only "
                                 f"one per layer")
            if isinstance(module, QHardtanh) and module.fmt != fmt:
                raise ValueError(f"{name}: format is {module.fmt}, but the layer before it "
                                 f"outputs {fmt}")
            layers[-1][1] = _activation(module)
        elif isinstance(module, nn.BatchNorm1d):
            raise ValueError(f"{name}: BatchNorm1d must directly follow a Linear; in a QAT "
                             f"model use QLinearBn1d, which folds it while training")
        elif isinstance(module, (nn.Linear, nn.Hardtanh)):
            raise ValueError(f"{name} is a float module; a QAT model needs QLinear, "
                             f"QLinearBn1d or QHardtanh (or convert a float model with "
                             f"torch_bridge.convert.ptq)")
        else:
            raise ValueError(f"{name} is not supported; a QAT model may hold only QuantInput, "
                             f"QLinear, QLinearBn1d, QReLU, QHardtanh, QIdentity, ReLU, "
                             f"Identity and Dropout")
    if not layers:
        raise ValueError("Model has no dense layer")
    return modules[0][1].fmt, [tuple(layer) for layer in layers]


def _activation(module):
    if isinstance(module, (QReLU, nn.ReLU)):
        return Activation.relu()
    if isinstance(module, QHardtanh):
        return Activation.hardtanh(module.lo, module.hi)
    return Activation.identity()


def to_spec(model, *, name="network", metadata=None):
    """Export a QAT model (see the module docstring) to a :class:`NetworkSpec`.

    Layers are named ``dense0``, ``dense1``, ... in order.

    Parameters
    ----------
    model : nn.Sequential
    name : str
    metadata : dict, optional
        Stored in the spec, with ``"producer": "torch_bridge"`` added.

    Returns
    -------
    NetworkSpec

    Raises
    ------
    ValueError
        For an unsupported module, a misplaced BatchNorm1d or activation, mismatched sizes or
        formats, BatchNorm statistics that are not finite, or parameters that are not finite.

    Warns
    -----
    SaturationWarning
        One per layer whose folded weights or biases saturate, with the counts.
    """
    input_format, parsed = _parse_qat(model)
    layers = []
    for number, (dense, activation, index) in enumerate(parsed):
        where = f"module {index} ({type(dense).__name__})"
        if isinstance(dense, QLinearBn1d):
            check_bn_statistics(dense.bn, where)
        with torch.no_grad():
            weight, bias = dense.folded()
            _warn_saturation(f"layer {number} ('dense{number}')", weight, bias, dense)
            try:
                w_int, b_int = (t.numpy() for t in dense.integer_parameters())
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None
        layers.append(Layer(f"dense{number}", w_int, b_int, dense.weight_format,
                            dense.bias_format, dense.output_format,
                            activation or Activation.identity()))
    metadata = {"producer": "torch_bridge", **(metadata or {})}
    return NetworkSpec(input_format, layers, name=name, metadata=metadata)


def _warn_saturation(where, weight, bias, dense):
    parts = []
    for what, values, fmt in (("weights", weight, dense.weight_format),
                              ("biases", bias, dense.bias_format)):
        if not bool(torch.isfinite(values).all()):
            continue  # reported as an error by the quantizer
        count = count_saturated(values, fmt)
        if count:
            parts.append(f"{count} of {values.numel()} {what} saturated in {fmt} (range "
                         f"[{fmt.min * fmt.lsb:g}, {fmt.max * fmt.lsb:g}], folded values in "
                         f"[{float(values.min()):.6g}, {float(values.max()):.6g}])")
    if parts:
        warnings.warn(f"{where}: " + "; ".join(parts), SaturationWarning, stacklevel=4)


def export(model, calibration=None, *, name="network", metadata=None, **format_options):
    """Export a QAT or float model to a :class:`NetworkSpec`.

    A QAT model carries its formats; a float model is quantized by
    :func:`torch_bridge.convert.ptq` with ``calibration`` and ``format_options``.

    Raises
    ------
    ValueError
        If format options or calibration data are given for a QAT model, and everything
        :func:`to_spec` and :func:`~torch_bridge.convert.ptq` raise.
    """
    if is_qat_model(model):
        given = sorted(k for k, v in format_options.items() if v is not None)
        if given or calibration is not None:
            what = ", ".join(given + (["calibration"] if calibration is not None else []))
            raise ValueError(f"The model is a QAT model with its formats fixed; {what} "
                             f"apply to float models only")
        return to_spec(model, name=name, metadata=metadata)
    return ptq(model, calibration, name=name, metadata=metadata,
               **{k: v for k, v in format_options.items() if v is not None})


def write_rom(spec, directory):
    """Write ``$readmemh`` files of every layer's weights and biases.

    For layer ``NAME``: ``NAME_weights.hex`` (``out_features * in_features`` lines, row-major:
    line ``j * in_features + i`` is ``w[j][i]``) and ``NAME_bias.hex`` (``out_features``
    lines, at the accumulator scale). Values are two's complement, ``ceil(width / 4)`` hex
    digits of the weight or bias format.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for layer in spec.layers:
        for suffix, values, fmt in (("weights", layer.weights, layer.weight_format),
                                    ("bias", layer.bias, layer.bias_format)):
            path = directory / f"{layer.name}_{suffix}.hex"
            path.write_text(format_hex(np.asarray(values).ravel(), fmt.width))
            paths.append(path)
    return paths


def describe(spec):
    """A readable table of the spec's layers (formats, activation, accumulator width)."""
    lines = [f"{spec!r}", f"  input format {spec.input_format}"]
    for index, layer in enumerate(spec.layers):
        lo, hi = spec.accumulator_range_of(index)
        lines.append(f"  {layer.name}: {layer.in_features} -> {layer.out_features}, weights "
                     f"{layer.weight_format}, bias {layer.bias_format}, output "
                     f"{layer.output_format}, {layer.activation.kind}, accumulator "
                     f"{signed_width(lo, hi)} bits")
    return "\n".join(lines)


def parse_format(text):
    """``"W,F"`` to a QFormat (argparse type)."""
    try:
        width, frac = (int(part) for part in text.split(","))
        return QFormat(width, frac)
    except ValueError as error:
        detail = str(error) if "must" in str(error) else "expected WIDTH,FRAC like 8,6"
        raise argparse.ArgumentTypeError(f"invalid format {text!r}: {detail}") from None


def add_format_options(parser):
    """Add the format options of :func:`~torch_bridge.convert.calibrate` to ``parser``."""
    group = parser.add_argument_group("format options (float models; default: calibrated)")
    group.add_argument("--bits", type=int, default=None,
                       help="width of the chosen weight and output formats (default 8)")
    group.add_argument("--input-bits", type=int, default=None,
                       help="width of a chosen input format (default --bits)")
    group.add_argument("--input-format", type=parse_format, metavar="W,F",
                       help="input format (default: from the calibration inputs)")
    group.add_argument("--weight-format", type=parse_format, metavar="W,F",
                       help="weight format of every layer")
    group.add_argument("--output-format", type=parse_format, metavar="W,F",
                       help="output format of every layer")
    group.add_argument("--bias-width", type=int, metavar="N",
                       help="bias width of every layer (default: what the biases need)")
    group.add_argument("--percentile", type=float, default=None, metavar="P",
                       help="output formats hold the calibration outputs up to the P-th "
                            "percentile (default 100: the maximum)")


def load_model(path):
    """Load a module saved with ``torch.save(model, path)``, in eval mode.

    Raises
    ------
    ValueError
        If the file does not exist, cannot be unpickled, or holds something other than an
        ``nn.Sequential`` (a state_dict, another module).
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"Model file '{path}' does not exist")
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - any unpickling failure is the user's file
        raise ValueError(f"Model file '{path}' cannot be loaded: {error}") from None
    if isinstance(model, dict):
        raise ValueError(f"Model file '{path}' holds a state_dict, not a model; save the "
                         f"module itself with torch.save(model, path)")
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"Model file '{path}' holds a {type(model).__name__}, not an "
                         f"nn.Sequential")
    return model.eval()


def check_output_file(path, what="Output file"):
    """Create the parent directory of ``path``; raise before any work if it cannot be written.

    Raises
    ------
    ValueError
        If ``path`` is a directory or its directory cannot be created.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} '{path}' is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{what} '{path}': cannot create its directory: "
                         f"{error.strerror or error}") from None
    return path


def main(argv=None):
    """The ``python -m torch_bridge.export`` command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m torch_bridge.export",
        description="Export a saved float or QAT nn.Sequential to an amaranth-nn network "
                    "spec and $readmemh ROM files.")
    parser.add_argument("model", metavar="MODEL.pt",
                        help="module saved with torch.save(model, path) (trusted file)")
    parser.add_argument("--out", required=True, metavar="SPEC", help="spec file to write")
    parser.add_argument("--calibration", metavar="X.npy",
                        help="float inputs (batch, in_features) to choose formats from")
    parser.add_argument("--name", default=None, help="network name (default: SPEC stem)")
    parser.add_argument("--rom-dir", metavar="DIR",
                        help="directory of the hex files (default: SPEC_STEM_rom next to SPEC)")
    parser.add_argument("--no-rom", action="store_true", help="write no hex files")
    add_format_options(parser)
    args = parser.parse_args(argv)
    out = Path(args.out)
    rom_dir = None
    if not args.no_rom:
        rom_dir = Path(args.rom_dir) if args.rom_dir else out.with_name(out.stem + "_rom")
    try:
        check_output_file(out, "Spec file")
        if rom_dir is not None and rom_dir.exists() and not rom_dir.is_dir():
            raise ValueError(f"ROM directory '{rom_dir}' is a file")
        model = load_model(args.model)
        calibration = None
        if args.calibration is not None:
            try:
                calibration = np.load(args.calibration)
            except (OSError, ValueError) as error:
                raise ValueError(f"Calibration file '{args.calibration}' cannot be read: "
                                 f"{error}") from None
        spec = export(model, calibration, name=args.name or out.stem,
                      metadata={"source": Path(args.model).name},
                      bits=args.bits, input_bits=args.input_bits,
                      input_format=args.input_format, weight_format=args.weight_format,
                      output_format=args.output_format, bias_width=args.bias_width,
                      percentile=args.percentile)
    except (ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        spec.save(out)
        print(describe(spec))
        print(f"wrote {out}")
        if rom_dir is not None:
            paths = write_rom(spec, rom_dir)
            print(f"wrote {len(paths)} ROM files to {rom_dir}/")
    except OSError as error:
        print(f"error: cannot write '{error.filename}': {error.strerror or error}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
