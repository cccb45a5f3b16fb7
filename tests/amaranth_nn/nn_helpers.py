"""Stream helpers and hypothesis strategies of the gateware tests (test code, not package code).

The spec factory is ``tests/specs.py``.
"""

import numpy as np
from hypothesis import strategies as st
from specs import random_spec

from amaranth_nn import golden
from amaranth_nn.lanes import ceil_div, pack_beats, pack_lanes, unpack_beats
from amaranth_nn.simulate import run_streams

PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


@st.composite
def sizes(draw, small=12):
    """A layer size from 1 to 40, mostly small, primes included."""
    return draw(st.one_of(st.integers(1, small), st.sampled_from(PRIMES),
                          st.integers(1, 40)))


def draw_network(data, size, layers=3):
    """Draw a random spec of 1 to ``layers`` layers (sizes from the strategy ``size``) and a
    folding of it; returns ``(spec, folding, rng, seed)``, ``rng`` seeded with ``seed``."""
    depth = data.draw(st.integers(1, layers), label="layers")
    shape = [data.draw(size, label=f"size{n}") for n in range(depth + 1)]
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, shape)
    folding = [(data.draw(st.integers(1, layer.out_features), label="pe"),
                data.draw(st.integers(1, layer.in_features), label="simd"))
               for layer in spec.layers]
    return spec, folding, rng, seed


def run_layer(layer_component, x, *, stalls=(0.0, 0.0), seed=0):
    """Run vectors ``x`` (the layer's inputs) through a DenseLayer; returns
    (outputs, padding lanes, StreamRun)."""
    plan = layer_component.plan
    words = pack_beats(x, plan.simd, plan.in_width)
    run = run_streams(layer_component, words, len(x) * plan.out_beats, stalls=stalls, seed=seed)
    out, pad = unpack_beats(run.outputs, plan.pe, plan.out_width, plan.out_features)
    return out, pad, run


def layer_inputs(spec, index, x):
    """The integers that enter layer ``index`` when the network runs on ``x``."""
    if index == 0:
        return np.asarray(x)
    return golden.run_layers(spec, x)[index - 1]


def pack_positions(rows, lanes, width, junk=None):
    """Beats of ``rows`` (``(n, C)``), each row as ``ceil(C/lanes)`` beats of ``lanes`` lanes;
    the lanes past ``C`` hold random integers of ``width`` bits drawn from the generator
    ``junk`` (a receiver ignores them), or zero without one."""
    rows = np.asarray(rows)
    channels = rows.shape[1]
    padded = ceil_div(channels, lanes) * lanes
    if junk is None:
        fill = np.zeros((len(rows), padded - channels), dtype=np.int64)
    else:
        fill = junk.integers(-(1 << (width - 1)), 1 << (width - 1),
                             size=(len(rows), padded - channels))
    beats = np.concatenate([rows.astype(np.int64), fill], axis=1).reshape(-1, lanes)
    return [pack_lanes(beat, width) for beat in beats.tolist()]


def run_samples(dut, x, *, channels, out_channels, stalls=(0.0, 0.0), seed=0):
    """Run samples ``x`` (``(batch, size)``, stream order) through a block of the stream format:
    each position of ``channels`` elements as ``ceil(channels/plan.in_lanes)`` beats, junk in
    the lanes past ``channels`` (:func:`pack_positions`).

    Returns
    -------
    outputs : numpy.ndarray, shape (batch, output size)
    padding : numpy.ndarray
        The lanes past ``out_channels`` of every output position.
    run : StreamRun
    """
    plan = dut.plan
    x = np.asarray(x)
    words = pack_positions(x.reshape(-1, channels), plan.in_lanes, plan.in_width,
                           np.random.default_rng(seed))
    run = run_streams(dut, words, len(x) * plan.out_beats, stalls=stalls, seed=seed)
    out, pad = unpack_beats(run.outputs, plan.out_lanes, plan.out_width, out_channels)
    return out.reshape(len(x), -1), pad, run
