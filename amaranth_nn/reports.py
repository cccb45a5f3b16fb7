"""The results of the open tools, read from their reports: yosys ``stat -json`` for Xilinx
utilization, nextpnr's JSON report or log for post-route Fmax and utilization.

:mod:`amaranth_nn.synth` runs the tools and returns these; they also read the reports of runs
made elsewhere, e.g. by ``platform.build()`` in an Amaranth build directory.
"""

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .devices import DEVICES, Device

__all__ = ["XILINX_DEVICES", "XilinxUtilization", "PnrResult", "parse_yosys_stat",
           "parse_nextpnr_report", "parse_nextpnr_log", "read_build_report",
           "nextpnr_report_opts", "resource_counts"]

#: The Xilinx 7-series devices of :data:`amaranth_nn.devices.DEVICES`, by name.
XILINX_DEVICES = {name: device for name, device in DEVICES.items() if device.family == "xc7"}

# LUTs taken by each Xilinx LUT-as-memory primitive (they sit in SLICEM LUTs).
_XILINX_LUTRAM = {
    "RAM32X1S": 1, "RAM64X1S": 1, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1S": 2,
    "RAM128X1D": 4, "RAM256X1S": 4, "RAM32M": 4, "RAM64M": 4, "SRL16E": 1, "SRLC32E": 1,
}
_XILINX_FF = ("FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE")


@dataclass(frozen=True)
class XilinxUtilization:
    """Resources of a design after ``synth_xilinx`` (before place-and-route).

    Members
    -------
    lut : int
        All LUTs: ``lut_logic + lut_memory``, as Vivado's "Slice LUTs".
    lut_logic : int
        ``LUT1`` to ``LUT6``.
    lut_memory : int
        LUTs used as distributed RAM or shift registers (``RAM64M`` counts 4, ...).
    ff : int
        Flip-flops and latches (``FDRE``, ``FDSE``, ``FDCE``, ``FDPE``, ``LDCE``, ``LDPE``).
    dsp : int
        ``DSP48E1`` slices.
    ramb36, ramb18 : int
        Block RAM primitives of each size (FIFO primitives included).
    cells : dict of str to int
        Every cell type and its count.
    top : str
        Top module name.
    seconds : float
        Wall time of the yosys run.
    """

    lut: int
    lut_logic: int
    lut_memory: int
    ff: int
    dsp: int
    ramb36: int
    ramb18: int
    cells: dict = field(default_factory=dict)
    top: str = "top"
    seconds: float = 0.0

    @property
    def bram36(self):
        """Block RAM in 36 Kb units: ``ramb36 + ramb18 / 2``."""
        return self.ramb36 + self.ramb18 / 2

    def percent_of(self, device):
        """Utilization of ``device`` in percent.

        Parameters
        ----------
        device : str or Device
            A key of :data:`XILINX_DEVICES` (``"xc7a35t"``, ``"xc7a100t"``) or a
            :class:`~amaranth_nn.devices.Device`.

        Returns
        -------
        dict
            ``{"lut": ..., "ff": ..., "dsp": ..., "bram36": ...}``, floats.

        Raises
        ------
        ValueError
            If ``device`` is an unknown name.
        """
        if isinstance(device, str):
            if device not in XILINX_DEVICES:
                raise ValueError(f"Device must be one of {', '.join(XILINX_DEVICES)} or a "
                                 f"Device, not {device!r}")
            device = XILINX_DEVICES[device]
        elif not isinstance(device, Device):
            raise TypeError(f"Device must be a device name or a Device, not {device!r}")
        return {
            "lut": 100 * self.lut / device.lut,
            "ff": 100 * self.ff / device.ff,
            "dsp": 100 * self.dsp / device.dsp,
            "bram36": 100 * self.bram36 / device.bram,
        }

    def summary(self):
        """One line: ``LUT 123 (logic 100, memory 23), FF 456, DSP48E1 7, BRAM36 1.5``."""
        return (f"LUT {self.lut} (logic {self.lut_logic}, memory {self.lut_memory}), "
                f"FF {self.ff}, DSP48E1 {self.dsp}, BRAM36 {self.bram36:g} "
                f"(RAMB36 {self.ramb36}, RAMB18 {self.ramb18})")


@dataclass(frozen=True)
class PnrResult:
    """Post-route results of nextpnr.

    Members
    -------
    family : str
        ``"ecp5"`` or ``"ice40"``.
    fmax : dict of str to float
        Achieved frequency in MHz of every clock.
    constraint : dict of str to float
        Constrained frequency in MHz of every clock.
    utilization : dict of str to (int, int)
        ``(used, available)`` of every resource type nextpnr lists.
    critical_paths : list of dict
        nextpnr's critical paths (JSON report format: ``from``, ``to``, ``path`` steps with
        ``type``, ``delay`` in ns, ``from``/``to`` cell and port, ``net``). Empty when parsed
        from a log.
    device : str
        As given to nextpnr (``"85k"``, ``"up5k"``), or empty if unknown.
    seconds : float
        Wall time of synthesis plus place-and-route (0 when parsed from files).
    """

    family: str
    fmax: dict
    constraint: dict = field(default_factory=dict)
    utilization: dict = field(default_factory=dict)
    critical_paths: list = field(default_factory=list)
    device: str = ""
    seconds: float = 0.0

    _KINDS = {
        "ecp5": {"lut": ("TRELLIS_COMB",), "ff": ("TRELLIS_FF",), "dsp": ("MULT18X18D",),
                 "bram": ("DP16KD",)},
        "ice40": {"lut": ("ICESTORM_LC",), "ff": ("ICESTORM_LC",), "dsp": ("ICESTORM_DSP",),
                  "bram": ("ICESTORM_RAM",)},
    }

    @property
    def fmax_mhz(self):
        """The lowest achieved clock frequency in MHz, or ``None`` if nextpnr timed no clock."""
        return min(self.fmax.values()) if self.fmax else None

    def _used(self, kind):
        return sum(self.utilization.get(name, (0, 0))[0]
                   for name in self._KINDS.get(self.family, {}).get(kind, ()))

    @property
    def lut(self):
        """LUT4s: ``TRELLIS_COMB`` on ECP5, logic cells ``ICESTORM_LC`` on iCE40."""
        return self._used("lut")

    @property
    def ff(self):
        """Flip-flops: ``TRELLIS_FF`` on ECP5; on iCE40 the logic cells (each has a LUT+FF)."""
        return self._used("ff")

    @property
    def dsp(self):
        """``MULT18X18D`` on ECP5, ``ICESTORM_DSP`` (SB_MAC16) on iCE40."""
        return self._used("dsp")

    @property
    def bram(self):
        """``DP16KD`` (18 Kb) on ECP5, ``ICESTORM_RAM`` (4 Kb) on iCE40."""
        return self._used("bram")

    def describe_critical_path(self, index=0, *, max_steps=14):
        """A critical path as readable lines: every step with its delay.

        Parameters
        ----------
        index : int
            0 for the slowest path nextpnr reported, 1 for the next, ...
        max_steps : int
            Longer paths (carry chains) show their first and last steps and one line for the
            steps in between.

        Returns
        -------
        str
            Empty if the result has no critical paths (e.g. parsed from a log).
        """
        if not self.critical_paths:
            return ""
        paths = sorted(self.critical_paths,
                       key=lambda p: -sum(step.get("delay", 0) for step in p.get("path", [])))
        path = paths[index]
        steps = path.get("path", [])
        total = sum(step.get("delay", 0) for step in steps)
        speed = f" ({1000 / total:.1f} MHz)" if total else ""
        lines = [f"{path.get('from', '?')} -> {path.get('to', '?')}: {total:.2f} ns{speed}"]
        shown = list(enumerate(steps))
        if len(steps) > max_steps:
            head, tail = max_steps // 2, max_steps - max_steps // 2 - 1
            skipped = steps[head:len(steps) - tail]
            shown = shown[:head] + [(None, skipped)] + shown[len(steps) - tail:]
        for _, step in shown:
            if isinstance(step, list):
                delay = sum(s.get("delay", 0) for s in step)
                lines.append(f"  {'...':9} {delay:6.2f} ns  {len(step)} more steps")
                continue
            source, sink = step.get("from", {}), step.get("to", {})
            where = f"{source.get('cell', '?')}.{source.get('port', '?')}"
            if step.get("type") == "routing":
                where += f" -> {sink.get('cell', '?')}.{sink.get('port', '?')}"
                if step.get("net"):
                    where += f" (net {step['net']})"
            elif step.get("type") == "logic":
                where = f"{source.get('cell', '?')}: {source.get('port')} -> {sink.get('port')}"
            lines.append(f"  {step.get('type', '?'):9} {step.get('delay', 0):6.2f} ns  {where}")
        return "\n".join(lines)

    def summary(self):
        """One line: Fmax and the main resources."""
        fmax = ", ".join(f"{clock} {mhz:.1f} MHz" for clock, mhz in self.fmax.items()) or "-"
        return (f"Fmax {fmax}; LUT {self.lut}, FF {self.ff}, DSP {self.dsp}, "
                f"BRAM {self.bram}")


def parse_yosys_stat(stat, *, top="top", seconds=0.0):
    """Xilinx utilization from yosys ``stat -json`` output.

    Parameters
    ----------
    stat : dict, str or os.PathLike
        The parsed JSON, its text, or the path of the file ``tee -o FILE stat -json`` wrote.

    Returns
    -------
    XilinxUtilization
        Counts of the whole design (``"design"`` totals, or the sum over modules).
    """
    if isinstance(stat, (str, os.PathLike)) and not str(stat).lstrip().startswith("{"):
        stat = Path(stat).read_text()
    if isinstance(stat, str):
        stat = json.loads(stat)
    if "design" in stat and "num_cells_by_type" in stat["design"]:
        cells = dict(stat["design"]["num_cells_by_type"])
    else:
        cells = {}
        for module in stat.get("modules", {}).values():
            for cell, count in module.get("num_cells_by_type", {}).items():
                cells[cell] = cells.get(cell, 0) + count
    lut_logic, lut_memory = _xilinx_luts(cells)
    return XilinxUtilization(
        lut=lut_logic + lut_memory,
        lut_logic=lut_logic,
        lut_memory=lut_memory,
        ff=sum(cells.get(cell, 0) for cell in _XILINX_FF),
        dsp=cells.get("DSP48E1", 0),
        ramb36=_xilinx_ramb(cells, 36),
        ramb18=_xilinx_ramb(cells, 18),
        cells=cells,
        top=top,
        seconds=seconds,
    )


def _xilinx_luts(cells):
    """``(logic, memory)``: LUT1 to LUT6, and the LUTs of LUT-memory primitives."""
    return (sum(cells.get(f"LUT{k}", 0) for k in range(1, 7)),
            sum(cells.get(cell, 0) * luts for cell, luts in _XILINX_LUTRAM.items()))


def _xilinx_ramb(cells, size):
    return cells.get(f"RAMB{size}E1", 0) + cells.get(f"FIFO{size}E1", 0)


def resource_counts(cells, family):
    """LUT, FF, DSP, block RAM and carry cells in yosys's cell counts for ``family``.

    ``LUT`` counts LUT4s on ECP5 and iCE40 (a CCU2C carry cell holds two of them; an ECP5
    LUT-RAM cell takes two) and Vivado's "Slice LUTs" on xc7; ``BRAM`` counts RAMB36 (a RAMB18
    is a half), DP16KD or SB_RAM40_4K; ``carry`` counts CARRY4, CCU2C or SB_CARRY cells (on
    iCE40 a carry takes a logic cell's carry logic, which its LUT may share).

    Parameters
    ----------
    cells : dict
        ``{cell type: count}`` as ``stat -json`` gives it.
    family : str
        ``"xc7"``, ``"ecp5"`` or ``"ice40"``.
    """
    def count(*names):
        return sum(cells.get(name, 0) for name in names)

    if family == "xc7":
        return {"LUT": sum(_xilinx_luts(cells)), "FF": count(*_XILINX_FF),
                "DSP": count("DSP48E1"),
                "BRAM": _xilinx_ramb(cells, 36) + _xilinx_ramb(cells, 18) / 2,
                "carry": count("CARRY4")}
    if family == "ecp5":
        return {"LUT": count("LUT4") + 2 * count("CCU2C") + 2 * count("TRELLIS_DPR16X4"),
                "FF": count("TRELLIS_FF"), "DSP": count("MULT18X18D"), "BRAM": count("DP16KD"),
                "carry": count("CCU2C")}
    if family == "ice40":
        rams = sum(n for name, n in cells.items() if "SB_RAM40_4K" in name)
        macs = sum(n for name, n in cells.items() if "SB_MAC16" in name)
        return {"LUT": count("SB_LUT4"),
                "FF": sum(n for name, n in cells.items() if name.startswith("SB_DFF")),
                "DSP": macs, "BRAM": rams, "carry": count("SB_CARRY")}
    raise ValueError(f"Family must be 'xc7', 'ecp5' or 'ice40', not {family!r}")


def _family_of(names):
    if any(name.startswith("TRELLIS") or name in ("MULT18X18D", "DP16KD") for name in names):
        return "ecp5"
    if any(name.startswith("ICESTORM") for name in names):
        return "ice40"
    return ""


def parse_nextpnr_report(report, *, family=None):
    """Read a nextpnr ``--report`` JSON file.

    Parameters
    ----------
    report : dict, str or os.PathLike
        The parsed JSON or the path of the file.
    family : str, optional
        ``"ecp5"`` or ``"ice40"``; by default inferred from the resource names.

    Returns
    -------
    PnrResult
        With ``seconds = 0``.

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    ValueError
        If the file is not a nextpnr report.
    """
    source = "report"
    if not isinstance(report, dict):
        source = str(report)
        path = Path(report)
        if not path.exists():
            raise FileNotFoundError(f"nextpnr report {path} does not exist")
        try:
            report = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not a nextpnr JSON report: {error}") from None
    if not isinstance(report, dict) or "fmax" not in report or "utilization" not in report:
        raise ValueError(f"{source} is not a nextpnr JSON report (no 'fmax' and "
                         f"'utilization' fields)")
    fmax = {clock: float(v["achieved"]) for clock, v in report["fmax"].items()}
    constraint = {clock: float(v["constraint"]) for clock, v in report["fmax"].items()
                  if "constraint" in v}
    utilization = {kind: (int(v["used"]), int(v["available"]))
                   for kind, v in report["utilization"].items()}
    return PnrResult(family=family or _family_of(utilization), fmax=fmax,
                     constraint=constraint, utilization=utilization,
                     critical_paths=list(report.get("critical_paths", [])))


_FMAX_LINE = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([0-9.]+) MHz"
                        r"(?:\s+\((?:PASS|FAIL) at ([0-9.]+) MHz\))?")
_UTIL_LINE = re.compile(r"^Info:\s+([A-Za-z0-9_]+):\s+(\d+)/\s*(\d+)\s+\d+%", re.MULTILINE)


def parse_nextpnr_log(log, *, family=None):
    """Read the Fmax and utilization from a nextpnr log (Amaranth's ``{name}.tim``).

    The last "Max frequency for clock" line of each clock is the post-route figure. Critical
    paths are not parsed (use the JSON report for those).

    Parameters
    ----------
    log : str or os.PathLike
        The log's path, or its text.
    family : str, optional
        As for :func:`parse_nextpnr_report`.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    ValueError
        If the text has no Fmax line (nextpnr failed or did not reach routing).
    """
    text = log
    if isinstance(log, os.PathLike) or (isinstance(log, str) and "\n" not in log):
        path = Path(log)
        if not path.exists():
            raise FileNotFoundError(f"nextpnr log {path} does not exist")
        text = path.read_text(errors="replace")
    fmax, constraint = {}, {}
    for clock, achieved, target in _FMAX_LINE.findall(text):
        fmax[clock] = float(achieved)
        if target:
            constraint[clock] = float(target)
    if not fmax:
        raise ValueError("The nextpnr log has no 'Max frequency for clock' line; did "
                         "place-and-route finish?")
    utilization = {}
    for kind, used, available in _UTIL_LINE.findall(text):
        utilization[kind] = (int(used), int(available))
    return PnrResult(family=family or _family_of(utilization), fmax=fmax,
                     constraint=constraint, utilization=utilization)


def nextpnr_report_opts(name="top"):
    """``nextpnr_opts`` for ``platform.build()`` that make nextpnr write ``{name}.report.json``
    into the build directory, for :func:`read_build_report`."""
    return f"--report {name}.report.json"


def read_build_report(build_dir, name="top", *, family=None):
    """Results of a nextpnr run in an Amaranth build directory.

    Reads ``{name}.report.json`` (written when the build passed
    ``nextpnr_opts=nextpnr_report_opts(name)``), or else the nextpnr log ``{name}.tim``.

    Parameters
    ----------
    build_dir : str or os.PathLike
    name : str
        The build's top name (``platform.build(..., name=...)``).
    family : str, optional
        ``"ecp5"`` or ``"ice40"``; by default inferred.

    Returns
    -------
    PnrResult

    Raises
    ------
    FileNotFoundError
        If neither file exists; the message names both.
    """
    build_dir = Path(build_dir)
    report = build_dir / f"{name}.report.json"
    if report.exists():
        return parse_nextpnr_report(report, family=family)
    log = build_dir / f"{name}.tim"
    if log.exists():
        return parse_nextpnr_log(log, family=family)
    raise FileNotFoundError(f"No nextpnr results in {build_dir}: neither {report.name} (pass "
                            f"nextpnr_opts={nextpnr_report_opts(name)!r} to platform.build) "
                            f"nor the log {log.name} exists")
