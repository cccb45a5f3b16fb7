"""The network alone on the iCE40UP5K at the folding the iCEBreaker build picks: post-route Fmax
per placer seed, logic cells, DSP blocks, and where the critical path starts and ends.

The folding is the build's (:func:`amaranth_nn.estimate.fitting_target_ii` for the iCE40UP5K,
with the multipliers of the layers it moves to logic, :func:`~amaranth_nn.estimate.spill_to_logic`),
or ``--target-ii``. yosys ``synth_ice40 -dsp`` and nextpnr-ice40 (up5k, sg48) through
:func:`amaranth_nn.synth.ice40_fmax`, with a 50 MHz constraint, the network between registered
pins (no board harness), built with the iCE40 target (``arch="ice40"``) as the board build
builds it.

Usage::

    python bench/bench_ice40.py [--model digits] [--seeds 1,2,3] [--target-ii N]

Figures, never assertions.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amaranth_nn import cli, synth  # noqa: E402
from amaranth_nn.devices import DEVICES  # noqa: E402
from amaranth_nn.estimate import fitting_target_ii, spill_to_logic  # noqa: E402
from amaranth_nn.folding import plan_network  # noqa: E402
from amaranth_nn.network import Network  # noqa: E402

DEVICE = DEVICES["ice40up5k"]


def _seeds(text):
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of integers") from None
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return seeds


def _ends(path):
    """The first and last cell of a critical path, as module paths."""
    steps = path["path"]
    first, last = steps[0]["from"]["cell"], steps[-1]["to"]["cell"]
    return [name.split("_SB_")[0].split("$")[0] for name in (first, last)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="digits",
                        help="embedded model name or spec file (default digits)")
    parser.add_argument("--seeds", type=_seeds, default=[1, 2, 3], metavar="N,N,...",
                        help="placer seeds (default 1,2,3)")
    parser.add_argument("--target-ii", type=int, metavar="CYCLES",
                        help="this target II instead of the build's pick")
    args = parser.parse_args(argv)
    if args.target_ii is not None and args.target_ii < 1:
        parser.error(f"--target-ii: {args.target_ii} is not a positive integer")
    try:
        spec, _ = cli.load_model(args.model)
        if args.target_ii is None:
            picked = fitting_target_ii(spec, DEVICE)
            if picked is None:
                parser.error(f"--model: no folding of {spec.name} fits the {DEVICE.name}")
            target, check = picked
            plan = check.plan
        else:
            target = args.target_ii
            plan = spill_to_logic(plan_network(spec, target_ii=target), DEVICE)
    except (cli.CommandError, ValueError) as error:
        parser.error(str(error))
    folding = ", ".join(f"{pe}x{simd}" for pe, simd in plan.folding)
    logic = (f", layers {', '.join(map(str, plan.lut_multipliers))} in logic"
             if plan.lut_multipliers else "")
    print(f"{spec.name} on the {DEVICE.name}, network alone: target II {target}, folding "
          f"{folding}, II {plan.ii}, {plan.multipliers} multipliers{logic}")
    print("\n| seed | Fmax MHz | logic cells | SB_MAC16 | critical path |\n|---|---|---|---|---|")
    for seed in args.seeds:
        network = Network(spec, plan.folding, arch="ice40",
                          lut_multipliers=plan.lut_multipliers)
        result = synth.ice40_fmax(network, seed=seed, progress=False)
        start, end = _ends(result.critical_paths[0])
        print(f"| {seed} | {min(result.fmax.values()):.1f} | "
              f"{result.utilization['ICESTORM_LC'][0]} | {result.utilization['ICESTORM_DSP'][0]}"
              f" | {start} -> {end} |", flush=True)


if __name__ == "__main__":
    main()
