"""Shared helpers of the torch_bridge tests: random models and specs (dense, and with every
layer kind)."""

import numpy as np
import pytest
import specs
import torch
from specs import random_inputs  # noqa: F401 (re-exported for the torch_bridge tests)
from torch import nn

from amaranth_nn.fixedpoint import QFormat
from amaranth_nn.spec import AvgPool, Conv, Flatten, Layer, MaxPool, NetworkSpec, ScaleShift


def random_bn(features, generator):
    """A BatchNorm1d with random affine parameters and running statistics."""
    bn = nn.BatchNorm1d(features)
    with torch.no_grad():
        bn.weight.copy_(torch.randn(features, generator=generator))
        bn.bias.copy_(torch.randn(features, generator=generator))
        bn.running_mean.copy_(torch.randn(features, generator=generator))
        bn.running_var.copy_(torch.rand(features, generator=generator) * 3 + 0.01)
    return bn.eval()


def random_float_model(seed, sizes=(6, 5, 4, 3), batch_norm=True):
    """A float Linear(+BatchNorm1d)+ReLU MLP with random statistics, in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    modules = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        modules.append(nn.Linear(n_in, n_out))
        if index < len(sizes) - 2:
            if batch_norm:
                modules.append(random_bn(n_out, generator))
            modules.append(nn.ReLU())
    return nn.Sequential(*modules).eval()


def random_spec(rng, sizes=None):
    """A random valid dense spec from the tests' spec factory (``tests/specs.py``), of random
    sizes unless ``sizes`` are given."""
    if sizes is None:
        sizes = [int(n) for n in rng.integers(1, 9, size=rng.integers(2, 5))]
    return specs.random_spec(rng, sizes)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _random_formats(rng, in_fmt):
    wf = QFormat(int(rng.integers(2, 12)), int(rng.integers(-2, 12)))
    bf = QFormat(int(rng.integers(2, 30)), in_fmt.frac + wf.frac)
    of = QFormat(int(rng.integers(2, 14)), int(rng.integers(-4, 16)))
    return wf, bf, of


def random_conv_spec(rng):
    """A random valid spec with a 1-D or 2-D conv (random kernel, stride, padding), a max or
    average pool, a scale-and-shift, a flatten and a dense layer; random formats."""
    axes = int(rng.integers(1, 3))
    spatial = tuple(int(rng.integers(3, 8)) for _ in range(axes))
    channels, out = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    kernel = tuple(int(rng.integers(1, 4)) for _ in range(axes))
    padding = tuple(int(rng.integers(0, k)) for k in kernel)
    stride = tuple(int(rng.integers(1, 3)) for _ in range(axes))
    fmt = QFormat(int(rng.integers(2, 12)), int(rng.integers(-3, 10)))
    wf, bf, of = _random_formats(rng, fmt)
    layers = [Conv("conv", (*spatial, channels),
                   rng.integers(wf.min, wf.max + 1, (out, *kernel, channels)),
                   rng.integers(bf.min, bf.max + 1, out), wf, bf, of,
                   specs.random_activation(rng, of), stride=stride, padding=padding)]
    shape = layers[-1].output_shape
    if all(n >= 2 for n in shape[:-1]):
        pool = AvgPool if rng.random() < 0.5 else MaxPool
        layers.append(pool("pool", shape, (2,) * axes, (1,) * axes))
        shape = layers[-1].output_shape
    sf, bf, of2 = _random_formats(rng, of)
    layers.append(ScaleShift("scale", shape, rng.integers(sf.min, sf.max + 1, shape[-1]),
                             rng.integers(bf.min, bf.max + 1, shape[-1]), sf, bf, of2,
                             specs.random_activation(rng, of2)))
    layers.append(Flatten("flatten", shape))
    wf, bf, of3 = _random_formats(rng, of2)
    size = layers[-1].output_size
    layers.append(Layer("dense", rng.integers(wf.min, wf.max + 1, (3, size)),
                        rng.integers(bf.min, bf.max + 1, 3), wf, bf, of3,
                        specs.random_activation(rng, of3)))
    return NetworkSpec(fmt, layers)
