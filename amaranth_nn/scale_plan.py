"""The plan of a scale-and-shift layer: everything its hardware is built from, in plain Python.

A :class:`ScalePlan` holds, for one ``scale_shift`` layer at one lane count, the stream format
(a position is ``ceil(C/lanes)`` beats), the operand, product and accumulator shapes (from the
actual integers, as :class:`~amaranth_nn.plan.DensePlan` sizes them), the scale and bias ROMs in
the hardware's layout, the register chain and the timing derived from it.
:class:`~amaranth_nn.scale_shift.ScaleShift` elaborates it.
"""

from functools import cached_property

from .block_plan import LanesPlan
from .lanes import ceil_div, pack_lanes
from .plan import FIFO_LATENCY, MEMORY_STAGES, RequantizingPlan, Rom, check_flag

__all__ = ["ScalePlan"]


class ScalePlan(RequantizingPlan, LanesPlan):
    """One scale-and-shift layer, ``y = act(requantize(a_c * x + b_c))``, at ``lanes`` lanes.

    A sample of ``P`` positions of ``C`` channels streams in and out as ``P * G`` beats of
    ``lanes`` lanes, ``G = ceil(C/lanes)``; lane ``k`` of beat ``b`` of a position is channel
    ``b*lanes + k``. Each lane has one multiplier, so a sample takes ``ii = P * G`` cycles.

    Parameters
    ----------
    spec : NetworkSpec
    index : int
        Which layer of ``spec`` (a ``scale_shift`` layer).
    lanes : int
        Elements per beat, 1 to the layer's channels.
    lut_multipliers : bool
        Build the multipliers from logic instead of DSP blocks (same timing).

    Raises
    ------
    TypeError
        If ``spec`` is not a NetworkSpec, ``index`` or ``lanes`` is not an integer, or
        ``lut_multipliers`` is not a bool.
    ValueError
        If ``index`` or ``lanes`` is out of range, or the layer is not a scale-and-shift layer
        (the message names the layer).
    """

    KINDS = ("scale_shift",)

    def __init__(self, spec, index, *, lanes, lut_multipliers=False):
        super().__init__(spec, index, lanes=lanes)
        self._lut_multipliers = check_flag("Lut_multipliers", lut_multipliers)

    @property
    def positions(self):
        """Positions per sample (1 for a vector)."""
        return self._layer.input_size // self.channels

    @property
    def beats_per_position(self):
        """``G = ceil(C/lanes)``: the scale and bias ROMs have one word per beat of a position."""
        return ceil_div(self.channels, self._lanes)

    @property
    def in_beats(self):
        """Input beats per sample, ``P * G``."""
        return self.positions * self.beats_per_position

    @property
    def out_beats(self):
        """Output beats per sample, ``P * G``."""
        return self.in_beats

    @property
    def ii(self):
        """Cycles per sample in steady state: one beat per cycle, ``P * ceil(C/lanes)``."""
        return self.in_beats

    @property
    def multipliers(self):
        """One per lane."""
        return self._lanes

    # The register chain and the timing derived from it.

    @property
    def stages(self):
        """The register chain: for each stage, the cycle after an input beat's transfer at
        which its data is in the stage's register.

        ``memory`` (the scale word, and the input beat delayed alongside), ``operands`` and
        ``products`` (the multiplier's registers), ``accumulator`` (product plus bias), and
        ``clamp`` (requantized, saturated and activated, on its way into the output FIFO).
        """
        chain = (("memory", MEMORY_STAGES), ("operands", 1), ("products", 1),
                 ("accumulator", 1), ("clamp", 1))
        offsets, cycle = {}, 0
        for name, registers in chain:
            cycle += registers
            offsets[name] = cycle
        return offsets

    @property
    def pipeline_depth(self):
        """Cycles from an input beat's transfer to its output beat's (sink ready): the register
        chain of :attr:`stages` plus the output FIFO, 9."""
        return self.stages["clamp"] + FIFO_LATENCY

    @property
    def fifo_depth(self):
        """Output FIFO entries for one beat per cycle: the credit loop, from taking a credit on
        a transfer to its return (:class:`~amaranth_nn.plumbing.CreditQueue`)."""
        return self.stages["clamp"] + FIFO_LATENCY + 2

    def output_times(self, arrivals):
        """Transfer cycles of an isolated sample's output beats (sink always ready).

        Parameters
        ----------
        arrivals : sequence of int
            Transfer cycles of the sample's :attr:`in_beats` input beats.

        Returns
        -------
        list of int
            ``arrivals[j] + pipeline_depth`` for each beat ``j``.
        """
        return [a + self.pipeline_depth for a in arrivals]

    # ROM contents.

    @cached_property
    def scale_rom(self):
        """The scale :class:`~amaranth_nn.plan.Rom` (kind ``"scale"``, ``layer{L}_scale.hex``):
        word ``b`` holds ``scale[b*lanes + k]`` in lane ``k``, in the scale operand's width
        (zero past the last channel)."""
        scale, lanes, width = self._layer.scale, self._lanes, self.w_shape.width
        words = tuple(pack_lanes(scale[b * lanes:(b + 1) * lanes], width)
                      for b in range(self.beats_per_position))
        signedness = "signed" if self.w_shape.signed else "unsigned"
        return Rom(self._index, "scale", None, lanes, width, self.w_shape.signed, words,
                   f"word b, lane k = scale[b*{lanes} + k]; {signedness}; zero past the last "
                   f"channel")

    @cached_property
    def bias_rom(self):
        """The bias :class:`~amaranth_nn.plan.Rom`: word ``b`` holds ``bias[b*lanes + k] +
        rounding`` in lane ``k``, in the accumulator width (zero past the last channel)."""
        bias, lanes, rounding = self._layer.bias, self._lanes, self.rounding
        words = tuple(pack_lanes([int(v) + rounding for v in bias[b * lanes:(b + 1) * lanes]],
                                 self.acc_width)
                      for b in range(self.beats_per_position))
        return Rom(self._index, "bias", None, lanes, self.acc_width, True, words,
                   f"word b, lane k = bias[b*{lanes} + k] + {rounding}; signed; zero past the "
                   f"last channel")

    @property
    def roms(self):
        """The scale ROM, then the bias ROM."""
        return (self.scale_rom, self.bias_rom)

    def __repr__(self):
        return (f"ScalePlan(layer {self._index} {self._layer.name!r}, "
                f"{'x'.join(map(str, self._layer.input_shape))}, lanes {self._lanes}, "
                f"ii {self.ii})")
