"""How much of its block RAM a design's memories use, and how much packing could save.

    python bench/bench_rom_share.py                                  # 256-128-64-10, xc7a100t
    python bench/bench_rom_share.py --model digits --target-ii 64,256,1024 --device lfe5u-85f

For each target II: the network's memories that go to block RAM (weight and bias ROMs, input
buffers, line buffers, queues: ``amaranth_nn.estimate.block_memories``), the block RAMs they
take one by one (``block_rams``, the count the estimate and the tools agree on), and the two
lower bounds of any packing (``block_ram_bounds``): the bits read per cycle over a block's
widest read port, and the bits held over a block's size. A memory read every cycle cannot
share a block's port with another, so below the first bound no packing goes. The MLP of
``--sizes`` has random weights (``tests/specs.py``'s ``mlp_spec``, seed 1), as in
``bench_large_mlp.py``. Figures, never assertions; a second or two.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from specs import mlp_spec  # noqa: E402

from amaranth_nn.devices import DEVICES  # noqa: E402
from amaranth_nn.estimate import block_memories, block_ram_bounds, block_rams  # noqa: E402
from amaranth_nn.folding import plan_network  # noqa: E402
from amaranth_nn.models import MODELS  # noqa: E402


def _positive_list(text):
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of integers") from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive integers")
    return values


def _sizes(text):
    sizes = _positive_list(text)
    if len(sizes) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least two layer sizes")
    return sizes


def _folding(folding):
    """``4x8 2x4 -`` for the table: ``pe x simd``, a block's lanes, ``-`` for a flatten."""
    return " ".join("-" if entry is None else f"{entry[0]}x{entry[1]}"
                    if isinstance(entry, tuple) else str(entry) for entry in folding)


def rows(spec, target_iis, device):
    """One dict per target II: folding, memories, block RAMs and the two bounds."""
    for target in target_iis:
        plan = plan_network(spec, target_ii=target)
        memories = [memory for block in plan.layers for memory in block_memories(block, device)]
        used = sum(block_rams(depth, width, device) for depth, width in memories)
        by_reads, by_bits = block_ram_bounds(memories, device)
        yield {"target": target, "ii": plan.ii, "folding": plan.folding, "memories": memories,
               "used": used, "by_reads": by_reads, "by_bits": by_bits}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--sizes", type=_sizes, default=[256, 128, 64, 10],
                        help="MLP layer sizes (default 256,128,64,10)")
    source.add_argument("--model", choices=sorted(MODELS), help="an embedded model instead")
    parser.add_argument("--target-ii", type=_positive_list, default=[64, 256, 1024],
                        help="target IIs (default 64,256,1024)")
    parser.add_argument("--device", choices=sorted(DEVICES), default="xc7a100t")
    args = parser.parse_args(argv)
    spec = MODELS[args.model].spec() if args.model else mlp_spec(args.sizes, seed=1)
    device = DEVICES[args.device]
    unit = device.bram_name
    print(f"{spec!r} on the {args.device}, block RAM in {unit}")
    print()
    print(f"| target II | II | folding | memories in block RAM | kbit held | bits read per "
          f"cycle | {unit} used | bound by reads | bound by bits | bits used |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows(spec, args.target_ii, device):
        memories = row["memories"]
        held = sum(depth * width for depth, width in memories)
        share = f"{100 * row['by_bits'] / row['used']:.0f} %" if row["used"] else "-"
        print(f"| {row['target']} | {row['ii']} | {_folding(row['folding'])} | "
              f"{len(memories)} | {held / 1024:.0f} | {sum(w for _, w in memories)} | "
              f"{row['used']:g} | {row['by_reads']:.1f} | {row['by_bits']:.1f} | "
              f"{share} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
