"""Run integer inputs through a simulated network and compare with the golden model.

Python::

    from amaranth_nn.simulate import simulate
    result = simulate(spec, x)            # x: (batch, input_size) integers of the input format
    assert not result.mismatches
    print(result.latency, result.ii)
    result = simulate(spec, x, backend="verilator")  # the same, compiled by Verilator

Command line::

    python -m amaranth_nn.simulate [--model NAME|SPEC] [--inputs X.npy|X.npz] [--out Y.npy]
                                   [--vcd F] [--limit N] [--stalls P_VALID P_READY]
                                   [--backend auto|pysim|verilator]

Without ``--inputs`` it runs an embedded model (by default ``digits``) on its test images, and
prints the accuracy where the inputs come with labels.

:func:`run_streams` is the one stream driver: it feeds packed input beats to any component with
``i``/``o`` streams, optionally with random (seeded) valid and ready stalls, and collects the
output beats with the cycle of every transfer. The tests drive the dense layers, the width
converters and the networks through it. It runs on two backends (:mod:`amaranth_nn.verilated`):
Amaranth's Python simulator (``"pysim"``), or the design compiled by Verilator with a C++
testbench (``"verilator"``) that does cycle for cycle what the Python testbenches do, with the
same stall pattern (:func:`stall_pattern`, the one rule for it): both give the same outputs at
the same cycles.
"""

import random
import sys
import time
from dataclasses import dataclass, field

import numpy as np
from amaranth import Elaboratable, Module, Signal
from amaranth.sim import Simulator
from tqdm import tqdm

from . import cli, golden
from .folding import add_folding_arguments, folding_from_args
from .lanes import pack_beats, unpack_beats
from .network import Network
from .progress import Progress
from .spec import NetworkSpec, as_input_array
from .toolchain import ToolError
from .verilated import choose_backend, run_stream_bench, waveform_kind

__all__ = ["StreamRun", "SimulationResult", "stall_pattern", "run_streams", "simulate", "main"]

#: Clock period of the simulation, in seconds (the value only matters for VCD time stamps).
CLOCK_PERIOD = 1e-8

#: Cycles without a stream transfer after which the Python simulator gives a run up as stalled
#: (a deadlocked design would otherwise run forever), at least: a design whose II and latency
#: are longer gets four IIs plus its latency. Checked every that many cycles, so a stall is
#: reported within twice as many. The Verilator backend has its own,
#: :data:`amaranth_nn.verilated.IDLE_LIMIT`, for its thousandfold speed.
PYSIM_IDLE_LIMIT = 1 << 14


@dataclass
class StreamRun:
    """What :func:`run_streams` observed.

    Members
    -------
    outputs : list of int
        Output beats, packed.
    in_cycles, out_cycles : list of int
        Cycle of every input and output beat's transfer.
    cycles : int
        Cycles simulated.
    seconds : float
        Wall time of the simulation (the run alone: not the elaboration or the compilation).
    backend : str
        ``"pysim"`` or ``"verilator"``: what ran.
    build : amaranth_nn.verilated.Build or None
        The Verilator build (with its compile time and whether it was cached).
    """

    outputs: list
    in_cycles: list
    out_cycles: list
    cycles: int
    seconds: float
    backend: str = "pysim"
    build: object = None


class _Bench(Elaboratable):
    """The device under test plus a free-running cycle counter for time stamps."""

    def __init__(self, dut, counter_width=40):
        self.dut = dut
        self.cycle = Signal(counter_width)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        m.d.sync += self.cycle.eq(self.cycle + 1)
        return m


def _check_stalls(stalls, longest_stall=1):
    """``stalls`` as two floats in [0, 1); ``longest_stall`` a positive integer."""
    try:
        pair = tuple(float(p) for p in stalls)
    except (TypeError, ValueError):
        raise TypeError(f"Stalls must be a pair of probabilities, not {stalls!r}") from None
    if len(pair) != 2:
        raise TypeError(f"Stalls must be a pair of probabilities, not {stalls!r}")
    for p in pair:
        if not 0 <= p < 1:
            raise ValueError(f"Stall probabilities must be in [0, 1), not {p}")
    if not isinstance(longest_stall, int) or isinstance(longest_stall, bool):
        raise TypeError(f"Longest stall must be a positive integer, not {longest_stall!r}")
    if longest_stall < 1:
        raise ValueError(f"Longest stall must be a positive integer, not {longest_stall}")
    return pair


def _stall_lengths(rng, count, probability, longest):
    """For each of ``count`` beats, the idle cycles before it (0 unless a stall is drawn)."""
    if not probability:
        return [0] * count
    return [rng.randint(1, longest) if rng.random() < probability else 0
            for _ in range(count)]


def stall_pattern(in_count, out_count, *, stalls=(0.0, 0.0), longest_stall=4, seed=0):
    """The seeded stall pattern of a stream run: the one rule that every backend follows.

    Before input beat ``j`` the source is idle (``valid`` low) for ``in_gaps[j]`` cycles, and
    before output beat ``n`` the sink is not ready for ``out_gaps[n]`` cycles: 0, or with
    probability ``stalls[0]`` (``stalls[1]``) a length drawn from 1 to ``longest_stall``.

    Returns
    -------
    in_gaps, out_gaps : list of int

    Raises
    ------
    TypeError, ValueError
        If ``stalls`` is not two probabilities in [0, 1), or ``longest_stall`` is not a
        positive integer.
    """
    stalls = _check_stalls(stalls, longest_stall)
    rng = random.Random(seed)
    in_gaps = _stall_lengths(rng, in_count, stalls[0], longest_stall)
    return in_gaps, _stall_lengths(rng, out_count, stalls[1], longest_stall)


def _pysim_idle_limit(dut):
    """:data:`PYSIM_IDLE_LIMIT`, or four IIs plus the latency of a planned ``dut``'s if more."""
    plan = getattr(dut, "plan", None)
    cycles = 4 * getattr(plan, "ii", 0) + (getattr(plan, "latency", 0) or 0)
    return max(PYSIM_IDLE_LIMIT, cycles)


def run_streams(dut, in_words, out_count, *, stalls=(0.0, 0.0), longest_stall=4, seed=0,
                vcd=None, progress=None, beats_per_vector=1, source=None, sink=None,
                backend="pysim", stages=None):
    """Feed packed beats to ``dut.i`` and collect ``out_count`` beats from ``dut.o``.

    An input testbench drives ``dut.i`` and an output testbench takes ``dut.o``; each waits in
    the simulator (not in Python) while the other side is busy. With ``backend="verilator"``
    the design is compiled by Verilator (:mod:`amaranth_nn.verilated`) and a C++ testbench does
    the same, cycle for cycle, with the same stall pattern (:func:`stall_pattern`).

    Parameters
    ----------
    dut : wiring.Component
        A component with an ``i`` input stream and an ``o`` output stream.
    in_words : sequence of int
        Input beats, packed as :func:`~amaranth_nn.lanes.pack_beats` does.
    out_count : int
        Output beats to collect.
    stalls : (float, float)
        Probability that the source drops ``valid``, and that the sink drops ``ready``, before
        a beat (for 1 to ``longest_stall`` cycles). ``(0, 0)`` is the steady state: source
        always valid, sink always ready.
    seed : int
        Seed of the stall pattern.
    vcd : str or path, optional
        Write a waveform file: VCD, or FST with the Verilator backend and a ``.fst`` name.
    progress : tqdm, optional
        Updated by one for every ``beats_per_vector`` output beats (Python simulator).
    source, sink : stream interface, optional
        The streams to drive and to take, when they are not ``dut.i`` and ``dut.o``.
    backend : str
        ``"pysim"``, ``"verilator"`` or ``"auto"`` (see
        :func:`amaranth_nn.verilated.choose_backend`).
    stages : Progress, optional
        Where the Verilator compilation's stage lines (and the notice of ``"auto"``) go.

    Returns
    -------
    StreamRun

    Raises
    ------
    TypeError, ValueError
        If ``stalls`` is not two probabilities in [0, 1), ``longest_stall`` is not a positive
        integer, the backend is unknown, or an FST waveform is asked of the Python simulator.
    amaranth_nn.verilated.VerilatorError
        If the Verilator backend is missing a tool, or a build fails.
    RuntimeError
        If no beat moved for :data:`PYSIM_IDLE_LIMIT` cycles (or the design's longer bound),
        or :data:`amaranth_nn.verilated.IDLE_LIMIT` with Verilator: the design stalled.
    """
    in_gaps, out_gaps = stall_pattern(len(in_words), out_count, stalls=stalls,
                                      longest_stall=longest_stall, seed=seed)
    backend, notice = choose_backend(backend)
    waveform_kind(vcd, backend)
    stages = stages if stages is not None else Progress(enabled=False)
    if notice:
        stages.say(notice)
    source = dut.i if source is None else source
    sink = dut.o if sink is None else sink
    if backend == "verilator":
        name = type(dut).__name__
        outputs, in_cycles, out_cycles, seconds, build = run_stream_bench(
            dut, in_words, in_gaps, out_gaps, source=source, sink=sink, vcd=vcd,
            progress=stages, name=name)
        if progress is not None:
            progress.update(out_count // beats_per_vector)
        cycles = (out_cycles[-1] + 1) if out_cycles else 0
        return StreamRun(outputs, in_cycles, out_cycles, cycles, seconds, backend, build)
    bench = _Bench(dut)
    sim = Simulator(bench)
    sim.add_clock(CLOCK_PERIOD)
    in_cycles, out_cycles, outputs = [], [], []
    i_valid, i_payload, i_ready = source.valid, source.payload.as_value(), source.ready
    o_valid, o_payload, o_ready = sink.valid, sink.payload.as_value(), sink.ready
    cycle = bench.cycle

    # Set by the watchdog when no beat has moved for the idle limit: the testbenches then end.
    stalled = Signal()
    stall_report = []

    async def drive(ctx):
        for word, gap in zip(in_words, in_gaps, strict=True):
            if gap:
                ctx.set(i_valid, 0)
                await ctx.tick().repeat(gap)
            ctx.set(i_payload, word)
            ctx.set(i_valid, 1)
            (when,) = await ctx.tick().sample(cycle).until(i_ready | stalled)
            if ctx.get(stalled):
                return
            in_cycles.append(when)
        ctx.set(i_valid, 0)

    async def take(ctx):
        ctx.set(o_ready, 1)
        for n, gap in enumerate(out_gaps):
            if gap:
                ctx.set(o_ready, 0)
                await ctx.tick().repeat(gap)
                ctx.set(o_ready, 1)
            when, word = await ctx.tick().sample(cycle, o_payload).until(o_valid | stalled)
            if ctx.get(stalled):
                return
            out_cycles.append(when)
            outputs.append(word)
            if progress is not None and (n + 1) % beats_per_vector == 0:
                progress.update(1)
        ctx.set(o_ready, 0)
        # A few more cycles, so that a spurious extra output beat would be seen.
        for _ in range(8):
            _, _, extra = await ctx.tick().sample(o_valid)
            if extra:
                raise AssertionError("The design produced more output beats than expected")

    idle_limit = _pysim_idle_limit(dut)

    async def watchdog(ctx):
        moved = -1
        while True:
            await ctx.delay(idle_limit * CLOCK_PERIOD)
            now = len(in_cycles) + len(out_cycles)
            if now == moved:
                stall_report.append(
                    f"The design stalled: no stream transfer for {idle_limit} cycles, after "
                    f"{len(in_cycles)} of {len(in_words)} input beats and {len(out_cycles)} "
                    f"of {out_count} output beats")
                ctx.set(stalled, 1)
                return
            moved = now

    sim.add_testbench(drive)
    sim.add_testbench(take)
    sim.add_testbench(watchdog, background=True)
    start = time.perf_counter()
    if vcd is not None:
        with sim.write_vcd(str(vcd)):
            sim.run()
    else:
        sim.run()
    seconds = time.perf_counter() - start
    if stall_report:
        raise RuntimeError(stall_report[0])
    cycles = (out_cycles[-1] + 1) if out_cycles else 0
    return StreamRun(outputs, in_cycles, out_cycles, cycles, seconds)


@dataclass
class SimulationResult:
    """The outcome of :func:`simulate`.

    Members
    -------
    outputs : numpy.ndarray of int64, shape (batch, output_size)
        What the hardware computed.
    expected : numpy.ndarray of int64
        What the golden model computes.
    mismatches : list of (int, int, int, int)
        ``(vector, element, hardware, golden)`` for every differing output; empty when exact.
    latency : int
        Measured cycles from the first vector's first input beat to its last output beat
        (equals ``network.latency`` when the first vector entered without stalls).
    ii : int or None
        Measured cycles between the last two vectors' first output beats (the steady-state II
        without stalls); ``None`` for a single vector.
    cycles : int
        Cycles simulated.
    seconds : float
        Wall time of the simulation.
    network : Network
        The simulated network.
    out_cycles : numpy.ndarray of int64, shape (batch, out_beats)
        Transfer cycle of every output beat.
    in_cycles : numpy.ndarray of int64, shape (batch, in_beats)
        Transfer cycle of every input beat.
    backend : str
        ``"pysim"`` or ``"verilator"``: what ran.
    build : amaranth_nn.verilated.Build or None
        The Verilator build: its compile time (``seconds``) and whether it was cached.
    notice : str or None
        Why ``backend="auto"`` ran the Python simulator.
    """

    outputs: np.ndarray
    expected: np.ndarray
    mismatches: list
    latency: int
    ii: int | None
    cycles: int
    seconds: float
    network: Network = field(repr=False)
    out_cycles: np.ndarray = field(repr=False)
    in_cycles: np.ndarray = field(repr=False)
    backend: str = "pysim"
    build: object = None
    notice: str | None = None

    @property
    def exact(self):
        """Whether every output equals the golden model's."""
        return not self.mismatches


def simulate(spec, inputs, folding=None, *, target_ii=None, network=None, vcd=None,
             progress=True, stalls=(0.0, 0.0), seed=0, backend="pysim"):
    """Run integer inputs through the simulated network and compare with :func:`golden.run`.

    Parameters
    ----------
    spec : NetworkSpec
        The network.
    inputs : array_like of int, shape (batch, input_size) or (input_size,)
        Integers of ``spec.input_format``.
    folding, target_ii
        As for :class:`~amaranth_nn.network.Network` (default folding when both are None).
    network : Network, optional
        An already built network of ``spec`` (then ``folding`` and ``target_ii`` must be None).
    vcd : str or path, optional
        Write a waveform file: VCD, or FST with the Verilator backend and a ``.fst`` name.
    progress : bool
        Show a tqdm progress bar (for runs of more than a few vectors), the stage lines of a
        Verilator compilation and the notice of ``backend="auto"`` (on stderr).
    stalls : (float, float)
        Probability of random source (valid) and sink (ready) stalls; see :func:`run_streams`.
    seed : int
        Seed of the stall pattern.
    backend : str
        ``"pysim"`` (Amaranth's Python simulator), ``"verilator"`` (the design compiled by
        Verilator, :mod:`amaranth_nn.verilated`) or ``"auto"`` (Verilator when it and a C++
        compiler are usable, else the Python simulator). Both give the same result, cycle for
        cycle; ``result.backend`` says which ran.

    Returns
    -------
    SimulationResult

    Raises
    ------
    TypeError
        If ``spec`` is not a NetworkSpec, ``network`` is not a Network, or ``stalls`` is not a
        pair of numbers.
    ValueError
        If the inputs are not integers of the input format, have the wrong size or no vector;
        a stall probability is outside [0, 1); for an unknown backend, an FST waveform with the
        Python simulator, and for a bad folding or target II. Everything is checked before any
        hardware is built.
    amaranth_nn.verilated.VerilatorError
        For ``backend="verilator"`` without Verilator or a C++ compiler (before any hardware is
        built), and when a build fails.
    """
    if not isinstance(spec, NetworkSpec):
        raise TypeError(f"Spec must be a NetworkSpec, not {spec!r}")
    x, _ = as_input_array(spec, inputs)
    if not len(x):
        raise ValueError("Inputs must hold at least one vector, not 0")
    stalls = _check_stalls(stalls)
    backend, notice = choose_backend(backend)
    waveform_kind(vcd, backend)
    stages = Progress(enabled=progress)
    if notice:
        stages.say(notice)
    if network is None:
        network = Network(spec, folding, target_ii=target_ii)
    elif not isinstance(network, Network):
        raise TypeError(f"Network must be a Network, not {network!r}")
    elif folding is not None or target_ii is not None:
        raise ValueError("Pass either a network or a folding/target II, not both")
    elif network.spec is not spec:
        raise ValueError("The network was built for another spec")
    expected = golden.run(spec, x)
    batch = len(x)
    plan = network.plan
    in_words = pack_beats(x, plan.in_lanes, spec.input_format.width)
    out_width = spec.output_format.width
    bar = None
    if progress and batch > 20 and backend == "pysim":
        bar = tqdm(total=batch, unit="vector", desc="simulating", leave=False)
    try:
        run = run_streams(network, in_words, batch * network.out_beats, stalls=stalls,
                          seed=seed, vcd=vcd, progress=bar,
                          beats_per_vector=network.out_beats, backend=backend, stages=stages)
    finally:
        if bar is not None:
            bar.close()
    outputs, padding = unpack_beats(run.outputs, plan.out_lanes, out_width, spec.output_size)
    mismatches = [(int(v), int(e), int(outputs[v, e]), int(expected[v, e]))
                  for v, e in np.argwhere(outputs != expected)]
    mismatches += [(int(v), spec.output_size + int(e), int(padding[v, e]), 0)
                   for v, e in np.argwhere(padding != 0)]
    in_cycles = np.array(run.in_cycles, dtype=np.int64).reshape(batch, network.in_beats)
    out_cycles = np.array(run.out_cycles, dtype=np.int64).reshape(batch, network.out_beats)
    latency = int(out_cycles[0, -1] - in_cycles[0, 0])
    ii = int(out_cycles[-1, 0] - out_cycles[-2, 0]) if batch > 1 else None
    return SimulationResult(outputs, expected, mismatches, latency, ii, run.cycles,
                            run.seconds, network, out_cycles, in_cycles, backend, run.build,
                            notice)


def _main(argv):
    parser = cli.make_parser("amaranth_nn.simulate")
    cli.add_model_argument(parser)
    parser.add_argument("--inputs", metavar="X.npy|X.npz",
                        help="integer inputs of the input format, shape (batch, input_size): "
                             ".npy, or .npz with x and optional labels y (default with an "
                             "embedded model: its test images)")
    parser.add_argument("--out", metavar="Y.npy",
                        help="write the hardware outputs to this file (in .npy format)")
    parser.add_argument("--vcd", metavar="F", help="write a waveform file")
    add_folding_arguments(parser)
    parser.add_argument("--limit", type=int, action=cli.int_range(1), metavar="N",
                        help="simulate the first N inputs only")
    parser.add_argument("--stalls", type=float, nargs=2, default=(0.0, 0.0),
                        action=cli.real_range(0, 1, hi_open=True),
                        metavar=("P_VALID", "P_READY"),
                        help="probability in [0, 1) of random source and sink stalls "
                             "(default 0 0)")
    cli.add_backend_argument(parser)
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar and no stage lines")
    args = parser.parse_args(argv)

    spec, model = cli.load_model(args.model)
    x, labels = cli.load_inputs(args.inputs, spec, model=model)
    if args.limit is not None:
        x = x[:args.limit]
        labels = None if labels is None else labels[:args.limit]
    folding, target_ii = folding_from_args(args, spec)
    out = None if args.out is None else cli.output_file(args.out, "--out")
    vcd = None if args.vcd is None else cli.output_file(args.vcd, "--vcd")
    backend, notice = cli.choose_backend(args.backend)
    if vcd is not None:
        try:
            waveform_kind(vcd, backend)
        except ValueError as error:
            raise cli.CommandError(f"--vcd: {error}") from None
    if notice:
        print(f"notice: {notice}", file=sys.stderr)
    result = simulate(spec, x, folding, target_ii=target_ii, vcd=vcd,
                      progress=not args.no_progress, stalls=args.stalls, backend=backend)

    net = result.network
    batch = len(result.outputs)
    print(f"model     {spec!r}")
    print(f"folding   {cli.describe_folding(spec, net.folding)}, {net.multipliers} "
          f"multipliers")
    print(f"backend   {cli.describe_backend(result.backend, result.build)}")
    print(f"vectors   {batch}, {result.cycles} cycles in {result.seconds:.3g} s "
          f"({result.cycles / max(result.seconds, 1e-9):.0f} cycles/s)")
    stalled = " (measured with random stalls)" if any(args.stalls) else ""
    print(f"latency   {result.latency} cycles measured, {net.latency} by the formula{stalled}")
    if result.ii is not None:
        print(f"II        {result.ii} cycles measured, {net.ii} by the formula{stalled}")
    if labels is not None:
        accuracy = float(np.mean(np.argmax(result.outputs, axis=1) == labels))
        print(f"accuracy  {accuracy:.4f} (argmax of the hardware outputs vs labels)")
    if vcd is not None:
        print(f"waveform  written to {vcd}")
    if out is not None:
        with cli.writing(out, "--out"), open(out, "wb") as file:
            np.save(file, result.outputs)
        print(f"outputs   written to {out}")
    if result.mismatches:
        print(f"MISMATCHES {len(result.mismatches)} (vector, element, hardware, golden):")
        for item in result.mismatches[:20]:
            print(f"  {item}")
        return 1
    print("mismatches 0: every output equals the golden model")
    return 0


def main(argv=None):
    """The ``python -m amaranth_nn.simulate`` command line; returns the exit status."""
    return cli.run(_main, argv, failures=(ToolError,))


if __name__ == "__main__":
    sys.exit(main())
