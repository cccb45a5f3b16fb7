"""The board description shared by the board modules and the build."""

from dataclasses import dataclass, field

from amaranth_nn.devices import Device

__all__ = ["Board"]


@dataclass(frozen=True)
class Board:
    """What the build needs to know about one board.

    Members
    -------
    name : str
        The ``--board`` name.
    platform : type
        The amaranth-boards platform class.
    description : str
        One line for ``--help`` and the report.
    device : amaranth_nn.devices.Device
        The FPGA: its resources, for the fit check and the utilization percentages.
    leds : tuple of (int, tuple of str)
        ``led`` resource number and the status signals shown on it (see
        :class:`boards.harness.BoardTop`).
    baud : int
        Default UART baud rate.
    toolchain_options : dict
        Extra keyword arguments for ``platform.build`` (e.g. ``synth_opts``).
    toolchains : tuple of str
        The amaranth toolchain names the build supports for this board (``--toolchain``); the
        first is the default.
    """

    name: str
    platform: type
    description: str
    device: Device
    leds: tuple
    baud: int = 115200
    toolchain_options: dict = field(default_factory=dict)
    toolchains: tuple = ()

    @property
    def family(self):
        """``"xc7"``, ``"ecp5"`` or ``"ice40"`` (the device's): selects the build flow."""
        return self.device.family

    @property
    def clk_freq(self):
        """The board clock in Hz (the platform's default clock)."""
        return self.platform().default_clk_frequency
