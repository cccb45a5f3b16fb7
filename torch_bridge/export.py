"""Export of a QAT or float model to a :class:`~amaranth_nn.spec.NetworkSpec`, and ROM files.

A QAT model goes through :func:`torch_bridge.qat_spec.to_spec` (see there for what it may
hold); a float model is converted first (:func:`torch_bridge.convert.ptq`).

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

from amaranth_nn import cli
from amaranth_nn.fixedpoint import MAX_WIDTH, QFormat, signed_width
from amaranth_nn.hexfile import format_hex
from amaranth_nn.layers import shape_text

from .convert import calibration_tensor, is_qat_model, ptq
from .float_model import input_pattern
from .qat_spec import SaturationWarning, to_spec

__all__ = ["SaturationWarning", "to_spec", "export", "write_rom", "main"]


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
    """Write ``$readmemh`` files of every layer's integers (dense, conv, scale-and-shift).

    For layer ``NAME``: ``NAME_weights.hex`` (a dense layer's ``out_features * in_features``
    lines, row-major: line ``j * in_features + i`` is ``w[j][i]``; a conv layer's weights in
    the spec's order ``(out, *kernel, in)``, row-major, so that line ``c * K * C_in + k`` is
    column ``k`` of the window-ordered weight matrix) or ``NAME_scale.hex`` (one scale per
    channel), and ``NAME_bias.hex`` (one per output or channel, at the accumulator scale).
    Values are two's complement, ``ceil(width / 4)`` hex digits of their format. Pooling and
    flatten layers have no integers.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for layer in spec.layers:
        if not layer.requantizes:
            continue
        multipliers = "scale" if layer.kind == "scale_shift" else "weights"
        for suffix, values, fmt in ((multipliers, getattr(layer, multipliers),
                                     layer.multiplier_format),
                                    ("bias", layer.bias, layer.bias_format)):
            path = directory / f"{layer.name}_{suffix}.hex"
            path.write_text(format_hex(np.asarray(values).ravel(), fmt.width))
            paths.append(path)
    return paths


def _layer_line(spec, index):
    layer = spec.layers[index]
    shapes = f"{shape_text(layer.input_shape)} -> {shape_text(layer.output_shape)}"
    if layer.kind == "dense":
        text = f"{layer.in_features} -> {layer.out_features}, weights {layer.weight_format}"
    elif layer.kind == "conv":
        text = (f"conv {shapes}, kernel {shape_text(layer.kernel)}, stride "
                f"{shape_text(layer.stride)}, padding {shape_text(layer.padding)}, weights "
                f"{layer.weight_format}")
    elif layer.kind == "scale_shift":
        text = f"scale-and-shift {shape_text(layer.input_shape)}, scales {layer.scale_format}"
    elif layer.kind == "flatten":
        return f"flatten {shapes} (the stream passes through)"
    else:
        text = (f"{layer.kind} {shapes}, kernel {shape_text(layer.kernel)}, stride "
                f"{shape_text(layer.stride)}")
        return text + (f", sum >> {layer.shift}" if layer.kind == "avgpool" else "")
    lo, hi = spec.accumulator_range_of(index)
    return (f"{text}, bias {layer.bias_format}, output {layer.output_format}, "
            f"{layer.activation.kind}, accumulator {signed_width(lo, hi)} bits")


def describe(spec):
    """A readable table of the spec's layers (shapes, formats, activation, accumulator
    width), and the notes of its export."""
    lines = [f"{spec!r}", f"  input format {spec.input_format}"]
    lines += [f"  {layer.name}: {_layer_line(spec, index)}"
              for index, layer in enumerate(spec.layers)]
    lines += [f"  note: {note}" for note in spec.metadata.get("notes", [])]
    return "\n".join(lines)


def parse_format(text):
    """``"W,F"`` to a ``(width, frac)`` pair of ints (an argparse ``type``: the syntax only).
    """
    try:
        width, frac = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid format {text!r}: expected WIDTH,FRAC like "
                                         f"8,6") from None
    return width, frac


def add_format_options(parser):
    """Add the format options of :func:`~torch_bridge.convert.calibrate` to ``parser``."""
    group = parser.add_argument_group("format options (float models; default: calibrated)")
    width = cli.int_range(2, MAX_WIDTH)
    fmt = cli.option_check(lambda pair, option: QFormat(*pair))
    group.add_argument("--bits", type=int, action=width,
                       help="width of the chosen weight and output formats (default 8)")
    group.add_argument("--input-bits", type=int, action=width,
                       help="width of a chosen input format (default --bits)")
    group.add_argument("--input-format", type=parse_format, action=fmt, metavar="W,F",
                       help="input format (default: from the calibration inputs)")
    group.add_argument("--weight-format", type=parse_format, action=fmt, metavar="W,F",
                       help="weight format of every layer")
    group.add_argument("--output-format", type=parse_format, action=fmt, metavar="W,F",
                       help="output format of every layer")
    group.add_argument("--bias-width", type=int, action=width, metavar="N",
                       help="bias width of every layer (default: what the biases need)")
    group.add_argument("--percentile", type=float, action=cli.real_range(50, 100, lo_open=True),
                       metavar="P", help="output formats hold the calibration outputs up to the "
                                         "P-th percentile, in (50, 100] (default 100: the "
                                         "maximum)")


def load_model(path):
    """Load a module saved with ``torch.save(model, path)``, in eval mode.

    Raises
    ------
    ValueError
        Naming the file: if it does not exist, is a directory, cannot be read or unpickled, or
        holds something other than an ``nn.Sequential`` (a state_dict, another module).
    """
    path = Path(path)
    where = f"Model file '{path}'"
    if not path.exists():
        raise ValueError(f"{where} does not exist")
    if path.is_dir():
        raise ValueError(f"{where} is a directory")
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except OSError as error:
        raise ValueError(f"{where} cannot be read: {error.strerror or error}") from None
    except (AttributeError, ImportError) as error:
        raise ValueError(f"{where} needs code that cannot be imported here ({error}); save an "
                         f"nn.Sequential of modules that live in importable packages") from None
    except Exception:  # noqa: BLE001 - anything else torch.load cannot read is the wrong file
        raise ValueError(f"{where} is not a file written by torch.save") from None
    if isinstance(model, dict):
        raise ValueError(f"{where} holds a state_dict, not a model; save the module itself with "
                         f"torch.save(model, path)")
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"{where} holds a {type(model).__name__}, not an nn.Sequential")
    return model.eval()


def _calibration(path, model):
    """The ``--calibration`` inputs, checked against a float model's input size."""
    x, _ = cli.read_arrays(path, "--calibration")
    if is_qat_model(model):
        return x  # export() says that a QAT model takes no calibration
    try:
        return calibration_tensor(x, input_pattern(model))
    except ValueError as error:
        raise cli.CommandError(f"--calibration '{path}': {error}") from None


def _main(argv):
    parser = cli.make_parser("torch_bridge.export")
    parser.add_argument("model", metavar="MODEL.pt",
                        help="module saved with torch.save(model, path) (trusted file)")
    parser.add_argument("--out", required=True, metavar="SPEC",
                        help="spec file to write (its directory must exist)")
    parser.add_argument("--calibration", metavar="X.npy|X.npz",
                        help="real inputs, shape (batch, in_features), to choose formats from: "
                             ".npy, or x in an .npz")
    parser.add_argument("--name", default=None, help="network name (default: SPEC stem)")
    parser.add_argument("--rom-dir", metavar="DIR",
                        help="directory of the hex files, created if needed (default: "
                             "SPEC_STEM_rom next to SPEC)")
    parser.add_argument("--no-rom", action="store_true", help="write no hex files")
    add_format_options(parser)
    args = parser.parse_args(argv)
    out = cli.output_file(args.out, "--out")
    rom_dir = None
    if not args.no_rom:
        rom_dir = cli.output_dir(args.rom_dir or out.with_name(out.stem + "_rom"), "--rom-dir")
    try:
        model = load_model(args.model)
        calibration = None if args.calibration is None else _calibration(args.calibration, model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SaturationWarning)
            spec = export(model, calibration, name=args.name or out.stem,
                          metadata={"source": Path(args.model).name},
                          bits=args.bits, input_bits=args.input_bits,
                          input_format=args.input_format, weight_format=args.weight_format,
                          output_format=args.output_format, bias_width=args.bias_width,
                          percentile=args.percentile)
    except (TypeError, ValueError) as error:  # the model or its formats do not validate
        raise cli.CommandError(str(error)) from None
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    with cli.writing(out, "--out"):
        spec.save(out)
    print(describe(spec))
    print(f"wrote {out}")
    if rom_dir is not None:
        with cli.writing(rom_dir, "--rom-dir"):
            paths = write_rom(spec, rom_dir)
        print(f"wrote {len(paths)} ROM files to {rom_dir}/")
    return 0


def main(argv=None):
    """The ``python -m torch_bridge.export`` command line; returns the exit status."""
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
