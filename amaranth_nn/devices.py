"""The FPGAs of the supported boards: their resources, and how their tools map multipliers.

:data:`DEVICES` is the one table of device totals; the boards, the synthesis reports and the
fit check before synthesis (:mod:`amaranth_nn.estimate`) all read it.
"""

from dataclasses import dataclass

__all__ = ["DspBlock", "Device", "DEVICES", "get_device"]


@dataclass(frozen=True)
class DspBlock:
    """How yosys maps a multiplier to a family's DSP blocks (its ``mul2dsp`` parameters).

    A product narrower than ``y_min`` bits, or with an operand narrower than 2 bits, is built
    from LUTs. A wider one is split into tiles of ``a_max`` by ``b_max`` signed bits (one less
    per tile boundary for the sign), one DSP block each.

    Members
    -------
    a_max, b_max : int
        Signed operand widths of one block.
    y_min : int
        Narrowest product that yosys puts into a block.
    """

    a_max: int
    b_max: int
    y_min: int

    def blocks(self, a_bits, b_bits, y_bits):
        """DSP blocks for one multiplier of ``a_bits`` x ``b_bits`` signed bits with a
        ``y_bits``-bit product; 0 when it goes to LUTs."""
        if min(a_bits, b_bits) < 2 or y_bits < self.y_min:
            return 0
        a_bits, b_bits = max(a_bits, b_bits), min(a_bits, b_bits)
        if a_bits <= self.a_max and b_bits <= self.b_max:
            return 1
        tiles_a = -(-(a_bits - 1) // (self.a_max - 1))
        tiles_b = -(-(b_bits - 1) // (self.b_max - 1))
        return tiles_a * tiles_b


@dataclass(frozen=True)
class Device:
    """Resources of one FPGA.

    Members
    -------
    name : str
        Part name, e.g. ``"xc7a35t"``.
    family : str
        ``"xc7"``, ``"ecp5"`` or ``"ice40"``.
    lut, ff, dsp, bram : int
        LUTs (LUT6 on xc7, LUT4 on ECP5, logic cells on iCE40: a LUT4 and a flip-flop each),
        flip-flops, DSP blocks and block RAMs.
    lut_name, dsp_name, bram_name : str
        What the tools call them.
    bram_bits : int
        Bits of one block RAM.
    dsp_block : DspBlock
        How yosys maps inferred multipliers to its DSP blocks.
    lut_multipliers : bool
        Whether a build builds the multipliers of some layers from logic when the DSP blocks
        run out (:func:`amaranth_nn.estimate.spill_to_logic`): on the small iCE40UP5K, whose 8
        DSP blocks run out long before its logic, and where the estimate's LUT multiplier
        model is measured. On the larger parts a more folded design is taken instead.
    running_accumulators : bool
        Whether a build's dense layers keep accumulators that never restart
        (:attr:`amaranth_nn.plan.DensePlan.running_accumulators`): on the ECP5, where the
        select before the accumulator's carry chain was the critical path; elsewhere the
        select costs no extra level (xc7 packs it into the adder's LUTs) and the two more
        registers per PE would only cost area.
    """

    name: str
    family: str
    lut: int
    ff: int
    dsp: int
    bram: int
    lut_name: str
    dsp_name: str
    bram_name: str
    bram_bits: int
    dsp_block: DspBlock
    lut_multipliers: bool = False
    running_accumulators: bool = False

    @property
    def totals(self):
        """``{"LUT": ..., "FF": ..., "DSP": ..., "BRAM": ...}``."""
        return {"LUT": self.lut, "FF": self.ff, "DSP": self.dsp, "BRAM": self.bram}

    def unit(self, kind):
        """The primitive one unit of ``kind`` (``"LUT"``, ``"FF"``, ``"DSP"``, ``"BRAM"``) is."""
        return {"LUT": self.lut_name, "FF": "FF", "DSP": self.dsp_name,
                "BRAM": self.bram_name}[kind]


# synth_xilinx: DSP_A_MAXWIDTH=25, DSP_B_MAXWIDTH=18, DSP_Y_MINWIDTH=9 (measured: 4x4-bit products
# stay in LUTs, 6x5 take one DSP48E1, 26x19 take four). synth_ice40 -dsp: 16x16, DSP_Y_MINWIDTH=11.
# ECP5: the ECP5 target instantiates one MULT18X18D per multiplier of at most 18x18 bits.
_XC7_DSP = DspBlock(a_max=25, b_max=18, y_min=9)
_ICE40_DSP = DspBlock(a_max=16, b_max=16, y_min=11)
_ECP5_DSP = DspBlock(a_max=18, b_max=18, y_min=2)

#: The devices of the supported boards, by part name.
DEVICES = {device.name: device for device in (
    # xc7a35t: 20800 LUT6, 41600 FF, 90 DSP48E1, 50 RAMB36E1 (each two RAMB18E1).
    Device("xc7a35t", "xc7", lut=20800, ff=41600, dsp=90, bram=50, lut_name="LUT6",
           dsp_name="DSP48E1", bram_name="RAMB36E1", bram_bits=36864, dsp_block=_XC7_DSP),
    Device("xc7a100t", "xc7", lut=63400, ff=126800, dsp=240, bram=135, lut_name="LUT6",
           dsp_name="DSP48E1", bram_name="RAMB36E1", bram_bits=36864, dsp_block=_XC7_DSP),
    # LFE5U-85F: 83640 LUT4, 83640 FF, 156 MULT18X18D, 208 DP16KD (18 kbit).
    Device("lfe5u-85f", "ecp5", lut=83640, ff=83640, dsp=156, bram=208, lut_name="LUT4",
           dsp_name="MULT18X18D", bram_name="DP16KD", bram_bits=18432, dsp_block=_ECP5_DSP,
           running_accumulators=True),
    # iCE40UP5K: 5280 logic cells (LUT4 + FF), 8 SB_MAC16, 30 SB_RAM40_4K (SPRAM unused).
    Device("ice40up5k", "ice40", lut=5280, ff=5280, dsp=8, bram=30, lut_name="logic cells",
           dsp_name="SB_MAC16", bram_name="SB_RAM40_4K", bram_bits=4096, dsp_block=_ICE40_DSP,
           lut_multipliers=True),
)}


def get_device(name):
    """The :class:`Device` called ``name``.

    Raises
    ------
    ValueError
        If there is no such device; the message lists the known ones.
    """
    try:
        return DEVICES[name]
    except (KeyError, TypeError):
        raise ValueError(f"Device must be one of {', '.join(DEVICES)}, not {name!r}") from None
