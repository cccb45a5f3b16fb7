"""Linear+BatchNorm1d folding: equal to torch's own fusion, in float64."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_linear_bn_eval

from torch_bridge.fold import fold_linear_bn, fold_modules
from torch_bridge.modules import QLinearBn1d

from .conftest import random_bn


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("bias", [True, False])
def test_fold_equals_torch_fusion(seed, bias):
    # Same operations in the same order as fuse_linear_bn_weights, so float64 results are
    # bit for bit equal: the check is exact equality, no tolerance.
    generator = torch.Generator().manual_seed(seed)
    n_in, n_out = (int(v) for v in torch.randint(1, 40, (2,), generator=generator))
    linear = nn.Linear(n_in, n_out, bias=bias).double().eval()
    with torch.no_grad():
        linear.weight.copy_(torch.randn(n_out, n_in, generator=generator) * 3)
    bn = random_bn(n_out, generator).double()
    bn.eps = float(torch.rand(1, generator=generator)) * 1e-3
    fused = fuse_linear_bn_eval(copy.deepcopy(linear), copy.deepcopy(bn))
    weight, folded_bias = fold_modules(linear, bn)
    assert weight.dtype == folded_bias.dtype == torch.float64
    assert torch.equal(weight, fused.weight)
    assert torch.equal(folded_bias, fused.bias)


def test_fold_of_float32_modules_is_computed_in_float64():
    generator = torch.Generator().manual_seed(7)
    linear = nn.Linear(9, 5).eval()
    bn = random_bn(5, generator)
    weight, bias = fold_modules(linear, bn)
    fused = fuse_linear_bn_eval(copy.deepcopy(linear).double(), copy.deepcopy(bn).double())
    assert torch.equal(weight, fused.weight) and torch.equal(bias, fused.bias)


def test_fold_matches_the_written_formula():
    # W' = gamma W / sqrt(var + eps) and b' = gamma (b - mu) / sqrt(var + eps) + beta. The
    # implementation multiplies by gamma * rsqrt(var + eps) (torch's order), which differs from
    # a division by sqrt in the last bit or two, so this check is an allclose at 1e-12
    # relative; the exact check is the one against torch's fusion above.
    generator = torch.Generator().manual_seed(3)
    w = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    b, mu, gamma, beta = (torch.randn(6, generator=generator, dtype=torch.float64)
                          for _ in range(4))
    var = torch.rand(6, generator=generator, dtype=torch.float64) + 0.1
    weight, bias = fold_linear_bn(w, b, mu, var, gamma, beta, 1e-5)
    std = torch.sqrt(var + 1e-5)
    assert torch.allclose(weight, gamma[:, None] * w / std[:, None], rtol=1e-12, atol=0)
    assert torch.allclose(bias, gamma * (b - mu) / std + beta, rtol=1e-12, atol=1e-15)


def test_qat_linear_bn_trains_with_batch_statistics():
    # With formats fine enough that quantization is negligible, a training-mode forward of
    # QLinearBn1d equals Linear -> BatchNorm1d (batch statistics), and the running statistics
    # are updated as BatchNorm1d updates them.
    torch.manual_seed(0)
    linear, bn = nn.Linear(5, 4), nn.BatchNorm1d(4, momentum=0.3)
    fine = dict(input_format=(40, 30), weight_format=(40, 30), output_format=(40, 30),
                bias_width=62)
    qat = QLinearBn1d(5, 4, momentum=0.3, **fine)
    qat.linear.load_state_dict(linear.state_dict())
    qat.bn.load_state_dict(bn.state_dict())
    x = torch.round(torch.randn(16, 5, dtype=torch.float64) * 2 ** 20) / 2 ** 20
    expected = bn.double()(linear.double()(x))
    got = qat(x)
    assert torch.allclose(got, expected, rtol=0, atol=1e-8)
    assert torch.allclose(qat.bn.running_mean.double(), bn.running_mean, rtol=1e-6, atol=1e-7)
    assert torch.allclose(qat.bn.running_var.double(), bn.running_var, rtol=1e-6, atol=1e-7)
    assert int(qat.bn.num_batches_tracked) == 1
    # Gradients reach the linear weight and gamma through the folded parameters.
    got.sum().backward()
    assert qat.linear.weight.grad is not None and qat.bn.weight.grad is not None


def test_qat_linear_bn_frozen_uses_running_statistics():
    torch.manual_seed(1)
    qat = QLinearBn1d(3, 2, input_format=(8, 4), weight_format=(8, 6), output_format=(8, 4))
    with torch.no_grad():
        qat.bn.running_mean.copy_(torch.tensor([0.5, -0.25]))
        qat.bn.running_var.copy_(torch.tensor([2.0, 0.5]))
    x = torch.round(torch.randn(8, 3) * 16) / 16
    qat.eval()
    expected = qat(x)
    qat.train().freeze_bn()
    before = qat.bn.running_mean.clone()
    assert torch.equal(qat(x), expected)
    assert torch.equal(qat.bn.running_mean, before)


def test_qat_linear_bn_needs_two_samples_in_training():
    qat = QLinearBn1d(3, 2, input_format=(8, 4), weight_format=(8, 6), output_format=(8, 4))
    with pytest.raises(ValueError, match=r"^QLinearBn1d needs more than 1 sample per batch in "
                                         r"training \(batch statistics\), got 1$"):
        qat(torch.zeros(1, 3))
