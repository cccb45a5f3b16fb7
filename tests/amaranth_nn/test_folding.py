"""Folding arguments: checked in one place, before any hardware is built."""

import gc

import numpy as np
import pytest
from specs import random_spec

from amaranth_nn.export import export
from amaranth_nn.folding import choose_folding, default_folding, plan_network
from amaranth_nn.simulate import simulate


def _spec():
    return random_spec(np.random.default_rng(2), [12, 8, 3])


def test_out_of_range_is_value_error_wrong_type_is_type_error():
    spec = _spec()
    with pytest.raises(ValueError, match=r"^Target II must be a positive integer, not 0$"):
        choose_folding(spec, 0)
    with pytest.raises(TypeError, match=r"^Target II must be an integer, not 2\.0$"):
        choose_folding(spec, 2.0)
    with pytest.raises(ValueError, match=r"^Pe must be from 1 to 3 \(the out_features of layer "
                                         r"1 \('dense1'\)\), not 0$"):
        plan_network(spec, [(1, 1), (0, 1)])
    with pytest.raises(TypeError, match=r"^Simd must be an integer, not 2\.0$"):
        plan_network(spec, [(1, 2.0), (1, 1)])
    with pytest.raises(ValueError, match=r"^Pe must be from 1 to 3 \(the out_features of layer "
                                         r"1 \('dense1'\)\), not 4$"):
        plan_network(spec, [(1, 1), (4, 1)])


def test_plan_network_folding():
    spec = _spec()
    assert plan_network(spec).folding == default_folding(spec)
    assert plan_network(spec, target_ii=16).folding == choose_folding(spec, 16)
    assert plan_network(spec, [[2, 3], (1, 8)]).folding == ((2, 3), (1, 8))
    with pytest.raises(ValueError, match=r"^Pass either a folding or a target II, not both$"):
        plan_network(spec, [(1, 1), (1, 1)], target_ii=4)


def test_nothing_built_for_a_bad_folding(tmp_path):
    """A bad folding given to simulate() or export() leaves no half-built component to warn
    (as an error, in this suite) when it is collected, and writes nothing."""
    spec = _spec()
    with pytest.raises(ValueError, match=r"^Simd must be from 1 to 8"):
        simulate(spec, np.zeros((1, 12), dtype=np.int64), [(1, 1), (1, 9)])
    with pytest.raises(ValueError, match=r"^Target II must be a positive integer, not 0$"):
        export(spec, tmp_path / "out", target_ii=0)
    gc.collect()
    assert not (tmp_path / "out").exists()
