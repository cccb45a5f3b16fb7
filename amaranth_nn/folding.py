"""Folding: how many multipliers each layer gets, as ``(pe, simd)`` per layer.

A dense layer with ``N`` inputs and ``M`` outputs folded to ``(pe, simd)`` has
``pe * simd`` multipliers and takes ``ii = ceil(M/pe) * ceil(N/simd)`` cycles per vector. A
network's II is the largest layer II, so a target II is met by folding every layer on its own.

:func:`choose_folding` picks, layer by layer, the cheapest ``(pe, simd)`` whose II is at most
the target. The cost is the number of multipliers, ``pe * simd``, plus one when ``simd``
differs from the previous layer's ``pe`` (a width converter between the two layers costs
about as much logic as a multiplier, and is slower). Among equally cheap choices it prefers,
in order: no width converter, ``pe`` dividing ``M`` and ``simd`` dividing ``N`` (no zero
padding), the lower II, the squarer ``(pe, simd)``, then the smaller ``pe``.

The default folding (:func:`default_folding`) is ``choose_folding(spec, DEFAULT_TARGET_II)``,
a target of 64 cycles per vector. For the embedded digits model (64 -> 32 -> 16 -> 10) it is
``((4, 8), (2, 4), (2, 2))``: II 64, 44 multipliers and no width converter, which fits the 90
DSP48E1 of an Arty A7-35T with room to spare, and the 156 multipliers of an ECP5-85F. A small
FPGA such as the iCE40UP5K (8 DSPs) needs a larger target II.
"""

from .cli import CommandError, check_int, parse_int_list
from .lanes import ceil_div
from .plan import NetworkPlan, check_dense_only, check_folding, dense_ii

__all__ = ["DEFAULT_TARGET_II", "choose_folding", "default_folding", "plan_network",
           "check_folding", "add_folding_arguments", "folding_from_args"]

#: Target II (cycles per vector) of the default folding.
DEFAULT_TARGET_II = 64


def choose_folding(spec, target_ii):
    """Cheapest folding whose II is at most ``target_ii`` (see the module documentation).

    Parameters
    ----------
    spec : NetworkSpec
        The network.
    target_ii : int
        Largest acceptable cycles per vector, at least 1 (II 1 is always reachable, with
        ``pe = M`` and ``simd = N``).

    Returns
    -------
    tuple of (int, int)
        ``(pe, simd)`` per layer.

    Raises
    ------
    TypeError
        If ``spec`` is not a NetworkSpec or ``target_ii`` is not an integer.
    ValueError
        If ``target_ii`` is less than 1.
    """
    check_dense_only(spec)
    if not isinstance(target_ii, int) or isinstance(target_ii, bool):
        raise TypeError(f"Target II must be an integer, not {target_ii!r}")
    if target_ii < 1:
        raise ValueError(f"Target II must be a positive integer, not {target_ii}")
    folding, previous_pe = [], None
    for layer in spec.layers:
        n, m = layer.in_features, layer.out_features
        best = None
        for pe in range(1, m + 1):
            max_beats = target_ii // ceil_div(m, pe)
            if max_beats < 1:
                continue
            simd = ceil_div(n, min(max_beats, n))
            ii = dense_ii(n, m, pe, simd)
            converter = previous_pe is not None and simd != previous_pe
            key = (pe * simd + converter, converter, (m % pe != 0) + (n % simd != 0), ii,
                   abs(pe - simd), pe)
            if best is None or key < best[0]:
                best = key, (pe, simd)
        folding.append(best[1])
        previous_pe = best[1][0]
    return tuple(folding)


def default_folding(spec):
    """The documented default: ``choose_folding(spec, DEFAULT_TARGET_II)``."""
    return choose_folding(spec, DEFAULT_TARGET_II)


def plan_network(spec, folding=None, *, target_ii=None):
    """The :class:`~amaranth_nn.plan.NetworkPlan` of ``spec`` at a folding.

    Parameters
    ----------
    spec : NetworkSpec
    folding : sequence of (int, int), optional
        ``(pe, simd)`` per layer.
    target_ii : int, optional
        Instead of ``folding``: :func:`choose_folding` for this target. With neither, the
        :func:`default_folding`.

    Every ``pe`` is checked against its layer's ``out_features`` and every ``simd`` against its
    ``in_features`` here, so that a network is never left half-built by a bad folding.

    Raises
    ------
    TypeError, ValueError
        For a bad spec, folding or target II, or both a folding and a target II.
    """
    check_dense_only(spec)
    if folding is not None and target_ii is not None:
        raise ValueError("Pass either a folding or a target II, not both")
    if folding is None:
        folding = default_folding(spec) if target_ii is None else choose_folding(spec, target_ii)
    return NetworkPlan(spec, folding)


# Command-line options shared by build, simulate, export and host.

def add_folding_arguments(parser):
    """Add ``--pe``, ``--simd`` and ``--target-ii`` to an argparse parser or group."""
    parser.add_argument("--pe", metavar="P1,P2,...",
                        help="output neurons in parallel, one value per layer (with --simd)")
    parser.add_argument("--simd", metavar="S1,S2,...",
                        help="inputs per cycle, one value per layer (with --pe)")
    parser.add_argument("--target-ii", type=int, metavar="CYCLES",
                        help="choose the folding automatically: the smallest hardware whose II "
                             "is at most CYCLES")


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
    check_dense_only(spec)
    if args.target_ii is not None and (args.pe is not None or args.simd is not None):
        raise CommandError("Give either --pe/--simd or --target-ii, not both")
    if args.target_ii is not None:
        return None, check_int(args.target_ii, "--target-ii")
    if (args.pe is None) != (args.simd is None):
        raise CommandError("--pe and --simd go together: give one value per layer for each")
    if args.pe is None:
        return None, None
    pe = parse_int_list(args.pe, "--pe")
    simd = parse_int_list(args.simd, "--simd")
    layers = len(spec.layers)
    for option, values in (("--pe", pe), ("--simd", simd)):
        if len(values) != layers:
            raise CommandError(f"{option} has {len(values)} values, but the model has {layers} "
                               f"layers")
    folding = tuple(zip(pe, simd, strict=True))
    try:
        plan_network(spec, folding)
    except ValueError as error:
        raise CommandError(f"--pe {args.pe} --simd {args.simd}: {error}") from None
    return folding, None
