"""Shared helpers of the torch_bridge tests: random models and specs."""

import numpy as np
import pytest
import torch
from torch import nn

from amaranth_nn.fixedpoint import Activation, QFormat
from amaranth_nn.spec import Layer, NetworkSpec


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


def random_spec(rng, sizes=None, input_format=None):
    """A random valid spec: random formats (shifts of both signs) and activations."""
    if sizes is None:
        sizes = [int(n) for n in rng.integers(1, 9, size=rng.integers(2, 5))]
    fmt = input_format or QFormat(int(rng.integers(2, 12)), int(rng.integers(-3, 10)))
    first, layers = fmt, []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        wf = QFormat(int(rng.integers(2, 12)), int(rng.integers(-2, 12)))
        bf = QFormat(int(rng.integers(2, 30)), fmt.frac + wf.frac)
        of = QFormat(int(rng.integers(2, 14)), int(rng.integers(-4, 16)))
        weights = rng.integers(wf.min, wf.max + 1, size=(n_out, n_in))
        bias = rng.integers(bf.min, bf.max + 1, size=n_out)
        kind = rng.choice(["identity", "relu", "hardtanh"])
        if kind == "hardtanh":
            lo, hi = sorted(int(v) for v in rng.integers(of.min, of.max + 1, size=2))
            activation = Activation.hardtanh(lo, hi)
        else:
            activation = Activation(str(kind))
        layers.append(Layer(f"l{index}", weights, bias, wf, bf, of, activation))
        fmt = of
    return NetworkSpec(first, layers)


def random_inputs(rng, spec, batch):
    fmt = spec.input_format
    return rng.integers(fmt.min, fmt.max + 1, size=(batch, spec.input_size))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
