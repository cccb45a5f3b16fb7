"""Folding: how many multipliers and lanes each layer gets, one entry per layer of the spec.

============================ ======================= ==============================================
kind                         entry                   multipliers, II per sample
============================ ======================= ==============================================
dense (``N -> M``)           ``(pe, simd)``          ``pe*simd``, ``ceil(M/pe) * ceil(N/simd)``
conv                         ``(pe, simd)``: ``pe``  ``pe*simd``,
                             over the output         ``P_out * ceil(C_out/pe) * ceil(K*C_in/simd)``
                             channels, ``simd`` over
                             the window ``K*C_in``
maxpool, avgpool             ``lanes``               0, ``P_out * K * ceil(C/lanes)``
scale_shift                  ``lanes``               ``lanes``, ``P * ceil(C/lanes)``
flatten                      ``None``                none: the stream passes through
============================ ======================= ==============================================

(:mod:`amaranth_nn.ii` has the formulas; ``P`` are positions, ``K`` the kernel's positions.)
Every block's II is also at least its input beats per sample, ``P_in * ceil(C_in/L)`` at ``L``
in lanes. Lanes may also be written as a ``(lanes, lanes)`` pair, and a flatten's entry as the
pair ``(L, L)`` of the lanes it passes through, so that a folding is always a list of pairs:
:func:`~amaranth_nn.network_plan.check_folding` returns it so, and the ``--pe``/``--simd``
options take one value per layer (the same lanes in both for pooling and scale-and-shift, ``-``
in both for a flatten; ``--pe=-,...`` when the first layer is one). A flatten needs the lanes of
the stream it takes to divide its channels (or one position), and so do the network's input and
output (:mod:`amaranth_nn.network_plan`). A network's II is the largest block II.

:func:`choose_folding` picks a folding whose II is at most the target, by its cost: the number
of multipliers plus one per width converter (where a block's out lanes differ from the next
block's in lanes; one costs about as much logic as a multiplier, and is slower); a convolution
takes its input at whatever lanes arrive and never needs one. Each layer's choice is ranked by
its cost (its multipliers and the converter before it), then no width converter, no zero padding
(``pe`` dividing the outputs, ``simd`` the inputs, lanes the channels), then for ``(pe, simd)``
the lower II, the squarer pair and the smaller ``pe``, and for lanes the fewer lanes. A dynamic
program over the lanes of each link finds, among the foldings that keep every stream rule:

- for a network with positions (a stream of more than one), the cheapest total, ties broken
  by the layers' ranks from the first layer on;
- for a network of vectors, the best ranked first layer, then the best ranked second, and so
  on: the rule of the dense-only releases, kept so that their default foldings and every
  figure measured from them stay (it can cost one multiplier more than the cheapest total: 44
  instead of 43 for the digits model at II 64).

The default folding (:func:`default_folding`) is ``choose_folding(spec,
default_target_ii(spec))``: a target of :data:`DEFAULT_TARGET_II` (64) cycles per vector for a
network of vectors, and :data:`DEFAULT_POSITION_II` (16) cycles per position of its longest
stream for one that slides windows. For the embedded digits model (64 -> 32 -> 16 -> 10) it is
``((4, 8), (2, 4), (2, 2))``: II 64, 44 multipliers and no width converter, which fits the 90
DSP48E1 of an Arty A7-35T with room to spare, and the 156 multipliers of an ECP5-85F. For the
MNIST-1D convolutional model (40 positions, target 640) it is 59 multipliers at II 640; for the
8x8 digits convolutional model (64 positions, target 1024), 24 multipliers at II 1024. A small
FPGA such as the iCE40UP5K (8 DSPs) needs a larger target II.
"""

from .cli import CommandError, check_int, parse_int_list
from .ii import block_ii, block_multipliers, channels, positions, stream_beats
from .network_plan import (
    NetworkPlan,
    NoHardwareYet,
    block_in_lanes,
    check_folding,
    check_hardware,
    flat_lanes_fit,
)
from .spec import check_spec

__all__ = ["DEFAULT_TARGET_II", "DEFAULT_POSITION_II", "default_target_ii", "smallest_ii",
           "choose_folding", "default_folding", "plan_network", "check_folding",
           "add_folding_arguments", "folding_from_args"]

#: Target II (cycles per vector) of the default folding of a network of vectors.
DEFAULT_TARGET_II = 64

#: Target cycles per position of the longest stream, for the default folding of a network that
#: slides windows over positions.
DEFAULT_POSITION_II = 16


def _longest_stream(spec):
    """Most positions of any stream of ``spec`` (1 for a network of vectors)."""
    return max(positions(shape) for layer in spec.layers
               for shape in (layer.input_shape, layer.output_shape))


def default_target_ii(spec):
    """The default target II: :data:`DEFAULT_TARGET_II` for a network of vectors,
    :data:`DEFAULT_POSITION_II` times the positions of the longest stream otherwise."""
    check_spec(spec)
    longest = _longest_stream(spec)
    return DEFAULT_TARGET_II if longest == 1 else DEFAULT_POSITION_II * longest


def _blocks(spec):
    """``[(index, layer, flattened)]`` of every block: ``flattened`` when its output stream is
    taken as a flat vector (by a flatten, or as the network's output)."""
    layers = spec.layers
    result = []
    for index, layer in enumerate(layers):
        if layer.kind == "flatten":
            continue
        following = [later.kind for later in layers[index + 1:]]
        flattened = not following or following[0] == "flatten"
        result.append((index, layer, flattened))
    if not result:
        raise NoHardwareYet("the network", None, "it has flatten layers only, no hardware")
    return result


def _full_entry(layer):
    """The most parallel folding entry of a block."""
    if layer.kind == "dense":
        return layer.out_features, layer.in_features
    if layer.kind == "conv":
        return layer.out_channels, layer.window_size
    lanes = channels(layer.input_shape)
    return lanes, lanes


def smallest_ii(spec):
    """The smallest II any folding of ``spec`` reaches: 1 for a network of vectors, at least
    the positions of every block's input otherwise (every block fully parallel)."""
    return max(block_ii(layer, _full_entry(layer), channels(layer.input_shape))
               for _, layer, _ in _blocks(spec))


def _options(layer, target_ii):
    """The folding entries of a block worth considering for ``target_ii``: for ``(pe, simd)``
    the smallest ``simd`` meeting the target at each ``pe``; every lanes that meets it."""
    if layer.kind in ("dense", "conv"):
        if layer.kind == "dense":
            m, n, per = layer.out_features, layer.in_features, 1
        else:
            m, n, per = layer.out_channels, layer.window_size, layer.positions_out
        for pe in range(1, m + 1):
            max_beats = target_ii // (per * -(-m // pe))
            if max_beats >= 1:
                yield pe, -(-n // min(max_beats, n))
    else:
        for lanes in range(1, channels(layer.input_shape) + 1):
            if block_ii(layer, (lanes, lanes), lanes) <= target_ii:
                yield lanes, lanes


def _key(layer, entry, in_lanes, converter):
    """The preference of an option (smaller is better); its first item is its cost."""
    cost = block_multipliers(layer, entry) + converter
    ii = block_ii(layer, entry, in_lanes)
    if layer.kind in ("dense", "conv"):
        pe, simd = entry
        m, n = ((layer.out_features, layer.in_features) if layer.kind == "dense"
                else (layer.out_channels, layer.window_size))
        return cost, converter, (m % pe != 0) + (n % simd != 0), ii, abs(pe - simd), pe
    lanes = entry[0]
    return cost, converter, channels(layer.input_shape) % lanes != 0, lanes, ii


def choose_folding(spec, target_ii):
    """Cheapest folding whose II is at most ``target_ii`` (see the module documentation).

    Parameters
    ----------
    spec : NetworkSpec
        The network.
    target_ii : int
        Largest acceptable cycles per sample, at least :func:`smallest_ii` (1 for a network of
        vectors, with ``pe = M`` and ``simd = N``).

    Returns
    -------
    tuple of (int, int)
        A pair per layer: ``(pe, simd)``, or ``(lanes, lanes)`` for pooling, scale-and-shift
        and flatten.

    Raises
    ------
    TypeError
        If ``spec`` is not a NetworkSpec or ``target_ii`` is not an integer.
    ValueError
        If ``target_ii`` is less than 1, or than :func:`smallest_ii`.
    """
    check_spec(spec)
    if not isinstance(target_ii, int) or isinstance(target_ii, bool):
        raise TypeError(f"Target II must be an integer, not {target_ii!r}")
    if target_ii < 1:
        raise ValueError(f"Target II must be a positive integer, not {target_ii}")
    blocks = _blocks(spec)

    def rank(state):
        # Networks of vectors: layer by layer (the keys in order); others: the total first.
        return state[1] if vectors else state[:2]

    vectors = _longest_stream(spec) == 1
    # states: out lanes of the last block -> (cost, keys, entries) of the best chain to it.
    states = {None: (0, (), ())}
    for index, layer, flattened in blocks:
        options = list(_options(layer, target_ii))
        following = {}
        for upstream, (cost, keys, entries) in states.items():
            for entry in options:
                in_lanes = block_in_lanes(layer, entry, upstream)
                if stream_beats(layer.input_shape, in_lanes) > target_ii:
                    continue
                if index == 0 and not flat_lanes_fit(layer.input_shape, in_lanes):
                    continue
                if flattened and not flat_lanes_fit(layer.output_shape, entry[0]):
                    continue
                converter = upstream is not None and in_lanes != upstream
                key = _key(layer, entry, in_lanes, converter)
                candidate = (cost + key[0], keys + (key,), entries + (entry,))
                best = following.get(entry[0])
                if best is None or rank(candidate) < rank(best):
                    following[entry[0]] = candidate
        states = following
        if not states:
            raise ValueError(f"Target II {target_ii} is less than the smallest II of this "
                             f"network, {smallest_ii(spec)} (every block takes at least one "
                             f"cycle per input beat)")
    _, _, entries = min(states.values(), key=rank)
    folding = [None] * len(spec.layers)
    for (index, _, _), entry in zip(blocks, entries, strict=True):
        folding[index] = entry
    return check_folding(spec, folding)


def default_folding(spec):
    """The documented default: ``choose_folding(spec, default_target_ii(spec))``."""
    return choose_folding(spec, default_target_ii(spec))


def plan_network(spec, folding=None, *, target_ii=None, lut_multipliers=(),
                 running_accumulators=False):
    """The :class:`~amaranth_nn.network_plan.NetworkPlan` of ``spec`` at a folding.

    Parameters
    ----------
    spec : NetworkSpec
    folding : sequence, optional
        One entry per layer (module documentation).
    target_ii : int, optional
        Instead of ``folding``: :func:`choose_folding` for this target. With neither, the
        :func:`default_folding`.
    lut_multipliers : collection of int
        The layers whose multipliers are built from logic
        (:class:`~amaranth_nn.network_plan.NetworkPlan`).
    running_accumulators : bool
        Accumulators that never restart (:class:`~amaranth_nn.network_plan.NetworkPlan`).

    Every entry is checked against its layer here, so that a network is never left half-built
    by a bad folding.

    Raises
    ------
    TypeError, ValueError
        For a bad spec, folding or target II, or both a folding and a target II.
    NoHardwareYet
        For a layer without hardware.
    """
    check_hardware(spec)
    if folding is not None and target_ii is not None:
        raise ValueError("Pass either a folding or a target II, not both")
    if folding is None:
        folding = default_folding(spec) if target_ii is None else choose_folding(spec, target_ii)
    return NetworkPlan(spec, folding, lut_multipliers=lut_multipliers,
                       running_accumulators=running_accumulators)


# Command-line options shared by build, simulate, export and host.

def add_folding_arguments(parser):
    """Add ``--pe``, ``--simd`` and ``--target-ii`` to an argparse parser or group."""
    parser.add_argument("--pe", metavar="P1,P2,...",
                        help="output neurons (channels) in parallel, one value per layer (with "
                             "--simd); the lanes of a pooling or scale-and-shift layer, - for a "
                             "flatten")
    parser.add_argument("--simd", metavar="S1,S2,...",
                        help="inputs per cycle, one value per layer (with --pe); the lanes of "
                             "a pooling or scale-and-shift layer, - for a flatten")
    parser.add_argument("--target-ii", type=int, metavar="CYCLES",
                        help="choose the folding automatically: the smallest hardware whose II "
                             "is at most CYCLES")


def _parse_entries(text, option):
    """``--pe``/``--simd`` values: integers, or ``None`` for ``-``."""
    items = [item.strip() for item in text.split(",")]
    values = iter(parse_int_list(",".join(item for item in items if item != "-"), option)
                  if any(item != "-" for item in items) else [])
    return [None if item == "-" else next(values) for item in items]


def folding_from_args(args, spec):
    """``(folding, target_ii)`` from parsed ``--pe/--simd/--target-ii`` arguments, checked.

    A network built from the result cannot fail on its folding.

    Raises
    ------
    CommandError
        If only one of ``--pe``/``--simd`` is given, either is combined with ``--target-ii``, a
        list does not have one value per layer, or a value is out of range for its layer.
    NoHardwareYet
        If the spec has a layer without hardware (so every hardware command line says so
        before any work).
    """
    check_hardware(spec)
    if args.target_ii is not None and (args.pe is not None or args.simd is not None):
        raise CommandError("Give either --pe/--simd or --target-ii, not both")
    if args.target_ii is not None:
        target_ii = check_int(args.target_ii, "--target-ii")
        fastest = smallest_ii(spec)
        if target_ii < fastest:
            raise CommandError(f"--target-ii {target_ii} is less than the smallest II of this "
                               f"model, {fastest} cycles (every block takes at least one cycle "
                               f"per input beat)")
        return None, target_ii
    if (args.pe is None) != (args.simd is None):
        raise CommandError("--pe and --simd go together: give one value per layer for each")
    if args.pe is None:
        return None, None
    pe = _parse_entries(args.pe, "--pe")
    simd = _parse_entries(args.simd, "--simd")
    layers = len(spec.layers)
    for option, values in (("--pe", pe), ("--simd", simd)):
        if len(values) != layers:
            raise CommandError(f"{option} has {len(values)} values, but the model has {layers} "
                               f"layers")
    for index, (layer, p, s) in enumerate(zip(spec.layers, pe, simd, strict=True)):
        if (p is None or s is None) and (layer.kind != "flatten" or p != s):
            raise CommandError(f"--pe {args.pe} --simd {args.simd}: - is for a flatten layer, in "
                               f"both lists; layer {index} ({layer.name!r}) is a {layer.kind} "
                               f"layer")
    folding = tuple(None if p is None else (p, s) for p, s in zip(pe, simd, strict=True))
    try:
        folding = check_folding(spec, folding)
        plan_network(spec, folding)
    except (TypeError, ValueError) as error:
        raise CommandError(f"--pe {args.pe} --simd {args.simd}: {error}") from None
    return folding, None
