"""BatchNorm folding in every placement: after a layer equal to torch's own fusion, bit for
bit in float64; before a layer and alone equal to the float modules they replace."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from torch_bridge.fold import (
    bn_affine,
    bn_scale_shift,
    fold_bn_before,
    fold_linear_bn,
    fold_modules,
)
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


# Every placement, on random layers and statistics: tiny variances, negative gamma, bias on and
# off, affine=False.

def _random_statistics(bn, generator, tiny):
    features = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(features, generator=generator, dtype=torch.float64))
        var = torch.rand(features, generator=generator, dtype=torch.float64) * 3
        bn.running_var.copy_(var * 1e-9 if tiny else var + 0.01)
        if bn.affine:
            bn.weight.copy_(torch.randn(features, generator=generator, dtype=torch.float64))
            bn.weight[0] = -abs(float(bn.weight[0])) - 0.5      # a negative gamma, always
            bn.bias.copy_(torch.randn(features, generator=generator, dtype=torch.float64))
    return bn.eval()


def _random_layer(kind, generator, bias):
    n_in, n_out = (int(v) for v in torch.randint(1, 9, (2,), generator=generator))
    if kind == "linear":
        layer = nn.Linear(n_in, n_out, bias=bias)
    else:
        cls = nn.Conv1d if kind == "conv1d" else nn.Conv2d
        layer = cls(n_in, n_out, int(torch.randint(1, 4, (1,), generator=generator)), bias=bias)
    layer = layer.double().eval()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator,
                                       dtype=torch.float64) * 3)
        if bias:
            layer.bias.copy_(torch.randn(n_out, generator=generator, dtype=torch.float64))
    return layer


CASES = [(seed, kind, bias, affine, tiny) for seed in range(6)
         for kind in ("linear", "conv1d", "conv2d") for bias in (True, False)
         for affine, tiny in ((True, False), (False, False), (True, True))]


@pytest.mark.parametrize("seed, kind, bias, affine, tiny", CASES)
def test_fold_after_equals_torch_fusion(seed, kind, bias, affine, tiny):
    generator = torch.Generator().manual_seed(seed)
    layer = _random_layer(kind, generator, bias)
    bn_class = nn.BatchNorm2d if kind == "conv2d" else nn.BatchNorm1d
    bn = _random_statistics(bn_class(layer.weight.shape[0], affine=affine).double(), generator,
                            tiny)
    weight, folded_bias = fold_modules(layer, bn)
    if kind == "linear":
        # fuse_linear_bn_eval needs affine parameters; gamma = 1 and beta = 0 are what
        # affine=False means, and multiplying by 1 and adding 0 are exact.
        reference = copy.deepcopy(bn)
        if not affine:
            reference = bn_class(bn.num_features).double().eval()
            reference.load_state_dict(bn.state_dict(), strict=False)
        fused = fuse_linear_bn_eval(copy.deepcopy(layer), reference)
    else:
        fused = fuse_conv_bn_eval(copy.deepcopy(layer), copy.deepcopy(bn))
    assert torch.equal(weight, fused.weight) and torch.equal(folded_bias, fused.bias)


@pytest.mark.parametrize("seed, kind, bias, affine, tiny", CASES)
def test_fold_before_equals_its_float_reference(seed, kind, bias, affine, tiny):
    """BN -> layer computed in float64 by the two modules, against the one folded layer."""
    generator = torch.Generator().manual_seed(100 + seed)
    layer = _random_layer(kind, generator, bias)
    channels = layer.weight.shape[1]
    bn_class = nn.BatchNorm2d if kind == "conv2d" else nn.BatchNorm1d
    bn = _random_statistics(bn_class(channels, affine=affine).double(), generator, tiny)
    shape = {"linear": (channels,), "conv1d": (channels, 7), "conv2d": (channels, 5, 6)}[kind]
    x = torch.randn(9, *shape, generator=generator, dtype=torch.float64)
    expected = layer(bn(x))
    weight, folded_bias = fold_bn_before(layer.weight, layer.bias, bn.running_mean,
                                         bn.running_var, *bn_affine(bn), bn.eps)
    folded = copy.deepcopy(layer)
    with torch.no_grad():
        folded.weight.copy_(weight)
        folded.bias = nn.Parameter(folded_bias)
    assert torch.allclose(folded(x), expected, rtol=1e-12, atol=1e-9 if tiny else 1e-12)


def test_fold_before_a_linear_after_a_flatten():
    """BatchNorm1d(C) -> Flatten -> Linear(C*L): each input column c*L + l scales by s_c."""
    generator = torch.Generator().manual_seed(7)
    bn = _random_statistics(nn.BatchNorm1d(3).double(), generator, False)
    linear = nn.Linear(3 * 4, 5).double().eval()
    x = torch.randn(6, 3, 4, generator=generator, dtype=torch.float64)
    expected = linear(nn.Flatten()(bn(x)))
    weight, bias = fold_bn_before(linear.weight.reshape(5, 3, 4), linear.bias, bn.running_mean,
                                  bn.running_var, *bn_affine(bn), bn.eps)
    assert torch.allclose(nn.Flatten()(x) @ weight.reshape(5, 12).T + bias, expected,
                          rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("affine, tiny", [(True, False), (False, False), (True, True)])
def test_scale_shift_equals_batch_norm(affine, tiny):
    generator = torch.Generator().manual_seed(11)
    bn = _random_statistics(nn.BatchNorm2d(4, affine=affine).double(), generator, tiny)
    x = torch.randn(3, 4, 5, 2, generator=generator, dtype=torch.float64)
    scale, shift = bn_scale_shift(bn.running_mean, bn.running_var, *bn_affine(bn), bn.eps)
    got = x * scale.reshape(-1, 1, 1) + shift.reshape(-1, 1, 1)
    assert torch.allclose(got, bn(x), rtol=1e-12, atol=1e-9 if tiny else 1e-12)
