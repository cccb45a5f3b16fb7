"""Simulation benchmark: Amaranth's Python simulator and Verilator, side by side, in one run.

For the embedded digits model at its default folding, prints a markdown table of:

* steady-state simulated cycles per second of each backend (source always valid, sink always
  ready; the simulation loop alone, without elaboration or compilation), and their ratio;
* the whole command ``python -m amaranth_nn.simulate --backend B`` on the 450 test images, wall
  time from start to exit, with the Verilator build time it reports: the first use on a machine
  (an empty cache: the Verilator runtime and the design), compile included (the runtime
  already compiled), and cached; and the same command with the Python simulator;
* ``python -m amaranth_nn.host --port sim --backend B``: samples per second through the
  full-system simulation (UART harness and network, divisor 8).

Then, for each conv model (``mnist1d``, ``digits-conv``) at its default folding, a second
table: steady-state cycles/s and samples/s of each backend; ``python -m amaranth_nn.simulate
--model M --backend verilator`` on the whole test split (compile included, then cached), and
the Python simulator's time for the same split at its measured rate; and ``host --port sim``
samples/s on the whole split with Verilator (a few samples with the Python simulator).

Usage::

    python bench/bench_sim.py [--vectors N] [--pysim-vectors N] [--host-samples N]
                              [--conv-models M,M | --conv-models none] [--conv-pysim-vectors N]

The Verilator builds of this script go to a temporary cache (``AMARANTH_NN_CACHE_DIR``), so
that the first-use and compile figures are real compilations; the user cache is left alone.
Every output is checked against the golden model. Figures, never assertions.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from amaranth_nn.models import MODELS, default_spec, default_test_set
from amaranth_nn.simulate import simulate

ROOT = Path(__file__).parents[1]


def command(argv, cache, *, what):
    """Run ``python -m ...argv`` with the cache ``cache``; ``(wall seconds, stdout)``."""
    env = {**os.environ, "AMARANTH_NN_CACHE_DIR": str(cache),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                          env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def steady_state(x, backend, vectors, spec=None):
    """The simulation of ``vectors`` test samples (repeated as needed) on ``backend``; exits
    unless every output equals the golden model and the II and latency the plan's."""
    spec = default_spec() if spec is None else spec
    inputs = np.resize(x, (vectors, x.shape[1]))
    result = simulate(spec, inputs, backend=backend, progress=False)
    network = result.network
    if not result.exact or (result.ii, result.latency) != (network.ii, network.latency):
        raise SystemExit(f"{backend}: outputs or timing differ from the golden model")
    return result


def samples_per_second(out):
    """Samples/s of a ``host`` run, from its sample count and time (more digits than it
    prints)."""
    samples = int(re.search(r"^samples +(\d+)$", out, re.M)[1])
    return samples / float(re.search(r"^time +([\d.]+) s", out, re.M)[1])


def conv_rows(name, cache, pysim_vectors, host_pysim):
    """The rows of one conv model: steady state, the whole split, the simulated board."""
    model = MODELS[name]
    spec = model.spec()
    x, _ = model.test_set()
    samples = len(x)
    rows = []
    # The whole split through the command line: a new design (compiled), then cached.
    simulate_argv = ["amaranth_nn.simulate", "--model", name, "--no-progress", "--backend",
                     "verilator"]
    runs = []
    for _ in range(2):
        seconds, out = command(simulate_argv, cache, what=f"simulate --model {name}")
        assert "mismatches 0" in out and f"vectors   {samples}" in out, out
        runs.append((seconds, re.search(r"backend   verilator \((.*); .*\)", out)[1]))
    verilator = steady_state(x, "verilator", 10 * samples, spec)
    pysim = steady_state(x, "pysim", pysim_vectors, spec)
    v_cps, p_cps = verilator.cycles / verilator.seconds, pysim.cycles / pysim.seconds
    v_sps = len(verilator.outputs) / verilator.seconds
    p_sps = len(pysim.outputs) / pysim.seconds
    net = verilator.network
    rows.append((f"{name}: steady-state cycles/s (II {net.ii}, latency {net.latency})",
                 f"{p_cps:,.0f} ({pysim.cycles:,} cycles)",
                 f"{v_cps:,.0f} ({verilator.cycles:,} cycles)", f"{v_cps / p_cps:,.0f}x"))
    rows.append((f"{name}: steady-state samples/s", f"{p_sps:.3g} ({pysim_vectors} samples)",
                 f"{v_sps:,.0f} ({10 * samples} samples)", ""))
    rows += [(f"{name}: {samples} test samples, `simulate --model {name}`, {label}",
              f"{samples / p_sps:.0f} s at the rate above" if first else "",
              f"{seconds:.1f} s ({build})", "")
             for first, label, (seconds, build) in zip(
                 (True, False), ("compile included", "cached"), runs, strict=True)]
    host_argv = ["amaranth_nn.host", "--port", "sim", "--model", name, "--backend"]
    _, v_out = command(host_argv + ["verilator", "--count", str(samples)], cache,
                       what=f"host --model {name}")
    _, p_out = command(host_argv + ["pysim", "--count", str(host_pysim)], cache,
                       what=f"host --model {name}")
    for out, count in ((v_out, samples), (p_out, host_pysim)):
        assert f"exact vs golden    {count}/{count}" in out, out
    accuracy = re.search(r"accuracy \(labels\)  ([\d.]+)", v_out)[1]
    rows.append((f"{name}: `host --port sim` samples/s (divisor 8)",
                 f"{samples_per_second(p_out):.3g} ({host_pysim} samples)",
                 f"{samples_per_second(v_out):.1f} ({samples} samples, accuracy {accuracy})",
                 ""))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python bench/bench_sim.py",
                                     description="Python simulator and Verilator, side by side.")
    parser.add_argument("--vectors", type=int, default=45000,
                        help="vectors of the Verilator steady-state run (default 45000)")
    parser.add_argument("--pysim-vectors", type=int, default=100,
                        help="vectors of the Python simulator's run (default 100)")
    parser.add_argument("--host-samples", type=int, default=450,
                        help="samples through host --port sim with Verilator (default 450; the "
                             "Python simulator gets 3)")
    parser.add_argument("--conv-models", default="mnist1d,digits-conv",
                        help="conv models of the second table, comma-separated, or none "
                             "(default mnist1d,digits-conv)")
    parser.add_argument("--conv-pysim-vectors", type=int, default=5,
                        help="samples of each conv model in the Python simulator (default 5)")
    parser.add_argument("--no-digits", action="store_true",
                        help="skip the digits table")
    args = parser.parse_args(argv)
    conv_models = [] if args.conv_models == "none" else args.conv_models.split(",")

    x, _ = default_test_set()
    cache = Path(tempfile.mkdtemp(prefix="bench-sim-cache-"))
    os.environ["AMARANTH_NN_CACHE_DIR"] = str(cache)
    rows = []
    try:
        print(f"cache {cache}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
              file=sys.stderr)
        if not args.no_digits:
            simulate_argv = ["amaranth_nn.simulate", "--no-progress", "--backend"]
            runs = []
            for step in ("first use", "new design", "cached"):
                seconds, out = command(simulate_argv + ["verilator"], cache, what="simulate")
                assert "mismatches 0" in out and "vectors   450" in out, out
                build = re.search(r"backend   verilator \((.*); (.*)\)", out)
                runs.append((seconds, build[1]))
                if step == "first use":
                    shutil.rmtree(build[2])  # the design, not the runtime
            slow, out = command(simulate_argv + ["pysim"], cache, what="simulate")
            assert "mismatches 0" in out and "vectors   450" in out, out
            labels = ("first use on a machine (empty cache: Verilator runtime + design)",
                      "compile included (runtime compiled)", "cached")
            rows += [(f"450 test images, `simulate`, {label}", f"{slow:.1f} s",
                      f"{seconds:.1f} s ({build})", target)
                     for label, (seconds, build), target in zip(
                         labels, runs, ("", "target < 20 s", "target < 3 s"), strict=True)]

            cached = steady_state(x, "verilator", args.vectors)
            pysim = steady_state(x, "pysim", args.pysim_vectors)
            v_cps, p_cps = cached.cycles / cached.seconds, pysim.cycles / pysim.seconds
            rows.insert(0, ("steady-state cycles/s, digits model, default folding",
                            f"{p_cps:,.0f} ({pysim.cycles:,} cycles)",
                            f"{v_cps:,.0f} ({cached.cycles:,} cycles)",
                            f"{v_cps / p_cps:,.0f}x (target >= 300x)"))

            host_argv = ["amaranth_nn.host", "--port", "sim", "--backend"]
            command(host_argv + ["verilator", "--count", "1"], cache, what="host (build)")
            _, v_out = command(host_argv + ["verilator", "--count", str(args.host_samples)], cache,
                               what="host")
            _, p_out = command(host_argv + ["pysim", "--count", "3"], cache, what="host")
            for out, count in ((v_out, args.host_samples), (p_out, 3)):
                assert f"exact vs golden    {count}/{count}" in out, out
            rows.append(("`host --port sim` samples/s (default model, divisor 8)",
                         f"{samples_per_second(p_out):.2f} (3 samples)",
                         f"{samples_per_second(v_out):.0f} ({args.host_samples} samples)",
                         "target >= 100"))
        conv = [row for name in conv_models
                for row in conv_rows(name, cache, args.conv_pysim_vectors, 2)]
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    for table in (rows, conv):
        if table:
            print("| figure | pysim | verilator | |")
            print("|---|---|---|---|")
            for row in table:
                print("| " + " | ".join(row) + " |")
            print()
    print(f"load average after the run {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
