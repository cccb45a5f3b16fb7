"""Torch int64 inference equals the golden model bit for bit."""

import numpy as np
import pytest
import torch

from amaranth_nn import golden
from amaranth_nn.fixedpoint import Activation, QFormat
from amaranth_nn.spec import Layer, NetworkSpec
from torch_bridge import infer
from torch_bridge.infer import requantize_int

from .conftest import random_conv_spec, random_inputs, random_spec


@pytest.mark.parametrize("seed", range(40))
def test_torch_int64_equals_golden_on_random_specs(seed):
    rng = np.random.default_rng(seed)
    spec = random_spec(rng)
    x = random_inputs(rng, spec, 64)
    expected = golden.run_layers(spec, x)
    got = infer.run_layers(spec, torch.from_numpy(x))
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == torch.int64
        assert np.array_equal(g.numpy(), e)
    single = infer.run(spec, x[3])
    assert single.shape == (spec.output_size,)
    assert np.array_equal(single.numpy(), golden.run(spec, x[3]))


@pytest.mark.parametrize("seed", range(60))
def test_torch_int64_equals_golden_on_random_conv_specs(seed):
    rng = np.random.default_rng(1000 + seed)
    spec = random_conv_spec(rng)
    x = random_inputs(rng, spec, 32)
    x[rng.random(x.shape) < 0.3] = spec.input_format.min
    x[rng.random(x.shape) < 0.3] = spec.input_format.max
    for got, expected in zip(infer.run_layers(spec, x), golden.run_layers(spec, x),
                             strict=True):
        assert got.dtype == torch.int64
        assert np.array_equal(got.numpy(), expected)


def test_requantize_int_equals_foundation_at_the_edges():
    from amaranth_nn.fixedpoint import requantize
    acc = np.arange(-600, 600, dtype=np.int64)
    acc = np.concatenate([acc, [2 ** 61, -2 ** 61, 2 ** 40 + 3, -(2 ** 40) - 5]])
    for shift in (-70, -40, -3, -1, 0, 1, 2, 5, 11, 60):
        for fmt in (QFormat(8, 0), QFormat(3, 2), QFormat(20, -4)):
            got = requantize_int(torch.from_numpy(acc), shift, fmt).numpy()
            assert np.array_equal(got, requantize(acc, shift, fmt)), (shift, fmt)


def test_accumulator_wider_than_int64_is_an_error():
    fmt = QFormat(40, 0)
    layer = Layer("wide", [[fmt.max] * 4], [0], fmt, QFormat(40, 0), QFormat(8, 0),
                  Activation.identity())
    spec = NetworkSpec(fmt, [layer])
    with pytest.raises(ValueError, match=r"^Layer 0 \('wide'\) needs a 81-bit accumulator; "
                                         r"torch int64 inference supports up to 62 bits"):
        infer.run(spec, [[1, 2, 3, 4]])


def test_bad_inputs_are_rejected_like_golden():
    spec = random_spec(np.random.default_rng(5), sizes=[3, 2])
    with pytest.raises(ValueError, match="Inputs must have shape"):
        infer.run(spec, np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="Inputs must be integers"):
        infer.run(spec, np.zeros((2, 3)))
