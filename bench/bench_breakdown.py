"""Where the resources go: LUT, FF, DSP and block RAM per layer and per block.

    python bench/bench_breakdown.py                           # digits model, default folding
    python bench/bench_breakdown.py --model mnist1d --target-ii 100000 --families ice40
    python bench/bench_breakdown.py --model mnist1d --harness --families ice40
    python bench/bench_breakdown.py --model mnist1d --target-ii 100000 --families ice40 --arch ice40

For each family (``xc7``: yosys ``synth_xilinx``; ``ecp5``: ``synth_ecp5``; ``ice40``:
``synth_ice40 -dsp``) it synthesizes the network (or, with ``--harness``, the board harness
around it) keeping the hierarchy (``amaranth_nn.synth.module_resources``) and prints one
markdown table (``--arch``: the target the network is elaborated with, as a board build of
that family does; by default the generic one): a row per layer, per block of a layer
(``window``, ``dense``, ``reducer``, ...) and per part of a block (``buffer``: the double
buffer's control; ``queue``: the output queue), each with the resources of everything under
it, and an ``(own)`` row for the logic of a module outside its parts. Synthesis keeps module
boundaries, so the total can be a little above the flattened design's (the build's and
``bench_gateware.py``'s figures).
"""

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from amaranth_nn import cli, synth  # noqa: E402
from amaranth_nn.folding import add_folding_arguments, folding_from_args, plan_network  # noqa: E402
from amaranth_nn.network import Network  # noqa: E402
from amaranth_nn.targets import ARCHES  # noqa: E402
from boards.harness import Harness  # noqa: E402

FAMILIES = ("xc7", "ecp5", "ice40")
COLUMNS = ("LUT", "FF", "DSP", "BRAM", "carry")
UNITS = {"xc7": "LUT6", "ecp5": "LUT4", "ice40": "LUT4"}


def subtree_totals(modules):
    """``{path: Counter}``: the resources of every module and of all modules under it."""
    totals = defaultdict(Counter)
    for path, counts in modules.items():
        parts = path.split(".")
        for k in range(1, len(parts) + 1):
            totals[".".join(parts[:k])].update(counts)
    return totals


def _order(name):
    """Natural order: ``layer2`` before ``layer10``."""
    stem = name.rstrip("0123456789")
    return (stem, int(name[len(stem):]) if name != stem else -1)


def tree_rows(modules, root, depth):
    """``(label, counts)`` rows of the tree under ``root``, ``depth`` levels deep."""
    totals = subtree_totals(modules)
    rows = []

    def visit(path, level):
        children = sorted({p[len(path) + 1:].split(".")[0] for p in totals
                           if p.startswith(path + ".")}, key=_order)
        label = "· " * level + (path.rsplit(".", 1)[-1] if level else "total")
        rows.append((label, totals[path]))
        if level >= depth or not children:
            return
        own = Counter(modules.get(path, {}))
        if +own:
            rows.append(("· " * (level + 1) + "(own)", own))
        for child in children:
            visit(f"{path}.{child}", level + 1)

    visit(root, 0)
    return rows


def table(family, rows):
    head = f"| {family} block | " + " | ".join(
        UNITS[family] if c == "LUT" else c for c in COLUMNS) + " |"
    lines = [head, "|---|" + "---:|" * len(COLUMNS)]
    for label, counts in rows:
        cells = " | ".join(f"{counts.get(c, 0):g}" for c in COLUMNS)
        lines.append(f"| {label} | {cells} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="digits",
                        help="embedded model name or spec file (default digits)")
    add_folding_arguments(parser)
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help="comma list of xc7, ecp5, ice40 (default all)")
    parser.add_argument("--harness", action="store_true",
                        help="the board harness around the network (UART, protocol, argmax)")
    parser.add_argument("--lut-multipliers", metavar="L1,L2,...", default="",
                        help="layers (indices) whose multipliers are built from logic")
    parser.add_argument("--arch", choices=ARCHES, default="auto",
                        help="the network's target (default auto, which is generic without a "
                             "platform; ecp5 and ice40 as the board builds of those families)")
    parser.add_argument("--depth", type=int, default=3,
                        help="levels below the network: layer, block, part (default 3)")
    parser.add_argument("--out", metavar="FILE.md", help="also write the tables to this file")
    args = parser.parse_args(argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    for family in families:
        if family not in FAMILIES:
            parser.error(f"--families: unknown family {family!r}; one of {', '.join(FAMILIES)}")
    try:
        spec, _ = cli.load_model(args.model)
        folding, target_ii = folding_from_args(args, spec)
        texts = [text.strip() for text in args.lut_multipliers.split(",") if text.strip()]
        bad = [text for text in texts if not text.isdigit()]
        if bad:
            parser.error(f"--lut-multipliers: {bad[0]!r} is not a layer index")
        luts = [int(text) for text in texts]
        plan = plan_network(spec, folding, target_ii=target_ii, lut_multipliers=luts)
    except (cli.CommandError, ValueError) as error:
        parser.error(f"--lut-multipliers: {error}" if "Lut_multipliers" in str(error)
                     else str(error))
    luts = plan.lut_multipliers
    design = (Harness(spec, folding=plan.folding, lut_multipliers=luts, divisor=104,
                      arch=args.arch)
              if args.harness else Network(spec, plan.folding, lut_multipliers=luts,
                                           arch=args.arch))
    root = "top.network" if args.harness else "top"
    entries = ", ".join("-" if f is None else f"{f[0]}x{f[1]}" for f in plan.folding)
    logic = f" (layers {', '.join(map(str, luts))} in logic)" if luts else ""
    title = (f"{spec.name}: folding {entries} (pe x simd), II {plan.ii}, {plan.multipliers} "
             f"multipliers{logic}, "
             + ("with the board harness" if args.harness else "network alone"))
    print(title)
    tables = [title]
    for family in families:
        modules = synth.module_resources(design, family=family, progress=True)
        rows = tree_rows(modules, root, args.depth)
        if args.harness:
            harness_rows = [row for row in tree_rows(modules, "top", 1) if "network" not in row[0]]
            rows = harness_rows + rows[1:]
        text = table(family, rows)
        print("\n" + text, flush=True)
        tables.append(text)
    if args.out:
        Path(args.out).write_text("\n\n".join(tables) + "\n")


if __name__ == "__main__":
    main()
