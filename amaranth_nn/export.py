# amaranth: UnusedElaboratable=no
"""Export a network as Verilog plus ``$readmemh`` ROM images, for users of other flows.

Python::

    from amaranth_nn.export import export
    manifest = export(spec, "out/", target_ii=64)

Command line::

    python -m amaranth_nn.export [--model NAME|SPEC] --out DIR [--pe 4,2,2 --simd 8,4,2 |
                                 --target-ii N] [--name TOP]

Without ``--model`` it exports the embedded default digits model. ``DIR`` is created if needed;
files of the names below that are already in it are replaced, and other files are left alone.

``DIR`` receives:

* ``{top}.v``: the whole :class:`~amaranth_nn.network.Network` as one Verilog file (from
  :func:`amaranth.back.verilog.convert`), ROM contents included, so it is complete on its own.
  Ports: ``clk``, ``rst`` (synchronous, active high) and the two streams, ``i__valid``,
  ``i__ready``, ``i__payload``, ``o__valid``, ``o__ready``, ``o__payload``.
* one ``.hex`` file per ROM, in the hardware's own layout, for ``$readmemh``: one word per
  line, most significant digit first, zero-padded to ``ceil(width/4)`` digits, word 0 first.
  ``layer{L}_weights_pe{P}.hex`` is PE ``P``'s weight ROM of a dense or conv layer ``L``: word
  ``g*B + b`` (``B = ceil(N/simd)``) holds ``W[g*pe + P, b*simd + k]`` in lane ``k``, lane 0 in
  the low bits, each lane a two's complement integer of the ROM's lane width (the narrowest
  width that holds the layer's weights, which may be less than the weight format's width),
  zero where the indices pass the matrix; unsigned instead when the layer has no negative
  weight (``"signed"`` in the manifest). For a conv layer ``W`` is its weight matrix,
  ``C_out x K*C_in`` with the columns in window order (``(ky*kw + kx)*C_in + c``), and the
  ROMs sit in its dense engine (hierarchy ``layer{L}.dense.weights{P}``).
  ``layer{L}_bias.hex`` holds in word ``g`` and lane ``p`` the bias of neuron (channel)
  ``g*pe + p`` plus the rounding constant ``2**(s-1)`` (``s`` the layer's requantization shift,
  no constant when ``s <= 0``), in the accumulator width. A scale-and-shift layer at ``lanes``
  lanes has ``layer{L}_scale.hex`` (word ``b``, lane ``k``: the scale of channel
  ``b*lanes + k``, in the scale operand's width) and ``layer{L}_bias.hex`` (the same channels'
  bias plus rounding). Pooling and flatten layers have no ROM.
* ``manifest.json``: ports, the layers' kinds, folding, lanes per beat, II and latency, and
  every ROM's file, hierarchy, depth, width, lanes and lane width (machine-readable form of
  the above), and ``README.md`` saying the same for
  people.

The hex files hold the ROM words of the network's plan (:class:`amaranth_nn.plan.Rom`), the
words the engines put into their ROMs, so they are exactly what the hardware holds.
"""

import json
import sys
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

from . import cli
from .folding import add_folding_arguments, folding_from_args, plan_network
from .hexfile import format_hex
from .network import Network
from .spec import check_spec

__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "port_list", "check_top_name", "export", "main"]

EXPORT_FORMAT = "amaranth-nn-export"
EXPORT_VERSION = 1


def port_list(component):
    """Verilog ports of a converted component: ``(name, direction, width)`` per port.

    Amaranth names a signature member's port by its path joined with ``__`` (``i__payload``);
    the ``sync`` domain adds ``clk`` and ``rst``.
    """
    ports = [("clk", "input", 1), ("rst", "input", 1)]
    for path, member, value in component.signature.flatten(component):
        direction = "input" if member.flow == wiring.In else "output"
        ports.append(("__".join(str(p) for p in path), direction, len(value.as_value())
                      if hasattr(value, "as_value") else len(value)))
    return ports


def _rom_entry(spec, rom):
    entry = {"file": rom.file_name, "hierarchy": ".".join(rom.path), "kind": rom.kind,
             "layer": rom.layer, "pe": rom.pe, "depth": rom.depth, "width": rom.width,
             "lanes": rom.lanes, "lane_width": rom.lane_width, "signed": rom.signed,
             "layout": rom.layout}
    if rom.kind == "bias":
        entry["rounding"] = spec.layers[rom.layer].rounding
    return entry


def check_top_name(name):
    """Return ``name`` if it can name the Verilog top module.

    Raises
    ------
    TypeError, ValueError
        If ``name`` is not a string, or not an identifier.
    """
    if not isinstance(name, str):
        raise TypeError(f"Top module name must be a string, not {name!r}")
    if not name.isidentifier():
        raise ValueError(f"Top module name must be a Verilog identifier, not {name!r}")
    return name


def export(spec, out_dir, folding=None, *, target_ii=None, name="top", progress=True):
    """Write Verilog, ``$readmemh`` ROM images, ``manifest.json`` and ``README.md``.

    Parameters
    ----------
    spec : NetworkSpec
        The network.
    out_dir : str or os.PathLike
        Created if needed; existing files of the same names are replaced.
    folding, target_ii
        As for :class:`~amaranth_nn.network.Network`.
    name : str
        Top module name of the Verilog (and its file, ``{name}.v``).
    progress : bool
        Print each file written.

    Returns
    -------
    dict
        The manifest, as written to ``manifest.json``.

    Raises
    ------
    TypeError, ValueError
        For a bad spec, folding or target II, or a name that is not a Verilog identifier.
    OSError
        If ``out_dir`` cannot be created (it is a file, for example).

    All of these are raised before the network is built or anything is written.
    """
    check_spec(spec)
    check_top_name(name)
    plan = plan_network(spec, folding, target_ii=target_ii)  # every check before any work
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    network = Network(spec, plan.folding)
    text = verilog.convert(network, name=name)

    def write(file_name, content):
        (out_dir / file_name).write_text(content)
        if progress:
            print(f"wrote {out_dir / file_name}")

    write(f"{name}.v", text)
    for rom in plan.roms:
        write(rom.file_name, format_hex(rom.words, rom.width))
    manifest = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "top": name,
        "verilog": f"{name}.v",
        "spec": {"name": spec.name, "input_size": spec.input_size,
                 "output_size": spec.output_size,
                 "input_format": spec.input_format.to_dict(),
                 "output_format": spec.output_format.to_dict()},
        "kinds": list(spec.kinds),
        "folding": [list(pair) for pair in network.folding],
        "folding_text": cli.describe_folding(spec, network.folding),
        "in_lanes": plan.in_lanes,
        "out_lanes": plan.out_lanes,
        "ii": network.ii,
        "latency": network.latency,
        "in_beats": network.in_beats,
        "out_beats": network.out_beats,
        "clock": "clk (rising edge)",
        "reset": "rst (synchronous, active high)",
        "ports": [{"name": port, "direction": direction, "width": width}
                  for port, direction, width in port_list(network)],
        "streams": {
            "i": f"{network.in_beats} beats per vector of {spec.input_size} elements (each "
                 f"sample flattened in stream order); lane k of beat b (bits "
                 f"[k*{spec.input_format.width}, (k+1)*{spec.input_format.width})) is element "
                 f"b*{plan.in_lanes} + k; transfer when valid and ready",
            "o": f"{network.out_beats} beats per vector of {spec.output_size} elements; lane "
                 f"k of beat b (bits [k*{spec.output_format.width}, "
                 f"(k+1)*{spec.output_format.width})) is element b*{plan.out_lanes} + "
                 f"k; lanes past the end are zero",
        },
        "hex_format": "$readmemh: one word per line, ceil(width/4) hex digits, word 0 first; "
                      "lane 0 in the low bits; lanes are two's complement unless the ROM's "
                      "'signed' is false",
        "roms": [_rom_entry(spec, rom) for rom in plan.roms],
    }
    write("manifest.json", json.dumps(manifest, indent=2) + "\n")
    write("README.md", _readme(manifest))
    return manifest


def _readme(manifest):
    ports = "\n".join(f"| `{p['name']}` | {p['direction']} | {p['width']} |"
                      for p in manifest["ports"])
    roms = "\n".join(
        f"| `{r['file']}` | `{r['hierarchy']}` | {r['depth']} | {r['width']} | "
        f"{r.get('lanes', 1)} x {r.get('lane_width', r['width'])} | {r.get('layout', '')} |"
        for r in manifest["roms"])
    return f"""# {manifest['spec']['name']}: exported by amaranth-nn

`{manifest['verilog']}` holds module `{manifest['top']}`, complete with its ROM contents.
Folding: {manifest['folding_text']}. II {manifest['ii']} cycles per vector, latency
{manifest['latency']} cycles (first input beat to last output beat).

Clock `clk` (rising edge), reset `rst` (synchronous, active high).

| port | direction | width |
|---|---|---|
{ports}

- Input stream `i`: {manifest['streams']['i']}.
- Output stream `o`: {manifest['streams']['o']}.

## ROM images

{manifest['hex_format']}.

| file | memory | depth | width | lanes x bits | layout |
|---|---|---|---|---|---|
{roms}
"""


def _main(argv):
    parser = cli.make_parser("amaranth_nn.export")
    cli.add_model_argument(parser)
    parser.add_argument("--out", metavar="DIR", required=True,
                        help="output directory, created if needed (files of the same names in "
                             "it are replaced)")
    add_folding_arguments(parser)
    parser.add_argument("--name", default="top",
                        action=cli.option_check(lambda name, option: check_top_name(name)),
                        help="top module name (default: top)")
    args = parser.parse_args(argv)
    spec, _ = cli.load_model(args.model)
    folding, target_ii = folding_from_args(args, spec)
    out = cli.output_dir(args.out, "--out")
    with cli.writing(out, "--out"):
        manifest = export(spec, out, folding, target_ii=target_ii, name=args.name)
    print(f"model    {spec!r}")
    print(f"folding  {manifest['folding_text']}")
    print(f"II       {manifest['ii']} cycles per vector, latency {manifest['latency']} cycles")
    print(f"wrote    {manifest['verilog']}, {len(manifest['roms'])} ROM images, manifest.json "
          f"and README.md to {out}")
    return 0


def main(argv=None):
    """The ``python -m amaranth_nn.export`` command line; returns the exit status."""
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
