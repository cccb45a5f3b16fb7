"""Resources of a design before synthesis, and the fit check that a build runs first.

Everything here is computed from the :class:`~amaranth_nn.network_plan.NetworkPlan` in milliseconds,
for every block kind (dense, conv, pooling, scale-and-shift) and the width converters:

- **DSP blocks**, exactly: each multiplier (of a dense layer, of a conv block's dense engine,
  of a scale-and-shift lane) needs the blocks its operand and product widths take on the device
  (:meth:`amaranth_nn.devices.DspBlock.blocks`; narrow products go to LUTs).
- **Block RAM**, exactly for the ROMs that ask for it (those of at least
  :data:`~amaranth_nn.plan.BLOCK_ROM_BITS` bits on xc7 and iCE40; the ECP5 target builds its
  ROMs from LUTs below :data:`~amaranth_nn.targets.ECP5_BLOCK_ROM_BITS`), by the block's
  aspect ratios; for the line buffer banks of the window
  generators (convolution, pooling) and a conv engine's input buffer, by their depth
  (:data:`RAM_BLOCK_DEPTH`; iCE40 has no LUT RAM, so there every RAM is block RAM); plus the
  harness's.
- **LUTs and flip-flops**, estimated: a linear model per part and family over the plan's
  structural features (:func:`block_parts`: a dense layer or engine's adder-tree and accumulator
  bits, LUT-ROM bits, operand widths and beats, :func:`layer_features`; a window generator's
  LUT RAM, lane rotations and tables, :func:`window_features`; a reducer's registers), with
  coefficients fitted to yosys and nextpnr results. ``python bench/bench_estimate.py`` prints
  the estimate next to the tools' counts for a set of designs, and ``--fit`` refits the
  coefficients; the figures it measured when they were last fitted are in
  ``docs/synthesis.md``.

:func:`check_fit` compares a design with a device; :func:`fitting_target_ii` finds the
smallest target II whose design fits, for the message that a design which does not fit gets,
and for the folding a board build picks.
"""

import math
from dataclasses import dataclass

from .conv_plan import ConvPlan
from .devices import Device
from .folding import choose_folding, smallest_ii
from .network_plan import NetworkPlan
from .plan import BLOCK_ROM_BITS, DensePlan
from .pool_plan import PoolPlan, ReducerPlan
from .scale_plan import ScalePlan
from .targets import ECP5_BLOCK_ROM_BITS, ice40_queue_in_block_ram
from .window_plan import WindowPlan

__all__ = ["Resources", "FitCheck", "DoesNotFit", "layer_features", "window_features",
           "reducer_features", "scale_features", "converter_features", "block_parts",
           "block_memories", "dsp_blocks", "block_rams", "block_ram_bounds", "estimate",
           "check_fit", "most_folded", "fitting_target_ii", "spill_to_logic", "plan_for_device",
           "FIT_MARGIN", "NARROW_OPERAND_BITS"]

#: Signed operand bits up to which a layer's multipliers may be built from logic when a
#: device's DSP blocks run out (:func:`spill_to_logic`): an 8 x 8-bit product is about 130
#: LUT4 and 24 flip-flops on iCE40 (``python bench/bench_breakdown.py --families ice40
#: --target-ii 256 --lut-multipliers 1,2``, against the same without the option).
NARROW_OPERAND_BITS = 10

#: Share of a device's LUTs and flip-flops that a design may take by the estimate; the
#: estimate can be off by about 20 % on designs unlike those it was fitted to.
FIT_MARGIN = 0.9


@dataclass(frozen=True)
class Resources:
    """Resource counts in a device's units (see :class:`~amaranth_nn.devices.Device`)."""

    lut: float = 0
    ff: float = 0
    dsp: int = 0
    bram: float = 0

    def __add__(self, other):
        return Resources(self.lut + other.lut, self.ff + other.ff, self.dsp + other.dsp,
                         self.bram + other.bram)

    def as_dict(self):
        """``{"LUT": ..., "FF": ..., "DSP": ..., "BRAM": ...}``, LUTs and FFs rounded."""
        return {"LUT": round(self.lut), "FF": round(self.ff), "DSP": self.dsp,
                "BRAM": self.bram}


class DoesNotFit(RuntimeError):
    """A design needs more of a resource than its device has."""


def _signed_bits(shape):
    return shape.width + (0 if shape.signed else 1)


def _per_multiplier(plan, device):
    """DSP blocks of one multiplier of a dense or scale-and-shift plan (0: built from LUTs,
    because the plan says so or the product is too narrow for the device's DSP blocks)."""
    if plan.lut_multipliers:
        return 0
    return device.dsp_block.blocks(_signed_bits(plan.x_shape), _signed_bits(plan.w_shape),
                                   plan.product_width)


def _engine(block):
    """The plan that holds a block's multipliers (a convolution's dense engine), or None for a
    block without multipliers."""
    if isinstance(block, ConvPlan):
        return block.dense
    if isinstance(block, PoolPlan):
        return None
    return block


def _logic_cost(block):
    """Operand bit pairs of a block's multipliers: what building them from logic costs."""
    engine = _engine(block)
    return engine.multipliers * _signed_bits(engine.x_shape) * _signed_bits(engine.w_shape)


def spill_to_logic(plan, device, *, harness=True):
    """``plan`` with as many of its layers' multipliers built from logic as its DSP blocks need
    to fit ``device``: of the layers with operands of at most :data:`NARROW_OPERAND_BITS`
    signed bits, the set that frees enough DSP blocks with the fewest operand bit pairs
    (:func:`_logic_cost`). ``plan`` itself when its DSP blocks fit, when no such set exists,
    or when the design with it does not fit either (by :func:`check_fit`, with the board
    harness if ``harness``): then the DSP blocks are what the fit check names. Only on a
    device whose ``lut_multipliers`` says so (the iCE40UP5K)."""
    need = sum(dsp_blocks(block, device) for block in plan.layers)
    if need <= device.dsp or not device.lut_multipliers:
        return plan
    candidates = [block for block in plan.layers if _engine(block) is not None
                  and dsp_blocks(block, device) > 0
                  and max(_signed_bits(_engine(block).x_shape),
                          _signed_bits(_engine(block).w_shape)) <= NARROW_OPERAND_BITS]
    # A 0/1 knapsack: the cheapest set of layers for each number of DSP blocks freed, counted
    # up to the number that must go.
    required = need - device.dsp
    cheapest = {0: (0, ())}
    for block in candidates:
        freed_here, cost_here = dsp_blocks(block, device), _logic_cost(block)
        for freed, (cost, layers) in list(cheapest.items()):
            total = min(required, freed + freed_here)
            if total not in cheapest or cost + cost_here < cheapest[total][0]:
                cheapest[total] = cost + cost_here, layers + (block.index,)
    if required not in cheapest:
        return plan
    spilled = plan.with_options(
        lut_multipliers=tuple(plan.lut_multipliers) + cheapest[required][1])
    return spilled if check_fit(spilled, device, harness=harness).fits else plan


def plan_for_device(plan, device, *, harness=True):
    """The :class:`~amaranth_nn.network_plan.NetworkPlan` a build for ``device`` takes at
    ``plan``'s folding: with the device's
    :attr:`~amaranth_nn.devices.Device.running_accumulators`, and its multipliers spilled to
    logic where the DSP blocks run out (:func:`spill_to_logic`)."""
    plan = plan.with_options(running_accumulators=device.running_accumulators)
    return spill_to_logic(plan, device, harness=harness)


def dsp_blocks(block, device):
    """DSP blocks of one block plan on ``device``: its multipliers times the blocks each takes
    (a convolution's are its dense engine's; a pooling block has none)."""
    engine = _engine(block)
    if engine is None:
        return 0
    return engine.multipliers * _per_multiplier(engine, device)


#: Block RAM aspect ratios, ``(width, depth, units)``, by family; xc7 counts RAMB36E1 units
#: (a RAMB18E1 is half of one).
_BRAM_SHAPES = {
    "xc7": ((36, 512, 0.5), (18, 1024, 0.5), (9, 2048, 0.5), (4, 4096, 0.5), (2, 8192, 0.5),
            (1, 16384, 0.5), (72, 512, 1), (36, 1024, 1), (18, 2048, 1), (9, 4096, 1),
            (4, 8192, 1), (2, 16384, 1), (1, 32768, 1)),
    "ice40": ((16, 256, 1), (8, 512, 1), (4, 1024, 1), (2, 2048, 1)),
    "ecp5": ((36, 512, 1), (18, 1024, 1), (9, 2048, 1), (4, 4096, 1), (2, 8192, 1),
             (1, 16384, 1)),
}


def block_rams(depth, width, device):
    """Block RAMs (in the device's units) for one memory of ``depth`` words of ``width`` bits:
    the cheapest aspect ratio."""
    return min(math.ceil(width / w) * math.ceil(depth / d) * units
               for w, d, units in _BRAM_SHAPES[device.family])


def block_ram_bounds(memories, device):
    """Lower bounds on the block RAMs (in the device's units) that can hold ``memories``
    (``[(depth, width)]``, each read a word a cycle), however they are packed: by the bits
    read per cycle (a block's widest read) and by the bits held. Returns ``(by_reads,
    by_bits)``."""
    shapes = _BRAM_SHAPES[device.family]
    port = max(width / units for width, _, units in shapes)
    size = max(width * depth / units for width, depth, units in shapes)
    return (sum(width for _, width in memories) / port,
            sum(depth * width for depth, width in memories) / size)


def _in_block_ram(depth, width, device):
    """Whether a ROM of ``depth`` x ``width`` ends up in block RAM on ``device``: on ECP5 from
    :data:`~amaranth_nn.targets.ECP5_BLOCK_ROM_BITS` (its target builds smaller ROMs from
    LUTs, see :mod:`amaranth_nn.targets`); from :data:`~amaranth_nn.plan.BLOCK_ROM_BITS` bits
    on xc7 and iCE40, where yosys also moves ROMs of 128 words or more into block RAM on its
    own (measured: 160 x 8 goes, 40 x 32 stays in logic)."""
    if device.family == "ecp5":
        return depth * width >= ECP5_BLOCK_ROM_BITS
    return depth * width >= BLOCK_ROM_BITS or (device.family == "ice40" and depth >= 128)


def _ram_in_block_ram(depth, width, device, *, bank=False):
    """Whether a RAM of ``depth`` x ``width`` (a line buffer bank with ``bank``, else an input
    buffer or a queue) ends up in block RAM on ``device``.

    On iCE40, which has no LUT RAM, above :data:`ICE40_LOGIC_RAM_BITS` bits and
    :data:`ICE40_LOGIC_RAM_DEPTH` words; on xc7 from :data:`XC7_RAM_BLOCK_DEPTH` words (256 x 8
    is LUT RAM, 2048 x 8 a RAMB18); on ECP5 never below
    :data:`~amaranth_nn.plan.BLOCK_ROM_BITS` bits (the ECP5 target asks for LUT RAM), a line
    buffer bank from there (a ``DP16KD`` instance), and another RAM from there when yosys
    chooses it: when it would take more than :data:`ECP5_LUT_RAM_CELLS` TRELLIS_DPR16X4 (16 x
    4 bits each) per ``DP16KD`` it takes in block RAM.
    """
    if device.family == "ice40":
        return depth * width > ICE40_LOGIC_RAM_BITS and depth > ICE40_LOGIC_RAM_DEPTH
    if device.family == "ecp5":
        if depth * width < BLOCK_ROM_BITS:
            return False
        cells = -(-depth // 16) * -(-width // 4)
        return bank or cells > ECP5_LUT_RAM_CELLS * block_rams(depth, width, device)
    return depth >= XC7_RAM_BLOCK_DEPTH


def _roms(layer):
    """``(depth, width)`` of every ROM of a layer."""
    return [layer.weight_rom_shape] * layer.pe + [layer.bias_rom_shape]


#: The depth from which yosys puts a RAM into block RAM rather than LUT RAM on xc7.
XC7_RAM_BLOCK_DEPTH = 512

#: The most bits, and the most words, of a RAM that yosys builds from flip-flops on iCE40; one
#: with more of both takes SB_RAM40_4K. Measured: 8 x 8 and 9 x 8 (input buffers, queues) and
#: the output queues (``CreditQueue`` memories) of 4 x 20, 4 x 24, 3 x 32 and 2 x 64 stay in
#: flip-flops; 12 x 8, 9 x 24, 16 x 8, 5 x 16, 6 x 16, 7 x 12 and 8 x 10 take a block RAM.
ICE40_LOGIC_RAM_BITS = 72
ICE40_LOGIC_RAM_DEPTH = 4

#: The most TRELLIS_DPR16X4 per ``DP16KD`` it would take in block RAM that yosys builds a RAM
#: of 2048 bits or more from on ECP5 (a larger one goes to block RAM). Measured, yosys
#: ``synth_ecp5`` of a RAM alone: 64 x 64 (64 cells, 2 DP16KD), 64 x 32, 96 x 32, 80 x 36,
#: 128 x 16, 128 x 24, 64 x 72 and 40 x 72 go to block RAM; 64 x 48 (48 cells, 2 DP16KD),
#: 64 x 40, 48 x 64, 48 x 48, 32 x 64, 32 x 72 and 32 x 128 stay in LUT RAM.
ECP5_LUT_RAM_CELLS = 24


def _tree_bits(layer):
    """Register bits of the adder trees: each level's nodes at their widths."""
    bits, nodes, level = 0, layer.simd, 0
    while nodes > 1:
        level += 1
        nodes = -(-nodes // 2)
        bits += nodes * min(layer.product_width + level, layer.acc_width)
    return layer.pe * bits


def layer_features(layer, device):
    """The structural features of a :class:`~amaranth_nn.plan.DensePlan` that its LUT and
    flip-flop counts are estimated from (each a count of bits or of items)."""
    in_dsp = _per_multiplier(layer, device) > 0
    lut_rom = sum(d * w for d, w in _roms(layer) if not _in_block_ram(d, w, device))
    x_bits, w_bits = layer.x_shape.width, layer.w_shape.width
    return {
        "one": 1,
        "tree": _tree_bits(layer),
        "acc": layer.pe * layer.acc_width,
        "out": layer.pe * layer.out_width,
        "lut_mult": 0 if in_dsp else layer.multipliers * x_bits * w_bits,
        "lut_rom": lut_rom,
        "beats": layer.in_beats,
        "w_data": layer.multipliers * w_bits,
        "x_data": layer.simd * x_bits,
        "products": 0 if in_dsp else layer.multipliers * layer.product_width,
        "first": layer.pe * layer.stages["tree"],
        "running": layer.pe * layer.acc_width if layer.running_accumulators else 0,
    }


def _lut_ram_luts(depth, width, device):
    """LUTs of one LUT RAM of ``depth`` x ``width`` (simple dual port): RAM32M (32 x 6 bits)
    or RAM64M (64 x 3) of 4 LUTs each on xc7; TRELLIS_DPR16X4 (16 x 4, counted as 2 LUT4) on
    ECP5; none on iCE40, which has no LUT RAM."""
    if device.family == "xc7":
        if depth <= 32:
            return 4 * -(-width // 6)
        return 4 * -(-width // 3) * -(-depth // 64)
    if device.family == "ecp5":
        return 2 * -(-width // 4) * -(-depth // 16)
    return 0


def window_features(window, device):
    """The structural features of a sliding-window generator
    (:class:`~amaranth_nn.window_plan.WindowPlan`): its LUT RAM (the line buffer banks that
    stay out of block RAM, and the output queue), the lane rotations, the per-beat table."""
    depth, width = window.line_buffer_shape
    banks = 0 if _ram_in_block_ram(depth, width, device, bank=True) else window.banks
    lanes = window.out_lanes * width
    addr_bits = (window.capacity - 1).bit_length()
    row_bits = max(1, (depth - 1).bit_length())
    oh, ow = window.grid_out
    return {
        "one": 1,
        "ram": (banks * _lut_ram_luts(depth, width, device)
                + _lut_ram_luts(window.fifo_depth, lanes, device)),
        # On iCE40 the queue's flip-flops, unless its memory is block RAM.
        "queue": (0 if device.family == "ice40"
                  and ice40_queue_in_block_ram(window.fifo_depth - 1, lanes)
                  else window.register_bits),
        "read": window.banks * (window.out_lanes * width + window.banks * row_bits),
        "write": window.banks * window.in_lanes * width,
        # The read side's parts on their own (the iCE40 model): each lane's choice of a bank,
        # each bank's registered word and its row address.
        "rotate": lanes * (window.banks - 1),
        "bank_bits": window.banks * width,
        "rows": window.banks * row_bits,
        "table": window.beats_per_window * window.out_lanes * addr_bits,
        "positions": (oh + ow) * (window.positions_in - 1).bit_length(),
    }


def reducer_features(reducer):
    """The structural features of a pooling reducer
    (:class:`~amaranth_nn.pool_plan.ReducerPlan`)."""
    return {
        "one": 1,
        "regs": reducer.register_bits,
        "lanes": reducer.lanes * reducer.partial_width,
        "ram": int(reducer.partials_in_ram),
    }


def scale_features(scale, device):
    """The structural features of a scale-and-shift block
    (:class:`~amaranth_nn.scale_plan.ScalePlan`)."""
    in_dsp = _per_multiplier(scale, device) > 0
    lut_rom = sum(rom.bits for rom in scale.roms if not _in_block_ram(rom.depth, rom.width,
                                                                     device))
    return {
        "one": 1,
        "acc": scale.lanes * scale.acc_width,
        "out": scale.lanes * scale.out_width,
        "x_data": scale.lanes * scale.x_shape.width,
        "lut_mult": 0 if in_dsp else scale.lanes * scale.x_shape.width * scale.w_shape.width,
        "lut_rom": lut_rom,
    }


def converter_features(converter):
    """The structural features of a :class:`~amaranth_nn.plan.ConverterPlan`."""
    return {
        "one": 1,
        "banks": converter.register_bits,
        "select": 2 * converter.out_lanes * converter.width * converter.out_beats,
        "stages": converter.select_bits,
    }


# Coefficients of the LUT and flip-flop models, by family: least squares with non-negative
# coefficients of per-layer yosys counts (synth_xilinx, synth_ecp5 with the ECP5 target,
# synth_ice40 -dsp; hierarchical runs: ``python bench/bench_estimate.py --fit --parts-only
# --no-conv --families F`` prints them) of the digits model at target II 16-1024 and random
# MLPs of 4- to 16-bit formats, 40 xc7 (mean error 5.8 % LUT, 6.2 % FF) and 40 ECP5 layers
# (11.9 %, 3.6 %), refitted for the dense engine with the arrival count and the held bias
# (issue 12), xc7 again after the generic target's memory reads moved their stages to the
# address (issue 12). iCE40: built with the iCE40 target, as the board build does, and fitted
# to the relative errors of the MLP layers and conv engines whose DSP blocks and block RAM fit
# the iCE40UP5K (``python bench/bench_estimate.py --fit --parts-only --families ice40``: 30
# parts, mean error 6.1 % LUT, 3.0 % FF). The width converter's, from four converters. On
# iCE40 the unit is the logic cell (a LUT4 and a flip-flop): nextpnr packs a flip-flop into the
# cell of the LUT that drives it when it can; _LOGIC_CELLS_PER_FF is the cells per flip-flop
# on top of the LUT4s, fitted to nextpnr's counts of iCEBreaker board builds. With the iCE40
# coefficients of that refit (``python -m amaranth_nn.build --board icebreaker --model M``):
# the digits model at target II 256, 2810 cells estimated for 2732 (+3 %); the digits conv
# model at target II 8192, 3988 for 4184 (-5 %); MNIST-1D's most folded design, 4732 for 4726
# (+0 %). ``running``, the bits of running accumulators (``DensePlan.running_accumulators``,
# which only ECP5 builds take): on ECP5 measured as the change of the whole digits model's
# counts at target II 1024, 256 and 64 (``python bench/bench_gateware.py --no-xilinx``: +73 to
# +244 LUT4, +91 to +241 FF for 55 to 148 bits); elsewhere counted, not measured (two
# subtractors and two registers a bit).
_LAYER_LUT = {
    "xc7": {"one": 50.9, "tree": 0.478, "out": 1.94, "lut_mult": 1.9, "lut_rom": 0.0157,
            "beats": 0.258, "x_data": 1.08, "first": 0.617, "running": 2.0},
    "ecp5": {"out": 2.68, "lut_rom": 0.093, "beats": 4.32, "w_data": 0.657, "x_data": 4.05,
             "running": 1.65},
    "ice40": {"one": 70.2, "acc": 0.618, "out": 3.14, "lut_mult": 2.51, "lut_rom": 0.138,
              "beats": 0.525, "w_data": 1.53, "running": 2.0},
}
_LAYER_FF = {
    "xc7": {"one": 19.5, "tree": 0.252, "acc": 0.874, "lut_rom": 0.0211, "beats": 0.221,
            "x_data": 2.44, "products": 2.63, "first": 5.17, "running": 2.0},
    "ecp5": {"one": 32.8, "tree": 1.58, "acc": 3.66, "lut_rom": 0.00311, "x_data": 3.66,
             "first": 0.521, "running": 1.65},
    "ice40": {"tree": 0.813, "out": 10.6, "lut_mult": 0.565, "lut_rom": 0.038, "beats": 0.437,
              "w_data": 0.546, "x_data": 9.6, "first": 1.75, "running": 2.0},
}
# The window generator's and the pooling reducer's: least squares with non-negative
# coefficients (``python bench/bench_estimate.py --fit``) of the per-module yosys counts
# (synth_xilinx, hierarchical) of the window generators and reducers of the MNIST-1D and 8x8
# digits conv models at their default foldings (10 generators, 5 reducers); a convolution's
# dense engine is estimated by the dense model above (-20 % to +22 % of its LUT counts
# there). ECP5 and iCE40: the xc7 coefficients, scaled (below). The scale-and-shift block's:
# the dense model's coefficients for the same structures, one lane a PE (not yet measured).
_WINDOW_LUT = {"xc7": {"ram": 1.36, "read": 0.123, "table": 0.128, "positions": 1.22}}
_WINDOW_FF = {"xc7": {"one": 70.4, "queue": 0.588, "write": 0.0275, "table": 0.0403,
                      "positions": 0.175}}
_REDUCER_LUT = {"xc7": {"one": 32.2, "lanes": 2.34}}
_REDUCER_FF = {"xc7": {"one": 16.2, "lanes": 4.1}}
# ECP5: scaled to the ULX3S board builds of both conv models at their default foldings (12445
# and 9925 LUT4 with the harness, where the xc7 coefficients at 1.5 LUT4 per LUT6 gave 20 % too
# few): 2.6 LUT4 per LUT6, 1.75 per LUT of LUT RAM.
_WINDOW_LUT["ecp5"] = {name: value * (1.75 if name == "ram" else 2.6)
                       for name, value in _WINDOW_LUT["xc7"].items()}
_WINDOW_FF["ecp5"] = _WINDOW_FF["xc7"]
# iCE40: the same refit as the dense model's (the generic target's generators, which the
# coefficients were fitted to before, have registered flags and queues in flip-flops that the
# iCE40 target does not), to the generators and reducers of both conv models at five foldings
# each and of MNIST-1D's first blocks: 27 generators, mean error 9.9 % LUT and 5.0 % FF; 13
# reducers, 0.3 % and 0.2 %. Its own features: ``rotate`` (each output lane's choice of a
# bank), ``bank_bits`` and ``rows`` (each bank's registered word and row address).
_WINDOW_LUT["ice40"] = {"one": 121.0, "read": 0.974, "rotate": 0.0473, "bank_bits": 1.17,
                        "table": 0.0281, "positions": 0.24}
_WINDOW_FF["ice40"] = {"one": 111.0, "bank_bits": 6.34, "rows": 2.47, "table": 0.0164,
                       "positions": 0.0519}
_REDUCER_LUT["ice40"] = {"regs": 1.83, "lanes": 0.547, "ram": 70.0}
_REDUCER_FF["ice40"] = {"one": 130.0, "regs": 0.625, "ram": 10.3}
_REDUCER_LUT["ecp5"] = {name: 1.5 * value for name, value in _REDUCER_LUT["xc7"].items()}
_REDUCER_FF["ecp5"] = _REDUCER_FF["xc7"]
_SCALE_LUT = {family: {"one": table.get("one", 15), "acc": table.get("acc", 3),
                       "out": table.get("out", 0), "lut_mult": table.get("lut_mult", 1.5),
                       "lut_rom": table.get("lut_rom", 0.07), "x_data": table.get("x_data", 0)}
              for family, table in _LAYER_LUT.items()}
_SCALE_FF = {family: {"one": table.get("one", 20), "acc": table.get("acc", 2),
                      "out": table.get("out", 0), "x_data": table.get("x_data", 3)}
             for family, table in _LAYER_FF.items()}
_CONVERTER_LUT = {"xc7": {"one": 40, "select": 0.4}, "ecp5": {"one": 30, "select": 2.4},
                  "ice40": {"one": 30, "select": 1.0}}
_CONVERTER_FF = {"one": 50, "banks": 1.0, "stages": 1.0}
_LOGIC_CELLS_PER_FF = 0.63

#: The board harness (UART, protocol, queues, reply memory, argmax, LEDs) by family: its
#: modules in ``python bench/bench_breakdown.py --model digits --target-ii 512 --harness``
#: (everything but ``top.network``; iCE40: LUT4 and flip-flops before packing into logic
#: cells; MNIST-1D's harness, also 80 output bits, is within 1 % on iCE40). xc7 and ECP5 as
#: measured after the harness's registered reply memory ports (496 LUT6 / 449 FF, 732 LUT4 /
#: 449 FF). iCE40 as measured before them (727 LUT4 / 557 FF after): its logic cells are
#: fitted to whole iCEBreaker builds (_LOGIC_CELLS_PER_FF), which the old figure still
#: matches within 3 % (docs/synthesis.md), and MNIST-1D's fit check has no room for a refit
#: of the harness alone.
_HARNESS = {
    "xc7": Resources(lut=496, ff=449),
    "ecp5": Resources(lut=732, ff=449),
    "ice40": Resources(lut=690, ff=450),
}

#: Words of the harness's reply memory besides the RESULT payload: the 7 counters and the
#: 18-byte INFO payload of :mod:`boards.protocol` (a test checks it against the harness).
HARNESS_REPLY_WORDS = 25


def _model(coefficients, features):
    return sum(coefficients.get(name, 0) * value for name, value in features.items())


def _harness(plan, device):
    """Resources of the board harness around ``plan``'s network: the base of its family, and on
    iCE40, which has no LUT RAM, block RAM for the input buffer and the reply memory (16-bit
    words: the counters, the RESULT payload a byte a word, the INFO payload)."""
    spec = plan.spec
    base = _HARNESS[device.family]
    if device.family != "ice40":
        return base
    in_width = spec.input_format.width
    result_bytes = spec.output_size * -(-spec.output_format.width // 8) + 2  # + argmax
    bram = (block_rams(plan.in_beats, plan.in_lanes * in_width, device)
            + block_rams(HARNESS_REPLY_WORDS + result_bytes, 16, device))
    return Resources(lut=base.lut, ff=base.ff, bram=bram)


def block_parts(block, device):
    """``[(model, features)]``: the parts of a block plan whose LUTs and flip-flops are
    estimated, each with the name of its coefficient tables (``"dense"``, ``"window"``,
    ``"reducer"``, ``"scale"``) and its features. A convolution is a window generator and a
    dense engine (its :attr:`~amaranth_nn.conv_plan.ConvPlan.dense`, estimated as a dense
    layer); a pooling block a window generator and a reducer."""
    if isinstance(block, DensePlan):
        return [("dense", layer_features(block, device))]
    if isinstance(block, ConvPlan):
        return [("window", window_features(block.window, device)),
                ("dense", layer_features(block.dense, device))]
    if isinstance(block, PoolPlan):
        return [("window", window_features(block.window, device)),
                ("reducer", reducer_features(block.reducer))]
    if isinstance(block, ScalePlan):
        return [("scale", scale_features(block, device))]
    raise TypeError(f"Block must be a DensePlan, ConvPlan, PoolPlan or ScalePlan, not {block!r}")


def block_memories(block, device):
    """``[(depth, width)]`` of every memory of a block plan that goes to block RAM on
    ``device``: ROMs (:func:`_in_block_ram`), line buffer banks, the pooling reducers' RAMs of
    partial results and the dense engines' input buffers (:func:`_ram_in_block_ram`; on iCE40
    a dense layer's input buffer of any depth, as the MLP estimate has always counted it,
    measured on MLPs whose buffers are 16 words and more)."""
    memories = []
    if isinstance(block, (ConvPlan, PoolPlan)):
        depth, width = block.window.line_buffer_shape
        if _ram_in_block_ram(depth, width, device, bank=True):
            memories += [(depth, width)] * block.window.banks
    if isinstance(block, PoolPlan) and block.reducer.partials_in_ram:
        # A Target.ram, as a line buffer bank is.
        depth, width = block.reducer.ram_shape
        if _ram_in_block_ram(depth, width, device, bank=True):
            memories.append((depth, width))
    dense = block.dense if isinstance(block, ConvPlan) else block
    if isinstance(dense, DensePlan):
        memories += [(d, w) for d, w in _roms(dense) if _in_block_ram(d, w, device)]
        depth, width = dense.input_buffer_shape
        if _ram_in_block_ram(depth, width, device) or (device.family == "ice40"
                                                       and block is dense):
            memories.append((depth, width))
    if isinstance(block, ScalePlan):
        memories += [(rom.depth, rom.width) for rom in block.roms
                     if _in_block_ram(rom.depth, rom.width, device)]
    memories += [(depth, width) for depth, width in _queues(block)
                 if _queue_in_block_ram(depth, width, device)]
    return memories


def _queue_in_block_ram(depth, width, device):
    """Whether a block's output queue memory is block RAM on ``device``: on iCE40 the target
    asks for it (:func:`~amaranth_nn.targets.ice40_queue_in_block_ram`), elsewhere the
    synthesis tool chooses (:func:`_ram_in_block_ram`)."""
    if device.family == "ice40":
        return ice40_queue_in_block_ram(depth, width)
    return _ram_in_block_ram(depth, width, device)


def _queue(plan, lanes, width):
    """``(depth, width)`` of the memory of a block's output queue: its FIFO
    (:class:`~amaranth_nn.plumbing.CreditQueue`) keeps one entry in its output register and the
    rest in a memory."""
    return plan.fifo_depth - 1, lanes * width


def _queues(block):
    """The output queues' memories of a block plan (:class:`~amaranth_nn.plumbing.CreditQueue`
    in every engine)."""
    if isinstance(block, ConvPlan):
        return _queues(block.window) + _queues(block.dense)
    if isinstance(block, PoolPlan):
        return _queues(block.window) + _queues(block.reducer)
    if isinstance(block, WindowPlan):
        return [_queue(block, block.out_lanes, block.shape.width)]
    if isinstance(block, DensePlan):
        return [_queue(block, block.pe, block.out_width)]
    if isinstance(block, (ReducerPlan, ScalePlan)):
        return [_queue(block, block.lanes, block.out_width)]
    return []


_MODELS = {"dense": (_LAYER_LUT, _LAYER_FF), "window": (_WINDOW_LUT, _WINDOW_FF),
           "reducer": (_REDUCER_LUT, _REDUCER_FF), "scale": (_SCALE_LUT, _SCALE_FF)}


def block_resources(block, device):
    """The :class:`Resources` of one block plan on ``device`` (iCE40: LUT4 and flip-flops,
    before packing into logic cells)."""
    family = device.family
    lut = ff = 0
    for name, features in block_parts(block, device):
        luts, ffs = _MODELS[name]
        lut += _model(luts[family], features)
        ff += _model(ffs[family], features)
    return Resources(lut, ff, dsp_blocks(block, device),
                     sum(block_rams(d, w, device) for d, w in block_memories(block, device)))


def estimate(plan, device, *, harness=False):
    """Resources of ``plan``'s network (and the board harness) on ``device``.

    Parameters
    ----------
    plan : NetworkPlan
    device : Device
    harness : bool
        Add the board harness of :mod:`boards.harness` (UART, protocol, argmax, LEDs).

    Returns
    -------
    Resources
        In the device's units; on iCE40, ``lut`` counts logic cells (a LUT4 and a flip-flop
        each) and ``ff`` is 0.
    """
    family = device.family
    total = Resources()
    for block in plan.layers:
        total += block_resources(block, device)
    for converter in plan.converters:
        if converter is not None:
            features = converter_features(converter)
            depth, width = _queue(converter, converter.out_lanes, converter.width)
            bram = (block_rams(depth, width, device)
                    if _ram_in_block_ram(depth, width, device) else 0)
            total += Resources(_model(_CONVERTER_LUT[family], features),
                               _model(_CONVERTER_FF, features), bram=bram)
    if harness:
        total += _harness(plan, device)
    if family == "ice40":
        total = Resources(total.lut + _LOGIC_CELLS_PER_FF * total.ff, 0, total.dsp, total.bram)
    return total


@dataclass(frozen=True)
class FitCheck:
    """A design's estimate against a device.

    Members
    -------
    plan : NetworkPlan
    device : Device
    estimate : Resources
    harness : bool
        Whether the estimate includes the board harness.
    """

    plan: NetworkPlan
    device: Device
    estimate: Resources
    harness: bool

    @property
    def limits(self):
        """``{kind: (need, capacity)}``: LUTs and FFs against :data:`FIT_MARGIN` of the
        device, DSPs and block RAMs (counted exactly) against all of it."""
        device, need = self.device, self.estimate.as_dict()
        capacity = {"LUT": FIT_MARGIN * device.lut, "FF": FIT_MARGIN * device.ff,
                    "DSP": device.dsp, "BRAM": device.bram}
        return {kind: (need[kind], capacity[kind]) for kind in capacity}

    @property
    def over(self):
        """The kinds of resource the design needs more of than the device allows."""
        return [kind for kind, (need, capacity) in self.limits.items() if need > capacity]

    @property
    def fits(self):
        return not self.over

    def summary(self):
        """One line: every resource, estimated need and device total, in the device's units."""
        device, need = self.device, self.estimate.as_dict()
        parts = []
        for kind, total in device.totals.items():
            if kind == "FF" and device.family == "ice40":
                continue  # logic cells hold the flip-flops
            parts.append(f"{need[kind]:g} of {total} {device.unit(kind)}")
        return f"{', '.join(parts)} on the {device.name}"

    def message(self):
        """Why the design does not fit, and a target II that would, in one line."""
        device, need = self.device, self.estimate.as_dict()
        reasons = []
        for kind in ("DSP", "BRAM", "LUT", "FF"):
            if kind not in self.over:
                continue
            capacity = self.limits[kind][1]
            if kind in ("DSP", "BRAM"):
                reasons.append(f"{need[kind]:g} {device.unit(kind)} needed, {capacity:g} "
                               f"available")
            else:
                reasons.append(f"about {need[kind]:g} {device.unit(kind)} estimated, "
                               f"{capacity:.0f} usable ({FIT_MARGIN:.0%} of "
                               f"{device.totals[kind]})")
        text = f"the design does not fit the {device.name}: {'; '.join(reasons)}"
        suggestion = fitting_target_ii(self.plan.spec, device, harness=self.harness)
        if suggestion is None:
            return text + ". No folding of this model fits this device."
        target, check = suggestion
        fits = check.estimate.as_dict()
        luts = check.plan.lut_multipliers
        logic = (f" and LUT multipliers in layer{'s' if len(luts) > 1 else ''} "
                 f"{', '.join(map(str, luts))}" if luts else "")
        return (text + f". --target-ii {target} fits ({fits['DSP']} {device.dsp_name}{logic}, "
                       f"about {fits['LUT']} {device.lut_name}).")


def check_fit(plan, device, *, harness=True):
    """The :class:`FitCheck` of ``plan`` (with the board harness) on ``device``."""
    if not isinstance(plan, NetworkPlan):
        raise TypeError(f"Plan must be a NetworkPlan, not {plan!r}")
    if not isinstance(device, Device):
        raise TypeError(f"Device must be a Device, not {device!r}")
    return FitCheck(plan, device, estimate(plan, device, harness=harness), harness)


def most_folded(spec):
    """The most folded folding of ``spec``: one multiplier per dense and conv layer, one lane
    per pooling and scale-and-shift layer (its II is the largest any folding has)."""
    return tuple(None if layer.kind == "flatten" else (1, 1) for layer in spec.layers)


def fitting_target_ii(spec, device, *, harness=True, above=None):
    """The smallest power-of-two target II whose :func:`choose_folding` fits ``device``, with
    multipliers built from logic where the DSP blocks run out (:func:`spill_to_logic`).

    The targets run from the smallest that any folding reaches
    (:func:`~amaranth_nn.folding.smallest_ii`), or from the first past ``above`` whose folding
    differs from ``above``'s, up to the II of the :func:`most_folded` design.

    Returns
    -------
    (int, FitCheck) or None
        None when even the most folded design does not fit.
    """
    largest = NetworkPlan(spec, most_folded(spec)).ii
    least = smallest_ii(spec) if above is None else above + 1
    target, seen = 1 << (least - 1).bit_length(), set()
    if above is not None:
        seen.add(choose_folding(spec, above))
    while True:
        folding = choose_folding(spec, target)
        if folding not in seen:
            seen.add(folding)
            plan = plan_for_device(NetworkPlan(spec, folding), device, harness=harness)
            check = check_fit(plan, device, harness=harness)
            if check.fits:
                return target, check
        if target >= largest:
            return None
        target *= 2
