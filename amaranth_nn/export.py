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
  ``layer{L}_weights_pe{P}.hex`` is PE ``P``'s weight ROM of layer ``L``: word ``g*B + b``
  (``B = ceil(N/simd)``) holds ``W[g*pe + P, b*simd + k]`` in lane ``k``, lane 0 in the low
  bits, each lane a two's complement integer of the ROM's lane width (the narrowest width that
  holds the layer's weights, which may be less than the weight format's width), zero where
  the indices pass the matrix; unsigned instead when the layer has no negative weight
  (``"signed"`` in the manifest). ``layer{L}_bias.hex`` holds in word ``g`` and lane ``p`` the
  bias of neuron ``g*pe + p`` plus the rounding constant ``2**(s-1)`` (``s`` the layer's
  requantization shift, no constant when ``s <= 0``), in the accumulator width.
* ``manifest.json``: ports, folding, II and latency, and every ROM's file, depth, width, lanes
  and lane width (machine-readable form of the above), and ``README.md`` saying the same for
  people.

The hex files are read back from the elaborated design's ``Memory`` initial values, so they are
exactly what the hardware holds.
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Fragment
from amaranth.hdl._mem import MemoryInstance
from amaranth.lib import wiring

from . import cli
from .folding import add_folding_arguments, folding_from_args, resolve_folding
from .network import Network
from .spec import NetworkSpec

__all__ = ["RomImage", "EXPORT_FORMAT", "EXPORT_VERSION", "rom_images", "format_hex",
           "parse_hex", "unpack_lanes", "port_list", "check_top_name", "export", "main"]

EXPORT_FORMAT = "amaranth-nn-export"
EXPORT_VERSION = 1


@dataclass(frozen=True)
class RomImage:
    """The contents of one ROM of an elaborated network.

    Members
    -------
    path : tuple of str
        Hierarchy path of the memory, e.g. ``("layer0", "weights3")``.
    layer : int or None
        Index of the layer it belongs to.
    kind : str
        ``"weights"``, ``"bias"`` or ``"rom"`` (any other read-only memory).
    pe : int or None
        The PE of a weight ROM.
    width : int
        Bits per word.
    words : tuple of int
        Every word, as a non-negative integer, word 0 first.
    """

    path: tuple
    layer: object
    kind: str
    pe: object
    width: int
    words: tuple

    @property
    def depth(self):
        return len(self.words)

    @property
    def file_name(self):
        """``layer{L}_weights_pe{P}.hex``, ``layer{L}_bias.hex``, or the path joined by ``_``."""
        if self.kind == "weights":
            return f"layer{self.layer}_weights_pe{self.pe}.hex"
        if self.kind == "bias":
            return f"layer{self.layer}_bias.hex"
        return "_".join(self.path) + ".hex"


def _walk(fragment, path):
    for sub, name, _src_loc in fragment.subfragments:
        sub_path = path + (str(name) if name is not None else "unnamed",)
        if isinstance(sub, MemoryInstance):
            yield sub_path, sub
        else:
            yield from _walk(sub, sub_path)


def _role(path):
    layer = kind = pe = None
    if path and path[0].startswith("layer") and path[0][5:].isdigit():
        layer = int(path[0][5:])
        leaf = path[-1]
        if len(path) == 2 and leaf.startswith("weights") and leaf[7:].isdigit():
            kind, pe = "weights", int(leaf[7:])
        elif len(path) == 2 and leaf == "biases":
            kind = "bias"
    return layer, kind or "rom", pe


def rom_images(network):
    """Every read-only memory of ``network``, with its contents, from the elaborated design.

    Parameters
    ----------
    network : Network
        Elaborated here (with no platform); the component itself is not changed.

    Returns
    -------
    list of RomImage
        Weight ROMs by layer and PE, then bias ROMs, in hierarchy order. Memories with a write
        port (buffers, FIFOs) are not ROMs and are left out.

    Raises
    ------
    TypeError
        If ``network`` is not a :class:`~amaranth_nn.network.Network`.
    """
    if not isinstance(network, Network):
        raise TypeError(f"Network must be a Network, not {network!r}")
    fragment = Fragment.get(network, None)
    images = []
    for path, memory in _walk(fragment, ()):
        # MemoryInstance is the fragment a lib.memory.Memory elaborates to; its data and ports
        # are private in Amaranth 0.5 (pinned <0.6 in pyproject.toml).
        if memory._write_ports:
            continue
        data = memory._data
        width = data.shape.width
        mask = (1 << width) - 1
        words = tuple(int(value) & mask for value in data.init)
        words += (0,) * (data.depth - len(words))
        layer, kind, pe = _role(path)
        images.append(RomImage(path, layer, kind, pe, width, words))
    return images


def format_hex(words, width):
    """``$readmemh`` text: one word per line, ``ceil(width/4)`` hex digits, zero-padded."""
    digits = max(1, -(-width // 4))
    return "".join(f"{word:0{digits}x}\n" for word in words)


def parse_hex(text):
    """Words of ``$readmemh`` text as written by :func:`format_hex` (``//`` comments allowed).

    Raises
    ------
    ValueError
        On an address marker (``@``) or anything that is not a hex word.
    """
    words = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("//", 1)[0].strip()
        for token in line.split():
            if token.startswith("@"):
                raise ValueError(f"line {number}: address markers are not supported")
            try:
                words.append(int(token.replace("_", ""), 16))
            except ValueError:
                raise ValueError(f"line {number}: {token!r} is not a hex word") from None
    return words


def unpack_lanes(word, lanes, lane_width, *, signed=True):
    """The ``lanes`` lanes of ``word``, lane 0 from the low bits; two's complement when
    ``signed``."""
    mask = (1 << lane_width) - 1
    values = []
    for k in range(lanes):
        value = (word >> (k * lane_width)) & mask
        if signed and value >> (lane_width - 1):
            value -= 1 << lane_width
        values.append(value)
    return values


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


def _rom_entry(network, image):
    entry = {"file": image.file_name, "hierarchy": ".".join(image.path), "kind": image.kind,
             "layer": image.layer, "depth": image.depth, "width": image.width}
    if image.kind == "weights":
        layer = network.layers[image.layer]
        # The lanes are unsigned when the layer has no negative weight (dense.py sizes the
        # weight operand from the weights' range, and lane bits past the value are zero).
        signed = bool(network.spec.layers[image.layer].weights.min() < 0)
        entry.update(pe=image.pe, lanes=layer.simd, lane_width=image.width // layer.simd,
                     signed=signed,
                     layout=f"word g*{layer.in_beats} + b, lane k = W[g*{layer.pe} + "
                            f"{image.pe}, b*{layer.simd} + k]; "
                            f"{'signed' if signed else 'unsigned'}; zero past the matrix")
    elif image.kind == "bias":
        layer = network.layers[image.layer]
        shift = network.spec.layers[image.layer].shift
        rounding = 1 << (shift - 1) if shift > 0 else 0
        entry.update(lanes=layer.pe, lane_width=image.width // layer.pe, signed=True,
                     rounding=rounding,
                     layout=f"word g, lane p = bias[g*{layer.pe} + p] + {rounding}; signed; "
                            f"zero past the last neuron")
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
    if not isinstance(spec, NetworkSpec):
        raise TypeError(f"Spec must be a NetworkSpec, not {spec!r}")
    check_top_name(name)
    folding = resolve_folding(spec, folding, target_ii)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    network = Network(spec, folding)
    images = rom_images(network)
    text = verilog.convert(network, name=name)

    def write(file_name, content):
        (out_dir / file_name).write_text(content)
        if progress:
            print(f"wrote {out_dir / file_name}")

    write(f"{name}.v", text)
    for image in images:
        write(image.file_name, format_hex(image.words, image.width))
    manifest = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "top": name,
        "verilog": f"{name}.v",
        "spec": {"name": spec.name, "input_size": spec.input_size,
                 "output_size": spec.output_size,
                 "input_format": spec.input_format.to_dict(),
                 "output_format": spec.output_format.to_dict()},
        "folding": [list(pair) for pair in network.folding],
        "ii": network.ii,
        "latency": network.latency,
        "in_beats": network.in_beats,
        "out_beats": network.out_beats,
        "clock": "clk (rising edge)",
        "reset": "rst (synchronous, active high)",
        "ports": [{"name": port, "direction": direction, "width": width}
                  for port, direction, width in port_list(network)],
        "streams": {
            "i": f"{network.in_beats} beats per vector of {spec.input_size} elements; lane k "
                 f"of beat b (bits [k*{spec.input_format.width}, "
                 f"(k+1)*{spec.input_format.width})) is element b*{network.folding[0][1]} + k; "
                 f"transfer when valid and ready",
            "o": f"{network.out_beats} beats per vector of {spec.output_size} elements; lane "
                 f"k of beat b (bits [k*{spec.output_format.width}, "
                 f"(k+1)*{spec.output_format.width})) is element b*{network.folding[-1][0]} + "
                 f"k; lanes past the end are zero",
        },
        "hex_format": "$readmemh: one word per line, ceil(width/4) hex digits, word 0 first; "
                      "lane 0 in the low bits; lanes are two's complement unless the ROM's "
                      "'signed' is false",
        "roms": [_rom_entry(network, image) for image in images],
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
    folding = ", ".join(f"{pe}x{simd}" for pe, simd in manifest["folding"])
    return f"""# {manifest['spec']['name']}: exported by amaranth-nn

`{manifest['verilog']}` holds module `{manifest['top']}`, complete with its ROM contents.
Folding (pe x simd per layer): {folding}. II {manifest['ii']} cycles per vector, latency
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
    folding = ", ".join(f"{pe}x{simd}" for pe, simd in manifest["folding"])
    print(f"model    {spec!r}")
    print(f"folding  {folding} (pe x simd per layer)")
    print(f"II       {manifest['ii']} cycles per vector, latency {manifest['latency']} cycles")
    print(f"wrote    {manifest['verilog']}, {len(manifest['roms'])} ROM images, manifest.json "
          f"and README.md to {out}")
    return 0


def main(argv=None):
    """The ``python -m amaranth_nn.export`` command line; returns the exit status."""
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
