"""Open-toolchain synthesis and place-and-route runs of a design.

This module is the one place that runs yosys and nextpnr on a design; their reports are read by
:mod:`amaranth_nn.reports` (whose names are re-exported here). The bench, the tests and the
board build (``python -m amaranth_nn.build``) all go through it.

* :func:`xilinx_utilization` runs ``synth_xilinx -family xc7`` and returns the LUT, FF, DSP48E1
  and block RAM counts (:class:`XilinxUtilization`). No open place-and-route exists for the
  7 series, so there is no Fmax for Xilinx parts.
* :func:`ecp5_fmax` and :func:`ice40_fmax` run ``synth_ecp5`` / ``synth_ice40 -dsp`` and
  nextpnr with a clock constraint, and return the post-route Fmax and utilization
  (:class:`PnrResult`).
* :func:`~amaranth_nn.reports.parse_nextpnr_report`,
  :func:`~amaranth_nn.reports.parse_nextpnr_log` and
  :func:`~amaranth_nn.reports.read_build_report` read the results of a nextpnr run made
  elsewhere, e.g. by ``platform.build()`` in an Amaranth build directory.

The tools are found and run by :mod:`amaranth_nn.toolchain`: the installed YoWASP packages of
this interpreter (``pip install amaranth-nn[toolchain]``), or an executable named by the
environment variable ``YOSYS``, ``NEXTPNR_ECP5`` or ``NEXTPNR_ICE40``. The first YoWASP run of
each tool compiles it into a cache (one to two minutes, once per machine, announced in one
line).

Runs take seconds to a minute; with ``progress=True`` (the default) each step prints one line
to stderr when it starts and when it ends.
"""

import json
import os
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

from amaranth import Cat, Elaboratable, Module, Signal
from amaranth.back import rtlil
from amaranth.lib import wiring

from .devices import Device
from .reports import (
    XILINX_DEVICES,
    PnrResult,
    XilinxUtilization,
    nextpnr_report_opts,
    parse_nextpnr_log,
    parse_nextpnr_report,
    parse_yosys_stat,
    read_build_report,
    resource_counts,
)
from .toolchain import ToolError, check_tools, find_tool, run_tool
from .unused import rejecting

__all__ = [
    "ToolError", "Device", "XILINX_DEVICES", "XilinxUtilization", "PnrResult",
    "YOSYS_RENAME_FIX", "find_tool", "design_source", "IOHarness", "module_resources",
    "resource_counts",
    "xilinx_utilization", "parse_yosys_stat", "ecp5_fmax", "ice40_fmax",
    "parse_nextpnr_report", "parse_nextpnr_log", "read_build_report", "nextpnr_report_opts",
]

#: Yosys commands run right after reading an Amaranth design, before ``synth_xilinx`` and
#: ``synth_ecp5`` here and in the open board flows (``script_after_read``). Yosys 0.70's abc9
#: flow (``synth_xilinx``) stops with ``Assert `count_id(wire->name) == 0' failed`` when a wire
#: is named like a bit of another (Amaranth names the element views of a
#: ``data.ArrayLayout`` ``a[0]``); this gives those wires private names. Ports are untouched.
#: ``synth_ecp5`` of a ULX3S board build (a 6-5-3 MLP at target II 2 with running
#: accumulators) stopped in ABC_OPS_REINTEGRATE with ``Assert `GetSize(conn.first) ==
#: GetSize(conn.second)' failed`` without it, and passed with it.
YOSYS_RENAME_FIX = r"rename -hide w:*\[* c:*\[*"

# ---------------------------------------------------------------------------------------------
# Design input and tool runs

def design_source(design, *, name="top", platform=None, ports=None):
    """A design as text for yosys: ``(kind, text)`` with ``kind`` ``"rtlil"`` or ``"verilog"``.

    Parameters
    ----------
    design : Elaboratable, str or os.PathLike
        An Amaranth elaboratable (a ``wiring.Component`` brings its own ports; any other
        elaboratable needs ``ports``), converted to RTLIL with
        :func:`amaranth.back.rtlil.convert` (the netlist ``verilog.convert`` would write, without
        the Verilog round trip); or Verilog or RTLIL source text; or the path of a ``.v``,
        ``.sv`` or ``.il`` file.
    name : str
        Top module name of a converted elaboratable.
    platform : Platform, optional
        Passed to ``elaborate``, so that the design may use vendor primitives.
    ports : list of Signal, optional
        Ports of an elaboratable that is not a ``wiring.Component``.

    Raises
    ------
    TypeError
        If ``design`` is none of these.
    FileNotFoundError
        If a path does not exist.
    """
    if isinstance(design, Elaboratable) or hasattr(design, "elaborate"):
        if ports is None and not isinstance(design, wiring.Component):
            raise TypeError("Design is not a wiring.Component, so its ports must be given "
                            "(ports=[...])")
        return "rtlil", rtlil.convert(design, name=name, platform=platform, ports=ports)
    if isinstance(design, os.PathLike) or (
            isinstance(design, str) and "\n" not in design and
            design.endswith((".v", ".sv", ".il"))):
        path = Path(design)
        if not path.exists():
            raise FileNotFoundError(f"Design file {path} does not exist")
        return ("rtlil" if path.suffix == ".il" else "verilog"), path.read_text()
    if isinstance(design, str):
        if re.search(r"\bendmodule\b", design):
            return "verilog", design
        if re.search(r"^\s*module\s+\\", design, re.MULTILINE):
            return "rtlil", design
        raise TypeError("Design text is neither Verilog nor RTLIL (no 'endmodule' and no "
                        "'module \\name')")
    raise TypeError(f"Design must be an Amaranth elaboratable, Verilog or RTLIL text, or a "
                    f"file path, not {design!r}")


def _say(progress, text):
    if progress is True:
        print(f"[amaranth_nn.synth] {text}", file=sys.stderr, flush=True)
    elif callable(progress):
        progress(text)


def _run(tool, args, workdir, log_name, what, progress, timeout, console=None):
    """Run ``tool args`` in ``workdir``, its log in ``log_name``; returns wall seconds."""
    _say(progress, f"{tool}: {what} ...")
    seconds = run_tool(tool, args, workdir, log_name, console=console, what=what,
                       timeout=timeout, say=lambda text: _say(progress, text))
    _say(progress, f"{tool}: {what} done in {seconds:.1f} s")
    return seconds


class _Workdir:
    """A given directory (kept) or a temporary one (removed on exit)."""

    def __init__(self, workdir):
        self._given = workdir

    def __enter__(self):
        if self._given is None:
            self._temp = tempfile.TemporaryDirectory(prefix="amaranth_nn_synth_")
            return Path(self._temp.name)
        path = Path(self._given)
        path.mkdir(parents=True, exist_ok=True)
        self._temp = None
        return path

    def __exit__(self, *exc):
        if self._temp is not None:
            self._temp.cleanup()


def _write_design(workdir, design, name, platform, ports):
    kind, text = design_source(design, name=name, platform=platform, ports=ports)
    if kind == "rtlil":
        (workdir / "design.il").write_text(text)
        return "read_rtlil design.il"
    (workdir / "design.v").write_text(text)
    return "read_verilog -sv design.v"


def _top_option(design, top, name):
    if top is not None:
        return f" -top {top}"
    return f" -top {name}" if hasattr(design, "elaborate") else ""


# ---------------------------------------------------------------------------------------------
# Any family: synthesis that keeps the hierarchy

#: The yosys command of a hierarchical synthesis run of each family (``synth_ecp5`` and
#: ``synth_ice40`` flatten unless told not to; ``synth_xilinx`` only with ``-flatten``).
HIERARCHY_SYNTH = {
    "xc7": "synth_xilinx -family xc7 -noiopad -noclkbuf",
    "ecp5": "synth_ecp5 -noflatten",
    "ice40": "synth_ice40 -noflatten -dsp",
}


def module_resources(design, *, family, name="top", platform=None, ports=None, workdir=None,
                     progress=True, timeout=None):
    """Synthesize ``design`` for ``family`` keeping its hierarchy; the resources of each module.

    Every module is counted on its own (not with its submodules), so that a design's blocks
    can be compared one by one. Logic is not optimized across module boundaries, so the sum
    can be a little larger than the flattened design's.

    Parameters
    ----------
    family : str
        ``"xc7"``, ``"ecp5"`` or ``"ice40"`` (see :data:`HIERARCHY_SYNTH`).
    design, name, platform, ports, workdir, progress, timeout
        As for :func:`xilinx_utilization`.

    Returns
    -------
    dict
        ``{module path: {"LUT": n, "FF": n, "DSP": n, "BRAM": n, "carry": n}}``, the path as
        Amaranth names the module (``top.network.layer0.dense``); see
        :func:`~amaranth_nn.reports.resource_counts`.

    Raises
    ------
    ValueError
        For an unknown family.
    ToolError
        If yosys is missing or fails.
    """
    if family not in HIERARCHY_SYNTH:
        raise ValueError(f"Family must be one of {', '.join(map(repr, HIERARCHY_SYNTH))}, "
                         f"not {family!r}")
    with _Workdir(workdir) as path:
        read = _write_design(path, design, name, platform, ports)
        command = HIERARCHY_SYNTH[family] + _top_option(design, None, name)
        script = "\n".join([read, YOSYS_RENAME_FIX, command,
                            "tee -q -o stat.json stat -json"]) + "\n"
        (path / "synth.ys").write_text(script)
        _run("yosys", ["-q", "-l", "yosys.log", "synth.ys"], path, "yosys.log",
             f"{HIERARCHY_SYNTH[family].split()[0]} (hierarchy kept)", progress, timeout,
             "yosys.out")
        stat = json.loads((path / "stat.json").read_text())
    return {module.lstrip("\\"): resource_counts(entry.get("num_cells_by_type", {}), family)
            for module, entry in stat.get("modules", {}).items()}


# ---------------------------------------------------------------------------------------------
# Xilinx 7 series: synthesis only

def xilinx_utilization(design, *, family="xc7", name="top", top=None, platform=None,
                       ports=None, out_of_context=True, workdir=None, progress=True,
                       timeout=None):
    """Synthesize with yosys ``synth_xilinx -flatten`` and count the resources.

    Parameters
    ----------
    design : Elaboratable, str or os.PathLike
        See :func:`design_source`: an Amaranth component, Verilog/RTLIL text or a file.
    family : str
        ``synth_xilinx -family`` (``"xc7"`` for the Artix-7 of the Arty A7).
    name : str
        Top module name when ``design`` is converted from Amaranth.
    top : str, optional
        Top module of Verilog/RTLIL text; by default the one yosys finds (``-auto-top``).
    platform : Platform, optional
        Passed to the design's ``elaborate``.
    ports : list of Signal, optional
        Ports, for an elaboratable that is not a ``wiring.Component``.
    out_of_context : bool
        Synthesize as a core (``-noiopad -noclkbuf``: no I/O or clock buffers). Pass
        ``False`` for a whole board design.
    workdir : str or os.PathLike, optional
        Where to run and keep ``design.il``/``.v``, ``yosys.log`` and ``stat.json``; by default
        a temporary directory, removed afterwards.
    progress : bool or callable
        Print what is running to stderr (``True``), or call ``progress(text)``.
    timeout : float, optional
        Seconds before the run is abandoned.

    Returns
    -------
    XilinxUtilization

    Raises
    ------
    ToolError
        If yosys is missing or fails (the message holds the end of its log).
    """
    with _Workdir(workdir) as path:
        read = _write_design(path, design, name, platform, ports)
        options = f"-family {family} -flatten" + _top_option(design, top, name)
        if out_of_context:
            options += " -noiopad -noclkbuf"
        script = "\n".join([
            read,
            YOSYS_RENAME_FIX,
            # Vivado-flavoured board Verilog: yosys rejects BUFGCTRL's SIM_DEVICE parameter.
            "setparam -unset SIM_DEVICE t:BUFGCTRL",
            f"synth_xilinx {options}",
            "tee -q -o stat.json stat -json",
        ]) + "\n"
        (path / "synth.ys").write_text(script)
        seconds = _run("yosys", ["-q", "-l", "yosys.log", "synth.ys"], path, "yosys.log",
                       f"synth_xilinx -family {family}", progress, timeout, "yosys.out")
        return parse_yosys_stat(path / "stat.json", top=top or name, seconds=seconds)


# ---------------------------------------------------------------------------------------------
# ECP5 and iCE40: synthesis, place and route

class IOHarness(Elaboratable):
    """Wraps a component so that it needs only four pins (``din``, ``load``, ``dout``, clock).

    For place-and-route of a core on a package with fewer pins than the core has port bits
    (nextpnr-ice40 has no out-of-context mode). Every input bit of the component is driven from
    a shift register fed by ``din``; every output bit is registered, loaded into a shift
    register when ``load`` is high and shifted out to ``dout`` otherwise. The harness adds only
    short register-to-register paths, and nothing of the component can be optimized away.

    Parameters
    ----------
    component : wiring.Component
        The core; its signature's ports become internal.

    Members
    -------
    din, load : Signal, input
    dout : Signal, output
    """

    def __init__(self, component):
        with rejecting(self):
            if not isinstance(component, wiring.Component):
                raise TypeError(f"Component must be a wiring.Component, not {component!r}")
        self.component = component
        self.din = Signal()
        self.load = Signal()
        self.dout = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.component
        inputs, outputs = [], []
        for _path, member, value in core.signature.flatten(core):
            target = inputs if member.flow == wiring.In else outputs
            target.append(value.as_value() if hasattr(value, "as_value") else value)
        if inputs:
            width = sum(len(value) for value in inputs)
            chain = Signal(width)
            m.d.sync += chain.eq(Cat(self.din, chain[:-1]))
            m.d.comb += Cat(*inputs).eq(chain)
        if outputs:
            width = sum(len(value) for value in outputs)
            captured = Signal(width)
            shift = Signal(width)
            m.d.sync += captured.eq(Cat(*outputs))
            with m.If(self.load):
                m.d.sync += shift.eq(captured)
            with m.Else():
                m.d.sync += shift.eq(shift[1:])
            m.d.comb += self.dout.eq(shift[0])
        return m


def _pnr(family, design, *, device, package, speed, freq_mhz, name, top, platform, ports,
         harness, seed, workdir, progress, timeout, synth_opts, nextpnr_opts):
    if not isinstance(freq_mhz, (int, float)) or isinstance(freq_mhz, bool) or freq_mhz <= 0:
        raise ValueError(f"Frequency must be a positive number of MHz, not {freq_mhz!r}")
    check_tools(["yosys", f"nextpnr-{family}"])  # both present, before any work
    if harness:
        if not isinstance(design, wiring.Component):
            raise TypeError(f"A harness needs a wiring.Component design, not {design!r}")
        design_ports = None
        harnessed = IOHarness(design)
        design, ports = harnessed, [harnessed.din, harnessed.load, harnessed.dout]
    else:
        design_ports = ports
    with _Workdir(workdir) as path:
        start = time.monotonic()
        read = _write_design(path, design, name, platform, ports if harness else design_ports)
        options = f"synth_{family} {synth_opts}".rstrip() + _top_option(design, top, name)
        script = "\n".join([read, YOSYS_RENAME_FIX, f"{options} -json netlist.json"]) + "\n"
        (path / "synth.ys").write_text(script)
        _run("yosys", ["-q", "-l", "yosys.log", "synth.ys"], path, "yosys.log",
             f"synth_{family} {synth_opts}".rstrip(), progress, timeout, "yosys.out")
        args = [f"--{device}", "--package", package, "--json", "netlist.json",
                "--freq", f"{freq_mhz:g}", "--report", "report.json", "--timing-allow-fail",
                "--seed", str(seed)]
        if speed is not None:
            args += ["--speed", str(speed)]
        if family == "ecp5" and not harness:
            args.append("--out-of-context")
        args += shlex.split(nextpnr_opts)
        _run(f"nextpnr-{family}", args, path, "nextpnr.log",
             f"place and route on {device} {package} at {freq_mhz:g} MHz", progress, timeout)
        seconds = time.monotonic() - start
        result = parse_nextpnr_report(path / "report.json", family=family)
        result = PnrResult(family=family, fmax=result.fmax, constraint=result.constraint,
                           utilization=result.utilization,
                           critical_paths=result.critical_paths, device=device,
                           seconds=seconds)
        if result.fmax_mhz is not None:
            _say(progress, f"nextpnr-{family}: Fmax {result.fmax_mhz:.1f} MHz")
        return result


def ecp5_fmax(design, *, device="85k", package="CABGA381", speed=None, freq_mhz=200.0,
              name="top", top=None, platform=None, ports=None, harness=False, seed=1,
              synth_opts="", nextpnr_opts="", workdir=None, progress=True, timeout=None):
    """Post-route Fmax and utilization on an ECP5: yosys ``synth_ecp5``, then nextpnr-ecp5.

    The design is placed out of context (``--out-of-context``: no I/O buffers, so a core with
    more port bits than the package has pins still places), unless ``harness`` wraps it in an
    :class:`IOHarness`. Only register-to-register paths are timed.

    Parameters
    ----------
    design : Elaboratable, str or os.PathLike
        See :func:`design_source`.
    device : str
        nextpnr device option without dashes: ``"85k"`` (LFE5U-85F, ULX3S-85F), ``"25k"``,
        ``"45k"``, ``"um5g-85k"``, ...
    package : str
        ``"CABGA381"`` for the ULX3S.
    speed : int, optional
        Speed grade (6, 7 or 8); nextpnr's default is 6, that of the ULX3S.
    freq_mhz : float
        Clock constraint for timing-driven placement and routing. The achieved Fmax is reported
        whether or not it is met.
    name, top, platform, ports
        As for :func:`xilinx_utilization`.
    harness : bool
        Wrap the component in an :class:`IOHarness` instead of placing it out of context.
    seed : int
        Placer seed (results vary by a few percent between seeds).
    synth_opts, nextpnr_opts : str
        Extra options for ``synth_ecp5`` and nextpnr-ecp5 (e.g. ``"--tmg-ripup"``).
    workdir, progress, timeout
        As for :func:`xilinx_utilization`; the directory keeps ``netlist.json``,
        ``nextpnr.log`` and ``report.json``.

    Returns
    -------
    PnrResult

    Raises
    ------
    ValueError
        If ``freq_mhz`` is not a positive number.
    ToolError
        If yosys or nextpnr-ecp5 is missing or fails.
    """
    return _pnr("ecp5", design, device=device, package=package, speed=speed,
                freq_mhz=freq_mhz, name=name, top=top, platform=platform, ports=ports,
                harness=harness, seed=seed, workdir=workdir, progress=progress,
                timeout=timeout, synth_opts=synth_opts, nextpnr_opts=nextpnr_opts)


def ice40_fmax(design, *, device="up5k", package="sg48", freq_mhz=50.0, name="top", top=None,
               platform=None, ports=None, harness=True, seed=1, synth_opts="-dsp",
               nextpnr_opts="", workdir=None, progress=True, timeout=None):
    """Post-route Fmax and utilization on an iCE40: ``synth_ice40 -dsp``, then nextpnr-ice40.

    nextpnr-ice40 has no out-of-context mode, so by default the component is wrapped in an
    :class:`IOHarness` (four pins). Pass ``harness=False`` for a design that has its own pins.

    Parameters
    ----------
    device : str
        ``"up5k"`` (iCEBreaker), ``"hx8k"``, ...
    package : str
        ``"sg48"`` for the iCEBreaker's UP5K.
    freq_mhz : float
        Clock constraint.
    synth_opts : str
        Options of ``synth_ice40``; ``-dsp`` maps multipliers to the SB_MAC16 DSPs.
    design, name, top, platform, ports, harness, seed, nextpnr_opts, workdir, progress, timeout
        As for :func:`ecp5_fmax`.

    Returns
    -------
    PnrResult

    Raises
    ------
    ValueError
        If ``freq_mhz`` is not a positive number.
    ToolError
        If yosys or nextpnr-ice40 is missing or fails (e.g. the design does not fit).
    """
    return _pnr("ice40", design, device=device, package=package, speed=None,
                freq_mhz=freq_mhz, name=name, top=top, platform=platform, ports=ports,
                harness=harness, seed=seed, workdir=workdir, progress=progress,
                timeout=timeout, synth_opts=synth_opts, nextpnr_opts=nextpnr_opts)
