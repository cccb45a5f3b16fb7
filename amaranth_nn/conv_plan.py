"""The convolution layer's plan: a window generator's plan followed by the dense engine's.

:class:`ConvPlan` holds, for one conv layer at one ``(pe, simd, in_lanes)``, the
:class:`~amaranth_nn.window_plan.WindowPlan` that turns the input stream into windows of
``simd`` lanes in window order, and the :class:`~amaranth_nn.plan.DensePlan` of the layer's
weight matrix (``C_out x K*C_in``), which computes every window as one vector. Nothing here
builds hardware; :class:`~amaranth_nn.conv.ConvLayer` elaborates it.
"""

from dataclasses import replace

from amaranth.hdl import signed

from .lanes import ceil_div
from .plan import DensePlan, check_count
from .spec import check_spec
from .window_plan import WindowPlan

__all__ = ["ConvPlan"]


class ConvPlan:
    """Everything the hardware of one conv layer at one folding is built from.

    The input streams in position by position, ``ceil(C_in/in_lanes)`` beats each; the window
    generator sends each output position's window (``K*C_in`` elements in window order) as
    ``B = ceil(K*C_in/simd)`` beats to the dense engine, which computes ``pe`` output channels
    at a time, ``G = ceil(C_out/pe)`` output beats per position. A sample takes
    ``ii = max(P * G * B, in_beats)`` cycles in steady state (``P`` output positions): the
    engine's ``P * G * B`` whenever the input link delivers a sample's ``in_beats`` beats in no
    more cycles than that, and one input beat per cycle otherwise.

    Parameters
    ----------
    spec : NetworkSpec
    index : int
        Which layer of ``spec``: a conv layer.
    pe : int
        Output channels in parallel, 1 to ``C_out``.
    simd : int
        Window elements per cycle, 1 to ``K*C_in``.
    in_lanes : int
        Channels per input beat, 1 to ``C_in``.
    lut_multipliers : bool
        Build the engine's multipliers from logic instead of DSP blocks (same timing).
    running_accumulators : bool
        The engine's :attr:`DensePlan.running_accumulators
        <amaranth_nn.plan.DensePlan.running_accumulators>`.

    Raises
    ------
    TypeError
        If ``spec`` is not a NetworkSpec, or an argument is not an integer.
    ValueError
        If the layer is not a conv layer, or ``index``, ``pe``, ``simd`` or ``in_lanes`` is
        out of range (the message names the layer).
    """

    def __init__(self, spec, index, *, pe, simd, in_lanes, lut_multipliers=False,
                 running_accumulators=False):
        check_spec(spec)
        if isinstance(index, int) and 0 <= index < len(spec.layers) \
                and spec.layers[index].kind != "conv":
            layer = spec.layers[index]
            raise ValueError(f"Layer {index} ({layer.name!r}) is a {layer.kind} layer, not a "
                             f"conv layer")
        dense = DensePlan(spec, index, pe=pe, simd=simd, lut_multipliers=lut_multipliers,
                          running_accumulators=running_accumulators)
        layer = dense.layer
        where = f"layer {index} ({layer.name!r})"
        check_count("In lanes", in_lanes, layer.in_channels, f"the input channels of {where}")
        self._dense = dense
        self._window = WindowPlan(signed(dense.in_width), layer.spatial_in, layer.in_channels,
                                  layer.kernel, layer.stride, layer.padding, in_lanes, simd,
                                  "window")

    @property
    def spec(self):
        return self._dense.spec

    @property
    def index(self):
        return self._dense.index

    @property
    def layer(self):
        """The :class:`~amaranth_nn.layers.Conv` of the spec."""
        return self._dense.layer

    @property
    def window(self):
        """The generator's :class:`~amaranth_nn.window_plan.WindowPlan`."""
        return self._window

    @property
    def dense(self):
        """The engine's :class:`~amaranth_nn.plan.DensePlan` (one vector per output
        position)."""
        return self._dense

    @property
    def pe(self):
        return self._dense.pe

    @property
    def lut_multipliers(self):
        """Whether the engine's multipliers are built from logic."""
        return self._dense.lut_multipliers

    @property
    def running_accumulators(self):
        """Whether the engine's accumulators never restart."""
        return self._dense.running_accumulators

    @property
    def simd(self):
        return self._dense.simd

    @property
    def in_lanes(self):
        """Channels per input beat."""
        return self._window.in_lanes

    @property
    def out_lanes(self):
        """Channels per output beat, ``pe``."""
        return self._dense.pe

    @property
    def in_width(self):
        return self._dense.in_width

    @property
    def out_width(self):
        return self._dense.out_width

    @property
    def positions_out(self):
        return self.layer.positions_out

    @property
    def in_beats(self):
        """Input beats per sample, ``positions_in * ceil(C_in/in_lanes)``."""
        return self._window.in_beats

    @property
    def out_beats(self):
        """Output beats per sample, ``positions_out * ceil(C_out/pe)``."""
        return self.positions_out * ceil_div(self.layer.out_channels, self.pe)

    @property
    def engine_ii(self):
        """The engine's cycles per sample, ``positions_out * ceil(C_out/pe) *
        ceil(K*C_in/simd)``."""
        return self.positions_out * self._dense.ii

    @property
    def ii(self):
        """Cycles per sample in steady state, ``max(engine_ii, in_beats)``."""
        return max(self.engine_ii, self.in_beats)

    @property
    def multipliers(self):
        """``pe * simd``."""
        return self._dense.multipliers

    @property
    def roms(self):
        """The engine's ROMs (its weight ROMs, then its bias ROM), in the engine's scope: at
        ``layer{i}.dense.weights{p}`` in the hardware."""
        return tuple(replace(rom, scope=("dense", *rom.scope)) for rom in self._dense.roms)

    def output_times(self, arrivals):
        """Transfer cycles of an isolated sample's output beats (sink always ready).

        Parameters
        ----------
        arrivals : sequence of int
            Transfer cycles of the sample's :attr:`in_beats` input beats (as accepted: the
            layer holds its input back when its line buffer is full).

        Returns
        -------
        list of int
            The window generator's output times (:meth:`WindowPlan.output_times`, as if its
            sink were always ready), through the engine's issue recurrence
            (:meth:`DensePlan.output_times`). The engine's backpressure on the generator never
            delays an issue: the generator's queue delivers a beat per cycle once the engine
            takes again, before the engine needs it.
        """
        return self._dense.output_times(self._window.output_times(arrivals))

    def __repr__(self):
        layer = self.layer
        return (f"ConvPlan(layer {self.index} {layer.name!r}, "
                f"{'x'.join(map(str, layer.input_shape))} -> "
                f"{'x'.join(map(str, layer.output_shape))}, pe {self.pe}, simd {self.simd}, "
                f"in_lanes {self.in_lanes}, ii {self.ii})")
