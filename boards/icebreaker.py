"""1BitSquared iCEBreaker: Lattice iCE40UP5K, 12 MHz clock, USB-UART on FT2232H.

The iCE40UP5K has 5280 logic cells, 8 SB_MAC16 DSPs and 30 block RAMs, so the network is folded
much further than on the bigger boards. The build picks the folding (the smallest
power-of-two target II whose estimate fits, :mod:`amaranth_nn.build`): for the default digits
model (64 -> 32 -> 16 -> 10) target II 256, ``((2, 4), (1, 2), (1, 1))``, 11 multipliers, the
3 that the DSPs cannot hold built from logic (yosys ``synth_ice40 -dsp``). At 12 MHz that is
still 47 k inferences/s, far above what the 115200 baud UART carries. Both conv models fit
at the folding the build picks, MNIST-1D only at its most folded design, at 89 % of the
logic cells (``docs/boards.md``).

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
    # nextpnr's analytic placer spreads the cells to at most its beta of each region's sites
    # (0.9 by default); at MNIST-1D's 89 % of the logic cells its legaliser then failed after
    # 7 minutes with the default seed, where at 1.0 the default seed and seeds 2 and 3 each
    # placed and routed in 57-79 s; the digits build loses about 2 % of its Fmax
    # (docs/boards.md, "Placement and routing near capacity").
    toolchain_options={"synth_opts": "-dsp", "nextpnr_opts": "--placer-heap-beta 1.0"},
    toolchains=("IceStorm",))
