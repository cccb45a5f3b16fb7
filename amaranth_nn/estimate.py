"""Resources of a design before synthesis, and the fit check that a build runs first.

Everything here is computed from the :class:`~amaranth_nn.network_plan.NetworkPlan` in milliseconds:

- **DSP blocks**, exactly: each multiplier needs the blocks its operand and product widths
  take on the device (:meth:`amaranth_nn.devices.DspBlock.blocks`; narrow products go to LUTs).
- **Block RAM**, exactly for the ROMs that ask for it (those of at least
  :data:`~amaranth_nn.plan.BLOCK_ROM_BITS` bits on xc7 and iCE40; the ECP5 target builds its
  ROMs from LUTs), by the block's aspect ratios, plus the harness's.
- **LUTs and flip-flops**, estimated: a linear model per family over the plan's structural
  features (adder-tree and accumulator bits, LUT-ROM bits, LUT multipliers, operand and
  buffer widths; :func:`layer_features`), with coefficients fitted to yosys and nextpnr
  results. ``python bench/bench_estimate.py`` prints the estimate next to the tools' counts
  for a set of designs, and ``--fit`` refits the coefficients; the figures it measured when
  they were last fitted are in ``docs/synthesis.md``.

:func:`check_fit` compares a design with a device; :func:`fitting_target_ii` finds the
smallest target II whose design fits, for the message that a design which does not fit gets.
"""

import math
from dataclasses import dataclass

from .devices import Device
from .folding import choose_folding
from .network_plan import NetworkPlan
from .plan import BLOCK_ROM_BITS

__all__ = ["Resources", "FitCheck", "DoesNotFit", "layer_features", "converter_features",
           "dsp_blocks", "block_rams", "estimate", "check_fit", "fitting_target_ii",
           "FIT_MARGIN"]

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


def dsp_blocks(layer, device):
    """DSP blocks of one :class:`~amaranth_nn.plan.DensePlan` on ``device``."""
    per_multiplier = device.dsp_block.blocks(_signed_bits(layer.x_shape),
                                            _signed_bits(layer.w_shape), layer.product_width)
    return layer.multipliers * per_multiplier


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


def _in_block_ram(depth, width, device):
    """Whether a ROM of ``depth`` x ``width`` ends up in block RAM on ``device``: never on ECP5
    (its target builds ROMs from LUTs, see :mod:`amaranth_nn.targets`); from
    :data:`~amaranth_nn.plan.BLOCK_ROM_BITS` bits on xc7 and iCE40, where yosys also moves
    ROMs of 128 words or more into block RAM on its own (measured: 160 x 8 goes, 40 x 32
    stays in logic)."""
    if device.family == "ecp5":
        return False
    return depth * width >= BLOCK_ROM_BITS or (device.family == "ice40" and depth >= 128)


def _roms(layer):
    """``(depth, width)`` of every ROM of a layer."""
    return [layer.weight_rom_shape] * layer.pe + [layer.bias_rom_shape]


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
    in_dsp = device.dsp_block.blocks(_signed_bits(layer.x_shape), _signed_bits(layer.w_shape),
                                     layer.product_width) > 0
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
    }


def converter_features(converter):
    """The structural features of a :class:`~amaranth_nn.plan.ConverterPlan`."""
    return {
        "one": 1,
        "banks": converter.register_bits,
        "select": 2 * converter.out_lanes * converter.width * converter.out_beats,
        "lanes": converter.out_lanes * converter.width,
    }


# Coefficients of the LUT and flip-flop models, by family: least squares with non-negative
# coefficients (``python bench/bench_estimate.py --fit`` prints them) of per-layer yosys counts
# (synth_xilinx, synth_ecp5 with the ECP5 target, synth_ice40 -dsp; hierarchical runs) of the
# digits model at target II 16-1024 and random MLPs of 4- to 16-bit formats, 47 xc7, 24 ECP5
# and 11 iCE40 layers (none with LUT multipliers: the iCE40 "lut_mult" is from the 4-bit MLP of
# the bench, 887 logic cells for 44 LUT multipliers). The width converter's, from four
# converters. On iCE40 the unit is the logic cell (a LUT4 and a flip-flop): nextpnr packs a
# flip-flop into the cell of the LUT that drives it when it can; _LOGIC_CELLS_PER_FF is the
# cells per flip-flop on top of the LUT4s, fitted to nextpnr's counts of iCEBreaker board
# builds (4210 and 3325 cells for the digits model at target II 512 and 1024).
_LAYER_LUT = {
    "xc7": {"one": 14.5, "tree": 0.42, "out": 2.58, "lut_mult": 1.98, "lut_rom": 0.0692,
              "beats": 5.73, "w_data": 0.0412, "x_data": 1.57},
    "ecp5": {"one": 15.3, "tree": 0.421, "acc": 3.01, "lut_rom": 0.0695, "beats": 13.2,
              "x_data": 2.02},
    "ice40": {"one": 42.9, "tree": 0.907, "acc": 0.523, "lut_rom": 0.153, "beats": 8.33,
              "x_data": 1.31, "lut_mult": 1.3},
}
_LAYER_FF = {
    "xc7": {"tree": 0.695, "acc": 1.93, "lut_rom": 0.0308, "beats": 3.33, "x_data": 5.58,
              "products": 2.83, "first": 3.99},
    "ecp5": {"one": 82.8, "tree": 1.77, "acc": 3.44, "out": 0.589, "lut_rom": 0.0025,
              "beats": 1.73, "x_data": 3.12},
    "ice40": {"one": 49.7, "tree": 3.2, "acc": 3.69, "lut_rom": 0.0187, "beats": 2.78,
              "x_data": 5.6, "first": 9.36},
}
_CONVERTER_LUT = {"xc7": {"one": 40, "select": 0.4}, "ecp5": {"one": 30, "select": 2.4},
                  "ice40": {"one": 30, "select": 1.0}}
_CONVERTER_FF = {"one": 50, "banks": 1.0, "lanes": 3.0}
_LOGIC_CELLS_PER_FF = 0.75

#: The board harness (UART, protocol, buffers, argmax, LEDs) by family, without its output
#: registers (one LUT per two and one and a half flip-flops per output bit on top): board
#: builds of the digits model at target II 64 to 1024 and of a 16-64-32-32-5 MLP, less the
#: same networks alone (iCE40: LUT4 and flip-flops before packing into logic cells).
_HARNESS = {
    "xc7": Resources(lut=650, ff=450),
    "ecp5": Resources(lut=2300, ff=480),
    "ice40": Resources(lut=1130, ff=540),
}


def _model(coefficients, features):
    return sum(coefficients.get(name, 0) * value for name, value in features.items())


def _harness(plan, device):
    """Resources of the board harness around ``plan``'s network."""
    spec = plan.spec
    in_width = spec.input_format.width
    buffer_bram = 0
    if device.family == "ice40":  # no LUT RAM: the input buffer takes block RAM
        buffer_bram = block_rams(plan.in_beats, plan.in_lanes * in_width, device)
    out_bits = spec.output_size * 8 * -(-spec.output_format.width // 8)
    base = _HARNESS[device.family]
    return Resources(lut=base.lut + 0.5 * out_bits, ff=base.ff + 1.5 * out_bits,
                     bram=buffer_bram)


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
    for layer in plan.layers:
        features = layer_features(layer, device)
        memories = [(d, w) for d, w in _roms(layer) if _in_block_ram(d, w, device)]
        if family == "ice40":  # no LUT RAM: the input double buffer takes block RAM too
            memories.append(layer.input_buffer_shape)
        total += Resources(_model(_LAYER_LUT[family], features),
                           _model(_LAYER_FF[family], features), dsp_blocks(layer, device),
                           sum(block_rams(d, w, device) for d, w in memories))
    for converter in plan.converters:
        if converter is not None:
            features = converter_features(converter)
            total += Resources(_model(_CONVERTER_LUT[family], features),
                               _model(_CONVERTER_FF, features))
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
        return (text + f". --target-ii {target} fits ({fits['DSP']} {device.dsp_name}, about "
                       f"{fits['LUT']} {device.lut_name}).")


def check_fit(plan, device, *, harness=True):
    """The :class:`FitCheck` of ``plan`` (with the board harness) on ``device``."""
    if not isinstance(plan, NetworkPlan):
        raise TypeError(f"Plan must be a NetworkPlan, not {plan!r}")
    if not isinstance(device, Device):
        raise TypeError(f"Device must be a Device, not {device!r}")
    return FitCheck(plan, device, estimate(plan, device, harness=harness), harness)


def fitting_target_ii(spec, device, *, harness=True):
    """The smallest power-of-two target II whose :func:`choose_folding` fits ``device``.

    Returns
    -------
    (int, FitCheck) or None
        None when even the most folded design (one multiplier per layer) does not fit.
    """
    largest = max(layer.in_features * layer.out_features for layer in spec.layers)
    target, seen = 1, set()
    while True:
        folding = choose_folding(spec, target)
        if folding not in seen:
            seen.add(folding)
            check = check_fit(NetworkPlan(spec, folding), device, harness=harness)
            if check.fits:
                return target, check
        if target >= largest:
            return None
        target *= 2
