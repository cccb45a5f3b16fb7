"""Timing benchmark: post-route ECP5-85F Fmax of a network or of one of its blocks, per seed.

Builds :class:`~amaranth_nn.network.Network` (default folding, ``arch="ecp5"``, running
accumulators as a ULX3S build takes them; ``--restarting`` for the other kind) for a model, or
one block of it, and runs :func:`amaranth_nn.synth.ecp5_fmax` (yowasp yosys + nextpnr-ecp5,
LFE5U-85F CABGA381, speed 6, constrained at 200 MHz) once per placer seed. Prints each run's
Fmax and resources and the slowest run's critical path.

Usage::

    python bench/bench_conv_timing.py [--model mnist1d] [--block network] [--seeds 1,2,3]
                                      [--freq 200] [--steps 14] [--restarting]

``--block``: ``network`` (the default), ``layerN`` (layer ``N``'s block: ``ConvLayer``,
``Pool``, ``DenseLayer``, ...), ``windowN`` (the ``SlidingWindow`` of conv or pool layer
``N``), ``reducerN`` (the ``PoolReducer`` of pool layer ``N``) or ``denseN`` (the dense engine
of conv layer ``N``). Figures, never assertions.
"""

import argparse
import re
import sys
from pathlib import Path

from amaranth_nn import NetworkSpec, synth
from amaranth_nn.dense import DenseLayer
from amaranth_nn.devices import DEVICES
from amaranth_nn.folding import default_folding, plan_network
from amaranth_nn.network import COMPONENTS, Network
from amaranth_nn.pool import PoolReducer
from amaranth_nn.sliding import SlidingWindow

ARCH = "ecp5"
MODELS = Path(__file__).resolve().parent.parent / "amaranth_nn" / "models"


def block_of(spec, name, running):
    """``(label, component)``: the component ``name`` names in the network of ``spec``, with
    running accumulators or not."""
    if name == "network":
        return f"Network ({spec.name})", Network(spec, arch=ARCH, running_accumulators=running)
    match = re.fullmatch(r"(layer|window|reducer|dense)(\d+)", name)
    if match is None:
        raise SystemExit(f"Unknown block {name!r}")
    what, index = match.group(1), int(match.group(2))
    plans = {plan.index: plan
             for plan in plan_network(spec, running_accumulators=running).layers}
    if index not in plans:
        raise SystemExit(f"Layer {index} has no block (blocks: {sorted(plans)})")
    plan = plans[index]
    kind = spec.layers[index].kind
    if what == "layer":
        return f"layer {index} ({kind})", COMPONENTS[kind](plan, ARCH)
    if what == "window":
        return f"SlidingWindow of layer {index} ({kind})", SlidingWindow(plan.window, arch=ARCH)
    if what == "reducer":
        return f"PoolReducer of layer {index}", PoolReducer(plan.reducer, arch=ARCH)
    return f"DenseLayer of layer {index}", DenseLayer(plan.dense, arch=ARCH)


def main(argv=None):
    """Run the benchmark; see the module docs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist1d",
                        help="an embedded model name or a spec file (default mnist1d)")
    parser.add_argument("--block", default="network")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--freq", type=float, default=200.0)
    parser.add_argument("--steps", type=int, default=14,
                        help="critical path steps shown (default 14)")
    parser.add_argument("--restarting", action="store_true",
                        help="accumulators that restart at each group (default: running, as "
                             "a ULX3S build takes them)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    running = DEVICES["lfe5u-85f"].running_accumulators and not args.restarting
    path = Path(args.model)
    if not path.exists():
        path = MODELS / f"{args.model}.json"
    spec = NetworkSpec.load(path)
    results = []
    for n, seed in enumerate(int(s) for s in args.seeds.split(",")):
        label, design = block_of(spec, args.block, running)
        if n == 0:
            print(f"{label}, folding {default_folding(spec)}, ECP5-85F at {args.freq:g} MHz, "
                  f"{'running' if running else 'restarting'} accumulators")
        result = synth.ecp5_fmax(design, seed=seed, freq_mhz=args.freq,
                                 progress=args.verbose)
        results.append((seed, result))
        print(f"seed {seed}: {result.summary()}", flush=True)
    fmaxes = [r.fmax_mhz for _, r in results]
    print(f"Fmax min {min(fmaxes):.1f}, max {max(fmaxes):.1f} MHz")
    seed, slowest = min(results, key=lambda pair: pair[1].fmax_mhz)
    print(f"critical path (seed {seed}):")
    print(slowest.describe_critical_path(max_steps=args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
