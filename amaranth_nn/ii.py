"""Cycles per sample of every block kind: the initiation-interval formulas, plain arithmetic.

A sample of shape ``(*spatial, C)`` streams as its ``P`` positions, each ``ceil(C/L)`` beats
of ``L`` lanes (a vector is one position). A block takes at most one beat per cycle, so its II
(cycles per sample in steady state) is at least its input beats per sample,
:func:`stream_beats`, and at least the cycles its arithmetic needs:

========================= =============== ==================================================
kind                      folding         compute cycles per sample
========================= =============== ==================================================
``dense``                 ``(pe, simd)``  ``ceil(M/pe) * ceil(N/simd)``
``conv``                  ``(pe, simd)``  ``P_out * ceil(C_out/pe) * ceil(K*C_in/simd)``
``maxpool``, ``avgpool``  ``lanes``       ``P_out * K * ceil(C/lanes)``
``scale_shift``           ``lanes``       ``P * ceil(C/lanes)``
========================= =============== ==================================================

(``K`` is the kernel's positions.) Folding (:mod:`amaranth_nn.folding`) chooses by these
without building any plan; every block's plan computes the same II
(:meth:`NetworkPlan.check_ii <amaranth_nn.network_plan.NetworkPlan.check_ii>`, tested for
networks of every kind).
"""

from math import prod

from .lanes import ceil_div

__all__ = ["positions", "channels", "stream_beats", "dense_ii", "conv_ii", "pool_ii",
           "scale_shift_ii", "compute_ii", "block_ii", "block_multipliers"]


def positions(shape):
    """Positions of a stream shape: the product of all axes but the last (1 for a vector)."""
    return prod(shape[:-1])


def channels(shape):
    """Elements per position of a stream shape: its last axis."""
    return shape[-1]


def stream_beats(shape, lanes):
    """Beats per sample of a stream of ``shape`` at ``lanes`` lanes: ``P * ceil(C/lanes)``."""
    return positions(shape) * ceil_div(channels(shape), lanes)


def dense_ii(in_features, out_features, pe, simd):
    """Cycles per vector of a dense layer at ``(pe, simd)``: ``ceil(M/pe) * ceil(N/simd)``."""
    return ceil_div(out_features, pe) * ceil_div(in_features, simd)


def conv_ii(layer, pe, simd):
    """Compute cycles per sample of a conv layer: ``P_out * ceil(C_out/pe) * ceil(K*C_in/simd)``
    (the dense engine's II for each output position's window)."""
    return layer.positions_out * dense_ii(layer.window_size, layer.out_channels, pe, simd)


def pool_ii(layer, lanes):
    """Compute cycles per sample of a pooling layer: ``P_out * K * ceil(C/lanes)`` (every
    window is ``K`` kernel positions of ``ceil(C/lanes)`` beats)."""
    return layer.positions_out * layer.window * ceil_div(layer.output_channels, lanes)


def scale_shift_ii(layer, lanes):
    """Compute cycles per sample of a scale-and-shift layer: ``P * ceil(C/lanes)``."""
    return stream_beats(layer.input_shape, lanes)


def compute_ii(layer, entry):
    """Compute cycles per sample of ``layer`` at its folding ``entry`` (``(pe, simd)`` for dense
    and conv, ``(lanes, lanes)`` for the others), by its kind."""
    if layer.kind == "dense":
        return dense_ii(layer.in_features, layer.out_features, *entry)
    if layer.kind == "conv":
        return conv_ii(layer, *entry)
    if layer.kind in ("maxpool", "avgpool"):
        return pool_ii(layer, entry[0])
    if layer.kind == "scale_shift":
        return scale_shift_ii(layer, entry[0])
    raise ValueError(f"A {layer.kind} layer is not a block")


def block_ii(layer, entry, in_lanes):
    """Cycles per sample of ``layer``'s block: its compute cycles, and at least its input beats
    at ``in_lanes`` lanes (a block takes one beat per cycle)."""
    return max(compute_ii(layer, entry), stream_beats(layer.input_shape, in_lanes))


def block_multipliers(layer, entry):
    """Multipliers of ``layer``'s block: ``pe * simd`` for dense and conv, ``lanes`` for
    scale-and-shift, none for pooling."""
    if layer.kind in ("dense", "conv"):
        return entry[0] * entry[1]
    if layer.kind == "scale_shift":
        return entry[0]
    return 0
