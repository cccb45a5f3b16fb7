"""The plan of a whole network: one block plan per layer, width converters between, and the
stream rules that join them.

Every layer but a flatten is a block with its own plan, chosen by its kind from
:data:`PLANS`; a flatten passes the stream through. Between two blocks the stream carries the
receiving block's input shape (:mod:`amaranth_nn.ii`: positions of ``ceil(C/L)`` beats of
``L`` lanes); where the sender's out lanes differ from the receiver's in lanes a
:class:`~amaranth_nn.plan.ConverterPlan` of ``length = C`` regroups each position. A block's
lanes come from its folding entry (:func:`check_folding`): in lanes ``simd`` (dense),
``lanes`` (pooling, scale-and-shift), or, for a convolution, whatever arrives (its sliding
window takes any lanes: no converter ever precedes a convolution; a first convolution takes a
whole position, ``C_in`` lanes, per beat); out lanes ``pe`` or ``lanes``.

A flattened stream must already be the flat vector's stream: the lanes ``L`` of the stream a
flatten takes must divide its channels ``C`` (or the stream be a single position), so that the
``P * C/L`` beats are exactly the ``ceil(P*C/L)`` beats of the vector. The network's input
and output are flat vectors too (the host and the board harness send and receive vectors), so
the same rule holds for the first block's input and the last block's output.
"""

from .conv_plan import ConvPlan
from .ii import block_ii, channels, positions
from .plan import ConverterPlan, DensePlan, check_count, check_flag
from .pool_plan import PoolPlan
from .scale_plan import ScalePlan
from .spec import SpecError, check_spec

__all__ = ["NoHardwareYet", "PLANS", "MULTIPLIER_KINDS", "check_hardware", "check_folding",
           "check_lut_multipliers", "block_in_lanes", "flat_lanes_fit", "NetworkPlan"]


class NoHardwareYet(SpecError):
    """A layer of a valid spec whose kind has no hardware yet (a ValueError, as every
    SpecError; the command lines print it as one ``error:`` line and exit 2)."""


def _dense_plan(spec, index, entry, in_lanes, luts, running):
    pe, simd = entry
    return DensePlan(spec, index, pe=pe, simd=simd, lut_multipliers=luts,
                     running_accumulators=running)


def _conv_plan(spec, index, entry, in_lanes, luts, running):
    pe, simd = entry  # the engine's accumulators restart: see NetworkPlan
    return ConvPlan(spec, index, pe=pe, simd=simd, in_lanes=in_lanes, lut_multipliers=luts)


def _pool_plan(spec, index, entry, in_lanes, luts, running):
    return PoolPlan(spec, index, lanes=entry[0])


def _scale_plan(spec, index, entry, in_lanes, luts, running):
    return ScalePlan(spec, index, lanes=entry[0], lut_multipliers=luts)


#: The plan of every block kind: ``kind -> build(spec, index, entry, in_lanes, luts,
#: running)``, ``entry`` the layer's checked folding entry, ``in_lanes`` its input stream's
#: lanes, ``luts`` whether its multipliers are built from logic and ``running`` whether its
#: accumulators never restart (dense layers).
PLANS = {
    "dense": _dense_plan,
    "conv": _conv_plan,
    "maxpool": _pool_plan,
    "avgpool": _pool_plan,
    "scale_shift": _scale_plan,
}

#: The kinds that are blocks (every kind but flatten), and how their folding is written.
_PAIR_KINDS = ("dense", "conv")
_LANE_KINDS = ("maxpool", "avgpool", "scale_shift")

#: The kinds whose blocks have multipliers, which may be built from logic.
MULTIPLIER_KINDS = ("dense", "conv", "scale_shift")


def _where(spec, index):
    return f"layer {index} ({spec.layers[index].name!r})"


def check_hardware(spec, kinds=None):
    """``spec`` if every layer has hardware: a plan in :data:`PLANS` (and in ``kinds``, the
    kinds a caller can also build), or is a flatten.

    Raises
    ------
    TypeError
        If ``spec`` is not a NetworkSpec.
    NoHardwareYet
        ``"layer 0 ('conv0'): a conv layer has no hardware yet ..."``, for the first layer
        without; also for a network of flatten layers only.
    """
    check_spec(spec)
    known = set(PLANS) if kinds is None else set(PLANS) & set(kinds)
    for index, layer in enumerate(spec.layers):
        if layer.kind != "flatten" and layer.kind not in known:
            raise NoHardwareYet(_where(spec, index), None,
                                f"a {layer.kind} layer has no hardware yet (only "
                                f"{', '.join(sorted(known))} layers do); the golden model, "
                                f"amaranth_nn.golden, runs this network")
    if all(kind == "flatten" for kind in spec.kinds):
        raise NoHardwareYet("the network", None, "it has flatten layers only, no hardware")
    return spec


def block_in_lanes(layer, entry, upstream):
    """Lanes of the stream a block takes: ``entry[1]`` (``simd``, or ``lanes``), except for a
    convolution, which takes the ``upstream`` lanes as they come (``C_in`` when first)."""
    if layer.kind == "conv":
        return layer.in_channels if upstream is None else upstream
    return entry[1]


def flat_lanes_fit(shape, lanes):
    """Whether a stream of ``shape`` at ``lanes`` lanes is beat for beat its flat vector's:
    ``lanes`` divides the channels, or the stream is one position."""
    return positions(shape) == 1 or channels(shape) % lanes == 0


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _int(value):
    """Whether ``value`` is a Python int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _check_pair(spec, index, entry):
    layer, where = spec.layers[index], _where(spec, index)
    try:
        pe, simd = entry
    except (TypeError, ValueError):
        raise TypeError(f"Folding of {where} must be a (pe, simd) pair, not {entry!r}") \
            from None
    if layer.kind == "dense":
        check_count("Pe", pe, layer.out_features, f"the out_features of {where}")
        check_count("Simd", simd, layer.in_features, f"the in_features of {where}")
    else:
        check_count("Pe", pe, layer.out_channels, f"the out_channels of {where}")
        check_count("Simd", simd, layer.window_size, f"the window size K*C_in of {where}")
    return pe, simd


def _check_lanes(spec, index, entry):
    where = _where(spec, index)
    layer = spec.layers[index]
    if _int(entry):
        lanes = entry
    else:
        try:
            values = tuple(entry)
        except TypeError:
            values = ()
        if len(values) not in (1, 2):
            raise TypeError(f"Folding of {where} must be its lanes, an integer or a (lanes, "
                            f"lanes) pair, not {entry!r}")
        if len(values) == 2 and values[0] != values[1]:
            raise ValueError(f"Folding of {where} must be its lanes, an integer or a (lanes, "
                             f"lanes) pair of equal values, not {entry!r}: a "
                             f"{layer.kind} layer has as many lanes out as in")
        lanes = values[0]
    check_count("Lanes", lanes, channels(layer.input_shape), f"the channels of {where}")
    return lanes, lanes


def _check_flat(spec, index, lanes, what):
    """Check the flat-stream rule for the output of block ``index``, flattened by ``what``."""
    layer = spec.layers[index]
    shape = layer.output_shape
    if not flat_lanes_fit(shape, lanes):
        c = channels(shape)
        option = "a pe" if layer.kind in _PAIR_KINDS else "lanes"
        raise ValueError(f"{what} takes the stream of {_where(spec, index)} as a flat vector, "
                         f"but its {lanes} lanes per beat do not divide the {c} channels of "
                         f"each of its {positions(shape)} positions: give {_where(spec, index)} "
                         f"{option} dividing {c} ({', '.join(map(str, _divisors(c)))})")


def check_lut_multipliers(spec, layers):
    """Check which layers build their multipliers from logic; returns them as a sorted tuple
    of layer indices.

    Raises
    ------
    TypeError
        If ``layers`` is not a collection of integers.
    ValueError
        If an index is out of range, or its layer has no multipliers (the message names it).
    """
    try:
        indices = sorted(set(layers))
    except TypeError:
        raise TypeError(f"Lut_multipliers must be a collection of layer indices, not "
                        f"{layers!r}") from None
    for index in indices:
        if not _int(index):
            raise TypeError(f"Lut_multipliers must hold layer indices (integers), not "
                            f"{index!r}")
        if not 0 <= index < len(spec.layers):
            raise ValueError(f"Lut_multipliers names layer {index}, but the network has layers "
                             f"0 to {len(spec.layers) - 1}")
        if spec.layers[index].kind not in MULTIPLIER_KINDS:
            raise ValueError(f"Lut_multipliers names {_where(spec, index)}, a "
                             f"{spec.layers[index].kind} layer, which has no multipliers")
    return tuple(indices)


def check_folding(spec, folding):
    """Check a folding for ``spec``; returns it as a tuple of ``(pe, simd)`` pairs, one per layer.

    One entry per layer of the spec (see :mod:`amaranth_nn.folding`): ``(pe, simd)`` for a
    dense or conv layer; the lanes for a pooling or scale-and-shift layer, as an integer or a
    ``(lanes, lanes)`` pair (returned as the pair); ``None`` for a flatten, or the pair
    ``(L, L)`` of the lanes ``L`` it passes through (returned as that pair). Every value is
    checked against its layer, and the flat-stream rule (module documentation) against the
    whole network, so that a network is never left half-built by a bad folding.

    Raises
    ------
    TypeError
        If ``spec`` is not a NetworkSpec, ``folding`` is not a sequence, an entry is not of its
        layer's form, or a value is not an integer (the message names the layer).
    ValueError
        If it does not have one entry per layer, a value is out of its layer's range, a
        flatten's pair is not the lanes it passes, or a flattened stream's lanes do not divide
        its channels (the message names the layers and the lanes that would).
    """
    check_spec(spec)
    try:
        entries = list(folding)
    except TypeError:
        raise TypeError(f"Folding must be a sequence of (pe, simd) pairs, not {folding!r}") \
            from None
    if len(entries) != len(spec.layers):
        raise ValueError(f"Folding must have one (pe, simd) pair per layer ({len(spec.layers)}), "
                         f"not {len(entries)}")
    result = []
    for index, (layer, entry) in enumerate(zip(spec.layers, entries, strict=True)):
        if layer.kind in _PAIR_KINDS:
            result.append(_check_pair(spec, index, entry))
        elif layer.kind in _LANE_KINDS:
            result.append(_check_lanes(spec, index, entry))
        else:
            result.append(entry)
    return _check_streams(spec, result)


def _check_streams(spec, entries):
    """The flat-stream rule over the whole network, and the flattens' entries as pairs."""
    blocks = [index for index, layer in enumerate(spec.layers) if layer.kind != "flatten"]
    if not blocks:
        raise NoHardwareYet("the network", None, "it has flatten layers only, no hardware")
    first = blocks[0]
    layer = spec.layers[first]
    if first == 0 and not flat_lanes_fit(layer.input_shape,
                                         block_in_lanes(layer, entries[0], None)):
        c = channels(layer.input_shape)
        raise ValueError(f"The network's input is flat vectors, but the {entries[0][1]} lanes "
                         f"per beat of {_where(spec, 0)} do not divide the {c} channels of "
                         f"each of its {positions(layer.input_shape)} positions: give it lanes "
                         f"dividing {c} ({', '.join(map(str, _divisors(c)))})")
    upstream = None
    for index, layer in enumerate(spec.layers):
        if layer.kind != "flatten":
            upstream = entries[index][0]
            continue
        previous = [block for block in blocks if block < index]
        if previous:
            _check_flat(spec, previous[-1], upstream, _where(spec, index))
            lanes = upstream
        else:
            nxt = spec.layers[first]
            lanes = block_in_lanes(nxt, entries[first], None)
        entry = entries[index]
        if entry is not None and (not isinstance(entry, (tuple, list))
                                  or tuple(entry) != (lanes, lanes)):
            raise ValueError(f"Folding of {_where(spec, index)} must be None or ({lanes}, "
                             f"{lanes}): a flatten passes its stream through at its {lanes} "
                             f"lanes, not {entry!r}")
        entries[index] = (lanes, lanes)
    last = blocks[-1]
    if last == len(spec.layers) - 1:
        _check_flat(spec, last, entries[last][0], "The network's output")
    return tuple(entries)


class NetworkPlan:
    """The plans of a whole network: a block plan per layer but the flattens, and a
    :class:`~amaranth_nn.plan.ConverterPlan` where a block's out lanes differ from the next
    block's in lanes.

    Parameters
    ----------
    spec : NetworkSpec
    folding : sequence
        One entry per layer (:func:`check_folding`); see :mod:`amaranth_nn.folding` to choose
        one.
    lut_multipliers : collection of int
        The layers (indices into ``spec.layers``) whose multipliers are built from logic
        instead of DSP blocks (:mod:`amaranth_nn.lut_multiplier`; a build chooses them when a
        device's DSP blocks run out, :func:`amaranth_nn.estimate.spill_to_logic`).
    running_accumulators : bool
        Every dense layer with :attr:`DensePlan.running_accumulators
        <amaranth_nn.plan.DensePlan.running_accumulators>` (a build sets it from the device,
        :attr:`amaranth_nn.devices.Device.running_accumulators`). Not the engines of conv
        layers: there the window generators' paths are as slow as the accumulator loop, and
        the running kind was slower (MNIST-1D on ECP5, placer seeds 1-3: 171.0-175.7 MHz
        with every engine running, 180.8-182.6 with none, 175.3-188.3 with the dense layer's
        only).

    Raises
    ------
    TypeError, ValueError
        For a folding of the wrong shape or out of its layers' ranges (:func:`check_folding`),
        ``lut_multipliers`` naming a layer without multipliers
        (:func:`check_lut_multipliers`), or ``running_accumulators`` not a bool.
    NoHardwareYet
        For a layer whose kind has no plan yet (:func:`check_hardware`).
    """

    def __init__(self, spec, folding, *, lut_multipliers=(), running_accumulators=False):
        check_hardware(spec)
        folding = check_folding(spec, folding)
        luts = check_lut_multipliers(spec, lut_multipliers)
        running = check_flag("Running_accumulators", running_accumulators)
        self._spec, self._folding, self._lut_multipliers = spec, folding, luts
        self._running = running
        layers, lanes, upstream = [], [], None
        for index, (layer, entry) in enumerate(zip(spec.layers, folding, strict=True)):
            if layer.kind == "flatten":
                continue
            in_lanes = block_in_lanes(layer, entry, upstream)
            layers.append(PLANS[layer.kind](spec, index, entry, in_lanes, index in luts,
                                            running))
            lanes.append((in_lanes, entry[0]))
            upstream = entry[0]
        self._layers, self._lanes = tuple(layers), tuple(lanes)
        converters, converter_positions = [], []
        for k, after in enumerate(layers[1:]):
            out_lanes, in_lanes = lanes[k][1], lanes[k + 1][0]
            shape = spec.layers[after.index].input_shape
            if out_lanes == in_lanes:
                converters.append(None)
                converter_positions.append(0)
            else:
                width = spec.input_format_of(after.index).width
                converters.append(ConverterPlan(width, out_lanes, in_lanes, channels(shape)))
                converter_positions.append(positions(shape))
        self._converters = tuple(converters)
        self._converter_positions = tuple(converter_positions)

    @property
    def spec(self):
        return self._spec

    @property
    def layers(self):
        """The plan of every block (every layer but the flattens), in stream order; each has
        the :attr:`index` of its layer."""
        return self._layers

    @property
    def converters(self):
        """The :class:`~amaranth_nn.plan.ConverterPlan` after each block but the last, or
        ``None`` where the block's out lanes equal the next block's in lanes. A converter
        regroups each position (``length`` is the channels), :attr:`converter_positions` times
        per sample."""
        return self._converters

    @property
    def converter_positions(self):
        """Positions per sample that each converter regroups (0 where there is none)."""
        return self._converter_positions

    @property
    def lanes(self):
        """``(in_lanes, out_lanes)`` of every block."""
        return self._lanes

    @property
    def folding(self):
        """The checked folding: a ``(pe, simd)`` pair per layer (``(lanes, lanes)`` for pooling,
        scale-and-shift and flatten)."""
        return self._folding

    @property
    def lut_multipliers(self):
        """The layers whose multipliers are built from logic, a sorted tuple of indices."""
        return self._lut_multipliers

    @property
    def running_accumulators(self):
        """Whether the dense layers' accumulators never restart."""
        return self._running

    def with_options(self, *, lut_multipliers=None, running_accumulators=None):
        """This plan at the same folding, with other layers' multipliers built from logic or
        other accumulators (each option this plan's where not given)."""
        luts = self._lut_multipliers if lut_multipliers is None else lut_multipliers
        running = self._running if running_accumulators is None else running_accumulators
        return NetworkPlan(self._spec, self._folding, lut_multipliers=luts,
                           running_accumulators=running)

    @property
    def ii(self):
        """Cycles per sample in steady state: the largest block II (the blocks overlap; a
        converter takes and gives one beat per cycle)."""
        beats = [positions * max(converter.in_beats, converter.out_beats)
                 for converter, positions in zip(self._converters, self._converter_positions,
                                                 strict=True) if converter is not None]
        return max([layer.ii for layer in self._layers] + beats)

    @property
    def in_lanes(self):
        """Elements per input beat (the first block's in lanes: ``simd`` of a dense layer)."""
        return self._lanes[0][0]

    @property
    def out_lanes(self):
        """Elements per output beat (the last block's out lanes: ``pe`` of a dense layer)."""
        return self._lanes[-1][1]

    @property
    def in_beats(self):
        """Input beats per sample."""
        return self._layers[0].in_beats

    @property
    def out_beats(self):
        """Output beats per sample."""
        return self._layers[-1].out_beats

    @property
    def multipliers(self):
        """Total multipliers of the blocks (``pe * simd`` of a dense or conv layer)."""
        return sum(layer.multipliers for layer in self._layers)

    @property
    def roms(self):
        """Every ROM, block by block."""
        return tuple(rom for layer in self._layers for rom in layer.roms)

    def blocks(self):
        """The block plans and converters in stream order."""
        for layer, converter in zip(self._layers, self._converters + (None,), strict=True):
            yield layer
            if converter is not None:
                yield converter

    def check_ii(self):
        """Whether every block's II is the one :func:`amaranth_nn.ii.block_ii` gives for its
        folding (the arithmetic that folding chooses by)."""
        return all(layer.ii == block_ii(self._spec.layers[layer.index],
                                        self._folding[layer.index], lanes[0])
                   for layer, lanes in zip(self._layers, self._lanes, strict=True))

    def output_times(self, arrivals=None):
        """Transfer cycles of an isolated sample's output beats, by the latency recurrence.

        Parameters
        ----------
        arrivals : sequence of int, optional
            Transfer cycles of the sample's input beats; by default ``0, 1, 2, ...`` (source
            valid on every cycle).
        """
        times = list(range(self.in_beats)) if arrivals is None else list(arrivals)
        converters = zip(self._converters + (None,), self._converter_positions + (0,),
                         strict=True)
        for layer, (converter, count) in zip(self._layers, converters, strict=True):
            times = layer.output_times(times)
            if converter is not None:
                times = _repeated_output_times(converter, count, times)
        return times

    @property
    def latency(self):
        """Cycles from the transfer of a sample's first input beat to that of its last output
        beat, for a sample entering an idle network with the sink always ready and the source
        valid on every cycle.

        By this recurrence over the blocks (:meth:`output_times` evaluates it), equal to the
        simulated hardware's for every kind of block (``tests/amaranth_nn/test_network.py``):

        - input beat ``j`` is transferred at cycle ``a_j = j``;
        - a block transfers its output beats at the cycles its plan's ``output_times`` gives
          for its input beats' cycles; a dense layer with ``B = ceil(N/simd)`` input beats
          issues the last beat of its first output group at ``s = max_j(a_j + B - j)`` and
          transfers output beat ``g`` at ``e_g = s + g*B + D``, where
          ``D = 10 + ceil(log2(simd))`` is its :attr:`~amaranth_nn.plan.DensePlan.pipeline_depth`;
        - a width converter transfers output beat ``k`` of each position at
          ``o_k = max(o_(k-1) + 1, a_(j(k)) + 6)``, where ``j(k)`` is the input beat of that
          position holding the beat's last element (its output side is then busy, so a writer
          waiting for a free bank delays no output);
        - the latency is the cycle of the last output beat.

        Without width converters a dense network's latency is
        ``(B_0 - 1) + sum_l (II_l - B_l + D_l + 1)``; for a single layer, ``II + D``.
        """
        return self.output_times()[-1]

    def __repr__(self):
        folding = ", ".join(f"{pe}x{simd}" for pe, simd in self._folding)
        luts = (f", LUT multipliers in layers {', '.join(map(str, self._lut_multipliers))}"
                if self._lut_multipliers else "")
        running = ", running accumulators" if self._running else ""
        return f"NetworkPlan({self._spec!r}, folding {folding}, ii {self.ii}{luts}{running})"


def _repeated_output_times(converter, count, arrivals):
    """Output cycles of a converter that regroups ``count`` positions one after another."""
    times, beats = [], converter.in_beats
    for position in range(count):
        for t in converter.output_times(arrivals[position * beats:(position + 1) * beats]):
            times.append(t if not times else max(t, times[-1] + 1))
    return times
