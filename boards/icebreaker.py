"""1BitSquared iCEBreaker: Lattice iCE40UP5K, 12 MHz clock, USB-UART on FT2232H.

The iCE40UP5K has 5280 logic cells and 8 SB_MAC16 DSPs, so the network is folded much further
than on the bigger boards: a target II of 512 cycles, which for the default digits model
(64 -> 32 -> 16 -> 10) is ``((2, 2), (1, 1), (1, 1))``: 6 multipliers, all in DSPs
(yosys ``synth_ice40 -dsp``). At 12 MHz that is still 23 k inferences/s, far above what the
115200 baud UART carries. Neither conv model (MNIST-1D, the 8x8 digits conv model) fits at any
folding: their most folded designs need 8032 and 5902 logic cells (``docs/boards.md``), and the
build says so before any tool runs.

LEDs: the red LED shows errors, the green LED the heartbeat and activity.
"""

from amaranth_boards.icebreaker import ICEBreakerPlatform

from amaranth_nn.devices import DEVICES

from .board import Board

__all__ = ["ICEBREAKER"]

ICEBREAKER = Board(
    name="icebreaker", platform=ICEBreakerPlatform,
    description="1BitSquared iCEBreaker (iCE40UP5K, 12 MHz)", device=DEVICES["ice40up5k"],
    leds=((0, ("error",)), (1, ("heartbeat", "activity"))),
    toolchain_options={"synth_opts": "-dsp"}, toolchains=("IceStorm",))
