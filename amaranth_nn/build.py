"""Build a network into a board design: ``python -m amaranth_nn.build --board arty_a7``.

With no options it builds the embedded default digits model into the board harness
(:mod:`boards.harness`: UART, framed protocol, the network, argmax, status LEDs) at the
fastest folding the board holds: the smallest power-of-two target II whose estimate fits the
board's device with the margin, said in one line; when the real tools disagree (the finished
build does not fit, or place and route fails), it steps back once to the next target II that
fits and builds again. A folding given on the command line is never changed. The build runs in
stages, each on its own line with its time:

1. **check**: the board, the options and the tools; then the resource estimate of the design
   (:mod:`amaranth_nn.estimate`) against the board's device. A design that cannot fit stops
   here, in seconds, naming the resource, the need, the capacity and a target II that fits
   (``--force`` goes on anyway).
2. **elaborate**: the board design and its build files.
3. by board family:

   - ``xc7`` (Arty A7): the whole Vivado build tree (``top.v``, ``top.xdc``, ``top.tcl``,
     ``build_top.sh``) and Vivado when it is on PATH (bitstream, then ``--program``); without
     Vivado, one line says so and yosys ``synth_xilinx`` gives the utilization.
   - ``ecp5`` (ULX3S) and ``ice40`` (iCEBreaker): the open flow to a real bitstream, one stage
     per tool (synthesize, place and route, pack), with post-route Fmax. When nextpnr's
     placer finds no legal placement (a design near the device's capacity), place and route
     runs again with the next seed of :data:`PLACEMENT_SEEDS`, said in its stage line; when
     its router (router1) is still routing after :data:`ROUTER1_SECONDS`, it runs again with
     ``--router router2``. The report's ``flow`` names the seed and the router that did it.

Every build ends with a report, printed as a table and saved as ``report.json`` in the build
directory: LUT/FF/DSP/BRAM with the percentage of the device, next to the estimate; Fmax where
known; latency and II in cycles; inferences/s at the board clock and over the UART link. A
finished build that uses more than the device has exits non-zero (``--force``: zero).
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from amaranth._toolchain import ToolNotFound
from amaranth.build.run import LocalBuildProducts

from boards import BOARDS, get_board
from boards.harness import BoardTop, Harness
from boards.protocol import Protocol

from . import cli, synth
from .estimate import DoesNotFit, check_fit, fitting_target_ii, most_folded, plan_for_device
from .folding import add_folding_arguments, folding_from_args, plan_network
from .models import default_spec
from .progress import Progress
from .spec import check_spec
from .toolchain import FLOW_TOOLS, ToolError, ToolStopped, check_tools, run_tool

__all__ = ["make_top", "build", "format_report", "main", "PROGRAMMERS", "STAGES"]

#: The programmer of each open-flow family: (environment variable, default tool name).
PROGRAMMERS = {"ecp5": ("OPENFPGALOADER", "openFPGALoader"), "ice40": ("ICEPROG", "iceprog")}

#: Seeds nextpnr tries in turn, after its default, when its placer finds no legal placement:
#: near a device's capacity the analytic placer's legaliser can fail with one seed and succeed
#: with the next (the MNIST-1D model at 89 % of the iCE40UP5K's logic cells:
#: ``python -m amaranth_nn.build --board icebreaker --model mnist1d``).
PLACEMENT_SEEDS = (2, 3)

#: nextpnr's messages for a placement that failed for want of a legal position.
NO_LEGAL_PLACEMENT = ("Unable to find legal placement", "failed to place chain")

#: Seconds that nextpnr's default router (router1) may route, by board family, before the
#: build stops it and runs place and route again with ``--router router2``: near a device's
#: capacity router1 can rip up and reroute the same arcs without end (the MNIST-1D model on
#: the iCE40UP5K, at one placement: 5793 arcs still unrouted after 8 minutes), where router2
#: routes that placement in 4 s. router1 gives the iCE40 designs 15-20 % more Fmax than
#: router2, so it stays the first choice; it routes every iCE40 design of the tests in
#: seconds, and the ULX3S digits build (86 multipliers) in 39 s.
ROUTER1_SECONDS = {"ice40": 120, "ecp5": 900}

#: The line of nextpnr's log that starts the routing.
ROUTING_STARTS = b"Info: Routing.."

#: What each tool of an open flow does, for its stage line.
STAGES = {"yosys": "synthesize", "nextpnr-ecp5": "place and route", "nextpnr-ice40":
          "place and route", "ecppack": "pack the bitstream", "icepack": "pack the bitstream"}

#: The board abandons a partial frame after this long without a byte (seconds).
FRAME_TIMEOUT = 0.1

#: Clock cycles per UART bit at least (the receiver samples in the middle of a bit).
MIN_DIVISOR = 4


def uart_divisor(board, baud=None):
    """Clock cycles per UART bit of ``board`` at ``baud`` (default: the board's).

    Raises
    ------
    TypeError
        If ``baud`` is not an integer.
    ValueError
        If it is not positive, or too fast for the board clock.
    """
    baud = board.baud if baud is None else baud
    if not isinstance(baud, int) or isinstance(baud, bool):
        raise TypeError(f"Baud rate must be an integer, not {baud!r}")
    if baud < 1:
        raise ValueError(f"Baud rate must be a positive integer, not {baud}")
    divisor = round(board.clk_freq / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"Baud rate {baud} is too fast for the {board.clk_freq / 1e6:g} MHz "
                         f"clock of {board.name} (at least {MIN_DIVISOR} clocks per bit)")
    return divisor


def make_top(board, spec, *, folding=None, target_ii=None, lut_multipliers=(),
             running_accumulators=False, baud=None):
    """The board design: a :class:`boards.harness.BoardTop` around the network.

    The UART divisor is the board clock over the baud rate, the partial-frame timeout is 100 ms,
    the heartbeat blinks at 1 Hz and the status LEDs stay on for 50 ms after an event.

    Parameters
    ----------
    board : boards.Board
    spec : NetworkSpec
    folding, target_ii, lut_multipliers, running_accumulators
        As for :class:`~amaranth_nn.network.Network` (with neither folding nor target II, the
        network's default folding).
    baud : int, optional
        UART baud rate (default: the board's, 115200).

    Raises
    ------
    TypeError, ValueError
        For a bad baud rate, and from the network for a bad folding.
    """
    divisor = uart_divisor(board, baud)
    clk = board.clk_freq
    harness = Harness(spec, folding=folding, target_ii=target_ii,
                      lut_multipliers=lut_multipliers,
                      running_accumulators=running_accumulators, divisor=divisor,
                      timeout=int(clk * FRAME_TIMEOUT), heartbeat=int(clk // 2),
                      stretch=int(clk // 20))
    return BoardTop(harness, board.leds)


def _programmer(board):
    """The programmer command of an open-flow board, which ``--program`` needs."""
    var, tool = PROGRAMMERS[board.family]
    command = os.environ.get(var, tool)
    if shutil.which(command) is None:
        raise ToolError(f"--program needs {tool} ({var}={command} is not an executable on "
                        f"PATH); install it or point {var} at it")
    return var, command


def build(board_name, spec=None, *, folding=None, target_ii=None, out=None, toolchain=None,
          program=False, baud=None, force=False, verbose=False, progress=None):
    """Build ``spec`` for a board; returns the report (a dict, also saved as report.json).

    Parameters
    ----------
    board_name : str
        One of :data:`boards.BOARDS`.
    spec : NetworkSpec, optional
        Default: the embedded digits model.
    folding, target_ii
        See :class:`amaranth_nn.network.Network`. With neither, the build picks the smallest
        power-of-two target II whose estimate fits the board with the margin
        (:func:`~amaranth_nn.estimate.fitting_target_ii`), and when the finished build does not
        fit (or place and route fails, also with the seeds of :data:`PLACEMENT_SEEDS`) it steps
        back once to the next one.
    out : path, optional
        Build directory; default ``build/<board>``.
    toolchain : str, optional
        The amaranth toolchain name (default: the platform's, Vivado/Trellis/IceStorm).
    program : bool
        Program the board after the build.
    baud : int, optional
        UART baud rate (default 115200).
    force : bool
        Build even when the estimate says that the design does not fit, and return the report
        of a build that uses more than the device has instead of raising.
    verbose : bool
        Copy the tools' own output to stderr.
    progress : Progress, optional
        Where the stage lines go (default: nowhere).

    Returns
    -------
    dict
        The report; see :func:`format_report`.

    Raises
    ------
    TypeError, ValueError
        Unknown board or toolchain, bad spec, folding, baud rate or build directory.
    DoesNotFit
        The estimate, or the finished build, needs more than the device has (not with
        ``force``).
    ToolError
        A required tool is missing, or a tool of the flow failed.
    """
    progress = Progress(enabled=False) if progress is None else progress
    started = time.monotonic()
    board = get_board(board_name)
    if toolchain is not None and toolchain not in board.toolchains:
        raise ValueError(f"Unknown toolchain {toolchain!r} for {board.name}; supported: "
                         f"{', '.join(board.toolchains)}")
    spec = default_spec() if spec is None else check_spec(spec)
    out = cli.output_dir(out if out is not None else Path("build") / board.name, "--out")
    chosen = folding is None and target_ii is None
    if chosen:
        plan, fit, target_ii = _pick_folding(board, spec, progress)
    else:
        plan = plan_for_device(plan_network(spec, folding, target_ii=target_ii), board.device)
        fit = check_fit(plan, board.device, harness=True)
    uart_divisor(board, baud)
    def make_platform():
        return board.platform(toolchain=toolchain) if toolchain else board.platform()

    platform = make_platform()
    vivado = board.family == "xc7" and platform.has_required_tools()
    if not vivado:
        check_tools(FLOW_TOOLS[board.family])
    if program:
        if board.family == "xc7" and not vivado:
            raise ToolError(f"--program needs the bitstream, and {platform.toolchain} "
                            f"({', '.join(platform.required_tools)}) is not on PATH")
        if board.family != "xc7":
            _programmer(board)
    flow = dict(make_platform=make_platform, out=out, baud=baud, program=program, vivado=vivado,
                verbose=verbose, progress=progress)
    try:
        report = _build_at(board, spec, plan, fit, target_ii, force=force, **flow)
    except _ToolsDisagree as disagreement:
        # A folding the build picked steps back once to the next that fits by the estimate.
        step = None
        if chosen and target_ii is not None:
            step = fitting_target_ii(spec, board.device, harness=True, above=target_ii)
        if step is None:
            raise disagreement.error from None
        target_ii, fit = step
        progress.say(f"folding: the tools disagree with the estimate ({disagreement.reason}); "
                     f"stepping back to --target-ii {target_ii}")
        try:
            report = _build_at(board, spec, fit.plan, fit, target_ii, force=force, **flow)
        except _ToolsDisagree as again:
            raise again.error from None
    report["build_seconds"] = round(time.monotonic() - started, 2)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


class _ToolsDisagree(Exception):
    """The finished build does not fit, or place and route failed: ``error`` is what the
    build raises unless it can step back to a more folded design."""

    def __init__(self, reason, error):
        super().__init__(reason)
        self.reason, self.error = reason, error


def _build_at(board, spec, plan, fit, target_ii, *, make_platform, out, baud, program, vivado,
              verbose, progress, force):
    """Check, elaborate and run the flow for one folding (on a new platform: an amaranth
    platform builds once); the report."""
    started = time.monotonic()
    platform = make_platform()
    progress.say(f"{board.description}: {spec!r}, folding "
                 f"{', '.join(_entry(entry) for entry in plan.folding)} (pe x simd), "
                 f"II {plan.ii}, latency {plan.latency} cycles")
    if plan.lut_multipliers:
        progress.say(f"multipliers: {_logic_text(plan.lut_multipliers)}, as the "
                     f"{board.device.dsp} {board.device.dsp_name} run out")
    progress.say(f"estimate: {fit.summary()}")
    if not fit.fits:
        if not force:
            raise DoesNotFit(fit.message())
        progress.say(f"--force: building anyway ({fit.message()})")

    with progress.stage("elaborate"):
        top = make_top(board, spec, folding=plan.folding, lut_multipliers=plan.lut_multipliers,
                       running_accumulators=plan.running_accumulators, baud=baud)
        out.mkdir(parents=True, exist_ok=True)
        options = dict(board.toolchain_options)
        if board.family != "xc7":
            options["nextpnr_opts"] = " ".join(filter(None, [options.get("nextpnr_opts"),
                                                             synth.nextpnr_report_opts("top")]))
            options["script_after_read"] = synth.YOSYS_RENAME_FIX
        build_plan = platform.build(top, name="top", build_dir=str(out), do_build=False,
                                    verbose=verbose, **options)
        build_plan.extract(str(out))
    try:
        if board.family == "xc7":
            result = _build_xc7(platform, out, program, vivado, verbose, progress)
        else:
            result = _build_open(board, platform, out, program, verbose, progress)
    except ToolError as error:
        if str(error).startswith("nextpnr"):
            raise _ToolsDisagree("place and route failed", error) from None
        raise
    result["files"] = [name for name in result["files"] if (out / name).exists()]
    report = _report(board, spec, top.harness, result, fit, out, time.monotonic() - started,
                     target_ii)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    over = _over_capacity(report)
    if over and not force:
        raise _ToolsDisagree(over, DoesNotFit(
            f"the finished build does not fit the {board.device.name}: {over} (report in "
            f"{out / 'report.json'}; --force accepts it)"))
    return report


def _entry(entry):
    """A folding entry for the stage line: ``4x8`` (``pe x simd``; lanes twice)."""
    pe, simd = entry
    return f"{pe}x{simd}"


def _pick_folding(board, spec, progress):
    """The ``(plan, fit, target_ii)`` a board build takes without a folding option: the
    smallest power-of-two target II whose estimate fits the board's device with the margin
    (:func:`~amaranth_nn.estimate.fitting_target_ii`), said in one line. When none fits, the
    most folded design's (the check then stops the build, naming what is over)."""
    suggestion = fitting_target_ii(spec, board.device, harness=True)
    if suggestion is None:
        plan = plan_for_device(plan_network(spec, most_folded(spec)), board.device)
        return plan, check_fit(plan, board.device, harness=True), None
    target, check = suggestion
    progress.say(f"folding: --target-ii {target}, the smallest power of two whose estimate "
                 f"fits the {board.device.name}")
    return check.plan, check, target


def _build_xc7(platform, out, program, vivado, verbose, progress):
    files = ["top.v", "top.xdc", "top.tcl", "build_top.sh"]
    result = {"files": files, "fmax_mhz": None, "flow": None}
    if vivado:
        with progress.stage(f"{platform.toolchain} (synthesis, place and route, bitstream)"):
            try:
                subprocess.run(["sh", "build_top.sh"], cwd=out, check=True,
                               stdout=None if verbose else subprocess.DEVNULL)
            except subprocess.CalledProcessError as error:
                raise ToolError(f"{platform.toolchain} failed with exit status "
                                f"{error.returncode}; the build files are in {out}/") from None
        result["flow"] = platform.toolchain
        files.append("top.bit")
        if program:
            with progress.stage("program the board"):
                platform.toolchain_program(LocalBuildProducts(str(out)), "top")
    else:
        progress.say(f"{platform.toolchain} is not on PATH "
                     f"({', '.join(platform.required_tools)}): wrote its build tree to {out}/ "
                     f"(run build_top.sh where it is installed); yosys synth_xilinx gives the "
                     f"utilization instead.")
        result["flow"] = "yosys synth_xilinx"
    if not vivado:
        with progress.stage("synthesize (yosys synth_xilinx)") as note:
            used = synth.xilinx_utilization(out / "top.v", top="top", out_of_context=False,
                                            workdir=out / "synth_xilinx", progress=note)
        result["utilization"] = {"LUT": used.lut, "FF": used.ff, "DSP": used.dsp,
                                 "BRAM": used.bram36}
        files.append("synth_xilinx/")
    return result


def _no_legal_placement(log):
    """Whether the nextpnr log ``log`` ends in its placer's failure to legalise, which a
    design near the device's capacity can meet with one seed and not with another."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return any(message in text for message in NO_LEGAL_PLACEMENT)


def _routing_too_long(log, limit):
    """A ``watch`` for :func:`~amaranth_nn.toolchain.run_tool`: a reason to stop nextpnr once
    its log ``log`` (removed here, before the run) shows routing that began more than
    ``limit`` seconds ago."""
    log.unlink(missing_ok=True)  # an earlier run's log would start the clock
    started = None
    offset = 0

    def watch():
        nonlocal started, offset
        if started is None:
            if not log.exists():
                return None
            with open(log, "rb") as text:
                text.seek(offset)
                new = text.read()
            if ROUTING_STARTS in new:
                started = time.monotonic()
            offset = max(offset, offset + len(new) - len(ROUTING_STARTS))
        elif time.monotonic() - started > limit:
            return f"router1 still routing after {limit} s"
        return None
    return watch


def _place_and_route(tool, args, out, log, verbose, note, family):
    """Run nextpnr with its default seed, then with each of :data:`PLACEMENT_SEEDS` while its
    log says that it found no legal placement; a run whose routing takes more than
    :data:`ROUTER1_SECONDS` of the board ``family`` runs again with ``--router router2``.
    Returns the options that placed and routed, beyond the build's own (a list)."""
    seeds = (None, *PLACEMENT_SEEDS)
    limit = ROUTER1_SECONDS[family]

    def run(options, watch=None):
        run_tool(tool, args + options, out, log, console=f"{tool}.log", what=STAGES[tool],
                 verbose=verbose, say=note, watch=watch)
        return options

    for n, seed in enumerate(seeds):
        options = [] if seed is None else ["--seed", str(seed)]
        try:
            try:
                return run(options, _routing_too_long(out / log, limit))
            except ToolStopped:
                note(f"router1 still routing after {limit} s; placing and routing again with "
                     f"--router router2")
                return run(options + ["--router", "router2"])
        except ToolError:
            if seed == seeds[-1] or not _no_legal_placement(out / log):
                raise
            tried = "the default seed" if seed is None else f"--seed {seed}"
            note(f"no legal placement with {tried}; trying --seed {seeds[n + 1]}")


def _build_open(board, platform, out, program, verbose, progress):
    commands = json.loads((out / "build_top.json").read_text())["commands"]
    flow = f"yosys + nextpnr-{board.family} (yowasp)"
    for argv in commands:
        tool, args = argv[0], argv[1:]
        # yosys (-l) and nextpnr (--log) write their own logs, which a failure quotes.
        own_log = next((args[n + 1] for n, arg in enumerate(args[:-1])
                        if arg in ("-l", "--log")), None)
        log = own_log or f"{tool}.log"
        with progress.stage(f"{STAGES[tool]} ({tool})") as note:
            if tool.startswith("nextpnr"):
                options = _place_and_route(tool, args, out, log, verbose, note, board.family)
                flow += "".join(f", {option} {value}"
                                for option, value in zip(options[::2], options[1::2], strict=True))
            else:
                run_tool(tool, args, out, log, console=f"{tool}.log", what=STAGES[tool],
                         verbose=verbose, say=note)
    bitstream = "top.bit" if board.family == "ecp5" else "top.bin"
    if program:
        var, command = _programmer(board)
        os.environ.setdefault(var, command)
        with progress.stage("program the board"):
            platform.toolchain_program(LocalBuildProducts(str(out)), "top")
    pnr = synth.read_build_report(out, "top", family=board.family)
    return {"files": ["top.il", "top.ys", "top.rpt", "top.tim", "top.report.json", bitstream],
            "fmax_mhz": pnr.fmax_mhz,
            # An iCE40 logic cell is a LUT4 and a FF; nextpnr counts cells, not FFs.
            "utilization": {"LUT": pnr.lut, "FF": None if board.family == "ice40" else pnr.ff,
                            "DSP": pnr.dsp, "BRAM": pnr.bram},
            "flow": flow}


def _report(board, spec, harness, result, fit, out, seconds, target_ii):
    network = harness.network
    clk = board.clk_freq
    baud = round(clk / harness.divisor)
    p = Protocol(spec)
    device = board.device
    used = result["utilization"]
    estimated = fit.estimate.as_dict()
    utilization = {}
    for kind, total in device.totals.items():
        value = used.get(kind)
        utilization[kind] = {"used": value, "total": total, "estimate": estimated[kind],
                             "percent": None if value is None else round(100 * value / total, 2)}
    fmax = result.get("fmax_mhz")
    return {
        "board": board.name, "description": board.description, "device": device.name,
        "flow": result["flow"], "build_dir": str(out),
        "model": spec.name, "shape": _shapes(spec),
        "folding": [list(f) for f in network.folding], "multipliers": network.multipliers,
        "lut_multipliers": list(network.plan.lut_multipliers),
        "running_accumulators": network.plan.running_accumulators,
        "target_ii": target_ii,
        "clock_mhz": clk / 1e6, "fmax_mhz": fmax,
        "ii_cycles": network.ii, "latency_cycles": network.latency,
        "latency_us": network.latency / clk * 1e6,
        "inferences_per_s_clock": clk / network.ii,
        "inferences_per_s_fmax": None if fmax is None else fmax * 1e6 / network.ii,
        "baud": baud, "uart_divisor": harness.divisor,
        "request_bytes": p.request_size, "reply_bytes": p.reply_size,
        "inferences_per_s_uart": p.uart_inferences_per_second(baud),
        "utilization": utilization,
        "units": {kind: device.unit(kind) for kind in device.totals},
        "build_seconds": round(seconds, 2), "files": result["files"],
    }


def _shapes(spec):
    """The shape of the input and of every layer's output: an integer for a vector, the list
    of its axes for a stream of positions (``[40, 1]``)."""
    shapes = [spec.layers[0].input_shape] + [layer.output_shape for layer in spec.layers]
    return [shape[0] if len(shape) == 1 else list(shape) for shape in shapes]


def _shape_text(shape):
    return "x".join(map(str, shape)) if isinstance(shape, list) else str(shape)


def _logic_text(layers):
    """``"layers 1, 2 in logic"``: the layers whose multipliers are built from LUTs."""
    return (f"layer{'s' if len(layers) > 1 else ''} {', '.join(map(str, layers))} in logic "
            f"(LUT multipliers)")


def _over_capacity(report):
    """The resources a finished build uses beyond its device, as text (empty if none)."""
    over = [f"{entry['used']:g} {report['units'][kind]} of {entry['total']} "
            f"({entry['percent']:.0f} %)"
            for kind, entry in report["utilization"].items()
            if entry["used"] is not None and entry["used"] > entry["total"]]
    return ", ".join(over)


def format_report(report):
    """The build report as a printable table."""
    rows = [("board", f"{report['description']} [{report['device']}]"),
            ("flow", report["flow"]),
            ("model", f"{report['model']} {' -> '.join(map(_shape_text, report['shape']))}"),
            ("folding (pe, simd)", ", ".join(f"({pe}, {simd})" for pe, simd in
                                             report["folding"])
             + f"  [{report['multipliers']} multipliers"
             + (f"; {_logic_text(report['lut_multipliers'])}"
                if report.get("lut_multipliers") else "")
             + ("; running accumulators in the dense layers"
                if report.get("running_accumulators") else "") + "]")]
    for kind, entry in report["utilization"].items():
        unit = report["units"][kind]
        estimate = f"  [estimate {entry['estimate']:g}]"
        if entry["used"] is None:
            rows.append((kind, "in the LUT row (iCE40 logic cells are LUT4 + FF)"
                         if report["device"].startswith("ice40") else "unknown"))
        else:
            rows.append((kind, f"{entry['used']:g} / {entry['total']} {unit}  "
                               f"({entry['percent']:.1f} %){estimate}"))
    fmax = report["fmax_mhz"]
    rows += [("clock", f"{report['clock_mhz']:g} MHz"),
             ("Fmax", "unknown (needs place and route)" if fmax is None
              else f"{fmax:.1f} MHz"),
             ("II", f"{report['ii_cycles']} cycles"),
             ("latency", f"{report['latency_cycles']} cycles "
                         f"({report['latency_us']:.2f} us at the board clock)"),
             ("inferences/s (clock)", f"{report['inferences_per_s_clock']:,.0f}")]
    if report["inferences_per_s_fmax"] is not None:
        rows.append(("inferences/s (Fmax)", f"{report['inferences_per_s_fmax']:,.0f}"))
    rows += [("inferences/s (UART)", f"{report['inferences_per_s_uart']:,.1f} at "
                                     f"{report['baud']} baud, {report['request_bytes']} + "
                                     f"{report['reply_bytes']} bytes per inference"),
             ("build time", f"{report['build_seconds']:.1f} s"),
             ("files", f"{report['build_dir']}/: {', '.join(report['files'])}, report.json")]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _main(argv):
    parser = cli.make_parser(
        "amaranth_nn.build",
        description="Build a fixed-point network into a board design (UART harness, framed "
                    "protocol, status LEDs) and report its resources and speed.",
        epilog="Boards: " + "; ".join(f"{name}: {board.description}"
                                      for name, board in BOARDS.items()))
    parser.add_argument("--board", default="arty_a7",
                        help=f"target board (default arty_a7); one of {', '.join(BOARDS)}")
    cli.add_model_argument(parser)
    add_folding_arguments(parser)
    parser.add_argument("--out", metavar="DIR", help="build directory (default build/<board>)")
    parser.add_argument("--toolchain",
                        help="amaranth toolchain: Vivado (default) or Xray for the Arty boards; "
                             "ulx3s runs Trellis and icebreaker IceStorm (the yowasp flows)")
    parser.add_argument("--baud", type=int, action=cli.int_range(1),
                        help="UART baud rate (default 115200)")
    parser.add_argument("--program", action="store_true", help="program the board afterwards")
    parser.add_argument("--force", action="store_true",
                        help="build even when the estimate says the design does not fit, and "
                             "exit 0 when the finished build exceeds the device")
    parser.add_argument("--verbose", action="store_true",
                        help="show the tools' own output as they run")
    args = parser.parse_args(argv)

    try:
        board = get_board(args.board)
    except ValueError as error:
        raise cli.CommandError(f"--board: {error}") from None
    if args.toolchain is not None and args.toolchain not in board.toolchains:
        raise cli.CommandError(f"--toolchain: Unknown toolchain {args.toolchain!r} for "
                               f"{board.name}; supported: {', '.join(board.toolchains)}")
    try:
        uart_divisor(board, args.baud)
    except ValueError as error:
        raise cli.CommandError(f"--baud: {error}") from None
    spec, _ = cli.load_model(args.model)
    folding, target_ii = folding_from_args(args, spec)
    out = cli.output_dir(args.out or Path("build") / board.name, "--out")
    with cli.writing(out, "--out"):
        report = build(board.name, spec, folding=folding, target_ii=target_ii, out=out,
                       toolchain=args.toolchain, program=args.program, baud=args.baud,
                       force=args.force, verbose=args.verbose, progress=Progress())
    print(format_report(report))
    return 0


def main(argv=None):
    """The ``python -m amaranth_nn.build`` command line; returns the exit status."""
    return cli.run(_main, argv, failures=(DoesNotFit, ToolError, ToolNotFound))


if __name__ == "__main__":
    sys.exit(main())
