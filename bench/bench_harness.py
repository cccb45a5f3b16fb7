"""The board harness's own cost on the iCE40: LUT4, flip-flops, SB_CARRY and Fmax.

The harness (:class:`boards.harness.Harness`) around a 40 -> 10 MLP with MNIST-1D's input and
output formats (Q(8, 4) in, Q(8, 1) out: one byte per element), most folded, with the
iCEBreaker's timer values at 12 MHz (divisor 104, timeout 100 ms, heartbeat 0.5 s, stretch
50 ms). yosys ``synth_ice40 -noflatten -dsp``; the harness's own logic is every module but the
network's. With ``--fmax``, also the post-route Fmax of the whole design
(:func:`amaranth_nn.synth.ice40_fmax`, up5k, placer seed 1) and its critical path's source
lines (the tiny network is far from critical).

Usage::

    python bench/bench_harness.py [--fmax]

Figures, never assertions.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from amaranth.back import rtlil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from specs import mlp_spec  # noqa: E402

from amaranth_nn import QFormat  # noqa: E402
from amaranth_nn.synth import ice40_fmax  # noqa: E402
from amaranth_nn.toolchain import find_tool  # noqa: E402
from boards.harness import Harness  # noqa: E402

CLOCK = 12_000_000


def harness():
    spec = mlp_spec([40, 10], seed=1, input_format=QFormat(8, 4), last_format=QFormat(8, 1))
    return Harness(spec, target_ii=100000, divisor=104, timeout=CLOCK // 10,
                   heartbeat=CLOCK // 2, stretch=CLOCK // 20)


def cells(workdir):
    """``{module: Counter of cell kinds}`` of the harness, from yosys."""
    workdir = Path(workdir)
    (workdir / "d.il").write_text(rtlil.convert(harness(), name="top"))
    # The rename works around a yosys assertion on bracketed names under -noflatten.
    (workdir / "s.ys").write_text("read_rtlil d.il\nrename -hide w:*\\[* c:*\\[*\n"
                                  "synth_ice40 -top top -noflatten -dsp\n"
                                  "tee -q -o stat.json stat -json\n")
    subprocess.run(find_tool("yosys") + ["-q", "-l", "y.log", "s.ys"], cwd=workdir, check=True)
    stat = json.loads((workdir / "stat.json").read_text())
    result = {}
    for name, module in stat["modules"].items():
        counts = Counter()
        for kind, count in module.get("num_cells_by_type", {}).items():
            if kind == "SB_LUT4":
                counts["LUT4"] += count
            elif kind.startswith("SB_DFF"):
                counts["FF"] += count
            elif kind == "SB_CARRY":
                counts["CARRY"] += count
            elif "SB_RAM" in kind:
                counts["RAM"] += count
        result[name.lstrip("\\")] = counts
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fmax", action="store_true", help="also place and route (nextpnr)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        modules = cells(workdir)
    total = Counter()
    print("| module | LUT4 | FF | SB_CARRY | RAM |\n|---|---|---|---|---|")
    for name, counts in sorted(modules.items()):
        if name.split(".")[:2] == ["top", "network"]:
            continue
        total += counts
        print(f"| {name} | {counts['LUT4']} | {counts['FF']} | {counts['CARRY']} | "
              f"{counts['RAM']} |")
    print(f"| harness | {total['LUT4']} | {total['FF']} | {total['CARRY']} | {total['RAM']} |")
    if args.fmax:
        result = ice40_fmax(harness(), progress=False)
        print(f"Fmax {min(result.fmax.values()):.1f} MHz, "
              f"{result.utilization['ICESTORM_LC'][0]} logic cells with the tiny network")
        lines = set()
        for step in result.critical_paths[0]["path"]:
            lines.update(s.rsplit("/", 1)[-1] for s in step.get("sources", ())
                         if "/boards/" in s)
        print(f"critical path through {', '.join(sorted(lines))}" if lines else
              "critical path outside the harness (in the network)")


if __name__ == "__main__":
    main()
