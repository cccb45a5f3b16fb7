"""The resource estimate against the tools: LUT, FF, DSP and block RAM, estimated from the plan
before synthesis (``amaranth_nn.estimate``) and counted after it.

For a set of networks (the embedded digits model over a sweep of target IIs, random MLPs of
4- to 16-bit formats, the MNIST-1D and 8x8 digits conv models at five foldings each, and a
single conv block and conv-and-pool pair of MNIST-1D) it prints, per FPGA family, a markdown
table of estimate / measured and the relative error:

* xc7: yosys ``synth_xilinx`` out of context (network alone);
* ice40: yosys ``synth_ice40 -dsp`` and nextpnr-ice40 on the iCE40UP5K (logic cells), network
  in the four-pin IOHarness, with the iCE40 target (``arch="ice40"``) as the board build;
* ecp5: yosys ``synth_ecp5`` and nextpnr-ecp5 on the LFE5U-85F (``arch="ecp5"``), out of
  context;
* boards (``--boards``): ``python -m amaranth_nn.build``'s own report, estimate with the harness.

``--fit`` also runs yosys without ``-flatten`` and fits the LUT and flip-flop models of every
part of a block (a dense layer or a conv block's dense engine, a window generator, a pooling
reducer, a scale-and-shift block; :func:`amaranth_nn.estimate.block_parts`) by least squares
with non-negative coefficients, and prints the coefficient tables to paste into
``amaranth_nn/estimate.py`` (``--no-conv``: the MLP set the dense coefficients come from).

Usage::

    python bench/bench_estimate.py [--families xc7,ice40,ecp5] [--boards] [--fit] [--quick]
    python bench/bench_estimate.py --fit --parts-only --families ice40   # coefficients only

Figures, never assertions. The tools run one after the other; a design whose estimate does not
fit the family's device is left out, and so is one whose tool fails or runs past
``--timeout`` (a line on stderr says so). The whole run takes about an hour on 2 cores
(``--quick``: the digits model at target II 512 and 64 only).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from amaranth_nn import Activation, Layer, NetworkSpec, QFormat, synth
from amaranth_nn.build import build
from amaranth_nn.devices import DEVICES
from amaranth_nn.estimate import DoesNotFit, block_parts, check_fit, estimate
from amaranth_nn.folding import choose_folding, plan_network
from amaranth_nn.models import MODELS, default_spec
from amaranth_nn.network import Network
from amaranth_nn.toolchain import ToolError

FAMILY_DEVICES = {"xc7": DEVICES["xc7a35t"], "ice40": DEVICES["ice40up5k"],
                  "ecp5": DEVICES["lfe5u-85f"]}

#: The target each family's designs are built with, as the board builds do.
FAMILY_ARCHES = {"xc7": "generic", "ice40": "ice40", "ecp5": "ecp5"}


def mlp(sizes, width, seed=1):
    """A random MLP: ReLU hidden layers, ``width``-bit formats everywhere."""
    rng = np.random.default_rng(seed)
    fmt = QFormat(width, width - 2)
    input_format, layers = fmt, []
    for index, (n, m) in enumerate(zip(sizes, sizes[1:], strict=False)):
        wf = QFormat(width, width - 1)
        weights = rng.integers(wf.min, wf.max + 1, size=(m, n))
        bias = rng.integers(-(1 << (width + 2)), 1 << (width + 2), size=m)
        out = QFormat(width, fmt.frac + wf.frac - max(1, (2 * width + n.bit_length() // 2)
                                                      - width))
        last = index == len(sizes) - 2
        layers.append(Layer(f"dense{index}", weights, bias, wf,
                            QFormat(min(62, 2 * width + 8), fmt.frac + wf.frac), out,
                            Activation.identity() if last else Activation.relu()))
        fmt = out
    return NetworkSpec(input_format, layers, name=f"mlp{'-'.join(map(str, sizes))}_w{width}")


def single_blocks():
    """Networks of one conv or pooling block (and the conv model's first blocks):
    ``[(label, spec, folding)]``."""
    mnist1d = MODELS["mnist1d"].spec()
    conv = NetworkSpec(mnist1d.input_format, mnist1d.layers[:1], name="mnist1d-conv0")
    pool = NetworkSpec(mnist1d.input_format, mnist1d.layers[:2], name="mnist1d-conv0-pool0")
    return [(f"{spec.name} ii{t}", spec, choose_folding(spec, t))
            for spec in (conv, pool) for t in (64, 640)]


def conv_designs(quick):
    """The conv models at a few foldings: ``[(label, spec, folding)]``."""
    rows = []
    for name, targets in (("mnist1d", (640,) if quick else (320, 640, 2560, 12800, 100000)),
                          ("digits-conv", (1024,) if quick else (512, 1024, 4096, 8192,
                                                                 100000))):
        spec = MODELS[name].spec()
        rows += [(f"{name} ii{t}", spec, choose_folding(spec, t)) for t in targets]
    return rows


def designs(quick, conv=True):
    """``[(label, spec, folding)]``: the MLPs, then (``conv``) the conv models and single conv
    and pooling blocks."""
    digits = default_spec()
    extra = conv_designs(quick) + ([] if quick else single_blocks()) if conv else []
    if quick:
        return [(f"digits ii{t}", digits, choose_folding(digits, t)) for t in (512, 64)] + extra
    rows = [(f"digits ii{t}", digits, choose_folding(digits, t))
            for t in (1024, 512, 256, 128, 64, 32, 16)]
    rows.append(("digits 4x8,2x4,1x3", digits, ((4, 8), (2, 4), (1, 3))))
    for sizes, width, target in (((32, 10), 8, 320), ((32, 10), 8, 40),
                                 ((16, 64, 32, 32, 5), 8, 64), ((16, 64, 32, 32, 5), 8, 256),
                                 ((64, 32, 16, 10), 4, 64), ((64, 32, 16, 10), 12, 64),
                                 ((64, 32, 16, 10), 16, 64)):
        spec = mlp(sizes, width)
        rows.append((f"{spec.name} ii{target}", spec, choose_folding(spec, target)))
    return rows + extra


def measure(family, spec, folding, timeout):
    """``{"LUT", "FF", "DSP", "BRAM"}`` of the network alone, counted by the tools."""
    if family == "xc7":
        used = synth.xilinx_utilization(Network(spec, folding), progress=False,
                                        timeout=timeout)
        return {"LUT": used.lut, "FF": used.ff, "DSP": used.dsp, "BRAM": used.bram36}
    if family == "ice40":
        pnr = synth.ice40_fmax(Network(spec, folding, arch="ice40"), progress=False,
                               timeout=timeout)
        return {"LUT": pnr.lut, "FF": None, "DSP": pnr.dsp, "BRAM": pnr.bram}
    running = FAMILY_DEVICES["ecp5"].running_accumulators
    pnr = synth.ecp5_fmax(Network(spec, folding, arch="ecp5", running_accumulators=running),
                          progress=False, timeout=timeout)
    return {"LUT": pnr.lut, "FF": pnr.ff, "DSP": pnr.dsp, "BRAM": pnr.bram}


def _cell(guess, real):
    if real is None:
        return f"{guess:g} / -"
    error = "" if not real else f" ({100 * (guess - real) / real:+.0f} %)"
    return f"{guess:g} / {real:g}{error}"


def table(title, rows):
    print(f"\n### {title}\n")
    print("| design | pe x simd | LUT est / real | FF est / real | DSP est / real | "
          "BRAM est / real | s |")
    print("|---|---|---|---|---|---|---|")
    for label, folding, guess, real, seconds in rows:
        fold = " ".join(f"{pe}x{simd}" for pe, simd in folding)
        cells = " | ".join(_cell(guess[k], real[k]) for k in ("LUT", "FF", "DSP", "BRAM"))
        print(f"| {label} | {fold} | {cells} | {seconds:.0f} |", flush=True)


# --- The fit: per-layer counts from hierarchical yosys runs ------------------------------------

#: Where each part of a block sits under its ``layer{i}`` module.
_PART_MODULES = {"dense": "dense", "window": "window", "reducer": "reducer", "scale": ""}


def per_part(family, spec, folding):
    """``[(model, features, luts, ffs)]`` of every part of every block (a dense layer, a conv
    block's window generator and dense engine, a pooling block's generator and reducer, a
    scale-and-shift block), from one hierarchical yosys run
    (:func:`amaranth_nn.synth.module_resources`)."""
    network = Network(spec, folding, arch=FAMILY_ARCHES[family],
                      running_accumulators=FAMILY_DEVICES[family].running_accumulators)
    modules = synth.module_resources(network, family=family, progress=False)
    return parts_of(family, network.plan, modules)


def parts_of(family, plan, modules):
    """:func:`per_part`'s rows from the per-module resources of ``plan``'s network."""
    device = FAMILY_DEVICES[family]
    rows = []
    for block in plan.layers:
        parts = block_parts(block, device)
        for model, features in parts:
            name = f"top.layer{block.index}"
            if len(parts) > 1:
                name += "." + _PART_MODULES[model]
            under = [counts for module, counts in modules.items()
                     if module == name or module.startswith(name + ".")]
            rows.append((model, features, sum(c["LUT"] for c in under),
                         sum(c["FF"] for c in under)))
    return rows


def fit(family, rows):
    """Non-negative least squares of LUTs and FFs over the features, per part model, of the
    relative errors (each row divided by its count, so that the small parts of the most
    folded designs weigh as much as the large ones); prints the tables. The dense model's
    xc7 and ECP5 coefficients in :mod:`amaranth_nn.estimate` are those of the MLP fit
    (``--no-conv``); on iCE40, those of this fit."""
    try:
        from scipy.optimize import nnls
    except ImportError:
        sys.exit("--fit needs scipy (pip install scipy)")
    for model in sorted({row[0] for row in rows}):
        chosen = [row for row in rows if row[0] == model]
        names = list(chosen[0][1])
        x = np.array([[features[name] for name in names] for _, features, _, _ in chosen],
                     float)
        for label, column in (("LUT", 2), ("FF", 3)):
            y = np.array([row[column] for row in chosen], float)
            scale = np.maximum(y, 1)
            coefficients, _ = nnls(x / scale[:, None], y / scale)
            errors = (x @ coefficients - y) / np.maximum(y, 1)
            table = {name: float(f"{value:.3g}")
                     for name, value in zip(names, coefficients, strict=True) if value > 1e-6}
            print(f'    "{family}" {model} {label}: {table},  # {len(chosen)} parts, mean '
                  f"|error| {np.abs(errors).mean():.1%}, largest {errors.min():+.0%} / "
                  f"{errors.max():+.0%}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default="xc7,ice40,ecp5",
                        help="comma list of xc7, ice40, ecp5 (default all)")
    parser.add_argument("--boards", action="store_true",
                        help="also board builds (arty_a7, icebreaker, ulx3s), with the harness")
    parser.add_argument("--fit", action="store_true", help="refit the LUT and FF models")
    parser.add_argument("--parts-only", action="store_true",
                        help="with --fit: only the hierarchical yosys runs and the fit, no "
                             "place and route and no network table (minutes, not an hour)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds a tool may run before the design is left out "
                             "(default 600)")
    parser.add_argument("--quick", action="store_true",
                        help="the digits model at target II 512 and 64, the conv models at "
                             "their default foldings")
    parser.add_argument("--no-conv", action="store_true",
                        help="the MLPs only (the set the dense coefficients were fitted to)")
    args = parser.parse_args(argv)
    if args.parts_only and not args.fit:
        parser.error("--parts-only goes with --fit")
    families = [name.strip() for name in args.families.split(",")]
    for family in families:
        if family not in FAMILY_DEVICES:
            parser.error(f"--families: unknown family {family!r}")
    rows = designs(args.quick, conv=not args.no_conv)
    for family in families:
        device = FAMILY_DEVICES[family]
        results, layers = [], []
        for label, spec, folding in rows:
            plan = plan_network(spec, folding,
                                running_accumulators=device.running_accumulators)
            over = check_fit(plan, device, harness=False).over
            # Place and route would only fail; a refit's yosys runs need only the DSP blocks
            # and block RAMs (counted exactly), not the estimate it refits.
            if over and not (args.parts_only and not {"DSP", "BRAM"} & set(over)):
                continue
            start = time.monotonic()
            try:
                if not args.parts_only:
                    real = measure(family, spec, folding, args.timeout)
                    results.append((label, folding, estimate(plan, device).as_dict(), real,
                                    time.monotonic() - start))
                if args.fit:
                    layers += per_part(family, spec, folding)
            except ToolError as error:
                print(f"{family}, {label}: {str(error).splitlines()[0]}", file=sys.stderr)
                continue
        if not args.parts_only:
            table(f"{family}: {device.name}, network alone", results)
        if args.fit and layers:
            print(f"\nFitted coefficients ({family}):")
            fit(family, layers)
    if args.boards:
        results = []
        digits = default_spec()
        builds = [(board, digits, target) for board, target in (
            ("arty_a7", 64), ("arty_a7", 256), ("icebreaker", 512), ("icebreaker", 1024),
            ("ulx3s", 64))]
        if not args.no_conv:
            # The conv models at the folding each board picks (target None).
            builds += [(board, MODELS[name].spec(), None) for name in ("mnist1d", "digits-conv")
                       for board in ("arty_a7", "ulx3s", "icebreaker")]
        for board, spec, target in builds:
            start = time.monotonic()
            with tempfile.TemporaryDirectory() as out:
                try:
                    report = build(board, spec, target_ii=target, out=Path(out) / board)
                except (ToolError, DoesNotFit) as error:
                    print(f"{board}, {spec.name}: {str(error).splitlines()[0]}",
                          file=sys.stderr)
                    continue
            used = {kind: entry["used"] for kind, entry in report["utilization"].items()}
            guess = {kind: entry["estimate"] for kind, entry in report["utilization"].items()}
            results.append((f"{board} {spec.name} ii{report['ii_cycles']}", report["folding"],
                            guess, used, time.monotonic() - start))
        table("board builds (network and harness)", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
