"""Fake quantization: the integers of amaranth_nn.fixedpoint, and STE gradients."""

import numpy as np
import pytest
import torch

from amaranth_nn.fixedpoint import QFormat, quantize
from torch_bridge.quant import count_saturated, fake_quantize, quantize_int, to_grid


@pytest.mark.parametrize("fmt", [QFormat(8, 6), QFormat(4, 0), QFormat(12, -3),
                                 QFormat(5, 9), QFormat(30, 20)])
def test_to_grid_equals_foundation_quantize(fmt):
    rng = np.random.default_rng(fmt.width * 100 + fmt.frac)
    scale = 2.0 ** (fmt.width - 1 - fmt.frac)
    values = rng.uniform(-1.5 * scale, 1.5 * scale, size=500)
    halves = (rng.integers(-2 ** (fmt.width - 1) - 2, 2 ** (fmt.width - 1) + 2, size=100)
              + 0.5) * 2.0 ** -fmt.frac
    values = np.concatenate([values, halves, [0.0, -0.0]])
    expected = quantize(values, fmt)
    got = quantize_int(torch.from_numpy(values), fmt)
    assert np.array_equal(got.numpy(), expected)
    real = fake_quantize(torch.from_numpy(values), fmt)
    assert np.array_equal(real.numpy(), fmt.to_real(expected))


def test_round_half_to_even():
    fmt = QFormat(8, 0)
    got = quantize_int(torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5]), fmt)
    assert got.tolist() == [0, 2, 2, 0, -2, -2]


def test_straight_through_gradient_and_saturation():
    fmt = QFormat(4, 1)  # range [-4, 3.5]
    x = torch.tensor([0.3, -1.26, 3.5, 3.6, 3.8, -4.0, -4.2, -4.3, 10.0],
                     dtype=torch.float64, requires_grad=True)
    y = fake_quantize(x, fmt)
    assert y.tolist() == [0.5, -1.5, 3.5, 3.5, 3.5, -4.0, -4.0, -4.0, 3.5]
    y.sum().backward()
    # Rounding passes the gradient; values whose rounded integer lies beyond the range
    # saturate and get none (3.6 rounds to 7 = max, in range; 3.8 rounds to 8, saturated).
    assert x.grad.tolist() == [1, 1, 1, 1, 0, 1, 1, 0, 0]
    assert count_saturated(x, fmt) == 3


def test_non_finite_values_are_errors():
    with pytest.raises(ValueError, match=r"^Cannot quantize weights: value nan at index 2 "
                                         r"is not finite$"):
        to_grid(torch.tensor([0.0, 1.0, float("nan")]), QFormat(8, 4), "weights")
    with pytest.raises(ValueError, match=r"^Cannot quantize input: value inf at index "
                                         r"\(1, 0\) is not finite$"):
        to_grid(torch.tensor([[0.0], [float("inf")]]), QFormat(8, 4), "input")
