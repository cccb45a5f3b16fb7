"""Radiona ULX3S with the ECP5-85F: Lattice LFE5U-85F, 25 MHz clock, USB-UART on FT231X.

LEDs: D0 heartbeat, D1 busy, D2 error, D3 a good frame arrived, D4-D7 the low 4 bits of the
last class.
"""

from amaranth_boards.ulx3s import ULX3S_85F_Platform

from amaranth_nn.devices import DEVICES

from .board import Board

__all__ = ["ULX3S_85F"]

ULX3S_85F = Board(
    name="ulx3s", platform=ULX3S_85F_Platform,
    description="Radiona ULX3S (ECP5 LFE5U-85F, 25 MHz)", device=DEVICES["lfe5u-85f"],
    leds=((0, ("heartbeat",)), (1, ("busy",)), (2, ("error",)), (3, ("activity",)),
          (4, ("class0",)), (5, ("class1",)), (6, ("class2",)), (7, ("class3",))),
    toolchains=("Trellis",))
